"""Commands that talk to a chip: ports, info, read, write, verify, reboot."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..backups import BackupLibrary, atomic_write
from ..errors import BkError
from ..ops.events import Notice
from ..ports import list_ports
from .common import add_port_args, emit, parse_int, session_for
from .image import read_image_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ports", help="list serial ports with adapter names")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    p.set_defaults(func=cmd_ports)

    p = sub.add_parser("info", help="link, identify chip, bootloader, flash and MAC")
    add_port_args(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("read", help="read flash (whole chip by default) verified by CRC")
    add_port_args(p)
    p.add_argument("--output", "-o", help="file to write (default: into the backup library)")
    p.add_argument("--start", type=parse_int, default=0)
    p.add_argument("--length", type=parse_int, default=None)
    p.add_argument("--library", help="backup library directory")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--efuse", action="store_true", help="read the 32 eFuse bytes instead (BK7231N family)")
    what.add_argument("--rom", action="store_true", help="read the 16 KiB mask ROM instead (BK7231N family)")
    p.set_defaults(func=cmd_read)

    p = sub.add_parser("write", help="write an image (recognised by content) with a backup first")
    add_port_args(p)
    p.add_argument("file")
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
    p.add_argument("--no-reboot", action="store_true")
    p.add_argument("--library", help="backup library directory")
    p.set_defaults(func=cmd_write)

    p = sub.add_parser("restore", help="write a full backup back (RF calibration kept from the chip)")
    add_port_args(p)
    p.add_argument("file", help="a full dump, e.g. from the backup library")
    p.add_argument("--bootloader", action="store_true", help="also restore the bootloader (BK7231N only is safe)")
    p.add_argument("--replace-rf", action="store_true", help="also restore the RF calibration / MAC sector")
    p.add_argument("--yes", action="store_true", help="confirm restoring the bootloader")
    p.add_argument("--other-device", action="store_true",
                   help="allow restoring a dump of another device (another MAC) onto this chip")
    p.add_argument("--no-backup", action="store_true", help="skip the automatic full backup")
    p.add_argument("--library", help="backup library directory")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("verify", help="compare the chip with a file by CRC")
    add_port_args(p)
    p.add_argument("file")
    p.add_argument("--start", type=parse_int, default=0)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("reboot", help="reboot the chip into its firmware")
    add_port_args(p)
    p.set_defaults(func=cmd_reboot)


def cmd_ports(args: argparse.Namespace) -> int:
    ports = list_ports()
    lines = [f"{p.device:<22} {p.adapter or '-':<10} {p.vid_pid or '-':<10} {'IN USE ' if p.in_use else ''}"
             f"{p.description} {p.by_id}".rstrip() for p in ports]
    emit(args, {"ports": [p.to_json() for p in ports]},
         "\n".join(lines) if lines else "no serial ports found (the simulator is sim://bk7231n)")
    return 0


def _info_text(info) -> str:
    j = info.to_json()
    return "\n".join(f"{k:<13} {v}" for k, v in j.items() if v not in (None, [], ""))


def cmd_info(args: argparse.Namespace) -> int:
    from ..efuse import efuse_summary

    with session_for(args) as s:
        info = s.connect()
        extra = efuse_summary(s.client, info)
    text = _info_text(info) + "".join(f"\n{k:<13} {v}" for k, v in extra.items())
    emit(args, {"ok": True, **info.to_json(), **extra}, text)
    return 0


def cmd_read(args: argparse.Namespace) -> int:
    if args.efuse or args.rom:
        from ..efuse import cmd_read_registers

        return cmd_read_registers(args)
    if args.output is None and args.start == 0 and args.length is None:
        BackupLibrary(args.library).check_space()  # before the chip is touched
    elif args.output:
        BackupLibrary(args.library).refuse_output(args.output)  # a dump never lands inside a library
    with session_for(args) as s:
        info = s.connect()
        whole = args.start == 0 and (args.length is None or args.length == info.flash_size)
        if args.output is None and whole:
            entry = s.backup(BackupLibrary(args.library))
            emit(args, {"ok": True, "path": str(entry.path), **entry.meta}, f"backup saved: {entry.path}")
            return 0
        data = s.read(args.start, args.length)
    out = Path(args.output or f"bkbench-{args.start:06x}-{len(data):x}.bin")
    if out.exists():
        raise BkError(f"{out} exists; bkbench never overwrites a dump (choose another --output)")
    atomic_write(out, data)
    emit(args, {"ok": True, "path": str(out), "start": args.start, "length": len(data)},
         f"read 0x{args.start:06X}+0x{len(data):X} verified by CRC -> {out}")
    return 0


def plan_for_file(data: bytes, name: str, chip: str, start: int | None, replace_bootloader: bool):
    """What to write where, decided by the file's content (images.recognize)."""
    from ..images.recognize import check_compatible, plan_write, recognize

    info = recognize(data, name)
    check_compatible(info, chip)
    plan = plan_write(info, data, chip, replace_bootloader=replace_bootloader, offset=start)
    return info, plan


