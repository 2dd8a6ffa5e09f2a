"""Independent peers accept the simulator: bk7231tools (Python API) and ltchiptool (CLI) over a pty."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bkbench.core.session import Session
from bkbench.core.sim.registry import create_device
from simhelpers import DUMP_CHIPS, ROTATED, peer_on_pty, pty_for, run_peer_cli, sim_url, unrotate

pytestmark = pytest.mark.peers
bk7231tools = pytest.importorskip("bk7231tools.serial")


def flash_order(name: str, path: Path) -> bytes:
    data = path.read_bytes()
    return unrotate(data) if name == ROTATED else data


@pytest.mark.parametrize("name", sorted(DUMP_CHIPS) + [ROTATED])
def test_bk7231tools_identifies_and_dumps_like_us(name, fixtures_dir):
    """Loaded without --chip: the dump alone tells the simulator who it is."""
    path = fixtures_dir / "dumps" / name
    chip = DUMP_CHIPS[name][0] if name in DUMP_CHIPS else "BK7231T"
    with peer_on_pty(lambda: create_device(None, path)) as (_dev, peer):
        peer_data = peer.flash_read_bytes(0, 0x200000, crc_check=True)
        peer_bl = peer.bootloader_type.name
        peer_chip = peer.chip_info
    with sim_url(None, path) as (url, _):
        with Session(url, baud=921600) as s:
            info = s.connect()
            ours = s.read()
    assert peer_data == ours == flash_order(name, path)
    assert (info.chip, peer_bl.startswith(chip.replace("BK7231T", "BK7231S"))) == (chip, True)
    if chip == "BK7231T":
        assert peer_chip == info.boot_version
    else:
        assert peer_chip == info.chip


@pytest.mark.skipif(shutil.which("ltchiptool") is None and not (Path(sys.executable).parent / "ltchiptool").exists(),
                    reason="ltchiptool not installed")
@pytest.mark.parametrize("name", sorted(DUMP_CHIPS) + [ROTATED])
def test_ltchiptool_cli_reads_the_same_bytes(name, fixtures_dir, tmp_path):
    path = fixtures_dir / "dumps" / name
    family = "bk7231n" if name.startswith("bk7231n") else "bk7231t"
    exe = shutil.which("ltchiptool") or str(Path(sys.executable).parent / "ltchiptool")
    out = tmp_path / "lt.bin"
    _dev, res = run_peer_cli(lambda: create_device(None, path),
                             lambda pty: [exe, "flash", "read", "-d", pty, "-b", "921600", family, str(out)],
                             timeout=180)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "Chip info" in res.stdout + res.stderr
    assert out.read_bytes() == flash_order(name, path)


def test_bk7231tools_write_is_read_back_by_us(fixtures_dir):
    """A peer writes through the pty; our engine sees the change (both agree on CRC and NOR semantics)."""
    path = fixtures_dir / "dumps" / "bk7231t-feit-br30-rgbw-bulb.bin"
    dev = create_device("BK7231T", path)
    payload = bytes(range(256)) * 32
    with pty_for(dev) as pty:
        peer = bk7231tools.BK7231Serial(pty, baudrate=115200, link_timeout=5)
        peer.connect()
        try:
            for _ in peer.program_flash(io.BytesIO(payload), len(payload), 0x12A000, crc_check=True):
                pass
        finally:
            peer.close()
    assert dev.flash.read(0x12A000, len(payload)) == payload


def test_bk7231tools_reads_the_efuse_key_with_the_register_protocol(fixtures_dir):
    """The peer drives CTRL/OPTR itself (ltchiptool's procedure on bk7231tools' register API)."""
    dev = create_device(None, fixtures_dir / "dumps" / "bk7231n-mirabella-genio-i003632-plug.bin")
    key = bytearray()
    with pty_for(dev) as pty:
        peer = bk7231tools.BK7231Serial(pty, baudrate=115200, link_timeout=5)
        peer.connect()
        try:
            for index in range(16):
                ctrl = (peer.register_read(0x800074) & ~0x1F02) | (index << 8) | 1
                peer.register_write(0x800074, ctrl)
                while peer.register_read(0x800074) & 1:
                    pass
                optr = peer.register_read(0x800078)
                assert optr & 0x100
                key.append(optr & 0xFF)
        finally:
            peer.close()
    assert key.hex() == "93b00f51dceacba37ea1935903ebadc7"  # 510fb093 a3cbeadc 5993a17e c7adeb03 as LE words


@pytest.mark.skipif(shutil.which("ltchiptool") is None and not (Path(sys.executable).parent / "ltchiptool").exists(),
                    reason="ltchiptool not installed")
def test_ltchiptool_flash_write_lands_on_the_stock_protected_n(fixtures_dir, tmp_path):
    """ltchiptool unprotects the stock SR 0x4004 and writes; the simulated flash is the judge."""
    path = fixtures_dir / "dumps" / "bk7231n-ap-smt-breaker02-relay.bin"
    payload = bytes((i * 7) & 0xFF for i in range(0x3000))
    src = tmp_path / "blob.bin"
    src.write_bytes(payload)
    exe = shutil.which("ltchiptool") or str(Path(sys.executable).parent / "ltchiptool")
    dev, res = run_peer_cli(lambda: create_device(None, path),
                            lambda pty: [exe, "flash", "write", "-d", pty, "-f", "bk7231n", "-s", "0x12A000", str(src)],
                            timeout=120, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, (res.stdout + res.stderr)[-2000:]
    assert dev.flash.read(0x12A000, len(payload)) == payload
    assert dev.flash.read(0, 0x12A000) == path.read_bytes()[:0x12A000]
