"""Bad ports and bad files through the CLI: one clear `bkbench: error: ...` line, exit code 1, no traceback."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import serial
from bkbench.core.cli.main import main
from bkbench.core.sim import registry
from bkbench.core.sim.faults import FaultPlan
from bkbench.core.transport import _explain
from simhelpers import temp_env


def run_cli(argv: list[str], tmp_path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = {"BKBENCH_DATA_DIR": str(tmp_path / "data"), "BKBENCH_CONFIG_DIR": str(tmp_path / "cfg"),
           "BKBENCH_CACHE_DIR": str(tmp_path / "cache")}
    with temp_env(**env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def assert_one_clear_error(code: int, err: str, *words: str) -> str:
    assert code == 1, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("bkbench: error:")]
    assert len(lines) == 1, err
    for w in words:
        assert w.lower() in lines[0].lower(), lines[0]
    return lines[0]


def test_missing_port(tmp_path: Path) -> None:
    code, _, err = run_cli(["info", "-p", "/dev/ttyNOPE", "--timeout", "0.5"], tmp_path)
    assert_one_clear_error(code, err, "/dev/ttyNOPE", "no such port")


def test_missing_port_real_process(tmp_path: Path) -> None:
    """The installed entry path, as a user runs it: stderr carries exactly the message and a hint."""
    env = dict(os.environ, BKBENCH_DATA_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "bkbench.core.cli.main", "read", "-p", "/dev/ttyNOPE"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert_one_clear_error(proc.returncode, proc.stderr, "no such port")


def test_permission_denied_mapping() -> None:
    exc = serial.SerialException(errno.EACCES, "could not open port /dev/ttyUSB0: [Errno 13] Permission denied")
    err = _explain("/dev/ttyUSB0", exc)
    assert "permission denied" in str(err) and "dialout" in err.hint


@pytest.mark.skipif(not hasattr(os, "setuid") or os.geteuid() != 0, reason="needs root to drop to another user")
def test_permission_denied_real_open(tmp_path: Path) -> None:
    """As an unprivileged user, opening a mode-000 device node path fails with EACCES."""
    tmp_path.chmod(0o755)
    node = tmp_path / "ttyFAKE"
    node.write_bytes(b"")
    node.chmod(0o000)
    env = dict(os.environ, BKBENCH_DATA_DIR=str(tmp_path / "d"), HOME=str(tmp_path))
    try:
        proc = subprocess.run([sys.executable, "-m", "bkbench.core.cli.main", "info", "-p", str(node)],
                              capture_output=True, text=True, timeout=60, env=env, cwd=str(tmp_path),
                              preexec_fn=lambda: (os.setgid(65534), os.setuid(65534)))
    except PermissionError:
        pytest.skip("the interpreter is not executable by an unprivileged user here")
    if "ModuleNotFoundError" in proc.stderr or "Permission denied: '/" in proc.stderr.split("\n")[0]:
        pytest.skip("the interpreter or package is not readable by the unprivileged user")
    assert_one_clear_error(proc.returncode, proc.stderr, "permission denied")


def test_busy_port(tmp_path: Path) -> None:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    holder = serial.Serial(path, exclusive=True, timeout=0.1)
    try:
        code, _, err = run_cli(["info", "-p", path, "--timeout", "0.5"], tmp_path)
        assert_one_clear_error(code, err, path, "in use")
    finally:
        holder.close()
        os.close(master)
        os.close(slave)


def test_unplug_mid_read(tmp_path: Path) -> None:
    # Linking, identifying and the MAC read move about 4.3 kB; the adapter vanishes 40 kB later.
    dev = registry.create_device("BK7231N", faults=FaultPlan(disconnect_after=45000))
    registry.register("badinput-unplug", dev)
    out = tmp_path / "part.bin"
    try:
        code, _, err = run_cli(["read", "-p", "sim://@badinput-unplug", "-b", "115200", "--reset", "manual",
                                "--timeout", "2", "-q", "--length", "0x40000", "-o", str(out)], tmp_path)
    finally:
        registry.unregister("badinput-unplug")
    assert dev.disconnected
    line = assert_one_clear_error(code, err, "unplugged")
    assert "still to do" in line  # says which range is unverified
    assert not out.exists() and not list(tmp_path.glob(".part.bin*"))  # no partial dump under any name


def test_unplug_mid_write(tmp_path: Path) -> None:
    # Connecting moves about 4.2 kB towards the host, the 128 KiB write about 1.3 kB more.
    dev = registry.create_device("BK7231N", faults=FaultPlan(disconnect_after=4800))
    registry.register("badinput-unplug-w", dev)
    image = tmp_path / "raw.bin"
    image.write_bytes(bytes(range(256)) * 16 * 32)
    try:
        code, _, err = run_cli(["write", "-p", "sim://@badinput-unplug-w", "-b", "115200", "--reset", "manual",
                                "--timeout", "2", "-q", "--no-backup", "--start", "0x100000", str(image)], tmp_path)
    finally:
        registry.unregister("badinput-unplug-w")
    assert dev.disconnected
    line = assert_one_clear_error(code, err, "unplugged")
    assert "still to do" in line


def test_truncated_obk_config_file(tmp_path: Path) -> None:
    """A file holding just the 'CFG' ident is not a config: a clear error, not a struct.error traceback."""
    f = tmp_path / "cfg.bin"
    f.write_bytes(b"CFG")
    code, _, err = run_cli(["config", "show", str(f)], tmp_path)
    assert_one_clear_error(code, err)


def test_missing_image_file(tmp_path: Path) -> None:
    code, _, err = run_cli(["image", str(tmp_path / "nope.bin")], tmp_path)
    assert_one_clear_error(code, err)


def test_bad_reset_sequence(tmp_path: Path) -> None:
    code, _, err = run_cli(["info", "-p", "/dev/ttyNOPE", "--reset", "R1|X9"], tmp_path)
    assert code in (1, 2) and "Traceback" not in err
