"""Verified flash operations: read, write (differential), verify. No printing, no UI.

Read, blank-aware. Per 64 KiB group the chip's CRC comes first. A group whose CRC is that of 64 KiB
of 0xFF is an erased candidate: the strong check below vouches for it and it is recorded as erased
(SectorState.BLANK) without crossing the wire (35-48 % of the sectors in real stock dumps). Inside a
run of erased flash (the previous group ends erased) the strong check goes first and alone (its pieces
tile the group, so they imply the group CRC): erased flash is hashed once, and where the run ends the
rest of that group goes sector by sector (a CRC each, then the transfer or the halves). Any other
group is transferred and must match the CRC taken *before* the transfer. If it does not (data damaged
on the way, or the flash changed meanwhile, e.g. a sector erased during the backup) every sector is
compared with a fresh chip CRC and the differing ones are read again (or vouched as erased): nothing
is kept that a chip CRC did not vouch for, and a change during the read is reported, never silent.
A group with data that does not follow erased flash is transferred whole, erased tail and all: only
sector CRCs could tell its sectors apart, 15 more round trips for what is mostly a full group.

A backup asks its CRCs first (`survey_flash`): the chip's CRC of every 64 KiB block is its identity (does
the library hold it already?), and asked as the strong check from each block's start (the pieces, and
where they stop a CRC of the whole block, or inside a block a CRC per sector up to the next erased run)
it also holds everything the read needs: erased parts vouched, data parts with their chip CRC, taken
before the transfer (`_read_surveyed`). Every byte is hashed about once, where a block CRC pass and then
a read hashed erased flash twice, and a block's erased head never crosses. The same rules hold: erased
flash only by the strong check, every transfer matched against a chip CRC taken before it (settled
sector by sector, and the backup refused as changed, when it does not match), the block CRCs combined
from tied answers (`surveyed_crc`, CRC-32 is affine). An erased part is saved as the survey vouched it:
the block's identity and its content are the same answer.

How far a CRC-32 match can be trusted. The chip's CheckCRC is CRC-32/IEEE (zlib). For a fixed length
it is affine over GF(2): two contents of equal length share a CRC iff their difference e (as a
polynomial) is a multiple of the generator G, of degree 32. So:
- a difference of 1-3 bits anywhere in 4 KiB (checked: no 2- or 3-bit pattern that short is a
  multiple of G) or one burst of up to 32 bits (a sector that is 0xFF but for 1-4 adjacent bytes)
  is always detected;
- any other difference passes with probability about 2^-32 (2.3e-10) for content unrelated to G
  (code, encrypted app, config records): ~7e-8 per 2 MiB backup of ~300 non-blank sectors;
- structure is the trap: a sector whose e is a multiple of G also collides in every range made of
  whole sectors (block CRC, run CRC: x^k * e is a multiple too), so a second CRC on the same sector
  grid adds nothing against it;
- the line: CheckCRC's reply carries no address, so a damaged command hashes another range. One
  damaged address byte changes the range's length as well, and the CRC of n bytes of 0xFF differs
  for every n, so it cannot forge "erased"; that takes start and end damaged by the same offset, or
  a reply damaged into exactly the expected value (2^-32);
- the order: for the same reason a reply repeated, stale or late answers the next request. Every CRC
  here comes from core/ops/crc.py, which ties each answer to its request (its docstring has the
  argument); a difference verify reports is one the chip gave twice in a row (`_confirmed_crc`).
The strong check (`_vouch_blank`): CRCs over pieces cut once inside every sector (between 0x300 and
0xB00, `CUTS`), each of which must be the CRC of that many 0xFF bytes. The two sides of a cut fall in
different pieces, so content that reaches both (two records, one record across the cut) must satisfy
one independent 32-bit coincidence per piece it touches: 2^-64 or less. The cut moves from sector to
sector so that no two of any three pieces in a row have the same length: erased pieces of different
lengths have different CRCs, so the (erased) reply of the piece before, stale or copied late, is never
the answer the next piece needs. tests/test_blank_read.py forges a sector whose CRC and whose block's
CRC are those of erased flash; the pieces catch it. A read that found an erased-looking group by its
CRC also asks the pieces: a second command, so a forged group answer would have to be forged again 17
times. What no CRC can buy: a difference that lies inside one piece and is itself a multiple of G passes
every CRC of every range that contains it, whatever the split. Only the bytes can rule that out, so
for a small non-erased record inside an otherwise erased part of a sector the floor stays at 2^-32 (and
records of up to 4 bytes are always caught). Transferred sectors need no strong check: the bytes
themselves are the witness. `verify_flash` uses the pieces wherever the file is erased, and a single
CRC elsewhere (the 2^-32 figure above, as any CRC comparison).

Dialects: FULL (BK7231N BootROM) hashes to an inclusive end, the BASIC ones exclusive. Tuya/Beken
bootloaders re-protect the flash after every CheckCRC (PROTOCOL-DETAILS 5.2) and let the next erase
unprotect it only after a LinkCheck (1.0.4: only after a restart, REALCODE.md B.8): reads and verifies,
which erase nothing, hash without it and re-link once at their end (`_hash`); writes take every CRC first
and re-arm once before erasing (core/ops/planned.py).

Writes first ask the chip for the CRC of each target group and sector and touch only what differs
(erase-only for blank targets, 64 KiB erases for whole changed blocks), then verify by CRC. Every step
emits events; cancellation is honoured between groups and leaves an OperationRecord saying what was done.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from ..client import BkClient, MisdirectedCommand
from ..errors import BkError, CrcMismatch, FlashProtectedError, OperationCancelled, OperationFailed, ProtocolError
from ..layout import BLOCK, SECTOR
from .crc import GRAIN, READ_RETRIES, blank_crc, chip_crc, chip_crc_check, chip_crc_is, crc_combine

if TYPE_CHECKING:
    from ..backups import BackupEntry
from .events import (
    CancelToken,
    EventSink,
    Notice,
    OperationRecord,
    Progress,
    Retry,
    SectorState,
    SectorUpdate,
    Stage,
    null_sink,
)

CRC_FF_SECTOR = zlib.crc32(b"\xff" * SECTOR)
WRITE_RETRIES = 3
# Where the strong check cuts each sector, in 256-byte units, by the sector's place in its 64 KiB block:
# every cut between 0x300 and 0xB00 (so a record near either end of a sector and one in its middle fall
# in different pieces), and chosen so that no two of any three consecutive CheckCRCs of a vouch (pieces,
# and the sector or block CRC before and after) have the same length. Erased pieces of different lengths
# have different CRCs, so a stale or late reply of a neighbouring piece can never read as "erased"
# (core/ops/crc.py), and no piece needs splitting to be told apart from the one before.
CUTS = (3, 5, 3, 4, 11, 3, 7, 3, 11, 9, 3, 2, 4, 7, 2, 11)


def _check_cancel(cancel: CancelToken | None, record: OperationRecord) -> None:
    if cancel is not None and cancel.cancelled:
        raise OperationCancelled("cancelled", record=record, kind=record.kind)


def _groups(start: int, end: int, size: int = BLOCK) -> list[tuple[int, int]]:
    """Split [start, end) at `size`-aligned boundaries."""
    out = []
    pos = start
    while pos < end:
        nxt = min(end, (pos // size + 1) * size)
        out.append((pos, nxt))
        pos = nxt
    return out


def _retrying(fn, what: str, addr: int, sink: EventSink, record: OperationRecord, retries: int,
              client: BkClient):
    for attempt in range(retries + 1):
        try:
            return fn()
        except ProtocolError as exc:
            if isinstance(exc, MisdirectedCommand):
                record.damaged.append((exc.addr, exc.addr + exc.size))
            if attempt == retries:
                raise
            record.retries += 1
            sink(Retry(addr, attempt + 1, f"{what}: {exc}"))
            client.recover()


def _with_record(kind: str):
    """Turn any engine error inside an operation into OperationFailed carrying what is left to do."""

    def wrap(fn):
        def inner(client, start, *args, **kwargs):
            if kind == "verify" and not args[0]:
                raise BkError("nothing to verify: the data to compare with the chip is empty")
            record = kwargs.get("record")
            if record is None:
                length = args[0] if isinstance(args[0], int) else len(args[0])
                record = OperationRecord(kind, start, length if kind in ("read", "verify") else
                                         length + (-length) % SECTOR)
                kwargs["record"] = record
            try:
                return fn(client, start, *args, **kwargs)
            except (OperationFailed, OperationCancelled):
                raise
            except BkError as exc:
                raise OperationFailed(f"{kind} stopped: {exc}", record) from exc

        inner.__name__ = fn.__name__
        inner.__doc__ = fn.__doc__
        return inner

    return wrap


@_with_record("read")
def read_flash(
    client: BkClient,
    start: int,
    length: int,
    sink: EventSink = null_sink,
    cancel: CancelToken | None = None,
    record: OperationRecord | None = None,
    into: bytearray | None = None,
    known_crcs: dict[int, int] | None = None,
    survey: dict[int, list[Surveyed]] | None = None,
) -> bytes:
    """Read [start, start+length) verified by chip CRC. `into` lets a resumed read fill a buffer.

    Per 64 KiB group (`_read_group`, module docstring): erased flash is vouched by the strong check
    (`_vouch_blank`) and never crosses the wire; everything else is transferred and must match a chip
    CRC taken before the transfer, else it is settled sector by sector (`_settle_group`). A group in
    `survey` (`survey_flash`, taken just before) asks no CRC: its parts are vouched or matched as surveyed."""
    if start % SECTOR or length % SECTOR:
        raise BkError("reads must start and end on a 4 KiB boundary")
    record = record or OperationRecord("read", start, length)
    buf = into if into is not None else bytearray(length)
    sink(Stage("read", f"reading 0x{start:06X}-0x{start + length:06X}"))
    done_bytes = sum(e - s for s, e in record.done)
    try:
        for seg_start, seg_end in record.remaining():
            after_erased = False
            for g_start, g_end in _groups(seg_start, seg_end):
                _check_cancel(cancel, record)
                parts = (survey or {}).get(g_start)
                if parts is not None and (parts[0].start, parts[-1].end) == (g_start, g_end):
                    after_erased = _read_surveyed(client, buf, start, parts, sink, record)
                else:
                    known = (known_crcs or {}).get(g_start) if g_end - g_start == BLOCK else None
                    after_erased = _read_group(client, buf, start, g_start, g_end, sink, record, after_erased,
                                               known)
                record.mark_done(g_start, g_end)
                done_bytes += g_end - g_start
                sink(Progress(done_bytes, length))
    finally:
        _relink_after(client)
    return bytes(buf)


def _hash(client: BkClient, addr: int, n: int, sink: EventSink, record: OperationRecord) -> int:
    """Chip CRC for reads and verifies, tied to its request (core/ops/crc.py). BASIC bootloaders
    re-protect the flash after every CheckCRC and need a LinkCheck before the next erase; a read or a
    verify hashes many ranges in a row and erases nothing, so it re-links once at its end instead
    (`_relink_after`)."""
    return chip_crc(client, addr, n, sink, record, relink=False)


def _hash_is(client: BkClient, addr: int, n: int, want: int, sink: EventSink, record: OperationRecord) -> bool:
    """`_hash(...) == want`, shown by an answer tied to this request."""
    return chip_crc_is(client, addr, n, want, sink, record, relink=False)


def _hash_check(client: BkClient, addr: int, n: int, want: int, sink: EventSink, record: OperationRecord) -> int:
    """`_hash` where only `want` must be tied to the request (a difference is confirmed by `_confirmed_crc`)."""
    return chip_crc_check(client, addr, n, want, sink, record, relink=False)


def _relink_after(client: BkClient) -> None:
    if client.dialect is not None and client.dialect.crc_locks_protection:
        try:
            client.relink()
        except ProtocolError:
            pass  # the chip is gone; the next operation finds out and says so


def _blank_pieces(s: int, e: int) -> list[tuple[int, int]]:
    """[s, e) cut inside every 4 KiB sector it covers (at CUTS): each piece straddles a sector boundary,
    so no piece is a union of whole sectors (see the module docstring)."""
    cuts = [s]
    for a in range(s - s % SECTOR, e, SECTOR):
        lo, hi = max(a, s), min(a + SECTOR, e)
        cut = a + CUTS[(a // SECTOR) % len(CUTS)] * 0x100
        if lo < cut < hi:
            cuts.append(cut)
        elif hi - lo >= 2:
            cuts.append(lo + (hi - lo) // 2)
    cuts.append(e)
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


def _vouch_blank(client: BkClient, s: int, e: int, sink: EventSink, record: OperationRecord) -> bool:
    """The strong check that [s, e) is erased: CRCs over pieces cut inside every sector, each of which
    must be the CRC of that many 0xFF bytes."""
    return _vouched_prefix(client, s, e, sink, record) == e


def _vouched_prefix(client: BkClient, s: int, e: int, sink: EventSink, record: OperationRecord) -> int:
    """The strong check piece by piece, stopping at the first piece that is not erased: returns where
    the sectors it vouched for end (e: all of them). A failing piece starts inside the sector it spoils."""
    for a, b in _blank_pieces(s, e):
        if not _hash_is(client, a, b - a, blank_crc(b - a), sink, record):
            return max(s, a - a % SECTOR)
    return e


def _mark_blank(buf: bytearray, base: int, s: int, e: int, sink: EventSink) -> None:
    buf[s - base : e - base] = b"\xff" * (e - s)
    for addr in range(s, e, SECTOR):
        sink(SectorUpdate(addr, SectorState.BLANK))


def _read_group(client: BkClient, buf: bytearray, base: int, g_start: int, g_end: int, sink: EventSink,
                record: OperationRecord, after_erased: bool = False, known: int | None = None) -> bool:
    """Read one group; returns whether its last sector is erased (the next group then likely starts so).
    `known`: the chip's CRC of this group taken just before (the session's block CRCs), saving a hash."""
    sectors = range(g_start, g_end, SECTOR)
    if after_erased:
        # Next to erased flash the strong check goes first and alone: its pieces tile the group, so
        # they imply the group CRC and erased flash is hashed once. Where it stops (the erased run
        # ends) the rest of the group goes sector by sector: a CRC each, then the transfer.
        upto = _vouched_prefix(client, g_start, g_end, sink, record)
        _mark_blank(buf, base, g_start, upto, sink)
        for addr in range(upto, g_end, SECTOR):
            _read_sector(client, buf, base, addr, sink, record)
        return _last_erased(buf, base, g_end)
    before = known if known is not None else _hash(client, g_start, g_end - g_start, sink, record)
    if before == blank_crc(g_end - g_start):
        if _vouch_blank(client, g_start, g_end, sink, record):
            _mark_blank(buf, base, g_start, g_end, sink)
            return True
        # A CRC command damaged on the line, or a sector whose CRC collides with an erased one: look
        # at each sector on its own (transferring any the strong check does not vouch for).
        record.retries += 1
        sink(Retry(g_start, 1, "erased-looking range not confirmed by the second check"))
        for addr in sectors:
            _read_sector(client, buf, base, addr, sink, record)
        return _last_erased(buf, base, g_end)
    _transfer_matched(client, buf, base, g_start, g_end, before, sink, record)
    return _last_erased(buf, base, g_end)


def _transfer_matched(client: BkClient, buf: bytearray, base: int, start: int, end: int, crc: int,
                      sink: EventSink, record: OperationRecord) -> None:
    """Every sector of [start, end) across the wire, then matched against `crc`, the chip's CRC of the range
    taken before the transfer; settled sector by sector (`_settle_group`) when it does not match."""
    for addr in range(start, end, SECTOR):
        data = _retrying(lambda a=addr: client.read_4k(a), "read", addr, sink, record, READ_RETRIES, client)
        buf[addr - base : addr - base + SECTOR] = data
        sink(SectorUpdate(addr, SectorState.READ))
    if zlib.crc32(buf[start - base : end - base]) == crc:
        for addr in range(start, end, SECTOR):
            sink(SectorUpdate(addr, SectorState.VERIFIED))
    else:
        _settle_group(client, buf, base, start, end, sink, record)


@dataclass(frozen=True)
class Surveyed:
    """Part of a group as `survey_flash` found it: erased (`crc` None: vouched by the strong check) or
    holding data whose chip CRC is `crc` (the transfer must match it)."""

    start: int
    end: int
    crc: int | None


def surveyed_crc(parts: list[Surveyed]) -> int:
    """The chip's CRC of the whole group, from its parts (CRC-32 is affine: `crc_combine`)."""
    out = 0
    for p in parts:
        n = p.end - p.start
        out = crc_combine(out, blank_crc(n) if p.crc is None else p.crc, n)
    return out


