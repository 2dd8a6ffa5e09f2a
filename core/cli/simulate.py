"""`bkbench simulate`: serve a simulated chip on a pty for other tools (and for the workbench).

The chip's identity comes from the dump (`--chip` only for images whose bootloader is unknown).
With `--realistic` it runs its application and must be reset into the boot window, as a person does
with CEN or the power wire: keys `r` (reset) and `p` (power-cycle) in this terminal, or signals
SIGUSR1 (reset) and SIGUSR2 (power-cycle) for scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import BkError
from ..link.adapters import FAMILIES as ADAPTERS
from ..sim.device import SCENARIOS, WIRINGS, SimDevice
from ..sim.pty_bridge import PtyBridge
from ..sim.registry import CHIPS, create_device


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="serve a simulated Beken chip on a pty (prints its path first)")
    p.add_argument("--chip", default=None, choices=sorted(CHIPS),
                   help="chip family (core/chips.py); only needed for images whose bootloader is not known")
    p.add_argument("--dump", help="flash dump to load (default: a real fixture dump if present, else synthesised)")
    p.add_argument("--scenario", default="bootloader", choices=SCENARIOS,
                   help="bootloader (default: waits as after a well-timed reset), or a failure to play")
    p.add_argument("--realistic", action="store_true",
                   help="the chip runs its firmware; reset it (keys r/p, SIGUSR1/SIGUSR2) to reach the boot window")
    p.add_argument("--wiring", default="none", choices=WIRINGS)
    p.add_argument("--timing", action="store_true", help="model wire and flash timing (benchmarks)")
    p.add_argument("--efuse", help="eFuse contents as hex (16-byte key or 32 bytes); default: the variant's")
    p.add_argument("--flash-id", help="JEDEC ID of the flash part to play, e.g. EB6015 (core/flash_ids.py)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--idle", type=float, metavar="SECONDS", default=None,
                   help="a T bootloader reboots after this long without a byte once linked (default with "
                        "--realistic: 5; the real code counts ~400,000 loop passes, unmeasured on a chip)")
    p.add_argument("--max-baud", type=int, default=None, help="the simulated adapter garbles faster rates")
    p.add_argument("--adapter", choices=sorted(ADAPTERS), default=None,
                   help="model a USB-serial family: its latency (FTDI: the 16 ms latency timer, which no tool can "
                        "lower over a pty), its divisor error against the chip's, its modem lines")
    p.add_argument("--ser2net", type=int, metavar="PORT", default=None,
                   help="also serve the chip through ser2net on loopback: rfc2217://127.0.0.1:PORT and "
                        "socket://127.0.0.1:PORT+1 (needs the ser2net package)")
    p.add_argument("--save-demo", metavar="FILE",
                   help="write the built-in demo plug's 2 MiB flash to FILE and exit (for analyze or --dump)")
    p.set_defaults(func=cmd_simulate)


def power_cycle(dev: SimDevice, off_s: float = 0.2) -> None:
    dev.power(False)
    time.sleep(off_s)
    dev.power(True)


def _keys(dev: SimDevice, stop: threading.Event, fd: int) -> None:
    """`r` reset, `p` power-cycle, `q` quit (the caller puts the terminal in cbreak mode)."""
    import select

    while not stop.is_set():
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        key = os.read(fd, 1).decode("latin-1").lower()
        if key == "r":
            dev.reset()
            print("reset (CEN pulse): boot window open", file=sys.stderr, flush=True)
        elif key == "p":
            power_cycle(dev)
            print("power-cycled: boot window open", file=sys.stderr, flush=True)
        elif key in ("q", "\x03", "\x04"):
            stop.set()


def save_demo(path: str) -> str:
    """The built-in demo plug (core/demo_image.py) as a file: what `python -m bkbench.core.demo_image` does
    in a checkout, for an installed copy too (its Python is pipx's, not the user's `python`)."""
    from ..backups import atomic_write
    from ..demo_image import CHIP, DEMO_MAC, demo_flash
    from .common import check_output_path

    if os.path.lexists(path):
        raise BkError(f"{path} exists; bkbench never overwrites it (give another file name)")
    check_output_path(path)
    data = demo_flash()
    atomic_write(Path(path), data, mode=0o644)
    return (f"{path}: the built-in demo plug, a synthetic stock Tuya {CHIP} ({len(data) >> 20} MiB, MAC {DEMO_MAC}); "
            f"try: bkbench analyze {path}   or: bkbench simulate --dump {path}")


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.save_demo:
        print(save_demo(args.save_demo))
        return 0
    kwargs: dict[str, Any] = {"max_baud": args.max_baud} if args.max_baud else {}
    if args.idle is not None:
        if not 0 < args.idle <= 3600:
            raise BkError(f"--idle {args.idle}: give seconds, more than 0 and at most 3600")
        kwargs["idle_timeout"] = args.idle
    if args.adapter:
        kwargs["adapter"] = args.adapter
    try:
        dev = create_device(args.chip, args.dump, scenario=args.scenario, wiring=args.wiring,
                            timing=args.timing, seed=args.seed, efuse=args.efuse, flash_id=args.flash_id,
                            realistic=args.realistic, **kwargs)
    except ValueError as exc:
        raise BkError(str(exc)) from None
    if args.ser2net is not None and not 0 < args.ser2net < 65535:
        raise BkError(f"--ser2net {args.ser2net}: a TCP port from 1 to 65534 (raw TCP goes on PORT+1)")
    bridge = PtyBridge(dev).start()
    s2n = None
    if args.ser2net is not None:
        from ..sim.ser2net import Ser2net

        try:
            s2n = Ser2net(bridge.path, port=args.ser2net).start()
        except (OSError, RuntimeError) as exc:
            bridge.stop()
            raise BkError(f"ser2net: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    if getattr(args, "json", False):  # still one line, so tools reading the first line keep working
        print(json.dumps({"path": bridge.path, "chip": dev.chip, "scenario": args.scenario,
                          "realistic": bool(args.realistic), "adapter": args.adapter}), flush=True)
    else:
        print(bridge.path, flush=True)
    mode = "realistic: running its firmware" if args.realistic else f"scenario {dev.scenario}"
    if dev.adapter is not None:
        fam = dev.adapter.family
        mode += f", behind a simulated {fam.name} ({fam.latency_ms:g} ms latency)"
    # the version its code reports (Globe's "1.0.3" of the CRC tables says 1.0.4)
    boot = (dev.boot_reports or "").rpartition("_")[2] or dev.boot_version or "unknown"
    print(f"simulating {dev.variant} ({dev.dialect.value}, bootloader {boot}), {mode}; "
          f"keys r=reset p=power-cycle q=quit; SIGUSR1=reset SIGUSR2=power-cycle", file=sys.stderr, flush=True)
    if s2n is not None:
        print(f"through ser2net: {s2n.rfc2217_url} and {s2n.socket_url} (loopback only)", file=sys.stderr, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: dev.reset())
    signal.signal(signal.SIGUSR2, lambda *_: threading.Thread(target=power_cycle, args=(dev,), daemon=True).start())
    saved = None
    if sys.stdin is not None and sys.stdin.isatty():
        import termios
        import tty

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        threading.Thread(target=_keys, args=(dev, stop, fd), daemon=True).start()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if saved is not None:
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
    if s2n is not None:
        s2n.stop()
    bridge.stop()
    return 0
