"""Derived library entries (issue 22 item 5): after a write bkbench completed and verified, the library records
the covering backup with the write laid over it, so the next write finds it by the chip's block CRCs and does not
read the chip again; and when no entry covers the chip but one shares most of its blocks (the chip's CRC of each),
a backup reads only the blocks that differ. Judged by what the simulated chip served (its Read4K commands) and by
the library's files. Each way it could lie is played: a final compare that fails, a cancelled write, a write
without a final compare, another tool writing in between, a derived image damaged on disk, the chip changing while
its blocks are read, a library that cannot take it; a restore of the original adds nothing, and the original read
is always listed."""

from __future__ import annotations

import hashlib
import json
import os
import random
from contextlib import contextmanager

import pytest
from bkbench.core.analysis.obk_config import ObkConfig
from bkbench.core.backups import BackupLibrary
from bkbench.core.errors import BkError, OperationCancelled, VerifyFailed
from bkbench.core.images.recognize import WritePlan
from bkbench.core.ops.events import Notice, SectorState, SectorUpdate, Stage
from bkbench.core.protocol import LongCmd
from bkbench.core.session import Session
from simhelpers import sim_url

READ_4K = LongCmd.FLASH_READ_4K | 0x100  # how SimDevice.commands records long commands
CFG = 0x1D1000  # OpenBK's config sector on a BK7231N
BLOCK_OF_SECTORS = 16


def reads(dev) -> int:
    return dev.commands.count(READ_4K)


def sector(ssid: str) -> bytes:
    cfg = ObkConfig.new(chip="BK7231N")
    cfg.set("wifi_ssid", ssid)
    return cfg.sector()


def by_origin(lib: BackupLibrary) -> dict[str, list]:
    out: dict[str, list] = {"read": [], "derived": []}
    for e in lib.list():
        out[e.origin].append(e)
    return out


@contextmanager
def backed_up(lib: BackupLibrary, **session_kw):
    """A simulated BK7231N, connected, its flash backed up into `lib`: (session, device, Backup)."""
    with sim_url("BK7231N") as (url, dev):
        with Session(url, **session_kw) as s:
            s.connect()
            yield s, dev, s.backup(lib)


@pytest.fixture
def lib(tmp_path) -> BackupLibrary:
    return BackupLibrary(tmp_path / "lib")


def test_writes_after_our_own_read_nothing_again_and_the_library_says_what_each_entry_is(lib):
    with sim_url("BK7231N") as (url, dev):
        with Session(url) as s:
            s.connect()
            flash = bytes(dev.flash.data)
            holding = sum(flash[a : a + 0x1000] != b"\xff" * 0x1000 for a in range(0, len(flash), 0x1000))
            before = reads(dev)
            first = s.backup(lib).entry
            full = reads(dev) - before  # what one full backup read costs on this chip
            # every sector holding data crossed the wire (the real dump: ~60 %; without ../shared the demo plug)
            assert full >= holding > BLOCK_OF_SECTORS
            n = reads(dev)
            s.write_config(sector("one"), backup_library=lib)
            assert reads(dev) - n < BLOCK_OF_SECTORS  # covered by the read: not read again
            d1 = s.last_derived
            assert d1 is not None and d1.origin == "derived"
            assert lib.load(d1) == bytes(dev.flash.data)  # what the chip holds, byte for byte
            n = reads(dev)
            s.write_config(sector("two"), backup_library=lib)  # after our own write: covered by the derived entry
            assert reads(dev) - n < BLOCK_OF_SECTORS
            d2 = s.last_derived
            assert d2 is not None and lib.load(d2) == bytes(dev.flash.data)
    prov = d2.derived
    assert prov["from"] == {"file": d1.name, "sha256": d1.meta["sha256"]}
    assert prov["original"] == {"file": first.name, "sha256": first.meta["sha256"]}  # the read it all came from
    assert prov["operation"] == "config write" and prov["spans"][0]["start"] == f"0x{CFG:06X}"
    assert prov["spans"][0]["sha256"] == hashlib.sha256(sector("two")).hexdigest()
    assert "final" not in prov["checked"] or "CRC" in prov["checked"]
    kinds = by_origin(lib)
    assert [e.path for e in kinds["read"]] == [first.path]  # the original read is kept and listed
    assert [e.path for e in kinds["derived"]] == [d2.path, d1.path]
    assert lib.load(first) != lib.load(d1) != lib.load(d2)


