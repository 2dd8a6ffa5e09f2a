"""`rfc2217://host:port`: an RFC 2217 (Telnet COM Port Control) client tuned for request/reply protocols.

Why not pyserial's client (serial/rfc2217.py, pyserial 3.5):
- it waits for the server to acknowledge every SET_CONTROL, and ser2net in front of a device without
  modem lines (a pty, some UARTs) never acknowledges DTR/RTS, so `open()` fails with "timeout while
  waiting for option 'control'". `?ign_set_control` works around it by ignoring *every* answer (and
  sleeping 0.1 s per line change), so a server that really drives the lines is no longer told apart.
- `reset_input_buffer()` sends PURGE_DATA and then polls for the answer in 50 ms sleeps; BkClient
  drains before every command, so each command costs 50-100 ms more than on a local port.
- received bytes go through a Queue one byte at a time.

Here the caller's thread reads the socket itself (select + recv, no reader thread to hand replies over),
every wait ends as soon as the answer is in, PURGE_DATA is sent without waiting (it travels in order ahead
of the next command, so it cannot eat that command's reply), data moves in chunks, TCP_NODELAY and
TCP_QUICKACK are set (ser2net's default Nagle would otherwise meet our delayed ACK: ~40 ms per reply),
and line control is either acknowledged or known to be absent:
`passes_lines` is False when the server did not answer the DTR/RTS requests made at open, and later line
changes are then sent without waiting (core/link/reset.py falls back to a manual reset on such a port).

URL options (as pyserial's): `timeout=SECONDS` (network answers, default 3), `ign_set_control` (take line
control as passed without an answer); `logging=...` and `poll_modem` are accepted and ignored.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from urllib.parse import parse_qs, urlsplit

import serial
from serial.serialutil import PortNotOpenError, SerialBase, SerialException

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
BINARY, ECHO, SGA, COM_PORT = 0, 1, 3, 44
SET_BAUDRATE, SET_DATASIZE, SET_PARITY, SET_STOPSIZE, SET_CONTROL = 1, 2, 3, 4, 5
NOTIFY_LINESTATE, NOTIFY_MODEMSTATE, SET_MODEMSTATE_MASK, PURGE_DATA = 6, 7, 11, 12
SERVER = 100  # a server's answer carries the client's code + 100
CTRL_NO_FLOW, CTRL_BREAK_ON, CTRL_BREAK_OFF = 1, 5, 6
CTRL_DTR_ON, CTRL_DTR_OFF, CTRL_RTS_ON, CTRL_RTS_OFF = 8, 9, 11, 12
PURGE_RX, PURGE_TX = 1, 2
PARITY = {serial.PARITY_NONE: 1, serial.PARITY_ODD: 2, serial.PARITY_EVEN: 3, serial.PARITY_MARK: 4,
          serial.PARITY_SPACE: 5}
STOPBITS = {serial.STOPBITS_ONE: 1, serial.STOPBITS_TWO: 2, serial.STOPBITS_ONE_POINT_FIVE: 3}
MODEM_CTS, MODEM_DSR, MODEM_RI, MODEM_CD = 0x10, 0x20, 0x40, 0x80

QUICKACK = getattr(socket, "TCP_QUICKACK", 0)  # Linux; elsewhere delayed ACKs stay (slower, still correct)
CONNECT_TIMEOUT = 3.0  # s: an unreachable host fails within this, never hangs
SEND_TIMEOUT = 10.0  # s
LINE_ACK_TIMEOUT = 0.5  # s: how long an answer to a DTR/RTS request may take before the lines count as absent
MAX_UNREAD = 1 << 20  # bytes kept unread (a UART FIFO overflows too): a flooding server never costs gigabytes
MAX_TELNET_SEQUENCE = 4096  # RFC 2217 subnegotiations are a few bytes: a longer one is not a telnet server


def _control_group(value: int) -> int:
    """SET_CONTROL values come in groups (flow, break, DTR, RTS); an answer is matched to its group."""
    return {4: 1, 5: 1, 6: 1, 7: 2, 8: 2, 9: 2, 10: 3, 11: 3, 12: 3}.get(value, 0)


class Rfc2217Port(SerialBase):
    """A pyserial-compatible port on an RFC 2217 server (ser2net `telnet(rfc2217)`, pyserial's PortManager)."""

    is_open: bool

    def __init__(self, *args, **kwargs) -> None:
        self._sock: socket.socket | None = None
        self._wlock = threading.Lock()
        self._buf = bytearray()
        self._pending = b""  # an escape sequence cut by a recv() boundary
        self._closed_reason = ""
        self._answers: dict[object, bytes] = {}  # server code (control: (code, group)) -> its last answer
        self._we: set[int] = set()  # options we agreed to perform (WILL sent and DO received)
        self._they: set[int] = set()
        self._server_com_port = False
        self._modemstate: int | None = None
        self._network_timeout = 3.0
        self._ignore_control = False
        self.passes_lines: bool | None = None  # None until open() asked; False: DTR/RTS do not reach a device
        super().__init__(*args, **kwargs)
        # Never assert DTR/RTS by opening: a CEN wired to either would hold the chip in reset.
        self._dtr_state = False
        self._rts_state = False

    # ------------------------------------------------------------------ open / close
    def from_url(self, url: str) -> tuple[str, int]:
        parts = urlsplit(url)
        if parts.scheme != "rfc2217":
            raise SerialException(f"{url}: not an rfc2217://host:port URL")
        try:
            port = parts.port
        except ValueError:
            port = None
        if "@" in parts.netloc:  # not echoed: it may hold a password
            raise SerialException(f"{parts.scheme}:// URLs have no login (ser2net has no authentication): "
                                  "drop the USER:PASSWORD@ part")
        if not parts.hostname or port is None or not 0 < port < 65536:
            raise SerialException(f"{url}: expected rfc2217://HOST:PORT (a TCP port 1-65535)")
        for option, values in parse_qs(parts.query, keep_blank_values=True).items():
            if option == "timeout":
                try:
                    self._network_timeout = float(values[0])
                except ValueError:
                    raise SerialException(f"{url}: timeout must be a number of seconds") from None
                if not 0 < self._network_timeout < 3600:
                    raise SerialException(f"{url}: timeout must be a positive number of seconds")
            elif option == "ign_set_control":
                self._ignore_control = True
            elif option not in ("logging", "poll_modem"):
                raise SerialException(f"{url}: unknown option {option!r} (known: timeout, ign_set_control)")
        return parts.hostname, port

    def open(self) -> None:
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        if self.is_open:
            raise SerialException("Port is already open.")
        host, port = self.from_url(self.portstr)
        connect_timeout = min(CONNECT_TIMEOUT, self._network_timeout)
        try:
            sock = socket.create_connection((host, port), timeout=connect_timeout)
        except socket.gaierror:
            raise SerialException(f"unknown host {host!r}") from None
        except ConnectionRefusedError:
            raise SerialException("connection refused (is ser2net running and listening on that port?)") from None
        except (TimeoutError, socket.timeout):
            raise SerialException(f"no answer within {connect_timeout:g} s (host down, wrong address, or a "
                                  "firewall)") from None
        except OSError as exc:
            raise SerialException(f"cannot reach the host: {exc.strerror or exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small frames leave at once (no Nagle)
        sock.settimeout(SEND_TIMEOUT)  # bounds sendall() to a server that stopped reading; recv waits in select
        self._sock = sock
        self._buf.clear()
        self._pending = b""
        self._closed_reason = ""
        self._answers.clear()
        self._we.clear()
        self._they.clear()
        self._server_com_port = False
        self._modemstate = None
        self.is_open = True
        try:
            self._negotiate(host, port)
        except BaseException:
            self.close()
            raise

    def _negotiate(self, host: str, port: int) -> None:
        try:
            self._raw(bytes([IAC, WILL, BINARY, IAC, DO, BINARY, IAC, WILL, COM_PORT, IAC, WILL, SGA, IAC, DO, SGA]))
            self._we.update((BINARY, COM_PORT, SGA))
            answered = self._wait(lambda: self._server_com_port or self._closed_reason)
        except SerialException:
            answered = True  # the server hung up on us: said below
        if not answered:
            raise SerialException(f"no RFC 2217 answer within {self._network_timeout:g} s (a raw TCP port? "
                                  f"then use socket://{host}:{port})")
        if self._closed_reason or not self._server_com_port:
            raise self._hung_up()
        self._configure(all_settings=True)
        self._control(CTRL_NO_FLOW, wait=False)
        # Ask for both lines as they should be; a server that passes them answers each request.
        self._control(CTRL_DTR_ON if self._dtr_state else CTRL_DTR_OFF, wait=False)
        self._control(CTRL_RTS_ON if self._rts_state else CTRL_RTS_OFF, wait=False)
        if self._ignore_control:
            self.passes_lines = True
        else:
            got = self._wait(lambda: (SERVER + SET_CONTROL, 2) in self._answers
                             and (SERVER + SET_CONTROL, 3) in self._answers, LINE_ACK_TIMEOUT)
            self.passes_lines = bool(got)

    def _hung_up(self) -> SerialException:
        """The server closed on us while we set up: ser2net does that when another client has the port and
        when it cannot open the device (adapter unplugged, wrong path, options the device refuses)."""
        # (What it sent before closing is not quoted: it may be the device's log, secrets included.)
        if self._closed_reason.startswith("the server sent"):  # we hung up on it: say why
            return SerialException(self._closed_reason)
        return SerialException("the server closed the connection: another client has the port, or the server "
                               "cannot open its serial device (adapter unplugged? see the server's log)")

    def close(self) -> None:
        self.is_open = False
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    # ------------------------------------------------------------------ data
    @property
    def in_waiting(self) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        self._pump(0)
        return len(self._buf)

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise PortNotOpenError()
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while len(self._buf) < size and not self._closed_reason:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._pump(left)  # timeout 0 still takes what has arrived
            if left == 0:
                break
        if not self._buf and self._closed_reason:
            raise SerialException(f"connection lost ({self._closed_reason})")
        out = bytes(self._buf[:size])
        del self._buf[:size]
        return out

    def write(self, data) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        raw = bytes(data)
        self._raw(raw.replace(b"\xff", b"\xff\xff"))
        return len(raw)

    def flush(self) -> None:
        pass  # sendall() has handed everything to the kernel; the server writes it in order

    def reset_input_buffer(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()
        for _ in range(64):  # what already reached this host is stale too (one recv() takes 64 KiB at most)
            sock = self._sock
            try:
                if sock is None or self._closed_reason or not select.select([sock], [], [], 0)[0]:
                    break
            except (OSError, ValueError):
                break
            self._pump(0)
            self._buf.clear()
        self._buf.clear()
        # No wait for the answer: PURGE travels ahead of whatever we send next, so it cannot eat its reply.
        self._sub(PURGE_DATA, bytes([PURGE_RX]))

    def reset_output_buffer(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()
        self._sub(PURGE_DATA, bytes([PURGE_TX]))

    # ------------------------------------------------------------------ settings and lines
    def _reconfigure_port(self, force_update: bool = False) -> None:
        if self._sock is None:
            raise SerialException("Can only operate on open ports")
        self._configure(all_settings=False)

    def _configure(self, all_settings: bool) -> None:
        """Send the settings and wait for every answer; the baud answer must be the rate asked for."""
        if not 0 < self._baudrate < 2 ** 32:
            raise ValueError(f"invalid baudrate: {self._baudrate!r}")
        wanted = {SET_BAUDRATE: struct.pack("!I", self._baudrate)}
        if all_settings:
            wanted[SET_DATASIZE] = bytes([self._bytesize])
            wanted[SET_PARITY] = bytes([PARITY[self._parity]])
            wanted[SET_STOPSIZE] = bytes([STOPBITS[self._stopbits]])
        for code in wanted:
            self._answers.pop(SERVER + code, None)
        for code, value in wanted.items():
            self._sub(code, value)
        if not self._wait(lambda: all(SERVER + c in self._answers for c in wanted) or self._closed_reason):
            missing = [c for c in wanted if SERVER + c not in self._answers]
            raise SerialException(f"the RFC 2217 server did not confirm the port settings {missing} within "
                                  f"{self._network_timeout:g} s")
        if self._closed_reason:
            if all_settings:
                raise self._hung_up()
            raise SerialException(f"connection lost ({self._closed_reason})")
        got = self._answers.get(SERVER + SET_BAUDRATE, b"")
        if got[:4] != wanted[SET_BAUDRATE]:
            actual = struct.unpack("!I", got[:4])[0] if len(got) >= 4 else None
            raise SerialException(f"the RFC 2217 server runs the port at {actual} baud, not {self._baudrate} "
                                  "(the device or its driver refused the rate)")

    def _control(self, value: int, wait: bool) -> bool:
        key = (SERVER + SET_CONTROL, _control_group(value))
        self._answers.pop(key, None)
        self._sub(SET_CONTROL, bytes([value]))
        if not wait:
            return True
        return self._wait(lambda: key in self._answers, self._network_timeout)

    def _line(self, on: bool, on_value: int, off_value: int, name: str) -> None:
        if not self.is_open:
            raise PortNotOpenError()
        value = on_value if on else off_value
        if self.passes_lines and not self._ignore_control:
            if not self._control(value, wait=True):
                raise SerialException(f"the RFC 2217 server did not confirm {name} "
                                      f"{'on' if on else 'off'} within {self._network_timeout:g} s")
        else:
            self._control(value, wait=False)

    def _update_dtr_state(self) -> None:
        self._line(self._dtr_state, CTRL_DTR_ON, CTRL_DTR_OFF, "DTR")

    def _update_rts_state(self) -> None:
        self._line(self._rts_state, CTRL_RTS_ON, CTRL_RTS_OFF, "RTS")

    def _update_break_state(self) -> None:
        self._line(self._break_state, CTRL_BREAK_ON, CTRL_BREAK_OFF, "BREAK")

    def _modem(self, mask: int) -> bool:
        if not self.is_open:
            raise PortNotOpenError()
        return bool((self._modemstate or 0) & mask)

    @property
    def cts(self) -> bool:
        return self._modem(MODEM_CTS)

    @property
    def dsr(self) -> bool:
        return self._modem(MODEM_DSR)

    @property
    def ri(self) -> bool:
        return self._modem(MODEM_RI)

    @property
    def cd(self) -> bool:
        return self._modem(MODEM_CD)

    # ------------------------------------------------------------------ telnet plumbing
    def _raw(self, data: bytes) -> None:
        sock = self._sock
        if sock is None:
            raise PortNotOpenError()
        try:
            with self._wlock:
                sock.sendall(data)
        except OSError as exc:
            raise SerialException(f"connection lost ({exc.strerror or exc})") from None

    def _sub(self, code: int, value: bytes = b"") -> None:
        self._raw(bytes([IAC, SB, COM_PORT, code]) + value.replace(b"\xff", b"\xff\xff") + bytes([IAC, SE]))

    def _wait(self, predicate, timeout: float | None = None) -> bool:
        """Read from the server (data is kept) until predicate() holds; False on timeout or a lost link."""
        deadline = time.monotonic() + (self._network_timeout if timeout is None else timeout)
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0 or self._closed_reason:
                return bool(predicate())
            self._pump(left)
        return True

    def _pump(self, timeout: float | None) -> None:
        """Take what the server sent (waiting up to `timeout`); data to the buffer, telnet to its handlers.

        The caller's thread reads the socket itself: no reader thread, so a reply reaches read() without a
        thread hand-off (one scheduler wake-up less per exchange, which shows on a busy 2-core Pi)."""
        sock = self._sock
        if sock is None or self._closed_reason:
            return
        try:
            ready, _, _ = select.select([sock], [], [], timeout)
            if not ready:
                return
            chunk = sock.recv(65536)
        except (OSError, ValueError) as exc:
            self._closed_reason = getattr(exc, "strerror", None) or str(exc) or "connection lost"
            return
        if not chunk:
            self._closed_reason = "closed by the server"
            return
        if QUICKACK:  # ack at once: a server with Nagle on holds its next segment until our ACK
            try:
                sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
            except OSError:
                pass
        data = self._pending + chunk if self._pending else chunk
        if IAC not in data:  # the common case: plain data, no telnet sequences
            self._pending = b""
            self._buf += data
        else:
            out, self._pending = self._parse(data)
            self._buf += out
            if len(self._pending) > MAX_TELNET_SEQUENCE:  # else re-parsed whole on every chunk, growing forever
                self._pending = b""
                self._closed_reason = "the server sent an endless telnet subnegotiation (not an RFC 2217 server?)"
        if len(self._buf) > MAX_UNREAD:  # nobody reads this fast: keep the newest, as an overflowing UART would
            del self._buf[:-MAX_UNREAD]

    def _parse(self, data: bytes) -> tuple[bytearray, bytes]:
        """Split data from telnet sequences; returns (data, unfinished tail to prepend to the next chunk)."""
        out = bytearray()
        i, n = 0, len(data)
        while i < n:
            j = data.find(IAC, i)
            if j < 0:
                out += data[i:]
                return out, b""
            out += data[i:j]
            if j + 1 >= n:
                return out, data[j:]
            cmd = data[j + 1]
            if cmd == IAC:
                out.append(IAC)
                i = j + 2
            elif cmd in (DO, DONT, WILL, WONT):
                if j + 2 >= n:
                    return out, data[j:]
                self._option(cmd, data[j + 2])
                i = j + 3
            elif cmd == SB:
                body, end = self._subnegotiation(data, j + 2)
                if end < 0:
                    return out, data[j:]
                self._answer(body)
                i = end
            else:  # NOP, GA, data mark ...: nothing to do
                i = j + 2
        return out, b""

    @staticmethod
    def _subnegotiation(data: bytes, k: int) -> tuple[bytes, int]:
        body = bytearray()
        n = len(data)
        while k < n:
            b = data[k]
            if b != IAC:
                body.append(b)
                k += 1
                continue
            if k + 1 >= n:
                return b"", -1
            if data[k + 1] == SE:
                return bytes(body), k + 2
            body.append(data[k + 1])  # IAC IAC inside: a literal 0xFF
            k += 2
        return b"", -1

    def _option(self, cmd: int, opt: int) -> None:
        if cmd == DO:
            if opt in (BINARY, COM_PORT, SGA):
                if opt == COM_PORT:
                    self._server_com_port = True
                if opt not in self._we:
                    self._we.add(opt)
                    self._raw(bytes([IAC, WILL, opt]))
            else:
                self._raw(bytes([IAC, WONT, opt]))
        elif cmd == WILL:
            if opt in (BINARY, SGA, ECHO, COM_PORT):
                if opt not in self._they:
                    self._they.add(opt)
                    self._raw(bytes([IAC, DO, opt]))
            else:
                self._raw(bytes([IAC, DONT, opt]))
        elif cmd == DONT and opt == COM_PORT:
            self._closed_reason = self._closed_reason or "the server refused RFC 2217"
        # WONT / DONT of anything else: nothing we rely on

    def _answer(self, body: bytes) -> None:
        if len(body) < 2 or body[0] != COM_PORT:
            return
        code, value = body[1], body[2:]
        if code == SERVER + NOTIFY_MODEMSTATE and value:
            self._modemstate = value[0]
        elif code == SERVER + SET_CONTROL and value:
            self._answers[(code, _control_group(value[0]))] = value
        else:
            self._answers[code] = value
