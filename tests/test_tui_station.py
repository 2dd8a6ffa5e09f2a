"""The multi-port view: several simulated chips at once, judged against their flash and the backup library."""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import time
from pathlib import Path

import pytest
from bkbench.core.backups import BackupLibrary
from bkbench.core.images.releases import default_cache_dir, sha256_of
from bkbench.core.sim import registry
from bkbench.core.sim.faults import FaultPlan
from bkbench.tui.app import BkBenchApp
from bkbench.tui.screens.confirm import ConfirmScreen
from bkbench.tui.screens.station import StationScreen
from test_tui_app import sync

N_DUMP = "bk7231n-lspa9-clone-bl0937-plug.bin"
T_DUMP = "bk7231t-feit-br30-rgbw-bulb.bin"
_names = itertools.count()


def plug(fixtures_dir: Path, dump: str, **kw) -> tuple[str, object]:
    name = f"st{next(_names)}"
    dev = registry.create_device(dump=fixtures_dir / "dumps" / dump, scenario="app-running", wiring="rts", **kw)
    registry.register(name, dev)
    return f"sim://@{name}", dev


def cache_openbk(obk_images: dict, chips=("BK7231N", "BK7231T"), tag: str = "1.18.219") -> dict[str, bytes]:
    """The release cache as `bkbench fetch` leaves it, offline: one QIO image per family."""
    cache = default_cache_dir()
    (cache / tag).mkdir(parents=True, exist_ok=True)
    images = {chip: obk_images[chip]["qio"] for chip in chips}
    names = {chip: f"OpenBK{chip[2:]}_QIO_{tag}.bin" for chip in chips}
    rel = {"tag_name": tag, "name": tag, "published_at": "2025-11-25T18:10:00Z", "prerelease": False,
           "assets": [{"name": names[c], "size": len(images[c]), "browser_download_url": "http://127.0.0.1:9/x"}
                      for c in chips]}
    for chip in chips:
        (cache / tag / names[chip]).write_bytes(images[chip])
        (cache / tag / f"{names[chip]}.sha256").write_text(f"{sha256_of(images[chip])}  {names[chip]}\n")
    (cache / tag / "release.json").write_text(json.dumps(rel))
    (cache / "latest.json").write_text(json.dumps(rel))
    return images


def make_app(ports: list[str], data: Path) -> BkBenchApp:
    return BkBenchApp(url=ports[0], ports=ports, data_dir=data, ports_source=lambda: [], monitor=False,
                      poll_ports=0, baud=921600)


async def until(pilot, cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        await pilot.pause(0.1)
    assert cond(), f"{what}: not reached in {timeout} s"


def library_shas(app: BkBenchApp, origin: str = "read") -> set[str]:
    """SHA-256 of the library's backups read from chips (or "derived": a backup plus a write the engine verified)."""
    return {hashlib.sha256(Path(e.path).read_bytes()).hexdigest() for e in app.library.list() if e.origin == origin}


@sync
async def test_two_ports_backup_then_openbk(fixtures_dir: Path, obk_images, tmp_path: Path, monkeypatch):
    """Select both ports with space, o, y: each chip is backed up into the library and gets its own
    family's OpenBK (N and T), app partition only; bootloader and RF calibration untouched."""
    monkeypatch.setenv("BKBENCH_GITHUB_API", "http://127.0.0.1:9")  # nothing listens: offline
    images = cache_openbk(obk_images)
    n_url, n_dev = plug(fixtures_dir, N_DUMP)
    t_url, t_dev = plug(fixtures_dir, T_DUMP)
    before = {n_url: bytes(n_dev.flash.data), t_url: bytes(t_dev.flash.data)}
    app = make_app([n_url, t_url], tmp_path / "data")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, StationScreen), 10, "the multi-port view opens")
            screen = app.screen
            await pilot.press("space", "down", "space")
            assert [r.url for r in app.station.selected()] == [n_url, t_url]
            await pilot.press("o")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "the confirmation")
            await pilot.press("y")
            await until(pilot, lambda: all(r.result for r in app.station), 240, "both ports finish")
            await pilot.pause(0.3)
            runs = {r.url: r for r in app.station}
            assert {u: r.state for u, r in runs.items()} == {n_url: "done", t_url: "done"}, \
                [(r.state, r.error) for r in runs.values()]
            for run in runs.values():  # each port's own log: the backup, then the write (in that order)
                text = "\n".join(run.lines)
                assert 0 <= text.find("stage read") < text.find("stage write"), text
            # The table shows it too, and the detail follows the highlighted (second) port.
            assert "done" in str(screen.query_one("#st-table").get_row(t_url)[3])
            assert screen._shown_url == t_url and "OpenBK" in str(screen.query_one("#st-record-wide").render())
    finally:
        registry.unregister(n_url[7:])
        registry.unregister(t_url[7:])
    for url, dev, chip in ((n_url, n_dev, "BK7231N"), (t_url, t_dev, "BK7231T")):
        flash, old, app_part = bytes(dev.flash.data), before[url], images[chip][0x11000:]
        assert flash[0x11000:0x11000 + len(app_part)] == app_part, f"{chip}: OpenBK app not on the chip"
        assert flash[:0x11000] == old[:0x11000], f"{chip}: bootloader touched"
        rf = 0x1D0000 if chip == "BK7231N" else 0x1E0000
        assert flash[rf:rf + 0x1000] == old[rf:rf + 0x1000], f"{chip}: RF calibration touched"
        assert runs[url].result.chip == chip
    # Both original flashes are in the library, each complete and intact (nothing lost).
    assert {hashlib.sha256(b).hexdigest() for b in before.values()} <= library_shas(app)
    # Each port has its own log file, private.
    for r in runs.values():
        log = Path(r.result.log)
        assert log.is_file() and log.stat().st_mode & 0o077 == 0
    assert len({r.result.log for r in runs.values()}) == 2


