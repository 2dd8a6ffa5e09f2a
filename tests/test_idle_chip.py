"""Issue 19 item 5: an idle T. Its bootloader reboots itself after an idle loop count (REALCODE.md B.11; the
simulator's `idle_timeout`, here 0.3 s): the connected state and every pause between commands survive it.

A keepalive (core/link/keepalive.py) sends LinkChecks while the line is quiet; a chip lost anyway is caught in
its boot window or reset by the session's strategy before the next operation, transparently.
"""

from __future__ import annotations

import asyncio
import time

from bkbench.core.backups import BackupLibrary
from bkbench.core.link import keepalive
from bkbench.core.ops.events import Notice, Retry, Stage
from bkbench.core.session import Session
from bkbench.tui.app import BkBenchApp
from simhelpers import sim_url

FEIT = "bk7231t-feit-br30-rgbw-bulb.bin"
APP = 0x11000
IDLE = 0.3


def _t(fixtures_dir, **kwargs):
    """A T running its application (the session resets it by RTS into its bootloader), idle reset after IDLE s."""
    dump = (fixtures_dir / "dumps" / FEIT).read_bytes()
    return dump, sim_url("BK7231T", dump, scenario="app-running", wiring="rts", idle_timeout=IDLE, **kwargs)


def _session(url: str, events: list) -> Session:
    return Session(url, baud=921600, reset="rts", on_event=events.append)


def _noted(events: list, text: str) -> list[str]:
    return [e.message for e in events if isinstance(e, Notice) and text in e.message]


def test_keepalive_holds_an_idle_t_in_its_bootloader_then_a_write_works(fixtures_dir, tmp_path):
    dump, sim = _t(fixtures_dir)
    image = bytearray(dump[APP:APP + 0x2000])
    image[0x10:0x20] = b"idle-then-write!"
    events: list = []
    with sim as (url, dev), _session(url, events) as s:
        s.connect()
        boots = dev.resets
        time.sleep(5 * IDLE)  # the user reads a dialog
        s.write(bytes(image), APP, backup_library=BackupLibrary(tmp_path / "lib"))
        assert dev.resets == boots  # never left the bootloader
        assert s.keepalive is not None and s.keepalive.pings > 0 and not s.keepalive.caught
        flash = bytes(dev.flash.data)
    assert flash == dump[:APP] + bytes(image) + dump[APP + len(image):]
    assert not [e for e in events if isinstance(e, Retry)] and not _noted(events, "while idle")


def test_a_pause_inside_an_operation_does_not_lose_the_chip(fixtures_dir, tmp_path):
    """A slow consumer (a UI busy drawing, a slow disk) between two exchanges of one write."""
    dump, sim = _t(fixtures_dir)
    image = bytearray(dump[APP:APP + 0x1000])
    image[0:4] = b"slow"
    events: list = []

    def slow(ev) -> None:
        events.append(ev)
        if isinstance(ev, Stage) and ev.name in ("guard", "write"):
            time.sleep(3 * IDLE)

    with sim as (url, dev), Session(url, baud=921600, reset="rts", on_event=slow) as s:
        s.connect()
        boots = dev.resets
        s.write(bytes(image), APP, backup_first=False)
        assert dev.resets == boots
        flash = bytes(dev.flash.data)
    assert flash[APP:APP + 0x1000] == bytes(image)
    assert not [e for e in events if isinstance(e, Retry)]


def test_keepalive_catches_an_idle_restart_in_its_boot_window(fixtures_dir, monkeypatch):
    """Its LinkChecks too far apart for this chip's idle count: the chip restarts, the keepalive catches the boot
    window at 115200 (no reset, no hands), switches the rate back and speaks more often from then on."""
    monkeypatch.setattr(keepalive, "INTERVAL", 3 * IDLE)
    dump, sim = _t(fixtures_dir, boot_window=3.0)
    events: list = []
    with sim as (url, dev), _session(url, events) as s:
        s.connect()
        boots = dev.resets
        time.sleep(8 * IDLE)
        keep = s.keepalive
        assert keep is not None and keep.caught >= 1 and keep.interval < IDLE  # 1 unless the machine is loaded
        assert dev.resets == boots + keep.caught and dev.state == "boot" and dev.chip_baud == 921600
        assert s.read(APP, 0x4000) == dump[APP:APP + 0x4000]
        assert dev.resets == boots + keep.caught
    assert not [e for e in events if isinstance(e, Retry)]


def test_a_chip_lost_while_idle_is_linked_again_before_the_next_operation(fixtures_dir, monkeypatch):
    """No keepalive, the chip idles out into its application: the next operation resets it by the session's
    strategy first (no failed exchange, no retry) and says so."""
    monkeypatch.setattr(keepalive.Keepalive, "start", lambda self: self)  # the thread never runs
    dump, sim = _t(fixtures_dir)
    events: list = []
    with sim as (url, dev), _session(url, events) as s:
        s.connect()
        time.sleep(5 * IDLE)
        dev.pending()
        assert dev.state == "app"
        assert s.read(APP, 0x4000) == dump[APP:APP + 0x4000]
    assert not [e for e in events if isinstance(e, Retry)]
    assert _noted(events, "while idle") == ["the chip had left its bootloader while idle (its idle timeout): linked "
                                      "again by a reset"]


def test_workbench_connected_idle_past_the_timeout_then_backup(fixtures_dir, tmp_path):
    """Pilot: connect, leave the workbench alone well past the idle reset, then `b`."""
    dump, sim = _t(fixtures_dir)

    async def run(url, dev) -> None:
        app = BkBenchApp(url=url, data_dir=tmp_path, ports_source=lambda: [], monitor=False, poll_ports=0)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("c")
            await _idle(app, pilot)
            assert app.last_outcome[0] == "ok" and app.session is not None
            boots = dev.resets
            await pilot.pause(5 * IDLE)
            await pilot.press("b")
            await _idle(app, pilot)
            assert app.last_outcome[0] == "ok", app.last_outcome
            assert dev.resets == boots
            entries = app.library.list()
            assert len(entries) == 1 and entries[0].path.read_bytes() == dump

    with sim as (url, dev):
        asyncio.run(run(url, dev))


async def _idle(app, pilot, timeout: float = 90.0) -> None:
    await pilot.pause(0.2)
    end = time.monotonic() + timeout
    while app.busy and time.monotonic() < end:
        await pilot.pause(0.05)
    assert not app.busy
