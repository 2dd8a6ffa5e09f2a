"""Command fidelity of the simulated bootloaders (issue 11, item 3), through the protocol.

Replies follow the Beken bootloader download handler where a source exists (FlashWrite count byte,
FlashRead, EraseAll, RESET "SEAN", unknown erase sizes dropped); see core/sim/README.md.
"""

from __future__ import annotations

import io
import struct
import time

import pytest
from bkbench.core.client import BkClient
from bkbench.core.protocol import Cmd, LongCmd, Response, ResponseScanner, encode
from bkbench.core.sim.device import SimDevice
from bkbench.core.transport import open_port
from simhelpers import pty_for, sim_url

N_DUMP = "bk7231n-mirabella-genio-i003632-plug.bin"
T_DUMP = "bk7231t-feit-br30-rgbw-bulb.bin"


@pytest.fixture
def n_flash(fixtures_dir):
    return (fixtures_dir / "dumps" / N_DUMP).read_bytes()


def ask(port, code: int, payload: bytes = b"", long: bool = False, wait: float = 0.3) -> Response | None:
    """Send one frame; the matching reply, or None when the chip stays silent for `wait` s."""
    port.reset_input_buffer()
    port.write(encode(code, payload, long))
    scanner = ResponseScanner()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        scanner.feed(port.read(max(1, port.in_waiting)))
        frame = scanner.find(code if code != Cmd.LINK_CHECK else 0x01, long)
        if frame is not None:
            return frame
    return None


def linked(url: str):
    port = open_port(url)
    assert BkClient(port).link(1.0)
    return port


def test_unaligned_program_flash_of_bk7231tools_lands(fixtures_dir):
    """bk7231tools' unaligned path: erase the sector, FlashWrite (0x06) a padded chunk, count checked."""
    bk = pytest.importorskip("bk7231tools.serial")
    dev = SimDevice((fixtures_dir / "dumps" / T_DUMP).read_bytes(), chip="BK7231T")
    payload = bytes(range(0x40, 0x80))
    with pty_for(dev) as pty:
        peer = bk.BK7231Serial(pty, baudrate=115200, link_timeout=5)
        peer.connect()
        try:
            for _ in peer.program_flash(io.BytesIO(payload), len(payload), 0x12A080, really_erase=True):
                pass
        finally:
            peer.close()
    assert dev.flash.read(0x12A000, 0x1000) == b"\xff" * 0x80 + payload + b"\xff" * (0x1000 - 0xC0)


def test_flash_write_count_byte_of_256_wraps_to_zero(n_flash):
    """The count is a u8 holding `len` (Beken source: `len - 5` of the frame): 256 bytes report 0,
    yet are written. bk7231tools requires count == 256 and so can never pass a full chunk."""
    with sim_url("BK7231N", n_flash) as (url, dev):
        port = linked(url)
        dev.flash.sr = 0
        ask(port, LongCmd.FLASH_ERASE, struct.pack("<BI", 0x20, 0x12A000), long=True)
        r = ask(port, LongCmd.FLASH_WRITE, struct.pack("<I", 0x12A000) + b"\x5a" * 256, long=True)
        assert r is not None and r.payload == b"\x00" + struct.pack("<I", 0x12A000) + b"\x00"
        r = ask(port, LongCmd.FLASH_WRITE, struct.pack("<I", 0x12A100) + b"\xa5" * 200, long=True)
        assert r.payload[-1] == 200
        assert dev.flash.read(0x12A000, 456) == b"\x5a" * 256 + b"\xa5" * 200


@pytest.mark.parametrize("length_field", [b"\x20", b"\x20\x00"])
def test_flash_read_0x08_answers_on_the_n(n_flash, length_field):
    with sim_url("BK7231N", n_flash) as (url, _):
        r = ask(linked(url), LongCmd.FLASH_READ, struct.pack("<I", 0x11010) + length_field, long=True)
    assert r is not None and r.payload == b"\x00" + struct.pack("<I", 0x11010) + n_flash[0x11010:0x11030]


