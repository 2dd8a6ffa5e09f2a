"""Lower an FTDI adapter's latency timer for the session, and put the port back as found afterwards.

An FTDI chip holds a reply that does not fill a USB packet until its latency timer (16 ms by default)
expires (FTDI AN232B-04): every request/reply exchange waits for it. Linux lowers it per port two ways
(drivers/usb/serial/ftdi_sio.c):

- the ASYNC_LOW_LATENCY flag of TIOCSSERIAL, which any user who may open the port may set (it is in
  ASYNC_USR_MASK); the driver then programs 1 ms (write_latency_timer), and sysfs shows 1;
- /sys/bus/usb-serial/devices/ttyUSBn/latency_timer, which only root may write.

Both outlive the process (the driver keeps them until the adapter is unplugged), so `restore()` undoes
exactly what was changed; transport.open_port calls it from the port's close(), and an atexit hook
covers a process that exits without closing. Other families have no such timer: nothing to change.
"""

from __future__ import annotations

import array
import atexit
import fcntl
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from .adapters import AdapterFamily, family_for

ASYNC_LOW_LATENCY = 1 << 13  # include/uapi/linux/tty_flags.h
TIOCGSERIAL = 0x541E  # include/uapi/asm-generic/ioctls.h
TIOCSSERIAL = 0x541F
FLAGS_INDEX = 4  # struct serial_struct: int type, line; unsigned port; int irq, flags, ...


class LatencyControl(Protocol):
    """The two knobs Linux offers for one port (core/sim/adapter.py offers the same for simulated ones)."""

    def timer_ms(self) -> int | None: ...  # what the driver says the timer is (sysfs), None if unknown
    def low_latency(self) -> bool: ...  # ASYNC_LOW_LATENCY set? (OSError if it cannot be read)
    def set_low_latency(self, on: bool) -> None: ...  # OSError when refused
    def set_timer_ms(self, ms: int) -> None: ...  # OSError when refused (root only)


class LinuxLatency:
    """TIOCGSERIAL/TIOCSSERIAL on the open port's fd and the usb-serial sysfs attribute."""

    def __init__(self, fd: int, device: str, sysfs: str | Path = "/sys",
                 ioctl: Callable[..., object] = fcntl.ioctl) -> None:
        self.fd = fd
        self.tty = os.path.basename(os.path.realpath(device))
        self.attr = Path(sysfs, "bus", "usb-serial", "devices", self.tty, "latency_timer")
        self.ioctl = ioctl

    def _serial(self) -> array.array:
        buf = array.array("i", [0] * 32)  # struct serial_struct is 72 bytes on 64-bit; room to spare
        self.ioctl(self.fd, TIOCGSERIAL, buf, True)
        return buf

    def timer_ms(self) -> int | None:
        try:
            return int(self.attr.read_text().strip())
        except (OSError, ValueError):
            return None

    def low_latency(self) -> bool:
        return bool(self._serial()[FLAGS_INDEX] & ASYNC_LOW_LATENCY)

    def set_low_latency(self, on: bool) -> None:
        buf = self._serial()
        buf[FLAGS_INDEX] = buf[FLAGS_INDEX] | ASYNC_LOW_LATENCY if on else buf[FLAGS_INDEX] & ~ASYNC_LOW_LATENCY
        self.ioctl(self.fd, TIOCSSERIAL, buf)

    def set_timer_ms(self, ms: int) -> None:
        with open(self.attr, "w") as fh:
            fh.write(f"{ms}\n")


@dataclass(eq=False)
class LatencyResult:
    said: str  # one line: what was done (shown by `info` and the workbench)
    before_ms: float | None = None
    after_ms: float | None = None
    _undo: Callable[[], None] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def changed(self) -> bool:
        return self._undo is not None

    def restore(self) -> bool:
        """Put the port back as found (once); False when that failed (the adapter was unplugged: the
        driver forgot the setting with it)."""
        with self._lock:
            undo, self._undo = self._undo, None
        if undo is None:
            return True
        _pending.discard(self)
        try:
            undo()
        except OSError:
            return False
        return True


