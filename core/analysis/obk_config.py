"""OpenBK configuration sector ("CFG"): parse, show, edit and build (PROTOCOL.md section 7).

Read from OpenBK7231T_App at e1a8097 (2026-07-24) and judged against the real OpenBK builds run under
Unicorn (tests/realcode/openbk_fw.py):

- Layout = `src/new_pins.h`, struct `mainConfig_t` (Beken build, ALLOW_SSID2 = 1), offsets as commented
  there. `pinsState_t` holds roles[N], channels[N], channels2[N], channelTypes[64]: N = 32 on BK7231N/M/T/U
  and BK7238, 48 on BK7252/BK7252N, which shifts every field up to 0x527 (the struct size stays 3584).
  OpenBK applies pins 0..PLATFORM_GPIO_MAX-1 only: 29 on the 32-pin builds, 40 on BK7252/BK7252N.
- Checksum = `CFG_CalcChecksum` (`src/new_cfg.c`): `Tiny_CRC8` (`src/tiny_crc8.c`, poly 0x8C, init 0) over
  the struct from `version` on: MAGIC_CONFIG_SIZE_V3 (2016) bytes for version 3, sizeof(mainConfig_t)
  (3584) otherwise. Tiny_CRC8 is written with plain `char` and every Beken SDK compiles OpenBK with
  -fsigned-char, so `crc >>= 1` is an arithmetic shift (the real builds shift with `asrs`): "123456789"
  gives 0x63, not CRC-8/MAXIM's 0xA1. bkbench before this fix wrote the unsigned CRC; OpenBK rejects such
  a config at boot (defaults: open access point, no pins), so it is read only to be re-saved, never
  called good (LEGACY_CRC_NOTE).
- A version-3 config keeps the flash bytes after 0x7E0 as they are: OpenBK reads 3584 bytes whatever the
  version, so those bytes are what it runs with (it only clears wifi_ssid2[0], wifi_pass2[0] and, below
  version 5, webPassword).
- `new()` makes what `CFG_SetDefaultConfig` makes, byte for byte (checked against the real builds).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from ..chips import DEFAULT_CHIP, FAMILIES
from ..errors import BkError
from ..layout import SECTOR
from .tuya_pins import ROLE_NAMES, PinMapping, role_number

SIZE_V3 = 2016
SIZE_V4 = 3584  # sizeof(mainConfig_t) on Beken since version 4
CFG_VERSION = 5
IDENT = b"CFG"
CHANNEL_MAX = 64
PIN_COUNT = 32  # the 32-pin builds' array size (kept for callers that predate the 48-pin layout)

LEGACY_CRC_NOTE = ("This config was written by an older bkbench with a checksum OpenBK rejects: at boot OpenBK "
                   "loads its defaults (open access point, no pins) over it; re-save it with `bkbench config set`.")
BAD_CRC_NOTE = ("The OpenBK config sector has a bad checksum: OpenBK would load its defaults (open access point, "
                "no pins) and overwrite it.")


@dataclass(frozen=True)
class PinLayout:
    """Where one OpenBK build keeps its pin arrays, and which pins it applies."""

    name: str
    count: int  # entries per array (MAX_PIN_ROLES)
    gpio_max: int  # PLATFORM_GPIO_MAX: pins 0..gpio_max-1 are applied
    roles: int
    channels: int
    channels2: int
    channel_types: int
    ntp: int  # fields between the pins and 0x527 move with the array size
    buttons: int
    logger: int


LAYOUT_32 = PinLayout("32-pin", 32, 29, 0x33E, 0x35E, 0x37E, 0x39E, 0x478, 0x4B8, 0x4C0)
LAYOUT_48 = PinLayout("48-pin", 48, 40, 0x33E, 0x36E, 0x39E, 0x3CE, 0x4A8, 0x4E8, 0x4F0)
# PLATFORM_BK7252 / PLATFORM_BK7252N: 48-entry arrays (the families' obk_pins in core/chips.py)
WIDE_CHIPS = frozenset(n for n, f in FAMILIES.items() if f.obk_pins == LAYOUT_48.count)


def _chip_names() -> dict[str, tuple[str, str]]:
    """Per chip: DEVICENAME_PREFIX_FULL and DEF_MQTT_GROUP (src/new_common.h), from the family rows. A family
    without a group of its own runs its twin's build (BK7231M runs the N build)."""
    groups = {f.openbk_target: f.mqtt_group for f in FAMILIES.values() if f.mqtt_group}
    return {n: (f"OpenBK{f.openbk_target}", groups[f.openbk_target])
            for n, f in FAMILIES.items() if f.openbk_target in groups}


