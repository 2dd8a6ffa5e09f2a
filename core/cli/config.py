"""`bkbench config show|set|write`: the OpenBK configuration sector, offline or on a chip."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..analysis.dump import analyze_dump
from ..analysis.obk_config import ObkConfig, parse_assignment
from ..backups import BackupLibrary, atomic_write
from ..errors import BkError
from ..layout import OBK_CONFIG_OFFSET, SECTOR
from .common import add_port_args, session_for


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="show or edit the OpenBK configuration sector")
    csub = p.add_subparsers(dest="config_cmd", required=True)
    s = csub.add_parser("show", help="show a config sector or the config inside a full dump")
    s.add_argument("file", nargs="?")
    add_port_args(s, required=False)
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
    w.add_argument("file", help="a config sector (4 KiB, from `config set`)")
    add_port_args(w)
    w.add_argument("--no-backup", action="store_true", help="skip the automatic full backup")
    w.add_argument("--library", help="backup library directory")
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


def _config_offset(chip: str) -> int:
    if chip not in OBK_CONFIG_OFFSET:
        raise BkError(f"OpenBK's config location on {chip} is not known: bkbench does not edit it there.")
    return OBK_CONFIG_OFFSET[chip]


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


def run_show(args: argparse.Namespace) -> int:
    if args.port:
        with session_for(args) as s:
            info = s.connect()
            sector = s.read(_config_offset(info.chip), SECTOR)
        cfg, _, _ = load_config(sector)
    elif not args.file:
        raise BkError("Give a config sector or dump FILE, or --port for the live chip.")
    else:
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
    atomic_write(Path(args.output), out, mode=0o600, overwrite=True)
    print(f"Wrote {args.output}" + (f" (config sector at 0x{off:06X}, {chip})" if off is not None else ""))
    return 0


def run_write(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise BkError(f"{path}: no such file")
    blob = path.read_bytes()
    if len(blob) not in (SECTOR, 0x200000):
        raise BkError(f"{path} is {len(blob)} bytes: give a 4 KiB config sector or a 2 MiB dump (from `config set`)")
    with session_for(args) as s:
        info = s.connect()
        off = _config_offset(info.chip)
        sector = blob if len(blob) == SECTOR else blob[off : off + SECTOR]
        s.backup_first = not args.no_backup
        s.backup_library = BackupLibrary(args.library)
        write_config_to_chip(s, info.chip, sector)
    print(f"OpenBK config written to 0x{OBK_CONFIG_OFFSET[info.chip]:06X} ({info.chip}) and verified by CRC")
    return 0
