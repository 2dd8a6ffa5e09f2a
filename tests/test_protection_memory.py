"""Issue 20 item 3: the flash protection found before bkbench first touched a chip survives any interruption.

`bkbench write`, `restore` and `config write` run as processes against a simulated BK7231N served on a pty;
the simulator kills the process (SIGKILL, SIGHUP) from inside, at an erase after the chip was unprotected,
so the kill always lands mid-operation. The same command is run again to completion. Judged on the
simulated chip's status register and flash, never on what the CLI prints."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from bkbench.core.analysis.obk_config import ObkConfig
from bkbench.core.layout import BOOTLOADER_END, RF_OFFSET, SECTOR
from bkbench.core.protection_memory import ProtectionMemory, stock_sr
from bkbench.core.session import Session
from bkbench.core.sim.device import N_STOCK_SR, SimDevice
from simhelpers import pty_for, sim_url

DUMP = "bk7231n-lspa9-clone-bl0937-plug.bin"
OBK_N = "OpenBeken-v1.18.219_bk7231n.ug.bin"
CFG_N = 0x1D1000  # OpenBK's config sector on BK7231N (core/cli/config.py OBK_CONFIG_OFFSET)
MASK = 0x407C


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ, XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"),
               XDG_CACHE_HOME=str(home / "cache"), XDG_STATE_HOME=str(home / "state"))
    for name in ("BKBENCH_DATA_DIR", "BKBENCH_CONFIG_DIR", "BKBENCH_CACHE_DIR"):
        env.pop(name, None)
    return env


def _records(home: Path) -> list[Path]:
    return sorted((home / "data" / "bkbench" / "protection").glob("*.json"))


def _bkbench(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bkbench.core.cli.main", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_at_erase(dev, proc_box: dict, sig: int, nth: int) -> None:
    """Kill the running bkbench from inside the simulator at its `nth` erase while the flash is unprotected."""
    erase = dev.flash.erase
    count = {"n": 0}

    def hooked(addr: int, size: int) -> bool:
        done = erase(addr, size)
        proc = proc_box.get("proc")
        if done and proc is not None and dev.flash.status.value & MASK == 0:
            count["n"] += 1
            if count["n"] == nth:
                os.kill(proc.pid, sig)
                proc_box["proc"] = None
        return done

    dev.flash.erase = hooked


def _interrupted_then_completed(tmp_path: Path, dev, args: list[str], sig: int, nth: int) -> str:
    env = _env(tmp_path)
    box: dict = {}
    _kill_at_erase(dev, box, sig, nth)
    with pty_for(dev) as path:
        argv = [*args, "--port", path, "--no-reboot"] if args[0] == "write" else [*args, "--port", path]
        box["proc"] = first = _bkbench(argv, env)
        _, err = first.communicate(timeout=240)
        assert first.returncode == -sig, f"not killed mid-operation (rc {first.returncode}): {err[-600:]}"
        assert dev.flash.status.value & MASK == 0, "the kill did not leave the flash unprotected"
        again = _bkbench(argv, env)
        out, err = again.communicate(timeout=240)
        assert again.returncode == 0, err[-1500:]
    return err


@pytest.fixture
def stock(fixtures_dir) -> bytes:
    return (fixtures_dir / "dumps" / DUMP).read_bytes()


@pytest.fixture
def obk_image(fixtures_dir, tmp_path) -> Path:
    from bkbench.core.cli.main import main

    out = tmp_path / "obk.bin"
    assert main(["image", "convert", str(fixtures_dir / "firmware" / OBK_N), "-o", str(out)]) == 0
    return out


def _untouched_outside(dev, stock: bytes, start: int, end: int) -> None:
    flash = bytes(dev.flash.data)
    assert flash[:BOOTLOADER_END] == stock[:BOOTLOADER_END]
    rf = RF_OFFSET["BK7231N"]
    assert flash[rf : rf + SECTOR] == stock[rf : rf + SECTOR]
    assert flash[:start] == stock[:start] and flash[end:] == stock[end:]


@pytest.mark.parametrize("sig", [signal.SIGKILL, pytest.param(signal.SIGHUP, marks=pytest.mark.slow)])
def test_killed_write_then_rerun_puts_back_the_protection_found_first(tmp_path, stock, obk_image, sig):
    dev = SimDevice(stock, chip="BK7231N")
    assert dev.flash.status.value == N_STOCK_SR == 0x4004
    err = _interrupted_then_completed(tmp_path, dev, ["write", str(obk_image)], sig, nth=20)
    assert dev.flash.status.value == 0x4004, f"SR 0x{dev.flash.status.value:04X}; {err[-800:]}"
    image = obk_image.read_bytes()
    flash = bytes(dev.flash.data)
    assert flash[0x11000 : 0x11000 + len(image)] == image
    _untouched_outside(dev, stock, 0x11000, 0x11000 + len(image) + (-len(image)) % SECTOR)
    assert _records(tmp_path) == []  # put back: nothing left to remember


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP])
def test_killed_restore_then_rerun_puts_back_the_protection_found_first(tmp_path, stock, obk_image, sig):
    on_chip = bytearray(stock)
    image = obk_image.read_bytes()
    on_chip[0x11000 : 0x11000 + len(image)] = image  # OpenBK on the chip; the stock dump goes back
    dev = SimDevice(bytes(on_chip), chip="BK7231N")
    dump = tmp_path / "stock.bin"
    dump.write_bytes(stock)
    _interrupted_then_completed(tmp_path, dev, ["restore", str(dump)], sig, nth=20)
    assert dev.flash.status.value == 0x4004
    assert bytes(dev.flash.data) == stock
    assert _records(tmp_path) == []


@pytest.mark.parametrize("sig", [signal.SIGKILL, pytest.param(signal.SIGHUP, marks=pytest.mark.slow)])
def test_killed_config_write_then_rerun_puts_back_the_protection_found_first(tmp_path, stock, sig):
    dev = SimDevice(stock, chip="BK7231N")
    cfg = ObkConfig.new(bytes.fromhex("C44F33000001"))
    cfg.set("short_name", "killed-mid-write")
    sector = cfg.sector()
    path = tmp_path / "cfg.bin"
    path.write_bytes(sector)
    _interrupted_then_completed(tmp_path, dev, ["config", "write", str(path)], sig, nth=1)
    assert dev.flash.status.value == 0x4004
    assert bytes(dev.flash.data[CFG_N : CFG_N + SECTOR]) == sector
    _untouched_outside(dev, stock, CFG_N, CFG_N + SECTOR)
    assert _records(tmp_path) == []


# ---------------------------------------------------------------- in-process: the record's own rules

@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("BKBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BKBENCH_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path / "data"


def _interrupt_in_process(url: str) -> None:
    """A session that unprotects the chip and then vanishes (as a killed process would)."""
    s = Session(url)
    s.connect()
    s._client().unprotect()
    s.port.close()  # no reprotect, no close(): gone


def _write_config(url: str, _data_dir: Path) -> None:
    cfg = ObkConfig.new(bytes.fromhex("C44F33000001")).sector()
    with Session(url) as s:
        s.connect()
        s.backup_first = False
        s.write(cfg, CFG_N)


def test_the_record_is_on_disk_0600_before_the_chip_is_unprotected(home, stock):
    folder = home / "protection"
    seen: list[tuple[int, list]] = []
    with sim_url("BK7231N", stock) as (url, dev):
        write = dev.flash.status.write

        def watched(op, data, t):
            records = sorted(folder.glob("*.json")) if folder.is_dir() else []
            seen.append((dev.flash.status.value, [json.loads(p.read_text()) for p in records]))
            if records:
                assert stat.S_IMODE(records[0].stat().st_mode) == 0o600
                assert stat.S_IMODE(folder.stat().st_mode) == 0o700
            return write(op, data, t)

        dev.flash.status.write = watched
        _write_config(url, home)
        assert dev.flash.status.value == 0x4004
    first_sr_write = seen[0]
    assert first_sr_write[0] == 0x4004 and first_sr_write[1][0]["found"] == 0x4004
    assert first_sr_write[1][0]["left"] == 0x0000
    assert not list(folder.glob("*.json"))


def test_a_chip_that_came_unprotected_stays_so(home, stock):
    with sim_url("BK7231N", stock, sr=0x0000) as (url, dev):
        _write_config(url, home)
        assert dev.flash.status.value == 0x0000  # no record, a usable folder: 0x0000 really was what it had


def test_a_record_is_not_used_once_something_else_protected_the_chip_again(home, stock):
    """The firmware (or another tool) set the SR after the interrupted run: that value is the one found."""
    with sim_url("BK7231N", stock) as (url, dev):
        _interrupt_in_process(url)
        assert dev.flash.status.value == 0x0000 and list((home / "protection").glob("*.json"))
        dev.flash.sr = 0x001C  # protected again, differently, between the runs
        _write_config(url, home)
        assert dev.flash.status.value == 0x001C
        assert not list((home / "protection").glob("*.json"))


@pytest.mark.parametrize("broken", ["not-a-folder", "damaged-record"])
def test_an_unusable_record_store_protects_with_the_stock_value_and_says_so(home, stock, broken):
    data = home
    notes: list[str] = []
    with sim_url("BK7231N", stock) as (url, dev):
        if broken == "not-a-folder":
            data.mkdir()
            (data / "protection").write_text("a file where the folder should be")
        _interrupt_in_process(url)
        assert dev.flash.status.value == 0x0000
        if broken == "damaged-record":
            for p in (data / "protection").glob("*.json"):
                p.write_text("{ not json")
        cfg = ObkConfig.new(bytes.fromhex("C44F33000001")).sector()
        with Session(url, on_event=lambda ev: notes.append(getattr(ev, "message", ""))) as s:
            s.connect()
            s.backup_first = False
            s.write(cfg, CFG_N)
        assert dev.flash.status.value == stock_sr(dev.flash.part) == 0x4004
    said = [n for n in notes if "stock SR 0x4004" in n]
    assert len(said) == 1 and "\n" not in said[0]


def test_a_record_kept_without_a_mac_is_found_when_the_mac_is_read_again(tmp_path):
    folder = tmp_path / "protection"
    lost_mac = ProtectionMemory("BK7231N", (0xEB, 0x60, 0x15), None, folder=folder)
    assert lost_mac.found(0x4004, MASK, None) == 0x4004
    lost_mac.remember(0x4004, 0x0000)
    with_mac = ProtectionMemory("BK7231N", (0xEB, 0x60, 0x15), "C4:4F:33:00:00:01", folder=folder)
    assert with_mac.found(0x0000, MASK, None) == 0x4004
    with_mac.forget()
    assert list(folder.glob("*.json")) == []
    other_flash = ProtectionMemory("BK7231N", (0xC8, 0x40, 0x15), "C4:4F:33:00:00:01", folder=folder)
    other_flash.remember(0x4004, 0x0000)
    assert ProtectionMemory("BK7231N", (0xEB, 0x60, 0x15), None, folder=folder).found(0, MASK, None) == 0
