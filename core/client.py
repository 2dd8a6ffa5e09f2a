"""Low-level host side of the protocol: one method per chip command, with echo and status checks.

Addresses passed in are logical (0 .. flash size). Once the flash size is known every address goes
out as `addr + size` (the wrap-around "boot protection bypass"): the flash ignores the extra bit
while the Tuya bootloader's range check does not, so the bootloader area can be read on BK7231T.
"""

from __future__ import annotations

import struct
import time
import zlib
from dataclasses import dataclass, field

import serial

from .chips import (
    BOOTLOADERS,
    CHIP_ID_REGISTER,
    CHIP_IDS,
    DEVICE_ID_REGISTER,
    EFUSE_CTRL,
    EFUSE_OPTR,
    FAMILIES,
    ZERO_FLASH_BOOT_CRC,
    Bootloader,
    Dialect,
    families_for_id,
    identify,
    key_name,
)
from .errors import BkError, LinkLost, OperationCancelled, PortError, ProtocolError
from .flash_ids import FlashPart, lookup
from .ops.events import CancelToken, EventSink, null_sink
from .protocol import (
    ERASE_4K,
    ERASE_64K,
    LINK_CHECK_REPLY_CODE,
    Cmd,
    LongCmd,
    Response,
    ResponseScanner,
    encode,
)

LINK_BAUD = 115200


class MisdirectedCommand(ProtocolError):
    """The chip echoed another address (or erase size) than we sent: a byte of our command was
    damaged on the line and the chip may have erased or programmed the wrong place."""

    def __init__(self, message: str, addr: int, size: int) -> None:
        super().__init__(message)
        self.addr, self.size = addr, size
SECTOR = 0x1000
CRC_SPEED = 400_000  # bytes/s the chip hashes (bk7231tools' figure for BK7231N)


@dataclass
class ChipInfo:
    chip: str
    dialect: Dialect
    bootloader: str | None
    boot_crc: int
    chip_id: int | None = None
    boot_version: str | None = None
    flash_id: tuple[int, int, int] | None = None
    flash_name: str | None = None
    flash_size: int = 0x200000
    mac: str | None = None
    baud: int = LINK_BAUD
    warnings: list[str] = field(default_factory=list)
    code_key: str | None = None  # eFuse code key as read (N / M twins only)

    def to_json(self) -> dict:
        return {
            "chip": self.chip,
            "dialect": self.dialect.value,
            "bootloader": self.bootloader,
            "boot_crc": f"0x{self.boot_crc:08X}",
            "chip_id": None if self.chip_id is None else f"0x{self.chip_id:X}",
            "boot_version": self.boot_version,
            "flash_id": None if self.flash_id is None else "".join(f"{b:02X}" for b in self.flash_id),
            "flash_name": self.flash_name,
            "flash_size": self.flash_size,
            "mac": self.mac,
            "baud": self.baud,
            "warnings": list(self.warnings),
            "code_key": self.code_key,
        }


@dataclass
class LinkStats:
    """What arrived while linking, for the link doctor."""

    attempts: int = 0
    rx: bytearray = field(default_factory=bytearray)
    replies: int = 0
    elapsed: float = 0.0

    def add_rx(self, data: bytes) -> None:
        self.rx += data
        if len(self.rx) > 65536:
            del self.rx[: len(self.rx) - 65536]


