"""Issue 20 item 8, the library: a shared folder is never chmodded, "newest" follows the library's own
order whatever the clock says, and a killed save's 2 MiB temporary goes on the next save or listing
(never one a live save is still writing). Judged on the folder itself, not on what the CLI prints."""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from bkbench.core import backups
from bkbench.core.backups import BackupLibrary
from bkbench.core.cli.main import main

DATA = bytes(range(256)) * 256  # 64 KiB: a small "dump" is enough for the library's own behaviour


def _meta(mac: str = "C4:4F:33:00:00:01") -> dict:
    return {"chip": "BK7231N", "mac": mac, "flash_id": "EB6015", "flash_size": len(DATA)}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_existing_shared_library_folder_is_never_chmodded(tmp_path, caplog):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp
    with caplog.at_level(logging.WARNING, logger="bkbench.core.backups"):
        entry = BackupLibrary(shared).save(DATA, _meta())
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert _mode(entry.path) == 0o400 and _mode(entry.sidecar) == 0o400
    said = [r.getMessage() for r in caplog.records if "readable by other users" in r.getMessage()]
    assert len(said) == 1 and str(shared) in said[0] and "\n" not in said[0]
    # A library bkbench creates itself, parents included, is private whatever the umask.
    old = os.umask(0o022)
    try:
        fresh = tmp_path / "made" / "by" / "bkbench"
        BackupLibrary(fresh).save(DATA, _meta())
    finally:
        os.umask(old)
    assert [_mode(p) for p in (tmp_path / "made", tmp_path / "made" / "by", fresh)] == [0o700] * 3


