"""Frames of the Beken UART download protocol (PROTOCOL.md section 1, 2).

Host commands are `01 E0 FC LEN CODE payload` (short) or `01 E0 FC FF F4 LEN16 CODE payload` (long);
chip responses are `04 0E LEN 01 E0 FC CODE payload` or `04 0E FF 01 E0 FC F4 LEN16 CODE payload`.
Short and long code spaces are separate, so a code is always paired with its form.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

CMD_HEADER = b"\x01\xe0\xfc"
RSP_HEADER = b"\x04\x0e"


class Cmd(enum.IntEnum):
    # short commands
    LINK_CHECK = 0x00
    WRITE_REG = 0x01
    READ_REG = 0x03
    REBOOT = 0x0E
    SET_BAUD = 0x0F
    CHECK_CRC = 0x10
    BOOT_VERSION = 0x11
    STAY_ROM = 0xAA


class LongCmd(enum.IntEnum):
    FLASH_WRITE = 0x06
    FLASH_WRITE_4K = 0x07
    FLASH_READ = 0x08
    FLASH_READ_4K = 0x09
    FLASH_ERASE_ALL = 0x0A
    FLASH_ERASE_4K = 0x0B
    FLASH_READ_SR = 0x0C
    FLASH_WRITE_SR = 0x0D
    FLASH_GET_MID = 0x0E
    FLASH_ERASE = 0x0F


LINK_CHECK_REPLY_CODE = 0x01  # the one reply whose code differs from its command
ERASE_4K = 0x20
ERASE_64K = 0xD8
REBOOT_MAGIC = b"\xa5"


def encode(code: int, payload: bytes = b"", long: bool = False) -> bytes:
    """Build a host command frame; a payload too big for one length byte forces the long form."""
    length = 1 + len(payload)
    if long or length >= 0xFF:
        return CMD_HEADER + b"\xff\xf4" + struct.pack("<H", length) + bytes([code]) + payload
    return CMD_HEADER + bytes([length, code]) + payload


def encode_response(code: int, payload: bytes = b"", long: bool = False) -> bytes:
    """Build a chip response frame (used by the simulator)."""
    if long:
        return RSP_HEADER + b"\xff" + CMD_HEADER + b"\xf4" + struct.pack("<H", 1 + len(payload)) + bytes(
            [code]) + payload
    return RSP_HEADER + bytes([4 + len(payload)]) + CMD_HEADER + bytes([code]) + payload


@dataclass(frozen=True)
class Response:
    code: int
    long: bool
    payload: bytes  # after the code; on long responses payload[0] is the status byte

    @property
    def status(self) -> int:
        return self.payload[0] if self.long and self.payload else 0


class ResponseScanner:
    """Finds response frames inside arbitrary bytes (boot log, noise, late replies).

    Scans for `04 0E`, requires `01 E0 FC` (short) or `FF 01 E0 FC F4` (long) right after, and on a
    malformed header resumes one byte after the `04` instead of swallowing input up to a later marker.
    """

    MAX_GARBAGE = 1 << 16

    def __init__(self) -> None:
        self._buf = bytearray()
        self.garbage = 0  # bytes discarded since the last reset; the link doctor reads this
        self.skipped: list[Response] = []

    def feed(self, data: bytes) -> None:
        self._buf += data

    def clear(self) -> None:
        self._buf.clear()

    @property
    def pending(self) -> int:
        return len(self._buf)

    def _drop(self, n: int) -> None:
        self.garbage += n
        del self._buf[:n]

    def next_frame(self) -> Response | None:
        """Pop the next complete frame, or None if the buffer holds no complete one yet."""
        buf = self._buf
        while True:
            idx = buf.find(RSP_HEADER)
            if idx < 0:
                # keep a trailing 0x04 that may start a header
                keep = 1 if buf.endswith(b"\x04") else 0
                self._drop(len(buf) - keep)
                return None
            if idx:
                self._drop(idx)
            if len(buf) < 3:
                return None
            if buf[2] == 0xFF:  # long form
                if len(buf) < 10:
                    if not _prefix_ok(buf[3:], CMD_HEADER + b"\xf4"):
                        self._drop(1)
                        continue
                    return None
                if buf[3:7] != CMD_HEADER + b"\xf4":
                    self._drop(1)
                    continue
                length = buf[7] | (buf[8] << 8)
                if length < 1:
                    self._drop(1)
                    continue
                total = 9 + length
                if len(buf) < total:
                    return None
                frame = Response(buf[9], True, bytes(buf[10:total]))
            else:
                length = buf[2]
                if length < 4:
                    self._drop(1)
                    continue
                if len(buf) < 7:
                    if not _prefix_ok(buf[3:], CMD_HEADER):
                        self._drop(1)
                        continue
                    return None
                if buf[3:6] != CMD_HEADER:
                    self._drop(1)
                    continue
                total = 3 + length
                if len(buf) < total:
                    return None
                frame = Response(buf[6], False, bytes(buf[7:total]))
            del buf[:total]
            return frame

    def find(self, code: int, long: bool) -> Response | None:
        """Pop frames until one matches code and form; others are kept in `skipped`."""
        while True:
            frame = self.next_frame()
            if frame is None:
                return None
            if frame.code == code and frame.long == long:
                return frame
            self.skipped.append(frame)
            del self.skipped[:-16]


def _prefix_ok(have: bytes | bytearray, want: bytes) -> bool:
    n = min(len(have), len(want))
    return bytes(have[:n]) == want[:n]


class CommandParser:
    """Chip-side parser: hunts `01 E0 FC`, reads the length, collects code + payload.

    Bytes that do not fit the frame shape restart the hunt, so garbage never wedges it.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def reset(self) -> None:
        self._buf.clear()

    @property
    def partial(self) -> int:
        """Bytes of an unfinished frame held (the simulator abandons them after an inter-byte gap)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[tuple[int, bool, bytes]]:
        self._buf += data
        out: list[tuple[int, bool, bytes]] = []
        buf = self._buf
        while True:
            idx = buf.find(CMD_HEADER)
            if idx < 0:
                keep = 2 if buf.endswith(b"\x01\xe0") else 1 if buf.endswith(b"\x01") else 0
                del buf[: len(buf) - keep]
                return out
            del buf[:idx]
            if len(buf) < 4:
                return out
            if buf[3] == 0xFF:
                if len(buf) < 7:
                    if len(buf) >= 5 and buf[4] != 0xF4:
                        del buf[:1]
                        continue
                    return out
                if buf[4] != 0xF4:
                    del buf[:1]
                    continue
                length = buf[5] | (buf[6] << 8)
                if length < 1 or length > 0x1100:
                    del buf[:1]
                    continue
                if len(buf) < 7 + length:
                    return out
                out.append((buf[7], True, bytes(buf[8 : 7 + length])))
                del buf[: 7 + length]
            else:
                length = buf[3]
                if length < 1:
                    del buf[:1]
                    continue
                if len(buf) < 4 + length:
                    return out
                out.append((buf[4], False, bytes(buf[5 : 4 + length])))
                del buf[: 4 + length]
