"""Port discovery: adapter names from VID:PID, by-id links, the Pi UARTs pyserial does not list."""

from __future__ import annotations

from types import SimpleNamespace

from bkbench.core import ports


def fake_comport(device, vid=None, pid=None, desc="", serial=""):
    return SimpleNamespace(device=device, vid=vid, pid=pid, description=desc, serial_number=serial, product=None)


def test_adapters_named_and_pi_uarts_added(monkeypatch):
    monkeypatch.setattr(ports._lp, "comports", lambda include_links=False: [
        fake_comport("/dev/ttyUSB0", 0x1A86, 0x7523, "USB Serial"),
        fake_comport("/dev/ttyUSB1", 0x10C4, 0xEA60, "CP2102 USB to UART", "0001"),
        fake_comport("/dev/ttyACM0", 0x1A86, 0x55D4, "USB Single Serial"),
    ])
    monkeypatch.setattr(ports, "_by_id_map", lambda: {"/dev/ttyUSB1": "/dev/serial/by-id/usb-Silicon_Labs_CP2102-if00"})
    present = {"/dev/serial0", "/dev/ttyAMA0"}
    monkeypatch.setattr(ports.os.path, "exists", lambda p: p in present)
    found = {p.device: p for p in ports.list_ports(check_in_use=False)}
    assert found["/dev/ttyUSB0"].adapter == "CH340" and found["/dev/ttyUSB0"].vid_pid == "1A86:7523"
    assert found["/dev/ttyUSB1"].adapter == "CP210x"
    assert found["/dev/ttyUSB1"].by_id.endswith("CP2102-if00")
    assert found["/dev/ttyACM0"].adapter == "CH9102"
    assert found["/dev/serial0"].kind == "pi-uart" and found["/dev/ttyAMA0"].kind == "pi-uart"
    assert found["/dev/ttyUSB1"].to_json()["vid_pid"] == "10C4:EA60"


def test_in_use_detects_another_holder(tmp_path):
    path = tmp_path / "fake-tty"
    path.write_text("")
    assert not ports._in_use(str(path))
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-c", f"f=open({str(path)!r}); import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 5
        while not ports._in_use(str(path)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ports._in_use(str(path))
    finally:
        proc.kill()
