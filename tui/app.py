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
from typing import Any, Callable

from bkbench.core.ops.events import CancelToken
from textual import work
from textual.app import App
from textual.binding import Binding

from .commands import OperationsProvider
from .demo import DEMO_NAME, DEMO_URL, _hardware_present, setup_demo
from .monitor import MONITOR_BAUD, MonitorMixin
from .operations import OperationsMixin
from .pump import EventPump, PumpMixin, coalesce
from .ranges import ranges_text, subtract_ranges
from .screens.confirm import ConfirmScreen
from .screens.main import NARROW_WIDTH, PANE_TITLES, PANES, MainLayoutMixin, MainScreen
from .widgets.flashmap import FlashMapModel
from .widgets.seriallog import LogBuffer, RawLog
from .workflows import WorkflowsMixin

# Re-exported: tests, scripts and the CLI import these from bkbench.tui.app.
__all__ = [
    "DEMO_NAME", "DEMO_URL", "MONITOR_BAUD", "NARROW_WIDTH", "PANES", "PANE_TITLES",
    "BkBenchApp", "EventPump", "MainScreen", "OperationsProvider",
    "coalesce", "ranges_text", "run", "setup_demo", "subtract_ranges",
]


class BkBenchApp(MainLayoutMixin, PumpMixin, MonitorMixin, OperationsMixin, WorkflowsMixin, App[int]):
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
    def on_mount(self) -> None:
        self._main_screen = self.screen
        self.sub_title = "demo: simulated BK7231N" if self.demo else (self.url or "no port chosen")
        self._apply_layout()
        self.set_interval(0.1, self.drain_events)
        self.set_interval(0.5, self._update_statusline)
        self._update_statusline()
        if self.use_monitor and self.url:
            self.start_monitor(self.url)
    # -- shutdown --------------------------------------------------------------------------------
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