def survey_flash(client: BkClient, size: int, sink: EventSink = null_sink, cancel: CancelToken | None = None,
                 cancelled: str = "cancelled", record: OperationRecord | None = None,
                 plan: dict[int, list[Surveyed]] | None = None) -> tuple[list[int], dict[int, list[Surveyed]]]:
    """The chip's CRC of every 64 KiB block, asked so that a read right after needs no further CRC: each
    block's erased parts as the strong check's pieces, its data as one CRC (a sector CRC inside an erased
    run). Every byte is hashed about once, where a block CRC pass and then a read hash erased flash twice
    (the block CRC, then the pieces). Returns the block CRCs (combined from the parts) and the parts.
    `record` and `plan` continue a survey that stopped (the chip was lost): the blocks done are not asked again."""
    record = record or OperationRecord("survey", 0, size)
    plan = {} if plan is None else plan
    try:
        for seg_start, seg_end in record.remaining():
            for g_start, g_end in _groups(seg_start, seg_end):
                if cancel is not None and cancel.cancelled:
                    raise OperationCancelled(cancelled)
                plan[g_start] = _survey_group(client, g_start, g_end, sink, record)
                record.mark_done(g_start, g_end)
    finally:
        _relink_after(client)
    return [surveyed_crc(plan[g]) for g in sorted(plan)], plan


