"""Who the simulated chip is, taken from the flash image it is given (PROTOCOL-DETAILS.md 4.2, 4.3, 5.3).

The bootloader CRC table in core/chips.py names chip, dialect and version; the chip-ID register
value comes from the same module. A dump read from 0x11000 with wrap-around (older GUI T dumps) is
recognised by finding the bootloader at a sector boundary and put back into flash order.
`--chip` is only needed for images whose bootloader is not in the table, and must agree otherwise.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from ..chips import BOOTLOADERS, CHIP_IDS, Bootloader, Dialect, boot_crc_length

SECTOR = 0x1000
FLASH_SIZES = (0x100000, 0x200000, 0x400000, 0x800000, 0x1000000)
# Variants that share another chip's silicon identity and differ only in eFuse (GUI `doGenericSetup`).
VARIANT_OF = {"BK7231M": "BK7231N"}
# Dialect of a chip whose bootloader is not in the table (what the chip's own ROM/bootloader speaks).
DEFAULT_DIALECT = {"BK7231N": Dialect.FULL, "BK7238": Dialect.FULL, "BK7252N": Dialect.FULL,
                   "BK7231T": Dialect.BASIC_TUYA}


class ImageIdentityError(ValueError):
    """The image cannot be served as a chip: one line that says why."""


@dataclass(frozen=True)
class SimIdentity:
    chip: str  # silicon family as the chip-ID register / bootloader says (BK7231N for an M)
    variant: str  # what the user asked for when it is a variant (BK7231M), else == chip
    dialect: Dialect
    bootloader: Bootloader | None
    rotation: int  # 0, or the address the dump was read from (bytes moved back to flash order)
    flash: bytes  # in flash order

    @property
    def chip_id(self) -> int:
        return chip_id_of(self.chip)

    @property
    def boot_version(self) -> str | None:
        return self.bootloader.version if self.bootloader else None


def bootloader_at(data: bytes, pos: int = 0) -> Bootloader | None:
    """Table entry of the bootloader stored at `pos`, checked over the length its dialect hashes."""
    head = data[pos : pos + 257]
    if len(head) < 257:
        return None
    for length in (257, 256):
        bl = BOOTLOADERS.get(zlib.crc32(head[:length]))
        if bl is not None and boot_crc_length(bl.dialect) == length:
            return bl
    return None


def find_rotation(data: bytes) -> tuple[int, Bootloader] | None:
    """(read start, bootloader) of a dump read from some sector with wrap-around."""
    size = len(data)
    # 0x11000 first: the one rotation seen in the wild (GUI reads of T chips, PROTOCOL-DETAILS.md 5.3)
    candidates = [size - 0x11000] + [p for p in range(SECTOR, size, SECTOR) if p != size - 0x11000]
    for pos in candidates:
        bl = bootloader_at(data, pos)
        if bl is not None:
            return size - pos, bl
    return None


def unrotate(data: bytes, start: int) -> bytes:
    """Bytes read from `start` with wrap-around -> flash order."""
    cut = len(data) - start
    return bytes(data[cut:]) + bytes(data[:cut])


def normalise_chip(chip: str | None) -> str | None:
    return None if chip is None else chip.strip().upper()


def identify(data: bytes, chip: str | None = None, source: str = "image") -> SimIdentity:
    """Identity of a full flash image; `chip` is a hint that must agree with the image."""
    if len(data) not in FLASH_SIZES:
        raise ImageIdentityError(
            f"{source}: {len(data)} bytes is not a full flash image (1, 2, 4, 8 or 16 MiB)")
    want = normalise_chip(chip)
    family = VARIANT_OF.get(want, want) if want else None
    bl = bootloader_at(data)
    rotation = 0
    if bl is None:
        found = find_rotation(data)
        if found is not None:
            rotation, bl = found
            data = unrotate(data, rotation)
    if bl is not None:
        if family is not None and bl.chip not in (family, want):
            raise ImageIdentityError(
                f"{source} holds a {bl.chip} bootloader ({bl.name}) but the chip asked for is {want}")
        return SimIdentity(bl.chip, want or bl.chip, bl.dialect, bl, rotation, bytes(data))
    if family is None:
        raise ImageIdentityError(
            f"{source}: the bootloader is not in the table, so the chip cannot be told; say which with --chip")
    if family not in DEFAULT_DIALECT:
        raise ImageIdentityError(f"{source}: the simulator cannot play a {family} with an unknown bootloader")
    return SimIdentity(family, want or family, DEFAULT_DIALECT[family], None, 0, bytes(data))


def chip_id_of(chip: str) -> int:
    """The chip-ID register value a family reports (core/chips.py CHIP_IDS), 0 when unknown."""
    family = VARIANT_OF.get(chip, chip)
    for value, name in CHIP_IDS.items():
        if name == family:
            return value
    return 0
