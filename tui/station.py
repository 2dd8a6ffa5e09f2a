"""Several ports at once (the multi-port view's model): one PortRun per port with its own state, flash
map, event log and record, fed by the engine's events from one worker thread per port.

Plain Python (no Textual): the screen (screens/station.py) draws it, the app drains it on its 10 Hz
timer. The engine side is core/station.py: `run_port` runs one port's Plan and never raises BkError,
`port_state` turns the event stream into the state column ("backing up 43 %", "writing 12 %", ...).
"""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass, field

from bkbench.core.ops.events import CancelToken, Connected, Notice, Retry, Stage
from bkbench.core.station import ChipResult, port_state

from .pump import EventPump, coalesce
from .widgets.flashmap import FlashMapModel
from .widgets.operation import OperationState

FINAL_STATES = ("done", "failed", "cancelled")


@dataclass
class PortRun:
    """One port of the station: what it is doing, its map, its log lines and its last record."""

    url: str
    label: str = ""  # adapter or chip description shown beside the port
    selected: bool = False
    state: str = "idle"
    error: str = ""
    chip: str = ""
    flash: FlashMapModel = field(default_factory=FlashMapModel)
    op: OperationState = field(default_factory=OperationState)
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=400))
    result: ChipResult | None = None  # of the last run
    cancel: CancelToken | None = None
    running: bool = False
    pump: EventPump = field(default_factory=EventPump)
    what: str = ""  # the plan's short name ("backup + OpenBK", "backup")
    _phase: str = ""  # "read" until the write starts: the map is cleared then (as the main screen does)

    def log(self, text: str) -> None:
        self.lines.append(time.strftime("%H:%M:%S ") + text)

    def begin(self, what: str, cancel: CancelToken) -> None:
        self.running, self.cancel, self.what = True, cancel, what
        self.state, self.error, self.result, self._phase = "linking", "", None, ""
        self.op = OperationState(what)
        self.flash.reset()
        self.log(f"── {what} ──")

    def finish(self, result: ChipResult) -> None:
        """The worker's ChipResult: the state column shows the outcome, the log says what was done."""
        self.drain()  # the last events before the outcome
        self.running, self.cancel, self.result = False, None, result
        self.state = result.state or "failed"
        self.error = result.error
        self.chip = result.chip or self.chip
        self.op.finished = time.monotonic()
        self.op.outcome = self.state
        self.op.stage, self.op.message = "", ""
        self.log(f"{self.state}: " + "; ".join(record_lines(result, with_log=False)))

    @property
    def state_text(self) -> str:
        """The state column: the state, and for a failure the gist of its error (the record has all of it)."""
        if self.state == "failed" and self.error:
            gist, previous = self.error, ""
            while gist != previous:  # nested parentheses: innermost first
                previous, gist = gist, re.sub(r" ?\([^()]*\)", "", gist)
            gist = "; ".join(gist.split("; ")[:2])
            return f"failed: {gist}"
        return self.state

    def drain(self) -> bool:
        """Apply the pending events (UI thread); True when anything changed."""
        events = self.pump.take()
        if not events:
            return False
        for ev in events:
            self.state = port_state(ev, self.state) or self.state
            if isinstance(ev, Stage):
                if ev.name in ("read", "backup"):
                    self._phase = "read"
                elif ev.name in ("unprotect", "write") and self._phase == "read":
                    self._phase = "write"  # the backup is stored: the map now shows the write
                    self.flash.reset()
        sectors, others = coalesce(events)
        for sec in sectors:
            self.flash.set_state(sec.addr, sec.state, sec.size)
        for ev in others:
            self.op.apply(ev)
            if isinstance(ev, Stage):
                self.log(f"stage {ev.name}" + (f": {ev.message}" if ev.message else ""))
            if isinstance(ev, Connected) and ev.info is not None:
                self._learn_chip(ev.info.chip)
            elif isinstance(ev, Notice):
                self.log(f"{ev.level}: {ev.message}")
            elif isinstance(ev, Retry):
                self.log(f"retry #{ev.attempt} at 0x{ev.addr:06X}: {ev.reason}")
        return True

    def _learn_chip(self, chip: str) -> None:
        """The chip once connected: its map takes its family's layout."""
        from bkbench.core.chips import FAMILIES

        if chip in FAMILIES:
            self.chip = chip
            if chip != self.flash.chip:
                self.flash = FlashMapModel(chip, self.flash.flash_size)


def record_lines(result: ChipResult | None, with_log: bool = True) -> list[str]:
    """A ChipResult as short lines (the record under the log, and the log's last line)."""
    if result is None:
        return []
    out = []
    chip = " ".join(x for x in (result.chip, result.mac) if x)
    if chip or result.seconds:
        out.append(" · ".join(x for x in (chip, f"{result.seconds:.0f} s" if result.seconds else "",
                                           f"{result.retries} retries" if result.retries else "") if x))
    if result.backup:
        taken = "taken now" if result.backup_taken else "already in the library"
        out.append(f"backup: {_name(result.backup)} ({taken})")
    if result.wrote:
        out.append(f"wrote: {result.wrote}")
    if result.error:
        out.append(result.error + (f" ({result.hint})" if result.hint else ""))
    if with_log and result.log:
        out.append(f"log: {result.log}")
    return out or [result.state]


def _name(path: str) -> str:
    return str(path).rsplit("/", 1)[-1]


class StationModel:
    """The ports of the multi-port view, in the order they were added."""

    def __init__(self) -> None:
        self.ports: dict[str, PortRun] = {}

    def add(self, url: str, label: str = "") -> PortRun:
        """The port's run, new or existing; an alias of a listed adapter (a by-id link, serial0) is the same
        run, never a second row that would open the same adapter twice."""

        run = self.find(url)
        if run is None:
            run = self.ports[url] = PortRun(url, label)
        elif label and not run.label:
            run.label = label
        return run

    def __iter__(self):
        return iter(self.ports.values())

    def __len__(self) -> int:
        return len(self.ports)

    def get(self, url: str) -> PortRun | None:
        return self.ports.get(url)

    def find(self, url: str) -> PortRun | None:
        """The run of this port or of another name for the same adapter."""
        from bkbench.core.station import port_key

        key = port_key(url)
        return self.ports.get(url) or next((r for r in self.ports.values() if port_key(r.url) == key), None)

    @property
    def busy(self) -> bool:
        return any(r.running for r in self.ports.values())

    def running(self) -> list[PortRun]:
        return [r for r in self.ports.values() if r.running]

    def selected(self) -> list[PortRun]:
        return [r for r in self.ports.values() if r.selected]

    def drain(self) -> list[PortRun]:
        """Apply every port's pending events; the ports that changed."""
        return [r for r in self.ports.values() if r.drain()]

    def summary(self) -> str:
        """One line for the status bar: how many ports run, are done, failed."""
        counts: dict[str, int] = {}
        for r in self.ports.values():
            key = "running" if r.running else (r.state if r.state in FINAL_STATES else "idle")
            counts[key] = counts.get(key, 0) + 1
        order = ("running", "done", "failed", "cancelled", "idle")
        return ", ".join(f"{counts[k]} {k}" for k in order if counts.get(k))
