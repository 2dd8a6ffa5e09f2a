"""Remote ports through the real ser2net: rfc2217:// and socket:// link, back up, write and verify like a
local port. Judged on the simulated flash and the backup library, never on what the CLI prints."""

from __future__ import annotations

import json
import subprocess
import sys

from bkbench.core.backups import BackupLibrary
from bkbench.core.cli.main import main
from bkbench.core.ops.events import Notice
from bkbench.core.session import Session
from bkbench.core.sim.device import SimDevice
from bkbench.core.sim.ser2net import Ser2net, free_port
from remotehelpers import need_ser2net
from simhelpers import pty_for, run_with_deadline

N_DUMP = "bk7231n-lspa9-clone-bl0937-plug.bin"


def _record_bauds(dev: SimDevice) -> list[int]:
    """Every line rate the simulated chip's side of the pty was set to (by ser2net's termios)."""
    seen: list[int] = []
    real = dev.set_host_baud

    def spy(baud: int, **kwargs) -> None:
        seen.append(int(baud))
        real(baud, **kwargs)

    dev.set_host_baud = spy  # type: ignore[method-assign]
    return seen


def test_rfc2217_write_with_backup_first_through_ser2net(fixtures_dir, obk_images, tmp_path, capsys):
    """`bkbench write` over rfc2217://: backup first (in the library, byte-exact), write, verify, at 921600."""
    need_ser2net()
    stock = (fixtures_dir / "dumps" / N_DUMP).read_bytes()
    image = obk_images["BK7231N"]["ua"]
    f = tmp_path / "openbk.ua.bin"
    f.write_bytes(image)
    dev = SimDevice(stock, chip="BK7231N")
    bauds = _record_bauds(dev)
    with pty_for(dev) as pty, Ser2net(pty, raw=False) as s2n:
        code = main(["write", "--port", s2n.rfc2217_url, str(f), "--json", "-q", "--data-dir", str(tmp_path / "d")])
        out = json.loads(capsys.readouterr().out)
    flash = bytes(dev.flash.data)
    assert code == 0
    assert 921600 in bauds  # the baud change went through RFC 2217 and ser2net's termios to the pty
    assert flash[0x11000 : 0x11000 + len(image)] == image
    assert flash[:0x11000] == stock[:0x11000] and flash[0x1D0000:0x1D1000] == stock[0x1D0000:0x1D1000]
    # 0x1D1000 is OpenBK's: once it boots it saves its defaults over the stock bytes (core/sim/obk_loader.py)
    assert flash[0x1D2000:] == stock[0x1D2000:]
    lib = BackupLibrary(tmp_path / "d" / "backups")
    entries = lib.list()
    # the backup taken first is the stock chip; the derived entry is what the write left (core/backups.py)
    assert [lib.load(e) for e in entries if e.origin == "read"] == [stock]
    assert [e.origin for e in entries] == ["derived", "read"]
    assert out["start"] == 0x11000 and out["backup"]


def test_rfc2217_backup_and_verify_in_a_session(fixtures_dir, tmp_path):
    need_ser2net()
    stock = (fixtures_dir / "dumps" / N_DUMP).read_bytes()
    dev = SimDevice(stock, chip="BK7231N")
    events: list = []
    with pty_for(dev) as pty, Ser2net(pty, raw=False) as s2n:
        with Session(s2n.rfc2217_url, baud=2000000, reset="auto", link_timeout=5, on_event=events.append) as s:
            info = s.connect()
            assert info.baud == 2000000 and dev.host_baud == 2000000
            lib = BackupLibrary(tmp_path / "lib")
            entry = s.backup(lib).entry
            assert s.verify(stock).ok
            changed = bytearray(stock)
            changed[0x150000] ^= 0x01
            assert not s.verify(bytes(changed)).ok  # one flipped bit is seen through the remote link
        assert dev.host_baud == 115200  # the session left the chip (and the pty) at the link rate
    assert lib.load(entry) == stock == bytes(dev.flash.data)
    # ser2net in front of a pty cannot pass DTR/RTS: said once, and the reset falls back to the user.
    notes = [e.message for e in events if isinstance(e, Notice)]
    assert any("does not pass DTR/RTS" in m for m in notes), notes


def test_socket_backup_through_bkbench_simulate_ser2net(fixtures_dir, tmp_path, capsys):
    """`bkbench simulate --ser2net PORT` (its pty behind the real ser2net); bkbench read over socket:// at the
    default 921600 must stay at 115200 (raw TCP cannot change the rate) instead of desynchronising, and save
    a byte-exact backup."""
    need_ser2net()
    dump = fixtures_dir / "dumps" / N_DUMP
    port = free_port()
    while not 0 < port < 65534:
        port = free_port()
    sim = subprocess.Popen([sys.executable, "-m", "bkbench.core.cli.main", "simulate", "--dump", str(dump),
                            "--ser2net", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert sim.stderr is not None
        lines = [sim.stderr.readline() for _ in range(2)]
        assert f"socket://127.0.0.1:{port + 1}" in lines[1], lines
        code = main(["read", "--port", f"socket://127.0.0.1:{port + 1}", "--data-dir", str(tmp_path / "d")])
        err = capsys.readouterr().err
    finally:
        sim.terminate()
        sim.wait(10)
    assert code == 0, err
    assert "cannot change the line rate" in err
    lib = BackupLibrary(tmp_path / "d" / "backups")
    entries = lib.list()
    assert len(entries) == 1 and lib.load(entries[0]) == dump.read_bytes()
    assert sim.returncode == 0


def test_ser2net_defaults_still_work(fixtures_dir):
    """ser2net's default config (chardelay on, Nagle on) is slower but must still be correct."""
    need_ser2net()
    stock = (fixtures_dir / "dumps" / N_DUMP).read_bytes()
    dev = SimDevice(stock, chip="BK7231N")
    with pty_for(dev) as pty, Ser2net(pty, raw=False, fast=False) as s2n:
        with Session(s2n.rfc2217_url, baud=921600, reset="manual", link_timeout=5) as s:
            s.connect()
            assert s.read(0x11000, 0x20000) == stock[0x11000:0x31000]


def test_second_client_is_refused_and_the_first_keeps_working(fixtures_dir):
    """ser2net serves one client per port: a second bkbench (or anything else) gets one clear line, and the
    session already linked is not disturbed (the recommended config has no kickolduser)."""
    need_ser2net()
    from bkbench.core.errors import PortError

    stock = (fixtures_dir / "dumps" / N_DUMP).read_bytes()
    dev = SimDevice(stock, chip="BK7231N")
    with pty_for(dev) as pty, Ser2net(pty, raw=False) as s2n:
        with Session(s2n.rfc2217_url, baud=921600, reset="manual", link_timeout=3) as first:
            first.connect()
            second = Session(s2n.rfc2217_url, baud=921600, reset="manual", link_timeout=3)
            _, exc, hung = run_with_deadline(second.connect, 30)
            second.close()
            assert not hung and isinstance(exc, PortError), exc
            assert len(str(exc).splitlines()) == 1 and "another client has the port" in str(exc)
            assert first.read(0x11000, 0x10000) == stock[0x11000:0x21000]
