"""One engine path (issue 21): the workbench's keys and the CLI run the same Session calls, so for the same chip
and the same faults on the wire they leave the same flash and the same library. One test per action (backup,
write with its final compare, restore, the multi-port view's `o` against `bkbench station`): a Pilot presses
the key on one simulated chip, the CLI runs on its twin (same dump, same seeded faults), and both are judged
on the simulated flash and the library only. Plus `bkbench verify FILE` after `bkbench write FILE` (issue 22
item 1): the verify compares where the write wrote."""

from __future__ import annotations

import hashlib
import itertools
import time
from pathlib import Path

import pytest
from bkbench.core.analysis.obk_config import ObkConfig
from bkbench.core.backups import BackupLibrary
from bkbench.core.cli.main import main
from bkbench.core.sim import registry
from bkbench.core.sim.faults import FaultInjector, FaultPlan
from bkbench.tui.app import BkBenchApp
from bkbench.tui.screens.confirm import ConfirmScreen
from bkbench.tui.screens.station import StationScreen
from test_tui_app import N_DUMP, pick_file, settle, sync
from test_tui_station import cache_openbk

_names = itertools.count()
CFG = 0x1D1000  # the OpenBK config sector of the N plug
# Faults the engine must ride out: noise before replies, bytes flipped and dropped on the way back, a command
# damaged on the way in, and the chip resetting (brown-out) mid-operation (the port resets it and continues).
FAULTS = {
    "noise+flips": FaultPlan(seed=5, noise_rate=0.02, flip_rate=2e-6, drop_rate=1e-6),
    "rx-corrupt": FaultPlan(seed=7, rx_corrupt_rate=2e-5),
    "resets": FaultPlan(seed=11, reset_rate=0.004),
}


def faults(ci: str):
    """Every fault kind; the one named runs in CI, the others with ./dev test --long (CI time is short)."""
    return [pytest.param(k, marks=() if k == ci else pytest.mark.slow) for k in sorted(FAULTS)]


def twins(fixtures_dir: Path, faults: FaultPlan, dump: str = N_DUMP):
    """Two simulated plugs with the same flash and the same seeded faults: one for the CLI, one for the keys."""
    out = []
    for _ in range(2):
        name = f"eng{next(_names)}"
        dev = registry.create_device(dump=fixtures_dir / "dumps" / dump, scenario="app-running", wiring="rts")
        dev.faults = FaultInjector(FaultPlan(**vars(faults)))
        registry.register(name, dev)
        out.append((f"sim://@{name}", dev))
    return out


def images(data_dir: Path, origin: str = "read") -> list[bytes]:
    """The library's images of one origin: "read" (backups of what the chip held: read whole, or only its blocks
    that differed from an entry) or "derived" (a backup plus a write the engine verified: what the chip held
    right after it)."""
    lib = BackupLibrary(data_dir / "backups")
    by_write = [e for e in lib.list() if e.derived is not None and e.derived.get("operation") != "read"]
    return sorted(lib.load(e) for e in lib.list() if (e in by_write) == (origin == "derived"))


def shas(blobs: list[bytes]) -> list[str]:
    return sorted(hashlib.sha256(b).hexdigest() for b in blobs)


def cli(data: Path, *argv: str) -> int:
    return main(["--data-dir", str(data), *argv, "-q"])


def cli_stages(capsys, data: Path, *argv: str) -> list[str]:
    """Run a command (exit 0) and return its stage lines ("[verify] comparing ..."), as a person sees them."""
    capsys.readouterr()
    code = main(["--data-dir", str(data), *argv])
    err = capsys.readouterr().err
    assert code == 0, err[-2000:]
    return [line for line in err.splitlines() if line.startswith("[")]


def tui_stages(app: BkBenchApp) -> list[str]:
    return [t.split("stage ", 1)[1] for t in app.op_pane.event_log.texts if " stage " in t]


def app_on(url: str, data: Path) -> BkBenchApp:
    return BkBenchApp(url=url, data_dir=data, ports_source=lambda: [], monitor=False, poll_ports=0)


@pytest.mark.parametrize("fault", faults("resets"))
@sync
async def test_backup_key_and_cli_read_leave_the_same_library(fault: str, fixtures_dir: Path, tmp_path: Path):
    (c_url, c_dev), (t_url, t_dev) = twins(fixtures_dir, FAULTS[fault])
    original = bytes(c_dev.flash.data)
    try:
        assert cli(tmp_path / "cli", "read", "-p", c_url) == 0
        app = app_on(t_url, tmp_path / "tui")
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("b")
            await settle(app, pilot, timeout=120)
            assert app.last_outcome is not None and app.last_outcome[0] == "ok", app.last_outcome
            await pilot.press("b")  # again: the library holds this content, nothing is read or stored twice
            await settle(app, pilot, timeout=120)
            assert app.last_outcome[0] == "ok" and "already in the library" in app.last_outcome[1]
        assert cli(tmp_path / "cli", "read", "-p", c_url) == 0
        injected = c_dev.faults.counts, t_dev.faults.counts
    finally:
        registry.unregister(c_url[7:])
        registry.unregister(t_url[7:])
    assert any(sum(c.values()) for c in injected), f"no fault was injected: {injected}"
    assert images(tmp_path / "cli") == images(tmp_path / "tui") == [original]  # the chip's content, once
    assert bytes(c_dev.flash.data) == bytes(t_dev.flash.data) == original  # a backup only reads


