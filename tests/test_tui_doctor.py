"""Pilot tests: Connect shows the link doctor (core.link.doctor) live and after a failure; the Doctor action;
the reset-method field goes to Session(reset=...). All at 80x24 against the simulated demo chip."""

from __future__ import annotations

import time
from pathlib import Path

from bkbench.tui.app import BkBenchApp
from test_tui_app import settle, sync
from textual.widgets import Select


def demo_device(scenario: str, wiring: str) -> str:
    """The demo chip (the default BK7231N dump) in a given link scenario; returns its URL.

    A query URL, so the chip is created (and starts its boot log) when Connect opens the port: a chip
    created earlier may have finished its log before a slow machine opens the port."""
    return f"sim://bk7231n?scenario={scenario}&wiring={wiring}"


def make_app(url: str, data_dir: Path, reset: str = "auto", keep_trying: bool = True) -> BkBenchApp:
    return BkBenchApp(url=url, data_dir=data_dir, ports_source=lambda: [], monitor=False, poll_ports=0,
                      reset=reset, link_timeout=2.5, doctor_seconds=2.0, keep_trying=keep_trying)


def shown_diagnosis(app: BkBenchApp) -> str:
    """The diagnosis text as drawn, and only if its widget is really on screen."""
    hint = app.op_pane.query_one("#op-hint")
    assert app.op_pane.diagnosis_shown and hint.region.height > 0 and hint.region.width > 0
    return str(hint.render())


