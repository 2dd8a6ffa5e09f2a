"""SPI NOR flash model: wraps at its size, erase sets 0xFF, program only clears bits, SR protection."""

from __future__ import annotations

PROTECT_BITS = 0x407C  # BP0-BP4 and CMP: any set bit is treated as "array protected"


class NorFlash:
    def __init__(self, data: bytes, jedec: tuple[int, int, int], sr: int = 0, zero: bool = False) -> None:
        size = len(data)
        if size & (size - 1):
            raise ValueError("flash size must be a power of two")
        self.data = bytearray(data)
        self.size = size
        self.jedec = jedec
        self.sr = sr
        # Strap / boot-mode fault: every read returns zeros and nothing can be changed.
        self.zero = zero

    @property
    def protected(self) -> bool:
        return bool(self.sr & PROTECT_BITS)

    def read(self, addr: int, length: int) -> bytes:
        if self.zero:
            return bytes(length)
        addr %= self.size
        out = bytearray()
        while length > 0:
            chunk = min(length, self.size - addr)
            out += self.data[addr : addr + chunk]
            length -= chunk
            addr = 0
        return bytes(out)

    def erase(self, addr: int, size: int) -> bool:
        """Erase the aligned unit containing addr; returns False when protection ignored it."""
        if self.protected or self.zero:
            return False
        base = (addr % self.size) & ~(size - 1)
        self.data[base : base + size] = b"\xff" * size
        return True

    def program(self, addr: int, data: bytes) -> bool:
        if self.protected or self.zero:
            return False
        addr %= self.size
        for i, b in enumerate(data):
            a = (addr + i) % self.size
            self.data[a] &= b
        return True

    def program_page(self, addr: int, data: bytes) -> bool:
        """Fast path for aligned 4 KiB programs (the common case)."""
        if self.protected or self.zero:
            return False
        addr %= self.size
        if addr + len(data) > self.size:
            return self.program(addr, data)
        cur = int.from_bytes(self.data[addr : addr + len(data)], "little")
        new = cur & int.from_bytes(data, "little")
        self.data[addr : addr + len(data)] = new.to_bytes(len(data), "little")
        return True