def _survey_group(client: BkClient, g_start: int, g_end: int, sink: EventSink,
                  record: OperationRecord) -> list[Surveyed]:
    """One group: the strong check from its start (a data block fails at its first piece, a few hundred
    bytes hashed twice); where an erased run ends inside the group, a CRC per sector up to the next
    erased run (what the read did after erased flash, `_read_group`)."""
    parts: list[Surveyed] = []
    pos = g_start
    while pos < g_end:
        upto = _vouched_prefix(client, pos, g_end, sink, record)
        if upto > pos:
            parts.append(Surveyed(pos, upto, None))
        if upto == g_end:
            break
        if upto == g_start:
            # Data from the group's start: one CRC, the group transferred whole (module docstring).
            return [Surveyed(g_start, g_end, _hash(client, g_start, g_end - g_start, sink, record))]
        # The piece that failed starts in this sector and may end in the next one: this sector's own CRC,
        # and the strong check on it alone if that says erased (else it is transferred, `_read_sector`).
        crc = _hash(client, upto, SECTOR, sink, record)
        blank = crc == CRC_FF_SECTOR and _vouch_blank(client, upto, upto + SECTOR, sink, record)
        parts.append(Surveyed(upto, upto + SECTOR, None if blank else crc))
        pos = upto + SECTOR
    return parts