CHIP_NAMES = _chip_names()


def pin_layout(chip: str | None) -> PinLayout:
    return LAYOUT_48 if chip and chip.upper() in WIDE_CHIPS else LAYOUT_32


def _fields(lay: PinLayout) -> dict[str, tuple[int, str, int]]:
    """name -> (offset, format, size). "s" = NUL-terminated string field of that size, "b" = raw bytes."""
    return {
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
        "ntpServer": (lay.ntp, "s", 32),
        "buttonShortPress": (lay.buttons, "<B", 1),
        "buttonLongPress": (lay.buttons + 1, "<B", 1),
        "buttonHoldRepeat": (lay.buttons + 2, "<B", 1),
        "loggerFlags": (lay.logger, "<i", 4),
        "mqtt_group": (0x554, "s", 64),
        "timeRequiredToMarkBootSuccessfull": (0x597, "<B", 1),
        "ping_host": (0x5A0, "s", 64),
        "initCommandLine": (0x5E0, "s", 1568),  # 512 in version 3
        "wifi_ssid2": (0xC00, "s", 64),
        "wifi_pass2": (0xC40, "s", 68),
        "webPassword": (0xC84, "s", 33),
        "disable_web_server": (0xCBB, "<B", 1),
    }


FIELDS: dict[str, tuple[int, str, int]] = _fields(LAYOUT_32)
LED_CORR = 0x53C  # led_corr_t: rgb_cal[3], led_gamma, rgb_bright_min, cw_bright_min (floats)
V3_END = 0x5E0 + 512  # == SIZE_V3: where a version-3 struct ends (initCommandLine was 512 bytes)
V3_ONLY_CLEARED = ("wifi_ssid2", "wifi_pass2")  # CFG_CalcChecksum clears their first byte on version 3
# Legacy alias: the 32-pin pin array offsets.
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
    """OpenBK's Tiny_CRC8 as the Beken builds run it (-fsigned-char): poly 0x8C, init 0, and `crc >>= 1`
    on a signed char, i.e. an arithmetic shift that keeps bit 7."""
    crc = 0
    for byte in data:
        for _ in range(8):
            mix = (crc ^ byte) & 1
            crc = (crc >> 1) | (crc & 0x80)
            if mix:
                crc ^= 0x8C
            byte >>= 1
    return crc


def tiny_crc8_unsigned(data: bytes) -> int:
    """CRC-8/MAXIM (logical shift): what bkbench wrote before it matched the real builds. Only used to
    recognise such a config and say so; OpenBK on Beken never accepts it."""
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


def layout_hint(data: bytes) -> str | None:
    """The chip a config names itself after (long name / MQTT group defaults), when it says: a bare config
    sector carries no other trace of the build that wrote it."""
    for off, size in ((0x2FE, 64), (0x554, 64)):
        text = bytes(data[off : off + size]).split(b"\0", 1)[0].decode("latin-1")
        for chip, (prefix, group) in CHIP_NAMES.items():
            if chip in WIDE_CHIPS and (text.startswith(prefix + "_") or text == group):
                return chip
    return None


@dataclass
class PinConfig:
    role: str
    channel: int
    channel2: int


