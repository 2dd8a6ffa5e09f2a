"""Keys typed into fields (issue 22, item 6): the Reset method is a choice, a focused field looks like one,
a Tab right after typing (a paste) moves on, and the config confirmation never shows a password.

Built-in demo plug only (no ../shared needed)."""

from __future__ import annotations

import itertools
from pathlib import Path

from bkbench.core.analysis.obk_config import ObkConfig
from bkbench.core.layout import OBK_CONFIG_OFFSET, SECTOR
from bkbench.core.link import reset as reset_mod
from bkbench.core.sim import registry
from bkbench.tui.app import BkBenchApp
from bkbench.tui.screens.config import ConfigScreen, confirm_text
from bkbench.tui.screens.confirm import ConfirmScreen
from bkbench.tui.widgets.ports import CUSTOM
from bkbench.tui.widgets.tickbox import TickBox
from test_tui_app import settle, sync
from textual import events
from textual.color import Color
from textual.widgets import Input, Select

_names = itertools.count()


def demo_app(tmp_path: Path, reset: str = "dtr-rts") -> tuple[BkBenchApp, object]:
    from bkbench.core.demo_image import demo_flash

    name = f"fields{next(_names)}"
    dev = registry.create_device(chip="BK7231N", scenario="app-running", wiring="rts")
    dev.flash.data[:] = demo_flash()
    registry.register(name, dev)
    app = BkBenchApp(url=f"sim://@{name}", data_dir=tmp_path, ports_source=lambda: [], monitor=False,
                     poll_ports=0, reset=reset)
    return app, dev


def burst(app: BkBenchApp, keys: list[str]) -> None:
    """Keys as a paste or `tmux send-keys` delivers them: all queued before the first is handled."""
    for key in keys:
        app.post_message(events.Key(key, "\t" if key == "tab" else key))


async def open_editor(app: BkBenchApp, pilot) -> ConfigScreen:
    await pilot.press("e")
    await settle(app, pilot)
    for _ in range(40):
        if isinstance(app.screen, ConfigScreen):
            break
        await pilot.pause(0.1)
    assert isinstance(app.screen, ConfigScreen), app.last_outcome
    return app.screen


def value(screen: ConfigScreen, field: str) -> str:
    return screen.query_one(f"#cfg-{field}", Input).value


@sync
async def test_a_tab_right_after_typing_goes_to_the_next_field_and_no_keeps_the_edits(tmp_path: Path):
    app, dev = demo_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_editor(app, pilot)
        screen.query_one("#cfg-wifi_ssid", Input).focus()
        await pilot.pause(0.1)
        burst(app, [*"MyWiFi", "tab", *"hunter22"])
        await pilot.pause(0.3)
        assert (value(screen, "wifi_ssid"), value(screen, "wifi_pass")) == ("MyWiFi", "hunter22")
        await pilot.press("ctrl+o")
        await pilot.pause(0.2)
        assert isinstance(app.screen, ConfirmScreen)
        body = str(app.screen.query_one("#confirm-body").render())
        assert "Wi-Fi MyWiFi (password: 8 characters)" in body and "hunter22" not in body
        # the keys on the buttons are shown (as markup, "[y]" was read as a style tag and vanished)
        assert [str(b.label) for b in app.screen.query("Button")] == ["Back to the edits [n]", "Write [y]"]
        await pilot.press("n")  # "No": back to the editor, the edits still there
        await pilot.pause(0.2)
        assert app.screen is screen and value(screen, "wifi_pass") == "hunter22"
        await pilot.press("ctrl+o")
        await pilot.pause(0.2)
        await pilot.press("y")
        await settle(app, pilot)
        assert app.last_outcome[0] == "ok", app.last_outcome
    offset = OBK_CONFIG_OFFSET["BK7231N"]
    cfg = ObkConfig.parse(bytes(dev.flash.data[offset:offset + SECTOR]))
    assert (cfg.get("wifi_ssid"), cfg.get("wifi_pass")) == ("MyWiFi", "hunter22")


