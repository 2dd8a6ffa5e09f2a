"""Adapter rows of the benchmark: bkbench beside bk7231tools and ltchiptool behind each simulated adapter.

    python scripts/bench.py --adapters ft232r,ch340,cp2102,pl2303      # BK7231N at 921600 and 2M
    python scripts/bench.py --adapters ft232r --bauds 921600 --output /tmp/a.md

Each tool talks to a fresh simulated chip (wire-timing model on) behind the same simulated USB-serial
adapter (core/sim/adapter.py, figures and sources in core/link/adapters.py): its latency on host-bound data
(FTDI: the 16 ms latency timer, AN232B-04; the other families one 1 ms USB frame) and its divisor error
against the chip's 26 MHz / n (a rate out of tolerance garbles). bkbench opens `sim://@name`, so it sees the
adapter and lowers an FTDI latency timer to 1 ms as it does on Linux (core/link/latency.py); the peers
talk through the pty bridge, where no tool can lower it, as neither bk7231tools nor ltchiptool does on a
real port. For FTDI families one more bkbench row is run behind an adapter that refuses the change
(as a driver would without permission): what setting low latency buys.

read = full 2 MiB verified read (bkbench: saved as a backup, byte-exact against the simulated flash;
peers: their verified read); write = the OpenBK UA image at 0x11000 over the stock app (judged on the
simulated flash). "ran at" = the rate bkbench chose after matching the adapter (core/link/baud.py);
"limit" = wire time plus chip time (CRC, erase, program) at that rate, as bench.py computes it: no tool
can be faster, whatever its latency.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import APP_START, CHIPS, Device, bt_read, bt_write, limit_read, limit_write, lt_run
from bkbench.core.backups import BackupLibrary
from bkbench.core.link.adapters import FAMILIES
from bkbench.core.ops.events import Notice, Retry
from bkbench.core.session import Session
from bkbench.core.sim.adapter import SimAdapter
from bkbench.core.sim.timing import Timing

DEFAULT_ADAPTERS = ("ft232r", "ch340", "cp2102", "pl2303")


@dataclass
class AdapterRow:
    adapter: str
    baud: int
    op: str
    ours: float | None = None
    limit: float | None = None  # wire + chip time at the rate bkbench ran (bench.py's limit)
    ran_at: int | None = None
    ours_default_latency: float | None = None  # FTDI: bkbench when the driver refuses to lower the timer
    bk7231tools: float | str | None = None
    ltchiptool: float | str | None = None
    ok: list[str] = field(default_factory=list)


def _device(chip: str, stock: bytes, timing: Timing, adapter: str, can_lower: bool = True) -> Device:
    dev = Device(chip, stock, timing)
    dev.dev.adapter = SimAdapter(adapter, can_lower_latency=can_lower)
    return dev


def _bkbench(chip: str, stock: bytes, image: bytes, baud: int, timing: Timing, adapter: str, lib_dir: Path,
             can_lower: bool) -> tuple[dict[str, float], int, list[str], str]:
    """bkbench read (full backup) and write in one session; returns times, the rate used, problems, adapter line."""
    dev = _device(chip, stock, timing, adapter, can_lower)
    problems: list[str] = []
    times: dict[str, float] = {}
    notes: list[str] = []

    def on_event(ev) -> None:
        if isinstance(ev, Retry):
            problems.append(f"RETRY {ev.reason}")
        elif isinstance(ev, Notice):
            notes.append(ev.message)

    try:
        s = Session(dev.url, baud=baud, reset="manual", link_timeout=5, on_event=on_event)
        info = s.connect()
        ran_at, line = info.baud, info.adapter  # close() drops the chip back to 115200 and says so in info
        lib = BackupLibrary(lib_dir / f"{adapter}-{baud}-{int(can_lower)}")
        t0 = time.perf_counter()
        entry = s.backup(lib).entry
        times["read"] = time.perf_counter() - t0
        if lib.load(entry) != stock:
            problems.append("read WRONG")
        t0 = time.perf_counter()
        s.write(image, APP_START, backup_first=False)
        times["write"] = time.perf_counter() - t0
        if dev.flash(APP_START, len(image)) != image:
            problems.append("write WRONG")
        s.close()
        return times, ran_at, problems, line
    finally:
        dev.close()


def _peer_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return "failed: " + text.splitlines()[0][:60]


def bench_adapter(chip: str, stock: bytes, image: bytes, adapter: str, baud: int, timing: Timing, lib_dir: Path,
                  peers: bool) -> tuple[list[AdapterRow], list[str]]:
    rows = {op: AdapterRow(adapter, baud, op) for op in ("read", "write")}
    notes: list[str] = []
    times, ran_at, problems, line = _bkbench(chip, stock, image, baud, timing, adapter, lib_dir, True)
    notes.append(f"{adapter} at {baud}: bkbench ran at {ran_at}; {line}")
    before = stock[APP_START : APP_START + len(image)]
    limits = {"read": limit_read(stock, 0, len(stock), ran_at, timing, chip != "BK7231N"),
              "write": limit_write(before, image, APP_START, ran_at, timing)}
    for op, r in rows.items():
        r.ours, r.ran_at, r.limit = times.get(op), ran_at, limits[op]
        r.ok += [p for p in problems if p.startswith(op) or p.startswith("RETRY")]
    if FAMILIES[adapter].latency_adjustable:
        times, _, problems, line = _bkbench(chip, stock, image, baud, timing, adapter, lib_dir, False)
        notes.append(f"{adapter} at {baud}, timer not lowered: {line}")
        for op, r in rows.items():
            r.ours_default_latency = times.get(op)
            r.ok += [f"16ms-run {p}" for p in problems if p.startswith(op) or p.startswith("RETRY")]
    if not peers:
        return list(rows.values()), notes

    dev = _device(chip, stock, timing, adapter)
    try:
        try:
            t, good = bt_read(dev, baud, 0, len(stock))
            rows["read"].bk7231tools = t
            if not good:
                rows["read"].ok.append("bt WRONG")
        except Exception as exc:  # noqa: BLE001 - a peer failing is a result to print
            rows["read"].bk7231tools = _peer_error(exc)
            dev.reset()
        try:
            rows["write"].bk7231tools = bt_write(dev, baud, image)
            if dev.flash(APP_START, len(image)) != image:
                rows["write"].ok.append("bt WRONG")
        except Exception as exc:  # noqa: BLE001
            rows["write"].bk7231tools = _peer_error(exc)
            dev.reset()
    finally:
        dev.close()

    dev = _device(chip, stock, timing, adapter)
    tmp = Path(tempfile.mkdtemp(prefix="bkbench-lt-"))
    family = CHIPS[chip][2]
    try:
        out, img = tmp / "read.bin", tmp / "ua.bin"
        img.write_bytes(image)
        b = str(baud)
        t = lt_run(dev, ["flash", "read", "-b", b, "-s", "0x0", "-l", hex(len(stock)), family, str(out)])
        rows["read"].ltchiptool = t if t is not None else "failed"
        if t is not None and out.read_bytes() != stock:
            rows["read"].ok.append("lt WRONG")
        t = lt_run(dev, ["flash", "write", "-b", b, "-f", family, "-s", hex(APP_START), str(img)])
        rows["write"].ltchiptool = t if t is not None else "failed"
        if t is not None and dev.flash(APP_START, len(image)) != image:
            rows["write"].ok.append("lt WRONG")
    finally:
        dev.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return list(rows.values()), notes


def _cell(v: float | str | None) -> str:
    return "-" if v is None else f"{v:.2f}" if isinstance(v, float) else v


def adapter_table(rows: list[AdapterRow]) -> list[str]:
    out = ["| adapter | baud | op | bkbench s (ran at) | limit s | bkbench, timer left at 16 ms | bk7231tools s | "
           "ltchiptool s | best peer / bkbench | data |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        peers = [p for p in (r.bk7231tools, r.ltchiptool) if isinstance(p, float)]
        speed = f"{min(peers) / r.ours:.2f}x" if peers and r.ours else "-"
        ran = f" ({r.ran_at})" if r.ran_at and r.ran_at != r.baud else ""
        out.append(f"| {FAMILIES[r.adapter].name} | {r.baud} | {r.op} | {_cell(r.ours)}{ran} | {_cell(r.limit)} | "
                   f"{_cell(r.ours_default_latency)} | {_cell(r.bk7231tools)} | {_cell(r.ltchiptool)} | {speed} | "
                   f"{', '.join(r.ok) or 'ok'} |")
    return out


def main_adapters(args, argv: list[str], inputs: dict[str, tuple], head: list[str], timing_text: list[str],
                  timing: Timing) -> int:
    """`bench.py --adapters LIST`: default BK7231N (all chips given with --chips) at 921600 and 2M."""
    names = [a.strip().lower() for a in args.adapters.split(",") if a.strip()] or list(DEFAULT_ADAPTERS)
    unknown = [a for a in names if a not in FAMILIES]
    if unknown:
        raise SystemExit(f"bench.py: unknown adapter(s) {', '.join(unknown)}; choose from {', '.join(FAMILIES)}")
    chips = [c for c in inputs if "--chips" in argv or c == "BK7231N"]
    bauds = [int(b) for b in args.bauds.split(",")] if args.bauds else [921600, 2000000]
    rows: list[AdapterRow] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bkbench-adapters-") as tmp:
        os.environ["BKBENCH_CONFIG_DIR"] = str(Path(tmp) / "config")  # no baud memory from other runs
        for chip in chips:
            stock, image, _start, _length = inputs[chip]
            for adapter in names:
                for baud in bauds:
                    print(f"\n... {chip} behind a simulated {adapter} at {baud}", flush=True)
                    new, more = bench_adapter(chip, stock, image, adapter, baud, timing, Path(tmp), not args.no_peers)
                    rows += new
                    notes += more
                    print("\n".join(adapter_table(new)[2:]), flush=True)
    table = adapter_table(rows)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print("\n" + "\n".join(table) + "\n\n" + "\n".join(f"- {n}" for n in notes))
    print(f"\nload average at the end: {load}")
    if args.output:
        md = ["# Adapter benchmark results", "", "```", *head, "```", "", "Timing model (core/sim/timing.py):", "",
              *timing_text, "", "Command: `python scripts/bench.py " + " ".join(argv) + "`", "",
              __doc__.split("\n\n", 2)[2].strip(), "", *table, "", *[f"- {n}" for n in notes], "",
              f"Load average at the end: {load}"]
        Path(args.output).write_text("\n".join(md) + "\n")
    bad = [r for r in rows if r.ok or r.ours is None]
    return 1 if bad else 0
