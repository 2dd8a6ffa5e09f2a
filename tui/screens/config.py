"""OpenBK config editor: Wi-Fi, second Wi-Fi, MQTT, device names, startup command and pins.

Edits a copy of an ObkConfig (core.analysis.obk_config); Save dismisses with the edited config and the
app asks for confirmation before writing only the config sector. Password fields are masked. Pins are one
line (`P6=Rel;1 P10=Btn;1`): OpenBK's role names complete as they are typed, and a pin the chip never
applies is refused with one line before anything is saved.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from bkbench.core.analysis.obk_config import ObkConfig
from bkbench.core.analysis.tuya_pins import ROLE_NAMES
from bkbench.core.errors import BkError
from bkbench.core.layout import SECTOR
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Button, Input, Label, Static

# (label, ObkConfig field, password?)
FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("Wi-Fi SSID", "wifi_ssid", False),
    ("Wi-Fi password", "wifi_pass", True),
    ("Wi-Fi 2 SSID", "wifi_ssid2", False),
    ("Wi-Fi 2 password", "wifi_pass2", True),
    ("MQTT host", "mqtt_host", False),
    ("MQTT port", "mqtt_port", False),
    ("MQTT user", "mqtt_userName", False),
    ("MQTT password", "mqtt_pass", True),
    ("MQTT client ID", "mqtt_clientId", False),
    ("MQTT group", "mqtt_group", False),
    ("Device name", "shortDeviceName", False),
    ("Long name", "longDeviceName", False),
    ("Startup command", "initCommandLine", False),
)


def input_id(field: str) -> str:
    return "cfg-" + field


def secret_len(value: str) -> str:
    return f"{len(value)} characters" if value else "none"


def hide_secrets(text: str, cfg: ObkConfig) -> str:
    """`text` with every password of `cfg` blanked out, wherever it ended up (a password typed into the SSID
    field must not be shown in clear by a dialog that shows the SSID)."""
    for _label, field, secret in FIELDS:
        value = str(cfg.get(field) or "") if secret else ""
        if len(value) >= 3:
            text = text.replace(value, "*" * 8)
    return text


def confirm_text(cfg: ObkConfig, chip: str, offset: int) -> str:
    """What "Write the OpenBK config?" asks about: the SSID and MQTT host as typed, passwords only by
    length (a password that is missing while the SSID looks too long is then plain to see)."""
    ssid = cfg.get("wifi_ssid") or "(none)"
    host = cfg.get("mqtt_host") or "(none)"
    body = (f"Write the OpenBK config sector of this {chip}:\n"
            f"Wi-Fi {ssid} (password: {secret_len(str(cfg.get('wifi_pass') or ''))}), "
            f"MQTT {host}:{cfg.get('mqtt_port')}, name {cfg.get('shortDeviceName') or '-'}, "
            f"{len(cfg.pins())} pins.\n"
            f"Only 0x{offset:06X}-0x{offset + SECTOR:06X} is written (checksummed, version {cfg.version});"
            " a full backup is made first if this chip has none.")
    return hide_secrets(body, cfg)


class FieldInput(Input):
    """A config field; a paste holding Tabs fills this field and the ones after it (as typing would)."""

    def _on_paste(self, event: events.Paste) -> None:
        # Textual runs Input's own paste handler after this one unless the default is prevented.
        if "\t" in event.text and isinstance(self.screen, ConfigScreen):
            event.prevent_default()
            event.stop()
            self.screen.fill_from(self, event.text.splitlines()[0].split("\t"))


def pins_text(cfg: ObkConfig) -> str:
    return cfg.pins_text() if cfg.pins() else ""


def pins_hint(cfg: ObkConfig) -> str:
    return (f"P0..P{cfg.layout.gpio_max - 1} as P6=Rel;1 (role;channel[;channel2]); roles complete as you "
            f"type (-> accepts): Rel, Btn, LED, PWM, WifiLED_n... {len(ROLE_NAMES) - 1} in all")


class RoleSuggester(Suggester):
    """Completes the role of the pin being typed (`P6=wi` -> `P6=wifiLED`), case-blind like OpenBK."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        last = value.replace(",", " ").split(" ")[-1]
        _pin, sep, role = last.partition("=")
        if not sep or not role or ";" in role:
            return None
        low = role.lower()
        name = next((n for n in ROLE_NAMES[1:] if n.lower().startswith(low)), None)
        return None if name is None or len(name) == len(role) else value + name[len(role):]


