"""Pilot test: the actions that need a file or a backup say why when there is none, and do nothing else."""

from __future__ import annotations

from pathlib import Path

from bkbench.tui.app import BkBenchApp
from bkbench.tui.screens.write import WriteScreen
from test_tui_app import sync


@sync
async def test_verify_analyze_and_picker_without_a_file_say_why(tmp_path: Path):
    app = BkBenchApp(url="", data_dir=tmp_path, ports_source=lambda: [], monitor=False, poll_ports=0)
    async with app.run_test(size=(120, 36)) as pilot:
        main = app.screen

        def said() -> list[str]:
            return [n.message for n in app._notifications]

        app.action_verify()  # the keys are disabled without a backup; the command palette still runs them
        app.action_analyze()
        await pilot.pause(0.05)
        assert any("No backup of this chip to verify against" in t for t in said()), said()
        assert any("No backup to analyze" in t for t in said()), said()
        assert app.screen is main and not app.busy

        def broken() -> list:
            raise OSError("library folder gone")

        app.library.list = broken  # type: ignore[method-assign]
        app.clear_notifications()
        app.action_analyze()
        await pilot.pause(0.05)
        assert said() == ["Backup library unavailable: library folder gone"]
        assert app.screen is main

        app.clear_notifications()
        await pilot.press("w")  # the picker opens on an empty folder: nothing highlighted
        await pilot.pause(0.2)
        assert isinstance(app.screen, WriteScreen)
        await pilot.press("a", "e")
        await pilot.pause(0.05)
        assert "Highlight a file first." in said() and "Highlight a dump or config file first." in said()
        assert isinstance(app.screen, WriteScreen)
