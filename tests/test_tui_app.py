"""Pilot tests: drive every workbench workflow against the in-process simulator, assert outcomes."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import time
from pathlib import Path

import pytest
from bkbench.core.ports import PortInfo
from bkbench.core.sim import registry
from bkbench.core.sim.timing import Timing
from bkbench.tui.app import BkBenchApp
from bkbench.tui.screens.backups import BackupsScreen
from bkbench.tui.screens.confirm import ConfirmScreen
from bkbench.tui.screens.write import WriteScreen
from bkbench.tui.widgets.seriallog import SerialLog

SIZES = [(80, 24), (120, 36)]
N_DUMP = "bk7231n-lspa9-clone-bl0937-plug.bin"
_names = itertools.count()

FAKE_PORTS = [
    PortInfo("/dev/ttyUSB0", "CP2102 USB to UART Bridge", adapter="CP2102", vid=0x10C4, pid=0xEA60,
             by_id="/dev/serial/by-id/usb-Silicon_Labs_CP2102-if00-port0", kind="usb"),
]


def sync(fn):
    """Run an async pilot test with asyncio.run (no pytest asyncio plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


def make_device(fixtures_dir: Path, timing: bool = False, **kw):
    name = f"tui{next(_names)}"
    dev = registry.create_device(chip="BK7231N", dump=fixtures_dir / "dumps" / N_DUMP, scenario="app-running",
                                 wiring="rts", timing=Timing(enabled=timing), **kw)
    registry.register(name, dev)
    return name, dev


def make_app(name: str, data_dir: Path, monitor: bool = False) -> BkBenchApp:
    return BkBenchApp(url=f"sim://@{name}", data_dir=data_dir, ports_source=lambda: FAKE_PORTS,
                      monitor=monitor, poll_ports=0)


async def settle(app: BkBenchApp, pilot, timeout: float = 60.0) -> None:
    """Wait until the running operation has finished and its events are drawn."""
    await pilot.pause(0.2)
    end = time.monotonic() + timeout
    while app.busy and time.monotonic() < end:
        await pilot.pause(0.05)
    assert not app.busy, "operation did not finish in time"
    await pilot.pause(0.1)


async def pick_file(app: BkBenchApp, pilot, path: Path, timeout: float = 60.0) -> None:
    """In the firmware picker: type the path into its field, Enter, wait for the verdict."""
    screen = app.screen
    assert isinstance(screen, WriteScreen)
    field = screen.query_one("#write-path")
    field.focus()
    field.value = str(path)
    await pilot.press("enter")
    end = time.monotonic() + timeout
    while screen.verdict is None and time.monotonic() < end:
        await pilot.pause(0.05)
    assert screen.verdict is not None, "the picker did not judge the file in time"
    await pilot.pause(0.05)


def op_title(app: BkBenchApp) -> str:
    return str(app.op_pane.query_one("#op-title").render())


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@sync
async def test_connect_then_backup_into_library(size, fixtures_dir: Path, tmp_path: Path):
    name, dev = make_device(fixtures_dir)
    app = make_app(name, tmp_path)
    async with app.run_test(size=size) as pilot:
        await pilot.press("c")
        await settle(app, pilot)
        assert app.last_outcome[0] == "ok"
        assert app.session is not None  # connected: the chip waits in the bootloader
        assert "BK7231N" in app.sub_title and "MAC" in app.sub_title
        await pilot.press("b")
        await settle(app, pilot)
        assert app.last_outcome[0] == "ok", app.last_outcome
        entries = app.library.list()
        assert len(entries) == 1
        data = entries[0].path.read_bytes()
        assert data == (fixtures_dir / "dumps" / N_DUMP).read_bytes()  # the sim serves the real dump
        assert entries[0].meta["sha256"] == hashlib.sha256(data).hexdigest()
        assert entries[0].meta["chip"] == "BK7231N"
        counts = app.flash_model.counts()
        assert counts[app.flash_model.state(0).__class__("pending")] == 0  # every sector visited
        assert "saved" in op_title(app) and entries[0].path.name in op_title(app)
        # the backups browser lists it with its sidecar metadata
        await pilot.press("l")
        await pilot.pause(0.2)
        assert isinstance(app.screen, BackupsScreen)
        meta = str(app.screen.query_one("#backup-meta").render())
        assert "sha256: " + entries[0].meta["sha256"] in meta
        await pilot.press("ctrl+g")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, BackupsScreen)


