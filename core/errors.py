"""Exceptions the engine raises; each carries one clear sentence for the user.

The fields are declared and the message is composed from them: `reason` (the sentence), `record` (the
OperationRecord: what was verified, what is left), `kind` (the operation named in "write still to do")
and `hint`. A caller reads the fields; nothing parses the text back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .ops.events import OperationRecord


class BkError(Exception):
    """Base of every error bkbench reports to a user."""

    hint: str = ""
    states_left = False  # the message ends with what the record says is still to do

    def __init__(self, reason: str, hint: str = "", *, record: OperationRecord | None = None,
                 kind: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        if hint:
            self.hint = hint
        self.record = record
        self.kind = kind

    @property
    def left(self) -> str | None:
        """What the operation still has to do (its record's remaining ranges), if it has a record."""
        return None if self.record is None else self.record.describe_remaining()

    def __str__(self) -> str:
        if not self.states_left or self.record is None:
            return self.reason
        return f"{self.reason}; {self.kind + ' ' if self.kind else ''}still to do: {self.left}"


class PortError(BkError):
    """The serial port cannot be opened or used."""


class ProtocolError(BkError):
    """A command got no valid response (timeout, malformed frame, echo mismatch, bad status)."""


class LinkError(BkError):
    """The chip never answered the link check; `diagnosis` is the link doctor's verdict (core/link/doctor.py)."""

    def __init__(self, reason: str, hint: str = "", *, diagnosis: Any = None) -> None:
        super().__init__(reason, hint)
        self.diagnosis = diagnosis

    def __str__(self) -> str:
        return f"{self.reason}: {self.diagnosis.title}" if self.diagnosis is not None else self.reason


class CrcMismatch(ProtocolError):
    def __init__(self, start: int, length: int, expected: int, got: int) -> None:
        super().__init__(
            f"CRC mismatch at 0x{start:06X}+0x{length:X}: expected 0x{expected:08X}, chip says 0x{got:08X}"
        )
        self.start, self.length, self.expected, self.got = start, length, expected, got


class FlashProtectedError(BkError):
    """Erase or write had no effect: the flash is write-protected."""


class UnsafeWriteError(BkError):
    """A write would touch the bootloader or RF calibration without an explicit request."""


class ImageError(BkError):
    """A firmware file is not what it must be for this operation."""


class OperationCancelled(BkError):
    """The user cancelled; the operation stopped between sectors (its record says what is left)."""

    states_left = True


class OperationFailed(BkError):
    """An operation stopped on an error; its record says what was verified and what is still to do."""

    states_left = True

    def __init__(self, reason: str, record: OperationRecord, hint: str = "", kind: str = "") -> None:
        super().__init__(reason, hint, record=record, kind=kind)
        self.record: OperationRecord = record


class VerifyFailed(OperationFailed):
    """The final compare after a write found the chip differs from what was written: `mismatched` names the
    ranges, which are what its record still has to do."""

    def __init__(self, reason: str, record: OperationRecord, mismatched: list[tuple[int, int]],
                 hint: str = "", kind: str = "") -> None:
        super().__init__(reason, record, hint, kind)
        self.mismatched = mismatched


class LinkLost(BkError):
    """The chip stopped answering in the middle of an operation (reset, brown-out, unplugged wire)."""
