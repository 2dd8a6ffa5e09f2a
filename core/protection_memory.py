"""The flash protection a chip had before bkbench first touched it, kept on disk until it is put back.

Why: the status register (SR) is non-volatile. A write, restore or config write clears its protect bits
first and puts the value it found back at the end; a run killed in between (SIGKILL, SIGHUP, the Pi losing
power) leaves the chip at 0x0000, and the chip itself no longer says what it was. A re-run that takes
0x0000 as "found" would leave the flash unprotected for good (issue 20 item 3: a stock 0x4004 lost).

How:
- The record (what was found, what bkbench left) is written atomically, fsynced, 0600 in DATA_DIR/protection,
  *before* the first SR write: there is no moment at which the chip is unprotected and the record missing.
  It is removed once the found value is read back from the chip.
- A record counts only while the chip still holds what bkbench left (`left`). Any other value means
  something else set the SR since (the firmware at boot protects its flash again, another tool): that
  value is what is found now, and the record is replaced.
- Keyed by the chip's identity: family, flash JEDEC ID and MAC. A chip whose MAC could not be read this
  time falls back to a record of the same family and flash; two MAC-less modules of one kind share a
  record, so one of them could get the other's (stock) protection: more protection, never less.
- The folder cannot be written or a record cannot be read: one warning line, and a chip found unprotected
  is protected with its flash's stock value at the end (an interrupted earlier run could not be ruled out).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from .backups import atomic_write
from .flash_ids import FlashPart
from .ops.events import EventSink, Notice, null_sink
from .paths import data_dir

FOLDER = "protection"


def stock_sr(part: FlashPart | None) -> int:
    """The protection a stock module's flash is found with: BP0 + CMP (0x4004, all but the top 64 KiB,
    PROTOCOL-DETAILS.md 5.1) where the part has CMP, else BP0-BP2 (the whole flash, the "protect" pattern)."""
    if part is None:
        return 0x4004
    if part.sr_bytes >= 2 and part.protect_mask & 0x4000:
        return 0x4004
    return 0x001C & part.protect_mask


def _key(chip: str, flash_id: str, mac: str | None = None, prefix: bool = False) -> str:
    tail = "" if prefix else (mac or "nomac").replace(":", "")
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{chip}-{flash_id}-{tail}")


class ProtectionMemory:
    """One chip's record. `found` decides what to put back; `remember` before the first SR write; `forget`
    once it is back. Failures of the folder never stop an operation: they are said in one line."""

    def __init__(self, chip: str, flash_id: tuple[int, int, int] | None, mac: str | None,
                 sink: EventSink = null_sink, folder: Path | None = None) -> None:
        self.chip, self.mac, self.sink = chip, mac, sink
        self.flash_id = "".join(f"{b:02X}" for b in flash_id) if flash_id else "unknown"
        self.folder = folder or data_dir() / FOLDER
        self.path = self.folder / (_key(chip, self.flash_id, mac) + ".json")
        self._written: tuple[int, int] | None = None
        self._warned = False

    @classmethod
    def for_chip(cls, info, sink: EventSink = null_sink) -> ProtectionMemory:
        """From a ChipInfo (core.client)."""
        return cls(info.chip, info.flash_id, info.mac, sink)

    # ------------------------------------------------------------------ decisions
    def found(self, sr: int, mask: int, part: FlashPart | None) -> int:
        """The SR to put back at the end, given `sr` as read now (before any SR write of this run)."""
        unprotected = sr & mask == 0
        record, problem = self._load()
        if record is not None and (sr ^ record["left"]) & ~0x0003 == 0 and record["found"] & mask:
            self.path = record["_path"]
            self.sink(Notice("warning", f"this chip's flash protection was left off (SR 0x{sr:04X}) by an "
                                        f"interrupted bkbench run ({record.get('time', '?')}); the protection "
                                        f"found before it, SR 0x{record['found']:04X}, is put back at the end"))
            return record["found"]
        if problem is None and unprotected and not self._writable():
            problem = f"{self.folder} is not writable"
        if problem is not None and unprotected:
            value = stock_sr(part)
            self._warn(f"cannot tell whether an interrupted run left this flash unprotected ({problem}): it "
                       f"is protected with the stock SR 0x{value:04X} at the end")
            return value
        return sr

    def remember(self, found: int, left: int) -> None:
        """Before the first SR write: what to put back (`found`) and what bkbench leaves (`left`)."""
        want = (found & ~0x0003, left & ~0x0003)
        if self._written == want:
            return
        record = {"chip": self.chip, "flash_id": self.flash_id, "mac": self.mac, "found": want[0],
                  "left": want[1], "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "pid": os.getpid()}
        try:
            _private(self.folder)
            atomic_write(self.path, json.dumps(record, indent=1).encode(), mode=0o600, overwrite=True)
        except OSError as exc:
            self._warn(f"cannot remember the flash protection (SR 0x{want[0]:04X}) in {self.folder} "
                       f"({exc.strerror or exc}): if this run is interrupted, a re-run protects the flash "
                       "with its stock value")
            return
        self._written = want

    def forget(self) -> None:
        """The found protection is on the chip again: the record has done its job."""
        self._written = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            self._warn(f"cannot remove {self.path} ({exc.strerror or exc}); it is ignored once the chip's "
                       "protection differs from what it records")

    # ------------------------------------------------------------------ storage
    def _load(self) -> tuple[dict | None, str | None]:
        """(record, None), (None, None) when there is none, (None, why) when the folder or record is unreadable."""
        paths = [self.path]
        if self.mac:
            paths.append(self.folder / (_key(self.chip, self.flash_id, None) + ".json"))
        else:
            try:
                prefix = _key(self.chip, self.flash_id, prefix=True)
                paths += sorted((p for p in self.folder.glob(prefix + "*.json") if p != self.path),
                                key=lambda p: p.stat().st_mtime, reverse=True)
            except OSError as exc:
                return None, f"{self.folder}: {exc.strerror or exc}"
        for path in paths:
            try:
                record = json.loads(path.read_text())
            except FileNotFoundError:
                continue
            except OSError as exc:
                return None, f"{path}: {exc.strerror or exc}"
            except (ValueError, UnicodeDecodeError):
                return None, f"{path} is damaged"
            if not (isinstance(record, dict) and all(isinstance(record.get(k), int) for k in ("found", "left"))):
                return None, f"{path} is damaged"
            record["_path"] = path
            return record, None
        if self.folder.exists() and not os.access(self.folder, os.R_OK | os.X_OK):
            return None, f"{self.folder} is not readable"
        return None, None

    def _writable(self) -> bool:
        for folder in (self.folder, *self.folder.parents):
            if folder.exists():
                return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK) and _fs_writable(folder)
        return False

    def _warn(self, text: str) -> None:
        if not self._warned:
            self._warned = True
            self.sink(Notice("warning", text))


def _fs_writable(folder: Path) -> bool:
    try:
        return not os.statvfs(folder).f_flag & os.ST_RDONLY
    except OSError:
        return False


def _private(folder: Path) -> None:
    """DATA_DIR/protection is bkbench's own: created 0700 (parents too, only those it creates)."""
    if folder.is_dir():
        return
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for p in reversed(missing):
        p.mkdir(mode=0o700, exist_ok=True)
        os.chmod(p, 0o700)
