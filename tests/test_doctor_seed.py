"""The doctor and the forum's user (issue 22 item 7, issue 23 reset habits).

The seed case: a CB2S in an LSPA9-like plug that would not link in-circuit; its button sits on P10 = RX1
(fixture dump bk7231n-lspa9-clone-bl0937-plug.bin). The doctor must name it from the boot log it captured,
judge liveness over a window long enough for a quiet application, tell a weak supply and a held-low RX1
apart, never ask for something "now" once its window is over, and offer `power:GPIOn`.
"""

from __future__ import annotations

import io
import re
import uuid

import pytest
from bkbench.core.errors import BkError
from bkbench.core.link import adapters
from bkbench.core.link.capture import RxCapture
from bkbench.core.link.doctor import LINK_FRAME, QUIET_S, REPLY_FRAME, Diagnosis, LinkDoctor, diagnose
from bkbench.core.link.reset import CHOICES, PRESETS, adapter_note, get_strategy, power_strategy
from bkbench.core.ops.events import LinkAttempt, Notice
from bkbench.core.ports import ADAPTERS, PortInfo
from bkbench.core.session import Session
from bkbench.core.sim.registry import create_device, register, unregister
from bkbench.tui.advice import for_tui
from test_link_gpio import FakeLine

LSPA9 = "bk7231n-lspa9-clone-bl0937-plug.bin"
BUTTON_FROM_LOG = "its boot log puts a button (bt1_pin) on P10 = RX1"


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path, monkeypatch):
    monkeypatch.setenv("BKBENCH_CONFIG_DIR", str(tmp_path / "config"))


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def real_log(fixtures_dir) -> bytes:
    """The recorded LSPA9-like plug's log, with its button moved to P10 as on the seed device."""
    log = (fixtures_dir / "bootlogs" / "bk7231n-lspa9-gray-t34-bl0937.log").read_bytes()
    return log.replace(b"bt1_pin:16", b"bt1_pin:10")


@pytest.fixture
def registered():
    names = []

    def make(**kwargs):
        name = f"seed-{uuid.uuid4().hex[:8]}"
        dev = create_device(**kwargs)
        register(name, dev)
        names.append(name)
        return dev, f"sim://@{name}"

    yield make
    for name in names:
        unregister(name)


def power_switch(dev, name: str = "GPIO27", wired: bool = True):
    """An opener giving fake GPIO lines that cut the simulated module's supply while high (the README's
    P-MOSFET: gate pulled up by the GPIO = off), or drive nothing (unwired)."""
    lines: list[FakeLine] = []

    def opener(line_name: str, level: bool) -> FakeLine:
        assert level is False  # requested at the level that keeps the module powered
        lines.append(FakeLine(line_name, drive=(lambda high: dev.power(not high)) if wired else None))
        return lines[-1]

    return opener, lines


# ---------------------------------------------------------------- the seed device, end to end
def test_seed_names_the_button_on_rx1_from_its_own_boot_log(fixtures_dir):
    url = f"sim://bk7231n?dump={fixtures_dir / 'dumps' / LSPA9}&scenario=rx1-held-low"
    d = diagnose(url, reset="manual", seconds=2)  # no --dump: only what the port showed
    assert d.kind == "app-running"
    assert any(BUTTON_FROM_LOG in a for a in d.advice), d.advice
    assert d.evidence["uart1_pins"] == [BUTTON_FROM_LOG]


def test_seed_power_cycled_by_a_pi_gpio_is_told_that_rx1_is_blocked(fixtures_dir, registered):
    dev, url = registered(dump=fixtures_dir / "dumps" / LSPA9, scenario="rx1-held-low")
    opener, lines = power_switch(dev)
    strategy = power_strategy("power:GPIO27,off=0.2", opener=opener)
    d = diagnose(url, reset=strategy, seconds=2.5)
    assert (d.kind, d.action) == ("rx1-blocked", "free-rx1"), (d.title, d.advice)
    assert d.advice[0].startswith("Its boot log puts a button (bt1_pin) on P10 = RX1: that circuit holds RX1 low")
    assert "desolder the module only as a last resort" in d.advice[3]
    assert dev.resets >= 1 and d.evidence["resets"] >= 1  # the GPIO really cycled the supply
    (t_off, off), (t_on, on) = lines[-1].log[:2]
    assert (off, on) == (True, False) and t_on - t_off >= 0.2  # high cuts the supply, low restores it


