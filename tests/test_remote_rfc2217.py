"""core/rfc2217.py against scripted servers and pyserial's PortManager: telnet framing, line control that is
passed or known absent, servers that lie or stay silent, and bad input (one line, never a hang)."""

from __future__ import annotations

import socket
import struct
import time

import pytest
from bkbench.core.errors import PortError
from bkbench.core.link.reset import port_has_lines
from bkbench.core.ops.events import Notice
from bkbench.core.rfc2217 import COM_PORT, IAC, SB, SE, SET_CONTROL
from bkbench.core.session import Session
from bkbench.core.sim.ser2net import free_port
from bkbench.core.transport import open_port
from remotehelpers import port_manager_server, scripted
from simhelpers import run_with_deadline, sim_url
from test_bad_input import assert_one_clear_error, run_cli


def _until(port, n: int) -> bytes:
    out = b""
    for _ in range(100):
        out += port.read(n - len(out))
        if len(out) >= n:
            break
    return out


def test_data_with_escaped_ff_split_across_segments_arrives_intact():
    with scripted() as srv:
        port = open_port(srv.url)
        try:
            # 0xFF is doubled on the wire (IAC IAC); the pair and a subnegotiation are cut between sends.
            srv.send(b"\x01\xff")
            srv.send(b"\xff\x02" + bytes([IAC, SB, COM_PORT]))
            srv.send(bytes([107, 0x30, IAC, SE]) + b"\xff\xff\xff\xff\x03")
            assert _until(port, 5) == b"\x01\xff\x02\xff\xff\x03"[:5]
            assert port.read(1) == b"\x03"
            port.write(b"\xff\x00")
            for _ in range(200):
                if b"\xff\xff\x00" in srv.received:
                    break
                time.sleep(0.01)
            assert b"\xff\xff\x00" in srv.received  # our 0xFF went out doubled
        finally:
            port.close()


def test_server_that_answers_line_control_passes_lines():
    with scripted() as srv:
        port = open_port(srv.url)
        assert port.passes_lines is True and port_has_lines(port)
        port.close()


def test_server_that_ignores_dtr_rts_opens_without_lines():
    """ser2net on a pty: no answer to DTR/RTS. The port opens (pyserial's client fails here) and says so."""
    with scripted(silent_controls=(8, 9, 11, 12)) as srv:
        port = open_port(srv.url)
        assert port.passes_lines is False and not port_has_lines(port)
        port.dtr = True  # still sent, never waited for
        port.close()
        sent = bytes(srv.received)
    assert bytes([IAC, SB, COM_PORT, SET_CONTROL, 9, IAC, SE]) in sent  # DTR off asked at open, never on
    assert bytes([IAC, SB, COM_PORT, SET_CONTROL, 8, IAC, SE]) not in sent[: sent.find(bytes([SET_CONTROL, 9]))]


def test_server_that_keeps_its_rate_is_not_believed():
    """A server that answers SET-BAUDRATE with another rate: setting the rate fails, it is never assumed."""
    with scripted(baud_answer=lambda v: struct.pack("!I", 115200)) as srv:
        port = open_port(srv.url)
        try:
            with pytest.raises(Exception, match="115200 baud, not 921600"):
                port.baudrate = 921600
        finally:
            port.close()


def test_raw_tcp_port_given_as_rfc2217_is_named():
    with scripted(negotiate=False) as srv:
        _, exc, hung = run_with_deadline(lambda: open_port(srv.url + "?timeout=0.5"), 20)
    assert not hung
    assert isinstance(exc, PortError) and "socket://" in str(exc) and "RFC 2217" in str(exc)


@pytest.mark.parametrize("url,words", [
    ("rfc2217://127.0.0.1", ["rfc2217://HOST:PORT"]),
    ("rfc2217://127.0.0.1:99999", ["rfc2217://HOST:PORT"]),
    ("rfc2217://127.0.0.1:4000?bogus=1", ["unknown option"]),
    ("rfc2217://127.0.0.1:4000?timeout=abc", ["timeout"]),
    ("socket://127.0.0.1", ["socket://HOST:PORT"]),
    ("socket://127.0.0.1:4000?bogus=1", ["unknown option"]),
    ("rfc2217://admin:hunter2@127.0.0.1:4000", ["no login"]),  # stored in logs and sidecars otherwise
    ("socket://admin:hunter2@127.0.0.1:4000", ["no login"]),  # pyserial said only 'debug|info|warning|error'
])
def test_bad_remote_urls_get_one_line(url, words, tmp_path):
    code, _, err = run_cli(["info", "--port", url], tmp_path)
    assert_one_clear_error(code, err, *words)
    assert "hunter2" not in err


@pytest.mark.parametrize("scheme", ["rfc2217", "socket"])
def test_refused_port_gets_one_line(scheme, tmp_path):
    port = free_port()  # nothing listens there
    code, _, err = run_cli(["info", "--port", f"{scheme}://127.0.0.1:{port}"], tmp_path)
    assert_one_clear_error(code, err, "connection refused", "ser2net")


