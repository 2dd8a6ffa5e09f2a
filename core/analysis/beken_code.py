"""Beken code cipher and the CRC16-every-32-bytes packing of code in flash (PROTOCOL.md section 7).

How code is stored: the application is encrypted word by word with a keystream that depends only on
the *logical* byte address of the word (the address the flash controller presents to the CPU, i.e.
physical address * 32 / 34), then every 32 logical bytes are followed by a big-endian CRC16
(poly 0x8005, init 0xFFFF, no reflection). The app partition at physical 0x11000 thus starts at
logical 0x10000. The cipher is a plain XOR with the keystream, so encrypt and decrypt are the same
operation.

The keystream is the XOR of three pseudo-noise generators (15, 16 and 32 bit wide) and a constant,
each seeded from the address and steered by four 32-bit coefficients. The generator equations were
learnt from bk7231tools `crypto/code.py` (MIT); this is an independent implementation that
precomputes the coefficient-dependent parts once per key.
"""

from __future__ import annotations

import struct

import crcmod

BLOCK = 32  # logical bytes per CRC block
PHYS_BLOCK = BLOCK + 2

# Tuya's key: 510fb093 a3cbeadc 5993a17e c7adeb03, four big-endian words.
TUYA_COEFFS: tuple[int, int, int, int] = (0x510FB093, 0xA3CBEADC, 0x5993A17E, 0xC7ADEB03)

_crc16 = crcmod.mkCrcFun(0x18005, initCrc=0xFFFF, rev=False, xorOut=0)
_M32 = 0xFFFFFFFF
Coeffs = tuple[int, int, int, int]


def crc16(data: bytes) -> int:
    """CRC16 used for code blocks: poly 0x8005, init 0xFFFF, MSB first, no final XOR."""
    return _crc16(bytes(data))


def logical_address(physical: int) -> int:
    """Logical (CPU-visible) address of a physical flash offset that starts a 34-byte block."""
    if physical % PHYS_BLOCK:
        raise ValueError(f"physical address 0x{physical:X} is not on a 34-byte block boundary")
    return physical // PHYS_BLOCK * BLOCK


# --- CRC packing -------------------------------------------------------------------------------


def strip_crc16(physical: bytes) -> bytes:
    """34-byte physical blocks -> 32-byte logical blocks (a trailing partial block is dropped)."""
    out = bytearray()
    mv = memoryview(physical)
    for pos in range(0, len(physical) - PHYS_BLOCK + 1, PHYS_BLOCK):
        out += mv[pos : pos + BLOCK]
    return bytes(out)


def add_crc16(logical: bytes) -> bytes:
    """32-byte logical blocks -> 34-byte physical blocks; the input is padded with 0xFF to 32 bytes."""
    if len(logical) % BLOCK:
        logical = bytes(logical) + b"\xff" * (BLOCK - len(logical) % BLOCK)
    out = bytearray()
    for pos in range(0, len(logical), BLOCK):
        block = logical[pos : pos + BLOCK]
        out += block
        out += struct.pack(">H", _crc16(bytes(block)))
    return bytes(out)


def crc16_bad_blocks(physical: bytes) -> list[int]:
    """Offsets (within `physical`) of the 34-byte blocks whose CRC16 does not match."""
    bad = []
    for pos in range(0, len(physical) - PHYS_BLOCK + 1, PHYS_BLOCK):
        block = physical[pos : pos + BLOCK]
        (want,) = struct.unpack_from(">H", physical, pos + BLOCK)
        if _crc16(bytes(block)) != want:
            bad.append(pos)
    return bad


def crc16_ok(physical: bytes) -> bool:
    """True when `physical` is a whole number of 34-byte blocks and every block's CRC16 matches."""
    if not physical or len(physical) % PHYS_BLOCK:
        return False
    return not crc16_bad_blocks(physical)


# --- the cipher --------------------------------------------------------------------------------


def _pn15(x: int) -> int:
    r5 = x >> 5
    nib = r5 & 0xF
    lhs = ((x >> 7) + ((x << 9) & 0xFFFF)) & 0xFFFF
    rhs = (((r5 << 12) & 0xFFFF) + (nib << 8) + ((r5 << 4) & 0xFF) + nib) & 0x6371
    return (lhs ^ rhs) & 0xFFFF


def _pn16(x: int) -> int:
    sel = ((x >> 13) & 1) | (((x >> 9) & 1) << 1) | (((x >> 5) & 1) << 2) | (((x >> 1) & 1) << 3)
    lhs = ((x & 0x3FF) << 7) + ((x >> 10) & 0x7F)
    rhs = ((((x >> 4) & 1) << 16) + sel * 0x1000 + sel * 0x111) & 0x13659
    return lhs ^ rhs