@sync
async def test_write_image_backs_up_first_verifies_and_reboots(fixtures_dir: Path, tmp_path: Path, obk_images):
    name, dev = make_device(fixtures_dir)
    ua = obk_images["BK7231N"]["ua"]
    image = tmp_path / "OpenBK7231N_UA.bin"
    image.write_bytes(ua)
    app = make_app(name, tmp_path / "data")
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("w")
        await pilot.pause(0.1)
        assert isinstance(app.screen, WriteScreen)
        await pick_file(app, pilot, image)
        info = str(app.screen.query_one("#write-info").render())
        assert "0x011000" in info and "Application" in info  # what it is and where it goes
        await pilot.press("ctrl+o")
        await pilot.pause(0.1)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(app, pilot)
        assert app.last_outcome[0] == "ok", app.last_outcome
        msg = app.last_outcome[1]
        assert "backup first" in msg and "verified" in msg and "rebooted" in msg
        # the automatic backup, and the library's record of what the write left (derived, not read)
        assert [e.origin for e in app.library.list()] == ["derived", "read"]
        assert bytes(dev.flash.data[0x11000:0x11000 + len(ua)]) == ua
        assert app.session is None  # rebooted and released to the log
        model = app.flash_model
        end = 0x11000 + len(ua)
        from bkbench.core.ops.events import SectorState

        assert model.state_at(0x0) is SectorState.PENDING  # bootloader untouched
        touched = {model.state_at(a) for a in range(0x11000, end, 0x1000)}
        assert touched <= {SectorState.WRITTEN, SectorState.VERIFIED, SectorState.SKIPPED}
        assert model.state_at(end + 0x1000) is SectorState.PENDING