def test_flash_read_0x08_and_erase_all_are_not_answered_by_the_t(fixtures_dir):
    t_flash = (fixtures_dir / "dumps" / T_DUMP).read_bytes()
    with sim_url("BK7231T", t_flash) as (url, dev):
        port = linked(url)
        assert ask(port, LongCmd.FLASH_READ, struct.pack("<IH", 0x11000, 16), long=True) is None
        assert ask(port, LongCmd.FLASH_ERASE_ALL, b"\x04", long=True) is None
        assert dev.flash.read(0, len(t_flash)) == t_flash


def test_erase_all_is_acknowledged_but_ignored_while_protected(n_flash):
    with sim_url("BK7231N", n_flash) as (url, dev):
        port = linked(url)
        r = ask(port, LongCmd.FLASH_ERASE_ALL, b"\x04", long=True)
        assert r is not None and r.payload == b"\x00\x04"
        assert dev.flash.read(0, len(n_flash)) == n_flash  # stock SR 0x4004 protects most blocks
        ask(port, LongCmd.FLASH_WRITE_SR, b"\x01\x00\x00", long=True)
        time.sleep(0.01)
        assert ask(port, LongCmd.FLASH_ERASE_ALL, b"\x04", long=True) is not None
        assert dev.flash.read(0, len(n_flash)) == b"\xff" * len(n_flash)


def test_reset_0x70_with_sean_reboots_silently_else_echoes(n_flash):
    with sim_url("BK7231N", n_flash, boot_window=5.0) as (url, dev):  # window outlasts the 0.3 s wait
        port = linked(url)
        assert ask(port, 0x70, b"SEAM") is not None  # wrong magic: echoed, no reset
        assert dev.resets == 0
        assert ask(port, 0x70, b"SEAN") is None
        assert dev.resets == 1 and dev.state == "window"


def test_unknown_erase_size_is_dropped_and_32k_erases(n_flash):
    with sim_url("BK7231N", n_flash) as (url, dev):
        port = linked(url)
        dev.flash.sr = 0
        assert ask(port, LongCmd.FLASH_ERASE, struct.pack("<BI", 0x30, 0x120000), long=True) is None
        assert dev.flash.read(0x120000, 0x10000) == n_flash[0x120000:0x130000]
        r = ask(port, LongCmd.FLASH_ERASE, struct.pack("<BI", 0x52, 0x120000), long=True)
        assert r is not None and r.payload[1] == 0x52
        assert dev.flash.read(0x120000, 0x8000) == b"\xff" * 0x8000
        assert dev.flash.read(0x128000, 0x8000) == n_flash[0x128000:0x130000]


def test_truncated_frame_is_abandoned_after_a_gap(n_flash):
    """Half a FlashWrite4K, then silence: the next LinkCheck must not become its payload."""
    with sim_url("BK7231N", n_flash) as (url, dev):
        port = linked(url)
        head = encode(LongCmd.FLASH_WRITE_4K, struct.pack("<I", 0x12A000) + b"\x00" * 4096, long=True)
        port.write(head[:300])
        assert ask(port, Cmd.LINK_CHECK) is None  # sent at once: still inside the unfinished frame
        port.write(head[:300])
        time.sleep(0.15)
        assert ask(port, Cmd.LINK_CHECK) is not None
        assert dev.flash.read(0x12A000, 0x1000) == n_flash[0x12A000:0x12B000]


def test_n_rom_answers_boot_version_with_07_and_t_with_its_string(n_flash, fixtures_dir):
    with sim_url("BK7231N", n_flash) as (url, _):
        r = ask(linked(url), Cmd.BOOT_VERSION)
        assert r is not None and r.payload == b"\x07"
    with sim_url("BK7231T", (fixtures_dir / "dumps" / T_DUMP).read_bytes()) as (url, _):
        r = ask(linked(url), Cmd.BOOT_VERSION)
        assert r is not None and r.payload == b"BK7231S_1.0.5\x00\x00\x00"  # NULs as the real code (REALCODE B.1)
