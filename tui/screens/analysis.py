"""Analysis view: what a backup says about the device (core.analysis.analyze_dump), secrets masked.

Shows chip, bootloader, MAC, firmware identity, the partition map found in the dump, the Tuya KV keys
(names; secret values are masked by the engine), the OpenBK pin mapping derived from `user_param_key`
with its warnings (P10/P11 = RX1/TX1 carry the flashing UART) and any OpenBK config found in the dump.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from ..widgets.header import SafeHeader

# Values under these user_param_key names are shown; the rest of the vault only by key name.
PIN_ROLE_WIDTH = 12


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


class AnalysisScreen(Screen[Optional[str]]):
    """Read-only report; `e` asks the app to open the config editor, ctrl+g / q / Esc go back."""

    DEFAULT_CSS = """
    AnalysisScreen #analysis-scroll { height: 1fr; padding: 0 1; }
    AnalysisScreen #analysis-text { height: auto; }
    """

    BINDINGS = [
        Binding("e", "edit", "Edit config"),
        Binding("t", "template", "Save OpenBK template"),
        Binding("ctrl+g,escape,q", "back", "Back"),
    ]

    def __init__(self, result: dict[str, Any], source: str = "") -> None:
        super().__init__()
        self.result = result
        self.source = source

    def compose(self) -> ComposeResult:
        yield SafeHeader()
        with VerticalScroll(id="analysis-scroll"):
            yield Static(analysis_text(self.result, self.source), id="analysis-text", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"Analysis: {self.source}" if self.source else "Analysis"
        self.query_one("#analysis-scroll").focus()

    @property
    def text(self) -> str:
        return analysis_text(self.result, self.source).plain

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
