"""Smaller things a newcomer met (issue 22, item 9), in the workbench: the demo's multi-port view, the
clipboard over SSH."""

from __future__ import annotations

from pathlib import Path

from bkbench.core.ports import PortInfo
from bkbench.tui.app import BkBenchApp
from bkbench.tui.screens.analysis import clipboard_note
from test_tui_app import sync


@sync
async def test_the_demos_multi_port_view_offers_only_its_plugs(tmp_path: Path, monkeypatch):
    """A PC's /dev/ttyS0 was listed beside the demo plugs and `a` selected it for a backup."""
    import bkbench.core.ports as ports
    from bkbench.core.sim import registry
    from bkbench.tui.demo import setup_demo_chips
    from bkbench.tui.screens.station import StationScreen

    monkeypatch.setenv("BKBENCH_DEMO_TIMING", "0")
    monkeypatch.setenv("BKBENCH_DEMO_IMAGE", "builtin")
    uart = PortInfo(device="/dev/ttyS0", description="n/a", kind="other")
    monkeypatch.setattr(ports, "list_ports", lambda *a, **k: [uart])
    urls = setup_demo_chips(2)
    try:
        app = BkBenchApp(url=urls[0], demo=True, ports=urls, data_dir=tmp_path, monitor=False, poll_ports=0)
        async with app.run_test(size=(80, 24)) as pilot:
            for _ in range(50):
                await pilot.pause(0.1)
                if isinstance(app.screen, StationScreen) and len(app.station) >= 2:
                    break
            await pilot.pause(0.5)  # the scan of the machine's ports has come back
            assert isinstance(app.screen, StationScreen)
            await pilot.press("a")
            await pilot.pause(0.1)
            assert [r.url for r in app.station] == urls
            assert [r.url for r in app.station.selected()] == urls
        assert app.ports_source() == []  # the single-port view lists the demo chip only (its own row)
    finally:
        for url in urls:
            registry.unregister(url[7:])


def test_the_clipboard_message_says_when_it_may_not_reach_this_machine():
    assert clipboard_note({}) == "copied to the clipboard"
    over_ssh = clipboard_note({"SSH_CONNECTION": "10.0.0.2 50000 10.0.0.1 22"})
    assert "OSC 52" in over_ssh and "SSH" in over_ssh and "copied to the clipboard" not in over_ssh
    assert "tmux" in clipboard_note({"TMUX": "/tmp/tmux-1000/default,1,0"})


@sync
async def test_a_title_change_while_a_header_goes_away_does_not_end_the_app():
    """Seen once in ./dev test under load (test_analysis_view_after_backup): q on the analysis right after
    it opened, the app's title changed meanwhile, and Textual's Header raised NoMatches: the app ended."""
    from bkbench.tui.widgets.header import SafeHeader
    from textual.app import App
    from textual.screen import Screen
    from textual.widgets import Static
    from textual.widgets._header import HeaderTitle

    class WithHeader(Screen):
        def compose(self):
            yield SafeHeader()
            yield Static("analysis")

    app = App()
    async with app.run_test(size=(60, 10)) as pilot:
        await app.push_screen(WithHeader())
        await pilot.pause()
        await app.screen.query_one(HeaderTitle).remove()  # the screen is being taken down
        app.title = "BK7231N · connected"
        await pilot.pause(0.1)
        assert app.is_running
        app.pop_screen()
        app.sub_title = "after"
        await pilot.pause(0.1)
        assert app.is_running
