"""A session with one chip on one port: the engine every frontend drives (the CLI, `station` and several
`--port`s, the workbench's single-port and multi-port views), and the one the fault suites judge.

One owner of the port at a time; every method emits events to `on_event` and raises BkError subclasses
with one clear sentence. One orchestration per action:
- `backup`: the library's backup of what the chip holds now, by content (the chip's CRC of every 64 KiB
  block), read only when no library image holds it, and then only the blocks that differ from the library
  image sharing most of them; a read that stopped is continued; a chip whose content changed while it was
  read is never saved.
- `write_image` (a firmware file placed by core/images/placement.py), `restore` (a full dump) and
  `write_config` (the OpenBK config sector): a covering backup first, the guarded write, one final compare
  of what was written, the library's derived entry for what the chip now holds (core/backups.py: so the next
  write reads nothing), then (images and restores) a reboot and a check of the firmware's boot banner.
- `write` / `write_spans`: the guarded write itself (bootloader and RF refused unless named, everything
  outside checked by CRC before and after and put back from the backup).
When the chip is lost mid-way (reset, brown-out) and the port can reset it, `_recovering` reconnects and
continues from what the operation's record says was verified.
"""

from __future__ import annotations

import hashlib
import math
import struct
import time
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar

from .backups import BackupEntry, BackupLibrary, block_crcs
from .chips import DEFAULT_CHIP, FAMILIES, MAX_FLASH, MIN_FLASH, MiB
from .client import LINK_BAUD, BkClient, ChipInfo
from .errors import (
    BkError,
    ImageError,
    LinkError,
    LinkLost,
    OperationCancelled,
    OperationFailed,
    PortError,
    ProtocolError,
    UnsafeWriteError,
    VerifyFailed,
)
from .images.recognize import WritePlan
from .layout import BLOCK, BOOTLOADER_END, OBK_CONFIG_OFFSET, RF_OFFSET, SECTOR, layout_for, protected_ranges
from .link.adapters import family_for_url
from .link.baud import SUPPORTED_BAUDS, adapter_key, climb, remembered
from .link.doctor import Diagnosis, LinkDoctor, PortTap
from .link.keepalive import Keepalive, revive
from .link.latency import describe as describe_adapter
from .link.reset import ResetStrategy, adapter_note, for_port, get_strategy
from .ops.crc import block_crcs as block_crcs_of_chip
from .ops.events import (
    BootLog,
    CancelToken,
    Connected,
    Event,
    EventSink,
    LinkAttempt,
    Notice,
    OperationRecord,
    SectorState,
    SectorUpdate,
    Stage,
    null_sink,
)
from .ops.flash_ops import (
    Surveyed,
    VerifyReport,
    WriteReport,
    read_flash,
    repair_with_spans,
    survey_flash,
    verify_flash,
    write_flash,
)
from .ops.guard import FlashGuard, OutsideDamage, critical_ranges
from .protection_memory import ProtectionMemory
from .restore_check import check_restore_image
from .transport import can_change_baud, open_port

T = TypeVar("T")
BOOT_CHECK_S = 5.0  # seconds to watch for the firmware's banner after a reboot


def parse_mac(rf_sector: bytes) -> str | None:
    """MAC from the RF/TLV sector: item tag 0x11111102, length 6, at +0x1C (checked on real dumps)."""
    if rf_sector[:4] != b"TLV\x00":
        return None
    if rf_sector[0x1C:0x24] != struct.pack("<II", 0x11111102, 6):
        return None
    mac = rf_sector[0x24:0x2A]
    return ":".join(f"{b:02X}" for b in mac)


