"""GPIO reset with injected fake lines (no gpiod needed): pulse timing, polarity, power line, sim CEN."""

from __future__ import annotations

import sys
import time
import uuid

import pytest
from bkbench.core.errors import BkError
from bkbench.core.link.gpio import GPIOD_MISSING, GpioReset, find_line, open_line, parse_gpio_spec
from bkbench.core.link.reset import ResetStrategy, get_strategy
from bkbench.core.session import Session
from bkbench.core.sim.registry import create_device, register, unregister


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path, monkeypatch):
    monkeypatch.setenv("BKBENCH_CONFIG_DIR", str(tmp_path / "config"))


class FakeLine:
    """Records (time, level) of every set(); optionally drives something (the sim's CEN or power)."""

    def __init__(self, name: str = "GPIO17", drive=None) -> None:
        self.name = name
        self.drive = drive
        self.log: list[tuple[float, bool]] = []
        self.closed = 0

    def set(self, level: bool) -> None:
        self.log.append((time.monotonic(), level))
        if self.drive is not None:
            self.drive(level)

    def close(self) -> None:
        self.closed += 1


def test_cen_pulse_timing_direct_wiring():
    line = FakeLine()
    GpioReset(line, pulse=0.08).pulse()
    (t0, lvl0), (t1, lvl1) = line.log
    assert (lvl0, lvl1) == (False, True)  # driven low (reset), released high
    assert 0.075 <= t1 - t0 <= 0.15
    assert line.closed == 0  # injected lines belong to the caller


def test_cen_pulse_inverted_for_a_transistor():
    line = FakeLine()
    GpioReset(line, pulse=0.03, cen_invert=True).pulse()
    assert [lvl for _, lvl in line.log] == [True, False]


def test_power_line_cycles_every_third_round_and_alone():
    cen, power = FakeLine("GPIO17"), FakeLine("GPIO27")
    reset = GpioReset(cen, power, pulse=0.01, power_off=0.05, power_every=3)
    for _ in range(3):
        reset.pulse()
    assert len(cen.log) == 4  # rounds 1 and 2 pulse CEN
    (t0, off), (t1, on) = power.log  # round 3 cycles power
    assert (off, on) == (False, True) and 0.045 <= t1 - t0 <= 0.12
    only_power = FakeLine("GPIO27")
    GpioReset(None, only_power, power_off=0.02, power_invert=True).pulse()
    assert [lvl for _, lvl in only_power.log] == [True, False]  # P-MOSFET: high = off


def test_named_lines_are_opened_per_pulse_and_released():
    opened: list[tuple[str, bool]] = []
    lines: list[FakeLine] = []

    def opener(name: str, level: bool) -> FakeLine:
        opened.append((name, level))
        lines.append(FakeLine(name))
        return lines[-1]

    reset = GpioReset("GPIO17", pulse=0.01, opener=opener)
    reset.check()
    reset.pulse()
    assert opened == [("GPIO17", True), ("GPIO17", True)]  # requested at the released level
    assert all(line.closed == 1 for line in lines)
    assert [lvl for _, lvl in lines[1].log] == [False, True]


def test_parse_gpio_spec():
    spec = parse_gpio_spec("gpio:GPIO17,power=GPIO27,invert,pulse=0.3")
    assert (spec.cen, spec.power, spec.cen_invert, spec.pulse) == ("GPIO17", "GPIO27", True, 0.3)
    assert parse_gpio_spec("gpio:power=GPIO5").cen is None
    for bad, msg in (("gpio:", "needs a line"), ("gpio:GPIO17,pulse=x", "not a number"),
                     ("gpio:GPIO17,pulse=9", "between"), ("gpio:GPIO17,speed=3", "unknown option")):
        with pytest.raises(BkError, match=msg):
            parse_gpio_spec(bad)


def test_missing_gpiod_gives_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gpiod", None)  # import gpiod -> ImportError
    with pytest.raises(BkError) as err:
        open_line("GPIO17", True)
    assert str(err.value) == GPIOD_MISSING and "bkbench[gpio]" in GPIOD_MISSING
    strategy = get_strategy("gpio:GPIO17")  # parsing never needs gpiod
    with pytest.raises(BkError, match="gpiod"):
        strategy.check()
    assert find_line("gpiochip4:17") == ("/dev/gpiochip4", 17)  # explicit chip:offset needs no lookup


@pytest.fixture
def app_chip():
    name = f"gpio-{uuid.uuid4().hex[:8]}"
    dev = create_device(scenario="app-running", wiring="none", boot_window=0.1)
    register(name, dev)
    yield dev, f"sim://@{name}"
    unregister(name)


def test_gpio_on_cen_resets_the_simulated_chip(app_chip):
    dev, url = app_chip
    line = FakeLine(drive=lambda level: dev.set_cen(level))  # GPIO straight to CEN
    strategy = ResetStrategy("gpio", actuator=GpioReset(line, pulse=0.05))
    with Session(url, baud=115200, reset=strategy, link_timeout=2) as s:
        s.link()
    (t0, low), (t1, high) = line.log[:2]
    assert (low, high) == (False, True) and t1 - t0 >= 0.05
    assert dev.reset_log[-1] == pytest.approx(t1, abs=0.01)  # the chip booted on the release


def test_gpio_with_wrong_polarity_never_releases_cen(app_chip):
    dev, url = app_chip
    # Wired through a transistor (GPIO high = CEN low) but configured as direct: CEN stays low afterwards.
    line = FakeLine(drive=lambda level: dev.set_cen(not level))
    strategy = ResetStrategy("gpio", actuator=GpioReset(line, pulse=0.05))
    with Session(url, baud=115200, reset=strategy, link_timeout=1) as s:
        with pytest.raises(BkError):
            s.link()
    assert dev.cen_low and dev.resets == 0
    assert s.diagnosis.kind in ("silent", "app-running")
