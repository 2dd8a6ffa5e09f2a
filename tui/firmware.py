"""What a firmware file means for the connected chip (no Textual here: the picker screen shows it).

`assess()` reads a file with the engine's one safe reader and places it with the engine's one "file ->
what to write where" (core/images/placement.py, the same as `bkbench write` and `station`): an OTA package
(UG/RBL, the files tuya-cloudcutter ships) becomes the UA image that belongs after the bootloader, a full
dump is a restore. `RecentFiles` remembers the last files picked (a small JSON in the data dir).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bkbench.core.chips import MAX_FLASH
from bkbench.core.errors import BkError
from bkbench.core.images.placement import Firmware, as_firmware, place
from bkbench.core.images.recognize import WritePlan, recognize, unrotate
from bkbench.core.layout import layout_for

MAX_FILE = MAX_FLASH  # nothing bigger fits in a Beken flash
FIRMWARE_SUFFIXES = (".bin", ".rbl", ".img", ".ug", ".ota")


@dataclass
class WriteRequest:
    """A picked file, placed for the chip: what the Write key hands to the engine."""

    path: Path
    firmware: Firmware
    plan: WritePlan
    warnings: list[str] = field(default_factory=list)

    @property
    def start(self) -> int:
        return self.plan.start

    @property
    def end(self) -> int:
        return self.plan.end

    @property
    def payload(self) -> bytes:
        return self.plan.payload

    @property
    def description(self) -> str:
        return self.plan.description + (" (converted from the OTA package)" if self.firmware.converted_from else "")

    @property
    def includes_bootloader(self) -> bool:
        return self.plan.includes_bootloader

    @property
    def flash(self) -> bytes:
        """A picked full dump in flash order (what a restore writes)."""
        return unrotate(self.firmware.data, self.firmware.info.rotation)


@dataclass
class Verdict:
    """One file judged for one chip: a short tag for the tree, lines for the detail pane, the write."""

    path: Path
    tag: str  # "QIO BK7231N 1.18.219", "UG → UA", "dump BK7231T", "raw", ...
    writable: bool
    lines: list[str]
    request: WriteRequest | None = None
    converted: str = ""  # what was done to turn the file into a UART image
    needs_offset: bool = False  # raw data: writable once the user gives an offset


def partitions_touched(chip: str, start: int, end: int) -> list[str]:
    return [p.name for p in layout_for(chip) if p.start < end and start < p.end]


def _where(req: WriteRequest, chip: str) -> list[str]:
    parts = ", ".join(partitions_touched(chip, req.start, req.end))
    return [f"→ {req.description}: 0x{req.start:06X}..0x{req.end:06X} ({len(req.payload) // 1024} KiB) on {chip}",
            f"  partitions: {parts}"]


def assess(path: Path, chip: str, flash_size: int, offset: int | None = None, replace_bootloader: bool = False,
           convert: bool = True) -> Verdict:
    """Judge `path` for `chip`. With `convert`, an OTA package is turned into a UA image (takes seconds)."""
    from bkbench.core.files import read_input_file

    try:
        data = read_input_file(path, "firmware file")
    except BkError as exc:
        too_big = path.is_file() and path.stat().st_size > MAX_FILE
        return Verdict(path, "too big" if too_big else "unreadable", False, [str(exc)])
    lines = [f"{path.name}: {len(data)} bytes (0x{len(data):X})"]
    try:
        info = recognize(data, path.name)
    except Exception as exc:  # a damaged file must not break the picker
        return Verdict(path, "unknown", False, lines + [f"Not recognised: {exc}"])
    ident = " ".join(x for x in (info.chip, info.version) if x)
    lines.append(f"what: {info.description}" + (f" ({ident})" if ident and ident not in info.description else ""))
    if info.chip and info.chip_source:
        lines.append(f"chip: {info.chip} (from its {info.chip_source})")
    lines.extend(f"note: {w}" for w in info.warnings if "never for UART" not in w)
    converted = ""
    if info.format in ("rbl", "ug"):
        tag = ota_tag = f"{info.format.upper()} {ident}".strip()
        if info.chip and info.chip != chip:
            lines.append(f"Cannot write: this OTA package is for {info.chip}, the chip is {chip}.")
            return Verdict(path, tag, False, lines)
        if not convert:
            lines.append("OTA package: converted to a UART image when picked.")
            return Verdict(path, tag + " → UA", True, lines)
        tag += " → UA"
    else:
        ota_tag = ""
        tag = {"qio": "QIO", "ua": "UA", "dump": "dump", "raw": "raw"}.get(info.format, info.format)
        tag = f"{tag} {ident}".strip()
    try:
        fw = as_firmware(path.name, data)
    except BkError as exc:
        lines.append(f"Cannot convert this OTA package: {exc}")
        return Verdict(path, tag, False, lines)
    if fw.converted_from:
        where = f"0x{fw.info.write_offset or 0:X}"
        converted = (f"converted: {ota_tag} package unpacked, its app re-encrypted as a UA image for {where} "
                     f"({len(fw.data) // 1024} KiB); the chip's bootloader is kept")
        lines.append(converted)
    if fw.info.format == "raw" and offset is None:
        lines.append("Not a recognised image: give the flash offset to write it at (raw data).")
        return Verdict(path, tag, False, lines, needs_offset=True)
    try:
        plan = place(fw, chip, flash_size, offset=offset, replace_bootloader=replace_bootloader)
    except BkError as exc:  # ImageError: say why, refuse
        hint = exc.hint.replace(f"(bkbench fetch --chip {chip.lower()})", "(f in this picker fetches it)")
        lines.append(f"Cannot write: {exc}" + (f" {hint}" if hint else ""))
        return Verdict(path, tag, False, lines, converted=converted)
    req = WriteRequest(path, fw, plan, [w for w in fw.info.warnings if "never for UART" not in w])
    return Verdict(path, tag, True, lines + _where(req, chip), req, converted)


def is_candidate(path: Path) -> bool:
    """Worth recognising in a directory listing (firmware-like name, not larger than a flash)."""
    try:
        return path.is_file() and path.suffix.lower() in FIRMWARE_SUFFIXES and path.stat().st_size <= MAX_FILE
    except OSError:
        return False


class RecentFiles:
    """The last firmware files picked, newest first (kept in <data dir>/recent-firmware.json)."""

    def __init__(self, path: Path, limit: int = 8) -> None:
        self.path = path
        self.limit = limit

    def list(self) -> list[Path]:
        try:
            names = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return []
        out = [Path(n) for n in names if isinstance(n, str)]
        return [p for p in out if p.is_file()][: self.limit]

    def add(self, path: Path) -> None:
        path = path.expanduser().resolve()
        items = [path] + [p for p in self.list() if p != path]
        blob = json.dumps([str(p) for p in items[: self.limit]], indent=1)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".recent-")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(blob)
            os.replace(tmp, self.path)
        except OSError:
            pass  # a read-only data dir only costs the recent list
