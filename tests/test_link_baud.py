"""Baud ladder against a simulated adapter that garbles above a rate, and its per-adapter memory."""

from __future__ import annotations

import json
import os
import stat
import time
import uuid

import pytest
from bkbench.core import userconfig
from bkbench.core.link.baud import LADDER, adapter_key, forget, ladder_from, remembered
from bkbench.core.ops.events import Notice
from bkbench.core.session import Session
from bkbench.core.sim.registry import create_device, register, unregister


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch):
    path = tmp_path / "config"
    monkeypatch.setenv("BKBENCH_CONFIG_DIR", str(path))
    return path


@pytest.fixture
def slow_adapter():
    name = f"baud-{uuid.uuid4().hex[:8]}"
    dev = create_device(wiring="rts", max_baud=921600)
    register(name, dev)
    yield dev, f"sim://@{name}"
    unregister(name)


def _warnings(events):
    return [e.message for e in events if isinstance(e, Notice) and e.level == "warning"]


def test_ladder_order():
    assert LADDER[:6] == (3000000, 2000000, 1500000, 921600, 460800, 230400)
    assert ladder_from(2000000) == [2000000, 1500000, 921600, 460800, 230400, 115200]
    assert ladder_from(2000000, [2000000, 1500000]) == [921600, 460800, 230400, 115200]
    assert ladder_from(500000) == [500000, 460800, 230400, 115200]  # any requested rate first
    assert ladder_from(115200, [115200]) == [115200]  # the link rate is never excluded


def test_steps_down_remembers_and_starts_there_next_time(slow_adapter, config_dir):
    dev, url = slow_adapter
    events = []
    with Session(url, baud=2000000, reset="dtr-rts", link_timeout=3, on_event=events.append) as s:
        info = s.connect()
        assert info.baud == 921600 and s.port.baudrate == 921600
        assert len(s.read(0x11000, 0x2000)) == 0x2000  # the transfer works at the rate it reports
    warnings = _warnings(events)
    assert len(warnings) == 2 and "2000000" in warnings[0] and "1500000" in warnings[1]
    assert any(isinstance(e, Notice) and e.message == "transferring at 921600 baud" for e in events)
    assert remembered(url) == {"good": 921600, "failed": [2000000, 1500000]}
    saved = json.loads((config_dir / "config.json").read_text())
    assert saved["adapters"][url]["good"] == 921600
    assert stat.S_IMODE(os.stat(config_dir / "config.json").st_mode) == 0o600

    events.clear()
    resets = dev.resets
    with Session(url, baud=2000000, reset="dtr-rts", link_timeout=3, on_event=events.append) as s:
        assert s.connect().baud == 921600
    assert not _warnings(events)  # no failing switch this time
    assert any("starting at 921600" in e.message for e in events if isinstance(e, Notice))
    assert dev.resets == resets + 1  # only the reset pyserial's open causes, no step-down resets

    forget(url)
    assert remembered(url) == {}


def test_lower_request_than_the_limit_switches_directly(config_dir):
    url = "sim://bk7231n?max_baud=921600&wiring=rts"
    events = []
    with Session(url, baud=460800, reset="dtr-rts", link_timeout=3, on_event=events.append) as s:
        assert s.connect().baud == 460800
    assert not _warnings(events)
    assert remembered(url) == {"good": 460800, "failed": []}
    assert adapter_key(url) == url


def test_adapter_key_for_plain_paths(tmp_path):
    # Not a known serial port: the resolved path names it.
    link = tmp_path / "ttyFAKE"
    link.symlink_to(tmp_path)
    assert adapter_key(str(link)) == str(tmp_path)


def test_userconfig_roundtrip_and_corrupt_file(config_dir):
    assert userconfig.load() == {}
    userconfig.set_value("adapters./dev/serial/by-id/usb-FTDI_x-if00-port0", {"good": 921600})
    assert userconfig.get("adapters./dev/serial/by-id/usb-FTDI_x-if00-port0") == {"good": 921600}
    userconfig.set_value("adapters./dev/serial/by-id/usb-FTDI_x-if00-port0", None)
    assert userconfig.get("adapters") == {}
    (config_dir / "config.json").write_text("{not json")
    assert userconfig.load() == {}  # never blocks flashing
    userconfig.set_value("ui.theme", "dark")
    assert userconfig.load() == {"ui": {"theme": "dark"}}
    assert (config_dir / "config.json.corrupt").read_text() == "{not json"
    assert not [p for p in os.listdir(config_dir) if p.endswith(".part")]


def test_a_host_that_switches_its_rate_late_stays_at_the_rate_the_chip_switched_to(config_dir, monkeypatch):
    """The flake of issue 22 (`bkbench info` on a pty, busy machine: "Nothing at all arrived on RX"): the
    host set its own UART to 921600 after the chip's 20 ms delay, so it read the chip's echo (sent at
    921600) as garbage, went back to 115200 and talked past a chip that now listens at 921600. A late
    switch is played here by an adapter that applies a new rate 60 ms late (real wire timing on)."""
    from bkbench.core.sim import protocol_sim

    applied = protocol_sim.Serial._reconfigure_port

    def late(self):
        if self.is_open and self._baudrate != 115200:
            time.sleep(0.06)
        applied(self)

    monkeypatch.setattr(protocol_sim.Serial, "_reconfigure_port", late)
    name = f"late-{uuid.uuid4().hex[:8]}"
    register(name, create_device(wiring="rts", timing=True))
    events = []
    try:
        with Session(f"sim://@{name}", baud=921600, reset="dtr-rts", link_timeout=3, on_event=events.append) as s:
            info = s.connect()
            assert info.baud == 921600 and s.port.baudrate == 921600
            assert len(s.read(0x11000, 0x1000)) == 0x1000  # the chip really is at 921600
    finally:
        unregister(name)
    assert not _warnings(events)  # no step down, nothing recorded as failed
    assert remembered(f"sim://@{name}").get("failed", []) == []
