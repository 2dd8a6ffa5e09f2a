"""A browser that goes away mid-operation (tab closed, Wi-Fi gone) must not cost a backup or half a write.

`bkbench serve` asks the session's workbench to quit (Textual's ExitApp) when its websocket closes. The
app finishes a running operation first, or cancels it between sectors while it is still only linking.
Judged by the library and the simulated chip, in-process on the untimed simulator.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from pathlib import Path

import pytest
from bkbench.core.backups import BackupLibrary
from bkbench.core.demo_image import demo_dump_path, demo_flash
from bkbench.core.sim import registry
from bkbench.tui.app import BkBenchApp
from textual import messages

_names = itertools.count()


def _app(tmp_path: Path, scenario: str = "app-running") -> BkBenchApp:
    name = f"serve-end{next(_names)}"
    registry.register(name, registry.create_device(chip="BK7231N", dump=demo_dump_path(), scenario=scenario,
                                                   wiring="rts"))
    return BkBenchApp(url=f"sim://@{name}", data_dir=tmp_path, ports_source=lambda: [], monitor=False,
                      poll_ports=0)


async def _until(pilot, cond, timeout: float, step: float = 0.01) -> bool:
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        await pilot.pause(step)
    return bool(cond())


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BKBENCH_CACHE_DIR", str(tmp_path / "cache"))


def test_backup_runs_to_the_library_when_the_browser_leaves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # The backup is held just before it is stored (its worker thread waits on a gate), so the exit request
    # arrives mid-operation on any machine, however fast or loaded.
    reached, release = threading.Event(), threading.Event()
    real_save = BackupLibrary.save

    def gated_save(self, data, meta):
        reached.set()
        release.wait(60)
        return real_save(self, data, meta)

    monkeypatch.setattr(BackupLibrary, "save", gated_save)

    async def go():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("b")
            assert await _until(pilot, reached.is_set, 60), "the backup never got to storing"
            app.post_message(messages.ExitApp())
            await pilot.pause(0.3)
            still = app.is_running and app.busy
            release.set()
            assert still, "the exit request ended the backup"
            assert await _until(pilot, lambda: not app.is_running, 60, 0.1), "the app did not quit afterwards"
        return app

    try:
        app = asyncio.run(go())
    finally:
        release.set()
    assert app.last_outcome is not None and app.last_outcome[0] == "ok", app.last_outcome
    library = BackupLibrary(tmp_path / "backups")
    entries = library.list()
    assert len(entries) == 1 and library.load(entries[0]) == demo_flash()


def test_exit_while_still_linking_cancels_at_once(tmp_path: Path):
    async def go():
        app = _app(tmp_path, scenario="silent")  # never answers: the link would go on trying
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("b")
            assert await _until(pilot, lambda: app.linking, 30)
            app.post_message(messages.ExitApp())
            assert await _until(pilot, lambda: not app.is_running, 20, 0.1), "a linking session kept the app"
        return app

    app = asyncio.run(go())
    assert app.last_outcome is not None and app.last_outcome[0] == "cancelled", app.last_outcome
    assert not list((tmp_path / "backups").glob("*.bin"))



def test_multi_port_backup_runs_to_the_library_when_the_browser_leaves(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch):
    # The multi-port view (m) in a served session: a browser that goes away mid-backup must not end the
    # app under the port's worker either (the app's own `busy` is False while only the station runs).
    from bkbench.tui.screens.station import StationScreen

    reached, release = threading.Event(), threading.Event()
    real_save = BackupLibrary.save

    def gated_save(self, data, meta):
        reached.set()
        release.wait(60)
        return real_save(self, data, meta)

    monkeypatch.setattr(BackupLibrary, "save", gated_save)

    async def go():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("m")
            assert await _until(pilot, lambda: isinstance(app.screen, StationScreen), 10)
            assert await _until(pilot, lambda: len(app.station) >= 1, 10)
            await pilot.press("a", "b")
            assert await _until(pilot, reached.is_set, 60), "the backup never got to storing"
            app.post_message(messages.ExitApp())
            await pilot.pause(0.3)
            still = app.is_running and app.station.busy
            release.set()
            assert still, "the exit request ended the multi-port backup"
            assert await _until(pilot, lambda: not app.is_running, 60, 0.1), "the app did not quit afterwards"
        return app

    try:
        asyncio.run(go())
    finally:
        release.set()
    library = BackupLibrary(tmp_path / "backups")
    entries = library.list()
    assert len(entries) == 1 and library.load(entries[0]) == demo_flash()


def test_a_second_exit_request_cancels_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # `bkbench serve` stopped with ctrl+c twice ("a second ctrl+c stops at once"): the second request must
    # cancel the running operation between sectors instead of waiting for it to end however long it takes.
    reached, release = threading.Event(), threading.Event()
    real_save = BackupLibrary.save

    def gated_save(self, data, meta):
        reached.set()
        release.wait(60)
        return real_save(self, data, meta)

    monkeypatch.setattr(BackupLibrary, "save", gated_save)

    async def go():
        app = _app(tmp_path)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("b")
            assert await _until(pilot, reached.is_set, 60), "the backup never got to storing"
            token = app.cancel_token
            app.post_message(messages.ExitApp())
            await pilot.pause(0.3)
            first = token.cancelled
            app.post_message(messages.ExitApp())
            await pilot.pause(0.5)
            second = token.cancelled
            release.set()
            assert not first, "the first exit request cancelled a backup that would have finished"
            assert second, "the second exit request did not cancel the operation"
            assert await _until(pilot, lambda: not app.is_running, 60, 0.1), "the app did not quit afterwards"

    try:
        asyncio.run(go())
    finally:
        release.set()
    # The read was complete when the cancel came: it is still stored, whole.
    library = BackupLibrary(tmp_path / "backups")
    assert [library.load(e) for e in library.list()] in ([], [demo_flash()])