def test_a_final_compare_that_fails_leaves_no_derived_entry_and_the_next_write_reads_again(lib):
    with sim_url("BK7231N") as (url, dev):
        def sink(ev) -> None:  # the flash changes under the write, after it verified, before the final compare
            if isinstance(ev, Stage) and ev.name == "verify" and ev.message.startswith("comparing"):
                dev.flash.data[CFG + 100] ^= 0x01

        with Session(url, on_event=sink) as s:
            s.connect()
            s.backup(lib)
            with pytest.raises(VerifyFailed):
                s.write_config(sector("one"), backup_library=lib)
            assert s.last_derived is None
    assert [e.origin for e in lib.list()] == ["read"]


def test_a_cancelled_write_leaves_no_derived_entry(lib):
    image = random.Random(1).randbytes(0x40000)
    with backed_up(lib) as (s, dev, _):

        def sink(ev) -> None:
            if isinstance(ev, SectorUpdate) and ev.state is SectorState.WRITTEN and ev.addr >= 0x120000:
                s.cancel_token.cancel()

        from bkbench.core.ops.events import CancelToken

        s.cancel_token, s.sink = CancelToken(), sink
        with pytest.raises(OperationCancelled):
            s.write_image(WritePlan(0x100000, image, "raw data"), backup_library=lib, reboot=False)
        assert s.last_derived is None
        s.sink, s.cancel_token = (lambda ev: None), None
        left = bytes(dev.flash.data)
        n = reads(dev)
        s.write_config(sector("one"), backup_library=lib)  # what the cancelled write left is not covered:
        assert s.last_backup is not None and s.last_backup.taken  # a new backup, of the blocks it changed
        assert 0 < reads(dev) - n <= 3 * BLOCK_OF_SECTORS
        assert lib.load(s.last_backup.entry) == left
    assert [(e.origin, (e.derived or {}).get("operation")) for e in lib.list()] == [
        ("derived", "config write"), ("derived", "read"), ("read", None)]


def test_a_write_without_its_final_compare_leaves_no_derived_entry(lib):
    with backed_up(lib) as (s, dev, _):
        s.write_image(WritePlan(0x100000, b"\x12" * 0x3000, "raw data"), backup_library=lib, verify=False,
                      reboot=False)
        assert s.last_derived is None
    assert [e.origin for e in lib.list()] == ["read"]


def test_another_tool_writing_in_between_is_not_covered_by_the_derived_entry(lib):
    with backed_up(lib) as (s, dev, _):
        s.write_config(sector("one"), backup_library=lib)
        derived = s.last_derived
        dev.flash.data[0x150000:0x150010] = b"\x00" * 16  # someone else's tool, between our two writes
        held = bytes(dev.flash.data)
        n = reads(dev)
        s.write_config(sector("two"), backup_library=lib)
        # the chip's block CRCs differ from the derived entry in one block: that block is read again
        assert reads(dev) - n == BLOCK_OF_SECTORS
        got = s.last_backup
        assert got is not None and got.taken and lib.load(got.entry) == held  # what the other tool left
        assert got.entry.derived["operation"] == "read" and got.entry.derived["from"]["file"] == derived.name
        assert [(x["start"], x["end"]) for x in got.entry.derived["spans"]] == [("0x150000", "0x160000")]
        assert s.last_derived.derived["from"]["file"] == got.entry.name  # the write's record builds on it
    assert derived is not None and lib.load(derived) != held