def cmd_write(args: argparse.Namespace) -> int:
    path = Path(args.file)
    data = read_image_file(path)
    BackupLibrary(getattr(args, "library", None)).verify_file(path)  # a damaged library image is refused
    with session_for(args) as s:
        chip = s.connect().chip
        image, plan = plan_for_file(data, path.name, chip, args.start, args.replace_bootloader)
        s.sink(Notice("info", f"{path.name}: {plan.description}"))
        if image.format == "dump":
            # A full dump is a restore: the chip keeps its own RF calibration / MAC sector.
            report = s.restore(data if not image.rotation else plan_payload_flash(image, data),
                               include_bootloader=args.replace_bootloader or args.allow_protected,
                               keep_rf=not (args.allow_protected or args.replace_rf),
                               backup_library=BackupLibrary(args.library), backup_first=not args.no_backup,
                               expected_chip=image.chip, accept_other_device=args.other_device)
        else:
            allowed = {"bootloader", "rf"} if args.allow_protected else set()
            if args.replace_bootloader:
                allowed.add("bootloader")
            if args.replace_rf:
                allowed.add("rf")
            report = s.write(
                plan.payload, plan.start,
                allow_regions=allowed,
                backup_library=BackupLibrary(args.library),
                backup_first=not args.no_backup,
                differential=not args.full,
            )
        if not args.no_reboot:
            s.reboot()
            s.confirm_boot(5.0)
    emit(args, {"ok": True, "what": plan.description, "format": image.format, "start": plan.start,
                "length": len(plan.payload), "written": report.written, "skipped": report.skipped,
                "erased_only": report.erased_only, "backup": str(report.backup.path) if report.backup else None},
         f"{plan.description}: {report.summary()}, verified by CRC")
    return 0


def plan_payload_flash(image, data: bytes) -> bytes:
    """A rotated dump put back in flash order."""
    from ..images.recognize import unrotate

    return unrotate(data, image.rotation)


def cmd_restore(args: argparse.Namespace) -> int:
    path = Path(args.file)
    data = read_image_file(path)
    BackupLibrary(getattr(args, "library", None)).verify_file(path)  # a damaged library image is refused
    if args.bootloader and not args.yes:
        raise BkError("restoring the bootloader can brick a BK7231T: add --yes to confirm")
    with session_for(args) as s:
        info = s.connect()
        from ..analysis.dump import identify_bootloader

        found = identify_bootloader(data)
        chip = found[0] if found else None
        report = s.restore(data, include_bootloader=args.bootloader, keep_rf=not args.replace_rf,
                           backup_library=BackupLibrary(args.library), backup_first=not args.no_backup,
                           expected_chip=chip, accept_other_device=args.other_device)
    emit(args, {"ok": True, "chip": info.chip, "written": report.written, "skipped": report.skipped,
                "erased_only": report.erased_only}, f"restored {path.name}: {report.summary()}, verified by CRC")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    path = Path(args.file)
    data = read_image_file(path)
    BackupLibrary(getattr(args, "library", None)).verify_file(path)  # a damaged library image is refused
    with session_for(args) as s:
        s.connect()
        report = s.verify(data, args.start)
    emit(args, {"ok": report.ok, "mismatched": [[hex(a), hex(b)] for a, b in report.mismatched]},
         report.summary())
    return 0 if report.ok else 2


def cmd_reboot(args: argparse.Namespace) -> int:
    with session_for(args) as s:
        s.connect()
        s.reboot()
    emit(args, {"ok": True}, "rebooted")
    return 0
