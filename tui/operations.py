"""Running one engine operation at a time: the worker, the Session it links, its outcome and cancellation.

Every blocking engine call runs in a Textual thread worker. A Session owns the port while an operation
runs (or while the chip is held in the bootloader after Connect); Release (d) reboots the chip and hands
the port back to the log. What the worker learns reaches the UI thread as messages (tui/messages.py).
"""

from __future__ import annotations

from typing import Callable, Optional

from bkbench.core.backups import BackupEntry
from bkbench.core.errors import BkError, LinkError, OperationCancelled
from bkbench.core.link.doctor import Diagnosis
from bkbench.core.ops.events import CancelToken, OperationRecord, SectorState
from bkbench.core.session import Session
from textual import work
from textual.notifications import SeverityLevel

from .messages import ChipConnected, OperationDone
from .ranges import ranges_text
from .state import AppState
from .widgets.flashmap import FlashMapModel

Body = Callable[[Optional[Session], CancelToken], str]


class OperationsMixin(AppState):
    """BkBenchApp's operation runner; the workflows hand it a body(session, cancel) -> summary."""

    def start_operation(self, name: str, body: Body, release_after: bool = False, needs_chip: bool = True) -> bool:
        if self.busy:
            self.notify(f"{self.op_name} is still running; cancel it first (x).", severity="warning")
            return False
        self._sync_ports()
        if not self.url:
            self.notify("Choose a port first (Ports pane: type a URL and press Enter).", severity="warning")
            return False
        if self.station_busy_on(self.url):
            self.notify(f"The multi-port view is running on {self.url} (m shows it).", severity="warning")
            return False
        self.busy = True
        self.op_name = name
        self.cancel_token = CancelToken()
        self.op_pane.begin(name)
        self._prefer_log = False
        self._apply_layout()
        self._map_phase = ""
        if self.narrow and self.active_pane not in ("op", "flash"):
            self.show_pane("op")
        self._operation_worker(name, body, self.cancel_token, release_after, needs_chip)
        self.refresh_bindings()
        return True

    def _sync_ports(self) -> None:
        """What the Ports pane shows is what the operation uses (a URL typed without Enter included)."""
        try:
            ports = self.ports_pane
        except Exception:
            return
        if ports.url and ports.url != self.url:
            self.url = ports.url
            self.sub_title = self.url
            if self.session is None and self.use_monitor:
                self.start_monitor(self.url)
        self.baud, self.reset, self.keep_trying = ports.baud, ports.reset, ports.keep_trying

    @work(thread=True, exclusive=True, group="operation", exit_on_error=False)
    def _operation_worker(self, name: str, body: Body, cancel: CancelToken, release_after: bool,
                          needs_chip: bool) -> None:
        outcome, message, record = "ok", "", None
        try:
            self._pause_monitor(name)
            session = self._ensure_session(cancel) if needs_chip else self.session
            message = body(session, cancel) or "done"
            if release_after:
                self._release_session(reboot=False)  # the engine rebooted the chip after its write
        except OperationCancelled as exc:
            outcome, record = "cancelled", exc.record
            message = self._cancel_message(name, exc)
        except BkError as exc:
            outcome, record = "failed", exc.record
            if isinstance(exc, LinkError) and exc.diagnosis is not None:
                # title and advice are shown as a list in the Operation pane
                message = exc.reason + " (see the link doctor's advice)"
                self.call_from_thread(self._show_final_diagnosis, exc.diagnosis)
            else:
                message = str(exc) + (f" ({exc.hint})" if exc.hint else "")
            self._drop_session()  # the link state is unknown after an error: start clean next time
        except Exception as exc:  # a bug or an unexpected I/O error must not leave the UI stuck
            outcome, message = "failed", f"unexpected error: {exc!r}"
            self._drop_session()
        finally:
            if self.session is None:
                self._resume_monitor()
            self.post_message(OperationDone(name, outcome, message, record))

    def _show_final_diagnosis(self, diag: Diagnosis) -> None:
        self.linking = False
        self.drain_events()
        self.op_pane.show_diagnosis(diag, final=True)
        self._apply_layout()

    def on_operation_done(self, message: OperationDone) -> None:
        name, outcome, text = message.name, message.outcome, message.text
        self.linking = False
        self.drain_events()
        self.call_after_refresh(self._sync_diag_layout)
        self.busy = False
        self.cancel_token = None
        if outcome == "cancelled":
            self.last_cancel_record = message.record
        self.op_pane.finish(outcome, text)
        self.last_outcome = (outcome, f"{name}: {text}")
        self.refresh_bindings()
        severity: SeverityLevel = "information" if outcome == "ok" else "warning" if outcome == "cancelled" else "error"
        self.notify(text, title=f"{name} {outcome}", severity=severity, timeout=8)
        self._update_statusline()

    def _cancel_message(self, name: str, exc: OperationCancelled) -> str:
        """What a cancelled write did and did not do: from the engine's OperationRecord when it has one
        (the flash map only mirrors events), else from the map."""
        record: OperationRecord | None = exc.record
        if name in ("Write", "Restore", "Write config") and record is not None and record.kind == "verify":
            return ("cancelled during the final compare: the write itself completed, every sector verified by CRC; "
                    "v compares again")
        if name in ("Write", "Restore", "Write config"):
            if record is not None and record.kind != "read":
                written = ranges_text(record.done, limit=8)
                left = record.describe_remaining()
            else:
                written = ranges_text(self.flash_model.ranges(
                    [SectorState.WRITTEN, SectorState.VERIFIED, SectorState.SKIPPED]), limit=8)
                left = ranges_text(self.flash_model.ranges([SectorState.PENDING, SectorState.ERASED]))
                if record is not None:  # cancelled during the backup taken first: nothing was written
                    written, left = "none (cancelled during the backup first)", "everything"
            return f"cancelled between sectors. Written and verified: {written}; not written: {left}"
        if name == "Backup" and record is not None and record.kind == "read":
            done = sum(e - s for s, e in record.done)
            rem = record.remaining()
            at = f"0x{rem[0][0]:06X}" if rem else "the end"
            return (f"cancelled between sectors: {done // 1024} of {record.length // 1024} KiB read and kept; "
                    f"b resumes at {at}")
        if record is None:  # nothing sector-wise was running (a link, a doctor run)
            return f"cancelled ({exc})"
        return f"cancelled between sectors ({exc})"

    def _ensure_session(self, cancel: CancelToken) -> Session:
        """Worker thread: the connected Session, opening and linking it when needed."""
        if self.session is not None:
            return self.session
        self.log_buffer.note("── connecting: reset the chip if asked ──", "reset")
        session = Session(self.url, baud=self.baud, on_event=self.pump.sink, reset=self.reset,
                          link_timeout=self.link_timeout, unfinished=self.unfinished_backups)
        session.open()
        if self.keep_trying and self._manual_reset(session):
            session.link_timeout = float("inf")  # a person with a CEN wire in hand: wait until cancelled
            self.call_from_thread(setattr, self.op_pane, "endless", True)
        self.linking = True
        try:
            info = session.connect(cancel=cancel)
        except BaseException:
            session.close()
            raise
        finally:
            self.linking = False
        self.session, self.chip_info = session, info
        self.post_message(ChipConnected(info))
        return session

    def _manual_reset(self, session: Session) -> bool:
        from bkbench.core.link.reset import for_port

        return bool(for_port(session.reset, session.port)[0].manual)

    def on_chip_connected(self, message: ChipConnected) -> None:
        info = message.info
        if self.last_written is not None and info.mac != self._written_mac:
            self.last_written = None  # another chip: `v` compares with its backup again
        self._written_mac = info.mac
        size, chip = info.flash_size, info.chip
        if (chip, size) != (self.flash_model.chip, self.flash_model.flash_size):
            self.flash_model = FlashMapModel(chip, size)
            self.flash_pane.set_model(self.flash_model)
        parts = [chip]
        if info.bootloader:
            parts.append(f"boot {info.bootloader}")
        if info.flash_name:
            parts.append(str(info.flash_name))
        parts.append(f"{size // 1024} KiB")
        if info.mac:
            parts.append(f"MAC {info.mac}")
        self.sub_title = " · ".join(parts)
        self.op_pane.log_line("connected: " + ", ".join(parts))
        self.refresh_bindings()

    def _release_session(self, reboot: bool) -> None:
        """Worker thread: (reboot the chip into its firmware and) close the port."""
        session, self.session = self.session, None
        if session is None:
            return
        try:
            if reboot:
                session.reboot()
                self.log_buffer.note("── chip rebooted: watching its log ──", "reset")
        finally:
            session.close()

    def _drop_session(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            try:
                session.close()
            except Exception:
                pass

    def backups_for_chip(self) -> list[BackupEntry]:
        """Full backups of the connected chip (by MAC via the library), newest first."""
        info = self.chip_info
        if info is None:
            return list(self.library.list())
        found: list[BackupEntry] = list(self.library.find_for(info.chip, info.mac))
        if found or info.mac:
            return found
        return [e for e in self.library.list() if e.meta.get("chip") == info.chip and not e.meta.get("partial")]

    def action_release(self) -> None:
        if self.busy:
            self.notify("An operation is running.", severity="warning")
            return
        if self.session is None:
            self.notify("The port is not held by a session.")
            return

        def body(_session: Session | None, _cancel: CancelToken) -> str:
            self._release_session(reboot=True)
            return "chip rebooted, port handed back to the serial log"

        self.start_operation("Release", body, needs_chip=False)

    def action_cancel_op(self) -> None:
        if not self.busy or self.cancel_token is None:
            self.notify("No operation is running.")
            return
        self.cancel_token.cancel()
        self.op_pane.log_line("cancel requested: stopping after the current sector")
        self.notify("Cancelling after the current sector…", severity="warning")
