"""Map Tuya's `user_param_key` to OpenBK pin roles, a template and startup commands.

Role names and their numbers are OpenBK's pin roles: the short names of the web UI / templates, in the
order of `ioRole_e` in OpenBK7231T_App `src/new_pins.h` (the number is what the config sector stores).
Key names follow Tuya's SDK; the key -> role table was learnt from BK7231GUIFlashTool
`Utils/TuyaConfig.cs`. Unlike that tool, the `*_lv` active levels are honoured: level 0 means the output
is active low (inverted `_n` role), for buttons level 0 is the normal pull-up button (`Btn`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# OpenBK ioRole_e order (new_pins.h), spelled as OpenBK's htmlPinRoleNames[] (httpserver/new_http.c at
# e1a8097); index == role number stored in the config sector.
ROLE_NAMES: tuple[str, ...] = (
    "None", "Rel", "Rel_n", "Btn", "Btn_n", "LED", "LED_n", "PWM", "WifiLED", "WifiLED_n",
    "Btn_Tgl_All", "Btn_Tgl_All_n", "dInput", "dInput_n", "TglChanOnTgl", "dInput_NoPullUp",
    "dInput_NoPullUp_n", "BL0937SEL", "BL0937CF", "BL0937CF1", "ADC", "SM2135DAT", "SM2135CLK",
    "BP5758D_DAT", "BP5758D_CLK", "BP1658CJ_DAT", "BP1658CJ_CLK", "PWM_n", "IRRecv", "IRSend",
    "Btn_NextColor", "Btn_NextColor_n", "Btn_NextDimmer", "Btn_NextDimmer_n", "AlwaysHigh", "AlwaysLow",
    "UCS1912_DIN", "SM16703P_DIN", "Btn_NextTemperature", "Btn_NextTemperature_n", "Btn_ScriptOnly",
    "Btn_ScriptOnly_n", "DHT11", "DHT12", "DHT21", "DHT22", "CHT83XX_SDA", "CHT83XX_SCK", "SHT3X_SDA",
    "SHT3X_SCK", "SoftSDA", "SoftSCL", "SM2235DAT", "SM2235CLK", "BridgeFWD", "BridgeREV", "Btn_SmartLED",
    "Btn_SmartLED_n", "DoorSnsrWSleep", "DoorSnsrWSleep_nPup", "BAT_ADC", "BAT_Relay", "TM1637_DIO",
    "TM1637_CLK", "BL0937SEL_n", "DoorSnsrWSleep_pd", "SGP_CLK", "SGP_DAT", "ADC_Button", "GN6932_CLK",
    "GN6932_DAT", "GN6932_STB", "TM1638_CLK", "TM1638_DAT", "TM1638_STB", "BAT_Relay_n", "KP18058_CLK",
    "KP18058_DAT", "DS1820_IO", "PWM_ScriptOnly", "PWM_ScriptOnly_n", "Counter_f", "Counter_r",
    "IRRecv_nPup", "StripState", "StripState_n", "HLW_8112_SCSN", "RCRecv", "RCRecv_nPup", "Btn_pd",
    "Btn_pd_n", "TglChanOnTgl_pd", "ShutterA", "ShutterB", "BtnShutterUp", "BtnShutterDown", "BL0939_SCLK",
    "BL0939_MOSI", "BL0939_MISO",
)  # fmt: skip
ROLE_INDEX: dict[str, int] = {name: i for i, name in enumerate(ROLE_NAMES)}
# Names OpenBK used before (configs, templates and scripts written then still carry them).
OLD_ROLE_NAMES: dict[str, int] = {"CHT8305_SDA": 46, "CHT8305_SCK": 47, "HLW8112_SCSN": 86}
_ROLE_FOLDED: dict[str, int] = {n.lower(): i for n, i in (*OLD_ROLE_NAMES.items(), *ROLE_INDEX.items())}


def role_number(name: str) -> int | None:
    """The role number of `name`, matched case-blind as OpenBK's PIN_ParsePinRoleName does (old names too)."""
    return _ROLE_FOLDED.get(name.strip().lower())

