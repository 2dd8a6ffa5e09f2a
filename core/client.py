"""Low-level host side of the protocol: one method per chip command, with echo and status checks.

Addresses passed in are logical (0 .. flash size). Once the flash size is known every address goes
out as `addr + size` (the wrap-around "boot protection bypass"): the flash ignores the extra bit
while the Tuya bootloader's range check does not, so the bootloader area can be read on BK7231T.
"""

from __future__ import annotations

import contextlib
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import serial

from .chips import (
    BOOTLOADERS,
    CHIP_ID_REGISTER,
    CHIP_IDS,
    DEVICE_ID_REGISTER,
    EFUSE_CTRL,
    EFUSE_OPTR,
    FAMILIES,
    FLASH_SIZES,
    MAX_FLASH,
    MIN_FLASH,
    ZERO_FLASH_BOOT_CRC,
    Bootloader,
    Dialect,
    families_for_id,
    identify,
    key_name,
    name_as_reported,
)
from .errors import BkError, LinkLost, OperationCancelled, PortError, ProtocolError
from .flash_ids import FlashPart, lookup
from .layout import SECTOR
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

if TYPE_CHECKING:
    from .protection_memory import ProtectionMemory

LINK_BAUD = 115200


class MisdirectedCommand(ProtocolError):
    """The chip echoed another address (or erase size) than we sent: a byte of our command was
    damaged on the line and the chip may have erased or programmed the wrong place."""

    def __init__(self, message: str, addr: int, size: int) -> None:
        super().__init__(message)
        self.addr, self.size = addr, size


class UnsentCommandExecuted(BkError):
    """A read command was damaged on the line into an erase or a write, and the chip executed it: the
    named sectors may have lost their contents. Not retried: the data there is gone from the chip."""

    def __init__(self, message: str, addr: int, size: int) -> None:
        super().__init__(message, hint="restore those sectors from a backup of this chip (`bkbench restore`)")
        self.addr, self.size = addr, size


