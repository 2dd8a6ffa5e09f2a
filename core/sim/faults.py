"""Seeded fault injection on the simulated wire (reliability tests)."""

from __future__ import annotations

import random
from dataclasses import dataclass


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

    @property
    def active(self) -> bool:
        return any(
            (self.drop_rate, self.flip_rate, self.insert_rate, self.rx_corrupt_rate, self.stall_rate, self.noise_rate,
             self.reset_rate)
        ) or self.disconnect_after is not None


class FaultInjector:
    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.counts = {"drop": 0, "flip": 0, "insert": 0, "rx_corrupt": 0, "stall": 0, "reset": 0, "noise": 0}

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

    @property
    def total(self) -> int:
        return sum(self.counts.values())
