"""The live serial log: a reader thread that owns the port until an operation needs it.

Bytes go to `on_data` in whatever chunks the port delivers; the UI batches them. `pause()` closes the
port (one owner at a time) and returns once it is released; `resume()` opens it again.
"""

from __future__ import annotations

import threading
from typing import Callable

from .errors import BkError
from .transport import open_port


class SerialMonitor:
    def __init__(
        self,
        url: str,
        baud: int = 115200,
        on_data: Callable[[bytes], None] = lambda _b: None,
        on_error: Callable[[BaseException], None] | None = None,
        retry_s: float = 1.0,
    ) -> None:
        self.url = url
        self.baud = baud
        self.on_data = on_data
        self.on_error = on_error
        self.retry_s = retry_s
        self._paused = threading.Event()
        self._released = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.bytes_seen = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="bkbench-monitor", daemon=True)
            self._thread.start()

    def pause(self, timeout: float = 2.0) -> bool:
        """Stop reading and close the port; True once it is released."""
        self._released.clear()
        self._paused.set()
        self._wake.set()
        if self._thread is None or not self._thread.is_alive():
            return True
        return self._released.wait(timeout)

    def resume(self) -> None:
        self._paused.clear()
        self._wake.set()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def set_baud(self, baud: int) -> None:
        self.baud = baud
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        port = None
        try:
            while not self._stop.is_set():
                if self._paused.is_set():
                    if port is not None:
                        port.close()
                        port = None
                    self._released.set()
                    self._wake.wait(0.2)
                    self._wake.clear()
                    continue
                if port is None:
                    try:
                        port = open_port(self.url, self.baud, timeout=0.05)
                    except BkError as exc:
                        if self.on_error:
                            self.on_error(exc)
                        self._wake.wait(self.retry_s)
                        self._wake.clear()
                        continue
                if port.baudrate != self.baud:
                    port.baudrate = self.baud
                try:
                    data = port.read(port.in_waiting or 1)
                except Exception as exc:  # noqa: BLE001 - an unplugged adapter raises OSError/SerialException
                    if self.on_error:
                        self.on_error(BkError(f"{self.url}: the port stopped working ({exc})"))
                    try:
                        port.close()
                    except Exception:  # noqa: BLE001
                        pass
                    port = None
                    self._wake.wait(self.retry_s)
                    self._wake.clear()
                    continue
                if data:
                    self.bytes_seen += len(data)
                    self.on_data(data)
        finally:
            if port is not None:
                port.close()
            self._released.set()