def _read_surveyed(client: BkClient, buf: bytearray, base: int, parts: list[Surveyed], sink: EventSink,
                   record: OperationRecord) -> bool:
    """A group as `survey_flash` found it: erased parts marked (the strong check vouched them), the others
    transferred and matched against their chip CRC, taken before the transfer; settled sector by sector
    (`_settle_group`) when they do not match."""
    for part in parts:
        if part.crc is None:
            _mark_blank(buf, base, part.start, part.end, sink)
            continue
        _transfer_matched(client, buf, base, part.start, part.end, part.crc, sink, record)
    return _last_erased(buf, base, parts[-1].end)


def _last_erased(buf: bytearray, base: int, g_end: int) -> bool:
    return _is_blank(buf[g_end - SECTOR - base : g_end - base])


def _settle_group(client: BkClient, buf: bytearray, base: int, g_start: int, g_end: int, sink: EventSink,
                  record: OperationRecord) -> None:
    """The transferred group does not match the CRC taken before: data damaged on the way, or the flash
    changed meanwhile. Every sector is checked against a fresh chip CRC and read again where it differs."""
    redone = 0
    for addr in range(g_start, g_end, SECTOR):
        chunk = buf[addr - base : addr - base + SECTOR]
        now = _hash(client, addr, SECTOR, sink, record)
        if now == zlib.crc32(chunk):
            sink(SectorUpdate(addr, SectorState.VERIFIED))
            continue
        redone += 1
        record.retries += 1
        sink(Retry(addr, 1, "read data failed its CRC check"))
        _read_sector(client, buf, base, addr, sink, record, now)
    if not redone:
        # Every sector matches its chip CRC now, but the group did not match the CRC taken before the
        # transfer: the chip's content changed during the backup. The backup holds what is there now.
        record.retries += 1
        sink(Retry(g_start, 1, "the flash changed during the read"))
        sink(Notice("warning", f"flash at 0x{g_start:06X}-0x{g_end:06X} changed during the read; the backup "
                               "holds its content as it is now"))


