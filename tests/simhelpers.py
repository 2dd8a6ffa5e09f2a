"""Test helpers: simulated devices registered by name, real fixture dumps, pty bridges."""

from __future__ import annotations

import itertools
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from bkbench.core.sim.device import SimDevice
from bkbench.core.sim.pty_bridge import PtyBridge
from bkbench.core.sim.registry import create_device, register, unregister

_names = itertools.count()

DUMP_CHIPS = {
    "bk7231n-ap-smt-breaker02-relay.bin": ("BK7231N", "bl_bk7231n 1.0.1"),
    "bk7231n-elegrp-dpr10-tuyamcu-dimmer.bin": ("BK7231N", "bl_bk7231n 1.0.1"),
    "bk7231n-lspa9-clone-bl0937-plug.bin": ("BK7231N", "bl_bk7231n 1.0.1"),
    "bk7231n-mirabella-genio-i003632-plug.bin": ("BK7231N", "bl_bk7231n 1.0.1"),
    "bk7231t-feit-br30-rgbw-bulb.bin": ("BK7231T", "bk7231s 1.0.5"),
    "bk7231t-globe-37783-rgbct-bulb.bin": ("BK7231T", "bk7231s 1.0.3"),
}
ROTATED = "bk7231t-led-moon-cct-rotated-0x11000.bin"


def unrotate(data: bytes) -> bytes:
    """The rotated fixture was read from 0x11000 with wrap-around: put the bootloader back in front."""
    return data[-0x11000:] + data[:-0x11000]


@contextmanager
def sim_url(chip: str = "BK7231N", dump: Path | bytes | None = None, **kwargs) -> Iterator[tuple[str, SimDevice]]:
    if isinstance(dump, bytes):
        dev = SimDevice(dump, chip=chip, **kwargs)
    else:
        dev = create_device(chip, dump, **kwargs)
    name = f"t{next(_names)}"
    register(name, dev)
    try:
        yield f"sim://@{name}", dev
    finally:
        unregister(name)


@contextmanager
def pty_for(dev: SimDevice) -> Iterator[str]:
    bridge = PtyBridge(dev).start()
    try:
        yield bridge.path
    finally:
        bridge.stop()


@contextmanager
def temp_env(**env: str) -> Iterator[None]:
    """Set environment variables for a block and restore them after (usable inside hypothesis tests)."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_with_deadline(fn, timeout: float):
    """Run fn in a daemon thread: (result, exception, still running after `timeout` s, i.e. hung)."""
    import threading

    box: dict = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - classified by the caller
            box["exc"] = exc

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(timeout)
    return box.get("result"), box.get("exc"), th.is_alive()