@sync
async def test_failing_ports_fail_alone(fixtures_dir: Path, obk_images, tmp_path: Path, monkeypatch):
    """Three ports, o on all: a T with no OpenBK for its family cached fails with one line before anything
    is read or written; an N's adapter vanishes mid-backup and fails with one line; the other N is backed
    up and written. Nothing of the failed chips is stored, their flash is untouched."""
    monkeypatch.setenv("BKBENCH_GITHUB_API", "http://127.0.0.1:9")
    images = cache_openbk(obk_images, chips=("BK7231N",))
    n_url, n_dev = plug(fixtures_dir, N_DUMP)
    t_url, t_dev = plug(fixtures_dir, T_DUMP)
    u_url, u_dev = plug(fixtures_dir, "bk7231n-mirabella-genio-i003632-plug.bin",
                        faults=FaultPlan(disconnect_after=600_000))
    t_before, n_before = bytes(t_dev.flash.data), bytes(n_dev.flash.data)
    app = make_app([n_url, t_url, u_url], tmp_path / "data")
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, StationScreen), 10, "the multi-port view opens")
            await pilot.press("a", "o")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "the confirmation")
            await pilot.press("y")
            await until(pilot, lambda: all(r.result for r in app.station), 240, "all ports finish")
            await pilot.pause(0.3)
            runs = {r.url: r for r in app.station}
            rows = {u: str(app.screen.query_one("#st-table").get_row(u)[3]) for u in (t_url, u_url)}
    finally:
        for url in (n_url, t_url, u_url):
            registry.unregister(url[7:])
    assert runs[n_url].state == "done", runs[n_url].error
    assert n_dev.flash.read(0x11000, 0x1000) == images["BK7231N"][0x11000:0x12000]
    for url in (t_url, u_url):
        assert runs[url].state == "failed" and "\n" not in runs[url].error and rows[url].startswith("failed")
    assert "no cached OpenBK release for BK7231T" in runs[t_url].error
    assert u_dev.disconnected and "unplugged" in runs[u_url].error
    assert bytes(t_dev.flash.data) == t_before
    # Only the written N's original flash is in the library: nothing of the two failed chips.
    assert library_shas(app) == {hashlib.sha256(n_before).hexdigest()}
    part = images["BK7231N"][0x11000:]
    part += b"\xff" * (-len(part) % 0x1000)  # a write fills its last sector with 0xFF
    left = bytearray(n_before)  # and what the write left on the N (nothing derived of the failed chips)
    left[0x11000:0x11000 + len(part)] = part
    assert library_shas(app, "derived") == {hashlib.sha256(left).hexdigest()}