@sync
async def test_verify_mismatch_then_restore_from_library(fixtures_dir: Path, tmp_path: Path):
    from bkbench.core.ops.events import SectorState

    name, dev = make_device(fixtures_dir)
    original = bytes(dev.flash.data)
    app = make_app(name, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("b")
        await settle(app, pilot)
        assert app.last_outcome[0] == "ok"
        # damage the app partition behind the workbench's back
        dev.flash.data[0x40000:0x42000] = b"\x00" * 0x2000
        await pilot.press("l")
        await pilot.pause(0.2)
        await pilot.press("v")
        await settle(app, pilot)
        assert app.last_outcome[0] == "failed"
        assert "differs" in app.last_outcome[1] and "0x040000" in app.last_outcome[1]
        assert app.flash_model.state_at(0x40000) is SectorState.FAILED
        assert app.flash_model.state_at(0x80000) is not SectorState.FAILED
        # restore it (destructive: asks first)
        await pilot.press("l")
        await pilot.pause(0.2)
        await pilot.press("r")
        await pilot.pause(0.1)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(app, pilot)
        assert app.last_outcome[0] == "ok", app.last_outcome
        assert bytes(dev.flash.data) == original
        assert app.flash_model.state_at(0x40000) in (SectorState.WRITTEN, SectorState.VERIFIED)
        assert app.flash_model.state_at(0x80000) is SectorState.SKIPPED or app.flash_model.state_at(
            0x80000) is SectorState.VERIFIED
        # The chip no longer held what the existing backup holds, so its current content was backed up
        # first (content identity, issue 10): two images, the newest being the damaged state.
        assert len(app.library.list()) == 2
        newest = app.library.load(app.library.list()[0])
        assert newest[0x40000:0x42000] == b"\x00" * 0x2000 and newest[:0x40000] == original[:0x40000]


@sync
async def test_verify_key_uses_newest_backup_of_this_chip(fixtures_dir: Path, tmp_path: Path):
    name, dev = make_device(fixtures_dir)
    app = make_app(name, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("v")  # no backup yet: says so, starts nothing
        await pilot.pause(0.1)
        assert not app.busy and app.last_outcome is None
        await pilot.press("b")
        await settle(app, pilot)
        assert app.last_outcome[0] == "ok", app.last_outcome
        # A second, newer backup after a change on the chip (own name: the library names files by the
        # second, so wait for the clock to move rather than racing it).
        first = app.library.list()[0]
        dev.flash.data[0x150000:0x151000] = b"\x5a" * 0x1000
        while first.path.name == _backup_name_now(first):
            await pilot.pause(0.1)
        await pilot.press("b")
        await settle(app, pilot)
        entries = app.library.list()
        assert len(entries) == 2 and entries[0].path != first.path
        await pilot.press("v")
        await settle(app, pilot)
        assert app.last_outcome[0] == "ok" and "matches" in app.last_outcome[1], app.last_outcome
        assert entries[0].path.name in app.last_outcome[1]  # the newest one, which matches the chip now


def _backup_name_now(entry) -> str:
    """The name a backup taken now would get (same chip and MAC as `entry`)."""
    stem = entry.path.stem.rsplit("-", 1)[0]
    return f"{stem}-{time.strftime('%Y%m%dT%H%M%S')}{entry.path.suffix}"


@sync
async def test_cancel_write_reports_what_the_engine_did_not_write(fixtures_dir: Path, tmp_path: Path, obk_images):
    from bkbench.core.ops.events import SectorState
    from bkbench.tui.app import ranges_text

    name, dev = make_device(fixtures_dir)
    ua = obk_images["BK7231N"]["ua"]
    image = tmp_path / "OpenBK7231N_UA.bin"
    image.write_bytes(ua)
    app = make_app(name, tmp_path / "data")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("b")  # a backup exists, so the write starts writing at once
        await settle(app, pilot)
        before = bytes(dev.flash.data)
        dev.timing.enabled = True  # a real UART's pace: the write takes long enough to cancel it
        await pilot.press("w")
        await pilot.pause(0.1)
        await pick_file(app, pilot, image)
        await pilot.press("ctrl+o")
        await pilot.pause(0.1)
        await pilot.press("y")
        end = time.monotonic() + 30
        # sectors turn "verified" once written and CRC-checked: cancel after a few of them
        while app.busy and time.monotonic() < end and not (
                app.op_pane.state.stage == "write" and app.flash_model.counts()[SectorState.VERIFIED] >= 8):
            await pilot.pause(0.05)
        assert app.busy, "the write finished before it could be cancelled"
        await pilot.press("x")
        await settle(app, pilot)
        dev.timing.enabled = False
        assert app.last_outcome[0] == "cancelled", app.last_outcome
        record = app.last_cancel_record
        assert record is not None and record.kind == "write"
        assert record.done and record.remaining()  # stopped part-way
        message = app.last_outcome[1]
        assert f"not written: {record.describe_remaining()}" in message
        assert f"Written and verified: {ranges_text(record.done, limit=8)}" in message
        assert message in str(app.op_pane.query_one("#op-title").render()).replace("\n", " ") or \
            record.describe_remaining()[:20] in str(app.op_pane.query_one("#op-title").render())
        after = bytes(dev.flash.data)
        for s, e in record.done:  # what it says was written is on the chip
            assert after[s:e] == ua[s - 0x11000:e - 0x11000]
        for s, e in record.remaining():  # and what it says was not written is untouched
            assert after[s:e] == before[s:e]
            assert app.flash_model.state_at(s) not in (SectorState.WRITTEN, SectorState.VERIFIED)


@sync
async def test_cancel_backup_stops_and_says_so(fixtures_dir: Path, tmp_path: Path):
    name, _dev = make_device(fixtures_dir, timing=True)
    app = make_app(name, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("b")
        end = time.monotonic() + 20
        while app.op_pane.state.done == 0 and time.monotonic() < end:
            await pilot.pause(0.05)
        assert app.busy
        await pilot.press("x")
        await settle(app, pilot)
        assert app.last_outcome[0] == "cancelled"
        assert app.library.list() == []


@sync
async def test_failure_is_shown(tmp_path: Path):
    app = BkBenchApp(url="sim://@no-such-device", data_dir=tmp_path, ports_source=lambda: [], monitor=False,
                     poll_ports=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("b")
        await settle(app, pilot)
        assert app.last_outcome[0] == "failed"
        assert "no-such-device" in app.last_outcome[1]
        assert app.op_pane.has_class("failed")
        assert app.session is None


@sync
async def test_quit_during_operation_asks(fixtures_dir: Path, tmp_path: Path):
    name, _dev = make_device(fixtures_dir, timing=True)
    app = make_app(name, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("b")
        await pilot.pause(0.3)
        await pilot.press("ctrl+q")
        await pilot.pause(0.1)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause(0.1)
        assert app.busy and app.is_running
        await pilot.press("ctrl+q")
        await pilot.pause(0.1)
        await pilot.press("y")
        end = time.monotonic() + 20
        while app.is_running and time.monotonic() < end:
            await pilot.pause(0.1)
        assert not app.is_running
    assert app.last_outcome[0] == "cancelled"


@sync
async def test_command_palette_runs_backup(fixtures_dir: Path, tmp_path: Path):
    name, _dev = make_device(fixtures_dir)
    app = make_app(name, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"backup: read")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.last_outcome and app.last_outcome[0] == "ok"
        assert len(app.library.list()) == 1


@sync
async def test_serial_log_keys_pause_hex_search_save(tmp_path: Path):
    app = BkBenchApp(url="", data_dir=tmp_path, ports_source=lambda: [], monitor=False, poll_ports=0)
    async with app.run_test(size=(120, 36)) as pilot:
        app.log_buffer.feed(b"V:BK7231N_1.0.1\r\nfirst line\r\n")
        await pilot.pause(0.3)
        view = app.query_one(SerialLog)
        assert [x.kind for x in view.lines][:2] == ["reset", "boot"]
        await pilot.press("p")
        app.log_buffer.feed(b"while paused\r\n")
        await pilot.pause(0.3)
        assert "while paused" not in [x.text for x in view.lines] and len(view.held) == 1
        await pilot.press("p")
        assert "while paused" in [x.text for x in view.lines]
        await pilot.press("h")
        assert view.hex_view
        await pilot.press("ctrl+f")
        await pilot.press(*"first")
        await pilot.pause(0.1)
        assert view.search == "first"
        await pilot.press("ctrl+f")  # closes search
        await pilot.press("ctrl+s")
        saved = app.log_pane.last_saved
        assert saved is not None and saved.parent == tmp_path / "logs"
        assert "first line" in saved.read_text()
        await pilot.press("ctrl+l")
        assert len(view.lines) == 0


@sync
async def test_narrow_layout_tabs_show_one_pane(tmp_path: Path):
    app = BkBenchApp(url="", data_dir=tmp_path, ports_source=lambda: FAKE_PORTS, monitor=False, poll_ports=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.1)
        assert app.screen.has_class("-narrow")
        for key, pane in (("1", "ports"), ("3", "flash"), ("4", "op"), ("2", "log")):
            await pilot.press(key)
            await pilot.pause(0.05)
            shown = [p for p in ("ports", "log", "flash", "op") if app.query_one(f"#pane-{p}").display
                     and app.query_one(f"#pane-{p}").region.height > 0]
            assert shown == [pane]
        app.query_one("#port-url").focus()  # digits type into a field; ctrl+n still switches
        await pilot.press("ctrl+n")
        await pilot.pause(0.05)
        assert app.active_pane == "flash"
        # the flash map fits: all 512 sectors on screen, none cut off
        await pilot.press("3")
        await pilot.pause(0.1)
        grid = app.query_one("#fm-grid")
        assert grid.region.height * grid.per_row >= 512
        assert grid.region.bottom <= app.size.height - 2
        await pilot.resize_terminal(120, 36)
        await pilot.pause(0.1)
        assert not app.screen.has_class("-narrow")
        assert all(app.query_one(f"#pane-{p}").region.height > 0 for p in ("ports", "log", "flash", "op"))


@sync
async def test_ports_pane_lists_adapters_and_picks_url(tmp_path: Path):
    app = BkBenchApp(url="", data_dir=tmp_path, ports_source=lambda: FAKE_PORTS, monitor=False, poll_ports=0)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause(0.1)
        table = app.query_one("#ports-table")
        row = [str(cell) for cell in table.get_row_at(0)]  # cells are Text (never markup)
        assert row[0] == "/dev/ttyUSB0" and row[1] == "CP2102" and row[2] == "10c4:ea60"
        assert app.ports_pane.url == "/dev/ttyUSB0"
        app.ports_pane.set_url("sim://bk7231n")
        app.query_one("#port-url").focus()
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert app.url == "sim://bk7231n"


@sync
async def test_demo_chip_boot_log_reaches_the_log(fixtures_dir: Path, tmp_path: Path):
    name, _dev = make_device(fixtures_dir)
    app = make_app(name, tmp_path, monitor=True)
    async with app.run_test(size=(120, 36)) as pilot:
        end = time.monotonic() + 10
        view = app.query_one(SerialLog)
        while not any(x.kind == "boot" for x in view.lines) and time.monotonic() < end:
            await pilot.pause(0.1)
        assert any(x.text.startswith("V:BK7231N") for x in view.lines)
        await pilot.press("b")  # the log hands the port over and takes it back
        await settle(app, pilot)
        assert app.last_outcome[0] == "ok"
        texts = [x.text for x in view.lines]
        assert any("log paused" in t for t in texts)