BK7231_GPIOS = frozenset(range(0, 29))
UART1_PINS = {10: "RX1", 11: "TX1"}  # the flashing UART: circuitry on it interferes with flashing

# chip_type of Tuya's metering component.
METERS = {0: "BL0937", 1: "HLW8012", 2: "HLW8032", 3: "BL0942"}
# UART meters become OpenBK drivers (HLW8032 speaks the CSE7766 protocol at 4800 baud).
UART_METER_DRIVER = {2: "CSE7766", 3: "BL0942"}

PWM_CHANNELS = {"r_pin": 0, "g_pin": 1, "b_pin": 2, "c_pin": 3, "w_pin": 4}
I2C_LED_DRIVERS = (
    # (driver, key proving it, DAT role, CLK role, current command, (rgb current keys), (white current keys))
    ("SM2135", ("ehccur", "wampere", "iicccur"), "SM2135DAT", "SM2135CLK", "SM2135_Current",
     ("ehccur", "iicccur", "campere"), ("ehwcur", "iicwcur", "wampere")),
    ("BP5758D", ("dccur",), "BP5758D_DAT", "BP5758D_CLK", "BP5758D_Current", ("drgbcur",),
     ("dwcur", "dccur")),
    ("BP1658CJ", ("cjwcur",), "BP1658CJ_DAT", "BP1658CJ_CLK", "BP1658CJ_Current", ("cjccur",), ("cjwcur",)),
    ("SM2235", ("2235ccur",), "SM2235DAT", "SM2235CLK", "SM2235_Current", ("2235ccur",), ("2235wcur",)),
    ("KP18058", ("kp58wcur",), "KP18058_DAT", "KP18058_CLK", "KP18058_Current", ("kp58wcur",), ("kp58ccur",)),
)  # fmt: skip


@dataclass
class PinRole:
    gpio: int
    role: str
    channel: int = 0
    source: str = ""  # the Tuya key it came from

    @property
    def role_index(self) -> int:
        return ROLE_INDEX[self.role]

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "channel": self.channel, "source": self.source}


@dataclass
class PinMapping:
    kind: str  # "pins", "tuyamcu" or "unknown"
    pins: dict[int, PinRole] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unmapped: dict[str, Any] = field(default_factory=dict)  # *_pin keys with no OpenBK role
    module: str | None = None
    meter: str | None = None
    baud: int | None = None

    def startup_command(self) -> str:
        """One-line OpenBK short startup command (commands joined by ';' via `backlog`)."""
        if not self.commands:
            return ""
        if len(self.commands) == 1:
            return self.commands[0]
        return "backlog " + "; ".join(self.commands)

    def template(self, name: str = "", chip: str = "", model: str = "") -> dict[str, Any]:
        """OpenBK device template (the JSON format of OpenBK's devices list / web app import)."""
        return {
            "vendor": "Tuya",
            "bDetailed": "0",
            "name": name or (f"Tuya {self.module} device" if self.module else "Tuya device"),
            "model": model,
            "chip": chip,
            "board": self.module or "",
            "flags": "0",
            "keywords": [k for k in (self.module, self.meter, "TuyaMCU" if self.kind == "tuyamcu" else "")
                         if k],
            "pins": {str(g): f"{p.role};{p.channel}" for g, p in sorted(self.pins.items())},
            "command": self.startup_command(),
            "image": "",
            "wiki": "",
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "module": self.module,
            "meter": self.meter,
            "baud": self.baud,
            "pins": {str(g): p.to_json() for g, p in sorted(self.pins.items())},
            "commands": list(self.commands),
            "startup_command": self.startup_command(),
            "warnings": list(self.warnings),
            "unmapped": dict(self.unmapped),
        }


def _level(upk: dict[str, Any], key: str, default: int = 1) -> int:
    v = upk.get(key)
    return v if isinstance(v, int) else default


