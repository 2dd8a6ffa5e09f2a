"""The real Tuya BK7231T bootloader, run under Unicorn, as a judge of the simulator and of the engine.

The bootloader sits in every T dump at physical 0x0-0x11000, encrypted with the Tuya code key and
packed with a CRC16 after every 32 bytes (core/analysis/beken_code.py undoes both). Its UART download
protocol is plain ARM code: we run it on Unicorn's ARM946 model (ARMv5TE, as the chip's ARM968E-S)
with just enough of the chip around it (REALCODE.md section A):

- memory: the decrypted code at 0x0 (XIP view), TCM at 0x3F0000, SRAM at 0x400000, peripherals at
  0x800000 behind one MMIO handler;
- UART1 (download) with an RX FIFO fed from the host at a line rate, UART2 (log) collected as text;
- the interrupt controller: Unicorn has no IRQ line, so between instruction slices we enter the IRQ
  vector ourselves when UART1 has bytes or the timer has ticked and the CPU has IRQs enabled;
- timer3 (the bootloader's 2 ms tick), the watchdog (key writes arm it; expiry reboots from the reset
  vector, which prints the banner on UART2 again);
- the flash controller in front of *our* SPI flash model (core/sim/flash.py NorFlash with its
  spi_status.SpiStatus): the bootloader's own code decides when to read, program, erase and write the
  status register; the part's answer to those operations is our model (the one thing here we wrote).

Time is virtual: one instruction is one step of the clock. Nothing sleeps for wire time. RX bytes go
into the FIFO only while the bootloader's 512-byte receive ring has room (we read its indices from RAM,
found per version below), which is as fast as the real code can take them.
"""

from __future__ import annotations

import struct
import threading
import time
from dataclasses import dataclass, field

from bkbench.core.analysis.beken_code import decrypt_physical
from bkbench.core.sim.device import garble
from bkbench.core.sim.flash import NorFlash

try:
    import unicorn as uc_mod
    from unicorn import arm_const as A
except ImportError:  # pragma: no cover - the tests skip with one summary line
    uc_mod = None
    A = None

BOOT_PHYS = 0x11000
CODE_SIZE = 0x10000
TCM, TCM_SIZE = 0x3F0000, 0x10000
SRAM, SRAM_SIZE = 0x400000, 0x40000
PERIPH, PERIPH_SIZE = 0x800000, 0x10000
APP_ENTRY = 0x10000  # the bootloader jumps here when no host keeps it

# peripheral registers (absolute addresses)
ICU_INT_ENABLE, ICU_GLOBAL, ICU_RAW, ICU_STATUS = 0x802040, 0x802044, 0x802048, 0x80204C
UART1, UART2 = 0x802100, 0x802200
U_CONFIG, U_FIFO_STATUS, U_FIFO_PORT, U_INT_ENABLE, U_INT_STATUS = 0x0, 0x8, 0xC, 0x10, 0x14
WDT_CTRL = 0x802900
TIMER3_CNT, TIMER_CTL = 0x802A40, 0x802A4C
FLASH_OP, FLASH_WDATA, FLASH_RDATA, FLASH_RDID, FLASH_SR, FLASH_CONF = (
    0x803000, 0x803004, 0x803008, 0x803010, 0x803014, 0x80301C)
IRQ_UART1, IRQ_TIMER = 1 << 0, 1 << 8
UART_CLOCK = 26_000_000
RX_FIFO_DEPTH = 128
# Virtual time: the timer's 2 ms tick is 20,000 instructions (a 10 MHz clock; the chip runs ~10x faster, but
# the bootloader only waits on the timer for SetBaudRate and Reboot, and fewer instructions per tick keep
# those waits cheap to emulate). Only the SetBaudRate echo is released to the host by this clock (below).
CLOCK = 10_000_000
QUIET_PASSES = 8  # main-loop passes without a byte that count as "waiting for the host"

# flash controller operations (OPERATE_SW bits 28:24)
OP_RDSR, OP_WRSR, OP_READ, OP_RDSR2, OP_WRSR2, OP_PP, OP_SE, OP_BE1, OP_BE2, OP_CE, OP_RDID = (
    3, 4, 5, 6, 7, 12, 13, 14, 15, 16, 20)


