"""Board-level failure scenarios of the simulated chip, kept out of device.py behind five small hooks.

`SimDevice` calls its `behaviour` when it is created (`start`), when the application starts (`app_started`),
on every time step (`advance`), on what its UART1 receives (`rx`) and before it runs a bootloader command
(`command`). The default `Behaviour` does nothing. Scenarios here (PROTOCOL-DETAILS.md section 10):

- `brown-out` (quirk 28, a weak 3.3 V supply): the application resets the chip shortly after it starts (the
  Wi-Fi radio's current pulls the rail down), so the boot banner comes again and again (a boot loop); in the
  bootloader the chip answers link checks, but a command that keeps the flash busy (CRC, read, erase,
  write) resets it most of the time.
- `rx1-held-low` (quirk 27, the seed case: a button circuit on P10 = RX1 of an LSPA9-like plug pulls the
  line low): the chip's UART receives a break, i.e. zero bytes, whatever the host sends; its TX1 works, so
  the host sees the application's log after every reset and never an answer.

Figures are choices where no source gives one: the application runs `BROWNOUT_RUN_S` before the rail
collapses (long enough for the banner and the first lines, as forum logs of boot loops show), and the
supply takes `BROWNOUT_RECOVER_S` to come back.
"""

from __future__ import annotations

import random
from typing import Any

from ..protocol import Cmd, LongCmd

BROWNOUT_RUN_S = 0.45
BROWNOUT_RECOVER_S = 0.05
BROWNOUT_BUSY_P = 0.8  # a flash-busy command resets the chip this often
FLASH_BUSY_SHORT = frozenset({Cmd.CHECK_CRC})
FLASH_BUSY_LONG = frozenset({LongCmd.FLASH_READ_4K, LongCmd.FLASH_WRITE_4K, LongCmd.FLASH_WRITE, LongCmd.FLASH_ERASE,
                             LongCmd.FLASH_ERASE_4K, LongCmd.FLASH_ERASE_ALL, LongCmd.FLASH_READ})


class Behaviour:
    """No board fault: every hook leaves the chip alone."""

    name = ""

    def start(self, dev: Any, now: float) -> None:
        pass

    def app_started(self, dev: Any, t: float) -> None:
        pass

    def advance(self, dev: Any, now: float) -> None:
        pass

    def rx(self, dev: Any, data: bytes, t: float) -> bytes:
        return data

    def command(self, dev: Any, code: int, long: bool, t: float) -> bool:
        """True when the command never runs (the chip reset instead)."""
        return False


class BrownOut(Behaviour):
    name = "brown-out"

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed ^ 0xB0)
        self.collapse_at: float | None = None
        self.collapses = 0
        self._inside = False

    def start(self, dev: Any, now: float) -> None:
        dev._start_app(now)  # powered and looping already when the host opens the port

    def app_started(self, dev: Any, t: float) -> None:
        self.collapse_at = t + BROWNOUT_RUN_S * self.rng.uniform(0.8, 1.2)

    def _collapse(self, dev: Any, t: float) -> None:
        self.collapses += 1
        self.collapse_at = None
        dev._enter_reset(t, hold=False)  # what was still to be printed is lost
        dev._boot(t + BROWNOUT_RECOVER_S)

    def advance(self, dev: Any, now: float) -> None:
        if self._inside:
            return
        self._inside = True
        try:
            while dev.state == "app" and self.collapse_at is not None and now >= self.collapse_at:
                self._collapse(dev, self.collapse_at)
                dev._advance(now)  # boot window, then the application again (which schedules the next collapse)
        finally:
            self._inside = False

    def command(self, dev: Any, code: int, long: bool, t: float) -> bool:
        busy = code in (FLASH_BUSY_LONG if long else FLASH_BUSY_SHORT)
        if busy and self.rng.random() < BROWNOUT_BUSY_P:
            self._collapse(dev, t)
            return True
        return False


class Rx1HeldLow(Behaviour):
    name = "rx1-held-low"

    def start(self, dev: Any, now: float) -> None:
        dev._start_app(now)  # running its application, as a plug on the bench does

    def rx(self, dev: Any, data: bytes, t: float) -> bytes:
        return bytes(len(data))  # a line held low reads as a break: zero bytes, never a frame


SCENARIOS: dict[str, type[Behaviour]] = {"brown-out": BrownOut, "rx1-held-low": Rx1HeldLow}
NAMES = tuple(SCENARIOS)


def behaviour_for(scenario: str, seed: int = 0) -> Behaviour:
    cls = SCENARIOS.get(scenario)
    if cls is None:
        return Behaviour()
    return cls(seed) if cls is BrownOut else cls()
