"""What is in a flash dump: chip, bootloader, MAC, partitions, firmware, Tuya vault, OpenBK config."""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from ..chips import FAMILIES, boot_crc_length, bootloader_by_crc
from ..errors import BkError, ImageError
from ..layout import BOOTLOADER_END, OBK_CONFIG_OFFSET, RF_OFFSET, layout_for
from . import beken_code, tuya_kv, tuya_pins
from .app_config import AppConfig, find_app_config
from .obk_config import LEGACY_CRC_NOTE, ObkConfig

TLV_MAGIC = b"TLV\0"
TLV_MAC_TAG = 0x11111102
_SDK = re.compile(rb"< TUYA IOT SDK V:(\S+) ([^>\x00]*)>")
_BUILD = re.compile(rb"< (?:tuya_iot_lib )?BUILD AT:(\S+) BY (\S+)(?: FOR (\S+))? AT (\S+) >")
_OEM = re.compile(rb"(?<![/\w])(oem_[A-Za-z0-9_]+)\x00")
_OBK = re.compile(rb"(OpenBK\w+) (\d+\.\d+\.\d+[\w.-]*) (\w{3} +\d+ \d{4} [\d:]+)")


@dataclass
class DumpAnalysis:
    size: int
    chip: str | None = None
    bootloader: dict[str, Any] | None = None
    rotated: int = 0  # 0x11000 when the dump was read from 0x11000 with wrap-around
    mac: str | None = None
    flash_size: int | None = None
    partitions: list[dict[str, Any]] = field(default_factory=list)
    firmware: dict[str, Any] = field(default_factory=lambda: {"kind": "unknown"})
    vault: tuya_kv.TuyaVault | None = None
    mapping: tuya_pins.PinMapping | None = None
    obk_config: ObkConfig | None = None
    app_config: AppConfig | None = None  # user_param_key compiled into the app image
    image: dict[str, Any] | None = None  # what `bkbench image` says about the same file
    warnings: list[str] = field(default_factory=list)

    def to_json(self, show_secrets: bool = False) -> dict[str, Any]:
        tuya = None
        if self.vault is not None:
            tuya = self.vault.to_json(show_secrets)
        if self.app_config is not None:
            upk = self.app_config.user_param_key
            tuya = dict(tuya or {"keys": [], "baud_cfg": None})
            tuya["user_param_key"] = upk if show_secrets else tuya_kv.mask_value("user_param_key", upk)
            tuya["user_param_key_source"] = f"app image (offset 0x{self.app_config.offset:X} of the decrypted app)"
        elif tuya is not None and tuya.get("user_param_key") is not None:
            tuya["user_param_key_source"] = "Tuya KV storage"
        openbk: dict[str, Any] = {"pins": {}, "config": None}
        if self.mapping is not None:
            m = self.mapping.to_json()
            openbk.update(pins=m["pins"], mapping=m, template=self.mapping.template(chip=self.chip or ""))
        if self.obk_config is not None:
            openbk["config"] = self.obk_config.to_json(show_secrets)
        return {
            "size": self.size,
            "chip": self.chip,
            "bootloader": self.bootloader,
            "rotated": self.rotated,
            "mac": self.mac,
            "flash_size": self.flash_size,
            "firmware": self.firmware,
            "partitions": self.partitions,
            "tuya": tuya or {"keys": [], "user_param_key": None, "baud_cfg": None},
            "openbk": openbk,
            "image": self.image,
            "warnings": list(self.warnings),
        }


def identify_bootloader(data: bytes) -> tuple[str, dict[str, Any]] | None:
    """(chip, info) from the CRC-32 of the first 257 or 256 bytes (core/chips.py table)."""
    for length in (257, 256):
        bl = bootloader_by_crc(zlib.crc32(data[:length]) & 0xFFFFFFFF)
        if bl is not None and boot_crc_length(bl.dialect) == length:
            return bl.chip, {"name": bl.name, "version": bl.version, "crc": f"0x{bl.crc:08X}",
                             "crc_length": length, "dialect": bl.dialect.value}
    return None


