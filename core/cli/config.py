"""`bkbench config show|set|write`: the OpenBK configuration sector, offline or on a chip."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..analysis.dump import analyze_dump
from ..analysis.obk_config import ObkConfig, parse_assignment
from ..errors import BkError
from ..layout import OBK_CONFIG_OFFSET, SECTOR


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="show or edit the OpenBK configuration sector")
    csub = p.add_subparsers(dest="config_cmd", required=True)
    s = csub.add_parser("show", help="show a config sector or the config inside a full dump")
    s.add_argument("file", nargs="?")
    s.add_argument("--port")
    s.add_argument("--show-secrets", action="store_true")
    s.set_defaults(func=run_show)
    e = csub.add_parser("set", help="edit key=value pairs into a new file (sector or full dump)")
    e.add_argument("file")
    e.add_argument("assignments", nargs="+", metavar="key=value")
    e.add_argument("--output", "-o", required=True)
    e.add_argument("--chip", choices=sorted(OBK_CONFIG_OFFSET), help="chip of a full dump (else detected)")
    e.add_argument("--new", action="store_true", help="start from a default config when none exists")
    e.add_argument("--from-tuya", action="store_true", help="set pins/startup from the dump's Tuya config")
    e.set_defaults(func=run_set)
    w = csub.add_parser("write", help="write a config sector to the chip")
    w.add_argument("file")
    w.add_argument("--port", required=True)
    w.add_argument("--chip", choices=sorted(OBK_CONFIG_OFFSET))
    w.set_defaults(func=run_write)


def load_config(
    data: bytes, chip: str | None = None, new_if_missing: bool = False
) -> tuple[ObkConfig, int | None, str | None]:
    """(config, its offset in `data` or None for a bare sector, chip)."""
    if len(data) <= SECTOR * 2:
        return ObkConfig.parse(data), None, chip
    if chip is None:
        chip = _detect_chip(data)
    if chip not in OBK_CONFIG_OFFSET:
        raise BkError("Cannot tell the chip of this dump; pass --chip.")
    off = OBK_CONFIG_OFFSET[chip]
    sector = data[off : off + SECTOR]
    if new_if_missing and sector[:3] != b"CFG":
        from ..analysis.dump import parse_tlv_mac
        from ..layout import RF_OFFSET

        mac = parse_tlv_mac(data[RF_OFFSET[chip] : RF_OFFSET[chip] + SECTOR])
        return ObkConfig.new(bytes.fromhex(mac.replace(":", "")) if mac else None), off, chip
    return ObkConfig.parse(sector), off, chip


def _detect_chip(data: bytes) -> str | None:
    from ..analysis.dump import identify_bootloader

    found = identify_bootloader(data)
    return found[0] if found else None


def write_config_to_chip(session: Any, chip: str, sector_bytes: bytes) -> None:
    """Write one config sector to the chip; nothing else is touched."""
    if len(sector_bytes) != SECTOR or sector_bytes[:3] != b"CFG":
        raise BkError("Refusing to write: not a 4 KiB OpenBK config sector.")
    ObkConfig.parse(sector_bytes)  # checksum must be right
    session.write(sector_bytes, start=OBK_CONFIG_OFFSET[chip], confirm_sector=True)


def _atomic_write(path: str, data: bytes) -> None:
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".bkbench-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run_show(args: argparse.Namespace) -> int:
    if args.port:
        raise BkError("Reading the config from a chip (--port) is not available yet; use a dump file.")
    if not args.file:
        raise BkError("Give a config sector or dump FILE.")
    cfg, _, _ = load_config(Path(args.file).read_bytes())
    j = cfg.to_json(args.show_secrets)
    if getattr(args, "json", False):
        print(json.dumps(j, indent=2))
    else:
        for k, v in j.items():
            if k != "pins":
                print(f"{k:<34} {v}")
        for g, p in j["pins"].items():
            print(f"P{g:<3} {p['role']:<14} channel {p['channel']} {p['channel2'] or ''}")
    return 0


def run_set(args: argparse.Namespace) -> int:
    data = Path(args.file).read_bytes()
    cfg, off, chip = load_config(data, args.chip, new_if_missing=args.new)
    if args.from_tuya:
        a = analyze_dump(data)
        if a.mapping is None:
            raise BkError("No Tuya configuration found in this file.")
        cfg.apply_mapping(a.mapping)
    for assignment in args.assignments:
        parse_assignment(cfg, assignment)
    sector = cfg.sector()
    if off is None:
        out = sector
    else:
        out = data[:off] + sector + data[off + SECTOR :]
    _atomic_write(args.output, out)
    print(f"Wrote {args.output}" + (f" (config sector at 0x{off:06X}, {chip})" if off is not None else ""))
    return 0


def run_write(args: argparse.Namespace) -> int:
    raise BkError("Writing to a chip is not wired yet (write_config_to_chip needs a Session).")
