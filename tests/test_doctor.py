"""Link doctor: the classifier on real boot-log text, and every simulator scenario via API, CLI and pty."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from bkbench.core.cli.main import main
from bkbench.core.link.doctor import (
    KINDS,
    LINK_FRAME,
    REPLY_FRAME,
    Diagnosis,
    LinkDoctor,
    PortTap,
    diagnose,
    uart_pins_from_dump,
)
from bkbench.core.link.reset import PRESETS
from bkbench.core.ops.events import LinkAttempt, Notice

# scenario (sim:// query) -> (kind, action, words the final advice must contain)
EXPECTED = {
    "bootloader": ("ok", "none", ["bkbench read"]),
    "silent": ("silent", "check-wiring", ["TX", "RX1 (P10)", "GND", "3.3 V", "powered"]),
    "app-running": ("app-running", "reset-now", ["did not restart it", "--reset manual", "power:GPIO27"]),
    "loaded-rx": ("unstable", "isolate-uart-pins", ["RX1/TX1", "button", "Isolate", "desolder"]),
    "wrong-baud": ("garbage", "check-baud-noise", ["baud", "GND"]),
    "zero-flash": ("zero-flash", "check-straps", ["strap", "3.3 V"]),
    "echo": ("echo", "fix-tx-rx-short", ["shorted", "RX1 (P10)"]),
    "brown-out": ("brown-out", "fix-supply", ["own 3.3 V supply", "Join the GNDs", "300 mA", "never connect mains"]),
    "rx1-held-low&wiring=rts": ("rx1-blocked", "free-rx1", ["Measure P10", "last resort", "TX"]),
}


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path, monkeypatch):
    monkeypatch.setenv("BKBENCH_CONFIG_DIR", str(tmp_path / "config"))


def _check(diag_kind: str, action: str, advice: list[str], scenario: str) -> None:
    kind, want_action, words = EXPECTED[scenario]
    assert (diag_kind, action) == (kind, want_action), advice
    text = " ".join(advice)
    for word in words:
        assert word in text, (word, text)


# ---------------------------------------------------------------- classifier units
@pytest.fixture
def boot_log(fixtures_dir) -> bytes:
    return (fixtures_dir / "bootlogs" / "bk7231n-lspa9-gray-t34-bl0937.log").read_bytes()


def test_real_boot_log_is_an_application_running(boot_log):
    doc = LinkDoctor(PRESETS["manual"])
    doc.sent(LINK_FRAME * 20)
    for i in range(0, len(boot_log), 97):  # arrives in pieces, as from a port
        doc.feed(boot_log[i : i + 97])
    d = doc.current(final=True)
    assert d.kind == "app-running" and d.action == "reset-now"
    assert d.evidence["boot_log"]["bootloader"] == "BK7231N_1.0.1"
    assert d.evidence["boot_log"]["app"] == "oem_bk7231n_control_switch"
    assert "CEN to GND" in d.advice[0] and "again" in d.advice[0]  # manual: exactly what to do, after the window
    assert "CEN to GND" in doc.current().advice[0] and "now" in doc.current().advice[0]  # ... and while it runs
    assert "uart1_pins" not in d.evidence  # this device's json cfg keeps P10/P11 free (bt1_pin:16)
    assert "dev id key" not in json.dumps(d.to_json())  # no raw log (keys) in the evidence


def test_json_cfg_with_button_on_rx1_is_named(boot_log):
    log = boot_log.replace(b"bt1_pin:16", b"bt1_pin:10")
    doc = LinkDoctor(PRESETS["dtr-rts"])
    doc.feed(log)
    assert "its boot log puts a button (bt1_pin) on P10 = RX1" in doc.current().advice[-1]
    # The same device later answers only sometimes: the note leads the advice.
    doc.link_ok()
    doc.probe_result(7, 12)
    d = doc.current(final=True)
    assert d.kind == "unstable" and "7 of 12" in d.title
    assert "a button (bt1_pin) on P10 = RX1" in d.advice[0]


def test_dump_pin_notes(fixtures_dir):
    dumps = fixtures_dir / "dumps"
    assert uart_pins_from_dump(dumps / "bk7231n-lspa9-clone-bl0937-plug.bin") == [
        "its backup puts a button (bt1_pin) on P10 = RX1"]
    assert any("TuyaMCU" in n for n in uart_pins_from_dump(dumps / "bk7231n-elegrp-dpr10-tuyamcu-dimmer.bin"))
    assert uart_pins_from_dump(dumps / "bk7231n-ap-smt-breaker02-relay.bin") == []


def test_classifier_edges():
    doc = LinkDoctor()
    assert doc.current().kind == "waiting"  # nothing yet, too early to call it silent
    assert doc.current(final=True).kind == "silent"
    echo = LinkDoctor()
    echo.sent(LINK_FRAME * 4)
    echo.feed(LINK_FRAME[:3])
    echo.feed(LINK_FRAME[3:] + LINK_FRAME * 3)  # a frame split across reads still counts
    assert echo.echo_frames == 4 and echo.current().kind == "echo"
    replies = LinkDoctor()
    replies.feed(REPLY_FRAME * 5)  # replies end with the LinkCheck bytes: not an echo
    assert replies.echo_frames == 0 and replies.reply_frames == 5
    assert replies.current().kind == "waiting" and replies.current(final=True).kind == "ok"
    mangled = LinkDoctor()
    mangled.feed(bytes.fromhex("040E0501E0FC0137") * 3 + b"\xf8\x80" * 20)
    assert mangled.current(final=True).kind == "unstable"
    zeros = LinkDoctor()
    zeros.feed(bytes(200))
    d = zeros.current(final=True)
    assert d.kind == "garbage" and "held low" in d.advice[0]
    lost = LinkDoctor()
    lost.feed(REPLY_FRAME)
    lost.link_ok()
    lost.note_error(RuntimeError("no response to command 0x10 within 1.0 s"))
    assert lost.current(final=True).kind == "unstable"
    assert set(EXPECTED[s][0] for s in EXPECTED) | {"waiting"} == set(KINDS)


def test_port_tap_passes_everything_through():
    class Port:
        baudrate = 115200
        dtr = True
        in_waiting = 3

        def read(self, n):
            return b"abc"

        def write(self, data):
            return len(data)

    port, doc = Port(), LinkDoctor()
    tap = PortTap(port, doc)
    tap.baudrate = 921600
    tap.dtr = False
    assert (port.baudrate, port.dtr, tap.in_waiting) == (921600, False, 3)
    assert tap.read(3) == b"abc" and tap.write(LINK_FRAME) == 5
    assert doc.rx_total == 3 and doc.sent_frames == 1


def seconds_for(scenario: str) -> float:
    # A reset at 0.3 s, the boot window and the banner must fit in the window with a margin for a busy machine.
    return 2.5 if "wiring=rts" in scenario else 1.5


# ---------------------------------------------------------------- scenarios: Python API
@pytest.mark.parametrize("scenario", list(EXPECTED))
def test_scenario_api(scenario):
    events = []
    d = diagnose(f"sim://bk7231n?scenario={scenario}", reset="auto", seconds=seconds_for(scenario),
                 sink=events.append)
    assert isinstance(d, Diagnosis)
    _check(d.kind, d.action, d.advice, scenario)
    assert d.evidence["reset_method"] == "auto"
    hints = [e.hint for e in events if isinstance(e, LinkAttempt)]
    if scenario == "wrong-baud":
        assert hints and hints[-1].startswith(d.title)  # the live hint already said it
    elif scenario == "app-running":
        assert hints and all(h.startswith("The chip is running a Tuya application") for h in hints)
    elif scenario == "silent":  # 1.5 s cannot tell a quiet application from a dead line: it says so live
        assert hints and all(h.startswith(("Waiting", "Nothing on RX yet")) for h in hints)
        assert any("listen longer" in a for a in d.advice)
    if d.kind != "ok":  # the window is over: nothing may be asked to happen "now" or "while bkbench is linking"
        text = " ".join(d.advice)
        assert " now" not in text and "while bkbench is linking" not in text, text


def test_loaded_rx_with_the_devices_dump_names_the_button(fixtures_dir):
    dump = fixtures_dir / "dumps" / "bk7231n-lspa9-clone-bl0937-plug.bin"
    d = diagnose("sim://bk7231n?scenario=loaded-rx", seconds=2, dump=dump)
    assert d.kind == "unstable" and "its backup puts a button (bt1_pin) on P10 = RX1" in d.advice[0]


# ---------------------------------------------------------------- scenarios: CLI
@pytest.mark.parametrize("scenario", list(EXPECTED))
def test_scenario_cli_json(scenario, capsys):
    rc = main(["doctor", "--port", f"sim://bk7231n?scenario={scenario}", "--seconds", str(seconds_for(scenario)),
               "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == (0 if scenario == "bootloader" else 2)
    assert out["ok"] is (scenario == "bootloader")
    _check(out["kind"], out["action"], out["advice"], scenario)


def test_cli_human_output(capsys):
    rc = main(["doctor", "--port", "sim://bk7231n?scenario=echo", "--seconds", "2"])
    out = capsys.readouterr().out
    assert rc == 2 and out.startswith("Every byte bkbench sends comes straight back") and "  - TX and RX" in out


@pytest.mark.parametrize("command", ["info", "read"])
def test_link_failure_prints_the_diagnosis(command, capsys, tmp_path):
    rc = main([command, "--port", "sim://bk7231n?scenario=app-running", "--timeout", "1", "--baud", "115200",
               *(["--output", str(tmp_path / "x.bin")] if command == "read" else [])])
    err = capsys.readouterr().err
    assert rc == 1
    assert "error: no answer to the link check within 1 s: The chip is running a Tuya application" in err
    assert "by the DTR/RTS sequence R1|D1|W0.1|D0|W0.1|R0 did not restart it" in err
    assert "Run the command again" in err and "while bkbench is linking" not in err


# ---------------------------------------------------------------- scenarios: pty bridge
@pytest.fixture
def simulate():
    procs = []

    def start(scenario: str) -> str:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bkbench.core.cli.main", "simulate", "--scenario", scenario],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(proc)
        start.procs = procs
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/"), path
        return path

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.parametrize("scenario", [s for s in EXPECTED if "&" not in s and s != "brown-out"])
def test_scenario_pty(scenario, simulate):
    path = simulate(scenario)
    events = []
    d = diagnose(path, reset="auto", seconds=2.5, sink=events.append)
    if scenario == "app-running":
        # A pty has no DTR/RTS: the user is told to reset by hand instead of naming the DTR/RTS sequence.
        assert (d.kind, d.action) == ("app-running", "reset-now") and "CEN to GND" in d.advice[0]
        assert "power:GPIO27" in d.advice[1]  # and offered a reset bkbench can do itself
    else:
        _check(d.kind, d.action, d.advice, scenario)
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert len(notices) == 1 and "cannot drive DTR/RTS" in notices[0]


def test_pty_cli(simulate, capsys):
    path = simulate("echo")
    rc = main(["doctor", "--port", path, "--seconds", "2", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 2 and out["kind"] == "echo" and out["evidence"]["reset_method"].startswith("auto")


def test_seed_over_a_pty_reset_by_hand_is_told_rx1_is_blocked(simulate, fixtures_dir):
    """The forum user's flow: `bkbench simulate --scenario rx1-held-low` (the LSPA9-like plug, its button on
    P10), `bkbench doctor --reset manual`, and a hand reset (SIGUSR1 = key r) while it links."""
    import os
    import signal
    import threading

    path = simulate("rx1-held-low")
    proc = simulate.procs[-1]
    timer = threading.Timer(1.2, lambda: os.kill(proc.pid, signal.SIGUSR1))
    timer.start()
    try:
        d = diagnose(path, reset="manual", seconds=3)
    finally:
        timer.cancel()
    assert (d.kind, d.action) == ("rx1-blocked", "free-rx1"), (d.title, d.evidence)
    assert d.advice[0].startswith("Its boot log puts a button (bt1_pin) on P10 = RX1")
    assert "--reset manual" in d.advice[-1] and "again" in d.advice[-1]
