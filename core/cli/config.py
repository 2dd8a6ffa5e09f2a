"""`bkbench config show|set|write`: the OpenBK configuration sector, offline or on a chip."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..analysis.device_apply import EntryPlan, apply_plan, plan_entry
from ..analysis.device_list import load_default
from ..analysis.devices import facts_from_report
from ..analysis.dump import analyze_dump
from ..analysis.obk_config import ALIASES, LEGACY_CRC_NOTE, SECRET_FIELDS, ObkConfig, parse_assignment
from ..backups import BackupLibrary, atomic_write
from ..chips import FLASH_SIZES
from ..config_file import ChipUnknown, ConfigSource, is_sector_file, load_config
from ..errors import BkError
from ..files import read_input_file
from ..layout import OBK_CONFIG_OFFSET, SECTOR
from .common import HelpFormatter, add_port_args, check_output_path, session_for

RAW = HelpFormatter


def _chip(text: str) -> str:
    return text.upper()


class _AssignmentsAnywhere(argparse.ArgumentParser):
    """`config set FILE --from-tuya ssid=x`: argparse fills a '*' positional once, at its first chance (right
    after FILE), so key=value pairs written after an option would be "unrecognized"; they are assignments."""

    def parse_known_args(self, args=None, namespace=None):
        ns, extras = super().parse_known_args(args, namespace)
        late = [a for a in extras if "=" in a and not a.startswith("-")]
        if late:
            ns.assignments = list(getattr(ns, "assignments", None) or []) + late
        return ns, [a for a in extras if a not in late]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="show or edit the OpenBK configuration sector", formatter_class=RAW,
                       description="The OpenBK configuration (Wi-Fi, MQTT, pins, flags) lives in one 4 KiB "
                       "sector (0x1D1000 on a BK7231N, 0x1E1000 on a BK7231T). Read it from a dump or a chip, "
                       "edit it offline into a new file, then write only that sector.",
                       epilog="examples:\n  bkbench config show BACKUP.bin\n"
                       "  bkbench config set BACKUP.bin ssid=MyWifi pass=secret -o cfg.bin\n"
                       "  bkbench config write cfg.bin -p /dev/ttyUSB0")
    csub = p.add_subparsers(dest="config_cmd", required=True, metavar="show|set|write")
    s = csub.add_parser("show", help="show a config sector or the config inside a full dump", formatter_class=RAW,
                        description="Print the OpenBK configuration of a 4 KiB config sector, of a full dump, "
                        "or of the chip on --port (read only). Passwords are masked unless --show-secrets.",
                        epilog="examples:\n  bkbench config show BACKUP.bin\n  bkbench config show cfg.bin --json"
                        "\n  bkbench config show -p /dev/ttyUSB0")
    s.add_argument("file", nargs="?", help="config sector (4 KiB) or full dump; omit with --port")
    add_port_args(s, required=False)
    s.add_argument("--chip", type=_chip, choices=sorted(OBK_CONFIG_OFFSET),
                   help="chip of a full dump when its bootloader is not recognised")
    s.add_argument("--show-secrets", action="store_true", help="show Wi-Fi and MQTT passwords")
    s.set_defaults(func=run_show)
    e = csub.add_parser("set", help="edit key=value pairs into a new file (sector or full dump)",
                        formatter_class=RAW,
                        description="Copy FILE to --output with the OpenBK config edited; only the config "
                        "sector differs. A dump without an OpenBK config (stock Tuya firmware) gets a new one "
                        "with OpenBK's defaults and the chip's MAC, and the command says so. The input is never "
                        "modified. Keys: ssid, pass, mqtt_host, mqtt_port, mqtt_user, mqtt_pass, name, startup, "
                        "pin.N=ROLE;CHANNEL (e.g. pin.26=Rel;1), flag.N=0|1, or any field `config show` lists.",
                        epilog="examples:\n  bkbench config set BACKUP.bin ssid=MyWifi pass=secret -o obk.bin\n"
                        "  bkbench config set BACKUP.bin --from-tuya ssid=MyWifi -o obk.bin\n"
                        "  bkbench config set BACKUP.bin --device aa7da527 -o obk.bin   (a community entry)\n"
                        "  bkbench config set cfg.bin mqtt_host=192.168.1.10 -o cfg2.bin")
    e.add_argument("file", help="config sector (4 KiB) or full dump")
    e.__class__ = _AssignmentsAnywhere  # key=value after options too (see the class)
    e.add_argument("assignments", nargs="*", metavar="key=value", help="fields to set")
    e.add_argument("--output", "-o", required=True, help="new file to write (a library backup is never changed)")
    e.add_argument("--chip", type=_chip, choices=sorted(OBK_CONFIG_OFFSET),
                   help="chip of a full dump (else detected)")
    e.add_argument("--new", action="store_true", help=argparse.SUPPRESS)  # old spelling; now automatic
    e.add_argument("--from-tuya", action="store_true", help="set pins/startup from the dump's Tuya config")
    e.add_argument("--device", metavar="ID", help="set pins, flags and startup command from a community device "
                   "list entry (ids as `bkbench analyze` prints them; needs `bkbench fetch --devices`)")
    e.set_defaults(func=run_set)
    w = csub.add_parser("write", help="write a config sector to the chip", formatter_class=RAW,
                        description="Write one OpenBK config sector (from `config set`) to the chip, after a "
                        "full backup; nothing else on the flash is touched. Verified by CRC.",
                        epilog="examples:\n  bkbench config write cfg.bin -p /dev/ttyUSB0\n"
                        "  bkbench config write obk.bin -p /dev/ttyUSB0   (the sector is taken from the dump)")
    w.add_argument("file", help="a config sector (4 KiB, from `config set`) or a full flash dump of any size "
                   "holding one")
    add_port_args(w)
    w.add_argument("--no-backup", action="store_true", help="skip the automatic full backup")
    w.add_argument("--library", help="backup library directory")
    w.set_defaults(func=run_write)


def _config_offset(chip: str) -> int:
    if chip not in OBK_CONFIG_OFFSET:
        raise BkError(f"OpenBK's config location on {chip} is not known: bkbench does not edit it there.")
    return OBK_CONFIG_OFFSET[chip]


def secret_free(assignment: str) -> str:
    """`key=value` as it may be echoed: the value of a password field replaced."""
    key, sep, _value = assignment.partition("=")
    name = ALIASES.get(key.strip(), key.strip())
    return f"{key}=<secret>" if sep and name in SECRET_FIELDS else assignment


def _warnings(cfg: ObkConfig) -> list[str]:
    out = [LEGACY_CRC_NOTE] if cfg.legacy_crc else []
    ignored = cfg.ignored_pins()
    if ignored:
        out.append(f"Pins {', '.join(f'P{g}' for g in ignored)} are stored but OpenBK never applies them on "
                   f"{cfg.chip_text()} (P0..P{cfg.layout.gpio_max - 1}).")
    return out


def run_show(args: argparse.Namespace) -> int:
    if args.port:
        with session_for(args) as s:
            info = s.connect()
            sector = s.read(_config_offset(info.chip), SECTOR)
        cfg = load_config(sector, info.chip).config
    elif not args.file:
        raise BkError("Give a config sector or dump FILE, or --port for the live chip.")
    else:
        data = read_input_file(args.file, "config sector or flash dump")
        found = load_config(data, args.chip, create=not is_sector_file(data))
        if found.created and found.sector[:3] == b"CFG":  # there, but OpenBK would not accept it
            raise BkError(f"{args.file}: {found.created}")
        if found.created:
            raise BkError(f"{args.file} holds no OpenBK config (stock firmware?); "
                          f"`bkbench config set {args.file} ssid=... -o NEW.bin` creates one")
        cfg = found.config
    j = cfg.to_json(args.show_secrets)
    if getattr(args, "json", False):
        j["warnings"] = _warnings(cfg)
        print(json.dumps(j, indent=2))
    else:
        for line in _warnings(cfg):
            print(f"warning: {line}")
        for k, v in j.items():
            if k not in ("pins", "ignored_pins", "checksum"):
                if isinstance(v, list):
                    v = ", ".join(str(x) for x in v) or "none"
                print(f"{k:<34} {'-' if v in ('', None) else v}")
        for g, p in j["pins"].items():
            second = f", {p['channel2']}" if p["channel2"] else ""
            print(f"P{g:<3} {p['role']:<14} channel {p['channel']}{second}")
    return 0


def _inside_library(path: Path) -> bool:
    root = BackupLibrary().root.resolve()
    return root == path.resolve().parent or root in path.resolve().parents


def run_set(args: argparse.Namespace) -> int:
    out_path = Path(args.output)
    check_output_path(out_path, overwrite=True)
    if _inside_library(out_path):
        raise BkError(f"{out_path} is inside the backup library; write the edited copy elsewhere")
    if out_path.exists() and Path(args.file).exists() and out_path.resolve() == Path(args.file).resolve():
        raise BkError("--output is the input file; bkbench writes the edit to a new file")
    device = getattr(args, "device", None)
    if not (args.assignments or args.from_tuya or device):
        raise BkError("Nothing to set: give key=value pairs, --from-tuya or --device ID.")
    if args.from_tuya and device:
        raise BkError("--from-tuya and --device both set the pins; choose one.")
    data = read_input_file(args.file, "config sector or flash dump")
    found = load_config(data, getattr(args, "chip", None), create=not is_sector_file(data))
    cfg, chip, created = found.config, found.chip, bool(found.created)
    if found.created and found.sector[:3] == b"CFG":  # a config that is there but damaged is not replaced
        raise BkError(f"{args.file}: {found.created}")
    off = found.file_offset  # where the sector is in the file as given (a rotated dump stays rotated)
    legacy = cfg.legacy_crc
    plan = _device_plan(device, found.data if found.offset is not None else None, chip) if device else None
    if plan is not None:
        apply_plan(cfg, plan)
    if args.from_tuya:
        a = analyze_dump(found.data)
        if a.mapping is None:
            why = next((w for w in (a.vault.problems if a.vault else []) if "levels deep" in w), "")
            raise BkError("No Tuya configuration found in this file" + (f" ({why})." if why else "."))
        cfg.apply_mapping(a.mapping)
    for assignment in args.assignments:
        parse_assignment(cfg, assignment)
    out = found.file_as_given_with(cfg)
    BackupLibrary().refuse_output(out_path)  # a library image is never rewritten in place
    atomic_write(out_path, out, mode=0o600, overwrite=True)
    where = f" (config sector at 0x{off:06X}, {chip})" if off is not None else ""
    if off is not None and chip and off != OBK_CONFIG_OFFSET[chip]:
        where = (f" (config sector at flash 0x{OBK_CONFIG_OFFSET[chip]:06X}, offset 0x{off:06X} of this rotated "
                 f"dump, {chip})")
    note = " The dump had no OpenBK config: a new one was created with OpenBK's defaults and the chip's MAC." \
        if created else ""
    if legacy:
        note += " It had the old bkbench checksum OpenBK rejects; it now has OpenBK's own."
    if getattr(args, "json", False):
        print(json.dumps({"ok": True, "path": str(out_path), "offset": off, "chip": chip, "created": created,
                          "set": [secret_free(a) for a in args.assignments], "from_tuya": bool(args.from_tuya),
                          "fixed_checksum": legacy, "device": plan.to_json() if plan else None}, indent=2))
    else:
        if plan is not None:
            print("\n".join(plan.summary()))
        print(f"Wrote {out_path}{where}.{note}")
    return 0


def _device_plan(key: str, dump: bytes | None, chip: str | None) -> EntryPlan:
    """The community entry `key` checked for this chip, compared with the dump's own Tuya pins."""
    dl, why = load_default()
    if dl is None:
        raise BkError(f"--device needs the community device list: {why}")
    entry = dl.get(key)
    plan_entry(entry, chip)  # refusals first: they need no analysis of the dump
    facts = facts_from_report(analyze_dump(dump).to_json()) if dump is not None else None
    return plan_entry(entry, chip, facts)


