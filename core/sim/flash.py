"""SPI NOR flash model: wraps at its size, erase sets 0xFF, program only clears bits, and the part's
status register (spi_status.py) decides which regions an erase or program may touch."""

from __future__ import annotations

from ..flash_ids import FlashPart, lookup
from .spi_status import SpiStatus


class NorFlash:
    def __init__(self, data: bytes, jedec: tuple[int, int, int], sr: int = 0, zero: bool = False,
                 part: FlashPart | None = None) -> None:
        size = len(data)
        if size & (size - 1):
            raise ValueError("flash size must be a power of two")
        self.data = bytearray(data)
        self.size = size
        self.jedec = jedec
        self.part = part if part is not None else lookup(jedec)
        self.status = SpiStatus(self.part, size, sr)
        # Strap / boot-mode fault: every read returns zeros and nothing can be changed.
        self.zero = zero

    @property
    def sr(self) -> int:
        return self.status.value

    @sr.setter
    def sr(self, value: int) -> None:
        self.status.value = value & self.status._width_mask()

    @property
    def protected(self) -> bool:
        """Any region protected (what a Tuya bootloader's 'marked' flag remembers)."""
        return self.status.any_protection

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
        base = (addr % self.size) & ~(size - 1)
        if self.zero or self.status.blocks(base, size):
            return False
        self.data[base : base + size] = b"\xff" * size
        return True

    def erase_all(self) -> bool:
        """Chip erase: the part ignores it while any block is protected (GD25Q16C)."""
        if self.zero or self.status.any_protection:
            return False
        self.data[:] = b"\xff" * self.size
        return True

    def program(self, addr: int, data: bytes) -> bool:
        addr %= self.size
        if self.zero or self._blocked(addr, len(data)):
            return False
        for i, b in enumerate(data):
            a = (addr + i) % self.size
            self.data[a] &= b
        return True

    def _blocked(self, addr: int, length: int) -> bool:
        if addr + length <= self.size:
            return self.status.blocks(addr, length)
        return self.status.blocks(addr, self.size - addr) or self.status.blocks(0, addr + length - self.size)

    def program_page(self, addr: int, data: bytes) -> bool:
        """Fast path for aligned 4 KiB programs (the common case)."""
        addr %= self.size
        if addr + len(data) > self.size:
            return self.program(addr, data)
        if self.zero or self.status.blocks(addr, len(data)):
            return False
        cur = int.from_bytes(self.data[addr : addr + len(data)], "little")
        new = cur & int.from_bytes(data, "little")
        self.data[addr : addr + len(data)] = new.to_bytes(len(data), "little")
        return True
