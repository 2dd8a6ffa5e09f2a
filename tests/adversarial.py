"""Harness of the adversarial fault suites (tests/test_adversarial.py, tests/test_desync.py): one run =
one operation on a fresh simulated chip with chosen bits flipped on the wire, or chosen reply frames
repeated, replaced by a stale one, copied late, swapped or dropped (core/sim/faults.py), judged against
the chip's flash and the backup library only (never against what the engine says).

Outcome classes:
  OK             the operation succeeded and the flash / backup is exactly right;
  CLEAN-FAIL     it raised a BkError, nothing outside the intended range changed, and nothing it
                 reported as done is wrong;
  REPORTED-DAMAGE  it raised a BkError and sectors outside the range changed, but the error names
                 every one of them (the user is told what to restore);
  SILENT-DAMAGE  it reported success with wrong flash or a wrong backup, or changed sectors outside the
                 range without naming them, or reported as done what is wrong, or (verify) reported
                 differences that are not the chip's;
  CRASH          a non-BkError exception or a hang.
"""

from __future__ import annotations

import random
import re
import shutil
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bkbench.core.analysis.obk_config import ObkConfig, parse_assignment
from bkbench.core.backups import BackupLibrary
from bkbench.core.errors import BkError
from bkbench.core.images.placement import as_firmware, place
from bkbench.core.layout import OBK_CONFIG_OFFSET, RF_OFFSET, SECTOR, layout_for
from bkbench.core.paths import fixtures_dir
from bkbench.core.session import Session, parse_mac
from bkbench.core.sim import registry
from bkbench.core.sim.faults import FaultInjector, FaultPlan, FrameFault
from bkbench.core.sim.tamper import C2H, H2C, Flip, LineTamper, fields_of
from simhelpers import run_with_deadline

OPS = ("backup", "write", "restore", "config")
DESYNC_OPS = ("backup", "backup-changed", "verify", "write", "restore", "config", "station",  # station: fixtures
              "station-backup")
CHANGED_BLOCK = 0x160000  # "backup-changed": new data in a block between two erased ones of the stock dumps
READ_RANGE = (0x110000, 0x20000)  # "read": the end of the stock app and the erased flash after it
CHIPS = ("BK7231N", "BK7231T")
CLASSES = ("OK", "CLEAN-FAIL", "REPORTED-DAMAGE", "SILENT-DAMAGE", "CRASH")
CLIENT_TIMEOUT = 0.25  # replies are immediate with the timing model off; keeps recovery quick
RUN_TIMEOUT = 90.0
FLASH_ID = {"BK7231N": "EB6015", "BK7231T": None}
WRITE_START = 0x40000
SR_PROTECT_BITS = 0x407C | 0x0003  # BP0-4, CMP (may change for a write) and WIP / WEL


@dataclass
class Scenario:
    op: str
    chip: str
    before: bytes  # the chip's flash when the operation starts
    expected: bytes  # the whole flash as it must be after a successful run
    ranges: list[tuple[int, int]]  # what the operation is meant to change
    data: bytes = b""
    library_image: bytes | None = None  # the verified backup of this chip already in the library
    sr: int | None = None
    start: int = 0  # where `data` goes (station: the firmware's own start)

    def inside(self, addr: int) -> bool:
        return any(s <= addr < e for s, e in self.ranges)


_cache: dict[tuple[str, str], Scenario] = {}