@pytest.mark.parametrize("fault", faults("noise+flips"))
@sync
async def test_write_key_and_cli_write_leave_the_same_flash(fault: str, fixtures_dir: Path, tmp_path: Path, obk_images,
                                                             capsys):
    (c_url, c_dev), (t_url, t_dev) = twins(fixtures_dir, FAULTS[fault])
    original = bytes(c_dev.flash.data)
    ua = obk_images["BK7231N"]["ua"]
    image = tmp_path / "OpenBK7231N_UA.bin"
    image.write_bytes(ua)
    try:
        cli_seen = cli_stages(capsys, tmp_path / "cli", "write", "-p", c_url, str(image))
        app = app_on(t_url, tmp_path / "tui")
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("w")
            await pilot.pause(0.1)
            await pick_file(app, pilot, image)
            await pilot.press("ctrl+o")
            await pilot.pause(0.1)
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await settle(app, pilot, timeout=180)
            assert app.last_outcome is not None and app.last_outcome[0] == "ok", app.last_outcome
            assert "verified" in app.last_outcome[1] and "rebooted" in app.last_outcome[1]
            tui_seen = tui_stages(app)
    finally:
        registry.unregister(c_url[7:])
        registry.unregister(t_url[7:])
    want = bytearray(original)
    padded = ua + b"\xff" * (-len(ua) % 0x1000)  # a write fills its last sector with 0xFF
    want[0x11000:0x11000 + len(padded)] = padded
    assert bytes(c_dev.flash.data) == bytes(t_dev.flash.data)
    flash = bytearray(c_dev.flash.data)
    if flash[CFG:CFG + 0x1000] != want[CFG:CFG + 0x1000]:
        # Not bkbench: the simulated OpenBK booted after the reboot, rejected the stock bytes there and saved
        # its defaults, as the real firmware does (core/sim/obk_loader.py)
        assert ObkConfig.parse(bytes(flash[CFG:CFG + 0x1000]), "BK7231N").get("changeCounter") == 1
        flash[CFG:CFG + 0x1000] = want[CFG:CFG + 0x1000]
    assert flash == want
    assert images(tmp_path / "cli") == images(tmp_path / "tui") == [original]  # the backup taken first
    assert images(tmp_path / "cli", "derived") == images(tmp_path / "tui", "derived") == [bytes(want)]
    # the same steps after the write on both: the final compare of what was written (to the end of its last
    # sector), the reboot
    final = f"[verify] comparing 0x011000-0x{0x11000 + len(padded):06X} by CRC"
    for seen in (cli_seen, [f"[{s.split(':', 1)[0]}]{s.split(':', 1)[1]}" for s in tui_seen]):
        assert final in seen, (final, seen)
        assert any(line.startswith("[reboot]") for line in seen), seen


@pytest.mark.parametrize("fault", faults("resets"))
@sync
async def test_restore_key_and_cli_restore_leave_the_same_flash(fault: str, fixtures_dir: Path, tmp_path: Path,
                                                                 capsys):
    (c_url, c_dev), (t_url, t_dev) = twins(fixtures_dir, FaultPlan())
    original = bytes(c_dev.flash.data)
    for side in ("cli", "tui"):  # each library holds the chip's backup, taken before it changed
        BackupLibrary(tmp_path / side / "backups").save(original, {"chip": "BK7231N", "mac": "1C:90:FF:F7:C9:34"})
    changed = bytearray(original)
    # The chip moved on since (a downloaded update, say). Outside the app: with its app changed the simulated
    # chip boots as OpenBK after each injected reset and saves its defaults over the stock config sector (as
    # OpenBK does), so the backup taken first would see the chip's content change while it reads it, and
    # rightly refuse to save it (test_backups_identity.py: test_backup_refuses_a_dump_when_the_chip_changed_...).
    changed[0x140000:0x142000] = b"\x00" * 0x2000
    changed[0x1F0000:0x1F1000] = b"\x5a" * 0x1000
    for dev in (c_dev, t_dev):
        dev.flash.data[:] = changed
        dev.faults = FaultInjector(FaultPlan(**vars(FAULTS[fault])))
    backup = BackupLibrary(tmp_path / "cli" / "backups").list()[0].path
    try:
        cli_seen = cli_stages(capsys, tmp_path / "cli", "restore", "-p", c_url, str(backup))
        app = app_on(t_url, tmp_path / "tui")
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("l")
            await pilot.pause(0.3)
            await pilot.press("r")
            await pilot.pause(0.1)
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await settle(app, pilot, timeout=180)
            assert app.last_outcome is not None and app.last_outcome[0] == "ok", app.last_outcome
            tui_seen = tui_stages(app)
    finally:
        registry.unregister(c_url[7:])
        registry.unregister(t_url[7:])
    assert bytes(c_dev.flash.data) == bytes(t_dev.flash.data) == original
    # the same steps after the restore on both: the final compare of what was written, then the reboot
    for seen in (cli_seen, [f"[{s.split(':', 1)[0]}]{s.split(':', 1)[1]}" for s in tui_seen]):
        compares = [line for line in seen if line.startswith("[verify] comparing 0x011000-")]
        assert compares and any(line.startswith("[reboot]") for line in seen[seen.index(compares[0]):]), seen
    # what the chip held before the restore was backed up first, on both sides
    assert images(tmp_path / "cli") == images(tmp_path / "tui") == sorted([original, bytes(changed)])
    assert images(tmp_path / "cli", "derived") == images(tmp_path / "tui", "derived") == []  # restored: the read


