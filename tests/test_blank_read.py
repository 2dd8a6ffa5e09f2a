"""Blank-aware verified read and verify (issue 13), judged against the simulator's flash on both dialects.

Erased ranges are vouched by chip CRCs without crossing the wire; anything else must match a CRC
taken before its transfer. Also: fault-free runs must not move the retry counter (N and T)."""

from __future__ import annotations

import struct
import zlib

import pytest
from bkbench.core.ops.events import Notice, Retry, SectorState, SectorUpdate
from bkbench.core.ops.flash_ops import blank_crc
from bkbench.core.protocol import Cmd, LongCmd
from bkbench.core.session import Session
from simhelpers import sim_url

DUMPS = {"BK7231N": "bk7231n-lspa9-clone-bl0937-plug.bin", "BK7231T": "bk7231t-feit-br30-rgbw-bulb.bin"}
CHIPS = list(DUMPS)
SECTOR, BLOCK = 0x1000, 0x10000
FF = b"\xff" * SECTOR
READ_4K = LongCmd.FLASH_READ_4K | 0x100  # how SimDevice.commands records long commands


def _stock(fixtures_dir, chip: str) -> bytes:
    return (fixtures_dir / "dumps" / DUMPS[chip]).read_bytes()


def _blank_block(flash: bytes, inside_run: bool = False) -> int:
    """A 64 KiB block of the dump that is entirely erased (above the bootloader); with `inside_run` one whose
    previous block is erased too (a read then tries the strong check first)."""
    def erased(b: int) -> bool:
        return flash[b : b + BLOCK] == b"\xff" * BLOCK

    return next(b for b in range(0x20000, len(flash), BLOCK) if erased(b) and (not inside_run or erased(b - BLOCK)))


def _data_block(flash: bytes) -> int:
    """A 64 KiB block of the application with no erased sector in it."""
    return next(b for b in range(0x20000, len(flash), BLOCK)
                if all(flash[a : a + SECTOR] != FF for a in range(b, b + BLOCK, SECTOR)))


