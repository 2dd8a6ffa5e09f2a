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
