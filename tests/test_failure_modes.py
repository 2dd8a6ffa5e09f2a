"""PROTOCOL-DETAILS.md section 10, one test per failure mode that applies to a host + simulator.

Each test name carries the number of the failure mode it covers.
"""

from __future__ import annotations

import struct
import time
import zlib

import pytest
from bkbench.core.chips import Dialect
from bkbench.core.client import BkClient
from bkbench.core.errors import BkError, ProtocolError
from bkbench.core.protocol import Cmd, LongCmd, ResponseScanner, encode, encode_response
from bkbench.core.session import Session
from bkbench.core.sim.device import SimDevice
from bkbench.core.sim.faults import FaultPlan
from bkbench.core.sim.registry import synth_flash
from bkbench.core.transport import open_port
from simhelpers import sim_url

N_DUMP = "bk7231n-mirabella-genio-i003632-plug.bin"
T_DUMP = "bk7231t-globe-37783-rgbct-bulb.bin"


@pytest.fixture
def n_flash(fixtures_dir):
    return (fixtures_dir / "dumps" / N_DUMP).read_bytes()


@pytest.fixture
def t_flash(fixtures_dir):
    return (fixtures_dir / "dumps" / T_DUMP).read_bytes()


def linked(url: str) -> BkClient:
    client = BkClient(open_port(url))
    assert client.link(1.0)
    client.identify()
    return client


def test_01_garbage_before_a_reply_is_skipped(n_flash):
    with sim_url("BK7231N", n_flash, faults=FaultPlan(seed=3, noise_rate=0.5)) as (url, dev):
        with Session(url, baud=115200) as s:
            s.connect()
            assert s.read(0x11000, 0x8000) == n_flash[0x11000:0x19000]
        assert dev.faults.counts["noise"] > 5


def test_02_late_link_replies_do_not_break_the_baud_switch(n_flash):
    with sim_url("BK7231N", n_flash) as (url, dev):
        port = open_port(url)
        port.write(encode(Cmd.LINK_CHECK) * 5)  # a burst, as the link spam leaves behind
        client = BkClient(port)
        client.dialect = Dialect.FULL
        time.sleep(0.01)
        client.scanner.feed(port.read(port.in_waiting))  # replies still in our buffer
        client.set_baudrate(921600)
        assert dev.chip_baud == 921600 and port.baudrate == 921600


def test_03_link_check_reply_code_is_0x01(n_flash):
    with sim_url("BK7231N", n_flash) as (url, _):
        port = open_port(url)
        port.write(encode(Cmd.LINK_CHECK))
        time.sleep(0.01)
        assert port.read(64) == encode_response(0x01, b"\x00") == bytes.fromhex("040E0501E0FC0100")


def test_04_and_05_get_mid_is_long_with_length_6(n_flash):
    with sim_url("BK7231N", n_flash) as (url, _):
        port = open_port(url)
        assert BkClient(port).link(1.0)
        port.write(encode(LongCmd.FLASH_GET_MID, struct.pack("<I", 0x9F), long=True))
        time.sleep(0.01)
        raw = port.read(64)
        assert raw[:9] == bytes.fromhex("040EFF01E0FCF40600") and raw[-3:] == bytes.fromhex("EB6015")
        assert len(raw) == 15


def test_06_baud_echo_is_garbled_if_the_host_does_not_switch(n_flash):
    with sim_url("BK7231N", n_flash) as (url, _):
        port = open_port(url)
        client = BkClient(port)
        assert client.link(1.0)
        port.write(encode(Cmd.SET_BAUD, struct.pack("<IB", 921600, 20)))
        time.sleep(0.05)
        sc = ResponseScanner()
        sc.feed(port.read(256))
        assert sc.find(Cmd.SET_BAUD, False) is None  # still at 115200: the echo is noise
        # ... and the chip is now deaf at 115200: a link check gets no answer.
        assert not client.link(0.3)


