"""`bkbench doctor`: diagnose why a chip does not link (read-only: it never writes the chip)."""

from __future__ import annotations

import argparse
import shutil
import textwrap

from ..errors import BkError
from ..files import read_input_file
from ..link.baud import adapter_key, forget, remembered
from ..link.doctor import diagnose
from .common import HelpFormatter, emit, positive_seconds
from .render import make_renderer

EXIT_PROBLEM = 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor", help="diagnose the link to a chip and say what to do next (never writes)",
        formatter_class=HelpFormatter,
        description="Listen to the port, reset the chip and try to link, then say why it does (not) answer: "
        "nothing on RX (wiring, GND, supply), an application log (reset at the wrong moment), answers that "
        "come and go (something loads RX1/TX1), garbage (baud or noise), our own bytes echoed (TX/RX "
        "shorted). Exit code 2 when there is a problem. Never writes the chip.",
        epilog="examples:\n  bkbench doctor -p /dev/ttyUSB0\n  bkbench doctor -p /dev/ttyUSB0 --reset manual "
        "--seconds 30\n  bkbench doctor -p /dev/ttyUSB0 --dump BACKUP.bin   (names what is on P10/P11)")
    p.add_argument("--port", "-p", required=True, help="serial port, by-id path or pyserial URL (sim://bk7231n)")
    p.add_argument("--reset", default="auto",
                   help="reset method: auto, manual, dtr-rts, gui, rts, dtr, reboot, gpio:GPIO17[,power=GPIO27], "
                   "power:GPIO27[,off=1] (a Pi GPIO switching the module's 3.3 V) or a sequence like R1|W0.1|R0")
    p.add_argument("--seconds", type=positive_seconds, default=10.0, help="how long to listen and link (default 10)")
    p.add_argument("--dump", help="a flash dump of this device: names what its config puts on P10/P11")
    p.add_argument("--forget-baud", action="store_true",
                   help="forget the baud rates remembered for this adapter, then diagnose")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_doctor)


def text_width() -> int:
    """The terminal's width (80 in a pipe unless COLUMNS says otherwise), at most 100: advice is wrapped,
    never cut."""
    return max(40, min(100, shutil.get_terminal_size((80, 24)).columns))


def cmd_doctor(args: argparse.Namespace) -> int:
    if args.seconds <= 0:
        raise BkError("--seconds must be positive")
    dump = None
    if args.dump:  # read like every other input: size-capped, never a FIFO or device, before linking
        dump = read_input_file(args.dump, "flash dump")
    key = adapter_key(args.port)
    if args.forget_baud:
        forget(key)
    json_mode = getattr(args, "json", False)
    renderer = make_renderer(json_mode, args.quiet)
    try:
        diag = diagnose(args.port, reset=args.reset, seconds=args.seconds, sink=renderer, dump=dump)
    finally:
        close = getattr(renderer, "close", None)
        if close:
            close()
    memory = remembered(key)
    out = {"ok": diag.ok, "port": args.port, **diag.to_json()}
    if memory:
        out["baud_memory"] = memory
    width = text_width()
    ev = diag.evidence
    lines = [diag.text(width)]
    seen = (f"seen: {ev.get('rx_bytes', 0)} bytes received, {ev.get('link_checks_sent', 0)} link checks sent, "
            f"{ev.get('replies', 0)} replies, reset by {ev.get('reset_method', '?')}")
    if ev.get("boot_banners"):
        seen += f", {ev['boot_banners']} boot banner" + ("s" if ev["boot_banners"] > 1 else "")
    if ev.get("adapter"):
        seen += f", adapter {ev['adapter']}"
    lines.append(textwrap.fill(seen, width, subsequent_indent="  "))
    if memory.get("good"):
        lines.append(f"this adapter last worked at {memory['good']} baud")
    text = "\n".join(lines)
    emit(args, out, text)
    return 0 if diag.ok else EXIT_PROBLEM
