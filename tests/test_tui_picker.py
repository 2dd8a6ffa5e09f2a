"""Pilot tests of the firmware picker (w): browse, what each file is, greyed files, OTA conversion, recent
files, the latest OpenBK from the release cache, offline analysis and config editing from a file."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from bkbench.core.chips import MAX_FLASH
from bkbench.tui.firmware import RecentFiles, assess
from bkbench.tui.screens.analysis import AnalysisScreen
from bkbench.tui.screens.config import ConfigScreen
from bkbench.tui.screens.confirm import ConfirmScreen
from bkbench.tui.screens.write import FirmwareTree, WriteScreen
from test_releases import gh  # noqa: F401 (fixture: a fake GitHub releases API)
from test_tui_app import SIZES, make_app, make_device, settle, sync

N_DUMP = "bk7231n-lspa9-clone-bl0937-plug.bin"
T_DUMP = "bk7231t-feit-br30-rgbw-bulb.bin"


async def wait(pilot, cond, timeout: float = 90.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        await pilot.pause(0.05)
    assert cond(), f"{what} not reached in {timeout} s"


async def open_picker(app, pilot) -> WriteScreen:
    await pilot.press("w")
    await wait(pilot, lambda: isinstance(app.screen, WriteScreen), 10, "picker open")
    return app.screen


async def move_to(pilot, screen: WriteScreen, name: str) -> None:
    """Arrow down the tree until `name` is highlighted (as a person would)."""
    tree = screen.query_one(FirmwareTree)
    await wait(pilot, lambda: any(n.data and n.data.path.name == name for n in tree.root.children), 20,
               f"{name} listed")
    for _ in range(30):
        node = tree.cursor_node
        if node is not None and node.data is not None and node.data.path.name == name:
            return
        await pilot.press("down")
    raise AssertionError(f"{name} not reachable with the arrow keys")


def firmware_dir(tmp_path: Path, fixtures_dir: Path, obk_images) -> Path:
    d = tmp_path / "firmware"
    d.mkdir()
    (d / "OpenBeken-v1.18.219_bk7231n.ug.bin").write_bytes(obk_images["BK7231N"]["ota"])
    (d / "OpenBK7231T_UA_1.18.219.bin").write_bytes(obk_images["BK7231T"]["ua"])
    (d / "notes.txt").write_text("not firmware")
    return d


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@sync
async def test_picker_converts_ug_and_writes_it(size, fixtures_dir: Path, tmp_path: Path, obk_images,
                                                monkeypatch):
    """Arrow to the UG package cloudcutter ships, Enter: converted to UA on the spot, written, verified."""
    folder = firmware_dir(tmp_path, fixtures_dir, obk_images)
    monkeypatch.chdir(folder)
    name, dev = make_device(fixtures_dir)
    app = make_app(name, tmp_path / "data")
    async with app.run_test(size=size) as pilot:
        await pilot.press("b")
        await settle(app, pilot)
        screen = await open_picker(app, pilot)
        tree = screen.query_one(FirmwareTree)
        # the T image cannot go on this N chip: judged in the background, greyed out, said why
        t_path = (folder / "OpenBK7231T_UA_1.18.219.bin").resolve()
        await wait(pilot, lambda: any(p.name == t_path.name for p in screen.verdicts), 90, "background scan")
        verdict = next(v for p, v in screen.verdicts.items() if p.name == t_path.name)
        assert not verdict.writable and "BK7231T" in verdict.tag
        assert any("Cannot write" in line and "BK7231T" in line for line in verdict.lines)
        await move_to(pilot, screen, "OpenBeken-v1.18.219_bk7231n.ug.bin")
        await pilot.press("enter")
        await wait(pilot, lambda: screen.verdict is not None, 120, "conversion")
        assert screen.request is not None, screen.info_text
        info = screen.info_text
        assert "converted" in info and "UA" in info and "0x011000" in info
        assert screen.request.payload == obk_images["BK7231N"]["ua"]  # exactly the engine's conversion
        assert tree is screen.query_one(FirmwareTree)
        await pilot.press("ctrl+o")
        await wait(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10, "confirm")
        await pilot.press("y")
        await settle(app, pilot, timeout=120)
        assert app.last_outcome[0] == "ok", app.last_outcome
        ua = obk_images["BK7231N"]["ua"]
        assert bytes(dev.flash.data[0x11000:0x11000 + len(ua)]) == ua
        # picked once: now a recent file, offered first next time
        recent = RecentFiles(app.base_dir / "recent-firmware.json").list()
        assert recent and recent[0].name == "OpenBeken-v1.18.219_bk7231n.ug.bin"
        # v right after the write compares with what was written (not the old stock backup)
        await pilot.press("v")
        await settle(app, pilot)
        assert app.last_outcome[0] == "ok", app.last_outcome
        assert "matches the written OpenBeken-v1.18.219_bk7231n.ug.bin" in app.last_outcome[1]


def test_assess_refuses_wrong_chip_and_raw_without_offset(fixtures_dir: Path, tmp_path: Path, obk_images):
    t_ota = tmp_path / "t.ug.bin"
    t_ota.write_bytes(obk_images["BK7231T"]["ota"])
    v = assess(t_ota, "BK7231N", 0x200000, convert=False)
    assert not v.writable and "BK7231T" in " ".join(v.lines)
    raw = tmp_path / "blob.bin"
    raw.write_bytes(b"\x12" * 0x1000)
    v = assess(raw, "BK7231N", 0x200000)
    assert not v.writable and v.needs_offset
    v = assess(raw, "BK7231N", 0x200000, offset=0x1F0000)
    assert v.writable and v.request is not None and v.request.start == 0x1F0000
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (MAX_FLASH + 1))  # larger than the largest flash
    assert assess(big, "BK7231N", 0x200000).tag == "too big"


@sync
async def test_latest_openbk_from_the_release_cache_offline(fixtures_dir: Path, tmp_path: Path, obk_images,
                                                            monkeypatch):
    """f in the picker: no network here, so the cached latest release is used and picked."""
    from bkbench.core.images.releases import default_cache_dir, sha256_of

    cache = default_cache_dir()
    tag = "1.18.219"
    qio = obk_images["BK7231N"]["qio"]
    asset = f"OpenBK7231N_QIO_{tag}.bin"
    rel = {"tag_name": tag, "name": tag, "published_at": "2025-11-25T18:10:00Z", "draft": False,
           "prerelease": False, "html_url": "x",
           "assets": [{"name": asset, "size": len(qio), "browser_download_url": "http://127.0.0.1:9/x",
                       "url": "http://127.0.0.1:9/x", "id": 1}]}
    (cache / tag).mkdir(parents=True)
    (cache / "latest.json").write_text(json.dumps(rel))
    (cache / tag / "release.json").write_text(json.dumps(rel))
    (cache / tag / asset).write_bytes(qio)
    (cache / tag / (asset + ".sha256")).write_text(f"{sha256_of(qio)}  {asset}\n")
    monkeypatch.setenv("BKBENCH_GITHUB_API", "http://127.0.0.1:9")  # nothing listens: offline
    monkeypatch.chdir(tmp_path)
    name, dev = make_device(fixtures_dir)
    app = make_app(name, tmp_path / "data")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_picker(app, pilot)
        quick = [str(o.prompt) for o in screen.query_one("#write-quick").options]
        assert any(asset in q and q.startswith("cached") for q in quick)  # the cache is offered
        await pilot.press("f")
        await wait(pilot, lambda: screen.request is not None, 90, "fetched and judged")
        assert screen.selected.name == asset
        assert screen.request.start == 0x11000 and screen.request.payload == qio[0x11000:]
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, WriteScreen)


@sync
async def test_offline_analysis_and_config_edit_from_a_file(fixtures_dir: Path, tmp_path: Path, monkeypatch):
    """No chip: a dump is analysed from the picker, its OpenBK config edited and saved to a new file;
    Escape in the editor asks before dropping edits."""
    from bkbench.core.analysis.obk_config import ObkConfig

    folder = tmp_path / "dumps"
    folder.mkdir()
    dump = folder / N_DUMP
    dump.write_bytes((fixtures_dir / "dumps" / N_DUMP).read_bytes())
    monkeypatch.chdir(folder)
    app = make_app("nothing-registered", tmp_path / "data")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_picker(app, pilot)
        await move_to(pilot, screen, N_DUMP)
        await pilot.press("a")
        await wait(pilot, lambda: isinstance(app.screen, AnalysisScreen), 60, "analysis")
        assert "BK7231N" in app.screen.text and "Tuya configuration" in app.screen.text
        await pilot.press("t")  # the OpenBK template: saved and copied
        await pilot.pause(0.2)
        saved = app.base_dir / "templates" / f"{dump.stem}-openbk-template.json"
        template = json.loads(saved.read_text())
        assert template == app.screen.template and template
        assert "26" in json.dumps(template)  # the relay pin of this plug
        await pilot.press("escape")
        await wait(pilot, lambda: isinstance(app.screen, WriteScreen), 5, "back in the picker")
        await pilot.press("e")
        await wait(pilot, lambda: isinstance(app.screen, ConfigScreen), 60, "editor")
        editor = app.screen
        editor.set_value("wifi_ssid", "bench-net")
        await pilot.press("escape")  # edits: asks first
        await wait(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "drop-edits question")
        await pilot.press("n")
        await pilot.pause(0.1)
        assert app.screen is editor and editor.value("wifi_ssid") == "bench-net"
        await pilot.press("ctrl+o")
        await pilot.pause(0.3)
        out = folder / (dump.stem + "-with-config.bin")
        assert out.is_file(), list(folder.iterdir())
        saved = out.read_bytes()
        assert len(saved) == dump.stat().st_size and out.stat().st_mode & 0o077 == 0
        cfg = ObkConfig.parse(saved[0x1D1000:0x1D2000])
        assert cfg.get("wifi_ssid") == "bench-net"
        original = dump.read_bytes()
        assert saved[:0x1D1000] == original[:0x1D1000] and saved[0x1D2000:] == original[0x1D2000:]
        # the editor without edits closes on Escape at once
        await pilot.press("e")
        await wait(pilot, lambda: isinstance(app.screen, ConfigScreen), 60, "editor again")
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, (ConfigScreen, ConfirmScreen))


@sync
async def test_picker_escape_leaves_the_path_field_first(fixtures_dir: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name, dev = make_device(fixtures_dir)
    app = make_app(name, tmp_path / "data")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_picker(app, pilot)
        screen.query_one("#write-path").focus()
        await pilot.press("f")  # typed into the field, not the fetch key
        assert screen.query_one("#write-path").value == "f"
        await pilot.press("escape")
        await pilot.pause(0.05)
        assert app.screen is screen and screen.focused is screen.query_one(FirmwareTree)
        await pilot.press("escape")
        await pilot.pause(0.05)
        assert not isinstance(app.screen, WriteScreen)


@sync
async def test_latest_openbk_downloaded_with_progress_then_cached(fixtures_dir: Path, tmp_path: Path, obk_images,
                                                                   gh, monkeypatch):  # noqa: F811
    """f against a fake GitHub: the QIO is downloaded with a progress bar, checked, cached and picked."""
    from bkbench.core.images.releases import default_cache_dir

    monkeypatch.setenv("BKBENCH_GITHUB_API", gh.base)
    monkeypatch.chdir(tmp_path)
    qio = obk_images["BK7231N"]["qio"]
    name, dev = make_device(fixtures_dir)
    app = make_app(name, tmp_path / "data")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_picker(app, pilot)
        await pilot.press("f")
        await wait(pilot, lambda: screen.request is not None, 90, "downloaded and judged")
        assert screen.query_one("#write-fetch-bar").total == len(qio)  # progress counted the real size
        assert screen.request.payload == qio[0x11000:]
        cached = default_cache_dir() / "1.18.219" / "OpenBK7231N_QIO_1.18.219.bin"
        assert cached.read_bytes() == qio and screen.selected.resolve() == cached.resolve()
        assert any("/download/" in path for path, _ in gh.requests)


@sync
async def test_the_first_enter_takes_latest_openbk_and_arrows_go_on_into_the_folder(tmp_path: Path, monkeypatch):
    """Issue 22: the picker opened on the folder tree, whose first Enter folded the folder. Now Latest OpenBK
    is highlighted and focused first; Down past the list goes to the folder's first file, Up comes back."""
    from bkbench.tui.app import BkBenchApp
    from bkbench.tui.screens.write import QuickList

    (tmp_path / "fw").mkdir()
    (tmp_path / "fw" / "a.bin").write_bytes(b"\xff" * 4096)
    monkeypatch.chdir(tmp_path / "fw")
    app = BkBenchApp(url="sim://bk7231n", data_dir=tmp_path / "data", ports_source=lambda: [], monitor=False,
                     poll_ports=0)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_picker(app, pilot)
        fetched = []
        monkeypatch.setattr(screen, "action_fetch", lambda: fetched.append(True))
        quick = screen.query_one(QuickList)
        assert screen.focused is quick and quick.get_option_at_index(quick.highlighted).id == "fetch"
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert fetched == [True] and app.screen is screen
        tree = screen.query_one(FirmwareTree)
        await wait(pilot, lambda: bool(tree.root.children), 10, "folder listed")
        await pilot.press("down")
        await pilot.pause(0.1)
        assert screen.focused is tree and tree.cursor_node.data.path.name == "a.bin"
        await pilot.press("up", "up")
        await pilot.pause(0.1)
        assert screen.focused is quick