def test_unreachable_host_fails_within_the_connect_timeout():
    # A listening socket whose backlog is full never completes the handshake: like a host behind a firewall
    # that drops packets (a black-holed address behaves the same, but needs a network to prove it).
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    fillers = []
    try:
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(srv.getsockname())
            fillers.append(s)
        url = f"rfc2217://127.0.0.1:{srv.getsockname()[1]}?timeout=1"
        _, exc, hung = run_with_deadline(lambda: open_port(url), 20)
    finally:
        for s in fillers + [srv]:
            s.close()
    assert not hung
    assert isinstance(exc, PortError) and len(str(exc).splitlines()) == 1, exc


def test_dtr_rts_reset_through_an_rfc2217_server_that_passes_lines(fixtures_dir):
    """pyserial's PortManager in front of a simulated chip running its firmware with CEN wired to RTS: the
    RTS pulse sent over RFC 2217 resets it into the boot window, and the link comes up at 921600."""
    dump = fixtures_dir / "dumps" / "bk7231n-lspa9-clone-bl0937-plug.bin"
    with sim_url("BK7231N", dump, scenario="app-running", wiring="rts", boot_window=0.05) as (dev_url, dev):
        with port_manager_server(dev_url) as tcp_port:
            events: list = []
            with Session(f"rfc2217://127.0.0.1:{tcp_port}", baud=921600, reset="rts", link_timeout=10,
                         on_event=events.append) as s:
                assert s.port.passes_lines is True
                # Opening a real port asserts DTR/RTS, and our release boots the chip (as behind ser2net on a
                # USB adapter): let that boot window close too, so only the reset sequence can open it.
                time.sleep(0.2)
                resets_before = dev.resets
                info = s.connect()
                baud = info.baud  # before close() puts the chip back at 115200
                data = s.read(0x11000, 0x2000)
            notes = [e.message for e in events if isinstance(e, Notice)]
    assert info.chip == "BK7231N" and baud == 921600
    assert dev.resets > resets_before  # the chip was reset by the line, not found waiting
    assert ("rts", True) in [(n, a) for _, n, a in dev.line_log]
    assert data == dump.read_bytes()[0x11000:0x13000]
    assert not any("DTR/RTS" in m for m in notes), notes  # no fallback to a manual reset


def test_connection_cut_mid_backup_saves_nothing_and_says_so(fixtures_dir, tmp_path):
    """The network drops half-way through a backup: one clear error, nothing in the library, no hang."""
    from bkbench.core.backups import BackupLibrary
    from bkbench.core.errors import BkError

    dump = fixtures_dir / "dumps" / "bk7231n-lspa9-clone-bl0937-plug.bin"
    lib = BackupLibrary(tmp_path / "lib")
    with sim_url("BK7231N", dump) as (dev_url, _):
        with port_manager_server(dev_url, cut_after=600_000) as tcp_port:
            s = Session(f"rfc2217://127.0.0.1:{tcp_port}", baud=921600, reset="manual", link_timeout=3)
            try:
                s.connect()
                _, exc, hung = run_with_deadline(lambda: s.backup(lib), 60)
            finally:
                s.close()
    assert not hung and isinstance(exc, BkError), exc
    assert len(str(exc).splitlines()) == 1
    assert lib.list() == [] and not list((tmp_path / "lib").glob("*.bin"))


def test_rfc2217_port_given_as_socket_is_named(monkeypatch):
    """socket:// on a telnet(rfc2217) accepter: ser2net would read every 0xFF we send as a telnet command and
    double the chip's; the link then failed with advice to isolate RX1/TX1. Say which URL to use instead."""
    monkeypatch.setattr("bkbench.core.transport.TELNET_GREETING_WAIT", 10.0)  # a busy CI machine: never flaky
    with scripted() as srv:  # greets with IAC DO COM-PORT ... at once, as ser2net does
        url = srv.url.replace("rfc2217://", "socket://")
        _, exc, hung = run_with_deadline(lambda: open_port(url), 20)
    assert not hung
    assert isinstance(exc, PortError) and srv.url in str(exc), exc


@pytest.mark.parametrize("first,telnet", [
    (b"\xff\xfb\x03\xff\xfd\x03\xff\xfb\x01", "telnet"),  # ser2net 4.3's greeting
    (b"\xff\xfb\x00boot log\r\n", "data"),  # garbage at a wrong rate can start like one telnet command
    (b"\xff\xff\xff\xff\xff\xff", "data"),
    (b"boot log\r\n", "data"),
])
def test_telnet_greeting_check_only_peeks(first, telnet):
    """socket:// looks for a telnet greeting without taking a byte a raw port's chip sent."""
    from bkbench.core.transport import _greeting

    a, b = socket.socketpair()
    with a, b:
        b.sendall(first)
        assert _greeting(a) == telnet
        assert a.recv(100) == first