def test_a_damaged_derived_entry_is_skipped_and_said(lib):
    events: list = []
    with backed_up(lib, on_event=events.append) as (s, dev, b):
        first = b.entry
        s.write_config(sector("one"), backup_library=lib)
        derived = s.last_derived
        rot = bytearray(derived.path.read_bytes())
        rot[0x30000] ^= 0x80
        os.chmod(derived.path, 0o600)
        derived.path.write_bytes(bytes(rot))
        held = bytes(dev.flash.data)
        n = reads(dev)
        s.write_config(sector("two"), backup_library=lib)
        # never used: the backup comes from the intact read and the one block the chip has changed since
        assert reads(dev) - n == BLOCK_OF_SECTORS
        assert lib.load(s.last_backup.entry) == held and s.last_backup.entry.derived["from"]["file"] == first.name
    assert any(isinstance(e, Notice) and derived.name in e.message and "damaged" in e.message for e in events)


def test_a_block_that_changes_while_it_is_read_is_not_saved(lib):
    with backed_up(lib) as (s, dev, _):
        dev.flash.data[0x150000] ^= 0xFF  # changed since the backup: only this block is to be read

        def sink(ev) -> None:  # ... and it changes again while it is read
            if isinstance(ev, Stage) and ev.name == "read":
                dev.flash.data[0x158000] ^= 0xFF

        s.sink = sink
        with pytest.raises(BkError, match="changed while it was read"):
            s.backup(lib)
    assert [e.origin for e in lib.list()] == ["read"]


def test_restoring_the_original_adds_nothing_and_names_the_read(lib):
    with sim_url("BK7231N") as (url, dev):
        with Session(url) as s:
            s.connect()
            original = s.backup(lib).entry
            s.write_config(sector("one"), backup_library=lib)
            s.write_image(WritePlan(0x100000, b"\x34" * 0x5000, "raw data"), backup_library=lib, reboot=False)
            n = reads(dev)
            s.restore(lib.load(original), backup_library=lib, reboot=False)
            assert reads(dev) - n < BLOCK_OF_SECTORS  # covered by the newest derived entry
            assert s.last_derived is not None and s.last_derived.path == original.path  # nothing new: the read
        assert bytes(dev.flash.data) == lib.load(original)
    kinds = by_origin(lib)
    assert [e.path for e in kinds["read"]] == [original.path] and len(kinds["derived"]) == 2


def test_a_library_that_cannot_take_the_derived_entry_does_not_fail_the_write(lib, monkeypatch):
    events: list = []
    with sim_url("BK7231N") as (url, dev):
        with Session(url, on_event=events.append) as s:
            s.connect()
            s.backup(lib)

            def full(*_a, **_k):
                raise OSError(28, "No space left on device")

            monkeypatch.setattr(BackupLibrary, "_save_pair", full)
            s.write_config(sector("one"), backup_library=lib)  # completes: the chip holds the config
            assert s.last_derived is None
        assert bytes(dev.flash.data[CFG:CFG + 0x1000]) == sector("one")
    assert any(isinstance(e, Notice) and e.level == "warning" and "full" in e.message for e in events)
    monkeypatch.undo()
    assert [e.origin for e in lib.list()] == ["read"]


def test_a_derived_sidecar_says_what_it_is_made_of(lib):
    with backed_up(lib) as (s, dev, _):
        s.write_config(sector("one"), backup_library=lib)
        entry = s.last_derived
    meta = json.loads(entry.sidecar.read_text())
    assert set(meta["derived"]) == {"from", "original", "operation", "what", "spans", "checked"}
    assert meta["sha256"] == hashlib.sha256(entry.path.read_bytes()).hexdigest()
    assert oct(entry.path.stat().st_mode & 0o777) == "0o400"  # as every library image


def test_a_derived_entry_can_be_restored_and_adds_nothing(lib):
    with sim_url("BK7231N") as (url, dev):
        with Session(url) as s:
            s.connect()
            s.backup(lib)
            s.write_config(sector("one"), backup_library=lib)
            d1 = s.last_derived
            s.write_config(sector("two"), backup_library=lib)
            n, count = reads(dev), len(lib.list())
            s.restore(lib.load(d1), backup_library=lib, reboot=False)  # back to "stock + config one"
            assert reads(dev) - n < BLOCK_OF_SECTORS  # covered by the newest derived entry
            assert s.last_derived is not None and s.last_derived.path == d1.path  # that content: d1 itself
        assert bytes(dev.flash.data) == lib.load(d1)
    assert len(lib.list()) == count
