"""Ports pane: live port list (polled in a worker thread), a URL field, the baud and the reset method."""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from bkbench.core.link.baud import SUPPORTED_BAUDS
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Label, Select
from textual.worker import get_current_worker

from .tickbox import TickBox

BAUDS = SUPPORTED_BAUDS  # exactly the rates the session takes
CUSTOM = "custom..."  # the Reset choice that opens a field for a sequence, a GPIO line or a combination
CUSTOM_EXAMPLES = "R1|W0.1|R0, gpio:GPIO17, dtr-rts+reboot"


def reset_presets() -> list[str]:
    """The reset methods to choose from: core.link.reset's presets (auto first), so a method added there
    is offered here too."""
    from bkbench.core.link.reset import PRESETS

    return sorted(PRESETS, key=lambda name: name != "auto")


def reset_problem(spec: str) -> str:
    """Why `spec` is not a reset method the engine accepts ("" when it is); nothing is touched."""
    from bkbench.core.errors import BkError
    from bkbench.core.link.reset import get_strategy

    if not spec.strip():
        return "type a reset method"
    try:
        get_strategy(spec)
    except (BkError, ValueError) as exc:
        return str(exc)
    return ""

PortsSource = Callable[[], Sequence[Any]]


def default_ports_source() -> list[Any]:
    try:
        from bkbench.core.ports import list_ports
        from bkbench.core.remote_ports import remote_ports
    except ImportError:  # engine not there yet: offer the URL field only
        return []
    # Remote ports (config.json) are listed, not probed: a probe makes ser2net open the adapter each poll.
    return list(list_ports()) + remote_ports()


def port_row(p: Any) -> tuple[str, str, str, str, str]:
    vid, pid = getattr(p, "vid", None), getattr(p, "pid", None)
    vidpid = f"{vid:04x}:{pid:04x}" if vid is not None and pid is not None else "-"
    in_use = getattr(p, "in_use", None)
    use = "in use" if in_use else ("" if in_use is not None else "?")
    adapter = getattr(p, "adapter", "") or getattr(p, "description", "") or getattr(p, "kind", "")
    if getattr(p, "kind", "") == "remote":  # ser2net port from config.json: its name says more than the scheme
        adapter = f"remote: {getattr(p, 'description', '')}"
    by_id = getattr(p, "by_id", "") or ""
    return (p.device, str(adapter), vidpid, use, str(by_id).rsplit("/", 1)[-1])


