"""Typed events every operation emits; the CLI and the TUI render the same stream.

A sink is any callable taking one event. Sinks are called on the thread running the operation,
so a UI must hand events over to its own thread (the TUI posts them as messages).
"""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Union

if TYPE_CHECKING:
    from ..client import ChipInfo
    from ..link.doctor import Diagnosis


class SectorState(str, enum.Enum):
    PENDING = "pending"
    READ = "read"
    VERIFIED = "verified"
    ERASED = "erased"
    WRITTEN = "written"
    SKIPPED = "skipped"  # already identical on the chip
    FAILED = "failed"
    BLANK = "blank"  # erased, vouched by chip CRCs without transferring it (flash_ops.py, strong check)


@dataclass(frozen=True)
class Stage:
    name: str  # link, identify, unprotect, read, erase, write, verify, backup, reboot, done
    message: str = ""


@dataclass(frozen=True)
class Connected(Stage):
    """The chip is linked and identified: `info` is the fact (a UI reads the chip from it), `message` the
    line a renderer shows as for any stage."""

    info: ChipInfo | None = None


@dataclass(frozen=True)
class BootLog:
    """What the chip printed after a reboot while bkbench watched for its firmware's banner (a UI shows it in
    its serial log: the port was the engine's meanwhile)."""

    data: bytes


@dataclass(frozen=True)
class Progress:
    done: int  # bytes
    total: int
    t: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class SectorUpdate:
    addr: int
    state: SectorState
    size: int = 0x1000


@dataclass(frozen=True)
class Retry:
    addr: int
    attempt: int
    reason: str


@dataclass(frozen=True)
class Notice:
    level: str  # info, warning, error
    message: str


@dataclass(frozen=True)
class LinkAttempt:
    attempt: int
    elapsed: float
    hint: str = ""
    diagnosis: Diagnosis | None = None  # the link doctor's verdict so far (core/link/doctor.py)
    rx_bytes: int = 0  # bytes heard on RX since the link began
    method: str = ""  # the reset method in use, described


Event = Union[Stage, Progress, SectorUpdate, Retry, Notice, LinkAttempt, BootLog]
EventSink = Callable[[Event], None]


def null_sink(_event: Event) -> None:
    return None


class CancelToken:
    """Checked by operations between sectors; set from any thread."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class OperationRecord:
    """What an operation did, kept so a cancelled or failed run can say what is left."""

    kind: str
    start: int
    length: int
    done: list[tuple[int, int]] = field(default_factory=list)  # verified half-open ranges
    failed_at: int | None = None
    retries: int = 0
    # Ranges a command damaged on the line may have hit (the chip echoed another address).
    damaged: list[tuple[int, int]] = field(default_factory=list)

    def mark_done(self, start: int, end: int) -> None:
        if self.done and self.done[-1][1] == start:
            self.done[-1] = (self.done[-1][0], end)
        else:
            self.done.append((start, end))

    def remaining(self) -> list[tuple[int, int]]:
        """Half-open ranges of the requested span not yet verified, in address order."""
        out: list[tuple[int, int]] = []
        pos = self.start
        for s, e in sorted(self.done):
            if s > pos:
                out.append((pos, s))
            pos = max(pos, e)
        if pos < self.start + self.length:
            out.append((pos, self.start + self.length))
        return out

    def describe_remaining(self) -> str:
        rem = self.remaining()
        if not rem:
            return "nothing left to do"
        return ", ".join(f"0x{s:06X}-0x{e:06X}" for s, e in rem)
