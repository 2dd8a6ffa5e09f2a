"""What a device has on its flashing UART (P10 = RX1, P11 = TX1), and where bkbench learnt it.

Sources, best first: the Tuya configuration in a flash dump (`user_param_key`), the same object as the
application prints it in its boot log (`json cfg:[...]`, core/analysis/bootlog.py), and the Tuya SDK's
per-peripheral start-up lines (`[KEY] - pin:10`), which survive when the cfg line is cut by another task.
A part on RX1 is what stops the chip hearing the adapter (quirk 27: the LSPA9-like plug's button on P10).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BkError

UART1 = {10: "RX1", 11: "TX1"}
# Tuya SDK start-up lines, e.g. "[KEY] - pin:16,	 io_drive:1" (fixtures/bootlogs).
_SDK_PIN = re.compile(r"^\[(KEY|TOTAL KEY|RELAY|WIFI LED|LED)\] - pin:(\d+)", re.M)
_SDK_PART = {"KEY": "a button", "TOTAL KEY": "a button", "RELAY": "a relay driver", "WIFI LED": "an LED",
             "LED": "an LED"}
# OpenBK role name prefix -> the part a person would look for on the board.
_ROLE_PART = (
    ("Btn", "a button"), ("Rel", "a relay driver"), ("BAT_Relay", "a relay driver"), ("WifiLED", "an LED"),
    ("LED", "an LED"), ("PWM", "a PWM output (LED driver)"), ("BL0937", "the BL0937 power meter"),
    ("dInput", "a switch input"), ("TglChanOnTgl", "a switch input"), ("DoorSnsr", "a door sensor"),
    ("IRRecv", "an IR receiver"), ("IRSend", "an IR LED"), ("ADC", "an analog input"), ("BAT_ADC", "an analog input"),
    ("DHT", "a temperature sensor"), ("CHT8305", "a temperature sensor"), ("SHT3X", "a temperature sensor"),
    ("RCRecv", "a radio receiver"),
)


@dataclass(frozen=True)
class Uart1Part:
    gpio: int  # 10 or 11
    part: str  # "a button"
    detail: str  # "bt1_pin" (the Tuya key) or "Btn"
    source: str  # "its boot log", "its backup"

    @property
    def pin(self) -> str:
        return f"P{self.gpio} = {UART1[self.gpio]}"

    def sentence(self) -> str:
        return f"{self.part} ({self.detail}) on {self.pin}"


def _part_for_role(role: str) -> str:
    for prefix, part in _ROLE_PART:
        if role.startswith(prefix):
            return part
    if role.endswith(("DAT", "CLK", "_DIN", "_DIO", "SDA", "SCK", "SCL")):
        return f"an LED/sensor bus line ({role})"
    return f"a {role} pin"


def parts_from_mapping(mapping: Any, source: str) -> list[Uart1Part]:
    """Parts on P10/P11 from a core.analysis.tuya_pins.PinMapping."""
    if mapping is None:
        return []
    parts: list[Uart1Part] = []
    kind = getattr(mapping, "kind", "")
    meter = getattr(mapping, "meter", None)
    if kind == "tuyamcu":
        return [Uart1Part(g, "a TuyaMCU (the device's second microcontroller)", "TuyaMCU", source) for g in UART1]
    if meter in ("HLW8032", "BL0942"):
        parts += [Uart1Part(g, f"the {meter} power meter", "chip_type", source) for g in UART1]
    for gpio in UART1:
        pin = mapping.pins.get(gpio)
        if pin is not None:
            parts.append(Uart1Part(gpio, _part_for_role(pin.role), pin.source or pin.role, source))
        for key, value in getattr(mapping, "unmapped", {}).items():
            if value == gpio:
                parts.append(Uart1Part(gpio, "a part OpenBK has no role for", key, source))
    return parts


def parts_from_cfg(cfg: dict[str, Any] | None, source: str) -> list[Uart1Part]:
    if not cfg:
        return []
    from ..analysis.tuya_pins import map_user_param_key

    try:
        return parts_from_mapping(map_user_param_key(cfg), source)
    except Exception:  # noqa: BLE001 - a half-parsed log must not break a diagnosis
        return []


def parts_from_boot_log(text: str | bytes, source: str = "its boot log") -> list[Uart1Part]:
    """Parts on P10/P11 from an application log: its `json cfg`, else the SDK's `[KEY] - pin:N` lines."""
    from ..analysis.bootlog import parse_boot_log

    if isinstance(text, bytes):
        text = text.decode("latin-1")
    parts = parts_from_cfg(parse_boot_log(text).json_cfg, source)
    if parts:
        return parts
    found = []
    for m in _SDK_PIN.finditer(text.replace("\r", "")):
        gpio = int(m.group(2))
        if gpio in UART1:
            found.append(Uart1Part(gpio, _SDK_PART[m.group(1)], f"[{m.group(1)}] pin:{gpio}", source))
    return found


def parts_from_dump(dump: bytes | str | Path, source: str = "its backup") -> list[Uart1Part]:
    from ..analysis.dump import analyze_dump

    data = dump if isinstance(dump, (bytes, bytearray)) else Path(dump).read_bytes()
    try:
        analysis = analyze_dump(bytes(data))
    except BkError:
        return []
    return parts_from_mapping(analysis.mapping, source)


def merge(*groups: list[Uart1Part]) -> list[Uart1Part]:
    """One entry per (pin, part), the first source kept (callers pass the best source first)."""
    seen: set[tuple[int, str]] = set()
    out = []
    for group in groups:
        for p in group:
            if (p.gpio, p.part) not in seen:
                seen.add((p.gpio, p.part))
                out.append(p)
    return out


def describe(parts: list[Uart1Part]) -> str:
    """"its boot log puts a button (bt1_pin) on P10 = RX1" (sources grouped, parts joined)."""
    by_source: dict[str, list[str]] = {}
    for p in parts:
        by_source.setdefault(p.source, []).append(p.sentence())
    return "; ".join(f"{src} puts {' and '.join(items)}" for src, items in by_source.items())


def on_rx1(parts: list[Uart1Part]) -> bool:
    return any(p.gpio == 10 for p in parts)
