"""Turn engine events into terminal output: a rich progress bar on a TTY, plain lines otherwise."""

from __future__ import annotations

import shutil
import sys
import textwrap
import time
from typing import TYPE_CHECKING

from ..ops.events import Event, LinkAttempt, Notice, Progress, Retry, SectorUpdate, Stage

if TYPE_CHECKING:
    from rich.progress import TaskID


def _width() -> int:
    return max(40, min(100, shutil.get_terminal_size((80, 24)).columns))


class PlainRenderer:
    """One line per stage/notice/retry and a progress line every 10 %; for pipes, logs and CI."""

    def __init__(self, stream=None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self._last_pct = -10
        self._last_link = 0.0
        self._last_hint = ""

    def __call__(self, ev: Event) -> None:
        if self.quiet:
            return
        if isinstance(ev, Stage):
            self._last_pct = -10
            print(f"[{ev.name}] {ev.message}", file=self.stream, flush=True)
        elif isinstance(ev, Notice):
            print(f"{ev.level}: {ev.message}", file=self.stream, flush=True)
        elif isinstance(ev, Retry):
            print(f"retry 0x{ev.addr:06X} (attempt {ev.attempt}): {ev.reason}", file=self.stream, flush=True)
        elif isinstance(ev, LinkAttempt):
            if ev.elapsed - self._last_link >= 2.0 or ev.elapsed < self._last_link:
                self._last_link = ev.elapsed
                # The doctor's finding once, wrapped; after that only the counter (no wall of repeats).
                new = ev.hint if ev.hint != self._last_hint else ""
                self._last_hint = ev.hint or self._last_hint
                line = f"linking... {ev.elapsed:4.1f} s ({ev.attempt} attempts)" + (f": {new}" if new else "")
                print(textwrap.fill(line, _width(), subsequent_indent="    "), file=self.stream, flush=True)
        elif isinstance(ev, Progress) and ev.total:
            pct = ev.done * 100 // ev.total
            if pct >= self._last_pct + 10 or ev.done == ev.total:
                self._last_pct = pct
                print(f"  {pct:3d}% {ev.done}/{ev.total} bytes", file=self.stream, flush=True)


class RichRenderer:
    """A live progress bar with rate and ETA on an interactive terminal."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import (
            Progress as RichProgress,
        )

        self.console = Console(stderr=True)
        self.progress = RichProgress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
            TransferSpeedColumn(), TimeRemainingColumn(), console=self.console, transient=False,
        )
        self.task: TaskID | None = None
        self._started = False
        self._t0 = time.monotonic()
        self._last_hint = ""

    def __call__(self, ev: Event) -> None:
        if isinstance(ev, Stage):
            self.console.print(f"[bold]{ev.name}[/]: {ev.message}")
            self.task = None
        elif isinstance(ev, Notice):
            style = {"warning": "yellow", "error": "red"}.get(ev.level, "cyan")
            self.console.print(f"[{style}]{ev.level}[/]: {ev.message}")
        elif isinstance(ev, Retry):
            self.console.print(f"[yellow]retry[/] 0x{ev.addr:06X} #{ev.attempt}: {ev.reason}")
        elif isinstance(ev, LinkAttempt):
            if int(ev.elapsed * 4) % 8 == 0:
                new = ev.hint if ev.hint != self._last_hint else ""
                self._last_hint = ev.hint or self._last_hint
                self.console.print(f"linking {ev.elapsed:4.1f} s" + (f": {new}" if new else ""),
                                   markup=False, highlight=False)
        elif isinstance(ev, Progress):
            if not self._started:
                self.progress.start()
                self._started = True
            if self.task is None:
                self.task = self.progress.add_task("flash", total=ev.total)
            self.progress.update(self.task, completed=ev.done, total=ev.total)
        elif isinstance(ev, SectorUpdate):
            pass

    def close(self) -> None:
        if self._started:
            self.progress.stop()


def make_renderer(json_mode: bool, quiet: bool = False):
    if json_mode or quiet or not sys.stderr.isatty():
        return PlainRenderer(quiet=quiet or json_mode)
    return RichRenderer()
