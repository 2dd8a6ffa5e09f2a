"""Run the real workbench in tmux on the demo chip and complete a backup with keystrokes only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

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


def _capture(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout


def _wait_for(session: str, text: str, timeout: float) -> str:
    end = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < end:
        screen = _capture(session)
        if text in screen:
            return screen
        time.sleep(0.3)
    raise AssertionError(f"{text!r} did not appear; screen was:\n{screen}")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
def test_demo_backup_in_tmux(tmp_path: Path):
    session = f"bkbench-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, BKBENCH_DATA_DIR=str(tmp_path), TERM="xterm-256color")
    # Passed on the command line too: a tmux server that is already running keeps its own environment.
    cmd = f"env BKBENCH_DATA_DIR='{tmp_path}' BKBENCH_DEMO_TIMING=0 " + " ".join(f"'{c}'" for c in _command())
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "36", cmd], env=env, check=True)
    try:
        _wait_for(session, "Backup", 30)  # footer drawn: the app is up
        subprocess.run(["tmux", "send-keys", "-t", session, "b"], check=True)
        screen = _wait_for(session, "saved BK7231N", 60)
        assert "Backup" in screen
        bins = list((tmp_path / "backups").glob("*.bin"))
        assert len(bins) == 1 and bins[0].stat().st_size == 0x200000
        assert bins[0].with_suffix(".json").is_file()
        subprocess.run(["tmux", "send-keys", "-t", session, "C-q"], check=True)
        end = time.monotonic() + 15
        while time.monotonic() < end:
            if subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode != 0:
                break
            time.sleep(0.3)
        else:
            raise AssertionError("the app did not quit on ctrl+q:\n" + _capture(session))
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
def test_demo_pick_ug_write_and_see_openbk_boot_in_tmux(tmp_path: Path, fixtures_dir: Path):
    """80x24, keys only: w opens the picker in the folder the app was started from, the UG package is
    converted on the spot, written (after the automatic backup), and the chip boots OpenBK in the log."""
    folder = tmp_path / "firmware"
    folder.mkdir()
    ug = "OpenBeken-v1.18.219_bk7231n.ug.bin"
    shutil.copyfile(fixtures_dir / "firmware" / ug, folder / ug)
    data = tmp_path / "data"
    session = f"bkbench-{uuid.uuid4().hex[:8]}"
    cmd = (f"cd '{folder}' && env BKBENCH_DATA_DIR='{data}' BKBENCH_DEMO_TIMING=0 "
           + " ".join(f"'{c}'" for c in _command()))
    env = dict(os.environ, TERM="xterm-256color")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", cmd], env=env, check=True)

    def keys(*k: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", session, *k], check=True)

    try:
        _wait_for(session, "Not connected", 30)  # first start: the state and the next key
        keys("w")
        _wait_for(session, "UG BK7231N 1.18.219", 90)  # the picker says what the file is
        keys("Down", "Enter")
        screen = _wait_for(session, "a confirmation comes first", 120)  # judged, converted, writable
        assert "converted: UG BK7231N 1.18.219 package unpacked" in screen
        keys("C-o")
        _wait_for(session, "Write this image?", 10)
        keys("y")
        screen = _wait_for(session, "rebooted", 180)
        assert "verified" in screen
        keys("2")
        _wait_for(session, "OpenBK7231N 1.18.219", 30)  # the OpenBK banner from the rebooted chip
        from bkbench.core.backups import BackupLibrary

        # the stock firmware was backed up before the write; then the library recorded what the write left
        assert [e.origin for e in BackupLibrary(data / "backups").list()] == ["derived", "read"]
        keys("C-q")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
