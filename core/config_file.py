"""The OpenBK config in a file: one loader for `bkbench config show|set|write` and the workbench's config
editor (a file from the picker, or the sector `e` reads from the chip).

A file is either the 4 KiB config sector itself or a full dump (rotated dumps are put in flash order; an
edit can be saved in the file's own order too), whose chip (core/images/recognize.py: bootloader, banner,
RF sector) says where OpenBK keeps the sector. The chip also picks the config's pin layout (32 or 48 pins,
core/analysis/obk_config.py); a config with the old unsigned checksum of earlier bkbench versions is read
(`legacy_crc`, to show and re-save it) but never written to a chip.
"""

from __future__ import annotations

from dataclasses import dataclass

from .analysis.obk_config import ObkConfig, layout_hint, pin_layout
from .errors import BkError
from .layout import OBK_CONFIG_OFFSET, RF_OFFSET, SECTOR


class ChipUnknown(BkError):
    """A dump whose chip (and so its config's place) the file does not tell."""


@dataclass
class ConfigSource:
    config: ObkConfig
    data: bytes  # the file in flash order (or the sector itself)
    offset: int | None  # where the sector sits in `data`; None: `data` is the sector
    chip: str | None
    created: str = ""  # why `config` is a new one with OpenBK's defaults (the parse error; "" when it was read)
    rotation: int = 0  # the file is a dump read from this address with wrap-around (`data` is in flash order)

    @property
    def sector(self) -> bytes:
        """The config sector's bytes as the file holds them."""
        return self.data if self.offset is None else self.data[self.offset: self.offset + SECTOR]

    def file_with(self, cfg: ObkConfig) -> bytes:
        """The file's bytes with `cfg` as its config sector (a dump keeps everything else)."""
        sector = cfg.sector()
        if self.offset is None:
            return sector
        return self.data[: self.offset] + sector + self.data[self.offset + SECTOR:]

    @property
    def file_offset(self) -> int | None:
        """Where the config sector sits in the file as given (a rotated dump's own order)."""
        return None if self.offset is None else (self.offset - self.rotation) % len(self.data)

    def file_as_given_with(self, cfg: ObkConfig) -> bytes:
        """As `file_with`, in the file's own order: a rotated dump stays rotated, only the config sector differs."""
        flash = self.file_with(cfg)
        if not self.rotation:
            return flash
        return flash[self.rotation:] + flash[: self.rotation]


def is_sector_file(data: bytes) -> bool:
    """A config sector on its own (not a dump holding one)."""
    return len(data) <= 2 * SECTOR or data[:3] == b"CFG"


def load_config(data: bytes, chip: str | None = None, *, create: bool = False, fallback_chip: str | None = None,
                mac: str | None = None, allow_legacy: bool = True) -> ConfigSource:
    """The OpenBK config of `data`. `chip` names a dump's chip (else the dump says, else `fallback_chip`).
    With `create`, a sector that holds no OpenBK config (stock firmware), or a damaged one, gives a new
    config with OpenBK's defaults and the device's MAC (`mac`, or the dump's RF sector), and says why;
    without it that is a one-line BkError. `allow_legacy`: a config with the old unsigned checksum is read
    (with `legacy_crc` set) rather than refused."""
    if not data:
        raise BkError("the file is empty")
    if is_sector_file(data):
        return _from_sector(data, None, data, chip or layout_hint(data) or fallback_chip, create, mac, allow_legacy,
                            chip)
    from .analysis.dump import identify_bootloader

    found: str | None
    known = identify_bootloader(data)  # a known bootloader at 0: an unrotated dump (the slower recognition skipped)
    if known is not None:
        dump, found, rotation, what = True, known[0], 0, ""
    else:
        from .images.recognize import recognize

        info = recognize(data, "config")
        dump, found, rotation, what = info.format == "dump", info.chip, info.rotation, info.description
    flash = data
    if dump and rotation:
        from .images.recognize import unrotate

        flash = unrotate(data, rotation)
    else:
        rotation = 0
    chip = chip or (found or fallback_chip if dump else None)
    if chip not in OBK_CONFIG_OFFSET:
        what = ("its chip is not recognised" if dump else f"it is not a recognised dump ({what})")
        raise ChipUnknown(f"cannot tell where this file keeps OpenBK's config: {what}"
                          + (f"; OpenBK's config location on {chip} is not known" if chip else
                             "; name the chip of a dump with --chip (e.g. --chip BK7231N)"))
    off = OBK_CONFIG_OFFSET[chip]
    if mac is None and chip in RF_OFFSET:
        from .analysis.dump import parse_tlv_mac

        mac = parse_tlv_mac(flash[RF_OFFSET[chip]: RF_OFFSET[chip] + SECTOR])
    return _from_sector(flash[off: off + SECTOR], off, flash, chip, create, mac, allow_legacy, chip, rotation)


def check_sector_for(sector: bytes, chip: str) -> ObkConfig:
    """The sector as OpenBK on `chip` would judge it before it is written there: BkError (one line) unless
    OpenBK would accept it (the old unsigned checksum refused) and its pin layout is the chip's."""
    hint = layout_hint(sector)
    if hint and pin_layout(hint) is not pin_layout(chip):
        raise BkError(f"This config was made for {hint} ({pin_layout(hint).name} layout) and the chip is {chip}: "
                      "its pins would land on the wrong fields. Make it with `bkbench config set --chip "
                      f"{chip}`.")
    return ObkConfig.parse(sector, chip)


def _from_sector(sector: bytes, offset: int | None, data: bytes, layout_chip: str | None, create: bool,
                 mac: str | None, allow_legacy: bool, chip: str | None, rotation: int = 0) -> ConfigSource:
    """`layout_chip` picks the pin layout (a bare sector's own hint or the caller's guess); `chip` is what the
    file says (None for a bare sector unless named)."""
    try:
        return ConfigSource(ObkConfig.parse(sector, layout_chip, allow_legacy=allow_legacy), data, offset, chip,
                            rotation=rotation)
    except BkError as exc:
        if not create:
            raise
        why = str(exc)
    mac_bytes = bytes.fromhex(mac.replace(":", "")) if mac else None
    return ConfigSource(ObkConfig.new(mac_bytes, layout_chip), data, offset, chip, why, rotation)
