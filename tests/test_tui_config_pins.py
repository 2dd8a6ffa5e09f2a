"""The config editor's pins line: OpenBK's role names offered as they are typed, a pin the chip never
applies refused with one line, BK7252's pins up to P39."""

from __future__ import annotations

import asyncio

from bkbench.core.analysis.obk_config import ObkConfig
from bkbench.tui.screens.config import ConfigScreen
from textual.app import App
from textual.widgets import Input, Static


class Host(App):
    def __init__(self, cfg: ObkConfig, chip: str) -> None:
        super().__init__()
        self.cfg, self.chip, self.result = cfg, chip, "open"

    def on_mount(self) -> None:
        def done(value) -> None:
            self.result = value

        self.push_screen(ConfigScreen(self.cfg, chip=self.chip), done)


async def _pins(chip: str, keys: str, fix: str | None = None):
    app = Host(ObkConfig.new(bytes(6), chip), chip)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        field = screen.query_one("#cfg-pins", Input)
        field.focus()
        await pilot.press(*keys)
        await pilot.pause(0.1)
        typed = field.value
        await pilot.press("ctrl+o")
        await pilot.pause(0.1)
        error = str(screen.query_one("#cfg-error", Static).render())
        hint = str(screen.query_one("#cfg-pins-hint", Static).render())
        if fix is not None and app.result == "open":
            field.value = fix
            await pilot.press("ctrl+o")
            await pilot.pause(0.1)
        return typed, error, hint, app.result


def test_roles_complete_and_a_pin_the_chip_never_applies_is_refused() -> None:
    # "P6=wif" is completed to OpenBK's WifiLED (right arrow accepts), the role matched case-blind.
    typed, error, hint, result = asyncio.run(_pins("BK7231N", [*"P6=wif", "right", *";1 P30=Rel;1"],
                                                   fix="P6=wifiLED;1 P28=bl0939_miso"))
    assert typed == "P6=wifiLED;1 P30=Rel;1"
    assert error == "Not saved: P30 is not a pin OpenBK applies on BK7231N (P0..P28)."
    assert "P0..P28" in hint
    assert isinstance(result, ObkConfig)
    assert {g: (p.role, p.channel) for g, p in result.pins().items()} == {6: ("WifiLED", 1), 28: ("BL0939_MISO", 0)}


def test_bk7252_editor_takes_pins_up_to_p39() -> None:
    typed, error, hint, result = asyncio.run(_pins("BK7252", "P39=Rel;2 P40=Rel;1", fix="P39=Rel;2"))
    assert error == "Not saved: P40 is not a pin OpenBK applies on BK7252 (P0..P39)." and "P0..P39" in hint
    assert isinstance(result, ObkConfig) and result.pins()[39].role == "Rel" and result.sector()[0x36E + 39] == 2
