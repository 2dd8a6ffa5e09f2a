"""Pick a firmware file, see what it is and where it goes, then hand a WriteRequest to the app."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from bkbench.core.layout import layout_for
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static


@dataclass
class WriteRequest:
    path: Path
    start: int
    payload: bytes
    description: str
    includes_bootloader: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.start + len(self.payload)


def parse_offset(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    return int(text, 0)


def partitions_touched(chip: str, start: int, end: int) -> list[str]:
    return [p.name for p in layout_for(chip) if p.start < end and start < p.end]


def analyse(path: Path, chip: str, flash_size: int, offset: int | None, replace_bootloader: bool
            ) -> tuple[WriteRequest | None, str]:
    """(request or None, text for the user). Uses the engine's recognizer when it is there."""
    data = path.read_bytes()
    lines = [f"{path.name}: {len(data)} bytes (0x{len(data):X})"]
    try:
        from bkbench.core.images.recognize import plan_write, recognize
    except ImportError:
        if offset is None:
            return None, "\n".join(lines + ["Give the flash offset to write this file at."])
        req = WriteRequest(path, offset, data, f"raw data at 0x{offset:06X}")
    else:
        try:
            info = recognize(data, path.name)
            lines.append(info.summary())
            lines.extend(f"warning: {w}" for w in info.warnings)
            plan = plan_write(info, data, chip, replace_bootloader=replace_bootloader, offset=offset,
                              flash_size=flash_size)
        except Exception as exc:  # ImageError and friends: say why, refuse
            hint = getattr(exc, "hint", "")
            lines.append(f"Cannot write: {exc}" + (f" {hint}" if hint else ""))
            return None, "\n".join(lines)
        req = WriteRequest(path, plan.start, plan.payload, plan.description, plan.includes_bootloader,
                           list(info.warnings))
    parts = ", ".join(partitions_touched(chip, req.start, req.end))
    lines.append(f"→ {req.description}: 0x{req.start:06X}..0x{req.end:06X} "
                 f"({len(req.payload) // 1024} KiB) on {chip}")
    lines.append(f"  partitions: {parts}")
    return req, "\n".join(lines)


class WriteScreen(ModalScreen[Optional[WriteRequest]]):
    DEFAULT_CSS = """
    WriteScreen { align: center middle; }
    WriteScreen > #write-dialog {
        width: 100; max-width: 98%; height: auto; max-height: 98%;
        border: thick $primary; background: $panel; padding: 0 1;
    }
    WriteScreen #write-title { text-style: bold; }
    WriteScreen #write-path-row, WriteScreen #write-opts { height: auto; }
    WriteScreen #write-path { width: 1fr; }
    WriteScreen #write-offset { width: 18; }
    WriteScreen #write-info { height: auto; max-height: 10; margin: 0 0 1 0; }
    WriteScreen #write-buttons { height: auto; align-horizontal: right; }
    WriteScreen Button { margin-left: 2; }
    """

    BINDINGS = [
        Binding("ctrl+o", "go", "Continue"),
        Binding("ctrl+g,escape", "cancel", "Cancel"),
    ]

    def __init__(self, chip: str, flash_size: int, connected: bool, initial_path: str = "") -> None:
        super().__init__()
        self.chip = chip
        self.flash_size = flash_size
        self.connected = connected
        self.initial_path = initial_path
        self.request: WriteRequest | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="write-dialog"):
            chip_note = self.chip if self.connected else f"{self.chip} (assumed: connect to detect the chip)"
            yield Label(f"Write an image to the flash: {chip_note}", id="write-title")
            with Horizontal(id="write-path-row"):
                yield Input(self.initial_path, placeholder="path to a .bin (QIO, UA, dump, raw); Enter to check",
                            id="write-path")
                yield Input("", placeholder="offset (raw)", id="write-offset")
            with Horizontal(id="write-opts"):
                yield Checkbox("also replace the bootloader (QIO / dump)", id="write-boot")
            yield Static("Type a file path and press Enter.", id="write-info", markup=False)
            with Horizontal(id="write-buttons"):
                yield Button("Cancel [ctrl+g]", id="cancel")
                yield Button("Continue [ctrl+o]", id="go", variant="warning", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#write-path", Input).focus()
        if self.initial_path:
            self.check()

    def check(self) -> None:
        info = self.query_one("#write-info", Static)
        path = Path(self.query_one("#write-path", Input).value.strip()).expanduser()
        self.request = None
        if not path.is_file():
            info.update(f"No such file: {path}")
        else:
            try:
                offset = parse_offset(self.query_one("#write-offset", Input).value)
            except ValueError:
                info.update("The offset must be a number like 0x11000.")
            else:
                boot = self.query_one("#write-boot", Checkbox).value
                self.request, text = analyse(path, self.chip, self.flash_size, offset, boot)
                info.update(text)
        self.query_one("#go", Button).disabled = self.request is None

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.check()

    def on_checkbox_changed(self, _event: Checkbox.Changed) -> None:
        self.check()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "go":
            self.action_go()
        else:
            self.action_cancel()

    def action_go(self) -> None:
        if self.request is None:
            self.check()
        if self.request is not None:
            self.dismiss(self.request)

    def action_cancel(self) -> None:
        self.dismiss(None)