def _num(key: str) -> int:
    m = re.search(r"\d+", key)
    return int(m.group()) if m else 0


def _role_for(key: str, upk: dict[str, Any]) -> tuple[str, int] | None:
    """(role, channel) for one Tuya pin key, or None when OpenBK has no role for it."""
    stem = key[: -len("_pin")] if key.endswith("_pin") else key
    if re.fullmatch(r"rl\d+", stem):  # relay N, rlN_lv 1 = active high
        return ("Rel" if _level(upk, stem + "_lv") else "Rel_n"), _num(stem)
    if re.fullmatch(r"rl_on\d+", stem):  # bistable relay "on" coil (GUIFlashTool: Rel; off coil Rel_n)
        return "Rel", _num(stem)
    if re.fullmatch(r"rl_off\d+", stem):
        return "Rel_n", _num(stem)
    if re.fullmatch(r"led\d+", stem):
        return ("LED" if _level(upk, stem + "_lv") else "LED_n"), _num(stem)
    if re.fullmatch(r"netled\d*", stem) or key in ("wfst", "wfst_pin", "status_led_pin"):
        lv_key = "wfst_lv" if key.startswith("wfst") else stem + "_lv"
        return ("WifiLED" if _level(upk, lv_key, 0) else "WifiLED_n"), 0
    if re.fullmatch(r"bt\d+", stem) or re.fullmatch(r"k\d+pin", stem):
        # Tuya level 0 = pressed pulls low = OpenBK's normal (pull-up) Btn.
        return ("Btn_n" if _level(upk, stem + "_lv", 0) else "Btn"), _num(stem)
    if key in ("bt_pin", "bt", "reset_pin"):
        ch = 1 if any(re.fullmatch(r"rl1(_pin)?", k) for k in upk) else 0
        return ("Btn_n" if _level(upk, "bt_lv", 0) else "Btn"), ch
    if key == "total_bt_pin":
        return ("Btn_Tgl_All_n" if _level(upk, "total_bt_lv", 0) else "Btn_Tgl_All"), 0
    if re.fullmatch(r"onoff\d+", key):  # wall switch input toggling channel N
        return "TglChanOnTgl", _num(key)
    if re.fullmatch(r"door\d+_magt", stem) or key in ("gate_sensor_pin_pin", "basic_pin_pin"):
        return "dInput", _num(stem)
    if key in PWM_CHANNELS:
        return ("PWM" if _level(upk, key[0] + "_lv") else "PWM_n"), PWM_CHANNELS[key]
    if key in ("ele_pin", "epin"):
        return "BL0937CF", 0
    if key in ("vi_pin", "ivpin"):
        return "BL0937CF1", 0
    if key in ("sel_pin_pin", "ivcpin"):
        return ("BL0937SEL" if _level(upk, "sel_pin_lv") else "BL0937SEL_n"), 0
    if key in ("irpin", "infrr"):
        return "IRRecv", 0
    if key == "infre":
        return "IRSend", 0
    if key == "remote_io":
        return "RCRecv", 0
    if key == "samp_sw_pin":
        return "BAT_Relay", 0
    if key == "samp_pin":
        return "BAT_ADC", 0
    if key == "backlit_io_pin":
        return "LED", 0
    return None


def _is_pin_key(key: str) -> bool:
    extra = ("wfst", "infrr", "infre", "irpin", "epin", "ivpin", "ivcpin", "remote_io", "bt", "ctrl_pin")
    return key.endswith("_pin") or key in extra or bool(re.fullmatch(r"onoff\d+", key))


