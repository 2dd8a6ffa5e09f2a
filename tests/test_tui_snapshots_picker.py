"""Snapshot tests of the firmware picker and the key help (pytest-textual-snapshot, data in tests/snapshots/).

The picker browses a folder under a fake home (shown as ~/firmware) holding the real OpenBK 1.18.219 UG
packages of both chips; the BK7231N one is picked, so the picture shows its conversion to a UA image and
the BK7231T one greyed out with the reason.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from bkbench.tui.screens.keys import KeysScreen
from bkbench.tui.screens.write import WriteScreen
from test_tui_snapshots import _snapshots_in_tests_snapshots, make_app  # noqa: F401 (autouse fixture)


async def wait_until(pilot, done, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not done() and time.monotonic() < end:
        await pilot.pause(0.1)
    assert done(), "the app did not get there in time"
    await pilot.pause(0.2)


@pytest.mark.parametrize("size", [(120, 36), (80, 24)], ids=["120x36", "80x24"])
def test_snapshot_picker_converts_ug(snap_compare, size, tmp_path: Path, obk_images, monkeypatch):
    home = tmp_path / "home"
    folder = home / "firmware"
    folder.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    n_name = "OpenBeken-v1.18.219_bk7231n.ug.bin"
    (folder / n_name).write_bytes(obk_images["BK7231N"]["ota"])
    (folder / "OpenBeken-v1.18.219_bk7231t.ug.bin").write_bytes(obk_images["BK7231T"]["ota"])
    app = make_app(tmp_path / "data")

    async def before(pilot) -> None:
        screen = WriteScreen("BK7231N", 0x200000, True, data_dir=tmp_path / "data", start_dir=folder)
        app.push_screen(screen)
        await wait_until(pilot, lambda: len(screen.verdicts) == 2)
        screen.pick(folder / n_name)
        await wait_until(pilot, lambda: screen.request is not None)
        screen.query_one("#write-tree").focus()
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=before)


def test_snapshot_keys_help(snap_compare, tmp_path: Path):
    app = make_app(tmp_path)

    async def before(pilot) -> None:
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, KeysScreen), 5)

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)
