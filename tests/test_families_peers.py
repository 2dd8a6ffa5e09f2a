"""Independent peers identify the simulated families as the chips they are (bk7231tools API, ltchiptool CLI)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bkbench.core.chips import FAMILIES
from bkbench.core.session import Session
from bkbench.core.sim.registry import create_device
from simhelpers import peer_on_pty, run_peer_cli, sim_url

pytestmark = pytest.mark.peers
bk7231tools = pytest.importorskip("bk7231tools.serial")

# What bk7231tools knows: its bootloader table names BK7238, BK7231U and BK7252; a BK7231M shows
# the BK7231N chip ID (only the eFuse key, which the peer does not read, tells them apart); for a
# BK7252N the peer reads the chip-ID register but has no name for 0x7252A.
PEER_VIEW = {
    "BK7238": ("BK7238_T1_2_0_0", "BK7238"),
    "BK7231U": ("BK7231U_1_0_6", "BK7231U"),
    "BK7252": ("BK7252_0_1_3", "BK7252"),
    "BK7231M": (None, "BK7231N"),
    "BK7252N": (None, "0x7252a"),
}


@pytest.mark.parametrize("chip", sorted(PEER_VIEW))
def test_bk7231tools_identifies_the_simulated_family(chip):
    with peer_on_pty(lambda: create_device(chip)) as (dev, peer):
        peer_bl = peer.bootloader_type.name if peer.bootloader_type else None
        peer_chip = peer.chip_info
        peer_proto = peer.protocol_type.name
        peer_id = peer.chip_type
        peer_data = peer.flash_read_bytes(0, 0x20000, crc_check=True)
    with sim_url(chip, bytes(dev.flash.data)) as (url, _):
        with Session(url, baud=921600) as s:
            info = s.connect()
            ours = s.read(0, 0x20000)
    assert (peer_bl, peer_chip) == PEER_VIEW[chip]
    assert peer_proto == info.dialect.value == FAMILIES[chip].dialect.value
    assert info.chip == chip
    if info.chip_id is not None and isinstance(peer_id, int):  # FULL: both read the chip-ID register
        assert int(peer_id) == info.chip_id
    assert peer_data == ours == bytes(dev.flash.data[:0x20000])


@pytest.mark.skipif(shutil.which("ltchiptool") is None and not (Path(sys.executable).parent / "ltchiptool").exists(),
                    reason="ltchiptool not installed")
def test_ltchiptool_reads_a_simulated_bk7238(tmp_path):
    exe = shutil.which("ltchiptool") or str(Path(sys.executable).parent / "ltchiptool")
    out = tmp_path / "lt.bin"
    dev, res = run_peer_cli(lambda: create_device("BK7238"), lambda pty: [
        exe, "flash", "read", "-d", pty, "-b", "921600", "-l", "0x20000", "bk7238", str(out)], timeout=180)
    text = res.stdout + res.stderr
    assert res.returncode == 0, text[-2000:]
    assert "Chip info: BK7238" in text  # named from the bootloader table and chip ID it read
    assert out.read_bytes() == bytes(dev.flash.data[:0x20000])


@pytest.mark.parametrize("family", ["bk7238", "bk7231u", "bk7252", "bk7231m", "bk7252n"])
def test_bkbench_simulate_info_and_bk7231tools_agree(family):
    """The issue's "done when": `bkbench simulate --chip X`, then `bkbench info` and the peer on its pty."""
    import json

    sim = subprocess.Popen([sys.executable, "-m", "bkbench.core.cli.main", "simulate", "--chip", family],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        pty = sim.stdout.readline().strip()
        res = subprocess.run([sys.executable, "-m", "bkbench.core.cli.main", "info", "--port", pty, "--json"],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr[-1000:]
        ours = json.loads(res.stdout)
        peer = bk7231tools.BK7231Serial(pty, baudrate=115200, link_timeout=5)
        peer.connect()
        try:
            peer_chip = peer.chip_info
        finally:
            peer.close()
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    assert ours["chip"] == family.upper()
    # bk7231tools names U / 7252 / 7238 from its table; M it can only call BK7231N (same chip ID), and
    # for 7252N it shows the raw chip ID: the same value bkbench read.
    expect = {"bk7238": ("BK7238", "0x7238"), "bk7231u": ("BK7231U", None), "bk7252": ("BK7252", None),
              "bk7231m": ("BK7231N", "0x7231c"), "bk7252n": ("0x7252a", "0x7252a")}
    assert (peer_chip, ours["chip_id"] and ours["chip_id"].lower()) == expect[family]
