"""Several chips at once from the CLI: `read`/`write` with several --port (or --ports-file), and
`bkbench station` (backup then write OpenBK on every port, the workbench's station keystroke).

With several ports every port runs in its own thread (core/station.py); the terminal shows one live line
per port and a summary table at the end; `--json` prints one JSON object per chip, one per line (JSON
lines), in the order the ports were given. The exit code is 1 if any port failed, 130 if any was
cancelled (Ctrl-C) and none failed, else 0.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..backups import DEFAULT_DUMP_SIZE, BackupLibrary, StorageError
from ..errors import BkError
from ..ops.events import CancelToken, Notice, Stage
from ..station import ChipResult, Plan, Station, check_ports, read_ports_file
from .common import HelpFormatter, add_port_args

if TYPE_CHECKING:
    from rich.live import Live


def ports_of(args: argparse.Namespace) -> list[str]:
    """Every port from --port (repeatable) and --ports-file, checked (no duplicates, none empty)."""
    ports = list(args.port or [])
    if getattr(args, "ports_file", None):
        ports += read_ports_file(args.ports_file)
    if not ports:
        raise BkError("no port given: pass --port PORT (several times for several chips) or --ports-file FILE")
    ports = check_ports(ports)
    if len(ports) > 1 or getattr(args, "ports_file", None):
        # One chip's flash size forced on every chip could make a 4 MiB chip's half look like a full backup.
        refuse_single_only(args, {"--flash-size": getattr(args, "flash_size", None)})
    return ports


def single(args: argparse.Namespace, ports: list[str]) -> bool:
    """One port named with --port: the command runs exactly as it always did."""
    if len(ports) == 1 and not getattr(args, "ports_file", None):
        args.port = ports[0]
        return True
    return False


def refuse_single_only(args: argparse.Namespace, options: dict[str, object]) -> None:
    """Options that only make sense for one chip (an output file, an address, a device's own dump)."""
    given = [name for name, value in options.items() if value not in (None, False)]
    if given:
        raise BkError(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to one chip; "
                      "give a single --port for it")


# ---------------------------------------------------------------------------------------------- display

class LiveLines:
    """One line per port while the station runs: a redrawn table on a terminal, else a line on stderr
    whenever a port's phase changes (never every percent: logs and CI stay short)."""

    def __init__(self, station: Station, quiet: bool = False) -> None:
        self.station = station
        self.quiet = quiet
        self.tty = sys.stderr.isatty() and not quiet
        self._printed: dict[str, str] = {}
        self._live: Live | None = None
        self._lock = threading.Lock()
        width = max(len(p) for p in station.ports)
        self.width = min(width, 40)

    def __enter__(self) -> LiveLines:
        if self.tty:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self._table(), console=Console(stderr=True), refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.__exit__(None, None, None)

    def _table(self):
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        table.add_column("port", no_wrap=True, max_width=self.width)
        table.add_column("chip", no_wrap=True)
        table.add_column("state", no_wrap=True)
        states = dict(self.station.states)
        for port in self.station.ports:
            res = self.station.results.get(port)
            chip = res.chip if res else self.station.chips.get(port, "")
            table.add_row(Text(port), Text(chip), Text(states.get(port, "")))  # text, never markup
        return table

    def event(self, port: str, ev: object) -> None:
        """Called on the worker threads: notices of trouble, and a reset the person at the bench must do
        by hand (port by port), are printed as they come."""
        if self.quiet:
            return
        text = ""
        if isinstance(ev, Notice) and ev.level in ("warning", "error"):
            text = f"{port}: {ev.level}: {ev.message}"
        elif isinstance(ev, Stage) and ev.name == "link" and "resetting by" not in ev.message:
            text = f"{port}: {ev.message}"  # a reset by hand: say which chip (an automatic one is noise)
        if text:
            with self._lock:
                if self._live is not None:
                    self._live.console.print(text, markup=False, highlight=False)
                else:
                    print(text, file=sys.stderr, flush=True)

    def poll(self) -> None:
        if self.quiet:
            return
        if self._live is not None:
            self._live.update(self._table())
            return
        for port in self.station.ports:
            state = self.station.states.get(port, "")
            phase = state.rsplit(" ", 2)[0] if state.endswith(" %") else state
            if state.startswith("linking"):
                phase = "linking"
            if self._printed.get(port) != phase:
                self._printed[port] = phase
                with self._lock:
                    print(f"{port:<{self.width}}  {phase}", file=sys.stderr, flush=True)


def _columns(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Left-aligned columns; the last one unpadded (it may be long)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join(c.ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1] for row in rows]


def summary_table(results: list[ChipResult], library: Path, logs: Path | None = None,
                  width: int | None = None) -> str:
    """The table printed at the end: port, chip, MAC, backup file, result, seconds, error. When it would
    not fit `width` (a terminal of 80 columns), the backup and the error go on their own indented lines."""
    head = ("port", "chip", "MAC", "backup", "result", "time", "error")
    rows = [head]
    for r in results:
        backup = Path(r.backup).name if r.backup else "-"
        if r.backup and not r.backup_taken:
            backup += " (had)"
        rows.append((r.port, r.chip or "-", r.mac or "-", backup, r.state, f"{r.seconds:.1f} s",
                     r.error + (f" ({r.hint})" if r.hint and r.state == "failed" else "")))
    lines = _columns(rows)
    if width is not None and max(len(line.rstrip()) for line in lines) > width:
        short = _columns([(p, c, m, res, t, "") for p, c, m, _b, res, t, _e in rows])
        lines = [short[0]]
        for line, (_p, _c, _m, backup, _r, _t, error) in zip(short[1:], rows[1:]):
            lines.append(line)
            lines += [f"    backup {backup}"] if backup != "-" else []
            lines += [f"    error  {error}"] if error else []
    done = sum(r.ok for r in results)
    failed = sum(r.state == "failed" for r in results)
    cancelled = sum(r.state == "cancelled" for r in results)
    tail = f"{done} of {len(results)} done" + (f", {failed} failed" if failed else "") + (
        f", {cancelled} cancelled" if cancelled else "")
    if any(r.backup for r in results):
        tail += f"; backups in {library}"
    if logs is not None:
        tail += f"; logs in {logs}"
    lines += ["", tail]
    return "\n".join(line.rstrip() for line in lines)


# ---------------------------------------------------------------------------------------------- running

def run_station(args: argparse.Namespace, ports: list[str], plan: Plan) -> int:
    """Run `plan` on every port in parallel, show it live, print the summary; the exit code."""
    from ..link.reset import get_strategy

    get_strategy(args.reset)  # a bad --reset is one line before any port, not one per port
    library = BackupLibrary(getattr(args, "library", None))
    if plan.backup:  # room for every port's backup, before any chip is touched
        try:
            library.check_space(len(ports) * DEFAULT_DUMP_SIZE)
        except StorageError as exc:
            if len(ports) == 1:
                raise
            raise StorageError(str(exc).replace("a backup needs", f"{len(ports)} backups need"),
                               hint=exc.hint) from None
    quiet = getattr(args, "quiet", False) or getattr(args, "json", False)
    station = Station(ports, plan, baud=args.baud, library=library, reset=args.reset, link_timeout=args.timeout)
    live = LiveLines(station, quiet)
    station.on_event = live.event
    token = CancelToken()

    def on_sigint(_sig, _frame) -> None:
        if token.cancelled:
            raise KeyboardInterrupt
        token.cancel()
        print("bkbench: stopping every port after its current sector (Ctrl-C again to abort)", file=sys.stderr)

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if main else None
    if not quiet:
        print(f"bkbench: {plan.describe()} on {len(ports)} ports at {args.baud} baud; logs in {station.log_dir}",
              file=sys.stderr)
    try:
        with live:
            results = station.run(token, poll=live.poll)
    except KeyboardInterrupt:
        for port, left in station.unfinished().items():  # aborted mid-sector: say what is unfinished
            print(f"bkbench: aborted {port}; {left}", file=sys.stderr)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if getattr(args, "json", False):
        for r in results:
            print(json.dumps(r.to_json(), default=str))
    else:
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
        print(summary_table(results, library.root, station.log_dir, width))
    if any(r.state == "failed" for r in results):
        return 1
    return 130 if any(r.state == "cancelled" for r in results) else 0


# ---------------------------------------------------------------------------------------------- station

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "station", help="backup then write OpenBK on several chips at once",
        description="On every given port at once, each in its own thread with its own log: link, take a full "
        "verified backup (or find the one that already covers the chip), write the newest cached OpenBK "
        "release for that chip's family (bkbench fetch caches it; nothing is downloaded here) or --image FILE, "
        "verify it by CRC, reboot. A port that fails (or whose adapter is unplugged) does not stop the others. "
        "Ends with a summary table; --json prints one JSON object per chip, one per line. Exit code 1 if any "
        "port failed.",
        formatter_class=HelpFormatter,
        epilog="examples:\n  bkbench station -p /dev/ttyUSB0 -p /dev/ttyUSB1 -p /dev/ttyUSB2\n"
               "  bkbench station --ports-file bench.txt --image OpenBK7231N_QIO_1.18.219.bin\n"
               "  bkbench station --ports-file bench.txt --backup-only --json")
    add_port_args(p, multi=True)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--image", metavar="FILE",
                      help="write this file on every chip instead of the cached OpenBK (a UG/RBL package is "
                           "converted to a UA image); a chip it does not fit fails, the others go on")
    what.add_argument("--backup-only", action="store_true", help="only take (or find) each chip's backup")
    p.add_argument("--no-backup", action="store_true", help="skip the automatic full backup")
    p.add_argument("--no-verify", action="store_true", help="no extra CRC compare after the (verified) write")
    p.add_argument("--no-reboot", action="store_true", help="leave the chips in their bootloader afterwards")
    p.add_argument("--full", action="store_true", help="rewrite every sector, not only those that differ")
    p.add_argument("--library", help="backup library directory (default: DATA_DIR/backups)")
    p.set_defaults(func=cmd_station)


def cmd_station(args: argparse.Namespace) -> int:
    if args.backup_only and args.no_backup:
        raise BkError("--backup-only and --no-backup leave nothing to do")
    ports = ports_of(args)
    plan = Plan(backup=not args.no_backup, image=Path(args.image) if args.image else None,
                openbk=not args.image and not args.backup_only, verify=not args.no_verify,
                reboot=not args.no_reboot, differential=not args.full)
    return run_station(args, ports, plan)
