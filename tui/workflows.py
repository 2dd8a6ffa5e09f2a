"""The workflows' dialogs and their one engine call each: connect, doctor, backup, write, verify, restore,
analysis and the OpenBK config editor. Each body runs in the operation worker (operations.py) and calls the
Session method the CLI calls for the same action (core/session.py); only rendering and dialogs live here."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bkbench.core.backups import BackupEntry, StorageError
from bkbench.core.chips import DEFAULT_CHIP
from bkbench.core.errors import BkError, VerifyFailed
from bkbench.core.layout import OBK_CONFIG_OFFSET, SECTOR, Partition
from bkbench.core.ops.events import CancelToken, Notice
from bkbench.core.session import Session
from textual import work

from .firmware import WriteRequest
from .messages import AnalysisReady
from .ranges import ranges_text
from .screens.analysis import AnalysisScreen
from .screens.backups import BackupsScreen
from .screens.config import ConfigScreen, confirm_text
from .screens.confirm import ConfirmScreen
from .screens.write import WriteScreen
from .state import AppState, Written
from .widgets.flashmap import FlashMapModel

if TYPE_CHECKING:
    from bkbench.core.analysis.device_apply import EntryPlan


class DoctorFound(BkError):
    """The link doctor ran to the end and found a problem (its diagnosis is shown in the pane)."""


class WorkflowsMixin(AppState):
    """BkBenchApp's workflows, started from key bindings, the command palette and the backups library."""

    def action_connect(self) -> None:
        def body(_session: Session | None, _cancel: CancelToken) -> str:
            chip = self.chip_info.chip if self.chip_info is not None else "?"
            return f"connected to {chip}; the chip waits in its bootloader (d releases it)"

        if self.session is not None and not self.busy:
            self.notify("Already connected; d releases the port.")
            return
        self.start_operation("Connect", body)

    def action_doctor(self) -> None:
        """Run the link doctor (read-only: listen, link with the reset method, probe, identify)."""

        def body(_session: Session | None, cancel: CancelToken) -> str:
            from bkbench.core.link.doctor import diagnose

            self._drop_session()  # the doctor opens the port itself
            try:
                found = self.backups_for_chip() if self.chip_info is not None else []
            except BkError:
                found = []
            dump = found[0].path if found else None  # its Tuya config names what sits on P10/P11
            prior = self.rx_capture if self.monitor_url == self.url else None  # what the serial log saw
            diag = diagnose(self.url, reset=self.reset, seconds=self.doctor_seconds, sink=self.pump.sink,
                            dump=dump, cancel=cancel, prior=prior)
            self.call_from_thread(self._show_final_diagnosis, diag)
            if diag.kind != "ok":  # a diagnosis that found a problem is not an "ok" toast
                # the title and advice are on screen below: the outcome names the verdict only (no repeat)
                raise DoctorFound(f"{diag.kind} (what to do is shown below)")
            return f"{diag.kind}: {diag.title}"

        self.start_operation("Doctor", body, needs_chip=False)

    # -- backup ----------------------------------------------------------------------------------
    def action_backup(self) -> None:
        self.start_operation("Backup", self._do_backup)

    def _do_backup(self, session: Session | None, cancel: CancelToken) -> str:
        """The engine's backup: read only when the library holds no image of this content (a stopped backup
        of the same content is continued), checked against the chip's block CRCs, then saved."""
        from bkbench.core.analysis.devices import note_after_backup

        assert session is not None
        self.call_from_thread(self.flash_model.reset)
        try:
            got = session.backup(self.library, cancel)
        except StorageError as exc:
            if exc.data is not None:  # read and verified, but the library refused it
                self.call_from_thread(self.offer_save_retry, exc)
            raise
        name = got.entry.path.name
        if not got.taken:
            return f"already in the library: {name} holds this chip's content (not read again)"
        # the closest community device list entry, when one is cached
        note_after_backup(got.entry.path.read_bytes(), got.entry.meta.get("chip"),
                          lambda text: self.pump.sink(Notice("info", text)))
        return f"saved {name} in the library"

    def offer_save_retry(self, exc: StorageError) -> None:
        """A verified dump the library could not take: say where it was rescued, offer a retry."""
        where = f"A copy was saved to {exc.fallback}." if exc.fallback else "It is only in memory now."

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(lambda: self._retry_save(exc), thread=True, group="save-retry")

        self.push_screen(ConfirmScreen("The backup could not be saved", f"{exc}\n{where}\n"
                                       "Free some space or fix the folder, then retry.", yes="Retry [y]"), answered)

    def _retry_save(self, exc: StorageError) -> None:
        assert exc.data is not None and exc.meta is not None
        try:
            entry = self.library.save(exc.data, exc.meta)
        except StorageError as again:
            self.call_from_thread(self.offer_save_retry, again)
            return
        self.call_from_thread(self.notify, f"Backup saved: {entry.path.name}")

    # -- write -----------------------------------------------------------------------------------
    def action_write(self) -> None:
        if self.busy:
            self.notify("An operation is running.", severity="warning")
            return
        info = self.chip_info
        chip = info.chip if info is not None else self.flash_model.chip
        size = info.flash_size if info is not None else self.flash_model.flash_size
        self.push_screen(WriteScreen(chip, size, info is not None, data_dir=self.base_dir), self._write_chosen)

    def _write_chosen(self, request: WriteRequest | None) -> None:
        if request is None:
            return
        warn = "\n".join(f"warning: {w}" for w in request.warnings)
        then = ("A backup is made first if this chip has none. Then restore (the chip keeps its RF calibration), "
                "verify and reboot." if request.plan.dump else
                "A backup is made first if this chip has none. Then write, verify and reboot.")
        body = (f"{request.path.name}\n{request.description}\n"
                f"flash 0x{request.start:06X}..0x{request.end:06X} ({len(request.payload) // 1024} KiB)"
                + (" INCLUDING THE BOOTLOADER" if request.includes_bootloader else "")
                + f"\n{then}" + (f"\n{warn}" if warn else ""))

        def answered(yes: bool | None) -> None:
            if yes:
                self.start_operation("Write", lambda s, c: self._do_write(s, c, request), release_after=True)

        self.push_screen(ConfirmScreen("Write this image?", body, yes="Write [y]"), answered)

    def _do_write(self, session: Session | None, cancel: CancelToken, request: WriteRequest) -> str:
        """The engine's write of a placed file (`bkbench write` does the same): a backup first when the
        library has none of this content, the guarded write, the final compare, the reboot and its banner."""
        assert session is not None
        self.call_from_thread(self.flash_model.reset)
        try:
            if request.plan.dump:
                report = session.restore(request.flash, cancel, backup_library=self.library,
                                         expected_chip=request.firmware.info.chip,
                                         include_bootloader=request.includes_bootloader)
            else:
                report = session.write_image(request.plan, cancel, backup_library=self.library)
        except VerifyFailed:
            self.last_written = Written(request.path.name, session.written)
            raise
        self.last_written = Written(request.path.name, session.written)
        parts = [f"{report.written} sectors written, {report.skipped} identical"]
        if report.backup is not None:
            parts.append(f"backup first: {Path(report.backup.path).name}")
        return ", ".join(parts + ["verified", "rebooted"])

    # -- verify ----------------------------------------------------------------------------------
    def action_verify(self) -> None:
        if self.last_written is not None:
            self.verify_written(self.last_written)  # right after a write: compare with what was written
            return
        entry = self._newest_backup_or_say(
            "No backup of this chip to verify against: open the library (l) or back up (b).")
        if entry is not None:
            self.verify_against(entry)

    def _newest_backup_or_say(self, none_text: str) -> BackupEntry | None:
        """The newest full backup of the connected chip, or None after telling the user why there is none."""
        try:
            found = self.backups_for_chip()
        except (BkError, OSError) as exc:
            self.notify(f"Backup library unavailable: {exc}", severity="error")
            return None
        if not found:
            self.notify(none_text, severity="warning")
            return None
        return found[0]

    def verify_against(self, entry: BackupEntry) -> None:
        name = entry.path.name
        self._start_verify(name, lambda: [(0, self.library.load(entry))], f"the chip matches {name}",
                           f"the chip differs from {name}")

    def verify_written(self, written: Written) -> None:
        spans = [(s, s + len(d)) for s, d in written.spans]
        self._start_verify(written.name, lambda: written.spans,
                           f"the chip matches the written {written.name} ({ranges_text(spans)})",
                           f"the chip differs from the written {written.name}")

    def _start_verify(self, name: str, spans, same: str, differs: str) -> None:
        def body(session: Session | None, cancel: CancelToken) -> str:
            assert session is not None
            todo = spans()
            self.call_from_thread(self.flash_model.reset)
            bad: list[tuple[int, int]] = []
            for start, data in todo:
                bad += session.verify(data, start, cancel).mismatched  # the engine marks each sector
            if bad:
                raise BkError(f"{differs} in {ranges_text(bad)}")
            return same

        self.start_operation("Verify", body)

    # -- library and restore ---------------------------------------------------------------------
    def action_library(self) -> None:
        try:
            entries = self.library.list()
        except (BkError, OSError) as exc:
            self.notify(f"Backup library unavailable: {exc}", severity="error")
            return
        self.push_screen(BackupsScreen(entries, self.library), self._library_chosen)

    def _library_chosen(self, choice: tuple[str, BackupEntry] | None) -> None:
        if not choice:
            return
        what, entry = choice
        if what == "analyze":
            self.analyze_entry(entry)
        elif what == "verify":
            self.verify_against(entry)
        elif what == "restore":
            self.restore(entry)

    def restore(self, entry: BackupEntry) -> None:
        name = entry.path.name
        body = (f"Restore {name} ({entry.meta.get('chip', '?')}, {entry.meta.get('time', '')}) onto the chip.\n"
                "Everything after the bootloader to the end of the flash is rewritten (the bootloader and the "
                "chip's RF calibration are kept); identical sectors are skipped. A backup is made first if this "
                "chip has none. Then verify and reboot.")
        if entry.derived is not None:  # not read from a chip: say what it is made of (core/backups.py)
            from .screens.backups import provenance_lines

            body += "\nThis entry is " + "; ".join(provenance_lines(entry.meta)) + "."

        def answered(yes: bool | None) -> None:
            if yes:
                self.start_operation("Restore", lambda s, c: self._do_restore(s, c, entry), release_after=True)

        self.push_screen(ConfirmScreen("Restore this backup?", body, yes="Restore [y]"), answered)

    def _do_restore(self, session: Session | None, cancel: CancelToken, entry: BackupEntry) -> str:
        """The engine's restore (`bkbench restore` does the same): the dump checked against the chip, the chip's
        bootloader and RF calibration kept, the final compare, the reboot."""
        assert session is not None
        data = self.library.load(entry)
        self.call_from_thread(self.flash_model.reset)
        try:
            report = session.restore(data, cancel, backup_library=self.library, expected_chip=entry.meta.get("chip"))
        finally:
            if session.written:
                self.last_written = Written(entry.path.name, session.written)
        parts = [f"{report.written} sectors written, {report.skipped} identical"]
        if report.backup is not None:
            parts.append(f"backup first: {Path(report.backup.path).name}")
        return ", ".join(parts + ["verified", "rebooted"])

    # -- analysis and the OpenBK config ----------------------------------------------------------
    def action_analyze(self) -> None:
        entry = self._newest_backup_or_say("No backup to analyze: back the chip up first (b).")
        if entry is not None:
            self.analyze_entry(entry)

    @work(thread=True, exclusive=True, group="analysis", exit_on_error=False)
    def analyze_entry(self, entry: BackupEntry) -> None:
        """Analyze a library dump off the UI thread, then show the report."""
        self._analyze(lambda: self.library.load(entry), entry.path.name)

    @work(thread=True, exclusive=True, group="analysis", exit_on_error=False)
    def analyze_file(self, path: Path) -> None:
        """Analyze any file off the UI thread (no chip needed): a dump, a Tuya KV region, an image."""
        from bkbench.core.files import read_input_file

        self._analyze(lambda: read_input_file(path, "file to analyze"), str(path))

    def _analyze(self, load, source: str) -> None:
        from bkbench.core.analysis.dump import analyze_dump

        try:
            analysis = analyze_dump(load())
            result = analysis.to_json()  # secrets masked
        except Exception as exc:
            self.call_from_thread(self.notify, f"Cannot analyze {Path(source).name}: {exc}", severity="error")
            return
        self.post_message(AnalysisReady(analysis, result, source))

    def on_analysis_ready(self, message: AnalysisReady) -> None:
        self.last_analysis = message.analysis
        self._label_partitions(message.result)

        def closed(what: str | EntryPlan | None) -> None:
            if what == "edit":
                self.action_config()
            elif what is not None and not isinstance(what, str):  # a community entry to start the editor with
                self.action_config(entry_plan=what)

        self.push_screen(AnalysisScreen(message.result, message.source), closed)

    def _label_partitions(self, result: dict) -> None:
        """Draw the partitions the analysis found in the flash map when they differ from the default layout."""
        chip, size = result.get("chip"), result.get("flash_size") or result.get("size")
        model = self.flash_model
        if chip != model.chip or size != model.flash_size:
            if self.chip_info is not None or not chip or not size:
                return  # a dump of another chip: keep the connected chip's map
            model = FlashMapModel(chip, size)
            self.flash_model = model
            self.flash_pane.set_model(model)
        found = tuple(Partition(p["name"], p["kind"], int(p["start"]), int(p["size"]))
                      for p in result.get("partitions") or [] if p.get("size"))
        if found and model.set_partitions(found):
            self.flash_pane.set_model(model)
            self.op_pane.log_line("flash map: partitions labelled from the analysis")

    def action_config(self, entry_plan: EntryPlan | None = None) -> None:
        """Read the chip's OpenBK config sector, then open the editor (with a community entry applied)."""

        def body(session: Session | None, cancel: CancelToken) -> str:
            from bkbench.core.config_file import load_config

            assert session is not None and self.chip_info is not None
            info = self.chip_info
            offset = OBK_CONFIG_OFFSET.get(info.chip)
            if offset is None:
                raise BkError(f"OpenBK's config location on {info.chip} is not known: bkbench does not edit it there")
            self.call_from_thread(self.flash_model.reset)
            found = load_config(session.read(offset, SECTOR, cancel), info.chip, create=True, mac=info.mac)
            note = (f"{found.created} Starting from OpenBK's defaults." if found.created
                    else "Old bkbench checksum (OpenBK rejects it at boot): saving fixes it." if found.config.legacy_crc
                    else f"read from the chip at 0x{offset:06X}")
            mapping = self._tuya_mapping()
            self.call_from_thread(self._open_config_editor, found.config, mapping, note, info.chip, offset,
                                  entry_plan)
            return f"config sector 0x{offset:06X} read"

        self.start_operation("Read config", body)

    def edit_config_file(self, path: Path) -> None:
        """Edit the OpenBK config in a file (a 4 KiB config sector or a full dump) and save a copy."""
        from .configfile import load_config_file

        try:
            loaded = load_config_file(Path(path), self.flash_model.chip)
        except (OSError, BkError) as exc:
            self.notify(f"Cannot edit {Path(path).name}: {exc}", severity="error")
            return

        def saved(new_cfg) -> None:
            if new_cfg is None:
                return
            try:
                out = loaded.save(new_cfg)
            except (OSError, BkError) as exc:
                self.notify(f"Not saved: {exc}", severity="error")
                return
            self.notify(f"Saved the edited config in {out} (the original file is unchanged).", timeout=10)
            self.op_pane.log_line(f"config saved: {out}")

        self.push_screen(ConfigScreen(loaded.config, loaded.mapping, loaded.note, loaded.chip or DEFAULT_CHIP,
                                      loaded.offset, save_label="Save to file"), saved)

    def _tuya_mapping(self):
        """Worker thread: the Tuya pin mapping from the newest backup of this chip (None without one)."""
        try:
            found = self.backups_for_chip()
            if not found:
                return None
            from bkbench.core.analysis.dump import analyze_dump

            return analyze_dump(self.library.load(found[0])).mapping
        except Exception:
            return None

    def _open_config_editor(self, cfg, mapping, note: str, chip: str, offset: int,
                            entry_plan: EntryPlan | None = None) -> None:
        # The editor asks "Write the OpenBK config?" itself: a "No" goes back to the edits, not away.
        def saved(new_cfg) -> None:
            if new_cfg is not None:
                self.start_operation("Write config", lambda s, c: self._do_write_config(s, c, new_cfg.sector()))

        def ask(edited) -> tuple[str, str]:
            return "Write the OpenBK config?", confirm_text(edited, chip, offset)

        self.push_screen(ConfigScreen(cfg, mapping, note, chip, offset, entry_plan=entry_plan, confirm=ask), saved)

    def _do_write_config(self, session: Session | None, cancel: CancelToken, sector: bytes) -> str:
        """The engine's config write (`bkbench config write` does the same)."""
        assert session is not None
        self.call_from_thread(self.flash_model.reset)
        report = session.write_config(sector, cancel, backup_library=self.library)
        offset = session.written[0][0]
        parts = [f"config written at 0x{offset:06X} and verified"]
        if report.skipped and not report.written:
            parts = [f"config at 0x{offset:06X} already identical: nothing written"]
        if report.backup is not None:
            parts.append(f"backup first: {Path(report.backup.path).name}")
        parts.append("d reboots the chip into it")
        return "; ".join(parts)
