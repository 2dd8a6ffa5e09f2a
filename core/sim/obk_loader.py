"""What the simulated chip's OpenBK does with its config sector at boot: `CFG_InitAndLoad` of new_cfg.c.

This is a second, deliberately separate implementation of OpenBK's loader rules, written from the C code
of OpenBK7231T_App (e1a8097: src/new_cfg.c, src/tiny_crc8.c, src/new_common.c) and sharing nothing with
core/analysis/obk_config.py, the parser `config show` uses. The simulator's boot log is therefore a second
opinion: when bkbench's own parser and OpenBK's rules disagree, the simulated device shows it (it logs the
mismatch, boots its defaults and saves them over the sector, as OpenBK does). tests/test_obk_realcode.py
holds this module to the real OpenBK builds run under Unicorn, sector by sector, bytes saved included.

The rules, in the C code's order:
1. Read sizeof(mainConfig_t) = 3584 bytes from the sector, whatever the version.
2. CFG_CalcChecksum: size 2016 for version 3 (and clear wifi_ssid2[0], wifi_pass2[0]), else 3584;
   Tiny_CRC8 over bytes 4..size with a signed `char crc` (Beken builds use -fsigned-char).
3. Ident "CFG" and checksum equal: accepted. Otherwise log the mismatch and make the defaults
   (CFG_SetDefaultConfig), which counts as a change.
4. version < 3: mqtt_clientId = shortDeviceName (a change). version < 5: webPassword = "". version = 5.
5. Zero button timings get 5 (hold repeat), 3 (short), 10 (long); a zero LED correction table gets its
   defaults (a change).
6. Any change: CFG_Save_IfThereArePendingChanges: version 5, changeCounter + 1, checksum, and the sector
   erased and the 3584 bytes written (the rest of the sector reads 0xFF).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

STRUCT = 3584
V3_STRUCT = 2016
SSID2, PASS2, WEB_PASSWORD = 0xC00, 0xC40, 0xC84
CLIENT_ID, SHORT_NAME = 0x194, 0x2DE
LED_CORR = 0x53C
MISMATCH = "CFG_InitAndLoad: Config crc or ident mismatch. Default config will be loaded."
CORRECT = "CFG_InitAndLoad: Correct config has been loaded with {} changes count."
# Per platform: DEVICENAME_PREFIX_FULL, DEF_MQTT_GROUP (new_common.h), and where the button timings sit
# (they follow the pin arrays: 48 entries each on BK7252/BK7252N, 32 elsewhere).
PLATFORMS = {
    "BK7231N": ("OpenBK7231N", "bekens_n", 0x4B8), "BK7231M": ("OpenBK7231N", "bekens_n", 0x4B8),
    "BK7231T": ("OpenBK7231T", "bekens_t", 0x4B8), "BK7231U": ("OpenBK7231U", "bekens_u", 0x4B8),
    "BK7238": ("OpenBK7238", "bekens_8s", 0x4B8), "BK7252": ("OpenBK7252", "bekens_52s", 0x4E8),
    "BK7252N": ("OpenBK7252N", "bekens_52n", 0x4E8),
}  # fmt: skip


@dataclass
class Boot:
    accepted: bool
    logs: list[str] = field(default_factory=list)
    saved: bytes | None = None  # the sector OpenBK writes back (None: it writes nothing)
    cfg: bytes = b""  # what OpenBK runs with (3584 bytes)

    @property
    def ssid(self) -> str:
        return self.cfg[0x14:0x54].split(b"\0", 1)[0].decode("utf-8", "replace")


def crc8_signed_char(data: bytes) -> int:
    """Tiny_CRC8 with `char` signed: `crc >>= 1` sign-extends, so bit 7 stays set once set."""
    crc = 0
    for byte in data:
        for _ in range(8):
            feedback = (crc ^ byte) & 1
            crc = ((crc & 0xFF) >> 1) | (crc & 0x80)
            if feedback:
                crc ^= 0x8C
            byte >>= 1
    return crc


def _strcpy_safe(buf: bytearray, off: int, text: bytes, size: int) -> None:
    """new_common.c strcpy_safe: at most size-1 bytes and a NUL; the bytes after the NUL stay."""
    text = text[: size - 1]
    buf[off : off + len(text) + 1] = text + b"\0"


def _checksum(cfg: bytearray) -> int:
    (version,) = struct.unpack_from("<i", cfg, 4)
    size = STRUCT
    if version == 3:
        size = V3_STRUCT
        cfg[PASS2] = 0
        cfg[SSID2] = 0
    return crc8_signed_char(bytes(cfg[4:size]))


def _default_led_table(cfg: bytearray) -> None:
    struct.pack_into("<6f", cfg, LED_CORR, 1.0, 1.0, 1.0, 2.2, 0.1, 0.1)


def defaults(chip: str, mac: bytes) -> bytearray:
    """CFG_SetDefaultConfig on `chip`, WiFI_GetMacAddress answering `mac`."""
    prefix, group, buttons = PLATFORMS.get(chip, PLATFORMS["BK7231N"])
    ntp = buttons - 0x40
    cfg = bytearray(STRUCT)
    struct.pack_into("<i", cfg, 4, 5)
    struct.pack_into("<i", cfg, 0x294, 1883)
    cfg[0:3] = b"CFG"
    cfg[0x597] = 5
    _strcpy_safe(cfg, 0x5A0, b"192.168.0.1", 64)
    _strcpy_safe(cfg, 0x1D4, b"homeassistant", 64)
    _strcpy_safe(cfg, 0x214, b"qqqqqqqqqq", 128)
    cfg[0x2D8:0x2DE] = mac
    _strcpy_safe(cfg, 0x298, b"https://openbekeniot.github.io/webapp/", 64)
    tail = mac[2:6].hex().upper().encode()
    _strcpy_safe(cfg, 0x2FE, prefix.encode() + b"_" + tail, 64)
    _strcpy_safe(cfg, SHORT_NAME, b"obk" + tail, 32)
    _strcpy_safe(cfg, CLIENT_ID, b"obk" + tail, 64)
    _strcpy_safe(cfg, 0x554, group.encode(), 64)
    _strcpy_safe(cfg, ntp, b"217.147.223.78", 32)
    cfg[buttons + 2], cfg[buttons], cfg[buttons + 1] = 5, 3, 10
    cfg[0x08 + 10 // 8] |= 1 << (10 % 8)  # CFG_SetFlag(OBK_FLAG_MQTT_BROADCASTSELFSTATEONCONNECT)
    _default_led_table(cfg)
    return cfg


def init_and_load(sector: bytes, chip: str, mac: bytes) -> Boot:
    """Run OpenBK's config loader on the sector the simulated flash holds."""
    _prefix, _group, buttons = PLATFORMS.get(chip, PLATFORMS["BK7231N"])
    cfg = bytearray(sector[:STRUCT].ljust(STRUCT, b"\xff"))
    boot = Boot(accepted=False)
    changes = 0
    crc = _checksum(cfg)
    if cfg[0:3] != b"CFG" or crc != cfg[3]:
        boot.logs.append(MISMATCH)
        cfg = defaults(chip, mac)
        changes += 2  # CFG_SetDefaultConfig, then the caller marks it changed again
    else:
        boot.accepted = True
        boot.logs.append(CORRECT.format(struct.unpack_from("<H", cfg, 0x10)[0]))
    (version,) = struct.unpack_from("<i", cfg, 4)
    if version < 3:
        name = bytes(cfg[SHORT_NAME:]).split(b"\0", 1)[0]  # a C string: it may run past its 32-byte field
        _strcpy_safe(cfg, CLIENT_ID, name, 64)
        changes += 1
    if version < 5:
        _strcpy_safe(cfg, WEB_PASSWORD, b"", 33)
    struct.pack_into("<i", cfg, 4, 5)
    for off, default in ((buttons + 2, 5), (buttons, 3), (buttons + 1, 10)):
        if cfg[off] == 0:
            cfg[off] = default
    if not any(cfg[LED_CORR : LED_CORR + 24]):
        _default_led_table(cfg)
        changes += 1
    if changes:
        struct.pack_into("<i", cfg, 4, 5)
        struct.pack_into("<H", cfg, 0x10, (struct.unpack_from("<H", cfg, 0x10)[0] + 1) & 0xFFFF)
        cfg[3] = _checksum(cfg)
        boot.saved = bytes(cfg) + b"\xff" * (0x1000 - STRUCT)
    boot.cfg = bytes(cfg)
    return boot
