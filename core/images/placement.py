"""One file -> what to write where, for every frontend: `bkbench write` and `verify`, `station` and several
`--port`s, the workbench's firmware picker and multi-port view.

`load_firmware` reads a file with the one safe reader (FIFOs, devices and huge files refused before
opening), refuses a damaged library image and converts an OTA package (UG/RBL, what tuya-cloudcutter
ships: never for UART) to the UA image that belongs after the bootloader. `place` decides, for a chip,
the address and the bytes (images.recognize.plan_write); `compare_target` is what a verify of the file
compares: exactly what a write of it put on the chip (a UA image after the bootloader, not at 0).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..chips import DEFAULT_CHIP, FAMILIES
from ..errors import BkError, ImageError
from ..files import read_input_file
from ..layout import SECTOR
from .recognize import ImageInfo, WritePlan, check_compatible, plan_write, recognize, unrotate


@dataclass(frozen=True)
class Firmware:
    """A file as it will be written: `data` is the UART image (an OTA package already converted)."""

    name: str
    data: bytes
    info: ImageInfo
    note: str = ""  # how the file was converted, for the user
    converted_from: str = ""  # the OTA format it came from ("ug", "rbl"), or ""

    @property
    def is_dump(self) -> bool:
        return self.info.format == "dump"


def load_firmware(path: str | os.PathLike, what: str = "firmware file") -> Firmware:
    """Read and recognise the file at `path` (ImageError / BkError in one line before any chip is touched)."""
    from ..backups import BackupLibrary

    p = Path(path)
    data = read_input_file(p, what)
    BackupLibrary().verify_file(p)  # a library image that no longer matches its SHA-256 is refused
    return as_firmware(p.name, data)


def as_firmware(name: str, data: bytes) -> Firmware:
    """`data` recognised; an OTA package converted to its UA image (ImageError if it cannot be)."""
    info = recognize(data, name)
    if info.format not in ("rbl", "ug"):
        return Firmware(name, data, info)
    from .builders import build_from_ota

    try:
        ua = build_from_ota(data)["ua"]
    except BkError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged package is one line, not a traceback
        raise ImageError(f"{name}: cannot convert this OTA package to a UART image ({exc})") from None
    stem = Path(name).stem
    converted = recognize(ua, f"{stem}_UA.bin")
    if converted.chip is None and info.chip is not None:
        converted.chip, converted.chip_source = info.chip, f"{info.format.upper()} package"
    note = (f"{name}: {info.format.upper()} OTA package converted to a UA image "
            f"({len(ua) // 1024} KiB for after the bootloader; the chip's bootloader is kept)")
    return Firmware(f"{stem}_UA.bin", ua, converted, note, info.format)


def place(fw: Firmware, chip: str | None = None, flash_size: int | None = None, *, offset: int | None = None,
          replace_bootloader: bool = False) -> WritePlan:
    """Where `fw` goes on `chip` (None: before a chip is linked, placement only: every family puts an image
    after its bootloader), ImageError otherwise, with a hint naming what to do instead."""
    target = chip or fw.info.chip or DEFAULT_CHIP
    if flash_size is None:
        fam = FAMILIES.get(target)
        flash_size = max(fam.flash_sizes) if fam else max(f.default_flash for f in FAMILIES.values())
    try:
        if chip is not None:
            check_compatible(fw.info, chip)
        return plan_write(fw.info, fw.data, target, replace_bootloader=replace_bootloader, offset=offset,
                          flash_size=flash_size)
    except ImageError as exc:
        exc.hint = _hint(exc, fw, chip) or exc.hint
        raise


def compare_target(fw: Firmware, chip: str, flash_size: int, offset: int | None = None) -> tuple[int, bytes]:
    """(address, bytes) a verify of this file compares: where a write of it went. An `offset` given is taken
    as it is (the file's bytes from there); else a full dump is compared whole (in flash order), raw data
    from 0, an image (an OTA package as its UA image) where `place` puts it, with the rest of its last
    sector erased, as the write left it (the T bootloader's CRC cannot hash a ragged end: REALCODE.md B.2)."""
    if offset is not None:
        return offset, fw.data
    if fw.is_dump:
        return 0, unrotate(fw.data, fw.info.rotation)
    if fw.info.format == "raw":
        return 0, fw.data
    plan = place(fw, chip, flash_size)
    return plan.start, plan.payload + b"\xff" * (-len(plan.payload) % SECTOR)


def _hint(exc: ImageError, fw: Firmware, chip: str | None) -> str:
    info = fw.info
    if info.format == "dump" and chip and info.chip and info.chip != chip:
        return (f"this dump is of a {info.chip}: to restore this {chip}, use one of its own backups "
                f"(bkbench backups); for OpenBK use the {chip} build (bkbench fetch --chip {chip.lower()})")
    if info.format == "raw" and "offset" in exc.reason:
        return (f"add --start ADDRESS (the flash address to write it at), or check the file with "
                f"bkbench image {fw.name}")
    return ""
