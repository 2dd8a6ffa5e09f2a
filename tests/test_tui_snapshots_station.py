"""Snapshot of the multi-port view mid-run (fixed data: no serial I/O, frozen times).

Update after an intended UI change with: pytest tests/test_tui_snapshots_station.py --snapshot-update
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bkbench.core.chips import FAMILIES
from bkbench.core.client import ChipInfo
from bkbench.core.ops.events import Connected, Notice, Progress, SectorState, SectorUpdate, Stage
from bkbench.core.station import ChipResult
from bkbench.tui.app import BkBenchApp
from bkbench.tui.screens.station import StationScreen
from test_tui_snapshots import _snapshots_in_tests_snapshots  # noqa: F401  (autouse: where snapshots live)

PORTS = ["/dev/ttyUSB0", "/dev/ttyUSB1", "/dev/ttyUSB2", "/dev/ttyUSB3"]


def connected(chip: str, boot: str) -> Connected:
    """The event a Session emits once the chip is identified (what the multi-port view learns the chip from)."""
    info = ChipInfo(chip, FAMILIES[chip].dialect, boot, 0, baud=921600)
    return Connected("connected", f"{chip} ({boot}) at 921600 baud", info)


def stage_runs(app: BkBenchApp) -> None:
    """Four ports in four states: backing up, writing, done, failed (what a real run shows)."""
    runs = list(app.station)
    feeds = {
        0: [connected("BK7231N", "bl_bk7231n 1.0.1"), Stage("read", "reading")]
        + [SectorUpdate(a, SectorState.VERIFIED) for a in range(0, 0xDC000, 0x1000)]
        + [Progress(0xDC000, 0x200000, t=1.0), Progress(0xDC000 + 0x40000, 0x200000, t=5.0)],
        1: [connected("BK7231T", "bk7231s 1.0.5"), Stage("read", "reading"),
            Stage("write", "writing 0x011000-0x12A000")]
        + [SectorUpdate(a, SectorState.WRITTEN) for a in range(0x11000, 0x33000, 0x1000)]
        + [Progress(0x22000, 0x119000, t=1.0)],
    }
    for i, run in enumerate(runs[:2]):
        run.begin("backup + OpenBK", cancel=None)  # type: ignore[arg-type]
        run.lines.clear()
        for ev in feeds[i]:
            run.pump.sink(ev)
        run.pump.sink(Notice("info", "fixed picture: no chip is attached"))
        run.drain()
        run.op.started, run.op.finished = 0.0, 41.0  # a frozen elapsed time
    for run, result in zip(runs[2:], (
        ChipResult(PORTS[2], "done", chip="BK7231N", mac="1C:90:FF:00:00:02", seconds=74.0,
                   backup="/data/backups/BK7231N-1C90FF000002-20261202T201552.bin", backup_taken=True,
                   wrote="OpenBK7231N_QIO_1.18.219.bin: 211 sectors written, 45 erased only, 25 identical"),
        ChipResult(PORTS[3], "failed", seconds=20.0, error="no answer from the chip on /dev/ttyUSB3: nothing on RX"),
    )):
        run.begin("backup + OpenBK", cancel=None)  # type: ignore[arg-type]
        run.lines.clear()
        run.finish(result)
        run.lines.clear()
    for run in runs:
        run.selected = True
        run.lines = type(run.lines)([f"20:15:{10 + n:02d} line {n} of the port's own log" for n in range(3)],
                                    maxlen=run.lines.maxlen)


@pytest.mark.parametrize("size", [(120, 36), (80, 24)], ids=["120x36", "80x24"])
def test_snapshot_station_mid_run(snap_compare, size, tmp_path: Path):
    app = BkBenchApp(url=PORTS[0], ports=PORTS, data_dir=tmp_path, ports_source=lambda: [], monitor=False,
                     poll_ports=0)

    async def before(pilot) -> None:
        while not isinstance(app.screen, StationScreen):
            await pilot.pause(0.05)
        stage_runs(app)
        app.screen.show_runs(list(app.station))
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=before)
