"""Writes on bootloaders that protect the flash after a CheckCRC: every CRC first, one re-arm, then the erases.

The Tuya BK7231S bootloaders (and the Beken BASIC ones, by PROTOCOL-DETAILS 5.2) write protect-all to the
flash's status register on every CheckCRC; an erase after it is acknowledged with status 0 and dropped, and so
is every program (REALCODE.md B.8). A LinkCheck arms a one-shot unprotect for the next erase, but 1.0.4
remembers the CheckCRC until it restarts: there the first erase after a LinkCheck protects again. So no
CheckCRC may come between the re-arm and the erases it is for. A write goes in four steps:

1. plan: every CRC needed to decide what to write, each tied to its request (core/ops/crc.py): the group CRCs
   (the session's block CRCs where it has them) and the sector CRCs where a group differs. The session's block
   CRCs, its backup by content and the guard's CRCs all come before this.
2. arm, once (`Arming`): a LinkCheck where that re-arms (1.0.5); a restart where only that does (1.0.4 and
   older: the Reboot command and LinkChecks in its boot window, else the session's reset strategy,
   core/link/keepalive.restart). By what the chip's BootVersion says (chips.erases_after_crc), and by evidence.
3. erase and program every changed sector (one 64 KiB erase for a block that changes whole), no CheckCRC
   between. The first erase is checked by reading the sector back (Read4K protects nothing): an erase that was
   acknowledged and did not take is the evidence that this bootloader needs a restart (then one line names it
   and every later arm restarts it); still no effect right after a restart: the flash is write-protected.
4. verify by CRC, tied to the request: a sector that does not hold its data is written again in another round
   (arm, erase, program, verify), up to WRITE_RETRIES rounds. A sector that still holds what it held before is
   evidence again (not "does not verify", which would read as a bad wire).

Then, as on FULL (flash_ops.write_flash): after any retry, sectors a damaged command hit outside the write are
put back from the backup (the same rounds), and the whole range is checked by one CRC.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

from ..chips import erases_after_crc
from ..client import BkClient
from ..errors import CrcMismatch, FlashProtectedError, OperationFailed
from ..layout import BLOCK, SECTOR
from .crc import blank_crc, chip_crc, chip_crc_is
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
)
from .flash_ops import (
    WRITE_RETRIES,
    WriteReport,
    _check_cancel,
    _groups,
    _is_blank,
    _retrying,
)

CRC_FF_BLOCK = blank_crc(BLOCK)


def _bootloader(client: BkClient) -> str:
    return f"the bootloader {client.boot_said}" if client.boot_said else "this chip's bootloader"


class Arming:
    """Makes the bootloader take erases again after CheckCRCs, the cheapest way known to work for it."""

    def __init__(self, client: BkClient, sink: EventSink) -> None:
        self.client, self.sink = client, sink
        self.told = False
        self.suspect = False  # restarting on evidence, not yet shown to help

    @property
    def mode(self) -> str:
        dialect = self.client.dialect
        assert dialect is not None  # write_flash sends only an identified BASIC bootloader here
        return self.client.erase_mode or erases_after_crc(dialect, self.client.boot_said)

    def describe(self) -> str:
        how = {"restart": "a restart (its Reboot command)", "relink": "a link check", "always": "nothing"}[self.mode]
        return f"{_bootloader(self.client)} protects the flash after CRC checks: every CRC first, then {how}, " \
               "then the erases"

    def arm(self) -> None:
        if self.mode == "restart":
            if not self.told:
                self.told = True
                self.sink(Notice("info", f"{_bootloader(self.client)} ignores erases after a CRC check until it "
                                         "restarts: restarting it (its Reboot command) before erasing"))
            from ..link.keepalive import restart  # the link layer sits above the client, beside ops

            restart(self.client)
        elif self.mode == "relink":
            self.client.relink()

    def escalate(self, addr: int) -> bool:
        """An erase was acknowledged and did not take: restart from now on. False when it already did."""
        if self.mode == "restart":
            return False
        self.client.erase_mode = "restart"
        self.told = self.suspect = True
        self.sink(Notice("info", f"the erase at 0x{addr:06X} was acknowledged and did not take: restarting "
                                 f"{_bootloader(self.client)} (its Reboot command) and erasing again"))
        return True

    def confirm(self) -> None:
        """The restart made erases take: name the bootloader for what it does, in one line."""
        if self.suspect:
            self.suspect = False
            self.sink(Notice("warning", f"{_bootloader(self.client)} ignores erases after a CRC check until it "
                                        "restarts: bkbench restarts it (its Reboot command) before erasing"))

    def protected(self, addr: int) -> FlashProtectedError:
        return FlashProtectedError(
            f"{_bootloader(self.client)} acknowledges the erase at 0x{addr:06X} but the flash does not change, "
            "even right after a restart: the flash is write-protected",
            hint="power-cycle the module (a locked status register unlocks at power-up) and run the same command "
                 "again; nothing was changed")


@dataclass
class _Unit:
    """What one erase covers (a sector, or a whole 64 KiB block) and what belongs there."""

    addr: int
    data: bytes
    old: int | None = None  # the chip's CRC of it before the write, tied to its request (None: not asked)
    unchanged: bool = False  # evidence: after an acknowledged erase and program it still held `old`

    @property
    def size(self) -> int:
        return len(self.data)

    def sectors(self):
        for off in range(0, self.size, SECTOR):
            yield self.addr + off, self.data[off : off + SECTOR]


def write_planned(client: BkClient, start: int, data: bytes, sink: EventSink, cancel: CancelToken | None,
                  differential: bool, record: OperationRecord,
                  repair: Callable[[int, int], bytes | None] | None,
                  known_crcs: dict[int, int] | None, guarded: bool = False) -> WriteReport:
    """flash_ops.write_flash on a bootloader that protects the flash after a CheckCRC (module docstring).
    `data` is padded to whole sectors."""
    length = len(data)
    report = WriteReport(record=record)
    retries_before = record.retries
    arming = Arming(client, sink)
    sink(Stage("unprotect", arming.describe()))
    sink(Stage("write", f"writing 0x{start:06X}-0x{start + length:06X}"))
    progress = [sum(e - s for s, e in record.done), length]
    olds: dict[tuple[int, int], int] = {}
    units = _plan(client, start, data, sink, cancel, differential, record, report, known_crcs or {}, olds, progress)
    if units:
        _put(client, units, arming, sink, cancel, record, report, olds, progress)
    if progress[0] < length:
        sink(Progress(length, length))
    if record.retries == retries_before and not record.remaining() and not record.damaged:
        sink(Stage("verify", "every sector verified by CRC"))
        return report
    _repair_outside(client, start, start + length, record, sink, repair, arming, guarded)
    sink(Stage("verify", "checking the whole range"))
    want = zlib.crc32(data)
    got = chip_crc(client, start, length, sink, record)
    if got != want:
        if differential:
            from .flash_ops import write_flash

            sink(Notice("warning", "final CRC differs: rewriting every sector"))
            full = write_flash(client, start, data, sink, cancel, differential=False)
            full.full_rewrite = True
            return full
        raise CrcMismatch(start, length, want, got)
    return report


def _plan(client: BkClient, start: int, data: bytes, sink: EventSink, cancel: CancelToken | None,
          differential: bool, record: OperationRecord, report: WriteReport, known: dict[int, int],
          olds: dict[tuple[int, int], int], progress: list[int]) -> list[_Unit]:
    """Every CheckCRC the write needs, before anything is erased: the units to erase and program."""
    units: list[_Unit] = []
    prev_whole = False  # the previous block changes in every sector: a new image over an old one
    for seg_start, seg_end in record.remaining():
        for g_start, g_end in _groups(seg_start, seg_end):
            _check_cancel(cancel, record)
            target = data[g_start - start : g_end - start]
            whole = g_start % BLOCK == 0 and g_end - g_start == BLOCK
            k = known.get(g_start) if whole else None
            if k is not None:
                olds[(g_start, BLOCK)] = k
            want = zlib.crc32(target)
            if not differential or (k is not None and prev_whole and k != want):
                # Everything (a full rewrite), or a block that differs right after one that changed whole: erase
                # it whole without asking its sectors (each is still verified).
                units += [_Unit(g_start, target, k)] if whole else [
                    _Unit(a, c) for a, c in _Unit(g_start, target).sectors()]
                prev_whole = whole
                continue
            same = k == want if k is not None else chip_crc_is(client, g_start, g_end - g_start, want, sink, record,
                                                                relink=False)
            if same:
                for addr in range(g_start, g_end, SECTOR):
                    sink(SectorUpdate(addr, SectorState.SKIPPED))
                report.skipped += (g_end - g_start) // SECTOR
                record.mark_done(g_start, g_end)
                progress[0] += g_end - g_start
                sink(Progress(*progress))
                prev_whole = False
                continue
            changed = []
            for addr, chunk in _Unit(g_start, target).sectors():
                got = olds[(addr, SECTOR)] = chip_crc(client, addr, SECTOR, sink, record, relink=False)
                if got == zlib.crc32(chunk):
                    sink(SectorUpdate(addr, SectorState.SKIPPED))
                    report.skipped += 1
                    record.mark_done(addr, addr + SECTOR)
                    progress[0] += SECTOR
                else:
                    changed.append(_Unit(addr, chunk, got))
            prev_whole = whole and len(changed) == BLOCK // SECTOR
            units += [_Unit(g_start, target, k)] if prev_whole else changed
            sink(Progress(*progress))
    return units


def _put(client: BkClient, units: list[_Unit], arming: Arming, sink: EventSink, cancel: CancelToken | None,
         record: OperationRecord, report: WriteReport, olds: dict[tuple[int, int], int],
         progress: list[int] | None, mark: bool = True) -> None:
    """Rounds of: arm, erase and program every unit (no CheckCRC), verify them by CRC (module docstring)."""
    pending = units
    for round_ in range(WRITE_RETRIES + 1):
        arming.arm()
        _erase_and_program(client, pending, arming, sink, cancel, record, None if round_ else progress)
        pending = _verify(client, pending, sink, record, report, olds, mark)
        if not pending:
            arming.confirm()
            return
        unchanged = [u for u in pending if u.unchanged]
        if unchanged and len(unchanged) == len(pending) and not arming.escalate(unchanged[0].addr):
            for u in pending:
                for addr, _ in u.sectors():
                    sink(SectorUpdate(addr, SectorState.FAILED))
            record.failed_at = pending[0].addr
            raise arming.protected(pending[0].addr)
        if round_ == WRITE_RETRIES:
            for u in pending:
                for addr, _ in u.sectors():
                    sink(SectorUpdate(addr, SectorState.FAILED))
            record.failed_at = pending[0].addr
            raise OperationFailed(f"sector 0x{pending[0].addr:06X} does not verify after {WRITE_RETRIES} retries",
                                  record)
        for u in pending:
            record.retries += 1
            sink(Retry(u.addr, round_ + 1, "written data failed its CRC check"))


def _erase_and_program(client: BkClient, units: list[_Unit], arming: Arming, sink: EventSink,
                       cancel: CancelToken | None, record: OperationRecord, progress: list[int] | None) -> None:
    # The first unit whose old content is known and not erased shows whether its erase took.
    probe = next((u for u in units if u.old not in (None, blank_crc(u.size))), units[0])
    telling = probe.old not in (None, blank_crc(probe.size))
    restarts = 0
    for u in units:
        _check_cancel(cancel, record)
        _retrying(lambda u=u: client.erase(u.addr, u.size), "erase", u.addr, sink, record, WRITE_RETRIES, client)
        for addr, _ in u.sectors():
            sink(SectorUpdate(addr, SectorState.ERASED))
        while u is probe and not _erased(client, u, sink, record):
            # Acknowledged and not done: this bootloader ignores erases after a CRC check until it restarts. A
            # restart already under way is tried twice more (a Reboot frame lost at 115200 looks like a restart).
            if not arming.escalate(u.addr):
                restarts += 1
                if restarts > 2:
                    sink(SectorUpdate(u.addr, SectorState.FAILED))
                    record.failed_at = u.addr
                    raise arming.protected(u.addr)
            arming.arm()
            _retrying(lambda u=u: client.erase(u.addr, u.size), "erase", u.addr, sink, record, WRITE_RETRIES, client)
        if u is probe and telling:
            arming.confirm()
        for addr, chunk in u.sectors():
            if not _is_blank(chunk):
                _retrying(lambda a=addr, c=chunk: client.write_4k(a, c), "write", addr, sink, record, WRITE_RETRIES,
                          client)
                sink(SectorUpdate(addr, SectorState.WRITTEN))
        if progress is not None:
            progress[0] += u.size
            sink(Progress(*progress))


def _erased(client: BkClient, u: _Unit, sink: EventSink, record: OperationRecord) -> bool:
    """Did the erase just acknowledged take? The first sector read back (Read4K protects nothing). Not erased
    only on evidence: its CRC is the one the chip gave for it before, or two reads agree on the same bytes (a
    byte damaged on the way is not a dropped erase)."""
    old = u.old if u.size == SECTOR else None
    first = _retrying(lambda: client.read_4k(u.addr), "read", u.addr, sink, record, WRITE_RETRIES, client)
    if _is_blank(first):
        return True
    if old is not None and zlib.crc32(first) == old:
        return False
    again = _retrying(lambda: client.read_4k(u.addr), "read", u.addr, sink, record, WRITE_RETRIES, client)
    return _is_blank(again) or again != first


def _verify(client: BkClient, units: list[_Unit], sink: EventSink, record: OperationRecord, report: WriteReport,
            olds: dict[tuple[int, int], int], mark: bool) -> list[_Unit]:
    """Each unit's CRC, tied to its request; returns the units to write again (sectors of a block that failed)."""
    failed: list[_Unit] = []
    for u in units:
        got = chip_crc(client, u.addr, u.size, sink, record, relink=False)
        if got == zlib.crc32(u.data):
            _verified(u, sink, record, report, mark)
            continue
        if u.size == SECTOR or got == u.old:
            u.unchanged = u.old is not None and got == u.old
            failed.append(u)
            continue
        for addr, chunk in u.sectors():  # a block that differs in part: find its sectors
            part = _Unit(addr, chunk, olds.get((addr, SECTOR)))
            c = chip_crc(client, addr, SECTOR, sink, record, relink=False)
            if c == zlib.crc32(chunk):
                _verified(part, sink, record, report, mark)
            else:
                part.unchanged = part.old is not None and c == part.old
                failed.append(part)
    return failed


