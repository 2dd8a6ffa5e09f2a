"""Verify tells the truth (issue 22 items 2, 3): a difference is one the chip confirms, line trouble is a
retry, a real difference is not, and an empty file is an error, not a match. Judged against the
simulated flash; runs with or without the shared fixtures (the default chip's flash either way)."""

from __future__ import annotations

import random

import pytest
from bkbench.core.errors import BkError
from bkbench.core.ops.events import Retry
from bkbench.core.session import Session
from bkbench.core.sim import registry
from bkbench.core.sim.faults import FaultInjector, FaultPlan

SECTOR, BLOCK = 0x1000, 0x10000
FF = b"\xff" * SECTOR


@pytest.fixture
def chip():
    dev = registry.create_device("BK7231N", wiring="rts")
    registry.register("verify-truth", dev)
    yield dev
    registry.unregister("verify-truth")


def _session(events: list) -> Session:
    s = Session("sim://@verify-truth", baud=115200, reset="rts", link_timeout=5, on_event=events.append)
    s.connect()
    return s


def _truth(data: bytes, flash: bytes) -> list[int]:
    return [a for a in range(0, len(data), SECTOR) if data[a : a + SECTOR] != flash[a : a + SECTOR]]


def test_verify_against_an_older_image_reports_differences_not_retries(chip) -> None:
    """A file that differs from the chip in 40 sectors (erased on one side and not on the other, or one
    byte): verify names exactly those, and says nothing about retries (there was no line trouble)."""
    flash = bytes(chip.flash.data)
    data = bytearray(flash)
    rng = random.Random(22)
    for a in rng.sample(range(0x11000, len(flash), SECTOR), 40):
        if data[a : a + SECTOR] == FF:
            data[a + rng.randrange(SECTOR)] = rng.randrange(255)
        elif rng.random() < 0.5:
            data[a : a + SECTOR] = FF
        else:
            data[a + rng.randrange(SECTOR)] ^= 0x20
    events: list = []
    with _session(events) as s:
        report = s.verify(bytes(data), 0)
    said = [a for lo, hi in report.mismatched for a in range(lo, hi, SECTOR)]
    assert said == _truth(bytes(data), flash)
    assert not [e for e in events if isinstance(e, Retry)]
    assert f"{len(said)} sectors" in report.summary()


class _DamageCrcEnds(FaultInjector):
    """The CheckCRC commands number `first`, `first`+1, ... reach the chip with one end-address bit flipped
    (a different bit each time, so each hashes another length): the chip answers about another range."""

    def __init__(self, first: int, bits: tuple[int, ...]) -> None:
        super().__init__(FaultPlan())
        self.first, self.bits, self.seen = first, bits, 0

    def corrupt(self, data: bytes, direction: str) -> bytes:
        if direction == "rx" and len(data) == 13 and data[3:5] == b"\x09\x10":
            self.seen += 1
            k = self.seen - self.first
            if 0 <= k < len(self.bits):
                self.counts["rx_corrupt"] += 1
                bit = self.bits[k]
                buf = bytearray(data)
                buf[9 + bit // 8] ^= 1 << (bit % 8)
                return bytes(buf)
        return data


def test_verify_does_not_report_erased_flash_hit_by_damaged_crc_commands(chip) -> None:
    """Three CheckCRC commands in a row damaged on the way in (the reliability suite's seed 3 without the
    fixtures did this at 0xD4000): the erased group, then the sector and the second look at it all hash
    another range. The sector is erased: verify must say so after asking until two answers agree."""
    flash = bytes(chip.flash.data)
    group = next(g for g in range(BLOCK, len(flash), BLOCK) if flash[g : g + BLOCK] == b"\xff" * BLOCK)
    events: list = []
    with _session(events) as s:
        chip.faults = _DamageCrcEnds(1, (8, 9, 10))
        report = s.verify(flash[group : group + BLOCK], group)
    assert chip.faults.counts["rx_corrupt"] == 3
    assert report.ok, report.summary()
    assert [e for e in events if isinstance(e, Retry)], "line trouble is reported as retries"


def test_verify_of_empty_data_is_an_error_not_a_match(chip) -> None:
    events: list = []
    with _session(events) as s, pytest.raises(BkError, match="nothing to verify"):
        s.verify(b"", 0)
