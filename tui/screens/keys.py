"""`?`: every key of the workbench on one screen (Escape, q or ? closes it)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Chip", (
        ("c", "connect: link to the bootloader (reset the chip when asked)"),
        ("o", "link doctor: listen, link, probe; says what is wrong and what to do"),
        ("b", "backup: read the whole flash into the library (a cancelled backup resumes)"),
        ("w", "write: pick firmware (browse, recent, latest OpenBK, UG/RBL converted), confirm, write, verify"),
        ("v", "verify: compare the chip with what was last written, else with its newest backup"),
        ("e", "OpenBK config editor (Wi-Fi, MQTT, pins)"),
        ("a", "analyse the newest backup (chip, firmware, Tuya keys, pins)"),
        ("l", "backups library: analyse, verify, restore"),
        ("d", "release: reboot the chip and hand the port back to the log"),
        ("x", "cancel the running operation (between sectors)"),
        ("m", "multi-port view: several chips at once (bkbench --port A --port B, --demo 3)"),
    )),
    ("Multi-port view (m)", (
        ("space / a", "select the port / all ports (with no idle port selected, o and b act on the highlighted one)"),
        ("o", "back up, then write each chip's own family's newest cached OpenBK, on every selected port"),
        ("b", "back up every selected port"),
        ("x / X", "cancel the highlighted port / all ports (between sectors)"),
        ("n, t, r", "add a port by URL, map or log (small terminal), rescan the adapters"),
        ("Escape", "back to the single-port view (the ports keep running)"),
    )),
    ("Panes and fields", (
        ("1 2 3 4", "ports, serial log, flash map, operation"),
        ("tab / shift+tab", "next / previous field or list"),
        ("ctrl+n", "next pane"),
        ("Escape", "leave a field (keys work again) / close a dialog"),
        ("ctrl+p", "command palette"),
    )),
    ("Serial log", (
        ("p", "pause / resume"),
        ("h", "hex view"),
        ("/ or ctrl+f, n", "search, next match"),
        ("ctrl+l", "clear"),
        ("ctrl+s", "save to a file"),
    )),
    ("Firmware picker (w)", (
        ("arrows, Enter", "browse; Enter picks a file"),
        ("f", "latest OpenBK for this chip (cached for offline use)"),
        ("u / backspace", "parent folder"),
        ("a / e", "analyse the file / edit the OpenBK config in it (no chip needed)"),
        ("t (analysis)", "save the OpenBK template and copy it to the clipboard"),
        ("n / p (analysis)", "walk the closest entries of OpenBK's community device list (bkbench fetch --devices)"),
        ("u (analysis)", "config editor with the selected entry's pins, flags and startup command"),
        ("ctrl+o", "write the picked file"),
    )),
    ("App", (
        ("?", "this help"),
        ("ctrl+q", "quit"),
    )),
)


def keys_table() -> Table:
    """Sections of key / what rows; long descriptions wrap inside their column."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(ratio=1)
    for i, (section, rows) in enumerate(KEYS):
        if i:
            table.add_row("", "")
        table.add_row(Text(section, "bold underline"), "")
        for key, what in rows:
            table.add_row(key, what)
    return table


def keys_plain() -> str:
    return "\n".join(f"{section}\n" + "\n".join(f"{k}  {w}" for k, w in rows) for section, rows in KEYS)


class KeysScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    KeysScreen { align: center middle; }
    KeysScreen > #keys-box {
        width: 100; max-width: 100%; height: auto; max-height: 100%;
        border: thick $primary; background: $panel; padding: 0 1;
    }
    """

    BINDINGS = [Binding("escape,q,question_mark,ctrl+g", "close", "Close")]

    def compose(self) -> ComposeResult:
        box = VerticalScroll(id="keys-box")
        box.border_title = "Keys (Escape closes)"
        with box:
            yield Static(keys_table(), id="keys-text")

    def on_mount(self) -> None:
        self.query_one("#keys-box").focus()

    @property
    def text(self) -> str:
        return keys_plain()

    def action_close(self) -> None:
        self.dismiss(None)
