"""Snapshot (pytest-textual-snapshot) of the analysis screen's community device list section at 80x24: the closest
entries, the selected one pin by pin with its forum link. Data kept in tests/snapshots/test_tui_snapshots_devices/.

Update after an intended UI change with: pytest tests/test_tui_snapshots_devices.py --snapshot-update
"""

from __future__ import annotations

from pathlib import Path

from bkbench.core.analysis.device_list import DeviceListStore
from bkbench.tui.screens.analysis import AnalysisScreen
from test_tui_snapshots import _snapshots_in_tests_snapshots, make_app  # noqa: F401 (autouse fixture)
from test_tui_snapshots_more import add_backup, wait_until


def test_snapshot_community_entries_80x24(snap_compare, tmp_path: Path, fixtures_dir: Path):
    DeviceListStore().save((fixtures_dir / "devices" / "openbk-devices.json").read_bytes(), "fixture")
    app = make_app(tmp_path)
    entry = add_backup(app, fixtures_dir)

    async def before(pilot) -> None:
        app.analyze_entry(entry)
        await wait_until(pilot, lambda: isinstance(app.screen, AnalysisScreen) and app.screen.community is not None)
        ids = [m["id"] for m in app.screen.community["matches"]]
        for _ in range(ids.index("aa7da527")):  # n walks to the ELIVCO LSPA9 entry, the dump's own forum thread
            await pilot.press("n")
        await pilot.pause(0.3)
        assert "LSPA9 Power metering plug BL0937 version" in app.screen.text

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)
