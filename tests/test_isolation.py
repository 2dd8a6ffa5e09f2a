"""The suite itself: green without ../shared (one summary line for the skips, also under two workers), and
never touching the user's own bkbench folders (tests, and the tmux sessions they start, get their own)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tmuxhelpers import Tmux

TESTS = Path(__file__).resolve().parent


def _pytest(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_XDIST_WORKER", "PYTEST_ADDOPTS")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=240)


def test_the_fixture_skips_are_summed_up_under_two_workers():
    res = _pytest(["-q", "-n", "2", "tests/test_analysis_bootlog.py"], TESTS.parent, BKBENCH_SHARED="/nonexistent")
    assert res.returncode == 0, res.stdout[-2000:]
    lines = [ln for ln in res.stdout.splitlines() if "tests skipped: they need the real fixtures" in ln]
    assert len(lines) == 1 and int(lines[0].split()[0]) >= 1, res.stdout[-2000:]


def test_a_test_writing_into_the_users_own_folders_fails(tmp_path: Path):
    home = tmp_path / "the-users-home"  # stands for the real home: the inner run starts with it
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(f"""
        from pathlib import Path

        def test_stays_inside():
            Path.home().joinpath(".config", "bkbench").mkdir(parents=True)  # the test's own home

        def test_writes_outside():
            Path({str(home)!r}, ".config", "bkbench").mkdir(parents=True)
    """))
    env = {"HOME": str(home), "PYTHONPATH": str(TESTS)}
    for var in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        env[var] = ""
    res = _pytest(["-q", "-n", "0", "-p", "conftest", "--rootdir", str(tmp_path), str(tmp_path)], tmp_path, **env)
    assert "2 passed, 1 error" in res.stdout, res.stdout[-2000:]  # the error: test_writes_outside's teardown
    assert "ERROR at teardown of test_writes_outside" in res.stdout
    assert f"wrote into the user's own bkbench folders: {home / '.config' / 'bkbench'}" in res.stdout


def test_the_user_dirs_of_a_test_are_its_own():
    from bkbench.core import paths

    for var in ("BKBENCH_CONFIG_DIR", "BKBENCH_DATA_DIR", "BKBENCH_CACHE_DIR"):
        os.environ.pop(var, None)  # the XDG defaults, as a subprocess without them would use
    for got in (paths.config_dir(), paths.cache_dir(), paths.data_dir(), Path.home()):
        assert not any(got == real or real in got.parents for real in _real()), got


def _real() -> tuple[Path, ...]:
    from conftest import REAL_USER_DIRS

    return REAL_USER_DIRS


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
def test_the_app_in_tmux_gets_the_tests_environment_not_a_running_servers(tmp_path: Path, monkeypatch):
    """A tmux server already running (here a decoy on the default socket of a private TMUX_TMPDIR, started
    with other XDG dirs) must not be the one the app runs in."""
    monkeypatch.setenv("TMUX_TMPDIR", str(tmp_path))
    decoy = dict(os.environ, XDG_CONFIG_HOME="/decoy/config")
    subprocess.run(["tmux", "-f", "/dev/null", "new-session", "-d", "-s", "decoy", "sleep 60"], env=decoy, check=True)
    out = tmp_path / "env.txt"
    try:
        with Tmux(f"sh -c 'echo \"$XDG_CONFIG_HOME\" > {out}; sleep 5'") as tm:
            tm.wait(lambda _: out.exists() and out.read_text().strip(), 10, "the command ran")
        assert out.read_text().strip() == os.environ["XDG_CONFIG_HOME"]
    finally:
        subprocess.run(["tmux", "kill-server"], env=decoy, capture_output=True)
