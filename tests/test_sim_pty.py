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


def _set_rate(port: serial.Serial, baud: int) -> None:
    port.baudrate = baud  # pyserial's tcsetattr on the slave, as a host does


def test_a_command_written_before_the_host_switches_is_read_at_the_rate_it_was_sent():
    """The bridge is a thread that a busy machine runs late: it may see the host's switch to 921600 before
    it reads the SetBaudRate the host wrote at 115200 just before (the chip never got it: ltchiptool failed
    in ./dev test under load). Played here by stepping the bridge by hand."""
    from bkbench.core.protocol import Cmd, encode
    from bkbench.core.sim.pty_bridge import PtyBridge

    dev = SimDevice(synth_flash("BK7231N"))
    bridge = PtyBridge(dev)  # not started: each step below is one turn of its loop
    try:
        port = serial.Serial(bridge.path, 115200, timeout=0.2)
        bridge._sync_baud(pending=False)
        port.write(encode(Cmd.LINK_CHECK))
        bridge._sync_baud(pending=True)
        bridge._read_host()
        port.write(encode(Cmd.SET_BAUD, bytes.fromhex("00100e0014")))  # 921600, 20 ms
        _set_rate(port, 921600)  # 10 ms later the host switches; the bridge looks only now
        bridge._sync_baud(pending=True)
        bridge._read_host()
        assert dev.commands[-1] == Cmd.SET_BAUD  # got at 115200, as sent
        time.sleep(0.05)
        assert dev.host_read().endswith(bytes.fromhex("040e0901e0fc0f00100e0014"))  # its echo, at 921600
        # the other way round: a host out of step with the chip that switches to its rate and then writes
        port.baudrate = 115200
        dev2 = SimDevice(synth_flash("BK7231N"))
        bridge.device = dev2
        dev2.set_host_baud(38400)  # a pty's default rate, seen before the host opened it
        port.write(encode(Cmd.LINK_CHECK))
        bridge._sync_baud(pending=True)
        bridge._read_host()
        assert dev2.commands == [Cmd.LINK_CHECK]
        port.close()
    finally:
        bridge.stop()
