"""What the simulated chip prints on UART1 when its application runs.

The log is synthesised from the flash the chip holds, so it is this device's: the bootloader line,
the flash ID, the firmware really in the app partition (Tuya SDK version and app, or the OpenBK
banner and version after an OpenBK write), the MAC from the RF sector, the Tuya `json cfg` (pins)
from the KV vault, and the Wi-Fi state (Tuya `gw_wsm` / the SSID of the OpenBK config, judged by OpenBK's
loader rules in obk_loader.py, not by bkbench's own parser). Line formats follow the
real logs in fixtures/bootlogs, so core/analysis/bootlog.py reads them back. Values that cannot be
found are left out, never invented. A recorded real log can still be replayed (`BKBENCH_BOOTLOG`).
"""

from __future__ import annotations

import os
import re
import zlib
from pathlib import Path
from typing import Any, Callable

from ..layout import OBK_CONFIG_OFFSET, RF_OFFSET, layout_for
from ..paths import fixtures_dir

Store = Callable[[int, bytes], None]  # (flash address, bytes): the application writing its own flash
WINDOW_BLOCKS = 2048  # 34-byte stored blocks decrypted per step (64 KiB of plain code)
_facts_cache: dict[tuple[str, int, bool], dict[str, Any]] = {}


def _app_span(chip: str) -> tuple[int, int]:
    for part in layout_for(chip if chip in RF_OFFSET else "BK7231N"):
        if part.kind == "app":
            return part.start, part.end
    return 0x11000, 0x12A000


def firmware_facts(flash: bytes, chip: str, from_end: bool = True) -> dict[str, Any]:
    """identify_firmware() of the stored app, decrypted window by window until the version strings
    are found; cached per app content. A dump as loaded is one coherent image whose Tuya strings sit
    in the last third, so it is searched from the end. After a write the front of the partition
    holds the new image and the tail may still hold the old one: then search from the front."""
    from ..analysis.beken_code import PHYS_BLOCK, decrypt_physical
    from ..analysis.dump import identify_firmware

    start, end = _app_span(chip)
    region = flash[start:end]
    key = (chip, zlib.crc32(region), from_end)
    if key in _facts_cache:
        return _facts_cache[key]
    blocks = -(-len(region.rstrip(b"\xff")) // PHYS_BLOCK)
    windows = [(lo, min(lo + WINDOW_BLOCKS, blocks)) for lo in range(0, blocks, WINDOW_BLOCKS)]
    if from_end:
        windows.reverse()
    plain = b""
    facts: dict[str, Any] = {"kind": "unknown"}
    extra = 3  # windows still searched for the app name once the SDK banner is found (TuyaMCU has none)
    for lo, hi in windows:
        try:
            part = decrypt_physical(region[lo * PHYS_BLOCK : hi * PHYS_BLOCK], start + lo * PHYS_BLOCK)
        except Exception:  # noqa: BLE001 - not Beken-encrypted code: nothing to identify
            break
        plain = part + plain if from_end else plain + part
        facts = identify_firmware(plain)
        if facts.get("kind") == "openbk" or (facts.get("kind") == "tuya" and ("app" in facts or not from_end)):
            break
        if facts.get("kind") == "tuya":
            extra -= 1
            if not extra:
                break
    _facts_cache[key] = facts
    return facts


def _mac(flash: bytes, chip: str) -> str | None:
    from ..analysis.dump import parse_tlv_mac

    off = RF_OFFSET.get(chip)
    return None if off is None else parse_tlv_mac(flash[off : off + 0x1000])


def _vault(flash: bytes):
    from ..analysis import tuya_kv

    try:
        return tuya_kv.read_vault(flash)
    except Exception:  # noqa: BLE001 - a damaged vault just means no Tuya lines
        return None


def _obk_boot(flash: bytes, chip: str):
    """OpenBK's config loader on this flash (core/sim/obk_loader.py, OpenBK's rules written apart from
    bkbench's own parser), or None where bkbench does not know the config's place on this chip."""
    from .obk_loader import init_and_load

    off = OBK_CONFIG_OFFSET.get(chip)
    if off is None:
        return None
    mac = _mac(flash, chip)
    mac_bytes = bytes.fromhex(mac.replace(":", "")) if mac else b"\0" * 6
    return off, init_and_load(flash[off : off + 0x1000], chip, mac_bytes)


def _boot_lines(boot: str, jedec: tuple[int, int, int]) -> list[str]:
    return ["", f"V:{boot}", "CPSR:000000D3", "J 0x10000", f"[Flash]id:0x{bytes(jedec).hex()}"]


def _mac_line(mac: str | None) -> list[str]:
    return [] if mac is None else ["mac " + ":".join(f"{int(b, 16):2x}" for b in mac.split(":"))]


def _cfg_item(value: Any) -> str | None:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (int, float, str)):
        return str(value)
    return None


# Lines of the recorded log that describe *that* device (identity, pins, keys, MAC, SSID, versions):
# never replayed for another one. What is left is generic RF / Wi-Fi / BLE stack chatter.
_DEVICE_SPECIFIC = re.compile(
    r"V:BK|\[Flash\]|json cfg|mac|serial_no|SDK|BUILD AT|IOT DEFS|oem_|compiled at|pin|key|ssid|SSID|"
    r"7231|[0-9a-f]{2} [0-9a-f]{2} [0-9a-f]{2} [0-9a-f]{2}|^[0-9a-f ]{16,}$|(0x[0-9a-f]{2} ){4}|pid:|ver:|"
    r"xtal|temp in|^(REG|SVC|IRQ|FIR|SYS|ST):|^J 0x", re.I)
