"""What a firmware file is and where it goes, decided by content (PROTOCOL-DETAILS.md 8.2-8.4).

Formats: ``qio`` (stored bootloader + app, a release QIO or a BL+APP dump), ``ua`` (stored app that
belongs at 0x11000), ``rbl`` / ``ug`` (OTA packages: never for UART), ``dump`` (a full flash image:
a restore), ``raw`` (anything else; only written at an offset the user gives).

The chip family comes from the bootloader CRC (table in core/chips.py), the OpenBK version banner in
the decrypted app (``OpenBK7231N 1.18.219 Nov 25 2025 ...``), the RF/TLV sector position of a dump,
or the exact release sizes. The file name only breaks ties.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Any

from ..analysis.beken_code import PHYS_BLOCK, crc16_bad_blocks, decrypt_physical
from ..chips import BOOTLOADERS, SUPPORTED_CHIPS
from ..errors import ImageError
from ..layout import BOOTLOADER_END, FLASH_2M, RF_OFFSET, SECTOR, layout_for
from . import rbl as rblmod

UA_SIGNATURE = bytes.fromhex("2F07B59435FF2A9B")  # OpenBK app start encrypted for 0x10000 (both chips)
PLAIN_APP_SIGNATURE = bytes.fromhex("0E0000EA14F09FE5")  # ARM vectors of an unencrypted OpenBK app
N_QIO_SIZE = 1_220_464  # bootloader + 0x108700-byte app container, the N release QIO
T_QIO_SIZE = 0x100000  # OpenBK T QIO
DUMP_SIZES = (FLASH_2M, 0x400000)
MAX_IMAGE_SIZE = 0x400000
_CHECK_BLOCKS = 8  # CRC16 blocks checked to call a region "stored code"

_BANNER = re.compile(
    rb"OpenBK(7231[NTUM]|72[0-9]{2}[A-Z]?) ([0-9][0-9A-Za-z._+-]{0,40}) [A-Z][a-z]{2} [ 0-9][0-9] [0-9]{4}"
)
_BANNER_LOOSE = re.compile(rb"OpenBK(7231[NT]) ([0-9]+\.[0-9]+\.[0-9]+[0-9A-Za-z._+-]{0,30})\x00")

FORMATS = ("qio", "ua", "rbl", "ug", "dump", "raw")


@dataclass
class ImageInfo:
    format: str
    chip: str | None = None
    version: str | None = None
    write_offset: int | None = None  # flash address of the first written byte (None: not writable as is)
    skip: int = 0  # bytes of the file skipped before writing
    length: int = 0  # file bytes after `skip` (what a write would put at write_offset)
    size: int = 0  # file size
    description: str = ""
    warnings: list[str] = field(default_factory=list)
    chip_source: str | None = None  # bootloader, banner, size, rf-sector, name
    bootloader: str | None = None  # bootloader name from the CRC table
    rotation: int = 0  # dumps read from `rotation` with wrap-around (the file starts at that address)

    @property
    def writable(self) -> bool:
        return self.write_offset is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "chip": self.chip,
            "version": self.version,
            "write_offset": self.write_offset,
            "skip": self.skip,
            "length": self.length,
            "size": self.size,
            "description": self.description,
            "warnings": list(self.warnings),
            "chip_source": self.chip_source,
            "bootloader": self.bootloader,
            "rotation": self.rotation,
        }

    def summary(self) -> str:
        """One human line: what it is and where it goes."""
        where = (
            f"written at 0x{self.write_offset:06X} (skipping 0x{self.skip:X} bytes, 0x{self.length:X} bytes)"
            if self.write_offset is not None
            else "not writable over UART as is"
        )
        return f"{self.description}; {where}"


@dataclass(frozen=True)
class WritePlan:
    start: int
    payload: bytes
    description: str
    includes_bootloader: bool = False

    @property
    def end(self) -> int:
        return self.start + len(self.payload)


# --- helpers ---------------------------------------------------------------------------------


def _code_ok(data: bytes, blocks: int = _CHECK_BLOCKS) -> bool:
    """The first `blocks` 34-byte blocks carry valid CRC16s (and are not all erased)."""
    chunk = data[: blocks * PHYS_BLOCK]
    if len(chunk) < blocks * PHYS_BLOCK or chunk.count(0xFF) == len(chunk):
        return False
    return not crc16_bad_blocks(chunk)


def _bootloader_at(data: bytes, pos: int = 0):
    """Table entry of the bootloader stored at `pos` (CRC over 256 or 257 bytes), or None."""
    head = data[pos : pos + 257]
    if len(head) < 257:
        return None
    for crc in (zlib.crc32(head), zlib.crc32(head[:256])):
        entry = BOOTLOADERS.get(crc)
        if entry is not None:
            return entry
    return None


def _starts_with_bootloader(data: bytes) -> bool:
    """Stored code at 0 that is not an app for 0x10000: a (possibly unknown) bootloader."""
    return _bootloader_at(data) is not None or (_code_ok(data) and not _is_encrypted_app(data))


def _is_encrypted_app(data: bytes) -> bool:
    """Stored app code for logical 0x10000: valid CRC16s and ARM vectors after decryption."""
    if data[:8] == UA_SIGNATURE:
        return _code_ok(data, 2)
    if not _code_ok(data, 2):
        return False
    plain = decrypt_physical(data[:PHYS_BLOCK], BOOTLOADER_END)
    return plain[3] == 0xEA and plain[4:8] == PLAIN_APP_SIGNATURE[4:8]


def find_banner(plain: bytes) -> tuple[str, str] | None:
    """(chip, version) from an OpenBK version banner in plain app bytes."""
    m = _BANNER.search(plain) or _BANNER_LOOSE.search(plain)
    if not m:
        return None
    return "BK" + m.group(1).decode(), m.group(2).decode("ascii", "replace")


def _banner_of_stored_app(stored: bytes) -> tuple[str, str] | None:
    """Decrypt stored code that starts at flash 0x11000 and look for the banner."""
    stored = stored[: len(stored) - len(stored) % PHYS_BLOCK]
    if not stored:
        return None
    return find_banner(decrypt_physical(stored, BOOTLOADER_END))


def _chip_from_name(name: str) -> str | None:
    low = name.lower()
    hits = [c for c in SUPPORTED_CHIPS if c.lower() in low or f"openbk{c[2:].lower()}" in low]
    return hits[0] if len(hits) == 1 else None


def _version_from_name(name: str) -> str | None:
    m = re.search(r"(\d+\.\d+\.\d+)", name)
    return m.group(1) if m else None


def _chip_from_rf(data: bytes) -> str | None:
    hits = [chip for chip, off in RF_OFFSET.items() if data[off : off + 4] == b"TLV\x00"]
    return hits[0] if len(hits) == 1 else None


def _app_limit(chip: str | None) -> int:
    """End of the app partition (N stops at 0x12A000, T at 0x132000)."""
    for part in layout_for(chip or "BK7231N"):
        if part.kind == "app":
            return part.end
    return 0x12A000


def _set_chip(info: ImageInfo, banner: tuple[str, str] | None, chip: str | None, source: str | None) -> None:
    """Combine the chip seen in the bootloader/size with the one in the banner; flag conflicts."""
    if banner is not None:
        bchip, version = banner
        info.version = version
        if chip is not None and bchip != chip:
            info.warnings.append(
                f"the app says it is built for {bchip} but the {source} says {chip}: chip unknown"
            )
            info.chip, info.chip_source = None, None
            return
        if chip is None:
            chip, source = bchip, "banner"
    info.chip, info.chip_source = chip, source


# --- recognisers -----------------------------------------------------------------------------


def _recognize_ota(data: bytes, info: ImageInfo) -> ImageInfo:
    info.format = "ug" if rblmod.is_ug(data) else "rbl"
    kind = "Tuya UG OTA package" if info.format == "ug" else "RBL OTA package"
    note = "OTA packages are for over-the-air updates (web UI or cloud), never for UART flashing"
    try:
        pkg = rblmod.parse_ota(data)
        app = rblmod.unpack_ota(pkg)
    except ImageError as exc:
        info.description = f"{kind} (damaged)"
        info.warnings += [str(exc), note]
        return info
    info.warnings += pkg.warnings
    _set_chip(info, find_banner(app), None, None)
    if info.version is None and pkg.version:
        info.version = pkg.version
    info.description = f"{kind}, {pkg.rbl.algorithm_text}, app of {len(app)} bytes"
    info.warnings.append(note)
    return info


def _find_rotated_bootloader(data: bytes):
    """(rotation, entry) when a full dump was read starting at some sector with wrap-around."""
    size = len(data)
    for pos in range(SECTOR, size, SECTOR):
        entry = _bootloader_at(data, pos)
        if entry is not None:
            return (size - pos) % size, entry
    return None


def unrotate(data: bytes, rotation: int) -> bytes:
    """A dump read from address `rotation` with wrap-around, put back in flash order."""
    if not rotation:
        return bytes(data)
    cut = len(data) - rotation
    return bytes(data[cut:]) + bytes(data[:cut])


def _recognize_dump(data: bytes, info: ImageInfo) -> ImageInfo | None:
    entry = _bootloader_at(data, 0)
    rotation = 0
    if entry is None:
        found = _find_rotated_bootloader(data)
        if found is not None:
            rotation, entry = found
    flash = unrotate(data, rotation) if rotation else data
    has_boot = entry is not None or _code_ok(flash)
    app_ok = _code_ok(flash[BOOTLOADER_END:], 2)
    rf_chip = _chip_from_rf(flash)
    if not (has_boot or app_ok or rf_chip):
        return None
    info.format = "dump"
    info.rotation = rotation
    chip, source = None, None
    if entry is not None:
        info.bootloader = entry.name
        chip, source = entry.chip, "bootloader"
    elif rf_chip:
        chip, source = rf_chip, "rf-sector"
    if app_ok:
        banner = _banner_of_stored_app(flash[BOOTLOADER_END : _app_limit(chip or rf_chip)])
        _set_chip(info, banner, chip, source)
    else:
        info.chip, info.chip_source = chip, source
    if info.chip is not None and info.chip not in SUPPORTED_CHIPS:
        info.warnings.append(f"{info.chip} is not a supported chip")
    if entry is None:
        info.warnings.append("bootloader not in the known table (or missing)")
    if rotation:
        info.warnings.append(
            f"rotated dump: read starting at 0x{rotation:X} with wrap-around; "
            "it is put back in order before use"
        )
    if rf_chip is None:
        info.warnings.append("no RF calibration (TLV) sector where expected")
    info.write_offset, info.skip, info.length = BOOTLOADER_END, BOOTLOADER_END, len(data) - BOOTLOADER_END
    what = f"full {len(data) // 0x100000} MiB flash dump"
    info.description = (
        f"{what} ({info.chip or 'unknown chip'}{', bootloader ' + entry.name if entry else ''}): a restore; "
        "the bootloader is only written when explicitly requested"
    )
    return info


def _recognize_qio(data: bytes, info: ImageInfo) -> ImageInfo | None:
    if len(data) <= BOOTLOADER_END or not _is_encrypted_app(data[BOOTLOADER_END:]):
        return None
    entry = _bootloader_at(data, 0)
    if entry is None and not _code_ok(data):
        return None
    info.format = "qio"
    chip, source = None, None
    if entry is not None:
        info.bootloader = entry.name
        chip, source = entry.chip, "bootloader"
    elif len(data) == N_QIO_SIZE:
        chip, source = "BK7231N", "size"
    elif len(data) == T_QIO_SIZE:
        chip, source = "BK7231T", "size"
    else:
        info.warnings.append("bootloader not in the known table")
    _set_chip(info, _banner_of_stored_app(data[BOOTLOADER_END : _app_limit(chip)]), chip, source)
    info.write_offset, info.skip = BOOTLOADER_END, BOOTLOADER_END
    info.length = len(data) - BOOTLOADER_END
    info.description = (
        f"QIO image (bootloader + app) for {info.chip or 'an unknown chip'}"
        f"{' OpenBK ' + info.version if info.version else ''}"
    )
    return info


def _recognize_ua(data: bytes, info: ImageInfo) -> ImageInfo | None:
    if not _is_encrypted_app(data):
        return None
    info.format = "ua"
    _set_chip(info, _banner_of_stored_app(data[:0x121000]), None, None)
    info.write_offset, info.skip, info.length = BOOTLOADER_END, 0, len(data)
    obk = f" OpenBK {info.version}" if info.version else ""
    info.description = f"UA app image for {info.chip or 'an unknown chip'}{obk}"
    if info.chip is None:
        info.warnings.append("no OpenBK version banner found: the chip family cannot be checked")
    return info


def recognize(data: bytes, name: str = "") -> ImageInfo:
    """Say what `data` is and where it would be written. Raises only ImageError."""
    try:
        return _recognize(bytes(data), name)
    except ImageError:
        raise
    except Exception as exc:  # a malformed file must never crash the caller with something else
        raise ImageError(f"Cannot analyse this file: {exc}.") from exc


def _recognize(data: bytes, name: str) -> ImageInfo:
    info = ImageInfo(format="raw", size=len(data), length=len(data))
    if not data:
        info.description = "empty file"
        info.warnings.append("the file is empty")
        return info
    if len(data) > MAX_IMAGE_SIZE:
        info.description = f"{len(data)} bytes: larger than any BK7231 flash"
        info.warnings.append("too large to be a BK7231 image")
        return info
    result: ImageInfo | None
    if rblmod.is_ug(data) or rblmod.is_rbl(data):
        result = _recognize_ota(data, info)
    elif len(data) in DUMP_SIZES:
        result = _recognize_dump(data, info)
    elif len(data) > BOOTLOADER_END and _starts_with_bootloader(data):
        result = _recognize_qio(data, info)
    else:
        result = _recognize_ua(data, info)
    if result is None:
        result = _recognize_raw(data, info)
    if result.chip is None and name:
        guess = _chip_from_name(name)
        if guess and result.format in ("qio", "ua", "dump"):
            result.chip, result.chip_source = guess, "name"
            result.warnings.append(f"chip {guess} taken from the file name only")
    if result.version is None and name and result.format != "raw":
        result.version = _version_from_name(name)
    return result


def _recognize_raw(data: bytes, info: ImageInfo) -> ImageInfo:
    info.format = "raw"
    info.write_offset, info.skip, info.length = None, 0, len(data)
    if data[:8] == PLAIN_APP_SIGNATURE:
        banner = find_banner(data)
        if banner:
            info.chip, info.version = banner
            info.chip_source = "banner"
        info.description = "plain (unencrypted) app binary"
        info.warnings.append("a plain app must be encrypted and CRC-packed (UA) before it can be flashed")
    elif data.count(0xFF) == len(data):
        info.description = "all 0xFF (erased flash)"
    else:
        info.description = f"unrecognised data, {len(data)} bytes"
    info.warnings.append("raw data is only written at an offset you give explicitly")
    return info


# --- compatibility and planning ------------------------------------------------------------


def _norm_chip(chip: str) -> str:
    chip = chip.upper()
    return chip if chip.startswith("BK") else "BK" + chip


def check_compatible(info: ImageInfo, chip: str) -> None:
    """Raise ImageError when the image is known to be for another chip family than `chip`."""
    chip = _norm_chip(chip)
    if info.chip is not None and info.chip != chip:
        what = {"qio": "QIO image", "ua": "UA app", "dump": "flash dump", "rbl": "OTA file", "ug": "OTA file"}
        raise ImageError(
            f"This {what.get(info.format, 'image')} is for {info.chip} (from its {info.chip_source}) "
            f"but the chip is {chip}: writing it would leave the device unbootable.",
            hint=f"Use the {chip} build of OpenBK (bkbench fetch --chip {chip.lower()}).",
        )


def plan_write(
    info: ImageInfo,
    data: bytes,
    chip: str,
    replace_bootloader: bool = False,
    offset: int | None = None,
    flash_size: int = FLASH_2M,
) -> WritePlan:
    """The bytes to put at which flash address for `data` (recognised as `info`) on `chip`.

    Never below 0x11000 unless `replace_bootloader`; OTA packages are refused; raw data needs
    an explicit `offset`. The chip family must match (check_compatible).
    """
    chip = _norm_chip(chip)
    if info.format in ("rbl", "ug"):
        raise ImageError(
            "This is an OTA package (RBL/UG): it is for over-the-air updates and must never be flashed "
            "over UART. Use the QIO (BK7231N) or UA (BK7231T) release file instead."
        )
    check_compatible(info, chip)
    if len(data) != info.size:
        raise ImageError("The data does not match the recognised file (size differs).")
    includes_boot = False
    if info.format == "dump":
        flash = unrotate(data, info.rotation)
        if len(flash) > flash_size:
            raise ImageError(f"The dump is {len(flash)} bytes but the flash has only {flash_size}.")
        if info.chip is None and replace_bootloader:
            raise ImageError("The dump's chip is unknown: its bootloader will not be restored.")
        start = 0 if replace_bootloader else BOOTLOADER_END
        payload = flash[start:]
        includes_boot = replace_bootloader
        desc = f"restore of a full dump from 0x{start:06X}"
    elif info.format == "qio":
        start = 0 if replace_bootloader else BOOTLOADER_END
        payload = data[start:]
        includes_boot = replace_bootloader
        desc = "QIO image, " + ("bootloader included" if replace_bootloader else "app part (bootloader kept)")
    elif info.format == "ua":
        start, payload = BOOTLOADER_END, bytes(data)
        desc = "UA app"
    else:
        if offset is None:
            raise ImageError("This file is not a recognised image: give the flash offset to write it at.")
        start, payload, desc = offset, bytes(data), f"raw data at 0x{offset:06X}"
    if offset is not None and info.format != "raw" and offset != start:
        raise ImageError(
            f"A {info.format} image goes to 0x{start:06X}; refusing the custom offset 0x{offset:06X}."
        )
    if start < BOOTLOADER_END and not replace_bootloader:
        raise ImageError("This write would overwrite the bootloader (below 0x11000) and was not requested.")
    if start % SECTOR:
        raise ImageError(f"Write start 0x{start:X} is not on a 4 KiB sector boundary.")
    end = start + len(payload)
    if end > flash_size:
        raise ImageError(f"The image ends at 0x{end:X}, past the end of the 0x{flash_size:X}-byte flash.")
    if info.format in ("qio", "ua") and end > _app_limit(chip):
        raise ImageError(
            f"The app image ends at 0x{end:X}, past the {chip} app partition (ends 0x{_app_limit(chip):X})."
        )
    return WritePlan(start=start, payload=payload, description=desc, includes_bootloader=includes_boot)
