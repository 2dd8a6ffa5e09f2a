"""Textual's Header, without its crash on a screen that is going away."""

from __future__ import annotations

from textual.css.query import NoMatches
from textual.dom import NoScreen
from textual.events import Mount
from textual.widgets import Header
from textual.widgets._header import HeaderTitle


class SafeHeader(Header):
    """Header watches the app's title; when the title changed just as a screen with a Header was closed
    (q on the analysis right after it opened, on a busy machine), the update found its title widget
    already removed and Textual's NoMatches ended the whole app. The same update, minus that."""

    def _on_mount(self, event: Mount) -> None:
        event.prevent_default()  # instead of Header._on_mount, which registers the same four watchers

        async def set_title() -> None:
            try:
                self.query_one(HeaderTitle).update(self.format_title())
            except (NoScreen, NoMatches):  # the header (or its title) is already gone
                pass

        self.watch(self.app, "title", set_title)
        self.watch(self.app, "sub_title", set_title)
        self.watch(self.screen, "title", set_title)
        self.watch(self.screen, "sub_title", set_title)
