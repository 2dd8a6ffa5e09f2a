"""Several chips at once (core/station.py, `read`/`write` with several --port, `bkbench station`).

Judged against each simulator's flash and the backup library, never against what the CLI prints: every
backup byte-exact, every write on the flash, an unplugged adapter failing alone with one line and
nothing of it saved as a backup, Ctrl-C leaving no partial backup and saying what is left.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from bkbench.core.backups import BackupLibrary
from bkbench.core.cli.main import main
from bkbench.core.images.recognize import plan_write, recognize
from bkbench.core.ops.events import CancelToken, LinkAttempt, Progress, Stage
from bkbench.core.sim.faults import FaultPlan
from bkbench.core.station import Plan, Station, port_state, read_ports_file, run_port
from simhelpers import sim_url
from test_bad_input import assert_one_clear_error

N_DUMP = "bk7231n-lspa9-clone-bl0937-plug.bin"
N2_DUMP = "bk7231n-mirabella-genio-i003632-plug.bin"
T_DUMP = "bk7231t-feit-br30-rgbw-bulb.bin"
TAG = "1.18.219"
JSON_KEYS = {"port", "state", "chip", "mac", "backup", "wrote", "error", "seconds", "hint", "log",
             "backup_taken", "notes", "ok", "retries"}


def cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


one_error = assert_one_clear_error  # one "bkbench: error:" line, exit 1, no traceback


def library_images(lib: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in lib.glob("*.bin")} if lib.is_dir() else {}


def seed_release_cache(cache: Path, obk_images: dict) -> dict[str, bytes]:
    """An offline OpenBK cache as `bkbench fetch` leaves it: latest.json, release.json, files + .sha256."""
    import hashlib

    files = {f"OpenBK7231N_QIO_{TAG}.bin": obk_images["BK7231N"]["qio"],
             f"OpenBK7231T_UA_{TAG}.bin": obk_images["BK7231T"]["ua"]}
    rel = {"tag_name": TAG, "name": TAG, "published_at": "2025-11-25T18:10:00Z",
           "assets": [{"name": n, "size": len(d), "browser_download_url": f"http://invalid/{n}"}
                      for n, d in files.items()]}
    (cache / "releases" / TAG).mkdir(parents=True)
    (cache / "releases" / "latest.json").write_text(json.dumps(rel))
    (cache / "releases" / TAG / "release.json").write_text(json.dumps(rel))
    for name, data in files.items():
        (cache / "releases" / TAG / name).write_bytes(data)
        (cache / "releases" / TAG / f"{name}.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
    return files


# ---------------------------------------------------------------------------------------------- read

def test_read_on_three_ports_one_unplugged(fixtures_dir: Path, tmp_path: Path) -> None:
    dumps = fixtures_dir / "dumps"
    lib = tmp_path / "lib"
    with sim_url("BK7231N", dumps / N_DUMP) as (a, dev_a), \
            sim_url("BK7231N", dumps / N2_DUMP, faults=FaultPlan(disconnect_after=300_000)) as (b, dev_b), \
            sim_url("BK7231T", dumps / T_DUMP) as (c, dev_c):
        code, out, err = cli(["read", "-p", a, "-p", b, "-p", c, "--library", str(lib), "--json"])
    assert code == 1, err  # one port failed
    assert "Traceback" not in err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["port"] for r in rows] == [a, b, c]  # JSON lines, in the order given
    assert all(set(r) == JSON_KEYS for r in rows)
    ra, rb, rc = rows
    assert (ra["state"], rb["state"], rc["state"]) == ("done", "failed", "done")
    assert dev_b.disconnected and "unplugged" in rb["error"] and "\n" not in rb["error"]
    assert "still to do" in rb["error"] and rb["backup"] == ""
    # Each backup is its own chip's flash, byte for byte; the unplugged chip's content is nowhere.
    images = library_images(lib)
    assert Path(ra["backup"]).read_bytes() == bytes(dev_a.flash.data)
    assert Path(rc["backup"]).read_bytes() == bytes(dev_c.flash.data)
    assert sorted(images) == sorted([Path(ra["backup"]).name, Path(rc["backup"]).name])
    assert BackupLibrary(lib).check().ok and not list(lib.glob("*.part"))
    assert (ra["chip"], rc["chip"]) == ("BK7231N", "BK7231T") and ra["mac"] and rc["mac"]
    # Own log per port, private, naming only its own port's work.
    logs = [Path(r["log"]) for r in rows]
    assert len(set(logs)) == 3
    for r, log in zip(rows, logs):
        assert stat.S_IMODE(log.stat().st_mode) == 0o600 and stat.S_IMODE(log.parent.stat().st_mode) == 0o700
        assert f"result: {r['state']}" in log.read_text()
    assert "unplugged" in logs[1].read_text() and "unplugged" not in logs[0].read_text()


def test_read_summary_table_and_single_port_unchanged(fixtures_dir: Path, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    with sim_url("BK7231N", fixtures_dir / "dumps" / N_DUMP) as (a, dev_a), \
            sim_url("BK7231T", fixtures_dir / "dumps" / T_DUMP) as (b, _):
        code, out, err = cli(["read", "-p", a, "-p", b, "--library", str(lib)])
        assert code == 0, err
        head, *rows = out.splitlines()
        assert head.split() == ["port", "chip", "MAC", "backup", "result", "time", "error"]
        assert rows[0].startswith(a) and " done " in rows[0] and "BK7231N" in rows[0]
        assert "2 of 2 done" in out and str(lib) in out
        # One --port: the single-chip output, no table; the library already holds this content (by the
        # chip's block CRCs), so it is not read or stored again.
        taken = rows[0].split()[3]
        code, out, err = cli(["read", "-p", a, "--library", str(lib)])
    assert code == 0, err
    assert out.startswith("backup already in the library (same content, not read again): ") and "result" not in out
    saved = Path(out.rsplit(": ", 1)[1].strip())
    assert saved.name == taken and saved.read_bytes() == bytes(dev_a.flash.data)
    assert len(library_images(lib)) == 2


# ---------------------------------------------------------------------------------------------- write

def _assert_openbk_written(r, dev, before: bytes, chip: str, name: str, files: dict[str, bytes]) -> None:
    img = files[name]
    wp = plan_write(recognize(img, name), img, chip)
    flash = bytes(dev.flash.data)
    assert flash[wp.start:wp.start + len(wp.payload)] == wp.payload  # the chip holds its family's OpenBK
    assert flash[:wp.start] == before[:wp.start]  # bootloader untouched
    assert flash[0x1D0000:] == before[0x1D0000:]  # RF calibration and config untouched
    assert Path(r["backup"]).read_bytes() == before  # the backup is the chip as it was


def test_station_backs_up_then_writes_openbk_per_family(fixtures_dir: Path, tmp_path: Path, obk_images: dict,
                                                        monkeypatch) -> None:
    files = seed_release_cache(tmp_path / "cache", obk_images)
    monkeypatch.setenv("BKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    lib = tmp_path / "lib"
    dumps = fixtures_dir / "dumps"
    with sim_url("BK7231N", dumps / N_DUMP) as (a, dev_a), sim_url("BK7231T", dumps / T_DUMP) as (b, dev_b):
        before = (bytes(dev_a.flash.data), bytes(dev_b.flash.data))
        code, out, err = cli(["station", "-p", a, "-p", b, "--library", str(lib), "--json", "--no-reboot"])
    assert code == 0, err
    ra, rb = (json.loads(line) for line in out.splitlines())
    assert (ra["state"], rb["state"]) == ("done", "done") and ra["backup_taken"] and rb["backup_taken"]
    _assert_openbk_written(ra, dev_a, before[0], "BK7231N", f"OpenBK7231N_QIO_{TAG}.bin", files)
    _assert_openbk_written(rb, dev_b, before[1], "BK7231T", f"OpenBK7231T_UA_{TAG}.bin", files)
    assert BackupLibrary(lib).check().ok


def test_adapter_unplugged_mid_write_fails_alone(fixtures_dir: Path, tmp_path: Path, obk_images: dict,
                                                 monkeypatch) -> None:
    files = seed_release_cache(tmp_path / "cache", obk_images)
    monkeypatch.setenv("BKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    lib = tmp_path / "lib"
    dumps = fixtures_dir / "dumps"
    with sim_url("BK7231N", dumps / N_DUMP) as (a, dev_a), sim_url("BK7231N", dumps / N2_DUMP) as (b, dev_b):
        before = (bytes(dev_a.flash.data), bytes(dev_b.flash.data))

        def unplug(port: str, ev: object) -> None:  # port b's adapter vanishes a fifth into its write
            if port == b and isinstance(ev, Progress) and st.states[b].startswith("writing") \
                    and ev.done * 5 >= ev.total and dev_b.faults.plan.disconnect_after is None:
                dev_b.faults.plan.disconnect_after = dev_b._host_bytes + 200

        st = Station([a, b], Plan(openbk=True, reboot=False), baud=921600, library=BackupLibrary(lib),
                     on_event=unplug, log_dir=tmp_path / "logs")
        ra, rb = (r.to_json() for r in st.run())
    assert ra["state"] == "done", ra
    _assert_openbk_written(ra, dev_a, before[0], "BK7231N", f"OpenBK7231N_QIO_{TAG}.bin", files)
    assert dev_b.disconnected
    assert rb["state"] == "failed" and "unplugged" in rb["error"] and "still to do" in rb["error"], rb
    assert "\n" not in rb["error"]
    # Nothing lost: the backup taken before the write is the chip as it was.
    assert Path(rb["backup"]).read_bytes() == before[1]
    assert BackupLibrary(lib).check().ok


def test_image_that_does_not_fit_fails_that_port_only(fixtures_dir: Path, tmp_path: Path, obk_images: dict) -> None:
    image = tmp_path / "obk-n.bin"
    image.write_bytes(obk_images["BK7231N"]["ua"])
    lib = tmp_path / "lib"
    with sim_url("BK7231N", fixtures_dir / "dumps" / N_DUMP) as (a, dev_a), \
            sim_url("BK7231T", fixtures_dir / "dumps" / T_DUMP) as (b, dev_b):
        t_before = bytes(dev_b.flash.data)
        code, out, err = cli(["write", "-p", a, "-p", b, str(image), "--library", str(lib), "--json",
                              "--no-reboot"])
    assert code == 1, err
    ra, rb = (json.loads(line) for line in out.splitlines())
    assert ra["state"] == "done" and rb["state"] == "failed" and "BK7231T" in rb["error"]
    wp = plan_write(recognize(image.read_bytes(), image.name), image.read_bytes(), "BK7231N")
    assert bytes(dev_a.flash.data)[wp.start:wp.start + len(wp.payload)] == wp.payload
    assert bytes(dev_b.flash.data) == t_before  # refused before anything was written


def test_no_cached_openbk_is_one_line(fixtures_dir: Path, tmp_path: Path) -> None:
    with sim_url("BK7231T", fixtures_dir / "dumps" / T_DUMP) as (a, dev):
        before = bytes(dev.flash.data)
        res = run_port(a, Plan(openbk=True), baud=921600, library=BackupLibrary(tmp_path / "lib"))
    assert res.state == "failed" and "no cached OpenBK release for BK7231T" in res.error
    assert "bkbench fetch --chip bk7231t" in res.hint
    assert bytes(dev.flash.data) == before


# ---------------------------------------------------------------------------------------------- cancel

def test_cancel_stops_every_port_and_saves_no_partial_backup(fixtures_dir: Path, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    token = CancelToken()

    def on_event(port: str, ev: object) -> None:
        if isinstance(ev, Progress) and ev.done * 4 >= ev.total:
            token.cancel()  # a quarter into one port's read

    with sim_url("BK7231N", fixtures_dir / "dumps" / N_DUMP) as (a, _), \
            sim_url("BK7231T", fixtures_dir / "dumps" / T_DUMP) as (b, _):
        st = Station([a, b], Plan(backup=True), baud=921600, library=BackupLibrary(lib),
                     on_event=on_event, log_dir=tmp_path / "logs")
        results = st.run(token)
    assert st.finished and [r.state for r in results] == ["cancelled", "cancelled"], results
    assert all("still to do" in r.error or "cancelled" in r.error for r in results)
    assert library_images(lib) == {} and not list(lib.glob("*.part"))


def test_ctrl_c_cancels_all_ports_and_reports_each(tmp_path: Path) -> None:
    """A real SIGINT to a real process on two timed simulators: exit 130, each port says what is left."""
    env = dict(os.environ, BKBENCH_DATA_DIR=str(tmp_path / "data"))
    ports = ["sim://bk7231n?timing=1", "sim://bk7231t?timing=1"]
    proc = subprocess.Popen([sys.executable, "-m", "bkbench.core.cli.main", "read", "-b", "921600",
                             *sum((["-p", p] for p in ports), [])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen: list[str] = []

    def watch() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            seen.append(line)

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while sum("backing up" in s for s in seen) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    reader.join(5)
    assert proc.returncode == 130, "".join(seen)
    rows = [ln for ln in out.splitlines() if ln.startswith("sim://")]
    assert len(rows) == 2 and all(" cancelled " in r and "still to do" in r for r in rows), out
    assert "Traceback" not in "".join(seen)
    assert not list((tmp_path / "data" / "backups").glob("*.bin"))


# ---------------------------------------------------------------------------------------------- bad input

def test_duplicate_ports_are_refused_in_one_line(tmp_path: Path) -> None:
    code, _, err = cli(["read", "-p", "/dev/ttyUSB7", "-p", "/dev/ttyUSB7"])
    one_error(code, err, "/dev/ttyUSB7", "twice")
    real = tmp_path / "ttyUSB0"
    real.touch()
    link = tmp_path / "usb-1a86_USB_Serial-if00-port0"
    link.symlink_to(real)
    code, _, err = cli(["write", "-p", str(real), "-p", str(link), str(real)])
    one_error(code, err, "twice", str(real))
    ports = tmp_path / "ports.txt"
    ports.write_text(f"{link}  # the by-id name\n")
    code, _, err = cli(["station", "-p", str(real), "--ports-file", str(ports)])
    one_error(code, err, "twice")


@pytest.mark.parametrize("content, words", [
    (None, ["no such file"]),
    ("dir", ["directory"]),
    ("# only a comment\n\n   \n", ["names no port"]),
    (b"\xff\xfe\x00binary", ["not text"]),
    ("/dev/ttyUSB0 /dev/ttyUSB1\n", ["line 1", "one port"]),
    ("sim://bk7231n\n\x1b]0;owned\x07/dev/ttyUSB0\n", ["line 2", "control character"]),  # no terminal escapes
])
def test_ports_file_errors(tmp_path: Path, content, words) -> None:
    f = tmp_path / "ports.txt"
    if content == "dir":
        f.mkdir()
    elif isinstance(content, bytes):
        f.write_bytes(content)
    elif content is not None:
        f.write_text(content)
    code, _, err = cli(["read", "--ports-file", str(f)])
    one_error(code, err, "ports file", *words)


def test_ports_file_comments_and_no_port_at_all(tmp_path: Path) -> None:
    f = tmp_path / "ports.txt"
    f.write_text("# bench 1\n/dev/ttyUSB0   # left\n\n  sim://bk7231n?seed=3\n#/dev/ttyUSB9\n")
    assert read_ports_file(f) == ["/dev/ttyUSB0", "sim://bk7231n?seed=3"]
    # Saved by Windows Notepad: a byte order mark and CRLF line ends are not part of any port name.
    f.write_bytes("# bench 1\r\n/dev/ttyUSB0\r\nsim://bk7231n\r\n".encode("utf-8-sig"))
    assert read_ports_file(f) == ["/dev/ttyUSB0", "sim://bk7231n"]
    f.write_bytes("/dev/ttyUSB0\r\n".encode("utf-8-sig"))
    assert read_ports_file(f) == ["/dev/ttyUSB0"]
    code, _, err = cli(["read"])
    one_error(code, err, "no port given")
    code, out, err = cli(["read", "-p", "sim://bk7231n", "-p", "sim://bk7231t\x1b[2J"])
    one_error(code, err, "control character")
    assert "\x1b" not in out + err


@pytest.mark.parametrize("argv, words", [
    (["read", "-o", "x.bin"], ["--output", "single --port"]),
    (["read", "--efuse"], ["--efuse"]),
    (["write", "--start", "0x1D1000", "f.bin"], ["--start"]),
    (["write", "--replace-rf", "f.bin"], ["--replace-rf"]),
    (["station", "--flash-size", "2M"], ["--flash-size"]),
])
def test_single_chip_options_refused_with_several_ports(tmp_path: Path, argv, words) -> None:
    code, _, err = cli([argv[0], "-p", "sim://bk7231n", "-p", "sim://bk7231t", *argv[1:]])
    one_error(code, err, *words)


def test_dump_or_missing_image_refused_before_any_port(fixtures_dir: Path, tmp_path: Path) -> None:
    with sim_url("BK7231N", fixtures_dir / "dumps" / N_DUMP) as (a, dev):
        before = bytes(dev.flash.data)
        code, _, err = cli(["station", "-p", a, "-p", "sim://bk7231t", "--image",
                            str(fixtures_dir / "dumps" / N_DUMP)])
        one_error(code, err, "full flash dump")
        code, _, err = cli(["station", "-p", a, "-p", "sim://bk7231t", "--image", str(tmp_path / "nope.bin")])
        one_error(code, err, "nope.bin")
    assert bytes(dev.flash.data) == before


# ---------------------------------------------------------------------------------------------- pieces

def test_port_state_follows_the_events() -> None:
    s = "waiting"
    s = port_state(Stage("link", "linking"), s)
    assert s == "linking"
    s = port_state(LinkAttempt(3, 1.25), s)
    assert s == "linking 1.2 s"
    s = port_state(Stage("connected", "BK7231N"), s)
    s = port_state(Stage("read", "reading"), s)
    s = port_state(Progress(43, 100), s)
    assert s == "backing up 43 %"
    s = port_state(Progress(44, 100), s)
    assert s == "backing up 44 %"
    s = port_state(Stage("write", "writing"), s)
    assert port_state(Progress(12, 100), s) == "writing 12 %"
    assert port_state(Stage("verify", ""), s) == "verifying"
    assert port_state(Stage("reboot", ""), s) == "rebooting"
    assert port_state(object(), "writing 5 %") == "writing 5 %"


def test_parallel_saves_of_the_same_chip_in_one_second_never_collide(tmp_path: Path) -> None:
    lib = BackupLibrary(tmp_path / "lib")
    data = [bytes([i]) * 0x1000 for i in range(8)]
    meta = {"chip": "BK7231N", "mac": "1C:90:FF:F7:C9:34"}
    barrier = threading.Barrier(8)
    saved: list = []

    def save(d: bytes) -> None:
        barrier.wait()
        saved.append(lib.save(d, dict(meta)))

    threads = [threading.Thread(target=save, args=(d,)) for d in data]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({e.path for e in saved}) == 8
    assert sorted(e.path.read_bytes() for e in saved) == sorted(data)  # each name holds its own data
    report = lib.check()
    assert report.ok and len(report.intact) == 8 and not list(lib.root.glob("*.part"))


def test_a_second_backup_only_run_reuses_the_covering_backup(fixtures_dir: Path, tmp_path: Path) -> None:
    lib = BackupLibrary(tmp_path / "lib")
    with sim_url("BK7231N", fixtures_dir / "dumps" / N_DUMP) as (a, dev):
        first = run_port(a, Plan(), baud=921600, library=lib)
        second = run_port(a, Plan(), baud=921600, library=lib)
    assert first.ok and second.ok and first.backup_taken and not second.backup_taken
    assert first.backup == second.backup and Path(first.backup).read_bytes() == bytes(dev.flash.data)
    assert len(library_images(lib.root)) == 1


def test_info_on_several_ports_is_a_table_of_chips(tmp_path: Path) -> None:
    code, out, err = cli(["info", "-p", "sim://bk7231n", "-p", "sim://bk7231t", "--json"])
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["chip"], r["state"], r["backup"]) for r in rows] == [("BK7231N", "done", ""), ("BK7231T", "done", "")]
    assert all(r["mac"] for r in rows)


def test_backup_only_and_no_backup_leave_nothing_to_do() -> None:
    code, _, err = cli(["station", "-p", "sim://bk7231n", "--backup-only", "--no-backup"])
    one_error(code, err, "nothing to do")


def test_unplug_url_fails_that_port_in_one_line_and_logs_are_private(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BKBENCH_DATA_DIR", str(tmp_path / "data"))
    code, out, err = cli(["read", "-p", "sim://bk7231t", "-p", "sim://bk7231n?unplug=60000", "--json"])
    assert code == 1, err
    ok, bad = (json.loads(line) for line in out.splitlines())
    assert ok["state"] == "done" and bad["state"] == "failed" and "unplugged" in bad["error"]
    logs = tmp_path / "data" / "logs"
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700
    assert [p.name for p in BackupLibrary(tmp_path / "data" / "backups").root.glob("*.bin")] == \
        [Path(ok["backup"]).name]


def test_a_log_that_cannot_be_written_never_costs_the_backup(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the log folder would go")
    with sim_url("BK7231T") as (a, dev):
        st = Station([a], Plan(), baud=921600, library=BackupLibrary(tmp_path / "lib"), log_dir=blocker / "logs")
        (res,) = st.run()
    assert res.ok and res.log == "" and any("no log file" in n for n in res.notes)
    assert Path(res.backup).read_bytes() == bytes(dev.flash.data)


def test_bad_reset_method_is_one_line_before_any_port() -> None:
    code, _, err = cli(["read", "-p", "sim://bk7231n", "-p", "sim://bk7231t", "--reset", "bogus"])
    one_error(code, err, "unknown reset method")


def test_cancel_mid_write_says_what_is_left_and_keeps_the_backup(fixtures_dir: Path, tmp_path: Path,
                                                                  obk_images: dict) -> None:
    image = tmp_path / "obk-n.bin"
    image.write_bytes(obk_images["BK7231N"]["ua"])
    token = CancelToken()
    with sim_url("BK7231N", fixtures_dir / "dumps" / N_DUMP) as (a, dev):
        before = bytes(dev.flash.data)

        def on_event(port: str, ev: object) -> None:
            if isinstance(ev, Progress) and st.states[port].startswith("writing") and ev.done * 3 >= ev.total:
                token.cancel()

        st = Station([a], Plan(image=image, reboot=False), baud=921600, library=BackupLibrary(tmp_path / "lib"),
                     on_event=on_event, log_dir=tmp_path / "logs")
        (res,) = st.run(token)
    assert res.state == "cancelled" and "write still to do: 0x" in res.error, res
    assert Path(res.backup).read_bytes() == before and res.backup_taken
    # What the line says is left is exactly what differs from the image on the chip.
    left = int(res.error.split("write still to do: 0x", 1)[1][:6], 16)
    assert res.record is not None and res.record.remaining()[0][0] == left  # the same, for a UI
    assert bytes(dev.flash.data)[0x11000:left] == image.read_bytes()[:left - 0x11000]


def test_room_for_every_ports_backup_is_checked_before_any_chip(fixtures_dir: Path, tmp_path: Path) -> None:
    """A disk with room for one 2 MiB backup but not three: refused in one line, no chip touched."""
    where = tmp_path / "small"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(where)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"mount -t tmpfs not permitted here: {r.stderr.strip()}")
    try:
        with sim_url("BK7231N", fixtures_dir / "dumps" / N_DUMP) as (a, da), \
                sim_url("BK7231T", fixtures_dir / "dumps" / T_DUMP) as (b, db), \
                sim_url("BK7231N", fixtures_dir / "dumps" / N2_DUMP) as (c, dc):
            code, _, err = cli(["read", "-p", a, "-p", b, "-p", c, "--library", str(where / "backups")])
            assert da.commands == [] and db.commands == [] and dc.commands == []
        one_error(code, err, "3 backups need", "KiB free")
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_summary_fits_an_80_column_terminal() -> None:
    from bkbench.core.cli.station import summary_table
    from bkbench.core.station import ChipResult

    results = [ChipResult("/dev/ttyUSB0", "done", "BK7231N", "1C:90:FF:F7:C9:34",
                          "/lib/BK7231N-1C90FFF7C934-20261202T211457-1.bin", backup_taken=False, seconds=13.3),
               ChipResult("/dev/ttyUSB1", "failed", "BK7231N", "1C:90:FF:F7:C9:35", error="read stopped: " + "x" * 90,
                          seconds=1.8)]
    wide = summary_table(results, Path("/lib"))
    assert max(len(line) for line in wide.splitlines()[:3]) > 80  # the one-row-per-chip table (pipes, scripts)
    narrow = summary_table(results, Path("/lib"), width=80).splitlines()
    assert all(len(line) <= 80 for line in narrow[:3])
    assert narrow[2] == "    backup BK7231N-1C90FFF7C934-20261202T211457-1.bin (had)"
    assert narrow[4].startswith("    error  read stopped: ") and "failed" in narrow[3]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_live_lines_on_a_terminal_show_a_port_with_brackets_as_typed(tmp_path: Path) -> None:
    """The live table on a terminal takes a port name as text: brackets (an IPv6 host, a query) are not
    markup that aborts the run or vanishes from the line."""
    lib = tmp_path / "lib"
    odd = "sim://bk7231n?x=[/x]&y=[b]"
    out, err = io.StringIO(), _Tty()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["read", "-p", odd, "-p", "sim://bk7231t", "--library", str(lib)])
    assert code == 0, err.getvalue()
    assert len(BackupLibrary(lib).list()) == 2
    assert "[/x]&y=[b]" in err.getvalue()
