"""Issue 10 item 8: storage is checked before the chip is touched, and a storage failure after a verified
read never throws the data away. Full disks and read-only folders are real mounts (CI runs as root)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from bkbench.core.backups import BackupLibrary, StorageError
from bkbench.core.cli.main import main
from bkbench.core.session import Session
from simhelpers import sim_url

DUMP = "bk7231n-lspa9-clone-bl0937-plug.bin"


@pytest.fixture
def stock(fixtures_dir) -> bytes:
    return (fixtures_dir / "dumps" / DUMP).read_bytes()


def _mount_tmpfs(where: Path, options: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"mount -t tmpfs not permitted here: {r.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB file system: too small for a 2 MiB dump."""
    where = tmp_path / "small"
    _mount_tmpfs(where, "size=1m")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def read_only_disk(tmp_path):
    where = tmp_path / "ro"
    _mount_tmpfs(where, "ro,size=4m")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    first = err.strip().splitlines()[0]
    assert first.startswith("bkbench: error: ")
    return first


def _read_cli(url: str, library: Path) -> int:
    return main(["read", "--port", url, "--library", str(library), "-q"])


def test_full_disk_is_refused_before_the_chip_is_touched(small_disk, stock, capsys):
    with sim_url("BK7231N", stock) as (url, dev):
        assert _read_cli(url, small_disk / "backups") == 1
        assert dev.commands == []
    line = _one_line_error(capsys)
    assert "KiB free" in line and str(small_disk / "backups") in line


def test_read_only_data_dir_is_refused_before_the_chip_is_touched(read_only_disk, stock, capsys):
    with sim_url("BK7231N", stock) as (url, dev):
        assert _read_cli(url, read_only_disk / "backups") == 1
        assert dev.commands == []
    assert "read-only" in _one_line_error(capsys)


def test_data_dir_that_is_a_file_is_refused_before_the_chip_is_touched(tmp_path, stock, capsys, monkeypatch):
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    monkeypatch.setenv("BKBENCH_DATA_DIR", str(blocker))
    with sim_url("BK7231N", stock) as (url, dev):
        assert main(["read", "--port", url, "-q"]) == 1
        assert dev.commands == []
    assert "is a file" in _one_line_error(capsys)
    assert blocker.read_text() == "not a folder"


def test_session_backup_checks_storage_before_reading(tmp_path, stock):
    blocker = tmp_path / "lib"
    blocker.write_text("x")
    with sim_url("BK7231N", stock) as (url, dev):
        with Session(url) as s:
            s.connect()
            before = len(dev.commands)
            with pytest.raises(StorageError, match="is a file"):
                s.backup(BackupLibrary(blocker))
            assert not any(c == 0x109 for c in dev.commands[before:])  # no Read4K issued


def test_disk_full_after_a_verified_read_rescues_the_data(small_disk, stock, tmp_path, monkeypatch, capsys):
    """The space check passed (or the disk filled up meanwhile): the read data lands in the rescue dir."""
    rescue = tmp_path / "rescue"
    rescue.mkdir()
    monkeypatch.setenv("BKBENCH_RESCUE_DIR", str(rescue))
    monkeypatch.setattr(BackupLibrary, "check_space", lambda self, size=None: None)
    with sim_url("BK7231N", stock) as (url, dev):
        assert _read_cli(url, small_disk / "backups") == 1
        flash = bytes(dev.flash.data)
    line = _one_line_error(capsys)
    rescued = sorted(rescue.glob("bkbench-rescued-*.bin"))
    assert len(rescued) == 1 and str(rescued[0]) in line and "full" in line
    assert rescued[0].read_bytes() == flash == stock
    assert stat.S_IMODE(rescued[0].stat().st_mode) == 0o600
    assert list(rescue.glob("*.part")) == []
    assert [p for p in (small_disk / "backups").iterdir() if p.suffix in (".bin", ".json")] == []


def test_storage_error_keeps_the_data_for_a_retry(small_disk, stock, tmp_path, monkeypatch):
    monkeypatch.setenv("BKBENCH_RESCUE_DIR", str(tmp_path))
    lib = BackupLibrary(small_disk / "backups")
    with pytest.raises(StorageError) as err:
        lib.save(stock, {"chip": "BK7231N"})
    assert err.value.data == stock and err.value.fallback and err.value.fallback.read_bytes() == stock
    retry = BackupLibrary(tmp_path / "elsewhere").save(err.value.data, err.value.meta)
    assert retry.path.read_bytes() == stock


def test_space_check_creates_nothing(tmp_path):
    lib = BackupLibrary(tmp_path / "a" / "b" / "backups")
    lib.check_space(0x200000)  # plenty of room in tmp: passes
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(StorageError, match="needs"):
        lib.check_space(1 << 62)
