"""Targeted line faults: a serial-port wrapper that parses frames both ways and flips chosen bits.

`LineTamper(port, flips)` sits between the host code and any serial port object (the simulator's
`sim://` port in the tests). Host->chip frames are parsed as they are written, chip->host frames as
they arrive; a `Flip` names a direction, a command kind, a field of that kind's frame, a bit of the
field and which occurrence of the kind to hit, so a test can say "bit 0 of the flash ID in the first
FlashGetMID reply" instead of hoping a random fault lands there. Every frame seen is logged in
`trace` (direction, kind), so a fault-free run tells a test which frames an operation exchanges.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..protocol import CMD_HEADER, LINK_CHECK_REPLY_CODE, RSP_HEADER, Cmd, LongCmd

H2C, C2H = "h2c", "c2h"

# (code, long form) -> kind name, for commands; replies use the same codes except LinkCheck's.
KINDS: dict[tuple[int, bool], str] = {
    (Cmd.LINK_CHECK, False): "link",
    (Cmd.READ_REG, False): "read_reg",
    (Cmd.SET_BAUD, False): "set_baud",
    (Cmd.CHECK_CRC, False): "crc",
    (Cmd.BOOT_VERSION, False): "boot_version",
    (Cmd.REBOOT, False): "reboot",
    (LongCmd.FLASH_WRITE_4K, True): "write4k",
    (LongCmd.FLASH_READ_4K, True): "read4k",
    (LongCmd.FLASH_ERASE, True): "erase",
    (LongCmd.FLASH_ERASE_4K, True): "erase4k",
    (LongCmd.FLASH_READ_SR, True): "read_sr",
    (LongCmd.FLASH_WRITE_SR, True): "write_sr",
    (LongCmd.FLASH_GET_MID, True): "mid",
}
REPLY_KINDS = dict(KINDS)
REPLY_KINDS[(LINK_CHECK_REPLY_CODE, False)] = "link"
del REPLY_KINDS[(Cmd.LINK_CHECK, False)]

# Fields after the code byte: name -> (offset from the first payload byte, size). "data" fields are
# long, so sweeps sample their bits. Long replies start with the status byte.
CMD_FIELDS: dict[str, dict[str, tuple[int, int]]] = {
    "link": {},
    "read_reg": {"addr": (0, 4)},
    "crc": {"addr": (0, 4), "end": (4, 4)},
    "boot_version": {},
    "read4k": {"addr": (0, 4)},
    "write4k": {"addr": (0, 4), "payload": (4, 4096)},
    "erase": {"size": (0, 1), "addr": (1, 4)},
    "read_sr": {"sr_op": (0, 1)},
    "write_sr": {"sr_op": (0, 1), "sr": (1, 2)},
    "mid": {"mid_arg": (0, 4)},
}
REPLY_FIELDS: dict[str, dict[str, tuple[int, int]]] = {
    "link": {"status": (0, 1)},
    "read_reg": {"addr": (0, 4), "value": (4, 4)},
    "crc": {"crc": (0, 4)},
    "boot_version": {"payload": (0, 13)},
    "read4k": {"status": (0, 1), "addr": (1, 4), "payload": (5, 4096)},
    "write4k": {"status": (0, 1), "addr": (1, 4)},
    "erase": {"status": (0, 1), "size": (1, 1), "addr": (2, 4)},
    "read_sr": {"status": (0, 1), "sr_op": (1, 1), "sr": (2, 1)},
    "write_sr": {"status": (0, 1), "sr_op": (1, 1), "sr": (2, 2)},
    "mid": {"status": (0, 1), "mid_arg": (1, 1), "flash_id": (2, 3)},
}


@dataclass(frozen=True)
class Flip:
    direction: str  # H2C or C2H
    kind: str  # a value of KINDS
    field: str  # "code", "len" or a key of CMD_FIELDS / REPLY_FIELDS for the kind
    bit: int  # bit of the field, little-endian (bit 0 = LSB of its first byte)
    nth: int = 1  # which frame of this kind and direction (1 = the first one seen)

    def describe(self) -> str:
        return f"{self.direction} {self.kind}#{self.nth} {self.field} bit {self.bit}"


def _layout(frame: bytes | bytearray, host: bool) -> tuple[str, int, int, tuple[int, int]] | None:
    """(kind, offset of the code byte, offset of the payload, (offset, size) of the length field)."""
    if host:
        if frame[:3] != CMD_HEADER or len(frame) < 5:
            return None
        if frame[3] == 0xFF and len(frame) >= 8 and frame[4] == 0xF4:
            code_at, long, length = 7, True, (5, 2)
        else:
            code_at, long, length = 4, False, (3, 1)
        kind = KINDS.get((frame[code_at], long))
    else:
        if frame[:2] != RSP_HEADER or len(frame) < 7:
            return None
        if frame[2] == 0xFF:
            code_at, long, length = 9, True, (7, 2)
        else:
            code_at, long, length = 6, False, (2, 1)
        kind = REPLY_KINDS.get((frame[code_at], long))
    if kind is None:
        return None
    return kind, code_at, code_at + 1, length


def field_span(kind: str, field: str, host: bool) -> tuple[int, int] | None:
    """(offset from the payload start, size) of a field; None for code / len (framing fields)."""
    return (CMD_FIELDS if host else REPLY_FIELDS).get(kind, {}).get(field)


def fields_of(kind: str, host: bool) -> dict[str, int]:
    """Every field of a frame kind with its width in bits (framing fields included)."""
    long = any(k == kind and lg for (_, lg), k in (KINDS if host else REPLY_KINDS).items())
    out = {"code": 8, "len": 16 if long else 8}
    for name, (_, size) in (CMD_FIELDS if host else REPLY_FIELDS).get(kind, {}).items():
        out[name] = size * 8
    return out


class LineTamper:
    """Wraps a serial port: every frame is counted by kind and the chosen bits are flipped once."""

    _own = ("_port", "flips", "trace", "hits", "_seen", "_rx", "_ready", "armed")

    def __init__(self, port: Any, flips: list[Flip] | tuple[Flip, ...] = (), armed: bool = True) -> None:
        object.__setattr__(self, "_port", port)
        object.__setattr__(self, "flips", list(flips))
        object.__setattr__(self, "trace", [])  # (direction, kind) of every parsed frame
        object.__setattr__(self, "hits", [])  # flips applied, in order
        object.__setattr__(self, "_seen", {})  # (direction, kind) -> frames counted while armed
        object.__setattr__(self, "_rx", bytearray())  # chip bytes not yet framed
        object.__setattr__(self, "_ready", bytearray())  # chip bytes passed on to the host
        object.__setattr__(self, "armed", armed)

    # ------------------------------------------------------------------ tampering
    def _tamper(self, frame: bytes, host: bool) -> bytes:
        lay = _layout(frame, host)
        if lay is None:
            return frame
        kind, code_at, payload_at, (len_at, len_size) = lay
        direction = H2C if host else C2H
        self.trace.append((direction, kind))
        if not self.armed:
            return frame
        n = self._seen.get((direction, kind), 0) + 1
        self._seen[(direction, kind)] = n
        out = bytearray(frame)
        for flip in self.flips:
            if flip.direction != direction or flip.kind != kind or flip.nth != n:
                continue
            if flip.field == "code":
                at, size = code_at, 1
            elif flip.field == "len":
                at, size = len_at, len_size
            else:
                span = field_span(kind, flip.field, host)
                if span is None:
                    continue
                at, size = payload_at + span[0], span[1]
            if flip.bit >= size * 8 or at + flip.bit // 8 >= len(out):
                continue
            out[at + flip.bit // 8] ^= 1 << (flip.bit % 8)
            self.hits.append(flip)
        return bytes(out)

    def _frame_rx(self) -> None:
        """Move complete reply frames (tampered) and anything that is not a frame to `_ready`."""
        buf = self._rx
        while buf:
            idx = buf.find(RSP_HEADER)
            if idx < 0:
                keep = 1 if buf.endswith(b"\x04") else 0
                self._ready += buf[: len(buf) - keep]
                del buf[: len(buf) - keep]
                return
            if idx:
                self._ready += buf[:idx]
                del buf[:idx]
            if len(buf) < 3:
                return
            if buf[2] == 0xFF:
                if len(buf) < 10:
                    return
                total = 9 + (buf[7] | buf[8] << 8)
                shaped = buf[3:7] == CMD_HEADER + b"\xf4"
            else:
                total = 3 + buf[2]
                shaped = len(buf) < 6 or buf[3:6] == CMD_HEADER
            if not shaped:
                self._ready += buf[:1]
                del buf[:1]
                continue
            if len(buf) < total:
                return
            self._ready += self._tamper(bytes(buf[:total]), host=False)
            del buf[:total]

    def _pull(self, size: int) -> None:
        waiting = self._port.in_waiting
        if waiting or size:
            data = self._port.read(max(waiting, size))
            if data:
                self._rx.extend(data)
                self._frame_rx()

    # ------------------------------------------------------------------ serial port API
    def write(self, data: bytes) -> int:
        self._port.write(self._tamper(bytes(data), host=True))
        return len(data)

    def read(self, size: int = 1) -> bytes:
        deadline = time.monotonic() + (self._port.timeout or 0)
        while len(self._ready) < size:
            self._pull(1)  # blocks for at most the wrapped port's timeout
            if time.monotonic() >= deadline:
                break
        out = bytes(self._ready[:size])
        del self._ready[:size]
        return out

    @property
    def in_waiting(self) -> int:
        if self._port.in_waiting:
            self._pull(0)
        return len(self._ready)

    def reset_input_buffer(self) -> None:
        self._rx.clear()
        self._ready.clear()
        self._port.reset_input_buffer()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._port, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._own:
            object.__setattr__(self, name, value)
        else:
            setattr(self._port, name, value)
