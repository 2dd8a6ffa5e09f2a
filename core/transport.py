"""Opening serial ports: any pyserial URL, exclusive locks, errors a user can act on."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import serial

from .errors import PortError

SIM_PACKAGE = "bkbench.core.sim"
if SIM_PACKAGE not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append(SIM_PACKAGE)


def _holder_of(device: str) -> str:
    """Name the process holding a device open, where /proc tells (Linux)."""
    try:
        target = os.path.realpath(device)
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            fd_dir = Path("/proc", pid, "fd")
            try:
                for fd in fd_dir.iterdir():
                    if os.path.realpath(fd) == target:
                        cmd = Path("/proc", pid, "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                        return f"process {pid} ({cmd[:60]})"
            except OSError:
                continue
    except OSError:
        pass
    return ""


def open_port(url: str, baud: int = 115200, timeout: float = 0.05, exclusive: bool = True) -> serial.SerialBase:
    """Open a device path or pyserial URL (`rfc2217://`, `socket://`, `sim://`) ready for the protocol.

    DTR and RTS are released right after opening: pyserial asserts them on open, which holds a chip
    whose CEN is wired to RTS in reset (bk7231tools issue 16).
    """
    is_url = "://" in url
    try:
        if is_url:
            port = serial.serial_for_url(url, baudrate=baud, timeout=timeout, do_not_open=True)
        else:
            port = serial.Serial(baudrate=baud, timeout=timeout)
            port.port = url
            port.exclusive = exclusive
        port.open()
    except serial.SerialException as exc:
        raise _explain(url, exc) from exc
    except ValueError as exc:
        raise PortError(f"{url}: {exc}") from exc
    try:
        port.dtr = False
        port.rts = False
    except (OSError, serial.SerialException, ValueError):
        pass  # ptys and sockets have no control lines
    return port


def _explain(url: str, exc: serial.SerialException) -> PortError:
    err = getattr(exc, "errno", None)
    text = str(exc)
    if err == errno.ENOENT or "No such file" in text or "could not open port" in text and "No such" in text:
        return PortError(f"{url}: no such port (is the adapter plugged in?)",
                         hint="run `bkbench ports` to list the ports that exist")
    if err == errno.EACCES or "Permission denied" in text:
        return PortError(
            f"{url}: permission denied",
            hint="add yourself to the dialout group: sudo usermod -aG dialout $USER, then log in again",
        )
    if err in (errno.EBUSY, errno.EAGAIN) or "exclusively lock" in text or "busy" in text.lower():
        holder = "" if "://" in url else _holder_of(url)
        return PortError(f"{url}: port is in use{' by ' + holder if holder else ''}",
                         hint="close the other program (screen, minicom, ModemManager) and try again")
    return PortError(f"{url}: {text}")
