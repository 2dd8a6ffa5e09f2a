"""Opening serial ports: any pyserial URL, exclusive locks, errors a user can act on."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import serial

from .errors import PortError
from .link.latency import prepare
from .rfc2217 import Rfc2217Port

SIM_PACKAGE = "bkbench.core.sim"
if SIM_PACKAGE not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append(SIM_PACKAGE)


def _describe(pid: int) -> str:
    try:
        cmd = Path("/proc", str(pid), "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmd = ""
    return f"process {pid} ({cmd[:60]})" if cmd else f"process {pid}"


def _lock_holder(device: str) -> int | None:
    """The pid owning the flock on `device` (pyserial's exclusive=True), from /proc/locks."""
    try:
        st = os.stat(device)
        want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        for line in Path("/proc/locks").read_text().splitlines():
            # "1: FLOCK  ADVISORY  WRITE 1234 00:05:87 0 EOF"; blocked waiters are marked "->".
            fields = line.split()
            if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
                continue
            if fields[5] == want and fields[4].isdigit():
                return int(fields[4])
    except OSError:
        pass
    return None


def _holder_of(device: str) -> str:
    """Name the process holding a device open, where /proc tells (Linux).

    The lock's owner comes first: scanning open fds alone names whichever process comes first in
    /proc (often the shell or terminal that merely has the tty open, or a parent that inherited it)."""
    pid = _lock_holder(device)
    if pid is not None:
        return _describe(pid)
    try:
        target = os.path.realpath(device)
        holders = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                if any(os.path.realpath(fd) == target for fd in Path("/proc", entry, "fd").iterdir()):
                    holders.append(int(entry))
            except OSError:
                continue
    except OSError:
        return ""
    # Children inherit their parents' fds: the newest process (highest pid) is usually the real user.
    return _describe(max(holders)) if holders else ""


def open_port(url: str, baud: int = 115200, timeout: float = 0.05, exclusive: bool = True) -> serial.SerialBase:
    """Open a device path or pyserial URL (`rfc2217://`, `socket://`, `sim://`) ready for the protocol.

    DTR and RTS are released right after opening: pyserial asserts them on open, which holds a chip
    whose CEN is wired to RTS in reset (bk7231tools issue 16).
    """
    is_url = "://" in url
    if is_url:  # pyserial reads the scheme case-blind; the checks here and in link/ and client.py must too
        scheme, rest = url.split("://", 1)
        url = f"{scheme.lower()}://{rest}"
    # Said without the URL: the login part may hold a password.
    if url.startswith(("rfc2217://", "socket://")) and "@" in urlsplit(url).netloc:
        raise PortError(f"{url.split('://', 1)[0]}:// URLs have no login (ser2net has no authentication): drop "
                        "the USER:PASSWORD@ part")
    if url.startswith("socket://"):
        _check_host_port(url)
    try:
        if url.startswith("rfc2217://"):
            port = Rfc2217Port(baudrate=baud, timeout=timeout)  # ours, not pyserial's: see core/rfc2217.py
            port.port = url
        elif is_url:
            port = serial.serial_for_url(url, baudrate=baud, timeout=timeout, do_not_open=True)
            if url.startswith("socket://"):  # its open() discards what arrived: the greeting looked for below
                port.reset_input_buffer = lambda: None
        else:
            port = serial.Serial(baudrate=baud, timeout=timeout)
            port.port = url
            port.exclusive = exclusive
        port.open()
    except serial.SerialException as exc:
        raise _explain(url, exc) from exc
    except ValueError as exc:
        raise PortError(f"{url}: {exc}") from exc
    sock = getattr(port, "_socket", None)  # pyserial's socket:// leaves Nagle on: a reply would wait for an ACK
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if url.startswith("socket://"):
        del port.reset_input_buffer
        greeting = _greeting(sock) if sock is not None else ""
        if greeting in ("", "data"):
            port.reset_input_buffer()  # what pyserial's open() would have done
            # ser2net hangs up on a second client after one line ("Port's device already in use")
            greeting = "closed" if greeting == "data" and sock is not None and _hung_up(sock) else ""
        if greeting:
            port.close()
            if greeting == "closed":  # as core/rfc2217.py says it
                raise PortError(f"{url}: the server closed the connection: another client has the port, or the "
                                "server cannot open its serial device (adapter unplugged? see the server's log)")
            raise PortError(f"{url}: the server speaks telnet (a ser2net telnet(rfc2217) port): use "
                            f"rfc2217://{url.split('://', 1)[1]}")
    try:
        port.dtr = False
        port.rts = False
    except (OSError, serial.SerialException, ValueError):
        pass  # ptys and sockets have no control lines
    _adapter_setup(port, url)
    return port


def _adapter_setup(port: serial.SerialBase, url: str) -> None:
    """Know the USB adapter (`port.bkbench_adapter`) and lower an FTDI's latency timer for the session;
    the port's close() puts it back (core/link/latency.py)."""
    try:
        adapter = prepare(port, url)
    except Exception:  # noqa: BLE001 - a speed-up must never stop a backup; nothing was changed then
        return
    if adapter is None:
        return
    port.bkbench_adapter = adapter
    if adapter.latency.changed:
        real_close = port.close

        def close() -> None:
            try:
                adapter.latency.restore()  # first: TIOCSSERIAL needs the open fd
            finally:
                real_close()

        port.close = close


TELNET_GREETING_WAIT = 0.2  # s: ser2net's telnet accepter negotiates the moment it accepts (3 ms here)
HANGUP_WAIT = 0.05  # s: ser2net closes 0.4 ms after its one-line refusal; waited only when a server spoke first
TELNET_NEGOTIATION = (0xFB, 0xFC, 0xFD, 0xFE)  # WILL WONT DO DONT


def _greeting(sock: socket.socket) -> str:
    """How a socket:// server opens: "telnet" (IAC WILL/DO ... twice), "closed" (hung up at once: ser2net
    does that when another client has the port), "data" (something else came first), "" (silence).

    Raw TCP on a telnet port corrupts both ways (our 0xFF bytes read as commands, the chip's doubled) and
    the link then fails with a misleading diagnosis. Only peeked: a raw port's first bytes stay unread."""
    deadline = time.monotonic() + TELNET_GREETING_WAIT
    seen = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return ""
        try:
            if not select.select([sock], [], [], left)[0]:
                return ""
            seen = sock.recv(6, socket.MSG_PEEK)
        except (OSError, ValueError):
            return "closed"
        if not seen:
            return "closed"
        for i in range(0, len(seen), 3):
            triple = seen[i : i + 3]
            if triple[0] != 0xFF or (len(triple) > 1 and triple[1] not in TELNET_NEGOTIATION):
                return "data"
        if len(seen) >= 6:
            return "telnet"
        time.sleep(0.005)  # part of the greeting is in: wait for the rest


def _hung_up(sock: socket.socket) -> bool:
    """True when the server has closed the connection (what it sent before has been read)."""
    try:
        return bool(select.select([sock], [], [], HANGUP_WAIT)[0]) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def _check_host_port(url: str) -> None:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if "@" in parts.netloc:  # not echoed: it may hold a password
        raise PortError(f"{parts.scheme}:// URLs have no login (ser2net has no authentication): drop the "
                      "USER:PASSWORD@ part")
    if not parts.hostname or port is None or not 0 < port < 65536:
        raise PortError(f"{url}: expected {parts.scheme}://HOST:PORT (a TCP port 1-65535)")
    # pyserial's own message for a bad option is a bare KeyError text ('debug|info|warning|error')
    for option, values in parse_qs(parts.query, keep_blank_values=True).items():
        if option != "logging" or values[0] not in ("debug", "info", "warning", "error"):
            raise PortError(f"{url}: unknown option {option}={values[0]} (socket:// takes only "
                            "?logging=debug|info|warning|error)")


def can_change_baud(port) -> bool:
    """False for raw TCP (`socket://`): the server's line rate is fixed, so the chip must stay at 115200."""
    name = str(getattr(port, "portstr", "") or getattr(port, "port", "") or "")
    return not name.startswith("socket://")


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
    if url.startswith("socket://"):
        return _explain_socket(url, text)
    return PortError(f"{url}: {text}")


def _explain_socket(url: str, text: str) -> PortError:
    """pyserial's socket:// errors, said the way rfc2217:// (core/rfc2217.py) says them."""
    low = text.lower()
    where = url.split("://", 1)[1].split("?", 1)[0]
    if "refused" in low:
        return PortError(f"{url}: connection refused (is ser2net running and listening on that port?)")
    if "timed out" in low:
        return PortError(f"{url}: no answer from {where} (host down, wrong address, or a firewall)")
    if "name or service not known" in low or "name resolution" in low or "nodename" in low:
        return PortError(f"{url}: unknown host {where.rsplit(':', 1)[0]!r}")
    if "expected a string" in low:
        return PortError(f"{url}: expected socket://HOST:PORT (a TCP port 1-65535)")
    return PortError(f"{url}: {text.split(': ', 1)[-1] if text.startswith('Could not open') else text}")
