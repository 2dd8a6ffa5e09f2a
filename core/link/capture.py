"""What arrived on a port's RX and when, small enough to keep for as long as the port is watched.

The workbench's serial log feeds one while it shows the application's output, so the link doctor can use
what was seen before it started: a boot log that names the part on RX1, or a heartbeat a few seconds ago
(a chip that is quiet now is running, not unwired).
"""

from __future__ import annotations

import re
import threading
import time
from typing import Callable

HEAD_KEEP = 32768  # the latest boot log from its banner: the banner and `json cfg` are near its start
TAIL_KEEP = 4096
PRINTABLE = bytes(range(0x20, 0x7F)) + b"\t\n\r"
BANNER = re.compile(rb"V:BK72\d\d")


class RxCapture:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self.printable = 0
        self.newlines = 0
        self.last_at: float | None = None
        self.last_text_at: float | None = None  # last readable line (a heartbeat counts)

    def feed(self, data: bytes) -> None:
        if not data:
            return
        data = bytes(data)
        now = self.clock()
        with self._lock:
            joined = bytes(self.tail[-7:]) + data
            m = None
            for found in BANNER.finditer(joined):
                m = found  # the last banner in this piece starts the boot log kept
            if m is not None and m.start() >= min(7, len(self.tail)):
                self.head = bytearray()  # a new boot: keep this one's log from its banner
                data_from = m.start() - min(7, len(self.tail))
                self.head += data[data_from : data_from + HEAD_KEEP]
            elif len(self.head) < HEAD_KEEP:
                self.head += data[: HEAD_KEEP - len(self.head)]
            self.tail += data
            if len(self.tail) > TAIL_KEEP:
                del self.tail[: len(self.tail) - TAIL_KEEP]
            self.total += len(data)
            printable = len(data) - len(data.translate(None, PRINTABLE))
            self.printable += printable
            self.newlines += data.count(b"\n")
            self.last_at = now
            if b"\n" in data and printable >= 0.85 * len(data):
                self.last_text_at = now

    def text(self) -> bytes:
        with self._lock:
            head, tail = bytes(self.head), bytes(self.tail)
        if tail and tail in head:
            return head
        return head + b"\n" + tail

    def age(self) -> float | None:
        """Seconds since the last readable line, or None if none was seen."""
        return None if self.last_text_at is None else self.clock() - self.last_text_at

    def readable(self) -> bool:
        return self.total >= 16 and self.printable >= 0.85 * self.total and self.newlines >= 1