def _config_in(path: Path, blob: bytes, chip: str | None = None) -> ConfigSource | None:
    """The config `config write` would write (the old unsigned checksum refused), or None for a dump that does
    not tell its chip; BkError (one line, before linking when it can) for anything else."""
    try:
        return load_config(blob, chip, allow_legacy=False)
    except ChipUnknown:
        if chip is not None:
            raise
        return None
    except BkError as exc:
        raise BkError(f"{path}: {exc} Nothing was written; make one with `bkbench config set`.") from None


def run_write(args: argparse.Namespace) -> int:
    path = Path(args.file)
    blob = read_input_file(path, "config sector or flash dump")
    if len(blob) != SECTOR and len(blob) not in FLASH_SIZES:
        raise BkError(f"{path} is {len(blob)} bytes: give a 4 KiB config sector or a full dump (from `config set`)")
    # Before linking: the file must hold a valid config (a dump's own chip tells where it is).
    found = _config_in(path, blob)  # None: a dump that does not tell its chip (the chip's own place is used)
    library = BackupLibrary(args.library)
    if not args.no_backup:
        library.check_space(getattr(args, "flash_size", None))  # before the chip is touched
    with session_for(args) as s:
        info = s.connect()
        off = _config_offset(info.chip)
        found = found or _config_in(path, blob, info.chip)
        assert found is not None  # with the chip named, the file tells or it is refused
        if found.chip not in (None, info.chip) and OBK_CONFIG_OFFSET.get(found.chip or "") != off:
            raise BkError(f"{path} is a dump of a {found.chip}; this chip is a {info.chip}")
        s.write_config(found.sector, backup_library=library, backup_first=not args.no_backup)
    if getattr(args, "json", False):
        print(json.dumps({"ok": True, "chip": info.chip, "offset": off, "length": SECTOR}))
    else:
        print(f"OpenBK config written to 0x{off:06X} ({info.chip}) and verified by CRC")
    return 0