@pytest.mark.parametrize("fault", faults("rx-corrupt"))
@sync
async def test_multi_port_o_and_cli_station_leave_the_same_flash(fault: str, fixtures_dir: Path, tmp_path: Path,
                                                                  obk_images, monkeypatch):
    monkeypatch.setenv("BKBENCH_GITHUB_API", "http://127.0.0.1:9")  # nothing listens: offline
    qio = cache_openbk(obk_images, chips=("BK7231N",))["BK7231N"]
    (c_url, c_dev), (t_url, t_dev) = twins(fixtures_dir, FAULTS[fault])
    original = bytes(c_dev.flash.data)
    try:
        assert cli(tmp_path / "cli", "station", "-p", c_url) == 0
        app = BkBenchApp(url=t_url, ports=[t_url, "sim://@none-such"], data_dir=tmp_path / "tui",
                         ports_source=lambda: [], monitor=False, poll_ports=0)
        async with app.run_test(size=(80, 24)) as pilot:
            end = time.monotonic() + 10
            while not isinstance(app.screen, StationScreen) and time.monotonic() < end:
                await pilot.pause(0.05)
            await pilot.press("o")  # nothing selected: the highlighted (first) port
            await pilot.pause(0.2)
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            end = time.monotonic() + 240
            run = app.station.get(t_url)
            assert run is not None
            while run.result is None and time.monotonic() < end:
                await pilot.pause(0.1)
            assert run.result is not None and run.result.state == "done", (run.result, list(run.lines)[-8:])
    finally:
        registry.unregister(c_url[7:])
        registry.unregister(t_url[7:])
    app_part = qio[0x11000:]
    flash = bytes(t_dev.flash.data)
    assert flash[0x11000:0x11000 + len(app_part)] == app_part and flash[:0x11000] == original[:0x11000]
    assert bytes(c_dev.flash.data) == flash
    assert images(tmp_path / "cli") == images(tmp_path / "tui") == [original]
    left = bytearray(original)  # what the write left before the reboot (OpenBK may save its config at boot)
    left[0x11000:0x11000 + len(app_part)] = app_part
    assert images(tmp_path / "cli", "derived") == images(tmp_path / "tui", "derived") == [bytes(left)]


def test_cli_verify_compares_where_cli_write_wrote(fixtures_dir: Path, tmp_path: Path, obk_images):
    """`bkbench verify FILE` right after `bkbench write FILE` of a UA image: compared at 0x11000, exit 0 (it used
    to compare from 0x0 and say the chip differs); and a changed sector is still found there."""
    name = f"eng{next(_names)}"
    dev = registry.create_device(dump=fixtures_dir / "dumps" / N_DUMP, wiring="rts")
    registry.register(name, dev)
    url = f"sim://@{name}"
    ua = tmp_path / "OpenBK7231N_UA.bin"
    ua.write_bytes(obk_images["BK7231N"]["ua"])
    ota = tmp_path / "OpenBeken-v1.18.219_bk7231n.ug.bin"
    ota.write_bytes(obk_images["BK7231N"]["ota"])
    try:
        assert cli(tmp_path, "write", "-p", url, str(ua), "--no-reboot") == 0
        assert bytes(dev.flash.data[0x11000:0x11000 + ua.stat().st_size]) == ua.read_bytes()
        assert cli(tmp_path, "verify", "-p", url, str(ua)) == 0
        assert cli(tmp_path, "verify", "-p", url, str(ota)) == 0  # the package: compared as what it writes
        dev.flash.data[0x30000] ^= 0x01
        assert cli(tmp_path, "verify", "-p", url, str(ua)) == 2
    finally:
        registry.unregister(name)