def boot_code(dump: bytes) -> bytes:
    """The bootloader's 64 KiB of plain ARM code from a T dump (CRC16s stripped, Tuya key undone)."""
    return decrypt_physical(dump[:BOOT_PHYS], 0)


def _literal(code: bytes, at: int) -> int:
    """The word an ARM `ldr rX, [pc, #imm]` at `at` loads."""
    (ins,) = struct.unpack_from("<I", code, at)
    if ins & 0x0F7F0000 != 0x051F0000:
        raise ValueError(f"no ldr from a literal at 0x{at:X}")
    imm = ins & 0xFFF
    return struct.unpack_from("<I", code, at + 8 + (imm if ins & (1 << 23) else -imm))[0]


@dataclass(frozen=True)
class RingLayout:
    """Where the bootloader keeps its 512-byte UART receive ring (same code shape in 1.0.4 and 1.0.5)."""

    buffer: int
    write_index: int  # u32, advanced by the UART IRQ handler
    read_index: int  # u16, advanced by the main loop after it has parsed the bytes
    idle_count: int  # u32, main-loop passes without a byte
    idle_limit: int


# The main loop: ldr r2,[r7] ; lsl r1,r2,#16 ; lsr r1,r1,#16 ; strh r1,[r4] ; ldrh r0,[r4,#2]
_MAIN_LOOP = bytes.fromhex("002097e50218a0e12118a0e1b010c4e1b200d4e1")


def ring_layout(code: bytes) -> RingLayout:
    at = code.find(_MAIN_LOOP)
    if at < 0:
        raise ValueError("receive loop not found: not a bootloader this harness knows")
    # three literal loads before it: r6 = ring, r7 = write index, r4 = read state; `mov r5, #0` between
    buf, widx, state = (_literal(code, at - 16 + 4 * i) for i in range(3))
    # idle: ldr r0,[r4,#4] ; add r1,r0,#1 ; str r1,[r4,#4] ; ldr r1,[pc,#..] ; cmp r0,r1
    idle = code.find(bytes.fromhex("040094e5011080e2041084e5"), at)
    limit = _literal(code, idle + 12)
    return RingLayout(buf, widx, state + 2, state + 4, limit)


# uart1_send(buf, len): a byte loop around putc, which polls WR_READY and writes UART1's FIFO_PORT
_UART_SEND = bytes.fromhex(
    "70402de90040a0e10150a0e1010000ea0100d4e4020000eb015055e2fbffff2a7080bde8"
    "10109fe5082191e5010612e3fcffff0a0c0181e51eff2fe1")
# flash_read(dst, addr, len): 32-byte controller reads from addr & ~0x1F, address masked to 24 bits
_FLASH_READ = bytes.fromhex("f0402de920d04de21fc0c1e30d60a0e1000052e3")


def leaf_functions(code: bytes) -> tuple[int, int]:
    """(uart1_send, flash_read): the two I/O leaves the fast mode runs in Python."""
    send, read = code.find(_UART_SEND), code.find(_FLASH_READ)
    if send < 0 or read < 0 or code.find(_UART_SEND, send + 1) >= 0:
        raise ValueError("I/O routines not found: not a bootloader this harness knows")
    return send, read


def boot_version_in(code: bytes) -> str:
    i = code.find(b"BK7231S_")
    return code[i : i + 13].decode() if i >= 0 else "?"


@dataclass
class Stats:
    instructions: int = 0
    slices: int = 0
    resets: int = 0
    wall: float = 0.0
    flash_ops: dict[int, int] = field(default_factory=dict)
    sr_writes: list[tuple[int, int]] = field(default_factory=list)  # (op, value) of every WRSR / WRSR2


