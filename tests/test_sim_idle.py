"""Issue 19 item 5, simulator side: the realistic T bootloader reboots after a configurable idle time (the
real code counts ~400,000 loop passes after a LinkCheck, REALCODE.md B.11; its wall time on a chip is
unknown and may be well under a second). A watchdog reboot: a new boot window, where a LinkCheck catches the
bootloader again, then the application."""

from __future__ import annotations

import subprocess
import sys
import time

from bkbench.core.client import BkClient
from bkbench.core.sim.registry import from_url, register, unregister
from bkbench.core.transport import open_port

T_DUMP = "bk7231t-feit-br30-rgbw-bulb.bin"


def test_sub_second_idle_reset_from_the_url_reboots_into_a_new_boot_window(fixtures_dir):
    dev = from_url(f"sim://?dump={fixtures_dir / 'dumps' / T_DUMP}&realistic=1&idle=0.25&window=0.3")
    assert dev.idle_timeout == 0.25
    register("idle-t", dev)
    try:
        c = BkClient(open_port("sim://@idle-t", 115200))
        dev.reset()
        assert c.link(1.0)
        boots = dev.resets
        c.command(0x11, b"", timeout=0.5)  # a command keeps it: the count restarts at every byte
        time.sleep(0.15)
        dev.pending()
        assert dev.resets == boots
        time.sleep(0.25)  # past the idle time: rebooted, banner, boot window open
        dev.pending()
        assert (dev.resets, dev.state) == (boots + 1, "window")
        assert c.link(0.25)  # caught again without touching CEN
        time.sleep(0.3 + 0.35)  # silent: another idle reset, and this time the window closes
        dev.pending()
        assert dev.state == "app"
        assert not c.link(0.3)
    finally:
        unregister("idle-t")


def test_simulate_rejects_an_idle_time_it_cannot_play():
    res = subprocess.run([sys.executable, "-m", "bkbench.core.cli.main", "simulate", "--chip", "bk7231t", "--idle",
                          "0"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "--idle" in res.stderr
