"""OpenBK configuration sector ("CFG"): parse, show, edit and build (PROTOCOL.md section 7).

Layout = OpenBK7231T_App `src/new_pins.h`, struct `mainConfig_t` (Beken build, ALLOW_SSID2 = 1), offsets as
commented there; `pinsState_t` holds roles[32], channels[32], channels2[32], channelTypes[64].
Checksum = `CFG_CalcChecksum` in `src/new_cfg.c`: `Tiny_CRC8` (user_main.c; reflected CRC-8, poly 0x8C,
init 0) over the struct from `version` to its end: MAGIC_CONFIG_SIZE_V3 (2016) bytes for version 3,
sizeof(mainConfig_t) (3584 on Beken) otherwise. Current builds write MAIN_CFG_VERSION 5. OpenBK writes the
struct at the start of its own flash sector; the rest of the sector stays erased (0xFF).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from ..errors import BkError
from ..layout import SECTOR
from .tuya_pins import ROLE_INDEX, ROLE_NAMES, PinMapping

SIZE_V3 = 2016
SIZE_V4 = 3584  # sizeof(mainConfig_t) on Beken since version 4
CFG_VERSION = 5
IDENT = b"CFG"
PIN_COUNT = 32
CHANNEL_MAX = 64

# name -> (offset, format, size). "s" = NUL-terminated string field of that size.
FIELDS: dict[str, tuple[int, str, int]] = {
    "version": (0x04, "<i", 4),
    "genericFlags": (0x08, "<I", 4),
    "genericFlags2": (0x0C, "<I", 4),
    "changeCounter": (0x10, "<H", 2),
    "otaCounter": (0x12, "<H", 2),
    "wifi_ssid": (0x14, "s", 64),
    "wifi_pass": (0x54, "s", 64),
    "mqtt_host": (0x94, "s", 256),
    "mqtt_clientId": (0x194, "s", 64),
    "mqtt_userName": (0x1D4, "s", 64),
    "mqtt_pass": (0x214, "s", 128),
    "mqtt_port": (0x294, "<i", 4),
    "webappRoot": (0x298, "s", 64),
    "mac": (0x2D8, "b", 6),
    "shortDeviceName": (0x2DE, "s", 32),
    "longDeviceName": (0x2FE, "s", 64),
    "ntpServer": (0x478, "s", 32),
    "buttonShortPress": (0x4B8, "<B", 1),
    "buttonLongPress": (0x4B9, "<B", 1),
    "buttonHoldRepeat": (0x4BA, "<B", 1),
    "loggerFlags": (0x4C0, "<i", 4),
    "mqtt_group": (0x554, "s", 64),
    "timeRequiredToMarkBootSuccessfull": (0x597, "<B", 1),
    "initCommandLine": (0x5E0, "s", 1568),  # 512 in version 3
    "wifi_ssid2": (0xC00, "s", 64),
    "wifi_pass2": (0xC40, "s", 68),
    "webPassword": (0xC84, "s", 33),
    "disable_web_server": (0xCBB, "<B", 1),
}
PINS_ROLES, PINS_CHANNELS, PINS_CHANNELS2, CHANNEL_TYPES = 0x33E, 0x35E, 0x37E, 0x39E
SECRET_FIELDS = frozenset({"wifi_pass", "wifi_pass2", "mqtt_pass", "webPassword"})
# Friendly names accepted by `config set`.
ALIASES = {
    "ssid": "wifi_ssid", "pass": "wifi_pass", "password": "wifi_pass", "wifi_password": "wifi_pass",
    "ssid2": "wifi_ssid2", "pass2": "wifi_pass2", "wifi_password2": "wifi_pass2",
    "mqtt_user": "mqtt_userName", "mqtt_client": "mqtt_clientId", "mqtt_password": "mqtt_pass",
    "short_name": "shortDeviceName", "name": "shortDeviceName", "long_name": "longDeviceName",
    "startup": "initCommandLine", "startup_command": "initCommandLine", "flags": "genericFlags",
    "flags2": "genericFlags2", "web_password": "webPassword",
}  # fmt: skip


def tiny_crc8(data: bytes) -> int:
    """OpenBK's Tiny_CRC8 (user_main.c): LSB-first CRC-8, poly 0x8C (Dallas/Maxim), init 0."""
    crc = 0
    for byte in data:
        for _ in range(8):
            mix = (crc ^ byte) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            byte >>= 1
    return crc


