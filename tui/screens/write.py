"""The firmware picker: browse to a file (or take a recent one, or the latest OpenBK for this chip), see
what it is and where it goes, then hand a WriteRequest to the app.

Every firmware-like file in the listed folders is recognised in the background: the tree shows what it
is beside its name and greys out what cannot be written to this chip. OTA packages (UG/RBL, what
tuya-cloudcutter ships) are converted to the UART image when picked, and the detail pane says what was
done. `a` analyses the highlighted file and `e` edits the OpenBK config inside it, both without a chip.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Optional

from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import (
    Button,
    Checkbox,
    DirectoryTree,
    Footer,
    Input,
    Label,
    OptionList,
    ProgressBar,
    Static,
)
from textual.widgets.option_list import Option
from textual.widgets.tree import TreeNode

from ..firmware import RecentFiles, Verdict, WriteRequest, assess, is_candidate
from ..widgets.tickbox import TickBox

__all__ = ["FirmwareTree", "WriteRequest", "WriteScreen"]


def parse_offset(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    return int(text, 0)


def pretty_path(path: Path) -> str:
    """`path` with the home folder shown as ~."""
    try:
        return "~/" + str(Path(path).resolve().relative_to(Path.home().resolve()))
    except ValueError:
        return str(path)


class QuickList(OptionList):
    """Latest OpenBK, recent and cached files: focused first, so the first Enter takes Latest OpenBK (it
    used to fold the folder the tree opened on). Down past its last entry goes on into the files."""

    def action_cursor_down(self) -> None:
        if self.highlighted is not None and self.highlighted >= self.option_count - 1:
            tree = self.screen.query_one(FirmwareTree)
            tree.focus()
            if tree.cursor_line <= 0 and tree.root.children:
                tree.cursor_line = 1  # the first entry of the folder, not the folder itself
            return
        super().action_cursor_down()


class FirmwareTree(DirectoryTree):
    """A DirectoryTree that hides dot files and shows each file's verdict (greyed when not writable)."""

    def __init__(self, path: Path, verdicts: dict[Path, Verdict], on_listed: Any = None, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.verdicts = verdicts
        self.on_listed = on_listed  # called with the files of each folder once it is listed

    def _populate_node(self, node: TreeNode, content: Iterable[Path]) -> None:
        content = list(content)
        super()._populate_node(node, content)
        if self.on_listed is not None:
            self.on_listed([p for p in content if is_candidate(p)])

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith(".")]

    def action_cursor_up(self) -> None:
        if self.cursor_line <= 0:  # above the folder: back to Latest OpenBK and the recent files
            quick = self.screen.query_one(QuickList)
            quick.focus()
            quick.highlighted = quick.option_count - 1
            return
        super().action_cursor_up()

    def render_label(self, node: TreeNode, base_style: Style, style: Style) -> Text:
        text = super().render_label(node, base_style, style)
        path = node.data.path if node.data is not None else None
        if path is None or node.allow_expand:
            return text
        verdict = self.verdicts.get(path)
        if verdict is not None:
            text.append(f"  {verdict.tag}", "italic")
            if not verdict.writable:
                text.stylize("dim strike", len(text) - len(verdict.tag) - 2)
                text.stylize("dim")
        elif not is_candidate(path):
            text.stylize("dim")
        return text


