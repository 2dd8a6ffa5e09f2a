"""Record tests/golden/t_bootloader.json from the real T bootloaders (needs unicorn and the fixtures).

    .venv/bin/python -m tests.realcode.record_golden [SHARED_DIR]

tests/realcode/test_t_golden.py re-records in CI and fails when the file and the real code disagree.
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

from . import golden

ROOT = Path(__file__).resolve().parents[2]


def record_all(fixtures: Path) -> list[dict]:
    dumps = {v: (fixtures / "dumps" / f).read_bytes() for v, f in golden.DUMPS.items()}
    out = []
    for case in golden.cases():
        steps = golden.record(case, dumps[case["version"]])
        out.append({k: case[k] for k in ("name", "version", "flash_id", "sr")} | {
            "dump": golden.DUMPS[case["version"]], "steps": steps})
    return out


def main(argv: list[str]) -> int:
    import unicorn

    shared = Path(argv[0]) if argv else ROOT.parent / "shared"
    data = {
        "what": "frame -> reply pairs of the real Tuya BK7231T bootloaders (Feit 1.0.5, Globe 1.0.4), run under "
                "Unicorn by tests/realcode/t_bootloader.py from the fixture dumps; `sr` is the flash status "
                "register after each step (the bootloader's own protection writes); replies over 64 bytes as "
                "length, head and CRC-32",
        "recorded": datetime.date.today().isoformat(),
        "unicorn": unicorn.__version__,
        "cases": record_all(shared / "fixtures"),
    }
    path = ROOT / golden.GOLDEN
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"{path}: {len(data['cases'])} cases, {sum(len(c['steps']) for c in data['cases'])} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
