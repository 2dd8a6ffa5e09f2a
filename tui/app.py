"""The bkbench workbench: ports, live serial log, flash map and operations in one screen.

Threading: every blocking engine call runs in a Textual thread worker. Engine events arrive on that
worker thread and go into an EventPump; a 10 Hz timer on the UI thread drains it, coalescing
Progress and applying SectorUpdates to the flash-map model in bulk. The serial monitor feeds raw
bytes to the log's LogBuffer from its own reader thread, also drained on a timer.

Port ownership: either the SerialMonitor (the log) or a Session (an operation, or the chip held in
the bootloader after Connect) owns the port, never both. Release (d) reboots the chip and hands the
port back to the log.

Link doctor: while a Session links, its `diagnosis` (core.link.doctor) is polled by the UI timer and shown
in the Operation pane; a failed link leaves the final diagnosis there. In the wide layout the Operation
pane then takes the log's place (the log has nothing new while linking); `2` brings the log back.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from bkbench.core.errors import BkError, OperationCancelled
from bkbench.core.layout import protected_ranges
from bkbench.core.ops.events import (
    CancelToken,
    Event,
    LinkAttempt,
    Progress,
    SectorState,
    SectorUpdate,
    Stage,
)
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Container
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, Tab, Tabs

from .screens.analysis import AnalysisScreen
from .screens.backups import BackupsScreen
from .screens.config import ConfigScreen
from .screens.confirm import ConfirmScreen
from .screens.write import WriteRequest, WriteScreen
from .widgets.flashmap import FlashMapModel, FlashMapPane
from .widgets.operation import OperationPane, clock, human_bytes
from .widgets.ports import PortsPane
from .widgets.seriallog import LogBuffer, RawLog, SerialLogPane

DEMO_NAME = "demo"
DEMO_URL = f"sim://@{DEMO_NAME}"
MONITOR_BAUD = 115200  # the application's UART log rate
PANES = ("ports", "log", "flash", "op")
PANE_TITLES = {"ports": "Ports", "log": "Serial log", "flash": "Flash map", "op": "Operation"}
NARROW_WIDTH = 110  # below this (or 32 rows) one pane at a time, chosen with tabs


class EventPump:
    """Thread-safe hand-over of engine events to the UI thread (drained in batches)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []

    def sink(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    def take(self) -> list[Event]:
        with self._lock:
            events, self._events = self._events, []
        return events


def coalesce(events: list[Event]) -> tuple[list[SectorUpdate], list[Event]]:
    """Split a batch into sector updates and the rest, keeping only the last Progress per run and
    LinkAttempts whose hint changed (they come every few milliseconds while waiting for a reset)."""
    sectors: list[SectorUpdate] = []
    others: list[Event] = []
    last_hint: str | None = None
    for ev in events:
        if isinstance(ev, SectorUpdate):
            sectors.append(ev)
        elif isinstance(ev, Progress) and others and isinstance(others[-1], Progress):
            others[-1] = ev
        elif isinstance(ev, LinkAttempt):
            if ev.hint != last_hint or not others or not isinstance(others[-1], LinkAttempt):
                others.append(ev)
            else:
                others[-1] = ev
            last_hint = ev.hint
        else:
            others.append(ev)
    return sectors, others


def subtract_ranges(ranges: list[tuple[int, int]], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Half-open `ranges` minus `holes`, in order, empty pieces dropped."""
    out = list(ranges)
    for hs, he in holes:
        nxt: list[tuple[int, int]] = []
        for s, e in out:
            if he <= s or hs >= e:
                nxt.append((s, e))
                continue
            if s < hs:
                nxt.append((s, hs))
            if he < e:
                nxt.append((he, e))
        out = nxt
    return out


def ranges_text(ranges: Iterable[tuple[int, int]], limit: int = 4) -> str:
    items = list(ranges)
    if not items:
        return "none"
    text = ", ".join(f"0x{s:06X}-0x{e:06X}" for s, e in items[:limit])
    return text + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


class OperationsProvider(Provider):
    """Command palette entries for every workflow."""

    COMMANDS = (
        ("Connect to the chip", "connect", "Handshake with the bootloader (reset the chip when asked)"),
        ("Link doctor: diagnose the connection", "doctor", "Listen, link, probe: says what is wrong and what to do"),
        ("Analyze the newest backup of this chip", "analyze", "Chip, firmware, Tuya keys, OpenBK pins, partitions"),
        ("Edit OpenBK config (Wi-Fi, MQTT, pins)…", "config", "Read, edit and write only the config sector"),
        ("Backup: read the full flash into the library", "backup", "Full dump, verified by CRC"),
        ("Write image…", "write", "Pick a file, see where it goes, confirm, write, verify, reboot"),
        ("Verify chip against the newest backup", "verify", "Compare the flash with a backup by CRC"),
        ("Backups library (verify / restore)", "library", "Browse backups and their metadata"),
        ("Release port (reboot chip, resume log)", "release", "Hand the port back to the serial log"),
        ("Cancel the running operation", "cancel_op", "Stops between sectors"),
        ("Serial log: pause / resume", "log('toggle_pause')", ""),
        ("Serial log: hex view", "log('toggle_hex')", ""),
        ("Serial log: search", "log('search')", ""),
        ("Serial log: clear", "log('clear')", ""),
        ("Serial log: save to file", "log('save')", ""),
    )

    async def discover(self) -> Hits:
        for title, action, help_text in self.COMMANDS:
            yield DiscoveryHit(title, self._runner(action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, action, help_text in self.COMMANDS:
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), self._runner(action), help=help_text)

    def _runner(self, action: str) -> Callable[[], Any]:
        async def run() -> None:
            await self.app.run_action(action)

        return run


class MainScreen(Screen):
    """The default screen; tells the app when the terminal size changes (to switch layouts)."""

    def on_resize(self) -> None:
        self.app.call_after_refresh(self.app._apply_layout)


class BkBenchApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "bkbench"
    COMMANDS = App.COMMANDS | {OperationsProvider}

    BINDINGS = [
        Binding("c", "connect", "Connect"),
        Binding("o", "doctor", "Doctor", show=False),
        Binding("a", "analyze", "Analyze", show=False),
        Binding("e", "config", "Config", show=False),
        Binding("b", "backup", "Backup"),
        Binding("w", "write", "Write"),
        Binding("v", "verify", "Verify", show=False),
        Binding("l", "library", "Backups"),
        Binding("x", "cancel_op", "Cancel op"),
        Binding("d", "release", "Release", show=False),
        Binding("p", "log('toggle_pause')", "Pause log", show=False),
        Binding("h", "log('toggle_hex')", "Hex", show=False),
        Binding("ctrl+f,slash", "log('search')", "Search log", show=False),
        Binding("n", "log('find_next')", "Next match", show=False),
        Binding("ctrl+l", "log('clear')", "Clear log", show=False),
        Binding("ctrl+s", "log('save')", "Save log", show=False),
        Binding("1", "pane('ports')", "Ports", show=False),
        Binding("2", "pane('log')", "Log", show=False),
        Binding("3", "pane('flash')", "Map", show=False),
        Binding("4", "pane('op')", "Op", show=False),
        Binding("ctrl+n", "next_pane", "Next pane", show=False, priority=True),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(
        self,
        url: str | None = None,
        baud: int = 921600,
        demo: bool = False,
        data_dir: str | Path | None = None,
        ports_source: Callable[[], list[Any]] | None = None,
        monitor: bool = True,
        poll_ports: float = 1.5,
        clock: Callable[[], float] = time.time,
        reset: str = "auto",
        link_timeout: float = 20.0,
        doctor_seconds: float = 10.0,
    ) -> None:
        super().__init__()
        self.demo = demo
        self.url = url or (DEMO_URL if demo else "")
        self.baud = baud
        self.reset = reset
        self.link_timeout = link_timeout
        self.doctor_seconds = doctor_seconds
        self._linking: Any = None  # the Session while it links (its .diagnosis is polled)
        self._prefer_log = False  # the user asked for the log while a diagnosis is shown (wide layout)
        self.data_dir = Path(data_dir) if data_dir else None
        self.ports_source = ports_source
        self.use_monitor = monitor
        self.poll_ports = poll_ports
        self.pump = EventPump()
        self.log_buffer = LogBuffer(raw_log=RawLog(self.logs_dir / "serial-raw.bin"), clock=clock)
        self.flash_model = FlashMapModel()
        self.session: Any = None
        self.chip_info: Any = None
        self.monitor: Any = None
        self.monitor_url = ""
        self.busy = False
        self.op_name = ""
        self.cancel_token: CancelToken | None = None
        self.last_outcome: tuple[str, str] | None = None
        self.active_pane = "log"
        self._library: Any = None
        self.last_analysis: Any = None
        self.last_cancel_record: Any = None
        self._main_screen: Any = None
        self._map_phase = ""

    # -- paths and engine objects ----------------------------------------------------------------
    @property
    def base_dir(self) -> Path:
        if self.data_dir is not None:
            return self.data_dir
        from bkbench.core.paths import data_dir

        return data_dir()

    @property
    def logs_dir(self) -> Path:
        return self.base_dir / "logs"

    @property
    def library(self) -> Any:
        if self._library is None:
            from bkbench.core.backups import BackupLibrary

            self._library = BackupLibrary(self.data_dir / "backups") if self.data_dir else BackupLibrary()
        return self._library

    # -- layout ----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Tabs(*(Tab(f"{i + 1} {PANE_TITLES[p]}", id=f"tab-{p}") for i, p in enumerate(PANES)), id="tabs")
        with Container(id="main"):
            extra = []
            if self.demo:
                from bkbench.core.ports import PortInfo

                extra = [PortInfo(DEMO_URL, "simulated BK7231N", adapter="demo chip", kind="sim")]
            ports = PortsPane(self.url, self.baud, source=self.ports_source, extra=extra,
                              poll=self.poll_ports, reset=self.reset, id="pane-ports")
            ports.border_title = "1 Ports"
            yield ports
            flash = FlashMapPane(self.flash_model, id="pane-flash")
            flash.border_title = "3 Flash map"
            yield flash
            op = OperationPane(id="pane-op")
            op.border_title = "4 Operation"
            yield op
            log = SerialLogPane(self.log_buffer, save_dir=self.logs_dir, id="pane-log")
            log.border_title = "2 Serial log"
            yield log
        yield Static("", id="statusline", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self._main_screen = self.screen
        self.sub_title = "demo: simulated BK7231N" if self.demo else (self.url or "no port chosen")
        self._apply_layout()
        self.set_interval(0.1, self.drain_events)
        self.set_interval(0.5, self._update_statusline)
        self._update_statusline()
        if self.use_monitor and self.url:
            self.start_monitor(self.url)

    def get_default_screen(self) -> Screen:
        return MainScreen(id="_default")

    @property
    def narrow(self) -> bool:
        return self.size.width < NARROW_WIDTH or self.size.height < 32

    def _apply_layout(self) -> None:
        main = self._main_screen
        if main is None or not main.is_attached:
            return
        main.set_class(self.narrow, "-narrow")
        self._sync_diag_layout()
        for pane in PANES:
            main.query_one(f"#pane-{pane}").set_class(pane == self.active_pane, "-active")
        tabs = main.query_one(Tabs)
        if tabs.active != f"tab-{self.active_pane}":
            tabs.active = f"tab-{self.active_pane}"

    def _sync_diag_layout(self) -> None:
        """Wide layout: the Operation pane takes the log's place while a diagnosis is shown."""
        main = self._main_screen
        if main is None or not main.is_attached:
            return
        op = main.query_one(OperationPane)
        main.set_class(not self.narrow and op.diagnosis_shown and not self._prefer_log, "-diag")

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        # Ignore stale activations (we set tabs.active ourselves in _apply_layout): answering them
        # would ping-pong between two panes forever.
        if event.tab is None or not event.tab.id or event.tab.id != event.tabs.active:
            return
        pane = event.tab.id[len("tab-"):]
        if pane != self.active_pane:
            self.show_pane(pane)

    def show_pane(self, pane: str) -> None:
        self.active_pane = pane
        self._apply_layout()

    def action_pane(self, pane: str) -> None:
        if pane == "log":
            self._prefer_log = True
        self.show_pane(pane)
        target = {"ports": "#ports-table", "log": "#log-view", "flash": "#fm-grid", "op": "#op-log"}[pane]
        self.query_one(target).focus()

    def action_next_pane(self) -> None:
        self.action_pane(PANES[(PANES.index(self.active_pane) + 1) % len(PANES)])

    @property
    def flash_pane(self) -> FlashMapPane:
        return self.query_one(FlashMapPane)

    @property
    def op_pane(self) -> OperationPane:
        return self.query_one(OperationPane)

    @property
    def log_pane(self) -> SerialLogPane:
        return self.query_one(SerialLogPane)

    @property
    def ports_pane(self) -> PortsPane:
        return self.query_one(PortsPane)

    def _update_statusline(self) -> None:
        if not self._main_attached():
            return
        st = self.op_pane.state
        if self.busy:
            pct = f"{100 * st.done // st.total}%" if st.total else ""
            rate = f"{human_bytes(st.rate)}/s" if st.rate else ""
            text = f"{self.op_name}: {st.stage} {pct} {rate} ETA {clock(st.eta)}  [x cancel]"
        elif self.last_outcome:
            text = f"last: {self.last_outcome[1]}"
        else:
            text = "c connect · o doctor · b backup · w write · l backups · ctrl+p commands"
        self.query_one("#statusline", Static).update(text)

    def _main_attached(self) -> bool:
        """False while the app shuts down: the screens go before the app's timers stop."""
        main = self._main_screen
        return self.is_running and main is not None and main.is_attached and bool(main.query("#statusline"))

    def action_log(self, action: str) -> None:
        getattr(self.log_pane, f"action_{action}")()

    # -- serial monitor --------------------------------------------------------------------------
    def on_ports_pane_chosen(self, message: PortsPane.Chosen) -> None:
        changed = message.url != self.url
        self.url, self.baud, self.reset = message.url, message.baud, message.reset
        self.sub_title = self.url
        if changed and self.session is None and not self.busy and self.use_monitor:
            self.start_monitor(self.url)

    @work(thread=True, exclusive=True, group="monitor", exit_on_error=False)
    def start_monitor(self, url: str) -> None:
        """(Re)open the serial log on `url`; runs off the UI thread because opening can block."""
        self._stop_monitor()
        try:
            from bkbench.core.monitor import SerialMonitor
        except ImportError:
            self.log_buffer.note("serial monitor not available in this engine build", "error")
            return
        try:
            mon = SerialMonitor(url, MONITOR_BAUD, on_data=self.log_buffer.feed, on_error=self._monitor_error)
            mon.start()
        except Exception as exc:
            self.log_buffer.note(f"cannot open {url} for the log: {exc}", "error")
            self.call_from_thread(self.log_pane.set_port_state, "error")
            return
        self.monitor, self.monitor_url = mon, url
        self.log_buffer.note(f"── log on {url} at {MONITOR_BAUD} baud ──")
        self.call_from_thread(self.log_pane.set_port_state, f"log {url}")

    def _monitor_error(self, exc: BaseException) -> None:
        self.log_buffer.note(f"serial log error: {exc}", "error")

    def _stop_monitor(self) -> None:
        if self.monitor is not None:
            try:
                self.monitor.stop()
            except Exception:
                pass
            self.monitor = None

    def _pause_monitor(self, owner: str) -> None:
        """Worker thread: hand the port from the log to an operation."""
        if self.monitor is not None:
            self.log_buffer.flush_partial()
            self.monitor.pause()
            self.log_buffer.note(f"── log paused: {owner} owns the port ──")
        self.call_from_thread(self.log_pane.set_port_state, f"paused ({owner})")

    def _resume_monitor(self) -> None:
        """Worker thread: give the port back to the log (reopening it if the URL changed)."""
        if not self.use_monitor or not self.url:
            self.call_from_thread(self.log_pane.set_port_state, "idle")
            return
        if self.monitor is not None and self.monitor_url == self.url:
            self.monitor.resume()
            self.log_buffer.note("── log resumed ──")
            self.call_from_thread(self.log_pane.set_port_state, f"log {self.url}")
        else:
            self.call_from_thread(self.start_monitor, self.url)

    # -- event pump ------------------------------------------------------------------------------
    def drain_events(self) -> None:
        if not self._main_attached():
            return
        self._poll_diagnosis()
        self._sync_diag_layout()
        events = self.pump.take()
        if not events:
            return
        # A write may start with an automatic backup: once the write itself starts, clear the
        # "read/verified" marks of that backup so the map shows what the write does.
        start = 0
        for i, ev in enumerate(events):
            if isinstance(ev, Stage):
                if ev.name in ("read", "backup"):
                    self._map_phase = "read"
                elif ev.name in ("unprotect", "write") and self._map_phase == "read":
                    self._map_phase = "write"
                    self._apply_batch(events[start:i])
                    self.flash_model.reset()
                    start = i
        self._apply_batch(events[start:])

    def _poll_diagnosis(self) -> None:
        """While a Session links: show the doctor's current diagnosis (set by the worker every 0.25 s)."""
        session = self._linking
        diag = getattr(session, "diagnosis", None) if session is not None else None
        if diag is None:
            return
        doctor = getattr(session, "doctor", None)
        strategy = getattr(doctor, "strategy", None)
        if strategy is not None:
            self.op_pane.reset_method = strategy.describe()
        if diag is not self.op_pane.diagnosis:
            self.op_pane.show_diagnosis(diag)
            self._apply_layout()

    def _apply_batch(self, events: list[Event]) -> None:
        sectors, others = coalesce(events)
        for ev in sectors:
            self.flash_model.set_state(ev.addr, ev.state, ev.size)
        if sectors or self.flash_model.dirty:
            self.flash_pane.sync()
        if others:
            self.op_pane.apply(others)

    # -- operations ------------------------------------------------------------------------------
    def start_operation(self, name: str, body: Callable[[Any, CancelToken], str], release_after: bool = False,
                        needs_chip: bool = True) -> bool:
        if self.busy:
            self.notify(f"{self.op_name} is still running; cancel it first (x).", severity="warning")
            return False
        if not self.url:
            self.notify("Choose a port first (Ports pane: type a URL and press Enter).", severity="warning")
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
        return True

    @work(thread=True, exclusive=True, group="operation", exit_on_error=False)
    def _operation_worker(self, name: str, body: Callable[[Any, CancelToken], str], cancel: CancelToken,
                          release_after: bool, needs_chip: bool) -> None:
        outcome, message = "ok", ""
        try:
            self._pause_monitor(name)
            session = self._ensure_session(cancel) if needs_chip else self.session
            message = body(session, cancel) or "done"
            if release_after:
                self._release_session(reboot=True)
        except OperationCancelled as exc:
            outcome, message = "cancelled", self._cancel_message(name, exc)
        except BkError as exc:
            outcome = "failed"
            diag = getattr(exc, "diagnosis", None)
            if diag is not None:  # title and advice are shown as a list in the Operation pane
                message = str(exc).replace(f": {diag.title}", "") + " (link doctor below)"
                self.call_from_thread(self._show_final_diagnosis, diag)
            else:
                message = str(exc) + (f" ({exc.hint})" if getattr(exc, "hint", "") else "")
            self._drop_session()  # the link state is unknown after an error: start clean next time
        except Exception as exc:  # a bug or an unexpected I/O error must not leave the UI stuck
            outcome, message = "failed", f"unexpected error: {exc!r}"
            self._drop_session()
        finally:
            if self.session is None:
                self._resume_monitor()
            self.call_from_thread(self._operation_done, name, outcome, message)

    def _show_final_diagnosis(self, diag: Any) -> None:
        self._linking = None
        self.drain_events()
        self.op_pane.show_diagnosis(diag, final=True)
        self._apply_layout()

    def _operation_done(self, name: str, outcome: str, message: str) -> None:
        self._linking = None
        self.drain_events()
        self.call_after_refresh(self._sync_diag_layout)
        self.busy = False
        self.cancel_token = None
        self.op_pane.finish(outcome, message)
        self.last_outcome = (outcome, f"{name}: {message}")
        severity = {"ok": "information", "cancelled": "warning"}.get(outcome, "error")
        self.notify(message, title=f"{name} {outcome}", severity=severity, timeout=8)
        self._update_statusline()

    def _cancel_message(self, name: str, exc: BaseException) -> str:
        """What a cancelled write did and did not do: from the engine's OperationRecord when it has one
        (the flash map only mirrors events), else from the map."""
        record = getattr(exc, "record", None)
        self.last_cancel_record = record
        if name in ("Write", "Restore", "Write config"):
            if record is not None and getattr(record, "kind", "") != "read":
                written = ranges_text(record.done, limit=8)
                left = record.describe_remaining()
            else:
                written = ranges_text(self.flash_model.ranges(
                    [SectorState.WRITTEN, SectorState.VERIFIED, SectorState.SKIPPED]), limit=8)
                left = ranges_text(self.flash_model.ranges([SectorState.PENDING, SectorState.ERASED]))
                if record is not None:  # cancelled during the backup taken first: nothing was written
                    written, left = "none (cancelled during the backup first)", "everything"
            return f"cancelled between sectors. Written and verified: {written}; not written: {left}"
        return f"cancelled between sectors ({exc})"

    def _ensure_session(self, cancel: CancelToken) -> Any:
        """Worker thread: the connected Session, opening and linking it when needed."""
        if self.session is not None:
            return self.session
        from bkbench.core.session import Session

        self.log_buffer.note("── connecting: reset the chip if asked ──", "reset")
        session = Session(self.url, baud=self.baud, on_event=self.pump.sink, reset=self.reset,
                          link_timeout=self.link_timeout)
        session.open()
        self._linking = session
        try:
            info = session.connect(cancel=cancel)
        except BaseException:
            session.close()
            raise
        finally:
            self._linking = None
        self.session, self.chip_info = session, info
        self.call_from_thread(self._connected, info)
        return session

    def _connected(self, info: Any) -> None:
        size = getattr(info, "flash_size", 0) or 0x200000
        chip = getattr(info, "chip", "BK7231N") or "BK7231N"
        if (chip, size) != (self.flash_model.chip, self.flash_model.flash_size):
            self.flash_model = FlashMapModel(chip, size)
            self.flash_pane.set_model(self.flash_model)
        parts = [chip]
        if getattr(info, "bootloader", None):
            parts.append(f"boot {info.bootloader}")
        if getattr(info, "flash_name", None):
            parts.append(str(info.flash_name))
        parts.append(f"{size // 1024} KiB")
        if getattr(info, "mac", None):
            parts.append(f"MAC {info.mac}")
        self.sub_title = " · ".join(parts)
        self.op_pane.log_line("connected: " + ", ".join(parts))

    def _release_session(self, reboot: bool) -> None:
        """Worker thread: reboot the chip (runs its firmware) and close the port."""
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

    def backups_for_chip(self) -> list[Any]:
        """Full backups of the connected chip (by MAC via the library), newest first."""
        info = self.chip_info
        chip = getattr(info, "chip", None)
        if chip is None:
            return list(self.library.list())
        mac = getattr(info, "mac", None)
        if hasattr(self.library, "find_for"):
            found = list(self.library.find_for(chip, mac))
            if found or mac:
                return found
        return [e for e in self.library.list() if e.meta.get("chip") == chip and not e.meta.get("partial")]

    # -- workflows (UI side) ---------------------------------------------------------------------
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
            return f"{diag.kind}: {diag.title}"

        self.start_operation("Doctor", body, needs_chip=False)

    def action_backup(self) -> None:
        def body(session: Any, cancel: CancelToken) -> str:
            self.call_from_thread(self.flash_model.reset)
            entry = session.backup(library=self.library, cancel=cancel)
            return f"saved {Path(entry.path).name} in the library"

        self.start_operation("Backup", body)

    def action_write(self) -> None:
        if self.busy:
            self.notify("An operation is running.", severity="warning")
            return
        chip = getattr(self.chip_info, "chip", None) or self.flash_model.chip
        size = getattr(self.chip_info, "flash_size", None) or self.flash_model.flash_size
        self.push_screen(WriteScreen(chip, size, self.chip_info is not None), self._write_chosen)

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
        written = skipped = 0
        backup = None
        for i, (s, e) in enumerate(segments):
            chunk = request.payload[s - request.start:e - request.start]
            report = session.write(
                chunk, s, cancel,
                allow_protected=request.includes_bootloader and not keep_protected,
                backup_library=self.library, backup_first=(i == 0),
            )
            written += report.written
            skipped += report.skipped
            backup = backup or getattr(report, "backup", None)
        parts = [f"{written} sectors written, {skipped} identical"]
        if backup is not None:
            parts.append(f"backup first: {Path(backup.path).name}")
        for s, e in segments:
            verify = session.verify(request.payload[s - request.start:e - request.start], s, cancel)
            if not verify.ok:
                for ms, me in verify.mismatched:
                    self.pump.sink(SectorUpdate(ms, SectorState.FAILED, me - ms))
                raise BkError(f"verify failed after the write: {ranges_text(verify.mismatched)} differ")
        parts.append("verified")
        parts.append("rebooted")
        return ", ".join(parts)

    def action_verify(self) -> None:
        try:
            match = self.backups_for_chip()
        except Exception as exc:
            self.notify(f"Backup library unavailable: {exc}", severity="error")
            return
        if not match:
            self.notify("No backup of this chip to verify against: open the library (l) or back up (b).",
                        severity="warning")
            return
        self.verify_against(match[0])

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

    def action_library(self) -> None:
        try:
            entries = self.library.list()
        except Exception as exc:
            self.notify(f"Backup library unavailable: {exc}", severity="error")
            return
        self.push_screen(BackupsScreen(entries), self._library_chosen)

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
        request = WriteRequest(Path(entry.path), plan.start, plan.payload, plan.description)
        return self._do_write(session, cancel, request, keep_protected=True)

    # -- analysis and the OpenBK config ----------------------------------------------------------
    def action_analyze(self) -> None:
        try:
            found = self.backups_for_chip()
        except Exception as exc:
            self.notify(f"Backup library unavailable: {exc}", severity="error")
            return
        if not found:
            self.notify("No backup to analyze: back the chip up first (b).", severity="warning")
            return
        self.analyze_entry(found[0])

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
        def saved(new_cfg: Any) -> None:
            if new_cfg is not None:
                self._confirm_config_write(new_cfg, chip, offset)

        self.push_screen(ConfigScreen(cfg, mapping, note, chip, offset), saved)

    def _confirm_config_write(self, cfg: Any, chip: str, offset: int) -> None:
        ssid = cfg.get("wifi_ssid") or "(none)"
        host = cfg.get("mqtt_host") or "(none)"
        body = (f"Write the OpenBK config sector of this {chip}:\n"
                f"Wi-Fi {ssid}, MQTT {host}:{cfg.get('mqtt_port')}, name {cfg.get('shortDeviceName') or '-'}, "
                f"{len(cfg.pins())} pins.\n"
                f"Only 0x{offset:06X}-0x{offset + 0x1000:06X} is written (checksummed, version {cfg.version});"
                " a full backup is made first if this chip has none.")

        def answered(yes: bool | None) -> None:
            if yes:
                self.start_operation("Write config", lambda s, c: self._do_write_config(s, c, cfg, offset))

        self.push_screen(ConfirmScreen("Write the OpenBK config?", body, yes="Write [y]"), answered)

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

    def action_release(self) -> None:
        if self.busy:
            self.notify("An operation is running.", severity="warning")
            return
        if self.session is None:
            self.notify("The port is not held by a session.")
            return

        def body(_session: Any, _cancel: CancelToken) -> str:
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

    async def action_quit(self) -> None:
        if not self.busy:
            self._quit_worker()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                if self.cancel_token is not None:
                    self.cancel_token.cancel()
                self._wait_then_quit()

        self.push_screen(
            ConfirmScreen(
                "Quit during an operation?",
                f"{self.op_name} is running. Quitting cancels it between sectors; a cancelled write leaves "
                "part of the flash old and part new. The summary is shown before the app exits.",
                yes="Cancel and quit [y]",
                no="Keep running [n]",
            ),
            answered,
        )

    def _wait_then_quit(self) -> None:
        def check() -> None:
            if not self.busy:
                timer.stop()
                self._quit_worker()

        timer = self.set_interval(0.1, check)

    @work(thread=True, group="shutdown", exit_on_error=False)
    def _quit_worker(self) -> None:
        try:
            self._release_session(reboot=True)
        except Exception:
            pass
        self._stop_monitor()
        raw = self.log_buffer.raw_log
        if raw is not None:
            raw.close()
        self.call_from_thread(self.exit, 0)


def _hardware_present() -> bool:
    try:
        from bkbench.core.ports import list_ports

        return any(p.kind in ("usb", "pi-uart") for p in list_ports(check_in_use=False))
    except Exception:
        return False


def setup_demo() -> str:
    """Register the simulated demo chip (prints its boot log until reset) and return its URL."""
    from bkbench.core.sim import registry

    try:
        registry.get(DEMO_NAME)
    except KeyError:
        dump = registry.default_dump("BK7231N")
        # Real wire and flash timing by default, so the demo shows honest progress (0 turns it off).
        timing = os.environ.get("BKBENCH_DEMO_TIMING", "1") != "0"
        device = registry.create_device(chip="BK7231N", dump=dump, scenario="app-running", wiring="rts",
                                        timing=timing)
        registry.register(DEMO_NAME, device)
    return DEMO_URL


def run(port: str | None = None, demo: bool = False, baud: int = 921600, data_dir: str | None = None) -> int:
    """Run the workbench; returns the process exit code."""
    if data_dir:
        os.environ["BKBENCH_DATA_DIR"] = str(data_dir)
    if demo or (port is None and not _hardware_present()):
        demo = True
        port = setup_demo()
    app = BkBenchApp(url=port, baud=baud, demo=demo, data_dir=data_dir)
    result = app.run()
    return int(result or 0)
