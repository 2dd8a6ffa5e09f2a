"""`bkbench image FILE`: say what a firmware file is and where it would be written."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ImageError
from ..images.recognize import MAX_IMAGE_SIZE, ImageInfo, recognize


def read_image_file(path: str | Path) -> bytes:
    """Read a firmware file, refusing what cannot be a BK7231 image before loading it."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if not p.is_file():
            raise ImageError(f"{p} is not a file.")
        if size > MAX_IMAGE_SIZE:
            raise ImageError(f"{p} is {size} bytes, larger than any BK7231 flash.")
        return p.read_bytes()
    except OSError as exc:
        raise ImageError(f"Cannot read {p}: {exc.strerror or exc}.") from None


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
    data = read_image_file(args.file)
    info = recognize(data, Path(args.file).name)
    if getattr(args, "json", False):
        print(json.dumps(info.to_json(), indent=2))
    else:
        print(format_info(info, args.file))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("image", help="say what a firmware file is and where it would be written")
    p.add_argument("file", help="firmware file (QIO, UA, RBL/UG, dump, ...)")
    # SUPPRESS keeps the main parser's --json when the flag is given before the command.
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    p.set_defaults(func=cmd_image)
