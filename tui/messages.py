"""What the workbench's worker threads hand to the UI thread: Textual messages (posted from the thread, handled
on the UI thread), never attributes the UI polls."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from bkbench.core.client import ChipInfo
    from bkbench.core.ops.events import OperationRecord
    from bkbench.core.station import ChipResult

    from .station import PortRun


class OperationDone(Message):
    """The operation worker finished: its outcome ("ok", "failed", "cancelled") and the line to show."""

    def __init__(self, name: str, outcome: str, text: str, record: OperationRecord | None = None) -> None:
        super().__init__()
        self.name, self.outcome, self.text, self.record = name, outcome, text, record


class ChipConnected(Message):
    """The operation worker linked and identified the chip (the Session now holds the port)."""

    def __init__(self, info: ChipInfo) -> None:
        super().__init__()
        self.info = info


class AnalysisReady(Message):
    """An analysis worker finished (the report, masked, and where it came from)."""

    def __init__(self, analysis: Any, result: dict, source: str) -> None:
        super().__init__()
        self.analysis, self.result, self.source = analysis, result, source


class PortDone(Message):
    """A multi-port worker finished its port (its ChipResult)."""

    def __init__(self, run: PortRun, result: ChipResult) -> None:
        super().__init__()
        self.run, self.result = run, result


class PortsFound(Message):
    """The multi-port view's adapter scan finished."""

    def __init__(self, ports: list[Any]) -> None:
        super().__init__()
        self.ports = ports
