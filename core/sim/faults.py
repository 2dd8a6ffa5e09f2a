"""Seeded fault injection on the simulated wire (reliability tests), and whole-frame reply faults.

Byte faults (`FaultPlan` rates) damage bytes. Frame faults (`FrameFault`) leave every byte intact and
break the pairing of replies with commands instead, as a chip or an adapter's buffering can:

- "repeat": the reply is sent twice in a row;
- "stale": the chip answers with its previous reply of the same kind (CheckCRC replies carry no
  address, so nothing in the frame says it is old);
- "late": a copy of the reply arrives again after the host has sent `lag` more commands (it drained
  its input meanwhile), just before the answer to the last of them; with the timing model on the copy
  reaches the host `delay_s` after that command reaches the chip, which is before the chip's answer;
- "swap": the reply is held back and delivered right after the next reply of any kind;
- "drop": the reply never comes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

FRAME_ACTIONS = ("repeat", "stale", "late", "swap", "drop")


@dataclass(frozen=True)
class FrameFault:
    kind: str  # reply kind, as core/sim/tamper.py names them: "crc", "read4k", "erase", "link", ...
    nth: int  # which reply of that kind, counted from when the plan was installed (1 = the first)
    action: str  # one of FRAME_ACTIONS
    lag: int = 1  # "late": the copy comes after this many more commands
    delay_s: float = 0.0005  # "late", timing model on: after the releasing command reaches the chip

    def describe(self) -> str:
        lag = f" lag {self.lag}" if self.action == "late" else ""
        return f"{self.action}{lag} {self.kind} reply #{self.nth}"


@dataclass
class FaultPlan:
    seed: int = 0
    drop_rate: float = 0.0  # per byte, chip -> host
    flip_rate: float = 0.0  # per byte, chip -> host
    insert_rate: float = 0.0  # per byte, chip -> host
    rx_corrupt_rate: float = 0.0  # per byte, host -> chip
    noise_rate: float = 0.0  # per reply: boot-log text arrives just before it
    stall_rate: float = 0.0  # per reply: the reply is late by stall_s
    stall_s: float = 1.5
    reset_rate: float = 0.0  # per command: the chip resets (brown-out) instead of answering
    disconnect_after: int | None = None  # host-visible bytes before the adapter vanishes
    frames: tuple[FrameFault, ...] = ()  # whole-frame reply faults (module docstring)

    @property
    def active(self) -> bool:
        return any(
            (self.drop_rate, self.flip_rate, self.insert_rate, self.rx_corrupt_rate, self.stall_rate, self.noise_rate,
             self.reset_rate)
        ) or self.disconnect_after is not None or bool(self.frames)


class FaultInjector:
    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.counts = {"drop": 0, "flip": 0, "insert": 0, "rx_corrupt": 0, "stall": 0, "reset": 0, "noise": 0,
                       "frame": 0}
        self.replies: dict[str, int] = {}  # reply frames sent so far, by kind
        self.hits: list[FrameFault] = []  # frame faults applied, in order
        self._last: dict[str, bytes] = {}  # the previous reply of each kind, as the chip produced it
        self._late: list[list] = []  # [frame, commands still to come, delay]
        self._held: list[bytes] = []  # "swap": frames waiting for the next reply

    def _n(self, rate: float, length: int) -> int:
        expected = rate * length
        n = int(expected)
        if self.rng.random() < expected - n:
            n += 1
        return n

    def corrupt(self, data: bytes, direction: str) -> bytes:
        p = self.plan
        if direction == "rx":
            n = self._n(p.rx_corrupt_rate, len(data))
            if not n or not data:
                return data
            buf = bytearray(data)
            for _ in range(n):
                i = self.rng.randrange(len(buf))
                buf[i] ^= 1 << self.rng.randrange(8)
            self.counts["rx_corrupt"] += n
            return bytes(buf)
        buf = bytearray(data)
        for _ in range(self._n(p.flip_rate, len(buf))):
            if buf:
                i = self.rng.randrange(len(buf))
                buf[i] ^= 1 << self.rng.randrange(8)
                self.counts["flip"] += 1
        for _ in range(self._n(p.drop_rate, len(buf))):
            if buf:
                del buf[self.rng.randrange(len(buf))]
                self.counts["drop"] += 1
        for _ in range(self._n(p.insert_rate, len(buf))):
            buf.insert(self.rng.randrange(len(buf) + 1), self.rng.randrange(256))
            self.counts["insert"] += 1
        return bytes(buf)

    def noise(self) -> bytes:
        if self.plan.noise_rate and self.rng.random() < self.plan.noise_rate:
            self.counts["noise"] += 1
            return b"[01-01 18:12:15 TUYA D] \x04\x0e noise " + bytes([self.rng.randrange(256)]) + b"\r\n"
        return b""

    def stall(self) -> float:
        if self.plan.stall_rate and self.rng.random() < self.plan.stall_rate:
            self.counts["stall"] += 1
            return self.plan.stall_s
        return 0.0

    def spontaneous_reset(self) -> bool:
        if self.plan.reset_rate and self.rng.random() < self.plan.reset_rate:
            self.counts["reset"] += 1
            return True
        return False

    # ------------------------------------------------------------------ whole-frame faults
    def reply(self, frame: bytes) -> list[bytes]:
        """The frames the host gets for one reply the chip sends (none, one or several)."""
        from .tamper import _layout  # the reply's kind, parsed as the line tamper parses it

        held, self._held = self._held, []

        lay = _layout(frame, host=False)
        kind = lay[0] if lay else "?"
        n = self.replies[kind] = self.replies.get(kind, 0) + 1
        previous = self._last.get(kind)
        self._last[kind] = frame
        out = [frame]
        for f in self.plan.frames:
            if f.kind != kind or f.nth != n:
                continue
            if f.action == "stale" and previous is None:
                continue  # the first reply of its kind has no predecessor to repeat
            self.hits.append(f)
            self.counts["frame"] += 1
            if f.action == "repeat":
                out = [frame, frame]
            elif f.action == "stale" and previous is not None:
                out = [previous]
            elif f.action == "late":
                self._late.append([frame, max(1, f.lag), f.delay_s])
            elif f.action == "swap":
                self._held.append(frame)
                out = []
            elif f.action == "drop":
                out = []
        return out + held

    def command(self) -> list[tuple[bytes, float]]:
        """A command reached the chip: the late copies it releases, each with its delay."""
        out = []
        for item in self._late:
            item[1] -= 1
            if item[1] == 0:
                out.append((item[0], item[2]))
        self._late = [item for item in self._late if item[1] > 0]
        return out

    @property
    def total(self) -> int:
        return sum(self.counts.values())