def test_endless_subnegotiation_from_a_hostile_server_is_a_clear_loss():
    """A server that opens a subnegotiation and never closes it: everything after it was held and re-parsed
    on every chunk (memory, and reads far past their timeout); now the link is lost with a reason."""
    from bkbench.core.rfc2217 import NOTIFY_MODEMSTATE
    from serial import SerialException

    with scripted() as srv:
        port = open_port(srv.url)
        try:
            srv.send(bytes([IAC, SB, COM_PORT, NOTIFY_MODEMSTATE + 100]) + b"\0" * 100_000)

            def read_all() -> bytes:
                for _ in range(200):
                    port.read(100)
                return b""

            _, exc, hung = run_with_deadline(read_all, 20)
        finally:
            port.close()
    assert not hung and isinstance(exc, SerialException) and "subnegotiation" in str(exc), exc


@pytest.mark.parametrize("last_words", [b"", b"Port's device already in use\r\n"])  # ser2net 4.3 says the latter
def test_socket_port_the_server_hangs_up_on_is_named(monkeypatch, last_words):
    """ser2net hangs up on a second client: socket:// said only 'read failed: socket disconnected', after
    telling the user to reset the chip; now it says what rfc2217:// says, before the chip is touched."""
    import threading

    monkeypatch.setattr("bkbench.core.transport.HANGUP_WAIT", 10.0)

    def hang_up() -> None:
        conn = srv.accept()[0]
        conn.sendall(last_words)
        conn.close()

    monkeypatch.setattr("bkbench.core.transport.TELNET_GREETING_WAIT", 10.0)  # a busy CI machine: never flaky
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    threading.Thread(target=hang_up, daemon=True).start()
    with srv:
        _, exc, hung = run_with_deadline(lambda: open_port(f"socket://127.0.0.1:{srv.getsockname()[1]}"), 20)
    assert not hung and isinstance(exc, PortError) and "another client has the port" in str(exc), exc


def test_url_scheme_in_capitals_is_the_same_port():
    """pyserial reads SOCKET:// and RFC2217:// case-blind, but our checks did not: SOCKET:// was taken for a
    port that can switch rates and drive DTR/RTS (the link then failed as 'check the wiring', after resets
    that never happened), and RFC2217:// went to pyserial's client instead of ours."""
    from bkbench.core.rfc2217 import Rfc2217Port
    from bkbench.core.transport import can_change_baud

    with scripted() as srv:
        port = open_port(srv.url.replace("rfc2217://", "RFC2217://"))
        try:
            assert isinstance(port, Rfc2217Port)
        finally:
            port.close()
    with scripted(negotiate=False) as srv:
        port = open_port(srv.url.replace("rfc2217://", "SOCKET://"))
        try:
            assert not can_change_baud(port) and not port_has_lines(port)
        finally:
            port.close()


def test_reset_input_buffer_drops_everything_already_here():
    """reset_input_buffer took one recv (64 KiB) of what had arrived: the rest was read as the next reply."""
    with scripted() as srv:
        port = open_port(srv.url)
        try:
            stale = b"\x55" * 120_000  # more than one recv(), less than a loopback receive buffer
            srv.send(stale)
            sock = port._sock
            for _ in range(500):  # until all of it sits in this host's socket buffer
                try:
                    if len(sock.recv(len(stale) + 1000, socket.MSG_PEEK | socket.MSG_DONTWAIT)) >= len(stale):
                        break
                except BlockingIOError:
                    pass
                time.sleep(0.01)
            port.reset_input_buffer()
            srv.send(b"fresh")
            assert _until(port, 5) == b"fresh"
        finally:
            port.close()


def _hostile_server(payload: bytes):
    """A TCP peer that sends `payload` as fast as it can, then stays silent (never an RFC 2217 answer)."""
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve() -> None:
        try:
            conn, _ = srv.accept()
            conn.sendall(payload)
            time.sleep(8)
            conn.close()
        except OSError:
            pass

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def test_a_flooding_server_costs_no_more_than_a_megabyte():
    """A peer that floods data while bkbench waits for the RFC 2217 answer: what is kept unread is bounded
    (it grew to gigabytes: one hostile host on a bench of ports could take the machine's memory)."""
    import tracemalloc

    srv, port = _hostile_server(b"U" * (48 << 20))
    tracemalloc.start()
    try:
        with pytest.raises(PortError, match="no RFC 2217 answer"):
            open_port(f"rfc2217://127.0.0.1:{port}?timeout=2")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        srv.close()
    assert peak < 16 << 20, f"{peak:,} bytes held for a flooding peer"


def test_an_endless_telnet_subnegotiation_is_refused():
    """IAC SB with no end: refused in one line (it was re-parsed whole on every chunk, growing forever)."""
    srv, port = _hostile_server(bytes([IAC, SB, COM_PORT]) + b"x" * (2 << 20))
    try:
        with pytest.raises(PortError, match="subnegotiation"):
            open_port(f"rfc2217://127.0.0.1:{port}?timeout=2")
    finally:
        srv.close()
