"""What is in a flash dump: chip, bootloader, MAC, partitions, firmware, Tuya vault, OpenBK config."""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from ..chips import boot_crc_length, bootloader_by_crc
from ..errors import BkError
from ..layout import BOOTLOADER_END, OBK_CONFIG_OFFSET, RF_OFFSET, layout_for
from . import beken_code, tuya_kv, tuya_pins
from .obk_config import ObkConfig

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
    warnings: list[str] = field(default_factory=list)

    def to_json(self, show_secrets: bool = False) -> dict[str, Any]:
        tuya = None
        if self.vault is not None:
            tuya = self.vault.to_json(show_secrets)
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


def _decrypt_app(data: bytes, start: int, size: int) -> bytes:
    phys = data[start : start + size]
    phys = phys[: len(phys) // beken_code.PHYS_BLOCK * beken_code.PHYS_BLOCK]
    return beken_code.decrypt_physical(phys, start)


def unrotate(data: bytes) -> bytes:
    """A dump read from 0x11000 with wrap-around -> flash order."""
    from ..images.recognize import unrotate as _unrotate

    return _unrotate(data, BOOTLOADER_END)


def analyze_dump(data: bytes) -> DumpAnalysis:
    """Analyse a full flash dump (2 MiB, possibly rotated) or a Tuya KV region alone."""
    if not data:
        raise BkError("The file is empty.")
    res = DumpAnalysis(size=len(data))
    full = len(data) >= 0x100000 and len(data) % 0x1000 == 0
    if full:
        found = identify_bootloader(data)
        if found is None and identify_bootloader(data[-BOOTLOADER_END:]) is not None:
            data = unrotate(data)
            found = identify_bootloader(data)
            res.rotated = BOOTLOADER_END
            res.warnings.append("dump starts at 0x11000 and wraps around (bootloader at the end); "
                                "analysed in flash order")
        if found is not None:
            res.chip, res.bootloader = found
        else:
            res.warnings.append("unknown bootloader (CRC not in the table)")
            # Fall back on where the RF/TLV sector sits.
            for chip, off in RF_OFFSET.items():
                if data[off : off + 4] == TLV_MAGIC:
                    res.chip = chip
        res.flash_size = len(data)

    chip = res.chip
    if full and chip in RF_OFFSET:
        rf = RF_OFFSET[chip]
        res.mac = parse_tlv_mac(data[rf : rf + 0x1000])
        if res.mac is None:
            res.warnings.append(f"no TLV/MAC at 0x{rf:06X}")

    res.vault = tuya_kv.read_vault(data)
    if res.vault is not None:
        res.mapping = tuya_pins.mapping_for_vault(res.vault.user_param_key, res.vault.baud_cfg)

    if full and chip in OBK_CONFIG_OFFSET:
        off = OBK_CONFIG_OFFSET[chip]
        if data[off : off + 3] == b"CFG":
            try:
                res.obk_config = ObkConfig.parse(data[off : off + 0x1000])
            except BkError as e:
                res.warnings.append(str(e))

    if full and chip is not None:
        for part in layout_for(chip):
            chunk = data[part.start : part.end]
            status = _region_status(chunk)
            entry = {"name": part.name, "kind": part.kind, "start": part.start, "size": part.size,
                     "status": status}
            if part.kind == "app" and status == "data":
                res.firmware = identify_firmware(_decrypt_app(data, part.start, part.size))
                names = {"openbk": "OpenBK app", "tuya": "Tuya app"}
                entry["status"] = names.get(res.firmware["kind"], "data")
            elif part.kind == "rf" and res.mac:
                entry["status"] = f"TLV, MAC {res.mac}"
            elif part.kind == "obk_config" and res.obk_config is not None:
                entry["status"] = f"OpenBK config v{res.obk_config.version}"
            elif part.kind == "tuya_kv" and res.vault is not None:
                entry["status"] = f"Tuya vault, {len(res.vault.entries)} keys"
            res.partitions.append(entry)
        if res.firmware["kind"] == "unknown" and any(p["kind"] == "app" and p["status"] == "empty"
                                                    for p in res.partitions):
            res.firmware = {"kind": "empty"}
    return res
