"""Issue 10: single damaged replies must not move a write, nothing outside a write may change unnoticed,
restore checks what it is given. Every result is judged against the simulator's flash."""

from __future__ import annotations

import time

import pytest
from bkbench.core.backups import BackupLibrary
from bkbench.core.client import BkClient
from bkbench.core.errors import BkError, ImageError, UnsafeWriteError
from bkbench.core.ops.events import SectorState, SectorUpdate
from bkbench.core.ops.guard import OutsideDamage
from bkbench.core.session import Session
from simhelpers import ROTATED, sim_url, unrotate

N_DUMP = "bk7231n-lspa9-clone-bl0937-plug.bin"
T_DUMP = "bk7231t-feit-br30-rgbw-bulb.bin"


class _Tamper:
    """Wraps the device's fault injector and rewrites frames matching `match` (first `times` only)."""

    def __init__(self, inner, direction: str, match, change, times: int = 1) -> None:
        self.inner, self.direction, self.match, self.change, self.left = inner, direction, match, change, times
        self.hits = 0
        self.counts, self.plan = inner.counts, inner.plan

    def corrupt(self, data: bytes, direction: str) -> bytes:
        if direction == self.direction and self.left and self.match(data):
            self.left -= 1
            self.hits += 1
            return self.change(data)
        return self.inner.corrupt(data, direction)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _is_mid_reply(frame: bytes) -> bool:
    # Long response: 04 0E FF 01 E0 FC F4 <len16> 0E <status> ... ID bytes last (EB 60 15).
    return len(frame) > 8 and frame[7:9] == b"\x00\x0e" and frame.endswith(b"\xeb\x60\x15") or (
        b"\xf4" in frame[:8] and frame.endswith(b"\xeb\x60\x15"))


def _flip_last(frame: bytes) -> bytes:
    return frame[:-1] + bytes([frame[-1] ^ 0x01])  # EB6015 -> EB6014: a 1 MiB part


def test_one_damaged_flash_id_reply_does_not_change_the_flash_size(fixtures_dir):
    stock = (fixtures_dir / "dumps" / N_DUMP).read_bytes()
    with sim_url("BK7231N", stock) as (url, dev):
        dev.faults = tamper = _Tamper(dev.faults, "tx", _is_mid_reply, _flip_last)
        with Session(url, baud=921600) as s:
            info = s.connect()
        assert tamper.hits == 1
        assert info.flash_size == 0x200000 and info.size_trusted


def test_a_flash_id_that_disagrees_with_the_flash_stops_writes_until_the_size_is_given(fixtures_dir):
    stock = (fixtures_dir / "dumps" / N_DUMP).read_bytes()
    image = bytes(range(256)) * 16 * 4
    with sim_url("BK7231N", stock) as (url, dev):
        # Every ID reply damaged the same way: the ID says 1 MiB, the flash does not repeat at 1 MiB.
        dev.faults = _Tamper(dev.faults, "tx", _is_mid_reply, _flip_last, times=10**6)
        with Session(url, baud=921600) as s:
            info = s.connect()
            assert info.flash_size == 0x100000 and not info.size_trusted
            with pytest.raises(UnsafeWriteError, match="flash size is not certain"):
                s.write(image, 0x40000, backup_first=False)
        assert bytes(dev.flash.data) == stock
        with Session(url, baud=921600, flash_size=0x200000) as s:
            info = s.connect()
            assert info.flash_size == 0x200000 and info.size_trusted
            s.write(image, 0x40000, backup_first=False)
        flash = bytes(dev.flash.data)
    assert flash[0x40000:0x44000] == image
    assert flash[:0x40000] == stock[:0x40000] and flash[0x44000:] == stock[0x44000:]


def _damage_outside_on_first_erase(dev, addr: int):
    """A sink that, at the first erase the engine reports, silently erases `addr` on the chip: a
    damaged command that the echo checks did not catch."""
    state = {"done": False}

    def sink(ev) -> None:
        if not state["done"] and isinstance(ev, SectorUpdate) and ev.state is SectorState.ERASED:
            state["done"] = True
            dev.flash.data[addr:addr + 0x1000] = b"\xff" * 0x1000

    return sink, state


@pytest.mark.parametrize("chip,dump", [("BK7231N", N_DUMP), ("BK7231T", T_DUMP)])
def test_damage_outside_the_write_is_put_back_from_the_backup(chip, dump, fixtures_dir, tmp_path):
    stock = (fixtures_dir / "dumps" / dump).read_bytes()
    image = bytes(range(256)) * 16 * 8
    lib = BackupLibrary(tmp_path / "lib")
    with sim_url(chip, stock) as (url, dev):
        sink, state = _damage_outside_on_first_erase(dev, 0x1000)  # inside the bootloader
        with Session(url, baud=921600, on_event=sink) as s:
            s.connect()
            s.write(image, 0x80000, backup_library=lib)
        assert state["done"]
        flash = bytes(dev.flash.data)
    assert flash[0x80000:0x88000] == image
    assert flash[:0x80000] == stock[:0x80000] and flash[0x88000:] == stock[0x88000:]


