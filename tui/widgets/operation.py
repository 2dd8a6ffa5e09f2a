"""Operation pane: stage, progress, bytes, rate, ETA, retries, elapsed, Cancel and an event log.

While linking (Connect, Doctor) it also shows the link doctor's current diagnosis (core.link.doctor:
title + advice) with a live attempt counter; after a failed link the final diagnosis stays until the
next operation starts.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Sequence

from bkbench.core.ops.events import LinkAttempt, Notice, Progress, Retry, Stage
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Button, Label, ProgressBar, RichLog, Static

from ..advice import for_tui


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if abs(n) < 1024 or unit == "MiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} MiB"


IDLE_TEXT = ("Not connected. Press c to connect (reset the chip when asked), o to diagnose the link, "
             "w to pick firmware, ? for every key.")


def diagnosis_text(diag: Any, live: bool = False, attempts: int = 0, elapsed: float | None = None,
                   method: str = "", rx_bytes: int | None = None, endless: bool = False) -> Text:
    """A Diagnosis (kind, title, advice) as text: status line, bold title, one bullet per advice (phrased
    for the workbench: keys, not CLI flags)."""
    text = Text()
    if live:
        bits = [f"link attempt {attempts}" if attempts else "linking"]
        if elapsed is not None:
            bits.append(f"{elapsed:.0f} s")
        if rx_bytes is not None:
            bits.append(f"RX {rx_bytes} bytes")
        if method:
            bits.append(f"reset: {method}")
        text.append("Link doctor (live): " + " · ".join(bits) + "\n", "italic")
        if endless:
            text.append("Keeps trying until you cancel with x.\n", "italic")
    else:
        text.append(f"Link doctor: {getattr(diag, 'kind', '?')}\n", "italic")
    text.append(for_tui(str(getattr(diag, "title", "") or "")), "bold")
    for item in getattr(diag, "advice", None) or []:
        text.append(f"\n • {for_tui(item)}")
    return text


class ReflowLog(RichLog):
    """A RichLog that re-wraps its lines when its width changes: lines written while the pane was hidden
    (width 0) would otherwise stay wrapped at min_width."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.texts: deque[str] = deque(maxlen=self.max_lines or 400)
        self._drawn_width = 0

    def _width(self) -> int:
        """The wrap width: the pane's, or while it is hidden (width 0) the full screen's (narrow layout).
        Always explicit: RichLog would otherwise measure against the console (80 columns in tests)."""
        width = self.scrollable_content_region.width
        return width if width > 0 else max(self.min_width, self.app.size.width - 4)

    def add(self, text: str) -> None:
        self.texts.append(text)
        self.write(text, width=self._width())

    def clear(self) -> ReflowLog:
        self.texts.clear()
        return super().clear()

    def on_resize(self, _event: events.Resize) -> None:
        width = self.scrollable_content_region.width
        if width > 0 and width != self._drawn_width:
            self._drawn_width = width
            super().clear()
            for text in self.texts:
                self.write(text, width=width)


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds // 60 % 60:02d}"


