"""More snapshot tests (pytest-textual-snapshot): Connect failure with the link doctor's diagnosis, the analysis
view of a backup and the OpenBK config editor. Data kept in tests/snapshots/test_tui_snapshots_more/.

Update after an intended UI change with: pytest tests/test_tui_snapshots_more.py --snapshot-update
Same approach as test_tui_snapshots.py (whose autouse fixture puts the data in tests/snapshots/ and sets TZ=UTC):
fixed clock and port list, simulated chips under fixed URLs, and every number that depends on how fast the machine
is (elapsed time, link attempts, the timestamped event log, backup file names) is frozen or chosen by the test.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from bkbench.core.backups import BackupEntry
from bkbench.core.sim import registry
from bkbench.tui.app import BkBenchApp
from bkbench.tui.screens.analysis import AnalysisScreen
from bkbench.tui.screens.config import ConfigScreen
from test_tui_app import N_DUMP
from test_tui_snapshots import PORTS, _snapshots_in_tests_snapshots, make_app  # noqa: F401 (autouse fixture)
from textual.widgets import Input

CLOCK = 1_700_000_000.25
# The backup's name as the library would have written it at a fixed time (BackupLibrary.save stamps "now").
BACKUP_NAME = "BK7231N-1C90FFF7C934-20261125T192040.bin"


def sim_app(where: str, data_dir: Path, **kw) -> BkBenchApp:
    """The workbench on a simulated chip: `@name` of a registered one or a query URL (the URL is in the picture)."""
    return BkBenchApp(url=f"sim://{where}", data_dir=data_dir, ports_source=lambda: PORTS, monitor=False,
                      poll_ports=0, clock=lambda: CLOCK, **kw)


async def wait_until(pilot, done, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not done() and time.monotonic() < end:
        await pilot.pause(0.05)
    assert done(), "the app did not get there in time"
    await pilot.pause(0.1)


def freeze_operation(app: BkBenchApp, elapsed: float, link_attempts: int | None = None) -> None:
    """Freeze the finished operation's timing-dependent numbers and drop its wall-clock event log."""
    st = app.op_pane.state
    st.started, st.finished = 0.0, elapsed
    if link_attempts is not None and st.link_attempts:
        st.link_attempts = link_attempts
    app.op_pane.refresh_stats()
    app.op_pane.query_one("#op-log").clear()


def test_snapshot_connect_failure_with_diagnosis(snap_compare, tmp_path: Path):
    # The demo chip (default BK7231N dump) runs its Tuya app and DTR/RTS reach nothing: the link fails and the
    # doctor says why. A query URL, not a registered device: the chip is created when the port opens, so its boot
    # log starts then and the doctor hears the Tuya lines however slow the machine is (opening the port drops
    # what a chip created earlier had already printed). link_timeout 2.5 s sits between the auto reset's repeats
    # (every 2 s): always "2 resets by the DTR/RTS sequence ...".
    app = sim_app("bk7231n?scenario=app-running&wiring=none", tmp_path, link_timeout=2.5, doctor_seconds=2.0)

    async def before(pilot) -> None:
        await pilot.press("c")
        await wait_until(pilot, lambda: not app.busy and app.op_pane.diagnosis_final)
        diag = app.op_pane.diagnosis
        assert app.last_outcome[0] == "failed" and diag.kind == "app-running", (app.last_outcome, diag)
        assert "Tuya" in diag.title and "2 resets by the DTR/RTS sequence" in " ".join(diag.advice), diag
        freeze_operation(app, 4.0, link_attempts=3)
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


def add_backup(app: BkBenchApp, fixtures_dir: Path) -> BackupEntry:
    """Put the real LSPA9-clone plug dump in the app's backup library under a fixed name, with its sidecar."""
    data = (fixtures_dir / "dumps" / N_DUMP).read_bytes()
    root = app.library.root
    root.mkdir(parents=True, exist_ok=True)
    path = root / BACKUP_NAME
    path.write_bytes(data)
    meta = {"chip": "BK7231N", "mac": "1C:90:FF:F7:C9:34", "flash_id": "eb6015", "flash_size": len(data),
            "time": "2026-11-25T19:20:40+00:00", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "file": BACKUP_NAME}
    path.with_suffix(".json").write_text(json.dumps(meta))
    entries = app.library.list()
    assert [e.name for e in entries] == [BACKUP_NAME]
    return entries[0]


def test_snapshot_analysis_of_a_backup(snap_compare, tmp_path: Path, fixtures_dir: Path):
    # The analysis the app runs on a library backup (the same worker as `a` and the backups browser use).
    app = make_app(tmp_path)
    entry = add_backup(app, fixtures_dir)

    async def before(pilot) -> None:
        app.analyze_entry(entry)
        await wait_until(pilot, lambda: isinstance(app.screen, AnalysisScreen))
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(120, 36), run_before=before)


def test_snapshot_config_editor(snap_compare, tmp_path: Path, fixtures_dir: Path):
    # e reads the config sector of the (simulated) plug; its stock Tuya firmware has none, so the editor starts
    # from OpenBK's defaults; ctrl+t then fills the pins from the Tuya config of this chip's backup.
    dev = registry.create_device(chip="BK7231N", dump=fixtures_dir / "dumps" / N_DUMP, scenario="app-running",
                                 wiring="rts")
    registry.register("snap-config", dev)
    app = sim_app("@snap-config", tmp_path)
    add_backup(app, fixtures_dir)

    async def before(pilot) -> None:
        await pilot.press("e")
        await wait_until(pilot, lambda: not app.busy and isinstance(app.screen, ConfigScreen))
        assert app.last_outcome[0] == "ok", app.last_outcome
        await pilot.press("ctrl+t")
        await pilot.pause(0.1)
        assert app.screen.config.pins()[26].role == "Rel"
        app.clear_notifications()  # the toasts would hide the dialog's buttons
        focused = app.screen.focused
        if isinstance(focused, Input):
            focused.cursor_blink = False  # a blinking cursor would make the picture depend on timing
        await pilot.pause(0.2)

    try:
        assert snap_compare(app, terminal_size=(80, 24), run_before=before)
    finally:
        registry.unregister("snap-config")
