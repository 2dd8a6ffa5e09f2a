"""The golden file cannot rot: re-record every case from the real T bootloaders and compare with
tests/golden/t_bootloader.json (which tests/test_sim_golden.py plays to core/sim without an emulator)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from . import golden
from .record_golden import record_all

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rerecorded(fixtures_dir) -> dict:
    return {c["name"]: c for c in record_all(fixtures_dir)}


def test_the_recorded_file_is_what_the_real_code_answers_now(rerecorded):
    stored = json.loads((ROOT / golden.GOLDEN).read_text())
    assert [c["name"] for c in stored["cases"]] == list(rerecorded)
    for case in stored["cases"]:
        assert case == rerecorded[case["name"]], f"{case['name']}: re-record with tests/realcode/record_golden.py"


def test_the_idle_reset_takes_the_loop_count_the_code_says(fixtures_dir):
    """REALCODE.md B.11: about 400,000 main-loop passes (~7.4 M instructions) after a LinkCheck, then the
    watchdog; before any LinkCheck the same silence does not reboot a chip that has received a byte."""
    from bkbench.core.sim.flash import NorFlash

    from .t_bootloader import TBootloader

    dump = (fixtures_dir / "dumps" / golden.DUMPS["1.0.5"]).read_bytes()
    boot = TBootloader(dump, NorFlash(dump, (0xC8, 0x40, 0x15), 0x1C))
    boot.run_until_quiet()
    assert boot.ring.idle_limit == 400_000
    boot.exchange(golden.link())
    start = boot.now
    while not boot.stats.resets and boot.now - start < 20_000_000:
        boot.run(100_000)
    assert boot.stats.resets == 1 and 5_000_000 < boot.now - start < 10_000_000