class OperationState:
    """Numbers shown in the pane, derived from the event stream (rate over a sliding window)."""

    def __init__(self, name: str = "", now: float | None = None) -> None:
        self.name = name
        self.stage = ""
        self.message = ""
        self.done = 0
        self.total = 0
        self.retries = 0
        self.link_attempts = 0
        self.link_elapsed: float | None = None
        self.hint = ""
        self.started = now if now is not None else time.monotonic()
        self.finished: float | None = None
        self.outcome = ""  # "", ok, failed, cancelled
        self._window: deque[tuple[float, int]] = deque(maxlen=64)
        # A stage that comes again in one operation (a restore writes 0x11000-RF, then RF+4K-end; a read
        # resumed after a reconnect) goes on where its last run got to instead of starting the bar afresh:
        # the bytes the earlier runs did, per stage.
        self._carry: dict[str, int] = {}
        self._last_done: dict[str, int] = {}

    def apply(self, event: object) -> None:
        if isinstance(event, Stage):
            if event.name in self._last_done:  # another run of a stage seen before
                self._carry[event.name] = self._carry.get(event.name, 0) + self._last_done.pop(event.name)
            self.stage, self.message = event.name, event.message
            self._window.clear()  # a new stage has its own rate
        elif isinstance(event, Progress):
            carry = self._carry.get(self.stage, 0)
            self.done, self.total = carry + event.done, carry + event.total
            self._last_done[self.stage] = event.done
            self._window.append((event.t, self.done))
        elif isinstance(event, Retry):
            self.retries += 1
        elif isinstance(event, LinkAttempt):
            self.link_attempts = event.attempt
            self.link_elapsed = event.elapsed
            if event.hint:
                self.hint = event.hint

    @property
    def rate(self) -> float | None:
        if len(self._window) < 2:
            return None
        (t0, d0), (t1, d1) = self._window[0], self._window[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 and d1 >= d0 else None

    @property
    def eta(self) -> float | None:
        rate = self.rate
        if not rate or not self.total:
            return None
        return max(0.0, (self.total - self.done) / rate)

    def elapsed(self, now: float | None = None) -> float:
        end = self.finished if self.finished is not None else (now if now is not None else time.monotonic())
        return end - self.started

    def summary(self, now: float | None = None) -> str:
        parts = []
        if self.total:
            parts.append(f"{human_bytes(self.done)} / {human_bytes(self.total)}")
        rate = self.rate
        if rate:
            parts.append(f"{human_bytes(rate)}/s")
        if self.total and not self.finished:
            parts.append(f"ETA {clock(self.eta)}")
        parts.append(f"retries {self.retries}")
        parts.append(f"elapsed {clock(self.elapsed(now))}")
        return "  ".join(parts)


class OperationPane(Vertical):
    DEFAULT_CSS = """
    OperationPane { height: 1fr; }
    OperationPane #op-title { text-style: bold; height: auto; max-height: 3; width: 1fr; }
    OperationPane #op-stage { height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    OperationPane #op-diag-box { height: auto; max-height: 12; display: none; scrollbar-size-vertical: 1; }
    OperationPane.has-hint #op-diag-box { display: block; }
    OperationPane #op-hint { height: auto; color: $warning; }
    OperationPane.diag-ok #op-hint { color: $success; }
    OperationPane.diag-final #op-hint { color: $error; }
    OperationPane.diag-final.diag-ok #op-hint { color: $success; }
    OperationPane #op-bar-row { height: 1; display: none; }
    OperationPane.-bar #op-bar-row { display: block; }
    OperationPane #op-cancel { display: none; }
    OperationPane.-running #op-cancel { display: block; }
    OperationPane ProgressBar { width: 1fr; }
    OperationPane ProgressBar Bar { width: 1fr; }
    OperationPane #op-stats { height: auto; color: $text-muted; }
    OperationPane #op-cancel { min-width: 10; height: 1; border: none; margin-left: 1; }
    OperationPane #op-log { height: 1fr; min-height: 2; background: $surface; }
    OperationPane.ok #op-title { color: $success; }
    OperationPane.failed #op-title { color: $error; }
    OperationPane.cancelled #op-title { color: $warning; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.state = OperationState()
        self.state.finished = self.state.started
        self.running = False
        self.diagnosis: Any = None  # the Diagnosis shown (live while linking, or the final one)
        self.diagnosis_final = False
        self.reset_method = ""  # how the running link resets the chip (ResetStrategy.describe())
        self.rx_bytes: int | None = None  # bytes the link doctor saw on RX while linking
        self.endless = False  # the running link keeps trying until cancelled
        self._hints_logged: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Static(IDLE_TEXT, id="op-title", markup=False)
        yield Label("", id="op-stage")
        with VerticalScroll(id="op-diag-box"):
            yield Static("", id="op-hint", markup=False)
        with Horizontal(id="op-bar-row"):
            yield ProgressBar(total=100, show_eta=False, id="op-bar")
            yield Button(Content("Cancel [x]"), id="op-cancel", variant="error", disabled=True, compact=True)
        yield Static("", id="op-stats")
        yield ReflowLog(id="op-log", max_lines=400, wrap=True, markup=False, min_width=20)

    def on_mount(self) -> None:
        self._shown: dict[str, str] = {}
        self.set_interval(0.5, self.refresh_stats)

    @property
    def event_log(self) -> ReflowLog:
        return self.query_one("#op-log", ReflowLog)

    def begin(self, name: str) -> None:
        self.state = OperationState(name)
        self.running = True
        self.remove_class("ok", "failed", "cancelled", "has-hint", "diag-ok", "diag-final")
        self.diagnosis, self.diagnosis_final, self.reset_method = None, False, ""
        self.rx_bytes, self.endless, self._hints_logged = None, False, set()
        self.add_class("-running")
        self.query_one("#op-title", Static).update(f"{name}: running")
        self._update_if_changed("#op-hint", "")
        self.query_one("#op-bar", ProgressBar).update(total=100, progress=0)
        self.query_one("#op-cancel", Button).disabled = False
        self.log_line(f"── {name} ──")
        self.refresh_stats()

    def finish(self, outcome: str, message: str) -> None:
        self.running = False
        self.state.outcome = outcome
        self.state.finished = time.monotonic()
        self.add_class(outcome)
        self.remove_class("-running")
        self.state.stage, self.state.message = "", ""  # no stale "reading 0x…" after the end
        self.query_one("#op-title", Static).update(f"{self.state.name}: {message}")
        self.query_one("#op-cancel", Button).disabled = True
        if outcome == "ok" and self.state.total:
            self.query_one("#op-bar", ProgressBar).update(total=self.state.total, progress=self.state.total)
        self.log_line(message)
        self.refresh_stats()

    def show_diagnosis(self, diag: Any, final: bool = False) -> None:
        """Show a link-doctor Diagnosis: live while linking, `final` once the link attempt is over."""
        if diag is None:
            return
        self.diagnosis, self.diagnosis_final = diag, final
        if final:
            self.log_line(f"diagnosis: {getattr(diag, 'kind', '?')}: {getattr(diag, 'title', '')}")
        self.refresh_stats()

    @property
    def diagnosis_shown(self) -> bool:
        return self.has_class("has-hint")

    def log_line(self, text: str) -> None:
        self.event_log.add(time.strftime("%H:%M:%S ") + for_tui(text))

    def apply(self, events: Sequence[object]) -> None:
        """Apply a batch of (already coalesced) events from the pump."""
        for event in events:
            self.state.apply(event)
            if isinstance(event, Stage):
                self.log_line(f"stage {event.name}" + (f": {event.message}" if event.message else ""))
            elif isinstance(event, Notice):
                self.log_line(f"{event.level}: {event.message}")
            elif isinstance(event, Retry):
                self.log_line(f"retry #{event.attempt} at 0x{event.addr:06X}: {event.reason}")
            elif isinstance(event, LinkAttempt) and event.hint and (
                    finding := event.hint.split(". ", 1)[0].rstrip(".") + ".") not in self._hints_logged:
                self._hints_logged.add(finding)  # each finding once, without its advice (shown live above)
                self.log_line(f"link attempt {event.attempt} ({event.elapsed:.0f}s): {finding}")
        self.refresh_stats()

    def refresh_stats(self) -> None:
        st = self.state
        stage = st.stage + (f": {st.message}" if st.message else "")
        if st.link_attempts and st.stage in ("", "link") and self.running:
            stage += f"  (link attempt {st.link_attempts})"
        self._update_if_changed("#op-stage", for_tui(stage))
        linking = self.running and st.stage in ("", "link", "doctor")
        hint: str | Text = ""
        if self.diagnosis is not None and (self.diagnosis_final or linking):
            hint = diagnosis_text(self.diagnosis, live=not self.diagnosis_final, attempts=st.link_attempts,
                                  elapsed=st.link_elapsed, method=self.reset_method, rx_bytes=self.rx_bytes,
                                  endless=self.endless)
        elif linking and st.hint:
            hint = for_tui(st.hint)
        self._update_if_changed("#op-hint", hint)
        self.set_class(bool(hint), "has-hint")
        self.set_class(self.diagnosis_final, "diag-final")
        self.set_class(getattr(self.diagnosis, "kind", "") == "ok", "diag-ok")
        if st.total:
            self.query_one("#op-bar", ProgressBar).update(total=st.total, progress=st.done)
        self.set_class(bool(st.total), "-bar")  # no 0 % bar for a connect or a doctor run
        self._update_if_changed("#op-stats", st.summary() if st.name else "")

    def _update_if_changed(self, selector: str, content: str | Text) -> None:
        """Static.update always re-lays the widget out; a 2 Hz refresh of unchanged text costs ~5 % of a
        core while idle, so skip it when nothing changed."""
        key = content.markup if isinstance(content, Text) else content
        if self._shown.get(selector) != key:
            self._shown[selector] = key
            self.query_one(selector, Static).update(content)