class ConfigScreen(ModalScreen[Optional[ObkConfig]]):
    """Dismisses with the edited ObkConfig (Save) or None (Cancel)."""

    DEFAULT_CSS = """
    ConfigScreen { align: center middle; }
    ConfigScreen > #cfg-dialog {
        width: 100; max-width: 100%; height: 100%; max-height: 40;
        border: thick $primary; background: $panel; padding: 0 1;
    }
    ConfigScreen #cfg-title { text-style: bold; width: 1fr; }
    ConfigScreen #cfg-source { color: $text-muted; width: 1fr; }
    ConfigScreen #cfg-fields { height: 1fr; }
    ConfigScreen .cfg-row { height: 1; margin-bottom: 0; }
    ConfigScreen .cfg-row Label { width: 18; }
    ConfigScreen .cfg-row Input { width: 1fr; }
    ConfigScreen #cfg-pins-hint { height: auto; color: $text-muted; }
    ConfigScreen #cfg-entry { height: auto; color: $warning; }
    ConfigScreen #cfg-error { color: $error; height: auto; }
    ConfigScreen #cfg-buttons { height: 1; margin-top: 1; }
    ConfigScreen #cfg-buttons Button { margin-right: 2; }
    """

    BINDINGS = [
        Binding("ctrl+o", "save", "Save (write sector)"),
        Binding("ctrl+t", "tuya_pins", "Pins from Tuya config"),
        Binding("ctrl+g,escape", "cancel", "Cancel"),
    ]
    save_label = "Save"

    def __init__(self, config: ObkConfig, mapping: Any = None, source: str = "", chip: str = "",
                 offset: int | None = None, save_label: str = "", entry_plan: Any = None,
                 confirm: Callable[[ObkConfig], tuple[str, str]] | None = None) -> None:
        """`confirm(config)`: (title, body) of a question asked before Save dismisses; "No" stays here with
        the edits (they used to be dropped)."""
        super().__init__()
        self.entry_plan = entry_plan  # a community entry (core.analysis.device_apply.EntryPlan) applied on open
        if save_label:
            self.save_label = save_label
        self.confirm = confirm
        self.config = config.copy()  # edit a copy: Cancel leaves the original alone
        self.mapping = mapping
        self.source = source
        self.chip = chip
        self.sector_offset = offset
        self._original = bytes(self.config.sector_raw)

    def compose(self) -> ComposeResult:
        with Vertical(id="cfg-dialog"):
            where = f" at 0x{self.sector_offset:06X}" if self.sector_offset is not None else ""
            yield Label(f"OpenBK configuration {self.chip}{where}", id="cfg-title")
            yield Label(self.source, id="cfg-source")
            with VerticalScroll(id="cfg-fields"):
                for label, field, secret in FIELDS:
                    with Horizontal(classes="cfg-row"):
                        yield Label(label)
                        yield FieldInput(str(self.config.get(field)), password=secret, compact=True,
                                         id=input_id(field))
                with Horizontal(classes="cfg-row"):
                    yield Label("Pins")
                    yield Input(pins_text(self.config), compact=True, id="cfg-pins", suggester=RoleSuggester(),
                                placeholder="none set")
                yield Static(pins_hint(self.config), id="cfg-pins-hint", markup=False)
                entry = Static("", id="cfg-entry", markup=False)
                entry.display = False  # shown when a community entry is applied
                yield entry
            yield Static("", id="cfg-error", markup=False)
            with Horizontal(id="cfg-buttons"):
                yield Button(f"{self.save_label} [ctrl+o]", id="cfg-save", variant="primary", compact=True)
                yield Button("Pins from Tuya [ctrl+t]", id="cfg-tuya", compact=True,
                             disabled=self.mapping is None or not getattr(self.mapping, "pins", None))
                yield Button("Cancel [ctrl+g]", id="cfg-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        if self.entry_plan is not None:
            self.apply_entry(self.entry_plan)

    def apply_entry(self, plan: Any) -> None:
        """Pins, flags and startup command from a community entry; what differs from the Tuya pins is listed."""
        from bkbench.core.analysis.device_apply import apply_plan

        if self.chip and plan.chip != self.chip.upper():
            self.query_one("#cfg-error", Static).update(
                f"Community entry [{plan.entry.id}] is for a {plan.chip}, this chip is a {self.chip}: not applied.")
            return
        try:
            apply_plan(self.config, plan)
        except BkError as exc:
            self.query_one("#cfg-error", Static).update(f"Entry not applied: {exc}")
            return
        self.query_one("#cfg-pins", Input).value = pins_text(self.config)
        self.set_value("initCommandLine", str(self.config.get("initCommandLine")))
        entry = self.query_one("#cfg-entry", Static)
        entry.update("\n".join(plan.summary()))
        entry.display = True
        self.notify(f"Pins from community entry {plan.entry.title}: check them against the board and the forum "
                    "page before saving.", severity="warning", timeout=10)

    def fill_from(self, start: Input, parts: list[str]) -> None:
        """A pasted `SSID<Tab>password...`: the first part goes in at the cursor, the next ones replace the
        following fields, and the focus ends on the field after the last one filled."""
        inputs = list(self.query(FieldInput))
        at = inputs.index(start) if start in inputs else 0
        start.insert_text_at_cursor(parts[0])
        for field, text in zip(inputs[at + 1 :], parts[1:]):
            field.value = text
        nxt = min(at + len(parts), len(inputs) - 1)
        inputs[nxt].focus()

    def value(self, field: str) -> str:
        return self.query_one("#" + input_id(field), Input).value

    def set_value(self, field: str, value: str) -> None:
        self.query_one("#" + input_id(field), Input).value = value

    def on_button_pressed(self, event: Button.Pressed) -> None:
        {"cfg-save": self.action_save, "cfg-tuya": self.action_tuya_pins,
         "cfg-cancel": self.action_cancel}[event.button.id or "cfg-cancel"]()

    def action_tuya_pins(self) -> None:
        if self.mapping is None or not getattr(self.mapping, "pins", None):
            self.notify("No Tuya pin mapping: back up the chip first (its Tuya config is read from the backup).",
                        severity="warning")
            return
        self.config.apply_mapping(self.mapping)
        self.query_one("#cfg-pins", Input).value = pins_text(self.config)
        self.set_value("initCommandLine", str(self.config.get("initCommandLine")))
        warnings = list(getattr(self.mapping, "warnings", []) or [])
        self.notify("Pins set from the Tuya config." + (" " + " ".join(warnings) if warnings else ""),
                    severity="warning" if warnings else "information", timeout=8)

    def _apply(self, cfg: ObkConfig) -> None:
        for _label, field, _secret in FIELDS:
            cfg.set(field, self.value(field))
        cfg.set_pins_text(self.query_one("#cfg-pins", Input).value)

    def action_save(self) -> None:
        trial = self.config.copy()
        try:
            self._apply(trial)
        except BkError as exc:
            self.query_one("#cfg-error", Static).update(f"Not saved: {exc}")
            return
        self.config = trial
        if self.confirm is None:
            self.dismiss(self.config)
            return
        from .confirm import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                self.dismiss(self.config)
            else:
                self.notify("Not written: your edits are still here (Esc drops them).")

        title, body = self.confirm(self.config)
        self.app.push_screen(ConfirmScreen(title, body, yes="Write [y]", no="Back to the edits [n]"), answered)

    def edited(self) -> bool:
        """Any field or pin differs from what the editor opened with."""
        probe = self.config.copy()
        try:
            self._apply(probe)
        except BkError:
            return True  # an invalid value was typed: that is an edit too
        return bytes(probe.sector_raw) != self._original

    def action_cancel(self) -> None:
        if not self.edited():
            self.dismiss(None)
            return
        from .confirm import ConfirmScreen

        def answered(drop: bool | None) -> None:
            if drop:
                self.dismiss(None)

        self.app.push_screen(ConfirmScreen("Drop your edits?", "The config was changed and not saved.",
                                           yes="Drop them [y]", no="Keep editing [n]"), answered)