def parse_tlv_mac(sector: bytes) -> str | None:
    """MAC from the RF calibration sector: `TLV\\0`, u32 length, nested (u32 tag, u32 len, value) items.

    The MAC item (tag 0x11111102, 6 bytes) sits inside the first container, value at +0x24 on every
    fixture; it is searched for by tag so a different item order still works.
    """
    if sector[:4] != TLV_MAGIC:
        return None
    (total,) = struct.unpack_from("<I", sector, 4)
    tag = struct.pack("<II", TLV_MAC_TAG, 6)
    pos = sector.find(tag, 8, min(len(sector), 8 + total))
    while pos != -1 and pos % 4:
        pos = sector.find(tag, pos + 1, min(len(sector), 8 + total))
    if pos == -1:
        return None
    return ":".join(f"{b:02x}" for b in sector[pos + 8 : pos + 14])


def _region_status(chunk: bytes) -> str:
    if not chunk.strip(b"\xff"):
        return "empty"
    if not chunk.strip(b"\0"):
        return "zeros"
    return "data"


def identify_firmware(plain: bytes) -> dict[str, Any]:
    """Firmware identity from a decrypted application image."""
    m = _OBK.search(plain)
    if m:
        return {"kind": "openbk", "name": m.group(1).decode(), "version": m.group(2).decode(),
                "build": m.group(3).decode()}
    m = _SDK.search(plain)
    if m:
        info: dict[str, Any] = {"kind": "tuya", "sdk_version": m.group(1).decode(),
                                "sdk_detail": m.group(2).decode().strip()}
        b = _BUILD.search(plain)
        if b:
            info["sdk_build"] = b.group(1).decode()
            info["sdk_platform"] = b.group(4).decode()
        o = _OEM.search(plain)
        if o:
            info["app"] = o.group(1).decode()
        return info
    return {"kind": "unknown"}


