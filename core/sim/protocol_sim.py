"""pyserial URL handler for `sim://...`: a serial port whose far end is a SimDevice.

pyserial finds it through `serial.protocol_handler_packages` (bkbench.core.transport registers the
package). DTR/RTS changes reach the device, so reset strategies can be tested against its CEN model.
"""

from __future__ import annotations

import time

import serial
from serial.serialutil import PortNotOpenError, SerialBase, SerialException

from .registry import from_url


class Serial(SerialBase):
    is_open: bool

    def open(self) -> None:
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        if self.is_open:
            raise SerialException("Port is already open.")
        try:
            self.device = from_url(self._port)
        except (KeyError, ValueError, OSError) as exc:
            raise SerialException(f"cannot open simulator {self._port}: {exc}") from exc
        self.is_open = True
        self._reconfigure_port()
        # pyserial asserts both lines on open, as a real driver does (PROTOCOL.md 6).
        self._update_dtr_state()
        self._update_rts_state()
        self.reset_input_buffer()

    def close(self) -> None:
        self.is_open = False

    def _reconfigure_port(self) -> None:
        if self.is_open:
            self.device.set_host_baud(self._baudrate)

    def _update_dtr_state(self) -> None:
        if self.is_open and self._drives("dtr"):
            self.device.set_line("dtr", bool(self._dtr_state))

    def _update_rts_state(self) -> None:
        if self.is_open and self._drives("rts"):
            self.device.set_line("rts", bool(self._rts_state))

    def _drives(self, line: str) -> bool:
        adapter = self.device.adapter
        return adapter is None or adapter.drives(line)

    # A modelled adapter (`?adapter=`) names its family and offers Linux's latency knobs
    # (core/link/latency.py turns them as it would on a real port).
    @property
    def adapter_family(self):  # noqa: ANN201 - AdapterFamily | None
        adapter = self.device.adapter if self.is_open else None
        return adapter.family if adapter is not None else None

    def latency_control(self):  # noqa: ANN201 - the SimAdapter (LatencyControl)
        return self.device.adapter

    def _check(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()
        if self.device.disconnected:
            raise SerialException("device reports readiness to read but returned no data "
                                  "(device disconnected or multiple access on port?)")

    @property
    def in_waiting(self) -> int:
        self._check()
        return self.device.pending()

    def read(self, size: int = 1) -> bytes:
        self._check()
        out = bytearray()
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while len(out) < size:
            out += self.device.host_read(size - len(out))
            if len(out) >= size:
                break
            self._check()
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            nxt = self.device.next_event_time()
            wait = 0.002 if nxt is None else max(0.0, nxt - now)
            if deadline is not None:
                wait = min(wait, deadline - now)
            time.sleep(min(max(wait, 0.0), 0.05))
        return bytes(out)

    def write(self, data: bytes) -> int:
        self._check()
        data = bytes(data)
        self.device.host_write(data)
        return len(data)

    def flush(self) -> None:
        self._check()
        wait = self.device.tx_drain_time() - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def reset_input_buffer(self) -> None:
        self._check()
        self.device.host_read()

    def reset_output_buffer(self) -> None:
        self._check()

    @property
    def cts(self) -> bool:
        return True

    @property
    def dsr(self) -> bool:
        return True

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return True

    def send_break(self, duration: float = 0.25) -> None:
        self._check()


__all__ = ["Serial", "serial"]