def _read_sector(client: BkClient, buf: bytearray, base: int, addr: int, sink: EventSink, record: OperationRecord,
                 known: int | None = None) -> None:
    """One sector against a chip CRC taken before its transfer; an erased one vouched without transfer."""
    got = want = 0
    for attempt in range(READ_RETRIES + 1):
        want = known if known is not None and attempt == 0 else _hash(client, addr, SECTOR, sink, record)
        if want == CRC_FF_SECTOR and _vouch_blank(client, addr, addr + SECTOR, sink, record):
            _mark_blank(buf, base, addr, addr + SECTOR, sink)
            return
        data = _retrying(lambda: client.read_4k(addr), "read", addr, sink, record, READ_RETRIES, client)
        got = zlib.crc32(data)
        if got == want:
            buf[addr - base : addr - base + SECTOR] = data
            sink(SectorUpdate(addr, SectorState.VERIFIED))
            return
        if attempt < READ_RETRIES:
            record.retries += 1
            sink(Retry(addr, attempt + 1, "read data failed its CRC check"))
    sink(SectorUpdate(addr, SectorState.FAILED))
    record.failed_at = addr
    raise CrcMismatch(addr, SECTOR, want, got)


@dataclass
class WriteReport:
    written: int = 0
    skipped: int = 0
    erased_only: int = 0
    full_rewrite: bool = False
    record: OperationRecord | None = None
    backup: BackupEntry | None = None  # the backup taken first by this write (None: one covered the chip)
    changed: list[tuple[int, int]] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.written} sectors written, {self.erased_only} erased only, {self.skipped} already "
                f"identical")


@_with_record("write")
def write_flash(
    client: BkClient,
    start: int,
    data: bytes,
    sink: EventSink = null_sink,
    cancel: CancelToken | None = None,
    differential: bool = True,
    record: OperationRecord | None = None,
    repair: Callable[[int, int], bytes | None] | None = None,
    known_crcs: dict[int, int] | None = None,
    guarded: bool = False,
) -> WriteReport:
    """Write `data` at `start` (4 KiB aligned), touching only sectors whose chip CRC differs.

    `repair(addr, size)` returns what belongs in a sector outside the write (from a backup); it is
    used when a command damaged on the line made the chip erase or program the wrong place. `guarded`:
    the caller compares everything outside the write with CRCs taken before it, after any retry
    (Session's FlashGuard), so a suspect sector that `repair` cannot vouch for is left to that check
    instead of failing a write that may have hit nothing."""
    if start % SECTOR:
        raise BkError("writes must start on a 4 KiB boundary")
    if len(data) % SECTOR:
        data = data + b"\xff" * (SECTOR - len(data) % SECTOR)
    length = len(data)
    record = record or OperationRecord("write", start, length)
    if client.dialect is not None and client.dialect.crc_locks_protection:
        from .planned import write_planned  # every CRC first, then the erases (issue 19 item 4)

        return write_planned(client, start, data, sink, cancel, differential, record, repair, known_crcs, guarded)
    report = WriteReport(record=record)
    retries_before = record.retries
    sink(Stage("unprotect", _retrying(client.unprotect, "unprotect", start, sink, record, WRITE_RETRIES, client)))
    sink(Stage("write", f"writing 0x{start:06X}-0x{start + length:06X}"))
    done_bytes = sum(e - s for s, e in record.done)
    for seg_start, seg_end in record.remaining():
        for g_start, g_end in _groups(seg_start, seg_end):
            _check_cancel(cancel, record)
            # After a group that changed, the next one most likely changes too (a new image over an old
            # one): skip its group CRC and go straight to per-sector CRCs, saving one hash pass.
            group_check = not report.changed or report.changed[-1][1] < g_start
            known = (known_crcs or {}).get(g_start) if g_end - g_start == BLOCK else None
            # The block differs (known CRC) and the one before changed in every sector: a new image over
            # an old one, so skip the per-sector CRCs and rewrite the block (each sector is still verified).
            prev = (g_start - BLOCK, g_start)
            prev_full = sum(1 for a, _ in report.changed if prev[0] <= a < prev[1]) == BLOCK // SECTOR
            assume = known is not None and prev_full and known != zlib.crc32(
                data[g_start - start : g_end - start])
            _write_group(client, start, data, g_start, g_end, sink, record, report, differential, group_check,
                         known, assume)
            record.mark_done(g_start, g_end)
            done_bytes += g_end - g_start
            sink(Progress(done_bytes, length))
    if record.retries == retries_before and not record.remaining() and not record.damaged:
        # Every sector was checked by chip CRC in this pass and every exchange was clean (no retry), so
        # no command can have hit a wrong address: a second hash of the whole range would add nothing.
        # (A resumed write starts a new pass: damage noted before the chip was lost still counts.)
        sink(Stage("verify", "every sector verified by CRC"))
        return report
    _repair_outside(client, start, start + length, record, sink, repair, guarded)
    sink(Stage("verify", "checking the whole range"))
    want = zlib.crc32(data)
    got = chip_crc(client, start, length, sink, record)
    if got != want:
        if differential:
            sink(Notice("warning", "final CRC differs: rewriting every sector"))
            full = write_flash(client, start, data, sink, cancel, differential=False)
            full.full_rewrite = True
            return full
        raise CrcMismatch(start, length, want, got)
    return report