def _decrypt_app(data: bytes, start: int, size: int, chip: str | None = None) -> bytes:
    phys = data[start : start + size]
    phys = phys[: len(phys) // beken_code.PHYS_BLOCK * beken_code.PHYS_BLOCK]
    fam = FAMILIES.get(chip or "")
    key = (fam.code_key if fam else None) or beken_code.TUYA_COEFFS
    return beken_code.decrypt_physical(phys, start, key)


def unrotate(data: bytes) -> bytes:
    """A dump read from 0x11000 with wrap-around -> flash order."""
    from ..images.recognize import unrotate as _unrotate

    return _unrotate(data, BOOTLOADER_END)


def _image_firmware(info: Any) -> dict[str, Any]:
    if info.version and (info.chip_source in ("banner", "device-name", "mqtt-group") or info.format in ("ug", "rbl")):
        target = info.chip[2:] if info.chip else "?"
        return {"kind": "openbk", "name": f"OpenBK{target}", "version": info.version, "build": info.format.upper()}
    return {"kind": "unknown"}


def analyze_dump(data: bytes) -> DumpAnalysis:
    """Analyse a full flash dump (possibly rotated), a Tuya KV region alone, or a firmware file
    (QIO / UA / OTA: then chip and firmware are what `bkbench image` says about it)."""
    if not data:
        raise BkError("The file is empty.")
    from ..images.recognize import recognize
    from ..images.recognize import unrotate as _unrotate

    res = DumpAnalysis(size=len(data))
    try:
        info = recognize(data)
    except ImageError:
        info = None
    if info is not None and info.format != "raw":
        res.image = {"format": info.format, "chip_source": info.chip_source, "description": info.description,
                     "candidates": list(info.candidates)}
    if info is not None and info.format in ("ug", "rbl", "qio", "ua"):
        res.chip = info.chip
        res.firmware = _image_firmware(info)
        res.warnings += info.warnings
        if info.format in ("qio", "ua"):
            off = BOOTLOADER_END if info.format == "qio" else 0
            phys = data[off:]
            fam = FAMILIES.get(info.chip or "")
            key = (fam.code_key if fam else None) or beken_code.TUYA_COEFFS
            phys = phys[: len(phys) // beken_code.PHYS_BLOCK * beken_code.PHYS_BLOCK]
            plain = beken_code.decrypt_physical(phys, BOOTLOADER_END, key)
            fw = identify_firmware(plain)
            if fw["kind"] != "unknown":
                res.firmware = fw
            _app_user_param_key(res, plain)
        return res

    full = info is not None and info.format == "dump"
    if info is not None and full:
        if info.rotation:
            data = _unrotate(data, info.rotation)
            res.rotated = info.rotation
            res.warnings.append(f"dump starts at 0x{info.rotation:X} and wraps around (bootloader at the end); "
                                "analysed in flash order")
        found = identify_bootloader(data)
        if found is not None:
            res.bootloader = found[1]
        else:
            res.warnings.append("unknown bootloader (CRC not in the table)")
        # The same decision as `bkbench image`: bootloader, banner, RF sector, code key.
        res.chip = info.chip
        if info.chip is None:
            res.warnings += [w for w in info.warnings if "chip unknown" in w]
            if info.candidates:
                res.warnings.append("chip is one of " + ", ".join(info.candidates))
        res.flash_size = len(data)

    chip = res.chip
    if full and chip in RF_OFFSET:
        rf = RF_OFFSET[chip]
        res.mac = parse_tlv_mac(data[rf : rf + 0x1000])
        fam = FAMILIES[chip]
        for extra in fam.extra_rf:  # stock firmware may keep the calibration elsewhere (T1: 0x1E3000)
            if res.mac is None:
                res.mac = parse_tlv_mac(data[extra : extra + 0x1000])
        if res.mac is None:
            res.warnings.append(f"no TLV/MAC at 0x{rf:06X}")

    res.vault = tuya_kv.read_vault(data)
    if res.vault is not None:
        res.mapping = tuya_pins.mapping_for_vault(res.vault.user_param_key, res.vault.baud_cfg)
        res.warnings += [p for p in res.vault.problems if "levels deep" in p]  # a crafted value, not kept quiet

    if full and chip in OBK_CONFIG_OFFSET:
        off = OBK_CONFIG_OFFSET[chip]
        if data[off : off + 3] == b"CFG":
            try:
                res.obk_config = ObkConfig.parse(data[off : off + 0x1000], chip, allow_legacy=True)
                if res.obk_config.legacy_crc:
                    res.warnings.append(LEGACY_CRC_NOTE)
            except BkError as e:
                res.warnings.append(str(e))

    if full and chip is not None:
        for part in layout_for(chip):
            if part.start >= len(data):
                continue
            chunk = data[part.start : part.end]
            status = _region_status(chunk)
            entry = {"name": part.name, "kind": part.kind, "start": part.start, "size": part.size,
                     "status": status}
            if part.kind == "app" and status == "data":
                plain = _decrypt_app(data, part.start, part.size, chip)
                res.firmware = identify_firmware(plain)
                if res.vault is None or res.vault.user_param_key is None:
                    _app_user_param_key(res, plain)
                names = {"openbk": "OpenBK app", "tuya": "Tuya app"}
                entry["status"] = names.get(res.firmware["kind"], "data")
            elif part.kind == "rf" and res.mac and part.start == RF_OFFSET[chip]:
                entry["status"] = f"TLV, MAC {res.mac}"
            elif part.kind == "obk_config" and res.obk_config is not None:
                entry["status"] = f"OpenBK config v{res.obk_config.version}" + (
                    " (old bkbench checksum: OpenBK rejects it)" if res.obk_config.legacy_crc else "")
            elif part.kind == "tuya_kv" and res.vault is not None:
                entry["status"] = f"Tuya vault, {len(res.vault.entries)} keys"
            res.partitions.append(entry)
        if res.firmware["kind"] == "unknown" and any(p["kind"] == "app" and p["status"] == "empty"
                                                    for p in res.partitions):
            res.firmware = {"kind": "empty"}
    return res


def _app_user_param_key(res: DumpAnalysis, plain: bytes) -> None:
    """Tuya configuration compiled into the app: found and mapped like the vault's."""
    found = find_app_config(plain)
    if found is None:
        return
    res.app_config = found
    baud = res.vault.baud_cfg if res.vault is not None else None
    res.mapping = tuya_pins.map_user_param_key(found.user_param_key, baud)