class WriteScreen(ModalScreen[Optional[WriteRequest]]):
    """Dismisses with a WriteRequest (Continue) or None (Cancel)."""

    DEFAULT_CSS = """
    WriteScreen { layout: vertical; }
    WriteScreen > #write-dialog { width: 100%; height: 1fr; background: $panel; padding: 0 1; }
    WriteScreen #write-title { text-style: bold; width: 1fr; height: 1; }
    WriteScreen #write-body { height: 1fr; }
    WriteScreen #write-left { width: 3fr; }
    WriteScreen #write-right { width: 2fr; padding-left: 1; }
    WriteScreen.-narrow #write-body { layout: vertical; }
    WriteScreen.-narrow #write-left { height: 1fr; width: 100%; }
    WriteScreen.-narrow #write-right { height: 13; width: 100%; padding-left: 0; border-top: solid $primary 50%; }
    WriteScreen #write-quick { height: auto; max-height: 5; border: none; padding: 0; }
    WriteScreen #write-tree { height: 1fr; border: none; padding: 0; }
    WriteScreen #write-path { height: 1; border: none; padding: 0 1; }
    WriteScreen #write-info-box { height: 1fr; }
    WriteScreen #write-info { height: auto; }
    WriteScreen #write-fetch-bar { height: 1; display: none; }
    WriteScreen.-fetching #write-fetch-bar { display: block; }
    WriteScreen #write-opts { height: 1; }
    WriteScreen #write-offset { width: 20; height: 1; border: none; padding: 0 1; }
    WriteScreen #write-boot { height: 1; border: none; padding: 0; }
    WriteScreen #write-buttons { height: 1; align-horizontal: right; }
    WriteScreen #write-buttons Button { margin-left: 2; }
    """

    BINDINGS = [
        Binding("ctrl+o", "go", "Write it", priority=True),
        Binding("f", "fetch", "Latest OpenBK"),
        Binding("backspace,u", "up", "Parent dir"),
        Binding("a", "analyze", "Analyze file"),
        Binding("e", "edit_config", "Edit config"),
        Binding("escape", "escape", "Back", show=False),
        Binding("ctrl+g", "cancel", "Cancel"),
    ]

    def __init__(self, chip: str, flash_size: int, connected: bool, initial_path: str = "",
                 data_dir: Path | None = None, start_dir: Path | None = None) -> None:
        super().__init__()
        self.chip = chip
        self.flash_size = flash_size
        self.connected = connected
        self.initial_path = initial_path
        self.recent = RecentFiles((data_dir or Path.home()) / "recent-firmware.json")
        self.start_dir = start_dir or self._default_dir()
        self.verdicts: dict[Path, Verdict] = {}
        self.request: WriteRequest | None = None
        self.selected: Path | None = None
        self.verdict: Verdict | None = None

    def _default_dir(self) -> Path:
        recent = self.recent.list()
        if recent:
            return recent[0].parent
        cwd = Path.cwd()
        return cwd if os.access(cwd, os.R_OK) else Path.home()

    # -- layout ------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Vertical(id="write-dialog"):
            chip_note = self.chip if self.connected else f"{self.chip} (assumed: connect to detect the chip)"
            yield Label(f"Pick the firmware to write: {chip_note}", id="write-title")
            with Horizontal(id="write-body"):
                with Vertical(id="write-left"):
                    yield QuickList(*self._quick_options(), id="write-quick")
                    yield FirmwareTree(self.start_dir, self.verdicts, self._listed, id="write-tree")
                    yield Input(self.initial_path, placeholder="or type a path and press Enter", id="write-path")
                with Vertical(id="write-right"):
                    with VerticalScroll(id="write-info-box"):
                        yield Static(self._intro(), id="write-info", markup=False)
                    yield ProgressBar(total=None, show_eta=False, id="write-fetch-bar")
                    with Horizontal(id="write-opts"):
                        yield TickBox("replace the bootloader too", id="write-boot", compact=True)
                        yield Input("", placeholder="offset (raw)", id="write-offset")
                    with Horizontal(id="write-buttons"):
                        yield Button("Cancel [ctrl+g]", id="cancel", compact=True)
                        yield Button("Write it [ctrl+o]", id="go", variant="warning", disabled=True, compact=True)
        yield Footer(compact=True, show_command_palette=False)

    def _intro(self) -> str:
        return (f"Folder: {pretty_path(self.start_dir)}\n"
                "Enter takes the highlighted entry (Latest OpenBK first); arrow keys move on into this folder, "
                f"where each file says what it is, greyed ones cannot go on this {self.chip}. UG/RBL packages "
                "are converted; ctrl+o writes.\n"
                "f latest OpenBK · u parent folder · a analyse · e edit its OpenBK config · Esc back")

    def _quick_options(self) -> list[Option]:
        # Text, not markup: "[f]" (and a file name with brackets) would be read as a style tag and vanish
        opts = [Option(Text(f"⬇ Latest OpenBK for {self.chip} [f]"), id="fetch")]
        seen: set[Path] = set()
        for p in self.recent.list():
            seen.add(p)
            opts.append(Option(Text(f"recent: {p.name}"), id=f"path:{p}"))
        for p in self._cached_releases():
            if p not in seen:
                opts.append(Option(Text(f"cached: {p.name}"), id=f"path:{p}"))
        return opts

    def _cached_releases(self) -> list[Path]:
        try:
            from bkbench.core.images.releases import default_cache_dir

            letter = self.chip.upper().removeprefix("BK")
            found = sorted(default_cache_dir().glob(f"*/OpenBK{letter}_*.bin"),
                           key=lambda p: p.stat().st_mtime, reverse=True)
            return found[:3]
        except OSError:
            return []

    def on_resize(self) -> None:
        self.set_class(self.size.width < 110, "-narrow")  # tree above the details on a small terminal

    def on_mount(self) -> None:
        self.set_class(self.app.size.width < 110, "-narrow")
        quick = self.query_one("#write-quick", QuickList)
        quick.highlighted = 0
        quick.focus()
        if self.initial_path:
            self.check()

    # -- background recognition of every listed file -------------------------------------------
    def _listed(self, files: list[Path]) -> None:
        if files:
            self._scan(files)

    @work(thread=True, group="scan", exit_on_error=False)
    def _scan(self, files: list[Path]) -> None:
        for path in files:
            if path in self.verdicts or not self.is_attached:
                continue
            self.verdicts[path] = assess(path, self.chip, self.flash_size, convert=False)
            self.app.call_from_thread(self._refresh_tree)

    def _refresh_tree(self) -> None:
        if self.is_attached:
            tree = self.query_one("#write-tree", FirmwareTree)
            tree._invalidate()  # labels are rendered from self.verdicts

    # -- choosing a file -----------------------------------------------------------------------
    def on_tree_node_highlighted(self, event: Any) -> None:
        node = event.node
        path = node.data.path if getattr(node, "data", None) is not None else None
        if path is None or node.allow_expand:
            return
        verdict = self.verdicts.get(path)
        if verdict is not None and path != self.selected:
            tail = "\n\nEnter picks this file." if verdict.writable else ""
            self._show_text("\n".join(verdict.lines) + tail)

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.pick(event.path)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        oid = event.option.id or ""
        if oid == "fetch":
            self.action_fetch()
        elif oid.startswith("path:"):
            self.pick(Path(oid[5:]))

    def pick(self, path: Path) -> None:
        """Judge `path` fully (converting an OTA package) and offer the write."""
        self.query_one("#write-path", Input).value = pretty_path(path)
        self.check()

    def check(self) -> None:
        path = Path(self.query_one("#write-path", Input).value.strip()).expanduser()
        self.request, self.verdict, self.selected = None, None, path
        self.query_one("#go", Button).disabled = True
        if not path.is_file():
            self._show_text(f"No such file: {path}")
            return
        try:
            offset = parse_offset(self.query_one("#write-offset", Input).value)
        except ValueError:
            self._show_text("The offset must be a number like 0x11000.")
            return
        boot = self.query_one("#write-boot", Checkbox).value
        self._show_text(f"{path.name}: checking…")
        self._assess(path, offset, boot)

    @work(thread=True, exclusive=True, group="assess", exit_on_error=False)
    def _assess(self, path: Path, offset: int | None, boot: bool) -> None:
        verdict = assess(path, self.chip, self.flash_size, offset=offset, replace_bootloader=boot)
        self.app.call_from_thread(self._assessed, verdict)

    def _assessed(self, verdict: Verdict) -> None:
        if not self.is_attached or verdict.path != self.selected:
            return
        self.verdict, self.request = verdict, verdict.request
        if verdict.path not in self.verdicts or verdict.writable != self.verdicts[verdict.path].writable:
            self.verdicts[verdict.path] = verdict
            self._refresh_tree()
        tail = "\n\nctrl+o writes it (a confirmation comes first)." if verdict.request else ""
        if verdict.needs_offset:
            tail = "\n\nType the offset in the field below (e.g. 0x11000) and press Enter."
        self._show_text("\n".join(verdict.lines) + tail)
        go = self.query_one("#go", Button)
        go.disabled = verdict.request is None
        if verdict.request is not None:
            go.focus()

    def _show_text(self, text: str) -> None:
        self.query_one("#write-info", Static).update(text)

    @property
    def info_text(self) -> str:
        return str(self.query_one("#write-info", Static).render())

    # -- fields ----------------------------------------------------------------------------------
    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.check()

    def on_input_blurred(self, event: Input.Blurred) -> None:  # a value typed without Enter still counts
        if event.input.id == "write-offset" and self.selected is not None:
            self.check()

    def on_checkbox_changed(self, _event: Checkbox.Changed) -> None:
        if self.selected is not None:
            self.check()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "go":
            self.action_go()
        else:
            self.action_cancel()

    # -- actions ---------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("fetch", "up", "analyze", "edit_config") and isinstance(self.focused, Input):
            return False  # typing: these letters go into the field
        if action == "go":
            return True if self.request is not None else None
        return True

    def action_escape(self) -> None:
        if isinstance(self.focused, Input):  # Escape leaves a field first
            self.query_one("#write-tree").focus()
        else:
            self.action_cancel()

    def action_go(self) -> None:
        if self.request is None:
            self.notify("Pick a file the chip can take first (Enter on a file).", severity="warning")
            return
        self.recent.add(self.request.path)
        self.dismiss(self.request)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_up(self) -> None:
        tree = self.query_one("#write-tree", FirmwareTree)
        parent = Path(tree.path).expanduser().resolve().parent
        tree.path = parent
        self.start_dir = parent
        self.notify(f"Folder: {pretty_path(parent)}", timeout=2)

    def _highlighted(self) -> Path | None:
        tree = self.query_one("#write-tree", FirmwareTree)
        node = tree.cursor_node
        if self.focused is tree and node is not None and node.data is not None and not node.allow_expand:
            return node.data.path
        return self.selected if self.selected is not None and self.selected.is_file() else None

    def action_analyze(self) -> None:
        self._pass_highlighted("analyze_file", "Highlight a file first.")

    def action_edit_config(self) -> None:
        self._pass_highlighted("edit_config_file", "Highlight a dump or config file first.")

    def _pass_highlighted(self, app_method: str, none_text: str) -> None:
        """Hand the highlighted file to the app's `app_method` (absent in a bare test app)."""
        path = self._highlighted()
        if path is None:
            self.notify(none_text, severity="warning")
            return
        handler = getattr(self.app, app_method, None)
        if handler is not None:
            handler(path)

    def action_fetch(self) -> None:
        self.add_class("-fetching")
        self.query_one("#write-fetch-bar", ProgressBar).update(total=None, progress=0)
        self._show_text(f"Latest OpenBK for {self.chip}: asking GitHub (the cache is used offline)…")
        self._fetch()

    @work(thread=True, exclusive=True, group="fetch", exit_on_error=False)
    def _fetch(self) -> None:
        from bkbench.core.images.releases import ReleaseClient

        def progress(done: int, total: int) -> None:
            self.app.call_from_thread(self._fetch_progress, done, total)

        try:
            result = ReleaseClient(timeout=10).fetch(self.chip, progress=progress)
        except Exception as exc:
            hint = getattr(exc, "hint", "")
            text = (f"Cannot get OpenBK for {self.chip}: {exc}" + (f" {hint}" if hint else "")
                    + "\nWithout a network: copy the OpenBK file (QIO for BK7231N, UA for BK7231T, or a UG/RBL "
                      "package) to this machine and browse to it here.")
            self.app.call_from_thread(self._fetched, None, text)
            return
        where = "from the cache" if result.from_cache else "downloaded"
        lines = [f"OpenBK {result.release.tag}: {result.asset.name} {where}",
                 f"sha256 {result.sha256[:16]}…, kept in {result.path.parent}"]
        lines.extend(result.warnings)
        self.app.call_from_thread(self._fetched, result.path, "\n".join(lines))

    def _fetch_progress(self, done: int, total: int) -> None:
        if self.is_attached:
            self.query_one("#write-fetch-bar", ProgressBar).update(total=total or None, progress=done)

    def _fetched(self, path: Path | None, text: str) -> None:
        if not self.is_attached:
            return
        self.remove_class("-fetching")
        if path is None:
            self._show_text(text)
            self.notify("No OpenBK release available (offline and not cached).", severity="warning")
            return
        self.notify(text.splitlines()[0], timeout=6)
        self.pick(path)
