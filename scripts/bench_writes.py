"""OpenBK write rows per bootloader: BK7231N (LSPA9 dump), BK7231T 1.0.5 (Feit) and 1.0.4 (Globe).

    python scripts/bench_writes.py            # 921600 and 2M, the simulator's wire-timing model on

The write row of scripts/bench.py (the OpenBK UA image at 0x11000 over the stock app, no backup first,
judged on the simulated flash), run once per fixture dump so that the T bootloader versions differ: the
simulator takes the version from the dump's bootloader, and 1.0.4 needs the Reboot re-arm
(core/ops/planned.py) where 1.0.5 needs one LinkCheck. bench.py's own T row is the Feit (1.0.5) dump.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import APP_START, Device  # noqa: E402
from bkbench.core.images.builders import build_from_ota  # noqa: E402
from bkbench.core.layout import SECTOR  # noqa: E402
from bkbench.core.paths import fixtures_dir  # noqa: E402
from bkbench.core.session import Session  # noqa: E402
from bkbench.core.sim.timing import Timing  # noqa: E402

CASES = (
    ("BK7231N", "bk7231n-lspa9-clone-bl0937-plug.bin", "OpenBeken-v1.18.219_bk7231n.ug.bin"),
    ("BK7231T", "bk7231t-feit-br30-rgbw-bulb.bin", "OpenBeken-v1.18.219_bk7231t.ug.bin"),
    ("BK7231T", "bk7231t-globe-37783-rgbct-bulb.bin", "OpenBeken-v1.18.219_bk7231t.ug.bin"),
)


def main() -> int:
    # The writes record the chips' flash protection (DATA_DIR/protection): never in the user's own.
    os.environ.setdefault("BKBENCH_DATA_DIR", tempfile.mkdtemp(prefix="bkbench-bench-data-"))
    fx = fixtures_dir()
    if fx is None:
        print("bench_writes: the shared fixtures were not found (set BKBENCH_SHARED)", file=sys.stderr)
        return 2
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("| dump | bootloader | baud | OpenBK write s | result |\n|---|---|---|---|---|")
    for chip, dump, ota in CASES:
        stock = (fx / "dumps" / dump).read_bytes()
        image = build_from_ota((fx / "firmware" / ota).read_bytes(), stock, chip)["ua"]
        image += b"\xff" * (-len(image) % SECTOR)
        for baud in (921600, 2000000):
            dev = Device(chip, stock, Timing(enabled=True))
            try:
                s = Session(dev.url, baud=baud, reset="manual", link_timeout=5)
                info = s.connect()
                t0 = time.perf_counter()
                try:
                    s.write(image, APP_START, backup_first=False)
                    ok = dev.flash(APP_START, len(image)) == image
                    res = ("ok" if ok else "WRONG on the flash", f"{time.perf_counter() - t0:.2f}")
                except Exception as exc:  # a failed write is a row, not the end of the run
                    res = (f"failed: {str(exc)[:70]}", f"({time.perf_counter() - t0:.1f})")
                print(f"| {dump.removesuffix('.bin')} | {info.bootloader or '?'} | {baud} | {res[1]} | {res[0]} |",
                      flush=True)
                s.close()
            finally:
                dev.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
