"""Put a community entry's pins, flags and startup command into an OpenBK config (through ObkConfig's API).

Refused, in one line, before anything is changed: an entry of another chip, a role name OpenBK does not know
(PIN_ParsePinRoleName compares case-blind, nothing else: 'SM2135_DAT' is not 'SM2135DAT'), a GPIO the chip
does not have (PLATFORM_GPIO_MAX in OpenBK's new_pins.h) and PWM on a pin without a PWM channel
(PIN_GetPWMIndexForPinIndex in hal_pins_bk7231.c). Like OpenBK's web app, flags and the startup command are
set only when the entry gives them.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from ..errors import BkError
from .device_list import Entry
from .devices import DeviceFacts, PinVerdict, canonical_role, compare_pins, intended_role, parse_pin_value, role_names
from .obk_config import ObkConfig, pin_layout

# hal_pins_bk7231.c, PIN_GetPWMIndexForPinIndex: the six pins with a PWM channel on every Beken build.
BEKEN_PWM_PINS = (6, 7, 8, 9, 24, 26)
PWM_ROLES = frozenset({"pwm", "pwm_n", "pwm_scriptonly", "pwm_scriptonly_n"})


class EntryRefused(BkError):
    """The entry cannot be applied as it stands; nothing was changed."""


@dataclass
class EntryPlan:
    entry: Entry
    chip: str
    pins: dict[int, tuple[str, int, int]]  # gpio -> (OpenBK role, channel, channel2)
    diff: list[PinVerdict] = field(default_factory=list)  # against the device's own Tuya pins (if known)
    notes: list[str] = field(default_factory=list)

    @property
    def flags(self) -> int | None:
        return self.entry.flags

    @property
    def command(self) -> str:
        return self.entry.command

    def pins_text(self) -> str:
        return "  ".join(f"P{g}={r};{c}" + (f";{c2}" if c2 else "") for g, (r, c, c2) in sorted(self.pins.items()))

    def differences(self) -> list[str]:
        return [p.describe() for p in self.diff if p.verdict != "agrees"]

    def summary(self) -> list[str]:
        e = self.entry
        lines = [f"Community entry {e.title} [{e.id}] ({e.chip} {e.board or '?'})", f"  pins:    {self.pins_text()}"]
        if self.flags is not None:
            lines.append(f"  flags:   {self.flags}")
        if self.command:
            lines.append(f"  startup: {self.command}")
        if self.diff:
            diffs = self.differences()
            if diffs:
                lines.append("  differs from the pins this device's Tuya config names:")
                lines += [f"    {d}" for d in diffs]
            else:
                lines.append("  agrees with every pin this device's Tuya config names")
        lines += [f"  note: {n}" for n in self.notes]
        if e.wiki:
            lines.append(f"  read first: {e.wiki}")
        return lines

    def to_json(self) -> dict[str, Any]:
        return {"entry": self.entry.to_json(), "chip": self.chip,
                "pins": {str(g): {"role": r, "channel": c, "channel2": c2}
                         for g, (r, c, c2) in sorted(self.pins.items())},
                "flags": self.flags, "command": self.command, "differs": self.differences(),
                "diff": [p.to_json() for p in self.diff], "notes": list(self.notes)}


def gpio_count(chip: str) -> int:
    """OpenBK's PLATFORM_GPIO_MAX on `chip` (new_pins.h): the pins its build applies."""
    return pin_layout(chip).gpio_max


def _suggest(text: str) -> str:
    meant = intended_role(text)
    if meant:
        return f" (OpenBK's name is {meant})"
    close = difflib.get_close_matches(text.lower(), list(role_names()), n=1, cutoff=0.75)
    return f" (did you mean {role_names()[close[0]]}?)" if close else ""


def plan_entry(entry: Entry, chip: str | None, facts: DeviceFacts | None = None) -> EntryPlan:
    """Check every pin of `entry` for `chip` and say how it differs from `facts`; EntryRefused (one line) if not."""
    notes: list[str] = []
    if chip and entry.chip and entry.chip != chip.upper():
        raise EntryRefused(f"Entry [{entry.id}] is for a {entry.chip}; this config is for a {chip.upper()}: "
                           "nothing was changed.")
    if not chip and entry.chip:
        notes.append(f"this file does not tell its chip: the pins were checked for the entry's {entry.chip} "
                     "(--chip checks them for yours)")
    chip = (chip or entry.chip or "").upper()
    if not chip:
        raise EntryRefused(f"Entry [{entry.id}] names no chip and this file does not tell it; give --chip.")
    if not entry.pins and entry.flags is None and not entry.command:
        raise EntryRefused(f"Entry [{entry.id}] ({entry.title}) has no pins, flags or startup command to apply.")
    count = gpio_count(chip)
    pins: dict[int, tuple[str, int, int]] = {}
    for gpio, text in sorted(entry.pins.items()):
        role_text, ch, ch2 = parse_pin_value(text)
        role = canonical_role(role_text)
        if role is None:
            raise EntryRefused(f"P{gpio}: '{role_text}' in entry [{entry.id}] is not an OpenBK pin role"
                               f"{_suggest(role_text)}; nothing was changed.")
        if role == "None":
            continue
        if gpio >= count:
            raise EntryRefused(f"P{gpio} ({role}) in entry [{entry.id}]: a {chip} has GPIOs P0-P{count - 1} only; "
                               "OpenBK never applies it. Nothing was changed.")
        if role.lower() in PWM_ROLES and gpio not in BEKEN_PWM_PINS:
            raise EntryRefused(f"P{gpio} ({role}) in entry [{entry.id}]: P{gpio} has no PWM channel on a {chip} "
                               f"(PWM pins: {', '.join(f'P{p}' for p in BEKEN_PWM_PINS)}); nothing was changed.")
        pins[gpio] = (role, ch, ch2)
    if not entry.pins:
        notes.append("the entry names no pins (TuyaMCU devices keep theirs in the MCU): the config is left without "
                     "any")
    if entry.problems:
        notes.append("parts of the entry could not be read: " + "; ".join(entry.problems))
    diff = compare_pins(facts, entry) if facts is not None and facts.pins else []
    if facts is None or not facts.pins:
        notes.append("no Tuya pin configuration to compare with: check the pins on the board or the forum page")
    return EntryPlan(entry, chip, pins, diff, notes)


def apply_plan(cfg: ObkConfig, plan: EntryPlan) -> None:
    """Replace the config's pins with the entry's; set flags and startup command when the entry gives them."""
    probe = ObkConfig(bytes(cfg.raw))  # every write is tried on a copy first: a refusal changes nothing
    for target in (probe, cfg):
        target.clear_pins()
        for gpio, (role, ch, ch2) in sorted(plan.pins.items()):
            target.set_pin(gpio, role, ch, ch2)
        if plan.flags is not None:
            target.set("genericFlags", plan.flags & 0xFFFFFFFF)
            target.set("genericFlags2", plan.flags >> 32)
        if plan.command:
            target.set("initCommandLine", plan.command)
