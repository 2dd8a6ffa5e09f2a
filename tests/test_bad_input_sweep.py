"""Every subcommand, every kind of bad input: one `bkbench: error:` line (plus at most a hint), a
non-zero exit code, no traceback, no hang (pytest-timeout turns a hang into a failure).

Checks that need no chip must happen before linking: those cases name a port that does not exist,
so an error about the port instead of the file means the order is wrong."""

from __future__ import annotations

import contextlib
import io
import os
import threading
from pathlib import Path

import pytest
from bkbench.core.cli.main import main
from simhelpers import temp_env

NOPORT = "/dev/ttyNOPE"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("bad")
    (d / "dir").mkdir()
    os.mkfifo(d / "fifo")
    (d / "empty.bin").write_bytes(b"")
    (d / "junk.bin").write_bytes(bytes(range(256)) * 16)  # 4 KiB, no format
    (d / "raw.bin").write_bytes(b"\x55" * 0x3000)  # 12 KiB that is nothing recognisable
    (d / "existing.bin").write_bytes(b"keep me")
    (d / "sector.bin").write_bytes(b"\xff" * 4096)  # an erased config sector
    (d / "odd.bin").write_bytes(b"\x00" * 100_000)
    return {p.name: str(p) for p in d.iterdir()} | {"missing": str(d / "missing.bin"), "root": str(d)}


def run(argv: list[str], tmp_path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = {"BKBENCH_DATA_DIR": str(tmp_path / "data"), "BKBENCH_CONFIG_DIR": str(tmp_path / "cfg"),
           "BKBENCH_CACHE_DIR": str(tmp_path / "cache"), "BKBENCH_GITHUB_API": "http://127.0.0.1:9"}
    with temp_env(**env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


# (argv with {name} placeholders for `files`, words the error line must contain)
CASES = [
    (["ports", "--bogus"], ["--bogus"]),
    # numbers: bauds the chip cannot take, waits that never end or never start, offsets off the flash
    *[(["info", "-p", "sim://bk7231n", "--baud", b], ["baud"]) for b in ("-1", "0", "99999999999", "abc", "115201")],
    *[(["info", "-p", "sim://bk7231n", "--timeout", t], ["timeout"]) for t in ("nan", "inf", "-1", "0", "x")],
    (["--baud", "0"], ["baud"]),
    (["reboot", "-p", "sim://bk7231n", "-b", "-1"], ["baud"]),
    (["read", "-p", NOPORT, "--start", "-1"], ["start"]),
    (["read", "-p", NOPORT, "--length", "0"], ["length"]),
    (["read", "-p", NOPORT, "--length", "64M"], ["length"]),
    (["read", "-p", NOPORT, "--start", "0x1FF001", "--length", "4K", "-o", "{root}/r.bin"], ["4 KiB"]),
    (["doctor", "-p", NOPORT, "--seconds", "nan"], ["seconds"]),
    (["doctor", "-p", NOPORT, "--seconds", "-3"], ["seconds"]),
    (["fetch", "--list", "--count", "0"], ["count"]),
    (["fetch", "--chip", "esp32"], ["chip"]),
    # read: an existing output is refused before the chip is read (the port does not exist)
    (["read", "-p", NOPORT, "-o", "{existing.bin}"], ["exists"]),
    (["read", "-p", NOPORT, "-o", "{dir}"], ["directory"]),
    # write / restore / verify: the file is checked before linking
    (["write", "-p", NOPORT, "{missing}"], ["missing.bin"]),
    (["write", "-p", NOPORT, "{dir}"], ["dir"]),
    (["write", "-p", NOPORT, "{fifo}"], ["fifo"]),
    (["write", "-p", NOPORT, "/dev/zero"], ["/dev/zero"]),
    (["write", "-p", NOPORT, "{raw.bin}"], ["offset"]),
    (["restore", "-p", NOPORT, "{missing}"], ["missing.bin"]),
    (["restore", "-p", NOPORT, "{fifo}"], ["fifo"]),
    (["restore", "-p", NOPORT, "{raw.bin}"], ["not a full flash dump"]),
    (["verify", "-p", NOPORT, "{missing}"], ["missing.bin"]),
    (["verify", "-p", NOPORT, "{dir}"], ["dir"]),
    # analyze: no memory blow-up on /dev/zero, no block on a FIFO
    (["analyze", "{missing}"], ["missing.bin"]),
    (["analyze", "{dir}"], ["directory"]),
    (["analyze", "{fifo}"], ["not a regular file"]),
    (["analyze", "/dev/zero"], ["not a regular file"]),
    (["analyze", "{empty.bin}"], ["empty"]),
    (["analyze"], ["file"]),
    # config
    (["config", "show", "{missing}"], ["missing.bin"]),
    (["config", "show", "{dir}"], ["directory"]),
    (["config", "show", "{fifo}"], ["not a regular file"]),
    (["config", "show", "/dev/zero"], ["not a regular file"]),
    (["config", "show", "{junk.bin}"], ["config"]),
    (["config", "show", "{sector.bin}"], ["erased"]),
    (["config", "show", "{odd.bin}"], ["--chip"]),
    (["config", "show", "--chip", "esp8266", "{odd.bin}"], ["chip"]),
    (["config", "set", "{missing}", "ssid=x", "-o", "{root}/out1.bin"], ["missing.bin"]),
    (["config", "set", "{dir}", "ssid=x", "-o", "{root}/out2.bin"], ["directory"]),
    (["config", "set", "{fifo}", "ssid=x", "-o", "{root}/out3.bin"], ["not a regular file"]),
    (["config", "set", "{junk.bin}", "ssid=x", "-o", "{dir}"], ["directory"]),
    (["config", "set", "{junk.bin}", "ssid=x", "-o", "{existing.bin}/x.bin"], ["not a directory"]),
    (["config", "set", "{junk.bin}", "nonsense", "-o", "{root}/out4.bin"], ["config"]),
    (["config", "write", "{missing}", "-p", NOPORT], ["missing.bin"]),
    (["config", "write", "{odd.bin}", "-p", NOPORT], ["bytes"]),
    (["config", "write", "{fifo}", "-p", NOPORT], ["not a regular file"]),
    (["config", "write", "{sector.bin}", "-p", NOPORT], ["erased"]),
    (["config", "write", "{junk.bin}", "-p", NOPORT], ["not an OpenBK config"]),
    # image
    (["image", "{missing}"], ["missing.bin"]),
    (["image", "{dir}"], ["dir"]),
    (["image", "{fifo}"], ["fifo"]),
    (["image", "convert", "{raw.bin}", "-o", "{root}/conv.bin"], ["not an OTA package"]),
    (["image", "convert", "{raw.bin}"], ["-o"]),
    (["image", "convert", "{raw.bin}", "-o", "{dir}"], ["directory"]),
    (["image", "convert", "{missing}", "-o", "{root}/conv2.bin"], ["missing.bin"]),
    # doctor / backups / simulate
    (["doctor", "-p", NOPORT, "--dump", "{missing}"], ["missing.bin"]),
    (["backups", "--bogus"], ["--bogus"]),
    (["simulate", "--chip", "esp32"], ["chip"]),
    (["simulate", "--dump", "{missing}"], ["missing.bin"]),
    (["simulate", "--dump", "{dir}"], ["dir"]),
]


def _ids() -> list[str]:
    return [" ".join(argv).replace(NOPORT, "NOPORT") for argv, _ in CASES]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("argv", "words"), CASES, ids=_ids())
def test_bad_input_gets_one_clear_line(argv, words, files, tmp_path) -> None:
    for name, path in files.items():
        argv = [a.replace("{" + name + "}", path) for a in argv]
    code, out, err = run(argv, tmp_path)
    assert code not in (0, None), (argv, out, err)
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and lines[0].startswith("bkbench: error:"), err
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("hint:")), err
    for w in words:
        assert w.lower() in lines[0].lower(), lines[0]
    if NOPORT in argv:
        assert "no such port" not in lines[0], "the file should have been refused before linking"


