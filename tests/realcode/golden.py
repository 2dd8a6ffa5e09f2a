"""Golden frame -> reply pairs of the real T bootloader, and how to play them to core/sim.

`CASES` lists frame sequences, each run from a fresh boot (the chip waiting in its boot window) on one
bootloader (Feit 1.0.5, Globe 1.0.4), flash ID and status-register value. `record` runs them through the
real code (tests/realcode/t_bootloader.py, needs unicorn) and `replay_sim` through core/sim's SimDevice
(no unicorn). tests/golden/t_bootloader.json holds the recorded replies; tests/test_sim_golden.py plays
them to core/sim on every run, tests/realcode/test_t_golden.py re-records them from the real code.

A step is a frame to send, or one of two events: `idle` (the host stays silent until the bootloader's
idle reset) and `baud` (the host switches its own port, after a SetBaudRate). Every step records the
bytes the bootloader sent on UART1 (replies longer than 64 bytes as length, head and CRC-32) and the
flash status register after it (the bootloader's protection writes land there).
"""

from __future__ import annotations

import struct
import zlib

from bkbench.core.protocol import encode

GOLDEN = "tests/golden/t_bootloader.json"
DUMPS = {"1.0.5": "bk7231t-feit-br30-rgbw-bulb.bin", "1.0.4": "bk7231t-globe-37783-rgbct-bulb.bin"}
GD25Q16 = "C84015"  # in both bootloaders' flash-ID tables
TH25Q16 = "EB6015"  # not in them: never protected by CheckCRC


def link() -> bytes:
    return encode(0x00)


def crc(start: int, end: int) -> bytes:
    return encode(0x10, struct.pack("<II", start, end))


def read4k(addr: int) -> bytes:
    return encode(0x09, struct.pack("<I", addr & 0xFFFFFFFF), True)


def write(addr: int, data: bytes) -> bytes:
    return encode(0x06, struct.pack("<I", addr & 0xFFFFFFFF) + data, True)


def write4k(addr: int, fill: int) -> bytes:
    data = bytes((fill + i) & 0xFF for i in range(0x1000))
    return encode(0x07, struct.pack("<I", addr & 0xFFFFFFFF) + data, True)


def erase(size_code: int, addr: int) -> bytes:
    return encode(0x0F, bytes([size_code]) + struct.pack("<I", addr & 0xFFFFFFFF), True)


def baud(rate: int, delay: int = 20) -> bytes:
    return encode(0x0F, struct.pack("<IB", rate, delay))


IDLE = "idle"
# Instructions a step may take before we call it unanswered: ~0.1 s of a 120 MHz chip, 60x the longest real
# reply here (a CRC over 8 KiB); the end-before-start CheckCRC would run for hours.
STEP_LIMIT = 10_000_000


def _protection(sector: int) -> list:
    """Erase, CheckCRC, erase, LinkCheck, erase, each erase followed by a read of the sector (its effect)."""
    return [link(), erase(0x20, sector), read4k(sector), crc(0x11000, 0x12000),
            write4k(sector, 0x11), read4k(sector), erase(0x20, sector), read4k(sector),
            link(), erase(0x20, sector), read4k(sector), write4k(sector, 0x22), read4k(sector)]


