"""The OpenBK config in a file: one loader for `bkbench config show|set|write` and the workbench's config
editor (a file from the picker, or the sector `e` reads from the chip).

A file is either the 4 KiB config sector itself or a full dump (rotated dumps are put in flash order),
whose chip (core/images/recognize.py: bootloader, banner, RF sector) says where OpenBK keeps the sector.
"""

from __future__ import annotations

from dataclasses import dataclass

from .analysis.obk_config import ObkConfig
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


def is_sector_file(data: bytes) -> bool:
    """A config sector on its own (not a dump holding one)."""
    return len(data) <= 2 * SECTOR or data[:3] == b"CFG"


def load_config(data: bytes, chip: str | None = None, *, create: bool = False, fallback_chip: str | None = None,
                mac: str | None = None) -> ConfigSource:
    """The OpenBK config of `data`. `chip` names a dump's chip (else the dump says, else `fallback_chip`).
    With `create`, a sector that holds no OpenBK config (stock firmware), or a damaged one, gives a new
    config with OpenBK's defaults and the device's MAC (`mac`, or the dump's RF sector), and says why;
    without it that is a one-line BkError."""
    if not data:
        raise BkError("the file is empty")
    if is_sector_file(data):
        return _from_sector(data, None, data, chip, create, mac)
    from .images.recognize import recognize, unrotate

    info = recognize(data, "config")
    dump = info.format == "dump"
    flash = unrotate(data, info.rotation) if dump and info.rotation else data
    chip = chip or (info.chip or fallback_chip if dump else None)
    if chip not in OBK_CONFIG_OFFSET:
        what = ("its chip is not recognised" if dump else f"it is not a recognised dump ({info.description})")
        raise ChipUnknown(f"cannot tell where this file keeps OpenBK's config: {what}"
                          + (f"; OpenBK's config location on {chip} is not known" if chip else
                             "; name the chip of a dump with --chip (e.g. --chip BK7231N)"))
    off = OBK_CONFIG_OFFSET[chip]
    if mac is None and chip in RF_OFFSET:
        from .analysis.dump import parse_tlv_mac

        mac = parse_tlv_mac(flash[RF_OFFSET[chip]: RF_OFFSET[chip] + SECTOR])
    return _from_sector(flash[off: off + SECTOR], off, flash, chip, create, mac)


def _from_sector(sector: bytes, offset: int | None, data: bytes, chip: str | None, create: bool,
                 mac: str | None) -> ConfigSource:
    try:
        return ConfigSource(ObkConfig.parse(sector), data, offset, chip)
    except BkError as exc:
        if not create:
            raise
        why = str(exc)
    mac_bytes = bytes.fromhex(mac.replace(":", "")) if mac else None
    return ConfigSource(ObkConfig.new(mac_bytes), data, offset, chip, why)
