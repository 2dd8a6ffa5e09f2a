"""Snapshot tests of the main screens (pytest-textual-snapshot); data kept in tests/snapshots/.

Update after an intended UI change with: pytest tests/test_tui_snapshots.py --snapshot-update
Every screen is built from fixed data (fixed clock, fixed port list, no serial I/O) so the pictures
do not depend on the machine or the time of day.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import pytest_textual_snapshot
from bkbench.core.backups import BackupEntry
from bkbench.core.ops.events import Progress, SectorState, SectorUpdate, Stage
from bkbench.core.ports import PortInfo
from bkbench.tui.app import BkBenchApp
from bkbench.tui.screens.backups import BackupsScreen
from bkbench.tui.screens.confirm import ConfirmScreen
from syrupy.location import PyTestLocation

SNAP_DIR = Path(__file__).resolve().parent / "snapshots"
PORTS = [
    PortInfo("/dev/ttyUSB0", "CP2102 USB to UART", adapter="CP2102", vid=0x10C4, pid=0xEA60,
             by_id="/dev/serial/by-id/usb-Silicon_Labs_CP2102-if00-port0", kind="usb"),
    PortInfo("/dev/ttyAMA0", "Raspberry Pi UART", adapter="Pi UART", kind="pi-uart"),
]


class _Ext(pytest_textual_snapshot.SVGImageExtension):
    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        return str(SNAP_DIR / test_location.basename)


@pytest.fixture(autouse=True)
def _snapshots_in_tests_snapshots(monkeypatch):
    monkeypatch.setattr(pytest_textual_snapshot, "SVGImageExtension", _Ext)
    monkeypatch.setenv("TZ", "UTC")  # log timestamps are local time
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def make_app(tmp_path: Path) -> BkBenchApp:
    return BkBenchApp(url="/dev/ttyUSB0", data_dir=tmp_path, ports_source=lambda: PORTS, monitor=False,
                      poll_ports=0, clock=lambda: 1_700_000_000.25)


def feed_log(app: BkBenchApp, fixtures_dir: Path) -> None:
    log = (fixtures_dir / "bootlogs" / "bk7231n-lspa9-gray-t34-bl0937.log").read_bytes()
    app.log_buffer.feed(log[:1500])


async def backup_in_progress(pilot) -> None:
    app = pilot.app
    app.op_pane.begin("Backup")
    app.op_pane.state.started = 0.0
    app.op_pane.state.finished = 12.0  # frozen elapsed for a stable picture
    app.pump.sink(Stage("read", "reading 0x000000-0x200000"))
    for addr in range(0, 0xC0000, 0x1000):
        app.pump.sink(SectorUpdate(addr, SectorState.VERIFIED))
    app.pump.sink(SectorUpdate(0xC0000, SectorState.FAILED))
    app.pump.sink(Progress(0xC0000, 0x200000, t=1.0))
    app.drain_events()
    app.op_pane.query_one("#op-log").clear()
    await pilot.pause(0.2)


@pytest.mark.parametrize("size", [(120, 36), (80, 24)], ids=["120x36", "80x24"])
def test_snapshot_main_idle_with_log(snap_compare, size, tmp_path: Path, fixtures_dir: Path):
    app = make_app(tmp_path)

    async def before(pilot) -> None:
        feed_log(app, fixtures_dir)
        # Drain now instead of waiting for the 0.1 s timer: on a busy machine it may not have run yet.
        app.query_one("#pane-log").drain()
        app._update_statusline()
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", [(120, 36), (80, 24)], ids=["120x36", "80x24"])
def test_snapshot_backup_in_progress(snap_compare, size, tmp_path: Path):
    app = make_app(tmp_path)

    async def before(pilot) -> None:
        await backup_in_progress(pilot)
        if size[0] < 100:
            await pilot.press("3")
            await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=size, run_before=before)


def test_snapshot_backups_browser(snap_compare, tmp_path: Path):
    app = make_app(tmp_path)
    entry = BackupEntry(Path("/data/backups") / "BK7231N-1C90FFF7C934-20261125T192040.bin", {
        "chip": "BK7231N", "bootloader": "bl_bk7231n 1.0.1", "flash_id": "eb6015", "flash_size": 0x200000,
        "mac": "1C:90:FF:F7:C9:34", "time": "2026-11-25T19:20:40", "sha256": "ab" * 32, "crc32": 0x12345678,
        "tool_version": "0.1.0", "port": "/dev/ttyUSB0", "adapter": "CP2102",
    })

    derived = BackupEntry(Path("/data/backups") / "BK7231N-1C90FFF7C934-20261125T193512.bin", {
        **entry.meta, "time": "2026-11-25T19:35:12", "sha256": "cd" * 32, "derived": {
            "from": {"file": entry.path.name, "sha256": "ab" * 32},
            "original": {"file": entry.path.name, "sha256": "ab" * 32}, "operation": "write", "what": "UA app",
            "spans": [{"start": "0x011000", "end": "0x0E3000", "sha256": "ef" * 32}], "checked": "by CRC"}})

    class Labels:  # what core/backup_labels.py would say of these images (no image files here)
        def cached(self, e):
            return {"ab" * 32: "stock Tuya plug 1.1.15", "cd" * 32: "OpenBK 1.18.219 + config"}[e.meta["sha256"]]

    async def before(pilot) -> None:
        app.push_screen(BackupsScreen([derived, entry], labels=Labels()))
        await pilot.pause(0.2)

    # at 80x24 every entry whole: saved / read or derived, firmware / the whole file name (issue 22 item 5)
    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


def test_snapshot_confirm_write(snap_compare, tmp_path: Path):
    app = make_app(tmp_path)

    async def before(pilot) -> None:
        app.push_screen(ConfirmScreen(
            "Write this image?",
            "OpenBK7231N_UA.bin\nUA app\nflash 0x011000..0x0F2000 (900 KiB)\n"
            "A backup is made first if this chip has none. Then write, verify and reboot.",
            yes="Write [y]"))
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)
