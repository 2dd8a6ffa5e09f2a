"""Per-part status-register model (issue 11, item 5), exercised through FlashReadSR/WriteSR and writes."""

from __future__ import annotations

import struct
import time

import pytest
from bkbench.core.client import BkClient
from bkbench.core.errors import UnsafeWriteError
from bkbench.core.protocol import LongCmd
from bkbench.core.session import Session
from bkbench.core.sim.identity import ImageIdentityError
from bkbench.core.sim.registry import create_device, register, unregister
from bkbench.core.transport import open_port
from test_sim_commands import ask

N_DUMP = "bk7231n-mirabella-genio-i003632-plug.bin"


@pytest.fixture
def chip(fixtures_dir, request):
    flash_id = getattr(request, "param", None)
    dev = create_device(None, fixtures_dir / "dumps" / N_DUMP, flash_id=flash_id)
    name = f"sr{id(dev)}"
    register(name, dev)
    port = open_port(f"sim://@{name}")
    assert BkClient(port).link(1.0)
    yield port, dev
    unregister(name)


def sr(port, op: int = 0x05) -> int:
    return ask(port, LongCmd.FLASH_READ_SR, bytes([op]), long=True).payload[2]


def program(port, addr: int, data: bytes) -> None:
    assert ask(port, LongCmd.FLASH_ERASE, struct.pack("<BI", 0x20, addr), long=True).status == 0
    assert ask(port, LongCmd.FLASH_WRITE_4K, struct.pack("<I", addr) + data, long=True).status == 0


def test_stock_0x4004_leaves_the_top_64k_writable(chip):
    port, dev = chip
    assert (sr(port, 0x05), sr(port, 0x35)) == (0x04, 0x40)
    program(port, 0x1F0000, b"\x11" * 0x1000)
    program(port, 0x100000, b"\x22" * 0x1000)  # acknowledged with status 0, ignored by the flash
    assert dev.flash.read(0x1F0000, 0x1000) == b"\x11" * 0x1000
    assert dev.flash.read(0x100000, 0x1000) != b"\x22" * 0x1000


def test_bp_tb_sec_regions(chip):
    port, dev = chip
    data = bytes(dev.flash.data)
    # BP0 + TB (bottom 64 KiB): the top is writable, 0x8000 is not
    ask(port, LongCmd.FLASH_WRITE_SR, b"\x01\x24\x00", long=True)
    time.sleep(0.01)
    program(port, 0x8000, b"\x33" * 0x1000)
    program(port, 0x1E0000, b"\x44" * 0x1000)
    assert dev.flash.read(0x8000, 0x1000) == data[0x8000:0x9000]
    assert dev.flash.read(0x1E0000, 0x1000) == b"\x44" * 0x1000
    # SEC + TB + BP0: only the bottom 4 KiB
    ask(port, LongCmd.FLASH_WRITE_SR, b"\x01\x64\x00", long=True)
    time.sleep(0.01)
    program(port, 0x1000, b"\x55" * 0x1000)
    assert dev.flash.read(0x1000, 0x1000) == b"\x55" * 0x1000
    assert dev.flash.status.blocks(0, 0x1000)


def test_wip_and_wel_read_back_right_after_write_sr(chip):
    """libretiny issue 33: a read-back right after WriteSR may still show WIP; hosts compare masked."""
    port, _ = chip
    ask(port, LongCmd.FLASH_WRITE_SR, b"\x01\x00\x00", long=True)
    assert sr(port) & 0x03 == 0x03
    time.sleep(0.01)
    assert sr(port) == 0x00


def test_one_byte_write_sr_clears_sr2_on_a_part_without_31(chip):
    port, _ = chip  # TH25Q16HB (EB6015): SR writes only with 01
    ask(port, LongCmd.FLASH_WRITE_SR, b"\x01\x00", long=True)
    time.sleep(0.01)
    assert (sr(port, 0x05), sr(port, 0x35)) == (0x00, 0x00)


@pytest.mark.parametrize("chip", ["852015"], indirect=True)
def test_one_byte_write_sr_keeps_sr2_on_a_part_with_31(chip):
    port, dev = chip  # P25Q16HBK: SR2 has its own write opcode 31
    ask(port, LongCmd.FLASH_WRITE_SR, b"\x01\x00", long=True)
    time.sleep(0.01)
    assert (sr(port, 0x05), sr(port, 0x35)) == (0x00, 0x40)
    assert dev.flash.status.blocks(0x11000, 1)  # CMP with BP = 0: everything protected
    ask(port, LongCmd.FLASH_WRITE_SR, b"\x31\x00", long=True)
    time.sleep(0.01)
    assert not dev.flash.protected


def test_srp_lock_down_holds_until_power_cycle(chip):
    port, dev = chip
    ask(port, LongCmd.FLASH_WRITE_SR, b"\x01\x1c\x01", long=True)  # BP all + SRP1: lock-down
    time.sleep(0.01)
    ask(port, LongCmd.FLASH_WRITE_SR, b"\x01\x00\x00", long=True)
    time.sleep(0.01)
    assert sr(port) == 0x1C  # the write was ignored
    dev.power(False)
    dev.power(True)
    assert BkClient(port).link(1.0)
    ask(port, LongCmd.FLASH_WRITE_SR, b"\x01\x00\x00", long=True)
    time.sleep(0.01)
    assert (sr(port, 0x05), sr(port, 0x35)) == (0x00, 0x00)


@pytest.mark.parametrize("chip", ["C84015"], indirect=True)
def test_flash_id_selects_the_part_our_engine_reports(chip):
    port, dev = chip
    info = BkClient(port)
    assert info.link(1.0)
    got = info.identify()
    assert (got.flash_id, got.flash_name) == ((0xC8, 0x40, 0x15), "GD25Q16B")


def test_unknown_flash_id_still_plays_and_is_reported(fixtures_dir):
    dev = create_device(None, fixtures_dir / "dumps" / N_DUMP, flash_id="AB1215")
    register("unk", dev)
    try:
        with Session("sim://@unk", baud=115200, reset="manual", link_timeout=5) as s:
            info = s.connect()
            # An ID not in the table: its size is not certain, so writes wait for the user's --flash-size.
            with pytest.raises(UnsafeWriteError, match="flash size is not certain"):
                s.write(b"\x77" * 0x1000, 0x12A000, backup_first=False)
        with Session("sim://@unk", baud=115200, reset="manual", link_timeout=5, flash_size=0x200000) as s:
            s.connect()
            s.write(b"\x77" * 0x1000, 0x12A000)  # two-byte SR assumed; the write is verified by CRC
    finally:
        unregister("unk")
    assert info.flash_name is None and any("not in the table" in w for w in info.warnings)
    assert dev.flash.read(0x12A000, 0x1000) == b"\x77" * 0x1000


def test_flash_id_of_another_size_is_refused(fixtures_dir):
    with pytest.raises(ImageIdentityError, match="GD25Q32E of 4096 KiB"):
        create_device(None, fixtures_dir / "dumps" / N_DUMP, flash_id="C84016")
