"""Backups browser: the library's dumps with their sidecar metadata; verify or restore one."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Static

from ..widgets.header import SafeHeader

META_ORDER = (
    "chip", "bootloader", "flash_id", "flash_size", "mac", "time", "sha256", "crc32", "tool_version", "port",
    "adapter",
)


HIDDEN = ("block_crcs", "file")  # 32 CRCs are for the engine; the file is shown first


def meta_text(entry: Any, problem: str | None = None) -> str:
    meta = dict(getattr(entry, "meta", {}) or {})
    lines = [f"file: {getattr(entry, 'path', '?')}"]
    if problem:
        lines.append(f"DAMAGED: {problem}; it is never used as a backup")
    for key in META_ORDER + tuple(k for k in meta if k not in META_ORDER):
        if key not in meta or key in HIDDEN:
            continue
        value = meta[key]
        if key == "flash_size" and isinstance(value, int):
            value = f"{value} (0x{value:X})"
        elif key == "flash_id" and isinstance(value, (list, tuple)):
            value = " ".join(f"{b:02X}" if isinstance(b, int) else str(b) for b in value)
        elif key == "crc32" and isinstance(value, int):
            value = f"0x{value:08X}"
        lines.append(f"{key}: {value}")
    return "\n".join(lines)


def entry_row(entry: Any) -> tuple[str, ...]:
    meta = getattr(entry, "meta", {}) or {}
    size = meta.get("flash_size")
    return (
        str(meta.get("time", ""))[:19].replace("T", " "),
        str(meta.get("chip", "?")),
        str(meta.get("mac") or "-"),
        f"{size // 1024} KiB" if isinstance(size, int) else "?",
        str(meta.get("sha256", ""))[:12],
        getattr(getattr(entry, "path", None), "name", str(getattr(entry, "path", ""))),
    )


class BackupsScreen(Screen[Optional[tuple[str, Any]]]):
    """Dismisses with ("verify" | "restore" | "analyze", entry), or None when the user goes back."""

    DEFAULT_CSS = """
    BackupsScreen #backups-table { height: 1fr; min-height: 4; }
    BackupsScreen #backup-meta { height: auto; max-height: 14; border: round $primary; padding: 0 1; }
    BackupsScreen #backups-empty { color: $text-muted; padding: 1 2; }
    BackupsScreen #backups-check { height: auto; max-height: 8; color: $warning; padding: 0 1; }
    """

    BINDINGS = [
        Binding("v", "choose('verify')", "Verify chip"),
        Binding("r", "choose('restore')", "Restore"),
        Binding("a", "choose('analyze')", "Analyze"),
        Binding("c", "check", "Check all"),
        Binding("ctrl+g,escape,q", "back", "Back"),
    ]

    def __init__(self, entries: Sequence[Any], library: Any = None) -> None:
        super().__init__()
        self.entries = list(entries)
        self.library = library  # with it, every image is checked against its sidecar on open (c: again)
        self.damaged: dict[str, str] = {}  # image path -> why
        self.report: Any = None

    def compose(self) -> ComposeResult:
        yield SafeHeader()
        with Vertical():
            yield Label(
                f"{len(self.entries)} backup(s) in the library" if self.entries
                else "The library is empty: press Backup (b) on the main screen first.",
                id="backups-empty",
            )
            table: DataTable = DataTable(id="backups-table", cursor_type="row", zebra_stripes=True)
            table.add_columns("time", "chip", "MAC", "flash", "sha256", "file")
            for i, entry in enumerate(self.entries):
                table.add_row(*entry_row(entry), key=str(i))
            yield table
            yield Static("", id="backups-check", markup=False)
            yield Static("", id="backup-meta", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Backups"
        self.query_one(DataTable).focus()
        self.query_one("#backups-check", Static).display = False
        self._show(0)
        if self.library is not None and hasattr(self.library, "check"):
            self.action_check()

    def action_check(self) -> None:
        """SHA-256 of every image, orphans, stale temporaries: off the UI thread (it reads every image)."""
        if self.library is None or not hasattr(self.library, "check"):
            self.notify("No library to check.", severity="warning")
            return
        self.run_worker(self._check_worker, thread=True, exclusive=True, group="library-check")

    def _check_worker(self) -> None:
        try:
            report = self.library.check()
        except Exception as exc:  # an unreadable folder: say so, never crash the browser
            self.app.call_from_thread(self.notify, f"Library check failed: {exc}", severity="error")
            return
        self.app.call_from_thread(self._show_check, report)

    def _show_check(self, report: Any) -> None:
        self.report = report
        self.damaged = {str(p): why for p, why in report.damaged}
        box = self.query_one("#backups-check", Static)
        box.update(report.text() if not report.ok else f"all {len(report.intact)} backup(s) intact")
        box.display = True
        table = self.query_one(DataTable)
        for i, entry in enumerate(self.entries):
            if str(getattr(entry, "path", "")) in self.damaged:
                table.update_cell_at(Coordinate(i, len(entry_row(entry)) - 1), "DAMAGED " + entry_row(entry)[-1])
        self._show(table.cursor_row)

    @property
    def selected(self) -> Any | None:
        if not self.entries:
            return None
        row = self.query_one(DataTable).cursor_row
        return self.entries[max(0, min(row, len(self.entries) - 1))]

    def _show(self, index: int) -> None:
        meta = self.query_one("#backup-meta", Static)
        if 0 <= index < len(self.entries):
            entry = self.entries[index]
            meta.update(meta_text(entry, self.damaged.get(str(getattr(entry, "path", "")))))
            meta.display = True
        else:
            meta.display = False

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show(event.cursor_row)

    def action_choose(self, what: str) -> None:
        if self.selected is None:
            self.notify("No backup selected.", severity="warning")
            return
        why = self.damaged.get(str(getattr(self.selected, "path", "")))
        if why:
            self.notify(f"This backup is damaged ({why}): it is never used.", severity="error")
            return
        self.dismiss((what, self.selected))

    def action_back(self) -> None:
        self.dismiss(None)
