"""`bkbench simulate`: serve a simulated chip on a pty for other tools (and for the workbench)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from ..sim.device import SCENARIOS, WIRINGS
from ..sim.pty_bridge import PtyBridge
from ..sim.registry import CHIPS, create_device


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="serve a simulated Beken chip on a pty (prints its path first)")
    p.add_argument("--chip", default="bk7231n", choices=sorted(CHIPS), help="chip family (core/chips.py)")
    p.add_argument("--dump", help="flash dump to load (default: a real fixture dump if present, else synthesised)")
    p.add_argument("--scenario", default="bootloader", choices=SCENARIOS,
                   help="bootloader (default: waits as after a well-timed reset), or a failure to play")
    p.add_argument("--wiring", default="none", choices=WIRINGS)
    p.add_argument("--timing", action="store_true", help="model wire and flash timing (benchmarks)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-baud", type=int, default=None, help="the simulated adapter garbles faster rates")
    p.set_defaults(func=cmd_simulate)


def cmd_simulate(args: argparse.Namespace) -> int:
    kwargs = {"max_baud": args.max_baud} if args.max_baud else {}
    dev = create_device(args.chip, args.dump, scenario=args.scenario, wiring=args.wiring, timing=args.timing,
                        seed=args.seed, **kwargs)
    bridge = PtyBridge(dev).start()
    print(bridge.path, flush=True)
    print(f"simulating {dev.chip} ({dev.dialect.value}), scenario {args.scenario}; Ctrl-C to stop",
          file=sys.stderr, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    bridge.stop()
    return 0