class TBootloader:
    """The CPU, its peripherals and the flash; driven by `run`. Not thread-safe: one driver at a time."""

    def __init__(self, dump: bytes, flash: NorFlash, slice_len: int = 4000, tick: int = 2 * CLOCK // 1000,
                 exact: bool = False) -> None:
        if uc_mod is None:
            raise RuntimeError("unicorn is not installed")
        self.code = boot_code(dump)
        self.version = boot_version_in(self.code)
        self.ring = ring_layout(self.code)
        # exact: every byte through the FIFO, IRQ and MMIO. fast (default): RX bytes go straight into the
        # receive ring (what the UART IRQ handler does with them, and all it does) and the two I/O leaves
        # uart1_send and flash_read run in Python with the same effect, which saves ~10 MMIO callbacks
        # per byte. The command handlers, the parser and the flash-protection logic always run as ARM code;
        # tests/realcode/test_t_bootloader.py checks that both modes give the same bytes.
        self.exact = exact
        self.flash = flash
        self.slice_len = slice_len
        self.tick = tick  # instructions per timer-3 count period (the 2 ms tick, in virtual time)
        self.stats = Stats()
        self.tx = bytearray()  # UART1 -> host
        # the same bytes, tagged with UART1's baud and the virtual time (instructions) they started at
        self.tx_chunks: list[tuple[int, bytearray, int]] = []
        self.log = bytearray()  # UART2 text (banner)
        self.rx = bytearray()  # host -> UART1, not yet in the FIFO
        self.fifo = bytearray()  # UART1 RX FIFO
        self.tx_baud_log: list[tuple[int, int]] = []  # (len(tx) when the divisor changed, new baud)
        self.in_app = False
        self._build()

    # ------------------------------------------------------------------ set-up
    def _build(self) -> None:
        u = self.uc = uc_mod.Uc(uc_mod.UC_ARCH_ARM, uc_mod.UC_MODE_ARM)
        u.ctl_set_cpu_model(A.UC_CPU_ARM_946)
        u.mem_map(0, CODE_SIZE, uc_mod.UC_PROT_READ | uc_mod.UC_PROT_EXEC)
        u.mem_write(0, self.code)
        u.mem_map(TCM, TCM_SIZE)
        u.mem_map(SRAM, SRAM_SIZE)
        u.mmio_map(PERIPH, PERIPH_SIZE, self._mmio_read, None, self._mmio_write, None)
        if not self.exact:
            send, read = leaf_functions(self.code)
            u.hook_add(uc_mod.UC_HOOK_CODE, self._fast_send, begin=send, end=send)
            u.hook_add(uc_mod.UC_HOOK_CODE, self._fast_flash_read, begin=read, end=read)
        self._reset_cpu()

    def _reset_cpu(self) -> None:
        self.regs: dict[int, int] = {}
        self.uart_cfg = {UART1: 0, UART2: 0}
        self.uart_ie = {UART1: 0, UART2: 0}
        self.fifo.clear()
        self.timer_pending = False
        self.timer_next = None
        self.wdt_deadline: int | None = None
        self._wdt_key = 0
        self.flash_rbuf: list[int] = []
        self.flash_wbuf: list[int] = []
        self.flash_rdid = 0
        self.flash_sr_val = 0
        self.in_app = False
        self.uc.mem_write(TCM, bytes(TCM_SIZE))
        self.uc.mem_write(SRAM, bytes(SRAM_SIZE))
        for r in range(A.UC_ARM_REG_R0, A.UC_ARM_REG_R12 + 1):
            self.uc.reg_write(r, 0)
        self.uc.reg_write(A.UC_ARM_REG_CPSR, 0xD3)  # SVC, IRQ and FIQ masked
        self.pc = 0

    def reboot(self) -> None:
        """Watchdog reset: the CPU starts again at the reset vector (the banner goes out on UART2)."""
        self.stats.resets += 1
        self._reset_cpu()

    # ------------------------------------------------------------------ peripherals
    @property
    def now(self) -> int:
        return self.stats.instructions

    def baud(self, base: int = UART1) -> int:
        div = (self.uart_cfg[base] >> 8) & 0x1FFF
        return round(UART_CLOCK / (div + 1)) if div else 0

    def _uart_status(self, base: int) -> int:
        v = (1 << 17) | (1 << 20)  # TX empty, write ready: TX drains instantly
        if base == UART1 and self.fifo:
            v |= (min(len(self.fifo), 255) << 8) | (1 << 21)
            if len(self.fifo) >= RX_FIFO_DEPTH:
                v |= 1 << 18
        else:
            v |= 1 << 19  # RX empty
        return v

    def _uart1_irq(self) -> bool:
        return bool(self.fifo) and bool(self.uart_ie[UART1] & 0x42)

    def _icu_status(self) -> int:
        s = 0
        if self._uart1_irq():
            s |= IRQ_UART1
        if self.timer_pending:
            s |= IRQ_TIMER
        return s

    def _mmio_read(self, uc, off: int, size: int, _ud) -> int:
        a = PERIPH + off
        if a in (UART1 + U_FIFO_STATUS, UART2 + U_FIFO_STATUS):
            return self._uart_status(a - U_FIFO_STATUS)
        if a == UART1 + U_FIFO_PORT:
            return self.fifo.pop(0) if self.fifo else 0
        if a == UART1 + U_INT_STATUS:
            return 0x42 if self.fifo else 0
        if a == ICU_STATUS or a == ICU_RAW:
            return self._icu_status()
        if a == TIMER_CTL:
            return (self.regs.get(a, 0) & ~0x380) | (0x80 if self.timer_pending else 0)
        if a == FLASH_OP:
            return self.regs.get(a, 0) & ~(1 << 31)  # never busy: every operation completes at once
        if a == FLASH_RDATA:
            return self.flash_rbuf.pop(0) if self.flash_rbuf else 0
        if a == FLASH_RDID:
            return self.flash_rdid
        if a == FLASH_SR:
            return self.flash_sr_val
        return self.regs.get(a, 0)

    def _mmio_write(self, uc, off: int, size: int, value: int, _ud) -> None:
        a = PERIPH + off
        self.regs[a] = value
        if a in (UART1 + U_CONFIG, UART2 + U_CONFIG):
            base = a - U_CONFIG
            self.uart_cfg[base] = value
            if base == UART1:
                self.tx_baud_log.append((len(self.tx), self.baud()))
        elif a == UART1 + U_FIFO_PORT:
            self._emit(bytes([value & 0xFF]))
        elif a == UART2 + U_FIFO_PORT:
            self.log.append(value & 0xFF)
        elif a in (UART1 + U_INT_ENABLE, UART2 + U_INT_ENABLE):
            self.uart_ie[a - U_INT_ENABLE] = value
        elif a == TIMER_CTL:
            if value & 0x80:
                self.timer_pending = False
            if value & 1 and self.timer_next is None:
                self.timer_next = self.now + self._timer_period()
            elif not value & 1:
                self.timer_next = None
        elif a == WDT_CTRL:
            self._wdt(value)
        elif a == FLASH_OP:
            if value & (1 << 29):
                self._flash_op((value >> 24) & 0x1F, value & 0xFFFFFF)
        elif a == FLASH_WDATA:
            self.flash_wbuf.append(value & 0xFFFFFFFF)

    def _timer_period(self) -> int:
        cnt = self.regs.get(TIMER3_CNT, 0x40) or 0x40
        return max(1, cnt * self.tick // 0x40)

    def _wdt(self, value: int) -> None:
        key = (value >> 16) & 0xFF
        period = value & 0xFFFF
        if key == 0x5A:
            self._wdt_key = 0x5A
        elif key == 0xA5 and self._wdt_key == 0x5A:
            self._wdt_key = 0
            # period in watchdog ticks (~1 ms each): in virtual time, a tick is half a timer tick
            self.wdt_deadline = self.now + max(1, period) * self.tick // 2 if period else None

    def _flash_op(self, op: int, addr: int) -> None:
        st = self.stats.flash_ops
        st[op] = st.get(op, 0) + 1
        fl = self.flash
        if op == OP_READ:
            self.flash_rbuf = list(struct.unpack("<8I", fl.read(addr, 32)))
        elif op == OP_PP:
            words = (self.flash_wbuf + [0xFFFFFFFF] * 8)[:8]
            self.flash_wbuf = []
            fl.program(addr, struct.pack("<8I", *words))
        elif op == OP_SE:
            fl.erase(addr, 0x1000)
        elif op in (OP_BE1, OP_BE2):
            fl.erase(addr, 0x8000 if op == OP_BE1 else 0x10000)
        elif op == OP_CE:
            fl.erase_all()
        elif op == OP_RDID:
            j = fl.jedec
            self.flash_rdid = (j[0] << 16) | (j[1] << 8) | j[2]
        elif op == OP_RDSR:
            self.flash_sr_val = fl.status.read(0x05, 0.0)
        elif op == OP_RDSR2:
            self.flash_sr_val = fl.status.read(0x35, 0.0)
        elif op in (OP_WRSR, OP_WRSR2):
            data = (self.regs.get(FLASH_CONF, 0) >> 10) & 0xFFFF
            self.stats.sr_writes.append((op, data))
            raw = bytes([data & 0xFF]) if op == OP_WRSR else struct.pack("<H", data)
            fl.status.write(0x01, raw, 0.0)

    def _emit(self, data: bytes) -> None:
        self.tx += data
        baud = self.baud()
        if not self.tx_chunks or self.tx_chunks[-1][0] != baud:
            self.tx_chunks.append((baud, bytearray(), self.now))
        self.tx_chunks[-1][1].extend(data)

    def _return(self, u) -> None:
        u.reg_write(A.UC_ARM_REG_PC, u.reg_read(A.UC_ARM_REG_LR))

    def _fast_send(self, u, _addr, _size, _ud) -> None:
        buf, n = u.reg_read(A.UC_ARM_REG_R0), u.reg_read(A.UC_ARM_REG_R1)
        if n:
            data = bytes(u.mem_read(buf, n))
            self._emit(data)
            u.reg_write(A.UC_ARM_REG_R0, data[-1])  # as the ARM loop leaves it: the last byte sent
        self._return(u)

    def _fast_flash_read(self, u, _addr, _size, _ud) -> None:
        dst, addr, n = (u.reg_read(r) for r in (A.UC_ARM_REG_R0, A.UC_ARM_REG_R1, A.UC_ARM_REG_R2))
        if n:
            st = self.stats.flash_ops
            first, last = addr & ~0x1F, (addr + n - 1) & ~0x1F
            st[OP_READ] = st.get(OP_READ, 0) + (last - first) // 32 + 1
            if (first & 0xFFFFFF) + (last - first) < 0x1000000:  # the 24-bit controller address does not wrap
                data = self.flash.read(addr & 0xFFFFFF, n)
            else:
                data = b"".join(self.flash.read((b & 0xFFFFFF), 32) for b in range(first, last + 32, 32))
                data = data[addr & 0x1F :][:n]
            u.mem_write(dst, data)
            u.reg_write(A.UC_ARM_REG_R0, dst + n)  # as the ARM loop leaves it: past the last byte
        self._return(u)

    # ------------------------------------------------------------------ running
    def _irq(self) -> None:
        """Take the IRQ exception as the CPU would: IRQ mode, LR = next instruction + 4, vector 0x18."""
        u = self.uc
        cpsr = u.reg_read(A.UC_ARM_REG_CPSR)
        u.reg_write(A.UC_ARM_REG_CPSR, (cpsr & ~0x3F) | 0x92)  # IRQ mode, IRQs masked, ARM state
        u.reg_write(A.UC_ARM_REG_SPSR, cpsr)
        u.reg_write(A.UC_ARM_REG_LR, self.pc + 4)
        self.pc = 0x18

    def _irq_wanted(self) -> bool:
        if not self.regs.get(ICU_GLOBAL, 0) & 1:
            return False
        return bool(self._icu_status() & self.regs.get(ICU_INT_ENABLE, 0))

    def run(self, count: int) -> None:
        """Run about `count` instructions in slices, feeding RX and taking interrupts between slices."""
        u = self.uc
        done = 0
        t0 = time.perf_counter()
        while done < count and not self.in_app:
            self._feed()
            if self.timer_next is not None and self.now >= self.timer_next:
                self.timer_pending = True
                self.timer_next = self.now + self._timer_period()
            if self.wdt_deadline is not None and self.now >= self.wdt_deadline:
                self.reboot()
            if self._irq_wanted() and not u.reg_read(A.UC_ARM_REG_CPSR) & 0x80:
                self._irq()
            n = min(self.slice_len, count - done)
            # Unicorn takes the Thumb state from bit 0 of the start address, not from CPSR.T
            thumb = u.reg_read(A.UC_ARM_REG_CPSR) & 0x20
            u.emu_start(self.pc | (1 if thumb else 0), APP_ENTRY, count=n)
            self.pc = u.reg_read(A.UC_ARM_REG_PC)
            if self.pc == APP_ENTRY:
                self.in_app = True
            done += n
            self.stats.instructions += n
            self.stats.slices += 1
        self.stats.wall += time.perf_counter() - t0

    def _ring(self) -> tuple[int, int, int]:
        """(write index, read index, idle passes) of the receive ring, read from RAM."""
        ring = self.ring
        w = struct.unpack("<I", self.uc.mem_read(ring.write_index, 4))[0]
        r = struct.unpack("<H", self.uc.mem_read(ring.read_index, 2))[0]
        idle = struct.unpack("<I", self.uc.mem_read(ring.idle_count, 4))[0]
        return w, r, idle

    def quiet(self) -> bool:
        """Waiting for a byte: nothing queued, the ring parsed, and the main loop has spun a few times."""
        if self.in_app:
            return True
        if self.rx or self.fifo:
            return False
        w, r, idle = self._ring()
        return (w & 0x1FF) == r and idle >= QUIET_PASSES

    def run_until_quiet(self, limit: int = 200_000_000, step: int = 20_000) -> int:
        """Run until the bootloader waits for the host (or `limit` instructions); returns how many ran."""
        start = self.now
        while self.now - start < limit:
            self.run(step)
            if self.quiet():
                break
        return self.now - start

    def exchange(self, frame: bytes, limit: int = 200_000_000) -> bytes:
        """Send `frame`, run until the bootloader waits again, return what it sent on UART1."""
        self.tx.clear()
        self.tx_chunks.clear()
        self.rx += frame
        self.run_until_quiet(limit)
        return bytes(self.tx)

    def take_tx(self) -> list[tuple[int, bytes, int]]:
        out = [(b, bytes(d), v) for b, d, v in self.tx_chunks]
        self.tx_chunks.clear()
        self.tx.clear()
        return out

    def ring_free(self) -> int:
        ring = self.ring
        w = struct.unpack("<I", self.uc.mem_read(ring.write_index, 4))[0]
        r = struct.unpack("<H", self.uc.mem_read(ring.read_index, 2))[0]
        return 511 - ((w - r) & 0x1FF)

    def _feed(self) -> None:
        """Bytes go into the FIFO only while the ring can take them (a real UART at the right rate)."""
        if self.rx and not self.exact:
            take = min(len(self.rx), self.ring_free())
            if take > 0:
                ring = self.ring
                w = struct.unpack("<I", self.uc.mem_read(ring.write_index, 4))[0] & 0x1FF
                first = min(take, 0x200 - w)
                self.uc.mem_write(ring.buffer + w, bytes(self.rx[:first]))
                self.uc.mem_write(ring.buffer, bytes(self.rx[first:take]))
                self.uc.mem_write(ring.write_index, struct.pack("<I", (w + take) & 0x1FF))
                del self.rx[:take]
            return
        if self.rx and len(self.fifo) < RX_FIFO_DEPTH:
            take = min(RX_FIFO_DEPTH - len(self.fifo), self.ring_free() - len(self.fifo))
            if take <= 0:
                return
            self.fifo += self.rx[:take]
            del self.rx[:take]


# ---------------------------------------------------------------------- the chip on a (simulated) wire


def same_rate(chip: int, host: int) -> bool:
    """A UART samples correctly within a few percent (26 MHz / 226 = 115044 is "115200")."""
    return bool(chip) and abs(chip - host) <= 0.03 * host


class RealTDevice:
    """The emulated bootloader behind the same host interface as core/sim's SimDevice.

    So it plugs into what serves SimDevice already: `sim://@name` in-process (core/sim/registry.register)
    and a pty (core/sim/pty_bridge.PtyBridge) for bkbench's CLI and bk7231tools. A worker thread runs the
    CPU while the host has bytes for it or the bootloader is busy, and stops it once the bootloader waits
    for a byte again: virtual time stands still while the host is silent, so in CI the boot window never
    closes and the idle reset never fires unless a test asks for it (`pace`: instructions per wall second
    to run while waiting, which lets the idle loop count down as on a chip).
    Bytes written at a rate other than UART1's, or read at a rate other than the one they were sent at,
    arrive garbled (core/sim/device.garble), as on a wire.
    """

    def __init__(self, dump: bytes, jedec: tuple[int, int, int] = (0xC8, 0x40, 0x15), sr: int = 0x1C,
                 pace: float | None = None, seed: int = 0) -> None:
        import random

        self.flash = NorFlash(dump, jedec, sr)
        self.boot = TBootloader(dump, self.flash)
        self.pace = pace
        self.rng = random.Random(seed)
        self.host_baud = 115200
        self.disconnected = False
        self.lines = {"dtr": False, "rts": False}
        self.adapter = None  # no modelled USB adapter in front (core/sim/adapter.py): a plain wire
        self._cond = threading.Condition()
        self._in = bytearray()  # host -> chip, not yet handed to the CPU thread
        self._out: list[tuple[int, bytes, float]] = []  # chip -> host: (baud, bytes, not before)
        self._w0, self._v0, self._b0 = time.monotonic(), self.boot.now, self.boot.baud()
        self._busy = True
        self._stop = False
        self.boot.run_until_quiet()  # out of reset, into the receive loop: waiting in the boot window
        self._thread = threading.Thread(target=self._work, name="real-t-bootloader", daemon=True)
        self._thread.start()

    # --- worker
    def _work(self) -> None:
        boot = self.boot
        while True:
            with self._cond:
                while not self._in and not self._busy and not self._stop and not self.pace:
                    self._cond.wait()
                if self._stop:
                    return
                data, self._in = bytes(self._in), bytearray()
            if boot.in_app:
                data = b""  # no application in this harness: the bytes go nowhere
            if data:
                # bytes leave the chip no earlier than its virtual clock says, counted from when these
                # arrived: a SetBaudRate echo waits its (delay + 1) ticks, so a host switches its rate first
                self._w0, self._v0, self._b0 = time.monotonic(), boot.now, boot.baud()
                baud = boot.baud()
                if not same_rate(baud, self.host_baud):
                    data = garble(data, self.host_baud, baud or 115200, self.rng)
                boot.rx += data
            began = time.perf_counter()
            ran = boot.run_until_quiet(limit=200_000, step=20_000)
            # Bytes at another rate than the chip had when these host bytes came (a SetBaudRate echo) leave no
            # earlier than the chip's clock says: its (delay + 1) ticks, so the host has switched by then.
            # Everything else goes at once (the emulator is slower than the chip anyway).
            out = [(b, d, self._w0 + (v - self._v0) / CLOCK if not same_rate(b, self._b0) else 0.0)
                   for b, d, v in boot.take_tx()]
            with self._cond:
                self._out += out
                self._busy = not boot.quiet() or bool(boot.rx)
                if out:
                    self._cond.notify_all()
            if not self._busy and self.pace and not boot.in_app:
                time.sleep(max(0.0, ran / self.pace - (time.perf_counter() - began)))
            elif boot.in_app and not data:
                with self._cond:
                    self._busy = False
                    self._cond.wait(0.05)

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until the bootloader waits for the host again (tests, golden recording)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._cond:
                if not self._in and not self._busy:
                    return
                self._cond.wait(0.005)
        raise TimeoutError("the emulated bootloader did not settle")

    # --- the host interface SimDevice offers (what protocol_sim and PtyBridge call)
    def clock(self) -> float:
        return time.monotonic()

    @property
    def chip_baud(self) -> int:
        """UART1's rate, named as the host names it when the two sample alike (PtyBridge compares them)."""
        baud = self.boot.baud()
        return self.host_baud if same_rate(baud, self.host_baud) else baud

    def set_host_baud(self, baud: int, since: float | None = None) -> None:
        # `since` (when a pty's host may have switched) is not needed: bytes are garbled as they are read
        with self._cond:
            self.host_baud = int(baud)

    def host_write(self, data: bytes) -> None:
        if not data:
            return
        with self._cond:
            self._in += data
            self._busy = True
            self._cond.notify_all()

    def host_read(self, limit: int | None = None) -> bytes:
        with self._cond:
            if not self._out and self._busy:
                self._cond.wait(0.002)  # the reply is being computed: hand it over the moment it exists
            now = time.monotonic()
            out = bytearray()
            while self._out and self._out[0][2] <= now and (limit is None or len(out) < limit):
                baud, data, _ = self._out.pop(0)
                if not same_rate(baud, self.host_baud):
                    data = garble(data, baud, self.host_baud, self.rng)
                room = len(data) if limit is None else limit - len(out)
                out += data[:room]
                if len(data) > room:
                    self._out.insert(0, (self.host_baud, data[room:], now))
            return bytes(out)

    def pending(self) -> int:
        with self._cond:
            now = time.monotonic()
            return sum(len(d) for _, d, t in self._out if t <= now)

    def next_event_time(self) -> float | None:
        with self._cond:
            if self._out:
                return self._out[0][2]
            return time.monotonic() + 0.0005 if self._busy else None

    def tx_drain_time(self) -> float:
        return time.monotonic()

    def set_line(self, name: str, asserted: bool) -> None:
        self.lines[name] = asserted  # no reset wiring: the chip waits in its bootloader

    @property
    def commands(self) -> list[int]:
        return []


def main(argv: list[str] | None = None) -> int:
    """Serve the real bootloader of a T dump on a pty, like `bkbench simulate` (prints the path first):

        python -m tests.realcode.t_bootloader DUMP [--flash-id C84015] [--sr 1c] [--pace INSTR_PER_S]
        python -m tests.realcode.t_bootloader DUMP --bench     # instructions/s and a full backup's wall time
    """
    import argparse
    import signal

    from bkbench.core.sim.pty_bridge import PtyBridge

    p = argparse.ArgumentParser(prog="t_bootloader", description=main.__doc__)
    p.add_argument("dump")
    p.add_argument("--flash-id", default="C84015")
    p.add_argument("--sr", default="1c", help="status register at power-on, hex")
    p.add_argument("--pace", type=float, default=None,
                   help="run the idle loop at this many instructions per second (the idle reset then fires)")
    p.add_argument("--bench", action="store_true")
    args = p.parse_args(argv)
    dump = open(args.dump, "rb").read()
    jedec = tuple(bytes.fromhex(args.flash_id))
    dev = RealTDevice(dump, jedec=jedec, sr=int(args.sr, 16), pace=args.pace)  # type: ignore[arg-type]
    if args.bench:
        return _bench(dev, dump)
    bridge = PtyBridge(dev).start()
    print(bridge.path, flush=True)
    print(f"real {dev.boot.version} bootloader of {args.dump} under Unicorn; Ctrl-C quits", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        bridge.stop()
        dev.close()
    return 0


def _bench(dev: RealTDevice, dump: bytes) -> int:
    from bkbench.core.session import Session
    from bkbench.core.sim.registry import register

    register("t-bench", dev)
    with Session("sim://@t-bench", baud=921600) as s:
        s.connect()
        i0, w0, t0 = dev.boot.stats.instructions, dev.boot.stats.wall, time.perf_counter()
        data = s.read()
        wall = time.perf_counter() - t0
    dev.close()
    n, cpu = dev.boot.stats.instructions - i0, dev.boot.stats.wall - w0
    print(f"full 2 MiB backup: {wall:.2f} s wall, byte-exact: {data == dump}; {n / 1e6:.1f} M instructions in "
          f"{cpu:.2f} s of emulation = {n / cpu / 1e6:.1f} M instructions/s")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