class PortsPane(Vertical):
    DEFAULT_CSS = """
    PortsPane { height: 1fr; }
    PortsPane DataTable { height: 1fr; min-height: 3; }
    PortsPane #port-row, PortsPane #link-row { height: 3; }
    PortsPane #port-url { width: 1fr; }
    PortsPane #baud { width: 16; }
    PortsPane #reset { width: 1fr; }
    PortsPane #reset-custom { height: 3; display: none; }
    PortsPane #reset-custom.-shown { display: block; }
    PortsPane #reset-custom.-invalid { border: tall $error; }
    PortsPane #port-url, PortsPane #reset-custom, PortsPane SelectCurrent { border-title-color: $text-muted; }
    PortsPane #keep-trying { height: 1; border: none; padding: 0; }
    PortsPane #ports-empty { color: $text-muted; height: auto; }
    """

    class Chosen(Message):
        """The user picked or typed a port URL (Enter), or changed the baud or the reset method."""

        def __init__(self, url: str, baud: int, reset: str = "auto", keep_trying: bool = True) -> None:
            super().__init__()
            self.url = url
            self.baud = baud
            self.reset = reset
            self.keep_trying = keep_trying

    def __init__(
        self,
        url: str = "",
        baud: int = 921600,
        source: PortsSource | None = None,
        extra: Sequence[Any] = (),
        poll: float = 1.5,
        reset: str = "auto",
        keep_trying: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self._initial_keep = keep_trying
        self._initial_url = url
        self._initial_reset = reset
        self._initial_baud = baud if baud in BAUDS else 921600
        self.source = source or default_ports_source
        self.extra = list(extra)  # e.g. the demo chip, always listed
        self.poll = poll
        self.ports: list[Any] = []
        self._shown: list[tuple] | None = None  # None: nothing drawn yet (an empty list must still say so)

    def compose(self) -> ComposeResult:
        table: DataTable = DataTable(id="ports-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("port", "adapter", "VID:PID", "use", "by-id")
        yield Label("", id="ports-empty")
        yield table
        with Horizontal(id="port-row"):
            url = Input(self._initial_url, placeholder="/dev/ttyUSB0, rfc2217://host:port, sim://", id="port-url")
            url.border_title = "Port or URL"
            yield url
        with Horizontal(id="link-row"):
            baud = Select([(str(b), b) for b in BAUDS], value=self._initial_baud, allow_blank=False, id="baud")
            baud.tooltip = "Flashing baud rate (the link itself always starts at 115200)"
            yield baud
            # A choice, not a text field: keys typed after a Tab must not turn "auto" into "bc" (issue 22).
            presets = reset_presets()
            preset = self._initial_reset if self._initial_reset in presets else CUSTOM
            reset = Select([(name, name) for name in presets] + [(CUSTOM, CUSTOM)], value=preset,
                           allow_blank=False, id="reset")
            reset.tooltip = ("How bkbench resets the chip into its bootloader: " + ", ".join(presets)
                             + f"; {CUSTOM} for a DTR/RTS sequence or a GPIO line")
            yield reset
        custom = Input(self._initial_reset if preset == CUSTOM else "", placeholder=CUSTOM_EXAMPLES,
                       id="reset-custom", classes="-shown" if preset == CUSTOM else "")
        custom.border_title = "Custom reset"
        yield custom
        keep = TickBox("manual reset: keep trying until x", self._initial_keep, compact=True, id="keep-trying")
        keep.tooltip = "Off: a link gives up after 20 s. On: it waits for your reset until you cancel (x)."
        yield keep

    def on_mount(self) -> None:
        self.query_one("#baud", Select).query_one("SelectCurrent").border_title = "Baud"
        self.query_one("#reset", Select).query_one("SelectCurrent").border_title = "Reset"
        self._check_custom()
        self.show_ports(list(self.extra) + self._safe_list())
        if self.poll > 0:
            self.watch_ports()

    @property
    def url(self) -> str:
        return self.query_one("#port-url", Input).value.strip()

    @property
    def baud(self) -> int:
        value = self.query_one("#baud", Select).value
        return int(value) if isinstance(value, int) else self._initial_baud

    @property
    def reset(self) -> str:
        choice = self.query_one("#reset", Select).value
        if choice == CUSTOM:
            return self.query_one("#reset-custom", Input).value.strip() or "auto"
        return str(choice) if isinstance(choice, str) else "auto"

    def _check_custom(self) -> None:
        """The custom field says at once whether the engine takes what is typed (parsed, nothing touched)."""
        field = self.query_one("#reset-custom", Input)
        problem = reset_problem(field.value) if field.has_class("-shown") else ""
        field.set_class(bool(problem) and bool(field.value.strip()), "-invalid")
        field.border_subtitle = problem if field.value.strip() else f"e.g. {CUSTOM_EXAMPLES}"
        field.tooltip = problem or None  # the whole reason: the border shows its start in a narrow pane

    @property
    def keep_trying(self) -> bool:
        return self.query_one("#keep-trying", TickBox).value

    def chosen(self) -> PortsPane.Chosen:
        return self.Chosen(self.url, self.baud, self.reset, self.keep_trying)

    def set_url(self, url: str) -> None:
        self.query_one("#port-url", Input).value = url

    def _safe_list(self) -> list[Any]:
        try:
            return list(self.source())
        except Exception:  # a flaky sysfs read must not kill the poller
            return []

    @work(thread=True, exclusive=True, group="ports", exit_on_error=False)
    def watch_ports(self) -> None:
        """Poll the port list; hand changes (plug/unplug) to the UI thread."""
        worker = get_current_worker()
        last: list[tuple] | None = None
        while not worker.is_cancelled:
            ports = list(self.extra) + self._safe_list()
            rows = [port_row(p) for p in ports]
            if rows != last:
                last = rows
                self.app.call_from_thread(self.show_ports, ports)
            for _ in range(int(self.poll * 10)):
                if worker.is_cancelled:
                    return
                time.sleep(0.1)

    def show_ports(self, ports: list[Any]) -> None:
        rows = [port_row(p) for p in ports]
        if rows == self._shown:
            return
        self._shown = rows
        self.ports = ports
        table = self.query_one(DataTable)
        table.clear()
        for row in rows:  # Text: names and descriptions are the user's words, never markup
            table.add_row(*(Text(cell) for cell in row), key=row[0])
        empty = self.query_one("#ports-empty", Label)
        empty.update("" if rows else "No serial ports found: type a URL below.")
        empty.display = not rows
        if not self.url and rows:
            self.set_url(rows[0][0])

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.set_url(str(event.row_key.value))
            self.post_message(self.chosen())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "reset-custom" and event.input.has_class("-invalid"):
            self.notify(f"Reset: {reset_problem(event.input.value)}", severity="warning")
        if event.input.id in ("port-url", "reset-custom"):
            self.post_message(self.chosen())

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "reset-custom":  # takes effect at the next Connect, no Enter needed
            self._check_custom()
            self.post_message(self.chosen())

    def on_input_blurred(self, event: Input.Blurred) -> None:
        """A URL typed without Enter is the one Connect uses (fields commit when they lose focus)."""
        if event.input.id in ("port-url", "reset-custom"):
            self.post_message(self.chosen())

    def on_checkbox_changed(self, event: TickBox.Changed) -> None:
        self.post_message(self.chosen())

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "reset":
            custom = self.query_one("#reset-custom", Input)
            custom.set_class(event.value == CUSTOM, "-shown")
            self._check_custom()
            if event.value == CUSTOM and self.is_attached and self.app.focused is event.select:
                custom.focus()  # chose "custom...": the field to type in, visibly focused
        if event.select.id in ("baud", "reset"):
            self.post_message(self.chosen())
