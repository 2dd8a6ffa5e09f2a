"""Realistic link timing one flag away (issue 11, item 4): the chip runs its firmware after power-on and
listens for a LinkCheck only in the boot window after a reset; T bootloaders leave download mode when
the host goes quiet. Peers that never reset fail; peers that reset in time link.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest
from bkbench.core.client import BkClient
from bkbench.core.errors import BkError
from bkbench.core.session import Session
from bkbench.core.sim.registry import create_device, from_url, register, unregister
from bkbench.core.transport import open_port
from simhelpers import pty_for

N_DUMP = "bk7231n-lspa9-clone-bl0937-plug.bin"
T_DUMP = "bk7231t-feit-br30-rgbw-bulb.bin"
bk = pytest.importorskip("bk7231tools.serial")


def test_url_flag_boots_into_the_app(fixtures_dir):
    dev = from_url(f"sim://?dump={fixtures_dir / 'dumps' / T_DUMP}&realistic=1")
    assert dev.state == "app" and dev.timing.enabled and dev.idle_timeout is not None
    assert from_url(f"sim://?dump={fixtures_dir / 'dumps' / N_DUMP}&realistic=1").idle_timeout is None
    assert create_device(None, fixtures_dir / "dumps" / N_DUMP).state == "window"  # default unchanged


def test_peer_that_never_resets_cannot_link(fixtures_dir):
    dev = create_device(None, fixtures_dir / "dumps" / N_DUMP, realistic=True)
    with pty_for(dev) as pty:
        peer = bk.BK7231Serial(pty, baudrate=115200, link_timeout=1.0)
        with pytest.raises(Exception, match="(?i)timed out|link|response"):
            peer.connect()
        peer.close()
    assert dev.state == "app"


def test_peer_that_resets_during_its_spam_links(fixtures_dir):
    dev = create_device(None, fixtures_dir / "dumps" / N_DUMP, realistic=True)
    threading.Timer(0.5, dev.reset).start()  # the person shorting CEN to GND
    with pty_for(dev) as pty:
        peer = bk.BK7231Serial(pty, baudrate=115200, link_timeout=5)
        peer.connect()
        try:
            assert peer.chip_info == "BK7231N"
        finally:
            peer.close()


def test_reset_before_the_host_listens_misses_the_window(fixtures_dir):
    dev = create_device(None, fixtures_dir / "dumps" / N_DUMP, realistic=True)
    register("early", dev)
    try:
        dev.reset()
        time.sleep(dev.boot_window + 0.2)  # the window closed before anyone spoke
        with pytest.raises(BkError):
            with Session("sim://@early", baud=115200, reset="manual", link_timeout=1.0) as s:
                s.connect()
    finally:
        unregister("early")


def test_t_leaves_download_mode_when_idle_and_n_does_not(fixtures_dir):
    for dump, leaves in ((T_DUMP, True), (N_DUMP, False)):
        idle = {"idle_timeout": 0.4} if leaves else {}
        dev = create_device(None, fixtures_dir / "dumps" / dump, realistic=True, **idle)
        register("idle", dev)
        try:
            port = open_port("sim://@idle")
            dev.reset()
            assert BkClient(port).link(1.0)
            time.sleep(0.7)
            dev.pending()  # the model advances lazily, when the host looks
            assert (dev.state == "app") is leaves
            assert BkClient(port).link(0.3) is not leaves
        finally:
            unregister("idle")


def test_simulate_realistic_resets_on_sigusr1(fixtures_dir):
    proc = subprocess.Popen([sys.executable, "-m", "bkbench.core.cli.main", "simulate", "--realistic", "--dump",
                             str(fixtures_dir / "dumps" / N_DUMP)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL)
    try:
        pty = proc.stdout.readline().strip()
        assert "realistic" in proc.stderr.readline()
        peer = bk.BK7231Serial(pty, baudrate=115200, link_timeout=1.0)
        with pytest.raises(Exception):  # noqa: B017 - whatever the peer raises, it must not link
            peer.connect()
        peer.close()
        threading.Timer(0.5, proc.send_signal, (signal.SIGUSR1,)).start()
        peer = bk.BK7231Serial(pty, baudrate=115200, link_timeout=5)
        peer.connect()
        peer.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_simulate_terminal_key_r_resets_the_chip(fixtures_dir):
    """A person at the `simulate` terminal presses r while a peer spams LinkCheck: the peer links."""
    import os

    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "bkbench.core.cli.main", "simulate", "--realistic", "--dump",
                             str(fixtures_dir / "dumps" / T_DUMP)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=slave)
    try:
        pty = proc.stdout.readline().strip()
        proc.stderr.readline()
        threading.Timer(0.5, os.write, (master, b"r")).start()
        peer = bk.BK7231Serial(pty, baudrate=115200, link_timeout=5)
        peer.connect()
        try:
            assert peer.bk_boot_version == "BK7231S_1.0.5"
        finally:
            peer.close()
        assert "reset (CEN pulse)" in proc.stderr.readline()
        os.write(master, b"q")
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
        os.close(master)
        os.close(slave)


def test_sim_url_realistic_with_rts_wiring_links_by_the_reset_strategy(fixtures_dir):
    url = f"sim://?dump={fixtures_dir / 'dumps' / N_DUMP}&realistic=1&wiring=rts"
    with Session(url, baud=115200, reset="auto", link_timeout=5) as s:
        assert s.connect().chip == "BK7231N"


def test_bkbench_manual_reset_flow_against_simulate_realistic(fixtures_dir):
    """The flow a person practises: bkbench waits with --reset manual, the chip is reset from outside."""
    proc = subprocess.Popen([sys.executable, "-m", "bkbench.core.cli.main", "simulate", "--realistic", "--dump",
                             str(fixtures_dir / "dumps" / N_DUMP)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, stdin=subprocess.DEVNULL)
    try:
        pty = proc.stdout.readline().strip()
        threading.Timer(1.0, proc.send_signal, (signal.SIGUSR1,)).start()
        with Session(pty, baud=115200, reset="manual", link_timeout=6) as s:
            info = s.connect()
        assert (info.chip, info.mac) == ("BK7231N", "1C:90:FF:F7:C9:34")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
