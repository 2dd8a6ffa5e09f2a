"""Flash memory map: one cell per 4 KiB sector, drawn with the Line API.

The model (FlashMapModel) is plain Python so tests and the event pump can update it without a
running app; the widget only draws it. Each cell carries two cues: the partition as background colour
(plus its letter on the partition's first sector) and the sector state as a glyph *and* a colour, so
the map still reads on 8-colour and NO_COLOR terminals.
"""

from __future__ import annotations

from typing import Iterable

from bkbench.core.chips import DEFAULT_CHIP
from bkbench.core.layout import FLASH_2M, SECTOR, Partition, layout_for
from bkbench.core.ops.events import SectorState
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

STATE_GLYPH: dict[SectorState, str] = {
    SectorState.PENDING: "·",
    SectorState.READ: "○",
    SectorState.VERIFIED: "●",
    SectorState.ERASED: "-",
    SectorState.WRITTEN: "+",
    SectorState.SKIPPED: "=",
    SectorState.FAILED: "X",
    SectorState.BLANK: "_",
}
STATE_LABEL: dict[SectorState, str] = {SectorState.BLANK: "erased, vouched by chip CRCs (not transferred)"}

PART_LETTER: dict[str, str] = {
    "bootloader": "B",
    "app": "A",
    "ota": "O",
    "rf": "R",
    "obk_config": "C",
    "net": "N",
    "obk_vars": "V",
    "free": "F",
    "tuya_kv": "K",
}

_STATES = list(SectorState)
_STATE_CODE = {s: i for i, s in enumerate(_STATES)}
ADDR_WIDTH = 9  # "0x1D0000 "


