"""The serial monitor streams the app's boot log and hands the port over on pause."""

from __future__ import annotations

import threading
import time

from bkbench.core.monitor import SerialMonitor
from bkbench.core.session import Session
from simhelpers import sim_url


def test_monitor_shows_boot_log_then_yields_the_port(fixtures_dir):
    dump = fixtures_dir / "dumps" / "bk7231n-lspa9-clone-bl0937-plug.bin"
    got = bytearray()
    lock = threading.Lock()

    def on_data(b: bytes) -> None:
        with lock:
            got.extend(b)

    with sim_url("BK7231N", dump, scenario="app-running", wiring="rts") as (url, dev):
        mon = SerialMonitor(url, 115200, on_data)
        mon.start()
        deadline = time.monotonic() + 5
        while b"[Flash]id:0xeb6015" not in got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b"V:BK7231N_1.0.1" in got and b"[Flash]id:0xeb6015" in got
        assert mon.pause()
        # The operation owns the port now: it resets the chip through RTS and links.
        with Session(url, baud=921600, reset="dtr-rts", link_timeout=5) as s:
            info = s.connect()
            assert info.chip == "BK7231N"
            s.reboot()
        n = len(got)
        mon.resume()
        deadline = time.monotonic() + 5
        while got[n:].find(b"V:BK7231N_1.0.1") < 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        mon.stop()
        assert b"V:BK7231N_1.0.1" in got[n:]  # the rebooted chip's log arrives after resume
        assert dev.resets >= 2
