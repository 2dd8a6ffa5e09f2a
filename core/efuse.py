"""Host side of the eFuse and mask-ROM reads a BK7231N BootROM allows over UART (FULL dialect only).

eFuse (PROTOCOL-DETAILS.md 4.7, the procedure ltchiptool and BK7231GUIFlashTool use): for each byte,
read CTRL 0x00800074, clear bits 1 and 8-12, set `index << 8 | 1`, write it back, poll until bit 0
clears, then read OPTR 0x00800078: bit 8 = valid, low byte = data. Bytes 0-15 are the flash
encryption code key (four little-endian u32). ROM: ReadReg from address 0 in 4-byte steps.
Registers carry no CRC, so the eFuse is read twice and must agree.
"""

from __future__ import annotations

import struct
import time
from typing import Callable

from .chips import FAMILIES, TUYA_KEY, ZERO_KEY, Dialect, family
from .client import BkClient
from .errors import BkError, ProtocolError
from .protocol import Cmd

EFUSE_CTRL = 0x00800074
EFUSE_OPTR = 0x00800078
EFUSE_SIZE = 32
ROM_SIZE = 0x4000
POLL_TIMEOUT = 1.0  # GUI gives up after 1 s


def require_registers(client: BkClient) -> None:
    if client.dialect is not Dialect.FULL:
        raise BkError("this bootloader has no register access, so eFuse and ROM cannot be read over UART",
                      hint="only the BK7231N-family BootROM (FULL dialect) answers ReadReg/WriteReg")


def write_reg(client: BkClient, addr: int, value: int) -> None:
    payload = struct.pack("<II", addr, value & 0xFFFFFFFF)
    r = client.command(Cmd.WRITE_REG, payload)
    if r.payload[:8] != payload:
        raise ProtocolError(f"WriteReg 0x{addr:08X}: echo mismatch")


def read_efuse_byte(client: BkClient, index: int) -> int:
    ctrl = client.read_reg(EFUSE_CTRL)
    ctrl = (ctrl & ~0x1F02) | (index << 8) | 1
    write_reg(client, EFUSE_CTRL, ctrl)
    deadline = time.monotonic() + POLL_TIMEOUT
    while client.read_reg(EFUSE_CTRL) & 1:
        if time.monotonic() > deadline:
            raise ProtocolError(f"eFuse byte {index}: the controller stayed busy for {POLL_TIMEOUT:.0f} s")
    optr = client.read_reg(EFUSE_OPTR)
    if not optr & 0x100:
        raise ProtocolError(f"eFuse byte {index}: no valid data (OPTR 0x{optr:X}); read may be disabled")
    return optr & 0xFF


def read_efuse(client: BkClient, length: int = EFUSE_SIZE) -> bytes:
    require_registers(client)
    first = bytes(read_efuse_byte(client, i) for i in range(length))
    second = bytes(read_efuse_byte(client, i) for i in range(length))
    if first != second:
        raise ProtocolError("eFuse read twice gave different bytes; the link is unreliable")
    return first


def read_rom(client: BkClient, length: int = ROM_SIZE, progress: Callable[[int], None] | None = None) -> bytes:
    require_registers(client)
    out = bytearray()
    for addr in range(0, length, 4):
        out += struct.pack("<I", client.read_reg(addr))
        if progress is not None and addr % 0x400 == 0:
            progress(addr)
    return bytes(out)


def key_words(efuse: bytes) -> tuple[int, int, int, int]:
    a, b, c, d = struct.unpack("<IIII", efuse[:16])
    return a, b, c, d


# Twins that share a chip ID and differ only in their eFuse code key (BK7231N / BK7231M, GUI `doGenericSetup`).
_TWINS = [f for f in FAMILIES.values() if f.key_tells_family]


def variant_of(efuse: bytes) -> str:
    """Which twin the code key names (BK7231M is a BK7231N with an all-zero key)."""
    words = key_words(efuse)
    named = next((f.name for f in _TWINS if f.code_key == words), None)
    return named or f"{_TWINS[0].name} (non-standard key)"


def key_text(efuse: bytes) -> str:
    """The code key for display. The Tuya key and all-zero keys are public facts and shown whole;
    any other key is a vendor's secret, so only its first and last two bytes are shown."""
    words = key_words(efuse)
    text = " ".join(f"{w:08x}" for w in words)
    if words in (TUYA_KEY, ZERO_KEY):
        return text
    return f"{text[:4]}{'*' * (len(text) - 8)}{text[-4:]}"


def efuse_summary(client: BkClient | None, info) -> dict[str, str]:
    """`bkbench info` lines: the code key and the N/M variant it implies (FULL dialect only)."""
    if client is None or client.dialect is not Dialect.FULL:
        return {}
    try:
        efuse = read_efuse(client, 16)
    except (ProtocolError, BkError) as exc:
        info.warnings.append(f"eFuse not readable: {exc}")
        return {}
    out = {"efuse_key": key_text(efuse)}
    fam = family(info.chip)
    if fam is None or fam.key_tells_family:  # the key tells N from M; other families have no twin
        out["variant"] = variant_of(efuse)
    return out

