"""A simulated BK7231N / BK7231T on the far end of a simulated USB-serial adapter.

Time is real (`time.monotonic`); events are computed lazily when the host reads or writes, so no
thread runs inside the device. Every byte carries the baud it was sent at: bytes received at
another rate arrive garbled, as on a real UART. The chip side follows PROTOCOL-DETAILS.md
Appendix A: reset -> boot window (LinkCheck within `boot_window` s) -> bootloader, else the
application starts and prints its boot log at its own baud.
"""

from __future__ import annotations

import random
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Callable

from ..chips import CHIP_ID_REGISTER, FAMILIES, Dialect
from ..protocol import (
    ERASE_4K,
    ERASE_64K,
    LINK_CHECK_REPLY_CODE,
    Cmd,
    CommandParser,
    LongCmd,
    encode_response,
)
from . import bootlog, scenarios
from .adapter import SimAdapter
from .efuse import EFUSE_CTRL, EFUSE_OPTR, Efuse, default_efuse
from .faults import FaultInjector, FaultPlan
from .flash import NorFlash
from .identity import DEFAULT_DIALECT, bootloader_at
from .rom import Rom
from .synth import identity_registers
from .timing import Timing

SCENARIOS = ("bootloader", "app-running", "silent", "loaded-rx", "wrong-baud", "zero-flash", "echo") + scenarios.NAMES
WIRINGS = ("none", "rts", "dtr")
LINK_BAUD = 115200
T_REFUSE_BELOW = 0x11000  # BASIC_BEKEN (no real code run): every flash command below the app
# The Tuya T bootloader, as run under an emulator (REALCODE.md B.3-B.5): Read4K, FlashWrite and FlashErase
# are refused below 0x10000 (erase with a signed compare, so also from 0x80000000); FlashWrite4K below
# 0x20E0, and that refusal echoes 0x20E0 whatever the host sent.
T_LIMIT = 0x10000
T_WRITE4K_LIMIT = 0x20E0
STATUS_REFUSED = 6
SYS_RESET = 0x70  # short command, payload "SEAN": watchdog reset, no reply (Beken bootloader source)
SYS_RESET_MAGIC = b"SEAN"
ERASE_32K = 0x52
ERASE_SIZES = {ERASE_4K: 0x1000, ERASE_32K: 0x8000, ERASE_64K: 0x10000}
# A frame whose bytes stop arriving for this long is abandoned, so its remainder cannot swallow the
# next command (the Beken bootloader's receive timeout; its exact value is unknown).
INTER_BYTE_GAP = 0.1
N_STOCK_SR = 0x4004  # BP0 + CMP, as read from a stock TH25Q16HB (PROTOCOL-DETAILS.md 5.1)
T_PROTECT_SR = 0x001C
# The T bootloader's own flash-ID table (REALCODE.md A, read from both bootloaders at 0xC4A0): SR width and
# the value CheckCRC protects with (BP mask << 2). IDs not in it get the default entry, which never protects.
T_FLASH_TABLE: dict[int, tuple[int, int]] = {
    0x1C7016: (1, 0x7C), 0x1C7015: (1, 0x7C), 0x0B4014: (2, 0x7C), 0x0B4015: (2, 0x7C), 0x0B4016: (2, 0x7C),
    0x0E4016: (2, 0x7C), 0xC84015: (2, 0x7C), 0xC84016: (2, 0x7C), 0x204016: (2, 0x7C), 0xC22315: (1, 0x3C),
    0xEF4016: (2, 0x7C), 0xEF4017: (2, 0x7C), 0x856016: (2, 0x7C),
}
T_FLASH_TABLE_105 = {0x0B4017: (2, 0x14)}  # only in 1.0.5's table
T_CRC_BYTES_PER_S = 400_000.0  # how long an absurd CheckCRC keeps the chip busy (PROTOCOL.md 2)
DEFAULT_JEDEC = {0x200000: (0xEB, 0x60, 0x15), 0x400000: (0xC8, 0x40, 0x16), 0x100000: (0x85, 0x60, 0x14)}
# A T plays a GD25Q16 by default: a part in its bootloader's table, so CheckCRC protects it as on the chips
# the table was written for (with the N default TH25Q16, not in the table, no CheckCRC would ever protect).
T_DEFAULT_JEDEC = (0xC8, 0x40, 0x15)