# Replies of the commands that change flash, with their exact payload length (status + echo): a reply
# of this shape to a command we did not send means a damaged command was executed as this one.
DESTRUCTIVE_REPLY_LEN: dict[int, int] = {LongCmd.FLASH_ERASE: 6, LongCmd.FLASH_ERASE_4K: 5, LongCmd.FLASH_WRITE_4K: 5,
                         LongCmd.FLASH_WRITE: 6}
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
    size_trusted: bool = True  # flash ID in the table and confirmed by the wrap-around probe
    warnings: list[str] = field(default_factory=list)
    code_key: str | None = None  # eFuse code key as read (N / M twins only)
    bootloader_table: str | None = None  # the CRC table's name when the code reports another version
    adapter: str = ""  # the USB adapter and what was done to its latency (core/link/latency.py)

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
            "size_trusted": self.size_trusted,
            "mac": self.mac,
            "baud": self.baud,
            "adapter": self.adapter,
            "warnings": list(self.warnings),
            "code_key": self.code_key,
        } | ({"bootloader_table": self.bootloader_table} if self.bootloader_table else {})


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
        self._recent: list[tuple[int, int]] = []  # (code, wire addr) of the last destructive commands sent
        self.anomalies = 0  # failed exchanges so far (each one is followed by recover())
        self.sr_found: int | None = None  # the status register as the first unprotect found it
        # What the SR was before bkbench first touched this chip, across interrupted runs (set by the session).
        self.protection: ProtectionMemory | None = None

    # ------------------------------------------------------------------ framing
    def _wire(self, addr: int) -> int:
        return addr + self.flash_size if (self.bypass and self.flash_size) else addr

    def _logical(self, wire: int) -> int:
        return wire % self.flash_size if self.flash_size else wire

    def _lost(self, exc: Exception) -> PortError:
        name = str(getattr(self.port, "portstr", "") or "")
        if name.startswith(("rfc2217://", "socket://")):
            return PortError(f"the remote port stopped working ({exc}); are the server (ser2net) and the network up?")
        return PortError(f"the serial adapter stopped working ({exc}); was it unplugged?")

    def drain(self) -> None:
        self.scanner.clear()
        try:
            self.port.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from exc
        except Exception:  # noqa: BLE001 - some URL handlers lack it
            pass

    def _read_some(self, want: int) -> bytes:
        try:
            n = max(1, want, self.port.in_waiting)
            return self.port.read(n)
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from exc

    def _write(self, frame: bytes) -> None:
        try:
            self.port.write(frame)
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from exc

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
        self.scanner.skipped.clear()
        if send:
            self._write(encode(code, payload, long))
            if long and code in DESTRUCTIVE_REPLY_LEN and len(payload) >= 4:
                at = 1 if code == LongCmd.FLASH_ERASE else 0
                self._recent = (self._recent + [(code, struct.unpack_from("<I", payload, at)[0])])[-4:]
        now = time.monotonic()
        deadline = now + (self.timeout if timeout is None else timeout)
        want = reply_code if reply_code is not None else code
        last_rx = now
        while True:
            frame = self.scanner.find(want, long)
            self._check_foreign(code, long)
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

    def _check_foreign(self, sent: int, long: bool) -> None:
        """A reply to an erase or write we did not send: a bit error turned our command into that one
        (Read4K 0x09 -> Erase4K 0x0B, Erase 0x0F -> Erase4K / Write4K with the address bytes shifted)
        and the chip executed it at the address it echoes. Name the sectors it may have changed."""
        for frame in self.scanner.skipped:
            if (frame.long and frame.code == LongCmd.FLASH_ERASE_ALL and sent != LongCmd.FLASH_ERASE_ALL
                    and len(frame.payload) == 2 and not frame.status):
                # FlashGetMID 0x0E -> EraseAll 0x0A is one bit: the chip erased everything it could.
                self.scanner.skipped.clear()
                size = self.flash_size or 0x200000
                raise UnsentCommandExecuted(
                    "a command damaged on the line made the chip run EraseAll: the whole flash "
                    f"(0x000000-0x{size - 1:06X}) may have been erased; nothing read from it now is the original",
                    0, size)
            if not frame.long or DESTRUCTIVE_REPLY_LEN.get(frame.code) != len(frame.payload) or frame.status:
                continue
            if frame.code == LongCmd.FLASH_ERASE:
                size_code, wire = struct.unpack_from("<BI", frame.payload, 1)
                span = SECTOR if size_code == ERASE_4K else 0x10000  # an unknown size code: assume the worst
                base = wire & ~(span - 1)
            else:
                (wire,) = struct.unpack_from("<I", frame.payload, 1)
                if frame.code == LongCmd.FLASH_ERASE_4K:
                    span, base = SECTOR, wire & ~(SECTOR - 1)
                else:  # a program of up to 4 KiB from an address that may be unaligned
                    base = wire & ~(SECTOR - 1)
                    span = (wire + SECTOR + SECTOR - 1) // SECTOR * SECTOR - base
            if (frame.code, wire) in self._recent:
                continue  # a late reply of our own earlier command
            addr = self._logical(base)
            what = "erased" if frame.code in (LongCmd.FLASH_ERASE, LongCmd.FLASH_ERASE_4K) else "programmed"
            where = f"0x{addr:06X}-0x{addr + span - 1:06X}"
            self.scanner.skipped.clear()
            if not long or sent not in DESTRUCTIVE_REPLY_LEN:
                raise UnsentCommandExecuted(
                    f"a command damaged on the line made the chip {what[:-1]} {where} (sector 0x{addr:06X}) "
                    "instead of what was sent; that flash may have lost its contents", addr, span)
            raise MisdirectedCommand(f"command 0x{sent:02X} was damaged on the line: the chip {what} {where}",
                                     addr, span)

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

    SETTLE_MAX = 0.3  # s: a line that never goes quiet (noise, an MCU chattering on RX1) must not hang us

    def _settle(self) -> None:
        """Let late LinkCheck replies arrive and throw them away (bounded: the scanner skips the rest)."""
        now = time.monotonic()
        quiet_until, hard_stop = now + 0.02, now + self.SETTLE_MAX
        while True:
            now = time.monotonic()
            if now >= quiet_until or now >= hard_stop:
                break
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
        self.anomalies += 1  # the session checks the whole flash after an operation that had any
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
        try:
            self.port.baudrate = baud
        except (serial.SerialException, OSError, ValueError) as exc:  # e.g. an RFC 2217 server kept its rate
            with contextlib.suppress(serial.SerialException, OSError, ValueError):
                self.port.baudrate = old
            raise ProtocolError(f"the port could not switch to {baud} baud ({exc})") from None
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

    def trusted_flash_mid(self, tries: int = 5) -> tuple[int, int, int]:
        """The flash ID given twice in a row: one damaged reply must not decide the flash size
        (EB6015 -> EB6014 would make a 2 MiB chip look 1 MiB and move every address)."""
        prev = self.flash_mid()
        for _ in range(tries):
            again = self.flash_mid()
            if again == prev:
                return again
            prev = again
        raise ProtocolError("the flash ID differed on every read; the line is too unreliable to continue")

    def _wrap_crc(self, wire_start: int, n: int) -> int:
        value = self.crc_raw(wire_start, wire_start + n)
        if self.dialect is not None and self.dialect.crc_locks_protection:
            self.relink()
        return value

    def size_evidence(self, size: int) -> str | None:
        """Check a flash size against the flash itself: it must repeat at `size` (the flash ignores
        the higher address bits) and, unless the content is uniform, not already at size / 2.
        Returns None when the evidence agrees, else one sentence saying what disagrees."""
        base = 0 if self.dialect is Dialect.FULL else 0x11000  # BASIC bootloaders refuse < 0x11000
        ref = self._wrap_crc(base, 256)
        again = self._wrap_crc(base, 256)
        if again != ref:
            return "the chip gave two different CRCs for the same 256 bytes"
        at_size = self._wrap_crc(base + size, 256)
        if at_size != ref:
            at_size = self._wrap_crc(base + size, 256)  # one damaged reply is not evidence
        if at_size != ref:
            return f"the flash does not repeat at 0x{size:X}, so it is larger than {size // 1024} KiB"
        half = size // 2
        if half >= 0x40000 and self._wrap_crc(base + half, 256) == ref:
            uniform = self._wrap_crc(base + 256, 256) == ref  # erased/uniform content repeats everywhere
            if not uniform and self._wrap_crc(base + half, 256) == ref:
                return f"the flash already repeats at 0x{half:X}, so it is smaller than {size // 1024} KiB"
        return None

    def flash_mid(self) -> tuple[int, int, int]:
        r = self.command(LongCmd.FLASH_GET_MID, struct.pack("<I", 0x9F), long=True)
        # The BootROM sends status, one unknown byte, then the 3 ID bytes (length 6); accept 5 too.
        ident = r.payload[-3:]
        if len(r.payload) not in (4, 5):
            raise ProtocolError("FlashGetMID response of the wrong length")
        if r.status != 0:
            raise ProtocolError(f"FlashGetMID refused (status {r.status})")
        return ident[0], ident[1], ident[2]

    def identify(self, flash_size: int | None = None, attempts: int = 3) -> ChipInfo:
        """Bootloader, dialect, chip and flash size from agreeing evidence; `flash_size` is the user's
        override. One damaged reply (or command) is not the chip's answer: the whole identification is
        asked again after a recovery, up to `attempts` times."""
        for attempt in range(attempts):
            try:
                return self._identify(flash_size)
            except ProtocolError as exc:
                if attempt == attempts - 1:
                    raise
                try:
                    self.recover()
                except LinkLost:
                    raise exc from None  # linked, then lost: the caller's link doctor explains it
        raise AssertionError("unreachable")

    def _identify(self, flash_size: int | None = None) -> ChipInfo:
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
            mid = self.trusted_flash_mid()
            info.flash_id = mid
            if mid == (0, 0, 0):
                raise BkError("flash ID reads 00 00 00: the flash is not answering (strap or supply problem)")
            self.part = lookup(mid)
            info.flash_name = self.part.name if self.part else None
            info.flash_size = self.part.size if self.part else 1 << min(mid[2], 63)
            if self.part is None:
                info.size_trusted = False
                if not MIN_FLASH <= info.flash_size <= MAX_FLASH and flash_size is None:
                    raise ProtocolError(f"flash ID {bytes(mid).hex().upper()} gives an implausible flash size "
                                        f"(2^{mid[2]} bytes); was the reply damaged on the line?",
                                        hint="if the flash really is unknown, pass --flash-size")
                warnings.append(f"flash ID {bytes(mid).hex()} is not in the table: size unknown "
                                f"(assumed {info.flash_size // 1024} KiB)")
        else:
            info.boot_version = self.boot_version()
            info.flash_size = (bl.flash_size if bl else None) or self._detect_size()
            if bl is not None and name_as_reported(bl, info.boot_version) != bl.name:
                # what the code says wins; the table's name stays as evidence (REALCODE.md B.1)
                info.bootloader_table, info.bootloader = bl.name, name_as_reported(bl, info.boot_version)
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
        if flash_size is not None:
            if flash_size != info.flash_size:
                warnings.append(f"flash size {flash_size // 1024} KiB given by the user (the chip's ID says "
                                f"{info.flash_size // 1024} KiB)")
            info.flash_size, info.size_trusted = flash_size, True
        if not MIN_FLASH <= info.flash_size <= MAX_FLASH:
            info.size_trusted = False
            warnings.append(f"implausible flash size {info.flash_size:#x}")
        else:
            doubt = self.size_evidence(info.flash_size)
            if doubt is not None:
                info.size_trusted = False
                warnings.append(f"flash size {info.flash_size // 1024} KiB is not confirmed: {doubt}")
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
        for size in FLASH_SIZES:
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
                                         self._logical(got_wire & ~(got_size - 1)), got_size)
            raise ProtocolError(f"erase 0x{addr:06X}: echo mismatch")
        if r.status != 0:
            raise ProtocolError(f"chip refused to erase 0x{addr:06X} (status {r.status})")

    def write_4k(self, addr: int, data: bytes) -> None:
        if len(data) < SECTOR:
            data = data + b"\xff" * (SECTOR - len(data))
        wire = self._wire(addr)
        r = self.command(LongCmd.FLASH_WRITE_4K, struct.pack("<I", wire) + data, long=True, timeout=2.0)
        if len(r.payload) < 5:
            raise ProtocolError(f"write 0x{addr:06X}: short reply without the address echo")
        if r.payload[1:5] != struct.pack("<I", wire):
            (got,) = struct.unpack_from("<I", r.payload, 1)
            # An unaligned address programs into the next sector too.
            base = self._logical(got) & ~0xFFF
            span = SECTOR if got % SECTOR == 0 else 2 * SECTOR
            raise MisdirectedCommand(f"write 0x{addr:06X}: the chip echoed 0x{got:X}", base, span)
        if r.status != 0:
            raise ProtocolError(f"chip refused to write 0x{addr:06X} (status {r.status})")

    def read_sr(self, opcode: int) -> int:
        r = self.command(LongCmd.FLASH_READ_SR, bytes([opcode]), long=True)
        if len(r.payload) != 3 or r.payload[1] != opcode:
            raise ProtocolError("status register read: echo mismatch")
        if r.status != 0:
            raise ProtocolError(f"status register read refused (status {r.status})")
        return r.payload[2]

    def write_sr(self, value: int, nbytes: int) -> None:
        payload = bytes([0x01, value & 0xFF]) + (bytes([value >> 8]) if nbytes >= 2 else b"")
        r = self.command(LongCmd.FLASH_WRITE_SR, payload, long=True)
        if r.payload[1:] != payload:
            raise ProtocolError("status register write: echo mismatch")
        if r.status != 0:
            raise ProtocolError(f"status register write refused (status {r.status})")

    def reprotect(self) -> str | None:
        """Leave the status register as found before `unprotect` (FULL dialect), so a command turned
        into an erase by a line error later cannot touch the flash. Every bit is compared (WIP/WEL
        aside): a damaged WriteSR could set SRP or clear QE, which the protect mask alone would miss.
        A damaged exchange is retried; a register that will not take the value (locked) raises."""
        if self.sr_found is None or self.dialect is not Dialect.FULL:
            return None
        nbytes = self.part.sr_bytes if self.part else 2
        want = self.sr_found & ~0x0003
        last: ProtocolError | None = None
        for _ in range(4):
            try:
                got = self._stable_sr(nbytes)
                if (got ^ want) & ~0x0003 == 0:
                    self._protection_back()
                    return None if last is None else f"flash protection restored (SR 0x{got & ~0x0003:04X})"
                self.write_sr(want, min(nbytes, 2))
                got = self._stable_sr(nbytes)
                if (got ^ want) & ~0x0003 == 0:
                    self._protection_back()
                    return f"flash protection restored (SR 0x{got & ~0x0003:04X})"
                last = ProtocolError(f"putting the flash protection back failed: wrote 0x{want:04X}, "
                                     f"read 0x{got:04X}")
            except ProtocolError as exc:
                last = exc
                self.recover()
        assert last is not None
        raise last

    def unprotect(self) -> str:
        """Clear the SR block-protect bits (FULL dialect); BASIC bootloaders unprotect on erase."""
        if self.dialect is not Dialect.FULL:
            return "bootloader unprotects on erase"
        nbytes = self.part.sr_bytes if self.part else 2
        mask = self.part.protect_mask if self.part else 0x407C
        if nbytes == 0:
            return "flash has no status register"
        sr = self._stable_sr(nbytes)
        if self.sr_found is None:  # an interrupted earlier run may have left `sr` unprotected: ask the record
            self.sr_found = sr if self.protection is None else self.protection.found(sr, mask, self.part)
        want = self.sr_found & ~mask
        if (sr ^ want) & ~0x0003 == 0:
            return f"flash not protected (SR 0x{sr:04X})"
        if self.protection is not None:
            self.protection.remember(self.sr_found, want)  # on disk before the chip is unprotected
        for _ in range(3):
            self.write_sr(want, min(nbytes, 2))
            got = self._stable_sr(nbytes)
            # WIP / WEL (bits 0, 1) may still be set (libretiny issue 33); every other bit must be as
            # written: a damaged SR write can set QE or SRP, which the mask alone would not notice.
            if (got ^ want) & ~0x0003 == 0:
                return f"flash unprotected (SR 0x{sr:04X} -> 0x{got:04X})"
        raise ProtocolError(f"writing the status register failed: wrote 0x{want:04X}, read 0x{got:04X}")

    def _protection_back(self) -> None:
        if self.protection is not None:
            self.protection.forget()

    def _stable_sr(self, nbytes: int) -> int:
        """The status register as two reads in a row agree on it (a damaged reply must not be written back)."""
        prev = None
        for _ in range(4):
            sr = self.read_sr(0x05) | ((self.read_sr(0x35) << 8) if nbytes >= 2 else 0)
            if sr == prev:
                return sr
            prev = sr
        raise ProtocolError("the status register reads differently each time")

    def reboot(self) -> None:
        for _ in range(3):
            self.port.write(encode(Cmd.REBOOT, b"\xa5"))
            time.sleep(0.01)