def repair_with_spans(repair: Callable[[int, int], bytes | None] | None, spans: list[tuple[int, bytes]]
                      ) -> Callable[[int, int], bytes | None]:
    """What a sector hit by a damaged command must hold once the operation is done: the data of the span of
    this operation that covers it (a stale echo of an earlier span's erase names a sector there), else what
    `repair` (this chip's backup) says. Putting a backup's old content into a span already written would
    undo the write and still pass every check."""
    def inner(addr: int, size: int) -> bytes | None:
        for start, data in spans:
            if start <= addr and addr + size <= start + len(data) + (-len(data)) % SECTOR:
                chunk = data[addr - start : addr - start + size]
                return chunk + b"\xff" * (size - len(chunk))
        return repair(addr, size) if repair is not None else None

    return inner


def _repair_outside(client: BkClient, start: int, end: int, record: OperationRecord, sink: EventSink,
                    repair: Callable[[int, int], bytes | None] | None, guarded: bool = False) -> None:
    """Sectors outside [start, end) that a misdirected erase/program may have hit: put them back from
    the backup, or fail naming them (`guarded`: leave those the backup cannot vouch for to the caller's
    check outside the write). Inside the range the final CRC check covers everything."""
    sectors = sorted({a for s, e in record.damaged for a in range(s, e, SECTOR) if not start <= a < end})
    for addr in sectors:
        expected = repair(addr, SECTOR) if repair else None
        if expected is None and guarded:
            continue  # the guard compares its region with the CRC taken before the write
        if expected is None:
            record.failed_at = addr
            raise OperationFailed(
                f"a command damaged on the line may have erased or overwritten sector 0x{addr:06X}, outside "
                "the write; restore it from a backup (`bkbench restore`)", record)
        if chip_crc_is(client, addr, SECTOR, zlib.crc32(expected), sink, record):
            continue  # only the reply was damaged: the sector is intact
        sink(Notice("warning", f"sector 0x{addr:06X} was hit by a damaged command: restoring it from the backup"))
        _write_sector(client, addr, expected, sink, record, WriteReport(), erased=False)
    record.damaged = [(s, e) for s, e in record.damaged if start <= s < end]


def _write_group(client: BkClient, base: int, data: bytes, g_start: int, g_end: int, sink: EventSink,
                 record: OperationRecord, report: WriteReport, differential: bool, group_check: bool = True,
                 known: int | None = None, assume_changed: bool = False) -> None:
    """`known`: the chip's CRC of this whole block taken before the write (no hash needed to skip it);
    `assume_changed`: write every sector without asking for per-sector CRCs first."""
    target = data[g_start - base : g_end - base]
    sectors = list(range(g_start, g_end, SECTOR))
    if differential and not assume_changed:
        want = zlib.crc32(target)
        if known is not None:
            same = known == want
        else:
            same = group_check and chip_crc_is(client, g_start, g_end - g_start, want, sink, record)
        if same:
            for addr in sectors:
                sink(SectorUpdate(addr, SectorState.SKIPPED))
            report.skipped += len(sectors)
            return
        changed = []
        for addr in sectors:
            want = zlib.crc32(data[addr - base : addr - base + SECTOR])
            if chip_crc_is(client, addr, SECTOR, want, sink, record):
                sink(SectorUpdate(addr, SectorState.SKIPPED))
                report.skipped += 1
            else:
                changed.append(addr)
    else:
        changed = sectors
    whole_block = g_start % BLOCK == 0 and g_end - g_start == BLOCK and len(changed) == len(sectors)
    if whole_block:
        _retrying(lambda: client.erase(g_start, BLOCK), "erase", g_start, sink, record, WRITE_RETRIES, client)
        for addr in sectors:
            sink(SectorUpdate(addr, SectorState.ERASED))
        if client.dialect is not None and client.dialect.crc_locks_protection:
            _program_block(client, base, data, g_start, g_end, sink, record, report)
            return
    for addr in changed:
        _write_sector(client, addr, data[addr - base : addr - base + SECTOR], sink, record, report,
                      erased=whole_block)
        report.changed.append((addr, addr + SECTOR))
        record.mark_done(addr, addr + SECTOR)  # verified: a resumed write starts after it