def test_power_reset_links_a_running_chip(registered):
    dev, url = registered(scenario="app-running", boot_window=0.3)
    opener, lines = power_switch(dev)
    with Session(url, baud=115200, reset=power_strategy("power:GPIO27,off=0.15", opener=opener),
                 link_timeout=4) as s:
        s.link()
    (t_off, off), (t_on, on) = lines[-1].log[:2]
    assert (off, on) == (True, False) and t_on - t_off >= 0.15
    assert all(line.closed == 1 for line in lines)  # released between cycles: the gate pull-down keeps it on
    assert dev.reset_log[-1] == pytest.approx(t_on, abs=0.02)  # the chip booted when the supply came back
    assert dev.state == "boot"  # and heard the link checks in its boot window


def test_power_cycles_that_change_nothing_are_named(registered):
    dev, url = registered(scenario="app-running")
    opener, _ = power_switch(dev, wired=False)
    d = diagnose(url, reset=power_strategy("power:GPIO27,off=0.1", opener=opener), seconds=2)
    assert d.kind == "app-running" and dev.resets == 0
    text = " ".join(d.advice)
    assert "did not restart it (no new banner)" in text and "off=2" in text and "1 kΩ" in text
    assert "let bkbench reset it" not in text  # not offered what is already in use


# ---------------------------------------------------------------- power:GPIOn as a reset method
def test_power_spec_parsing_and_choices():
    s = get_strategy("power:GPIO27")
    # high cuts the supply (power on = low): a released line leaves the module powered
    assert (s.actuator.power, s.actuator.cen, s.actuator.power_off, s.actuator.power_invert) == ("GPIO27", None, 1.0,
                                                                                                 True)
    assert "cutting the module's supply for 1 s (GPIO27 high)" in s.describe()
    assert s.repeat_every >= 3.0 and not s.manual and s.name == "power:GPIO27"
    inv = get_strategy("power:GPIO5,off=2,invert")
    assert (inv.actuator.power, inv.actuator.power_off, inv.actuator.power_invert) == ("GPIO5", 2.0, False)
    assert inv.repeat_every >= 4.0  # off time plus the boot window before the next cycle
    for bad, msg in (("power:", "needs the GPIO"), ("power:GPIO27,off=9", "between 0.1 and 5"),
                     ("power:GPIO27,off=x", "not a number"), ("power:GPIO27,speed=2", "unknown option"),
                     ("power:off=1", "needs the GPIO")):
        with pytest.raises(BkError, match=msg):
            get_strategy(bad)
    template = next(c for c in CHOICES if c.spec.startswith("power:"))
    assert template.needs_gpio and template.fill(27) == "power:GPIO27" == template.fill("GPIO27")
    assert get_strategy(template.fill(22)).actuator.power == "GPIO22"
    assert {c.spec for c in CHOICES if not c.needs_gpio} <= set(PRESETS)


def test_power_spec_polarity_reaches_the_line():
    lines: list[FakeLine] = []

    def opener(name: str, level: bool) -> FakeLine:
        lines.append(FakeLine(name))
        return lines[-1]

    power_strategy("power:GPIO27,off=0.1", opener=opener).actuator.pulse()
    assert [lvl for _, lvl in lines[-1].log] == [True, False]  # the README's switch: high cuts, low restores
    power_strategy("power:GPIO27,off=0.1,invert", opener=opener).actuator.pulse()
    assert [lvl for _, lvl in lines[-1].log] == [False, True]  # an active-low cut-off


# ---------------------------------------------------------------- evidence over the right window
def test_a_quiet_chip_is_not_called_unwired_before_a_heartbeat_could_come():
    clock = Clock()
    doc = LinkDoctor(PRESETS["manual"], clock=clock)
    clock.t += 2.0
    live = doc.current()
    assert live.kind == "waiting" and live.title.startswith("Nothing on RX yet")
    clock.t += 1.0
    doc.feed(b"[TUYA D][simulated] heart beat, free heap 42000\r\n")
    assert doc.current().kind == "app-running"  # no flip from "check the wiring" to "running"
    quiet = LinkDoctor(PRESETS["manual"], clock=clock)
    clock.t += QUIET_S + 0.5
    assert quiet.current().kind == "silent"  # long enough: nothing at all is a wiring fact