class BkClient:
    IDLE_GAP = 0.15  # s of silence inside a frame that means bytes were lost (USB adapters batch <= 16 ms)

    def __init__(self, port, sink: EventSink = null_sink, timeout: float = 1.0) -> None:
        self.port = port
        self.sink = sink
        self.timeout = timeout
        self.scanner = ResponseScanner()
        self.dialect: Dialect | None = None
        self.flash_size: int | None = None
        self.bypass = True
        self.part: FlashPart | None = None
        self.link_stats = LinkStats()

    # ------------------------------------------------------------------ framing
    def _wire(self, addr: int) -> int:
        return addr + self.flash_size if (self.bypass and self.flash_size) else addr

    def _logical(self, wire: int) -> int:
        return wire % self.flash_size if self.flash_size else wire

    def drain(self) -> None:
        self.scanner.clear()
        try:
            self.port.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            raise PortError(f"the serial adapter stopped working ({exc}); was it unplugged?") from exc
        except Exception:  # noqa: BLE001 - some URL handlers lack it
            pass

    def _read_some(self, want: int) -> bytes:
        try:
            n = max(1, want, self.port.in_waiting)
            return self.port.read(n)
        except (serial.SerialException, OSError) as exc:
            raise PortError(f"the serial adapter stopped working ({exc}); was it unplugged?") from exc

    def _write(self, frame: bytes) -> None:
        try:
            self.port.write(frame)
        except (serial.SerialException, OSError) as exc:
            raise PortError(f"the serial adapter stopped working ({exc}); was it unplugged?") from exc

    def command(
        self,
        code: int,
        payload: bytes = b"",
        long: bool = False,
        timeout: float | None = None,
        reply_code: int | None = None,
        reply_len: int = 0,
        drain: bool = True,
        send: bool = True,
    ) -> Response:
        """Send one command and return its response frame (garbage and foreign frames skipped)."""
        if drain:
            self.drain()
        if send:
            self._write(encode(code, payload, long))
        now = time.monotonic()
        deadline = now + (self.timeout if timeout is None else timeout)
        want = reply_code if reply_code is not None else code
        last_rx = now
        while True:
            frame = self.scanner.find(want, long)
            if frame is not None:
                return frame
            now = time.monotonic()
            if now >= deadline:
                raise ProtocolError(f"no response to command 0x{code:02X} within {timeout or self.timeout:.1f} s")
            if self.scanner.pending and now - last_rx > self.IDLE_GAP:
                # Part of a frame arrived and then the line went quiet: bytes were lost on the way.
                raise ProtocolError(f"incomplete response to command 0x{code:02X} (bytes lost on the line)")
            data = self._read_some(reply_len - self.scanner.pending if reply_len else 1)
            if data:
                last_rx = time.monotonic()
                self.scanner.feed(data)

    # ------------------------------------------------------------------ link
    def link(
        self,
        timeout: float,
        cancel: CancelToken | None = None,
        on_attempt=None,
        window: float = 0.01,
        baud: int = LINK_BAUD,
    ) -> bool:
        """Spam LinkCheck until the chip answers (the user or a reset strategy resets it meanwhile).

        `baud` other than 115200 probes a chip still linked at a faster rate by an earlier session."""
        if self.port.baudrate != baud:
            self.port.baudrate = baud
        frame = encode(Cmd.LINK_CHECK)
        start = time.monotonic()
        stats = self.link_stats
        self.scanner.clear()
        while True:
            if cancel is not None and cancel.cancelled:
                raise OperationCancelled("linking cancelled")
            now = time.monotonic()
            if now - start > timeout:
                stats.elapsed = now - start
                return False
            stats.attempts += 1
            if on_attempt is not None:
                on_attempt(stats.attempts, now - start)
            self.port.write(frame)
            until = time.monotonic() + window
            while time.monotonic() < until:
                data = self.port.read(self.port.in_waiting or 1)
                if data:
                    stats.add_rx(data)
                    self.scanner.feed(data)
                    reply = self.scanner.find(LINK_CHECK_REPLY_CODE, False)
                    if reply is not None and reply.payload[:1] == b"\x00":
                        stats.replies += 1
                        stats.elapsed = time.monotonic() - start
                        self._settle()
                        return True

    def _settle(self) -> None:
        """Let late LinkCheck replies arrive and throw them away."""
        quiet_until = time.monotonic() + 0.02
        while time.monotonic() < quiet_until:
            if self.port.in_waiting:
                self.port.read(self.port.in_waiting)
                quiet_until = time.monotonic() + 0.01
            else:
                time.sleep(0.002)
        self.scanner.clear()

    def relink(self, timeout: float = 0.5) -> None:
        """A quick LinkCheck round on an already linked chip (unlocks protection on BASIC dialects)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self.command(Cmd.LINK_CHECK, reply_code=LINK_CHECK_REPLY_CODE, timeout=0.1)
                if reply.payload[:1] == b"\x00":
                    return
            except ProtocolError:
                if time.monotonic() > deadline:
                    raise ProtocolError("chip stopped answering the link check") from None

    def recover(self) -> None:
        """After a failed exchange: let stray bytes arrive, drop them, and check the chip still answers."""
        time.sleep(0.02)
        self.drain()
        try:
            self.relink(timeout=0.3)
        except ProtocolError:
            raise LinkLost("the chip stopped answering the link check (did it reset or lose power?)") from None

    def set_baudrate(self, baud: int, delay_ms: int = 20) -> None:
        """Switch both ends: the echo arrives at the new rate after the chip's delay."""
        payload = struct.pack("<IB", baud, delay_ms)
        self.drain()
        self.port.write(encode(Cmd.SET_BAUD, payload))
        self.port.flush()
        time.sleep(delay_ms / 2000.0)
        old = self.port.baudrate
        self.port.baudrate = baud
        self.scanner.clear()
        try:
            reply = self.command(Cmd.SET_BAUD, b"", timeout=0.5 + delay_ms / 1000.0, drain=False, send=False)
        except ProtocolError:
            self.port.baudrate = old
            raise ProtocolError(f"chip did not confirm the switch to {baud} baud") from None
        if reply.payload[:5] != payload:
            self.port.baudrate = old
            raise ProtocolError(f"baud switch echo mismatch at {baud} baud")

    # ------------------------------------------------------------------ chip info
    def crc_raw(self, start: int, end: int, timeout: float | None = None) -> int:
        """CheckCRC with wire addresses as given; returns the zlib-convention CRC."""
        span = max(1, end - start)
        t = max(self.timeout, span / CRC_SPEED + 0.5) if timeout is None else timeout
        r = self.command(Cmd.CHECK_CRC, struct.pack("<II", start, end), timeout=t)
        if len(r.payload) < 4:
            raise ProtocolError("short CheckCRC response")
        return struct.unpack_from("<I", r.payload)[0] ^ 0xFFFFFFFF

    def crc(self, start: int, length: int) -> int:
        """CRC-32 of flash[start:start+length] as the chip computes it (dialect end semantics applied)."""
        assert self.dialect is not None
        wire = self._wire(start)
        end = wire + length - (1 if self.dialect.crc_end_inclusive else 0)
        value = self.crc_raw(wire, end)
        if self.dialect.crc_locks_protection:
            self.relink()
        return value

    def read_reg(self, addr: int) -> int:
        r = self.command(Cmd.READ_REG, struct.pack("<I", addr))
        if r.payload[:4] != struct.pack("<I", addr) or len(r.payload) < 8:
            raise ProtocolError(f"ReadReg 0x{addr:08X}: echo mismatch")
        return struct.unpack_from("<I", r.payload, 4)[0]

    def write_reg(self, addr: int, value: int) -> None:
        payload = struct.pack("<II", addr, value & 0xFFFFFFFF)
        r = self.command(Cmd.WRITE_REG, payload)
        if r.payload[:8] != payload:
            raise ProtocolError(f"WriteReg 0x{addr:08X}: echo mismatch")

    def boot_version(self) -> str | None:
        try:
            r = self.command(Cmd.BOOT_VERSION, timeout=0.3)
        except ProtocolError:
            return None
        if r.payload == b"\x07":
            return None
        return r.payload.replace(b"\x00", b"").decode("ascii", "replace").strip() or None

    def flash_mid(self) -> tuple[int, int, int]:
        r = self.command(LongCmd.FLASH_GET_MID, struct.pack("<I", 0x9F), long=True)
        # The BootROM sends status, one unknown byte, then the 3 ID bytes (length 6); accept 5 too.
        ident = r.payload[-3:]
        if len(r.payload) < 4:
            raise ProtocolError("short FlashGetMID response")
        return ident[0], ident[1], ident[2]

    def identify(self) -> ChipInfo:
        self.bypass = False
        boot_crc = self.crc_raw(0, 256)
        if boot_crc == ZERO_FLASH_BOOT_CRC:
            raise BkError(
                "the chip answers, but every flash read returns zeros (bootloader CRC 0xB7BFA0CE)",
                hint="a strap / boot-mode pin is wrong or the flash is not powered: check the module's "
                "supply and that nothing pulls its pins at reset",
            )
        bl: Bootloader | None = BOOTLOADERS.get(boot_crc)
        warnings: list[str] = []
        if bl is not None:
            dialect = bl.dialect
        else:
            warnings.append(f"unknown bootloader CRC 0x{boot_crc:08X}")
            dialect = self._probe_dialect()
        self.dialect = dialect
        info = ChipInfo(chip="unknown", dialect=dialect, bootloader=bl.name if bl else None, boot_crc=boot_crc,
                        warnings=warnings)
        if bl is not None:
            info.chip = bl.chip
        if dialect.crc_locks_protection:
            self.relink()
        key: tuple[int, ...] | None = None
        if dialect.has_registers:
            try:
                info.chip_id = self.read_reg(CHIP_ID_REGISTER)
                if info.chip_id not in CHIP_IDS:  # BK7236 / BK7258 answer on their device-ID register
                    alt = self.read_reg(DEVICE_ID_REGISTER)
                    info.chip_id = alt if alt in CHIP_IDS else info.chip_id
            except ProtocolError:
                warnings.append("chip ID register did not answer")
            if info.chip_id is not None and any(
                FAMILIES[c].key_tells_family for c in families_for_id(info.chip_id) if c in FAMILIES
            ):
                key = self.read_code_key()
                info.code_key = key_name(key) if key else "unreadable"
            mid = self.flash_mid()
            info.flash_id = mid
            if mid == (0, 0, 0):
                raise BkError("flash ID reads 00 00 00: the flash is not answering (strap or supply problem)")
            self.part = lookup(mid)
            info.flash_name = self.part.name if self.part else None
            info.flash_size = self.part.size if self.part else 1 << mid[2]
            if self.part is None:
                warnings.append(f"flash ID {bytes(mid).hex()} is not in the table")
        else:
            info.boot_version = self.boot_version()
            info.flash_size = (bl.flash_size if bl else None) or self._detect_size()
        ident = identify(bl, info.chip_id, key, info.boot_version, info.flash_size)
        if ident.disagreement:
            warnings.append(ident.disagreement)
        elif ident.chip is None and info.chip_id is not None and ident.candidates:
            warnings.append(f"chip ID 0x{info.chip_id:X} fits {' or '.join(ident.candidates)}: chip unknown")
        elif ident.chip is None and info.chip_id is not None:
            warnings.append(f"unknown chip ID 0x{info.chip_id:X}")
        info.chip = ident.chip or "unknown"
        if bl is not None and bl.synthetic:
            warnings.append(f"bootloader {bl.name}: a simulator-only entry, not a real chip's")
        self.flash_size = info.flash_size
        self.bypass = True
        return info

    def read_code_key(self, words: int = 1) -> tuple[int, ...] | None:
        """The first `words` LE words of the eFuse code key via the eFuse controller (PROTOCOL-DETAILS
        4.7). One word already tells Tuya's key from the all-zero one and costs 12 round trips."""
        try:
            ctrl = self.read_reg(EFUSE_CTRL) & ~0x1F02
            raw = bytearray()
            for i in range(4 * words):
                self.write_reg(EFUSE_CTRL, ctrl | (i << 8) | 1)
                deadline = time.monotonic() + 1.0
                while self.read_reg(EFUSE_CTRL) & 1:
                    if time.monotonic() > deadline:
                        return None
                value = self.read_reg(EFUSE_OPTR)
                if not value & 0x100:
                    return None
                raw.append(value & 0xFF)
        except ProtocolError:
            return None
        return struct.unpack(f"<{words}I", bytes(raw))

    def _probe_dialect(self) -> Dialect:
        """Unknown bootloader: an inclusive-end CRC over 0x11000..0x11100 matches 257 read-back bytes."""
        chip_crc = self.crc_raw(0x11000, 0x11100)
        block = self.read_4k(0x11000)
        if chip_crc == zlib.crc32(block[:257]):
            return Dialect.FULL
        if chip_crc == zlib.crc32(block[:256]):
            return Dialect.BASIC_TUYA if self.boot_version() else Dialect.BASIC_BEKEN
        raise ProtocolError("CRC mismatch while probing the bootloader dialect")

    def _detect_size(self) -> int:
        ref = self.read_4k(0x11000)
        for size in (0x200000, 0x400000, 0x800000, 0x1000000):
            if self.read_4k(size + 0x11000) == ref:
                return size
        raise ProtocolError("could not detect the flash size")

    # ------------------------------------------------------------------ flash
    def read_4k(self, addr: int) -> bytes:
        wire = self._wire(addr)
        r = self.command(LongCmd.FLASH_READ_4K, struct.pack("<I", wire), long=True, reply_len=4111)
        if r.status != 0:
            raise ProtocolError(f"chip refused to read 0x{addr:06X} (status {r.status})")
        if r.payload[1:5] != struct.pack("<I", wire):
            raise ProtocolError(f"read 0x{addr:06X}: address echo mismatch")
        data = r.payload[5:]
        if len(data) != SECTOR:
            raise ProtocolError(f"read 0x{addr:06X}: got {len(data)} bytes instead of 4096")
        return data

    def erase(self, addr: int, size: int = SECTOR) -> None:
        code = ERASE_64K if size == 0x10000 else ERASE_4K
        wire = self._wire(addr)
        payload = struct.pack("<BI", code, wire)
        r = self.command(LongCmd.FLASH_ERASE, payload, long=True, timeout=3.0)
        if r.payload[1:6] != payload:
            if len(r.payload) >= 6:
                got_code, got_wire = struct.unpack_from("<BI", r.payload, 1)
                got_size = 0x1000 if got_code == ERASE_4K else 0x10000
                raise MisdirectedCommand(f"erase 0x{addr:06X}: the chip echoed 0x{got_wire:X} size 0x{got_code:02X}",
                                         self._logical(got_wire) & ~(got_size - 1), got_size)
            raise ProtocolError(f"erase 0x{addr:06X}: echo mismatch")
        if r.status != 0:
            raise ProtocolError(f"chip refused to erase 0x{addr:06X} (status {r.status})")

    def write_4k(self, addr: int, data: bytes) -> None:
        if len(data) < SECTOR:
            data = data + b"\xff" * (SECTOR - len(data))
        wire = self._wire(addr)
        r = self.command(LongCmd.FLASH_WRITE_4K, struct.pack("<I", wire) + data, long=True, timeout=2.0)
        if r.payload[1:5] != struct.pack("<I", wire) and len(r.payload) >= 5:
            (got,) = struct.unpack_from("<I", r.payload, 1)
            raise MisdirectedCommand(f"write 0x{addr:06X}: the chip echoed 0x{got:X}", self._logical(got) & ~0xFFF,
                                     SECTOR)
        if r.status != 0:
            raise ProtocolError(f"chip refused to write 0x{addr:06X} (status {r.status})")

    def read_sr(self, opcode: int) -> int:
        r = self.command(LongCmd.FLASH_READ_SR, bytes([opcode]), long=True)
        if len(r.payload) < 3 or r.payload[1] != opcode:
            raise ProtocolError("status register read: echo mismatch")
        return r.payload[2]

    def write_sr(self, value: int, nbytes: int) -> None:
        payload = bytes([0x01, value & 0xFF]) + (bytes([value >> 8]) if nbytes >= 2 else b"")
        r = self.command(LongCmd.FLASH_WRITE_SR, payload, long=True)
        if r.payload[1 : 1 + len(payload)] != payload:
            raise ProtocolError("status register write: echo mismatch")

    def unprotect(self) -> str:
        """Clear the SR block-protect bits (FULL dialect); BASIC bootloaders unprotect on erase."""
        if self.dialect is not Dialect.FULL:
            return "bootloader unprotects on erase"
        nbytes = self.part.sr_bytes if self.part else 2
        mask = self.part.protect_mask if self.part else 0x407C
        if nbytes == 0:
            return "flash has no status register"
        sr = self.read_sr(0x05) | ((self.read_sr(0x35) << 8) if nbytes >= 2 else 0)
        if sr & mask == 0:
            return f"flash not protected (SR 0x{sr:04X})"
        want = sr & ~mask
        self.write_sr(want, min(nbytes, 2))
        got = self.read_sr(0x05) | ((self.read_sr(0x35) << 8) if nbytes >= 2 else 0)
        if got & mask:  # compare masked bits only: WIP may still be set (libretiny issue 33)
            raise ProtocolError(f"writing the status register failed: wrote 0x{want:04X}, read 0x{got:04X}")
        return f"flash unprotected (SR 0x{sr:04X} -> 0x{got:04X})"

    def reboot(self) -> None:
        for _ in range(3):
            self.port.write(encode(Cmd.REBOOT, b"\xa5"))
            time.sleep(0.01)