def config_size(version: int) -> int:
    return SIZE_V3 if version == 3 else SIZE_V4


@dataclass
class PinConfig:
    role: str
    channel: int
    channel2: int


class ObkConfig:
    """One mainConfig_t image (always kept at SIZE_V4 bytes)."""

    def __init__(self, raw: bytes | bytearray) -> None:
        buf = bytearray(raw[:SIZE_V4])
        if len(buf) < SIZE_V4:
            buf += b"\0" * (SIZE_V4 - len(buf))
        self.raw = buf

    # --- construction ---
    @classmethod
    def parse(cls, data: bytes) -> ObkConfig:
        """Parse a config sector (or a struct image); BkError when it is not a valid OpenBK config."""
        if data[:3] != IDENT:
            if data[:3] == b"\xff\xff\xff":
                raise BkError("The OpenBK config sector is erased (no configuration saved yet).")
            raise BkError("This is not an OpenBK config sector (no 'CFG' ident).")
        if len(data) < 8:
            raise BkError(f"The OpenBK config is truncated: {len(data)} bytes, not even a header.")
        (version,) = struct.unpack_from("<i", data, 4)
        size = config_size(version)
        if len(data) < size:
            raise BkError(f"OpenBK config version {version} needs {size} bytes, got {len(data)}.")
        if tiny_crc8(bytes(data[4:size])) != data[3]:
            raise BkError("The OpenBK config sector has a bad checksum.")
        cfg = cls(data[:size])
        if version == 3:  # CFG_CalcChecksum clears the v4 fields when converting
            cfg.raw[0x5E0 + 512 :] = b"\0" * (SIZE_V4 - 0x5E0 - 512)
        return cfg

    @classmethod
    def new(cls, mac: bytes | None = None) -> ObkConfig:
        """Defaults in the spirit of CFG_SetDefaultConfig (new_cfg.c)."""
        cfg = cls(b"\0" * SIZE_V4)
        cfg.raw[0:3] = IDENT
        cfg.set("version", CFG_VERSION)
        cfg.set("mqtt_port", 1883)
        cfg.set("webappRoot", "https://openbekeniot.github.io/webapp/")
        cfg.set("buttonShortPress", 3)  # CFG_DEFAULT_BTN_SHORT / LONG / REPEAT
        cfg.set("buttonLongPress", 10)
        cfg.set("buttonHoldRepeat", 5)
        cfg.set("timeRequiredToMarkBootSuccessfull", 5)  # DEFAULT_BOOT_SUCCESS_TIME
        cfg.set("mqtt_group", "bekens")
        cfg.set("ntpServer", "217.147.223.78")
        if mac is not None:
            cfg.set("mac", bytes(mac))
            name = "obk" + bytes(mac[2:6]).hex().upper()
            cfg.set("shortDeviceName", name)
            cfg.set("longDeviceName", name)
            cfg.set("mqtt_clientId", name)
        return cfg

    # --- fields ---
    @property
    def version(self) -> int:
        return int(self.get("version"))

    def get(self, name: str) -> Any:
        name = ALIASES.get(name, name)
        if name not in FIELDS:
            raise BkError(f"Unknown OpenBK config field {name!r}.")
        off, fmt, size = FIELDS[name]
        if fmt == "s":
            if name == "initCommandLine" and self.version == 3:
                size = 512
            return bytes(self.raw[off : off + size]).split(b"\0", 1)[0].decode("utf-8", "replace")
        if fmt == "b":
            return bytes(self.raw[off : off + size])
        return struct.unpack_from(fmt, self.raw, off)[0]

    def set(self, name: str, value: Any) -> None:
        name = ALIASES.get(name, name)
        if name not in FIELDS:
            raise BkError(f"Unknown OpenBK config field {name!r}.")
        off, fmt, size = FIELDS[name]
        if fmt == "s":
            enc = str(value).encode("utf-8")
            if len(enc) >= size:
                raise BkError(f"{name} is too long: at most {size - 1} bytes.")
            self.raw[off : off + size] = enc + b"\0" * (size - len(enc))
        elif fmt == "b":
            if len(value) != size:
                raise BkError(f"{name} needs {size} bytes.")
            self.raw[off : off + size] = bytes(value)
        else:
            try:
                struct.pack_into(fmt, self.raw, off, int(value, 0) if isinstance(value, str) else int(value))
            except (struct.error, ValueError):
                raise BkError(f"{name}: {value!r} is not a valid number for this field.") from None

    def flag(self, bit: int) -> bool:
        word = "genericFlags" if bit < 32 else "genericFlags2"
        return bool(self.get(word) >> (bit % 32) & 1)

    def set_flag(self, bit: int, on: bool) -> None:
        if not 0 <= bit < 64:
            raise BkError("OpenBK flags are numbered 0..63.")
        word = "genericFlags" if bit < 32 else "genericFlags2"
        v = self.get(word)
        self.set(word, (v | 1 << (bit % 32)) if on else (v & ~(1 << (bit % 32)) & 0xFFFFFFFF))

    # --- pins ---
    def pins(self) -> dict[int, PinConfig]:
        out = {}
        for g in range(PIN_COUNT):
            role = self.raw[PINS_ROLES + g]
            if role:
                name = ROLE_NAMES[role] if role < len(ROLE_NAMES) else f"role{role}"
                out[g] = PinConfig(name, self.raw[PINS_CHANNELS + g], self.raw[PINS_CHANNELS2 + g])
        return out

    def set_pin(self, gpio: int, role: str, channel: int = 0, channel2: int = 0) -> None:
        if not 0 <= gpio < PIN_COUNT:
            raise BkError(f"P{gpio} is not a pin index OpenBK stores (0..31).")
        if role not in ROLE_INDEX:
            raise BkError(f"Unknown OpenBK pin role {role!r}.")
        if not (0 <= channel < 256 and 0 <= channel2 < 256):
            raise BkError("Channels must be 0..255.")
        self.raw[PINS_ROLES + gpio] = ROLE_INDEX[role]
        self.raw[PINS_CHANNELS + gpio] = channel
        self.raw[PINS_CHANNELS2 + gpio] = channel2

    def clear_pins(self) -> None:
        self.raw[PINS_ROLES : PINS_ROLES + 3 * PIN_COUNT] = b"\0" * (3 * PIN_COUNT)

    def apply_mapping(self, mapping: PinMapping, startup: bool = True) -> None:
        """Pins (and optionally the startup command) from a Tuya -> OpenBK mapping."""
        self.clear_pins()
        for g, p in mapping.pins.items():
            self.set_pin(g, p.role, p.channel)
        if startup and mapping.commands:
            self.set("initCommandLine", mapping.startup_command())

    # --- output ---
    def struct_bytes(self) -> bytes:
        """The struct with a fresh checksum (version 3 images keep their 2016-byte size)."""
        size = config_size(self.version)
        self.raw[0:3] = IDENT
        self.raw[3] = tiny_crc8(bytes(self.raw[4:size]))
        return bytes(self.raw[:size])

    def sector(self) -> bytes:
        body = self.struct_bytes()
        return body + b"\xff" * (SECTOR - len(body))

    def to_json(self, show_secrets: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, (_off, fmt, _size) in FIELDS.items():
            v = self.get(name)
            if fmt == "b":
                v = ":".join(f"{b:02x}" for b in v)
            if name in SECRET_FIELDS and v and not show_secrets:
                v = "<secret>"
            out[name] = v
        out["flags"] = [b for b in range(64) if self.flag(b)]
        out["pins"] = {str(g): {"role": p.role, "channel": p.channel, "channel2": p.channel2}
                       for g, p in self.pins().items()}
        return out


def parse_assignment(cfg: ObkConfig, assignment: str) -> None:
    """Apply one `key=value` edit: a field or alias, `flag.N=0|1`, `pin.N=Role[;ch[;ch2]]` or `pin.N=`."""
    if "=" not in assignment:
        raise BkError(f"Expected key=value, got {assignment!r}.")
    key, value = assignment.split("=", 1)
    key = key.strip()
    if key.startswith("flag."):
        try:
            bit = int(key[5:])
        except ValueError:
            raise BkError(f"Bad flag number in {key!r}.") from None
        cfg.set_flag(bit, value.strip() not in ("0", "", "off", "false"))
    elif key.startswith("pin.") or (key.startswith("P") and key[1:].isdigit()):
        try:
            gpio = int(key[4:] if key.startswith("pin.") else key[1:])
        except ValueError:
            raise BkError(f"Bad pin number in {key!r}.") from None
        parts = [p.strip() for p in value.split(";")] if value.strip() else ["None"]
        try:
            nums = [int(p) for p in parts[1:3]]
        except ValueError:
            raise BkError(f"Bad channel in {assignment!r}.") from None
        cfg.set_pin(gpio, parts[0], *nums)
    else:
        cfg.set(key, value)