def _program_block(client: BkClient, base: int, data: bytes, g_start: int, g_end: int, sink: EventSink,
                   record: OperationRecord, report: WriteReport) -> None:
    """A freshly erased 64 KiB block on a bootloader that re-protects the flash after every CheckCRC:
    program every sector first, then check (a CRC between two programs would turn the second into a
    silent no-op, PROTOCOL-DETAILS 5.2). A sector that fails its check is erased and written again."""
    sectors = range(g_start, g_end, SECTOR)
    for addr in sectors:
        chunk = data[addr - base : addr - base + SECTOR]
        if not _is_blank(chunk):
            _retrying(lambda a=addr, c=chunk: client.write_4k(a, c), "write", addr, sink, record, WRITE_RETRIES,
                      client)
            sink(SectorUpdate(addr, SectorState.WRITTEN))
    want = zlib.crc32(data[g_start - base : g_end - base])
    whole_ok = chip_crc_is(client, g_start, g_end - g_start, want, sink, record)
    for addr in sectors:
        chunk = data[addr - base : addr - base + SECTOR]
        if whole_ok or chip_crc_is(client, addr, SECTOR, zlib.crc32(chunk), sink, record):
            blank = _is_blank(chunk)
            sink(SectorUpdate(addr, SectorState.ERASED if blank else SectorState.VERIFIED))
            if blank:
                report.erased_only += 1
            else:
                report.written += 1
        else:
            record.retries += 1
            sink(Retry(addr, 1, "written data failed its CRC check"))
            _write_sector(client, addr, chunk, sink, record, report, erased=False)
        report.changed.append((addr, addr + SECTOR))
        record.mark_done(addr, addr + SECTOR)


def _write_sector(client: BkClient, addr: int, chunk: bytes, sink: EventSink, record: OperationRecord,
                  report: WriteReport, erased: bool) -> None:
    want = zlib.crc32(chunk)
    blank = chunk == b"\xff" * SECTOR
    for attempt in range(WRITE_RETRIES + 1):
        step = "erase"
        try:
            if not erased or attempt:
                client.erase(addr, SECTOR)
                sink(SectorUpdate(addr, SectorState.ERASED))
            if not blank:
                step = "write"
                client.write_4k(addr, chunk)
                sink(SectorUpdate(addr, SectorState.WRITTEN))
            step = "crc"
            got = chip_crc(client, addr, SECTOR, sink, record, retries=0)
        except ProtocolError as exc:
            if isinstance(exc, MisdirectedCommand):
                record.damaged.append((exc.addr, exc.addr + exc.size))
            elif step == "write":
                # No clean reply: a damaged length field may have made the chip take the bytes that
                # followed as data and program past the sector's end: check the next one afterwards.
                record.damaged.append((addr + SECTOR, addr + 2 * SECTOR))
            if attempt == WRITE_RETRIES:
                sink(SectorUpdate(addr, SectorState.FAILED))
                record.failed_at = addr
                raise OperationFailed(f"writing 0x{addr:06X} failed: {exc}", record) from exc
            record.retries += 1
            sink(Retry(addr, attempt + 1, str(exc)))
            client.recover()
            continue
        if got == want:
            sink(SectorUpdate(addr, SectorState.VERIFIED if not blank else SectorState.ERASED))
            if blank:
                report.erased_only += 1
            else:
                report.written += 1
            return
        if attempt == WRITE_RETRIES:
            sink(SectorUpdate(addr, SectorState.FAILED))
            record.failed_at = addr
            if got != CRC_FF_SECTOR and blank:
                raise FlashProtectedError(f"erase at 0x{addr:06X} had no effect: the flash is write-protected")
            raise OperationFailed(f"sector 0x{addr:06X} does not verify after {WRITE_RETRIES} retries", record)
        record.retries += 1
        sink(Retry(addr, attempt + 1, "written data failed its CRC check"))