def _colliding_sector() -> bytes:
    """A sector that is not erased but whose CRC-32 is that of an erased one: two small "records" (16 bits
    at byte 0x100, 17 at byte 0xC00) whose bits are chosen in the kernel of the linear CRC of the
    difference. Each record alone is a burst of <= 32 bits, so the kernel vector uses both."""
    positions = [0x100 * 8 + i for i in range(16)] + [0xC00 * 8 + i for i in range(17)]

    def lin(bits: list[int]) -> int:
        e = bytearray(SECTOR)
        for p in bits:
            e[p // 8] ^= 1 << (p % 8)
        return zlib.crc32(bytes(e)) ^ zlib.crc32(bytes(SECTOR))

    # Gaussian elimination over GF(2): find a non-empty set of positions whose CRC effects cancel.
    basis: dict[int, tuple[int, list[int]]] = {}
    for p in positions:
        v, combo = lin([p]), [p]
        while v:
            top = v.bit_length() - 1
            if top not in basis:
                basis[top] = (v, combo)
                break
            bv, bc = basis[top]
            v, combo = v ^ bv, sorted(set(combo) ^ set(bc))
        else:
            out = bytearray(FF)
            for q in combo:
                out[q // 8] ^= 1 << (q % 8)
            return bytes(out)
    raise AssertionError("no collision found")


def _session_events(url: str):
    events: list = []
    return Session(url, baud=921600, on_event=events.append), events


def _retries(events) -> list[Retry]:
    return [e for e in events if isinstance(e, Retry)]


def _states(events, state: SectorState) -> set[int]:
    return {e.addr for e in events if isinstance(e, SectorUpdate) and e.state is state}


@pytest.mark.parametrize("chip", CHIPS)
def test_fault_free_read_write_verify_move_no_retry_counter(chip, fixtures_dir, obk_images):
    stock = _stock(fixtures_dir, chip)
    ua = obk_images[chip]["ua"]
    with sim_url(chip, stock) as (url, dev):
        s, events = _session_events(url)
        with s:
            s.connect()
            assert s.read() == stock
            report = s.write(ua, 0x11000, backup_first=False)
            assert report.record.retries == 0
            assert bytes(dev.flash.data[0x11000 : 0x11000 + len(ua)]) == ua
            assert s.verify(bytes(dev.flash.data)).ok
    assert _retries(events) == []


@pytest.mark.parametrize("chip", CHIPS)
def test_erased_block_is_vouched_without_transfer(chip, fixtures_dir):
    stock = _stock(fixtures_dir, chip)
    blank = _blank_block(stock)
    n_blank = sum(stock[a : a + SECTOR] == FF for a in range(0, len(stock), SECTOR))
    with sim_url(chip, stock) as (url, dev):
        s, events = _session_events(url)
        with s:
            s.connect()
            before = dev.commands.count(READ_4K)
            assert s.read() == bytes(dev.flash.data)
            reads = dev.commands.count(READ_4K) - before
    vouched = _states(events, SectorState.BLANK)
    assert set(range(blank, blank + BLOCK, SECTOR)) <= vouched
    assert all(stock[a : a + SECTOR] == FF for a in vouched)
    # Every vouched sector stayed on the chip: the reads are exactly the sectors not vouched.
    assert reads == len(stock) // SECTOR - len(vouched)
    assert len(vouched) >= n_blank // 2  # most erased sectors are in whole erased blocks


def nearly_erased(stock: bytearray, damage: str, where: str) -> tuple[int, int]:
    """Damage one sector of an erased block of `stock` in place ("one byte", "one bit at the end", or "crc
    collision": it and its block then hash exactly like erased flash); returns (block, sector)."""
    blank = _blank_block(stock, inside_run=where == "inside a run")
    target = blank + 5 * SECTOR
    if damage == "one byte":
        stock[target + 0x7A3] = 0x5A
    elif damage == "one bit at the end":
        stock[target + SECTOR - 1] = 0x7F
    else:
        stock[target : target + SECTOR] = _colliding_sector()
        assert zlib.crc32(bytes(stock[target : target + SECTOR])) == blank_crc(SECTOR)  # the trap is real
        assert zlib.crc32(bytes(stock[blank : blank + BLOCK])) == blank_crc(BLOCK)
    return blank, target


@pytest.mark.parametrize("chip", CHIPS)
@pytest.mark.parametrize("damage", ["one byte", "one bit at the end", "crc collision"])
@pytest.mark.parametrize("where", ["run start", "inside a run"])
def test_nearly_erased_sector_is_transferred_not_vouched(chip, damage, where, fixtures_dir):
    stock = bytearray(_stock(fixtures_dir, chip))
    blank, target = nearly_erased(stock, damage, where)
    with sim_url(chip, bytes(stock)) as (url, dev):
        s, events = _session_events(url)
        with s:
            s.connect()
            data = s.read(blank - BLOCK, 2 * BLOCK)[BLOCK:]  # the block before decides which check goes first
            assert data == bytes(dev.flash.data[blank : blank + BLOCK]) == bytes(stock[blank : blank + BLOCK])
            assert target not in _states(events, SectorState.BLANK)
            # verify against an all-erased file must call that sector a difference
            report = s.verify(b"\xff" * BLOCK, blank)
            assert not report.ok and report.mismatched == [(target, target + SECTOR)]


def erase_when_read(dev, trigger: int, victim: int) -> list[bool]:
    """From now on the simulated chip's Read4K of `trigger` first erases the sector at `victim`, once (the
    flash changes under a backup); the list gets True when it has."""
    orig, fired = dev._long, []

    def hooked(code, p, t):
        addr = struct.unpack_from("<I", p)[0] % len(dev.flash.data) if code == LongCmd.FLASH_READ_4K else None
        if addr == trigger and not fired:
            fired.append(True)
            dev.flash.data[victim : victim + SECTOR] = FF
        orig(code, p, t)

    dev._long = hooked
    return fired


@pytest.mark.parametrize("chip", CHIPS)
@pytest.mark.parametrize("when", ["before its transfer", "after its transfer"])
def test_sector_erased_during_the_backup_is_never_saved_stale(chip, when, fixtures_dir):
    """The victim's group CRC is taken first, then its sectors cross. Erased before its own transfer, the
    transfer disagrees with the CRC taken before it: caught, read again, reported. Erased after its own
    transfer, the backup holds what the chip CRC vouched at that time, and verify names the change."""
    stock = _stock(fixtures_dir, chip)
    blk = _data_block(stock)
    victim = blk + 6 * SECTOR
    trigger = blk + (2 if when == "before its transfer" else 9) * SECTOR  # read of this sector erases the victim
    with sim_url(chip, stock) as (url, dev):
        fired = erase_when_read(dev, trigger, victim)
        s, events = _session_events(url)
        with s:
            s.connect()
            data = s.read()
            assert fired and stock[victim : victim + SECTOR] != FF
            if when == "before its transfer":
                assert data == bytes(dev.flash.data)  # judged against the flash as it is now
                assert _retries(events), "a change during the read must not pass silently"
                assert any(isinstance(e, Notice) and "changed during the read" in e.message for e in events)
            else:
                assert data == stock  # the content the chip's CRC vouched before the transfer
                assert s.verify(data).mismatched == [(victim, victim + SECTOR)]


@pytest.mark.parametrize("chip", CHIPS)
def test_crc_command_damaged_into_an_erased_range_is_caught(chip, fixtures_dir):
    """CheckCRC's reply carries no address: a command whose address was damaged on the line hashes another
    range. If that range is erased the first check says "erased"; the second check must catch it."""
    stock = _stock(fixtures_dir, chip)
    blank, data_blk = _blank_block(stock), _data_block(stock)
    with sim_url(chip, stock) as (url, dev):
        orig = dev._short
        damaged = []

        def hooked(code, p, t):
            if code == Cmd.CHECK_CRC and not damaged:
                start, end = struct.unpack_from("<II", p)
                if start % len(stock) == data_blk and end - start >= BLOCK - 1:
                    damaged.append(True)
                    shift = blank - data_blk
                    p = struct.pack("<II", start + shift, end + shift) + p[8:]
            orig(code, p, t)

        dev._short = hooked
        s, events = _session_events(url)
        with s:
            s.connect()
            assert s.read(data_blk, BLOCK) == stock[data_blk : data_blk + BLOCK]
    assert damaged
    assert not _states(events, SectorState.BLANK)
    assert any("not confirmed by the second check" in r.reason for r in _retries(events))


@pytest.mark.parametrize("chip", CHIPS)
def test_verify_vouches_erased_ranges_and_finds_a_written_one(chip, fixtures_dir):
    stock = bytearray(_stock(fixtures_dir, chip))
    blank = _blank_block(stock)
    with sim_url(chip, bytes(stock)) as (url, dev):
        s, events = _session_events(url)
        with s:
            s.connect()
            assert s.verify(bytes(stock)).ok
            assert set(range(blank, blank + BLOCK, SECTOR)) <= _states(events, SectorState.BLANK)
            assert s.verify(b"\xff" * 0x1800, blank).ok  # a file that ends inside a sector
            dev.flash.data[blank + 0x3000 + 17] = 0x00
            report = s.verify(bytes(stock))
            assert report.mismatched == [(blank + 0x3000, blank + 0x4000)]
            dev.flash.data[blank + 0x1700] = 0x7F
            assert s.verify(b"\xff" * 0x1800, blank).mismatched == [(blank + 0x1000, blank + 0x1800)]