@sync
async def test_a_paste_with_tabs_fills_the_next_fields(tmp_path: Path):
    app, _ = demo_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_editor(app, pilot)
        field = screen.query_one("#cfg-wifi_ssid", Input)
        field.focus()
        await pilot.pause(0.1)
        field.post_message(events.Paste("Home\tpass1234"))
        await pilot.pause(0.2)
        assert (value(screen, "wifi_ssid"), value(screen, "wifi_pass")) == ("Home", "pass1234")
        assert app.focused is screen.query_one("#cfg-wifi_ssid2", Input)  # on to the field after them
        app.focused.post_message(events.Paste("Second"))  # a plain paste is a plain paste
        await pilot.pause(0.2)
        assert value(screen, "wifi_ssid2") == "Second"


def test_the_confirmation_never_shows_a_password_even_typed_into_the_ssid():
    cfg = ObkConfig.new()
    cfg.set("wifi_ssid", "MyWiFihunter22")  # what the lost Tab made of it
    cfg.set("wifi_pass", "hunter22")
    text = confirm_text(cfg, "BK7231N", 0x1D1000)
    assert "hunter22" not in text and "(password: 8 characters)" in text
    cfg.set("wifi_pass", "")
    assert "(password: none)" in confirm_text(cfg, "BK7231N", 0x1D1000)


@sync
async def test_reset_is_a_choice_of_the_presets_keys_do_not_change_it_custom_is_checked(tmp_path: Path,
                                                                                          monkeypatch):
    monkeypatch.setitem(reset_mod.PRESETS, "power-test", reset_mod.PRESETS["manual"])  # a method added there
    app, _ = demo_app(tmp_path, reset="auto")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("1")
        select = app.query_one("#reset", Select)
        offered = [str(label) for label, _ in select._options]
        assert offered[0] == "auto" and offered[-1] == CUSTOM
        assert set(reset_mod.PRESETS) | {CUSTOM} == set(offered)  # the engine's presets, not a copy
        select.focus()
        await pilot.pause(0.1)
        burst(app, ["x", "z"])  # keys typed while the Reset choice has focus (x: cancel, z: nothing)
        await pilot.pause(0.2)
        assert select.value == "auto" and app.reset == "auto"
        select.value = CUSTOM
        await pilot.pause(0.2)
        custom = app.query_one("#reset-custom", Input)
        assert custom.display and app.focused is custom  # the field opens, with the focus
        await pilot.press(*"R1|W0.1")
        await pilot.pause(0.1)
        assert custom.has_class("-invalid") and "RTS asserted" in str(custom.border_subtitle)
        await pilot.press(*"|R0", "enter")
        await pilot.pause(0.1)
        assert not custom.has_class("-invalid") and app.reset == "R1|W0.1|R0"
        select.value = "manual"
        await pilot.pause(0.1)
        assert not custom.display and app.reset == "manual"


@sync
async def test_a_focused_field_looks_like_one_and_the_status_line_says_keys_go_into_it(tmp_path: Path):
    app, _ = demo_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("1")
        url = app.query_one("#port-url", Input)
        blurred = (url.styles.border_top, url.styles.background)
        url.focus()
        await pilot.pause(0.7)  # the status line is refreshed twice a second
        assert url.styles.border_top != blurred[0] and url.styles.background != blurred[1]
        assert url.styles.border_top[1] == Color.parse(app.get_css_variables()["accent"])
        line = str(app.query_one("#statusline").render())
        assert line.startswith("typing in Port or URL") and "Esc" in line
        await pilot.press("escape")
        await pilot.pause(0.7)
        assert not str(app.query_one("#statusline").render()).startswith("typing in")


@sync
async def test_an_unticked_box_is_empty():
    from textual.app import App

    class One(App):
        def compose(self):
            yield TickBox("replace the bootloader too", compact=True)

    app = One()
    async with app.run_test(size=(40, 3)) as pilot:
        box = app.query_one(TickBox)
        assert box.render().plain.startswith("▐ ▌")
        box.value = True
        await pilot.pause()
        assert box.render().plain.startswith("▐X▌")


@sync
async def test_a_key_whose_action_is_off_says_why(tmp_path: Path):
    """`a` with no backup to analyze (hidden from the footer) answered nothing (issue 22)."""
    app, _ = demo_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("a")
        await pilot.pause(0.2)
        said = [n.message for n in app._notifications]
        assert any(m.startswith("Nothing to analyze yet") for m in said), said
        await pilot.press("v")
        await pilot.pause(0.2)
        assert any(n.message.startswith("Nothing to verify against yet") for n in app._notifications)
