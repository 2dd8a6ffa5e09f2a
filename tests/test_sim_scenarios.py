"""Board-fault scenarios of the simulated chip (core/sim/scenarios.py), judged on the wire: a weak supply
(boot loop, resets while the flash is busy) and RX1 held low (the chip hears zeros, the host sees its log)."""

from __future__ import annotations

import re
import struct
import time

from bkbench.core.protocol import Cmd, encode
from bkbench.core.sim.device import SCENARIOS
from bkbench.core.sim.registry import create_device
from bkbench.core.sim.scenarios import NAMES

LINK = encode(Cmd.LINK_CHECK)
REPLY = bytes.fromhex("040E0501E0FC0100")
CRC_REPLY = re.compile(rb"\x04\x0e.\x01\xe0\xfc\x10", re.S)


def read_for(dev, seconds: float) -> bytes:
    out = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out += dev.host_read()
        time.sleep(0.01)
    return out


def spam_until_linked(dev, seconds: float) -> bool:
    end = time.monotonic() + seconds
    seen = b""
    while time.monotonic() < end:
        dev.host_write(LINK)
        time.sleep(0.005)
        seen += dev.host_read()
        if REPLY in seen:
            return True
    return False


def test_scenarios_are_offered_by_the_simulator():
    assert {"brown-out", "rx1-held-low"} <= set(NAMES) <= set(SCENARIOS)


def test_brown_out_boot_loops_banner_after_banner():
    dev = create_device(scenario="brown-out")
    log = read_for(dev, 2.0)
    banners = log.count(b"V:BK7231N")
    # One loop is the boot window (0.3 s) plus BROWNOUT_RUN_S (0.45 s +-20 %): at least 3 in 2 s.
    assert banners >= 3 and dev.behaviour.collapses >= banners - 1
    assert b"heart beat" not in log  # the application never got far enough for its heartbeat


def test_brown_out_bootloader_answers_link_checks_but_resets_on_flash_work():
    dev = create_device(scenario="brown-out", seed=1)
    assert spam_until_linked(dev, 3.0)
    read_for(dev, 0.1)
    dev.host_write(LINK)
    assert REPLY in read_for(dev, 0.1)  # light work: the rail holds
    resets, answered = dev.resets, 0
    for _ in range(6):  # CheckCRC over 64 KiB keeps the flash busy: most of them restart the chip
        if dev.state != "boot":
            assert spam_until_linked(dev, 2.0)
            read_for(dev, 0.05)
        dev.host_write(encode(Cmd.CHECK_CRC, struct.pack("<II", 0x11000, 0x21000)))
        answered += bool(CRC_REPLY.search(read_for(dev, 0.3)))
    assert dev.resets - resets >= 3 and answered <= 3


def test_rx1_held_low_chip_prints_its_log_but_never_hears_the_host():
    dev = create_device(scenario="rx1-held-low", boot_window=0.3)
    log = read_for(dev, 0.8)
    assert b"V:BK7231N" in log and dev.state == "app"
    dev.reset()  # a well-timed reset while the host spams link checks: the chip still never answers
    assert not spam_until_linked(dev, 1.0)
    assert dev.state == "app" and dev.resets == 1
    assert REPLY not in read_for(dev, 0.3)


def test_rx1_held_low_is_not_a_timing_problem():
    """The same reset with RX1 free links at once: the scenario models the line, not the window."""
    dev = create_device(scenario="app-running", boot_window=0.3)
    read_for(dev, 0.2)
    dev.reset()
    assert spam_until_linked(dev, 1.0)