def scenario(op: str, chip: str) -> Scenario:
    """The same starting chip and target for every run of (op, chip)."""
    key = (op, chip)
    if key in _cache:
        return _cache[key]
    flash = bytes(registry.load_flash(chip, None))
    rng = random.Random(f"adv-{op}-{chip}")
    before, expected, ranges, data, lib_image, sr = flash, flash, [], b"", flash, None
    if op == "read":
        ranges = [(READ_RANGE[0], READ_RANGE[0] + READ_RANGE[1])]
    if op in ("backup", "station-backup"):
        lib_image = None
        # A flash left unprotected (by an earlier write, or a chip that never protects) is the case in
        # which a damaged read command can erase: model it.
        sr = 0
    elif op == "write":
        data = (rng.randbytes(0x10000) + flash[0x50000:0x51000] + b"\xff" * SECTOR + rng.randbytes(SECTOR))
        ranges = [(WRITE_START, WRITE_START + len(data))]
    elif op == "config":
        cfg = ObkConfig.new(rng.randbytes(6))  # a valid sector (checksummed): what the config editor writes
        parse_assignment(cfg, f"ssid=net-{rng.randrange(1 << 30):x}")
        parse_assignment(cfg, "mqtt_host=192.168.1.10")
        data = cfg.sector()
        start = OBK_CONFIG_OFFSET[chip]
        ranges = [(start, start + SECTOR)]
    elif op == "backup-changed":
        # The library holds the stock dump; since then the chip got new data in an erased 64 KiB block (whose
        # neighbour before it is still erased) and a rewritten KV sector. The backup reads only those two blocks
        # (Session._backup_blocks): one decided unchanged on a CRC reply that is not its own (the erased
        # neighbour's) would be taken from the library, erased.
        cur = bytearray(flash)
        assert cur[CHANGED_BLOCK - 0x20000 : CHANGED_BLOCK + 0x10000] == b"\xff" * 0x30000
        cur[CHANGED_BLOCK : CHANGED_BLOCK + 0x10000] = rng.randbytes(0x10000)
        cur[0x1F0000:0x1F1000] = rng.randbytes(SECTOR)
        before, expected = bytes(cur), bytes(cur)
    elif op == "verify":
        # The file differs from the chip in three sectors: erased on the chip, data in the file; data on the
        # chip, erased in the file; one byte. The verify must name exactly those.
        data = bytearray(flash)
        blank = next(a for a in range(0x11000, len(flash), SECTOR) if flash[a : a + SECTOR] == b"\xff" * SECTOR)
        full = next(a for a in range(0x20000, len(flash), SECTOR) if b"\xff" * 16 not in flash[a : a + SECTOR])
        data[blank + 0x700 : blank + 0x740] = rng.randbytes(0x40)
        data[full : full + SECTOR] = b"\xff" * SECTOR
        data[0x1000 + 0x123] ^= 0x10
        data = bytes(data)
    elif op == "station":
        from bkbench.core.images.builders import build_from_ota

        fx = fixtures_dir()
        assert fx is not None, "the station scenario needs the fixtures (an OpenBK OTA file)"
        ota = (fx / "firmware" / f"OpenBeken-v1.18.219_{chip.lower()}.ug.bin").read_bytes()
        fw = as_firmware(f"OpenBK7231{chip[-1]}_UA_1.18.219.bin", build_from_ota(ota, flash, chip)["ua"])
        plan = place(fw, chip, len(flash))
        lib_image, data = None, fw.data
        ranges = [(plan.start, plan.start + len(plan.payload) + (-len(plan.payload)) % SECTOR)]
        exp = bytearray(flash)
        padded = plan.payload + b"\xff" * (-len(plan.payload) % SECTOR)  # a write ends on a whole sector
        exp[plan.start : plan.start + len(padded)] = padded
        _cache[key] = Scenario(op, chip, flash, bytes(exp), ranges, fw.data, None, None, plan.start)
        return _cache[key]
    elif op == "restore":
        # The chip was flashed since the backup being restored: a block, a free sector and a KV sector
        # differ. The library holds a backup of the chip as it is now.
        if flash[0x60000:0x70000].count(0xFF) == 0x10000:
            # That block is erased in the built-in demo plug (no ../shared): give the backup content there,
            # so putting it back programs sectors instead of only erasing them.
            flash = flash[:0x60000] + rng.randbytes(0x10000) + flash[0x70000:]
            expected = flash
        cur = bytearray(flash)
        cur[0x60000:0x70000] = rng.randbytes(0x10000)
        free = next(p for p in layout_for(chip) if p.kind == "free")
        cur[free.start : free.start + SECTOR] = rng.randbytes(SECTOR)
        cur[0x1F0000:0x1F1000] = rng.randbytes(SECTOR)
        before, lib_image, data = bytes(cur), bytes(cur), flash
        rf = RF_OFFSET[chip]
        ranges = [(0x11000, rf), (rf + SECTOR, len(flash))]
    if data and op not in ("restore", "verify"):
        exp = bytearray(before)
        exp[ranges[0][0] : ranges[0][0] + len(data)] = data
        expected = bytes(exp)
    _cache[key] = Scenario(op, chip, before, expected, ranges, data, lib_image, sr)
    return _cache[key]


@dataclass
class Outcome:
    cls: str
    detail: str = ""
    trace: list[tuple[str, str]] = field(default_factory=list)
    connect_frames: int = 0  # frames of the trace that belong to connecting (link, identify)
    hits: list = field(default_factory=list)  # flips (Flip) and frame faults (FrameFault) applied
    replies: dict[str, int] = field(default_factory=dict)  # reply frames the chip sent, by kind
    crc_requests: list[tuple[int, int]] = field(default_factory=list)  # CheckCRC (start, end) sent, wire addresses
    sr: tuple[int, int] = (0, 0)  # the flash status register before and after
    flash: bytes = b""  # the chip's flash after the run


