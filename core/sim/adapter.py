"""A simulated USB-serial adapter between the host and the simulated chip (`?adapter=ft232r`, `--adapter`).

It models, per family of core/link/adapters.py (where each figure's source is named):
- latency on host-bound data: an FTDI chip sends a full packet (62 data bytes) at once and a partial one
  when its latency timer expires, the timer counting from the last packet it sent, status-only packets
  included (FTDI AN232B-04 3.3), so while idle it ticks every `latency` ms and a reply's tail waits for
  the next tick; 16 ms by default, 1 ms once the host sets ASYNC_LOW_LATENCY (Linux ftdi_sio.c). The
  other families have no such timer: one 1 ms USB frame (the Timing model's `usb_latency_s`).
- its divisor error against the chip's: a rate the adapter cannot generate, or whose generated rate is
  more than TOLERANCE away from the chip's 26 MHz / n, garbles in both directions.
- its modem lines: which lines it drives (DTR/RTS, asserted on open by the driver and by pyserial).
- the latency knobs the host may turn (`core/link/latency.LatencyControl`): a host that never turns them
  (the peer tools, or any tool on the pty of `bkbench simulate`) gets the default.
"""

from __future__ import annotations

import math
import threading

from ..link.adapters import FAMILIES, AdapterFamily, by_name
from .timing import Timing


class SimAdapter:
    def __init__(self, family: AdapterFamily | str, can_lower_latency: bool = True) -> None:
        if isinstance(family, str):  # a key, chip or vendor name, as family_for_url reads `?adapter=`
            found = by_name(family)
            if found is None:
                raise ValueError(f"unknown adapter {family!r}; choose one of {', '.join(FAMILIES)}")
            family = found
        self.family = family
        self.can_lower_latency = can_lower_latency  # False: the driver refuses (as without permission)
        self._timer_ms = family.latency_ms
        self._low = False
        self._last_packet = 0.0  # when the adapter last sent a USB packet to the host (FTDI timer origin)
        self._lock = threading.Lock()
        self._fits: dict[int, bool] = {}

    # ------------------------------------------------------------------ latency knobs (LatencyControl)
    def timer_ms(self) -> int | None:
        return 1 if self._low else int(self._timer_ms)

    def low_latency(self) -> bool:
        return self._low

    def set_low_latency(self, on: bool) -> None:
        if on and not self.can_lower_latency:
            raise PermissionError(1, "Operation not permitted")
        self._low = on

    def set_timer_ms(self, ms: int) -> None:
        if not self.can_lower_latency:
            raise PermissionError(13, "Permission denied")
        self._timer_ms = float(ms)

    @property
    def latency_s(self) -> float:
        """The hold time of a partial packet in effect now."""
        return (1.0 if self._low else self._timer_ms) / 1000.0

    # ------------------------------------------------------------------ data towards the host
    def deliver(self, end: float, nbytes: int, baud: int, timing: Timing) -> float:
        """When the last of `nbytes` that finished arriving from the chip at `end` reaches the host."""
        if not timing.enabled:
            return end
        if not self.family.latency_adjustable:  # no latency timer: the next USB frame takes it
            return end + timing.latency()
        with self._lock:
            step = self.latency_s
            size = self.family.packet_bytes
            tail = nbytes % size
            if nbytes >= size:  # full packets left as they filled, each restarting the timer
                self._last_packet = max(self._last_packet, end - tail * 10.0 / baud)
            if tail == 0:
                return end
            last = self._last_packet
            ticks = max(1, math.ceil((end - last) / step - 1e-9)) if end > last else 1
            self._last_packet = last + ticks * step
            return self._last_packet

    # ------------------------------------------------------------------ line rate
    def garbles(self, baud: int) -> bool:
        """True when adapter and chip cannot agree on `baud` (see AdapterFamily.fit)."""
        if baud not in self._fits:
            self._fits[baud] = self.family.fit(baud)[0]
        return not self._fits[baud]

    def drives(self, line: str) -> bool:
        return line in self.family.lines_on_open
