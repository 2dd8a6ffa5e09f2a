"""The eFuse block behind SCTRL_EFUSE_CTRL / SCTRL_EFUSE_OPTR, as hosts reach it with WriteReg/ReadReg.

Register layout (Beken SDK `sys_ctrl.h`; used the same way by ltchiptool `flash_read_raw(EFUSE)` and
BK7231GUIFlashTool `readEncryptionKey`, PROTOCOL-DETAILS.md 4.7):
- CTRL 0x00800074: bit 0 start/busy, bit 1 direction (1 = write), bits 8-12 byte address,
  bits 16-23 data to write. The host sets bit 0 and polls until the controller clears it.
- OPTR 0x00800078: bits 0-7 the byte read, bit 8 set when that byte is valid.
32 bytes; bytes 0-15 are the flash-encryption code key as four little-endian u32 coefficients.
Fuses only ever go from 0 to 1, so a write ORs into the stored byte.
"""

from __future__ import annotations

import struct
from pathlib import Path

EFUSE_CTRL = 0x00800074
EFUSE_OPTR = 0x00800078
EFUSE_SIZE = 32
OPER_EN = 1 << 0
OPER_DIR_WRITE = 1 << 1
ADDR_SHIFT, ADDR_MASK = 8, 0x1F
WDATA_SHIFT = 16
RD_VALID = 1 << 8

# The code key every shipping BK7231N checks (GUI N mode requires it; bk7231tools' bootloader table
# comment gives it for bl_bk7231n 1.0.1). A BK7231M is the same silicon with an all-zero key.
TUYA_CODE_KEY = struct.pack("<IIII", 0x510FB093, 0xA3CBEADC, 0x5993A17E, 0xC7ADEB03)
KEYS = {"BK7231N": TUYA_CODE_KEY, "BK7231M": bytes(16)}


def default_efuse(variant: str) -> bytes:
    """32 eFuse bytes for a chip variant: its code key, the rest unprogrammed (zeros)."""
    if variant in KEYS:
        return KEYS[variant] + bytes(EFUSE_SIZE - 16)
    from .synth import efuse_bytes  # other families: their code key from core/chips.py

    return efuse_bytes(variant)[:16] + bytes(EFUSE_SIZE - 16)


def parse_efuse(text_or_bytes: bytes | str, source: str = "eFuse value") -> bytes:
    """32 raw bytes, or hex (spaces allowed) of 16 key bytes or all 32 bytes."""
    hexchars = set(b"0123456789abcdefABCDEFxX \t\r\n")
    if isinstance(text_or_bytes, bytes) and not set(text_or_bytes) <= hexchars:
        if len(text_or_bytes) == EFUSE_SIZE:
            return text_or_bytes  # raw bytes, as `bkbench read --efuse` saves them
        raise ValueError(f"{source}: {len(text_or_bytes)} raw bytes; expected {EFUSE_SIZE} or hex text")
    text = text_or_bytes.decode("ascii", "replace") if isinstance(text_or_bytes, bytes) else text_or_bytes
    digits = "".join(text.split()).lower().removeprefix("0x")
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        raise ValueError(f"{source}: not hex") from None
    if len(raw) == 16:
        return raw + bytes(EFUSE_SIZE - 16)
    if len(raw) != EFUSE_SIZE:
        raise ValueError(f"{source}: {len(raw)} bytes; give the 16-byte key or all 32 eFuse bytes")
    return raw


def sidecar_for(dump: Path) -> Path:
    """`DUMP.efuse` beside a dump: the chip's eFuse (32 raw bytes or hex), e.g. saved by `read --efuse`."""
    return dump.with_name(dump.name + ".efuse")


class Efuse:
    def __init__(self, data: bytes) -> None:
        if len(data) != EFUSE_SIZE:
            raise ValueError(f"eFuse must be {EFUSE_SIZE} bytes")
        self.data = bytearray(data)
        self.ctrl = 0
        self.optr = 0
        self._busy_reads = 0

    def write_ctrl(self, value: int) -> None:
        self.ctrl = value & 0xFFFFFFFF
        if not value & OPER_EN:
            return
        addr = (value >> ADDR_SHIFT) & ADDR_MASK
        if value & OPER_DIR_WRITE:
            self.data[addr] |= (value >> WDATA_SHIFT) & 0xFF
            self.optr = 0
        else:
            self.optr = RD_VALID | self.data[addr]
        # The controller needs a moment: the first poll still sees the busy bit (hosts must poll).
        self._busy_reads = 1

    def read_ctrl(self) -> int:
        if self._busy_reads:
            self._busy_reads -= 1
            return self.ctrl
        self.ctrl &= ~OPER_EN
        return self.ctrl

    def read_optr(self) -> int:
        return self.optr
