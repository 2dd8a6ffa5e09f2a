"""Fault-injection reliability suite: seeded faults at random points of every flash operation.

Every run must end either with verified correct data or with a BkError that says which range is still
unverified (OperationFailed / OperationCancelled carrying an OperationRecord); then, with the faults
gone, a re-run on the same simulated chip (kept by name, re-opened, reset by RTS) must complete.
No run may report success with wrong data, and no write may change flash outside what it reports.

Default size fits CI; BKBENCH_RELIABILITY_RUNS=N runs N seeds per operation (marked slow).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bkbench.core.backups import BackupLibrary
from bkbench.core.errors import BkError
from bkbench.core.images.placement import as_firmware, place
from bkbench.core.session import Session
from bkbench.core.sim import registry
from bkbench.core.sim.faults import FaultInjector, FaultPlan
from simhelpers import run_with_deadline

SECTOR = 0x1000
OPS = ("read", "backup", "write", "verify", "restore")
KINDS = ("drop", "flip", "insert", "rx_corrupt", "stall", "reset", "disconnect", "mixed")
CI_RUNS = 8  # seeds per operation in the default run
BIG_RUNS = int(os.environ.get("BKBENCH_RELIABILITY_RUNS", "0") or 0)
RUN_TIMEOUT = 120.0  # a run taking longer than this counts as a hang
CLIENT_TIMEOUT = 0.25  # replies are immediate with the timing model off; keeps fault recovery quick


@dataclass
class Tally:
    runs: int = 0
    faults: int = 0
    clean: int = 0  # succeeded, no fault was actually injected
    recovered: int = 0  # succeeded with correct data despite injected faults
    failed_cleanly: int = 0  # BkError naming the unverified range
    unclear: list[str] = field(default_factory=list)  # BkError without the range
    crashes: list[str] = field(default_factory=list)  # non-BkError exceptions and hangs
    silent: list[str] = field(default_factory=list)  # success with wrong data / unreported damage
    rerun_failed: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"reliability: runs={self.runs} faults_injected={self.faults} recovered={self.recovered} "
                f"clean={self.clean} failed_cleanly={self.failed_cleanly} unclear_errors={len(self.unclear)} "
                f"crashes={len(self.crashes)} rerun_failures={len(self.rerun_failed)} "
                f"silent_corruptions={len(self.silent)}")


TALLY = Tally()


# ------------------------------------------------------------------------------------------ scenario
def make_plan(kind: str, rng: random.Random, seed: int, down: int, up: int, commands: int,
              host_bytes: int) -> FaultPlan:
    """About 1-3 faults of `kind` spread over an operation of the given size (seeded)."""
    n = rng.uniform(0.8, 3.0)
    plan = FaultPlan(seed=seed, stall_s=rng.choice((0.1, 0.4)))
    if kind in ("drop", "flip", "insert"):
        setattr(plan, f"{kind}_rate", n / max(down, 1))
    elif kind == "rx_corrupt":
        plan.rx_corrupt_rate = n / max(up, 1)
    elif kind == "stall":
        plan.stall_rate = n / max(commands, 1)
    elif kind == "reset":
        plan.reset_rate = n / max(commands, 1)
    elif kind == "disconnect":
        plan.disconnect_after = host_bytes + rng.randrange(max(down, 1))
    else:  # mixed
        plan.flip_rate = n / 2 / max(down, 1)
        plan.drop_rate = n / 2 / max(down, 1)
        plan.rx_corrupt_rate = n / 2 / max(up, 1)
        plan.reset_rate = 0.5 / max(commands, 1)
    return plan


@dataclass
class Case:
    op: str
    seed: int
    kind: str
    chip: str
    start: int = 0
    data: bytes = b""  # what a write / verify / restore uses
    expected: bytes = b""  # the whole flash as it must be after a successful run


def build_case(op: str, seed: int, tmp: Path) -> tuple[Case, registry.SimDevice]:
    rng = random.Random(f"{op}-{seed}")
    kind = KINDS[seed % len(KINDS)]
    chip = ("BK7231N", "BK7231T")[(seed // len(KINDS)) % 2]
    dev = registry.create_device(chip, wiring="rts", seed=seed)
    flash = bytes(dev.flash.data)
    case = Case(op, seed, kind, chip, expected=flash)
    if op == "read":
        case.start = rng.randrange(0, 0x200000 - 0x40000, SECTOR)
        case.data = b"\0" * 0x40000  # length only
    elif op == "write":
        case.start = rng.randrange(0x11000, 0x1D0000 - 0x20000, SECTOR)
        sectors = []
        for i in range(32):
            old = flash[case.start + i * SECTOR : case.start + (i + 1) * SECTOR]
            pick = rng.random()
            if pick < 0.25:
                sectors.append(old)  # already identical: the differential path skips it
            elif pick < 0.4:
                sectors.append(b"\xff" * SECTOR)  # erase only
            else:
                sectors.append(rng.randbytes(SECTOR))
        case.data = b"".join(sectors)
        exp = bytearray(flash)
        exp[case.start : case.start + len(case.data)] = case.data
        case.expected = bytes(exp)
    elif op == "verify":
        data = bytearray(flash[:0x100000])
        if rng.random() < 0.5:  # half the runs compare against a file that differs in a few sectors
            for _ in range(rng.randint(1, 3)):
                a = rng.randrange(0, len(data), SECTOR)
                data[a + rng.randrange(SECTOR)] ^= 0x5A
        case.data = bytes(data)
    elif op == "restore":
        # The chip was flashed since its backup: the restore writes the full dump back over everything.
        case.data = flash
        for _ in range(rng.randint(2, 6)):
            a = rng.randrange(0x11000, 0x200000, SECTOR)
            dev.flash.data[a : a + SECTOR] = rng.randbytes(SECTOR)
        for a in range(0x11000 + 0x10000 * rng.randrange(8), 0x11000 + 0x10000 * 8, SECTOR):
            dev.flash.data[a : a + SECTOR] = b"\xff" * SECTOR if a % 0x3000 else rng.randbytes(SECTOR)
        dev.flash.data[0x100 : 0x200] = rng.randbytes(0x100)  # inside the bootloader: allow_protected
    return case, dev


def sizes(case: Case) -> tuple[int, int, int]:
    """Rough bytes chip->host, host->chip and command count of the operation (for fault rates)."""
    if case.op == "read":
        n = len(case.data) // SECTOR
        return n * 4111, n * 12, n + n // 16
    if case.op == "backup":
        return 512 * 4111, 512 * 12, 544
    if case.op == "verify":
        n = len(case.data) // 0x10000
        return n * 40, n * 13, n * 3
    n = len(case.data) // SECTOR
    return n * 60, n * 3000, n * 4


# ------------------------------------------------------------------------------------------ running
def run_op(case: Case, url: str, lib: BackupLibrary, faults: FaultPlan | None, dev) -> object:
    s = Session(url, baud=115200, reset="rts", link_timeout=5)
    try:
        s.connect()
        assert s.client is not None
        s.client.timeout = CLIENT_TIMEOUT
        if faults is not None:
            if faults.disconnect_after is not None:
                faults.disconnect_after += dev._host_bytes  # counted from now
            dev.faults = FaultInjector(faults)
        # The calls the workbench's keys and the CLI make (b, w, v, restore), without the reboot that ends
        # a write: the flash and the library are judged, not the boot.
        if case.op == "read":
            return s.read(case.start, len(case.data))
        if case.op == "backup":
            return s.backup(lib).entry
        if case.op == "write":
            plan = place(as_firmware("data.bin", case.data), s.info.chip if s.info else None, offset=case.start)
            return s.write_image(plan, backup_first=False, reboot=False)
        if case.op == "verify":
            return s.verify(case.data, 0)
        return s.restore(case.data, include_bootloader=True, keep_rf=False, backup_first=False, reboot=False)
    finally:
        s.close()


def guarded(fn):
    """Run fn in a thread; (result, exception, hung)."""
    return run_with_deadline(fn, RUN_TIMEOUT)


def check_library(lib: BackupLibrary) -> list[str]:
    """Only complete dumps under final names: every .bin has a sidecar whose SHA-256 matches."""
    problems = []
    if not lib.root.is_dir():
        return problems
    for p in lib.root.iterdir():
        if p.suffix == ".bin":
            side = p.with_suffix(".json")
            if not side.is_file():
                problems.append(f"{p.name} has no sidecar")
                continue
            meta = json.loads(side.read_text())
            if hashlib.sha256(p.read_bytes()).hexdigest() != meta.get("sha256"):
                problems.append(f"{p.name} does not match its sidecar")
            if p.stat().st_size != 0x200000 and p.stat().st_size != meta.get("size"):
                problems.append(f"{p.name} is partial")
        elif p.suffix != ".json":
            problems.append(f"stray file {p.name} in the library")
    return problems


def check_success(case: Case, result, dev, lib: BackupLibrary) -> str | None:
    """None if a successful run returned and left exactly the right data, else what is wrong."""
    flash = bytes(dev.flash.data)
    if case.op == "read":
        want = case.expected[case.start : case.start + len(case.data)]
        return None if result == want else "read returned wrong data"
    if case.op == "backup":
        data = lib.load(result)
        return None if data == case.expected else "backup holds wrong data"
    if case.op == "verify":
        truth = [a for a in range(0, len(case.data), SECTOR)
                 if case.data[a : a + SECTOR] != flash[a : a + SECTOR]]
        said = [a for s, e in result.mismatched for a in range(s, e, SECTOR)]
        if result.ok != (not truth) or said != truth:
            return (f"verify said ok={result.ok} at {[hex(a) for a in said[:10]]} "
                    f"but the chip differs at {[hex(a) for a in truth[:10]]}")
        return None
    if flash != case.expected:
        bad = [a for a in range(0, len(flash), SECTOR) if flash[a : a + SECTOR] != case.expected[a : a + SECTOR]]
        return f"write reported success but sectors {', '.join(hex(a) for a in bad[:6])} are wrong"
    return None


def check_failure(case: Case, exc: BaseException, dev, before: bytes) -> tuple[str, str | None]:
    """('clean'|'unclear'|'crash', silent-damage description or None)."""
    if not isinstance(exc, BkError):
        return "crash", None
    record = getattr(exc, "record", None)
    if record is None or "still to do" not in str(exc):
        return "unclear", None
    if case.op in ("write", "restore"):
        flash = bytes(dev.flash.data)
        rem = record.remaining()
        lo, hi = record.start, record.start + record.length
        for a in range(0, len(flash), SECTOR):
            in_rem = any(s <= a < e for s, e in rem)
            if in_rem:
                continue  # reported as still to do: any state is allowed there
            want = case.expected[a : a + SECTOR] if lo <= a < hi else before[a : a + SECTOR]
            if flash[a : a + SECTOR] != want:
                where = "reported done" if lo <= a < hi else "outside the write"
                return "clean", f"sector 0x{a:06X} ({where}) is wrong after: {exc}"
    return "clean", None


def one_run(op: str, seed: int, tmp: Path) -> None:
    case, dev = build_case(op, seed, tmp)
    name = f"rel-{op}-{seed}"
    registry.register(name, dev)
    url = f"sim://@{name}"
    lib = BackupLibrary(tmp / f"lib-{op}-{seed}")
    tag = f"{op} seed={seed} kind={case.kind} chip={case.chip}"
    try:
        down, up, cmds = sizes(case)
        plan = make_plan(case.kind, random.Random(seed * 7919 + 1), seed, down, up, cmds, 0)
        before = bytes(dev.flash.data)
        result, exc, hung = guarded(lambda: run_op(case, url, lib, plan, dev))
        TALLY.runs += 1
        TALLY.faults += dev.faults.total + (1 if dev.disconnected else 0)
        injected = dev.faults.total > 0 or dev.disconnected
        if hung:
            TALLY.crashes.append(f"{tag}: hung for {RUN_TIMEOUT:.0f} s")
            return
        if exc is None:
            problem = check_success(case, result, dev, lib)
            if problem:
                TALLY.silent.append(f"{tag}: {problem}")
            elif injected:
                TALLY.recovered += 1
            else:
                TALLY.clean += 1
        else:
            kind, damage = check_failure(case, exc, dev, before)
            if kind == "crash":
                TALLY.crashes.append(f"{tag}: {type(exc).__name__}: {exc}")
            elif kind == "unclear":
                TALLY.unclear.append(f"{tag}: {type(exc).__name__}: {exc}")
            else:
                TALLY.failed_cleanly += 1
            if damage:
                TALLY.silent.append(f"{tag}: {damage}")
        TALLY.silent.extend(f"{tag}: {p}" for p in check_library(lib))

        # Faults gone, adapter plugged back in: the same chip, re-opened by name, must complete.
        dev.faults = FaultInjector(FaultPlan())
        dev.disconnected = False
        before = bytes(dev.flash.data)
        result, exc, hung = guarded(lambda: run_op(case, url, lib, None, dev))
        if hung or exc is not None:
            TALLY.rerun_failed.append(f"{tag}: re-run {'hung' if hung else repr(exc)}")
            return
        problem = check_success(case, result, dev, lib)
        if problem:
            TALLY.silent.append(f"{tag}: re-run: {problem}")
        TALLY.silent.extend(f"{tag}: re-run: {p}" for p in check_library(lib))
    finally:
        registry.unregister(name)


PROBLEMS = ("silent", "crashes", "unclear", "rerun_failed")


def _problem_count() -> dict[str, int]:
    return {k: len(getattr(TALLY, k)) for k in PROBLEMS}


def _assert_no_new_problems(before: dict[str, int]) -> None:
    msgs = [f"{k}: {m}" for k in PROBLEMS for m in getattr(TALLY, k)[before[k]:]]
    assert not msgs, "\n".join(msgs[:20])


# ------------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("op", OPS)
def test_faults_ci(op: str, tmp_path: Path) -> None:
    before = _problem_count()
    for seed in range(CI_RUNS):
        one_run(op, seed, tmp_path)
    _assert_no_new_problems(before)


@pytest.mark.slow
@pytest.mark.skipif(not BIG_RUNS, reason="set BKBENCH_RELIABILITY_RUNS=N for the large run")
@pytest.mark.parametrize("op", OPS)
def test_faults_large(op: str, tmp_path: Path) -> None:
    before = _problem_count()
    for seed in range(CI_RUNS, CI_RUNS + BIG_RUNS):
        one_run(op, seed, tmp_path)
    _assert_no_new_problems(before)


def test_crc_of_fixture_dump_is_what_the_chip_reports(tmp_path: Path) -> None:
    """Guard for the checks above: a fault-free run reads exactly the device's flash."""
    dev = registry.create_device("BK7231N", wiring="rts")
    registry.register("rel-guard", dev)
    try:
        with Session("sim://@rel-guard", baud=115200, reset="rts", link_timeout=5) as s:
            data = s.read(0x11000, 0x10000)
        assert zlib.crc32(data) == zlib.crc32(bytes(dev.flash.data[0x11000:0x21000]))
    finally:
        registry.unregister("rel-guard")