def test_damage_outside_without_a_backup_is_reported_by_sector(fixtures_dir):
    stock = (fixtures_dir / "dumps" / N_DUMP).read_bytes()
    image = bytes(range(256)) * 16 * 8
    with sim_url("BK7231N", stock) as (url, dev):
        sink, state = _damage_outside_on_first_erase(dev, 0x1D0000)  # the RF calibration
        with Session(url, baud=921600, on_event=sink) as s:
            s.connect()
            with pytest.raises(OutsideDamage, match="0x1D0000"):
                s.write(image, 0x80000, backup_first=False)


def test_flash_protection_is_left_as_found_after_a_write(fixtures_dir):
    stock = (fixtures_dir / "dumps" / N_DUMP).read_bytes()
    with sim_url("BK7231N", stock) as (url, dev):
        dev.flash.sr = 0x4004  # as the stock firmware leaves it
        with Session(url, baud=921600) as s:
            s.connect()
            s.write(b"\x55" * 0x1000, 0x80000, backup_first=False)
            assert dev.flash.sr == 0x4004
        assert dev.flash.read(0x80000, 0x1000) == b"\x55" * 0x1000


def test_replace_bootloader_does_not_unlock_the_rf_sector(fixtures_dir):
    stock = (fixtures_dir / "dumps" / N_DUMP).read_bytes()
    with sim_url("BK7231N", stock) as (url, dev):
        with Session(url, baud=921600) as s:
            s.connect()
            with pytest.raises(UnsafeWriteError, match="RF calibration"):
                s.write(b"\x00" * 0x2000, 0x1CF000, allow_regions={"bootloader"}, backup_first=False)
            with pytest.raises(UnsafeWriteError, match="Bootloader"):
                s.write(b"\x00" * 0x1000, 0x0, allow_regions={"rf"}, backup_first=False)
        assert bytes(dev.flash.data) == stock


def test_restore_of_a_rotated_dump_lands_in_flash_order(fixtures_dir):
    rotated = (fixtures_dir / "dumps" / ROTATED).read_bytes()
    flat = unrotate(rotated)
    chip_flash = bytearray(flat)
    chip_flash[0x20000:0x30000] = b"\xa5" * 0x10000  # the app changed since the backup
    with sim_url("BK7231T", bytes(chip_flash)) as (url, dev):
        with Session(url, baud=921600) as s:
            s.connect()
            s.restore(rotated, backup_first=False)
        assert bytes(dev.flash.data) == flat


@pytest.mark.parametrize("make,why", [
    (lambda stock: b"\x00" * len(stock), "nothing but 0x00"),
    (lambda stock: bytes(len(stock)).replace(b"\x00", b"\xff"), "nothing but 0xFF"),
    (lambda stock: __import__("random").Random(1).randbytes(len(stock)), "not a flash dump|no known bootloader"),
    (lambda stock: stock[:0x100000], "not a full dump"),
])
def test_restore_refuses_what_is_not_a_dump_of_this_chip(make, why, fixtures_dir):
    stock = (fixtures_dir / "dumps" / N_DUMP).read_bytes()
    with sim_url("BK7231N", stock) as (url, dev):
        with Session(url, baud=921600) as s:
            s.connect()
            with pytest.raises(ImageError, match=why):
                s.restore(make(stock), backup_first=False)
        assert bytes(dev.flash.data) == stock


class _ChatteringPort:
    """A line that never goes quiet after the link reply (an MCU chattering on RX1)."""

    in_waiting = 7

    def read(self, n: int) -> bytes:
        return b"\x55" * n


def test_settling_after_the_link_ends_on_a_line_that_never_goes_quiet():
    client = BkClient(_ChatteringPort())
    t0 = time.monotonic()
    client._settle()
    assert time.monotonic() - t0 < 1.0


@pytest.mark.parametrize("kwargs", [{"baud": 0}, {"baud": -1}, {"baud": 99999999999}, {"link_timeout": float("nan")},
                                    {"link_timeout": float("inf")}, {"link_timeout": -1},
                                    {"flash_size": 0x300000}])
def test_session_rejects_nonsense_numbers_before_touching_the_port(kwargs):
    with pytest.raises(BkError):
        Session("sim://bk7231n", **kwargs)


def test_after_any_anomaly_the_whole_flash_outside_the_write_is_checked(fixtures_dir, tmp_path):
    """A run with a retry gets the full outside check: damage in a non-critical region (the OTA area)
    is found and put back from the backup."""
    stock = (fixtures_dir / "dumps" / N_DUMP).read_bytes()
    image = bytes(range(256)) * 16 * 8
    lib = BackupLibrary(tmp_path / "lib")
    with sim_url("BK7231N", stock) as (url, dev):
        sink, state = _damage_outside_on_first_erase(dev, 0x150000)
        with Session(url, baud=921600, on_event=sink) as s:
            s.connect()
            s.backup(lib)
            # One damaged write reply: the engine retries, so the run is not clean.
            dev.faults = tamper = _Tamper(dev.faults, "tx", lambda f: len(f) > 10 and f[9:10] == b"\x07",
                                          lambda f: f[:-1] + bytes([f[-1] ^ 0x10]))
            report = s.write(image, 0x80000, backup_library=lib)
        assert state["done"] and tamper.hits == 1 and report.record.retries >= 1
        flash = bytes(dev.flash.data)
    assert flash[0x80000:0x88000] == image
    assert flash[:0x80000] == stock[:0x80000] and flash[0x88000:] == stock[0x88000:]
