"""The pty bridge behaves like a USB adapter (issue 11, item 7): a host that writes without reading is
never blocked; what does not fit the adapter's buffer is dropped and counted."""

from __future__ import annotations

import time

import serial
from bkbench.core.sim.device import SimDevice
from bkbench.core.sim.pty_bridge import RX_BUFFER
from bkbench.core.sim.registry import synth_flash
from simhelpers import pty_for


def test_host_that_never_reads_is_not_blocked_and_bytes_are_dropped():
    dev = SimDevice(synth_flash("BK7231N"), scenario="echo")  # every byte written comes back
    with pty_for(dev) as pty:
        port = serial.Serial(pty, 115200, write_timeout=10, timeout=0.5)
        total = 4 * RX_BUFFER
        start = time.monotonic()
        for _ in range(total // 4096):
            port.write(b"\x55" * 4096)
        port.flush()
        elapsed = time.monotonic() - start
        time.sleep(0.3)
        got = port.read(total)
        port.close()
    assert elapsed < 10
    # the host gets at most the adapter buffer plus what the pty itself holds; the rest was dropped
    assert 0 < len(got) < total
    assert set(got) == {0x55}


def test_bridge_counts_drops():
    dev = SimDevice(synth_flash("BK7231N"), scenario="echo")
    from bkbench.core.sim.pty_bridge import PtyBridge

    bridge = PtyBridge(dev).start()
    try:
        port = serial.Serial(bridge.path, 115200, write_timeout=10)
        for _ in range(64):
            port.write(b"\xaa" * 4096)
        port.flush()
        time.sleep(0.3)
        assert bridge.dropped > 0
        port.close()
    finally:
        bridge.stop()