def _gaps(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The holes between sorted, non-overlapping ranges."""
    return [(a_end, b_start) for (_, a_end), (b_start, _) in zip(ranges, ranges[1:]) if b_start > a_end]


def _restate(exc: BkError, overall: OperationRecord) -> BkError:
    """The same failure, its record the whole operation's (everything it still has to do, not one span's)."""
    reason = exc.reason
    if not overall.remaining():
        reason += (" (the write itself completed and verified; the check of the rest of the flash did not finish: "
                   "compare it with the backup, `bkbench verify`)")
    if isinstance(exc, OperationCancelled):
        return OperationCancelled(reason, exc.hint, record=overall, kind=overall.kind)
    return OperationFailed(reason, overall, exc.hint)


def _left(record: OperationRecord | None) -> int:
    return sum(e - s for s, e in record.remaining()) if record is not None else 0


@dataclass(frozen=True)
class Backup:
    """The library image that holds what the chip held: `taken` now, or already there (found by content)."""

    entry: BackupEntry
    taken: bool


@dataclass(frozen=True)
class _Over:
    """What a completed guarded write stood on: the library image that covered the chip before it, and how the
    flash outside the write was checked after it. After the final compare it becomes the derived entry."""

    library: BackupLibrary
    base: BackupEntry
    outside: str


@dataclass
class UnfinishedRead:
    """A backup read that stopped (cancel, failure): what was verified so far, and the chip's block CRCs when
    it began (it continues only if the chip still holds that content)."""

    crcs: list[int]
    record: OperationRecord
    buf: bytearray


ChipKey = tuple[str, "str | None", int]


class Session:
    def __init__(
        self,
        url: str,
        baud: int = 921600,
        on_event: EventSink = null_sink,
        reset: str | ResetStrategy = "auto",
        link_timeout: float = 20.0,
        flash_size: int | None = None,
        unfinished: dict[ChipKey, UnfinishedRead] | None = None,
    ) -> None:
        if not isinstance(baud, int) or baud not in SUPPORTED_BAUDS:
            raise BkError(f"unsupported baud rate {baud!r}; choose one of "
                          + ", ".join(str(b) for b in SUPPORTED_BAUDS))
        if not (isinstance(link_timeout, (int, float)) and math.isfinite(link_timeout) and link_timeout > 0):
            raise BkError(f"link timeout must be a positive number of seconds, not {link_timeout!r}")
        if flash_size is not None and (flash_size & (flash_size - 1) or not MIN_FLASH <= flash_size <= MAX_FLASH):
            raise BkError(f"flash size {flash_size:#x} is not a power of two between {MIN_FLASH // 1024} KiB and "
                          f"{MAX_FLASH // MiB} MiB")
        self.flash_size = flash_size  # the user's override when the chip's flash ID is not trusted
        self.url = url
        self.baud = baud
        self.sink = on_event
        self.reset = reset if isinstance(reset, ResetStrategy) else get_strategy(reset)
        self.link_timeout = link_timeout
        self.port: Any = None  # a pyserial port (or a simulator / RFC 2217 port with the same interface)
        self.client: BkClient | None = None
        self.info: ChipInfo | None = None
        self.cancel_token: CancelToken | None = None  # used when a call passes none (the CLI's Ctrl-C)
        self.doctor: LinkDoctor | None = None  # the doctor of the last link attempt (core.link.doctor)
        self.diagnosis: Diagnosis | None = None  # its latest verdict, shown by the UIs while linking
        # Defaults for callers that pass none (a Station, `config write`).
        self.backup_first = True
        self.backup_library: BackupLibrary | None = None
        self.reconnects = 0  # chip lost and found again (a write then gets the full outside check)
        # The backup that covers this chip, once taken or found (also when the write after it fails).
        self.last_backup: Backup | None = None
        # Backups that stopped part-way, by chip: a UI passes one dict to all its sessions so `b` continues one.
        self.unfinished: dict[ChipKey, UnfinishedRead] = {} if unfinished is None else unfinished
        self._active: tuple[OperationRecord, OperationRecord | None] | None = None  # the write under way
        self.written: list[tuple[int, bytes]] = []  # what the last write put where (what a later compare uses)
        # The library's record of what the last completed, verified write left (derived, not read), if any.
        self.last_derived: BackupEntry | None = None
        self._over: _Over | None = None  # set by a guarded write that completed, taken by its final compare
        self.keepalive: Keepalive | None = None  # LinkChecks while idle: T bootloaders leave download mode

    # ------------------------------------------------------------------ port
    def open(self) -> None:
        if self.port is None:
            self.port = open_port(self.url, LINK_BAUD)
            self.client = BkClient(self.port, self.sink)
            if describe_adapter(self.port):  # the adapter and what was done to its latency (core/link/latency.py)
                self.sink(Notice("info", describe_adapter(self.port)))

    def close(self) -> None:
        self.stop_keepalive()
        if self.port is not None:
            try:
                self._restore_link_baud()
                self.port.close()
            except (OSError, ValueError):
                pass
            finally:
                self.port = None
                self.client = None

    def _restore_link_baud(self) -> None:
        """Leave a still-linked chip listening at 115200, so the next session links without a reset."""
        if self.info is None or self.client is None or self.info.baud == LINK_BAUD:
            return
        try:
            self.client.set_baudrate(LINK_BAUD)
        except (BkError, OSError):
            pass  # best effort: a reset brings the chip back to 115200 anyway
        self.info.baud = LINK_BAUD

    def __enter__(self) -> Session:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _client(self) -> BkClient:
        if self.client is None:
            self.open()
        assert self.client is not None
        return self.client

    # ------------------------------------------------------------------ link
    def link(self, cancel: CancelToken | None = None, timeout: float | None = None, reset_first: bool = False) -> None:
        """`reset_first`: reset the chip before the first LinkCheck (a restart that must happen: one that answers
        without it is not the chip the caller needs, core/link/keepalive.restart)."""
        # --- link doctor integration (core/link/doctor.py): the doctor watches RX while linking, its
        # current Diagnosis goes into LinkAttempt.hint, `self.diagnosis` and the LinkError hint.
        client = self._client()
        strategy, note = for_port(self.reset, self.port)
        if note:
            self.sink(Notice("warning", note))
        family = family_for_url(self.url)  # the adapter's reset habits (core/link/adapters.py)
        if habit := adapter_note(strategy, family):
            self.sink(Notice("info", habit))
        strategy.check()
        timeout = self.link_timeout if timeout is None else timeout
        doctor = LinkDoctor(strategy, adapter=family)
        self.doctor, self.diagnosis = doctor, None
        self.sink(Stage("link", "linking at 115200 baud: " + (
            strategy.instructions if strategy.manual else f"resetting by {strategy.describe()}")))
        state = {"last_reset": -1e9, "last_event": -1e9}

        def on_attempt(n: int, elapsed: float) -> None:
            if strategy.acts and elapsed - state["last_reset"] >= strategy.repeat_every:
                state["last_reset"] = elapsed
                strategy.apply(client.port)
                doctor.reset_applied()
            if elapsed - state["last_event"] >= 0.25:
                state["last_event"] = elapsed
                self.diagnosis = diag = doctor.current()
                self.sink(LinkAttempt(n, elapsed, diag.hint(), diag, doctor.rx_total, strategy.describe()))

        client.port = PortTap(self.port, doctor)
        try:
            # First a short try without reset: the chip may already wait in its bootloader.
            cancel = cancel or self.cancel_token
            # A chip left linked at a faster rate (an earlier session that was killed) answers there.
            good = remembered(adapter_key(self.url)).get("good")
            if not reset_first and isinstance(good, int) and good != LINK_BAUD and client.link(0.1, cancel, None,
                                                                                               baud=good):
                self.sink(Notice("info", f"the chip was still linked at {good} baud"))
                doctor.link_ok()
                return
            self.port.baudrate = LINK_BAUD
            linked = (not reset_first and client.link(0.3, cancel, None)) or client.link(timeout, cancel, on_attempt)
        finally:
            client.port = self.port
        if linked:
            doctor.link_ok()
            return
        self.diagnosis = diag = doctor.current(final=True)
        raise LinkError(f"no answer to the link check within {timeout:.0f} s",
                        hint=" ".join(diag.advice) or "run `bkbench doctor` for a diagnosis", diagnosis=diag)
        # --- end link doctor integration

    def connect(self, cancel: CancelToken | None = None) -> ChipInfo:
        self.stop_keepalive()
        self.open()
        self.link(cancel)
        client = self._client()
        self.sink(Stage("identify", "identifying chip and bootloader"))
        try:
            info = client.identify(self.flash_size)
        except ProtocolError as exc:
            # Linked, then lost: typical of a board that loads RX1/TX1. Let the doctor say so.
            if self.doctor is None:
                raise
            self.doctor.note_error(exc)
            diag = self.diagnosis = self.doctor.current(final=True)
            raise LinkError("the chip answered, then stopped", hint=" ".join(diag.advice), diagnosis=diag) from exc
        info.baud = self.port.baudrate
        info.adapter = describe_adapter(self.port)
        self.info = info
        if self.baud != LINK_BAUD or self.port.baudrate != LINK_BAUD:
            self._switch_baud(cancel)
        try:
            fam = FAMILIES.get(info.chip)
            for rf in (RF_OFFSET.get(info.chip, RF_OFFSET[DEFAULT_CHIP]), *(fam.extra_rf if fam else ())):
                info.mac = info.mac or parse_mac(client.read_4k(rf))  # stock T1 keeps it at 0x1E3000
        except ProtocolError:
            info.warnings.append("could not read the RF sector for the MAC")
        client.protection = ProtectionMemory.for_chip(info, self.sink)  # SR found before bkbench first touched it
        self.sink(Connected("connected", f"{info.chip} ({info.bootloader or 'unknown bootloader'}) at {info.baud} baud",
                            info))
        self.start_keepalive()
        return info

    # --- idle chip (core/link/keepalive.py): a BASIC bootloader leaves download mode when idle; a write may
    # restart it (the reset strategy when its boot window is missed).
    def start_keepalive(self) -> None:
        self.stop_keepalive()
        client = self._client()
        client.reset_link = lambda: self.link(reset_first=True)
        if self.info is not None and self.info.dialect.crc_locks_protection:
            self.keepalive = Keepalive(client).start()

    def stop_keepalive(self) -> None:
        if self.keepalive is not None:
            self.keepalive.stop()
            self.keepalive = None
    # --- end idle chip

    def _switch_baud(self, cancel: CancelToken | None) -> None:
        # --- baud ladder (core/link/baud.py): step down on failure, remember per adapter.
        client = self._client()
        assert self.info is not None
        if not can_change_baud(self.port):
            if self.baud != LINK_BAUD:
                self.sink(Notice("warning", f"{self.url} is raw TCP and cannot change the line rate: transferring "
                                            f"at {LINK_BAUD} baud, not {self.baud} (rfc2217:// can switch)"))
            self.info.baud = LINK_BAUD
            return
        if self.baud == LINK_BAUD:  # linked at a faster rate left over from an earlier session
            client.set_baudrate(LINK_BAUD)
            self.info.baud = LINK_BAUD
            return

        def reconnect() -> None:
            # After a failed switch the chip may already run at the new rate: only a reset brings it back.
            self.link(cancel)
            client.identify()

        self.info.baud = climb(client, self.baud, adapter_key(self.url), reconnect, self.sink)
        # --- end baud ladder

    # ------------------------------------------------------------------ operations
    def _require(self) -> tuple[BkClient, ChipInfo]:
        if self.info is not None:
            revive(self)  # the chip may have left its bootloader while the user read a dialog
        if self.info is None:
            self.connect()
        assert self.info is not None
        return self._client(), self.info

    def _recovering(self, what: str, fn: Callable[[BkClient], T], record: OperationRecord | None = None) -> T:
        """Run `fn(client)`. When the chip is lost mid-way (reset, brown-out) and this port can reset it,
        reconnect and run it again: an operation with a `record` continues from what it verified, a step
        without one is repeated. Three losses in a row without progress end it."""
        stalled, left = 0, _left(record)
        while True:
            try:
                return fn(self._client())
            except BkError as exc:
                lost = exc if isinstance(exc, LinkLost) else exc.__cause__
                if not isinstance(lost, LinkLost):
                    raise
                now = _left(record)
                stalled, left = (0 if now < left else stalled + 1), now
                if stalled >= 3 or for_port(self.reset, self.port)[0].manual:
                    raise
                rem = record.remaining() if record is not None else []
                where = f" at 0x{rem[0][0]:06X}" if rem else " with its final check" if record is not None else ""
                self.sink(Notice("warning", f"{lost}: resetting the chip and resuming the {what}{where}"))
                if not self._reconnect():
                    raise

    def _reconnect(self, tries: int = 3) -> bool:
        """Reset, link and identify again after the chip was lost; False if it never came back."""
        self.stop_keepalive()  # the port is the link's alone until connect() starts a new one
        self.reconnects += 1
        timeout, self.link_timeout = self.link_timeout, min(self.link_timeout, 5.0)
        try:
            for _ in range(tries):
                self.info = None
                if self.port is not None:
                    self.port.baudrate = LINK_BAUD
                try:
                    self.connect()
                    return True
                except BkError as exc:
                    self.sink(Notice("warning", f"reconnecting failed: {exc}"))
            return False
        finally:
            self.link_timeout = timeout

    def read(self, start: int = 0, length: int | None = None, cancel: CancelToken | None = None,
             known_crcs: dict[int, int] | None = None, *, record: OperationRecord | None = None,
             into: bytearray | None = None, survey: dict[int, list[Surveyed]] | None = None) -> bytes:
        """A verified read; `known_crcs` are chip CRCs of 64 KiB blocks taken just before (not asked again),
        `survey` what `survey_flash` found just before; `record` and `into` continue a read that stopped."""
        _, info = self._require()
        if length is None:
            length = info.flash_size - start
        if start < 0 or length <= 0 or start + length > info.flash_size:
            raise BkError(f"range 0x{start:X}+0x{length:X} is outside the {info.flash_size // 1024} KiB flash")
        rec = record or OperationRecord("read", start, length)
        buf = into if into is not None else bytearray(length)
        return self._recovering("read", lambda c: read_flash(c, start, length, self.sink, cancel or self.cancel_token,
                                                             record=rec, into=buf, known_crcs=known_crcs,
                                                             survey=survey), rec)

    def backup_meta(self) -> dict:
        info = self.info
        assert info is not None
        meta = info.to_json()
        meta.update({"port": self.url, "partial": False})
        meta["adapter"] = getattr(self.port, "name", "") or ""
        return meta

    def block_crcs(self, cancel: CancelToken | None = None) -> list[int]:
        """The chip's own CRC-32 of every 64 KiB block (CheckCRC, zlib convention): its content identity."""
        _, info = self._require()
        return self._recovering("block CRCs", lambda c: self._block_crcs(c, info, cancel or self.cancel_token))

    def backup(self, library: BackupLibrary | None = None, cancel: CancelToken | None = None,
               crcs: list[int] | None = None) -> Backup:
        """The library's backup of what the chip holds now. The chip's CRC of every 64 KiB block decides, once,
        whether an intact library image already holds this content (the MAC only narrows the candidates);
        if none does but one shares at least half the blocks, only the others are read (`_backup_blocks`);
        else a full verified read, continued where a stopped backup of the same content left off. Saved only
        if every block still has the CRC taken before it (`crcs`, when the caller has them)."""
        library = library or self.backup_library or BackupLibrary()
        _, info = self._require()
        library.check_space(info.flash_size)  # before anything is asked of the chip
        cancel = cancel or self.cancel_token
        survey = None
        if crcs is None:  # asked so that the read, if one is needed, asks no CRC again (`survey_flash`)
            asked = OperationRecord("survey", 0, info.flash_size)
            plan: dict[int, list[Surveyed]] = {}  # a survey interrupted by a lost chip continues where it stopped
            crcs, survey = self._recovering("block CRCs", lambda c: self._survey(c, info, cancel, asked, plan), asked)
        library.problems.clear()
        found = library.find_covering(info.chip, info.flash_size, crcs, info.mac)
        for problem in library.problems:
            self.sink(Notice("warning", f"backup library: {problem}"))
        if found is not None:
            self.sink(Stage("backup", f"the library already holds this chip's content (the chip's CRC of all "
                                      f"{len(crcs)} blocks): not read again"))
            self.sink(SectorUpdate(0, SectorState.VERIFIED, info.flash_size))  # every block, by the chip's CRC
            self.last_backup = Backup(found, False)
            return self.last_backup
        said = set(library.problems)
        near = library.find_nearest(info.chip, info.flash_size, crcs, info.mac)
        for problem in dict.fromkeys(p for p in library.problems if p not in said):
            self.sink(Notice("warning", f"backup library: {problem}"))
        if near is not None:
            return self._backup_blocks(library, info, near[0], near[1], crcs, cancel)
        data = self._read_whole(info, crcs, cancel, survey)
        changed = [i for i, (a, b) in enumerate(zip(block_crcs(data), crcs)) if a != b]
        if changed or len(crcs) != -(-len(data) // BLOCK):
            where = ", ".join(f"0x{i * BLOCK:06X}" for i in changed[:8]) or "its size"
            raise BkError(f"the chip's content changed while it was read (64 KiB blocks at {where}); "
                          "this dump is not saved as its backup")
        self.sink(Stage("backup", "saving the verified dump"))
        entry = library.save(data, self.backup_meta())
        self.last_backup = Backup(entry, True)  # the caller says where it went (once: a result, or a write's step)
        return self.last_backup

    def _backup_blocks(self, library: BackupLibrary, info: ChipInfo, base: BackupEntry, blocks: list[int],
                       crcs: list[int], cancel: CancelToken | None) -> Backup:
        """A backup of what the chip holds now from `base` and only the 64 KiB blocks whose CRC differs from it:
        those are read (verified against the CRCs taken before), every other block is the base's, which the
        chip's CRC of that block vouches for. Saved as a derived entry naming the base and what was read."""
        self.sink(Stage("backup", f"the chip differs from {base.name} in {len(blocks)} of {len(crcs)} 64 KiB "
                                  "blocks (the chip's CRC of each): reading only those"))
        image = bytearray(library.load(base))
        known = {i * BLOCK: c for i, c in enumerate(crcs)}
        runs: list[tuple[int, int]] = []
        for i in blocks:
            if runs and runs[-1][1] == i * BLOCK:
                runs[-1] = (runs[-1][0], (i + 1) * BLOCK)
            else:
                runs.append((i * BLOCK, (i + 1) * BLOCK))
        pos = 0
        for start, end in runs + [(info.flash_size, info.flash_size)]:
            if start > pos:
                self.sink(SectorUpdate(pos, SectorState.VERIFIED, start - pos))  # the base's, by the chip's CRC
            if end > start:
                image[start:end] = self.read(start, end - start, cancel, known)
            pos = end
        changed = [i for i, (a, b) in enumerate(zip(block_crcs(bytes(image)), crcs)) if a != b]
        if changed:
            raise BkError(f"the chip's content changed while it was read (64 KiB blocks at "
                          f"{', '.join(f'0x{i * BLOCK:06X}' for i in changed[:8])}); it is not saved as its backup")
        self.sink(Stage("backup", "saving the verified dump"))
        entry, _ = library.save_derived(
            base, [(s, bytes(image[s:e])) for s, e in runs], self.backup_meta(), operation="read",
            what=f"the blocks whose CRC differed from {base.name}",
            checked="the blocks read, by the chip's CRC; every other block equal to the base by the chip's CRC of it")
        self.last_backup = Backup(entry, True)
        return self.last_backup

    def _read_whole(self, info: ChipInfo, crcs: list[int], cancel: CancelToken | None,
                    survey: dict[int, list[Surveyed]] | None = None) -> bytes:
        """The whole flash, verified; a read of the same content that stopped earlier is continued."""
        key: ChipKey = (info.chip, info.mac, info.flash_size)
        part = self.unfinished.pop(key, None)
        if part is None or part.crcs != crcs:
            part = UnfinishedRead(list(crcs), OperationRecord("read", 0, info.flash_size), bytearray(info.flash_size))
        else:
            done = sum(e - s for s, e in part.record.done)
            self.sink(Notice("info", f"resuming the backup that stopped earlier: {done // 1024} KiB already read "
                                     "and verified (the chip still holds the same content)"))
            for s, e in part.record.done:
                self.sink(SectorUpdate(s, SectorState.VERIFIED, e - s))
        known = {i * BLOCK: c for i, c in enumerate(crcs)}
        try:
            return self.read(0, info.flash_size, cancel, known, record=part.record, into=part.buf, survey=survey)
        except (OperationCancelled, OperationFailed):
            self.unfinished[key] = part
            raise

    def write(
        self,
        data: bytes,
        start: int,
        cancel: CancelToken | None = None,
        *,
        allow_protected: bool = False,
        allow_regions: Iterable[str] = (),
        backup_library: BackupLibrary | None = None,
        backup_first: bool | None = None,
        differential: bool = True,
    ) -> WriteReport:
        """Write `data` at `start` (guarded: see `write_spans`). `allow_regions` names the protected regions
        this write may touch ("bootloader", "rf"); `allow_protected` allows both."""
        return self.write_spans([(start, data)], cancel, allow_protected=allow_protected,
                                allow_regions=allow_regions, backup_library=backup_library,
                                backup_first=backup_first, differential=differential, kind="write")

    def write_spans(
        self,
        spans: list[tuple[int, bytes]],
        cancel: CancelToken | None = None,
        *,
        allow_protected: bool = False,
        allow_regions: Iterable[str] = (),
        backup_library: BackupLibrary | None = None,
        backup_first: bool | None = None,
        differential: bool = True,
        kind: str = "write",
    ) -> WriteReport:
        """Write several (start, data) spans as one guarded operation: the flash size must be certain,
        protected regions are refused unless named, this chip's content is covered by a verified
        backup first, everything outside the spans is checked by CRC before and after (and put back
        from that backup if a damaged command hit it), and the flash protection is left as found."""
        client, info = self._require()
        allowed = {"bootloader", "rf"} if allow_protected else set(allow_regions)
        ranges = self._check_spans(spans, info, allowed)
        self._over = None  # only a write that completes here leaves one (for its final compare)
        first, last = ranges[0][0], ranges[-1][1]
        overall = OperationRecord(kind, first, last - first)
        for gap in _gaps(ranges):
            overall.mark_done(*gap)  # not part of this operation: never "still to do"
        try:
            return self._write_spans(client, info, spans, ranges, overall, cancel,
                                     backup_library=backup_library, backup_first=backup_first,
                                     differential=differential, kind=kind)
        except OutsideDamage as exc:
            raise OutsideDamage(exc.sectors, overall) from exc
        except BkError as exc:
            if exc.record is overall or isinstance(exc, UnsafeWriteError):
                raise
            raise _restate(exc, overall) from exc
        finally:
            self._active = None

    def _write_spans(self, client: BkClient, info: ChipInfo, spans: list[tuple[int, bytes]],
                     ranges: list[tuple[int, int]], overall: OperationRecord, cancel: CancelToken | None, *,
                     backup_library: BackupLibrary | None, backup_first: bool | None, differential: bool,
                     kind: str) -> WriteReport:
        cancel = cancel or self.cancel_token
        backup_first = self.backup_first if backup_first is None else backup_first
        library = backup_library or self.backup_library or BackupLibrary()
        if not info.size_trusted:
            raise UnsafeWriteError(
                f"the flash size is not certain ({'; '.join(info.warnings) or 'unknown flash ID'}), so an address "
                "could land in the wrong place; refusing to write",
                hint="if you know the flash size, pass --flash-size (e.g. --flash-size 2M)")
        if backup_first:
            library.check_space(info.flash_size)  # before anything is asked of the chip
        block_crcs = self._recovering("block CRCs", lambda c: self._block_crcs(c, info, cancel))
        covering = None
        if backup_first:
            covering = self.backup(library, cancel, crcs=block_crcs)
            self.sink(Notice("info", f"backup saved: {covering.entry.path}" if covering.taken else
                             f"backup {covering.entry.name} already holds this chip's content: not read again"))
        else:
            self.sink(Notice("warning", "no backup first (--no-backup): if this write goes wrong, what the chip "
                                        "holds now (its Tuya keys, calibration, config) is not saved anywhere"))
        guard = self._recovering("guard CRCs", lambda c: FlashGuard.take(c, info.flash_size, ranges, self.sink,
                                                                         block_crcs=block_crcs))
        known = {i * BLOCK: crc for i, crc in enumerate(block_crcs)}
        retries = 0
        anomalies_before, reconnects_before = client.anomalies, self.reconnects
        repair = repair_with_spans(self._repair_from(covering.entry if covering else None, library, block_crcs),
                                   spans)
        total = WriteReport()
        for start, data in spans:
            padded = len(data) + (-len(data)) % SECTOR
            record = OperationRecord(kind, start, padded)
            self._active = (overall, record)
            def span(c: BkClient, st: int = start, d: bytes = data, r: OperationRecord = record) -> WriteReport:
                return write_flash(c, st, d, self.sink, cancel, differential=differential, record=r, repair=repair,
                                   known_crcs=known, guarded=True)  # the guard's check below, after any retry

            try:
                rep = self._recovering(kind, span, record)
            except (OperationFailed, OperationCancelled) as exc:
                for d in record.done:
                    overall.mark_done(*d)
                raise _restate(exc, overall) from exc
            overall.mark_done(start, start + padded)
            retries += record.retries
            overall.retries += record.retries
            self._active = (overall, None)
            total.written += rep.written
            total.skipped += rep.skipped
            total.erased_only += rep.erased_only
            total.changed += rep.changed
            total.full_rewrite = total.full_rewrite or rep.full_rewrite
        total.record = overall
        # Every exchange clean (no retry, no reconnect, no foreign reply): no command can have been turned
        # into another, so the regions that must never change are checked; after any anomaly, everything.
        clean = (client.anomalies == anomalies_before and self.reconnects == reconnects_before
                 and retries == 0)
        only = critical_ranges(info.chip, info.flash_size) if clean else None
        try:
            self._recovering("check outside the write", lambda c: guard.check(
                c, repair, self.sink, rewrite=lambda a, d: write_flash(c, a, d, self.sink, None, differential=False),
                only=only))
        except BaseException:
            try:
                client.reprotect()
            except BkError:
                pass  # the first error is the one to report
            raise
        try:
            # a chip lost here (reset, brown-out) is found again and asked again: the SR found is kept
            note = self._recovering("putting the flash protection back", lambda c: c.reprotect())
        except BkError as exc:
            raise BkError(f"the {kind} completed and was verified, but the flash protection (status register) "
                          f"could not be put back as found: {exc}",
                          hint="power-cycle the module (a status register locked by a damaged command unlocks "
                               "at power-up), then run the same command again: it skips what is written",
                          record=overall) from exc  # nothing of the data is left to write
        if note:
            self.sink(Notice("info", note))
        self._active = None
        total.backup = covering.entry if covering is not None and covering.taken else None
        if covering is not None:
            self._over = _Over(library, covering.entry, "the chip's CRC of every region" if not clean else
                               "the chip's CRC of the bootloader, RF calibration and configs (every exchange of "
                               "the write clean: no retry, reconnect or foreign reply)")
        self.sink(Stage("done", total.summary()))
        return total

    # ------------------------------------------------------------------ what the keys and commands do
    def write_image(self, plan: WritePlan, cancel: CancelToken | None = None, *,
                    backup_library: BackupLibrary | None = None, backup_first: bool | None = None,
                    allow_regions: Iterable[str] = (), differential: bool = True, verify: bool = True,
                    reboot: bool = True) -> WriteReport:
        """Write a firmware file where core/images/placement.py put it: a covering backup first, the guarded
        write, the final compare of what was written, then the reboot and the check of its boot banner.
        Only the bootloader a QIO image carries is unlocked by the plan, on request; never the RF sector."""
        if plan.dump:
            raise ImageError("a full flash dump is written by a restore (the chip keeps its RF calibration)",
                             hint="bkbench restore -p PORT FILE, or the library's restore in the workbench")
        allowed = set(allow_regions) | ({"bootloader"} if plan.includes_bootloader else set())
        report = self.write_spans([(plan.start, plan.payload)], cancel, allow_regions=allowed,
                                  backup_library=backup_library, backup_first=backup_first,
                                  differential=differential, kind="write")
        self._finish("write", [(plan.start, plan.payload)], cancel, verify, reboot, plan.banner,
                     what=plan.description)
        return report

    def restore(
        self,
        image: bytes,
        cancel: CancelToken | None = None,
        *,
        include_bootloader: bool = False,
        keep_rf: bool = True,
        backup_library: BackupLibrary | None = None,
        backup_first: bool | None = None,
        expected_chip: str | None = None,
        accept_other_device: bool = False,
        verify: bool = True,
        reboot: bool = True,
    ) -> WriteReport:
        """Write a full backup back. The bootloader only on request; the chip's own RF/TLV sector
        (calibration, MAC) is kept unless `keep_rf` is False. The image is checked first (rotated
        dumps put in flash order; another chip family, another device or non-dump data refused). Then the
        final compare, the reboot and (an OpenBK dump) the check of its boot banner, as for an image."""
        _, info = self._require()
        image = check_restore_image(image, info, expected_chip, accept_other_device, self.sink)
        # Keep every calibration sector of the family (core/layout.py), not only the main RF sector.
        start = 0 if include_bootloader else BOOTLOADER_END
        keep = sorted(r for r in protected_ranges(info.chip) if r[0] >= BOOTLOADER_END and r[1] <= info.flash_size)
        wanted, pos = [], start
        for a, b in keep if keep_rf else []:
            if a > pos:
                wanted.append((pos, a))
            pos = max(pos, b)
        if pos < info.flash_size:
            wanted.append((pos, info.flash_size))
        allowed = {"rf"} if not keep_rf else set()
        if include_bootloader:
            allowed.add("bootloader")
        spans = [(a, image[a:b]) for a, b in wanted if b > a]
        report = self.write_spans(spans, cancel, allow_regions=allowed, backup_library=backup_library,
                                  backup_first=backup_first, kind="restore")
        from .images.recognize import recognize

        banner = b"OpenBK" if recognize(image, "restore").version else None
        self._finish("restore", spans, cancel, verify, reboot, banner,
                     what=f"the dump with SHA-256 {hashlib.sha256(image).hexdigest()}")
        return report

    def write_config(self, sector: bytes, cancel: CancelToken | None = None, *,
                     backup_library: BackupLibrary | None = None, backup_first: bool | None = None) -> WriteReport:
        """Write one OpenBK config sector (checked first as OpenBK on this chip would judge it: checksum, pin
        layout) where this chip's OpenBK keeps it, after a covering backup; nothing else is touched; then the
        final compare. The chip is not rebooted (the firmware reads its config when it starts: a reboot is the
        caller's next step)."""
        from .config_file import check_sector_for

        _, info = self._require()
        offset = OBK_CONFIG_OFFSET.get(info.chip)
        if offset is None:
            raise BkError(f"OpenBK's config location on {info.chip} is not known: bkbench does not write it there")
        if len(sector) != SECTOR:
            raise BkError("refusing to write: not a 4 KiB OpenBK config sector")
        check_sector_for(sector, info.chip)  # OpenBK's checksum (not the old unsigned one), the chip's pin layout
        report = self.write_spans([(offset, sector)], cancel, backup_library=backup_library,
                                  backup_first=backup_first, kind="write")
        self._finish("write", [(offset, sector)], cancel, True, False, None, what="an OpenBK config sector",
                     operation="config write")
        return report

    def _finish(self, kind: str, spans: list[tuple[int, bytes]], cancel: CancelToken | None, verify: bool,
                reboot: bool, banner: bytes | None, *, what: str = "", operation: str = "") -> None:
        """After a write: one final compare of everything written (the same for every frontend), the library's
        record of what the chip now holds (`_record_derived`), then the reboot and the boot-banner check."""
        over, self._over = self._over, None
        # What the write put there: each span to its sector's end, erased (0xFF) past the data as write_flash
        # pads it. The compare hashes whole sectors, which every bootloader can: the T bootloader's CheckCRC
        # hashes whole 256-byte blocks only (REALCODE.md B.2), so an image's ragged end cannot be hashed alone.
        spans = [(s, d + b"\xff" * (-len(d) % SECTOR)) for s, d in spans]
        self.written = list(spans)
        if verify:
            ranges = sorted((s, s + len(d)) for s, d in spans)
            record = OperationRecord(kind, ranges[0][0], ranges[-1][1] - ranges[0][0])
            bad: list[tuple[int, int]] = []
            for start, data in sorted(spans):
                bad += self.verify(data, start, cancel).mismatched
            pos = record.start
            for s, e in sorted(bad) + [(record.start + record.length,) * 2]:
                if s > pos:
                    record.mark_done(pos, s)  # compared equal (or a gap between the spans)
                pos = max(pos, e)
            if bad:
                raise VerifyFailed("the final compare found the chip differs from what was written at " + ", ".join(
                    f"0x{s:06X}-0x{e:06X}" for s, e in bad[:8]), record, bad, kind=kind,
                    hint="run the same command again (it rewrites what differs)")
            if over is not None:
                self._record_derived(over, spans, operation or kind, what)
        if reboot:
            self.reboot()
            if banner:
                self.confirm_boot(BOOT_CHECK_S, banner)

    def _record_derived(self, over: _Over, spans: list[tuple[int, bytes]], operation: str, what: str) -> None:
        """The library's derived entry for what the chip holds after a write that completed and whose every
        written sector the final compare found right: the covering image with the spans laid over it. Only
        here (a write that failed, was cancelled or was not compared leaves none); the next write still takes
        it only if the chip's CRC of every block equals it. Failing to save it never fails the write."""
        self.last_derived = None
        try:
            entry, new = over.library.save_derived(
                over.base, spans, self.backup_meta(), operation=operation, what=what,
                checked=f"every written sector by the chip's CRC after the write; outside it, {over.outside}")
        except (BkError, OSError) as exc:
            self.sink(Notice("warning", f"the library keeps no record of what this {operation} left ({exc}); the "
                                        "next write reads the chip again"))
            return
        self.last_derived = entry
        self.sink(Notice("info", f"library: {entry.name} holds what the chip holds now ({over.base.name} + this "
                                 f"{operation}; derived, not read)" if new else
                                 f"library: {entry.name} already holds what the chip holds now"))

    def unfinished_write(self) -> str | None:
        """What a write interrupted right now (even mid-sector) leaves undone, for an abort message."""
        active = self._active
        if not active:
            return None
        overall, current = active
        merged = OperationRecord(overall.kind, overall.start, overall.length, list(overall.done))
        for d in (current.done if current else []):
            merged.mark_done(*d)
        return (f"{merged.kind} still to do: {merged.describe_remaining()} (a sector there may be erased; "
                "run the same command again to finish)")

    def _check_spans(self, spans: list[tuple[int, bytes]], info: ChipInfo, allowed: set[str]
                     ) -> list[tuple[int, int]]:
        ranges = []
        for start, data in spans:
            end = start + len(data) + (-len(data)) % SECTOR
            if start % SECTOR:
                raise BkError(f"write start 0x{start:X} is not on a 4 KiB boundary")
            if not data:
                raise BkError("nothing to write (empty data)")
            if start < 0 or end > info.flash_size:
                raise BkError(f"data ends at 0x{end:X}, past the end of the {info.flash_size // 1024} KiB flash")
            for part in layout_for(info.chip):
                if part.protected and part.kind not in allowed and start < part.end and end > part.start:
                    flag = "--replace-bootloader" if part.kind == "bootloader" else "--replace-rf"
                    raise UnsafeWriteError(
                        f"the write 0x{start:06X}-0x{end:06X} touches the {part.name} (0x{part.start:06X}-"
                        f"0x{part.end:06X}); refusing without an explicit request",
                        hint=f"pass {flag} only if you really mean to replace it")
            ranges.append((start, end))
        ranges.sort()
        for (_, a_end), (b_start, _) in zip(ranges, ranges[1:]):
            if b_start < a_end:
                raise BkError("write spans overlap")
        return ranges

    def _block_crcs(self, client: BkClient, info: ChipInfo, cancel: CancelToken | None = None) -> list[int]:
        """The chip's CRC of every 64 KiB block: content identity for the backup and the guard's baseline."""
        self.sink(Stage("guard", "asking the chip for the CRC of every 64 KiB block"))
        return block_crcs_of_chip(client, info.flash_size, self.sink, cancel,
                                  "cancelled before anything was written; nothing to undo")

    def _survey(self, client: BkClient, info: ChipInfo, cancel: CancelToken | None, record: OperationRecord,
                plan: dict[int, list[Surveyed]]) -> tuple[list[int], dict[int, list[Surveyed]]]:
        """Block CRCs as `_block_crcs`, asked as the read after them needs them (`survey_flash`)."""
        self.sink(Stage("guard", "asking the chip for the CRC of every 64 KiB block"))
        return survey_flash(client, info.flash_size, self.sink, cancel, "cancelled before anything was read",
                            record, plan)

    def _repair_from(self, backup: BackupEntry | None, library: BackupLibrary, block_crcs: list[int]
                     ) -> Callable[[int, int], bytes | None] | None:
        """Sectors a damaged command hit outside the write come back from the backup, but only from
        blocks whose content the chip's CRCs taken just before vouch for."""
        if backup is None:
            return None
        cache: dict[str, bytes] = {}

        def repair(addr: int, size: int) -> bytes | None:
            if "img" not in cache:
                cache["img"] = library.load(backup)
            img = cache["img"]
            blk = addr // BLOCK
            if addr + size > len(img) or blk >= len(block_crcs):
                return None
            if zlib.crc32(img[blk * BLOCK:(blk + 1) * BLOCK]) != block_crcs[blk]:
                return None
            return img[addr: addr + size]

        return repair

    def verify(self, data: bytes, start: int = 0, cancel: CancelToken | None = None) -> VerifyReport:
        """Compare the chip with `data` at `start` by CRC. A chip lost mid-way (and found again) is compared
        from where it stopped; the sectors found different are those the compare marked (SectorUpdate)."""
        if not data:
            raise BkError("nothing to verify: the file is empty")
        _, info = self._require()
        if start + len(data) > info.flash_size:
            raise BkError("the file is larger than the flash")
        record = OperationRecord("verify", start, len(data))
        failed: dict[int, int] = {}  # sector -> its size, as the compare reports them

        def sink(ev: Event) -> None:
            if isinstance(ev, SectorUpdate) and ev.state is SectorState.FAILED:
                failed[ev.addr] = ev.size
            self.sink(ev)

        def compare(c: BkClient) -> None:
            for s, e in record.remaining():
                s -= (s - start) % SECTOR  # a T's sub-256-byte tail (verify_flash) is compared from its sector
                for a in [a for a in failed if s <= a < e]:
                    del failed[a]  # compared (again) now
                verify_flash(c, s, data[s - start:e - start], sink, cancel or self.cancel_token, record=record)

        self._recovering("verify", compare, record)
        bad: list[tuple[int, int]] = []
        for a in sorted(failed):
            if bad and bad[-1][1] == a:
                bad[-1] = (bad[-1][0], a + failed[a])
            else:
                bad.append((a, a + failed[a]))
        report = VerifyReport(not bad, bad, len(data))
        self.sink(Stage("done", report.summary()))
        return report

    def reboot(self) -> None:
        client = self._client()
        self.stop_keepalive()
        self.sink(Stage("reboot", "rebooting into the firmware"))
        client.reboot()
        self.info = None

    def confirm_boot(self, seconds: float = BOOT_CHECK_S, banner: bytes = b"OpenBK") -> bool:
        """After a reboot: watch the log for the firmware's banner (OpenBK prints its version)."""
        log = self.watch(seconds, until=banner)
        if log:
            self.sink(BootLog(log))
        found = banner in log
        self.sink(Notice("info" if found else "warning",
                         "the new firmware is running (banner seen)" if found else
                         f"no {banner.decode()} banner within {seconds:.0f} s of the reboot; check the log"))
        return found

    def watch(self, seconds: float, until: bytes | None = None) -> bytes:
        """Read the application's log after a reboot (115200), stopping early when `until` appears."""
        if self.port is None:
            raise PortError("port is not open")
        self.port.baudrate = LINK_BAUD
        got = bytearray()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            got += self.port.read(self.port.in_waiting or 1)
            if until and until in got:
                break
        return bytes(got)
