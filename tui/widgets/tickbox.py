"""A check box that shows its state by its mark, not by colour alone."""

from __future__ import annotations

from textual.widgets import Checkbox


class TickBox(Checkbox):
    """Textual's Checkbox draws `▐X▌` ticked or not (only the X's colour changes), so "replace the bootloader
    too" read as ticked in a terminal whose colours do not show it (issue 22). Unticked, the box is empty."""

    @property
    def BUTTON_INNER(self) -> str:  # noqa: N802 - overrides Textual's class constant
        return "X" if self.value else " "
