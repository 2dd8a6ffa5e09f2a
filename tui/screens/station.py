"""The multi-port view: a port list with a state column, and the highlighted port's flash map, record and log.

Space selects ports, `o` backs up then writes OpenBK on every selected idle port (each chip gets the
newest cached OpenBK of its own family), `b` backs them up only, `x` cancels the highlighted port and `X`
all. With no idle port selected the keys act on the highlighted port. Escape goes back to the single-port view; the
runs go on (they are the App's workers, tui/station_ops.py). Below 110x32 the map and the log share
the lower half (`t` switches).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static
from textual.widgets.data_table import ColumnKey

from ..station import PortRun, StationModel, record_lines
from ..widgets.flashmap import FlashMapPane
from ..widgets.header import SafeHeader
from ..widgets.operation import ReflowLog, clock, human_bytes
from .confirm import ConfirmScreen

if TYPE_CHECKING:
    from ..station_ops import StationMixin

NARROW_WIDTH, NARROW_HEIGHT = 110, 32
STATE_STYLE = {"done": "bold green", "failed": "bold red", "cancelled": "yellow", "idle": "dim"}


class StationScreen(Screen):
    DEFAULT_CSS = """
    StationScreen #st-main {
        layout: grid; grid-size: 2 2; grid-columns: 76 1fr; grid-rows: auto 1fr; height: 1fr;
    }
    StationScreen #st-main > * { border: round $primary 50%; border-title-color: $text; border-title-style: bold; }
    StationScreen #st-main > *:focus-within { border: round $accent; }
    StationScreen #st-ports { column-span: 2; height: auto; max-height: 12; }
    StationScreen #st-table { height: auto; max-height: 9; }
    StationScreen #st-add { height: 1; }
    StationScreen #st-left { height: 1fr; }
    StationScreen #st-flash { height: auto; }
    StationScreen #st-detail { height: 1fr; }
    StationScreen .st-record { height: auto; max-height: 7; color: $text; }
    StationScreen #st-record-wide { margin-top: 1; }
    StationScreen #st-record { display: none; }
    StationScreen #st-log { height: 1fr; min-height: 2; background: $surface; }
    StationScreen #st-status { height: 1; background: $boost; color: $text; padding: 0 1; }
    StationScreen.-narrow #st-main { layout: vertical; }
    StationScreen.-narrow #st-ports { max-height: 9; }
    StationScreen.-narrow #st-table { max-height: 6; }
    StationScreen.-narrow #st-left, StationScreen.-narrow #st-detail { height: 1fr; }
    StationScreen.-narrow #st-record-wide { display: none; }
    StationScreen.-narrow #st-record { display: block; }
    StationScreen.-narrow.-show-log #st-left { display: none; }
    StationScreen.-narrow.-show-map #st-detail { display: none; }
    """

    BINDINGS = [
        Binding("space", "toggle_select", "Select"),
        Binding("o", "run('openbk')", "Backup+OpenBK"),
        Binding("b", "run('backup')", "Backup"),
        Binding("x", "cancel_port", "Cancel"),
        Binding("X", "cancel_all", "Cancel all"),
        Binding("a", "select_all", "All", show=False),
        Binding("t", "toggle_detail", "Map/log"),
        Binding("n", "add_port", "Add port", show=False),
        Binding("r", "rescan", "Rescan", show=False),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shown_url = ""  # the port whose map and log are drawn
        self._rows: dict[str, tuple] = {}
        self._lines_drawn = 0
        self._ready = False  # composed and mounted: events drained before that wait for on_mount

    # -- composition and layout ------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield SafeHeader(show_clock=False)
        with Container(id="st-main"):
            with Vertical(id="st-ports") as ports:
                ports.border_title = "Ports (space selects)"
                table: DataTable = DataTable(id="st-table", cursor_type="row", zebra_stripes=True)
                table.add_column(" ", key="sel", width=1)
                table.add_column("port", key="port")
                table.add_column("chip", key="chip", width=7)
                table.add_column("state", key="state")
                yield table
                add = Input(placeholder="n: add a port or URL, Enter", id="st-add", compact=True)
                yield add
            with Vertical(id="st-left") as left:
                left.border_title = "Flash map"
                yield FlashMapPane(id="st-flash")
                yield Static("", id="st-record-wide", classes="st-record", markup=False)
            with Vertical(id="st-detail") as detail:
                detail.border_title = "Log"
                yield Static("", id="st-record", classes="st-record", markup=False)
                yield ReflowLog(id="st-log", max_lines=400, wrap=True, markup=False, min_width=20)
        yield Static("", id="st-status", markup=False)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.sub_title = "multi-port"
        self.bench.station_populate()
        self._apply_layout()
        self.add_class("-show-map")
        self.query_one("#st-table", DataTable).focus()
        self.call_after_refresh(self._became_ready)

    def _became_ready(self) -> None:
        """Everything composed (the map pane's grid included): draw, then follow the runs."""
        self._ready = True
        self.show_runs(list(self.model))
        self.set_interval(0.5, self._tick)

    def on_screen_resume(self) -> None:
        self._apply_layout()
        if not self._ready:
            return
        self.show_runs(list(self.model))

    def on_resize(self) -> None:
        self._apply_layout()

    def _apply_layout(self) -> None:
        size = self.app.size
        self.set_class(size.width < NARROW_WIDTH or size.height < NARROW_HEIGHT, "-narrow")
        self.call_after_refresh(self._fit_columns)

    def _fit_columns(self) -> None:
        """The port column as wide as the longest port (within reason), the state column the rest: a table
        wider than its pane would scroll sideways and hide the state, the one column that matters."""
        table = self.query_one("#st-table", DataTable)
        width = table.scrollable_content_region.width
        if width <= 0:
            return
        fixed = 1 + 7 + 2 * 4  # the mark and chip columns, two cells of padding per column
        longest = max((len(r.url) for r in self.model), default=12)
        port = max(8, min(longest, width - fixed - 16))  # the whole port name first, 16 cells of state
        state = max(8, width - fixed - port)
        for key, w in (("port", port), ("state", state)):
            column = table.columns[ColumnKey(key)]
            if column.width != w or column.auto_width:
                column.width, column.auto_width = w, False
                table.refresh(layout=True)

    @property
    def bench(self) -> StationMixin:
        """The workbench that runs the ports (only BkBenchApp pushes this screen)."""
        return cast("StationMixin", self.app)

    @property
    def model(self) -> StationModel:
        return self.bench.station

    @property
    def narrow(self) -> bool:
        return self.has_class("-narrow")

    # -- drawing ---------------------------------------------------------------------------------
    def highlighted(self) -> PortRun | None:
        table = self.query_one("#st-table", DataTable)
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:
            return None
        return self.model.get(str(key)) if key is not None else None

    def _row(self, run: PortRun) -> tuple:
        mark = Text("●", "bold") if run.selected else Text("·", "dim")
        style = STATE_STYLE.get(run.state, "bold cyan" if run.running else "")
        return (mark, Text(run.url), run.chip or "-", Text(run.state_text, style))  # a URL is text, not markup

    def show_runs(self, runs: list[PortRun]) -> None:
        """Redraw the rows of `runs` (adding new ports) and the detail when the highlighted port is one."""
        if not self._ready:
            return
        table = self.query_one("#st-table", DataTable)
        for run in runs:
            row = self._row(run)
            key = (row[0].plain, row[1].plain, row[2], row[3].plain, str(row[3].style))
            if run.url not in self._rows:
                table.add_row(*row, key=run.url)
            elif self._rows[run.url] != key:
                for col, value in zip(("sel", "port", "chip", "state"), row):
                    table.update_cell(run.url, col, value)
            self._rows[run.url] = key
        current = self.highlighted()
        if current is not None and (current.url != self._shown_url or current in runs):
            self._show_detail(current)
        self._update_status()

    def _show_detail(self, run: PortRun) -> None:
        flash = self.query_one("#st-flash", FlashMapPane)
        log = self.query_one("#st-log", ReflowLog)
        if run.url != self._shown_url:
            self._shown_url = run.url
            self.query_one("#st-left").border_title = Text(f"Flash map: {run.url}")
            label = f" ({run.label})" if run.label else ""
            self.query_one("#st-detail").border_title = Text(f"Log: {run.url}{label}")
            log.clear()
            self._lines_drawn = 0
            flash.set_model(run.flash)
        elif flash.model is not run.flash:
            flash.set_model(run.flash)
        flash.sync()
        lines = list(run.lines)
        if self._lines_drawn > len(lines) or (len(lines) == run.lines.maxlen and self._lines_drawn):
            log.clear()  # the deque dropped old lines: draw again
            self._lines_drawn = 0
        for text in lines[self._lines_drawn:]:
            log.add(text)
        self._lines_drawn = len(lines)
        self._show_record(run)

    def _show_record(self, run: PortRun) -> None:
        text = self._record_text(run)
        for record in self.query(".st-record").results(Static):
            record.update(text)

    def _record_text(self, run: PortRun) -> str:
        st = run.op
        if run.running:
            head = f"{run.what}: {run.state}"
            parts = []
            if st.total:
                parts.append(f"{human_bytes(st.done)} / {human_bytes(st.total)}")
            if st.rate:
                parts.append(f"{human_bytes(st.rate)}/s ETA {clock(st.eta)}")
            parts.append(f"elapsed {clock(st.elapsed())}")
            return head + "\n" + "  ".join(parts)
        if run.result is not None:
            return f"{run.what}: {run.state}\n" + "\n".join(record_lines(run.result))
        return "idle: space selects, o backs up then writes OpenBK, b backs up"

    def _tick(self) -> None:
        """Twice a second: elapsed times and rates move even without events."""
        if not self.is_attached:
            return
        run = self.highlighted()
        if run is not None and run.running:
            self._show_record(run)
        self._update_status()

    def _update_status(self) -> None:
        model = self.model
        summary = model.summary() or "no ports"
        sel = len(model.selected())
        keys = "x/X cancel" if model.busy else "o backup+OpenBK · b backup"
        text = f"{len(model)} ports, {sel} selected · {summary} · space select · {keys} · esc single port"
        status = self.query_one("#st-status", Static)
        if getattr(self, "_status_text", None) != text:
            self._status_text = text
            status.update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if not self._ready:
            return
        run = self.model.get(str(event.row_key.value)) if event.row_key is not None else None
        if run is not None:
            self._show_detail(run)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_toggle_select()

    # -- actions ---------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if isinstance(self.focused, Input) and action in ("toggle_select", "run", "cancel_port", "select_all",
                                                          "toggle_detail", "add_port", "rescan", "cancel_all"):
            return False  # typing a URL: the letters are text
        if action in ("cancel_port", "cancel_all"):
            return self.model.busy
        if action == "toggle_detail":
            return self.narrow
        return True

    def action_toggle_select(self) -> None:
        run = self.highlighted()
        if run is not None:
            run.selected = not run.selected
            self.show_runs([run])

    def action_select_all(self) -> None:
        runs = list(self.model)
        everything = all(r.selected for r in runs)
        for r in runs:
            r.selected = not everything
        self.show_runs(runs)

    def _targets(self) -> list[PortRun]:
        """The selected ports that are idle; when none is, the highlighted port (a selection that is already
        running must not make the keys dead for the port under the cursor)."""
        chosen = [r for r in self.model.selected() if not r.running]
        if chosen:
            return chosen
        run = self.highlighted()
        return [run] if run is not None and not run.running else []

    def action_run(self, kind: str) -> None:
        runs = self._targets()
        if not runs:
            self.app.notify("Nothing to start: this port is running; select idle ports with space.",
                            severity="warning")
            return
        names = ", ".join(r.url for r in runs)
        if kind == "backup":
            self.bench.start_station(runs, kind)
            self.show_runs(runs)
            return
        body = (f"{len(runs)} port{'s' if len(runs) > 1 else ''}: {names}\n"
                "Each chip: a full verified backup into the library first (kept from the library when it "
                "already holds the chip's current content), then the newest cached OpenBK release for its own "
                "family (N, T, ...) is written, verified and the chip rebooted. A port fails with one line if "
                "no OpenBK for its family is cached (w, then f, fetches one); the others go on.\n"
                "x cancels the highlighted port, X all of them, between sectors.")

        def answered(yes: bool | None) -> None:
            if yes:
                self.bench.start_station(runs, kind)
                self.show_runs(runs)

        self.app.push_screen(ConfirmScreen("Back up, then write OpenBK?", body, yes="Write [y]"), answered)

    def action_cancel_port(self) -> None:
        run = self.highlighted()
        if run is None or not self.bench.cancel_station([run]):
            self.app.notify("This port is not running.")
            return
        self.show_runs([run])
        self.app.notify(f"Cancelling {run.url} after the current sector…", severity="warning", markup=False)

    def action_cancel_all(self) -> None:
        n = self.bench.cancel_station(self.model.running())
        self.show_runs(list(self.model))
        self.app.notify(f"Cancelling {n} port{'s' if n != 1 else ''} after the current sector…" if n
                        else "No port is running.", severity="warning" if n else "information")

    def action_toggle_detail(self) -> None:
        show_log = self.has_class("-show-map")
        self.set_class(show_log, "-show-log")
        self.set_class(not show_log, "-show-map")

    def action_add_port(self) -> None:
        self.query_one("#st-add", Input).focus()

    def action_rescan(self) -> None:
        self.bench.station_populate(rescan=True)
        self.show_runs(list(self.model))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        url = event.value.strip()
        if event.input.id != "st-add" or not url:
            return
        run = self.model.add(url)
        event.input.value = ""
        self.show_runs([run])
        table = self.query_one("#st-table", DataTable)
        table.move_cursor(row=table.get_row_index(run.url))  # an alias (by-id link) finds the listed name
        table.focus()

    def action_back(self) -> None:
        if isinstance(self.focused, Input):
            self.query_one("#st-table", DataTable).focus()
            return
        self.dismiss()
