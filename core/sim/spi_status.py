"""Status register of the SPI NOR flash behind the bootloader, per part (core/flash_ids.py).

Modelled after the GigaDevice GD25Q16C / Winbond W25Q16 datasheets, the scheme the BK module parts
copy (TH25Q16HB, P25Q16, XT25F16...):
- SR1 = WIP(0) WEL(1) BP0-BP2(2-4) TB(5) SEC(6) SRP0(7); SR2 = SRP1(8) QE(9) ... CMP(14); SR3 rarely used.
- BP selects a block count from the top (TB = 0) or bottom (TB = 1): 64 KiB << (BP - 1), all at BP = 7;
  with SEC = 1 in 4 KiB units up to 32 KiB. CMP = 1 protects the complement. So the stock 0x4004
  (BP0 + CMP) protects everything but the top 64 KiB.
- Writing SR starts a self-timed cycle: WIP and WEL read 1 for `write_s`.
- SRP1:SRP0 = 01 locks SR writes while WP# is low; 10 locks them until power is cycled; 11 for ever.
- Opcode 01 with one data byte on a part with no separate SR2 write opcode clears SR2 (CMP, QE): the
  GD25Q16C "CS# high after the eighth bit" rule. With two bytes it writes SR1 and SR2.
Parts with a one-byte SR ignore a second byte and do not answer 0x35 (the bus reads 0xFF).
"""

from __future__ import annotations

from ..flash_ids import FlashPart

WIP, WEL = 0x01, 0x02
SRP0, SRP1, CMP = 0x80, 0x100, 0x4000
DEFAULT_READ_OPS = (0x05, 0x35)
DEFAULT_WRITE_OPS = (0x01,)


class SpiStatus:
    def __init__(self, part: FlashPart | None, size: int, value: int = 0, write_s: float = 0.005,
                 wp_low: bool = False) -> None:
        self.part = part
        self.size = size
        self.nbytes = part.sr_bytes if part else 2
        self.read_ops = part.sr_read_opcodes if part else DEFAULT_READ_OPS
        self.write_ops = part.sr_write_opcodes if part else DEFAULT_WRITE_OPS
        self.mask = part.protect_mask if part else 0x407C
        self.value = value & self._width_mask()
        self.write_s = write_s
        self.wp_low = wp_low
        self.busy_until = 0.0
        self.power_locked = False

    def _width_mask(self) -> int:
        return (1 << (8 * max(self.nbytes, 1))) - 1 if self.nbytes else 0

    # ------------------------------------------------------------------ protection
    def protected_range(self) -> tuple[int, int]:
        """[start, end) of the unprotected-by-BP region's complement, as (start, end) of the protected part."""
        v = self.value & self.mask
        bp = (v >> 2) & 7
        tb = bool(v & 0x20) and bool(self.mask & 0x20)
        sec = bool(v & 0x40) and bool(self.mask & 0x40)
        cmp_ = bool(v & CMP) and self.nbytes >= 2
        if bp == 0:
            region = (0, 0)
        else:
            if bp == 7:
                length = self.size
            elif sec:
                length = min(0x1000 << (bp - 1), 0x8000)
            else:
                length = min(0x10000 << (bp - 1), self.size)
            region = (0, length) if tb else (self.size - length, self.size)
        if not cmp_:
            return region
        # the complement of one end-anchored range is the other end
        start, end = region
        if start == end:
            return 0, self.size
        return (end, self.size) if start == 0 else (0, start)

    def blocks(self, addr: int, length: int) -> bool:
        """Does protection stop a program/erase touching [addr, addr + length)?"""
        start, end = self.protected_range()
        return start < end and addr < end and start < addr + length

    @property
    def any_protection(self) -> bool:
        start, end = self.protected_range()
        return start < end

    # ------------------------------------------------------------------ commands
    def read(self, opcode: int, now: float) -> int:
        if opcode not in self.read_ops[: max(self.nbytes, 1)]:
            return 0xFF
        index = self.read_ops.index(opcode)
        byte = (self.value >> (8 * index)) & 0xFF
        if index == 0 and now < self.busy_until:
            byte |= WIP | WEL
        return byte

    def locked(self) -> bool:
        if self.power_locked:
            return True
        srp = (bool(self.value & SRP1) if self.nbytes >= 2 else False, bool(self.value & SRP0))
        if srp == (True, True):
            return True  # one-time programmed
        return srp == (False, True) and self.wp_low

    def write(self, opcode: int, data: bytes, now: float) -> bool:
        """Apply a WriteSR; False when the part ignored it (lock, unknown opcode, no SR)."""
        if not self.nbytes or not data or self.locked():
            return False
        ops = self.write_ops
        if opcode not in ops:
            return False
        first = ops.index(opcode)
        old = self.value
        new = old
        for i, byte in enumerate(data[: self.nbytes - first]):
            shift = 8 * (first + i)
            new = (new & ~(0xFF << shift)) | (byte << shift)
        if first == 0 and len(data) == 1 and self.nbytes >= 2 and len(ops) == 1:
            new &= 0xFF  # one byte via 01 on a part without a separate SR2 write clears SR2
        new &= ~(WIP | WEL)
        self.value = new & self._width_mask()
        self.busy_until = now + self.write_s
        if self.nbytes >= 2 and self.value & SRP1 and not self.value & SRP0:
            self.power_locked = True
        return True

    def power_cycle(self) -> None:
        # Lock-down (SRP1:SRP0 = 10) ends with the power: the part comes up with SRP1 clear.
        if self.power_locked:
            self.value &= ~SRP1
        self.power_locked = False
        self.busy_until = 0.0
