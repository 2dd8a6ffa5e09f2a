"""Backup library: full dumps with a JSON sidecar, written atomically, never overwritten.

Dumps hold Wi-Fi passwords and Tuya keys, so the directory is 0700 and files are 0400 once saved: an
image is never opened for writing again, and its SHA-256 (in the sidecar) is checked on every use.
The sidecar is linked into place first and the image second, so a listed image always has its sidecar;
a crash in between leaves an orphan sidecar that `check()` reports.

Which backup covers a chip is decided by content only: the CRC-32 of every 64 KiB block, which the chip
computes itself (CheckCRC), must equal the image's. MAC, chip and size only narrow the candidates.

Two kinds of entry: a *read* (the chip's flash as read and verified) and a *derived* one: a library image
with what a completed, verified write put on the chip laid over it (`save_derived`), so the next write
after our own does not read 2 MiB again. A derived entry names its provenance (the image it came from and
the original read, by SHA-256; what was written where; how it was checked) and counts as covering a chip
only as every entry does: when the chip's CRC of every block equals its content. A read is preferred
over a derived entry of the same content, and nothing is ever pruned: the original read stays findable.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import socket
import stat
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import List

from . import __version__
from .chips import DEFAULT_CHIP, FAMILIES
from .errors import BkError
from .layout import BLOCK  # unit of the content identity: one CheckCRC per 64 KiB block
from .paths import data_dir, rescue_dirs

log = logging.getLogger(__name__)

DEFAULT_DUMP_SIZE = FAMILIES[DEFAULT_CHIP].default_flash  # for a space check before the chip's size is known
SIDECAR_ROOM = 64 * 1024  # sidecar, directory entries and a margin
STALE_PART_S = 3600.0  # a .part temporary older than this belongs to no running save
# A library temporary's name: ".<final name>.w<pid>@<host>.<random>.part". The writer's pid and host let the
# next save or listing remove what a killed save left at once (its pid is gone) and never touch what a live
# save is writing. A name without them (an older version's, or another program's) only goes after an hour.
_PART_RE = re.compile(r"^\..+\.(?:bin|json)\.(?:w(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]*)\.)?[^./]+\.part$")
# What save() computes itself; never taken from the caller's metadata.
_SAVE_FIELDS = ("time", "seq", "size", "sha256", "crc32", "block_crcs", "tool_version", "file", "derived")
_warned_loose: set[str] = set()  # libraries already said to be readable by others (once per process)


class DamagedBackup(BkError):
    """A library image no longer matches the SHA-256 its sidecar recorded (or has no usable sidecar)."""


class StorageError(BkError):
    """The library cannot take a backup: not writable, not a directory, or not enough free space.

    When raised after a verified read, `fallback` names where the data was rescued to (None if nowhere
    could take it) and `data`/`meta` hold it so a UI can retry the save."""

    def __init__(self, message: str, hint: str = "", *, fallback: Path | None = None,
                 data: bytes | None = None, meta: dict | None = None) -> None:
        super().__init__(message, hint)
        self.fallback, self.data, self.meta = fallback, data, meta


def block_crcs(data: bytes, block: int = BLOCK) -> list[int]:
    """zlib CRC-32 of each `block` bytes of `data` (the chip's CheckCRC gives the same values)."""
    return [zlib.crc32(data[i : i + block]) for i in range(0, len(data), block)]


compute_block_crcs = block_crcs  # for methods whose parameter is named block_crcs


def _fsync_dir(path: Path) -> None:
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "", socket.gethostname().split(".")[0])[:40]


def _write_temp(folder: Path, name: str, data: bytes, mode: int) -> str:
    """A complete, fsynced temporary beside `name`; the caller links or renames it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.w{os.getpid()}@{_host()}.", suffix=".part", dir=folder)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        _unlink(tmp)
        raise
    return tmp


def _unlink(path: str | Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def atomic_write(path: Path, data: bytes, mode: int = 0o600, overwrite: bool = False) -> Path:
    """Write to a temporary file in the same directory, fsync, then link/rename into place.

    Without `overwrite` an existing file is never replaced (os.link fails instead), so a crash or a
    race leaves either the old state or the complete new file, never a partial one under the name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_temp(path.parent, path.name, data, mode)
    try:
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            os.unlink(tmp)
        _fsync_dir(path.parent)
    except BaseException:
        _unlink(tmp)
        raise
    return path


