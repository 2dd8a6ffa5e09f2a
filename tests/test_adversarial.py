"""Adversarial fault suite: one chosen bit flipped in one field of one frame, both directions.

Beside the random suite (test_reliability.py) this one aims: every field of every command and reply
kind the operation exchanges (code, length, address, size code, payload, status, flash ID, SR value,
CRC), on the first frame of that kind while connecting and the first / middle / last one of the
operation, for backup, write, restore and config write on BK7231N (FULL dialect) and BK7231T
(BASIC_TUYA). The injector (core/sim/tamper.py) parses frames on the wire; each run is judged on the
simulated flash and the backup library only (tests/adversarial.py has the outcome classes).

The default run takes a fixed sample of each (operation, chip, frame kind) plus the line errors the
issue reported; the full sweep is marked slow (./dev test --long; BKBENCH_ADVERSARIAL_RUNS=N caps the
flips per parameter). test_adversarial_summary prints the counts per class.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
from adversarial import C2H, CLASSES, H2C, OPS, Flip, all_flips, run, sample

SHORT_PER_KIND = 1
FULL_CAP = int(os.environ.get("BKBENCH_ADVERSARIAL_RUNS", "0") or 0)
GROUPS = {"link": ("link",), "crc": ("crc",), "read_reg": ("read_reg",), "mid": ("mid",),
          "boot_version": ("boot_version",), "read4k": ("read4k",), "sr": ("read_sr", "write_sr"),
          "erase": ("erase",), "write4k": ("write4k",)}
CHIP_GROUPS = {"BK7231N": ("link", "crc", "read_reg", "mid", "read4k", "sr", "erase", "write4k"),
               "BK7231T": ("link", "crc", "boot_version", "read4k", "erase", "write4k")}
WRITING = ("sr", "erase", "write4k")

# The flash-ID error issue #10 reported, always in the short sweep (the erase and read errors it
# reported have their own tests below).
KNOWN = {
    "mid": [(Flip(C2H, "mid", "flash_id", 16), OPS)],  # EB6015 -> EB6014: a 2 MiB chip looks 1 MiB
}

# Silent damage the command layer cannot prevent: it needs the session-level guards of issue #10.
# Key: (operation, chip, frame kind group). (Restore and config write of a chip that looks 1 MiB
# fail cleanly on the size check; write and backup go on with the wrong wrap-around address.)
_MID = ("needs session guard: flash size from agreeing evidence (one flipped bit in the flash-ID reply "
        "makes a 2 MiB chip look 1 or 8 MiB; the backup then holds the wrong layout and the write lands "
        "1 MiB away)")
NEEDS_SESSION: dict[tuple[str, str, str], str] = {}  # none left: the session guards landed

TALLY: Counter = Counter()
SILENT: list[str] = []
PER_PARAM: dict[str, Counter] = {}


def _params(full: bool):
    out = []
    for op in OPS:
        for chip, groups in CHIP_GROUPS.items():
            for group in groups:
                if op == "backup" and group in WRITING:
                    continue
                marks = []
                if (op, chip, group) in NEEDS_SESSION:
                    marks.append(pytest.mark.xfail(strict=True, reason=NEEDS_SESSION[(op, chip, group)]))
                if full:
                    marks += [pytest.mark.slow, pytest.mark.timeout(3600)]  # up to ~1000 runs per parameter
                out.append(pytest.param(op, chip, group, id=f"{op}-{chip}-{group}", marks=marks))
    return out


_traces: dict[tuple[str, str], tuple[list, int]] = {}


def _flips(op: str, chip: str, group: str, tmp: Path) -> list[Flip]:
    if (op, chip) not in _traces:
        dry = run(op, chip, [], tmp)
        assert dry.cls == "OK", f"fault-free {op} on {chip}: {dry.cls} {dry.detail}"
        _traces[(op, chip)] = (dry.trace, dry.connect_frames)
    trace, connect = _traces[(op, chip)]
    flips = [f for f in all_flips(trace, connect) if f.kind in GROUPS[group]]
    assert flips, f"{op} on {chip} exchanges no {group} frame"
    return flips


def _sweep(op: str, chip: str, group: str, flips: list[Flip], tmp: Path) -> None:
    counts = PER_PARAM.setdefault(f"{op}-{chip}-{group}", Counter())
    silent, crashes, missed = [], [], []
    for flip in flips:
        out = run(op, chip, [flip], tmp)
        if not out.hits:
            missed.append(flip.describe())  # the frame never came: the flip tested nothing
            continue
        counts[out.cls] += 1
        TALLY[out.cls] += 1
        tag = f"{out.cls}: {flip.describe()} during {op} on {chip}: {out.detail}"
        if out.cls == "SILENT-DAMAGE":
            silent.append(tag)
            SILENT.append(tag)
        elif out.cls == "CRASH":
            crashes.append(tag)
    print(f"\n{op} {chip} {group}: {dict(counts)} (flips whose frame never came: {len(missed)})")
    assert not silent and not crashes, "\n".join((silent + crashes)[:15])
    assert len(missed) < len(flips), "no flip hit a frame: " + ", ".join(missed[:5])


@pytest.mark.parametrize("op,chip,group", _params(full=False))
def test_adversarial_short(op: str, chip: str, group: str, tmp_path: Path) -> None:
    flips = _flips(op, chip, group, tmp_path)
    picked = sample(flips, SHORT_PER_KIND, f"{op}-{chip}-{group}", cover=False)
    picked += [f for f, ops in KNOWN.get(group, []) if op in ops and f not in picked]
    _sweep(op, chip, group, picked, tmp_path)


@pytest.mark.parametrize("op,chip,group", _params(full=True))
def test_adversarial_full(op: str, chip: str, group: str, tmp_path: Path) -> None:
    flips = _flips(op, chip, group, tmp_path)
    if FULL_CAP:
        flips = sample(flips, FULL_CAP, f"{op}-{chip}-{group}")
    _sweep(op, chip, group, flips, tmp_path)


# ------------------------------------------------------------------ the defects issue #10 reported
def test_erase_turned_erase4k_is_repaired_from_the_backup(tmp_path: Path) -> None:
    """FlashErase 0x0F -> Erase4K 0x0B: the chip erases 4 KiB at the address the shifted bytes give
    (sector 0, the bootloader) and answers as Erase4K. The write must notice and put sector 0 back."""
    out = run("write", "BK7231N", [Flip(H2C, "erase", "code", 2)], tmp_path)
    assert out.hits, "the erase frame never came"
    assert out.cls == "OK", out.detail


def test_erase_turned_erase4k_without_backup_fails_naming_sector_0(tmp_path: Path) -> None:
    out = run("write", "BK7231N", [Flip(H2C, "erase", "code", 2)], tmp_path, backup=False)
    assert out.hits
    assert out.cls == "REPORTED-DAMAGE" and "0x000000" in out.detail, (out.cls, out.detail)


def test_read_turned_erase4k_fails_the_backup_naming_the_sector(tmp_path: Path) -> None:
    """Read4K 0x09 -> Erase4K 0x0B on an unprotected flash: the sector being backed up is erased. The
    backup must not be saved (it would hold 0xFF) and the error must name the sector."""
    # A read in the middle of the backup: the 200th of a real dump's, whatever the flash (the built-in
    # demo plug, without ../shared, has far fewer sectors with content to read).
    reads = sum(1 for way, kind in run("backup", "BK7231N", [], tmp_path).trace if (way, kind) == (H2C, "read4k"))
    out = run("backup", "BK7231N", [Flip(H2C, "read4k", "code", 1, nth=min(200, reads // 2))], tmp_path)
    assert out.hits
    assert out.cls == "REPORTED-DAMAGE", (out.cls, out.detail)


def test_flash_id_flip_does_not_move_the_write(tmp_path: Path) -> None:
    """EB6015 -> EB6014 in the FlashGetMID reply: the chip looks 1 MiB and every wire address is off by
    1 MiB. The write must land where asked (or stop): nothing at 0x140000, the backup not misread."""
    out = run("write", "BK7231N", [Flip(C2H, "mid", "flash_id", 16)], tmp_path)
    assert out.hits
    assert out.cls in ("OK", "CLEAN-FAIL"), (out.cls, out.detail)


def test_write_leaves_the_flash_protected_as_found(tmp_path: Path) -> None:
    out = run("write", "BK7231N", [], tmp_path)
    assert out.cls == "OK", out.detail
    before, after = out.sr
    assert after & 0x407C == before & 0x407C, f"SR 0x{before:04X} before the write, 0x{after:04X} after"


def test_damaged_sr_write_leaves_no_other_sr_bit_set(tmp_path: Path) -> None:
    """Bit 7 (SRP0) flipped in the FlashWriteSR value: the unprotect must notice and write the SR again."""
    out = run("write", "BK7231N", [Flip(H2C, "write_sr", "sr", 7)], tmp_path)
    assert out.hits
    assert out.cls == "OK", out.detail


def test_write_with_damaged_length_does_not_spill_into_the_next_sector(tmp_path: Path) -> None:
    """Write4K length 0x1005 -> 0x1025: the chip takes 32 bytes of what follows (link checks) as data
    and programs them into the next sector, outside the config write."""
    out = run("config", "BK7231T", [Flip(H2C, "write4k", "len", 5)], tmp_path)
    assert out.hits
    assert out.cls == "OK", out.detail


def test_chip_lost_at_the_last_crc_is_resumed_without_a_traceback(tmp_path: Path) -> None:
    """The last CheckCRC's length 0x09 -> 0x19: the chip eats the following link checks, the link is
    lost with every sector done; the resume used to index an empty 'still to do' list (IndexError)."""
    dry = run("write", "BK7231T", [], tmp_path)
    last = sum(1 for t in dry.trace if t == (H2C, "crc"))
    out = run("write", "BK7231T", [Flip(H2C, "crc", "len", 4, nth=last)], tmp_path)
    assert out.hits
    assert out.cls == "OK", (out.cls, out.detail)


def test_adversarial_summary() -> None:
    """Runs last (file order): the counts per outcome class, for the README."""
    total = sum(TALLY.values())
    print("\nadversarial: runs=" + str(total) + " " + " ".join(f"{c}={TALLY[c]}" for c in CLASSES))
    for line in SILENT[:40]:
        print("  " + line)
    assert total > 0, "no adversarial run happened"


def test_flash_id_command_turned_erase_all_is_reported_never_saved(tmp_path: Path) -> None:
    """FlashGetMID 0x0E -> EraseAll 0x0A (one bit): an unprotected chip erases everything. The backup
    must not save the erased flash as this chip's, and the error must say the whole flash is hit."""
    out = run("backup", "BK7231N", [Flip(H2C, "mid", "code", 2)], tmp_path)
    assert out.hits
    assert out.cls == "REPORTED-DAMAGE", (out.cls, out.detail)
    assert "EraseAll" in out.detail


def test_damaged_sr_write_that_locks_the_register_is_reported(tmp_path: Path) -> None:
    """WriteSR bit 8 (SRP1) set by a line error: the register locks until power-off and cannot be put
    back as found. The error must say so (status register), never a silent success."""
    out = run("write", "BK7231N", [Flip(H2C, "write_sr", "sr", 8, nth=2)], tmp_path)
    assert out.hits
    assert out.cls == "REPORTED-DAMAGE", (out.cls, out.detail)
