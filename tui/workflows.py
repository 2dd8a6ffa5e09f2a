"""The workflows (UI side and worker bodies): connect, doctor, backup, write, verify, restore, analysis
and the OpenBK config editor. Each body runs in the operation worker (operations.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bkbench.core.errors import BkError
from bkbench.core.layout import protected_ranges, subtract_ranges
from bkbench.core.ops.events import CancelToken, SectorState, SectorUpdate
from textual import work

from .ranges import ranges_text
from .screens.analysis import AnalysisScreen
from .screens.backups import BackupsScreen
from .screens.config import ConfigScreen, confirm_text
from .screens.confirm import ConfirmScreen
from .screens.write import WriteRequest, WriteScreen
from .widgets.flashmap import FlashMapModel


class DoctorFound(BkError):
    """The link doctor ran to the end and found a problem (its diagnosis is shown in the pane)."""


class WorkflowsMixin:
    """BkBenchApp's workflows, started from key bindings, the command palette and the backups library."""

    def action_connect(self) -> None:
        def body(_session: Any, _cancel: CancelToken) -> str:
            info = self.chip_info
            return f"connected to {getattr(info, 'chip', '?')}; the chip waits in its bootloader (d releases it)"

        if self.session is not None and not self.busy:
            self.notify("Already connected; d releases the port.")
            return
        self.start_operation("Connect", body)

    def action_doctor(self) -> None:
        """Run the link doctor (read-only: listen, link with the reset method, probe, identify)."""

        def body(_session: Any, cancel: CancelToken) -> str:
            from bkbench.core.link.doctor import diagnose

            self._drop_session()  # the doctor opens the port itself
            dump = None
            try:
                found = self.backups_for_chip() if self.chip_info is not None else []
                dump = found[0].path if found else None  # its Tuya config names what sits on P10/P11
            except Exception:
                dump = None
            diag = diagnose(self.url, reset=self.reset, seconds=self.doctor_seconds, sink=self.pump.sink,
                            dump=dump, cancel=cancel)
            self.call_from_thread(self._show_final_diagnosis, diag)
            if diag.kind != "ok":  # a diagnosis that found a problem is not an "ok" toast
                raise DoctorFound(f"{diag.kind}: {diag.title}")
            return f"{diag.kind}: {diag.title}"

        self.start_operation("Doctor", body, needs_chip=False)

    def action_backup(self) -> None:
        self.start_operation("Backup", self._do_backup)

    _partial_backup: Any = None  # (chip key, OperationRecord, buffer) of a cancelled backup

    def _do_backup(self, session: Any, cancel: CancelToken) -> str:
        """Read the whole flash (resuming a cancelled backup of this chip), then store it unless the library
        already holds the same content."""
        import hashlib

        from bkbench.core.errors import OperationCancelled
        from bkbench.core.ops.events import Notice, OperationRecord
        from bkbench.core.ops.flash_ops import read_flash

        info = session.info
        key = (info.chip, getattr(info, "mac", None), info.flash_size)
        partial = self._partial_backup if self._partial_backup and self._partial_backup[0] == key else None
        record, buf = (partial[1], partial[2]) if partial else (OperationRecord("read", 0, info.flash_size),
                                                                bytearray(info.flash_size))
        self.library.check_space(info.flash_size)  # before the chip is read: a full disk is said first
        self.call_from_thread(self.flash_model.reset)
        if partial:
            done = sum(e - s for s, e in record.done)
            self.pump.sink(Notice("info", f"resuming the cancelled backup: {done // 1024} KiB already read"))
            for s, e in record.done:
                self.pump.sink(SectorUpdate(s, SectorState.VERIFIED, e - s))

        def run(client: Any) -> bytes:
            return read_flash(client, 0, info.flash_size, self.pump.sink, cancel, record=record, into=buf)

        try:
            resuming = getattr(session, "_resuming", None)
            data = bytes(resuming("read", record, run) if resuming else run(session.client))
        except OperationCancelled as exc:
            exc.record = getattr(exc, "record", None) or record  # type: ignore[attr-defined]
            self._partial_backup = (key, record, buf)
            raise
        self._partial_backup = None
        digest = hashlib.sha256(data).hexdigest()
        for entry in self.backups_for_chip():
            if entry.meta.get("sha256") == digest:
                return (f"identical to {Path(entry.path).name} ({entry.meta.get('time', 'earlier')}): "
                        "not stored again")
        try:
            entry = self.library.save(data, session.backup_meta())
        except BkError as exc:
            if getattr(exc, "data", None) is not None:  # read and verified, but the library refused it
                self.call_from_thread(self.offer_save_retry, exc)
            raise
        self.pump.sink(Notice("info", f"backup saved: {entry.path}"))
        return f"saved {Path(entry.path).name} in the library"

    def offer_save_retry(self, exc: Any) -> None:
        """A verified dump the library could not take (StorageError): say where it was rescued, offer a retry."""
        where = f"A copy was saved to {exc.fallback}." if exc.fallback else "It is only in memory now."

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(lambda: self._retry_save(exc), thread=True, group="save-retry")

        self.push_screen(ConfirmScreen("The backup could not be saved", f"{exc}\n{where}\n"
                                       "Free some space or fix the folder, then retry.", yes="Retry [y]"), answered)

    def _retry_save(self, exc: Any) -> None:
        try:
            entry = self.library.save(exc.data, exc.meta)
        except BkError as again:
            self.call_from_thread(self.offer_save_retry, again)
            return
        self.call_from_thread(self.notify, f"Backup saved: {Path(entry.path).name}")

    def action_write(self) -> None:
        if self.busy:
            self.notify("An operation is running.", severity="warning")
            return
        chip = getattr(self.chip_info, "chip", None) or self.flash_model.chip
        size = getattr(self.chip_info, "flash_size", None) or self.flash_model.flash_size
        self.push_screen(WriteScreen(chip, size, self.chip_info is not None, data_dir=self.base_dir),
                         self._write_chosen)

    def _write_chosen(self, request: WriteRequest | None) -> None:
        if request is None:
            return
        warn = "\n".join(f"warning: {w}" for w in request.warnings)
        body = (f"{request.path.name}\n{request.description}\n"
                f"flash 0x{request.start:06X}..0x{request.end:06X} ({len(request.payload) // 1024} KiB)"
                + (" INCLUDING THE BOOTLOADER" if request.includes_bootloader else "")
                + "\nA backup is made first if this chip has none. Then write, verify and reboot."
                + (f"\n{warn}" if warn else ""))

        def answered(yes: bool | None) -> None:
            if yes:
                self.start_operation("Write", lambda s, c: self._do_write(s, c, request), release_after=True)

        self.push_screen(ConfirmScreen("Write this image?", body, yes="Write [y]"), answered)

    def _do_write(self, session: Any, cancel: CancelToken, request: WriteRequest, keep_protected: bool = False
                  ) -> str:
        """Write (the engine backs the chip up first when the library has no backup of it), verify, and
        leave the reboot to the caller. With keep_protected, the bootloader / RF calibration ranges are
        left out of the write (restoring a dump must not replace this chip's calibration)."""
        chip = getattr(self.chip_info, "chip", None) or self.flash_model.chip
        segments = [(request.start, request.end)]
        if keep_protected:
            segments = subtract_ranges(segments, protected_ranges(chip))
        self.call_from_thread(self.flash_model.reset)
        # One guarded operation for all segments: one backup check, one outside check, one record. Only
        # the bootloader is unlocked by an image that carries one, never the RF calibration.
        spans = [(s, request.payload[s - request.start:e - request.start]) for s, e in segments]
        allowed = {"bootloader"} if request.includes_bootloader and not keep_protected else set()
        report = session.write_spans(spans, cancel, allow_regions=allowed, backup_library=self.library,
                                     backup_first=True)
        written, skipped = report.written, report.skipped
        backup = getattr(report, "backup", None)
        parts = [f"{written} sectors written, {skipped} identical"]
        if backup is not None:
            parts.append(f"backup first: {Path(backup.path).name}")
        for s, e in segments:
            verify = session.verify(request.payload[s - request.start:e - request.start], s, cancel)
            self.last_written = (request.path.name, segments, request)
            if not verify.ok:
                for ms, me in verify.mismatched:
                    self.pump.sink(SectorUpdate(ms, SectorState.FAILED, me - ms))
                raise BkError(f"verify failed after the write: {ranges_text(verify.mismatched)} differ")
        parts.append("verified")
        parts.append("rebooted")
        return ", ".join(parts)

    def action_verify(self) -> None:
        if self.last_written is not None:
            self.verify_written(*self.last_written)  # right after a write: compare with what was written
            return
        entry = self._newest_backup_or_say(
            "No backup of this chip to verify against: open the library (l) or back up (b).")
        if entry is not None:
            self.verify_against(entry)

    def _newest_backup_or_say(self, none_text: str) -> Any | None:
        """The newest full backup of the connected chip, or None after telling the user why there is none."""
        try:
            found = self.backups_for_chip()
        except Exception as exc:
            self.notify(f"Backup library unavailable: {exc}", severity="error")
            return None
        if not found:
            self.notify(none_text, severity="warning")
            return None
        return found[0]

    def verify_against(self, entry: Any) -> None:
        def body(session: Any, cancel: CancelToken) -> str:
            data = self.library.load(entry)
            self.call_from_thread(self.flash_model.reset)
            report = session.verify(data, 0, cancel)
            if report.ok:
                self.pump.sink(SectorUpdate(0, SectorState.VERIFIED, len(data)))
                return f"the chip matches {Path(entry.path).name}"
            for s, e in report.mismatched:
                self.pump.sink(SectorUpdate(s, SectorState.FAILED, e - s))
            raise BkError(f"the chip differs from {Path(entry.path).name} in {ranges_text(report.mismatched)}")

        self.start_operation("Verify", body)

    def verify_written(self, name: str, segments: list[tuple[int, int]], request: Any) -> None:
        def body(session: Any, cancel: CancelToken) -> str:
            self.call_from_thread(self.flash_model.reset)
            bad: list[tuple[int, int]] = []
            for s, e in segments:
                report = session.verify(request.payload[s - request.start:e - request.start], s, cancel)
                if report.ok:
                    self.pump.sink(SectorUpdate(s, SectorState.VERIFIED, e - s))
                bad.extend(report.mismatched)
            if bad:
                for s, e in bad:
                    self.pump.sink(SectorUpdate(s, SectorState.FAILED, e - s))
                raise BkError(f"the chip differs from the written {name} in {ranges_text(bad)}")
            return f"the chip matches the written {name} ({ranges_text(segments)})"

        self.start_operation("Verify", body)

    def action_library(self) -> None:
        try:
            entries = self.library.list()
        except Exception as exc:
            self.notify(f"Backup library unavailable: {exc}", severity="error")
            return
        self.push_screen(BackupsScreen(entries, self.library), self._library_chosen)

    def _library_chosen(self, choice: tuple[str, Any] | None) -> None:
        if not choice:
            return
        what, entry = choice
        if what == "analyze":
            self.analyze_entry(entry)
        elif what == "verify":
            self.verify_against(entry)
        elif what == "restore":
            self.restore(entry)

    def restore(self, entry: Any) -> None:
        name = Path(entry.path).name
        body = (f"Restore {name} ({entry.meta.get('chip', '?')}, {entry.meta.get('time', '')}) onto the chip.\n"
                "Everything from 0x11000 to the end of the flash is rewritten (the bootloader is kept);"
                " identical sectors are skipped. A backup is made first if this chip has none.")

        def answered(yes: bool | None) -> None:
            if yes:
                self.start_operation("Restore", lambda s, c: self._do_restore(s, c, entry), release_after=True)

        self.push_screen(ConfirmScreen("Restore this backup?", body, yes="Restore [y]"), answered)

    def _do_restore(self, session: Any, cancel: CancelToken, entry: Any) -> str:
        from bkbench.core.images.recognize import plan_write, recognize

        data = self.library.load(entry)
        chip = getattr(self.chip_info, "chip", None) or entry.meta.get("chip") or "BK7231N"
        size = getattr(self.chip_info, "flash_size", None) or len(data)
        plan = plan_write(recognize(data, Path(entry.path).name), data, chip, flash_size=size)
        # The engine's restore checks the dump against the chip (family, size, another device's MAC).
        from bkbench.core.restore_check import check_restore_image

        check_restore_image(data, session.info, entry.meta.get("chip"), sink=self.pump.sink)
        request = WriteRequest(Path(entry.path), plan.start, plan.payload, plan.description)
        return self._do_write(session, cancel, request, keep_protected=True)

    # -- analysis and the OpenBK config ----------------------------------------------------------
    def action_analyze(self) -> None:
        entry = self._newest_backup_or_say("No backup to analyze: back the chip up first (b).")
        if entry is not None:
            self.analyze_entry(entry)

    @work(thread=True, exclusive=True, group="analysis", exit_on_error=False)
    def analyze_entry(self, entry: Any) -> None:
        """Analyze a library dump off the UI thread, then show the report."""
        from bkbench.core.analysis.dump import analyze_dump

        name = Path(entry.path).name
        try:
            analysis = analyze_dump(self.library.load(entry))
            result = analysis.to_json()  # secrets masked
        except Exception as exc:
            self.call_from_thread(self.notify, f"Cannot analyze {name}: {exc}", severity="error")
            return
        self.call_from_thread(self._show_analysis, analysis, result, name)

    @work(thread=True, exclusive=True, group="analysis", exit_on_error=False)
    def analyze_file(self, path: Path) -> None:
        """Analyze any file off the UI thread (no chip needed): a dump, a Tuya KV region, an image."""
        from bkbench.core.analysis.dump import analyze_dump

        try:
            analysis = analyze_dump(Path(path).read_bytes())
            result = analysis.to_json()
        except Exception as exc:
            self.call_from_thread(self.notify, f"Cannot analyze {Path(path).name}: {exc}", severity="error")
            return
        self.call_from_thread(self._show_analysis, analysis, result, str(path))

    def _show_analysis(self, analysis: Any, result: dict, source: str) -> None:
        self.last_analysis = analysis
        self._label_partitions(result)

        def closed(what: str | None) -> None:
            if what == "edit":
                self.action_config()

        self.push_screen(AnalysisScreen(result, source), closed)

    def _label_partitions(self, result: dict) -> None:
        """Draw the partitions the analysis found in the flash map when they differ from the default layout."""
        from bkbench.core.layout import Partition

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

    def action_config(self) -> None:
        """Read the chip's OpenBK config sector, then open the editor."""

        def body(session: Any, cancel: CancelToken) -> str:
            from bkbench.core.analysis.obk_config import ObkConfig
            from bkbench.core.layout import OBK_CONFIG_OFFSET

            chip = self.chip_info.chip
            offset = OBK_CONFIG_OFFSET[chip]
            self.call_from_thread(self.flash_model.reset)
            sector = session.read(offset, 0x1000, cancel)
            note = f"read from the chip at 0x{offset:06X}"
            try:
                cfg = ObkConfig.parse(sector)
            except BkError as exc:
                mac = getattr(self.chip_info, "mac", None)
                cfg = ObkConfig.new(bytes.fromhex(mac.replace(":", "")) if mac else None)
                note = f"{exc} Starting from OpenBK's defaults."
            mapping = self._tuya_mapping()
            self.call_from_thread(self._open_config_editor, cfg, mapping, note, chip, offset)
            return f"config sector 0x{offset:06X} read"

        self.start_operation("Read config", body)

    def edit_config_file(self, path: Path) -> None:
        """Edit the OpenBK config in a file (a 4 KiB config sector or a full dump) and save a copy."""
        from bkbench.tui.configfile import load_config_file

        try:
            loaded = load_config_file(Path(path), self.flash_model.chip)
        except (OSError, BkError) as exc:
            self.notify(f"Cannot edit {Path(path).name}: {exc}", severity="error")
            return

        def saved(new_cfg: Any) -> None:
            if new_cfg is None:
                return
            try:
                out = loaded.save(new_cfg)
            except (OSError, BkError) as exc:
                self.notify(f"Not saved: {exc}", severity="error")
                return
            self.notify(f"Saved the edited config in {out} (the original file is unchanged).", timeout=10)
            self.op_pane.log_line(f"config saved: {out}")

        self.push_screen(ConfigScreen(loaded.config, loaded.mapping, loaded.note, loaded.chip, loaded.offset,
                                      save_label="Save to file"), saved)

    def _tuya_mapping(self) -> Any:
        """Worker thread: the Tuya pin mapping from the newest backup of this chip (None without one)."""
        try:
            found = self.backups_for_chip()
            if not found:
                return None
            from bkbench.core.analysis.dump import analyze_dump

            return analyze_dump(self.library.load(found[0])).mapping
        except Exception:
            return None

    def _open_config_editor(self, cfg: Any, mapping: Any, note: str, chip: str, offset: int) -> None:
        # The editor asks "Write the OpenBK config?" itself: a "No" goes back to the edits, not away.
        def saved(new_cfg: Any) -> None:
            if new_cfg is not None:
                self.start_operation("Write config", lambda s, c: self._do_write_config(s, c, new_cfg, offset))

        self.push_screen(ConfigScreen(cfg, mapping, note, chip, offset, confirm=lambda edited: (
            "Write the OpenBK config?", confirm_text(edited, chip, offset))), saved)

    def _do_write_config(self, session: Any, cancel: CancelToken, cfg: Any, offset: int) -> str:
        sector = cfg.sector()
        self.call_from_thread(self.flash_model.reset)
        report = session.write(sector, offset, cancel, backup_library=self.library, confirm_sector=True)
        verify = session.verify(sector, offset, cancel)
        if not verify.ok:
            raise BkError(f"the config sector differs after the write: {ranges_text(verify.mismatched)}")
        parts = [f"config written at 0x{offset:06X} and verified"]
        if report.skipped and not report.written:
            parts = [f"config at 0x{offset:06X} already identical: nothing written"]
        if getattr(report, "backup", None) is not None:
            parts.append(f"backup first: {Path(report.backup.path).name}")
        parts.append("d reboots the chip into it")
        return "; ".join(parts)