def test_07_08_09_crc_raw_value_and_range_semantics(n_flash, t_flash):
    with sim_url("BK7231N", n_flash) as (url, _):
        c = BkClient(open_port(url))
        assert c.link(1.0)
        assert c.crc_raw(0, 256) == zlib.crc32(n_flash[:257])  # FULL: end inclusive (257 bytes)
    with sim_url("BK7231T", t_flash) as (url, _):
        c = BkClient(open_port(url))
        assert c.link(1.0)
        assert c.crc_raw(0, 256) == zlib.crc32(t_flash[:256])  # BASIC: end exclusive
        c.identify()
        assert c.crc(0x11000, 0x1000) == zlib.crc32(t_flash[0x11000:0x12000])


def test_10_echo_uses_the_wire_address(n_flash):
    with sim_url("BK7231N", n_flash) as (url, _):
        c = linked(url)
        assert c.bypass and c.flash_size == 0x200000
        r = c.command(LongCmd.FLASH_READ_4K, struct.pack("<I", 0x211000), long=True, reply_len=4111)
        assert r.payload[1:5] == struct.pack("<I", 0x211000)
        assert r.payload[5:] == n_flash[0x11000:0x12000]


def test_12_unsupported_commands_on_t_stay_silent(t_flash):
    with sim_url("BK7231T", t_flash) as (url, _):
        c = BkClient(open_port(url))
        assert c.link(1.0)
        with pytest.raises(ProtocolError):
            c.command(Cmd.READ_REG, struct.pack("<I", 0x800000), timeout=0.1)
        assert c.boot_version() == "BK7231S_1.0.4"  # what its code answers (REALCODE.md B.1), not the table name


def test_13_t_refuses_raw_reads_of_the_bootloader_but_the_alias_works(t_flash):
    with sim_url("BK7231T", t_flash) as (url, _):
        c = linked(url)
        c.bypass = False
        with pytest.raises(ProtocolError, match="status 6"):
            c.read_4k(0)
        c.bypass = True
        assert c.read_4k(0) == t_flash[:0x1000]


def test_14_addresses_wrap_at_the_flash_size_for_4mib_too():
    flash = synth_flash("BK7231N", size=0x400000)
    dev = SimDevice(flash, chip="BK7231N", jedec=(0xC8, 0x40, 0x16))
    with sim_url("BK7231N", flash) as (url, _):
        pass
    assert dev.flash.read(0x400000 + 0x11000, 16) == flash[0x11000:0x11010]
    assert dev.flash.read(0x200000, 16) == flash[0x200000:0x200010]  # no mirror at 2 MiB


@pytest.mark.parametrize("dump,relink_helps", [("bk7231t-feit-br30-rgbw-bulb.bin", True), (T_DUMP, False)])
def test_15_crc_locks_protection_until_a_link_check(dump, relink_helps, fixtures_dir):
    """REALCODE.md B.8, as the real bootloaders do it (tests/golden): a CheckCRC re-protects, the next erase is
    acknowledged and dropped; a LinkCheck re-arms the unprotect on 1.0.5, but not on 1.0.4 (until a reset)."""
    t_flash = (fixtures_dir / "dumps" / dump).read_bytes()
    with sim_url("BK7231T", t_flash) as (url, dev):
        c = linked(url)  # identification hashes the bootloader with a CheckCRC: on 1.0.4 that blocks erases
        dev.reset()  # until a reset, so start from a fresh boot
        assert c.link(1.0)
        a, b = 0x11000, 0x12000
        c.erase(a)  # the link check armed the one-shot: this erase unprotects
        assert dev.flash.read(a, 0x1000) == b"\xff" * 0x1000
        # A CheckCRC without the link check that the client normally sends afterwards re-protects:
        c.crc_raw(c._wire(a), c._wire(a) + 0x1000)
        c.erase(b)
        assert dev.flash.read(b, 0x1000) == t_flash[b : b + 0x1000]  # acknowledged, silently ineffective
        # Our client's crc() re-links: the next erase works on 1.0.5, and is dropped again on 1.0.4.
        c.crc(a, 0x1000)
        c.erase(b)
        erased = dev.flash.read(b, 0x1000) == b"\xff" * 0x1000
        assert erased is relink_helps
        if not relink_helps:  # a reset clears 1.0.4's memory of the CheckCRC
            dev.reset()
            assert c.link(1.0)
            c.erase(b)
            assert dev.flash.read(b, 0x1000) == b"\xff" * 0x1000