def cases() -> list[dict]:
    """Every case on both versions; protection also per flash ID and starting SR."""
    out: list[dict] = []
    for ver in DUMPS:
        def case(name: str, steps: list, flash_id: str = GD25Q16, sr: int = 0x1C, ver: str = ver) -> None:
            out.append({"name": f"{ver} {name}", "version": ver, "flash_id": flash_id, "sr": sr, "steps": steps})

        case("link, boot version, CRC block arithmetic", [
            link(), encode(0x11), crc(0x11000, 0x12000), crc(0x11000, 0x11FFF), crc(0x11000, 0x11FFE),
            crc(0x11000, 0x11100), crc(0x11000, 0x110FF), crc(0x11000, 0x110FE), crc(0x11000, 0x11000),
            crc(0x0, 0x100), crc(0x0, 0xFF), crc(0x1FF000, 0x201000), crc(0x1FFF00, 0x200100),
            crc(0x11010, 0x11210), crc(0x80000000, 0x80000100)])
        # end before start: the block count wraps to ~16 M blocks, so the chip is busy for hours (no reply;
        # the next command is not taken either)
        case("CheckCRC with the end before the start", [link(), crc(0x12000, 0x11000), link()])
        case("Read4K address limits", [
            link(), read4k(0x0), read4k(0xF000), read4k(0xFFFF), read4k(0x10000), read4k(0x10FFF),
            read4k(0x11000), read4k(0x11001), read4k(0x1FF800), read4k(0x200000), read4k(0x7FFFF000),
            read4k(0x80000000), read4k(0xFFFFF000)])
        # Addresses from 16 MiB up: the bootloader ORs bits 24-31 of the address into the flash controller's
        # operation word, so what the part then does is our controller model, not the bootloader: only the
        # replies are recorded there (last in each case, no read-back after them).
        case("FlashWrite limits and count byte", [
            link(), erase(0x20, 0x1F0000), write(0x1F0000, bytes(range(32))), write(0xFFF0, b"\x00" * 16),
            write(0xFFE0, b"\x00" * 32), write(0x10000, b"\x5a" * 32), write(0x1F0100, bytes(range(256))),
            write(0x1F0200, b"\xa5" * 96), write(0x1F8300, b"\x11" * 16), write(0x211000, b"\x00" * 32),
            read4k(0x1F0000), read4k(0x10000), read4k(0x11000), write(0x7FFF0000, b"\x00" * 32),
            write(0x80000000, b"\x00" * 32), write(0xFFFF0000, b"\x00" * 32)])
        case("FlashWrite4K limits and echo", [
            link(), write4k(0x20DF, 0x01), write4k(0x0, 0x02), write4k(0x20E0, 0x03), read4k(0x10000),
            erase(0x20, 0x1F1000), write4k(0x1F1000, 0x05), read4k(0x1F1000), write4k(0x211000, 0x07),
            read4k(0x11000), write4k(0x7FFFF000, 0x08), write4k(0x80000000, 0x04), write4k(0xFFFFF000, 0x06)])
        case("FlashErase limits and size codes", [
            link(), erase(0x20, 0xF000), erase(0x20, 0x10000), read4k(0x10000), erase(0x20, 0x80000000),
            erase(0x52, 0x1F8000), read4k(0x1F8000), erase(0x00, 0x1F9000), erase(0xFF, 0x1F9000),
            erase(0x21, 0x1F9000), read4k(0x1F9000), erase(0xD8, 0x1F0000), read4k(0x1F0000), read4k(0x1FF000),
            erase(0x20, 0x1FA123), read4k(0x1FA000), erase(0x20, 0x211000), read4k(0x11000),
            erase(0xD8, 0x7FFF0000)])
        case("commands the Tuya bootloader does not answer", [
            link(), encode(0x03, struct.pack("<I", 0x800000)), encode(0x01, struct.pack("<II", 0x800000, 1)),
            encode(0x08, struct.pack("<IB", 0x11000, 16), True), encode(0x0E, struct.pack("<I", 0x9F), True),
            encode(0x0C, b"\x05", True), encode(0x0D, b"\x01\x00", True), encode(0x0B, struct.pack("<I", 0x1F0000),
                                                                                   True),
            encode(0x0A, b"\x00", True), encode(0xAA, b"\x55"), encode(0x70, b"SEAN"), encode(0x0E, b"\x00"),
            link()])
        case("SetBaudRate, then the link at the new rate", [
            link(), baud(921600, 20), ("baud", 921600), link(), crc(0x11000, 0x12000), baud(115200, 5),
            ("baud", 115200), link()])
        case("Reboot 0e a5: silence, boot window again", [
            link(), erase(0x20, 0x1F2000), encode(0x0E, b"\xa5"), read4k(0x11000), link(), encode(0x11),
            erase(0x20, 0x1F3000), read4k(0x1F3000)])
        case("idle reset after LinkCheck", [link(), IDLE, link(), encode(0x11)])
        for sr in (0x00, 0x1C):
            case(f"protection one-shot, SR {sr:02x}", _protection(0x1F4000), sr=sr)
        case("protection, flash ID not in the bootloader's table", _protection(0x1F4000), flash_id=TH25Q16, sr=0x00)
        case("protection, flash ID not in the table, SR 1c", _protection(0x1F4000), flash_id=TH25Q16, sr=0x1C)
        for other in ("1C7015", "C22315"):  # one-byte status registers in the bootloader's table
            case(f"protection, flash ID {other}", _protection(0x1F4000), flash_id=other, sr=0x1C)
        case("CheckCRC straight after the link", [
            link(), crc(0x11000, 0x11100), erase(0x20, 0x1F7000), read4k(0x1F7000), link(), erase(0x20, 0x1F7000),
            read4k(0x1F7000)])
        case("protection after a relink and a reboot", [
            link(), erase(0x20, 0x1F5000), crc(0x11000, 0x11100), link(), link(), erase(0x20, 0x1F6000),
            read4k(0x1F6000), encode(0x0E, b"\xa5"), link(), erase(0x20, 0x1F6000), read4k(0x1F6000)])
    return out


