"""Issue 10 item 5: a library that cannot rot silently. SHA-256 on every use, images read-only and never
rewritten, image and sidecar together or not at all, orphans and stale temporaries reported/cleaned."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest
from bkbench.core.backups import BackupLibrary, DamagedBackup
from bkbench.core.cli.main import main
from simhelpers import sim_url

DUMP = "bk7231n-lspa9-clone-bl0937-plug.bin"


@pytest.fixture
def stock(fixtures_dir) -> bytes:
    return (fixtures_dir / "dumps" / DUMP).read_bytes()


@pytest.fixture
def lib(tmp_path) -> BackupLibrary:
    return BackupLibrary(tmp_path / "lib")


def _meta() -> dict:
    return {"chip": "BK7231N", "mac": "C4:4F:33:00:00:01", "flash_id": "EB6015", "flash_size": 0x200000}


def _rot(path, offset: int = 0x1E0040) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x04
    os.chmod(path, 0o600)
    path.write_bytes(bytes(data))


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_saved_pair_is_read_only_in_a_private_directory(lib, stock):
    e = lib.save(stock, _meta())
    assert _mode(lib.root) == 0o700
    assert _mode(e.path) == 0o400 and _mode(e.sidecar) == 0o400
    assert json.loads(e.sidecar.read_text())["file"] == e.name
    assert sorted(p.name for p in lib.root.iterdir()) == sorted([e.name, e.sidecar.name])  # no temporaries
    assert lib.load(e) == stock


def test_bit_rotted_image_is_refused_by_load_verify_file_and_restore_and_shown_by_check(lib, stock, capsys):
    e = lib.save(stock, _meta())
    _rot(e.path)
    with pytest.raises(DamagedBackup, match="damaged.*SHA-256"):
        lib.load(e)
    with pytest.raises(DamagedBackup):
        lib.verify_file(e.path)
    for cmd in (["restore", "--no-backup"], ["write", "--no-backup"], ["verify"]):
        with sim_url("BK7231N", stock) as (url, dev):
            rc = main([*cmd, "--port", url, str(e.path), "-q"])
            flash = bytes(dev.flash.data)
            assert dev.commands == []  # refused before the port was opened
        assert rc == 1 and flash == stock
        err = capsys.readouterr().err
        assert "damaged" in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2
    assert main(["backups", "--check", "--library", str(lib.root), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert [d["path"] for d in report["damaged"]] == [str(e.path)] and report["ok"] is False


def test_intact_library_image_still_verifies(lib, stock):
    e = lib.save(stock, _meta())
    assert lib.verify_file(e.path) == e
    assert lib.verify_file(lib.root.parent / "nowhere.bin") is None


def test_config_set_cannot_overwrite_a_library_image(lib, stock, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BKBENCH_DATA_DIR", str(tmp_path / "data"))
    default = BackupLibrary()  # the library `config set` knows without being told
    for library in (lib, default):
        e = library.save(stock, _meta())
        before = e.path.read_bytes()
        for out in (e.path, e.sidecar, library.root / "new-name.bin"):
            rc = main(["config", "set", str(e.path), "wifi_ssid=evil", "--new", "-o", str(out)])
            err = capsys.readouterr().err
            # Writing over its own input is refused first ("the input file"); anything else in the library
            # by the library check.
            assert rc == 1 and ("backup library" in err or "input file" in err) and "Traceback" not in err
        assert e.path.read_bytes() == before and library.load(e) == stock
        assert not (library.root / "new-name.bin").exists()
    ok = tmp_path / "edited.bin"
    assert main(["config", "set", str(e.path), "wifi_ssid=home", "--new", "-o", str(ok)]) == 0
    assert ok.stat().st_size == len(stock)


def test_read_output_into_a_library_is_refused_before_the_chip_is_touched(lib, stock, capsys):
    lib.save(stock, _meta())
    with sim_url("BK7231N", stock) as (url, dev):
        rc = main(["read", "--port", url, "--start", "0", "--length", "0x1000", "-o", str(lib.root / "x.bin")])
        assert dev.commands == []
    assert rc == 1 and "backup library" in capsys.readouterr().err
    assert not (lib.root / "x.bin").exists()


def test_orphans_are_reported_and_never_listed_and_stale_temporaries_cleaned(lib, stock, capsys):
    good = lib.save(stock, _meta())
    lonely = lib.root / "BK7231N-lonely.bin"
    lonely.write_bytes(stock)  # an image whose sidecar was never written
    ghost = lib.root / "BK7231N-ghost.json"
    ghost.write_text(json.dumps({"file": "BK7231N-ghost.bin", "sha256": "00" * 32}))
    stale = lib.root / ".BK7231N-x.bin.abcd.part"
    stale.write_bytes(b"\x00" * 100)
    old = time.time() - 7200
    os.utime(stale, (old, old))
    fresh = lib.root / ".BK7231N-y.bin.efgh.part"  # maybe a save in progress right now: kept
    fresh.write_bytes(b"\x00" * 100)
    assert [e.path for e in lib.list()] == [good.path]
    assert not stale.exists() and fresh.exists()  # the listing already removed what no save writes any more
    assert main(["backups", "--library", str(lib.root)]) == 0
    assert "1 image(s) without a usable sidecar" in capsys.readouterr().out
    assert main(["backups", "--check", "--library", str(lib.root)]) == 2
    out = capsys.readouterr().out
    assert f"NO SIDECAR  {lonely}" in out and f"NO IMAGE  {ghost}" in out
    assert "1 intact backup(s)" in out
    assert not stale.exists() and fresh.exists()
    assert main(["backups", "--check", "--library", str(lib.root), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["images_without_sidecar"] == [str(lonely)]
    assert report["sidecars_without_image"] == [str(ghost)]
    assert report["cleaned_temporaries"] == []  # already cleaned


def test_clean_library_checks_ok(lib, stock, capsys):
    lib.save(stock, _meta())
    assert main(["backups", "--check", "--library", str(lib.root)]) == 0
    assert "1 intact backup(s)" in capsys.readouterr().out


def test_a_save_that_fails_between_sidecar_and_image_leaves_neither(lib, stock, monkeypatch, tmp_path):
    monkeypatch.setenv("BKBENCH_RESCUE_DIR", str(tmp_path / "rescue"))
    (tmp_path / "rescue").mkdir()
    real_link = os.link
    calls = []

    def link(src, dst, *a, **k):
        calls.append(dst)
        if str(dst).endswith(".bin") and str(lib.root) in str(dst):
            raise OSError(28, "No space left on device")
        return real_link(src, dst, *a, **k)

    monkeypatch.setattr(os, "link", link)
    with pytest.raises(Exception, match="full.*saved to"):
        lib.save(stock, _meta())
    monkeypatch.setattr(os, "link", real_link)
    assert any(str(c).endswith(".json") for c in calls)  # the sidecar was linked first ...
    assert list(lib.root.iterdir()) == []  # ... and removed again with the image's failure
    rescued = list((tmp_path / "rescue").glob("*.bin"))
    assert len(rescued) == 1 and rescued[0].read_bytes() == stock


def test_old_sidecar_without_block_crcs_is_judged_from_its_image(lib, stock):
    from bkbench.core.backups import block_crcs

    e = lib.save(stock, _meta())
    meta = json.loads(e.sidecar.read_text())
    del meta["block_crcs"]
    os.chmod(e.sidecar, 0o600)
    e.sidecar.write_text(json.dumps(meta))
    crcs = block_crcs(stock)
    assert lib.find_covering("BK7231N", len(stock), crcs).path == e.path
    assert lib.find_covering("BK7231N", len(stock), crcs, mac="C4:4F:33:00:00:02") is None  # other MAC
    changed = list(crcs)
    changed[5] ^= 1
    assert lib.find_covering("BK7231N", len(stock), changed) is None
    assert lib.find_covering("BK7231T", len(stock), crcs) is None
