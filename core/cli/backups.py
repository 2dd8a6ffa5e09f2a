"""`bkbench backups`: list the backup library, or check every image against its sidecar."""

from __future__ import annotations

import argparse

from ..backups import BackupLibrary
from .common import emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backups", help="list full backups in the library (--check: verify them all)")
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
    # str(): a hand-edited sidecar may hold any JSON there (a list, a number); a listing must not crash on it.
    lines = [f"{str(e.meta.get('time', '?')):<26} {str(e.meta.get('chip', '?')):<8} "
             f"{str(e.meta.get('mac') or '-'):<18} {e.path}" for e in entries]
    listed = {e.path for e in entries}
    unlisted = sorted(p for p in lib.root.glob("*.bin") if p not in listed) if lib.root.is_dir() else []
    if unlisted:  # cheap here; --check says what is wrong with each (and checks every SHA-256)
        lines.append(f"{len(unlisted)} image(s) without a usable sidecar are not listed: run `bkbench backups --check`")
    emit(args, {"library": str(lib.root), "backups": [{"path": str(e.path), **e.meta} for e in entries],
                "unlisted_images": [str(p) for p in unlisted]},
         "\n".join(lines) if lines else f"no backups in {lib.root}")
    return 0
