"""Reset strategies against the simulator's CEN model (DTR/RTS edges reach the sim:// device)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from bkbench.core.client import BkClient
from bkbench.core.errors import BkError, LinkError
from bkbench.core.link.reset import (
    MANUAL_TEXT,
    PRESETS,
    REBOOT_TEXT,
    ResetStrategy,
    for_port,
    get_strategy,
    parse_sequence,
    port_has_lines,
)
from bkbench.core.ops.events import LinkAttempt, Notice
from bkbench.core.session import Session
from bkbench.core.sim.registry import create_device, register, unregister
from bkbench.core.transport import open_port


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path, monkeypatch):
    monkeypatch.setenv("BKBENCH_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def sim():
    """Register simulated devices under unique names; yields a factory returning (device, url)."""
    names = []

    def make(**kwargs):
        name = f"reset-{uuid.uuid4().hex[:8]}"
        dev = create_device(**kwargs)
        register(name, dev)
        names.append(name)
        return dev, f"sim://@{name}"

    yield make
    for n in names:
        unregister(n)


def _edges(dev, since: float, line: str) -> list[tuple[float, bool]]:
    return [(t, v) for t, name, v in dev.line_log if name == line and t >= since]


def _running_app(make, wiring: str, window: float = 0.15):
    """A chip running its app with CEN wired to `wiring`; the reset pyserial causes on open is over."""
    dev, url = make(scenario="app-running", wiring=wiring, boot_window=window)
    port = open_port(url)
    time.sleep(window + 0.1)
    dev.pending()  # the device advances its state lazily
    assert dev.state == "app"
    return dev, port


# ---------------------------------------------------------------- parsing
def test_parse_sequence_steps_and_errors():
    s = parse_sequence("R1|D1|W0.1|D0|W0.1|R0")
    assert s.steps == (("R", 1.0), ("D", 1.0), ("W", 0.1), ("D", 0.0), ("W", 0.1), ("R", 0.0))
    assert s.needs_lines and not s.manual
    with pytest.raises(BkError, match="X1"):
        parse_sequence("R1|X1|R0")
    with pytest.raises(BkError, match="longer than 5 s"):
        parse_sequence("R1|W9|R0")
    # A line left asserted would hold a CEN wired to it in reset for ever: refused before any port opens.
    with pytest.raises(BkError, match="RTS asserted"):
        parse_sequence("R1|W0.1")
    with pytest.raises(BkError, match="neither DTR nor RTS"):
        parse_sequence("W0.1")


def test_get_strategy_specs():
    assert get_strategy("none") is PRESETS["manual"]
    assert get_strategy("manual").manual and get_strategy("manual").instructions == MANUAL_TEXT
    auto = get_strategy("auto")
    assert auto.steps == PRESETS["dtr-rts"].steps and auto.text == REBOOT_TEXT and not auto.manual
    combo = get_strategy("gui+reboot")
    assert combo.steps == PRESETS["gui"].steps and combo.text == REBOOT_TEXT
    reboot = get_strategy("reboot")
    assert reboot.manual and reboot.acts and reboot.text == b"reboot\n"
    assert get_strategy("R1|W0.2|R0").steps == (("R", 1.0), ("W", 0.2), ("R", 0.0))
    gpio = get_strategy("gpio:GPIO17,power=GPIO27,pulse=0.3")  # parsed without gpiod installed
    assert gpio.actuator.cen == "GPIO17" and gpio.actuator.power == "GPIO27" and gpio.actuator.pulse_s == 0.3
    assert not gpio.manual and "GPIO17" in gpio.describe()
    with pytest.raises(BkError, match="unknown reset method"):
        get_strategy("wiggle")


def test_lineless_ports_fall_back_to_manual_with_one_message():
    class Pty:
        port = "/dev/pts/7"
        dtr = rts = False

    class Sock:
        portstr = "socket://127.0.0.1:4000"

    for port in (Pty(), Sock()):
        assert not port_has_lines(port)
        strategy, note = for_port(PRESETS["dtr-rts"], port)
        assert strategy.manual and strategy.instructions == MANUAL_TEXT and not strategy.steps
        assert "cannot drive DTR/RTS" in note and "by hand" in note
    # auto keeps typing `reboot` (no lines needed), but the user is still told to reset by hand.
    strategy, note = for_port(PRESETS["auto"], Pty())
    assert strategy.text == REBOOT_TEXT and strategy.manual and note
    # manual strategies need no lines: no message
    assert for_port(PRESETS["manual"], Pty()) == (PRESETS["manual"], "")


# ---------------------------------------------------------------- presets against the CEN model
@pytest.mark.parametrize(
    "preset, wiring, low_time",
    [("dtr-rts", "rts", 0.2), ("dtr-rts", "dtr", 0.1), ("gui", "rts", 0.05), ("gui", "dtr", 0.05),
     ("rts", "rts", 0.2), ("dtr", "dtr", 0.2)],
)
def test_preset_pulses_cen_and_chip_links(sim, preset, wiring, low_time):
    dev, port = _running_app(sim, wiring)
    try:
        mark = time.monotonic()
        resets = len(dev.reset_log)
        PRESETS[preset].apply(port)
        edges = _edges(dev, mark, wiring)
        assert [v for _, v in edges] == [True, False]  # asserted (CEN low), then released
        assert low_time - 0.01 <= edges[1][0] - edges[0][0] <= low_time + 0.1
        assert len(dev.reset_log) == resets + 1
        assert dev.reset_log[-1] == pytest.approx(edges[1][0], abs=0.005)  # booted on the release
        assert BkClient(port).link(0.5)
    finally:
        port.close()


def test_line_not_wired_to_cen_does_not_reset(sim):
    dev, port = _running_app(sim, "rts")
    try:
        resets = len(dev.reset_log)
        PRESETS["dtr"].apply(port)
        dev.pending()
        assert len(dev.reset_log) == resets and dev.state == "app"
        assert not BkClient(port).link(0.3)
    finally:
        port.close()


def test_sequence_that_never_releases_cen_holds_the_chip(sim):
    dev, port = _running_app(sim, "rts")
    try:
        stuck = ResetStrategy("stuck", (("R", 1.0), ("W", 0.05)), needs_lines=True)  # parse_sequence refuses it
        resets = len(dev.reset_log)
        stuck.apply(port)
        assert dev.cen_low and dev.state == "reset"
        assert not BkClient(port).link(0.4)
        assert len(dev.reset_log) == resets
    finally:
        port.close()


# ---------------------------------------------------------------- strategies through Session.link
def test_session_links_with_rts_wiring_and_reports_wrong_line(sim):
    dev, url = sim(scenario="app-running", wiring="rts", boot_window=0.05)
    with Session(url, baud=115200, reset="rts", link_timeout=2) as s:
        time.sleep(0.15)
        start = time.monotonic()
        s.link()
        assert any(t >= start for t in dev.reset_log)
    dev2, url2 = sim(scenario="app-running", wiring="rts", boot_window=0.05)
    with Session(url2, baud=115200, reset="dtr", link_timeout=1.5) as s:
        time.sleep(0.15)
        with pytest.raises(LinkError) as err:
            s.link()
    assert s.diagnosis.kind == "app-running"
    assert "not wired to CEN" in err.value.hint and "DTR/RTS sequence D1|W0.2|D0" in err.value.hint


def test_manual_reset_shows_instructions_with_live_attempt_counter(sim):
    dev, url = sim(scenario="app-running", wiring="none")
    events = []
    with Session(url, baud=115200, reset="manual", link_timeout=3, on_event=events.append) as s:
        timer = threading.Timer(0.9, dev.reset)  # the user shorts CEN to GND
        timer.start()
        try:
            s.link()
        finally:
            timer.cancel()
    attempts = [e for e in events if isinstance(e, LinkAttempt)]
    assert len(attempts) >= 2
    assert [a.attempt for a in attempts] == sorted({a.attempt for a in attempts})  # counts up
    assert all("CEN to GND" in a.hint for a in attempts)
    # The doctor recognised the running application while waiting for the user.
    assert any(a.hint.startswith("The chip is running") for a in attempts)


def _openbk_running(make):
    """A chip that was flashed with OpenBK earlier and now runs it (the sim's stock app is its initial flash)."""
    dev, url = make(scenario="app-running", boot_window=0.05)
    dev.flash.data[0x20000:0x20010] = b"OpenBK-like app!"  # any non-stock app counts as OpenBK for the sim
    dev.reset()
    time.sleep(0.1)
    dev.pending()
    assert dev.state == "app"
    return dev, url


def test_reboot_typed_to_openbk_reaches_the_boot_window(sim):
    dev, url = _openbk_running(sim)
    with Session(url, baud=115200, reset="reboot", link_timeout=3) as s:
        start = time.monotonic()
        s.link()
    assert any(t >= start for t in dev.reset_log)


def test_doctor_suggests_reboot_for_openbk(sim):
    dev, url = _openbk_running(sim)
    with Session(url, baud=115200, reset="manual", link_timeout=1) as s:
        dev.reset()  # a reset too early: the boot window passes before linking starts, OpenBK logs
        time.sleep(0.1)
        with pytest.raises(LinkError) as err:
            s.link()
    assert s.diagnosis.kind == "app-running" and "OpenBK" in s.diagnosis.title
    assert "--reset reboot" in err.value.hint


def test_reboot_does_nothing_to_the_stock_app(sim):
    dev, url = sim(scenario="app-running")
    events = []
    with Session(url, baud=115200, reset="reboot", link_timeout=1.5, on_event=events.append) as s:
        with pytest.raises(LinkError):
            s.link()
    assert s.diagnosis.kind == "app-running" and dev.resets == 0
    assert not [e for e in events if isinstance(e, Notice)]  # sim:// has lines: no fallback message