@sync
async def test_cancel_one_port_then_all(fixtures_dir: Path, tmp_path: Path):
    """x cancels the highlighted port only, X the rest; a cancelled backup stores nothing and the chips'
    flash is untouched (the simulators keep wire timing so the backups are still running when cancelled)."""
    from bkbench.core.sim.timing import Timing

    a_url, a = plug(fixtures_dir, N_DUMP, timing=Timing(enabled=True))
    b_url, b = plug(fixtures_dir, T_DUMP, timing=Timing(enabled=True))
    before = (bytes(a.flash.data), bytes(b.flash.data))
    app = make_app([a_url, b_url], tmp_path / "data")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, StationScreen), 10, "the multi-port view opens")
            await pilot.press("a", "b")
            runs = list(app.station)
            await until(pilot, lambda: all(r.state.startswith("backing up") for r in runs), 60, "both reading")
            await pilot.press("escape")  # the single-port view: the ports keep running
            await until(pilot, lambda: not isinstance(app.screen, StationScreen), 5, "back to one port")
            assert all(r.running for r in runs)
            await pilot.press("b")  # the single-port view refuses the port the multi-port view is using
            await pilot.pause(0.2)
            assert not app.busy
            await pilot.press("m")
            await until(pilot, lambda: isinstance(app.screen, StationScreen), 5, "the multi-port view again")
            await pilot.press("x")  # the highlighted (first) port
            await until(pilot, lambda: runs[0].result is not None, 30, "the first port stops")
            assert runs[0].state == "cancelled" and runs[1].running
            await pilot.press("X")
            await until(pilot, lambda: runs[1].result is not None, 30, "the second port stops")
    finally:
        registry.unregister(a_url[7:])
        registry.unregister(b_url[7:])
    assert [r.state for r in runs] == ["cancelled", "cancelled"]
    assert app.library.list() == []
    assert (bytes(a.flash.data), bytes(b.flash.data)) == before


@pytest.mark.parametrize("image", ["builtin", pytest.param("fixtures", marks=pytest.mark.slow)])
def test_demo_plugs_get_their_openbk_offline(image: str, fixtures_dir: Path, monkeypatch):
    """`bkbench --demo 3`: three plugs, each another device (its own MAC, so its own backup), and for every
    family among them an OpenBK image in the (demo) release cache that the station's offline lookup takes."""
    from bkbench.core.images.recognize import recognize
    from bkbench.core.session import parse_mac
    from bkbench.core.station import openbk_for
    from bkbench.tui.demo import DEMO_NAME, seed_demo_openbk, setup_demo_chips

    monkeypatch.setenv("BKBENCH_DEMO_TIMING", "0")
    if image == "builtin":
        monkeypatch.setenv("BKBENCH_DEMO_IMAGE", "builtin")
    names = seed_demo_openbk()
    try:
        urls = setup_demo_chips(3)
        devices = [registry.get(u[len("sim://@"):]) for u in urls]
    finally:
        for name in (DEMO_NAME, f"{DEMO_NAME}2", f"{DEMO_NAME}3"):
            registry.unregister(name)
    chips = [d.chip for d in devices]
    assert chips == (["BK7231N"] * 3 if image == "builtin" else ["BK7231N", "BK7231T", "BK7231N"])
    macs = {parse_mac(d.flash.read(0x1D0000 if d.chip == "BK7231N" else 0x1E0000, 0x1000)) for d in devices}
    assert len(macs) == 3 and None not in macs
    for chip in set(chips):
        fw = openbk_for(chip)
        assert fw.name in names
        info = recognize(fw.data, fw.name)
        assert info.format in ("qio", "ua") and info.chip in (None, chip)


def test_an_alias_of_a_listed_adapter_is_the_same_port(tmp_path: Path):
    """A by-id link and the device it points to are one adapter: one row, so one run can never open it twice."""
    from bkbench.tui.station import StationModel

    dev = tmp_path / "ttyUSB7"
    dev.write_text("")
    alias = tmp_path / "usb-CH340-if00-port0"
    alias.symlink_to(dev)
    model = StationModel()
    first = model.add(str(dev), "CH340")
    assert model.add(str(alias)) is first and model.add(str(dev)) is first
    assert len(model) == 1 and model.add("sim://@other") is not first and len(model) == 2


