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
  a reply damaged into exactly the expected value (2^-32).
The strong check (`_vouch_blank`): CRCs over pieces cut in the middle of every sector, [s, s+2K),
[s+2K, s+6K), ..., [e-2K, e), each of which must be the CRC of that many 0xFF bytes. Each half of a
sector falls in a different piece, so content that reaches both halves of a sector (two records, one
record across the middle) must satisfy one independent 32-bit coincidence per piece it touches:
2^-64 or less. tests/test_blank_read.py forges a sector whose CRC and whose block's CRC are those of
erased flash; the pieces catch it. A read that found an erased-looking group by its CRC also asks the
pieces: a second command, so a forged group answer would have to be forged again 17 times.
What no CRC can buy: a difference that lies inside one piece and is itself a multiple of G passes
every CRC of every range that contains it, whatever the split. Only the bytes can rule that out, so
for a small non-erased record inside an otherwise erased half-sector the floor stays at 2^-32 (and
records of up to 4 bytes are always caught). Transferred sectors need no strong check: the bytes
themselves are the witness. `verify_flash` uses the pieces wherever the file is erased, and a single
CRC elsewhere (the 2^-32 figure above, as any CRC comparison).

Dialects: FULL (BK7231N BootROM) hashes to an inclusive end, the BASIC ones exclusive. Tuya/Beken
bootloaders re-protect the flash after every CheckCRC (PROTOCOL-DETAILS 5.2) and let the next erase
unprotect it only after a LinkCheck: reads and verifies, which erase nothing, hash without it and
re-link once at their end (`_hash`); a write must not program a sector after a CRC without an erase
first (`_program_block`).

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
READ_RETRIES = 20
WRITE_RETRIES = 3


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
) -> bytes:
    """Read [start, start+length) verified by chip CRC. `into` lets a resumed read fill a buffer.

    Per 64 KiB group (`_read_group`, module docstring): erased flash is vouched by the strong check
    (`_vouch_blank`) and never crosses the wire; everything else is transferred and must match a chip
    CRC taken before the transfer, else it is settled sector by sector (`_settle_group`)."""
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
                known = (known_crcs or {}).get(g_start) if g_end - g_start == BLOCK else None
                after_erased = _read_group(client, buf, start, g_start, g_end, sink, record, after_erased, known)
                record.mark_done(g_start, g_end)
                done_bytes += g_end - g_start
                sink(Progress(done_bytes, length))
    finally:
        _relink_after(client)
    return bytes(buf)


def blank_crc(n: int) -> int:
    """CRC-32 of n bytes of 0xFF (an erased range)."""
    c = _BLANK_CRCS.get(n)
    if c is None:
        c = _BLANK_CRCS[n] = zlib.crc32(b"\xff" * n)
    return c


_BLANK_CRCS: dict[int, int] = {SECTOR: CRC_FF_SECTOR}


def _chip_crc(client: BkClient, addr: int, n: int, sink: EventSink, record: OperationRecord) -> int:
    return _retrying(lambda: client.crc(addr, n), "crc", addr, sink, record, READ_RETRIES, client)


def _hash(client: BkClient, addr: int, n: int, sink: EventSink, record: OperationRecord) -> int:
    """Chip CRC for reads and verifies. BASIC bootloaders re-protect the flash after every CheckCRC and
    need a LinkCheck before the next erase, which client.crc sends each time; a read or a verify hashes
    many ranges in a row and erases nothing, so it re-links once at its end instead (`_relink_after`)."""
    def once() -> int:
        if client.dialect is None or not client.dialect.crc_locks_protection:
            return client.crc(addr, n)
        wire = client._wire(addr)
        return client.crc_raw(wire, wire + n)  # BASIC dialects hash to an exclusive end

    return _retrying(once, "crc", addr, sink, record, READ_RETRIES, client)


def _relink_after(client: BkClient) -> None:
    if client.dialect is not None and client.dialect.crc_locks_protection:
        try:
            client.relink()
        except ProtocolError:
            pass  # the chip is gone; the next operation finds out and says so


def _blank_pieces(s: int, e: int) -> list[tuple[int, int]]:
    """[s, e) cut at the middle of every 4 KiB sector it covers: each piece straddles a sector boundary,
    so no piece is a union of whole sectors (see the module docstring)."""
    cuts = [s]
    for a in range(s - s % SECTOR, e, SECTOR):
        lo, hi = max(a, s), min(a + SECTOR, e)
        if hi - lo >= 2:
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
        if _hash(client, a, b - a, sink, record) != blank_crc(b - a):
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
    if after_erased and known is None:
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
    for addr in sectors:
        data = _retrying(lambda a=addr: client.read_4k(a), "read", addr, sink, record, READ_RETRIES, client)
        buf[addr - base : addr - base + SECTOR] = data
        sink(SectorUpdate(addr, SectorState.READ))
    if zlib.crc32(buf[g_start - base : g_end - base]) == before:
        for addr in sectors:
            sink(SectorUpdate(addr, SectorState.VERIFIED))
    else:
        _settle_group(client, buf, base, g_start, g_end, sink, record)
    return _last_erased(buf, base, g_end)


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
) -> WriteReport:
    """Write `data` at `start` (4 KiB aligned), touching only sectors whose chip CRC differs.

    `repair(addr, size)` returns what belongs in a sector outside the write (from a backup); it is
    used when a command damaged on the line made the chip erase or program the wrong place."""
    if start % SECTOR:
        raise BkError("writes must start on a 4 KiB boundary")
    if len(data) % SECTOR:
        data = data + b"\xff" * (SECTOR - len(data) % SECTOR)
    length = len(data)
    record = record or OperationRecord("write", start, length)
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
    _repair_outside(client, start, start + length, record, sink, repair)
    sink(Stage("verify", "checking the whole range"))
    want = zlib.crc32(data)
    got = _retrying(lambda: client.crc(start, length), "crc", start, sink, record, READ_RETRIES, client)
    if got != want:
        if differential:
            sink(Notice("warning", "final CRC differs: rewriting every sector"))
            full = write_flash(client, start, data, sink, cancel, differential=False)
            full.full_rewrite = True
            return full
        raise CrcMismatch(start, length, want, got)
    return report


