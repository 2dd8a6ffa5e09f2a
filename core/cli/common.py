"""Helpers shared by CLI commands: numbers, sessions, output."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

from ..errors import BkError
from ..ops.events import CancelToken
from ..session import Session
from .render import make_renderer


def parse_int(text: str) -> int:
    """Accept 0x11000, 69632, 1M, 64K."""
    t = text.strip().lower().replace("_", "")
    mult = 1
    if t.endswith("k"):
        mult, t = 1024, t[:-1]
    elif t.endswith("m"):
        mult, t = 1024 * 1024, t[:-1]
    try:
        return int(t, 0) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (use e.g. 0x11000, 4096, 64K)") from None


def add_port_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--port", "-p", required=required, help="serial port, by-id path or pyserial URL (sim://bk7231n)")
    p.add_argument("--baud", "-b", type=int, default=921600, help="transfer baud rate (link is always 115200)")
    p.add_argument("--reset", default="auto",
                   help="reset method: auto, manual, dtr-rts, gui, rts, dtr or a sequence like R1|W0.1|R0")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for the chip to answer")
    p.add_argument("--flash-size", type=parse_int, default=None,
                   help="flash size (e.g. 2M) when the chip's flash ID is unknown or disagrees with the flash")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")


@contextmanager
def session_for(args: argparse.Namespace) -> Iterator[Session]:
    renderer = make_renderer(getattr(args, "json", False), getattr(args, "quiet", False))
    s = Session(args.port, baud=args.baud, on_event=renderer, reset=args.reset, link_timeout=args.timeout,
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
        left = s.unfinished()
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