def test_cli_opens_the_multi_port_view_with_several_ports(monkeypatch, capsys):
    """`bkbench --port A --port B` hands both ports to the workbench; `--demo N` the number of plugs;
    a bad N is one error line and exit 2, before anything starts."""
    import bkbench.tui.app as tui
    from bkbench.core.cli.main import main

    calls = []
    monkeypatch.setattr(tui, "run", lambda **kw: calls.append(kw) or 0)
    assert main(["--port", "/dev/ttyUSB0", "--port", "/dev/ttyUSB1"]) == 0
    assert calls[-1]["ports"] == ["/dev/ttyUSB0", "/dev/ttyUSB1"] and calls[-1]["port"] == "/dev/ttyUSB0"
    assert main(["--demo", "3"]) == 0 and calls[-1]["demo"] and calls[-1]["chips"] == 3
    assert main(["--demo"]) == 0 and calls[-1]["chips"] == 1
    for bad in ("0", "9", "x"):
        with pytest.raises(SystemExit) as exc:
            main(["--demo", bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "number of simulated plugs" in err[0]
    assert len(calls) == 3


@pytest.mark.slow  # a real terminal session: about half a minute
@pytest.mark.tmux
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
def test_demo_three_plugs_in_tmux(tmp_path: Path, fixtures_dir: Path):
    """`bkbench --demo 3` at 80x24, keys only: select all, o, y; the three plugs end done, three backups
    are in the library, and quitting prints what each port did."""
    from test_tui_tmux import _command
    from tmuxhelpers import Tmux

    data, cache, out = tmp_path / "data", tmp_path / "cache", tmp_path / "out.txt"
    argv = [c for c in _command() if c != "--demo"]
    cmd = (f"env BKBENCH_DATA_DIR='{data}' BKBENCH_CACHE_DIR='{cache}' BKBENCH_DEMO_TIMING=0 "
           + " ".join(f"'{c}'" for c in argv) + f" --demo 3; tmux capture-pane -p > '{out}'; sleep 30")
    with Tmux(cmd, 80, 24) as tm:
        tm.wait(lambda s: "sim://@demo3" in s, 60)
        for _ in range(3):  # the demo plugs, not the machine's own serial ports
            tm.keys("space", "Down")
        tm.keys("o")
        tm.wait(lambda s: "Write" in s and "OpenBK?" in s, 10)
        tm.keys("y")
        tm.wait(lambda s: sum(line.rstrip().rstrip("│").rstrip().endswith("done") for line in s.splitlines()) == 3,
                180)
        assert [e.origin for e in BackupLibrary(data / "backups").list()].count("read") == 3
        tm.keys("C-q")
        end = time.monotonic() + 20
        while not out.exists() and time.monotonic() < end:
            time.sleep(0.3)
        text = out.read_text()
        for n in ("", "2", "3"):
            assert f"sim://@demo{n}: done in" in text


@sync
async def test_adding_an_alias_of_a_listed_port_moves_to_its_row(fixtures_dir: Path, tmp_path: Path):
    """Typing another name for a listed adapter (a by-id link) into the add field goes to that adapter's
    row: never a second row, never a crash of the view."""
    dev = tmp_path / "ttyUSB7"
    dev.write_text("")
    alias = tmp_path / "usb-CH340-if00-port0"
    alias.symlink_to(dev)
    a_url, _a = plug(fixtures_dir, N_DUMP)
    app = make_app([a_url, str(dev)], tmp_path / "data")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, StationScreen), 10, "the multi-port view opens")
            await pilot.press("n")
            app.screen.query_one("#st-add").value = str(alias)  # as typed (a long path: keys one by one are slow)
            await pilot.press("enter")
            await pilot.pause(0.2)
            screen = app.screen
            assert isinstance(screen, StationScreen)
            assert list(app.station.ports) == [a_url, str(dev)]
            assert screen.highlighted() is app.station.get(str(dev))
    finally:
        registry.unregister(a_url[7:])


@sync
async def test_a_port_name_with_brackets_is_shown_as_typed(fixtures_dir: Path, tmp_path: Path):
    """A URL is text, never markup: square brackets (an IPv6 host, a query) neither crash the view nor vanish."""
    a_url, _a = plug(fixtures_dir, N_DUMP)
    odd = "sim://bk7231n?x=[/x]&y=[b]"
    app = make_app([a_url, "sim://@nothing"], tmp_path / "data")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, StationScreen), 10, "the multi-port view opens")
            await pilot.press("n")
            app.screen.query_one("#st-add").value = odd
            await pilot.press("enter")
            await pilot.pause(0.2)
            screen = app.screen
            assert isinstance(screen, StationScreen) and screen.highlighted() is app.station.get(odd)
            assert odd in screen.query_one("#st-left")._border_title.plain  # drawn as typed (the getter escapes)
            await pilot.press("b")
            await until(pilot, lambda: app.station.get(odd).result is not None, 30, "the backup ends")
            await pilot.pause(0.2)
            assert app.is_running and app.station.get(odd).state == "done"
    finally:
        registry.unregister(a_url[7:])
