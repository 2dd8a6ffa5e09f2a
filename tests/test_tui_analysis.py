"""Pilot tests: the analysis view of a backup and the OpenBK config editor writing only its sector."""

from __future__ import annotations

from pathlib import Path

from bkbench.core.analysis.dump import analyze_dump
from bkbench.core.analysis.obk_config import ObkConfig
from bkbench.core.layout import OBK_CONFIG_OFFSET, SECTOR
from bkbench.tui.screens.analysis import AnalysisScreen
from bkbench.tui.screens.backups import BackupsScreen
from bkbench.tui.screens.config import ConfigScreen
from bkbench.tui.screens.confirm import ConfirmScreen
from test_tui_app import N_DUMP, make_app, make_device, settle, sync
from textual.widgets import Input


async def wait_for_screen(pilot, screen_type, tries: int = 40) -> None:
    """Give a worker up to tries x 0.1 s to push the screen (the assertion after it says if it did)."""
    for _ in range(tries):
        await pilot.pause(0.1)
        if isinstance(pilot.app.screen, screen_type):
            return


@sync
async def test_analysis_view_after_backup(fixtures_dir: Path, tmp_path: Path):
    name, _dev = make_device(fixtures_dir)
    app = make_app(name, tmp_path)
    dump = (fixtures_dir / "dumps" / N_DUMP).read_bytes()
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("a")  # nothing to analyze yet
        await pilot.pause(0.1)
        assert not isinstance(app.screen, AnalysisScreen)
        await pilot.press("b")
        await settle(app, pilot)
        await pilot.press("a")
        await wait_for_screen(pilot, AnalysisScreen)
        assert isinstance(app.screen, AnalysisScreen)
        text = app.screen.text
        # facts of this real LSPA9-clone plug (see test_analysis_dump.py for the engine's side)
        assert "BK7231N" in text and "bl_bk7231n 1.0.1" in text and "1c:90:ff:f7:c9:34" in text
        assert "Tuya SDK 2.3.3" in text and "oem_bk7231n_plug" in text
        assert "user_param_key" in text and "gw_bi" in text
        for pin in ("P26  Rel", "P10  Btn", "P24  BL0937SEL", "P7   BL0937CF ", "P6   BL0937CF1"):
            assert pin in text, pin
        assert "RX1 (flashing UART)" in text and "! P10" in text  # the button on RX1 is warned about
        assert "Tuya KV storage" in text and "0x1ED000" in text
        # secrets stay masked: no value the engine masks appears in the view
        plain = analyze_dump(dump).to_json(show_secrets=True)["tuya"]["values"]["gw_bi"]
        for key in ("uuid", "psk_key", "auth_key"):
            assert str(plain[key]) not in text
        await pilot.press("q")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, AnalysisScreen)
        # also from the backups browser
        await pilot.press("l")
        await pilot.pause(0.2)
        assert isinstance(app.screen, BackupsScreen)
        await pilot.press("a")
        await wait_for_screen(pilot, AnalysisScreen)
        assert isinstance(app.screen, AnalysisScreen)


@sync
async def test_config_editor_writes_only_the_config_sector(fixtures_dir: Path, tmp_path: Path):
    name, dev = make_device(fixtures_dir)
    before = bytes(dev.flash.data)
    offset = OBK_CONFIG_OFFSET["BK7231N"]
    app = make_app(name, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("e")
        await settle(app, pilot)
        assert isinstance(app.screen, ConfigScreen), app.last_outcome
        screen = app.screen
        assert screen.query_one("#cfg-wifi_pass", Input).password  # secrets are masked while typing
        assert screen.query_one("#cfg-mqtt_pass", Input).password
        field = screen.query_one("#cfg-wifi_ssid", Input)
        field.focus()
        field.value = ""
        await pilot.press(*"bench-net")
        screen.query_one("#cfg-wifi_pass", Input).value = "pw-not-printed"
        screen.query_one("#cfg-mqtt_host", Input).value = "192.168.1.20"
        await pilot.press("ctrl+o")
        await pilot.pause(0.2)
        assert isinstance(app.screen, ConfirmScreen)
        assert "bench-net" in str(app.screen.query_one("#confirm-body").render())
        assert "pw-not-printed" not in str(app.screen.query_one("#confirm-body").render())
        await pilot.press("y")
        await settle(app, pilot)
        assert app.last_outcome[0] == "ok", app.last_outcome
        assert "config written at 0x1D1000" in app.last_outcome[1]
    after = bytes(dev.flash.data)
    cfg = ObkConfig.parse(after[offset:offset + SECTOR])
    assert cfg.get("ssid") == "bench-net" and cfg.get("mqtt_host") == "192.168.1.20"
    assert cfg.get("pass") == "pw-not-printed" and cfg.version == 5
    changed = [a for a in range(0, len(after), SECTOR) if after[a:a + SECTOR] != before[a:a + SECTOR]]
    assert changed == [offset]  # every other sector is unchanged
    # a full backup was taken first; then the library recorded what the write left (derived, not read)
    entries = app.library.list()
    assert [e.origin for e in entries] == ["derived", "read"] and app.library.load(entries[0]) == after


@sync
async def test_config_editor_pins_from_tuya_and_cancel(fixtures_dir: Path, tmp_path: Path):
    name, dev = make_device(fixtures_dir)
    before = bytes(dev.flash.data)
    app = make_app(name, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("b")  # the Tuya mapping comes from this chip's backup
        await settle(app, pilot)
        await pilot.press("e")
        await settle(app, pilot)
        assert isinstance(app.screen, ConfigScreen)
        await pilot.press("ctrl+t")
        await pilot.pause(0.1)
        pins = app.screen.config.pins()
        assert pins[26].role == "Rel" and pins[26].channel == 1
        assert pins[24].role == "BL0937SEL" and pins[7].role == "BL0937CF" and pins[6].role == "BL0937CF1"
        assert "P26=Rel;1" in app.screen.query_one("#cfg-pins", Input).value
        await pilot.press("ctrl+g")  # cancel: the pins were edited, so it asks first
        await pilot.pause(0.2)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")  # drop them: nothing written
        await pilot.pause(0.2)
        assert not isinstance(app.screen, (ConfigScreen, ConfirmScreen))
    assert bytes(dev.flash.data) == before
