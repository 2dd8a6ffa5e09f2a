"""A session with one chip on one port: the facade the CLI and the TUI both drive.

One owner of the port at a time; every method emits events to `on_event` and raises BkError
subclasses with one clear sentence.
"""

from __future__ import annotations

import struct
import time

from .backups import BackupEntry, BackupLibrary
from .client import LINK_BAUD, BkClient, ChipInfo
from .errors import BkError, LinkError, LinkLost, PortError, ProtocolError, UnsafeWriteError
from .layout import RF_OFFSET, SECTOR, protected_ranges
from .link.baud import adapter_key, climb, remembered
from .link.doctor import LinkDoctor, PortTap
from .link.reset import ResetStrategy, for_port, get_strategy
from .ops.events import CancelToken, EventSink, LinkAttempt, Notice, OperationRecord, Stage, null_sink
from .ops.flash_ops import OperationFailed, VerifyReport, WriteReport, read_flash, verify_flash, write_flash
from .transport import open_port


def parse_mac(rf_sector: bytes) -> str | None:
    """MAC from the RF/TLV sector: item tag 0x11111102, length 6, at +0x1C (checked on real dumps)."""
    if rf_sector[:4] != b"TLV\x00":
        return None
    if rf_sector[0x1C:0x24] != struct.pack("<II", 0x11111102, 6):
        return None
    mac = rf_sector[0x24:0x2A]
    return ":".join(f"{b:02X}" for b in mac)


