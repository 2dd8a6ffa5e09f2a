"""The workbench's typed state: what BkBenchApp holds (set in its __init__) and what its mixins share.

The App is assembled from mixins (tui/app.py); each inherits `AppState`, so the state and the methods one
mixin offers another are declared once, with their types, for the type checker and the reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from bkbench.core.ops.events import CancelToken, OperationRecord
from textual.app import App
from textual.screen import Screen

if TYPE_CHECKING:
    from bkbench.core.analysis.device_apply import EntryPlan
    from bkbench.core.analysis.dump import DumpAnalysis
    from bkbench.core.backups import BackupEntry, BackupLibrary
    from bkbench.core.client import ChipInfo
    from bkbench.core.link.capture import RxCapture
    from bkbench.core.link.doctor import Diagnosis
    from bkbench.core.monitor import SerialMonitor
    from bkbench.core.session import ChipKey, Session, UnfinishedRead

    from .pump import EventPump
    from .station import PortRun, StationModel
    from .widgets.flashmap import FlashMapModel, FlashMapPane
    from .widgets.operation import OperationPane
    from .widgets.ports import PortsPane
    from .widgets.seriallog import LogBuffer, SerialLogPane


@dataclass(frozen=True)
class Written:
    """What the last write put on the chip (name of the file, (address, bytes) spans): what `v` compares."""

    name: str
    spans: list[tuple[int, bytes]]


class AppState(App[int]):
    # -- the port and how to reach the chip
    url: str
    baud: int
    reset: str
    link_timeout: float
    doctor_seconds: float
    keep_trying: bool  # a manual-reset link waits until cancelled (no fixed give-up)
    demo: bool
    data_dir: Path | None
    ports_source: Callable[[], list[Any]] | None
    use_monitor: bool
    poll_ports: float
    station_ports: list[str]
    # -- the engine side
    pump: EventPump
    session: Session | None  # holds the port while an operation runs or the chip is held after Connect
    chip_info: ChipInfo | None
    linking: bool  # the operation worker is linking (a quit then cancels at once)
    unfinished_backups: dict[ChipKey, UnfinishedRead]  # backups that stopped: `b` continues them
    monitor: SerialMonitor | None
    monitor_url: str
    rx_capture: RxCapture | None  # what the serial log saw on monitor_url, for the doctor
    log_buffer: LogBuffer
    # -- the running operation and what it left
    busy: bool
    op_name: str
    cancel_token: CancelToken | None
    last_outcome: tuple[str, str] | None
    last_analysis: DumpAnalysis | None
    last_cancel_record: OperationRecord | None
    last_written: Written | None
    _written_mac: str | None
    # -- layout
    flash_model: FlashMapModel
    active_pane: str
    _prefer_log: bool  # the user asked for the log while a diagnosis is shown (wide layout)
    _map_phase: str
    _main_screen: Screen | None  # the workbench's own screen (the others are dialogs and views over it)
    _library: BackupLibrary | None
    _station: StationModel | None

    if TYPE_CHECKING:  # offered by one mixin to the others (defined in app.py, screens/main.py, ...)
        @property
        def base_dir(self) -> Path: ...
        @property
        def logs_dir(self) -> Path: ...
        @property
        def library(self) -> BackupLibrary: ...
        @property
        def narrow(self) -> bool: ...
        @property
        def flash_pane(self) -> FlashMapPane: ...
        @property
        def op_pane(self) -> OperationPane: ...
        @property
        def log_pane(self) -> SerialLogPane: ...
        @property
        def ports_pane(self) -> PortsPane: ...
        @property
        def station(self) -> StationModel: ...
        def start_operation(self, name: str, body: Callable[[Optional[Session], CancelToken], str],
                            release_after: bool = False, needs_chip: bool = True) -> bool: ...
        def _apply_layout(self) -> None: ...
        def _sync_diag_layout(self) -> None: ...
        def _update_statusline(self) -> None: ...
        def _main_attached(self) -> bool: ...
        def show_pane(self, pane: str) -> None: ...
        def drain_events(self) -> None: ...
        def start_monitor(self, url: str) -> Any: ...
        def _pause_monitor(self, owner: str) -> None: ...
        def _resume_monitor(self) -> None: ...
        def _stop_monitor(self) -> None: ...
        def _drop_session(self) -> None: ...
        def _release_session(self, reboot: bool) -> None: ...
        def _show_final_diagnosis(self, diag: Diagnosis) -> None: ...
        def backups_for_chip(self) -> list[BackupEntry]: ...
        def station_busy_on(self, url: str) -> bool: ...
        def cancel_station(self, runs: list[PortRun]) -> int: ...
        def action_config(self, entry_plan: EntryPlan | None = None) -> None: ...
        def _quit_worker(self) -> Any: ...
