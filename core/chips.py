"""Chip families, bootloader dialects and the tables that identify them (PROTOCOL.md sections 2 and 4)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Dialect(str, enum.Enum):
    """Which command set and CRC semantics the code answering on UART1 speaks."""

    FULL = "FULL"  # BK7231N BootROM, BK7238: registers, SR, MID, inclusive CRC end
    BASIC_TUYA = "BASIC_TUYA"  # Tuya bk7231s bootloaders on BK7231T: boot version, exclusive end
    BASIC_BEKEN = "BASIC_BEKEN"  # Beken bootloaders on BK7231U/Q, BK7252

    @property
    def crc_end_inclusive(self) -> bool:
        return self is Dialect.FULL

    @property
    def crc_locks_protection(self) -> bool:
        # Tuya/Beken bootloaders re-protect flash after every CheckCRC (PROTOCOL.md 5).
        return self is not Dialect.FULL

    @property
    def has_registers(self) -> bool:
        return self is Dialect.FULL

    @property
    def has_boot_version(self) -> bool:
        return self is Dialect.BASIC_TUYA


@dataclass(frozen=True)
class Bootloader:
    crc: int  # zlib CRC-32 of flash 0..256 (257 bytes on FULL, 256 on the others)
    name: str
    chip: str
    dialect: Dialect
    version: str
    flash_size: int | None = None  # when the table fixes it (no MID on BASIC dialects)


BOOTLOADERS: dict[int, Bootloader] = {
    b.crc: b
    for b in (
        Bootloader(0xE14191BA, "bl_bk7231n 1.0.1", "BK7231N", Dialect.FULL, "1.0.1"),
        Bootloader(0xC1ECA871, "bk7231s 1.0.1", "BK7231T", Dialect.BASIC_TUYA, "1.0.1", 0x200000),
        Bootloader(0x4B31E44D, "bk7231s 1.0.3", "BK7231T", Dialect.BASIC_TUYA, "1.0.3", 0x200000),
        Bootloader(0xBA54C1B8, "bk7231s 1.0.5", "BK7231T", Dialect.BASIC_TUYA, "1.0.5", 0x200000),
        Bootloader(0xE5CBC953, "bk7231s 1.0.6", "BK7231T", Dialect.BASIC_TUYA, "1.0.6", 0x200000),
        Bootloader(0x2739019F, "bk7231u 1.0.6", "BK7231U", Dialect.BASIC_BEKEN, "1.0.6", 0x200000),
        Bootloader(0xF0231EF6, "bk7231q", "BK7231Q", Dialect.BASIC_BEKEN, ""),
        Bootloader(0xFF5A3EAC, "bk7231q tysdk", "BK7231Q", Dialect.BASIC_BEKEN, ""),
        Bootloader(0x39F9B50C, "bk7252 0.1.3", "BK7252", Dialect.BASIC_BEKEN, "0.1.3"),
        Bootloader(0xE3A27C26, "bk7252 sdk", "BK7252", Dialect.BASIC_BEKEN, ""),
        Bootloader(0xF42F8C32, "T1 2.0.0", "BK7238", Dialect.FULL, "2.0.0"),
        Bootloader(0x6BEB0924, "bk7238 1.0.14", "BK7238", Dialect.FULL, "1.0.14"),
    )
}

# The built-in demo plug's bootloader (core/demo_image.py): synthetic text, on no real chip. Registered so
# the demo analyses like a real dump without passing the synthetic bytes off as Beken's bootloader.
DEMO_BOOTLOADER = Bootloader(0x08D47718, "bkbench demo bootloader (synthetic)", "BK7231N", Dialect.FULL, "demo")
BOOTLOADERS[DEMO_BOOTLOADER.crc] = DEMO_BOOTLOADER

# CRC-32 of 257 zero bytes: the bootloader CRC a chip reports when all flash reads return zeros
# (strap / boot-mode problem, bk7231tools issue 30).
ZERO_FLASH_BOOT_CRC = 0xB7BFA0CE
CRC_FF_4K = 0xF154670A

CHIP_IDS: dict[int, str] = {
    0x7231C: "BK7231N",
    0x7231A: "BK7231T",
    0x7231: "BK7231Q",
    0x7238: "BK7238",
    0x7252: "BK7252",
    0x7252A: "BK7252N",
}
CHIP_ID_REGISTER = 0x00800000

SUPPORTED_CHIPS = ("BK7231N", "BK7231T")


def bootloader_by_crc(crc: int) -> Bootloader | None:
    return BOOTLOADERS.get(crc)


def boot_crc_length(dialect: Dialect) -> int:
    """How many bytes the identification CRC (0, 256) covers on a dialect."""
    return 257 if dialect.crc_end_inclusive else 256