def test_16_stock_n_flash_is_protected_until_unprotected(n_flash):
    with sim_url("BK7231N", n_flash) as (url, dev):
        c = linked(url)
        assert dev.flash.sr == 0x4004
        c.erase(0x12A000)
        assert dev.flash.read(0x12A000, 16) == n_flash[0x12A000:0x12A010]
        assert "unprotected" in c.unprotect()
        assert dev.flash.sr & 0x407C == 0
        c.erase(0x12A000)
        assert dev.flash.read(0x12A000, 16) == b"\xff" * 16


@pytest.mark.parametrize("sr", [0x0000, 0x001C, 0x4004])
def test_16_write_succeeds_from_any_protection_state(n_flash, sr):
    with sim_url("BK7231N", n_flash, sr=sr) as (url, dev):
        with Session(url, baud=115200) as s:
            s.connect()
            s.write(b"\x12" * 0x1000, 0x12A000, backup_first=False)
        assert dev.flash.read(0x12A000, 0x1000) == b"\x12" * 0x1000


def test_19_zero_flash_is_reported_as_a_strap_problem(n_flash):
    with sim_url("BK7231N", n_flash, scenario="zero-flash") as (url, _):
        with Session(url, baud=115200, link_timeout=1) as s:
            with pytest.raises(BkError, match="zeros"):
                s.connect()


def test_20_blank_and_zero_filled_chips_can_still_be_backed_up(tmp_path):
    flash = bytearray(synth_flash("BK7231N"))
    flash[0x11000:] = b"\xff" * (len(flash) - 0x11000)
    with sim_url("BK7231N", bytes(flash)) as (url, _):
        with Session(url, baud=921600) as s:
            s.connect()
            assert s.read() == bytes(flash)


def test_23_rts_asserted_on_open_is_released(n_flash):
    # CEN wired to RTS: pyserial asserts RTS on open, which would hold the chip in reset.
    with sim_url("BK7231N", n_flash, wiring="rts") as (url, dev):
        port = open_port(url)
        assert dev.cen_low is False and port.rts is False
        assert BkClient(port).link(1.0)


def test_24_reset_before_linking_misses_the_boot_window(n_flash):
    with sim_url("BK7231N", n_flash, scenario="app-running", boot_window=0.1) as (url, dev):
        port = open_port(url)
        dev.reset()
        time.sleep(0.2)  # the window closes before we start
        assert not BkClient(port).link(0.3)
        dev.reset()  # reset while linking: works
        assert BkClient(port).link(0.5)


def test_25_t_leaves_download_mode_when_idle(t_flash):
    """REALCODE.md B.11: after a LinkCheck and a silence the T bootloader reboots through its watchdog: a new
    boot window (a LinkCheck catches it again), then the application."""
    with sim_url("BK7231T", t_flash, idle_timeout=0.2, boot_window=0.3) as (url, dev):
        c = BkClient(open_port(url))
        assert c.link(1.0)
        resets = dev.resets
        time.sleep(0.3)
        dev.pending()  # the simulated chip moves on when the host looks
        assert dev.resets == resets + 1 and dev.state == "window"
        assert c.link(0.5)  # caught in the new boot window
        time.sleep(0.25 + 0.35)  # silent again: idle reset, and this time the window closes
        dev.pending()
        assert dev.state == "app"
        with pytest.raises(ProtocolError):
            c.command(Cmd.CHECK_CRC, struct.pack("<II", 0x11000, 0x12000), timeout=0.2)


def test_29_adapter_that_cannot_run_the_rate_steps_down(n_flash):
    with sim_url("BK7231N", n_flash, max_baud=921600, wiring="rts") as (url, _):
        with Session(url, baud=2000000, reset="dtr-rts", link_timeout=5) as s:
            info = s.connect()
            assert info.baud <= 921600
            assert s.read(0x11000, 0x4000) == n_flash[0x11000:0x15000]


