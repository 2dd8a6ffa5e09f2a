"""`bkbench analyze FILE [--json] [--show-secrets]`: what is in a flash dump or a boot log."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..analysis.bootlog import parse_boot_log
from ..analysis.devices import match_report, summary_lines
from ..analysis.dump import analyze_dump
from ..analysis.tuya_pins import map_user_param_key
from ..backups import BackupLibrary
from ..errors import BkError
from ..files import read_input_file
from ..ops.events import Notice
from .common import HelpFormatter, add_port_args, session_for

MAX_INPUT = 16 * 1024 * 1024  # a 4 MiB flash dump or a long boot log; anything bigger is not one


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze", help="identify chip, firmware, MAC, Tuya config and OpenBK pins of a dump",
        formatter_class=HelpFormatter,
        description="Say what is in a flash dump or a UART boot log: chip, bootloader, firmware (stock Tuya "
        "SDK or OpenBK), MAC, the decrypted Tuya KV storage, and the OpenBK pins and template derived from "
        "Tuya's user_param_key, and the closest entries of OpenBK's community device list (once `bkbench fetch "
        "--devices` has cached it). With --port the whole chip is read first (and kept as a backup).",
        epilog="examples:\n  bkbench analyze BACKUP.bin\n  bkbench analyze boot.log\n"
        "  bkbench analyze BACKUP.bin --json      (includes the OpenBK template)\n"
        "  bkbench analyze -p /dev/ttyUSB0",
    )
    p.add_argument("file", nargs="?", help="flash dump (.bin) or UART boot log (.log/.txt)")
    add_port_args(p, required=False)
    p.add_argument("--library", help="backup library directory (a live analysis saves a full backup)")
    p.add_argument("--show-secrets", action="store_true", help="show Wi-Fi passwords and keys")
    p.set_defaults(func=run)


def _is_text(data: bytes) -> bool:
    sample = data[:4096]
    return bool(sample) and sum(32 <= b < 127 or b in (9, 10, 13) for b in sample) > 0.9 * len(sample)


def analyze_file(path: str | Path, show_secrets: bool = False) -> dict[str, Any]:
    """The JSON report for a dump or boot log file."""
    data = read_input_file(Path(path), "flash dump or boot log", MAX_INPUT)
    if not data:
        raise BkError(f"{path} is empty")
    if _is_text(data):
        log = parse_boot_log(data)
        out: dict[str, Any] = {"source": "bootlog", **log.to_json()}
        if log.json_cfg:
            m = map_user_param_key(log.json_cfg)
            out["tuya"] = {"keys": [], "user_param_key": log.json_cfg}
            mj = m.to_json()
            out["openbk"] = {"pins": mj["pins"], "mapping": mj, "template": m.template(chip=log.chip or "")}
        return out
    return {"source": "dump", **analyze_dump(data).to_json(show_secrets)}


def _human(r: dict[str, Any]) -> str:
    lines = []
    if r["source"] == "bootlog":
        lines.append(f"Boot log: chip {r.get('chip') or '?'}, bootloader {r.get('bootloader') or '?'}, "
                     f"flash ID {r.get('flash_id') or '?'}, MAC {r.get('mac') or '?'}")
        if r.get("sdk_version"):
            app = f"{r.get('app') or ''} {r.get('app_version') or ''}"
            lines.append(f"Firmware: Tuya SDK {r['sdk_version']} {app}")
    else:
        bl = r.get("bootloader") or {}
        image = r.get("image") or {}
        if image.get("format") not in (None, "dump"):  # a firmware file: no bootloader or MAC to show
            lines.append(f"Chip: {r.get('chip') or 'unknown'}   File: {image['description']}   "
                         f"Size: {r['size']:,} bytes")
        else:
            lines.append(f"Chip: {r.get('chip') or 'unknown'}   Bootloader: {bl.get('name', 'unknown')}   "
                         f"MAC: {r.get('mac') or '?'}   Size: {r['size']:,} bytes")
        if r.get("rotated"):
            lines.append("Dump was read from 0x11000 with wrap-around; analysed in flash order.")
        fw = r["firmware"]
        if fw["kind"] == "tuya":
            lines.append(f"Firmware: stock Tuya, SDK {fw['sdk_version']} built {fw.get('sdk_build', '?')} "
                         f"{fw.get('app', '')}")
        elif fw["kind"] == "openbk":
            lines.append(f"Firmware: {fw['name']} {fw['version']} ({fw['build']})")
        else:
            lines.append(f"Firmware: {fw['kind']}")
        for p in r["partitions"]:
            lines.append(f"  0x{p['start']:06X} +0x{p['size']:06X}  {p['name']:<22} {p['status']}")
    tuya = r.get("tuya") or {}
    if tuya.get("keys"):
        lines.append("Tuya keys: " + ", ".join(tuya["keys"]))
    if tuya.get("user_param_key_source"):
        lines.append(f"Tuya user_param_key from the {tuya['user_param_key_source']}")
    ob = r.get("openbk") or {}
    m = ob.get("mapping")
    if m:
        if m["kind"] == "tuyamcu":
            lines.append(f"TuyaMCU device (no user_param_key), baud {m.get('baud')}")
        for g, p in m["pins"].items():
            lines.append(f"  P{g:<3} {p['role']:<14} channel {p['channel']}   ({p['source']})")
        if m["startup_command"]:
            lines.append(f"Startup command: {m['startup_command']}")
        for w in m["warnings"]:
            lines.append(f"Warning: {w}")
    for w in r.get("warnings", []):
        lines.append(f"Warning: {w}")
    community = r.get("community") or {}
    if community.get("status") not in (None, "no pins") and (m or {}).get("kind") in ("pins", "tuyamcu"):
        lines += summary_lines(community)
    return "\n".join(dict.fromkeys(lines))  # a fact reached two ways is said once


def run(args: argparse.Namespace) -> int:
    if getattr(args, "port", None):
        # A live analysis reads the whole chip: keep that verified dump as a backup too.
        with session_for(args) as s:
            s.connect()
            got = s.backup(BackupLibrary(args.library))
            entry = got.entry
            s.sink(Notice("info", f"backup saved: {entry.path}" if got.taken else
                          f"backup {entry.name} already holds this chip's content: not read again"))
        report = analyze_file(entry.path, args.show_secrets)
        report["backup"] = str(entry.path)
    elif not args.file:
        raise BkError("Give a dump or boot log FILE to analyse, or --port for the live chip.")
    else:
        report = analyze_file(args.file, args.show_secrets)
    report["community"] = match_report(report)  # OpenBK's community device list, when one is cached
    if getattr(args, "json", False):
        print(json.dumps(report, indent=2))
    else:
        print(_human(report))
    return 0
