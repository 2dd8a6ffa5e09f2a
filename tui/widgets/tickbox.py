"""A check box that shows its state by its mark, not by colour alone."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Checkbox


class TickBox(Checkbox):
    """Textual's Checkbox draws `▐X▌` ticked or not (only the X's colour changes), so "replace the bootloader
    too" read as ticked in a terminal whose colours do not show it (issue 22). Unticked, the box is empty."""

    def render(self) -> Content:
        # Textual's class constant, set per box from its value just before the box is drawn (a value change
        # repaints it).
        self.BUTTON_INNER = "X" if self.value else " "
        return super().render()
