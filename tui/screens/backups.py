"""Backups browser: the library's dumps with their sidecar metadata; verify or restore one.

Each entry is two lines, so that it fits 80 columns whole: when it was saved and whether it is a read or a
derived entry (a backup plus a write bkbench verified: core/backups.py), then the firmware the image holds
(judged by the analysis, core/backup_labels.py; labels not yet cached are filled in by a worker) and the file."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Static

from ..widgets.header import SafeHeader

# After the file, firmware and provenance: what tells entries apart first, the rest below (cut on a small screen).
META_ORDER = (
    "time", "sha256", "chip", "bootloader", "flash_id", "flash_size", "mac", "crc32", "tool_version", "port",
    "adapter",
)


HIDDEN = ("block_crcs", "file", "derived")  # 32 CRCs are for the engine; file and provenance are shown first
PENDING = "(looking at the image...)"


def provenance_lines(meta: dict) -> list[str]:
    """Where a derived entry's content comes from, or that a read is the chip's flash as read."""
    d = meta.get("derived")
    if not isinstance(d, dict):
        return ["read: the chip's flash as read and verified"]
    base: dict = d["from"] if isinstance(d.get("from"), dict) else {}
    first: dict = d["original"] if isinstance(d.get("original"), dict) else {}
    spans = [w for w in d.get("spans") or [] if isinstance(w, dict)]
    where = ", ".join(f"{w.get('start')}-{w.get('end')}" for w in spans[:4]) + (" ..." if len(spans) > 4 else "")
    if d.get("operation") == "read":  # a backup that read only the blocks differing from an entry
        lines = [f"derived: {base.get('file', '?')} with {where or '?'} read from the chip (the other blocks "
                 "equal to it by the chip's CRCs)"]
    else:
        lines = [f"derived, not read: {base.get('file', '?')} + {d.get('what') or 'data'} at {where or '?'} "
                 f"(a {d.get('operation', 'write')} verified on the chip)"]
    if first.get("file") and first.get("file") != base.get("file"):
        lines.append(f"original read: {first.get('file')}")
    return lines


def meta_text(entry: Any, problem: str | None = None, label: str | None = None) -> str:
    meta = dict(getattr(entry, "meta", {}) or {})
    lines = [f"file: {getattr(entry, 'path', '?')}"]
    if problem:
        lines.append(f"DAMAGED: {problem}; it is never used as a backup")
    if label:
        lines.append(f"firmware: {label}")
    lines += provenance_lines(meta)
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
    derived = meta.get("derived")
    if isinstance(derived, dict) and derived.get("checked"):
        lines.append(f"checked: {derived['checked']}")
    return "\n".join(lines)


def origin_of(entry: Any) -> str:
    return "derived" if isinstance((getattr(entry, "meta", {}) or {}).get("derived"), dict) else "read"


def entry_row(entry: Any, label: str | None = None, damaged: bool = False) -> tuple[str, str]:
    """(saved / origin, firmware / file): two lines each."""
    meta = getattr(entry, "meta", {}) or {}
    name = getattr(getattr(entry, "path", None), "name", str(getattr(entry, "path", "")))
    return (
        f"{str(meta.get('time', ''))[:16].replace('T', ' ')}\n{origin_of(entry)}",
        f"{label or PENDING}\n{'DAMAGED ' if damaged else ''}{name}",
    )


class BackupsScreen(Screen[Optional[tuple[str, Any]]]):
    """Dismisses with ("verify" | "restore" | "analyze", entry), or None when the user goes back."""

    DEFAULT_CSS = """
    BackupsScreen #backups-table { height: 1fr; min-height: 5; }
    BackupsScreen #backup-meta { height: auto; max-height: 55%; border: round $primary; padding: 0 1; }
    BackupsScreen #backups-empty { color: $text-muted; padding: 0 1; }
    BackupsScreen #backups-check { height: auto; max-height: 8; color: $warning; padding: 0 1; }
    """

    BINDINGS = [
        Binding("v", "choose('verify')", "Verify chip"),
        Binding("r", "choose('restore')", "Restore"),
        Binding("a", "choose('analyze')", "Analyze"),
        Binding("c", "check", "Check all"),
        Binding("ctrl+g,escape,q", "back", "Back"),
    ]

    def __init__(self, entries: Sequence[Any], library: Any = None, labels: Any = None) -> None:
        super().__init__()
        self.entries = list(entries)
        self.library = library  # with it, every image is checked against its sidecar on open (c: again)
        self.damaged: dict[str, str] = {}  # image path -> why
        self.report: Any = None
        if labels is None and library is not None and hasattr(library, "load"):
            from bkbench.core.backup_labels import Labels

            labels = Labels(library)
        self.labels = labels  # firmware labels (core/backup_labels.py); None: none shown
        self.label: dict[int, str] = {}  # entry index -> its firmware label, once known

    def compose(self) -> ComposeResult:
        yield SafeHeader()
        with Vertical():
            yield Label(
                f"{len(self.entries)} backup(s) in the library, newest first" if self.entries
                else "The library is empty: press Backup (b) on the main screen first.",
                id="backups-empty",
            )
            table: DataTable = DataTable(id="backups-table", cursor_type="row", zebra_stripes=True)
            table.add_columns("saved / from", "firmware / file")
            for i, entry in enumerate(self.entries):
                if self.labels is not None and (known := self.labels.cached(entry)) is not None:
                    self.label[i] = known
                table.add_row(*entry_row(entry, self.label.get(i, None if self.labels else "-")), key=str(i),
                              height=2)
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
        if self.labels is not None and len(self.label) < len(self.entries):
            self.run_worker(self._label_worker, thread=True, exclusive=True, group="library-labels")

    def _label_worker(self) -> None:
        """The firmware label of each entry not cached yet (an analysis of its image, about a second each)."""
        for i, entry in enumerate(self.entries):
            if i in self.label:
                continue
            try:
                text = self.labels.label(entry)
            except Exception:  # noqa: BLE001 - a label is only a help: never break the browser for one
                text = "not analysable"
            self.app.call_from_thread(self._set_label, i, text)

    def _set_label(self, index: int, text: str) -> None:
        self.label[index] = text
        self._update_row(index)
        if self.query_one(DataTable).cursor_row == index:
            self._show(index)

    def _update_row(self, index: int) -> None:
        entry = self.entries[index]
        cells = entry_row(entry, self.label.get(index, PENDING if self.labels else "-"),
                          str(getattr(entry, "path", "")) in self.damaged)
        table = self.query_one(DataTable)
        for col, text in enumerate(cells):
            table.update_cell_at(Coordinate(index, col), text)

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
                self._update_row(i)
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
            meta.update(meta_text(entry, self.damaged.get(str(getattr(entry, "path", ""))), self.label.get(index)))
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
