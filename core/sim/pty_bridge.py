"""Serve a SimDevice on a pseudo-terminal so external tools (bk7231tools, ltchiptool) can talk to it.

A pty moves bytes at full speed and carries no DTR/RTS; the host's baud setting is read from the
slave side with TCGETS2 on every turn of the loop (so within a few ms of a write, before its bytes
are taken), and a host that forgets to switch rates sees garbage as on a real UART.

Like a USB adapter, the bridge never waits for a host that does not read: what the chip sends is
queued up to `RX_BUFFER` bytes (a driver-sized buffer) and anything beyond is dropped and counted.
"""

from __future__ import annotations

import array
import fcntl
import os
import select
import threading
import time
import tty

from .device import SimDevice

TCGETS2 = 0x802C542A  # _IOR('T', 0x2A, struct termios2), 44 bytes
RX_BUFFER = 64 * 1024  # bytes the host side may leave unread before the adapter drops more


def pty_baud(fd: int) -> int:
    buf = array.array("I", [0] * 11)
    fcntl.ioctl(fd, TCGETS2, buf, True)
    return int(buf[10])  # c_ospeed


class PtyBridge:
    def __init__(self, device: SimDevice) -> None:
        self.device = device
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        os.set_blocking(self.master, False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._queue = bytearray()  # chip -> host bytes the host has not taken yet
        self.dropped = 0
        self._looked = device.clock()  # when the host's rate was last read from the pty

    def start(self) -> PtyBridge:
        self._thread = threading.Thread(target=self.serve, name="bkbench-pty", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def _read_host(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EAGAIN, or the host closed the slave
            data = b""
        if data:
            self.device.host_write(data)

    def _sync_baud(self, pending: bool) -> None:
        dev = self.device
        now = dev.clock()
        try:
            baud = pty_baud(self.slave)
        except OSError:
            return
        if baud and baud != dev.host_baud:
            # A pty keeps no time stamps: bytes still waiting when a rate change is seen may have been written
            # before it. A host that was talking at the chip's rate and now leaves it has just sent its last
            # bytes at that rate (SetBaudRate, then the switch 10 ms later: a bridge lagging on a busy machine
            # read them only after the switch and garbled a command the chip got fine): take those first.
            if pending and dev.host_baud == dev.chip_baud != baud:
                self._read_host()
            # The host switched some time after the previous look: bytes that arrived since then count as
            # received at the new rate (only a host that really switched late loses them).
            dev.set_host_baud(baud, since=self._looked)
        self._looked = now

    def serve(self) -> None:
        dev = self.device
        while not self._stop.is_set():
            nxt = dev.next_event_time()
            wait = 0.005 if nxt is None else min(0.005, max(0.0, nxt - time.monotonic()))
            try:
                ready, _, _ = select.select([self.master], [self.master] if self._queue else [], [], wait)
            except (OSError, ValueError):
                return
            self._sync_baud(pending=bool(ready))
            if ready:
                self._read_host()
            out = dev.host_read()
            if out:
                room = RX_BUFFER - len(self._queue)
                self._queue += out[: max(room, 0)]
                self.dropped += max(0, len(out) - max(room, 0))
            if self._queue:
                try:
                    n = os.write(self.master, self._queue)
                    del self._queue[:n]
                except BlockingIOError:
                    pass
                except OSError:
                    return
