"""Analysis view: what a backup says about the device (core.analysis.analyze_dump), secrets masked.

Shows chip, bootloader, MAC, firmware identity, the partition map found in the dump, the Tuya KV keys
(names; secret values are masked by the engine), the OpenBK pin mapping derived from `user_param_key`
with its warnings (P10/P11 = RX1/TX1 carry the flashing UART) and any OpenBK config found in the dump.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Static

from ..widgets.header import SafeHeader

# Values under these user_param_key names are shown; the rest of the vault only by key name.
PIN_ROLE_WIDTH = 12
LISTED = 5  # community entries listed around the selected one (its detail then fits 80x24)


def _firmware_line(fw: dict[str, Any]) -> str:
    kind = fw.get("kind", "unknown")
    if kind == "tuya":
        bits = [f"Tuya SDK {fw.get('sdk_version', '?')}"]
        if fw.get("app"):
            bits.append(str(fw["app"]))
        if fw.get("sdk_build"):
            bits.append(f"built {fw['sdk_build']}")
        return ", ".join(bits)
    if kind == "openbk":
        return " ".join(str(fw.get(k)) for k in ("name", "version", "build") if fw.get(k)) or "OpenBK"
    extra = ", ".join(f"{k} {v}" for k, v in fw.items() if k != "kind" and v)
    return kind + (f" ({extra})" if extra else "")


def analysis_text(result: dict[str, Any], source: str = "") -> Text:
    """The analysis JSON (DumpAnalysis.to_json(), secrets masked) as readable sections."""
    out = Text()

    def head(title: str) -> None:
        out.append(("\n" if out else "") + title + "\n", "bold underline")

    def line(text: str, style: str = "") -> None:
        out.append(text + "\n", style)

    head("Device")
    if source:
        line(f"source      {source}")
    size = result.get("flash_size") or result.get("size") or 0
    line(f"chip        {result.get('chip') or 'unknown'}   flash {size // 1024} KiB")
    line(f"MAC         {result.get('mac') or 'not found'}")
    boot = result.get("bootloader") or {}
    if boot:
        line(f"bootloader  {boot.get('name') or boot.get('version') or '?'}  (CRC {boot.get('crc', '?')}, "
             f"{boot.get('dialect', '?')} dialect)")
    else:
        line("bootloader  not recognised")
    line(f"firmware    {_firmware_line(result.get('firmware') or {})}")
    if result.get("rotated"):
        line(f"note        dump read from 0x{result['rotated']:X} with wrap-around (bootloader at the end)",
             "yellow")

    head("Partitions found")
    for p in result.get("partitions") or []:
        start, psize = int(p.get("start", 0)), int(p.get("size", 0))
        line(f"0x{start:06X}-0x{start + psize:06X}  {p.get('name', '?'):<22} {p.get('status', '')}")

    tuya = result.get("tuya") or {}
    head("Tuya configuration")
    keys = tuya.get("keys") or []
    if keys:
        at = f" at 0x{tuya['offset']:06X}" if isinstance(tuya.get("offset"), int) else ""
        line(f"KV storage{at}: {len(keys)} keys (secret values masked)")
        line("  " + ", ".join(str(k) for k in keys))
    else:
        line("no Tuya KV storage found")
    upk = tuya.get("user_param_key")
    if isinstance(upk, dict):
        items = [f"{k}={v}" for k, v in upk.items() if k != "crc"]
        line("user_param_key: " + "  ".join(items))
    elif keys:
        line("no user_param_key" + (f" (TuyaMCU? baud_cfg {tuya.get('baud_cfg')})" if tuya.get("baud_cfg") else ""))

    openbk = result.get("openbk") or {}
    mapping = openbk.get("mapping") or {}
    head("OpenBK pins (from the Tuya config)")
    pins = openbk.get("pins") or {}
    if pins:
        meta = ", ".join(f"{k} {mapping[k]}" for k in ("module", "meter") if mapping.get(k))
        if meta:
            line(meta)
        for gpio in sorted(pins, key=lambda g: int(g)):
            pin = pins[gpio]
            uart = {"10": "  ← RX1 (flashing UART)", "11": "  ← TX1 (flashing UART)"}.get(str(gpio), "")
            line(f"P{int(gpio):<3} {pin.get('role', '?'):<{PIN_ROLE_WIDTH}} channel {pin.get('channel', 0):<3} "
                 f"from {pin.get('source', '?')}{uart}", "yellow" if uart else "")
        if mapping.get("startup_command"):
            line(f"startup command: {mapping['startup_command']}")
    else:
        line("no pin mapping (no user_param_key in the dump)")
    warnings = list(mapping.get("warnings") or []) + list(result.get("warnings") or [])
    if warnings:
        head("Warnings")
        for w in warnings:
            line(f"! {w}", "bold yellow")

    cfg = openbk.get("config")
    if isinstance(cfg, dict):
        head("OpenBK config sector in the dump")
        for key in ("shortDeviceName", "wifi_ssid", "wifi_pass", "wifi_ssid2", "mqtt_host", "mqtt_port",
                    "mqtt_userName", "mqtt_pass", "mqtt_clientId", "mqtt_group", "initCommandLine"):
            if cfg.get(key) not in (None, ""):
                line(f"{key:<16} {cfg[key]}")
        for gpio, pin in sorted((cfg.get("pins") or {}).items(), key=lambda kv: int(kv[0])):
            line(f"P{int(gpio):<3} {pin.get('role', '?'):<{PIN_ROLE_WIDTH}} channel {pin.get('channel', 0)}")
    return out


def clipboard_note(env: dict[str, str] | None = None) -> str:
    """What became of a copy: the terminal sets the clipboard from an OSC 52 sequence, and over SSH or
    inside tmux that clipboard is the local machine's only if the terminal (and tmux) let it through."""
    env = dict(os.environ) if env is None else env
    remote = [name for name, var in (("SSH", "SSH_CONNECTION"), ("tmux", "TMUX"), ("screen", "STY")) if env.get(var)]
    if not remote:
        return "copied to the clipboard"
    return (f"sent to the clipboard through the terminal (OSC 52; over {' and '.join(remote)} it reaches your "
            "local clipboard only if the terminal allows it: else copy it from the file)")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def community_text(community: dict[str, Any] | None, selected: int = 0, width: int = 78) -> Text:
    """The community device list section: the closest entries, the selected one pin by pin (fits 80 columns)."""
    out = Text()
    out.append("Community devices (OpenBK's list)\n", "bold underline")
    if community is None:
        out.append("comparing with the community device list…\n", "dim")
        return out
    out.append(community.get("message", "") + "\n", "" if community.get("status") == "matched" else "yellow")
    for note in community.get("notes") or []:
        out.append(f"note: {note}\n", "dim")
    matches = community.get("matches") or []
    if not matches:
        return out
    out.append("Community data, never a fact: pins differ between hardware revisions; read the forum page.\n",
               "italic")
    first = max(0, min(selected - 2, len(matches) - LISTED))
    for i in range(first, min(len(matches), first + LISTED)):
        m = matches[i]
        mark = "▶" if i == selected else " "
        tail = f" [{m['id']}]"
        head = f"{mark} {m['score']:>3}%  "
        out.append(head + _cut(m["title"], width - len(head) - len(tail)) + tail + "\n",
                   "bold" if i == selected else "")
    if len(matches) > LISTED:
        out.append(f"  ({selected + 1} of {len(matches)}: n / p move)\n", "dim")
    m = matches[min(selected, len(matches) - 1)]
    out.append(f"\n{m['title']}\n", "bold")
    out.append(f"{m['chip']} {m['board'] or '(module not given)'}  {m['score']}% of {m['features']} features\n")
    out.append((m["wiki"] or "(no forum link)") + "\n", "underline" if m["wiki"] else "dim")
    out.append(f"{'pin':<7}{'this device (Tuya)':<26}{'entry':<20}verdict\n", "bold")
    styles = {"agrees": "green", "only device": "yellow", "only entry": "yellow"}
    for p in m["pins"]:
        here = f"{p['device']} ({p['source']})" if p["device"] else (f"({p['source']})" if p["source"] else "-")
        line = f"P{p['gpio']:<6}{_cut(here, 25):<26}{_cut(p['entry'] or '-', 19):<20}{p['verdict']}"
        out.append(_cut(line, width) + "\n", styles.get(p["verdict"], "red"))
    for name in ("module", "meter"):
        feat = m.get(name)
        if feat:
            here, there = _cut(feat["device"] or "-", 25), _cut(feat["entry"] or "-", 19)
            line = f"{name:<7}{here:<26}{there:<20}{feat['verdict']}"
            out.append(_cut(line, width) + "\n", "green" if feat["verdict"] == "agrees" else "red")
    if m.get("flags") is not None:
        out.append(f"flags {m['flags']}\n")
    if m.get("command"):
        out.append(_cut(f"startup: {m['command']}", width) + "\n")
    out.append("u puts this entry's pins, flags and startup command in the OpenBK config editor\n", "dim")
    return out