def test_a_heartbeat_the_serial_log_saw_5_s_ago_means_running(real_log):
    clock = Clock()
    cap = RxCapture(clock=clock)
    cap.feed(real_log)
    clock.t += 10
    cap.feed(b"[TUYA D] heart beat, free heap 42000\r\n")
    clock.t += 5
    doc = LinkDoctor(PRESETS["manual"], clock=clock, prior=cap)
    clock.t += 10
    d = doc.current(final=True)  # nothing at all during this check
    assert d.kind == "app-running" and "showed it 15 s ago" in d.title, d.title
    assert d.evidence["serial_log_seconds_ago"] == 15.0
    assert any("its boot log (serial log) puts a button (bt1_pin) on P10 = RX1" in a for a in d.advice)
    assert LinkDoctor(PRESETS["manual"], clock=clock).current(final=True).kind == "silent"  # without it


def test_capture_keeps_the_latest_boot_log_from_its_banner(real_log):
    cap = RxCapture()
    cap.feed(b"old log, json cfg:[,bt1_pin:16,]\r\n" * 10)
    for i in range(0, len(real_log), 50):
        cap.feed(real_log[i : i + 50])
    cap.feed(b"heart beat\r\n" * 500)
    text = cap.text()
    assert text.lstrip().startswith(b"V:BK7231N_1.0.1") and b"bt1_pin:10" in text and b"bt1_pin:16" not in text


# ---------------------------------------------------------------- brown-out and held-low RX1
def banner_at(doc: LinkDoctor, clock: Clock, t: float) -> None:
    clock.t = 100.0 + t
    doc.feed(b"\r\nV:BK7231N_1.0.1\r\nCPSR:000000D3\r\nJ 0x10000\r\n[Flash]id:0xeb6015\r\n")


def test_banner_after_banner_without_a_reset_is_a_brown_out():
    clock = Clock()
    doc = LinkDoctor(PRESETS["auto"], clock=clock)
    doc.sent(LINK_FRAME)
    for t in (0.5, 1.3, 2.1):
        banner_at(doc, clock, t)
    d = doc.current()
    assert (d.kind, d.action) == ("brown-out", "fix-supply") and "3 boot banners" in d.title
    # The same banners, each just after a reset of ours: the chip restarts because bkbench asks it to.
    asked = LinkDoctor(PRESETS["auto"], clock=clock)
    clock.t = 100.0
    asked.sent(LINK_FRAME)
    for t in (0.5, 1.3, 2.1):
        clock.t = 100.0 + t - 0.3
        asked.reset_applied()
        banner_at(asked, clock, t)
    assert asked.current(final=True).kind == "rx1-blocked"


def test_a_restart_while_the_flash_is_busy_is_a_brown_out():
    clock = Clock()
    doc = LinkDoctor(PRESETS["auto"], clock=clock)
    doc.sent(LINK_FRAME)
    doc.feed(REPLY_FRAME)
    doc.link_ok()
    doc.probe_result(30, 30)
    doc.note_error(RuntimeError("no response to command 0x10 within 1.2 s"))
    assert doc.current(final=True).kind == "unstable"  # lost alone: a loaded line does this too
    banner_at(doc, clock, 0.8)
    d = doc.current(final=True)
    assert d.kind == "brown-out" and "while its flash was busy" in d.title


