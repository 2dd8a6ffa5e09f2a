"""`bkbench`: the headless CLI. With no subcommand it opens the Textual workbench."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from .. import __version__
from ..errors import BkError

# Command groups, each a module with register(subparsers); optional ones may be absent.
COMMAND_MODULES = ("device", "simulate", "analyze", "config", "image", "fetch", "doctor", "backups")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bkbench",
        description="Back up and flash Beken BK7231N/T chips with OpenBeken. "
        "Without a command the workbench (TUI) opens.",
    )
    parser.add_argument("--version", action="version", version=f"bkbench {__version__}")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--port", "-p", help="serial port or URL for the workbench")
    parser.add_argument("--demo", action="store_true", help="open the workbench on a simulated chip")
    parser.add_argument("--baud", "-b", type=int, default=921600, help="transfer baud rate for the workbench")
    parser.add_argument("--data-dir", help="where backups and logs go (default: XDG data dir)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.endswith(f"cli.{name}"):
                continue
            raise
        module.register(sub)
    return parser


def run_tui(args: argparse.Namespace) -> int:
    # Imported lazily: the engine and the CLI must work without loading Textual.
    tui = importlib.import_module("bkbench.tui.app")
    return int(tui.run(port=args.port, demo=args.demo, baud=args.baud, data_dir=args.data_dir) or 0)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    try:
        if func is None:
            return run_tui(args)
        return int(func(args) or 0)
    except BkError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "error": str(exc), "hint": exc.hint}))
        print(f"bkbench: error: {exc}", file=sys.stderr)
        if exc.hint and not getattr(args, "json", False):
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bkbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os._exit(1)


if __name__ == "__main__":
    sys.exit(main())
