"""Helpers shared by CLI commands: numbers, sessions, output."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator, NoReturn

from ..chips import MAX_FLASH  # no offset or length beyond the largest flash means anything
from ..errors import BkError
from ..link.baud import SUPPORTED_BAUDS  # exactly the rates the session takes (checked before anything else)
from ..ops.events import CancelToken, Notice
from ..session import Session
from .render import make_renderer


class HelpFormatter(argparse.HelpFormatter):
    """Wraps descriptions to the terminal; keeps the `examples:` epilog line by line."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class OneLineParser(argparse.ArgumentParser):
    """argparse with a one-line error (`bkbench: error: ...`) instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"bkbench: error: {message} (see `{self.prog} --help`)\n")


def parse_int(text: str) -> int:
    """Accept 0x11000, 69632, 1M, 64K: a flash offset or length, never negative or beyond the largest flash."""
    t = text.strip().lower().replace("_", "")
    mult = 1
    if t.endswith("k"):
        mult, t = 1024, t[:-1]
    elif t.endswith("m"):
        mult, t = 1024 * 1024, t[:-1]
    try:
        value = int(t, 0) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (use e.g. 0x11000, 4096, 64K)") from None
    if not 0 <= value <= MAX_FLASH:
        raise argparse.ArgumentTypeError(f"{text!r} is outside the flash (0 to 0x{MAX_FLASH:X})")
    return value


def baud_rate(text: str) -> int:
    """A --baud value: one of SUPPORTED_BAUDS."""
    try:
        value = int(text.strip().replace("_", ""), 0)
    except ValueError:
        value = None
    if value not in SUPPORTED_BAUDS:
        rates = ", ".join(str(b) for b in SUPPORTED_BAUDS)
        raise argparse.ArgumentTypeError(f"{text!r} is not a supported baud rate (use one of {rates})")
    return value


def demo_count(text: str) -> int:
    """--demo N: how many simulated plugs (1 to 8)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 8:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of simulated plugs (1 to 8)")
    return value


def positive_seconds(text: str) -> float:
    """A duration: finite and above zero (nan, inf and negatives would wait forever or not at all)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0 or value > 24 * 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration in seconds (a number above 0, e.g. 20)")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 0 < value <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count between 1 and 1000")
    return value


def check_output_path(path: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse an output that cannot be written, before any chip or file work is done."""
    p = os.fspath(path)
    if os.path.isdir(p):
        raise BkError(f"{p} is a directory; give a file name for the output (-o DIR/name.bin)")
    if os.path.lexists(p) and not overwrite:
        raise BkError(f"{p} exists; bkbench never overwrites it (choose another --output)")
    parent = os.path.dirname(os.path.abspath(p))
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise BkError(f"cannot write {p}: {parent} is not a directory")
    if os.path.isdir(parent) and not os.access(parent, os.W_OK):
        raise BkError(f"cannot write {p}: no write permission in {parent}")


def add_port_args(p: argparse.ArgumentParser, required: bool = True, multi: bool = False) -> None:
    if multi:  # several chips at once (core/station.py); one --port keeps the single-chip behaviour
        p.add_argument("--port", "-p", action="append", metavar="PORT",
                       help="serial port, by-id path or pyserial URL (sim://bk7231n); give it several times "
                            "to work on several chips at once")
        p.add_argument("--ports-file", metavar="FILE",
                       help="a file naming the ports, one per line (# starts a comment)")
    else:
        p.add_argument("--port", "-p", required=required,
                       help="serial port, by-id path or pyserial URL (sim://bk7231n)")
    p.add_argument("--baud", "-b", type=baud_rate, default=921600,
                   help="transfer baud rate (link is always 115200; default 921600, steps down if the adapter fails)")
    p.add_argument("--reset", default="auto",
                   help="reset method: auto, manual, dtr-rts, gui, rts, dtr, reboot, gpio:GPIO17 (CEN), power:GPIO27 "
                   "(the module's supply through a transistor) or a sequence like R1|W0.1|R0")
    p.add_argument("--timeout", type=positive_seconds, default=20.0,
                   help="seconds to wait for the chip to answer (default 20)")
    p.add_argument("--flash-size", type=parse_int, default=None,
                   help="flash size (e.g. 2M) when the chip's flash ID is unknown or disagrees with the flash")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")


@contextmanager
def session_for(args: argparse.Namespace, result_says: tuple[str, ...] = ()) -> Iterator[Session]:
    """`result_says`: starts of notices the command's own result line repeats (not printed twice)."""
    renderer = make_renderer(getattr(args, "json", False), getattr(args, "quiet", False))
    on_event = renderer
    if result_says:
        def on_event(ev) -> None:
            if not (isinstance(ev, Notice) and ev.message.startswith(result_says)):
                renderer(ev)
    s = Session(args.port, baud=args.baud, on_event=on_event, reset=args.reset, link_timeout=args.timeout,
                flash_size=getattr(args, "flash_size", None))
    # The first Ctrl-C cancels between sectors (so the error says what was done); a second one aborts.
    s.cancel_token = token = CancelToken()

    def on_sigint(_sig, _frame) -> None:
        if token.cancelled:
            raise KeyboardInterrupt
        token.cancel()
        print("bkbench: stopping after the current sector (Ctrl-C again to abort)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        s.open()
        yield s
    except KeyboardInterrupt:
        # Aborted mid-sector by a second Ctrl-C: still say what is unfinished (a sector may be erased).
        left = s.unfinished_write()
        if left:
            print(f"bkbench: aborted; {left}", file=sys.stderr)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        s.close()
        close = getattr(renderer, "close", None)
        if close:
            close()


def emit(args: argparse.Namespace, obj: dict, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(obj, indent=2, default=str))
    else:
        print(text)


def fail(message: str) -> BkError:
    return BkError(message)


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()