# ---------------------------------------------------------------- advice text
def offline_diagnoses(real_log: bytes) -> list[Diagnosis]:
    """A diagnosis of each kind (and the main variants), final and live, built from bytes alone."""
    out = []
    clock = Clock()

    def doctor(strategy="manual", **kw) -> LinkDoctor:
        clock.t = 100.0
        return LinkDoctor(PRESETS[strategy] if isinstance(strategy, str) else strategy, clock=clock,
                          rerun="bkbench doctor -p /dev/ttyUSB0", rerun_manual="bkbench doctor -p /dev/ttyUSB0 "
                          "--reset manual", adapter=adapters.by_name("pl2303"), **kw)

    for strategy in ("manual", "auto", "reboot"):
        d = doctor(strategy)
        d.sent(LINK_FRAME * 3)
        d.feed(real_log)
        clock.t += 1
        d.reset_applied()
        clock.t += 3
        out += [d.current(), d.current(final=True)]
    obk = doctor("auto")
    obk.feed(b"V:BK7231N_1.0.1\r\nInfo:MAIN:Main_Init_Before_Delay: OpenBK7231N 1.18.219\r\n")
    out.append(obk.current(final=True))
    silent = doctor("auto")
    silent.reset_applied()
    clock.t += 3
    out += [silent.current(), silent.current(final=True)]
    blocked = doctor("dtr-rts")
    blocked.sent(LINK_FRAME)
    blocked.reset_applied()
    clock.t += 0.4
    blocked.feed(real_log)
    out.append(blocked.current(final=True))
    loop = doctor("auto")
    for t in (0.5, 1.3, 2.1):
        banner_at(loop, clock, t)
    out.append(loop.current(final=True))
    unstable = doctor("auto")
    unstable.feed(real_log + REPLY_FRAME)
    unstable.link_ok()
    unstable.probe_result(7, 12)
    out.append(unstable.current(final=True))
    zeros = doctor("manual")
    zeros.feed(bytes(300))
    out.append(zeros.current(final=True))
    echo = doctor("auto")
    echo.sent(LINK_FRAME * 5)
    echo.feed(LINK_FRAME * 5)
    out.append(echo.current(final=True))
    ok = doctor("auto")
    ok.feed(REPLY_FRAME)
    ok.link_ok()
    ok.probe_result(30, 30)
    ok.flash_probe_result(3, 3)
    out.append(ok.current(final=True))
    return out


def phrases(text: str, n: int = 5) -> list[str]:
    words = re.findall(r"[\w.'-]+", text.lower())
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


def test_advice_never_repeats_a_phrase_and_wraps_at_80_columns(real_log):
    diags = offline_diagnoses(real_log)
    assert {d.kind for d in diags} >= {"app-running", "silent", "waiting", "rx1-blocked", "brown-out", "unstable",
                                       "garbage", "echo", "ok"}
    for d in diags:
        for text in (" ".join([d.title, *d.advice]), for_tui(" ".join([d.title, *d.advice]))):
            seen = phrases(text)
            repeated = {p for p in seen if seen.count(p) > 1}
            assert not repeated, (d.kind, repeated)
        wrapped = d.text(80)
        assert all(len(line) <= 80 for line in wrapped.splitlines()), wrapped
        assert wrapped.split() == d.text().replace("  - ", "- ").split()  # wrapped, not a word cut or lost


def test_final_advice_asks_nothing_of_the_moment_that_is_gone(real_log):
    finals = [d for d in offline_diagnoses(real_log) if d.evidence.get("final")]
    assert len(finals) >= 9
    for d in finals:
        text = " ".join(d.advice)
        assert not re.search(r"\bnow\b|while bkbench is linking", text), text
        if d.kind not in ("ok", "echo"):
            assert "bkbench doctor -p /dev/ttyUSB0" in text  # the command that repeats the check
    live = [d for d in offline_diagnoses(real_log) if not d.evidence.get("final") and d.kind == "app-running"]
    assert live and all("Reset it now" in " ".join(d.advice) for d in live)  # while it runs, "now" is right


def test_the_pl2303_cable_is_named_when_dtr_rts_resets_do_nothing(real_log):
    d = offline_diagnoses(real_log)[3]  # auto, final
    assert d.kind == "app-running"
    assert "(PL2303: a 4-wire PL2303 cable has no DTR or RTS wire to put on CEN)" in d.advice[0]
    assert any("power:GPIO27" in a for a in d.advice)  # the forum's power-cycle, automated


def test_workbench_phrasing_names_keys_not_commands(real_log):
    texts = [for_tui(a) for d in offline_diagnoses(real_log) for a in d.advice]
    assert any(t.startswith("Set Reset to manual in the Ports pane (1), press o") for t in texts)
    assert any(t.startswith("Press o again") for t in texts)
    assert not [t for t in texts if "bkbench doctor" in t or "--reset manual" in t]