class _HitEraseAddress(FaultInjector):
    """Flip one address bit of the first 4 KiB FlashErase frame on its way to the chip (a UART bit error)."""

    def __init__(self) -> None:
        super().__init__(FaultPlan())
        self.hit = False

    def corrupt(self, data: bytes, direction: str) -> bytes:
        # 01 E0 FC FF F4 len16 0F size addr32: byte 11 holds address bits 16..23.
        if direction == "rx" and not self.hit and len(data) == 13 and data[7] == 0x0F and data[8] == 0x20:
            self.hit = True
            self.counts["rx_corrupt"] += 1
            return data[:11] + bytes([data[11] ^ 0x01]) + data[12:]
        return data


@pytest.mark.parametrize("chip", ["BK7231N", "BK7231T"])
def test_corrupted_erase_address_is_never_silent(chip: str) -> None:
    """The chip erases the sector the corrupted frame names and echoes that address. The engine sees the
    echo mismatch and retries the right sector; the other sector stays erased. A write may fail, but it
    must not report success while a sector outside its range was destroyed."""
    dev = registry.create_device(chip, wiring="rts")
    registry.register(f"rel-erase-{chip}", dev)
    start, image = 0x40000, bytes(range(256)) * 16 * 8  # the flipped bit points at 0x50000 (app code)
    try:
        with Session(f"sim://@rel-erase-{chip}", baud=115200, reset="rts", link_timeout=5) as s:
            s.connect()
            before = bytes(dev.flash.data)
            injector = _HitEraseAddress()
            dev.faults = injector
            TALLY.runs += 1
            TALLY.faults += 1
            try:
                s.write(image, start, backup_first=False)
                error = None
            except BkError as exc:
                error = exc
        assert injector.hit
        flash = bytes(dev.flash.data)
        damaged = [a for a in range(0, len(flash), SECTOR)
                   if not start <= a < start + len(image) and flash[a : a + SECTOR] != before[a : a + SECTOR]]
        if error is None and damaged:
            TALLY.silent.append(f"write {chip} 0x{start:X}: reported success, sectors "
                                f"{', '.join(hex(a) for a in damaged)} outside the write were erased")
        elif error is None:
            TALLY.recovered += 1
        else:
            TALLY.failed_cleanly += 1
        assert error is not None or not damaged, (
            f"write reported success but {', '.join(hex(a) for a in damaged)} (outside 0x{start:X}+"
            f"0x{len(image):X}) was erased by the corrupted command")
        if error is not None and damaged:
            assert any(f"{a:06X}" in str(error).upper() for a in damaged), str(error)
    finally:
        registry.unregister(f"rel-erase-{chip}")