def test_bad_baud_is_not_remembered_for_the_adapter(tmp_path) -> None:
    """The rate is refused before anything runs: nothing lands in the adapter memory."""
    code, _, _ = run(["info", "-p", "sim://bk7231n", "--baud", "0", "--timeout", "1"], tmp_path)
    assert code == 2
    assert not (tmp_path / "cfg").exists() or not any((tmp_path / "cfg").rglob("*"))


def test_fifo_is_refused_without_opening_it(files, tmp_path) -> None:
    """Opening a FIFO for reading blocks until a writer comes; the refusal must come from stat alone."""
    result: list = []
    t = threading.Thread(target=lambda: result.append(run(["analyze", files["fifo"]], tmp_path)), daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # unblock the reader so the test process can end
        with open(files["fifo"], "wb"):
            pass
        pytest.fail("analyze of a FIFO blocked")
    assert result[0][0] == 1


def test_port_in_use_names_the_process_holding_the_lock(tmp_path) -> None:
    """A process that merely has the tty open (a shell, an inherited fd) is not the one to close."""
    import subprocess
    import sys

    master, slave = os.openpty()
    path = os.ttyname(slave)
    bystander = subprocess.Popen(["sleep", "60"], pass_fds=[slave])  # older pid, tty open, no lock
    holder = subprocess.Popen([sys.executable, "-c", "import serial, sys, time; "
                               f"s = serial.Serial({path!r}, exclusive=True); print('ok', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ok"
        code, _, err = run(["info", "-p", path, "--timeout", "0.5"], tmp_path)
        assert code == 1 and "in use" in err
        assert f"process {holder.pid} " in err and f"process {bystander.pid} " not in err, err
    finally:
        for p in (bystander, holder):
            p.kill()
            p.wait()
        os.close(master)
        os.close(slave)