def test_cli_prints_the_finding_once_and_wraps(monkeypatch):
    from bkbench.core.cli.render import PlainRenderer

    monkeypatch.setenv("COLUMNS", "80")
    out = io.StringIO()
    r = PlainRenderer(stream=out)
    hint = ("The chip is running a Tuya application (its log is readable at 115200): the bootloader's short "
            "window after a reset was missed. Reset it now, by hand: short CEN to GND.")
    for t in (0.3, 2.4, 4.5, 6.6):
        r(LinkAttempt(int(t * 20), t, hint))
    text = out.getvalue()
    assert text.count("Tuya application") == 1 and text.count("linking...") == 3  # every 2 s
    assert all(len(line) <= 80 for line in text.splitlines())


# ---------------------------------------------------------------- adapter families (issue 23, reset habits)
def test_families_are_data_with_sources():
    assert ADAPTERS[(0x1A86, 0x7523)] == "CH340" and ADAPTERS[(0x10C4, 0xEA60)] == "CP210x"
    assert ADAPTERS[(0x1A86, 0x5523)] == "CH341" and ADAPTERS[(0x0403, 0x6010)] == "FT2232"
    assert set(ADAPTERS) == {vp for f in adapters.FAMILIES.values() for vp in f.ids}
    for fam in adapters.FAMILIES.values():
        habits = fam.vendor
        assert habits.sources and habits.wiring and habits.modem_lines and habits.open_habit
    assert adapters.by_name("cp2102").vendor.key == "cp210x" and adapters.by_name("FT232R").vendor.key == "ftdi"
    assert adapters.by_name("ch340").vendor.key == "ch34x" and adapters.by_name("pl2303").vendor.key == "pl2303"
    # a vendor name gives the family family_for assumes without a product string
    assert adapters.by_name("cp210x").key == "cp2102" and adapters.by_name("ftdi").key == "ft232r"
    assert adapters.by_name("CH9102").key == "ch343" and adapters.by_name("nonesuch") is None
    ports = [PortInfo("/dev/ttyUSB1", "CP2102 USB to UART", "CP210x", 0x10C4, 0xEA60),
             PortInfo("/dev/ttyUSB0", "USB Serial", "CH340", 0x1A86, 0x7523)]
    assert adapters.family_for_url("/dev/ttyUSB1", ports).key == "cp2102"  # the product string tells the chip
    assert adapters.family_for_url("/dev/ttyUSB1", ports).vendor.key == "cp210x"
    assert adapters.family_for_url("/dev/ttyUSB9", ports) is None
    assert adapters.family_for_url("sim://bk7231n?adapter=ft232r").vendor.name == "FTDI"
    assert adapters.family_for_url("rfc2217://pi:3333") is None


def test_cp210x_habit_is_said_where_it_matters():
    cp = adapters.by_name("cp2102")
    note = adapter_note(PRESETS["auto"], cp)
    assert "CP2102 boards drive RTS low when the port opens" in note and "bkbench releases it at once" in note
    assert adapter_note(PRESETS["manual"], cp) == ""  # no line on CEN, nothing held
    assert adapter_note(PRESETS["auto"], adapters.by_name("ft232r")) == ""
    events = []
    diagnose("sim://bk7231n?scenario=bootloader&adapter=cp2102", seconds=1, sink=events.append)
    assert any(isinstance(e, Notice) and "CP210x adapter: CP2102 boards" in e.message for e in events)
    events.clear()
    with Session("sim://bk7231n?scenario=bootloader&adapter=cp2102", baud=115200, on_event=events.append) as s:
        s.link()  # every link says it, not only the doctor
    assert [e.level for e in events if isinstance(e, Notice) and "CP2102 boards" in e.message] == ["info"]


def test_cli_doctor_output_fits_80_columns(monkeypatch, capsys):
    from bkbench.core.cli.main import main

    monkeypatch.setenv("COLUMNS", "80")
    rc = main(["doctor", "--port", "sim://bk7231n?scenario=app-running&adapter=pl2303", "--seconds", "1.5"])
    out = capsys.readouterr().out
    assert rc == 2 and "    " in out  # advice continues on indented lines
    assert all(len(line) <= 80 for line in out.splitlines()), out
    assert "4-wire PL2303 cable" in " ".join(out.split()) and "power:GPIO27" in out