@dataclass
class Chunk:
    t: float  # when the last byte reaches the host
    baud: int
    data: bytes


def detect_dialect(flash: bytes, chip: str) -> tuple[Dialect, str | None]:
    bl = bootloader_at(flash)
    if bl is not None:
        return bl.dialect, bl.version
    fam = FAMILIES.get(chip)
    return DEFAULT_DIALECT.get(chip, fam.dialect if fam else Dialect.BASIC_TUYA), None


def garble(data: bytes, sent_baud: int, seen_baud: int, rng: random.Random) -> bytes:
    """Bytes framed at one rate and sampled at another: wrong length, wrong values."""
    n = max(1, round(len(data) * seen_baud / sent_baud)) if data else 0
    return bytes(rng.choice((0x00, 0x80, 0xF8, 0xFE, 0xE0, 0x1C, rng.randrange(256))) for _ in range(n))


class SimDevice:
    def __init__(
        self,
        flash: bytes,
        chip: str = "BK7231N",
        scenario: str = "bootloader",
        wiring: str = "none",
        timing: Timing | None = None,
        faults: FaultPlan | None = None,
        boot_window: float = 0.3,
        idle_timeout: float | None = None,
        seed: int = 0,
        jedec: tuple[int, int, int] | None = None,
        sr: int | None = None,
        max_baud: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        efuse: bytes | None = None,
        variant: str | None = None,
        adapter: SimAdapter | None = None,
    ) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
        if wiring not in WIRINGS:
            raise ValueError(f"unknown wiring {wiring!r}; choose one of {', '.join(WIRINGS)}")
        self.chip = chip
        self.variant = variant or chip
        self.scenario = scenario
        self.wiring = wiring
        self.timing = timing or Timing()
        self.faults = FaultInjector(faults or FaultPlan(seed=seed))
        self.behaviour = scenarios.behaviour_for(scenario, seed)  # board faults (core/sim/scenarios.py)
        self.boot_window = boot_window
        self.idle_timeout = idle_timeout
        self.clock = clock
        self.rng = random.Random(seed)
        self.max_baud = max_baud  # the adapter garbles every rate above this
        self.adapter = adapter  # a modelled USB-serial family (core/sim/adapter.py): latency, divisor error
        self.dialect, self.boot_version = detect_dialect(flash, chip)
        bl = bootloader_at(flash)
        self.boot_reports = bl.reports if bl is not None else None
        size = len(flash)
        default_sr = N_STOCK_SR if self.dialect is Dialect.FULL else T_PROTECT_SR
        self.efuse = Efuse(efuse if efuse is not None else default_efuse(self.variant))
        self.rom = Rom(chip)
        self.flash = NorFlash(
            flash,
            jedec or (T_DEFAULT_JEDEC if self.dialect is Dialect.BASIC_TUYA and size == 0x200000 else
                      DEFAULT_JEDEC.get(size, (0xEB, 0x60, size.bit_length() - 1))),
            default_sr if sr is None else sr,
            zero=scenario == "zero-flash",
        )
        self._stock_app_crc = zlib.crc32(self.flash.read(0x11000, 0x119000))  # the app as loaded
        self.lock = threading.RLock()
        self.parser = CommandParser()
        self.out: list[Chunk] = []
        self.host_baud = LINK_BAUD
        # (time, rate) of the host's recent rate changes: a byte is decoded at the rate the host's UART had
        # when it arrived, not when the host got round to reading it (a host that switches late loses it).
        self._host_bauds: list[tuple[float, int]] = [(float("-inf"), LINK_BAUD)]
        self.chip_baud = LINK_BAUD
        self.app_baud = 921600 if scenario == "wrong-baud" else LINK_BAUD
        self._baud_switch: tuple[float, int] | None = None
        self._rx_free = 0.0
        self._tx_free = 0.0
        self._busy = 0.0
        self._last_rx = 0.0
        # Tuya bootloader protection state (REALCODE.md B.8): a LinkCheck arms a one-shot unprotect for the
        # next erase; 1.0.4 remembers a CheckCRC until the next reset and then protects instead.
        self.marked = False
        self.crc_seen = False
        self.linked = False  # a LinkCheck since the last reset (the T idle reset counts only then)
        self.registers: dict[int, int] = identity_registers(chip)  # chip ID from core/chips.py
        self.id_registers = frozenset(self.registers) | {CHIP_ID_REGISTER}
        self.lines = {"dtr": False, "rts": False}
        self.cen_low = False
        self.powered = True
        self.resets = 0
        self.reset_log: list[float] = []  # CEN releases, for reset-strategy tests
        self.line_log: list[tuple[float, str, bool]] = []
        self.commands: list[int] = []
        self.crc_bytes = 0  # bytes hashed by CheckCRC, for tests that count the chip's work
        self.disconnected = False
        self._host_bytes = 0
        self._app_text = ""
        self._next_heartbeat = 0.0
        self._heartbeat = bootlog.HEARTBEAT.encode()  # the running firmware's periodic line
        now = clock()
        self.window_end = float("inf")
        if scenario in ("app-running", "wrong-baud"):
            self.state = "app"
            self._start_app(now)
        elif scenario == "silent":
            self.state = "app"
        else:
            self.state = "window"  # waiting in the bootloader, as after a well-timed reset
        self.behaviour.start(self, now)

    # ------------------------------------------------------------------ host side
    def set_host_baud(self, baud: int, since: float | None = None) -> None:
        """The host's UART now runs at `baud`; `since`: the earliest it may have switched (a pty bridge
        only sees the change when it next looks)."""
        with self.lock:
            now = self.clock()
            self._advance(now)
            self.host_baud = int(baud)
            since = now if since is None else max(min(since, now), self._host_bauds[-1][0])
            self._host_bauds = self._host_bauds[-15:] + [(since, self.host_baud)]

    def _effective_host_baud(self, baud: int | None = None) -> int:
        baud = self.host_baud if baud is None else baud
        if self.max_baud and baud > self.max_baud:
            return -1  # the adapter cannot produce this rate: everything is garbled
        return baud

    def _host_baud_at(self, t: float) -> int:
        return next((b for since, b in reversed(self._host_bauds) if since <= t), self.host_baud)

    def host_write(self, data: bytes) -> None:
        with self.lock:
            now = self.clock()
            self._advance(now)
            if self.scenario == "silent" or not data:
                return
            if self.scenario == "echo":
                self.out.append(Chunk(now + self.timing.wire(len(data), self.host_baud), self.host_baud, data))
                return
            start = max(now, self._rx_free)
            arrive = start + self.timing.wire(len(data), self.host_baud)
            self._rx_free = arrive
            self._advance(arrive)
            if self._effective_host_baud() != self.chip_baud or self._adapter_garbles(self.host_baud):
                data = garble(data, self.host_baud, self.chip_baud, self.rng)
            if self.scenario == "loaded-rx":
                # A button / meter on RX1 loads the line: bits flip at random.
                data = self._loaded(data)
            data = self.faults.corrupt(data, "rx")
            data = self.behaviour.rx(self, data, arrive)
            if self.parser.partial and start - self._last_rx > INTER_BYTE_GAP:
                self.parser.reset()  # the rest of that frame never came: start hunting afresh
            self._last_rx = arrive
            self._receive(data, arrive)

    def _loaded(self, data: bytes) -> bytes:
        buf = bytearray(data)
        for i in range(len(buf)):
            if self.rng.random() < 0.04:
                buf[i] ^= 1 << self.rng.randrange(8)
        return bytes(buf)

    def host_read(self, limit: int | None = None) -> bytes:
        """Bytes that have reached the host by now."""
        with self.lock:
            now = self.clock()
            self._advance(now)
            if self.disconnected:
                return b""
            out = bytearray()
            keep: list[Chunk] = []
            for ch in self.out:
                if ch.t <= now and (limit is None or len(out) < limit):
                    data = ch.data
                    then = self._host_baud_at(ch.t)
                    if ch.baud != self._effective_host_baud(then) or self._adapter_garbles(ch.baud):
                        data = garble(data, ch.baud, then, self.rng)
                    out += data
                else:
                    keep.append(ch)
            self.out = keep
            if limit is not None and len(out) > limit:
                # Put the excess back at the front, already decoded at this baud.
                self.out.insert(0, Chunk(now, self._effective_host_baud(), bytes(out[limit:])))
                del out[limit:]
            fp = self.faults.plan
            if fp.disconnect_after is not None and self._host_bytes + len(out) >= fp.disconnect_after:
                self.disconnected = True
                out = out[: max(0, fp.disconnect_after - self._host_bytes)]
            self._host_bytes += len(out)
            return bytes(out)

    def _adapter_garbles(self, baud: int) -> bool:
        return self.adapter is not None and self.adapter.garbles(baud)

    def _to_host(self, end: float, nbytes: int, baud: int) -> float:
        """When bytes the chip finished sending at `end` reach the host (USB / adapter latency)."""
        if self.adapter is None:
            return end + self.timing.latency()
        return self.adapter.deliver(end, nbytes, baud, self.timing)

    def pending(self) -> int:
        with self.lock:
            now = self.clock()
            self._advance(now)
            return sum(len(c.data) for c in self.out if c.t <= now)

    def next_event_time(self) -> float | None:
        with self.lock:
            times = [c.t for c in self.out]
            if self.state == "window" and self.window_end != float("inf"):
                times.append(self.window_end)
            if self.state == "app" and self._next_heartbeat:
                times.append(self._next_heartbeat)
            return min(times) if times else None

    def tx_drain_time(self) -> float:
        """When everything the host wrote has left the adapter (for flush())."""
        return self._rx_free

    # ------------------------------------------------------------------ reset lines
    def set_line(self, name: str, asserted: bool) -> None:
        with self.lock:
            now = self.clock()
            self._advance(now)
            if self.lines.get(name) == asserted:
                return
            self.lines[name] = asserted
            self.line_log.append((now, name, asserted))
            if self.wiring == name:
                self.set_cen(not asserted, now)

    def set_cen(self, high: bool, now: float | None = None) -> None:
        """CEN is the chip's reset input: low holds it in reset, the rising edge boots it."""
        with self.lock:
            now = self.clock() if now is None else now
            self._advance(now)
            if not high:
                self.cen_low = True
                self._enter_reset(now, hold=True)
            elif self.cen_low:
                self.cen_low = False
                self._boot(now)

    def reset(self) -> None:
        """A CEN pulse (user shorting CEN to GND) or a power cycle."""
        with self.lock:
            now = self.clock()
            self._advance(now)
            self._enter_reset(now, hold=True)
            self._boot(now)

    def power(self, on: bool) -> None:
        with self.lock:
            now = self.clock()
            self._advance(now)
            self.powered = on
            if on:
                self.flash.status.power_cycle()
                self._boot(now)
            else:
                self._enter_reset(now, hold=True)

    # ------------------------------------------------------------------ chip internals
    def _enter_reset(self, t: float, hold: bool) -> None:
        self.state = "reset"
        self.out = [c for c in self.out if c.t <= t]
        self.parser.reset()
        self._baud_switch = None
        self.chip_baud = LINK_BAUD

    def _boot(self, t: float) -> None:
        if self.scenario == "silent" or not self.powered:
            return
        self.resets += 1
        self.reset_log.append(t)
        self.state = "window"
        self.window_end = t + self.boot_window
        self.chip_baud = LINK_BAUD
        self._busy = self._tx_free = t
        self.marked = self.crc_seen = self.linked = False
        if self.dialect is Dialect.BASIC_BEKEN:
            self.flash.sr = T_PROTECT_SR
        # On T the bootloader leaves the status register as it finds it: a reboot from the bootloader keeps
        # whatever the last session wrote (REALCODE.md, golden "Reboot"); the stock app protects it again.

    def _start_app(self, t: float) -> None:
        self.state = "app"
        self.chip_baud = self.app_baud
        if self.dialect is Dialect.FULL and not self.flash.zero:
            self.flash.sr = N_STOCK_SR  # the stock application protects its flash again
        elif self._tuya() and not self.flash.zero:
            self.flash.sr = T_PROTECT_SR  # assumed as on N: the stock app leaves its flash protected
        began = self.clock()
        text = self._app_log()
        self._heartbeat = bootlog.heartbeat_for(text).encode()
        # Working out what firmware is in flash may take a moment (decryption); the log starts after it,
        # and is paced by the UART whatever the timing model says: the doctor reads its rhythm.
        tt = t + (self.clock() - began)
        for line in text.splitlines(keepends=True):
            data = line.encode("latin-1", "replace")
            tt += len(data) * 10.0 / self.app_baud
            self.out.append(Chunk(tt, self.app_baud, data))
        self._next_heartbeat = tt + 2.0
        self.behaviour.app_started(self, t)

    def _app_log(self) -> str:
        if self.flash.zero:
            return ""
        data = bytes(self.flash.data)
        loaded = zlib.crc32(data[0x11000:0x12A000]) == self._stock_app_crc
        return bootlog.device_log(data, self.chip, self.boot_string(), self.flash.jedec, from_end=loaded,
                                  store=self._app_flash_write)

    def _app_flash_write(self, addr: int, data: bytes) -> None:
        """The application rewrites a sector of its own flash (OpenBK saving its config); like the real
        firmware it lifts the protection for that itself."""
        self.flash.data[addr : addr + len(data)] = data

    def boot_string(self) -> str:
        """What the bootloader prints first (`V:...`): BK7231N_<ver> from the ROM, BK7231S_<ver> on T (as its
        BootVersion answers, which can differ from the CRC table's name: REALCODE.md B.1)."""
        if self._full():
            return f"{self.chip}_{self.boot_version or '1.0.1'}"
        if self.boot_reports:
            return self.boot_reports
        return f"BK7231S_{self.boot_version or '1.0.5'}"

    def _advance(self, now: float) -> None:
        if self._baud_switch and now >= self._baud_switch[0]:
            self.chip_baud = self._baud_switch[1]
            self._baud_switch = None
        if self.state == "window" and now >= self.window_end:
            self._start_app(self.window_end)
        if (
            self.state == "boot"
            and self.idle_timeout is not None
            and (self.linked or not self._tuya())
            and now - max(self._last_rx, self._busy) > self.idle_timeout
        ):
            at = max(self._last_rx, self._busy) + self.idle_timeout
            if self._tuya():  # a watchdog reboot: banner, boot window, then the app (REALCODE.md B.11)
                self._enter_reset(at, hold=False)
                self._boot(at)
                if now >= self.window_end:
                    self._start_app(self.window_end)
            else:
                self._start_app(at)
        if self.state == "app" and self._next_heartbeat and now >= self._next_heartbeat:
            self.out.append(Chunk(self._next_heartbeat, self.app_baud, self._heartbeat))
            self._next_heartbeat += 5.0
        self.behaviour.advance(self, now)

    def _send(self, reply: bytes, ready: float) -> None:
        for frame in self.faults.reply(reply):  # whole-frame faults: repeated, stale, held, dropped
            stall = self.faults.stall()
            start = max(ready + stall, self._tx_free)
            end = start + self.timing.wire(len(frame), self.chip_baud)
            self._tx_free = end
            frame = self.faults.noise() + self.faults.corrupt(frame, "tx")
            self.out.append(Chunk(self._to_host(end, len(frame), self.chip_baud), self.chip_baud, frame))

    def _receive(self, data: bytes, t: float) -> None:
        if self.state in ("reset",) or not self.powered:
            return
        if self.state == "app":
            self._app_input(data, t)
            return
        for code, long, payload in self.parser.feed(data):
            if self.state == "window":
                # The Tuya bootloader answers every command in its boot window and stays (REALCODE.md A:
                # any received byte keeps it in its loop); the ROM waits for a LinkCheck.
                if (not long and code in (Cmd.LINK_CHECK, Cmd.STAY_ROM)) or self._tuya():
                    self.state = "boot"
                    self.window_end = float("inf")
                else:
                    continue
            if self.state != "boot":
                return
            if self.faults.spontaneous_reset():
                self._enter_reset(t, hold=False)
                self._boot(t)
                return
            if self.behaviour.command(self, code, long, t):
                return
            self.commands.append(code | (0x100 if long else 0))
            for frame, delay in self.faults.command():  # late copies of old replies, before this answer
                self.out.append(Chunk(t + (delay if self.timing.enabled else 0.0), self.chip_baud, frame))
            ready = max(t, self._busy) + self.timing.overhead()
            self._busy = ready
            if long:
                self._long(code, payload, ready)
            else:
                self._short(code, payload, ready)

    def _app_input(self, data: bytes, t: float) -> None:
        # OpenBK's command line reboots on "reboot"; the stock Tuya app ignores the UART.
        self._app_text = (self._app_text + data.decode("latin-1"))[-64:]
        if "reboot\n" in self._app_text or "reboot\r" in self._app_text:
            self._app_text = ""
            if zlib.crc32(self.flash.read(0x11000, 0x119000)) != self._stock_app_crc:
                self._enter_reset(t, hold=False)
                self._boot(t + 0.05)

    # ------------------------------------------------------------------ commands
    def _full(self) -> bool:
        return self.dialect is Dialect.FULL

    def _tuya(self) -> bool:
        return self.dialect is Dialect.BASIC_TUYA

    def _t_table(self) -> tuple[int, int] | None:
        """(SR bytes, protect value) of this flash in the bootloader's table, None for the default entry."""
        j = self.flash.jedec
        jid = (j[0] << 16) | (j[1] << 8) | j[2]
        if self.boot_reports == "BK7231S_1.0.5" and jid in T_FLASH_TABLE_105:
            return T_FLASH_TABLE_105[jid]
        return T_FLASH_TABLE.get(jid)

    def _t_write_sr(self, value: int) -> None:
        width = (self._t_table() or (2, 0))[0]
        self.flash.status.write(0x01, value.to_bytes(width, "little"), 0.0)

    def _short(self, code: int, p: bytes, t: float) -> None:
        if code == Cmd.LINK_CHECK:
            self.linked = True
            if self._tuya():
                self.marked = True  # arms the one-shot for the next erase (REALCODE.md B.8)
            elif not self._full():
                self.marked = self.flash.protected
            self._send(encode_response(LINK_CHECK_REPLY_CODE, b"\x00"), t)
        elif code == Cmd.STAY_ROM and self._full() and p[:1] == b"\x55":
            self._send(encode_response(Cmd.STAY_ROM, b"\x55"), t)
        elif code == Cmd.READ_REG and self._full() and len(p) >= 4:
            (addr,) = struct.unpack_from("<I", p)
            self._send(encode_response(Cmd.READ_REG, p[:4] + struct.pack("<I", self._read_reg(addr))), t)
        elif code == Cmd.WRITE_REG and self._full() and len(p) >= 8:
            addr, value = struct.unpack_from("<II", p)
            self._write_reg(addr, value)
            self._send(encode_response(Cmd.WRITE_REG, p[:8]), t)
        elif code == Cmd.REBOOT and p[:1] == b"\xa5":
            self._enter_reset(t, hold=False)
            self._boot(t + 0.001)
        elif code == Cmd.REBOOT and self._full() and p:
            self._send(encode_response(Cmd.REBOOT, p[:1]), t)  # wrong magic: echoed, no reboot
        elif code == SYS_RESET and self._full():
            if p[:4] == SYS_RESET_MAGIC:
                self._enter_reset(t, hold=False)  # watchdog reset, no reply
                self._boot(t + 0.005)
            else:
                self._send(encode_response(SYS_RESET, p[:4]), t)
        elif code == Cmd.SET_BAUD and len(p) >= 5:
            baud, delay = struct.unpack_from("<IB", p)
            switch_at = t + delay / 1000.0
            echo_at = switch_at
            if self._tuya():
                # the Tuya code reprograms UART1 first, then waits (delay + 1) ticks of its 2 ms timer before
                # it echoes (REALCODE.md B.9)
                switch_at, echo_at = t, t + (delay + 1) * 0.002
            self._baud_switch = (switch_at, baud)
            self._tx_free = max(self._tx_free, echo_at)
            self._busy = echo_at
            # the echo leaves at the new rate once the chip has switched
            frame = encode_response(Cmd.SET_BAUD, p[:5])
            end = echo_at + self.timing.wire(len(frame), baud)
            self._tx_free = end
            self.out.append(Chunk(self._to_host(end, len(frame), baud), baud, frame))
        elif code == Cmd.CHECK_CRC and len(p) >= 8 and self._tuya():
            self._t_check_crc(p, t)
        elif code == Cmd.CHECK_CRC and len(p) >= 8:
            start, end = struct.unpack_from("<II", p)
            length = end - start + (1 if self._full() else 0)
            length = max(0, length)
            data = self.flash.read(start, length)
            self.crc_bytes += length
            ready = t + self.timing.crc(length)
            self._busy = ready
            raw = zlib.crc32(data) ^ 0xFFFFFFFF
            if not self._full():
                self.flash.sr = T_PROTECT_SR  # re-protect, without marking (PROTOCOL.md 5)
            self._send(encode_response(Cmd.CHECK_CRC, struct.pack("<I", raw)), ready)
        elif code == Cmd.BOOT_VERSION:
            if self.dialect is Dialect.BASIC_TUYA:
                # the string and three NULs of its buffer (REALCODE.md B.1)
                self._send(encode_response(Cmd.BOOT_VERSION, self.boot_string().encode() + bytes(3)), t)
            elif self._full():
                self._send(encode_response(Cmd.BOOT_VERSION, b"\x07"), t)
        # anything else: the bootloaders stay silent

    def _t_check_crc(self, p: bytes, t: float) -> None:
        """Tuya CheckCRC (REALCODE.md B.2): whole 256-byte blocks, floor((end - start + 1) / 256) of them from
        `start` (so a range under 255 bytes answers the CRC of nothing, ff ff ff ff); then it writes the
        protect value to the SR if the flash is in its table. An end before the start wraps the count to
        millions of blocks: the chip is busy for hours and answers nothing."""
        start, end = struct.unpack_from("<II", p)
        blocks = ((end - start + 1) & 0xFFFFFFFF) // 256
        length = blocks * 256
        if length > 16 * self.flash.size:
            self._busy = t + length / T_CRC_BYTES_PER_S
            return
        raw = zlib.crc32(self.flash.read(start, length)) ^ 0xFFFFFFFF
        self.crc_bytes += length
        ready = t + self.timing.crc(length)
        self._busy = ready
        entry = self._t_table()
        if entry is not None:
            self._t_write_sr(entry[1])
        self.crc_seen = True
        self._send(encode_response(Cmd.CHECK_CRC, struct.pack("<I", raw)), ready)

    def _t_erase(self, p: bytes, t: float) -> None:
        """Tuya FlashErase (REALCODE.md B.4, B.7, B.8)."""
        size_code = p[0]
        (addr,) = struct.unpack_from("<I", p, 1)
        if addr < T_LIMIT or addr >= 0x80000000:  # a signed compare against 0x10000
            self._send(encode_response(LongCmd.FLASH_ERASE, bytes([STATUS_REFUSED]) + p[:5], True), t)
            return
        if self.marked:  # the first erase after a LinkCheck
            self.marked = False
            entry = self._t_table()
            if self.boot_reports == "BK7231S_1.0.4" and self.crc_seen and entry is not None:
                self._t_write_sr(entry[1])  # 1.0.4: after a CheckCRC this boot, it protects instead
            elif self.flash.sr & 0x7C:
                self._t_write_sr(0)
        size = {ERASE_4K: 0x1000, ERASE_64K: 0x10000}.get(size_code)
        ready = t
        if size is not None:  # any other size code is acknowledged and erases nothing
            self.flash.erase(addr, size)
            ready = t + self.timing.erase(size)
        self._busy = ready
        self._send(encode_response(LongCmd.FLASH_ERASE, b"\x00" + p[:5], True), ready)

    def _read_reg(self, addr: int) -> int:
        if addr == EFUSE_CTRL:
            return self.efuse.read_ctrl()
        if addr == EFUSE_OPTR:
            return self.efuse.read_optr()
        if self.rom.covers(addr):
            return self.rom.read_word(addr)
        return self.registers.get(addr, 0)

    def _write_reg(self, addr: int, value: int) -> None:
        if addr == EFUSE_CTRL:
            self.efuse.write_ctrl(value)
        elif self.rom.covers(addr) or addr in self.id_registers:
            pass  # read-only
        else:
            self.registers[addr] = value

    def _refused(self, addr: int) -> bool:
        if self._tuya():
            return addr < T_LIMIT
        return self.dialect is not Dialect.FULL and addr < T_REFUSE_BELOW

    def _long(self, code: int, p: bytes, t: float) -> None:
        full = self._full()
        if code == LongCmd.FLASH_READ_4K and len(p) >= 4:
            (addr,) = struct.unpack_from("<I", p)
            if self._refused(addr):
                self._send(encode_response(code, bytes([STATUS_REFUSED]) + p[:4] + b"\x00", True), t)
                return
            self._send(encode_response(code, b"\x00" + p[:4] + self.flash.read(addr, 0x1000), True), t)
        elif code == LongCmd.FLASH_WRITE_4K and len(p) >= 4:
            (addr,) = struct.unpack_from("<I", p)
            data = p[4:]
            if self._tuya() and addr < T_WRITE4K_LIMIT:
                echo = struct.pack("<I", T_WRITE4K_LIMIT)  # the refusal names its limit, not the host's address
                self._send(encode_response(code, bytes([STATUS_REFUSED]) + echo, True), t)
                return
            if not self._tuya() and self._refused(addr):
                self._send(encode_response(code, bytes([STATUS_REFUSED]) + p[:4], True), t)
                return
            self.flash.program_page(addr, data)
            ready = t + self.timing.program(len(data))
            self._busy = ready
            self._send(encode_response(code, b"\x00" + p[:4], True), ready)
        elif code == LongCmd.FLASH_WRITE and len(p) >= 5:
            (addr,) = struct.unpack_from("<I", p)
            data = p[4:]
            if self._refused(addr):
                count = bytes([len(data) & 0xFF]) if self._tuya() else b"\x00"  # T names the length (B.6)
                self._send(encode_response(code, bytes([STATUS_REFUSED]) + p[:4] + count, True), t)
                return
            self.flash.program(addr, data)
            ready = t + self.timing.program(len(data))
            self._busy = ready
            # The count is one byte: 256 goes out as 0 (Beken bootloader source: `len - 5` into a u8).
            self._send(encode_response(code, b"\x00" + p[:4] + bytes([len(data) & 0xFF]), True), ready)
        elif code == LongCmd.FLASH_ERASE and len(p) >= 5 and self._tuya():
            self._t_erase(p, t)
        elif code == LongCmd.FLASH_ERASE and len(p) >= 5:
            size_code = p[0]
            (addr,) = struct.unpack_from("<I", p, 1)
            if self._refused(addr):
                self._send(encode_response(code, bytes([STATUS_REFUSED]) + p[:5], True), t)
                return
            size = ERASE_SIZES.get(size_code)
            if size is None:
                return  # unknown size code: the bootloader drops the command without a reply
            if not full and self.marked:
                self.flash.sr = 0
                self.marked = False
            self.flash.erase(addr, size)
            ready = t + self.timing.erase(size)
            self._busy = ready
            self._send(encode_response(code, b"\x00" + p[:5], True), ready)
        elif not full:
            return  # BASIC dialects answer only the commands above
        elif code == LongCmd.FLASH_GET_MID:
            jedec = (0, 0, 0) if self.flash.zero else self.flash.jedec
            self._send(encode_response(code, b"\x00\x9f" + bytes(jedec), True), t)
        elif code == LongCmd.FLASH_READ_SR and p:
            op = p[0]
            value = 0 if self.flash.zero else self.flash.status.read(op, t)
            self._send(encode_response(code, bytes([0, op, value]), True), t)
        elif code == LongCmd.FLASH_WRITE_SR and len(p) >= 2:
            if not self.flash.zero:
                self.flash.status.write(p[0], p[1:3], t)
            self._send(encode_response(code, b"\x00" + p[:3], True), t)
        elif code == LongCmd.FLASH_READ and len(p) >= 5:
            # Length: u8 in the Beken bootloader source, u16 per PROTOCOL-DETAILS 2.2.11; take both.
            (addr,) = struct.unpack_from("<I", p)
            length = p[4] if len(p) == 5 else struct.unpack_from("<H", p, 4)[0]
            self._send(encode_response(code, b"\x00" + p[:4] + self.flash.read(addr, length), True), t)
        elif code == LongCmd.FLASH_ERASE_ALL and p:
            self.flash.erase_all()
            ready = t + self.timing.erase(self.flash.size) * (self.flash.size // 0x10000)
            self._busy = ready
            self._send(encode_response(code, bytes([0, p[0]]), True), ready)
        elif code == LongCmd.FLASH_ERASE_4K and len(p) >= 4:
            (addr,) = struct.unpack_from("<I", p)
            self.flash.erase(addr, 0x1000)
            ready = t + self.timing.erase(0x1000)
            self._busy = ready
            self._send(encode_response(code, b"\x00" + p[:4], True), ready)
