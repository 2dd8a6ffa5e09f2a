"""`bkbench simulate` serves a chip on a pty: first line is the path; our CLI and a peer can use it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.fixture
def simulated(fixtures_dir):
    dump = fixtures_dir / "dumps" / "bk7231t-globe-37783-rgbct-bulb.bin"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bkbench.core.cli.main", "simulate", "--chip", "bk7231t", "--dump", str(dump)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/pts/"), proc.stderr.read()
        yield path, dump
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_info_and_read_through_the_pty(simulated, tmp_path):
    path, dump = simulated
    res = subprocess.run([sys.executable, "-m", "bkbench.core.cli.main", "info", "--port", path, "--json", "-q",
                          "--reset", "manual", "--timeout", "5"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    # the code's own version wins over the CRC tables' name, which stays as evidence (issue 19 item 6)
    assert (info["chip"], info["bootloader"], info["boot_version"]) == ("BK7231T", "bk7231s 1.0.4", "BK7231S_1.0.4")
    assert info["bootloader_table"] == "bk7231s 1.0.3"
    out = tmp_path / "part.bin"
    res = subprocess.run([sys.executable, "-m", "bkbench.core.cli.main", "read", "--port", path, "--start", "0",
                          "--length", "0x40000", "-o", str(out), "-q", "--reset", "manual", "--timeout", "5"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes() == dump.read_bytes()[:0x40000]


@pytest.mark.parametrize("args,words", [
    (["--flash-id", "ZZ"], "give 3 bytes"),
    (["--flash-id", "C84016"], "GD25Q32E of 4096 KiB"),
    (["--efuse", "12"], "16-byte key"),
    (["--efuse", "xyz"], "not hex"),
])
def test_bad_simulate_options_are_one_line(args, words):
    res = subprocess.run([sys.executable, "-m", "bkbench.core.cli.main", "simulate", *args], capture_output=True,
                         text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and words in res.stderr, res.stderr
