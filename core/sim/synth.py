"""Plausible flash contents and chip identity for a family that has no fixture dump.

Nothing here is a real chip's data. The bootloader is pseudo-random stored code whose identification
CRC (bytes 0..256, 257 on FULL chips) is forged to the family's bootloader-table entry
(core/chips.py DEFAULT_BOOTLOADER): for BK7231N/T/U, BK7238 and BK7252 that is a real table CRC, so a
peer identifies the simulated chip from its own table; for BK7231M, BK7252N, BK7236 and BK7258 it is
an entry marked synthetic (simulator only). The app is stored code encrypted with the family's key,
the RF/TLV sector carries a MAC, the rest is erased.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

from ..analysis import beken_code
from ..chips import (
    BOOTLOADERS,
    CHIP_ID_REGISTER,
    DEFAULT_BOOTLOADER,
    EFUSE_CTRL,
    EFUSE_OPTR,
    FAMILIES,
    Family,
    boot_crc_length,
)

TLV_MAC_TAG = 0x11111102


def _stream(seed: bytes, size: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(seed + struct.pack("<I", counter)).digest()
        counter += 1
    return bytes(out[:size])


def forge_crc(data: bytes, pos: int, target: int) -> bytes:
    """`data` with the 4 bytes at `pos` changed so that zlib.crc32(result) == target.

    CRC-32 is affine over GF(2) for a fixed length: solve the 32x32 system of what each of the
    32 patch bits flips in the CRC.
    """
    base = bytearray(data)
    base[pos : pos + 4] = bytes(4)
    c0 = zlib.crc32(base)
    cols = []
    for bit in range(32):
        probe = bytearray(base)
        probe[pos + bit // 8] ^= 1 << (bit % 8)
        cols.append(zlib.crc32(probe) ^ c0)
    # Gaussian elimination: rows are (column value, bit mask of patch bits that produce it).
    rows = [(cols[b], 1 << b) for b in range(32)]
    basis: list[tuple[int, int]] = []
    for val, mask in rows:
        for bval, bmask in basis:
            if val ^ bval < val:
                val, mask = val ^ bval, mask ^ bmask
        if val:
            basis.append((val, mask))
            basis.sort(reverse=True)
    want = target ^ c0
    patch = 0
    for bval, bmask in basis:
        if want ^ bval < want:
            want ^= bval
            patch ^= bmask
    if want:
        raise ValueError("CRC patch not solvable at this position")
    base[pos : pos + 4] = patch.to_bytes(4, "little")
    assert zlib.crc32(base) == target
    return bytes(base)


def bootloader_bytes(fam: Family, size: int = 0x11000) -> bytes:
    """Stored bootloader code whose identification CRC is the family's default table entry."""
    entry = BOOTLOADERS[DEFAULT_BOOTLOADER[fam.name]]
    plain = _stream(b"bkbench synthetic bootloader " + fam.name.encode(), size // 34 * 32)
    stored = bytearray(beken_code.encrypt_physical(plain, 0, fam.code_key or (0, 0, 0, 0)))
    stored += b"\xff" * (size - len(stored))
    n = boot_crc_length(entry.dialect)
    head = forge_crc(bytes(stored[:n]), n - 8, entry.crc)
    stored[:n] = head
    # The patched bytes sit in 34-byte block 7 (238..271), whose CRC16 (270..271) lies past the
    # identification range: recompute it so the bootloader is valid stored code.
    blk = 7 * beken_code.PHYS_BLOCK
    stored[blk + 32 : blk + 34] = struct.pack(">H", beken_code.crc16(bytes(stored[blk : blk + 32])))
    return bytes(stored[:size])


def tlv_sector(mac: bytes) -> bytes:
    tlv = b"TLV\x00" + struct.pack("<I", 0x30) + bytes(0x14) + struct.pack("<II", TLV_MAC_TAG, 6) + mac
    return tlv + b"\xff" * (0x1000 - len(tlv))


def synth_flash(chip: str, size: int | None = None, seed: int = 1) -> bytes:
    """A plausible flash image for `chip` (bootloader, stored app, RF/TLV with a MAC, blank rest)."""
    fam = FAMILIES[chip]
    size = size or fam.default_flash
    buf = bytearray(b"\xff" * size)
    boot = bootloader_bytes(fam)
    buf[: len(boot)] = boot
    app_plain = _stream(b"app" + struct.pack("<I", seed), 0x60000 // 34 * 32)
    app = beken_code.encrypt_physical(app_plain, fam.bootloader_end, fam.code_key or (0, 0, 0, 0))
    buf[fam.bootloader_end : fam.bootloader_end + len(app)] = app
    mac = bytes([0xC8, 0x47, 0x8C, 0x10 + seed % 0xE0, 0x22, 0x33])
    if fam.rf_offset + 0x1000 <= size:
        buf[fam.rf_offset : fam.rf_offset + 0x1000] = tlv_sector(mac)
    return bytes(buf)


def efuse_bytes(chip: str) -> bytes:
    """32 eFuse bytes: the code key (four LE words) first, the rest zero."""
    fam = FAMILIES.get(chip)
    key = (fam.code_key if fam else None) or (0, 0, 0, 0)
    return struct.pack("<4I", *key) + bytes(16)


def identity_registers(chip: str) -> dict[int, int]:
    """Register values the family answers ReadReg with (its chip-ID register)."""
    fam = FAMILIES.get(chip)
    if fam is None or not fam.chip_ids:
        return {CHIP_ID_REGISTER: 0}
    return {fam.id_register: fam.chip_ids[0]}


def efuse_register_write(registers: dict[int, int], efuse: bytes, addr: int, value: int) -> None:
    """The eFuse controller: a CTRL write with bit 0 set reads byte (value >> 8) & 0x1F into OPTR
    (bit 8 = valid) and clears bit 0 at once (PROTOCOL-DETAILS.md 4.7)."""
    if addr == EFUSE_CTRL and value & 1:
        index = (value >> 8) & 0x1F
        registers[EFUSE_OPTR] = 0x100 | (efuse[index] if index < len(efuse) else 0)
        registers[EFUSE_CTRL] = value & ~1
