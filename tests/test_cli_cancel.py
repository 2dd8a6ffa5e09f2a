"""Ctrl-C during a CLI write stops between sectors and says exactly what is left; re-running finishes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _simulate(dump, *extra):
    proc = subprocess.Popen([sys.executable, "-m", "bkbench.core.cli.main", "simulate", "--chip", "bk7231n",
                             "--dump", str(dump), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def test_ctrl_c_cancels_between_sectors_and_rerun_resumes(fixtures_dir, obk_images, tmp_path):
    dump = fixtures_dir / "dumps" / "bk7231n-lspa9-clone-bl0937-plug.bin"
    image = tmp_path / "openbk_ua.bin"
    image.write_bytes(obk_images["BK7231N"]["ua"])
    sim, pty = _simulate(dump, "--timing")  # real wire time, so the write takes long enough to interrupt
    try:
        cmd = [sys.executable, "-m", "bkbench.core.cli.main", "write", "--port", pty, str(image), "--no-backup",
               "--no-reboot", "--reset", "manual", "--timeout", "5", "--baud", "921600"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(12)  # past the block CRCs taken before the write (about 5 s at the chip's CRC speed)
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, err
        assert "stopping after the current sector" in err
        assert "cancelled; write still to do: 0x" in err and "Traceback" not in err
        res = subprocess.run(cmd + ["--json", "-q"], capture_output=True, text=True, timeout=180)
        assert res.returncode == 0, res.stderr
        assert '"skipped": 0' not in res.stdout  # the second run skipped what the first one wrote
    finally:
        sim.terminate()
        sim.wait(timeout=10)
