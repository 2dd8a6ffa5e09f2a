"""Run the real workbench in tmux on the demo chip and complete a backup with keystrokes only."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
from tmuxhelpers import Tmux

pytestmark = pytest.mark.tmux


def _command() -> list[str]:
    exe = Path(sys.executable).parent / "bkbench"
    try:
        from bkbench.core.cli import main as _main  # noqa: F401  (the CLI opens the TUI with --demo)

        if exe.exists():
            return [str(exe), "--demo"]
    except ImportError:
        pass
    return [sys.executable, "-c", "from bkbench.tui.app import run; raise SystemExit(run(demo=True))"]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
def test_demo_backup_in_tmux(tmp_path: Path):
    cmd = f"env BKBENCH_DATA_DIR='{tmp_path}' BKBENCH_DEMO_TIMING=0 " + " ".join(f"'{c}'" for c in _command())
    with Tmux(cmd, 120, 36, BKBENCH_DATA_DIR=str(tmp_path)) as tm:
        tm.wait_for("Backup", 30)  # footer drawn: the app is up
        tm.keys("b")
        screen = tm.wait_for("saved BK7231N", 60)
        assert "Backup" in screen
        bins = list((tmp_path / "backups").glob("*.bin"))
        assert len(bins) == 1 and bins[0].stat().st_size == 0x200000
        assert bins[0].with_suffix(".json").is_file()
        tm.keys("C-q")
        tm.wait_gone(15)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
def test_demo_pick_ug_write_and_see_openbk_boot_in_tmux(tmp_path: Path, fixtures_dir: Path):
    """80x24, keys only: w opens the picker in the folder the app was started from, the UG package is
    converted on the spot, written (after the automatic backup), and the chip boots OpenBK in the log."""
    folder = tmp_path / "firmware"
    folder.mkdir()
    ug = "OpenBeken-v1.18.219_bk7231n.ug.bin"
    shutil.copyfile(fixtures_dir / "firmware" / ug, folder / ug)
    data = tmp_path / "data"
    cmd = (f"cd '{folder}' && env BKBENCH_DATA_DIR='{data}' BKBENCH_DEMO_TIMING=0 "
           + " ".join(f"'{c}'" for c in _command()))
    with Tmux(cmd, 80, 24) as tm:
        tm.wait_for("Not connected", 30)  # first start: the state and the next key
        tm.keys("w")
        tm.wait_for("UG BK7231N 1.18.219", 90)  # the picker says what the file is
        tm.keys("Tab", "Down", "Enter")  # past Latest OpenBK and the demo's cached builds, into the folder
        screen = tm.wait_for("a confirmation comes first", 120)  # judged, converted, writable
        assert "converted: UG BK7231N 1.18.219 package unpacked" in screen
        tm.keys("C-o")
        tm.wait_for("Write this image?", 10)
        tm.keys("y")
        screen = tm.wait_for("rebooted", 180)
        assert "verified" in screen
        tm.keys("2")
        tm.wait_for("OpenBK7231N 1.18.219", 30)  # the OpenBK banner from the rebooted chip
        from bkbench.core.backups import BackupLibrary

        # the stock firmware was backed up before the write; then the library recorded what the write left
        assert [e.origin for e in BackupLibrary(data / "backups").list()] == ["derived", "read"]
        tm.keys("C-q")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
def test_config_fields_typed_fast_in_tmux(tmp_path: Path):
    """Issue 22 at 80x24: `tmux send-keys` of `SSID<Tab>password` (as a paste arrives) put the password into
    the SSID, and the confirmation showed it. Also a bracketed paste (tmux paste-buffer -p)."""
    cmd = f"env BKBENCH_DATA_DIR='{tmp_path}' BKBENCH_DEMO_TIMING=0 " + " ".join(f"'{c}'" for c in _command())
    with Tmux(cmd, 80, 24) as tm:
        tm.wait_for("Not connected", 30)
        tm.keys("e")  # connects, reads the config sector, opens the editor
        tm.wait_for("Wi-Fi password", 60)
        tm.keys("MyWiFi\thunter22", literal=True)
        screen = tm.wait_for("MyWiFi ", 5)
        assert "hunter22" not in screen and "••••••••" in screen  # the password went to its own field
        tm.keys("Tab")
        tm.tmux("set-buffer", "Home2\tpass5678")
        tm.tmux("paste-buffer", "-p", "-t", tm.session)  # Wi-Fi 2 SSID, then its password
        screen = tm.wait_for("Home2 ", 5)
        # two 8-character passwords masked (OpenBK's default MQTT password is another, longer one)
        assert "pass5678" not in screen and len(re.findall("(?<!•)•{8}(?!•)", screen)) == 2
        tm.keys("C-o")
        screen = tm.wait_for("Write the OpenBK config?", 10)
        assert "Wi-Fi MyWiFi (password: 8 characters)" in screen
        assert "hunter22" not in screen
        tm.keys("n")  # back to the editor with the edits
        screen = tm.wait(lambda s: "Write the OpenBK config?" not in s and "MyWiFi" in s, 10)
        tm.keys("C-q")