def _repair_outside(client: BkClient, start: int, end: int, record: OperationRecord, sink: EventSink,
                    repair: Callable[[int, int], bytes | None] | None) -> None:
    """Sectors outside [start, end) that a misdirected erase/program may have hit: put them back from
    the backup, or fail naming them. Inside the range the final CRC check covers everything."""
    sectors = sorted({a for s, e in record.damaged for a in range(s, e, SECTOR) if not start <= a < end})
    for addr in sectors:
        expected = repair(addr, SECTOR) if repair else None
        if expected is None:
            record.failed_at = addr
            raise OperationFailed(
                f"a command damaged on the line may have erased or overwritten sector 0x{addr:06X}, outside "
                "the write; restore it from a backup (`bkbench restore`)", record)
        got = _retrying(lambda a=addr: client.crc(a, SECTOR), "crc", addr, sink, record, READ_RETRIES, client)
        if got == zlib.crc32(expected):
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
        if known is not None:
            chip_crc: int | None = known
        else:
            chip_crc = _retrying(lambda: client.crc(g_start, g_end - g_start), "crc", g_start, sink, record,
                                 READ_RETRIES, client) if group_check else None
        if chip_crc == zlib.crc32(target):
            for addr in sectors:
                sink(SectorUpdate(addr, SectorState.SKIPPED))
            report.skipped += len(sectors)
            return
        changed = []
        for addr in sectors:
            want = zlib.crc32(data[addr - base : addr - base + SECTOR])
            got = _retrying(lambda a=addr: client.crc(a, SECTOR), "crc", addr, sink, record, READ_RETRIES,
                            client)
            if got == want:
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
    whole_ok = _chip_crc(client, g_start, g_end - g_start, sink, record) == want
    for addr in sectors:
        chunk = data[addr - base : addr - base + SECTOR]
        if whole_ok or _chip_crc(client, addr, SECTOR, sink, record) == zlib.crc32(chunk):
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
            got = client.crc(addr, SECTOR)
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

    def summary(self) -> str:
        if self.ok:
            return f"chip matches ({self.checked} bytes checked by CRC)"
        return "chip differs at " + ", ".join(f"0x{s:06X}-0x{e:06X}" for s, e in self.mismatched)


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
    record = record or OperationRecord("verify", start, len(data))
    sink(Stage("verify", f"comparing 0x{start:06X}-0x{start + len(data):06X} by CRC"))
    bad: list[tuple[int, int]] = []
    end = start + len(data)
    try:
        for g_start, g_end in _groups(start, end):
            _check_cancel(cancel, record)
            expect = data[g_start - start : g_end - start]
            blank = _is_blank(expect)
            if blank:
                same = _vouch_blank(client, g_start, g_end, sink, record)
            else:
                same = _hash(client, g_start, g_end - g_start, sink, record) == zlib.crc32(expect)
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
    finally:
        _relink_after(client)
    return VerifyReport(not bad, bad, len(data))


def _is_blank(chunk: bytes | bytearray) -> bool:
    return chunk.count(0xFF) == len(chunk)


def _verify_sector(client: BkClient, addr: int, expect: bytes, sink: EventSink, record: OperationRecord) -> bool:
    n = len(expect)
    if _is_blank(expect):
        ok = _vouch_blank(client, addr, addr + n, sink, record)
        if not ok:
            # Ask once more before calling it a difference: a CRC command damaged on the way in hashes
            # another range, and the same damage twice in a row is not plausible.
            record.retries += 1
            sink(Retry(addr, 1, "erased sector not confirmed by the strong check"))
            ok = _vouch_blank(client, addr, addr + n, sink, record)
        sink(SectorUpdate(addr, SectorState.BLANK if ok else SectorState.FAILED, n))
        return ok
    want = zlib.crc32(expect)
    c = _hash(client, addr, n, sink, record)
    if c != want:
        c = _confirmed_crc(client, addr, n, c, sink, record)
    sink(SectorUpdate(addr, SectorState.VERIFIED if c == want else SectorState.FAILED, n))
    return c == want
