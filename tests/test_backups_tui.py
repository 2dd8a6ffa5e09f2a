"""Issue 10 items 5 and 8 in the workbench: the backups browser shows damaged images and orphans, and a
backup the library could not take is offered for a retry instead of being lost."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import time
from pathlib import Path

import pytest
from bkbench.core.backups import BackupLibrary
from bkbench.core.sim import registry
from bkbench.core.sim.timing import Timing
from bkbench.tui.app import BkBenchApp
from bkbench.tui.screens.backups import BackupsScreen
from bkbench.tui.screens.confirm import ConfirmScreen

N_DUMP = "bk7231n-lspa9-clone-bl0937-plug.bin"
_names = itertools.count()


def _app(tmp_path: Path, fixtures_dir: Path) -> tuple[BkBenchApp, object]:
    name = f"bkt{next(_names)}"
    dev = registry.create_device(chip="BK7231N", dump=fixtures_dir / "dumps" / N_DUMP, scenario="app-running",
                                 wiring="rts", timing=Timing(enabled=False))
    registry.register(name, dev)
    app = BkBenchApp(url=f"sim://@{name}", data_dir=tmp_path, ports_source=lambda: [], monitor=False, poll_ports=0)
    return app, dev


async def _until(pilot, cond, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        await pilot.pause(0.05)
    assert cond()


def test_browser_marks_a_damaged_backup_and_refuses_to_use_it(tmp_path: Path, fixtures_dir: Path):
    stock = (fixtures_dir / "dumps" / N_DUMP).read_bytes()
    lib = BackupLibrary(tmp_path / "backups")
    bad = lib.save(stock, {"chip": "BK7231N", "mac": "AA:BB:CC:00:00:01"})
    rot = bytearray(stock)
    rot[0x1000] ^= 0x80
    os.chmod(bad.path, 0o600)
    bad.path.write_bytes(bytes(rot))
    (tmp_path / "backups" / "lonely.bin").write_bytes(stock)
    app, _ = _app(tmp_path, fixtures_dir)

    async def run() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("l")
            await _until(pilot, lambda: isinstance(app.screen, BackupsScreen) and app.screen.report is not None)
            screen = app.screen
            text = str(screen.query_one("#backups-check").render())
            assert "DAMAGED" in text and "NO SIDECAR" in text and "lonely.bin" in text
            assert "DAMAGED" in str(screen.query_one("#backup-meta").render())
            await pilot.press("r")
            await pilot.pause(0.2)
            assert isinstance(app.screen, BackupsScreen)  # a damaged backup is never restored

    asyncio.run(run())


def test_backup_the_library_cannot_take_is_offered_for_a_retry(tmp_path: Path, fixtures_dir: Path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    lib_dir = tmp_path / "backups"
    lib_dir.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(lib_dir)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"mount -t tmpfs not permitted here: {r.stderr.strip()}")
    rescue = tmp_path / "rescue"
    rescue.mkdir()
    monkeypatch.setenv("BKBENCH_RESCUE_DIR", str(rescue))
    monkeypatch.setattr(BackupLibrary, "check_space", lambda self, size=None: None)  # the disk fills meanwhile
    app, dev = _app(tmp_path, fixtures_dir)

    async def run() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("b")
            await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            assert "could not be saved" in app.screen.title_text and str(rescue) in app.screen.body
            subprocess.run(["mount", "-o", "remount,size=4m", str(lib_dir)], check=True)  # space freed
            await pilot.press("y")
            await _until(pilot, lambda: len(app.library.list()) == 1)

    try:
        asyncio.run(run())
        entry = BackupLibrary(lib_dir).list()[0]
        assert entry.path.read_bytes() == bytes(dev.flash.data)
        assert [p.read_bytes() == entry.path.read_bytes() for p in rescue.glob("*.bin")] == [True]
    finally:
        subprocess.run(["umount", "-l", str(lib_dir)], check=False)
