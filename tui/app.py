"""The bkbench workbench: ports, live serial log, flash map and operations in one screen.

The App is assembled from mixins, one concern each: screens/main.py (layout), pump.py (engine events to
the UI thread), monitor.py (the serial log's port), operations.py (the operation worker and its Session)
and workflows.py (connect, backup, write, verify, restore, doctor, analysis, config). This module keeps
the App's state, key bindings, shutdown and `run()`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from bkbench.core.backups import BackupLibrary
from bkbench.core.layout import subtract_ranges
from textual import events, messages, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Checkbox, Input, Select

from .commands import OperationsProvider
from .demo import DEMO_NAME, DEMO_URL, _hardware_present, demo_cache_dir, seed_demo_openbk, setup_demo, setup_demo_chips
from .monitor import MONITOR_BAUD, MonitorMixin
from .operations import OperationsMixin
from .pump import EventPump, PumpMixin, coalesce
from .ranges import ranges_text
from .screens.confirm import ConfirmScreen
from .screens.keys import KeysScreen
from .screens.main import NARROW_WIDTH, PANE_TITLES, PANES, MainLayoutMixin, MainScreen
from .station_ops import StationMixin
from .widgets.flashmap import FlashMapModel
from .widgets.seriallog import LogBuffer, RawLog
from .workflows import WorkflowsMixin

# Re-exported: tests, scripts and the CLI import these from bkbench.tui.app.
__all__ = [
    "DEMO_NAME", "DEMO_URL", "MONITOR_BAUD", "NARROW_WIDTH", "PANES", "PANE_TITLES",
    "BkBenchApp", "EventPump", "MainScreen", "OperationsProvider",
    "coalesce", "ranges_text", "run", "setup_demo", "subtract_ranges",
]

# An operation left running by a browser that went away may finish for this long, then it is cancelled.
UNATTENDED_FINISH_S = 600.0


class BkBenchApp(MainLayoutMixin, PumpMixin, MonitorMixin, OperationsMixin, WorkflowsMixin, StationMixin):
    CSS_PATH = "app.tcss"
    TITLE = "bkbench"
    COMMANDS = App.COMMANDS | {OperationsProvider}

    BINDINGS = [
        Binding("c", "connect", "Connect"),
        Binding("o", "doctor", "Doctor"),
        Binding("b", "backup", "Backup"),
        Binding("w", "write", "Write"),
        Binding("v", "verify", "Verify"),
        Binding("e", "config", "Config"),
        Binding("a", "analyze", "Analyze"),
        Binding("l", "library", "Library"),
        Binding("d", "release", "Release"),
        Binding("m", "station", "Multi-port", show=False),  # in `?` and the palette: the footer is full
        Binding("x", "cancel_op", "Cancel"),
        Binding("question_mark", "keys", "Keys"),
        Binding("escape", "leave_field", "Leave field", show=False),
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
        # Priority: the focus moves when the Tab is read, so keys typed right after it (a paste, tmux
        # send-keys) go to the next field, not to the one the Tab left (issue 22: password in the SSID).
        Binding("tab", "app.focus_next", "Next field", show=False, priority=True),
        Binding("shift+tab", "app.focus_previous", "Previous field", show=False, priority=True),
        Binding("ctrl+q", "quit", "Quit", priority=True, show=False),  # in `?` and the status line: room
    ]
    # Shown in the footer only while they apply (check_action hides the rest).
    _CHIP_ACTIONS = {"connect", "doctor", "backup", "write", "verify", "config", "analyze", "library", "release"}

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
        keep_trying: bool = True,
        ports: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.station_ports = list(ports or [])  # several ports: the app opens on the multi-port view
        self.demo = demo
        self.url = url or (DEMO_URL if demo else "")
        self.baud = baud
        self.reset = reset
        self.link_timeout = link_timeout
        self.doctor_seconds = doctor_seconds
        self.keep_trying = keep_trying
        self.linking = False
        self._prefer_log = False
        self.data_dir = Path(data_dir) if data_dir else None
        # The demo lists its simulated plugs only: the machine's own ports (a PC's /dev/ttyS0) were offered
        # in its multi-port view, and `a` selected them for a backup (issue 22).
        self.ports_source = ports_source if ports_source is not None or not demo else (lambda: [])
        self.use_monitor = monitor
        self.poll_ports = poll_ports
        self.pump = EventPump()
        self.log_buffer = LogBuffer(raw_log=RawLog(self.logs_dir / "serial-raw.bin"), clock=clock)
        self.flash_model = FlashMapModel()
        self.session = None
        self.chip_info = None
        self.unfinished_backups = {}
        self.monitor = None
        self.monitor_url = ""
        self.rx_capture = None  # what the serial log saw on monitor_url (core/link/capture.py), for the doctor
        self.busy = False
        self.op_name = ""
        self.cancel_token = None
        self.last_outcome = None
        self.active_pane = "log"
        self._library = None
        self._station = None
        self.last_analysis = None
        self.last_cancel_record = None
        self.last_written = None
        self._written_mac = None
        self._main_screen = None
        self._map_phase = ""
        self._unattended_quit = False  # an exit request arrived mid-operation: quit when it is over
        self._unattended_deadline = 0.0  # ... or cancel it between sectors after this (monotonic)
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
    def library(self) -> BackupLibrary:
        if self._library is None:
            self._library = BackupLibrary(self.data_dir / "backups") if self.data_dir else BackupLibrary()
        return self._library
    def on_mount(self) -> None:
        self._main_screen = self.screen
        self.sub_title = "demo: simulated BK7231N" if self.demo else (self.url or "no port chosen")
        self._apply_layout()
        self.set_interval(0.1, self.drain_events)
        self.set_interval(0.5, self._update_statusline)
        self._update_statusline()
        if self.use_monitor and self.url:
            self.start_monitor(self.url)
        if len(self.station_ports) > 1:
            self.action_station()
    # -- keys ------------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Footer: show what applies now; hide what does not (the keys still answer with a message)."""
        if not isinstance(self.screen, MainScreen):  # a dialog is open: its keys, not the workbench's
            return action not in self._CHIP_ACTIONS and action not in ("cancel_op", "log", "pane", "station",
                                                                       "next_pane")
        if action == "cancel_op":
            return self.busy
        if action in self._CHIP_ACTIONS and self.busy:
            return False
        if action in ("connect", "doctor"):  # the link works while connected: no doctor needed
            return self.session is None
        if action == "release":
            return self.session is not None
        if action in ("analyze", "verify"):
            return self._has_backup() or (action == "verify" and self.last_written is not None)
        return True

    # Keys whose action is off just now (hidden from the footer): said, not ignored (issue 22: `a` with
    # nothing to analyze did nothing).
    _WHY_NOT = {
        "a": ("analyze", "Nothing to analyze yet: back the chip up first (b), or pick a file (w) and press a."),
        "v": ("verify", "Nothing to verify against yet: back the chip up (b) or write a file (w) first."),
    }

    def on_key(self, event: events.Key) -> None:
        why = self._WHY_NOT.get(event.key)
        if why is None or not isinstance(self.screen, MainScreen) or self.check_action(why[0], ()):
            return
        event.stop()
        self.notify("An operation is running: wait for it, or x cancels it." if self.busy else why[1],
                    severity="warning")

    def _has_backup(self) -> bool:
        try:
            return bool(self.library.list())
        except Exception:
            return False

    def action_keys(self) -> None:
        if not isinstance(self.screen, KeysScreen):
            self.push_screen(KeysScreen())

    def action_leave_field(self) -> None:
        """Escape in a field: give the keys back (focus the pane's list or log)."""
        focused = self.focused
        if isinstance(focused, (Input, Select, Checkbox)) or (focused is not None and
                                                               focused.__class__.__name__ == "SelectOverlay"):
            target = {"ports": "#ports-table", "log": "#log-view", "flash": "#fm-grid", "op": "#op-log"}
            pane = "ports" if focused.id in ("port-url", "reset", "reset-custom", "baud", "keep-trying") \
                else self.active_pane
            try:
                self.query_one(target[pane]).focus()
            except Exception:
                self.set_focus(None)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for cmd in super().get_system_commands(screen):
            if cmd.title == "Keys":
                yield SystemCommand("Keys", "Every key of the workbench (Escape closes it)", self.action_keys)
            elif cmd.title == "Screenshot":
                yield SystemCommand("Screenshot", "Save an SVG picture of the screen in the logs folder",
                                    lambda: self.set_timer(0.1, self.take_screenshot))
            else:
                yield cmd

    def take_screenshot(self) -> None:
        try:
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            path = self.save_screenshot(path=str(self.logs_dir))
        except OSError as exc:
            self.notify(f"Screenshot not saved: {exc}", severity="error")
            return
        self.notify(f"Screenshot saved: {path}", timeout=8)

    # -- shutdown --------------------------------------------------------------------------------
    async def action_quit(self) -> None:
        station = self._station.running() if self._station is not None else []
        if not self.busy and not station:
            self._quit_worker()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                if self.cancel_token is not None:
                    self.cancel_token.cancel()
                self.cancel_station(station)
                self._wait_then_quit()

        name = self.op_name if self.busy else ("Write" if any(r.what != "backup" for r in station) else "Backup")
        body = quit_text(name)
        if station:
            body = f"{len(station)} port(s) of the multi-port view are running. " + body
        self.push_screen(
            ConfirmScreen("Quit during an operation?", body, yes="Cancel and quit [y]", no="Keep running [n]"),
            answered,
        )

    async def _on_exit_app(self, message: messages.ExitApp) -> None:  # type: ignore[override]
        """An exit nobody chose with ctrl+q (the browser of `bkbench serve` went away, SIGTERM) while an
        operation runs (here or in the multi-port view): finish it first, so a backup still lands in the
        library and a write is completed and verified, then quit. Still linking (nothing started on the
        chip), or past UNATTENDED_FINISH_S, the operation is cancelled between sectors instead.
        Otherwise Textual's own handler exits at once."""
        def station() -> list[Any]:  # the multi-port view's ports run without making the app busy
            # Only runs with a cancel token: every real run has one (a drawn-only row, as in snapshots, has not).
            return [r for r in self._station.running() if r.cancel is not None] if self._station is not None else []

        if not self.busy and not station():
            return
        message.prevent_default()
        if self._unattended_quit:  # asked again (ctrl+c twice on `bkbench serve`): cancel between sectors now
            self._unattended_deadline = 0.0
            return
        self._unattended_quit = True
        self._unattended_deadline = time.monotonic() + UNATTENDED_FINISH_S

        def check() -> None:
            runs = station()
            if not self.busy and not runs:
                timer.stop()
                self._quit_worker()
                return
            late = time.monotonic() > self._unattended_deadline
            if self.busy and (self.linking or late) and self.cancel_token is not None:
                self.cancel_token.cancel()
            for run in runs:
                if late or run.state.startswith("linking"):  # linking: nothing started on the chip yet
                    run.cancel.cancel()

        timer = self.set_interval(0.2, check)
        check()

    def _wait_then_quit(self) -> None:
        def check() -> None:
            if not self.busy and not (self._station is not None and self._station.busy):
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