_names = iter(range(1 << 30))


def raw_plan(data: bytes, start: int, chip: str):
    """Raw data at an address, placed as the picker and `bkbench write --start` place it."""
    return place(as_firmware("data.bin", data), chip, offset=start)


def _library(scn: Scenario, root: Path) -> BackupLibrary:
    lib = BackupLibrary(root)
    if scn.library_image is not None:
        rf = RF_OFFSET[scn.chip]
        mac = parse_mac(scn.library_image[rf : rf + SECTOR])
        lib.save(scn.library_image, {"chip": scn.chip, "mac": mac, "flash_id": FLASH_ID[scn.chip],
                                     "partial": False})
    return lib


def _guarded(fn):
    """Run fn in a thread; (result, exception, hung)."""
    return run_with_deadline(fn, RUN_TIMEOUT)


def run(op: str, chip: str, flips: list[Flip], tmp: Path, backup: bool = True,
        frames: list[FrameFault] | tuple[FrameFault, ...] = (), timing: bool = False) -> Outcome:
    """One operation with `flips` on the wire and `frames` (reply-frame faults, counted from the first
    reply). `backup=False`: no backup of the chip in the library and the write takes none (--no-backup),
    so nothing can be repaired from one. `timing`: the wire-timing model on (and 921600 baud)."""
    scn = scenario(op, chip)
    dev = registry.create_device(chip, wiring="rts", sr=scn.sr, timing=timing)
    dev.flash.data[:] = scn.before
    dev.faults = FaultInjector(FaultPlan(frames=tuple(frames)))
    sr_before = dev.flash.sr
    name = f"adv{next(_names)}"
    registry.register(name, dev)
    lib_root = tmp / name
    lib = _library(scn, lib_root) if backup else BackupLibrary(lib_root)
    preexisting = {e.path for e in lib.list()}
    state: dict = {}

    baud = 921600 if timing else 115200

    def prepare(s: Session) -> None:
        s.open()
        assert s.client is not None
        tamper = LineTamper(s.port, flips)
        state["tamper"] = tamper
        requests = state.setdefault("crc_requests", [])
        write = tamper.write

        def recording_write(data: bytes) -> int:
            if data[:5] == bytes.fromhex("01e0fc0910") and len(data) == 13:  # CheckCRC start, end
                requests.append(struct.unpack_from("<II", data, 5))
            return write(data)

        object.__setattr__(tamper, "write", recording_write)
        s.port = s.client.port = tamper
        s.client.timeout = CLIENT_TIMEOUT

    def go():
        if op.startswith("station"):
            return _station(scn, f"sim://@{name}", lib, baud, prepare)
        s = Session(f"sim://@{name}", baud=baud, reset="rts", link_timeout=5)
        try:
            prepare(s)
            s.backup_library = lib
            s.connect()
            state["connect_frames"] = len(state["tamper"].trace)
            # The calls the workbench's keys and the CLI make (b, w, restore, the config editor's write),
            # without the reboot that ends a write: the flash is judged, not the boot.
            if op in ("backup", "backup-changed"):
                return s.backup(lib).entry
            if op == "read":
                return s.read(*READ_RANGE)
            if op == "verify":
                return s.verify(scn.data, 0)
            s.backup_first = backup
            if op == "write":
                return s.write_image(raw_plan(scn.data, WRITE_START, chip), backup_library=lib, reboot=False)
            if op == "config":
                return s.write_config(scn.data)
            return s.restore(scn.data, backup_library=lib, expected_chip=chip, reboot=False)
        finally:
            s.close()

    try:
        result, exc, hung = _guarded(go)
        tamper = state.get("tamper")
        if isinstance(exc, _StationFailed):
            exc = exc.error
        out = Outcome("OK", trace=list(tamper.trace) if tamper else [],
                      connect_frames=state.get("connect_frames", 0),
                      hits=(list(tamper.hits) if tamper else []) + list(dev.faults.hits),
                      replies=dict(dev.faults.replies), sr=(sr_before, dev.flash.sr), flash=bytes(dev.flash.data),
                      crc_requests=list(state.get("crc_requests", [])))
        out.cls, out.detail = judge(scn, dev, lib, preexisting, result, exc, hung)
        if out.cls != "CRASH" and (dev.flash.sr ^ sr_before) & ~SR_PROTECT_BITS:
            changed = f"status register 0x{sr_before:04X} -> 0x{dev.flash.sr:04X}: bits other than block protection"
            if isinstance(exc, BkError) and "status register" in str(exc):
                # Said, not hidden: a damaged WriteSR can set SRP1, which locks the register until power-off.
                out.cls, out.detail = "REPORTED-DAMAGE", f"{changed} changed; the error says so: {exc}"
            else:
                out.cls, out.detail = "SILENT-DAMAGE", f"{changed} changed"
        return out
    finally:
        registry.unregister(name)
        # Judged: the run's library goes. It holds a 2 MiB backup or two, and a full desync sweep makes
        # ~11,000 runs: ~20 GB left in pytest's temporary folders otherwise.
        shutil.rmtree(lib_root, ignore_errors=True)


