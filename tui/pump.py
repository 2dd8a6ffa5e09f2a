"""Engine events to the UI thread: a thread-safe pump filled by worker threads, drained in batches.

Engine events arrive on a worker thread and go into the EventPump; a 10 Hz timer on the UI thread drains it,
coalescing Progress and applying SectorUpdates to the flash-map model in bulk. While a Session links, its
`diagnosis` (core.link.doctor) is polled by the same timer and shown in the Operation pane.
"""

from __future__ import annotations

import threading

from bkbench.core.ops.events import Event, LinkAttempt, Progress, SectorUpdate, Stage


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


class PumpMixin:
    """BkBenchApp's UI-thread side of the pump: drain, coalesce, apply to the flash map and Operation pane."""

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
        rx = getattr(doctor, "rx_total", None)
        if isinstance(rx, int):
            self.op_pane.rx_bytes = rx
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
