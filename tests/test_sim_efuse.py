"""eFuse and ROM models behind ReadReg/WriteReg (issue 11, item 2), judged by ltchiptool and by bkbench.

ltchiptool's `flash info` reads the code key with the CTRL/OPTR protocol and used to hang on the busy
bit; `flash read -E/-R` read eFuse and ROM. bkbench's own `info` and `read --efuse/--rom` must agree.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from bkbench.core.client import BkClient
from bkbench.core.efuse import read_efuse, variant_of
from bkbench.core.protocol import Cmd, encode
from bkbench.core.sim.efuse import TUYA_CODE_KEY, sidecar_for
from bkbench.core.sim.registry import create_device, register, unregister
from bkbench.core.transport import open_port
from simhelpers import pty_for

N_DUMP = "bk7231n-lspa9-clone-bl0937-plug.bin"
T_DUMP = "bk7231t-globe-37783-rgbct-bulb.bin"
LT = shutil.which("ltchiptool") or str(Path(sys.executable).parent / "ltchiptool")
needs_lt = pytest.mark.skipif(not Path(LT).exists(), reason="ltchiptool not installed")


def lt(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([LT, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@needs_lt
@pytest.mark.parametrize("chip,dump,key", [
    (None, N_DUMP, "510fb093 a3cbeadc 5993a17e c7adeb03"),
    ("bk7231m", N_DUMP, "00000000 00000000 00000000 00000000"),
    (None, T_DUMP, None),
])
def test_ltchiptool_flash_info_completes(chip, dump, key, fixtures_dir):
    dev = create_device(chip, fixtures_dir / "dumps" / dump)
    family = "bk7231t" if "7231t" in dump else "bk7231n"
    with pty_for(dev) as pty:
        res = lt("flash", "info", "-d", pty, "-t", "5", family, timeout=60)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-2000:]
    if key is None:
        assert "Encryption Key" not in out  # the T bootloader has no register access
        assert "BK7231T" in out
    else:
        assert f"Encryption Key        | {key}" in out


@needs_lt
def test_ltchiptool_reads_efuse_and_rom_like_bkbench(fixtures_dir, tmp_path):
    dev = create_device(None, fixtures_dir / "dumps" / N_DUMP)
    with pty_for(dev) as pty:
        res = lt("flash", "read", "-d", pty, "-E", "bk7231n", str(tmp_path / "efuse.bin"))
        assert res.returncode == 0, (res.stdout + res.stderr)[-2000:]
        res = lt("flash", "read", "-d", pty, "-R", "-l", "0x400", "bk7231n", str(tmp_path / "rom.bin"))
        assert res.returncode == 0, (res.stdout + res.stderr)[-2000:]
    efuse = (tmp_path / "efuse.bin").read_bytes()
    assert efuse[:16] == TUYA_CODE_KEY and len(efuse) == 32
    rom = (tmp_path / "rom.bin").read_bytes()
    assert rom == dev.rom.data[:0x400] and b"SIMULATED BOOTROM" in rom


def _client(url: str) -> BkClient:
    c = BkClient(open_port(url))
    assert c.link(1.0)
    c.identify()
    return c


def test_busy_bit_clears_only_after_the_controller_ran(fixtures_dir):
    dev = create_device(None, fixtures_dir / "dumps" / N_DUMP)
    register("efuse1", dev)
    try:
        c = _client("sim://@efuse1")
        c.command(Cmd.WRITE_REG, struct.pack("<II", 0x800074, (3 << 8) | 1))
        first, second = c.read_reg(0x800074), c.read_reg(0x800074)
        assert first & 1 and not second & 1  # busy for one poll, then done: hosts must poll
        assert c.read_reg(0x800078) == 0x100 | TUYA_CODE_KEY[3]
    finally:
        unregister("efuse1")


def test_efuse_write_only_blows_fuses(fixtures_dir):
    """A write ORs into the byte (fuses go 0 -> 1 only); it cannot clear the key."""
    dev = create_device("bk7231m", fixtures_dir / "dumps" / N_DUMP)
    register("efuse2", dev)
    try:
        c = _client("sim://@efuse2")
        for value in (0x0F, 0xF0, 0x00):
            c.command(Cmd.WRITE_REG, struct.pack("<II", 0x800074, (value << 16) | (20 << 8) | 3))
        assert read_efuse(c)[20] == 0xFF and dev.efuse.data[20] == 0xFF
        assert variant_of(read_efuse(c)) == "BK7231M"
    finally:
        unregister("efuse2")


def test_efuse_sidecar_and_flag_override_the_key(fixtures_dir, tmp_path):
    dump = tmp_path / "dev.bin"
    dump.write_bytes((fixtures_dir / "dumps" / N_DUMP).read_bytes())
    sidecar_for(dump).write_text(bytes(range(16)).hex())
    assert bytes(create_device(None, dump).efuse.data[:16]) == bytes(range(16))
    assert bytes(create_device(None, dump, efuse="ff" * 16).efuse.data[:16]) == b"\xff" * 16


def test_rom_is_readable_only_on_full_and_reads_are_word_exact(fixtures_dir):
    dev = create_device(None, fixtures_dir / "dumps" / N_DUMP)
    register("rom1", dev)
    try:
        c = _client("sim://@rom1")
        assert c.read_reg(0x3FFC).to_bytes(4, "little") == dev.rom.data[0x3FFC:0x4000]
        c.command(Cmd.WRITE_REG, struct.pack("<II", 0x10, 0xDEADBEEF))
        assert c.read_reg(0x10).to_bytes(4, "little") == dev.rom.data[0x10:0x14]  # ROM is read-only
    finally:
        unregister("rom1")
    dev = create_device(None, fixtures_dir / "dumps" / T_DUMP)
    register("rom2", dev)
    try:
        port = open_port("sim://@rom2")
        c = BkClient(port)
        assert c.link(1.0)
        port.write(encode(Cmd.READ_REG, struct.pack("<I", 0)))
        assert port.read(64) == b""  # the T bootloader stays silent (PROTOCOL-DETAILS 2.3)
    finally:
        unregister("rom2")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bkbench.core.cli.main", *args], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def test_bkbench_info_shows_key_and_variant():
    res = _cli("info", "--port", "sim://bk7231m", "--json", "-q", "--reset", "manual", "--timeout", "5")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert (info["variant"], info["efuse_key"]) == ("BK7231M", "00000000 " * 3 + "00000000")
    res = _cli("info", "--port", "sim://bk7231n?efuse=" + "11" * 8 + "22" * 8, "--json", "-q", "--reset", "manual")
    info = json.loads(res.stdout)
    assert info["variant"] == "BK7231N (non-standard key)"
    assert "*" in info["efuse_key"] and "1111" not in info["efuse_key"][4:-4]  # a custom key is masked


def test_bkbench_read_efuse_and_rom(tmp_path, fixtures_dir, capsys):
    from bkbench.core.cli.main import main

    dev = create_device(None, fixtures_dir / "dumps" / N_DUMP)
    register("rd", dev)
    try:
        for what, name in (("--efuse", "e.bin"), ("--rom", "r.bin")):
            rc = main(["read", what, "--port", "sim://@rd", "-o", str(tmp_path / name), "-q", "--reset", "manual"])
            assert rc == 0, capsys.readouterr().err
    finally:
        unregister("rd")
    assert (tmp_path / "e.bin").read_bytes() == bytes(dev.efuse.data)
    assert (tmp_path / "r.bin").read_bytes() == dev.rom.data
    res = _cli("read", "--efuse", "--port", f"sim://?dump={fixtures_dir / 'dumps' / T_DUMP}", "-o",
               str(tmp_path / "t.bin"), "-q", "--reset", "manual")
    assert res.returncode == 1 and "no register access" in res.stderr and not (tmp_path / "t.bin").exists()