_BLE = re.compile(r"gapm|adv|ble|bt_|\bbt\b|appm|PLATFORM|llm_|init_type|conidx", re.I)  # the T has no BLE


def generic_chatter(chip: str = "BK7231N") -> list[str]:
    """The recorded N log's stack chatter, device-specific lines removed (keeps volume and rhythm)."""
    fx = fixtures_dir()
    logs = sorted((fx / "bootlogs").glob("bk7231n-*.log")) if fx is not None else []
    if not logs:
        return []
    text = logs[0].read_text(errors="replace")
    keep = [ln for ln in text.splitlines() if ln.strip() and not _DEVICE_SPECIFIC.search(ln)]
    return keep if chip == "BK7231N" else [ln for ln in keep if not _BLE.search(ln)]


def tuya_log(flash: bytes, chip: str, boot: str, jedec: tuple[int, int, int],
             facts: dict[str, Any] | None = None) -> str:
    facts = firmware_facts(flash, chip) if facts is None else facts
    vault = _vault(flash)
    t = "[01-01 00:00:00 TUYA {}][sim] "
    lines = _boot_lines(boot, jedec)
    lines.append(t.format("I") + "mqc app init ...")
    if facts.get("kind") == "tuya":
        lines.append(t.format("N") + f"< TUYA IOT SDK V:{facts['sdk_version']} {facts.get('sdk_detail', '')} >")
        if "sdk_build" in facts:
            lines.append(f"< BUILD AT:{facts['sdk_build']} BY ci_manage FOR ty_iot_sdk AT "
                         f"{facts.get('sdk_platform', chip.lower())} >")
    di = vault.value("gw_di") if vault else None
    if facts.get("app"):
        swv = di.get("swv") if isinstance(di, dict) else None
        lines.append(t.format("N") + f"{facts['app']}:{swv or '0.0.0'}")
    cfg = vault.user_param_key if vault else None
    if cfg:
        items = [f"{k}:{v}" for k, raw in cfg.items() if (v := _cfg_item(raw)) is not None]
        lines.append(t.format("N") + "json cfg:[," + ",".join(items) + ",]")
    lines += _mac_line(_mac(flash, chip))
    if vault is not None and "gw_wsm" in vault.keys():
        lines.append(t.format("N") + "wifi config found: connecting to the saved network")
    else:
        lines.append(t.format("N") + "no wifi config: waiting in pairing mode")
    lines += generic_chatter(chip)
    return "\r\n".join(lines) + "\r\n"


def openbk_log(chip: str, version: str, flash: bytes | None = None, boot: str | None = None,
               jedec: tuple[int, int, int] | None = None, store: Store | None = None) -> str:
    """OpenBK's start-up lines: banner with the version in flash, MAC, the config loader's verdict, AP or
    station mode. Where OpenBK's loader rejects the config sector it boots its defaults and saves them
    over the sector, as the real firmware does: `store(address, sector)` writes them to the flash."""
    boot = boot or ("BK7231N_1.0.1" if chip == "BK7231N" else "BK7231S_1.0.5")
    lines = _boot_lines(boot, jedec) if jedec else ["", f"V:{boot}", "J 0x10000"]
    lines += [f"Info:MAIN:Main_Init_Before_Delay: OpenBK7231{chip[-1]} {version}",
              f"Info:MAIN:{chip} OpenBeken {version} started (simulated log)"]
    if flash is not None:
        lines += _mac_line(_mac(flash, chip))
        loaded = _obk_boot(flash, chip)
        ssid = None
        if loaded is not None:
            off, result = loaded
            lines += ["Warn:CFG:" + text for text in result.logs]
            ssid = result.ssid or None
            if result.saved is not None and store is not None:
                store(off, result.saved)
        lines.append(f"Info:MAIN:Connecting to SSID [{ssid}]" if ssid else "Info:MAIN:Started in AP mode")
    else:
        lines += ["Info:CFG:CFG_InitAndLoad: config read OK", "Info:MAIN:Started in AP mode"]
    return "\r\n".join(lines) + "\r\n"


def device_log(flash: bytes, chip: str, boot: str, jedec: tuple[int, int, int], from_end: bool = True,
               store: Store | None = None) -> str:
    """The log of the firmware this flash holds (or a replayed recording, see module doc). `store` lets
    the firmware write its flash (OpenBK saving its defaults over a config it rejects)."""
    env = os.environ.get("BKBENCH_BOOTLOG")
    if env and Path(env).is_file():
        return Path(env).read_text(errors="replace")
    facts = firmware_facts(flash, chip, from_end)
    if facts.get("kind") == "openbk":
        return openbk_log(chip, str(facts.get("version")), flash, boot, jedec, store)
    if not from_end:
        # The app was rewritten (bkbench writes OpenBK) but no banner was found before the old Tuya
        # strings: say OpenBK without inventing a version.
        return openbk_log(chip, "(version unknown: no banner found in the written app)", flash, boot, jedec,
                          store)
    return tuya_log(flash, chip, boot, jedec, facts)


HEARTBEAT = "[TUYA D][simulated] heart beat, free heap 42000\r\n"
# OpenBK's once-a-second status line, every few seconds (the simulated chip joins no network).
OBK_HEARTBEAT = "Info:MAIN:Time tick, free heap 80000, MQTT not connected, Wi-Fi not connected (simulated)\r\n"


def heartbeat_for(log: str) -> str:
    """The periodic line of the firmware that printed `log`: OpenBK's after an OpenBK start, else Tuya's."""
    return OBK_HEARTBEAT if "OpenBeken" in log or "Info:MAIN:" in log else HEARTBEAT