_pending: set[LatencyResult] = set()


@atexit.register
def _restore_all() -> None:
    for result in list(_pending):
        result.restore()


def lower(family: AdapterFamily | None, control: LatencyControl | None) -> LatencyResult:
    """Set the shortest latency the adapter allows for this session; say what was done (a short phrase)."""
    if family is None:
        return LatencyResult("")
    if not family.latency_adjustable:
        return LatencyResult("no latency timer (nothing to lower)")
    if control is None:
        return LatencyResult("latency timer left as it is (only Linux can lower it)")
    before = control.timer_ms()
    try:
        already = control.low_latency()
    except OSError:
        already = False
    if already or before == 1:
        return LatencyResult("latency timer already 1 ms", 1, 1)
    default = before if before is not None else family.latency_ms
    try:
        control.set_low_latency(True)
        after = control.timer_ms()
        if after not in (None, 1):  # the flag took, but the driver did not act on it: undo, try sysfs
            control.set_low_latency(False)
            raise OSError("the driver ignored ASYNC_LOW_LATENCY")
    except OSError as first:
        try:
            control.set_timer_ms(1)
        except OSError as second:
            reason = second if isinstance(first, PermissionError) or "ignored" in str(first) else first
            why = (reason.strerror or str(reason)).lower()
            return LatencyResult(f"latency stays {default:g} ms ({why}; README: Adapters)", default, default)
        old = int(default)
        result = LatencyResult(f"latency {default:g} -> 1 ms until the port closes (sysfs)", default, 1,
                               lambda: control.set_timer_ms(old))
    else:
        result = LatencyResult(f"latency {default:g} -> 1 ms until the port closes", default, 1,
                               lambda: control.set_low_latency(False))
    _pending.add(result)
    return result


@dataclass(eq=False)
class PortAdapter:
    """The adapter behind an open port, as far as bkbench can tell, and what was done to its latency."""

    family: AdapterFamily | None
    latency: LatencyResult
    vid_pid: str = ""

    def line(self) -> str:
        """One line for `info` and the workbench, e.g. "FT232R 0403:6001: latency 16 -> 1 ms until the port
        closes"."""
        if self.family is None:
            return ""
        return f"{self.family.name} {self.vid_pid}: {self.latency.said}".replace("  ", " ")


def describe(port: object) -> str:
    """The one line about the adapter behind an open port ("" when bkbench does not know it)."""
    adapter = getattr(port, "bkbench_adapter", None)
    return adapter.line() if isinstance(adapter, PortAdapter) else ""


def _usb_identity(device: str) -> tuple[int | None, int | None, str]:
    from serial.tools import list_ports

    real = os.path.realpath(device)
    for p in list_ports.comports():
        if os.path.realpath(p.device) == real:
            return p.vid, p.pid, p.product or ""
    return None, None, ""


def prepare(port: object, url: str, sysfs: str | Path = "/sys") -> PortAdapter | None:
    """Identify the adapter behind a just-opened port and lower its latency where that helps.

    A simulated port (core/sim/protocol_sim.py) names its own family and offers the same two knobs; a
    device path is looked up by VID:PID; network ports and unknown devices get None (nothing done)."""
    family = getattr(port, "adapter_family", None)
    latency_control = getattr(port, "latency_control", None)
    if family is not None and latency_control is not None:  # simulated adapter
        return PortAdapter(family, lower(family, latency_control()), "(simulated)")
    if "://" in url:
        return None
    vid, pid, product = _usb_identity(url)
    family = family_for(vid, pid, product)
    if family is None:
        return None
    fd = getattr(port, "fd", None)
    control = LinuxLatency(fd, url, sysfs) if sys.platform.startswith("linux") and isinstance(fd, int) else None
    return PortAdapter(family, lower(family, control), f"{vid:04X}:{pid:04X}")