class _StationFailed(Exception):
    def __init__(self, error: BkError) -> None:
        self.error = error


def _station(scn: Scenario, url: str, lib: BackupLibrary, baud: int, prepare):
    """`bkbench station --image` on one port (core/station.run_port): backup, write, verify, no reboot;
    "station-backup": `bkbench station --backup-only`."""
    from bkbench.core.station import Plan, run_port

    fw = as_firmware(f"OpenBK7231{scn.chip[-1]}_UA_1.18.219.bin", scn.data) if scn.data else None
    plan = Plan(backup=True, image=Path(fw.name) if fw else None, verify=True, reboot=False)
    result = run_port(url, plan, baud=baud, library=lib, reset="rts", firmware=fw, session_hook=prepare,
                      link_timeout=5)
    if result.state == "done":
        return result
    if result.error.startswith("internal error"):
        raise RuntimeError(result.error)
    raise _StationFailed(BkError(result.error, record=result.record))


def _sectors_differing(a: bytes, b: bytes) -> list[int]:
    return [x for x in range(0, len(a), SECTOR) if a[x : x + SECTOR] != b[x : x + SECTOR]]


def judge(scn: Scenario, dev, lib: BackupLibrary, preexisting: set, result, exc, hung) -> tuple[str, str]:
    if hung:
        return "CRASH", f"hung for {RUN_TIMEOUT:.0f} s"
    flash = bytes(dev.flash.data)
    # A backup in the library must be what the chip held: a new one must equal the flash as it was (also one
    # that read only the blocks differing from an entry). One derived from a write (core/backups.py: a backup
    # plus a verified write) only after a success, and exactly what the chip holds.
    for entry in lib.list():
        if entry.path in preexisting:
            continue
        saved = entry.path.read_bytes()
        if entry.derived is not None and entry.derived.get("operation") != "read":
            if exc is not None:
                return "SILENT-DAMAGE", f"derived entry {entry.name} recorded though the operation failed: {exc}"
            if saved != flash or saved != scn.expected:
                bad = _sectors_differing(saved, flash) or _sectors_differing(saved, scn.expected)
                return "SILENT-DAMAGE", (f"derived entry {entry.name} differs from what the chip holds at "
                                         f"{', '.join(hex(a) for a in bad[:6])}")
            continue
        if saved != scn.before:
            bad = _sectors_differing(saved, scn.before)
            return "SILENT-DAMAGE", (f"library backup {entry.name} differs from what the chip held at "
                                     f"{', '.join(hex(a) for a in bad[:6])}")
    outside = [a for a in _sectors_differing(flash, scn.before) if not scn.inside(a)]
    if exc is None:
        if scn.op in ("backup", "backup-changed") and (result is None or lib.load(result) != scn.before):
            return "SILENT-DAMAGE", "backup reported but it is not what the chip held"
        if scn.op == "station-backup" and not any(lib.load(e) == scn.before for e in lib.list()):
            return "SILENT-DAMAGE", "station reported a backup but the library holds none of what the chip held"
        if scn.op == "read":
            lo, n = READ_RANGE
            bad = [a for a in range(lo, lo + n, SECTOR)
                   if result[a - lo : a - lo + SECTOR] != scn.before[a : a + SECTOR]]
            if bad:
                return "SILENT-DAMAGE", f"read returned wrong data at {', '.join(hex(a) for a in bad[:6])}"
        if scn.op == "verify":
            truth = [a for a in range(0, len(scn.data), SECTOR) if scn.data[a : a + SECTOR] != flash[a : a + SECTOR]]
            said = [a for s, e in result.mismatched for a in range(s, e, SECTOR)]
            if said != truth:
                return "SILENT-DAMAGE", (f"verify said the chip differs at {[hex(a) for a in said[:6]]}, it differs "
                                         f"at {[hex(a) for a in truth[:6]]}")
        wrong = _sectors_differing(flash, scn.expected)
        if wrong:
            return "SILENT-DAMAGE", (f"reported success but sectors {', '.join(hex(a) for a in wrong[:6])} are "
                                     f"wrong ({len(outside)} outside the range)")
        return "OK", ""
    if not isinstance(exc, BkError):
        return "CRASH", f"{type(exc).__name__}: {exc}"
    text = str(exc).upper()
    record = getattr(exc, "record", None)
    if record is not None:
        rem = record.remaining()
        lo, hi = record.start, record.start + record.length
        lied = [a for a in range(lo - lo % SECTOR, hi, SECTOR)
                if scn.inside(a) and not any(s <= a < e for s, e in rem)
                and flash[a : a + SECTOR] != scn.expected[a : a + SECTOR]]
        if lied:
            return "SILENT-DAMAGE", (f"error {exc} reports as done sectors {', '.join(hex(a) for a in lied[:6])} "
                                     "that are wrong")
    if outside:
        # Named one by one, or inside a range the error names ("0x000000-0x1FFFFF").
        spans = [(int(a, 16), int(b, 16)) for a, b in re.findall(r"0X([0-9A-F]{6})-0X([0-9A-F]{6})", text)]
        unnamed = [a for a in outside if f"{a:06X}" not in text and not any(lo <= a <= hi for lo, hi in spans)]
        if unnamed:
            return "SILENT-DAMAGE", (f"error '{exc}' but sectors {', '.join(hex(a) for a in unnamed[:6])} outside "
                                     "the range changed and are not named")
        return "REPORTED-DAMAGE", str(exc)
    return "CLEAN-FAIL", str(exc)