class Session:
    def __init__(
        self,
        url: str,
        baud: int = 921600,
        on_event: EventSink = null_sink,
        reset: str | ResetStrategy = "auto",
        link_timeout: float = 20.0,
    ) -> None:
        self.url = url
        self.baud = baud
        self.sink = on_event
        self.reset = reset if isinstance(reset, ResetStrategy) else get_strategy(reset)
        self.link_timeout = link_timeout
        self.port = None
        self.client: BkClient | None = None
        self.info: ChipInfo | None = None
        self.cancel_token: CancelToken | None = None  # used when a call passes none (the CLI's Ctrl-C)
        self.doctor = None  # LinkDoctor of the last link attempt (core.link.doctor)
        self.diagnosis = None  # its latest Diagnosis, shown by the UIs while linking
        # Defaults for write() callers that cannot pass them (e.g. `config write`).
        self.backup_first = True
        self.backup_library: BackupLibrary | None = None

    # ------------------------------------------------------------------ port
    def open(self) -> None:
        if self.port is None:
            self.port = open_port(self.url, LINK_BAUD)
            self.client = BkClient(self.port, self.sink)

    def close(self) -> None:
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
    def link(self, cancel: CancelToken | None = None, timeout: float | None = None) -> None:
        # --- link doctor integration (core/link/doctor.py): the doctor watches RX while linking, its
        # current Diagnosis goes into LinkAttempt.hint, `self.diagnosis` and the LinkError hint.
        client = self._client()
        strategy, note = for_port(self.reset, self.port)
        if note:
            self.sink(Notice("warning", note))
        strategy.check()
        timeout = self.link_timeout if timeout is None else timeout
        doctor = LinkDoctor(strategy)
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
                self.diagnosis = doctor.current()
                self.sink(LinkAttempt(n, elapsed, self.diagnosis.hint()))

        client.port = PortTap(self.port, doctor)
        try:
            # First a short try without reset: the chip may already wait in its bootloader.
            cancel = cancel or self.cancel_token
            # A chip left linked at a faster rate (an earlier session that was killed) answers there.
            good = remembered(adapter_key(self.url)).get("good")
            if isinstance(good, int) and good != LINK_BAUD and client.link(0.1, cancel, None, baud=good):
                self.sink(Notice("info", f"the chip was still linked at {good} baud"))
                doctor.link_ok()
                return
            self.port.baudrate = LINK_BAUD
            linked = client.link(0.3, cancel, None) or client.link(timeout, cancel, on_attempt)
        finally:
            client.port = self.port
        if linked:
            doctor.link_ok()
            return
        self.diagnosis = diag = doctor.current(final=True)
        err = LinkError(f"no answer to the link check within {timeout:.0f} s: {diag.title}",
                        hint=" ".join(diag.advice) or "run `bkbench doctor` for a diagnosis")
        err.diagnosis = diag  # type: ignore[attr-defined]
        raise err
        # --- end link doctor integration

    def connect(self, cancel: CancelToken | None = None) -> ChipInfo:
        self.open()
        self.link(cancel)
        client = self._client()
        self.sink(Stage("identify", "identifying chip and bootloader"))
        try:
            info = client.identify()
        except ProtocolError as exc:
            # Linked, then lost: typical of a board that loads RX1/TX1. Let the doctor say so.
            if self.doctor is None:
                raise
            self.doctor.note_error(exc)
            diag = self.diagnosis = self.doctor.current(final=True)
            err = LinkError(f"the chip answered, then stopped: {diag.title}", hint=" ".join(diag.advice))
            err.diagnosis = diag  # type: ignore[attr-defined]
            raise err from exc
        info.baud = self.port.baudrate
        self.info = info
        if self.baud != LINK_BAUD or self.port.baudrate != LINK_BAUD:
            self._switch_baud(cancel)
        try:
            info.mac = parse_mac(client.read_4k(RF_OFFSET.get(info.chip, 0x1D0000)))
        except ProtocolError:
            info.warnings.append("could not read the RF sector for the MAC")
        self.sink(Stage("connected", f"{info.chip} ({info.bootloader or 'unknown bootloader'}) at {info.baud} baud"))
        return info

    def _switch_baud(self, cancel: CancelToken | None) -> None:
        # --- baud ladder (core/link/baud.py): step down on failure, remember per adapter.
        client = self._client()
        assert self.info is not None
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
        if self.info is None:
            self.connect()
        assert self.info is not None
        return self._client(), self.info

    def read(self, start: int = 0, length: int | None = None, cancel: CancelToken | None = None) -> bytes:
        client, info = self._require()
        if length is None:
            length = info.flash_size - start
        if start < 0 or length <= 0 or start + length > info.flash_size:
            raise BkError(f"range 0x{start:X}+0x{length:X} is outside the {info.flash_size // 1024} KiB flash")
        record = OperationRecord("read", start, length)
        buf = bytearray(length)
        return self._resuming(
            "read", record,
            lambda c: read_flash(c, start, length, self.sink, cancel or self.cancel_token, record=record, into=buf))

    def _resuming(self, what: str, record: OperationRecord, run):
        """Run an operation; if the chip stops answering mid-way (reset, brown-out) and this port can
        reset it, reconnect and continue from the record instead of starting over."""
        stalled = 0
        left = sum(e - s for s, e in record.remaining())
        while True:
            try:
                return run(self._client())
            except OperationFailed as exc:
                now_left = sum(e - s for s, e in record.remaining())
                stalled = 0 if now_left < left else stalled + 1
                left = now_left
                strategy, _ = for_port(self.reset, self.port)
                if not isinstance(exc.__cause__, LinkLost) or stalled >= 3 or strategy.manual:
                    raise
                rem = record.remaining()  # empty when the chip was lost in the final check
                self.sink(Notice("warning", f"{exc.__cause__}: resetting the chip and resuming the {what} " + (
                    f"at 0x{rem[0][0]:06X}" if rem else "with its final check")))
                if not self._reconnect():
                    raise

    def _reconnect(self, tries: int = 3) -> bool:
        """Reset, link and identify again after the chip was lost; False if it never came back."""
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

    def backup_meta(self, partial: bool = False) -> dict:
        info = self.info
        assert info is not None
        meta = info.to_json()
        meta.update({"port": self.url, "partial": partial})
        meta["adapter"] = getattr(self.port, "name", "") or ""
        return meta

    def backup(self, library: BackupLibrary | None = None, cancel: CancelToken | None = None) -> BackupEntry:
        library = library or BackupLibrary()
        data = self.read(0, None, cancel)
        self.sink(Stage("backup", "saving the verified dump"))
        entry = library.save(data, self.backup_meta())
        self.sink(Notice("info", f"backup saved: {entry.path}"))
        return entry

    def write(
        self,
        data: bytes,
        start: int,
        cancel: CancelToken | None = None,
        *,
        allow_protected: bool = False,
        backup_library: BackupLibrary | None = None,
        backup_first: bool | None = None,
        differential: bool = True,
        confirm_sector: bool = False,
    ) -> WriteReport:
        """Write `data` at `start`. `confirm_sector` marks a deliberate one-sector edit (config)."""
        client, info = self._require()
        backup_first = self.backup_first if backup_first is None else backup_first
        backup_library = backup_library or self.backup_library
        end = start + len(data)
        if start % SECTOR:
            raise BkError(f"write start 0x{start:X} is not on a 4 KiB boundary")
        if end > info.flash_size:
            raise BkError(f"data ends at 0x{end:X}, past the end of the {info.flash_size // 1024} KiB flash")
        if not allow_protected:
            for p_start, p_end in protected_ranges(info.chip):
                if start < p_end and end > p_start:
                    raise UnsafeWriteError(
                        f"the write 0x{start:06X}-0x{end:06X} touches 0x{p_start:06X}-0x{p_end:06X} "
                        "(bootloader or RF calibration); refusing without an explicit request",
                        hint="pass --allow-protected only if you really mean to replace them",
                    )
        backup = None
        library = backup_library or BackupLibrary()
        if backup_first:
            existing = library.find_for(info.chip, info.mac, info.to_json()["flash_id"])
            if existing:
                self.sink(Notice("info", f"a full backup of this chip exists: {existing[0].path.name}"))
            else:
                self.sink(Notice("info", "no backup of this chip yet: taking a full verified backup first"))
                backup = self.backup(library, cancel)
        repair = self._repair_source(backup, library)
        record = OperationRecord("write", start, len(data) + (-len(data)) % SECTOR)
        report = self._resuming("write", record, lambda c: write_flash(
            c, start, data, self.sink, cancel or self.cancel_token, differential=differential, record=record,
            repair=repair))
        report.backup = backup
        self.sink(Stage("done", report.summary()))
        return report

    def _repair_source(self, backup: BackupEntry | None, library: BackupLibrary | None):
        """Where to take a sector from if a damaged command hits one outside the write: this chip's backup."""
        info = self.info
        if backup is None and library is not None and info is not None:
            found = library.find_for(info.chip, info.mac, info.to_json()["flash_id"])
            backup = found[0] if found else None
        if backup is None:
            return None
        cache: dict[str, bytes] = {}

        def repair(addr: int, size: int) -> bytes | None:
            if "img" not in cache:
                cache["img"] = (library or BackupLibrary()).load(backup)
            img = cache["img"]
            return img[addr : addr + size] if addr + size <= len(img) else None

        return repair

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
    ) -> WriteReport:
        """Write a full backup back. The bootloader only on request; the chip's own RF/TLV sector
        (calibration, MAC) is kept unless `keep_rf` is False."""
        client, info = self._require()
        if len(image) != info.flash_size:
            raise BkError(f"the backup is {len(image)} bytes but this chip's flash is {info.flash_size}")
        if expected_chip and expected_chip != info.chip:
            raise BkError(f"the backup is of a {expected_chip}, but this chip is a {info.chip}")
        rf = RF_OFFSET.get(info.chip, 0x1D0000)
        start = 0 if include_bootloader else 0x11000
        spans = [(start, rf), (rf + SECTOR, info.flash_size)] if keep_rf else [(start, info.flash_size)]
        total = WriteReport()
        first = True
        for a, b in spans:
            rep = self.write(image[a:b], a, cancel, allow_protected=True, backup_library=backup_library,
                             backup_first=(self.backup_first if backup_first is None else backup_first) and first)
            first = False
            total.written += rep.written
            total.skipped += rep.skipped
            total.erased_only += rep.erased_only
            total.changed += rep.changed
            total.backup = total.backup or rep.backup
        return total

    def verify(self, data: bytes, start: int = 0, cancel: CancelToken | None = None) -> VerifyReport:
        client, info = self._require()
        if start + len(data) > info.flash_size:
            raise BkError("the file is larger than the flash")
        report = verify_flash(client, start, data, self.sink, cancel or self.cancel_token)
        self.sink(Stage("done", report.summary()))
        return report

    def reboot(self) -> None:
        client = self._client()
        self.sink(Stage("reboot", "rebooting into the firmware"))
        client.reboot()
        self.info = None

    def confirm_boot(self, seconds: float = 5.0, banner: bytes = b"OpenBK") -> bool:
        """After a reboot: watch the log for the firmware's banner (OpenBK prints its version)."""
        log = self.watch(seconds, until=banner)
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
