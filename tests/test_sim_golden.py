"""core/sim against the real T bootloader: every recorded frame sequence (tests/golden/t_bootloader.json,
recorded from the real code by tests/realcode/) played to the simulator must get the same replies and leave
the flash status register the same. Needs no emulator: this runs on every CI run, so the simulator and the
real code cannot drift apart again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from realcode import golden

ROOT = Path(__file__).resolve().parent.parent
RECORDED = json.loads((ROOT / golden.GOLDEN).read_text())
BY_NAME = {c["name"]: c for c in RECORDED["cases"]}


def test_the_file_covers_every_case_and_every_command_kind():
    assert sorted(BY_NAME) == sorted(c["name"] for c in golden.cases())
    codes = set()
    for case in RECORDED["cases"]:
        for step in case["steps"]:
            send = step.get("send")
            if isinstance(send, str):
                raw = bytes.fromhex(send)
                codes.add(raw[7] if raw[3:5] == b"\xff\xf4" else raw[4])
            elif isinstance(send, dict):
                codes.add(int(send["head"][14:16], 16))
    # every short and long command kind of PROTOCOL.md section 2 is in it (0x0E, 0x0F are both kinds)
    assert {0x00, 0x01, 0x03, 0x0E, 0x0F, 0x10, 0x11, 0x70, 0xAA, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C,
            0x0D} <= codes


@pytest.mark.parametrize("name", [c["name"] for c in RECORDED["cases"]])
def test_sim_answers_as_the_real_bootloader(name, fixtures_dir):
    case = next(c for c in golden.cases() if c["name"] == name)
    recorded = BY_NAME[name]
    dump = (fixtures_dir / "dumps" / golden.DUMPS[case["version"]]).read_bytes()
    assert [golden.step_json(s) for s in case["steps"]] == [{k: v for k, v in s.items() if k not in ("reply", "sr")}
                                                           for s in recorded["steps"]], "frames changed: re-record"
    played = golden.replay_sim(case, dump)
    for i, (want, got) in enumerate(zip(recorded["steps"], played)):
        assert (got["reply"], got["sr"]) == (want["reply"], want["sr"]), f"step {i} {want.get('send')}"