# ---------------------------------------------------------------------------------------- targets
def _bits(width: int, full: bool) -> list[int]:
    if width <= 32:
        return list(range(width))
    # wide data fields: a spread of bits (first byte, last byte, some in between)
    picks = [0, 7, 8 * 17 + 3, width // 2 + 5, width - 8, width - 1]
    return picks if full else picks[:3]


def _occurrences(trace: list[tuple[str, str]], connect_frames: int, key: tuple[str, str]) -> list[int]:
    """Which frames of a kind to hit: the first while connecting, then first / middle / last of the op."""
    in_connect = [i for i, t in enumerate(trace[:connect_frames]) if t == key]
    in_op = [i for i, t in enumerate(trace[connect_frames:]) if t == key]
    picks = []
    if in_connect:
        picks.append(1)
    if in_op:
        base = len(in_connect)
        for j in (0, len(in_op) // 2, len(in_op) - 1):
            picks.append(base + j + 1)
    return sorted(set(picks))


def all_flips(trace: list[tuple[str, str]], connect_frames: int) -> list[Flip]:
    out = []
    for key in sorted(Counter(trace)):
        direction, kind = key
        if kind in ("link", "set_baud", "reboot"):
            nths = [1]  # link spam: any one frame is like another
        else:
            nths = _occurrences(trace, connect_frames, key)
        for name, width in fields_of(kind, direction == H2C).items():
            if kind == "crc" and name == "end" and direction == H2C:
                # Bits above 24 make the chip hash gigabytes (minutes on a real chip, gigabytes of memory
                # in the simulator): the host sees a chip that stopped answering, as in the reset tests.
                width = 25
            for bit in _bits(width, True):
                for nth in nths:
                    out.append(Flip(direction, kind, name, bit, nth))
    return out


def sample(flips: list[Flip], n: int, seed: str, cover: bool = True) -> list[Flip]:
    """A fixed sample; with `cover`, every (direction, kind, field) at least once, then random ones."""
    rng = random.Random(seed)
    by_field: dict[tuple[str, str, str], list[Flip]] = {}
    for f in flips:
        by_field.setdefault((f.direction, f.kind, f.field), []).append(f)
    picked = [rng.choice(v) for _, v in sorted(by_field.items())] if cover else []
    rest = [f for f in flips if f not in set(picked)]
    picked += rng.sample(rest, max(0, min(len(rest), n - len(picked))))
    return picked


__all__ = ["C2H", "CHIPS", "CLASSES", "H2C", "OPS", "Flip", "Outcome", "all_flips", "run", "sample", "scenario"]
