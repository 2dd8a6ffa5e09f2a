"""Commands that talk to a chip: ports, info, read, write, verify, reboot."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import remote_ports
from ..analysis.devices import note_after_backup
from ..backups import BackupLibrary, atomic_write
from ..chips import MiB
from ..errors import BkError
from ..images.placement import compare_target, load_firmware, place
from ..images.recognize import unrotate
from ..ops.events import Notice
from ..ports import list_ports
from ..station import Plan
from .common import HelpFormatter, add_port_args, check_output_path, emit, parse_int, session_for
from .station import ports_of, refuse_single_only, run_station, single

RAW = HelpFormatter


def _cmd(sub: argparse._SubParsersAction, name: str, summary: str, description: str, examples: list[str]):
    return sub.add_parser(name, help=summary, description=description, formatter_class=RAW,
                          epilog="examples:\n" + "\n".join(f"  {e}" for e in examples))


def register(sub: argparse._SubParsersAction) -> None:
    p = _cmd(sub, "ports", "list serial ports with adapter names",
             "List serial ports: USB adapters by name (CH340, CP2102, FT232, PL2303), VID:PID, the stable "
             "/dev/serial/by-id path, the Raspberry Pi's own UARTs, and whether another program holds them; "
             "then the remote ports (ser2net: rfc2217://, socket://) named in the config file, each checked "
             "with a short TCP connect unless --no-probe.",
             ["bkbench ports", "bkbench ports --json",
              "bkbench ports --add rfc2217://pi.local:3333 --name 'garage Pi, CB2S jig'",
              "bkbench ports --remove rfc2217://pi.local:3333"])
    edit = p.add_mutually_exclusive_group()
    edit.add_argument("--add", metavar="URL", help="remember a remote port (rfc2217://HOST:PORT or socket://HOST:PORT)")
    edit.add_argument("--remove", metavar="URL", help="forget a remote port")
    p.add_argument("--name", default="", help="with --add: what the remote port is (shown in the list)")
    p.add_argument("--no-probe", action="store_true", help="list remote ports without connecting to them")
    p.set_defaults(func=cmd_ports)

    p = _cmd(sub, "info", "link, identify chip, bootloader, flash and MAC",
             "Link to the chip's bootloader (reset it as asked), then say which chip, bootloader, flash and MAC "
             "it has. Reads a few bytes only; never writes.",
             ["bkbench info -p /dev/ttyUSB0", "bkbench info -p /dev/ttyUSB0 --reset manual",
              "bkbench info -p sim://bk7231n --json",
              "bkbench info -p /dev/ttyUSB0 -p /dev/ttyUSB1   (several chips: a table of chip and MAC)"])
    add_port_args(p, multi=True)
    p.set_defaults(func=cmd_info)

    p = _cmd(sub, "read", "read flash (whole chip by default) verified by CRC",
             "Read the flash, every block verified against the chip's own CRC. The whole chip goes into the "
             "backup library (0600 files, JSON sidecar); a part or an --output goes to a new file "
             "(never overwritten).",
             ["bkbench read -p /dev/ttyUSB0", "bkbench read -p /dev/ttyUSB0 -o plug.bin",
              "bkbench read -p /dev/ttyUSB0 --start 0x1D0000 --length 8K -o rf-and-config.bin",
              "bkbench read -p /dev/ttyUSB0 -p /dev/ttyUSB1 -p /dev/ttyUSB2   (several chips at once)"])
    add_port_args(p, multi=True)
    p.add_argument("--output", "-o", help="file to write (default: into the backup library)")
    p.add_argument("--start", type=parse_int, default=0, help="first flash address (default 0)")
    p.add_argument("--length", type=parse_int, default=None, help="bytes to read (default: to the end of flash)")
    p.add_argument("--library", help="backup library directory (default: DATA_DIR/backups)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--efuse", action="store_true", help="read the 32 eFuse bytes instead (BK7231N family)")
    what.add_argument("--rom", action="store_true", help="read the 16 KiB mask ROM instead (BK7231N family)")
    p.set_defaults(func=cmd_read)

    p = _cmd(sub, "write", "write an image (recognised by content) with a backup first",
             "Write a firmware file where its content says it belongs (QIO/UA at 0x11000, a UG/RBL OTA package "
             "converted to its UA image, a full dump as a restore, raw data at --start). A full verified backup "
             "is taken first unless this chip already has one; only sectors that differ are written; everything "
             "is verified by CRC and compared once more at the end; then the chip is rebooted and its boot "
             "banner checked. The file is checked before the chip is touched.",
             ["bkbench write -p /dev/ttyUSB0 OpenBK7231N_QIO_1.18.219.bin",
              "bkbench image convert OpenBeken-v1.18.219_bk7231n.ug.bin -o obk.bin && "
              "bkbench write -p /dev/ttyUSB0 obk.bin",
              "bkbench write -p /dev/ttyUSB0 --start 0x1D1000 cfg.bin",
              "bkbench write --ports-file bench.txt OpenBK7231N_QIO_1.18.219.bin   (several chips at once)"])
    add_port_args(p, multi=True)
    p.add_argument("file", help="QIO or UA image, full dump, or raw data with --start")
    p.add_argument("--start", type=parse_int, default=None, help="flash offset (raw files only)")
    p.add_argument("--no-backup", action="store_true", help="skip the automatic full backup")
    p.add_argument("--replace-bootloader", action="store_true", help="also write the bootloader (QIO/dumps)")
    p.add_argument("--replace-rf", action="store_true",
                   help="also write the RF calibration / MAC sector (a full dump's; normally the chip's own is kept)")
    p.add_argument("--allow-protected", action="store_true",
                   help="allow writes over the bootloader and RF calibration sectors (both)")
    p.add_argument("--other-device", action="store_true",
                   help="allow writing a full dump of another device (another MAC) onto this chip")
    p.add_argument("--full", action="store_true", help="rewrite every sector, not only those that differ")
    p.add_argument("--no-reboot", action="store_true", help="leave the chip in its bootloader afterwards")
    p.add_argument("--library", help="backup library directory (default: DATA_DIR/backups)")
    p.set_defaults(func=cmd_write)

    p = _cmd(sub, "restore", "write a full backup back (RF calibration kept from the chip)",
             "Put a full dump (e.g. from the backup library) back on the chip: everything above the bootloader, "
             "except the RF calibration / MAC sector, which the chip keeps. Differential and CRC-verified, "
             "then rebooted (--no-reboot leaves it in its bootloader).",
             ["bkbench restore -p /dev/ttyUSB0 ~/.local/share/bkbench/backups/BK7231N-....bin",
              "bkbench backups     (to find the file)"])
    add_port_args(p)
    p.add_argument("file", help="a full dump, e.g. from the backup library")
    p.add_argument("--bootloader", action="store_true", help="also restore the bootloader (BK7231N only is safe)")
    p.add_argument("--replace-rf", action="store_true", help="also restore the RF calibration / MAC sector")
    p.add_argument("--yes", action="store_true", help="confirm restoring the bootloader")
    p.add_argument("--other-device", action="store_true",
                   help="allow restoring a dump of another device (another MAC) onto this chip")
    p.add_argument("--no-backup", action="store_true", help="skip the automatic full backup")
    p.add_argument("--no-reboot", action="store_true", help="leave the chip in its bootloader afterwards")
    p.add_argument("--library", help="backup library directory (default: DATA_DIR/backups)")
    p.set_defaults(func=cmd_restore)

    p = _cmd(sub, "verify", "compare the chip with a file by CRC",
             "Compare the chip with a file, 4 KiB at a time, by the chip's CRC (no full read), where `bkbench "
             "write FILE` puts it (a QIO/UA image or an OTA package after the bootloader, a full dump from 0, "
             "raw data at --start); lists the ranges that differ. Exit code 2 when they differ.",
             ["bkbench verify -p /dev/ttyUSB0 BACKUP.bin", "bkbench verify -p /dev/ttyUSB0 --start 0x11000 app.bin"])
    add_port_args(p)
    p.add_argument("file", help="the file to compare with")
    p.add_argument("--start", type=parse_int, default=None,
                   help="flash address of the file's first byte (raw data; default: where a write of the file goes, "
                        "0 for raw data and full dumps)")
    p.set_defaults(func=cmd_verify)

    p = _cmd(sub, "reboot", "reboot the chip into its firmware",
             "Link, then tell the bootloader to start the firmware.", ["bkbench reboot -p /dev/ttyUSB0"])
    add_port_args(p)
    p.set_defaults(func=cmd_reboot)


def cmd_ports(args: argparse.Namespace) -> int:
    if args.name and not args.add:
        raise BkError("--name goes with --add URL")
    if args.add:
        remote_ports.add(args.add, args.name)
    elif args.remove and not remote_ports.remove(args.remove):
        raise BkError(f"{args.remove} is not in the remote ports list ({remote_ports.userconfig.config_path()})")
    ports = list_ports() + remote_ports.remote_ports(probe=not args.no_probe)
    emit(args, {"ports": [p.to_json() for p in ports]}, _ports_text(ports))
    return 0


NO_ADAPTER = "no USB serial adapter found: plug one in (CH340, CP2102, FT232, PL2303) or try sim://bk7231n"


def _ports_text(ports: list) -> str:
    """The port table with its header, then one line when no USB adapter is among them: a lone /dev/ttyS0
    row (a PC's own, usually unwired, UART) must not read as an adapter."""
    if not ports:
        return "no serial ports found (the simulator is sim://bk7231n; remote ports: " \
               "bkbench ports --add rfc2217://HOST:PORT)"
    w = max([22] + [len(p.device) for p in ports])  # a long remote URL must not shift its row
    lines = [f"{'port':<{w}} {'adapter':<10} {'VID:PID':<10} description"]
    for p in ports:
        if p.kind == "remote":
            state = {True: "reachable ", False: "", None: ""}[p.reachable]
            lines.append(f"{p.device:<{w}} {p.adapter:<10} {'remote':<10} {state}{p.description}")
        else:
            use = "IN USE " if p.in_use else ""
            desc = "" if p.description in ("", "n/a") else p.description
            lines.append(f"{p.device:<{w}} {p.adapter or '-':<10} {p.vid_pid or '-':<10} {use}"
                         f"{desc} {p.by_id}".rstrip())
    if not any(p.kind == "usb" for p in ports):
        lines.append(NO_ADAPTER)
    return "\n".join(lines)


def _size_text(n: int) -> str:
    return f"{n // MiB} MiB" if n % MiB == 0 else f"{n // 1024} KiB"


def _info_text(info) -> str:
    """`bkbench info` for a person: labelled lines, sizes in MiB, warnings one per line."""
    j = info.to_json()
    rows = [("chip", j["chip"] + (f" (chip ID {j['chip_id']})" if j.get("chip_id") else ""))]
    boot = j.get("bootloader") or "not recognised"
    if j.get("bootloader_table"):
        boot += f" (CRC tables: {j['bootloader_table']})"
    rows.append(("bootloader", f"{boot}, CRC {j['boot_crc']}" + (f", version {j['boot_version']}"
                                                                   if j.get("boot_version") else "")))
    flash = _size_text(j["flash_size"])
    if j.get("flash_id"):
        flash += f", ID {j['flash_id']}" + (f" ({j['flash_name']})" if j.get("flash_name") else "")
    if not j.get("size_trusted", True):
        flash += " (NOT confirmed: writes are refused until --flash-size is given)"
    rows.append(("flash", flash))
    rows.append(("MAC", j.get("mac") or "not found (no RF/TLV sector?)"))
    rows.append(("link", f"{j['baud']:,} baud ({j['dialect']} protocol)"))
    if j.get("adapter"):
        rows.append(("adapter", j["adapter"]))
    lines = [f"{k:<11} {v}" for k, v in rows]
    lines += [f"warning     {w}" for w in j.get("warnings") or []]
    return "\n".join(lines)


def cmd_info(args: argparse.Namespace) -> int:
    from ..efuse import efuse_summary

    ports = ports_of(args)
    if not single(args, ports):
        return run_station(args, ports, Plan(backup=False))

    with session_for(args) as s:
        info = s.connect()
        extra = efuse_summary(s.client, info)
        # Taken before the session closes: closing drops the link back to 115200 and says so in `info`.
        text = _info_text(info)
        data = info.to_json()
    labels = {"efuse_key": "eFuse key", "variant": "variant"}
    text += "".join(f"\n{labels.get(k, k):<11} {v}" for k, v in extra.items())
    emit(args, {"ok": True, **data, **extra}, text)
    return 0


def cmd_read(args: argparse.Namespace) -> int:
    ports = ports_of(args)
    if not single(args, ports):
        refuse_single_only(args, {"--output": args.output, "--start": args.start or None,
                                  "--length": args.length, "--efuse": args.efuse, "--rom": args.rom})
        return run_station(args, ports, Plan(backup=True))
    if args.efuse or args.rom:
        return cmd_read_registers(args)
    if args.output:
        check_output_path(args.output)  # before linking: a refusal after a 3-minute read helps nobody
    if args.length == 0:
        raise BkError("--length 0 reads nothing; give a length in bytes (e.g. 64K) or leave it out")
    if args.start % 0x1000 or (args.length or 0) % 0x1000:
        raise BkError("reads go by 4 KiB sectors: --start and --length must be multiples of 0x1000 (4K)")
    if args.output is None and args.start == 0 and args.length is None:
        BackupLibrary(args.library).check_space()  # before the chip is touched
    elif args.output:
        BackupLibrary(args.library).refuse_output(args.output)  # a dump never lands inside a library
    with session_for(args, result_says=("backup saved:",)) as s:  # the last line names the backup
        info = s.connect()
        whole = args.start == 0 and (args.length is None or args.length == info.flash_size)
        if args.output is None and whole:
            got = s.backup(BackupLibrary(args.library))
            text = (f"backup saved: {got.entry.path}" if got.taken else
                    f"backup already in the library (same content, not read again): {got.entry.path}")
            emit(args, {"ok": True, "path": str(got.entry.path), "taken": got.taken, **got.entry.meta}, text)
            if got.taken and not getattr(args, "json", False):  # the closest community list entry, when cached
                note_after_backup(Path(got.entry.path).read_bytes(), got.entry.meta.get("chip"), print)
            return 0
        data = s.read(args.start, args.length)
    out = Path(args.output or f"bkbench-{args.start:06x}-{len(data):x}.bin")
    if out.exists():
        raise BkError(f"{out} exists; bkbench never overwrites a dump (choose another --output)")
    atomic_write(out, data)
    emit(args, {"ok": True, "path": str(out), "start": args.start, "length": len(data)},
         f"read 0x{args.start:06X}+0x{len(data):X} verified by CRC -> {out}")
    return 0


def cmd_write(args: argparse.Namespace) -> int:
    ports = ports_of(args)
    if not single(args, ports):
        refuse_single_only(args, {"--start": args.start, "--replace-bootloader": args.replace_bootloader,
                                  "--replace-rf": args.replace_rf, "--allow-protected": args.allow_protected,
                                  "--other-device": args.other_device})
        return run_station(args, ports, Plan(backup=not args.no_backup, image=Path(args.file),
                                             reboot=not args.no_reboot, differential=not args.full))
    fw = load_firmware(args.file)
    place(fw, offset=args.start, replace_bootloader=args.replace_bootloader)  # before linking: kind, size, place
    library = BackupLibrary(args.library)
    if not args.no_backup:
        library.check_space(getattr(args, "flash_size", None))  # before the chip is touched
    with session_for(args) as s:
        info = s.connect()
        plan = place(fw, info.chip, info.flash_size, offset=args.start, replace_bootloader=args.replace_bootloader)
        if fw.note:
            s.sink(Notice("info", fw.note))
        s.sink(Notice("info", f"{fw.name}: {plan.description}"))
        if plan.dump:
            # A full dump is a restore: the chip keeps its own RF calibration / MAC sector.
            report = s.restore(unrotate(fw.data, fw.info.rotation),
                               include_bootloader=args.replace_bootloader or args.allow_protected,
                               keep_rf=not (args.allow_protected or args.replace_rf), backup_library=library,
                               backup_first=not args.no_backup, expected_chip=fw.info.chip,
                               accept_other_device=args.other_device, reboot=not args.no_reboot)
        else:
            allowed = {"bootloader", "rf"} if args.allow_protected else set()
            allowed |= {"bootloader"} if args.replace_bootloader else set()
            allowed |= {"rf"} if args.replace_rf else set()
            report = s.write_image(plan, allow_regions=allowed, backup_library=library,
                                   backup_first=not args.no_backup, differential=not args.full,
                                   reboot=not args.no_reboot)
    emit(args, {"ok": True, "what": plan.description, "format": fw.info.format, "start": plan.start,
                "length": len(plan.payload), "written": report.written, "skipped": report.skipped,
                "erased_only": report.erased_only, "backup": str(report.backup.path) if report.backup else None},
         f"{plan.description}: {report.summary()}, verified by CRC")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    fw = load_firmware(args.file, "full dump")
    if args.bootloader and not args.yes:
        raise BkError("restoring the bootloader can brick a BK7231T: add --yes to confirm")
    if not fw.is_dump:
        kind = fw.info.description
        raise BkError(f"{Path(args.file).name} is {kind[:1].lower() + kind[1:]}, not a full flash dump; restore takes "
                      "a backup", hint=f"to write firmware: bkbench write -p PORT {Path(args.file).name}")
    if not args.no_backup:
        BackupLibrary(args.library).check_space(getattr(args, "flash_size", None))  # before the chip is touched
    with session_for(args) as s:
        info = s.connect()
        report = s.restore(fw.data, include_bootloader=args.bootloader, keep_rf=not args.replace_rf,
                           backup_library=BackupLibrary(args.library), backup_first=not args.no_backup,
                           expected_chip=fw.info.chip, accept_other_device=args.other_device,
                           reboot=not args.no_reboot)
    emit(args, {"ok": True, "chip": info.chip, "written": report.written, "skipped": report.skipped,
                "erased_only": report.erased_only}, f"restored {Path(args.file).name}: {report.summary()}, "
                                                    "verified by CRC")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    fw = load_firmware(args.file, "file to compare")
    with session_for(args) as s:
        info = s.connect()
        start, data = compare_target(fw, info.chip, info.flash_size, args.start)
        if start or fw.info.format in ("qio", "ua"):
            s.sink(Notice("info", f"{Path(args.file).name}: compared at 0x{start:06X}, where a write of it goes"))
        report = s.verify(data, start)
    emit(args, {"ok": report.ok, "start": start, "mismatched": [[hex(a), hex(b)] for a, b in report.mismatched]},
         report.summary())
    return 0 if report.ok else 2


def cmd_reboot(args: argparse.Namespace) -> int:
    with session_for(args) as s:
        s.connect()
        s.reboot()
    emit(args, {"ok": True}, "rebooted")
    return 0


def cmd_read_registers(args: argparse.Namespace) -> int:
    """`bkbench read --efuse | --rom`: save the bytes to a new file (never overwrites)."""
    from ..efuse import read_efuse, read_rom

    what = "efuse" if args.efuse else "rom"
    out = Path(args.output or f"bkbench-{what}.bin")
    if out.exists():
        raise BkError(f"{out} exists; bkbench never overwrites a dump (choose another --output)")
    with session_for(args) as s:
        s.connect()
        client = s._client()
        data = read_efuse(client) if args.efuse else read_rom(client)
    atomic_write(out, data)
    note = "read twice, both reads agree" if args.efuse else "registers carry no CRC"
    emit(args, {"ok": True, "path": str(out), "memory": what, "length": len(data)},
         f"{what}: {len(data)} bytes ({note}) -> {out}")
    return 0