@dataclass
class VerifyReport:
    ok: bool
    mismatched: list[tuple[int, int]]
    checked: int

    def summary(self, limit: int = 6) -> str:
        """One line: a match, or how much differs and where (the first `limit` ranges)."""
        if self.ok:
            return f"chip matches ({self.checked} bytes checked by CRC)"
        sectors = sum(-(-(e - s) // SECTOR) for s, e in self.mismatched)
        where = ", ".join(f"0x{s:06X}-0x{e:06X}" for s, e in self.mismatched[:limit])
        more = f" (+{len(self.mismatched) - limit} more ranges)" if len(self.mismatched) > limit else ""
        return (f"chip differs in {sectors} sector{'s' if sectors != 1 else ''} of {self.checked // 1024} KiB "
                f"checked, at {where}{more}")


def _confirmed_crc(client: BkClient, addr: int, n: int, first: int, sink: EventSink,
                   record: OperationRecord) -> int:
    """A CRC the chip gives twice in a row: a command damaged on the way in makes the chip hash another
    range once, and verify must not report that as a difference."""
    prev = first
    for attempt in range(READ_RETRIES):
        again = _hash(client, addr, n, sink, record)
        if again == prev:
            return again
        record.retries += 1
        sink(Retry(addr, attempt + 1, "the chip gave two different CRCs for the same range"))
        prev = again
    raise ProtocolError(f"the chip never gave the same CRC twice for 0x{addr:06X}+0x{n:X}")


@_with_record("verify")
def verify_flash(client: BkClient, start: int, data: bytes, sink: EventSink = null_sink,
                 cancel: CancelToken | None = None, record: OperationRecord | None = None) -> VerifyReport:
    """Compare the chip with `data` by CRC: per 64 KiB group, then per sector where a group differs.
    Where `data` is erased the pieces of the strong check stand in for the group CRC (module docstring)."""
    if start % SECTOR:
        raise BkError("verify must start on a 4 KiB boundary")
    if not data:
        raise BkError("nothing to verify: the data to compare with the chip is empty")
    record = record or OperationRecord("verify", start, len(data))
    sink(Stage("verify", f"comparing 0x{start:06X}-0x{start + len(data):06X} by CRC"))
    bad: list[tuple[int, int]] = []
    end = start + len(data)
    # BASIC bootloaders hash whole 256-byte blocks only (REALCODE.md B.2): a tail shorter than that is compared
    # by bytes, read back and vouched for by the chip's CRC of its block (`_verify_tail`).
    tail = len(data) % GRAIN if client.dialect is not None and client.dialect.crc_locks_protection else 0
    try:
        for g_start, g_end in _groups(start, end - tail):
            _check_cancel(cancel, record)
            expect = data[g_start - start : g_end - start]
            blank = _is_blank(expect)
            if blank:
                same = _vouch_blank(client, g_start, g_end, sink, record)
            else:
                same = _hash_is(client, g_start, g_end - g_start, zlib.crc32(expect), sink, record)
            if same:
                for addr in range(g_start, g_end, SECTOR):
                    sink(SectorUpdate(addr, SectorState.BLANK if blank else SectorState.VERIFIED,
                                      min(SECTOR, g_end - addr)))
            else:
                for addr in range(g_start, g_end, SECTOR):
                    n = min(SECTOR, g_end - addr)
                    if _verify_sector(client, addr, data[addr - start : addr - start + n], sink, record):
                        continue
                    if bad and bad[-1][1] == addr:
                        bad[-1] = (bad[-1][0], addr + n)
                    else:
                        bad.append((addr, addr + n))
            record.mark_done(g_start, g_end)
            sink(Progress(g_end - start, len(data)))
        if tail:
            if _verify_tail(client, end - tail, data[-tail:], sink, record):
                pass
            elif bad and bad[-1][1] == end - tail:
                bad[-1] = (bad[-1][0], end)
            else:
                bad.append((end - tail, end))
            record.mark_done(end - tail, end)
            sink(Progress(len(data), len(data)))
    finally:
        _relink_after(client)
    return VerifyReport(not bad, bad, len(data))


def _verify_tail(client: BkClient, at: int, expect: bytes, sink: EventSink, record: OperationRecord) -> bool:
    """Whether the flash at `at` (256-aligned) holds `expect` (shorter than 256 bytes): the sector is read and
    the 256 bytes from `at` must have the chip's CRC of that block (Read4K carries none), then compared."""
    sector = at - at % SECTOR
    for attempt in range(READ_RETRIES):
        got = _retrying(lambda: client.read_4k(sector), "read", sector, sink, record, READ_RETRIES, client)
        block = got[at - sector : at - sector + GRAIN]
        if _hash_is(client, at, GRAIN, zlib.crc32(block), sink, record):
            ok = block[: len(expect)] == expect
            if not ok or at == sector:  # the tail's own bytes: what a compare reports as different
                sink(SectorUpdate(at, SectorState.VERIFIED if ok else SectorState.FAILED, len(expect)))
            return ok
        record.retries += 1
        sink(Retry(at, attempt + 1, "read data failed its CRC check"))
    raise ProtocolError(f"the bytes read at 0x{at:06X} never matched the chip's CRC of them")


def _is_blank(chunk: bytes | bytearray) -> bool:
    return chunk.count(0xFF) == len(chunk)


def _verify_sector(client: BkClient, addr: int, expect: bytes, sink: EventSink, record: OperationRecord) -> bool:
    """Whether the sector holds `expect`. A difference counts only once the chip gave the same CRC twice in
    a row (`_confirmed_crc`): a CRC command damaged on the way in hashes another range once, which is line
    trouble (a Retry), never a difference; a real difference is reported as one, without a Retry."""
    n = len(expect)
    blank = _is_blank(expect)
    pieces = _blank_pieces(addr, addr + n) if blank else [(addr, addr + n)]
    ok = True
    for a, b in pieces:
        want = blank_crc(b - a) if blank else zlib.crc32(expect)
        c = _hash_check(client, a, b - a, want, sink, record)
        if c != want and _confirmed_crc(client, a, b - a, c, sink, record) != want:
            ok = False
            break
    sink(SectorUpdate(addr, (SectorState.BLANK if blank else SectorState.VERIFIED) if ok else SectorState.FAILED, n))
    return ok
