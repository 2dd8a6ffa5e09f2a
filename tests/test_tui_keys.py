"""Pilot tests: the keyboard never traps (Escape leaves every field, fields commit on blur, `?` help, the
footer), getting the bus with a manual reset that keeps trying, and the flows that used to surprise
(resumed and duplicate backups, the quit dialog, the operation pane after a connect)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from bkbench.core.ops.events import SectorState
from bkbench.core.sim import registry
from bkbench.tui.app import BkBenchApp, quit_text
from bkbench.tui.screens.confirm import ConfirmScreen
from bkbench.tui.screens.keys import KeysScreen
from test_tui_app import FAKE_PORTS, SIZES, make_app, make_device, settle, sync
from textual.widgets import Checkbox, Input, Select


def footer_keys(app: BkBenchApp) -> list[str]:
    """Keys whose footer entry is drawn entirely inside the screen."""
    width = app.size.width
    out = []
    for fk in app.screen.query("FooterKey"):
        r = fk.region
        if r.width > 0 and r.x + r.width <= width:
            out.append(fk.key)
    return out


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@sync
async def test_footer_shows_what_applies_now(size, fixtures_dir: Path, tmp_path: Path):
    name, dev = make_device(fixtures_dir)
    app = make_app(name, tmp_path)
    async with app.run_test(size=size) as pilot:
        end = time.monotonic() + 5
        while not footer_keys(app) and time.monotonic() < end:
            await pilot.pause(0.1)
        keys = footer_keys(app)
        for k in ("c", "o", "b", "w", "e", "l", "question_mark"):
            assert k in keys, (k, keys)
        assert "x" not in keys and "d" not in keys  # nothing to cancel, no session to release
        status = str(app.query_one("#statusline").render()) if app.narrow else str(
            app.op_pane.query_one("#op-title").render())
        assert "Not connected" in status and "c connect" in status.replace("Press c to connect", "c connect")
        await pilot.press("c")
        await settle(app, pilot)
        await pilot.pause(0.3)
        keys = footer_keys(app)
        assert "d" in keys and "c" not in keys and "v" not in keys and "o" not in keys
        # a connect leaves no 0 % bar, no Cancel button and no stale stage text behind
        op = app.op_pane
        assert not op.has_class("-bar") and not op.has_class("-running")
        assert op.query_one("#op-bar-row").display is False or op.query_one("#op-bar-row").region.height == 0
        assert str(op.query_one("#op-stage").render()).strip() == ""
        await pilot.press("b")
        await settle(app, pilot)
        await pilot.pause(0.3)
        keys = footer_keys(app)
        assert "v" in keys and "a" in keys and "question_mark" in keys  # a backup exists now; all fit


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@sync
async def test_escape_leaves_every_field_and_keys_work_again(size, fixtures_dir: Path, tmp_path: Path):
    name, dev = make_device(fixtures_dir)
    app = make_app(name, tmp_path)
    async with app.run_test(size=size) as pilot:
        await pilot.press("1")
        for wid, kind in (("port-url", Input), ("reset", Select), ("baud", Select), ("keep-trying", Checkbox)):
            field = app.query_one(f"#{wid}", kind)
            field.focus()
            await pilot.pause(0.05)
            await pilot.press("escape")
            await pilot.pause(0.05)
            assert not isinstance(app.focused, (Input, Select, Checkbox)), wid
            await pilot.press("question_mark")  # a hotkey works right after leaving the field
            await pilot.pause(0.1)
            assert isinstance(app.screen, KeysScreen), wid
            await pilot.press("escape")
            await pilot.pause(0.1)
            assert not isinstance(app.screen, KeysScreen)


@sync
async def test_help_screen_and_palette_keys_close_with_escape(fixtures_dir: Path, tmp_path: Path):
    name, dev = make_device(fixtures_dir)
    app = make_app(name, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause(0.1)
        assert isinstance(app.screen, KeysScreen)
        text = app.screen.text
        for needle in ("connect", "Escape", "latest OpenBK", "ctrl+q"):
            assert needle in text
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, KeysScreen)
        # the palette's Keys entry opens the same screen; its Screenshot saves into the logs folder
        titles = {c.title: c for c in app.get_system_commands(app.screen)}
        titles["Keys"].callback()
        await pilot.pause(0.1)
        assert isinstance(app.screen, KeysScreen)
        await pilot.press("escape")
        await pilot.pause(0.1)
        app.take_screenshot()
        assert list(app.logs_dir.glob("*.svg"))


@sync
async def test_url_typed_without_enter_is_the_one_connect_uses(fixtures_dir: Path, tmp_path: Path):
    name, dev = make_device(fixtures_dir)
    app = BkBenchApp(url="/dev/ttyUSB0", data_dir=tmp_path, ports_source=lambda: FAKE_PORTS, monitor=False,
                     poll_ports=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("1")
        field = app.query_one("#port-url", Input)
        field.focus()
        field.value = ""
        await pilot.press(*f"sim://@{name}")
        await pilot.press("escape")  # no Enter
        await pilot.press("c")
        await settle(app, pilot)
        assert app.url == f"sim://@{name}"
        assert app.last_outcome[0] == "ok", app.last_outcome
        assert app.session is not None and "BK7231N" in app.sub_title


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@sync
async def test_manual_reset_keeps_trying_until_the_chip_is_reset(size, tmp_path: Path):
    """No reset wiring, Reset: manual: the link does not give up after link_timeout; it shows a live
    counter and RX activity, and links as soon as the person resets the chip."""
    from bkbench.core.sim.timing import Timing

    dev = registry.create_device(chip="BK7231N", dump=registry.default_dump("BK7231N"), scenario="app-running",
                                 wiring="none", timing=Timing(enabled=False))
    name = f"keep{size[0]}"
    registry.register(name, dev)
    app = BkBenchApp(url=f"sim://@{name}", data_dir=tmp_path, ports_source=lambda: [], monitor=False,
                     poll_ports=0, reset="manual", link_timeout=1.0)
    try:
        async with app.run_test(size=size) as pilot:
            await pilot.press("c")
            await pilot.pause(3.0)  # three times the give-up time
            assert app.busy, app.last_outcome
            live = str(app.op_pane.query_one("#op-hint").render())
            assert "link attempt" in live and "RX " in live and "until you cancel with x" in live
            assert "--reset" not in live and "for a second" not in live
            stage = str(app.op_pane.query_one("#op-stage").render())
            assert "for a second" not in stage  # one instruction: the same duration everywhere
            dev.reset()  # the person shorts CEN to GND
            await settle(app, pilot)
            assert app.last_outcome[0] == "ok", app.last_outcome
            assert app.session is not None
            log = "\n".join(app.op_pane.event_log.texts)
            assert log.count("short CEN to GND") <= 1  # one instruction, not one per attempt
    finally:
        registry.unregister(name)


@sync
async def test_manual_reset_cancel_stops_the_endless_link(tmp_path: Path):
    app = BkBenchApp(url="sim://bk7231n?scenario=app-running&wiring=none", data_dir=tmp_path,
                     ports_source=lambda: [], monitor=False, poll_ports=0, reset="manual", link_timeout=1.0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("c")
        await pilot.pause(2.0)
        assert app.busy
        await pilot.press("x")
        await settle(app, pilot, timeout=10)
        assert app.last_outcome[0] == "cancelled"
        assert "between sectors" not in app.last_outcome[1]  # a link has no sectors


@sync
async def test_backup_resumes_after_cancel_and_duplicates_are_not_stored(fixtures_dir: Path, tmp_path: Path):
    name, dev = make_device(fixtures_dir)
    app = make_app(name, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("c")
        await settle(app, pilot)
        dev.timing.enabled = True
        await pilot.press("b")
        end = time.monotonic() + 60
        while app.busy and time.monotonic() < end and app.flash_model.counts()[SectorState.VERIFIED] < 40:
            await pilot.pause(0.05)
        assert app.busy
        # the quit dialog during a backup speaks of a backup, not of a half-written flash
        await pilot.press("ctrl+q")
        await pilot.pause(0.1)
        assert isinstance(app.screen, ConfirmScreen)
        body = str(app.screen.query_one("#confirm-body").render())
        assert "nothing is stored" in body and "half" not in body and "written" not in body.split(":")[1][:60]
        await pilot.press("n")
        await pilot.pause(0.1)
        await pilot.press("x")
        await settle(app, pilot)
        dev.timing.enabled = False
        assert app.last_outcome[0] == "cancelled"
        said = app.last_outcome[1]
        assert "b resumes at 0x" in said
        resume_at = int(said.split("b resumes at ")[1][:8], 16)
        assert resume_at > 0 and not app.library.list()
        await pilot.press("b")
        await settle(app, pilot)
        assert app.last_outcome[0] == "ok", app.last_outcome
        log = "\n".join(app.op_pane.event_log.texts)
        assert "resuming the backup that stopped earlier" in log
        entries = app.library.list()
        assert len(entries) == 1
        assert entries[0].path.read_bytes() == bytes(dev.flash.data)
        # unchanged content: the library already holds it (the chip's block CRCs say so): not read, not stored
        reads = sum(1 for c in dev.commands if c == "read4k")
        await pilot.press("b")
        await settle(app, pilot)
        assert app.last_outcome[0] == "ok"
        assert f"already in the library: {entries[0].path.name}" in app.last_outcome[1]
        assert len(app.library.list()) == 1
        assert sum(1 for c in dev.commands if c == "read4k") == reads


def test_quit_text_per_operation():
    assert "half" not in quit_text("Backup") and "nothing is stored" in quit_text("Backup")
    assert "sectors written so far" in quit_text("Write")


@sync
async def test_op_log_lines_written_while_hidden_are_not_wrapped_narrow(fixtures_dir: Path, tmp_path: Path):
    name, dev = make_device(fixtures_dir)
    app = make_app(name, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")  # the log is shown, the Operation pane hidden
        await pilot.pause(0.1)
        line = "backup saved: BK7231N-c8478c112233-20251201T101010.bin in the library, sha256 and CRC checked"
        app.op_pane.log_line(line)
        await pilot.press("4")
        await pilot.pause(0.3)
        log = app.op_pane.event_log
        rows = [strip.text for strip in log.lines]
        first = next(r for r in rows if "backup saved" in r)
        assert len(first.rstrip()) > 60  # wrapped at the pane's width, not at 20 columns
        # and the serial log still follows its tail after the tab switch
        await pilot.press("2")
        await pilot.pause(0.1)
        for i in range(300):
            app.log_buffer.feed(f"line {i}\r\n".encode())
        await pilot.press("3")
        await pilot.pause(0.2)
        for i in range(300, 400):
            app.log_buffer.feed(f"line {i}\r\n".encode())
        await pilot.pause(0.3)
        await pilot.press("2")
        await pilot.pause(0.3)
        view = app.query_one("#log-view")
        assert view.scroll_y >= view.max_scroll_y - 1 and view.max_scroll_y > 0
