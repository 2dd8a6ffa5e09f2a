"""Issue 22's journey, "Done when": from a clean home, on a simulated plug holding a real stock dump, the keys a
newcomer presses at 80x24 (backup, analyze, the config editor and its write, the OpenBK write, verify, restore of
the original from the library) take exactly one full backup read. Counted by what the simulated chip served:
every Read4K it answered, by address (never by what the app says). Judged on the final flash (the original again;
bootloader and RF calibration never touched) and on the library (one read entry; the derived ones, what the
writes left, labelled from their images)."""

from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path

from bkbench.core.backup_labels import Labels
from bkbench.core.layout import BOOTLOADER_END, OBK_CONFIG_OFFSET, RF_OFFSET, SECTOR
from bkbench.core.protocol import LongCmd
from bkbench.core.sim import registry
from bkbench.tui.screens.analysis import AnalysisScreen
from bkbench.tui.screens.backups import BackupsScreen
from bkbench.tui.screens.config import ConfigScreen
from bkbench.tui.screens.confirm import ConfirmScreen
from bkbench.tui.screens.write import WriteScreen
from test_tui_app import make_app, make_device, pick_file, settle, sync
from textual.widgets import DataTable, Input

CFG = OBK_CONFIG_OFFSET["BK7231N"]
RF = RF_OFFSET["BK7231N"]


def spy_reads(dev) -> Counter:
    """Count the Read4K commands the simulated chip answers, by sector address."""
    served: Counter = Counter()
    answer = dev._long

    def long(code, p, t):
        if code == LongCmd.FLASH_READ_4K and len(p) >= 4:
            served[struct.unpack_from("<I", p)[0] % dev.flash.size] += 1
        return answer(code, p, t)

    dev._long = long
    return served


async def until(pilot, cond, timeout: float = 60.0) -> None:
    import time

    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        await pilot.pause(0.05)
    assert cond()


@sync
async def test_backup_analyze_config_openbk_verify_restore_reads_the_chip_once(fixtures_dir: Path, tmp_path: Path,
                                                                                obk_images):
    name, dev = make_device(fixtures_dir)
    original = bytes(dev.flash.data)
    served = spy_reads(dev)
    ua = obk_images["BK7231N"]["ua"]
    image = tmp_path / "OpenBK7231N_UA.bin"
    image.write_bytes(ua)
    app = make_app(name, tmp_path / "home")  # a clean home: an empty library
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("b")  # backup
            await settle(app, pilot)
            assert app.last_outcome[0] == "ok", app.last_outcome
            by_backup = Counter(served)  # what the backup step read

            await pilot.press("a")  # analyze the backup, then edit the config from the analysis
            await until(pilot, lambda: isinstance(app.screen, AnalysisScreen))
            await pilot.press("e")
            await settle(app, pilot)
            await until(pilot, lambda: isinstance(app.screen, ConfigScreen))
            screen = app.screen
            screen.query_one("#cfg-wifi_ssid", Input).value = "bench-net"
            screen.query_one("#cfg-wifi_pass", Input).value = "pw-not-printed"
            await pilot.press("ctrl+o")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await settle(app, pilot)
            assert app.last_outcome[0] == "ok" and "config written" in app.last_outcome[1], app.last_outcome

            await pilot.press("w")  # OpenBK
            await until(pilot, lambda: isinstance(app.screen, WriteScreen))
            await pick_file(app, pilot, image)
            await pilot.press("ctrl+o")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await settle(app, pilot, timeout=120)
            assert app.last_outcome[0] == "ok" and "rebooted" in app.last_outcome[1], app.last_outcome
            assert "backup first" not in app.last_outcome[1]  # the config write's record covered the chip

            await pilot.press("v")  # verify what was written
            await settle(app, pilot)
            assert app.last_outcome[0] == "ok" and "matches" in app.last_outcome[1], app.last_outcome

            await pilot.press("l")  # the library: the original is the read entry, labelled stock Tuya
            await until(pilot, lambda: isinstance(app.screen, BackupsScreen)
                        and len(app.screen.label) == len(app.screen.entries), 90)
            browser = app.screen
            row = next(i for i, e in enumerate(browser.entries) if e.origin == "read")
            table = browser.query_one(DataTable)
            assert str(table.get_row_at(row)[1]).startswith("stock Tuya plug 1.1.15\n")
            table.move_cursor(row=row)
            await pilot.pause(0.1)
            await pilot.press("r")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await settle(app, pilot, timeout=120)
            assert app.last_outcome[0] == "ok" and "backup first" not in app.last_outcome[1], app.last_outcome
    finally:
        registry.unregister(name)

    # Exactly one full backup read: the backup step transferred every non-erased sector (and the erased ones
    # sharing a 64 KiB block with data), and over the whole journey no sector crossed the wire twice, except the
    # RF sector (read at each connect, for the MAC) and the config sector (read by the editor).
    flash = bytes(dev.flash.data)
    stored = {a for a in range(0, len(original), SECTOR) if original[a:a + SECTOR].count(0xFF) != SECTOR}
    assert stored <= set(by_backup), sorted(hex(a) for a in stored - set(by_backup))
    twice = {hex(a): n for a, n in served.items() if n > 1 and a not in (RF, CFG)}
    assert not twice, twice
    assert sum(served.values()) - sum(by_backup.values()) <= 8, served - by_backup

    # The final flash: the original again, outside the protected regions and in them (never touched).
    assert flash[:BOOTLOADER_END] == original[:BOOTLOADER_END] and flash[RF:RF + SECTOR] == original[RF:RF + SECTOR]
    assert flash == original

    # The library: one read (the original), two derived entries (what the config write and OpenBK write left).
    lib, labels = app.library, Labels(app.library)
    entries = lib.list()
    assert [e.origin for e in entries] == ["derived", "derived", "read"]
    assert lib.load(entries[2]) == original
    assert [labels.label(e) for e in entries] == [
        "OpenBK 1.18.219 + config", "stock Tuya plug 1.1.15 + OpenBK config", "stock Tuya plug 1.1.15"]
    assert entries[0].derived["from"]["file"] == entries[1].name
    assert entries[0].derived["original"]["file"] == entries[1].derived["original"]["file"] == entries[2].name