# --------------------------------------------------------------------------------- reply digests


def digest(reply: bytes) -> str | dict:
    if len(reply) <= 64:
        return reply.hex()
    return {"len": len(reply), "head": reply[:16].hex(), "crc32": f"{zlib.crc32(reply):08x}"}


def step_json(step) -> dict:
    """How a step is named in the file: frames (long ones as a digest; `cases()` makes the bytes)."""
    if step == IDLE:
        return {"idle": True}
    if isinstance(step, tuple):
        return {"baud": step[1]}
    return {"send": digest(step)}


def steps_of(case: dict) -> list:
    return list(case["steps"])


def jedec_of(text: str) -> tuple[int, int, int]:
    raw = bytes.fromhex(text)
    return raw[0], raw[1], raw[2]


# --------------------------------------------------------------------------------- players


def record(case: dict, dump: bytes) -> list[dict]:
    """Play a case to the real bootloader; the recorded steps."""
    from bkbench.core.sim.flash import NorFlash

    from .t_bootloader import TBootloader

    flash = NorFlash(dump, jedec_of(case["flash_id"]), case["sr"])
    boot = TBootloader(dump, flash)
    boot.run_until_quiet()
    out = []
    for step in steps_of(case):
        entry = step_json(step)
        if step == IDLE:
            resets = boot.stats.resets
            while boot.stats.resets == resets:
                boot.run(20_000)
            boot.tx.clear()
            boot.run_until_quiet()
            reply = bytes(boot.tx)
        elif isinstance(step, tuple):
            reply = b""
        else:
            reply = boot.exchange(step, limit=STEP_LIMIT)
        entry["reply"] = digest(reply)
        entry["sr"] = flash.sr
        out.append(entry)
    return out


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def replay_sim(case: dict, dump: bytes, idle_timeout: float = 5.0) -> list[dict]:
    """Play the same steps to core/sim's SimDevice (the chip the dump names), on a virtual clock."""
    from bkbench.core.sim.device import SimDevice
    from bkbench.core.sim.identity import identify

    clock = FakeClock()
    ident = identify(dump, "BK7231T")
    dev = SimDevice(ident.flash, chip=ident.chip, jedec=jedec_of(case["flash_id"]), sr=case["sr"], clock=clock,
                    idle_timeout=idle_timeout)
    out = []
    for step in steps_of(case):
        entry = step_json(step)
        if step == IDLE:
            clock.t += idle_timeout + 0.01
            reply = dev.host_read()
        elif isinstance(step, tuple):
            dev.set_host_baud(step[1])
            reply = b""
        else:
            dev.host_write(step)
            if step[:5] == bytes.fromhex("01e0fc060f"):
                # SetBaudRate: the host switches as soon as it has sent it, and the echo comes at the new rate
                # after the delay the command names (the simulator decodes bytes at the host's rate of the
                # moment they arrive: a switch after the echo would garble it, as on a wire)
                dev.set_host_baud(struct.unpack_from("<I", step, 5)[0])
            clock.t += 0.05
            reply = dev.host_read()
        entry["reply"] = digest(reply)
        entry["sr"] = dev.flash.sr
        out.append(entry)
    return out
