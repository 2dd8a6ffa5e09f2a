"""A stand-in for the chip's mask ROM (the BootROM), readable word by word with ReadReg from address 0.

Real ROM contents are Beken's and not ours to ship, so the image is synthetic and says so in plain
text: an ARM-style vector table (initial SP in SRAM, reset vector into the ROM), a banner, then a
deterministic filler. 16 KiB, the size ltchiptool reports and GUI reads (PROTOCOL-DETAILS.md 4.7).
"""

from __future__ import annotations

import hashlib
import struct

ROM_SIZE = 0x4000
BANNER = b"BKBENCH SIMULATED BOOTROM - synthetic content, not a dump of a real chip\x00"


def synthetic_rom(chip: str) -> bytes:
    vectors = struct.pack("<II", 0x00400000 + 0x10000, 0x00000101) + struct.pack("<I", 0x00000181) * 6
    head = vectors + BANNER + f"chip {chip}\x00".encode()
    filler = bytearray()
    counter = 0
    while len(head) + len(filler) < ROM_SIZE:
        filler += hashlib.sha256(f"bkbench-rom-{chip}-{counter}".encode()).digest()
        counter += 1
    return (head + bytes(filler))[:ROM_SIZE]


class Rom:
    def __init__(self, chip: str) -> None:
        self.data = synthetic_rom(chip)

    def covers(self, addr: int) -> bool:
        return 0 <= addr < ROM_SIZE

    def read_word(self, addr: int) -> int:
        base = addr & ~3
        return struct.unpack_from("<I", self.data, base)[0]
