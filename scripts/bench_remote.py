"""Remote rows of the benchmark: the same timed simulated chip through a local pty and through ser2net.

    python scripts/bench.py --remote                      # N at 921600 and 2M, plus socket:// at 115200
    python scripts/bench.py --remote --bauds 921600 --chips N --remote-pyserial   # no socket:// rows

Every path serves a fresh simulated chip (wire-timing model on) on a pty (core/sim/pty_bridge.py); the
local row talks to the pty directly, the remote rows through the real ser2net on loopback
(core/sim/ser2net.py): `rfc2217://` with the README's recommended config (`chardelay: false`,
`tcp(nodelay)`) and with ser2net's defaults, and `socket://` (raw TCP, which cannot change the line
rate, so it runs at 115200 and is compared with the local pty at 115200). `--remote-pyserial` adds
pyserial's own RFC 2217 client (`?ign_set_control`, as the issue measured it) on the recommended config.

backup = full verified read saved in a backup library (byte-exact against the simulated flash);
write = the OpenBK UA image at 0x11000 (judged on the simulated flash). "vs local" = time / local time
at the same baud (the target is at most 1.2x).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import serial
from bkbench.core import session as session_mod
from bkbench.core.backups import BackupLibrary
from bkbench.core.session import Session
from bkbench.core.sim.device import SimDevice
from bkbench.core.sim.pty_bridge import PtyBridge
from bkbench.core.sim.ser2net import Ser2net, find_ser2net
from bkbench.core.sim.timing import Timing

APP_START = 0x11000


@dataclass
class RemoteRow:
    chip: str
    baud: int
    path: str
    op: str
    seconds: float | None = None
    local: float | None = None
    ok: str = ""


@contextlib.contextmanager
def _pyserial_rfc2217() -> Iterator[None]:
    """Open rfc2217:// with pyserial's own client for the comparison row (the engine uses core/rfc2217.py)."""
    real = session_mod.open_port

    def open_with_pyserial(url: str, baud: int = 115200, timeout: float = 0.05, exclusive: bool = True):
        port = serial.serial_for_url(url + "?ign_set_control", baudrate=baud, timeout=timeout)
        port.dtr = port.rts = False
        return port

    session_mod.open_port = open_with_pyserial
    try:
        yield
    finally:
        session_mod.open_port = real


def _run(chip: str, stock: bytes, image: bytes, baud: int, timing: Timing, lib_dir: Path,
         url_for: Callable[[str], contextlib.AbstractContextManager[str]], ops: tuple[str, ...]) -> dict[str, tuple]:
    dev = SimDevice(stock, chip=chip, timing=timing, boot_window=1e9)
    bridge = PtyBridge(dev).start()
    out: dict[str, tuple] = {}
    try:
        with url_for(bridge.path) as url, Session(url, baud=baud, reset="manual", link_timeout=10) as s:
            s.connect()
            if "backup" in ops:
                lib = BackupLibrary(Path(tempfile.mkdtemp(dir=lib_dir)))
                t0 = time.perf_counter()
                entry = s.backup(lib).entry
                t = time.perf_counter() - t0
                out["backup"] = (t, lib.load(entry) == bytes(dev.flash.data))
            if "write" in ops:
                t0 = time.perf_counter()
                s.write(image, APP_START, backup_first=False)
                t = time.perf_counter() - t0
                out["write"] = (t, bytes(dev.flash.data[APP_START:APP_START + len(image)]) == image)
    finally:
        bridge.stop()
    return out


def bench_remote(chips: dict[str, tuple[bytes, bytes]], bauds: list[int], timing: Timing,
                 pyserial: bool = False, socket_rows: bool = True) -> list[RemoteRow]:
    if find_ser2net() is None:
        raise SystemExit("the remote benchmark needs ser2net (apt-get install ser2net)")

    @contextlib.contextmanager
    def local(pty: str) -> Iterator[str]:
        yield pty

    def via(kind: str, fast: bool) -> Callable[[str], contextlib.AbstractContextManager[str]]:
        @contextlib.contextmanager
        def cm(pty: str) -> Iterator[str]:
            with Ser2net(pty, rfc2217=kind == "rfc2217", raw=kind == "socket", fast=fast) as s2n:
                yield s2n.rfc2217_url if kind == "rfc2217" else s2n.socket_url
        return cm

    paths: list[tuple[str, Callable, tuple[str, ...], Callable[[], contextlib.AbstractContextManager]]] = [
        ("local pty", local, ("backup", "write"), contextlib.nullcontext),
        ("rfc2217 ser2net (recommended)", via("rfc2217", True), ("backup", "write"), contextlib.nullcontext),
        ("rfc2217 ser2net (defaults)", via("rfc2217", False), ("backup",), contextlib.nullcontext),
    ]
    if pyserial:
        paths.append(("pyserial rfc2217 ?ign_set_control (recommended)", via("rfc2217", True), ("backup",),
                      _pyserial_rfc2217))
    rows: list[RemoteRow] = []
    with tempfile.TemporaryDirectory(prefix="bkbench-bench-remote-") as tmp:
        for chip, (stock, image) in chips.items():
            plan = [(b, p) for b in bauds if b != 115200 for p in paths]
            if socket_rows:  # raw TCP cannot switch: 115200 only, against the local pty at 115200
                plan += [(115200, ("local pty", local, ("backup",), contextlib.nullcontext)),
                         (115200, ("socket ser2net (recommended)", via("socket", True), ("backup",),
                                   contextlib.nullcontext))]
            local_t: dict[tuple[int, str], float] = {}
            for baud, (name, url_for, ops, patch) in plan:
                print(f"... remote: {chip} {name} at {baud}", flush=True)
                with patch():
                    res = _run(chip, stock, image, baud, timing, Path(tmp), url_for, ops)
                for op, (t, good) in res.items():
                    if name == "local pty":
                        local_t[(baud, op)] = t
                    row = RemoteRow(chip, baud, name, op, t, local_t.get((baud, op)), "ok" if good else "WRONG")
                    rows.append(row)
                    print("  " + remote_table([row])[-1], flush=True)
    return rows


def remote_table(rows: list[RemoteRow]) -> list[str]:
    out = ["| chip | baud | path | operation | seconds | vs local | result |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        vs = f"{r.seconds / r.local:.2f}x" if r.seconds and r.local else "-"
        sec = "-" if r.seconds is None else f"{r.seconds:.2f}"
        out.append(f"| {r.chip[-1]} | {r.baud} | {r.path} | {r.op} | {sec} | {vs} | {r.ok} |")
    return out


def main_remote(args, argv: list[str], inputs: dict[str, tuple], head: list[str], timing_text: list[str],
                timing: Timing) -> int:
    """`bench.py --remote`: default BK7231N at 921600 and 2M plus socket:// at 115200 (only when 115200 is
    among the rates)."""
    chips = {c: (v[0], v[1]) for c, v in inputs.items() if "--chips" in argv or c == "BK7231N"}
    bauds = [int(b) for b in args.bauds.split(",")] if args.bauds else [921600, 2000000, 115200]
    rows = bench_remote(chips, bauds, timing, pyserial=args.remote_pyserial, socket_rows=115200 in bauds)
    table = remote_table(rows)
    print("\n" + "\n".join(table))
    if args.output:
        md = ["# Remote benchmark results", "", "```", *head, "```", "", "Timing model (core/sim/timing.py):", "",
              *timing_text, "", "Command: `python scripts/bench.py " + " ".join(argv) + "`", "", *table]
        Path(args.output).write_text("\n".join(md) + "\n")
    return 1 if any(r.ok != "ok" for r in rows) else 0
