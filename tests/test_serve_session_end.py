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
            assert await _until(pilot, lambda: app._linking is not None, 30)
            app.post_message(messages.ExitApp())
            assert await _until(pilot, lambda: not app.is_running, 20, 0.1), "a linking session kept the app"
        return app

    app = asyncio.run(go())
    assert app.last_outcome is not None and app.last_outcome[0] == "cancelled", app.last_outcome
    assert not list((tmp_path / "backups").glob("*.bin"))



def test_multi_port_backups_run_to_the_library_when_the_browser_leaves(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch):
    """The multi-port view's runs are operations too: an exit request (browser gone, SIGHUP) lets every
    port's backup land in the library before the app quits, as it does for the single-port view."""
    from bkbench.tui.screens.station import StationScreen

    saving, release = [], threading.Event()
    real_save = BackupLibrary.save

    def gated_save(self, data, meta):
        saving.append(1)
        release.wait(60)
        return real_save(self, data, meta)

    monkeypatch.setattr(BackupLibrary, "save", gated_save)
    names = [f"serve-end{next(_names)}" for _ in range(2)]
    for n, name in enumerate(names):
        flash = bytearray(demo_flash())
        flash[0x1D0000 + 0x100] ^= n  # two plugs, two contents: two backups
        dump = tmp_path / f"{name}.bin"
        dump.write_bytes(flash)
        registry.register(name, registry.create_device(chip="BK7231N", dump=dump, scenario="app-running",
                                                       wiring="rts"))
    urls = [f"sim://@{name}" for name in names]

    async def go():
        app = BkBenchApp(url=urls[0], ports=urls, data_dir=tmp_path, ports_source=lambda: [], monitor=False,
                         poll_ports=0)
        async with app.run_test(size=(80, 24)) as pilot:
            assert await _until(pilot, lambda: isinstance(app.screen, StationScreen), 10)
            await pilot.press("a", "b")
            assert await _until(pilot, lambda: len(saving) == 2, 60), "the backups never got to storing"
            app.post_message(messages.ExitApp())
            await pilot.pause(0.3)
            still = app.is_running and app.station.busy
            release.set()
            assert still, "the exit request ended the multi-port backups"
            assert await _until(pilot, lambda: not app.is_running, 60, 0.1), "the app did not quit afterwards"
        return app

    try:
        app = asyncio.run(go())
    finally:
        release.set()
        for name in names:
            registry.unregister(name)
    assert [r.state for r in app.station] == ["done", "done"]
    assert len(BackupLibrary(tmp_path / "backups").list()) == 2


def test_multi_port_exit_while_still_linking_cancels_at_once(tmp_path: Path):
    from bkbench.tui.screens.station import StationScreen

    names = [f"serve-end{next(_names)}" for _ in range(2)]
    for name in names:  # never answer: the links would go on trying
        registry.register(name, registry.create_device(chip="BK7231N", dump=demo_dump_path(), scenario="silent"))
    urls = [f"sim://@{name}" for name in names]

    async def go():
        app = BkBenchApp(url=urls[0], ports=urls, data_dir=tmp_path, ports_source=lambda: [], monitor=False,
                         poll_ports=0)
        app.link_timeout = 60.0
        async with app.run_test(size=(80, 24)) as pilot:
            assert await _until(pilot, lambda: isinstance(app.screen, StationScreen), 10)
            await pilot.press("a", "b")
            assert await _until(pilot, lambda: app.station.busy, 10)
            app.post_message(messages.ExitApp())
            assert await _until(pilot, lambda: not app.is_running, 30, 0.1), "linking ports kept the app"
        return app

    try:
        app = asyncio.run(go())
    finally:
        for name in names:
            registry.unregister(name)
    assert [r.state for r in app.station] == ["cancelled", "cancelled"]
    assert not list((tmp_path / "backups").glob("*.bin"))
