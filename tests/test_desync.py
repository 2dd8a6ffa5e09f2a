"""Desync faults (issue 20): whole reply frames repeated, replaced by the chip's previous reply of their kind,
copied again one or two commands later, delivered after the next reply, or dropped (core/sim/faults.py),
for every reply kind of backup, verify, write, restore, config write and station on BK7231N and BK7231T.
Judged on the simulated flash and the backup library only (tests/adversarial.py), never on what the engine
says. core/ops/crc.py holds the argument these runs attack.

The default run takes the cases issue 20 reported plus a seeded sample of every (operation, chip); the full
sweep (every CheckCRC reply of every operation stale and copied late, a spread of the other kinds and
actions, writes also without a backup) is marked slow: ./dev test --long. Each test hands its counts per
outcome class to the session summary (tests/conftest.py), which prints them per test and in total at the end,
with or without xdist.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import pytest
from adversarial import CHANGED_BLOCK, CHIPS, CLASSES, DESYNC_OPS, run, scenario
from bkbench.core.paths import fixtures_dir as find_fixtures
from bkbench.core.sim.faults import FrameFault
from bkbench.core.sim.tamper import H2C, Flip

TALLY: Counter = Counter()
SILENT: list[str] = []
FAILED: list[str] = []  # the clean failures and reported damage, for the summary
UNREACHED = [0]  # faults planned on a reply that never came (not runs of any class)
ACTIONS = (("stale", 1), ("late", 1), ("late", 2), ("repeat", 1), ("swap", 1), ("drop", 1))
EXHAUSTIVE = {("crc", "stale", 1), ("crc", "late", 1)}  # every reply of the kind; the rest: a spread
SPREAD = 8
WRITES = ("write", "restore", "config")
RBL_HEADER = 0x129F0A  # the stock app's RBL header in both fixture dumps (0x129F0A-0x129F6F on N)


@pytest.fixture(autouse=True)
def _tally(request: pytest.FixtureRequest):
    """This test's runs per outcome class (and its silent / crash lines), for the session summary."""
    before, bad, failed, unreached, t0 = Counter(TALLY), len(SILENT), len(FAILED), UNREACHED[0], time.monotonic()
    yield
    counts = TALLY - before
    if counts:
        request.node.user_properties.append(("tally", {
            "counts": [(c, counts[c]) for c in CLASSES], "bad": SILENT[bad:], "failed": FAILED[failed:],
            "unreached": UNREACHED[0] - unreached, "seconds": round(time.monotonic() - t0)}))


def _needs(op: str) -> None:
    if op == "station" and find_fixtures() is None:
        pytest.skip("the station scenario writes a real OpenBK image (needs the fixtures)")


_dry: dict[tuple[str, str, bool], object] = {}


def _dry_run(op: str, chip: str, tmp: Path, backup: bool = True):
    key = (op, chip, backup)
    if key not in _dry:
        out = run(op, chip, [], tmp, backup=backup)
        assert out.cls == "OK", f"fault-free {op} on {chip}: {out.cls} {out.detail}"
        _dry[key] = out
    return _dry[key]


def _judge(op: str, chip: str, faults: list[FrameFault], tmp: Path, backup: bool = True) -> list[str]:
    """Run each fault alone; returns the silent / crash lines (and counts every run in TALLY)."""
    bad = []
    for f in faults:
        out = run(op, chip, [], tmp, backup=backup, frames=[f])
        if not out.hits:
            UNREACHED[0] += 1
            continue  # that reply never came (a run that took another path)
        TALLY[out.cls] += 1
        line = f"{out.cls}: {f.describe()} during {op}{'' if backup else ' --no-backup'} on {chip}: {out.detail}"
        if out.cls in ("SILENT-DAMAGE", "CRASH"):
            SILENT.append(line)
            bad.append(line)
        elif out.cls != "OK":
            FAILED.append(line)
    return bad


