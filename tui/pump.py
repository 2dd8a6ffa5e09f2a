"""Engine events to the UI thread: a thread-safe pump filled by worker threads, drained in batches.

Engine events arrive on a worker thread and go into the EventPump; a 10 Hz timer on the UI thread drains it,
coalescing Progress and applying SectorUpdates to the flash-map model in bulk. While a Session links, each
LinkAttempt carries the link doctor's verdict so far (core.link.doctor), shown in the Operation pane.
"""

from __future__ import annotations

import threading

from bkbench.core.ops.events import BootLog, Event, LinkAttempt, Progress, SectorUpdate, Stage

from .state import AppState


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


class PumpMixin(AppState):
    """BkBenchApp's UI-thread side of the pump: drain, coalesce, apply to the flash map and Operation pane."""

    def drain_events(self) -> None:
        if not self._main_attached():
            return
        self._sync_diag_layout()
        events = self.pump.take()
        if not events:
            return
        for ev in events:
            if isinstance(ev, BootLog):  # the engine watched the boot: the serial log shows what it saw
                self.log_buffer.feed(ev.data)
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

    def _show_link_attempt(self, ev: LinkAttempt) -> None:
        """While a Session links: the doctor's verdict so far, the RX count and the reset method."""
        if ev.diagnosis is None or not self.linking:
            return
        self.op_pane.reset_method = ev.method
        self.op_pane.rx_bytes = ev.rx_bytes
        if ev.diagnosis is not self.op_pane.diagnosis:
            self.op_pane.show_diagnosis(ev.diagnosis)
            self._apply_layout()

    def _apply_batch(self, events: list[Event]) -> None:
        sectors, others = coalesce(events)
        attempts = [ev for ev in others if isinstance(ev, LinkAttempt)]
        if attempts:
            self._show_link_attempt(attempts[-1])
        for ev in sectors:
            self.flash_model.set_state(ev.addr, ev.state, ev.size)
        if sectors or self.flash_model.dirty:
            self.flash_pane.sync()
        if others:
            self.op_pane.apply(others)
