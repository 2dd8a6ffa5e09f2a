"""The targeted line-fault injector (core/sim/tamper.py): frames pass untouched unless a flip names them,
and a flip changes exactly the chosen bit of the chosen frame."""

from __future__ import annotations

import pytest
from bkbench.core.client import BkClient
from bkbench.core.errors import ProtocolError
from bkbench.core.sim.tamper import C2H, H2C, Flip, LineTamper, fields_of
from bkbench.core.transport import open_port
from simhelpers import sim_url


def _client(url: str, flips: list[Flip]) -> tuple[BkClient, LineTamper]:
    tamper = LineTamper(open_port(url), flips)
    client = BkClient(tamper)
    assert client.link(1.0)
    client.identify()
    return client, tamper


def test_without_flips_every_byte_passes_and_every_frame_is_traced() -> None:
    with sim_url("BK7231N") as (url, dev):
        flash = bytes(dev.flash.data)
        client, tamper = _client(url, [])
        assert client.read_4k(0x11000) == flash[0x11000:0x12000]
        assert (H2C, "read4k") in tamper.trace and (C2H, "read4k") in tamper.trace
        assert (H2C, "mid") in tamper.trace and (C2H, "mid") in tamper.trace
        assert not tamper.hits


def test_reply_flip_hits_only_the_chosen_frame() -> None:
    with sim_url("BK7231N") as (url, _):
        # identify asks FlashGetMID twice (two agreeing replies), so the third reply is the first one here.
        client, tamper = _client(url, [Flip(C2H, "mid", "flash_id", 16, nth=3)])
        assert client.flash_mid() == (0xEB, 0x60, 0x14)
        assert client.flash_mid() == (0xEB, 0x60, 0x15)
        assert tamper.hits == [Flip(C2H, "mid", "flash_id", 16, nth=3)]


def test_command_flip_reaches_the_chip() -> None:
    """Address bit 12 of a Read4K: the chip reads (and echoes) 0x12000, so the client sees a wrong echo."""
    with sim_url("BK7231N") as (url, _):
        client, tamper = _client(url, [Flip(H2C, "read4k", "addr", 13, nth=1)])
        with pytest.raises(ProtocolError, match="echo"):
            client.read_4k(0x11000)
        assert len(tamper.hits) == 1


def test_field_tables_cover_code_and_length() -> None:
    assert fields_of("erase", True) == {"code": 8, "len": 16, "size": 8, "addr": 32}
    assert fields_of("crc", False) == {"code": 8, "len": 8, "crc": 32}
