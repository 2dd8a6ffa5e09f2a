"""Test helpers for remote ports: ser2net availability, a scripted RFC 2217 server, and pyserial's
PortManager in front of an in-process simulated port (an RFC 2217 server that really passes DTR/RTS)."""

from __future__ import annotations

import os
import socket
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

import pytest
import serial
from bkbench.core.rfc2217 import COM_PORT, DO, IAC, SB, SE, SERVER, SET_CONTROL, WILL
from bkbench.core.sim.ser2net import find_ser2net


def need_ser2net() -> str:
    """The ser2net binary; outside CI a missing one skips the test (in CI `./dev test` installs it)."""
    exe = find_ser2net()
    if exe is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("ser2net is not installed; ./dev test installs it (apt-get install ser2net)")
        pytest.skip("ser2net is not installed (apt-get install ser2net; ./dev test does it)")
    return exe


class ScriptedServer:
    """A one-connection TCP server speaking just enough RFC 2217 for tests: agrees to COM-PORT, answers
    every subnegotiation with the value asked (except control values in `silent_controls`), and lets the
    test push raw bytes to the client."""

    def __init__(self, negotiate: bool = True, silent_controls: tuple[int, ...] = (),
                 baud_answer: Callable[[bytes], bytes] | None = None) -> None:
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(1)
        self.port = self.srv.getsockname()[1]
        self.negotiate = negotiate
        self.silent_controls = silent_controls
        self.baud_answer = baud_answer
        self.conn: socket.socket | None = None
        self.received = bytearray()
        self.connected = threading.Event()
        self._stop = False
        threading.Thread(target=self._run, daemon=True).start()

    @property
    def url(self) -> str:
        return f"rfc2217://127.0.0.1:{self.port}"

    def send(self, data: bytes) -> None:
        assert self.conn is not None
        self.conn.sendall(data)

    def _run(self) -> None:
        try:
            conn, _ = self.srv.accept()
        except OSError:
            return
        self.conn = conn
        if self.negotiate:
            conn.sendall(bytes([IAC, DO, COM_PORT, IAC, WILL, 0, IAC, DO, 0]))
        self.connected.set()
        pending = b""
        while not self._stop:
            try:
                chunk = conn.recv(4096)
            except OSError:
                return
            if not chunk:
                return
            self.received += chunk
            pending += chunk
            while True:  # answer each complete IAC SB 44 <code> <value> IAC SE
                start = pending.find(bytes([IAC, SB, COM_PORT]))
                end = pending.find(bytes([IAC, SE]), start + 3)
                if start < 0 or end < 0:
                    break
                code, value = pending[start + 3], pending[start + 4 : end]
                pending = pending[end + 2 :]
                if code == SET_CONTROL and value[:1] and value[0] in self.silent_controls:
                    continue
                if code == 1 and self.baud_answer is not None:
                    value = self.baud_answer(value)
                if self.negotiate:
                    try:
                        conn.sendall(bytes([IAC, SB, COM_PORT, code + SERVER]) + value + bytes([IAC, SE]))
                    except OSError:  # closed by the test while answering: nothing left to answer
                        return

    def close(self) -> None:
        self._stop = True
        for s in (self.conn, self.srv):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass


@contextmanager
def scripted(**kwargs) -> Iterator[ScriptedServer]:
    srv = ScriptedServer(**kwargs)
    try:
        yield srv
    finally:
        srv.close()


@contextmanager
def port_manager_server(device_url: str, cut_after: int | None = None) -> Iterator[int]:
    """pyserial's RFC 2217 PortManager in front of `device_url` (a sim:// port whose DTR/RTS reach the
    simulated CEN wiring): a server that passes the lines, as ser2net does on a real USB adapter.
    `cut_after`: drop the connection once that many device bytes went out (a network that fails)."""
    from serial.rfc2217 import PortManager

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    stop = threading.Event()

    def serve() -> None:
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ser = serial.serial_for_url(device_url, baudrate=115200, timeout=0.01)
        lock = threading.Lock()

        class Conn:
            def write(self, data: bytes) -> None:
                with lock:
                    conn.sendall(data)

        manager = PortManager(ser, Conn())

        def device_to_net() -> None:
            sent = 0
            while not stop.is_set():
                try:
                    data = ser.read(ser.in_waiting or 1)
                    if data:
                        Conn().write(b"".join(manager.escape(data)))
                        sent += len(data)
                        if cut_after is not None and sent >= cut_after:
                            conn.shutdown(socket.SHUT_RDWR)
                            stop.set()
                            return
                except (OSError, serial.SerialException):
                    return

        threading.Thread(target=device_to_net, daemon=True).start()
        while not stop.is_set():
            try:
                data = conn.recv(4096)
            except OSError:
                break
            if not data:
                break
            try:
                for byte in manager.filter(data):  # one by one: a baud change must not overtake earlier data
                    ser.write(byte)
            except OSError:  # the client hung up while the manager answered it: the test's own doing
                break
        stop.set()
        conn.close()
        ser.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        srv.close()
