"""Exceptions the engine raises; each carries one clear sentence for the user."""

from __future__ import annotations


class BkError(Exception):
    """Base of every error bkbench reports to a user."""

    hint: str = ""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        if hint:
            self.hint = hint


class PortError(BkError):
    """The serial port cannot be opened or used."""


class ProtocolError(BkError):
    """A command got no valid response (timeout, malformed frame, echo mismatch, bad status)."""


class LinkError(BkError):
    """The chip never answered the link check."""


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
    """The user cancelled; the operation stopped between sectors."""


class LinkLost(BkError):
    """The chip stopped answering in the middle of an operation (reset, brown-out, unplugged wire)."""
