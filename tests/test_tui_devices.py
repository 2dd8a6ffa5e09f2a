"""Pilot tests: the analysis screen names the closest community device list entries at 80x24, `n` walks them,
`u` opens the config editor with the chosen entry's pins (its differences from the device listed) and refuses
an entry OpenBK would reject in one line."""

from __future__ import annotations

from pathlib import Path

from bkbench.core.analysis.device_list import DeviceListStore
from bkbench.tui.screens.analysis import AnalysisScreen
from bkbench.tui.screens.config import ConfigScreen
from test_tui_analysis import wait_for_screen
from test_tui_app import make_app, make_device, settle, sync


def cache_list(fixtures_dir: Path) -> None:
    DeviceListStore().save((fixtures_dir / "devices" / "openbk-devices.json").read_bytes(), "fixture")


async def wait_compared(pilot, screen: AnalysisScreen, tries: int = 50) -> None:
    for _ in range(tries):
        if screen.community is not None:
            break
        await pilot.pause(0.1)
    await pilot.pause(0.1)
    assert screen.community is not None, "the community list was never compared"


@sync
async def test_analysis_names_entries_and_u_opens_the_editor_with_them(fixtures_dir: Path, tmp_path: Path):
    cache_list(fixtures_dir)
    name, _dev = make_device(fixtures_dir)
    app = make_app(name, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("b")
        await settle(app, pilot)
        log = list(app.op_pane.query_one("#op-log").texts)
        assert any("community list: 22 entries agree" in line for line in log), log  # said after the backup
        await pilot.press("a")
        await wait_for_screen(pilot, AnalysisScreen)
        screen = app.screen
        assert isinstance(screen, AnalysisScreen)
        await wait_compared(pilot, screen)
        text = screen.text
        assert "Community devices (OpenBK's list)" in text and "22 of 422 BK7231N entries agree" in text
        assert "never a fact" in text and "▶ 100%" in text
        ids = [m["id"] for m in screen.community["matches"]]
        target = ids.index("aa7da527")  # the ELIVCO LSPA9 BL0937 entry, this dump's own forum thread
        for _ in range(target):
            await pilot.press("n")
        await pilot.pause(0.1)
        text = screen.text
        assert "LSPA9 Power metering plug BL0937 version" in text and "topic3887748" in text
        assert "P8     WifiLED_n (netled1_pin)   -                   only device" in text
        assert "module CB2S                      CB2S                agrees" in text
        region = screen.query_one("#analysis-community").region
        assert region.y < 24 and region.height > 0  # scrolled into view
        await pilot.press("u")
        await settle(app, pilot)  # reads the chip's config sector first
        assert isinstance(app.screen, ConfigScreen), app.last_outcome
        pins = {g: (p.role, p.channel) for g, p in app.screen.config.pins().items()}
        assert pins == {6: ("BL0937CF1", 1), 7: ("BL0937CF", 1), 10: ("Btn", 1), 24: ("BL0937SEL", 1),
                        26: ("Rel", 1)}
        assert app.screen.value("initCommandLine").startswith("backlog startDriver BL0937")
        entry_text = str(app.screen.query_one("#cfg-entry").render())
        assert "P8 WifiLED_n here (netled1_pin), not used by the entry" in entry_text


GLOBE_REPORT = {  # what `analyze` says about the Globe bulb's Tuya config (test_devices_match checks the real one)
    "chip": "BK7231T",
    "openbk": {"mapping": {"kind": "pins", "module": "WB3L", "meter": None, "pins": {
        "8": {"role": "SM2135CLK", "channel": 0, "source": "iicscl"},
        "26": {"role": "SM2135DAT", "channel": 0, "source": "iicsda"}}}},
}


@sync
async def test_u_refuses_an_entry_openbk_would_reject(fixtures_dir: Path, tmp_path: Path):
    # The Globe bulb's entry spells SM2135_CLK: compared as SM2135CLK, but never written.
    cache_list(fixtures_dir)
    app = make_app("unused", tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = AnalysisScreen(GLOBE_REPORT, "globe.bin")
        app.push_screen(screen)
        await wait_compared(pilot, screen)
        assert "Globe 35804" in screen.text
        await pilot.press("u")
        await pilot.pause(0.2)
        assert app.screen is screen  # still here
        notes = [n.message for n in app._notifications]
        assert any("SM2135_CLK" in n and "SM2135CLK" in n and "\n" not in n for n in notes), notes


@sync
async def test_analysis_without_a_list_says_how_to_get_one(tmp_path: Path):
    app = make_app("unused", tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = AnalysisScreen(GLOBE_REPORT, "globe.bin")
        app.push_screen(screen)
        await wait_compared(pilot, screen)
        assert "`bkbench fetch --devices` downloads it" in screen.text
        await pilot.press("n")
        await pilot.pause(0.1)
        assert any("No community entry" in n.message for n in app._notifications)