class FlashMapModel:
    """Sector states and partitions of one flash chip; cheap bulk updates with dirty tracking."""

    def __init__(self, chip: str = DEFAULT_CHIP, flash_size: int = FLASH_2M) -> None:
        self.chip = chip
        self.flash_size = flash_size
        self.sectors = max(1, flash_size // SECTOR)
        self._states = bytearray(self.sectors)  # codes into _STATES; 0 = pending
        self.partitions: tuple[Partition, ...] = ()
        self._part_index: list[int] = []
        self.from_analysis = False  # partitions found in a dump rather than the chip's default layout
        self._index_partitions(tuple(p for p in layout_for(chip) if p.start < flash_size))
        self.dirty: set[int] = set(range(self.sectors))
        self.version = 0

    def _index_partitions(self, partitions: tuple[Partition, ...]) -> None:
        self.partitions = partitions
        self._part_index = [-1] * self.sectors
        for i, part in enumerate(partitions):
            for s in range(part.start // SECTOR, min(self.sectors, part.end // SECTOR)):
                self._part_index[s] = i

    def set_partitions(self, partitions: Iterable[Partition]) -> bool:
        """Use the partitions an analysis found; True when they differ from what is drawn."""
        found = tuple(p for p in partitions if p.start < self.flash_size)
        key = [(p.kind, p.start, p.size) for p in found]
        if not found or key == [(p.kind, p.start, p.size) for p in self.partitions]:
            return False
        self._index_partitions(found)
        self.from_analysis = True
        self.dirty = set(range(self.sectors))
        self.version += 1
        return True

    # -- queries ---------------------------------------------------------------------------------
    def state(self, sector: int) -> SectorState:
        return _STATES[self._states[sector]]

    def state_at(self, addr: int) -> SectorState:
        return self.state(addr // SECTOR)

    def partition(self, sector: int) -> Partition | None:
        idx = self._part_index[sector]
        return self.partitions[idx] if idx >= 0 else None

    def partition_at(self, addr: int) -> Partition | None:
        return self.partition(addr // SECTOR)

    def is_partition_start(self, sector: int) -> bool:
        part = self.partition(sector)
        return part is not None and part.start == sector * SECTOR

    def counts(self) -> dict[SectorState, int]:
        out = dict.fromkeys(_STATES, 0)
        for code in self._states:
            out[_STATES[code]] += 1
        return out

    def ranges(self, states: Iterable[SectorState]) -> list[tuple[int, int]]:
        """Merged half-open byte ranges of sectors in any of `states`."""
        codes = {_STATE_CODE[s] for s in states}
        out: list[tuple[int, int]] = []
        for i, code in enumerate(self._states):
            if code in codes:
                start = i * SECTOR
                if out and out[-1][1] == start:
                    out[-1] = (out[-1][0], start + SECTOR)
                else:
                    out.append((start, start + SECTOR))
        return out

    def describe(self, sector: int) -> str:
        addr = sector * SECTOR
        part = self.partition(sector)
        where = f"{part.name} (0x{part.start:06X}+0x{part.size:X})" if part else "outside the layout"
        return f"0x{addr:06X}  sector {sector}  {where}  {self.state(sector).value}"

    # -- updates ---------------------------------------------------------------------------------
    def set_state(self, addr: int, state: SectorState, size: int = SECTOR) -> None:
        code = _STATE_CODE[state]
        first = max(0, addr // SECTOR)
        last = min(self.sectors, (addr + max(size, 1) + SECTOR - 1) // SECTOR)
        for s in range(first, last):
            if self._states[s] != code:
                self._states[s] = code
                self.dirty.add(s)
        self.version += 1

    def reset(self, state: SectorState = SectorState.PENDING) -> None:
        self._states[:] = bytes([_STATE_CODE[state]]) * self.sectors
        self.dirty = set(range(self.sectors))
        self.version += 1

    def take_dirty(self) -> set[int]:
        dirty, self.dirty = self.dirty, set()
        return dirty


class FlashMap(Widget, can_focus=True):
    """The sector grid. Arrow keys / mouse move the cursor; the pane shows what is under it."""

    COMPONENT_CLASSES = {
        "flashmap--addr",
        "flashmap--cursor",
        *(f"flashmap--p-{k}" for k in PART_LETTER),
        *(f"flashmap--s-{s.value}" for s in SectorState),
    }

    DEFAULT_CSS = """
    FlashMap { height: auto; width: 1fr; }
    FlashMap > .flashmap--addr { color: $text-muted; }
    FlashMap > .flashmap--cursor { text-style: reverse bold; }
    FlashMap > .flashmap--p-bootloader { background: $error-darken-2; }
    FlashMap > .flashmap--p-app { background: $primary-darken-2; }
    FlashMap > .flashmap--p-ota { background: $secondary-darken-1; }
    FlashMap > .flashmap--p-rf { background: $warning-darken-3; }
    FlashMap > .flashmap--p-obk_config { background: $success-darken-2; }
    FlashMap > .flashmap--p-net { background: $surface-lighten-3; }
    FlashMap > .flashmap--p-obk_vars { background: $success-darken-3; }
    FlashMap > .flashmap--p-free { background: $surface; }
    FlashMap > .flashmap--p-tuya_kv { background: $accent-darken-3; }
    FlashMap > .flashmap--s-pending { color: $text 70%; }
    FlashMap > .flashmap--s-read { color: $text; }
    FlashMap > .flashmap--s-verified { color: $text; text-style: bold; }
    FlashMap > .flashmap--s-erased { color: $text; }
    FlashMap > .flashmap--s-written { color: $text; text-style: bold; }
    FlashMap > .flashmap--s-skipped { color: $text-muted; }
    FlashMap > .flashmap--s-failed { color: $text; background: $error; text-style: bold; }
    FlashMap > .flashmap--s-blank { color: $success; }
    """

    BINDINGS = [
        Binding("left", "move(-1)", "◀", show=False),
        Binding("right", "move(1)", "▶", show=False),
        Binding("up", "move_row(-1)", "▲", show=False),
        Binding("down", "move_row(1)", "▼", show=False),
        Binding("home", "jump(0)", "start", show=False),
        Binding("end", "jump(-1)", "end", show=False),
        Binding("pageup", "part(-1)", "prev partition", show=False),
        Binding("pagedown", "part(1)", "next partition", show=False),
    ]

    cursor: reactive[int] = reactive(0)

    class CursorMoved(Message):
        def __init__(self, flashmap: FlashMap, sector: int) -> None:
            super().__init__()
            self.flashmap = flashmap
            self.sector = sector

    def __init__(self, model: FlashMapModel | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model = model or FlashMapModel()
        self.hover: int | None = None
        self._cell_styles: dict[tuple[int, int, bool], Style] = {}

    # -- geometry --------------------------------------------------------------------------------
    @property
    def per_row(self) -> int:
        avail = (self.size.width or 80) - ADDR_WIDTH
        for n in (64, 32, 16):
            if avail >= n:
                return n
        return 8

    @property
    def rows(self) -> int:
        return (self.model.sectors + self.per_row - 1) // self.per_row

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        avail = width - ADDR_WIDTH
        per_row = next((n for n in (64, 32, 16) if avail >= n), 8)
        return (self.model.sectors + per_row - 1) // per_row

    def sector_at_offset(self, x: int, y: int) -> int | None:
        col = x - ADDR_WIDTH
        if col < 0 or col >= self.per_row or y < 0:
            return None
        sector = y * self.per_row + col
        return sector if sector < self.model.sectors else None

    # -- model binding ---------------------------------------------------------------------------
    def set_model(self, model: FlashMapModel) -> None:
        self.model = model
        self.cursor = min(self.cursor, model.sectors - 1)
        self._cell_styles.clear()
        self.refresh(layout=True)

    def sync(self) -> None:
        """Redraw the rows that changed since the last sync (called by the event pump)."""
        dirty = self.model.take_dirty()
        if not dirty:
            return
        per_row = self.per_row
        rows = sorted({s // per_row for s in dirty})
        if len(rows) > 4:
            self.refresh()
            return
        width = self.size.width
        for row in rows:
            self.refresh(Region(0, row, width, 1))

    # -- rendering -------------------------------------------------------------------------------
    def notify_style_update(self) -> None:
        self._cell_styles = {}
        super().notify_style_update()

    def _cell_style(self, part_idx: int, code: int, is_cursor: bool) -> Style:
        key = (part_idx, code, is_cursor)
        style = self._cell_styles.get(key)
        if style is None:
            base = self.rich_style
            kind = self.model.partitions[part_idx].kind if part_idx >= 0 else "free"
            style = base + self.get_component_rich_style(f"flashmap--p-{kind}", partial=True)
            style += self.get_component_rich_style(f"flashmap--s-{_STATES[code].value}", partial=True)
            if is_cursor:
                style += self.get_component_rich_style("flashmap--cursor", partial=True)
                if not self.has_focus:
                    style += Style(reverse=False, underline=True)
            self._cell_styles[key] = style
        return style

    def _glyph(self, sector: int, code: int) -> str:
        if code == 0:
            if self.model.is_partition_start(sector):
                part = self.model.partition(sector)
                return PART_LETTER.get(part.kind, "?") if part else "·"
            return "·"
        return STATE_GLYPH[_STATES[code]]

    def render_line(self, y: int) -> Strip:
        per_row = self.per_row
        first = y * per_row
        model = self.model
        width = self.size.width
        if first >= model.sectors:
            return Strip.blank(width, self.rich_style)
        addr_style = self.rich_style + self.get_component_rich_style("flashmap--addr", partial=True)
        segments = [Segment(f"0x{first * SECTOR:06X} ", addr_style)]
        run_text: list[str] = []
        run_style: Style | None = None
        for sector in range(first, min(first + per_row, model.sectors)):
            code = model._states[sector]
            style = self._cell_style(model._part_index[sector], code, sector == self.cursor)
            glyph = self._glyph(sector, code)
            if style is run_style:
                run_text.append(glyph)
            else:
                if run_text:
                    segments.append(Segment("".join(run_text), run_style))
                run_text, run_style = [glyph], style
        if run_text:
            segments.append(Segment("".join(run_text), run_style))
        strip = Strip(segments)
        return strip.extend_cell_length(width, self.rich_style).crop(0, width)

    # -- interaction -----------------------------------------------------------------------------
    def watch_cursor(self, old: int, new: int) -> None:
        per_row = self.per_row
        for s in (old, new):
            self.refresh(Region(0, s // per_row, self.size.width, 1))
        self.post_message(self.CursorMoved(self, new))

    def on_focus(self) -> None:
        self._cell_styles = {}
        self.refresh()

    def on_blur(self) -> None:
        self._cell_styles = {}
        self.refresh()

    def action_move(self, delta: int) -> None:
        self.cursor = max(0, min(self.model.sectors - 1, self.cursor + delta))

    def action_move_row(self, delta: int) -> None:
        self.action_move(delta * self.per_row)

    def action_jump(self, where: int) -> None:
        self.cursor = self.model.sectors - 1 if where < 0 else where

    def action_part(self, delta: int) -> None:
        starts = sorted({p.start // SECTOR for p in self.model.partitions})
        addr_now = self.cursor
        if delta > 0:
            nxt = [s for s in starts if s > addr_now]
            self.cursor = nxt[0] if nxt else self.cursor
        else:
            prv = [s for s in starts if s < addr_now]
            self.cursor = prv[-1] if prv else 0

    def on_click(self, event: events.Click) -> None:
        sector = self.sector_at_offset(event.x, event.y)
        if sector is not None:
            self.cursor = sector

    def on_mouse_move(self, event: events.MouseMove) -> None:
        sector = self.sector_at_offset(event.x, event.y)
        if sector != self.hover:
            self.hover = sector
            self.post_message(self.CursorMoved(self, sector if sector is not None else self.cursor))

    def on_leave(self, _event: events.Leave) -> None:
        self.hover = None
        self.post_message(self.CursorMoved(self, self.cursor))


def legend_text(model: FlashMapModel, styles: FlashMap | None = None) -> Text:
    """Partition and state legend; styled from the widget's component classes when given."""
    text = Text(no_wrap=False)
    seen: set[str] = set()
    for part in model.partitions:
        if part.kind in seen:
            continue
        seen.add(part.kind)
        style = styles.get_component_rich_style(f"flashmap--p-{part.kind}", partial=True) if styles else ""
        text.append(f" {PART_LETTER.get(part.kind, '?')} ", style)
        text.append(f"{_short_name(part)}  ")
    if model.from_analysis:
        text.append("(from analysis)")
    text.append("\n")
    for state in SectorState:
        style = styles.get_component_rich_style(f"flashmap--s-{state.value}", partial=True) if styles else ""
        if state is SectorState.BLANK:
            text.append("\n")  # its own line: the others fill 80 columns, and glyph and label must not split
        text.append(STATE_GLYPH[state], style)
        text.append(f" {STATE_LABEL.get(state, state.value)}  ")
    return text


def _short_name(part: Partition) -> str:
    return {
        "bootloader": "boot",
        "app": "app",
        "ota": "OTA",
        "rf": "RF/TLV",
        "obk_config": "OBK cfg",
        "net": "net",
        "obk_vars": "OBK vars",
        "free": "free",
        "tuya_kv": "Tuya KV",
    }.get(part.kind, part.name)


class FlashMapPane(Vertical):
    """Title, grid, cursor info line and legend."""

    DEFAULT_CSS = """
    FlashMapPane { height: auto; }
    FlashMapPane #fm-info { height: 1; color: $text; }
    FlashMapPane #fm-legend { height: auto; color: $text-muted; }
    """

    def __init__(self, model: FlashMapModel | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self._model = model or FlashMapModel()

    @property
    def model(self) -> FlashMapModel:
        return self.query_one(FlashMap).model

    @property
    def map(self) -> FlashMap:
        return self.query_one(FlashMap)

    def compose(self) -> ComposeResult:
        yield FlashMap(self._model, id="fm-grid")
        yield Static("", id="fm-info", markup=False)
        yield Static("", id="fm-legend", markup=False)

    def on_mount(self) -> None:
        self._update_info(self.map.cursor)
        self._update_legend()

    def set_model(self, model: FlashMapModel) -> None:
        self.map.set_model(model)
        self._update_info(self.map.cursor)
        self._update_legend()

    def sync(self) -> None:
        self.map.sync()
        self._update_info(self.map.hover if self.map.hover is not None else self.map.cursor)

    def _update_legend(self) -> None:
        self.query_one("#fm-legend", Static).update(legend_text(self.map.model, self.map))

    def _update_info(self, sector: int) -> None:
        model = self.map.model
        counts = model.counts()
        done = " ".join(
            f"{STATE_GLYPH[s]}{n}" for s, n in counts.items() if n and s is not SectorState.PENDING
        )
        info = f"{model.describe(sector)}"
        if done:
            info += f"   [{done}]"
        self.query_one("#fm-info", Static).update(info)

    def on_flash_map_cursor_moved(self, message: FlashMap.CursorMoved) -> None:
        self._update_info(message.sector)