def _sidecar_of(path: Path) -> Path:
    return path.with_suffix(".json")


def _read_sidecar(path: Path) -> dict | None:
    try:
        meta = json.loads(_sidecar_of(path).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return meta if isinstance(meta, dict) else None


def _parse_crcs(value: object) -> list[int] | None:
    if not isinstance(value, list):
        return None
    try:
        return [int(v, 16) for v in value]
    except (TypeError, ValueError):
        return None


@dataclass
class BackupEntry:
    path: Path
    meta: dict

    @property
    def sidecar(self) -> Path:
        return _sidecar_of(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def block_crcs(self) -> list[int] | None:
        return _parse_crcs(self.meta.get("block_crcs"))

    @property
    def derived(self) -> dict | None:
        """The provenance of a derived entry (see `BackupLibrary.save_derived`); None for a read."""
        value = self.meta.get("derived")
        return value if isinstance(value, dict) else None

    @property
    def origin(self) -> str:
        """"read" (the chip's flash as read) or "derived" (a library image plus a verified write)."""
        return "derived" if self.derived is not None else "read"


@dataclass
class LibraryCheck:
    """What `BackupLibrary.check()` found; `ok` only if nothing is wrong."""

    root: Path
    intact: list[BackupEntry] = field(default_factory=list)
    damaged: list[tuple[Path, str]] = field(default_factory=list)  # (image, why)
    no_sidecar: list[Path] = field(default_factory=list)
    no_image: list[Path] = field(default_factory=list)
    cleaned: list[Path] = field(default_factory=list)  # stale .part temporaries removed

    @property
    def ok(self) -> bool:
        return not (self.damaged or self.no_sidecar or self.no_image)

    def text(self) -> str:
        lines = [f"{len(self.intact)} intact backup(s) in {self.root}"]
        lines += [f"DAMAGED  {p}: {why}" for p, why in self.damaged]
        lines += [f"NO SIDECAR  {p}: image without its sidecar (not used as a backup)" for p in self.no_sidecar]
        lines += [f"NO IMAGE  {p}: sidecar without its image" for p in self.no_image]
        lines += [f"removed stale temporary {p.name}" for p in self.cleaned]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "library": str(self.root),
            "ok": self.ok,
            "intact": [str(e.path) for e in self.intact],
            "damaged": [{"path": str(p), "why": why} for p, why in self.damaged],
            "images_without_sidecar": [str(p) for p in self.no_sidecar],
            "sidecars_without_image": [str(p) for p in self.no_image],
            "cleaned_temporaries": [str(p) for p in self.cleaned],
        }


def check_image(path: Path, meta: dict) -> str | None:
    """Why the image at `path` does not match its sidecar, or None if it does."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    return _mismatch(data, meta)


def is_library_image(path: Path) -> bool:
    """Has `path` a sidecar beside it that names it (wherever the library lives)?"""
    meta = _read_sidecar(Path(path))
    return meta is not None and meta.get("file") == Path(path).name and "sha256" in meta


class BackupLibrary:
    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root else data_dir() / "backups"
        self.problems: list[str] = []  # damaged images skipped by find_covering, for the UIs to show

    # ------------------------------------------------------------------ storage
    def _ensure(self) -> None:
        """Create the library folder (and missing parents) private. A folder that already exists is never
        chmodded: `--library DIR` may be a shared folder (1777, /tmp) that other users and programs need as it
        is; the dumps in it are 0400 anyway, and one line says that their names are visible to others."""
        try:
            _mkdirs_private(self.root)
        except OSError as exc:
            raise StorageError(self._storage_reason(exc)) from None
        try:
            mode = self.root.stat().st_mode
        except OSError:
            return
        key = str(self.root.resolve())
        if mode & 0o044 and key not in _warned_loose:
            _warned_loose.add(key)
            log.warning("the backup library %s is readable by other users (mode %04o): its dumps are private "
                        "(0400), but their names (chip, MAC) can be listed", self.root, stat.S_IMODE(mode))

    def _storage_reason(self, exc: OSError) -> str:
        if exc.errno == errno.ENOSPC:
            return f"the disk holding the backup library {self.root} is full"
        if exc.errno == errno.EROFS:
            return f"the backup library {self.root} is on a read-only file system"
        if exc.errno in (errno.ENOTDIR, errno.EEXIST) or (self.root.exists() and not self.root.is_dir()):
            return f"the backup library {self.root} (or a folder above it) is a file, not a directory"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return f"the backup library {self.root} is not writable"
        return f"cannot write to the backup library {self.root}: {exc.strerror or exc}"

    def check_space(self, size: int | None = None) -> None:
        """Raise StorageError unless a `size`-byte backup can be saved now (call before touching the chip).

        Creates nothing: the nearest existing folder must be a writable directory on a writable file
        system (statvfs's read-only flag, since permission bits say nothing to root) with room enough."""
        need = (size or DEFAULT_DUMP_SIZE) + SIDECAR_ROOM
        hint = "pass --library DIR or set BKBENCH_DATA_DIR to a folder that can take it"
        for parent in [self.root, *self.root.parents]:
            if parent.exists():
                break
        if not parent.is_dir():
            raise StorageError(f"the backup library {self.root} is not a folder: {parent} is a file", hint=hint)
        try:
            st = os.statvfs(parent)
        except OSError as exc:
            raise StorageError(self._storage_reason(exc), hint=hint) from None
        if st.f_flag & os.ST_RDONLY:
            raise StorageError(f"the backup library {self.root} is on a read-only file system", hint=hint)
        if not os.access(parent, os.W_OK | os.X_OK):
            raise StorageError(f"the backup library {self.root} is not writable ({parent})", hint=hint)
        free = st.f_bavail * st.f_frsize
        if free < need:
            raise StorageError(f"only {free // 1024} KiB free for the backup library {self.root}; "
                               f"a backup needs {need // 1024} KiB", hint=hint)

    def _rescue(self, data: bytes, meta: dict, stem: str) -> Path | None:
        """Save verified data that the library could not take somewhere else (0600, atomic)."""
        for folder in rescue_dirs():
            try:
                if folder.resolve() == self.root.resolve() or self.root.resolve() in folder.resolve().parents:
                    continue
                path = folder / f"bkbench-rescued-{stem}.bin"
                atomic_write(path, data, mode=0o600)
                try:
                    atomic_write(_sidecar_of(path), json.dumps(meta, indent=2).encode(), mode=0o600)
                except OSError:
                    pass  # the image is what matters
                return path
            except OSError:
                continue
        return None

    # ------------------------------------------------------------------ save
    def save(self, data: bytes, meta: dict) -> BackupEntry:
        """Store a verified full dump; on a storage failure the data is rescued and StorageError names where."""
        full = self._stamp(data, {k: v for k, v in meta.items() if k != "derived"})  # a read is never derived
        stem = self._stem(full)
        try:
            self._ensure()
            return self._save_pair(data, full, stem)
        except (OSError, StorageError) as exc:
            reason = exc if isinstance(exc, StorageError) else self._storage_reason(exc)
            rescued = self._rescue(data, full, stem)
            where = (f"the verified dump was saved to {rescued} instead" if rescued
                     else "no other place could take the verified dump either")
            raise StorageError(f"{reason}; {where}", fallback=rescued, data=data, meta=dict(meta),
                               hint="free some space or fix the folder, then retry the save") from None

    @staticmethod
    def _stamp(data: bytes, meta: dict) -> dict:
        """The sidecar: `meta` with the time, size and the content's identities (SHA-256, CRC-32, block CRCs)."""
        full = dict(meta)
        full.update({
            "time": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
            "seq": 0,  # set under the name reservation in _save_pair: the library's order, whatever the clock
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "crc32": f"0x{zlib.crc32(data):08X}",
            "block_crcs": [f"{c:08X}" for c in block_crcs(data)],
            "tool_version": f"bkbench {__version__}",
        })
        return full

    @staticmethod
    def _stem(full: dict) -> str:
        ident = str(full.get("mac") or full.get("flash_id") or "unknown").replace(":", "")
        chip = full.get("chip") or "chip"
        when = datetime.fromisoformat(full["time"]).strftime("%Y%m%dT%H%M%S")
        return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{chip}-{ident}-{when}")

    def _save_pair(self, data: bytes, full: dict, stem: str) -> BackupEntry:
        self.clean_temporaries()  # what a killed save left (its writer is gone), before adding 2 MiB more
        img_tmp = _write_temp(self.root, stem + ".bin", data, 0o400)
        try:
            for n in range(1000):
                path = self.root / (stem + (f"-{n}" if n else "") + ".bin")
                if path.exists():
                    continue
                full["file"] = path.name
                # One more than any backup in the library: "newest" must not follow a clock set back (or a
                # time zone change). Two saves at the same instant may take the same number; time breaks that tie.
                full["seq"] = self._last_seq() + 1
                side_tmp = _write_temp(self.root, path.name, json.dumps(full, indent=2).encode(), 0o400)
                try:
                    os.link(side_tmp, _sidecar_of(path))  # the sidecar reserves the name
                except FileExistsError:
                    continue
                finally:
                    _unlink(side_tmp)
                try:
                    os.link(img_tmp, path)
                except FileExistsError:  # an image without sidecar holds the name: leave it, take the next
                    _unlink(_sidecar_of(path))
                    continue
                except BaseException:
                    _unlink(_sidecar_of(path))  # together or not at all
                    raise
                _fsync_dir(self.root)
                return BackupEntry(path, full)
            raise StorageError(f"could not find a free backup name for {stem} in {self.root}")
        finally:
            _unlink(img_tmp)

    def _last_seq(self) -> int:
        last = 0
        for side in self.root.glob("*.json"):
            try:
                meta = json.loads(side.read_text())
            except (OSError, ValueError, UnicodeDecodeError):
                continue
            if isinstance(meta, dict):
                last = max(last, _seq(meta))
        return last

    def clean_temporaries(self, stale_after: float = STALE_PART_S) -> list[Path]:
        """Remove the library's own .part temporaries that no running save is writing: its writer (pid on
        this host, from the name) is gone, or it is older than `stale_after`. Returns what was removed."""
        removed: list[Path] = []
        try:
            names = [p for p in self.root.iterdir() if p.name.endswith(".part")]
        except OSError:
            return removed
        now, host, me = time.time(), _host(), os.geteuid()
        for p in names:
            m = _PART_RE.match(p.name)
            try:
                st = p.lstat()
            except OSError:
                continue
            if m is None or not stat.S_ISREG(st.st_mode) or st.st_uid != me:
                continue  # not ours (a shared folder): never removed
            writer_gone = m["pid"] is not None and m["host"] == host and not _alive(int(m["pid"]))
            if writer_gone or now - st.st_mtime > stale_after:
                _unlink(p)
                if not p.exists():
                    removed.append(p)
        return removed

    # ------------------------------------------------------------------ read
    def list(self) -> list[BackupEntry]:
        """Images that have a readable sidecar naming them, newest first (integrity is not checked here).
        Temporaries a killed save left are removed on the way."""
        if not self.root.is_dir():
            return []
        self.clean_temporaries()
        out = []
        for side in self.root.glob("*.json"):
            bin_path = side.with_suffix(".bin")
            if not bin_path.is_file():
                continue
            meta = _read_sidecar(bin_path)
            if meta is None:
                continue
            out.append(BackupEntry(bin_path, meta))
        # By the library's own sequence number (a clock set back or a time zone change cannot reorder it);
        # backups saved before it existed have none (0) and come by their time. ISO times have one-second
        # resolution: the file's mtime breaks ties between same-second backups.
        out.sort(key=lambda e: (_seq(e.meta), _utc(e.meta.get("time")), _mtime(e.path)), reverse=True)
        return out

    def load(self, entry: BackupEntry) -> bytes:
        """The image's bytes, after checking them against the SHA-256 in its sidecar."""
        data = _read_image(entry.path)
        why = _mismatch(data, entry.meta)
        if why:
            raise DamagedBackup(f"backup {entry.path} is damaged: {why}",
                                hint="`bkbench backups --check` lists every damaged backup")
        return data

    def verify_file(self, path: Path | str) -> BackupEntry | None:
        """The library entry `path` is, checked (DamagedBackup if it no longer matches), or None if `path`
        is not a library image. Any image with a sidecar naming it counts, wherever its library lives."""
        path = Path(path)
        if not is_library_image(path):
            return None
        meta = _read_sidecar(path)
        assert meta is not None
        entry = BackupEntry(path, meta)
        self.load(entry)
        return entry

    def refuse_output(self, path: Path | str) -> None:
        """Raise BkError if writing to `path` would replace a library image or its sidecar."""
        path = Path(path)
        target = path.resolve()
        inside = self.root.resolve() == target or self.root.resolve() in target.parents
        image = path.with_suffix(".bin") if path.suffix == ".json" else path
        if inside or is_library_image(image) or _holds_library(target.parent):
            raise BkError(f"{path} is in the backup library; library files are never overwritten",
                          hint="choose an output file outside the library")

    # ------------------------------------------------------------------ identity
    def find_covering(self, chip: str, flash_size: int, block_crcs: List[int], mac: str | None = None,
                      ) -> BackupEntry | None:
        """The newest intact full backup whose every 64 KiB block has the chip's CRC (`block_crcs`, as
        the chip's CheckCRC gives them). Damaged candidates are skipped and noted in `problems`."""
        crcs = [c & 0xFFFFFFFF for c in block_crcs]
        # Equal block CRCs mean equal content: a read of it is preferred to a derived entry (the original stays
        # the one named), else the newest.
        for e in sorted(self.list(), key=lambda e: e.derived is not None):
            m = e.meta
            if m.get("chip") != chip or m.get("partial") or m.get("size", flash_size) != flash_size:
                continue
            if mac and m.get("mac") and str(m["mac"]).lower() != mac.lower():
                continue  # narrows only: a backup without a MAC is judged by its content
            stored = e.block_crcs
            if stored is not None and stored != crcs:
                continue
            try:
                data = self.load(e)
            except (DamagedBackup, OSError) as exc:
                self._problem(f"skipped {e.path.name}: {exc}")
                continue
            if stored is None and compute_block_crcs(data) != crcs:
                continue
            if stored is not None and compute_block_crcs(data) != stored:  # the sidecar disagrees with itself
                self._problem(f"skipped {e.path.name}: its block CRCs do not match its own image")
                continue
            return e
        return None

    def find_same(self, data: bytes, chip: str | None = None) -> BackupEntry | None:
        """An intact entry holding exactly `data` (by SHA-256, then checked), reads first; None if none does."""
        want = hashlib.sha256(data).hexdigest()
        for e in sorted(self.list(), key=lambda e: e.derived is not None):
            if e.meta.get("sha256") != want or (chip and e.meta.get("chip") != chip) or e.meta.get("partial"):
                continue
            try:
                self.load(e)
            except (DamagedBackup, OSError):
                continue
            return e
        return None

    def find_nearest(self, chip: str, flash_size: int, block_crcs: List[int], mac: str | None = None,
                     ) -> tuple[BackupEntry, List[int]] | None:
        """The intact backup of this chip whose blocks equal most of the chip's (by the chip's CRCs, as in
        `find_covering`), with the indices of the blocks that differ; None unless one shares at least half.
        Only those blocks need reading for a backup of what the chip holds now (`Session.backup`)."""
        crcs = [c & 0xFFFFFFFF for c in block_crcs]
        near: List[tuple[int, int, BackupEntry, List[int]]] = []
        for e in sorted(self.list(), key=lambda e: e.derived is not None):  # a read first among equals
            m = e.meta
            if m.get("chip") != chip or m.get("partial") or m.get("size", flash_size) != flash_size:
                continue
            if mac and m.get("mac") and str(m["mac"]).lower() != mac.lower():
                continue
            stored = e.block_crcs
            if stored is None or len(stored) != len(crcs):
                continue
            differ = [i for i, (a, b) in enumerate(zip(stored, crcs)) if a != b]
            if 2 * len(differ) <= len(crcs):
                near.append((len(differ), len(near), e, differ))
        for _, _, e, differ in sorted(near, key=lambda t: t[:2]):
            try:
                data = self.load(e)
            except (DamagedBackup, OSError) as exc:
                self._problem(f"skipped {e.path.name}: {exc}")
                continue
            if compute_block_crcs(data) != e.block_crcs:
                self._problem(f"skipped {e.path.name}: its block CRCs do not match its own image")
                continue
            return e, differ
        return None

    def save_derived(self, base: BackupEntry, spans: List[tuple[int, bytes]], meta: dict, *, operation: str,
                     what: str, checked: str) -> tuple[BackupEntry, bool]:
        """Record what the chip holds now: `base` (a library image, SHA-256 checked again here) with `spans`
        laid over it: what a completed write verified, or the blocks a backup read because only they differed
        from the base. Returns (entry, new): when the library already holds that content (a restore of the
        original), that entry, and nothing is saved.

        The caller vouches that every span is on the chip (verified) and that the flash outside them was the
        base's (`checked` says how, for the sidecar). No rescue copy (StorageError only): a write stands without
        its record, and a backup of changed blocks is read again next time."""
        image = bytearray(self.load(base))
        for start, data in spans:
            if start < 0 or start + len(data) > len(image) or not data:
                raise BkError(f"a derived backup's span 0x{start:X}+0x{len(data):X} is outside the "
                              f"{len(image) // 1024} KiB image")
            image[start:start + len(data)] = data
        data = bytes(image)
        same = self.find_same(data, base.meta.get("chip"))
        if same is not None:
            return same, False
        origin = base.derived
        original = (origin or {}).get("original") or {"file": base.name, "sha256": base.meta.get("sha256")}
        full = {k: v for k, v in dict(meta).items() if k not in _SAVE_FIELDS}
        full["derived"] = {
            "from": {"file": base.name, "sha256": base.meta.get("sha256")},
            "original": original,
            "operation": operation,
            "what": what,
            "spans": [{"start": f"0x{s:06X}", "end": f"0x{s + len(d):06X}",
                       "sha256": hashlib.sha256(d).hexdigest()} for s, d in sorted(spans)],
            "checked": checked,
        }
        try:
            self._ensure()
            full = self._stamp(data, full)
            return self._save_pair(data, full, self._stem(full)), True
        except OSError as exc:
            raise StorageError(self._storage_reason(exc)) from None

    def _problem(self, text: str) -> None:
        self.problems.append(text)
        log.warning("%s", text)

    def find_for(self, chip: str, mac: str | None = None, flash_id: str | None = None) -> List[BackupEntry]:
        """Full backups recorded for this chip's MAC (a flash ID is shared by thousands of modules, so it
        never identifies a chip; without a MAC nothing matches). Listing only: what covers the chip's
        current content is `find_covering`."""
        if not mac:
            return []
        return [e for e in self.list()
                if e.meta.get("chip") == chip and not e.meta.get("partial")
                and str(e.meta.get("mac") or "").lower() == mac.lower()]

    # ------------------------------------------------------------------ check
    def check(self, clean: bool = True, stale_after: float = STALE_PART_S) -> LibraryCheck:
        """Every image against its sidecar, orphans both ways; stale .part temporaries removed."""
        report = LibraryCheck(self.root)
        if not self.root.is_dir():
            return report
        if clean:
            report.cleaned = self.clean_temporaries(stale_after)
        for p in sorted(self.root.iterdir()):
            if p.name.endswith(".part"):
                continue
            elif p.suffix == ".bin":
                meta = _read_sidecar(p)
                if not _sidecar_of(p).exists():
                    report.no_sidecar.append(p)
                elif meta is None or meta.get("file", p.name) != p.name:
                    report.damaged.append((p, "its sidecar is unreadable or names another file"))
                else:
                    why = check_image(p, meta)
                    if why:
                        report.damaged.append((p, why))
                    else:
                        report.intact.append(BackupEntry(p, meta))
            elif p.suffix == ".json" and not p.with_suffix(".bin").exists():
                report.no_image.append(p)
        return report


def _holds_library(folder: Path) -> bool:
    """Is `folder` a backup library (another one than ours)? Any sidecar naming its image says so."""
    try:
        return any(is_library_image(side.with_suffix(".bin")) for side in folder.glob("*.json"))
    except OSError:
        return False


def _mkdirs_private(path: Path) -> None:
    """mkdir -p, each folder it creates 0700 (whatever the umask); folders that exist are left as they are."""
    missing = []
    for p in [path, *path.parents]:
        if p.is_dir():
            break
        missing.append(p)
    for p in reversed(missing):
        try:
            p.mkdir(mode=0o700)
        except FileExistsError:
            if not p.is_dir():
                raise
            continue  # made meanwhile by someone else: theirs, not ours to chmod
        os.chmod(p, 0o700)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _seq(meta: dict) -> int:
    value = meta.get("seq")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _utc(value: object) -> float:
    """A sidecar's ISO time as a POSIX timestamp (so time zones compare right), 0 if it has none."""
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except (TypeError, ValueError, OverflowError, OSError):
        return 0.0


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _read_image(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DamagedBackup(f"backup {path} cannot be read: {exc.strerror or exc}") from None


def _mismatch(data: bytes, meta: dict) -> str | None:
    want = meta.get("sha256")
    if not isinstance(want, str):
        return "its sidecar records no SHA-256"
    if isinstance(meta.get("size"), int) and len(data) != meta["size"]:
        return f"it is {len(data)} bytes but its sidecar says {meta['size']}"
    if hashlib.sha256(data).hexdigest() != want:
        return "its contents no longer match the SHA-256 in its sidecar"
    return None
