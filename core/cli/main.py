"""`bkbench`: the headless CLI. With no subcommand it opens the Textual workbench."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from .. import __version__
from ..errors import BkError
from .common import HelpFormatter, OneLineParser, baud_rate, demo_count

# Command groups, each a module with register(subparsers); optional ones may be absent.
COMMAND_MODULES = ("device", "simulate", "analyze", "config", "image", "fetch", "doctor", "backups", "station",
                   "serve")


EPILOG = """examples:
  bkbench --demo                              the workbench on the built-in simulated plug
  bkbench --demo 3                            three simulated plugs in the multi-port view
  bkbench ports                               which serial adapters are plugged in
  bkbench read -p /dev/ttyUSB0                full verified backup into the library
  bkbench write -p /dev/ttyUSB0 OpenBK.bin    backup first, then write and verify
  bkbench COMMAND --help                      what a command does, with examples
"""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="bkbench",
        description="Back up and flash Beken BK7231N/T chips with OpenBeken. "
        "Without a command the workbench (TUI) opens.",
        epilog=EPILOG, formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bkbench {__version__}")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--port", "-p", action="append", help="serial port or URL for the workbench; "
                        "repeated (--port A --port B), it opens on the multi-port view")
    parser.add_argument("--demo", nargs="?", const=1, default=0, type=demo_count, metavar="N",
                        help="open the workbench on a simulated chip; --demo 3: three simulated plugs in the "
                        "multi-port view")
    parser.add_argument("--baud", "-b", type=baud_rate, default=921600, help="transfer baud rate for the workbench")
    parser.add_argument("--data-dir", help="where backups and logs go, for the workbench and every command "
                        "(default: $XDG_DATA_HOME/bkbench)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.endswith(f"cli.{name}"):
                continue
            raise
        module.register(sub)
    for p in _leaf_parsers(sub):
        _add_global_flags(p)
    return parser


def _leaf_parsers(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    out: list[argparse.ArgumentParser] = []
    for p in dict.fromkeys(sub.choices.values()):  # aliases map to the same parser
        nested = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        out += _leaf_parsers(nested[0]) if nested else [p]
    return out


# Descriptions and examples for commands whose modules do not give their own.
FALLBACK_DOCS = {
    "simulate": ("Serve a simulated BK7231N or BK7231T on a pseudo-terminal and print its path first, so that "
                 "bkbench, bk7231tools or ltchiptool can talk to it as to a chip. Without --dump it loads a "
                 "real fixture dump when ../shared is present, else a synthetic flash (random code, a TLV "
                 "sector). --save-demo FILE writes the built-in demo plug (a whole stock Tuya plug) to a file for "
                 "analyze or --dump.",
                 ["bkbench simulate --chip bk7231n", "bkbench simulate --scenario app-running --wiring rts",
                  "bkbench simulate --json    (prints {\"path\": ...} on the first line)",
                  "bkbench simulate --save-demo demo.bin && bkbench analyze demo.bin"]),
    "backups": ("List the full backups in the library (DATA_DIR/backups), newest first: the file (chip, MAC, time), "
                "read (the chip's flash as read) or derived (a backup plus a write bkbench verified, so the next "
                "write need not read the chip again), and the firmware the image holds. The workbench and every "
                "command share this library.",
                ["bkbench backups", "bkbench --data-dir /srv/bkbench backups --json"]),
}


def _add_global_flags(p: argparse.ArgumentParser) -> None:
    """--json and --data-dir after the command too (SUPPRESS keeps a value given before it)."""
    name = p.prog.split()[-1]
    if p.description is None and name in FALLBACK_DOCS:
        text, examples = FALLBACK_DOCS[name]
        p.description = text
        p.epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples)
        p.formatter_class = HelpFormatter
    for action in p._actions:
        if action.help is None and "--json" in action.option_strings:
            action.help = "machine-readable output"
    if "--json" not in p._option_string_actions:
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    if "--data-dir" not in p._option_string_actions:
        p.add_argument("--data-dir", default=argparse.SUPPRESS,
                       help="backup library and logs directory (shared with the workbench)")


def run_tui(args: argparse.Namespace) -> int:
    # Imported lazily: the engine and the CLI must work without loading Textual.
    tui = importlib.import_module("bkbench.tui.app")
    ports = args.port or []
    return int(tui.run(port=ports[0] if ports else None, demo=bool(args.demo), baud=args.baud,
                       data_dir=args.data_dir, ports=ports, chips=args.demo or 1) or 0)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    previous = os.environ.get("BKBENCH_DATA_DIR")
    if getattr(args, "data_dir", None):
        # One library for the CLI and the workbench: every default path below derives from this.
        os.environ["BKBENCH_DATA_DIR"] = os.path.abspath(os.path.expanduser(args.data_dir))
    try:
        return _run(args, func)
    finally:
        if previous is None:
            os.environ.pop("BKBENCH_DATA_DIR", None)
        else:
            os.environ["BKBENCH_DATA_DIR"] = previous


def _run(args: argparse.Namespace, func) -> int:
    try:
        if func is None:
            return run_tui(args)
        return int(func(args) or 0)
    except BkError as exc:
        _json_error(args, str(exc), exc.hint)
        print(f"bkbench: error: {exc}", file=sys.stderr)
        if exc.hint and not getattr(args, "json", False):
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        _json_error(args, "interrupted")
        print("bkbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os._exit(1)
    except OSError as exc:
        # A file system refusal the command did not foresee (disk full, read-only, ...): one line.
        where = f"{exc.filename}: " if exc.filename else ""
        _json_error(args, f"{where}{exc.strerror or exc}")
        print(f"bkbench: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a user sees one line; BKBENCH_DEBUG=1 shows the traceback
        if os.environ.get("BKBENCH_DEBUG"):
            raise
        _json_error(args, f"internal error: {type(exc).__name__}: {exc}", internal=True)
        print(f"bkbench: internal error: {type(exc).__name__}: {exc} (BKBENCH_DEBUG=1 shows where; "
              "please report it)", file=sys.stderr)
        return 70


def _json_error(args: argparse.Namespace, error: str, hint: str = "", internal: bool = False) -> None:
    """With --json every failure is one JSON line on stdout too, so a script never has to parse stderr."""
    if not getattr(args, "json", False):
        return
    obj = {"ok": False, "error": error, "hint": hint}
    if internal:
        obj["internal"] = True
    try:
        print(json.dumps(obj), flush=True)
    except (OSError, ValueError):
        pass  # stdout itself is gone: the stderr line is all there is


if __name__ == "__main__":
    sys.exit(main())
