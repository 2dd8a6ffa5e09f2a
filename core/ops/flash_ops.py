"""Verified flash operations: read, write (differential), verify. No printing, no UI.

Reads go sector by sector and are verified by one chip CRC per 64 KiB group; a mismatching group
is narrowed down to its sectors, which are read again. Writes first ask the chip for the CRC of
each target group and sector and touch only what differs (erase-only for blank targets, 64 KiB
erases for whole changed blocks), then verify by CRC. Every step emits events; cancellation is
honoured between sectors and leaves an OperationRecord saying what was done.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Callable

from ..client import BkClient, MisdirectedCommand
from ..errors import BkError, CrcMismatch, FlashProtectedError, OperationCancelled, ProtocolError
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

SECTOR = 0x1000
BLOCK = 0x10000
CRC_FF_SECTOR = zlib.crc32(b"\xff" * SECTOR)
READ_RETRIES = 20
WRITE_RETRIES = 3


class OperationFailed(BkError):
    def __init__(self, message: str, record: OperationRecord) -> None:
        super().__init__(f"{message}; still to do: {record.describe_remaining()}")
        self.record = record


def _check_cancel(cancel: CancelToken | None, record: OperationRecord) -> None:
    if cancel is not None and cancel.cancelled:
        exc = OperationCancelled(f"cancelled; {record.kind} still to do: {record.describe_remaining()}")
        exc.record = record  # type: ignore[attr-defined]
        raise exc


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
) -> bytes:
    """Read [start, start+length) verified by chip CRC. `into` lets a resumed read fill a buffer."""
    if start % SECTOR or length % SECTOR:
        raise BkError("reads must start and end on a 4 KiB boundary")
    record = record or OperationRecord("read", start, length)
    buf = into if into is not None else bytearray(length)
    sink(Stage("read", f"reading 0x{start:06X}-0x{start + length:06X}"))
    done_bytes = sum(e - s for s, e in record.done)
    todo = record.remaining()
    for seg_start, seg_end in todo:
        for g_start, g_end in _groups(seg_start, seg_end):
            _check_cancel(cancel, record)
            for addr in range(g_start, g_end, SECTOR):
                data = _retrying(lambda a=addr: client.read_4k(a), "read", addr, sink, record, READ_RETRIES,
                                 client)
                buf[addr - start : addr - start + SECTOR] = data
                sink(SectorUpdate(addr, SectorState.READ))
            _verify_group(client, buf, start, g_start, g_end, sink, record)
            for addr in range(g_start, g_end, SECTOR):
                sink(SectorUpdate(addr, SectorState.VERIFIED))
            record.mark_done(g_start, g_end)
            done_bytes += g_end - g_start
            sink(Progress(done_bytes, length))
    return bytes(buf)


def _verify_group(client: BkClient, buf: bytearray, base: int, g_start: int, g_end: int, sink: EventSink,
                  record: OperationRecord) -> None:
    for attempt in range(READ_RETRIES + 1):
        want = zlib.crc32(buf[g_start - base : g_end - base])
        got = _retrying(lambda: client.crc(g_start, g_end - g_start), "crc", g_start, sink, record,
                        READ_RETRIES, client)
        if got == want:
            return
        if attempt == READ_RETRIES:
            raise CrcMismatch(g_start, g_end - g_start, want, got)
        # Narrow down to the sectors whose data was damaged on the way and read them again.
        for addr in range(g_start, g_end, SECTOR):
            chunk = buf[addr - base : addr - base + SECTOR]
            chip = _retrying(lambda a=addr: client.crc(a, SECTOR), "crc", addr, sink, record, READ_RETRIES,
                             client)
            if chip != zlib.crc32(chunk):
                record.retries += 1
                sink(Retry(addr, attempt + 1, "read data failed its CRC check"))
                data = _retrying(lambda a=addr: client.read_4k(a), "read", addr, sink, record, READ_RETRIES,
                                 client)
                buf[addr - base : addr - base + SECTOR] = data


@dataclass
class WriteReport:
    written: int = 0
    skipped: int = 0
    erased_only: int = 0
    full_rewrite: bool = False
    record: OperationRecord | None = None
    backup: object | None = None
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
            _write_group(client, start, data, g_start, g_end, sink, record, report, differential, group_check)
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
                 record: OperationRecord, report: WriteReport, differential: bool, group_check: bool = True) -> None:
    target = data[g_start - base : g_end - base]
    sectors = list(range(g_start, g_end, SECTOR))
    if differential:
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
    for addr in changed:
        _write_sector(client, addr, data[addr - base : addr - base + SECTOR], sink, record, report,
                      erased=whole_block)
        report.changed.append((addr, addr + SECTOR))
        record.mark_done(addr, addr + SECTOR)  # verified: a resumed write starts after it


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
        again = _retrying(lambda: client.crc(addr, n), "crc", addr, sink, record, READ_RETRIES, client)
        if again == prev:
            return again
        record.retries += 1
        sink(Retry(addr, attempt + 1, "the chip gave two different CRCs for the same range"))
        prev = again
    raise ProtocolError(f"the chip never gave the same CRC twice for 0x{addr:06X}+0x{n:X}")


@_with_record("verify")
def verify_flash(client: BkClient, start: int, data: bytes, sink: EventSink = null_sink,
                 cancel: CancelToken | None = None, record: OperationRecord | None = None) -> VerifyReport:
    """Compare the chip with `data` by CRC: per 64 KiB group, then per sector where a group differs."""
    if start % SECTOR:
        raise BkError("verify must start on a 4 KiB boundary")
    record = record or OperationRecord("verify", start, len(data))
    sink(Stage("verify", f"comparing 0x{start:06X}-0x{start + len(data):06X} by CRC"))
    bad: list[tuple[int, int]] = []
    end = start + len(data)
    for g_start, g_end in _groups(start, end):
        _check_cancel(cancel, record)
        chip = _retrying(lambda s=g_start, e=g_end: client.crc(s, e - s), "crc", g_start, sink, record,
                         READ_RETRIES, client)
        if chip == zlib.crc32(data[g_start - start : g_end - start]):
            for addr in range(g_start, g_end, SECTOR):
                sink(SectorUpdate(addr, SectorState.VERIFIED))
        else:
            for addr in range(g_start, g_end, SECTOR):
                n = min(SECTOR, g_end - addr)
                want = zlib.crc32(data[addr - start : addr - start + n])
                c = _retrying(lambda a=addr, n=n: client.crc(a, n), "crc", addr, sink, record, READ_RETRIES,
                              client)
                if c != want:
                    c = _confirmed_crc(client, addr, n, c, sink, record)
                if c == want:
                    sink(SectorUpdate(addr, SectorState.VERIFIED))
                else:
                    sink(SectorUpdate(addr, SectorState.FAILED))
                    if bad and bad[-1][1] == addr:
                        bad[-1] = (bad[-1][0], addr + n)
                    else:
                        bad.append((addr, addr + n))
        record.mark_done(g_start, g_end)
        sink(Progress(g_end - start, len(data)))
    return VerifyReport(not bad, bad, len(data))
