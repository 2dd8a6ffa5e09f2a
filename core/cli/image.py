"""`bkbench image FILE`: say what a firmware file is and where it would be written."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..chips import SUPPORTED_CHIPS
from ..errors import ImageError
from ..files import read_input_file
from ..images.recognize import ImageInfo, recognize
from .common import HelpFormatter, check_output_path


def format_info(info: ImageInfo, name: str = "") -> str:
    """Human text for `bkbench image`."""
    lines = [f"{name}: {info.description}" if name else info.description]
    lines.append(f"  format   {info.format}")
    chip = info.chip or ("one of " + ", ".join(info.candidates) if info.candidates else "unknown")
    lines.append(f"  chip     {chip}" + (f" (from {info.chip_source})" if info.chip_source else ""))
    if info.code_key:
        lines.append(f"  key      {info.code_key}")
    if info.version:
        lines.append(f"  version  {info.version}")
    if info.bootloader:
        lines.append(f"  boot     {info.bootloader}")
    lines.append(f"  size     {info.size} bytes")
    if info.write_offset is not None:
        lines.append(
            f"  write    0x{info.write_offset:06X}..0x{info.write_offset + info.length:06X}"
            f" (skip first 0x{info.skip:X} bytes of the file, 0x{info.length:X} bytes)"
        )
        if info.rotation:
            lines.append(f"           after putting the rotated dump back in order (it starts at 0x{info.rotation:X})")
        if info.format in ("qio", "dump"):
            lines.append("           bootloader (0x0-0x10FFF) kept unless you explicitly ask to replace it")
    else:
        lines.append("  write    not written over UART as is")
    lines += [f"  warning  {w}" for w in info.warnings]
    return "\n".join(lines)


def cmd_image(args: argparse.Namespace) -> int:
    if args.file == "convert" and (args.ota or not Path(args.file).exists()):
        return cmd_convert(args)
    if args.ota:
        raise ImageError(f"unexpected argument {args.ota!r} (to convert an OTA file: bkbench image convert "
                         "FILE -o OUT.bin)")
    if args.output or args.chip:
        raise ImageError("-o/--chip belong to `bkbench image convert OTA_FILE -o OUT.bin`")
    data = read_input_file(args.file, "firmware file")
    info = recognize(data, Path(args.file).name)
    if getattr(args, "json", False):
        print(json.dumps(info.to_json(), indent=2))
    else:
        print(format_info(info, args.file))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    """UG/RBL OTA package -> the UA image written over UART at 0x11000 (the chip's bootloader is kept)."""
    from ..images.builders import build_ua
    from ..images.rbl import unpack_ota

    if not args.ota:
        raise ImageError("give the OTA file to convert: bkbench image convert FILE.rbl -o OUT.bin")
    if not args.output:
        raise ImageError("give the file to write: bkbench image convert FILE.rbl -o OUT.bin")
    check_output_path(args.output)
    data = read_input_file(args.ota, "OTA package")
    name = Path(args.ota).name
    info = recognize(data, name)
    if info.format not in ("rbl", "ug"):
        raise ImageError(f"{name} is a {info.format} file, not an OTA package (RBL/UG): "
                         + ("it can be written as it is" if info.write_offset is not None else "nothing to convert"))
    chip = (args.chip or "").upper() or info.chip or ""
    if args.chip and info.chip and info.chip != chip:
        raise ImageError(f"{name} is built for {info.chip} (from its {info.chip_source}), not {chip}",
                         hint=f"download the {chip} build: bkbench fetch --chip {chip.lower()}")
    app = unpack_ota(data)
    ua = build_ua(app)
    out = Path(args.output)
    check = recognize(ua, out.name)
    if check.format != "ua":  # e.g. a package holding something other than an app for 0x10000
        raise ImageError(f"{name} does not hold a BK7231 application (its content does not start like one); "
                         "nothing written")
    from ..backups import atomic_write

    atomic_write(out, ua, mode=0o644)
    what = (f"{name}: {info.format.upper()} OTA package{' of ' + info.version if info.version else ''} "
            f"for {chip or 'an unknown chip'}")
    done = (f"unpacked the {len(app):,}-byte app (checked against the package's hash), encrypted it for flash "
            f"0x11000 with CRC16s -> {out} ({len(ua):,} bytes, {check.format.upper()} image)")
    how = f"write it with: bkbench write -p PORT {out}   (the chip's bootloader and RF calibration are kept)"
    if getattr(args, "json", False):
        print(json.dumps({"ok": True, "input": str(args.ota), "input_format": info.format, "chip": chip,
                          "version": info.version, "app_size": len(app), "output": str(out),
                          "output_format": check.format, "write_offset": check.write_offset,
                          "size": len(ua)}, indent=2))
    else:
        print(f"{what}\n{done}\n{how}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "image", help="say what a firmware file is and where it would go; convert OTA packages",
        usage="bkbench image FILE [--json]\n       bkbench image convert OTA_FILE -o OUT.bin [--chip CHIP]",
        formatter_class=HelpFormatter,
        description="Recognise a firmware file by its content (QIO, UA, RBL/UG OTA package, full dump, OpenBK "
        "config) and say which chip it is for and where on the flash it would be written. `image convert` "
        "turns a UG/RBL OTA package (what tuya-cloudcutter and OTA updates use, never written over UART) "
        "into the UA image that goes to flash 0x11000.",
        epilog="examples:\n  bkbench image OpenBK7231N_QIO_1.18.219.bin\n"
        "  bkbench image convert OpenBeken-v1.18.219_bk7231n.ug.bin -o obk-n.bin\n"
        "  bkbench write -p /dev/ttyUSB0 obk-n.bin",
    )
    p.add_argument("file", help="firmware file (QIO, UA, RBL/UG, dump, ...), or `convert`")
    p.add_argument("ota", nargs="?", help=argparse.SUPPRESS)
    p.add_argument("--output", "-o", help="convert: the UART image to write")
    p.add_argument("--chip", type=str.upper, choices=SUPPORTED_CHIPS,
                   help="convert: the chip it is for (checked against the package)")
    # SUPPRESS keeps the main parser's --json when the flag is given before the command.
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    p.set_defaults(func=cmd_image)