class ObkConfig:
    """One OpenBK config sector: the mainConfig_t image (3584 bytes, whatever the version, because that is
    what OpenBK reads) and the rest of the 4 KiB sector, kept as found."""

    def __init__(self, raw: bytes | bytearray, chip: str | None = None, legacy_crc: bool = False) -> None:
        buf = bytearray(raw[:SECTOR])
        if len(buf) < SECTOR:
            buf += b"\xff" * (SECTOR - len(buf))  # what unwritten flash holds
        self.sector_raw = buf
        self.chip = chip.upper() if chip else None
        self.layout = pin_layout(self.chip)
        self.fields = _fields(self.layout)
        self.legacy_crc = legacy_crc  # read from a sector with the old unsigned checksum

    @property
    def raw(self) -> memoryview:
        """The struct image (3584 bytes; for version 3 the bytes after 0x7E0 are the flash tail)."""
        return memoryview(self.sector_raw)[:SIZE_V4]

    def copy(self) -> ObkConfig:
        return ObkConfig(bytes(self.sector_raw), self.chip, self.legacy_crc)

    # --- construction ---
    @classmethod
    def parse(cls, data: bytes, chip: str | None = None, allow_legacy: bool = False) -> ObkConfig:
        """Parse a config sector (or a struct image) as OpenBK's CFG_InitAndLoad judges it: BkError when
        OpenBK would not accept it. With `allow_legacy`, a sector whose only fault is the unsigned
        checksum of older bkbench versions is returned with `legacy_crc` set (to show and re-save it)."""
        data = bytes(data)
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
        legacy = False
        if tiny_crc8(data[4:size]) != data[3]:
            if tiny_crc8_unsigned(data[4:size]) != data[3]:
                raise BkError(BAD_CRC_NOTE)
            if not allow_legacy:
                raise BkError(LEGACY_CRC_NOTE)
            legacy = True
        return cls(data, chip or layout_hint(data), legacy_crc=legacy)

    @classmethod
    def new(cls, mac: bytes | None = None, chip: str | None = None) -> ObkConfig:
        """What OpenBK's CFG_SetDefaultConfig makes on `chip` (new_cfg.c): a zeroed struct, version 5, MQTT
        port 1883, user "homeassistant" / password "qqqqqqqqqq", names from the MAC, the platform's MQTT
        group, NTP server, ping host, button timings, flag 10 and the LED correction table (a zero table
        makes OpenBK rewrite the sector on its first boot). The MAC is the chip's (zeros when unknown)."""
        chip = (chip or DEFAULT_CHIP).upper()
        prefix, group = CHIP_NAMES.get(chip, CHIP_NAMES[DEFAULT_CHIP])
        cfg = cls(b"\0" * SIZE_V4, chip)
        mac = bytes(mac) if mac is not None else b"\0" * 6
        cfg.sector_raw[0:3] = IDENT
        cfg.set("version", CFG_VERSION)
        cfg.set("mqtt_port", 1883)
        cfg.set("timeRequiredToMarkBootSuccessfull", 5)  # DEFAULT_BOOT_SUCCESS_TIME
        cfg.set("ping_host", "192.168.0.1")
        cfg.set("mqtt_userName", "homeassistant")
        cfg.set("mqtt_pass", "qqqqqqqqqq")
        cfg.set("mac", mac)
        cfg.set("webappRoot", "https://openbekeniot.github.io/webapp/")
        tail = mac[2:6].hex().upper()
        cfg.set("longDeviceName", f"{prefix}_{tail}")
        cfg.set("shortDeviceName", f"obk{tail}")
        cfg.set("mqtt_clientId", f"obk{tail}")
        cfg.set("mqtt_group", group)
        cfg.set("ntpServer", "217.147.223.78")  # DEFAULT_NTP_SERVER
        cfg.set("buttonHoldRepeat", 5)  # CFG_DEFAULT_BTN_REPEAT / SHORT / LONG
        cfg.set("buttonShortPress", 3)
        cfg.set("buttonLongPress", 10)
        cfg.set_flag(10, True)  # OBK_FLAG_MQTT_BROADCASTSELFSTATEONCONNECT
        struct.pack_into("<6f", cfg.sector_raw, LED_CORR, 1.0, 1.0, 1.0, 2.2, 0.1, 0.1)
        return cfg

    # --- fields ---
    @property
    def version(self) -> int:
        return int(struct.unpack_from("<i", self.sector_raw, 4)[0])

    def _field(self, name: str) -> tuple[str, tuple[int, str, int]]:
        name = ALIASES.get(name, name)
        if name not in self.fields:
            raise BkError(f"Unknown OpenBK config field {name!r}.")
        return name, self.fields[name]

    def _size(self, name: str, size: int) -> int:
        return 512 if name == "initCommandLine" and self.version == 3 else size

    def get(self, name: str) -> Any:
        """The value OpenBK runs with (a version-3 config's second Wi-Fi, and below version 5 the web
        password, read as empty because OpenBK's loader clears them)."""
        name, (off, fmt, size) = self._field(name)
        if (name in V3_ONLY_CLEARED and self.version == 3) or (name == "webPassword" and self.version < 5):
            return ""
        if fmt == "s":
            size = self._size(name, size)
            return bytes(self.sector_raw[off : off + size]).split(b"\0", 1)[0].decode("utf-8", "replace")
        if fmt == "b":
            return bytes(self.sector_raw[off : off + size])
        return struct.unpack_from(fmt, self.sector_raw, off)[0]

    def set(self, name: str, value: Any) -> None:
        name, (off, fmt, size) = self._field(name)
        if fmt == "s":
            enc = str(value).encode("utf-8")
            if self.version == 3 and (off >= V3_END or (name == "initCommandLine" and len(enc) >= 512)):
                self.upgrade()  # the field lives past the version-3 struct: save as OpenBK would, version 5
            size = self._size(name, size)
            if len(enc) >= size:
                raise BkError(f"{name} is too long: at most {size - 1} bytes.")
            self.sector_raw[off : off + size] = enc + b"\0" * (size - len(enc))
        elif fmt == "b":
            if len(value) != size:
                raise BkError(f"{name} needs {size} bytes.")
            self.sector_raw[off : off + size] = bytes(value)
        else:
            try:
                number = int(value, 0) if isinstance(value, str) else int(value)
                if self.version == 3 and off >= V3_END:
                    self.upgrade()
                struct.pack_into(fmt, self.sector_raw, off, number)
            except (struct.error, ValueError):
                raise BkError(f"{name}: {value!r} is not a valid number for this field.") from None

    def upgrade(self) -> None:
        """Version 3 -> 5 as OpenBK's own loader and save do it: the flash bytes after 0x7E0 stay, except
        the first byte of wifi_ssid2/wifi_pass2 and webPassword, which it clears."""
        if self.version >= 5:
            return
        if self.version == 3:
            for name in V3_ONLY_CLEARED:
                self.sector_raw[self.fields[name][0]] = 0
        self.sector_raw[self.fields["webPassword"][0]] = 0
        struct.pack_into("<i", self.sector_raw, 4, CFG_VERSION)

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
    def _pin(self, g: int) -> PinConfig:
        lay = self.layout
        role = self.sector_raw[lay.roles + g]
        name = ROLE_NAMES[role] if role < len(ROLE_NAMES) else f"role{role}"
        return PinConfig(name, self.sector_raw[lay.channels + g], self.sector_raw[lay.channels2 + g])

    def pins(self) -> dict[int, PinConfig]:
        """Pins with a role among those OpenBK applies on this chip."""
        return {g: self._pin(g) for g in range(self.layout.gpio_max) if self.sector_raw[self.layout.roles + g]}

    def ignored_pins(self) -> dict[int, PinConfig]:
        """Pins stored with a role that OpenBK never applies on this chip (index >= PLATFORM_GPIO_MAX)."""
        lay = self.layout
        return {g: self._pin(g) for g in range(lay.gpio_max, lay.count) if self.sector_raw[lay.roles + g]}

    def chip_text(self) -> str:
        return self.chip or ("BK7231N/T/U and BK7238" if self.layout is LAYOUT_32 else "BK7252/BK7252N")

    def check_pin(self, gpio: int) -> None:
        top = self.layout.gpio_max - 1
        if not 0 <= gpio <= top:
            hint = "; a BK7252 config needs --chip BK7252" if self.chip is None and gpio < LAYOUT_48.gpio_max else ""
            raise BkError(f"P{gpio} is not a pin OpenBK applies on {self.chip_text()} (P0..P{top}){hint}.")

    def set_pin(self, gpio: int, role: str | int, channel: int = 0, channel2: int = 0) -> None:
        """Give pin `gpio` a role: an OpenBK role name (case-blind, old names too) or its number."""
        self.check_pin(gpio)
        if isinstance(role, int):
            number = role if 0 <= role < len(ROLE_NAMES) else None
        else:
            number = role_number(role)
        if number is None:
            raise BkError(f"Unknown OpenBK pin role {role!r}.")
        if not (0 <= channel < 256 and 0 <= channel2 < 256):
            raise BkError("Channels must be 0..255.")
        lay = self.layout
        self.sector_raw[lay.roles + gpio] = number
        self.sector_raw[lay.channels + gpio] = channel
        self.sector_raw[lay.channels2 + gpio] = channel2

    def clear_pins(self) -> None:
        """Every pin's role, channel and second channel zeroed (channel types stay)."""
        lay = self.layout
        self.sector_raw[lay.roles : lay.channel_types] = b"\0" * (lay.channel_types - lay.roles)

    def pins_text(self) -> str:
        """The applied pins as `P6=Rel;1 P10=Btn;1;2` (what set_pins_text reads back)."""
        return " ".join(f"P{g}={p.role};{p.channel}" + (f";{p.channel2}" if p.channel2 else "")
                        for g, p in sorted(self.pins().items()))

    def set_pins_text(self, text: str) -> None:
        """Replace the applied pins by `P6=Rel;1 P10=Btn;1;2` (spaces or commas between pins, `P` optional);
        BkError (one line) on the first bad pin, role or channel, and then nothing is changed."""
        trial = self.copy()
        lay = trial.layout
        for g in range(lay.gpio_max):
            for base in (lay.roles, lay.channels, lay.channels2):
                trial.sector_raw[base + g] = 0
        seen: set[int] = set()
        for item in text.replace(",", " ").split():
            key, sep, value = item.partition("=")
            if not sep:
                raise BkError(f"Expected P<pin>=Role;channel, got {item!r}.")
            key = key if key[:1] in "Pp" else "P" + key
            gpio = key[1:]
            if not gpio.isdigit():
                raise BkError(f"Bad pin number in {item!r}: expected P<pin>=Role;channel.")
            if int(gpio) in seen:
                raise BkError(f"P{int(gpio)} is given twice.")
            parse_assignment(trial, f"{key}={value}")
            seen.add(int(gpio))
        self.sector_raw[:] = trial.sector_raw

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
        self.sector_raw[0:3] = IDENT
        self.sector_raw[3] = tiny_crc8(bytes(self.sector_raw[4:size]))
        self.legacy_crc = False
        return bytes(self.sector_raw[:size])

    def sector(self) -> bytes:
        """The whole 4 KiB sector: the struct with its checksum, every other byte as read (0xFF when new)."""
        body = self.struct_bytes()
        return body + bytes(self.sector_raw[len(body) :])

    def to_json(self, show_secrets: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, (_off, fmt, _size) in self.fields.items():
            v = self.get(name)
            if fmt == "b":
                v = ":".join(f"{b:02x}" for b in v)
            if name in SECRET_FIELDS and v and not show_secrets:
                v = "<secret>"
            out[name] = v
        out["flags"] = [b for b in range(64) if self.flag(b)]
        out["pin_layout"] = f"{self.layout.name} ({self.chip_text()}: P0..P{self.layout.gpio_max - 1})"
        out["pins"] = {str(g): {"role": p.role, "channel": p.channel, "channel2": p.channel2}
                       for g, p in self.pins().items()}
        ignored = self.ignored_pins()
        if ignored:
            out["ignored_pins"] = {str(g): p.role for g, p in ignored.items()}
        if self.legacy_crc:
            out["checksum"] = "old bkbench checksum: OpenBK rejects this config at boot"
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
    elif key.lower().startswith("pin.") or (key[:1] in "Pp" and key[1:].isdigit() and key[1:]):
        try:
            gpio = int(key[4:] if key.lower().startswith("pin.") else key[1:])
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
