"""The main screen: four panes (ports, serial log, flash map, operation) in a 2x2 grid, or one at a time
with tabs on a small terminal.

In the wide layout the Operation pane takes the log's place while a link diagnosis is shown (the log has
nothing new while linking); `2` brings the log back. The styles live in ../app.tcss (the app's CSS_PATH).
"""

from __future__ import annotations

from typing import cast

from textual.app import ComposeResult
from textual.containers import Container
from textual.screen import Screen
from textual.widgets import Footer, Input, Static, Tab, Tabs

from ..demo import DEMO_URL
from ..state import AppState
from ..widgets.flashmap import FlashMapPane
from ..widgets.header import SafeHeader
from ..widgets.operation import OperationPane, clock, human_bytes
from ..widgets.ports import PortsPane
from ..widgets.seriallog import SerialLogPane

PANES = ("ports", "log", "flash", "op")
PANE_TITLES = {"ports": "Ports", "log": "Serial log", "flash": "Flash map", "op": "Operation"}
NARROW_WIDTH = 110  # below this (or 32 rows) one pane at a time, chosen with tabs


class MainScreen(Screen):
    """The default screen; tells the app when the terminal size changes (to switch layouts)."""

    def on_resize(self) -> None:
        app = cast(AppState, self.app)
        app.call_after_refresh(app._apply_layout)


class MainLayoutMixin(AppState):
    """BkBenchApp's main-screen layout: composition, wide / narrow switching, pane focus, status line."""

    def compose(self) -> ComposeResult:
        yield SafeHeader(show_clock=False)
        yield Tabs(*(Tab(f"{i + 1} {PANE_TITLES[p]}", id=f"tab-{p}") for i, p in enumerate(PANES)), id="tabs")
        with Container(id="main"):
            extra = []
            if self.demo:
                from bkbench.core.ports import PortInfo

                extra = [PortInfo(DEMO_URL, "simulated BK7231N", adapter="demo chip", kind="sim")]
            ports = PortsPane(self.url, self.baud, source=self.ports_source, extra=extra,
                              poll=self.poll_ports, reset=self.reset, keep_trying=self.keep_trying,
                              id="pane-ports")
            ports.border_title = "1 Ports"
            yield ports
            flash = FlashMapPane(self.flash_model, id="pane-flash")
            flash.border_title = "3 Flash map"
            yield flash
            op = OperationPane(id="pane-op")
            op.border_title = "4 Operation"
            yield op
            log = SerialLogPane(self.log_buffer, save_dir=self.logs_dir, id="pane-log")
            log.border_title = "2 Serial log"
            yield log
        yield Static("", id="statusline", markup=False)
        yield Footer(compact=True, show_command_palette=False)
    def get_default_screen(self) -> Screen:
        return MainScreen(id="_default")

    @property
    def narrow(self) -> bool:
        return self.size.width < NARROW_WIDTH or self.size.height < 32

    def _apply_layout(self) -> None:
        main = self._main_screen
        if main is None or not main.is_attached:
            return
        main.set_class(self.narrow, "-narrow")
        self._sync_diag_layout()
        for pane in PANES:
            main.query_one(f"#pane-{pane}").set_class(pane == self.active_pane, "-active")
        tabs = main.query_one(Tabs)
        if tabs.active != f"tab-{self.active_pane}":
            tabs.active = f"tab-{self.active_pane}"

    def _sync_diag_layout(self) -> None:
        """Wide layout: the Operation pane takes the log's place while a diagnosis is shown."""
        main = self._main_screen
        if main is None or not main.is_attached:
            return
        op = main.query_one(OperationPane)
        main.set_class(not self.narrow and op.diagnosis_shown and not self._prefer_log, "-diag")

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        # Ignore stale activations (we set tabs.active ourselves in _apply_layout): answering them
        # would ping-pong between two panes forever.
        if event.tab is None or not event.tab.id or event.tab.id != event.tabs.active:
            return
        pane = event.tab.id[len("tab-"):]
        if pane != self.active_pane:
            self.show_pane(pane)

    def show_pane(self, pane: str) -> None:
        self.active_pane = pane
        self._apply_layout()


    def action_pane(self, pane: str) -> None:
        if pane == "log":
            self._prefer_log = True
        self.show_pane(pane)
        target = {"ports": "#ports-table", "log": "#log-view", "flash": "#fm-grid", "op": "#op-log"}[pane]
        self.query_one(target).focus()

    def action_next_pane(self) -> None:
        self.action_pane(PANES[(PANES.index(self.active_pane) + 1) % len(PANES)])

    @property
    def flash_pane(self) -> FlashMapPane:
        return self.query_one(FlashMapPane)

    @property
    def op_pane(self) -> OperationPane:
        return self.query_one(OperationPane)

    @property
    def log_pane(self) -> SerialLogPane:
        return self.query_one(SerialLogPane)

    @property
    def ports_pane(self) -> PortsPane:
        return self.query_one(PortsPane)

    def _update_statusline(self) -> None:
        if not self._main_attached():
            return
        st = self.op_pane.state
        field = self.focused
        if isinstance(field, Input):  # keys go into the field, not to the workbench: say so (issue 22)
            name = str(field.border_title or field.placeholder or "a field")
            text = f"typing in {name} · Enter: use it · Esc: leave the field (then c, b, w ... are keys again)"
        elif self.busy:
            pct = f"{100 * st.done // st.total}%" if st.total else ""
            rate = f"{human_bytes(st.rate)}/s" if st.rate else ""
            text = f"{self.op_name}: {st.stage} {pct} {rate} ETA {clock(st.eta)}  [x cancel]"
        elif self.session is not None:
            chip = getattr(self.chip_info, "chip", "the chip")
            text = f"{chip} waits in its bootloader · b backup · w write · d release · ? keys · ^q quit"
        elif self.last_outcome:
            text = f"? keys · ^q quit · last: {self.last_outcome[1]}"
        else:
            text = "Not connected · c connect · o link doctor · w pick firmware · ? keys · ^q quit"
        if text != getattr(self, "_statusline_text", None):  # an unchanged update still re-lays it out
            self._statusline_text = text
            self.query_one("#statusline", Static).update(text)

    def _main_attached(self) -> bool:
        """False while the app shuts down: the screens go before the app's timers stop."""
        main = self._main_screen
        if not (self.is_running and main is not None and main.is_attached):
            return False
        # Checked 10 times a second: keep the widget instead of searching the DOM for it each time.
        line = getattr(self, "_statusline_widget", None)
        if line is None or not line.is_attached:
            found = main.query("#statusline")
            if not found:
                return False
            self._statusline_widget = found.first()
        return True

    def action_log(self, action: str) -> None:
        getattr(self.log_pane, f"action_{action}")()
