"""Live serial log: thread-safe line splitting, bounded memory, Line API rendering.

The monitor's reader thread calls LogBuffer.feed() with raw chunks; the widget drains finished lines
on a timer (a handful of refreshes per second however fast the UART is), so a 2 Mbaud flood costs one
redraw per tick rather than one message per line. Raw bytes also go to a rotating file so nothing is
lost when old lines fall out of the on-screen buffer.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from bkbench.core.backups import atomic_write
from bkbench.core.logmask import mask_secrets
from bkbench.core.paths import private_dir
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input, Static

_ANSI = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_CTRL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")

BOOT_BANNER = re.compile(r"^V:BK72\w*_\d+\.\d+\.\d+")
TUYA_SDK = re.compile(r"TUYA IOT SDK V:|BUILD AT:\S+ BY |oem_bk72\w+:\d|ty_iot_sdk")
OBK_VERSION = re.compile(r"OpenBK7231[NT]?\b.*\d+\.\d+\.\d+|OpenBeken\b.*\d+\.\d+\.\d+", re.IGNORECASE)
TUYA_ERROR = re.compile(r"\bTUYA E\]")


@dataclass
class LogLine:
    seq: int
    t: float  # wall-clock time the line started
    text: str
    raw: bytes
    kind: str = ""  # "", boot, tuya_sdk, obk, tuya_err, reset, notice, error


def safe_text(raw: bytes) -> str:
    """Decode one UART line for display: ANSI sequences dropped, control bytes shown as \\xNN."""
    text = _ANSI.sub(b"", raw).decode("utf-8", errors="replace")
    text = text.replace("\t", "    ")
    return _CTRL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def classify(text: str) -> str:
    if BOOT_BANNER.match(text):
        return "boot"
    if TUYA_SDK.search(text):
        return "tuya_sdk"
    if OBK_VERSION.search(text):
        return "obk"
    if TUYA_ERROR.search(text):
        return "tuya_err"
    return ""


class RawLog:
    """Appends raw UART bytes to `path`, rotating to path.1 .. path.N when it passes max_bytes."""

    def __init__(self, path: Path, max_bytes: int = 4 << 20, backups: int = 3) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self._fh: BinaryIO | None = None
        self._size = 0

    def _open(self):
        """Append, 0600 in a 0700 folder: the capture holds boot logs with Wi-Fi passwords, unmasked."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)  # also a file left 0644 by an older version
        return os.fdopen(fd, "ab")

    def write(self, data: bytes) -> None:
        if self._fh is None:
            private_dir(self.path.parent)
            self._fh = self._open()
            self._size = self._fh.tell()
        self._fh.write(data)
        self._size += len(data)
        if self._size >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        assert self._fh is not None
        self._fh.close()
        for i in range(self.backups - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                src.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._fh = self._open()
        self._size = 0

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class LogBuffer:
    """Splits a byte stream into LogLines. feed() may be called from any thread."""

    def __init__(
        self,
        max_line: int = 2048,
        raw_log: RawLog | None = None,
        clock: Callable[[], float] = time.time,
        max_pending: int = 20000,
    ) -> None:
        self.max_line = max_line
        self.raw_log = raw_log
        self.clock = clock
        self._lock = threading.Lock()
        self._partial = bytearray()
        self._partial_t: float | None = None
        self._after_cr = False
        self._pending: deque[LogLine] = deque(maxlen=max_pending)
        self._seq = 0
        self.bytes_in = 0
        self.dropped = 0

    def feed(self, data: bytes) -> None:
        now = self.clock()
        with self._lock:
            self.bytes_in += len(data)
            if self.raw_log is not None:
                try:
                    self.raw_log.write(data)
                except OSError:
                    self.raw_log = None
            for piece in re.split(rb"(\r\n|\n|\r)", data):
                if piece in (b"\n", b"\r\n"):
                    if piece == b"\n" and self._after_cr:
                        self._after_cr = False  # the \n of a \r\n split across two chunks
                        continue
                    self._emit(force=True)
                elif piece == b"\r":
                    self._after_cr = True
                    # a lone CR returns to column 0: what follows replaces this line on a terminal;
                    # keep the text written so far as a line so nothing is hidden
                    self._emit()
                elif piece:
                    self._after_cr = False
                    if self._partial_t is None:
                        self._partial_t = now
                    self._partial += piece
                    while len(self._partial) >= self.max_line:
                        chunk = bytes(self._partial[: self.max_line])
                        del self._partial[: self.max_line]
                        self._emit(chunk)

    def _emit(self, raw: bytes | None = None, force: bool = False) -> None:
        if raw is None:
            if not self._partial and not force:
                return
            raw = bytes(self._partial)
            self._partial.clear()
        t = self._partial_t if self._partial_t is not None else self.clock()
        self._partial_t = None if not self._partial else self.clock()
        text = safe_text(raw)
        kind = classify(text)
        if kind == "boot":
            self._append(LogLine(self._next(), t, "──── reset: bootloader banner ────", b"", "reset"))
        self._append(LogLine(self._next(), t, text, raw, kind))

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def _append(self, line: LogLine) -> None:
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
        self._pending.append(line)

    def note(self, text: str, kind: str = "notice") -> None:
        """Insert a line written by the app (reset markers, port hand-over)."""
        with self._lock:
            self._append(LogLine(self._next(), self.clock(), text, b"", kind))

    def flush_partial(self) -> None:
        with self._lock:
            if self._partial:
                self._emit()

    def take(self) -> list[LogLine]:
        with self._lock:
            lines = list(self._pending)
            self._pending.clear()
            if self.raw_log is not None:  # on the drain timer: the capture is on disk within a tick
                try:
                    self.raw_log.flush()
                except OSError:
                    self.raw_log = None
        return lines


def format_time(t: float) -> str:
    lt = time.localtime(t)
    return time.strftime("%H:%M:%S", lt) + f".{int((t % 1) * 1000):03d}"


def hex_of(raw: bytes, limit: int = 64) -> str:
    shown = raw[:limit]
    hx = " ".join(f"{b:02x}" for b in shown)
    asc = "".join(chr(b) if 32 <= b < 127 else "." for b in shown)
    more = f" +{len(raw) - limit}" if len(raw) > limit else ""
    return f"{hx}{more}  |{asc}|"


class SerialLog(ScrollView, can_focus=True):
    """Bounded list of LogLines drawn line by line; follows the tail unless paused or scrolled up."""

    class Following(Message):
        """The view started or stopped following the newest lines (the pane's status line says which)."""

    COMPONENT_CLASSES = {
        "seriallog--time",
        "seriallog--boot",
        "seriallog--tuya_sdk",
        "seriallog--obk",
        "seriallog--tuya_err",
        "seriallog--reset",
        "seriallog--notice",
        "seriallog--error",
        "seriallog--match",
    }
    DEFAULT_CSS = """
    SerialLog { height: 1fr; background: $surface; }
    SerialLog > .seriallog--time { color: $text-muted; }
    SerialLog > .seriallog--boot { color: $warning; text-style: bold; }
    SerialLog > .seriallog--tuya_sdk { color: $accent; text-style: bold; }
    SerialLog > .seriallog--obk { color: $success; text-style: bold; }
    SerialLog > .seriallog--tuya_err { color: $error; }
    SerialLog > .seriallog--reset { color: $warning; text-style: reverse; }
    SerialLog > .seriallog--notice { color: $primary; text-style: italic; }
    SerialLog > .seriallog--error { color: $error; text-style: bold; }
    SerialLog > .seriallog--match { background: $warning 60%; }
    """

    def __init__(self, max_lines: int = 5000, show_time: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lines: deque[LogLine] = deque(maxlen=max_lines)
        self.held: deque[LogLine] = deque(maxlen=max_lines)  # arrived while paused
        self.max_lines = max_lines
        self.paused = False
        self.hex_view = False
        self.show_time = show_time
        self.search = ""
        self._max_width = 0
        # The user's intent, not a reading of the scroll position: cleared when the user scrolls away from
        # the tail, set again when they scroll back to it (watch_scroll_y). Inferring it from scroll_y when
        # lines arrive raced the layout: hidden behind another screen, the log cannot scroll (no scrollbar
        # yet), so scroll_y stayed 0 and the next burst read that as "the user scrolled up".
        self.following = True

    # -- data ------------------------------------------------------------------------------------
    def add_lines(self, lines: list[LogLine]) -> None:
        if not lines:
            return
        if self.paused:
            self.held.extend(lines)
            return
        dropped = max(0, len(self.lines) + len(lines) - self.max_lines)
        self.lines.extend(lines)
        for line in lines:
            self._max_width = max(self._max_width, len(line.text) + 14)
        self._update_virtual_size()
        if self.following:
            self._keep_tail()
        elif dropped:  # the oldest lines fell off the top: keep the lines being read where they are
            self._scroll_y_to(self.scroll_y - dropped)
        self.refresh()

    def _scroll_y_to(self, y: float) -> None:
        # force: a log not laid out yet (hidden, or a scrollbar not created yet) must still scroll
        self.scroll_to(y=y, animate=False, force=True, immediate=True)

    def _follow_tail(self) -> None:
        if self.following:  # the user may have scrolled up since this was scheduled
            self._scroll_y_to(self.max_scroll_y)

    def _keep_tail(self) -> None:
        """Scroll to the tail now and again after the next layout (a new scrollbar changes max_scroll_y)."""
        self._follow_tail()
        self.call_after_refresh(self._follow_tail)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        # Only the user moves a following view off the tail: our scrolls go to max_scroll_y while following
        # (the others: find, lines dropped while scrolled up), and Textual's clamping on a resize only
        # lowers scroll_y to max_scroll_y.
        following = round(new_value) >= self.max_scroll_y
        if following != self.following:
            self.following = following
            self.post_message(self.Following())

    def lines_below(self) -> int:
        """Lines after the last one on screen (arrived while the user reads further up)."""
        return max(0, len(self.lines) - int(self.scroll_y) - self.scrollable_content_region.height)

    def on_resize(self) -> None:
        # Shown again after a tab switch (or the terminal resized): keep following the tail.
        if self.following:
            self._keep_tail()

    def on_show(self) -> None:
        if self.following:
            self._keep_tail()

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        if not paused and self.held:
            held = list(self.held)
            self.held.clear()
            self.add_lines(held)

    def clear(self) -> None:
        self.lines.clear()
        self.held.clear()
        self._max_width = 0
        self._update_virtual_size()
        self.following = True  # nothing left to read above: what comes next is the tail
        self.post_message(self.Following())
        self._scroll_y_to(0)
        self.refresh()

    def set_hex(self, on: bool) -> None:
        self.hex_view = on
        self._update_virtual_size()
        if self.following:  # the hex width may add a horizontal scrollbar over the last line
            self._keep_tail()
        self.refresh()

    def set_search(self, query: str) -> None:
        self.search = query
        self.refresh()

    def find(self, query: str, forward: bool = True) -> int | None:
        """Scroll to the next line containing `query` after (or before) the top of the view."""
        if not query:
            return None
        q = query.lower()
        items = list(self.lines)
        top = int(self.scroll_y)
        order = list(range(top + 1, len(items))) + list(range(0, top + 1))
        if not forward:
            order = list(range(top - 1, -1, -1)) + list(range(len(items) - 1, top - 1, -1))
        for i in order:
            if q in items[i].text.lower():
                self.scroll_to(y=max(0, i - 1), animate=False, immediate=True)
                return i
        return None

    def plain_text(self) -> str:
        return "\n".join(f"{format_time(x.t)}  {x.text}" for x in self.lines)

    def _update_virtual_size(self) -> None:
        width = self._max_width if not self.hex_view else 14 + 64 * 3 + 70
        self.virtual_size = Size(width, len(self.lines))

    # -- rendering -------------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        base = self.rich_style
        if index >= len(self.lines):
            return Strip.blank(width, base)
        line = self.lines[index]
        text = Text(no_wrap=True, end="")
        if self.show_time:
            text.append(format_time(line.t) + " ", self.get_component_rich_style("seriallog--time", partial=True))
        body_style: Style | str = ""
        if line.kind:
            body_style = self.get_component_rich_style(f"seriallog--{line.kind}", partial=True)
        if self.hex_view and line.raw:
            text.append(hex_of(line.raw), body_style)
        else:
            start = len(text)
            text.append(line.text, body_style)
            if self.search:
                match_style = self.get_component_rich_style("seriallog--match", partial=True)
                text.highlight_words([self.search], match_style, case_sensitive=False)
                del start
        segments = [Segment(s.text, base + s.style if s.style else base) for s in text.render(self.app.console)]
        strip = Strip(segments).crop(scroll_x, scroll_x + width)
        return strip.extend_cell_length(width, base)


class SerialLogPane(Vertical):
    """Status line, optional search box and the log; owns the LogBuffer and drains it on a timer."""

    DEFAULT_CSS = """
    SerialLogPane { height: 1fr; }
    SerialLogPane #log-status { height: 1; color: $text-muted; }
    SerialLogPane #log-search-row { height: auto; display: none; }
    SerialLogPane.searching #log-search-row { display: block; }
    SerialLogPane #log-search { width: 1fr; }
    """

    BINDINGS = [
        # Not in the footer (it has room for the chip's actions at 80 columns): `?` lists them.
        Binding("p", "toggle_pause", "Pause log", show=False),
        Binding("h", "toggle_hex", "Hex", show=False),
        Binding("ctrl+f,slash", "search", "Search", show=False),
        Binding("n", "find_next", "Next match", show=False),
        Binding("N", "find_prev", "Prev match", show=False),
        Binding("ctrl+l", "clear", "Clear log", show=False),
        Binding("ctrl+s", "save", "Save log", show=False),
    ]

    def __init__(
        self,
        buffer: LogBuffer | None = None,
        max_lines: int = 5000,
        save_dir: Path | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.buffer = buffer or LogBuffer()
        self.max_lines = max_lines
        self.save_dir = save_dir
        self.port_state = "idle"
        self.last_saved: Path | None = None

    @property
    def log_view(self) -> SerialLog:
        return self.query_one(SerialLog)

    def compose(self) -> ComposeResult:
        yield Static("", id="log-status", markup=False)
        with Horizontal(id="log-search-row"):
            yield Input(placeholder="search (Enter: next, ctrl+f: close)", id="log-search")
        yield SerialLog(max_lines=self.max_lines, id="log-view")

    def on_mount(self) -> None:
        self.set_interval(0.1, self.drain)
        self.update_status()

    def drain(self) -> int:
        lines = self.buffer.take()
        if lines:
            self.log_view.add_lines(lines)
            self.update_status()
        return len(lines)

    def set_port_state(self, state: str) -> None:
        self.port_state = state
        self.update_status()

    def update_status(self) -> None:
        view = self.log_view
        parts = [f"port: {self.port_state}", f"{len(view.lines)} lines", f"{self.buffer.bytes_in} B in"]
        if view.paused:
            parts.append(f"PAUSED ({len(view.held)} new)")
        if view.hex_view:
            parts.append("HEX")
        if view.search:
            parts.append(f"search: {view.search!r}")
        if not view.following and not view.paused:  # never silently: a stray scroll stops following
            below = view.lines_below()
            parts.append(f"NOT FOLLOWING ({below} below): End follows" if below else "NOT FOLLOWING: End follows")
        self.query_one("#log-status", Static).update("  ".join(parts))

    def on_serial_log_following(self, _event: SerialLog.Following) -> None:
        self.update_status()

    # -- actions ---------------------------------------------------------------------------------
    def action_toggle_pause(self) -> None:
        self.log_view.set_paused(not self.log_view.paused)
        self.update_status()

    def action_toggle_hex(self) -> None:
        self.log_view.set_hex(not self.log_view.hex_view)
        self.update_status()

    def action_search(self) -> None:
        searching = not self.has_class("searching")
        self.set_class(searching, "searching")
        box = self.query_one("#log-search", Input)
        if searching:
            box.focus()
        else:
            self.log_view.set_search("")
            self.log_view.focus()
        self.update_status()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "log-search":
            self.log_view.set_search(event.value)
            self.update_status()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "log-search":
            self.action_find_next()

    def action_find_next(self) -> None:
        if self.log_view.find(self.log_view.search) is None and self.log_view.search:
            self.notify(f"No line contains {self.log_view.search!r}", severity="warning")

    def action_find_prev(self) -> None:
        self.log_view.find(self.log_view.search, forward=False)

    def action_clear(self) -> None:
        self.log_view.clear()
        self.update_status()

    def action_save(self) -> Path | None:
        folder = private_dir(self.save_dir) if self.save_dir else Path.cwd()
        path = folder / time.strftime("serial-%Y%m%d-%H%M%S.log")
        text = mask_secrets(self.log_view.plain_text()) + "\n"  # Wi-Fi passwords and keys never saved
        try:
            atomic_write(path, text.encode("utf-8"), mode=0o600, overwrite=True)
        except OSError as exc:
            self.notify(f"Could not save the log to {path}: {exc.strerror or exc}", severity="error")
            return None
        self.last_saved = path
        self.notify(f"Log saved to {path}")
        return path