@sync
async def test_connect_app_running_without_reset_wiring_shows_the_diagnosis(tmp_path: Path):
    app = make_app(demo_device("app-running", "none"), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("c")
        # live: the current diagnosis with an attempt counter while the link check runs
        end = time.monotonic() + 10
        live = ""
        while app.busy and time.monotonic() < end:
            await pilot.pause(0.1)
            if app.op_pane.diagnosis is not None and not app.op_pane.diagnosis_final and "attempt" in live:
                break
            if app.op_pane.diagnosis_shown:
                live = str(app.op_pane.query_one("#op-hint").render())
        assert "Link doctor (live): link attempt" in live
        assert "reset: DTR/RTS sequence" in live  # names the configured reset method
        await settle(app, pilot)
        assert app.last_outcome[0] == "failed" and app.session is None
        diag = app.op_pane.diagnosis
        assert diag.kind == "app-running" and app.op_pane.diagnosis_final
        text = shown_diagnosis(app)
        assert diag.title in text.replace("\n", " ") or diag.title[:40] in text
        assert "running a Tuya application" in text  # the demo dump runs stock Tuya firmware
        assert text.count(" • ") == len(diag.advice) >= 2  # every piece of advice, as a list
        assert "DTR/RTS is probably not wired to CEN" in text
        # the message itself stays one sentence; the advice is not repeated in the title
        assert "Reset it now" not in app.last_outcome[1]


@sync
async def test_connect_silent_chip_says_check_wiring(tmp_path: Path):
    app = make_app(demo_device("silent", "none"), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("c")
        await settle(app, pilot)
        assert app.last_outcome[0] == "failed"
        assert app.op_pane.diagnosis.kind == "silent"
        text = shown_diagnosis(app)
        assert "Nothing at all arrived on RX in 3 s." in text
        assert "swap TX and RX" in text and "GND" in text
        assert "Press c again after each change." in text  # after the window: the key that repeats it


@sync
async def test_manual_reset_shows_what_to_do_with_a_live_counter(tmp_path: Path):
    # "keep trying" off: the link gives up after link_timeout and the final diagnosis stays
    app = make_app(demo_device("app-running", "none"), tmp_path, reset="manual", keep_trying=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("c")
        seen: list[str] = []
        end = time.monotonic() + 10
        while app.busy and time.monotonic() < end:
            await pilot.pause(0.15)
            if app.op_pane.diagnosis_shown and not app.op_pane.diagnosis_final:
                seen.append(str(app.op_pane.query_one("#op-hint").render()))
        assert any("short CEN to GND" in t for t in seen)
        counts = {t.split("link attempt ", 1)[1].split(" ", 1)[0] for t in seen if "link attempt " in t}
        assert len(counts) >= 2  # the counter moves while the user is asked to reset
        await settle(app, pilot)
        assert app.op_pane.diagnosis.kind == "app-running"
        assert "short CEN to GND" in shown_diagnosis(app)


@sync
async def test_reset_method_field_reaches_the_session_and_connects(tmp_path: Path):
    # The chip resets only through RTS (wired to CEN); reset "manual" cannot link, dtr-rts can.
    app = make_app(demo_device("app-running", "rts"), tmp_path, reset="manual")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("1")
        choice = app.query_one("#reset", Select)
        choice.focus()
        await pilot.press("enter")  # opens the list of methods
        await pilot.pause(0.1)
        methods = [value for _, value in choice._options]
        steps = methods.index("dtr-rts") - methods.index("manual")  # from the highlighted current one
        await pilot.press(*(["down"] * steps if steps > 0 else ["up"] * -steps), "enter")
        await pilot.pause(0.1)
        assert app.reset == "dtr-rts"
        app.query_one("#ports-table").focus()
        await pilot.press("c")
        await settle(app, pilot)
        assert app.last_outcome[0] == "ok", app.last_outcome
        assert app.session is not None and app.session.reset.name == "dtr-rts"
        assert "BK7231N" in app.sub_title
        assert not app.op_pane.diagnosis_shown  # a good link leaves no diagnosis behind


@sync
async def test_bad_reset_spec_fails_with_a_clear_message(tmp_path: Path):
    app = make_app(demo_device("bootloader", "none"), tmp_path, reset="R1|W0.1")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("c")
        await settle(app, pilot)
        assert app.last_outcome[0] == "failed"
        assert "RTS asserted" in app.last_outcome[1]


@sync
async def test_doctor_action_key_and_palette(tmp_path: Path):
    app = make_app(demo_device("app-running", "none"), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("o")
        await settle(app, pilot)
        assert app.op_pane.diagnosis.kind == "app-running"
        assert "Doctor: app-running" in app.last_outcome[1]
        assert app.last_outcome[0] == "failed"  # a diagnosis that found a problem is no "Doctor ok"
        assert "running a Tuya application" in shown_diagnosis(app)
        assert "running a Tuya application" not in app.last_outcome[1]  # said once, in the diagnosis
        logged = [t.split("): ", 1)[1] for t in app.op_pane.event_log.texts if " link attempt " in t]
        assert logged and len(logged) == len(set(logged))  # each finding once, however its advice changes
    app = make_app(demo_device("bootloader", "none"), tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"link doctor")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.op_pane.diagnosis.kind == "ok"
        assert "The link works" in shown_diagnosis(app)
        # wide layout: the Operation pane takes the log's place while the diagnosis is shown; 2 brings it back
        assert app.screen.has_class("-diag") and app.query_one("#pane-op").region.width > 100
        await pilot.press("2")
        await pilot.pause(0.2)
        assert not app.screen.has_class("-diag") and app.query_one("#pane-log").region.height > 0


@sync
async def test_doctor_uses_what_the_serial_log_already_showed(fixtures_dir: Path, tmp_path: Path):
    """The seed plug (button on P10 = RX1, RX1 held low) runs its application; the serial log showed its boot
    log before o was pressed, so the doctor names the button and does not call a quiet chip unwired."""
    import uuid

    from bkbench.core.sim.registry import create_device, register, unregister

    name = f"seed-{uuid.uuid4().hex[:8]}"
    dev = create_device(dump=fixtures_dir / "dumps" / "bk7231n-lspa9-clone-bl0937-plug.bin", scenario="rx1-held-low")
    register(name, dev)
    app = BkBenchApp(url=f"sim://@{name}", data_dir=tmp_path, ports_source=lambda: [], monitor=True, poll_ports=0,
                     reset="manual", doctor_seconds=1.5)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            end = time.monotonic() + 10
            while time.monotonic() < end and app.rx_capture is None:
                await pilot.pause(0.1)
            dev.reset()  # the user power-cycles the plug while watching the log: it boots and prints its log
            while time.monotonic() < end and b"json cfg" not in app.rx_capture.text():
                await pilot.pause(0.1)
            await pilot.pause(0.6)  # the rest of the log: the doctor's own window hears at most a heartbeat
            await pilot.press("o")
            await settle(app, pilot)
            diag = app.op_pane.diagnosis
            assert diag.kind == "app-running", diag.evidence
            assert "boot_log" not in diag.evidence  # its own window heard no boot log
            text = " ".join(shown_diagnosis(app).split())
            assert "its boot log (serial log) puts a button (bt1_pin) on P10 = RX1" in text
            assert "Press o again" in text and "bkbench doctor" not in text
    finally:
        unregister(name)
