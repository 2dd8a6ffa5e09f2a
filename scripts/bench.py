#!/usr/bin/env python3
"""Benchmark bkbench against bk7231tools and ltchiptool on the simulator with its wire-timing model on.

    python scripts/bench.py              # 115200, 921600, 1500000, 2000000 baud, full 2 MiB (takes ~30 min)
    python scripts/bench.py --quick      # 921600 only, 256 KiB ranges (smoke run, ~1 min)
    python scripts/bench.py --bauds 921600,2000000 --output scripts/bench_results.md

Every tool talks to a fresh simulated BK7231N loaded with the same real stock dump: bkbench through
the in-process `sim://@name` port, bk7231tools (Python API) and ltchiptool (CLI) through the pty bridge.
Times are for the operation only (link and baud switch excluded); ltchiptool's figure is the
"Finished in" time it prints itself.

"limit" is the physical minimum for the job under the same timing model: wire time of the frames
that must cross (10 bits per byte) plus chip-side time (CRC at the modelled throughput, erase and
program latencies); per-exchange USB latency and dispatch overhead are not in it. ratio = limit / time.
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

from bkbench.core.backups import BackupLibrary
from bkbench.core.paths import fixtures_dir
from bkbench.core.session import Session
from bkbench.core.sim import registry
from bkbench.core.sim.pty_bridge import PtyBridge
from bkbench.core.sim.timing import Timing

SECTOR = 0x1000
BLOCK = 0x10000
APP_START = 0x11000
DUMP = "bk7231n-lspa9-clone-bl0937-plug.bin"
OTA = "OpenBeken-v1.18.219_bk7231n.ug.bin"
FULL_BAUDS = (115200, 921600, 1500000, 2000000)
# Frame sizes on the wire, command + response (PROTOCOL-DETAILS.md 9.1).
READ_X = 12 + 4111
WRITE_X = 4108 + 15
ERASE_X = 13 + 16
CRC_X = 13 + 11

# Where each timing parameter comes from (core/sim/timing.py states the same).
TIMING_SOURCES = {
    "wire": "10 bits per byte (8N1), PROTOCOL-DETAILS.md 9.1",
    "crc_bytes_per_s": "bk7231tools crc_speed_bps, PROTOCOL-DETAILS.md 9.2",
    "erase_4k_s": "GD25Q16C datasheet, typical 4 KiB sector erase",
    "erase_64k_s": "GD25Q16C datasheet, typical 64 KiB block erase",
    "program_page_s": "GD25Q16C datasheet, typical 256-byte page program",
    "usb_latency_s": "CH340/CP2102 bulk-packet delivery (~1 ms); FTDI default would be 16 ms",
    "command_overhead_s": "bootloader dispatch, simulator default (no source gives a figure)",
}


# ---------------------------------------------------------------------------------------------- limits
def wire(nbytes: int, baud: int) -> float:
    return nbytes * 10.0 / baud


def limit_read(length: int, baud: int, t: Timing) -> float:
    """Every sector crosses once, plus one chip CRC over the range."""
    return wire(length // SECTOR * READ_X + CRC_X, baud) + t.crc(length)


def limit_crc_pass(length: int, baud: int, t: Timing) -> float:
    """Verify or identical re-write: the chip must hash the range once."""
    return wire(CRC_X, baud) + t.crc(length)


def limit_write(before: bytes, after: bytes, start: int, baud: int, t: Timing) -> float:
    """A verified differential write: hash the range once to learn what differs, erase (64 KiB at once
    where a whole block changes), send and program the changed non-blank sectors, hash them again."""
    length = len(after)
    changed = [a for a in range(0, length, SECTOR) if before[a : a + SECTOR] != after[a : a + SECTOR]]
    chset = set(changed)
    total = limit_crc_pass(length, baud, t)
    erased: set[int] = set()
    for blk in range(-(-start // BLOCK) * BLOCK, start + length - BLOCK + 1, BLOCK):
        rel = range(blk - start, blk - start + BLOCK, SECTOR)
        if all(a in chset for a in rel):  # a whole changed 64 KiB block: one block erase
            total += wire(ERASE_X, baud) + t.erase(BLOCK)
            erased.update(rel)
    for a in changed:
        if a not in erased:
            total += wire(ERASE_X, baud) + t.erase(SECTOR)
        if after[a : a + SECTOR] != b"\xff" * SECTOR:
            total += wire(WRITE_X, baud) + t.program(SECTOR)
    total += wire(CRC_X, baud) + t.crc(len(changed) * SECTOR)
    return total


# ---------------------------------------------------------------------------------------------- helpers
@dataclass
class Row:
    baud: int
    op: str
    ours: float | None = None
    limit: float | None = None
    bk7231tools: float | None = None
    ltchiptool: float | None = None
    ok: str = ""


class Device:
    """A fresh simulated chip waiting in its bootloader; reset() puts it back there (115200)."""

    counter = 0

    def __init__(self, flash: bytes, timing: Timing) -> None:
        Device.counter += 1
        self.name = f"bench{Device.counter}"
        # An endless boot window: a CLI peer started after reset() still finds the bootloader.
        self.dev = registry.create_device("BK7231N", timing=timing, boot_window=1e9)
        self.dev.flash.data[:] = flash
        registry.register(self.name, self.dev)
        self.bridge: PtyBridge | None = None

    @property
    def url(self) -> str:
        return f"sim://@{self.name}"

    def pty(self) -> str:
        if self.bridge is None:
            self.bridge = PtyBridge(self.dev).start()
        return self.bridge.path

    def reset(self) -> None:
        self.dev.reset()

    def flash(self, start: int, length: int) -> bytes:
        return bytes(self.dev.flash.data[start : start + length])

    def close(self) -> None:
        if self.bridge is not None:
            self.bridge.stop()
        registry.unregister(self.name)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def ratio(limit: float | None, t: float | None) -> str:
    return "-" if not limit or not t else f"{limit / t:.0%}"


# ---------------------------------------------------------------------------------------------- peers
def bt_connect(path: str, baud: int):
    from bk7231tools.serial import BK7231Serial

    s = BK7231Serial(path, baudrate=baud, link_timeout=5)
    s.connect()
    return s


def bt_read(dev: Device, baud: int, length: int) -> tuple[float | None, bool]:
    s = bt_connect(dev.pty(), baud)
    try:
        t, data = timed(lambda: s.flash_read_bytes(0, length, crc_check=True))
    finally:
        s.close()
    dev.reset()
    return t, data == dev.flash(0, length)


def bt_write(dev: Device, baud: int, image: bytes) -> float:
    s = bt_connect(dev.pty(), baud)
    try:
        t, _ = timed(lambda: list(s.program_flash(io.BytesIO(image), len(image), APP_START, crc_check=True)))
    finally:
        s.close()
    dev.reset()
    return t


def lt_exe() -> str | None:
    here = Path(sys.executable).parent / "ltchiptool"
    return str(here) if here.exists() else shutil.which("ltchiptool")


def lt_run(dev: Device, args: list[str]) -> float | None:
    exe = lt_exe()
    if exe is None:
        return None
    proc = subprocess.run([exe, *args[:2], "-d", dev.pty(), *args[2:]], capture_output=True, text=True,
                          timeout=3600)
    dev.reset()
    m = re.search(r"Finished in ([\d.]+) s", proc.stdout + proc.stderr)
    if proc.returncode or not m:
        print(f"  ltchiptool {' '.join(args[:2])} failed: {(proc.stdout + proc.stderr).strip()[-300:]}",
              file=sys.stderr)
        return None
    return float(m.group(1))


# ---------------------------------------------------------------------------------------------- one baud
def bench_baud(baud: int, stock: bytes, image: bytes, length: int, timing: Timing, peers: bool,
               lib_dir: Path) -> list[Row]:
    rows = {op: Row(baud, op) for op in ("read", "verify", "write", "rewrite")}
    after = bytearray(stock)
    after[APP_START : APP_START + len(image)] = image
    before_img = stock[APP_START : APP_START + len(image)]

    # bkbench: one session for all four operations, as a user would run them.
    dev = Device(stock, timing)
    try:
        s = Session(dev.url, baud=baud, reset="manual", link_timeout=5)
        s.connect()
        lib = BackupLibrary(lib_dir / f"{baud}")
        if length == len(stock):
            t, entry = timed(lambda: s.backup(lib))
            data = lib.load(entry)
        else:
            t, data = timed(lambda: s.read(0, length))
        rows["read"].ours, rows["read"].limit = t, limit_read(length, baud, timing)
        ok = [data == stock[:length]]
        t, rep = timed(lambda: s.verify(data, 0))
        rows["verify"].ours, rows["verify"].limit = t, limit_crc_pass(length, baud, timing)
        ok.append(rep.ok)
        t, rep = timed(lambda: s.write(image, APP_START, backup_first=False))
        rows["write"].ours, rows["write"].limit = t, limit_write(before_img, image, APP_START, baud, timing)
        ok.append(dev.flash(APP_START, len(image)) == image)
        t, rep = timed(lambda: s.write(image, APP_START, backup_first=False))
        rows["rewrite"].ours, rows["rewrite"].limit = t, limit_crc_pass(len(image), baud, timing)
        ok.append(rep.written == 0 and rep.erased_only == 0 and dev.flash(APP_START, len(image)) == image)
        s.close()
        for r, good in zip(rows.values(), ok):
            r.ok = "ok" if good else "WRONG"
    finally:
        dev.close()
    if not peers:
        return list(rows.values())

    # bk7231tools (Python API over the pty bridge)
    dev = Device(stock, timing)
    try:
        t, good = bt_read(dev, baud, length)
        rows["read"].bk7231tools = t
        rows["read"].ok += "" if good else " bt:WRONG"
        rows["write"].bk7231tools = bt_write(dev, baud, image)
        rows["rewrite"].bk7231tools = bt_write(dev, baud, image)
        if dev.flash(APP_START, len(image)) != image:
            rows["write"].ok += " bt:WRONG"
    except Exception as exc:  # noqa: BLE001 - a peer failing is a result to print, not a crash
        print(f"  bk7231tools failed at {baud}: {exc!r}", file=sys.stderr)
    finally:
        dev.close()

    # ltchiptool (CLI over the pty bridge)
    dev = Device(stock, timing)
    tmp = Path(tempfile.mkdtemp(prefix="bkbench-lt-"))
    try:
        out, img = tmp / "read.bin", tmp / "ua.bin"
        img.write_bytes(image)
        b = str(baud)
        rows["read"].ltchiptool = lt_run(dev, ["flash", "read", "-b", b, "-s", "0", "-l", hex(length), "bk7231n",
                                               str(out)])
        if out.exists() and out.read_bytes() != stock[:length]:
            rows["read"].ok += " lt:WRONG"
        wargs = ["flash", "write", "-b", b, "-f", "bk7231n", "-s", hex(APP_START), str(img)]
        rows["write"].ltchiptool = lt_run(dev, wargs)
        rows["rewrite"].ltchiptool = lt_run(dev, wargs)
        if rows["write"].ltchiptool is not None and dev.flash(APP_START, len(image)) != image:
            rows["write"].ok += " lt:WRONG"
    finally:
        dev.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return list(rows.values())


# ---------------------------------------------------------------------------------------------- TUI
def bench_tui(lines: int = 200_000) -> list[tuple[str, str]]:
    try:
        from bkbench.tui.widgets.seriallog import LogBuffer, SerialLog
    except ImportError as exc:
        return [("TUI", f"not measured ({exc})")]
    import asyncio
    import tracemalloc

    from textual.app import App, ComposeResult

    out: list[tuple[str, str]] = []

    class LogApp(App):
        def compose(self) -> ComposeResult:
            yield SerialLog(max_lines=5000, id="log")

    async def ingest() -> None:
        app = LogApp()
        async with app.run_test(size=(120, 40)) as pilot:
            view = app.query_one("#log", SerialLog)
            buf = LogBuffer()
            chunk = b"".join(b"[I][main] heartbeat %06d: free heap 123456, wifi -62 dBm\r\n" % i
                             for i in range(1000))
            tracemalloc.start()
            t0 = time.perf_counter()
            for _ in range(lines // 1000):
                buf.feed(chunk)
                view.add_lines(buf.take())
                await pilot.pause(0)
            await pilot.pause()
            dt = time.perf_counter() - t0
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            out.append(("serial-log ingest", f"{lines / dt:,.0f} lines/s ({lines} lines, 1000 per batch)"))
            out.append(("serial-log memory", f"{len(view.lines)} lines kept (max 5000), "
                                             f"peak traced {peak / 1e6:.1f} MB during ingest"))

    asyncio.run(ingest())

    try:
        from bkbench.tui.app import BkBenchApp
    except ImportError as exc:
        out.append(("TUI app", f"not measured ({exc})"))
        return out

    async def startup_and_idle() -> None:
        tmp = tempfile.mkdtemp(prefix="bkbench-tui-")
        try:
            t0 = time.perf_counter()
            app = BkBenchApp(url=None, demo=False, data_dir=tmp, ports_source=lambda: [], monitor=False)
            async with app.run_test(size=(120, 40)) as pilot:
                await pilot.pause()
                out.append(("start-up to first frame", f"{(time.perf_counter() - t0) * 1000:.0f} ms (App.run_test)"))
                r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
                await asyncio.sleep(3.0)
                r1, w1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
                cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
                out.append(("CPU while idle", f"{cpu / (w1 - w0):.1%} of one core over {w1 - w0:.1f} s"))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    try:
        asyncio.run(startup_and_idle())
    except Exception as exc:  # noqa: BLE001 - report, do not hide the table
        out.append(("TUI app", f"failed: {exc!r}"))
    return out


# ---------------------------------------------------------------------------------------------- output
def timing_lines(t: Timing) -> list[str]:
    out = ["| parameter | value | source |", "|---|---|---|"]
    out.append(f"| wire | bytes x 10 / baud | {TIMING_SOURCES['wire']} |")
    for f in fields(t):
        if f.name != "enabled":
            out.append(f"| {f.name} | {getattr(t, f.name):g} | {TIMING_SOURCES.get(f.name, '')} |")
    return out


def table_lines(rows: list[Row]) -> list[str]:
    out = ["| baud | operation | bkbench s | limit s | bkbench/limit | bk7231tools s | ltchiptool s | "
           "best peer / bkbench | data |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        peers = [p for p in (r.bk7231tools, r.ltchiptool) if p]
        speed = f"{min(peers) / r.ours:.2f}x" if peers and r.ours else "-"
        out.append(f"| {r.baud} | {r.op} | {fmt(r.ours)} | {fmt(r.limit)} | {ratio(r.limit, r.ours)} | "
                   f"{fmt(r.bk7231tools)} | {fmt(r.ltchiptool)} | {speed} | {r.ok.strip()} |")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="921600 baud and 256 KiB ranges only (smoke run)")
    ap.add_argument("--bauds", help="comma-separated baud rates (default 115200,921600,1500000,2000000)")
    ap.add_argument("--no-peers", action="store_true", help="skip bk7231tools and ltchiptool")
    ap.add_argument("--no-tui", action="store_true", help="skip the TUI measurements")
    ap.add_argument("--output", help="also write the results as Markdown to this file")
    args = ap.parse_args(argv)

    fx = fixtures_dir()
    if fx is None:
        ap.error("the shared fixtures were not found: set BKBENCH_SHARED to the directory holding fixtures/")
    stock = (fx / "dumps" / DUMP).read_bytes()
    from bkbench.core.images.builders import build_from_ota

    image = build_from_ota((fx / "firmware" / OTA).read_bytes())["ua"]
    image += b"\xff" * (-len(image) % SECTOR)
    bauds = [int(b) for b in args.bauds.split(",")] if args.bauds else ([921600] if args.quick else list(FULL_BAUDS))
    length = 0x40000 if args.quick else len(stock)
    if args.quick:
        image = image[:0x40000]
    timing = Timing(enabled=True)

    head = [f"bkbench benchmark, {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
            f"machine: {platform.machine()}, {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
            f"Python {platform.python_version()}, {platform.platform()}",
            f"device: simulated BK7231N, stock dump {DUMP}; read/verify range {length // 1024} KiB; "
            f"write = OpenBK {OTA} as UA ({len(image)} bytes) at 0x{APP_START:X}",
            ""]
    print("\n".join(head + timing_lines(timing)), flush=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bkbench-bench-") as lib_dir:
        for baud in bauds:
            print(f"\n... {baud} baud", file=sys.stderr, flush=True)
            rows += bench_baud(baud, stock, image, length, timing, not args.no_peers, Path(lib_dir))
            print("\n".join(table_lines([r for r in rows if r.baud == baud])[2:]), flush=True)
    table = table_lines(rows)
    print("\n" + "\n".join(table))
    tui = [] if args.no_tui else bench_tui()
    tui_lines = [f"- {k}: {v}" for k, v in tui]
    if tui_lines:
        print("\nTUI\n" + "\n".join(tui_lines))
    if args.output:
        notes = ["", "Notes: times are for the operation only; read = full verified read saved as a backup "
                 "(bkbench) / flash_read_bytes with per-4K CRC (bk7231tools) / `flash read` with per-32K CRC "
                 "(ltchiptool); write = stock app region replaced by the OpenBK image; rewrite = the same image "
                 "again (bkbench skips identical sectors, the peers erase, write and check every sector); "
                 "verify = chip against the backup by CRC (the peers have no verify-only command)."]
        md = ["# Benchmark results", "", "```", *head[:3], "```", "", "Timing model (core/sim/timing.py):", "",
              *timing_lines(timing), "", "Command: `python scripts/bench.py " + " ".join(argv or sys.argv[1:])
              + "`", "", *table, *notes]
        if tui_lines:
            md += ["", "TUI:", "", *tui_lines]
        Path(args.output).write_text("\n".join(md) + "\n")
        print(f"\nwritten to {args.output}", file=sys.stderr)
    bad = [r for r in rows if "WRONG" in r.ok]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