def map_user_param_key(upk: dict[str, Any], baud: int | None = None) -> PinMapping:
    """OpenBK pins and startup commands for a parsed `user_param_key` (None-safe for TuyaMCU)."""
    m = PinMapping(kind="pins", module=str(upk["module"]) if "module" in upk else None, baud=baud)

    def assign(gpio: Any, role: str, channel: int, source: str) -> None:
        if not isinstance(gpio, int) or gpio not in BK7231_GPIOS:
            m.warnings.append(f"{source}={gpio!r} is not a BK7231 GPIO; ignored")
            return
        old = m.pins.get(gpio)
        if old is not None and old.role != role:
            m.warnings.append(
                f"P{gpio} is both {old.role} ({old.source}) and {role} ({source}); kept {old.role}")
            return
        m.pins[gpio] = PinRole(gpio, role, channel, source)

    for key, value in upk.items():
        if key in ("iicscl", "iicsda"):
            continue  # handled with the LED driver below
        found = _role_for(key, upk)
        if found is not None:
            assign(value, found[0], found[1], key)
        elif _is_pin_key(key) and isinstance(value, int):
            m.unmapped[key] = value

    # I2C LED drivers (SM2135, BP5758D, BP1658CJ, SM2235, KP18058).
    if isinstance(upk.get("iicsda"), int) and isinstance(upk.get("iicscl"), int):
        chosen = next((d for d in I2C_LED_DRIVERS if any(k in upk for k in d[1])), None)
        if chosen is None:
            m.warnings.append("I2C LED driver type unknown (no current key); assumed SM2135")
            chosen = I2C_LED_DRIVERS[0]
        name, _, dat, clk, cmd, rgb_keys, white_keys = chosen
        assign(upk["iicsda"], dat, 0, "iicsda")
        assign(upk["iicscl"], clk, 0, "iicscl")
        rgb = next((upk[k] for k in rgb_keys if isinstance(upk.get(k), int)), None)
        white = [upk[k] for k in white_keys if isinstance(upk.get(k), int)]
        if rgb is not None and white:
            m.commands.append(f"{cmd} {rgb} {max(white) if name == 'BP5758D' else white[0]}")
        order = [upk.get(k) for k in ("iicr", "iicg", "iicb", "iicc", "iicw")]
        if all(isinstance(v, int) for v in order):
            m.commands.append("LED_Map " + " ".join(str(v) for v in order))

    if isinstance(upk.get("pwmhz"), int):
        m.commands.append(f"PWMFrequency {upk['pwmhz']}")

    # Power metering.
    chip_type = upk.get("chip_type")
    if isinstance(chip_type, int) and chip_type in METERS:
        m.meter = METERS[chip_type]
        if chip_type in UART_METER_DRIVER:
            drv = UART_METER_DRIVER[chip_type]
            m.commands.append(f"startDriver {drv}")
            m.warnings.append(f"{m.meter} talks on UART1 (P10 RX1/P11 TX1): disconnect it while flashing")
    elif any(p.role.startswith("BL0937") for p in m.pins.values()):
        m.meter = "BL0937"

    for gpio, name in UART1_PINS.items():
        if gpio in m.pins:
            p = m.pins[gpio]
            m.warnings.append(
                f"P{gpio} ({name}, flashing UART) is used as {p.role} ({p.source}): the circuit on it can "
                "disturb flashing; hold it idle or disconnect it")
    if not m.pins:
        m.kind = "unknown"
    return m


def tuyamcu_mapping(baud: int | None, module: str | None = None) -> PinMapping:
    """A device without `user_param_key` whose MCU talks to the Wi-Fi module over UART1 (TuyaMCU)."""
    m = PinMapping(kind="tuyamcu", module=module, baud=baud)
    m.commands.append("startDriver TuyaMCU")
    if baud:
        m.commands.append(f"tuyaMcu_setBaudRate {baud}")
    m.warnings.append("TuyaMCU: the MCU is wired to UART1 (P10/P11); it may need to be held in reset "
                      "or disconnected while flashing")
    return m


def mapping_for_vault(upk: dict[str, Any] | None, baud: int | None) -> PinMapping:
    if upk:
        return map_user_param_key(upk, baud)
    if baud is not None:
        return tuyamcu_mapping(baud)
    return PinMapping(kind="unknown", warnings=["no user_param_key and no baud_cfg in the Tuya storage"])
