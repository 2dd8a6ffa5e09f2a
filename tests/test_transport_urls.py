"""Any pyserial URL works as a port: a socket:// bridge to a simulated chip (ser2net-style)."""

from __future__ import annotations

import socket
import threading
import time

from bkbench.core.session import Session
from bkbench.core.sim.registry import create_device


def serve_device_on_tcp(dev) -> tuple[int, threading.Event]:
    """A one-connection TCP server whose far end is the device (like ser2net in raw mode at 115200)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    stop = threading.Event()

    def run() -> None:
        conn, _ = srv.accept()
        conn.settimeout(0.002)
        with conn:
            while not stop.is_set():
                try:
                    data = conn.recv(65536)
                    if not data:
                        break
                    dev.host_write(data)
                except socket.timeout:
                    pass
                out = dev.host_read()
                if out:
                    conn.sendall(out)
        srv.close()

    threading.Thread(target=run, daemon=True).start()
    return srv.getsockname()[1], stop


def test_socket_url_reads_like_a_local_port(fixtures_dir):
    dump = fixtures_dir / "dumps" / "bk7231t-feit-br30-rgbw-bulb.bin"
    dev = create_device("BK7231T", dump)
    port, stop = serve_device_on_tcp(dev)
    try:
        # A raw TCP bridge cannot change the line rate: stay at 115200 (the session must not try).
        with Session(f"socket://127.0.0.1:{port}", baud=115200, reset="manual", link_timeout=3) as s:
            info = s.connect()
            data = s.read(0x11000, 0x8000)
    finally:
        stop.set()
        time.sleep(0.01)
    assert info.chip == "BK7231T" and info.bootloader == "bk7231s 1.0.5"
    assert data == dump.read_bytes()[0x11000:0x19000]
