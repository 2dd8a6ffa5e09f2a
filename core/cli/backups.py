"""`bkbench backups`: list the backup library, or check every image against its sidecar."""

from __future__ import annotations

import argparse
import sys

from ..backup_labels import Labels
from ..backups import BackupLibrary
from .common import emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backups", help="list the library's full backups: read or derived, and their firmware "
                                       "(--check: verify them all)")
    p.add_argument("--library", help="backup library directory")
    p.add_argument("--check", action="store_true",
                   help="check every image's SHA-256, report orphans, remove stale temporaries")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    p.set_defaults(func=cmd_backups)


def cmd_backups(args: argparse.Namespace) -> int:
    lib = BackupLibrary(args.library)
    if args.check:
        report = lib.check()
        emit(args, report.to_json(), report.text())
        return 0 if report.ok else 2
    entries = lib.list()
    labels = Labels(lib)
    # One line per entry, the file first (the name holds chip, MAC and time): is it a read or derived (backup +
    # a verified write), and what firmware the image holds. The folder is said once, above.
    width = max((len(e.path.name) for e in entries), default=0)
    todo = sum(labels.cached(e) is None for e in entries)
    if todo >= 3:  # about a second each, once: then they are cached by SHA-256
        print(f"looking at {todo} images for the firmware they hold (once: then cached)...", file=sys.stderr)
    rows = [(e, labels.label(e)) for e in entries]
    lines = [f"{len(entries)} backup(s) in {lib.root}, newest first:"] if entries else []
    lines += [f"{e.path.name:<{width}}  {e.origin:<7}  {label}" for e, label in rows]
    listed = {e.path for e in entries}
    unlisted = sorted(p for p in lib.root.glob("*.bin") if p not in listed) if lib.root.is_dir() else []
    if unlisted:  # cheap here; --check says what is wrong with each (and checks every SHA-256)
        lines.append(f"{len(unlisted)} image(s) without a usable sidecar are not listed: run `bkbench backups --check`")
    emit(args, {"library": str(lib.root), "backups": [{"path": str(e.path), **e.meta, "origin": e.origin,
                                                       "firmware_label": label} for e, label in rows],
                "unlisted_images": [str(p) for p in unlisted]},
         "\n".join(lines) if lines else f"no backups in {lib.root}")
    return 0