class AnalysisScreen(Screen[Any]):
    """Read-only report; `e` asks the app to open the config editor, `u` to open it with the selected community
    entry applied (dismisses with the EntryPlan), ctrl+g / q / Esc go back."""

    DEFAULT_CSS = """
    AnalysisScreen #analysis-scroll { height: 1fr; padding: 0 1; }
    AnalysisScreen #analysis-text { height: auto; }
    AnalysisScreen #analysis-community { height: auto; margin-top: 1; }
    """

    BINDINGS = [
        Binding("e", "edit", "Edit config"),
        Binding("t", "template", "Save OpenBK template"),
        Binding("n", "entry(1)", "Entry"),
        Binding("p", "entry(-1)", "Prev entry", show=False),
        Binding("u", "use_entry", "Use entry"),
        Binding("ctrl+g,escape,q", "back", "Back"),
    ]

    def __init__(self, result: dict[str, Any], source: str = "") -> None:
        super().__init__()
        self.result = result
        self.source = source
        self.community: dict[str, Any] | None = result.get("community")
        self.selected = 0

    def compose(self) -> ComposeResult:
        yield SafeHeader()
        with VerticalScroll(id="analysis-scroll"):
            yield Static(analysis_text(self.result, self.source), id="analysis-text", markup=False)
            yield Static(self._community_text(), id="analysis-community", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"Analysis: {self.source}" if self.source else "Analysis"
        self.query_one("#analysis-scroll").focus()
        if self.community is None:
            self.run_worker(self._match, thread=True, exclusive=True, group="community", exit_on_error=False)

    def _match(self) -> None:
        """Worker thread: compare with the cached community list (reading it is file I/O, kept off the UI)."""
        from bkbench.core.analysis.devices import match_report

        try:
            community = match_report(self.result)
        except Exception as exc:  # a bad list must not cost the rest of the report
            community = {"status": "no list", "message": f"community list not usable: {exc}"}
        self.app.call_from_thread(self._show_community, community)

    def _show_community(self, community: dict[str, Any]) -> None:
        self.community = community
        try:
            self._refresh_community()
        except NoMatches:  # the screen was closed while the list was read
            pass

    def _community_text(self) -> Text:
        try:
            width = max(40, self.app.size.width - 4)
        except Exception:  # not mounted yet
            width = 76
        return community_text(self.community, self.selected, width)

    def _refresh_community(self) -> None:
        self.query_one("#analysis-community", Static).update(self._community_text())

    @property
    def text(self) -> str:
        return analysis_text(self.result, self.source).plain + "\n" + self._community_text().plain

    def action_entry(self, step: int) -> None:
        """Select the next / previous community entry and bring the section into view."""
        matches = (self.community or {}).get("matches") or []
        if not matches:
            self.notify("No community entry to choose: " + ((self.community or {}).get("message") or "not compared "
                        "yet"), severity="warning")
            return
        self.selected = (self.selected + step) % len(matches)
        self._refresh_community()
        self.query_one("#analysis-community").scroll_visible(top=True, animate=False)

    def action_use_entry(self) -> None:
        """Check the selected entry for this chip and hand it to the app's config editor (refusals: one line)."""
        from bkbench.core.analysis.device_apply import plan_entry
        from bkbench.core.analysis.device_list import load_default
        from bkbench.core.analysis.devices import facts_from_report
        from bkbench.core.errors import BkError

        matches = (self.community or {}).get("matches") or []
        if not matches:
            self.notify("No community entry to use.", severity="warning")
            return
        dl, why = load_default()
        if dl is None:
            self.notify(why, severity="error")
            return
        try:
            plan = plan_entry(dl.get(matches[self.selected]["id"]), self.result.get("chip"),
                              facts_from_report(self.result))
        except BkError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return
        self.dismiss(plan)

    def action_edit(self) -> None:
        self.dismiss("edit")

    @property
    def template(self) -> dict[str, Any] | None:
        return ((self.result.get("openbk") or {}).get("template")) or None

    def action_template(self) -> None:
        """Save the OpenBK device template (the web app's import JSON) and copy it to the clipboard."""
        import json

        template = self.template
        if not template:
            self.notify("No OpenBK template: this dump has no Tuya pin configuration.", severity="warning")
            return
        blob = json.dumps(template, indent=1)
        folder = getattr(self.app, "base_dir", Path.home()) / "templates"
        stem = Path(self.source).stem if self.source else "device"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{stem}-openbk-template.json"
            path.write_text(blob + "\n", encoding="utf-8")
        except OSError as exc:
            self.notify(f"Template not saved: {exc}", severity="error")
            return
        self.app.copy_to_clipboard(blob)
        self.notify(f"OpenBK template saved to {path}; {clipboard_note()} (paste it in OpenBK's web app).",
                    timeout=12)

    def action_back(self) -> None:
        self.dismiss(None)
