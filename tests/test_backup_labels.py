"""Issue 22 item 5: the library shows what each entry is. The firmware label is judged from the image by the dump
analysis (real stock dumps and a real OpenBK build laid into them), never from what a write said; labels are cached
by SHA-256; `bkbench backups` lists each file whole with read/derived and its label."""

from __future__ import annotations

import pytest
from bkbench.core import backup_labels
from bkbench.core.analysis.obk_config import ObkConfig
from bkbench.core.backup_labels import Labels, firmware_label
from bkbench.core.backups import BackupLibrary
from bkbench.core.cli.main import main
from bkbench.core.layout import OBK_CONFIG_OFFSET

N_DUMP = "bk7231n-lspa9-clone-bl0937-plug.bin"
CFG = OBK_CONFIG_OFFSET["BK7231N"]


def _with_config(flash: bytes) -> bytes:
    out = bytearray(flash)
    out[CFG:CFG + 0x1000] = ObkConfig.new(chip="BK7231N").sector()
    return bytes(out)


@pytest.fixture
def stock(fixtures_dir) -> bytes:
    return (fixtures_dir / "dumps" / N_DUMP).read_bytes()


@pytest.fixture
def openbk(stock, obk_images) -> bytes:
    ua = obk_images["BK7231N"]["ua"]
    out = bytearray(stock)
    out[0x11000:0x11000 + len(ua)] = ua
    return bytes(out)


def test_labels_are_judged_from_the_image(stock, openbk, fixtures_dir):
    assert firmware_label(stock) == "stock Tuya plug 1.1.15"  # the app and its vault's software version
    bulb = (fixtures_dir / "dumps" / "bk7231t-feit-br30-rgbw-bulb.bin").read_bytes()
    assert firmware_label(bulb) == "stock Tuya light_ty 2.9.15"
    assert firmware_label(_with_config(stock)) == "stock Tuya plug 1.1.15 + OpenBK config"
    assert firmware_label(openbk) == "OpenBK 1.18.219"  # its banner, not a file name
    assert firmware_label(_with_config(openbk)) == "OpenBK 1.18.219 + config"
    erased = bytearray(stock)
    erased[0x11000:0x12A000] = b"\xff" * (0x12A000 - 0x11000)
    assert firmware_label(bytes(erased)) == "no firmware (app erased)"
    assert firmware_label(b"\x00" * 0x1000) == "unknown firmware"


def test_labels_are_cached_by_content(tmp_path, stock, openbk, monkeypatch):
    lib = BackupLibrary(tmp_path / "lib")
    a = lib.save(stock, {"chip": "BK7231N"})
    assert Labels(lib).label(a) == "stock Tuya plug 1.1.15"
    monkeypatch.setattr(backup_labels, "firmware_label", lambda data: pytest.fail("analysed again"))
    labels = Labels(lib)  # a new listing: from the cache
    assert labels.cached(a) == labels.label(a) == "stock Tuya plug 1.1.15"
    b = lib.save(openbk, {"chip": "BK7231N"})  # other content: not in the cache
    assert labels.cached(b) is None
    monkeypatch.setattr(backup_labels, "firmware_label", lambda data: "analysed")
    assert labels.label(b) == "analysed"


def test_bkbench_backups_lists_file_origin_and_label(tmp_path, stock, capsys):
    lib = BackupLibrary(tmp_path / "lib")
    read = lib.save(stock, {"chip": "BK7231N", "mac": "1C:90:FF:F7:C9:34"})
    derived, new = lib.save_derived(read, [(CFG, ObkConfig.new(chip="BK7231N").sector())],
                                    {"chip": "BK7231N", "mac": "1C:90:FF:F7:C9:34"}, operation="config write",
                                    what="an OpenBK config sector", checked="test")
    assert new
    assert main(["backups", "--library", str(lib.root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"2 backup(s) in {lib.root}, newest first:"
    assert out[1].split() == [derived.name, "derived", "stock", "Tuya", "plug", "1.1.15", "+", "OpenBK", "config"]
    assert out[2].split() == [read.name, "read", "stock", "Tuya", "plug", "1.1.15"]


def test_restoring_a_derived_entry_says_what_it_is_made_of(tmp_path, stock):
    import asyncio

    from bkbench.tui.app import BkBenchApp
    from bkbench.tui.screens.backups import BackupsScreen
    from bkbench.tui.screens.confirm import ConfirmScreen

    lib = BackupLibrary(tmp_path / "backups")
    read = lib.save(stock, {"chip": "BK7231N", "mac": "1C:90:FF:F7:C9:34"})
    lib.save_derived(read, [(CFG, ObkConfig.new(chip="BK7231N").sector())], {"chip": "BK7231N"},
                     operation="config write", what="an OpenBK config sector", checked="test")
    app = BkBenchApp(url="sim://bk7231n", data_dir=tmp_path, ports_source=lambda: [], monitor=False, poll_ports=0)

    async def run() -> str:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("l")
            await pilot.pause(0.3)
            assert isinstance(app.screen, BackupsScreen)
            await pilot.press("r")  # the newest: the derived entry
            await pilot.pause(0.3)
            assert isinstance(app.screen, ConfirmScreen)
            return app.screen.body

    body = " ".join(asyncio.run(run()).split())
    assert f"derived, not read: {read.name} + an OpenBK config sector at 0x1D1000-0x1D2000" in body