def quit_text(op_name: str) -> str:
    """What quitting does to the running operation (the quit dialog's body)."""
    if op_name in ("Write", "Restore", "Write config"):
        what = ("a cancelled write leaves the sectors written so far new and the rest old: the chip may not "
                "boot until the write is done (a re-run writes only what is left).")
    elif op_name == "Backup":
        what = "nothing is stored in the library and the chip's flash is untouched (a backup only reads)."
    else:
        what = "the chip's flash is untouched."
    return (f"{op_name} is running. Quitting cancels it between sectors: {what} "
            "What was done is printed when the app exits.")


def run(port: str | None = None, demo: bool = False, baud: int = 921600, data_dir: str | None = None,
        ports: list[str] | None = None, chips: int = 1) -> int:
    """Run the workbench; returns the process exit code. Several `ports` (or `chips` > 1 demo plugs) open
    it on the multi-port view."""
    if data_dir:
        os.environ["BKBENCH_DATA_DIR"] = str(data_dir)
    if demo or (port is None and not ports and not _hardware_present()):
        demo = True
        os.environ["BKBENCH_CACHE_DIR"] = str(demo_cache_dir())
        ports = setup_demo_chips(chips) if chips > 1 else []
        port = setup_demo()
        try:
            seed_demo_openbk()  # "backup then write OpenBK" works offline on the demo plugs
        except Exception as exc:  # without it the demo still backs up; a write says no OpenBK is cached
            print(f"bkbench: demo OpenBK images not prepared: {exc}")
    app = BkBenchApp(url=port, baud=baud, demo=demo, data_dir=data_dir, ports=ports)
    result = app.run()
    if app.last_outcome is not None:  # the quit summary: the screen is gone, the terminal keeps this
        outcome, text = app.last_outcome
        print(f"bkbench: last operation {outcome}: {text}")
    for line in app.station_report():  # each port of the multi-port view: what it did or left undone
        print(f"bkbench: {line}")
    return int(result or 0)
