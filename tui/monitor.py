"""The serial log's port: open, pause while an operation owns the port, resume afterwards.

Port ownership: either the SerialMonitor (the log) or a Session (an operation, or the chip held in the
bootloader after Connect) owns the port, never both. The monitor feeds raw bytes to the log's LogBuffer
from its own reader thread; the log pane drains that buffer on a timer.
"""

from __future__ import annotations

from textual import work

from .state import AppState
from .widgets.ports import PortsPane

MONITOR_BAUD = 115200  # the application's UART log rate


class MonitorMixin(AppState):
    """BkBenchApp's serial-monitor handling (the workers run off the UI thread because opening can block)."""

    def on_ports_pane_chosen(self, message: PortsPane.Chosen) -> None:
        changed = message.url != self.url
        self.url, self.baud, self.reset = message.url, message.baud, message.reset
        self.keep_trying = message.keep_trying
        if changed:
            self.sub_title = self.url
        if changed and self.session is None and not self.busy and self.use_monitor:
            self.start_monitor(self.url)

    @work(thread=True, exclusive=True, group="monitor", exit_on_error=False)
    def start_monitor(self, url: str) -> None:
        """(Re)open the serial log on `url`; runs off the UI thread because opening can block."""
        self._stop_monitor()
        try:
            from bkbench.core.monitor import SerialMonitor
        except ImportError:
            self.log_buffer.note("serial monitor not available in this engine build", "error")
            return
        from bkbench.core.link.capture import RxCapture

        capture = RxCapture()  # the link doctor reads the boot log and liveness from it

        def on_data(data: bytes) -> None:
            capture.feed(data)
            self.log_buffer.feed(data)

        try:
            mon = SerialMonitor(url, MONITOR_BAUD, on_data=on_data, on_error=self._monitor_error)
            mon.start()
        except Exception as exc:
            self.log_buffer.note(f"cannot open {url} for the log: {exc}", "error")
            self.call_from_thread(self.log_pane.set_port_state, "error")
            return
        self.monitor, self.monitor_url, self.rx_capture = mon, url, capture
        self.log_buffer.note(f"── log on {url} at {MONITOR_BAUD} baud ──")
        self.call_from_thread(self.log_pane.set_port_state, f"log {url}")

    def _monitor_error(self, exc: BaseException) -> None:
        self.log_buffer.note(f"serial log error: {exc}", "error")

    def _stop_monitor(self) -> None:
        if self.monitor is not None:
            try:
                self.monitor.stop()
            except Exception:
                pass
            self.monitor = None

    def _pause_monitor(self, owner: str) -> None:
        """Worker thread: hand the port from the log to an operation."""
        if self.monitor is not None:
            self.log_buffer.flush_partial()
            self.monitor.pause()
            self.log_buffer.note(f"── log paused: {owner} owns the port ──")
        self.call_from_thread(self.log_pane.set_port_state, f"paused ({owner})")

    def _resume_monitor(self) -> None:
        """Worker thread: give the port back to the log (reopening it if the URL changed)."""
        if not self.use_monitor or not self.url:
            self.call_from_thread(self.log_pane.set_port_state, "idle")
            return
        if self.monitor is not None and self.monitor_url == self.url:
            self.monitor.resume()
            self.log_buffer.note("── log resumed ──")
            self.call_from_thread(self.log_pane.set_port_state, f"log {self.url}")
        else:
            self.call_from_thread(self.start_monitor, self.url)