def _pn32(x: int) -> int:
    rot = ((x >> 15) | (x << 17)) & _M32
    return rot ^ ((((x >> 2) & 0xF) * 0x11111111) & 0xE519A4F1)


def _swap16(v: int) -> int:
    return ((v >> 8) & 0xFF) | ((v & 0xFF) << 8)


class _Key:
    """Coefficient-derived constants of one key (coefficient 3 is a control word)."""

    def __init__(self, coeffs: tuple[int, int, int, int]) -> None:
        c0, c1, c2, ctl = (c & _M32 for c in coeffs)
        all_off = (ctl >> 24) in (0x00, 0xFF)
        self.off15 = all_off or bool(ctl & 1)
        self.off16 = all_off or bool(ctl & 2)
        self.off32 = all_off or bool(ctl & 4)
        self.const = 0 if (all_off or ctl & 8) else c2
        self.swap_lo = bool((ctl >> 5) & 1)  # pn15 seed: byte-swap the low address half
        self.swap_hi = bool((ctl >> 6) & 1)  # pn15 seed: byte-swap the high address half
        self.shift16 = (ctl >> 8) & 3
        self.rot32 = 8 * ((ctl >> 11) & 3)
        self.c0 = c0
        self.c1_hi = (c1 >> 16) & 0xFFFF
        self.pn16_base = (c1 & 0xFF) + (((c1 >> 8) & 0xFF) << 9) + (((ctl >> 4) & 1) << 8)

    def mask(self, addr: int) -> int:
        m = self.const
        if not self.off32:
            r = self.rot32
            seed = ((addr >> r) | (addr << (32 - r))) & _M32 if r else addr
            m ^= _pn32(seed ^ self.c0)
        hi_lo = 0
        if not self.off15:
            hi, lo = addr >> 16 & 0xFFFF, addr & 0xFFFF
            if self.swap_hi:
                hi = _swap16(hi)
            if self.swap_lo:
                lo = _swap16(lo)
            hi_lo = _pn15(self.c1_hi ^ hi ^ lo) << 16
        if not self.off16:
            hi_lo += _pn16(self.pn16_base ^ ((addr >> self.shift16) & 0x1FFFF))
        return (m ^ hi_lo) & _M32


_KEYS: dict[tuple[int, ...], _Key] = {}


def keystream(address: int, length: int, coeffs: Coeffs = TUYA_COEFFS) -> bytes:
    """`length` keystream bytes for logical `address` (must be word aligned)."""
    if address % 4:
        raise ValueError(f"cipher address 0x{address:X} is not word aligned")
    key = _KEYS.get(tuple(coeffs))
    if key is None:
        key = _KEYS[tuple(coeffs)] = _Key(tuple(coeffs))  # type: ignore[arg-type]
    words = (length + 3) // 4
    mask = key.mask
    stream = struct.pack(f"<{words}I", *[mask(address + 4 * i) for i in range(words)])
    return stream[:length]


def decrypt(data: bytes, address: int, coeffs: Coeffs = TUYA_COEFFS) -> bytes:
    """Decrypt logical (CRC-stripped) code bytes whose first byte sits at logical `address`.

    The app partition (physical 0x11000) starts at logical 0x10000; see `logical_address`.
    """
    if not data:
        return b""
    ks = keystream(address, len(data), coeffs)
    n = len(data)
    return (int.from_bytes(data, "little") ^ int.from_bytes(ks, "little")).to_bytes(n, "little")


def encrypt(data: bytes, address: int, coeffs: Coeffs = TUYA_COEFFS) -> bytes:
    """Encrypt logical plaintext for logical `address` (the cipher is its own inverse)."""
    return decrypt(data, address, coeffs)


def decrypt_physical(physical: bytes, phys_address: int, coeffs: Coeffs = TUYA_COEFFS) -> bytes:
    """Strip the CRCs from a physical code region starting at `phys_address` and decrypt it."""
    return decrypt(strip_crc16(physical), logical_address(phys_address), coeffs)


def encrypt_physical(plain: bytes, phys_address: int, coeffs: Coeffs = TUYA_COEFFS) -> bytes:
    """Encrypt plaintext for physical `phys_address` and add the CRC16s (as written to flash)."""
    if len(plain) % BLOCK:
        plain = bytes(plain) + b"\xff" * (BLOCK - len(plain) % BLOCK)
    return add_crc16(encrypt(plain, logical_address(phys_address), coeffs))