def _spread(n: int, k: int = SPREAD) -> list[int]:
    if n <= k:
        return list(range(1, n + 1))
    return sorted({1, n, *(1 + i * (n - 1) // (k - 1) for i in range(k))})


def _nth_covering(out, addr: int, chip: str) -> int:
    """The 1-based index of the first CheckCRC request of a run that hashes `addr` (as a strong-check piece:
    shorter than a sector), i.e. the reply a stale one can replace."""
    size = len(scenario("backup", chip).before)
    for i, (start, end) in enumerate(out.crc_requests, 1):
        lo, hi = start % size, end % size
        if lo <= addr < hi and hi - lo <= 0x1000:
            return i
    raise AssertionError(f"no CheckCRC piece covers 0x{addr:06X}")


# ------------------------------------------------------------------ the failures issue 20 reported
@pytest.mark.parametrize("chip", CHIPS)
@pytest.mark.parametrize("action,lag", [("stale", 1), ("late", 1), ("late", 2)])
def test_stale_crc_reply_never_vouches_the_rbl_header_as_erased(chip: str, action: str, lag: int,
                                                                 tmp_path: Path, fixtures_dir: Path) -> None:
    """The piece of the strong check that holds the stock app's RBL header, answered with the previous
    piece's reply (erased): `bkbench read` stored 99 bytes of 0xFF there and called them verified."""
    dry = _dry_run("backup", chip, tmp_path)
    nth = _nth_covering(dry, RBL_HEADER, chip)
    fault = FrameFault("crc", nth, "stale") if action == "stale" else FrameFault("crc", nth - lag, "late", lag)
    assert not _judge("backup", chip, [fault], tmp_path)


def _nth_request(out, addr: int, size: int, after: int = 0) -> int:
    """The 1-based index of the first CheckCRC request after the `after`-th that starts at `addr` and hashes
    at most `size` bytes (a block CRC may go out in two parts)."""
    for i, (start, end) in enumerate(out.crc_requests[after:], after + 1):
        if start % 0x200000 == addr and end - start <= size:
            return i
    raise AssertionError(f"no CheckCRC request at 0x{addr:06X}")


def test_stale_block_and_sector_crcs_never_skip_a_restore_sector(tmp_path: Path) -> None:
    """restore --no-backup on BK7231T: the block CRC of 0x1C0000 (taken before the write) or the CRC of
    sector 0x1C8000 (asked before writing it) answered with the previous reply: the restore skipped the
    sector, which differed, and said "verified by CRC"."""
    dry = _dry_run("restore", "BK7231T", tmp_path, backup=False)
    block = _nth_request(dry, 0x1C0000, 0x10000)
    sector = _nth_request(dry, 0x1C8000, 0x1000, after=block)
    faults = [FrameFault("crc", block, "stale"), FrameFault("crc", sector, "stale"),
              FrameFault("crc", sector - 1, "late", 1)]
    assert not _judge("restore", "BK7231T", faults, tmp_path, backup=False)


@pytest.mark.parametrize("chip", CHIPS)
def test_stale_erase_echo_never_puts_old_content_into_a_written_span(chip: str, tmp_path: Path) -> None:
    """A restore writes two spans (around the RF sector). The first erase of the second span answered with
    the previous erase's reply names a block of the first span: that block was "repaired" from the backup,
    i.e. the old content went back over the restored one, and every check passed."""
    dry = _dry_run("restore", chip, tmp_path)
    faults = [FrameFault("erase", k, "stale") for k in range(2, dry.replies["erase"] + 1)]
    faults += [FrameFault("write4k", k, "stale") for k in _spread(dry.replies["write4k"], 4)[1:]]
    assert not _judge("restore", chip, faults, tmp_path)


@pytest.mark.parametrize("op,chip", [("write", "BK7231N"), ("config", "BK7231T")])
def test_a_stale_crc_reply_neither_fools_nor_fails_a_write(op: str, chip: str, tmp_path: Path) -> None:
    """--no-backup: every CheckCRC reply of a write / config write in turn replaced by the previous one. It
    must neither pass (a skipped sector) nor stop the write (a false "outside damage", an unconfirmed
    flash size): a stale reply is recognised, and asked again."""
    dry = _dry_run(op, chip, tmp_path, backup=False)
    failed = []
    for k in range(1, dry.replies["crc"] + 1):
        out = run(op, chip, [], tmp_path, backup=False, frames=[FrameFault("crc", k, "stale")])
        TALLY[out.cls] += 1
        if out.cls != "OK":
            failed.append(f"{out.cls}: stale crc reply #{k}: {out.detail}")
    assert not failed, "\n".join(failed[:10])


@pytest.mark.parametrize("chip", CHIPS)
@pytest.mark.parametrize("op,nth", [("config", 1), ("write", 17)])
@pytest.mark.parametrize("action", ["drop", "swap"])
def test_a_lost_write_reply_without_a_backup_is_no_false_outside_damage(op: str, nth: int, action: str, chip: str,
                                                                         tmp_path: Path) -> None:
    """--no-backup: a Write4K whose reply never comes (or comes after the next) may have programmed past its
    sector (a damaged length), so the next sector is suspect. With no backup to compare it with, the write
    used to fail at once naming it ("may have erased or overwritten sector 0x1D2000"), on a flash that was
    never touched there (the full sweep's only 4 failures). The guard's CRCs of everything outside the
    write, taken before it, decide instead."""
    out = run(op, chip, [], tmp_path, backup=False, frames=[FrameFault("write4k", nth, action)])
    assert out.hits
    TALLY[out.cls] += 1
    assert out.cls == "OK", out.detail


@pytest.mark.parametrize("chip", CHIPS)
def test_a_misdirected_write_without_a_backup_is_named(chip: str, tmp_path: Path) -> None:
    """The other side of the test above: a Write4K whose address is damaged on the way (bit 16) programs
    another block. With no backup the guard cannot put it back; its error names the block's range."""
    out = run("config", chip, [Flip(H2C, "write4k", "addr", 16)], tmp_path, backup=False)
    assert out.hits
    TALLY[out.cls] += 1
    assert out.cls == "REPORTED-DAMAGE", (out.cls, out.detail)
    assert "may have changed" in out.detail and "-0x" in out.detail


def test_late_crc_copy_with_the_timing_model(tmp_path: Path, fixtures_dir: Path) -> None:
    """With real wire timing (921600 baud): the previous piece's reply arrives again 0.5 ms after the next
    request reaches the chip (the host has drained its input), 10 ms before the chip's own answer."""
    dry = _dry_run("read", "BK7231N", tmp_path)
    nth = _nth_covering(dry, RBL_HEADER, "BK7231N")
    out = run("read", "BK7231N", [], tmp_path, frames=[FrameFault("crc", nth - 1, "late", 1, 0.0005)], timing=True)
    assert out.hits
    TALLY[out.cls] += 1
    assert out.cls == "OK", out.detail


def test_station_backup_survives_one_lost_block_crc(tmp_path: Path) -> None:
    """`station --backup-only` asks the block CRCs first (is this chip already in the library?) and had no
    retry there: one lost or damaged CheckCRC reply failed the port."""
    dry = _dry_run("station-backup", "BK7231N", tmp_path)
    first_block = _nth_request(dry, 0x10000, 0x10000)
    out = run("station-backup", "BK7231N", [], tmp_path, frames=[FrameFault("crc", first_block, "drop")])
    assert out.hits
    TALLY[out.cls] += 1
    assert out.cls == "OK", (out.cls, out.detail)


@pytest.mark.parametrize("chip", CHIPS)
def test_stale_block_crc_never_keeps_a_changed_block_from_the_library(chip: str, tmp_path: Path) -> None:
    """A backup that reads only the blocks differing from the library image (Session._backup_blocks) decides
    which differ by the chip's block CRCs. The block that got new data follows an erased one, whose CRC the
    library image also has for it: its reply replaced by the previous one (stale), or by a copy of an earlier
    one, would keep it from the library, erased, and save that as what the chip held. Judged on the library:
    the saved backup must equal the simulated flash."""
    dry = _dry_run("backup-changed", chip, tmp_path)
    # connect reads the RF sector (the MAC); the backup reads only the two changed blocks
    assert dry.replies["read4k"] == 1 + 2 * 16, dry.replies
    nth = _nth_request(dry, CHANGED_BLOCK, 0x10000)
    faults = [FrameFault("crc", nth, "stale"), FrameFault("crc", nth - 1, "late", 1),
              FrameFault("crc", nth - 2, "late", 2)]
    runs = sum(TALLY.values())
    bad = _judge("backup-changed", chip, faults, tmp_path)
    assert sum(TALLY.values()) - runs == len(faults), "every fault landed on a reply"
    assert not bad, "\n".join(bad)


# ------------------------------------------------------------------ sample (CI) and full sweep (slow)
def _sample(op: str, chip: str, tmp: Path, k: int) -> list[FrameFault]:
    """k faults per reply kind of the run, seeded: kind, action and which reply of the kind."""
    dry = _dry_run(op, chip, tmp)
    rng = random.Random(f"desync-{op}-{chip}")
    out = []
    for kind, n in sorted(dry.replies.items()):
        for _ in range(k):
            action, lag = rng.choice(ACTIONS if kind != "link" else ACTIONS[:4])
            out.append(FrameFault(kind, rng.randint(1, n), action, lag))
    return out


@pytest.mark.parametrize("chip", CHIPS)
@pytest.mark.parametrize("op", DESYNC_OPS)
def test_desync_sample(op: str, chip: str, tmp_path: Path) -> None:
    _needs(op)
    faults = _sample(op, chip, tmp_path, 1)
    assert not _judge(op, chip, faults, tmp_path)


def _full(op: str, chip: str, tmp: Path, backup: bool) -> list[FrameFault]:
    dry = _dry_run(op, chip, tmp, backup)
    out = []
    for kind, n in sorted(dry.replies.items()):
        for action, lag in ACTIONS:
            exhaustive = (kind, action, lag) in EXHAUSTIVE and op != "station"
            nths = range(1, n + 1) if exhaustive else _spread(n, SPREAD if kind != "crc" else 3 * SPREAD)
            out += [FrameFault(kind, k, action, lag) for k in nths]
    return out


@pytest.mark.slow
@pytest.mark.timeout(7200)
@pytest.mark.parametrize("backup", [True, False], ids=["backup", "no-backup"])
@pytest.mark.parametrize("chip", CHIPS)
@pytest.mark.parametrize("op", DESYNC_OPS)
def test_desync_full(op: str, chip: str, backup: bool, tmp_path: Path) -> None:
    if not backup and op not in WRITES:
        pytest.skip("only writes take a backup first")
    _needs(op)
    bad = _judge(op, chip, _full(op, chip, tmp_path, backup), tmp_path, backup)
    assert not bad, "\n".join(bad[:15])


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("chip", CHIPS)
def test_desync_timing(chip: str, tmp_path: Path) -> None:
    """The wire-timing model on (921600 baud), a read across the end of the stock app into erased flash:
    every CheckCRC reply stale, and copied again 0.5 or 3 ms after the next or the one after reaches the
    chip (a short request may then already have its own answer: the copy lands one request later)."""
    dry = run("read", chip, [], tmp_path, timing=True)
    assert dry.cls == "OK", dry.detail
    faults = []
    for k in range(1, dry.replies["crc"] + 1):
        faults.append(FrameFault("crc", k, "stale"))
        faults += [FrameFault("crc", k, "late", lag, delay) for lag in (1, 2) for delay in (0.0005, 0.003)]
    bad = []
    for f in faults:
        out = run("read", chip, [], tmp_path, frames=[f], timing=True)
        if out.hits:
            TALLY[out.cls] += 1
            if out.cls in ("SILENT-DAMAGE", "CRASH"):
                bad.append(f"{out.cls}: {f.describe()} delay {f.delay_s * 1000:.1f} ms: {out.detail}")
    SILENT.extend(bad)
    assert not bad, "\n".join(bad[:15])
