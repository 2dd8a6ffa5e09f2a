"""The simulated chip takes chip, dialect and bootloader from the dump it is given (issue 11, item 1).

Judged through the protocol: our Session and bk7231tools read the chip over sim:// / a pty and must
agree with the dump in flash order; bad files are one clear line and a non-zero exit.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from bkbench.core.chips import Dialect
from bkbench.core.session import Session
from bkbench.core.sim.identity import ImageIdentityError, identify
from bkbench.core.sim.registry import create_device, register, unregister
from simhelpers import DUMP_CHIPS, ROTATED, pty_for, unrotate

ALL_DUMPS = sorted(DUMP_CHIPS) + [ROTATED]


def expected(name: str, data: bytes) -> tuple[str, str, bytes]:
    if name == ROTATED:
        return "BK7231T", "bk7231s 1.0.5", unrotate(data)
    chip, bl = DUMP_CHIPS[name]
    return chip, bl, data


@pytest.mark.parametrize("name", ALL_DUMPS)
def test_every_fixture_dump_is_identified_without_chip_and_read_in_flash_order(name, fixtures_dir):
    path = fixtures_dir / "dumps" / name
    chip, bl, flash = expected(name, path.read_bytes())
    dev = create_device(None, path)
    register("ident", dev)
    try:
        with Session("sim://@ident", baud=921600, reset="manual", link_timeout=5) as s:
            info = s.connect()
            data = s.read()
    finally:
        unregister("ident")
    assert (info.chip, info.bootloader_table or info.bootloader) == (chip, bl)
    assert info.dialect is (Dialect.FULL if chip == "BK7231N" else Dialect.BASIC_TUYA)
    if chip == "BK7231N":
        assert info.chip_id == 0x7231C  # from core/chips.py CHIP_IDS
    else:
        # what the bootloader's code answers (REALCODE.md B.1): Globe's "1.0.3" in the CRC tables says 1.0.4
        assert info.boot_version == {"bk7231s 1.0.3": "BK7231S_1.0.4"}.get(bl, "BK7231S_" + bl.split()[-1])
    assert data == flash


def test_rotated_dump_is_found_at_0x11000_and_put_back(fixtures_dir):
    raw = (fixtures_dir / "dumps" / ROTATED).read_bytes()
    ident = identify(raw)
    assert ident.rotation == 0x11000
    assert ident.flash[:0x11000] == raw[-0x11000:] and ident.flash[0x11000:] == raw[:-0x11000]


def test_bk7231tools_sees_the_rotated_dumps_bootloader(fixtures_dir):
    bk = pytest.importorskip("bk7231tools.serial")
    raw = (fixtures_dir / "dumps" / ROTATED).read_bytes()
    with pty_for(create_device(None, fixtures_dir / "dumps" / ROTATED)) as pty:
        peer = bk.BK7231Serial(pty, baudrate=115200, link_timeout=5)
        peer.connect()
        try:
            assert peer.bootloader is not None and peer.bootloader.chip.name == "BK7231T"
            assert peer.flash_read_bytes(0, 0x11000 + 0x1000, crc_check=True) == unrotate(raw)[:0x12000]
        finally:
            peer.close()


def test_chip_that_contradicts_the_bootloader_is_refused(fixtures_dir):
    with pytest.raises(ImageIdentityError, match="BK7231T bootloader .* BK7231N"):
        create_device("bk7231n", fixtures_dir / "dumps" / "bk7231t-feit-br30-rgbw-bulb.bin")
    with pytest.raises(ImageIdentityError, match="BK7231N bootloader"):
        create_device("bk7231t", fixtures_dir / "dumps" / "bk7231n-lspa9-clone-bl0937-plug.bin")


def test_bk7231m_is_an_n_dump_with_another_efuse(fixtures_dir):
    dev = create_device("bk7231m", fixtures_dir / "dumps" / "bk7231n-lspa9-clone-bl0937-plug.bin")
    assert (dev.chip, dev.variant, dev.registers[0x800000]) == ("BK7231N", "BK7231M", 0x7231C)


def test_unknown_bootloader_needs_chip(fixtures_dir):
    data = bytearray((fixtures_dir / "dumps" / "bk7231n-lspa9-clone-bl0937-plug.bin").read_bytes())
    data[5] ^= 0xFF
    with pytest.raises(ImageIdentityError, match="--chip"):
        identify(bytes(data))
    assert identify(bytes(data), "BK7231N").dialect is Dialect.FULL


def _simulate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bkbench.core.cli.main", "simulate", *args],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("case", ["missing", "empty", "directory", "kv-only", "contradiction"])
def test_simulate_bad_dump_is_one_line_and_nonzero(case, fixtures_dir, tmp_path):
    args = {
        "missing": ["--dump", str(tmp_path / "nope.bin")],
        "empty": ["--dump", str(tmp_path / "empty.bin")],
        "directory": ["--dump", str(tmp_path)],
        "kv-only": ["--dump", str(fixtures_dir / "dumps" / "bk7231t-pc44ha-tuya-kv-region-only.bin")],
        "contradiction": ["--chip", "bk7231n", "--dump",
                          str(fixtures_dir / "dumps" / "bk7231t-feit-br30-rgbw-bulb.bin")],
    }[case]
    (tmp_path / "empty.bin").write_bytes(b"")
    res = _simulate(*args)
    assert res.returncode != 0
    assert res.stdout == ""  # no pty path printed: nothing is served
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bkbench: error:"), res.stderr
    assert "Traceback" not in res.stderr


def test_simulate_without_chip_names_the_dumps_chip(fixtures_dir):
    dump = fixtures_dir / "dumps" / ROTATED
    proc = subprocess.Popen([sys.executable, "-m", "bkbench.core.cli.main", "simulate", "--dump", str(dump)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout.readline().startswith("/dev/pts/")
        assert "simulating BK7231T (BASIC_TUYA, bootloader 1.0.5)" in proc.stderr.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
