"""TUI building blocks without the engine: flash-map model, log splitting, operation numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
from bkbench.core.layout import SECTOR
from bkbench.core.ops.events import LinkAttempt, Notice, Progress, SectorState, SectorUpdate, Stage
from bkbench.tui.app import coalesce, ranges_text, subtract_ranges
from bkbench.tui.widgets.flashmap import STATE_GLYPH, FlashMapModel
from bkbench.tui.widgets.operation import OperationState
from bkbench.tui.widgets.seriallog import LogBuffer, RawLog, classify, safe_text

# -- flash map model -----------------------------------------------------------------------------


def test_model_maps_every_sector_of_2mib_to_its_partition():
    n = FlashMapModel("BK7231N")
    assert n.sectors == 512
    assert n.partition_at(0).kind == "bootloader"
    assert n.partition_at(0x10FFF).kind == "bootloader"
    assert n.partition_at(0x11000).kind == "app"
    assert n.partition_at(0x1D0000).kind == "rf"
    assert n.partition_at(0x1D1000).kind == "obk_config"
    assert n.partition_at(0x1FF000).kind == "tuya_kv"
    t = FlashMapModel("BK7231T")
    # the T layout puts RF / OBK config 64 KiB higher (PROTOCOL.md section 7)
    assert t.partition_at(0x1D0000).kind == "free"
    assert t.partition_at(0x1E0000).kind == "rf"
    assert t.partition_at(0x1E1000).kind == "obk_config"


def test_model_updates_ranges_and_tracks_dirty_sectors():
    m = FlashMapModel("BK7231N")
    m.take_dirty()
    m.set_state(0x11000, SectorState.WRITTEN, 0x3000)
    m.set_state(0x14000, SectorState.SKIPPED)
    m.set_state(0x1D0800, SectorState.FAILED, 0x10)  # unaligned: marks the sector containing it
    assert m.take_dirty() == {0x11, 0x12, 0x13, 0x14, 0x1D0}
    assert m.state_at(0x12000) is SectorState.WRITTEN
    assert m.state_at(0x1D0000) is SectorState.FAILED
    assert m.ranges([SectorState.WRITTEN, SectorState.SKIPPED]) == [(0x11000, 0x15000)]
    counts = m.counts()
    assert counts[SectorState.WRITTEN] == 3 and counts[SectorState.FAILED] == 1
    assert counts[SectorState.PENDING] == 512 - 5
    m.reset()
    assert m.counts()[SectorState.PENDING] == 512


def test_model_describe_names_address_partition_and_state():
    m = FlashMapModel("BK7231N")
    m.set_state(0x1D1000, SectorState.VERIFIED)
    text = m.describe(0x1D1000 // SECTOR)
    assert "0x1D1000" in text and "OpenBK config" in text and "verified" in text


def test_every_state_has_a_distinct_glyph():
    glyphs = list(STATE_GLYPH.values())
    assert len(set(glyphs)) == len(glyphs) == len(SectorState)


# -- serial log ----------------------------------------------------------------------------------


def test_log_splits_crlf_across_chunks_and_keeps_blank_lines():
    buf = LogBuffer(clock=lambda: 100.0)
    for chunk in (b"hello\r", b"\nworld\n", b"\n", b"tail"):
        buf.feed(chunk)
    assert [x.text for x in buf.take()] == ["hello", "world", ""]
    buf.flush_partial()
    assert [x.text for x in buf.take()] == ["tail"]


def test_log_lone_cr_ends_the_line_so_progress_updates_stay_visible():
    buf = LogBuffer()
    buf.feed(b"10%\r20%\r30%\n")
    assert [x.text for x in buf.take()] == ["10%", "20%", "30%"]


def test_log_makes_ansi_and_control_bytes_safe():
    assert safe_text(b"\x1b[31mred\x1b[0m text") == "red text"
    assert safe_text(b"bell\x07 nul\x00 del\x7f") == "bell\\x07 nul\\x00 del\\x7f"
    assert safe_text(b"\xff\xfe") == "\ufffd\ufffd"
    assert "\x1b" not in safe_text(b"\x1b]0;title\x07x")


def test_log_bounds_long_lines():
    buf = LogBuffer(max_line=100)
    buf.feed(b"a" * 250 + b"\n")
    assert [len(x.text) for x in buf.take()] == [100, 100, 50]


def test_log_highlights_real_boot_log_and_marks_the_reset(fixtures_dir: Path):
    data = (fixtures_dir / "bootlogs" / "bk7231n-lspa9-gray-t34-bl0937.log").read_bytes()
    buf = LogBuffer()
    # feed in odd-sized chunks as a UART would deliver them
    for i in range(0, len(data), 37):
        buf.feed(data[i:i + 37])
    lines = buf.take()
    kinds = [x.kind for x in lines]
    banner = kinds.index("boot")
    assert lines[banner].text == "V:BK7231N_1.0.1"
    assert kinds[banner - 1] == "reset"  # the marker comes right before the banner
    sdk = [x.text for x in lines if x.kind == "tuya_sdk"]
    assert any("TUYA IOT SDK V:2.3.3" in t for t in sdk)
    assert any(t.startswith("< BUILD AT:") for t in sdk)


def test_classify_openbk_version_line():
    assert classify("Info:MAIN:OpenBK7231N 1.18.219 Nov 25 2025 10:00:00") == "obk"
    assert classify("[01-01 18:12:15 TUYA E][lr:0xcca71] logseq empty") == "tuya_err"
    assert classify("plain text") == ""


def test_raw_log_rotates(tmp_path: Path):
    raw = RawLog(tmp_path / "raw.bin", max_bytes=1000, backups=2)
    buf = LogBuffer(raw_log=raw)
    for _ in range(35):
        buf.feed(b"x" * 99 + b"\n")
    raw.close()
    sizes = sorted(p.name for p in tmp_path.iterdir())
    assert sizes == ["raw.bin", "raw.bin.1", "raw.bin.2"]
    # 3500 bytes = three full 1000-byte generations + 500; with 2 backups the oldest generation is gone
    assert [(tmp_path / n).stat().st_size for n in sizes] == [500, 1000, 1000]


def test_log_buffer_is_thread_safe_under_a_flood():
    import threading

    buf = LogBuffer(max_pending=1_000_000)
    line = b"0123456789" * 7 + b"\r\n"

    def writer() -> None:
        for _ in range(2000):
            buf.feed(line)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    got = 0
    while any(t.is_alive() for t in threads):
        got += len(buf.take())
    for t in threads:
        t.join()
    got += len(buf.take())
    assert got == 8000


# -- operation numbers and event batching --------------------------------------------------------


def test_operation_state_rate_and_eta():
    st = OperationState("Backup", now=0.0)
    st.apply(Stage("read"))
    st.apply(Progress(0, 0x200000, t=10.0))
    st.apply(Progress(0x40000, 0x200000, t=12.0))  # 256 KiB in 2 s
    assert st.rate == pytest.approx(0x20000)
    assert st.eta == pytest.approx((0x200000 - 0x40000) / 0x20000)
    assert "ETA 0:14" in st.summary(now=20.0)
    st.apply(LinkAttempt(3, 1.5, "reset the chip now"))
    assert st.link_attempts == 3 and st.hint == "reset the chip now"


def test_coalesce_keeps_last_progress_and_all_sector_updates():
    events = [Stage("read")] + [Progress(i, 10) for i in range(10)] + [
        SectorUpdate(0, SectorState.READ), Notice("info", "x"), Progress(10, 10)] + [
        LinkAttempt(i, i * 0.1, "reset") for i in range(50)]
    sectors, others = coalesce(events)
    assert len(sectors) == 1
    assert [type(e).__name__ for e in others] == ["Stage", "Progress", "Notice", "Progress", "LinkAttempt"]
    assert others[1].done == 9 and others[-1].attempt == 49


def test_subtract_ranges_leaves_protected_holes():
    assert subtract_ranges([(0x11000, 0x200000)], [(0, 0x11000), (0x1D0000, 0x1D1000)]) == [
        (0x11000, 0x1D0000), (0x1D1000, 0x200000)]
    assert ranges_text([]) == "none"


def test_subtract_ranges_matches_address_sets():
    """The one subtraction the TUI's write planner and the flash guard share, against plain sets:
    a piece off by one address would write into a protected sector or leave one unguarded."""
    import random

    rng = random.Random(7)

    def pieces(n: int, least: int) -> list[tuple[int, int]]:
        out = []
        for _ in range(n):
            s = rng.randrange(0, 40)
            out.append((s, s + rng.randrange(least, 12)))
        return out

    for _ in range(300):
        ranges, holes = pieces(rng.randrange(1, 4), 1), pieces(rng.randrange(0, 4), 0)
        got = subtract_ranges(ranges, holes)
        want = {a for s, e in ranges for a in range(s, e)} - {a for s, e in holes for a in range(s, e)}
        assert all(s < e for s, e in got)  # no empty pieces
        assert {a for s, e in got for a in range(s, e)} == want
        if len(ranges) == 1:  # one range: its pieces in address order, none overlapping
            assert all(a[1] <= b[0] for a, b in zip(got, got[1:]))


def test_operation_numbers_of_a_restore_cover_every_range_it_writes(tmp_path: Path):
    """Issue 22: a restore writes 0x11000-RF and RF+4K-end, each a run of the "write" stage; the bar and its
    numbers showed only the last run. Judged on the real engine's events of a restore."""
    from bkbench.core.backups import BackupLibrary
    from bkbench.core.demo_image import demo_flash
    from bkbench.core.layout import RF_OFFSET
    from bkbench.core.session import Session
    from bkbench.core.sim import registry

    stock = demo_flash()
    dev = registry.create_device("BK7231N")
    dev.flash.data[:] = stock
    dev.flash.data[0x20000:0x30000] = b"\x12" * 0x10000  # flashed since the backup
    dev.flash.data[0x1E0000:0x1E1000] = b"\x34" * 0x1000
    registry.register("op-restore", dev)
    st = OperationState("Restore", now=0.0)
    try:
        with Session("sim://@op-restore", baud=921600, on_event=st.apply) as s:
            s.connect()
            s.restore(stock, backup_library=BackupLibrary(tmp_path / "lib"))  # a backup first, then the writes
    finally:
        registry.unregister("op-restore")
    rf = RF_OFFSET["BK7231N"]
    assert st.total == (rf - 0x11000) + (len(stock) - rf - 0x1000) and st.done == st.total
    assert bytes(dev.flash.data) == stock
