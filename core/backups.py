"""Backup library: full dumps with a JSON sidecar, written atomically, never overwritten.

Dumps hold Wi-Fi passwords and Tuya keys, so files are 0600 and the directory 0700.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import __version__
from .paths import data_dir


def atomic_write(path: Path, data: bytes, mode: int = 0o600, overwrite: bool = False) -> Path:
    """Write to a temporary file in the same directory, fsync, then link/rename into place.

    Without `overwrite` an existing file is never replaced (os.link fails instead), so a crash or a
    race leaves either the old state or the complete new file, never a partial one under the name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            os.unlink(tmp)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


@dataclass
class BackupEntry:
    path: Path
    meta: dict

    @property
    def sidecar(self) -> Path:
        return self.path.with_suffix(".json")

    @property
    def name(self) -> str:
        return self.path.name


class BackupLibrary:
    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root else data_dir() / "backups"

    def _ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    def save(self, data: bytes, meta: dict) -> BackupEntry:
        self._ensure()
        now = datetime.now(timezone.utc).astimezone()
        ident = (meta.get("mac") or meta.get("flash_id") or "unknown").replace(":", "")
        chip = meta.get("chip") or "chip"
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{chip}-{ident}-{now.strftime('%Y%m%dT%H%M%S')}")
        full = dict(meta)
        full.update({
            "time": now.isoformat(timespec="seconds"),
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "crc32": f"0x{zlib.crc32(data):08X}",
            "tool_version": f"bkbench {__version__}",
        })
        for n in range(1000):
            path = self.root / (stem + (f"-{n}" if n else "") + ".bin")
            try:
                atomic_write(path, data)
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(f"could not find a free backup name for {stem}")
        full["file"] = path.name
        atomic_write(path.with_suffix(".json"), json.dumps(full, indent=2).encode(), overwrite=True)
        return BackupEntry(path, full)

    def list(self) -> list[BackupEntry]:
        if not self.root.is_dir():
            return []
        out = []
        for side in self.root.glob("*.json"):
            bin_path = side.with_suffix(".bin")
            if not bin_path.is_file():
                continue
            try:
                meta = json.loads(side.read_text())
            except (OSError, ValueError):
                continue
            out.append(BackupEntry(bin_path, meta))
        # ISO times have one-second resolution: the file's mtime breaks ties between same-second backups.
        out.sort(key=lambda e: (e.meta.get("time", ""), e.path.stat().st_mtime_ns), reverse=True)
        return out

    def load(self, entry: BackupEntry, check: bool = True) -> bytes:
        data = entry.path.read_bytes()
        if check and entry.meta.get("sha256") and hashlib.sha256(data).hexdigest() != entry.meta["sha256"]:
            raise ValueError(f"{entry.path}: contents do not match the SHA-256 in its sidecar")
        return data

    def find_for(self, chip: str, mac: str | None = None, flash_id: str | None = None) -> list[BackupEntry]:
        """Full backups of this very chip (matched by MAC, else flash ID and chip type)."""
        out = []
        for e in self.list():
            m = e.meta
            if m.get("chip") != chip or m.get("partial"):
                continue
            if mac and m.get("mac"):
                if m["mac"].lower() == mac.lower():
                    out.append(e)
            elif flash_id and m.get("flash_id") == flash_id:
                out.append(e)
        return out