def test_cli_library_in_a_shared_folder_keeps_its_mode(tmp_path):
    shared = tmp_path / "drop"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path / "config"),
               XDG_CACHE_HOME=str(tmp_path / "cache"), XDG_STATE_HOME=str(tmp_path / "state"))
    env.pop("BKBENCH_DATA_DIR", None)
    run = subprocess.run([sys.executable, "-m", "bkbench.core.cli.main", "read", "--port", "sim://bk7231n",
                          "--library", str(shared)], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert len(list(shared.glob("*.bin"))) == 1
    said = [line for line in run.stderr.splitlines() if "readable by other users" in line]
    assert len(said) == 1, run.stderr


class _Clock(datetime):
    """datetime whose now() is what the test says (the wall clock set back between two saves)."""

    value = datetime(2030, 1, 1, tzinfo=timezone.utc)

    @classmethod
    def now(cls, tz=None):
        return _Clock.value


def test_newest_backup_follows_the_save_order_when_the_clock_goes_back(tmp_path, monkeypatch, capsys):
    lib = BackupLibrary(tmp_path / "lib")
    monkeypatch.setattr(backups, "datetime", _Clock)
    _Clock.value = datetime(2030, 1, 1, tzinfo=timezone.utc)
    first = lib.save(DATA, _meta())
    _Clock.value = datetime(2029, 6, 1, tzinfo=timezone.utc)  # the clock set back (no RTC, NTP not yet)
    second = lib.save(DATA[::-1], _meta())
    _Clock.value = datetime(2029, 6, 1, 1, tzinfo=timezone(timedelta(hours=+5)))  # earlier still, other zone
    third = lib.save(DATA, _meta())
    for i, e in enumerate((first, second, third)):  # and the files' mtimes go backwards too
        t = time.time() - 1000 * i
        for p in (e.path, e.sidecar):
            os.utime(p, (t, t))
    assert [e.path for e in lib.list()] == [third.path, second.path, first.path]
    assert lib.find_covering("BK7231N", len(DATA), backups.block_crcs(DATA)).path == third.path
    assert main(["backups", "--library", str(lib.root), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["backups"]
    assert [b["path"] for b in listed] == [str(third.path), str(second.path), str(first.path)]


def test_backups_saved_before_the_sequence_existed_still_order_by_time(tmp_path):
    lib = BackupLibrary(tmp_path / "lib")
    old = lib.save(DATA, _meta())
    new = lib.save(DATA[::-1], _meta())
    for e, when in ((old, "2024-01-01T10:00:00+01:00"), (new, "2024-01-01T09:30:00+00:00")):
        meta = json.loads(e.sidecar.read_text())
        meta.pop("seq")
        meta["time"] = when  # 09:30 UTC is later than 10:00+01:00 (= 09:00 UTC)
        os.chmod(e.sidecar, 0o600)
        e.sidecar.write_text(json.dumps(meta))
    assert [e.path for e in lib.list()] == [new.path, old.path]
    third = lib.save(DATA, _meta())
    assert json.loads(third.sidecar.read_text())["seq"] == 1
    assert lib.list()[0].path == third.path


_SLOW_SAVE = textwrap.dedent("""
    import os, sys, time
    from bkbench.core import backups
    real = os.link
    def slow_link(src, dst):  # the save is interrupted (or still busy) after its 2 MiB temporary is written
        print("temporary written", flush=True)
        time.sleep(600)
        real(src, dst)
    os.link = slow_link
    backups.BackupLibrary(sys.argv[1]).save(os.urandom(0x200000), {"chip": "BK7231N", "mac": "C4:4F:33:00:00:09"})
""")


def _saver(root: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_SAVE, str(root)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "temporary written"
    return proc


def _parts(root: Path) -> list[Path]:
    return sorted(root.glob("*.part"))


@pytest.mark.parametrize("then", ["listing", "save"])
def test_a_killed_save_leaves_no_temporary_after_the_next_listing_or_save(tmp_path, then, capsys):
    root = tmp_path / "lib"
    killed = _saver(root)
    killed_parts = _parts(root)
    assert killed_parts and max(p.stat().st_size for p in killed_parts) >= 0x200000
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    live = _saver(root)  # a concurrent save still writing: its temporaries must survive
    try:
        live_parts = [p for p in _parts(root) if p not in killed_parts]
        assert live_parts
        if then == "listing":
            assert main(["backups", "--library", str(root)]) == 0
        else:
            BackupLibrary(root).save(DATA, _meta())
        assert _parts(root) == live_parts
    finally:
        live.kill()
        live.wait()
    BackupLibrary(root).list()
    assert _parts(root) == []
    assert len(list(root.glob("*.bin"))) == (1 if then == "save" else 0)


def test_temporaries_that_are_not_the_librarys_own_are_left_alone(tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    foreign = root / "download.iso.part"  # a browser's, in a shared folder
    foreign.write_bytes(b"x")
    dead = root / ".BK7231N-x.bin.w999999999@nohost.abc123.part"  # a writer on another host: only by age
    dead.write_bytes(b"x")
    BackupLibrary(root).list()
    assert foreign.exists() and dead.exists()
    old = time.time() - 2 * backups.STALE_PART_S
    os.utime(dead, (old, old))
    os.utime(foreign, (old, old))
    BackupLibrary(root).list()
    assert foreign.exists() and not dead.exists()


@pytest.mark.parametrize("command", ["write", "restore", "config"])
def test_storage_is_checked_before_the_chip_is_touched(tmp_path, monkeypatch, capsys, command):
    from bkbench.core.analysis.obk_config import ObkConfig
    from bkbench.core.sim.synth import synth_flash
    from simhelpers import sim_url

    monkeypatch.setenv("BKBENCH_DATA_DIR", str(tmp_path / "data"))
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the library's parent folder should be")
    library = str(blocker / "lib")
    flash = synth_flash("BK7231N", 0x200000)
    files = {"write": ("raw.bin", b"\x5a" * 0x1000), "restore": ("dump.bin", flash),
             "config": ("cfg.bin", ObkConfig.new(b"\xc4\x4f\x33\x00\x00\x01").sector())}
    name, blob = files[command]
    (tmp_path / name).write_bytes(blob)
    with sim_url("BK7231N", flash) as (url, dev):
        argv = {"write": ["write", "--start", "0x1D1000"], "restore": ["restore"], "config": ["config", "write"]}
        rc = main(argv[command] + [str(tmp_path / name), "--port", url, "--library", library])
        assert dev.commands == [] and dev.resets == 0  # not linked, not reset, nothing asked of the chip
    assert rc == 1 and "backup library" in capsys.readouterr().err


def test_a_hand_edited_sidecar_does_not_crash_the_listing(tmp_path, capsys):
    lib = BackupLibrary(tmp_path / "lib")
    e = lib.save(DATA, _meta())
    meta = json.loads(e.sidecar.read_text())
    meta.update({"chip": ["BK7231N"], "time": 20240101, "mac": {"x": 1}, "seq": "7", "derived": [1]})
    os.chmod(e.sidecar, 0o600)
    e.sidecar.write_text(json.dumps(meta))
    assert main(["backups", "--library", str(lib.root)]) == 0
    out = capsys.readouterr().out
    assert str(lib.root) in out and e.path.name in out  # the folder once, then each file