def test_30_lost_bytes_in_4k_replies_are_retried(n_flash):
    with sim_url("BK7231N", n_flash, faults=FaultPlan(seed=7, drop_rate=0.00005)) as (url, dev):
        events = []
        with Session(url, baud=921600, on_event=events.append) as s:
            s.connect()
            assert s.read(0x11000, 0x40000) == n_flash[0x11000:0x51000]
        assert dev.faults.counts["drop"] > 0


def test_32_openbk_reboots_on_the_reboot_command(n_flash):
    flash = bytearray(n_flash)
    flash[0x20000:0x20010] = b"not the stock app"
    dev_flash = bytes(flash)
    with sim_url("BK7231N", n_flash, scenario="app-running") as (url, dev):
        dev.flash.data[:] = dev_flash  # an app other than the stock one answers "reboot"
        port = open_port(url)
        before = dev.resets
        port.write(b"reboot\n")
        time.sleep(0.1)
        port.read(port.in_waiting)
        assert dev.resets == before + 1


def test_42_a_crc_mismatch_is_retried_not_fatal(n_flash):
    with sim_url("BK7231N", n_flash, faults=FaultPlan(seed=11, flip_rate=0.0001)) as (url, dev):
        with Session(url, baud=921600) as s:
            s.connect()
            assert s.read(0, 0x80000) == n_flash[:0x80000]
        assert dev.faults.counts["flip"] > 0


def test_44_unaligned_reads_are_refused_clearly(n_flash):
    with sim_url("BK7231N", n_flash) as (url, _):
        with Session(url, baud=115200) as s:
            s.connect()
            with pytest.raises(BkError, match="4 KiB boundary"):
                s.read(0x11010, 0x1000)


def test_45_blank_target_sectors_are_erased_not_written(n_flash):
    with sim_url("BK7231N", n_flash) as (url, dev):
        with Session(url, baud=921600) as s:
            s.connect()
            report = s.write(b"\xff" * 0x2000, 0x20000, backup_first=False)
        assert n_flash[0x20000:0x22000] != b"\xff" * 0x2000
        assert report.erased_only == 2 and report.written == 0
        assert 0x107 not in dev.commands  # FlashWrite4K never sent
        assert dev.flash.read(0x20000, 0x2000) == b"\xff" * 0x2000


def test_47_reads_cover_4mib_flash():
    flash = synth_flash("BK7231N", size=0x400000)
    with sim_url("BK7231N", flash, jedec=(0xC8, 0x40, 0x16)) as (url, _):
        with Session(url, baud=921600) as s:
            info = s.connect()
            assert info.flash_size == 0x400000
            assert s.read(0x3F0000, 0x10000) == flash[0x3F0000:]


def test_50_reads_never_touch_protection(n_flash):
    with sim_url("BK7231N", n_flash) as (url, dev):
        with Session(url, baud=921600) as s:
            s.connect()
            s.read(0x11000, 0x10000)
        assert dev.flash.sr == 0x4004
        assert not any(c in (0x10D, 0x10F, 0x107) for c in dev.commands)


def test_nor_semantics_program_only_clears_bits(n_flash):
    with sim_url("BK7231N", n_flash, sr=0) as (url, dev):
        c = linked(url)
        c.erase(0x12A000)
        c.write_4k(0x12A000, b"\x0f" * 0x1000)
        c.write_4k(0x12A000, b"\xf3" * 0x1000)  # without an erase in between
        assert dev.flash.read(0x12A000, 0x1000) == b"\x03" * 0x1000
        c.erase(0x12A000)
        assert dev.flash.read(0x12A000, 0x1000) == b"\xff" * 0x1000


def test_timing_model_paces_the_wire(n_flash):
    from bkbench.core.sim.timing import Timing

    with sim_url("BK7231N", n_flash, timing=Timing(enabled=True)) as (url, _):
        c = linked(url)
        c.set_baudrate(921600)
        t0 = time.monotonic()
        for i in range(8):
            c.read_4k(0x11000 + i * 0x1000)
        elapsed = time.monotonic() - t0
    # 8 replies of 4111 bytes at 921600 baud cannot arrive faster than their wire time.
    assert elapsed >= 8 * 4111 * 10 / 921600
