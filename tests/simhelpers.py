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


# A peer tool (bk7231tools, ltchiptool) switches its own port 10 ms after SetBaudRate; the chip answers at
# the new rate 20 ms after it (PROTOCOL-DETAILS.md 2.2.5). On a busy machine the peer's switch comes too late,
# it reads the echo as garbage and gives up with "No response received" (BK7231GUIFlashTool raised its delay
# to 200 ms "for slow systems" for this; bkbench's own client probes the new rate instead, core/link/baud.py).
# That race is the peer's, not what a peer test judges: such a run is tried again on a fresh chip.
PEER_TRIES = 4  # a busy machine misses the 10 ms now and then (one run in five under full load here)


def lost_baud_echo(dev: SimDevice, text: str) -> bool:
    """The peer gave up right after the chip took its SetBaudRate (the echo it did not read)."""
    return "No response received" in text and bool(dev.commands) and dev.commands[-1] == 0x0F


def run_peer_cli(make_dev, argv, **kwargs):
    """(device, CompletedProcess) of a peer CLI run against a fresh simulated chip on a pty; `argv(pty)`."""
    import subprocess

    for attempt in range(PEER_TRIES):
        dev = make_dev()
        with pty_for(dev) as pty:
            res = subprocess.run(argv(pty), capture_output=True, text=True, **kwargs)
        if res.returncode == 0 or attempt + 1 == PEER_TRIES or not lost_baud_echo(dev, res.stdout + res.stderr):
            return dev, res
    raise AssertionError("unreachable")


@contextmanager
def peer_on_pty(make_dev, baudrate: int = 921600) -> Iterator[tuple[SimDevice, object]]:
    """A connected bk7231tools BK7231Serial on a fresh simulated chip (see run_peer_cli), closed after."""
    from bk7231tools.serial import BK7231Serial

    for attempt in range(PEER_TRIES):
        dev = make_dev()
        with pty_for(dev) as pty:
            peer = BK7231Serial(pty, baudrate=baudrate, link_timeout=5)
            try:
                peer.connect()
            except ValueError as exc:
                peer.close()
                if attempt + 1 < PEER_TRIES and lost_baud_echo(dev, str(exc)):
                    continue
                raise
            try:
                yield dev, peer
            finally:
                peer.close()
            return