def _verified(u: _Unit, sink: EventSink, record: OperationRecord, report: WriteReport, mark: bool) -> None:
    for addr, chunk in u.sectors():
        blank = _is_blank(chunk)
        sink(SectorUpdate(addr, SectorState.ERASED if blank else SectorState.VERIFIED))
        if blank:
            report.erased_only += 1
        else:
            report.written += 1
        report.changed.append((addr, addr + SECTOR))
        if mark:
            record.mark_done(addr, addr + SECTOR)


def _repair_outside(client: BkClient, start: int, end: int, record: OperationRecord, sink: EventSink,
                    repair: Callable[[int, int], bytes | None] | None, arming: Arming, guarded: bool = False) -> None:
    """flash_ops._repair_outside with the CRCs first and the rewrites armed (module docstring)."""
    sectors = sorted({a for s, e in record.damaged for a in range(s, e, SECTOR) if not start <= a < end})
    units = []
    for addr in sectors:
        expected = repair(addr, SECTOR) if repair else None
        if expected is None and guarded:
            continue  # the guard compares its region with the CRC taken before the write
        if expected is None:
            record.failed_at = addr
            raise OperationFailed(
                f"a command damaged on the line may have erased or overwritten sector 0x{addr:06X}, outside "
                "the write; restore it from a backup (`bkbench restore`)", record)
        got = chip_crc(client, addr, SECTOR, sink, record, relink=False)
        if got == zlib.crc32(expected):
            continue  # only the reply was damaged: the sector is intact
        sink(Notice("warning", f"sector 0x{addr:06X} was hit by a damaged command: restoring it from the backup"))
        units.append(_Unit(addr, expected, got))
    if units:
        _put(client, units, arming, sink, None, record, WriteReport(), {}, None, mark=False)
    record.damaged = [(s, e) for s, e in record.damaged if start <= s < end]
