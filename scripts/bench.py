#!/usr/bin/env python3
"""Benchmark bkbench against bk7231tools and ltchiptool on the simulator with its wire-timing model on.

    python scripts/bench.py              # N and T, 115200 .. 3M, full 2 MiB, peers, CPU, Pi quota, TUI (long)
    python scripts/bench.py --quick      # N and T at 921600 and 2M, 512 KiB read, 256 KiB write (a few minutes)
    python scripts/bench.py --chips N --bauds 921600,2000000 --output scripts/bench_results.md
    python scripts/bench.py --chips N --only-multi   # several chips at once only: 1, 2, 4 chips (~9 min)
    python scripts/bench.py --adapters               # behind simulated FT232R, CH340, CP2102, PL2303 adapters

Every tool talks to a fresh simulated chip (BK7231N and BK7231T rows) loaded with the same real stock
dump: bkbench through the in-process `sim://@name` port, bk7231tools (Python API) and ltchiptool (CLI)
through the pty bridge. Times are for the operation only (link and baud switch excluded); ltchiptool's
figure is the "Finished in" time it prints itself.

"limit" is the physical minimum for the job under the same timing model: wire time of the frames that
must cross (10 bits per byte) plus chip-side time (CRC at the modelled throughput, erase and program
latencies); per-exchange USB latency and dispatch overhead are not in it. For a read the sectors that
must cross are the non-erased ones (an erased sector can be vouched by chip CRCs instead, in the 4 KiB
pieces core/ops/flash_ops.py requires before calling flash erased), and the chip hashes every byte once.
ratio = limit / time.

A retry in any of these fault-free runs is a bug: the run says so loudly and exits non-zero.

CPU: host CPU seconds per MiB of the bkbench CLI (`bkbench read` / `bkbench write`, a child process
talking to the simulated chip over a pty) at 2M. Pi budget: the same read at 921600 and the TUI run in
a cgroup with a CPU quota standing in for a Raspberry Pi Zero 2 W (see PI_QUOTA).
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

from bkbench.core.backups import BackupLibrary
from bkbench.core.ops.events import Retry
from bkbench.core.paths import fixtures_dir
from bkbench.core.session import Session
from bkbench.core.sim import registry
from bkbench.core.sim.device import SimDevice
from bkbench.core.sim.pty_bridge import PtyBridge
from bkbench.core.sim.timing import Timing

SECTOR = 0x1000
BLOCK = 0x10000
APP_START = 0x11000
# Per chip: the stock dump, the OpenBK OTA package written as UA, ltchiptool's family name.
CHIPS = {
    "BK7231N": ("bk7231n-lspa9-clone-bl0937-plug.bin", "OpenBeken-v1.18.219_bk7231n.ug.bin", "bk7231n"),
    "BK7231T": ("bk7231t-feit-br30-rgbw-bulb.bin", "OpenBeken-v1.18.219_bk7231t.ug.bin", "bk7231t"),
}
FULL_BAUDS = (115200, 921600, 1500000, 2000000, 3000000)
QUICK_BAUDS = (921600, 2000000)
QUICK_READ = (0x100000, 0x80000)
# Raspberry Pi Zero 2 W stand-in: 4x Cortex-A53 at 1 GHz. CPython on one A53 core at 1 GHz runs roughly
# 8x slower than on one core of this class of x86 server, so the quota is 1/8 of one core, handed out in
# a 10 ms period (a 100 ms period would stall the process for 87 ms at a time, which no Pi does).
PI_QUOTA = (1250, 10000)  # cpu.max "quota period" in microseconds
# Frame sizes on the wire, command + response (PROTOCOL-DETAILS.md 9.1).
READ_X = 12 + 4111
WRITE_X = 4108 + 15
ERASE_X = 13 + 16
CRC_X = 13 + 11
LINK_X = 5 + 8  # LinkCheck + reply: BASIC dialects need one after every CheckCRC (PROTOCOL-DETAILS 5.2)

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


def blank_sectors(flash: bytes, start: int, length: int) -> int:
    return sum(flash[a : a + SECTOR] == b"\xff" * SECTOR for a in range(start, start + length, SECTOR))


def blank_group_bytes(flash: bytes, start: int, length: int) -> int:
    """Bytes in 64 KiB groups that are wholly erased (the ones a CRC can vouch for in one go)."""
    out = 0
    for g in range(start, start + length, BLOCK):
        n = min(BLOCK, start + length - g)
        out += n if flash[g : g + n] == b"\xff" * n else 0
    return out


def limit_read(flash: bytes, start: int, length: int, baud: int, t: Timing, crc_link: bool) -> float:
    """Every non-erased sector crosses once and the chip hashes every byte once: a CRC per 64 KiB group
    for the data, and for erased flash the pieces of the strong check (one per sector, flash_ops.py)."""
    blanks = blank_sectors(flash, start, length)
    crcs = -(-length // BLOCK) + blanks
    x = CRC_X + (LINK_X if crc_link else 0)
    return wire((length // SECTOR - blanks) * READ_X + crcs * x, baud) + t.crc(length)


def limit_crc_pass(length: int, baud: int, t: Timing, blank_bytes: int = 0) -> float:
    """Verify or identical re-write: the chip must hash the range once (erased ranges in 4 KiB pieces)."""
    return wire(CRC_X * (1 + blank_bytes // SECTOR), baud) + t.crc(length)


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
    chip: str
    baud: int
    op: str
    ours: float | None = None
    limit: float | None = None
    bk7231tools: float | None = None
    ltchiptool: float | None = None
    ok: str = ""
    retries: int = 0


class Device:
    """A fresh simulated chip waiting in its bootloader; reset() puts it back there (115200)."""

    counter = 0

    def __init__(self, chip: str, flash: bytes, timing: Timing) -> None:
        Device.counter += 1
        self.name = f"bench{Device.counter}"
        # An endless boot window: a CLI peer started after reset() still finds the bootloader.
        self.dev = SimDevice(flash, chip=chip, timing=timing, boot_window=1e9)
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


def bt_read(dev: Device, baud: int, start: int, length: int) -> tuple[float | None, bool]:
    s = bt_connect(dev.pty(), baud)
    try:
        t, data = timed(lambda: s.flash_read_bytes(start, length, crc_check=True))
    finally:
        s.close()
    dev.reset()
    return t, data == dev.flash(start, length)


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
def bench_baud(chip: str, baud: int, stock: bytes, image: bytes, start: int, length: int, timing: Timing,
               peers: bool, lib_dir: Path) -> list[Row]:
    rows = {op: Row(chip, baud, op) for op in ("read", "verify", "write", "rewrite")}
    after = bytearray(stock)
    after[APP_START : APP_START + len(image)] = image
    before_img = stock[APP_START : APP_START + len(image)]
    crc_link = chip != "BK7231N"
    family = CHIPS[chip][2]

    # bkbench: one session for all four operations, as a user would run them.
    dev = Device(chip, stock, timing)
    retries: list[Retry] = []
    try:
        def on_event(ev) -> None:
            if isinstance(ev, Retry):
                retries.append(ev)

        s = Session(dev.url, baud=baud, reset="manual", link_timeout=5, on_event=on_event)
        s.connect()
        lib = BackupLibrary(lib_dir / f"{chip}-{baud}")
        ok = []
        for op in rows:
            n0 = len(retries)
            if op == "read":
                if (start, length) == (0, len(stock)):
                    t, entry = timed(lambda: s.backup(lib).entry)
                    data = lib.load(entry)
                else:
                    t, data = timed(lambda: s.read(start, length))
                rows[op].ours, rows[op].limit = t, limit_read(stock, start, length, baud, timing, crc_link)
                ok.append(data == stock[start : start + length])
            elif op == "verify":
                t, rep = timed(lambda d=data: s.verify(d, start))
                rows[op].ours = t
                rows[op].limit = limit_crc_pass(length, baud, timing, blank_group_bytes(stock, start, length))
                ok.append(rep.ok)
            elif op == "write":
                t, rep = timed(lambda: s.write(image, APP_START, backup_first=False))
                rows[op].ours, rows[op].limit = t, limit_write(before_img, image, APP_START, baud, timing)
                ok.append(dev.flash(APP_START, len(image)) == image)
            else:
                t, rep = timed(lambda: s.write(image, APP_START, backup_first=False))
                rows[op].ours, rows[op].limit = t, limit_crc_pass(len(image), baud, timing)
                ok.append(rep.written == 0 and rep.erased_only == 0 and dev.flash(APP_START, len(image)) == image)
            rows[op].retries = len(retries) - n0
        s.close()
        for r, good in zip(rows.values(), ok):
            r.ok = "ok" if good else "WRONG"
            if r.retries:
                r.ok += f" RETRIES:{r.retries}"
    finally:
        dev.close()
    if not peers:
        return list(rows.values())

    # bk7231tools (Python API over the pty bridge)
    dev = Device(chip, stock, timing)
    try:
        t, good = bt_read(dev, baud, start, length)
        rows["read"].bk7231tools = t
        rows["read"].ok += "" if good else " bt:WRONG"
        rows["write"].bk7231tools = bt_write(dev, baud, image)
        rows["rewrite"].bk7231tools = bt_write(dev, baud, image)
        if dev.flash(APP_START, len(image)) != image:
            rows["write"].ok += " bt:WRONG"
    except Exception as exc:  # noqa: BLE001 - a peer failing is a result to print, not a crash
        print(f"  bk7231tools failed on {chip} at {baud}: {exc!r}", file=sys.stderr)
    finally:
        dev.close()

    # ltchiptool (CLI over the pty bridge)
    dev = Device(chip, stock, timing)
    tmp = Path(tempfile.mkdtemp(prefix="bkbench-lt-"))
    try:
        out, img = tmp / "read.bin", tmp / "ua.bin"
        img.write_bytes(image)
        b = str(baud)
        rows["read"].ltchiptool = lt_run(dev, ["flash", "read", "-b", b, "-s", hex(start), "-l", hex(length),
                                               family, str(out)])
        if out.exists() and out.read_bytes() != stock[start : start + length]:
            rows["read"].ok += " lt:WRONG"
        wargs = ["flash", "write", "-b", b, "-f", family, "-s", hex(APP_START), str(img)]
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


# ---------------------------------------------------------------------------------------------- children
# Host CPU and the Pi budget are measured in child processes, so the simulated chip (which lives in this
# process) is neither counted nor throttled; only bkbench is.
def make_cgroup(quota: tuple[int, int]) -> tuple[Path, str] | None:
    """A cgroup with a CPU quota (v2 cpu.max, else v1 cfs quota); None when this machine has neither."""
    q, period = quota
    name = f"bkbench-pi-{os.getpid()}"
    try:
        root = Path("/sys/fs/cgroup")
        if "cpu" in (root / "cgroup.controllers").read_text().split() if (root / "cgroup.controllers").exists() \
                else False:
            d = root / name
            d.mkdir(exist_ok=True)
            (d / "cpu.max").write_text(f"{q} {period}")
            return d, f"cgroup v2 {d}/cpu.max = '{q} {period}'"
        v1 = root / "cpu"
        if (v1 / "cpu.cfs_quota_us").exists():
            d = v1 / name
            d.mkdir(exist_ok=True)
            (d / "cpu.cfs_period_us").write_text(str(period))
            (d / "cpu.cfs_quota_us").write_text(str(q))
            return d, f"cgroup v1 {d}: cfs_quota_us={q}, cfs_period_us={period} (the v1 form of cpu.max)"
    except OSError as exc:
        print(f"  no cgroup for the Pi quota: {exc}", file=sys.stderr)
    return None


def run_child(args: list[str], cgroup: Path | None = None, timeout: float = 1800) -> dict:
    """Run `bench.py --child ...` (optionally inside `cgroup`) and return the JSON it prints."""
    procs = cgroup / "cgroup.procs" if cgroup else None

    def enter() -> None:
        if procs is not None:
            procs.write_text(str(os.getpid()))

    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=enter)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        return {"error": (proc.stderr or proc.stdout).strip()[-300:]}
    return json.loads(lines[-1])


def child_main(args: list[str]) -> int:
    """Child side: one measured job, one JSON line on stdout."""
    kind = args[0]
    if kind in ("read", "write"):
        port, baud = args[1], int(args[2])
        s = Session(port, baud=baud, reset="manual", link_timeout=10)
        s.connect()
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        if kind == "read":
            a, n = (int(x, 0) for x in args[3].split(":"))
            data = s.read(a, n)
            result = {"crc": zlib.crc32(data)}
        else:
            image = Path(args[3]).read_bytes()
            rep = s.write(image, APP_START, backup_first=False)
            result = {"written": rep.written, "retries": rep.record.retries if rep.record else 0}
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        s.close()
        result.update(wall=wall, cpu=(r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
        print(json.dumps(result))
        return 0
    if kind == "tui":
        print(json.dumps(asyncio_run_tui(args[1], float(args[2]))))
        return 0
    raise SystemExit(f"unknown child job {kind}")


def asyncio_run_tui(mode: str, seconds: float) -> dict:
    """The workbench headless (Textual's run_test) for `seconds`: CPU share, RSS, and for "backup" how the
    map and the log kept moving while a demo-timed backup ran."""
    import asyncio

    from bkbench.tui.app import BkBenchApp

    out: dict = {}

    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6

    async def main() -> None:
        tmp = tempfile.mkdtemp(prefix="bkbench-tui-")
        url = None
        if mode != "idle":
            dev = registry.create_device(chip="BK7231N", dump=registry.default_dump("BK7231N"),
                                         scenario="app-running", wiring="rts", timing=Timing(enabled=True))
            registry.register("benchtui", dev)
            url = "sim://@benchtui"
        app = BkBenchApp(url=url, demo=False, data_dir=tmp, ports_source=lambda: [], monitor=mode != "idle",
                         poll_ports=0)
        try:
            async with app.run_test(size=(120, 40)) as pilot:
                await pilot.pause(0.5)
                if mode == "backup":
                    await pilot.press("c")
                    while app.busy or app.session is None:
                        await pilot.pause(0.05)
                    await pilot.press("b")
                    samples, t0, last, gaps = [], time.monotonic(), None, []
                    await pilot.pause(0.2)
                    while app.busy:
                        n = sum(v for k, v in app.flash_model.counts().items() if k.value != "pending")
                        now = time.monotonic()
                        if n != last:
                            samples.append(now)
                            last = n
                        await pilot.pause(0.05)
                    gaps = [b - a for a, b in zip(samples, samples[1:])]
                    out.update(backup_s=time.monotonic() - t0, map_updates=len(samples),
                               max_map_gap_s=max(gaps) if gaps else None, outcome=app.last_outcome[0])
                r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
                await asyncio.sleep(seconds)
                r1, w1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
                cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
                out.update(cpu_share=cpu / (w1 - w0), rss_mb=rss_mb())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    asyncio.run(main())
    return out


def bench_host(chip: str, stock: bytes, image: bytes, start: int, length: int, timing: Timing,
               pi: bool) -> list[tuple[str, str]]:
    """CPU seconds per MiB at 2M; the read at 921600 and the TUI under the Pi quota."""
    out: list[tuple[str, str]] = []
    mib = length / 2**20
    with tempfile.TemporaryDirectory(prefix="bkbench-host-") as tmp:
        img = Path(tmp) / "ua.bin"
        img.write_bytes(image)
        for kind, arg, n in (("read", f"{start:#x}:{length:#x}", mib), ("write", str(img), len(image) / 2**20)):
            dev = Device(chip, stock, timing)
            try:
                r = run_child([kind, dev.pty(), "2000000", arg])
            finally:
                dev.close()
            if "error" in r:
                out.append((f"{chip} host CPU, {kind} at 2M", f"failed: {r['error']}"))
                continue
            out.append((f"{chip} host CPU, {kind} at 2M", f"{r['cpu'] / n:.2f} CPU s per MiB "
                        f"({r['cpu']:.2f} s CPU over {r['wall']:.2f} s wall, {n:.2f} MiB)"))
    if not pi:
        return out
    made = make_cgroup(PI_QUOTA)
    if made is None:
        out.append(("Pi quota", "not measured: no writable cgroup (v2 cpu.max or v1 cpu.cfs_quota_us) here"))
        return out
    cg, how = made
    try:
        out.append(("Pi quota", f"{PI_QUOTA[0] / PI_QUOTA[1]:.1%} of one core: {how}"))
        dev = Device(chip, stock, timing)
        try:
            r = run_child(["read", dev.pty(), "921600", f"{start:#x}:{length:#x}"], cg)
        finally:
            dev.close()
        if "error" in r:
            out.append((f"{chip} read at 921600 under the Pi quota", f"failed: {r['error']}"))
        else:
            lim = limit_read(stock, start, length, 921600, timing, chip != "BK7231N")
            good = r["crc"] == zlib.crc32(stock[start : start + length])
            out.append((f"{chip} read at 921600 under the Pi quota",
                        f"{r['wall']:.2f} s, limit {lim:.2f} s = {lim / r['wall']:.0%} of limit, "
                        f"{r['cpu']:.2f} CPU s{'' if good else ', WRONG DATA'}"))
    finally:
        try:
            cg.rmdir()
        except OSError:
            pass
    return out


def bench_tui_processes(pi: bool, seconds: float) -> list[tuple[str, str]]:
    """TUI idle CPU and RSS as its own process: no port, and the demo chip's boot log streaming; the same
    and a demo-timed backup under the Pi quota."""
    out: list[tuple[str, str]] = []
    for mode, label in (("idle", "no port"), ("log", "demo chip's boot log streaming")):
        r = run_child(["tui", mode, str(seconds)])
        out.append((f"TUI idle, {label}", f"failed: {r['error']}" if "error" in r else
                    f"{r['cpu_share']:.1%} of one core, RSS {r['rss_mb']:.0f} MB"))
    if not pi:
        return out
    made = make_cgroup(PI_QUOTA)
    if made is None:
        return out
    cg, _how = made
    try:
        r = run_child(["tui", "backup", str(seconds)], cg)
        if "error" in r:
            out.append(("TUI under the Pi quota", f"failed: {r['error']}"))
        else:
            out.append(("TUI backup (demo chip, 2 MiB at 921600) under the Pi quota",
                        f"{r['outcome']} in {r['backup_s']:.1f} s; the map changed {r['map_updates']} times, "
                        f"longest pause {r['max_map_gap_s'] or 0:.2f} s; afterwards {r['cpu_share']:.1%} of "
                        f"one core, RSS {r['rss_mb']:.0f} MB"))
    finally:
        try:
            cg.rmdir()
        except OSError:
            pass
    return out


# ---------------------------------------------------------------------------------------------- several chips
# Several chips at once (core/station.py): N separate `bkbench simulate --timing` processes on ptys, as N
# USB adapters would be, and ONE bkbench process driving them all (`bkbench read` with N --port, and
# `bkbench station --image` = backup then write then verify). CPU is taken per process from /proc, so the
# simulators' own CPU is kept apart from bkbench's; host = all CPUs of the machine (other work included).
MULTI_COUNTS = (1, 2, 4)
MULTI_BAUDS = (921600, 2000000)


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live process has used, from /proc/PID/stat."""
    try:
        fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")


def _host_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    vals = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return sum(vals) - idle, sum(vals)


def _bkbench(*args: str) -> list[str]:
    return [sys.executable, "-m", "bkbench.core.cli.main", *args]


class SimProcess:
    """`bkbench simulate --timing --dump DUMP` in its own process; its pty path from the first line."""

    def __init__(self, dump: Path, folder: Path, n: int) -> None:
        self.out = folder / f"sim{n}.out"
        with open(self.out, "w") as fh:
            self.proc = subprocess.Popen(_bkbench("simulate", "--timing", "--dump", str(dump)), stdout=fh,
                                         stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.out.read_text().split("\n", 1)
            if len(line) > 1 and line[0].startswith("/dev/"):
                self.path = line[0].strip()
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.close()
        raise RuntimeError(f"bkbench simulate did not start: {self.out.read_text()[-300:]}")

    def cpu(self) -> float:
        return _proc_cpu(self.proc.pid)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class MultiRow:
    chip: str
    baud: int
    op: str
    n: int
    wall: float | None = None
    per_chip: list[float] | None = None
    ours_cpu: float = 0.0
    sims_cpu: float = 0.0
    host_busy: float = 0.0  # CPUs busy on the whole machine during the run (2.0 = both cores)
    ok: str = ""
    retries: int = 0


def bench_multi_one(chip: str, op: str, n: int, baud: int, dump: Path, image: Path, stock: bytes,
                    folder: Path, keep: Path | None = None) -> MultiRow:
    row = MultiRow(chip, baud, op, n)
    sims: list[SimProcess] = []
    try:
        for i in range(n):
            sims.append(SimProcess(dump, folder, i))
        data = folder / f"data-{op}-{n}-{baud}"
        # A ports file: one chip goes through the station too (one --port would be the single-chip path).
        plist = folder / f"ports-{n}.txt"
        plist.write_text("".join(s.path + "\n" for s in sims))
        ports = ["--ports-file", str(plist)]
        cmd = (["read", *ports] if op == "backup" else ["station", *ports, "--image", str(image), "--no-reboot"])
        cmd += ["-b", str(baud), "--reset", "manual", "--json", "--data-dir", str(data)]
        sim0 = [s.cpu() for s in sims]
        host0 = _host_jiffies()
        t0 = time.perf_counter()
        proc = subprocess.Popen(_bkbench(*cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=1800)
        row.wall = time.perf_counter() - t0
        host1 = _host_jiffies()
        row.sims_cpu = sum(s.cpu() - c for s, c in zip(sims, sim0))
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)  # the bkbench child is the only one reaped so far
        row.ours_cpu = ru.ru_utime + ru.ru_stime - bench_multi_one.reaped  # type: ignore[attr-defined]
        bench_multi_one.reaped = ru.ru_utime + ru.ru_stime  # type: ignore[attr-defined]
        row.host_busy = (host1[0] - host0[0]) / max(1, host1[1] - host0[1]) * len(os.sched_getaffinity(0))
        results = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
        row.per_chip = [r["seconds"] for r in results]
        row.retries = sum(r.get("retries", 0) for r in results)
        if keep is not None:  # the per-port logs, to see where a slow chip spent its time
            shutil.copytree(data / "logs", keep / f"{chip}-{op}-{n}-{baud}", dirs_exist_ok=True)
        bad = [f"{r['port']}: {r['state']} {r['error']}" for r in results if r["state"] != "done"]
        if len(results) != n or bad or proc.returncode:
            row.ok = "FAILED " + ("; ".join(bad) or err.strip()[-200:])
            return row
        # Judged against the chips, not the report: every backup is the stock dump byte for byte, and
        # after a write the chip's own CRC of the app region equals the image's (bkbench verify).
        wrong = [r["port"] for r in results if Path(r["backup"]).read_bytes() != stock]
        if op == "station":
            for s in sims:
                v = subprocess.run(_bkbench("verify", "-p", s.path, "--start", hex(APP_START), str(image),
                                            "-b", str(baud), "--reset", "manual", "-q"),
                                   capture_output=True, text=True, timeout=600)
                if v.returncode:
                    wrong.append(s.path + " (image not on the chip)")
        row.ok = "WRONG DATA " + ", ".join(wrong) if wrong else "ok"
    finally:
        for s in sims:
            s.close()
    return row


bench_multi_one.reaped = 0.0  # type: ignore[attr-defined]


def bench_multi(chip: str, counts: list[int], bauds: list[int], ops: list[str],
                keep: Path | None = None) -> list[MultiRow]:
    from bkbench.core.images.builders import build_from_ota

    fx = fixtures_dir()
    assert fx is not None
    dump_name, ota, _family = CHIPS[chip]
    dump = fx / "dumps" / dump_name
    stock = dump.read_bytes()
    rows: list[MultiRow] = []
    with tempfile.TemporaryDirectory(prefix="bkbench-multi-") as tmp:
        folder = Path(tmp)
        # Ptys are numbered again and again: a rate another run remembered as failed for /dev/pts/N
        # (the baud ladder's memory, in the user config) must not slow one chip here. Fresh config.
        os.environ["BKBENCH_CONFIG_DIR"] = str(folder / "config")
        image = folder / "obk-ua.bin"
        image.write_bytes(build_from_ota((fx / "firmware" / ota).read_bytes(), stock, chip)["ua"])
        # Reap anything earlier so RUSAGE_CHILDREN deltas belong to the bkbench children only.
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        bench_multi_one.reaped = ru.ru_utime + ru.ru_stime  # type: ignore[attr-defined]
        for op in ops:
            for baud in bauds:
                for n in counts:
                    print(f"\n... {chip} {op} on {n} chip(s) at {baud}", file=sys.stderr, flush=True)
                    row = bench_multi_one(chip, op, n, baud, dump, image, stock, folder, keep)
                    ru = resource.getrusage(resource.RUSAGE_CHILDREN)  # the simulators were reaped too
                    bench_multi_one.reaped = ru.ru_utime + ru.ru_stime  # type: ignore[attr-defined]
                    rows.append(row)
                    print("\n".join(multi_lines([row], rows)[2:]), flush=True)
    return rows


def multi_lines(rows: list[MultiRow], context: list[MultiRow] | None = None) -> list[str]:
    """Table rows; `ratio` = wall time over the one-chip wall time of the same chip, op and baud."""
    context = context or rows
    one = {(r.chip, r.op, r.baud): r.wall for r in context if r.n == 1 and r.wall}
    out = ["| chip | op | baud | chips | wall s | per chip s (mean / max) | wall / 1 chip | bkbench CPU s | "
           "simulators CPU s | host CPUs busy | data |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        base = one.get((r.chip, r.op, r.baud))
        ratio_ = f"{r.wall / base:.2f}x" if base and r.wall else "-"
        per = (f"{sum(r.per_chip) / len(r.per_chip):.1f} / {max(r.per_chip):.1f}" if r.per_chip else "-")
        out.append(f"| {r.chip} | {r.op} | {r.baud} | {r.n} | {fmt(r.wall)} | {per} | {ratio_} | "
                   f"{r.ours_cpu:.1f} | {r.sims_cpu:.1f} | {r.host_busy:.2f} of {len(os.sched_getaffinity(0))} | "
                   f"{r.ok}{f', {r.retries} RETRIES' if r.retries else ''} |")
    return out


# ---------------------------------------------------------------------------------------------- output
def timing_lines(t: Timing) -> list[str]:
    out = ["| parameter | value | source |", "|---|---|---|"]
    out.append(f"| wire | bytes x 10 / baud | {TIMING_SOURCES['wire']} |")
    for f in fields(t):
        if f.name != "enabled":
            out.append(f"| {f.name} | {getattr(t, f.name):g} | {TIMING_SOURCES.get(f.name, '')} |")
    return out


def table_lines(rows: list[Row], blank: dict[str, float]) -> list[str]:
    out = ["| chip | baud | operation | bkbench s | limit s | bkbench/limit | dump erased | bk7231tools s | "
           "ltchiptool s | best peer / bkbench | data, retries |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        peers = [p for p in (r.bk7231tools, r.ltchiptool) if p]
        speed = f"{min(peers) / r.ours:.2f}x" if peers and r.ours else "-"
        out.append(f"| {r.chip} | {r.baud} | {r.op} | {fmt(r.ours)} | {fmt(r.limit)} | {ratio(r.limit, r.ours)} | "
                   f"{blank[r.chip]:.0%} | {fmt(r.bk7231tools)} | {fmt(r.ltchiptool)} | {speed} | {r.ok.strip()} |")
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child_main(argv[1:])
    # The simulated chips' writes record their flash protection (DATA_DIR/protection): never in the user's own.
    if "BKBENCH_DATA_DIR" not in os.environ:
        os.environ["BKBENCH_DATA_DIR"] = tempfile.mkdtemp(prefix="bkbench-bench-data-")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="921600 and 2M, 512 KiB read, 256 KiB write, short TUI probes (a few minutes)")
    ap.add_argument("--bauds", help="comma-separated baud rates (default 115200,921600,1500000,2000000,3000000)")
    ap.add_argument("--chips", default="N,T", help="N, T or N,T (default)")
    ap.add_argument("--no-peers", action="store_true", help="skip bk7231tools and ltchiptool")
    ap.add_argument("--no-tui", action="store_true", help="skip the TUI measurements")
    ap.add_argument("--no-host", action="store_true", help="skip the host CPU and Pi quota measurements")
    ap.add_argument("--output", help="also write the results as Markdown to this file")
    ap.add_argument("--multi", default="1,2,4",
                    help="several chips at once: chip counts for the station rows (default 1,2,4; 0 = skip)")
    ap.add_argument("--multi-bauds", default=",".join(str(b) for b in MULTI_BAUDS),
                    help="baud rates of the station rows (default 921600,2000000)")
    ap.add_argument("--multi-ops", default="backup,station",
                    help="station rows: backup (bkbench read), station (backup, write, verify) or both")
    ap.add_argument("--only-multi", action="store_true", help="only the several-chips rows")
    ap.add_argument("--multi-keep", help="keep each station row's per-port logs in this folder")
    ap.add_argument("--remote", action="store_true",
                    help="only the remote rows: local pty vs rfc2217:// and socket:// through ser2net "
                         "(scripts/bench_remote.py; default N at 921600 and 2M)")
    ap.add_argument("--remote-pyserial", action="store_true", help="with --remote: add pyserial's RFC 2217 client")
    ap.add_argument("--adapters", nargs="?", const="ft232r,ch340,cp2102,pl2303", default=None,
                    help="only the adapter rows: bkbench and the peers behind each simulated USB-serial adapter "
                         "(scripts/bench_adapters.py; default ft232r,ch340,cp2102,pl2303, N at 921600 and 2M)")
    args = ap.parse_args(argv)

    fx = fixtures_dir()
    if fx is None:
        ap.error("the shared fixtures were not found: set BKBENCH_SHARED to the directory holding fixtures/")
    from bkbench.core.images.builders import build_from_ota

    chips = [c for c in CHIPS if c[-1] in args.chips.upper().replace(" ", "").split(",")]
    bauds = [int(b) for b in args.bauds.split(",")] if args.bauds else list(QUICK_BAUDS if args.quick else FULL_BAUDS)
    timing = Timing(enabled=True)
    head = [f"bkbench benchmark, {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
            f"machine: {platform.machine()}, {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
            f"Python {platform.python_version()}, {platform.platform()}, load average "
            f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at start"]
    inputs: dict[str, tuple[bytes, bytes, int]] = {}
    blank: dict[str, float] = {}
    for chip in chips:
        dump, ota, _family = CHIPS[chip]
        stock = (fx / "dumps" / dump).read_bytes()
        image = build_from_ota((fx / "firmware" / ota).read_bytes(), stock, chip)["ua"]
        image += b"\xff" * (-len(image) % SECTOR)
        # --quick reads 512 KiB where application data meets the erased OTA area, so it shows both.
        start, length = (QUICK_READ if args.quick else (0, len(stock)))
        if args.quick:
            image = image[:0x40000]
        inputs[chip] = (stock, image, start, length)
        blank[chip] = blank_sectors(stock, start, length) * SECTOR / length
        head.append(f"{chip}: simulated, stock dump {dump} ({blank[chip]:.0%} of the read range erased); "
                    f"read/verify range 0x{start:X}+{length // 1024} KiB; write = OpenBK {ota} as UA "
                    f"({len(image)} bytes) at 0x{APP_START:X}")
    head.append("")
    print("\n".join(head + timing_lines(timing)), flush=True)
    if args.remote:
        from bench_remote import main_remote

        return main_remote(args, argv, inputs, head, timing_lines(timing), timing)
    if args.adapters is not None:
        from bench_adapters import main_adapters

        return main_adapters(args, argv, inputs, head, timing_lines(timing), timing)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bkbench-bench-") as lib_dir:
        for chip in chips if not args.only_multi else []:
            stock, image, start, length = inputs[chip]
            for baud in bauds:
                print(f"\n... {chip} at {baud} baud", file=sys.stderr, flush=True)
                new = bench_baud(chip, baud, stock, image, start, length, timing, not args.no_peers, Path(lib_dir))
                rows += new
                print("\n".join(table_lines(new, blank)[2:]), flush=True)
    table = table_lines(rows, blank) if rows else []
    print("\n" + "\n".join(table))
    extra: list[tuple[str, str]] = []
    multi: list[MultiRow] = []
    counts = [int(c) for c in args.multi.split(",") if int(c) > 0]
    if counts:
        for chip in chips[:1]:  # one family is enough: the question is parallelism, not the chip
            multi += bench_multi(chip, counts, [int(b) for b in args.multi_bauds.split(",")],
                                 args.multi_ops.split(","), Path(args.multi_keep) if args.multi_keep else None)
        print("\nSeveral chips at once\n" + "\n".join(multi_lines(multi)))
    if args.only_multi:
        args.no_host = args.no_tui = True
    if not args.no_host:
        for chip in chips:
            stock, image, start, length = inputs[chip]
            print(f"\n... host CPU and Pi quota, {chip}", file=sys.stderr, flush=True)
            extra += bench_host(chip, stock, image, start, length, timing, pi=True)
    if not args.no_tui:
        print("\n... TUI", file=sys.stderr, flush=True)
        extra += bench_tui_processes(pi=True, seconds=3.0 if args.quick else 10.0)
        if not args.quick:
            extra += bench_tui()
    extra_lines = [f"- {k}: {v}" for k, v in extra]
    if extra_lines:
        print("\nHost, Pi budget and TUI\n" + "\n".join(extra_lines))
    retried = [r for r in rows if r.retries]
    if retried:
        print("\n*** BUG: the retry counter moved in a fault-free run: "
              + ", ".join(f"{r.chip} {r.op} at {r.baud} ({r.retries})" for r in retried) + " ***", file=sys.stderr)
    if args.output:
        notes = ["", "Notes: times are for the operation only; read = full verified read saved as a backup "
                 "(bkbench) / flash_read_bytes with per-4K CRC (bk7231tools) / `flash read` with per-32K CRC "
                 "(ltchiptool); write = stock app region replaced by the OpenBK image; rewrite = the same image "
                 "again (bkbench skips identical sectors, the peers erase, write and check every sector); "
                 "verify = chip against the backup by CRC (the peers have no verify-only command). "
                 "'dump erased' = share of the read range that is erased flash."]
        md = ["# Benchmark results", "", "```", *head, "```", "", "Timing model (core/sim/timing.py):", "",
              *timing_lines(timing), "", "Command: `python scripts/bench.py " + " ".join(argv) + "`", "", *table,
              *notes]
        if extra_lines:
            md += ["", "Host, Pi budget and TUI:", "", *extra_lines]
        if multi:
            md += ["", "Several chips at once (one bkbench process, a `bkbench simulate --timing` process per "
                   "chip on its own pty; backup = `bkbench read` with N --port, station = `bkbench station "
                   "--image` = backup, write, verify; per chip = each chip's own time from link to done; "
                   "host CPUs busy = the whole machine, other work included):", "", *multi_lines(multi)]
        Path(args.output).write_text("\n".join(md) + "\n")
        print(f"\nwritten to {args.output}", file=sys.stderr)
    bad = [r for r in rows if "WRONG" in r.ok] + [r for r in multi if r.ok != "ok" or r.retries]
    return 1 if bad or retried else 0


if __name__ == "__main__":
    sys.exit(main())