class _HitCrcAddress(FaultInjector):
    """Flip an address bit of the n-th CheckCRC frame on its way to the chip: it hashes another range once."""

    def __init__(self, nth: int) -> None:
        super().__init__(FaultPlan())
        self.nth, self.seen = nth, 0

    def corrupt(self, data: bytes, direction: str) -> bytes:
        # 01 E0 FC 09 10 start32 end32: byte 6 holds start bits 8..15.
        if direction == "rx" and len(data) == 13 and data[3:5] == b"\x09\x10":
            self.seen += 1
            if self.seen == self.nth:
                self.counts["rx_corrupt"] += 1
                return data[:6] + bytes([data[6] ^ 0x20]) + data[7:]
        return data


@pytest.mark.parametrize("nth", [2, 3, 9])
def test_verify_does_not_report_a_sector_hit_by_a_damaged_crc_command(nth: int) -> None:
    dev = registry.create_device("BK7231N", wiring="rts")
    registry.register("rel-verify-crc", dev)
    try:
        data = bytearray(dev.flash.data[:0x10000])
        data[0x3010] ^= 0x5A  # the one sector that really differs
        with Session("sim://@rel-verify-crc", baud=115200, reset="rts", link_timeout=5) as s:
            s.connect()
            dev.faults = _HitCrcAddress(nth)
            report = s.verify(bytes(data), 0)
        assert dev.faults.counts["rx_corrupt"] == 1
        assert report.mismatched == [(0x3000, 0x4000)], report.summary()
    finally:
        registry.unregister("rel-verify-crc")


def test_summary() -> None:
    """Runs last (file order): prints the counts and insists on zero silent corruptions."""
    print("\n" + TALLY.line())
    assert TALLY.runs > 0 or os.environ.get("PYTEST_XDIST_WORKER"), "no reliability run happened"
    assert not TALLY.silent, "\n".join(TALLY.silent[:20])
