"""The real Tuya T bootloaders (Feit 1.0.5, Globe 1.0.4) under Unicorn judge bkbench's engine and a peer.

Every operation runs through the engine the way the CLI runs it (core/session.Session, or the CLI itself) and
is judged on the emulated flash only: byte-exact where it should change, bootloader and RF untouched. On
1.0.4 no erase may follow a CheckCRC in the same boot (REALCODE.md B.8): the writes there take every CRC first
and restart the bootloader with its Reboot command before erasing (core/ops/planned.py).
"""

from __future__ import annotations

import itertools
import time
from contextlib import contextmanager

import pytest
from bkbench.core.backups import BackupLibrary
from bkbench.core.cli.main import main
from bkbench.core.ops import planned
from bkbench.core.ops.events import Notice, Retry
from bkbench.core.session import Session
from bkbench.core.sim.flash import NorFlash
from bkbench.core.sim.pty_bridge import PtyBridge
from bkbench.core.sim.registry import register, unregister

from . import golden
from .t_bootloader import RealTDevice, TBootloader

BOOT_END, RF = 0x11000, 0x1E0000
CONFIG = 0x1E1000
VERSIONS = ["1.0.5", "1.0.4"]
_names = itertools.count()


def dump_of(fixtures_dir, version: str) -> bytes:
    return (fixtures_dir / "dumps" / golden.DUMPS[version]).read_bytes()


@contextmanager
def real_t(flash: bytes, **kwargs):
    """The real bootloader behind `sim://@name`: the in-process port bkbench's engine opens like any other."""
    dev = RealTDevice(flash, **kwargs)
    name = f"realt{next(_names)}"
    register(name, dev)
    try:
        yield f"sim://@{name}", dev
    finally:
        unregister(name)
        dev.close()


@pytest.fixture(scope="module")
def ua_image(obk_images) -> bytes:
    """OpenBK's UA image (app only, at 0x11000) derived from the real OTA file in fixtures/firmware."""
    return obk_images["BK7231T"]["ua"]


def with_app(stock: bytes, ua: bytes) -> bytes:
    """The flash after an app write: the image, then 0xFF to the end of its last 4 KiB sector (erased whole)."""
    end = BOOT_END + len(ua)
    pad = -end % 0x1000
    return stock[:BOOT_END] + ua + b"\xff" * pad + stock[end + pad:]


# ------------------------------------------------------------------------------------------- the harness


def test_fast_mode_runs_the_same_as_every_byte_through_the_fifo_and_irq(fixtures_dir):
    """The fast mode feeds the ring directly and runs two I/O leaves in Python: same bytes, same flash."""
    dump = dump_of(fixtures_dir, "1.0.4")
    frames = [golden.link(), golden.encode(0x11), golden.read4k(0x11000), golden.crc(0x11000, 0x12000),
              golden.link(), golden.erase(0x20, 0x1F0000), golden.write4k(0x1F0000, 0x33), golden.read4k(0x1F0000),
              golden.write(0x1F1008, bytes(range(40))), golden.crc(0x1F0000, 0x1F2000), golden.read4k(0x1F1000)]
    results = []
    for exact in (True, False):
        flash = NorFlash(dump, (0xC8, 0x40, 0x15), 0x1C)
        boot = TBootloader(dump, flash, exact=exact)
        boot.run_until_quiet()
        results.append(([boot.exchange(f) for f in frames], bytes(flash.data), flash.sr))
    assert results[0] == results[1]
    replies = results[0][0]
    assert replies[2][:15] == bytes.fromhex("040eff01e0fcf40610090000100100") and len(replies[2]) == 4111


def test_without_a_host_it_prints_its_banner_on_uart2_and_jumps_to_the_app(fixtures_dir):
    for version in VERSIONS:
        dump = dump_of(fixtures_dir, version)
        boot = TBootloader(dump, NorFlash(dump, (0xC8, 0x40, 0x15), 0x1C))
        boot.run(3_000_000)
        assert boot.in_app
        assert f"V:BK7231S_{version}".encode() in boot.log and b" 0x10000" in boot.log  # "J 0x...", "Jump 0x..."
        assert not boot.tx


def test_reboot_command_resets_through_the_watchdog_and_opens_a_new_boot_window(fixtures_dir):
    dump = dump_of(fixtures_dir, "1.0.5")
    boot = TBootloader(dump, NorFlash(dump, (0xC8, 0x40, 0x15), 0x1C))
    boot.run_until_quiet()
    assert boot.exchange(golden.link()) == bytes.fromhex("040e0501e0fc0100")
    boot.log.clear()
    assert boot.exchange(golden.encode(0x0E, b"\xa5")) == b""  # no reply
    assert boot.stats.resets == 1 and b"V:BK7231S_1.0.5" in boot.log and not boot.in_app
    assert boot.exchange(golden.link()) == bytes.fromhex("040e0501e0fc0100")


# ------------------------------------------------------------------------------------------- the engine


@pytest.mark.parametrize("version", VERSIONS)
def test_info_names_what_the_code_says(version, fixtures_dir):
    dump = dump_of(fixtures_dir, version)
    with real_t(dump) as (url, dev):
        with Session(url, baud=921600) as s:
            info = s.connect()
        flash = bytes(dev.flash.data)
    assert (info.chip, info.boot_version) == ("BK7231T", f"BK7231S_{version}")
    assert info.bootloader == f"bk7231s {version}"
    assert info.bootloader_table == ("bk7231s 1.0.3" if version == "1.0.4" else None)
    assert info.mac and flash == dump


@pytest.mark.parametrize("version", VERSIONS)
def test_full_backup_is_byte_exact(version, fixtures_dir, tmp_path):
    dump = dump_of(fixtures_dir, version)
    with real_t(dump) as (url, dev):
        with Session(url, baud=921600) as s:
            s.connect()
            got = s.backup(BackupLibrary(tmp_path / "lib"))
        flash = bytes(dev.flash.data)
    entry = got.entry
    assert got.taken and entry.path.read_bytes() == dump and flash == dump
    meta = entry.meta
    assert meta["boot_version"] == f"BK7231S_{version}" and meta["bootloader"] == f"bk7231s {version}"


@pytest.mark.parametrize("version", VERSIONS)
def test_openbk_write_lands_byte_exact(version, fixtures_dir, ua_image, tmp_path):
    dump = dump_of(fixtures_dir, version)
    image = tmp_path / "OpenBK7231T_UA.bin"
    image.write_bytes(ua_image)
    with real_t(dump) as (url, dev):
        rc = main(["write", "--port", url, str(image), "--no-reboot", "--json", "-q",
                   "--library", str(tmp_path / "lib")])
        flash = bytes(dev.flash.data)
    assert flash[:BOOT_END] == dump[:BOOT_END] and flash[RF:] == dump[RF:]  # bootloader, RF, config, vault
    assert flash == with_app(dump, ua_image)
    assert rc == 0


def test_a_1_0_4_taken_for_a_version_a_link_check_rearms_is_restarted_on_evidence(fixtures_dir, ua_image, monkeypatch):
    """The re-arm an unknown version (1.0.6) gets first is a LinkCheck. The real 1.0.4 drops the erase after it; the
    write reads the sector back, restarts the bootloader with its Reboot command, names it in one line, lands."""
    monkeypatch.setattr(planned, "erases_after_crc", lambda dialect, said: "relink")
    dump = dump_of(fixtures_dir, "1.0.4")
    events: list = []
    with real_t(dump) as (url, dev):
        with Session(url, baud=921600, on_event=events.append) as s:
            s.connect()
            s.write(ua_image, BOOT_END, backup_first=False)
        flash, resets = bytes(dev.flash.data), dev.boot.stats.resets
    assert flash == with_app(dump, ua_image)
    assert resets == 1
    notes = [e.message for e in events if isinstance(e, Notice)]
    assert "the bootloader BK7231S_1.0.4 ignores erases after a CRC check until it restarts: bkbench restarts it " \
           "(its Reboot command) before erasing" in notes
    assert not [e for e in events if isinstance(e, Retry)]


@pytest.mark.parametrize("version", VERSIONS)
def test_verify_by_crc_finds_the_one_changed_sector(version, fixtures_dir, ua_image):
    dump = dump_of(fixtures_dir, version)
    on_chip = with_app(dump, ua_image)
    ua_image = on_chip[BOOT_END:BOOT_END + len(ua_image) + (-len(ua_image) % 0x1000)]  # whole sectors
    other = bytearray(ua_image)
    other[0x23456] ^= 0x01
    with real_t(on_chip) as (url, dev):
        with Session(url, baud=921600) as s:
            s.connect()
            same = s.verify(ua_image, BOOT_END)
            diff = s.verify(bytes(other), BOOT_END)
        flash = bytes(dev.flash.data)
    assert same.ok and not diff.ok
    assert [a for a, _ in diff.mismatched] == [(BOOT_END + 0x23456) & ~0xFFF]
    assert flash == on_chip


@pytest.mark.parametrize("version", VERSIONS)
def test_verify_of_a_file_whose_length_is_not_a_multiple_of_256(version, fixtures_dir, ua_image):
    """CheckCRC on T hashes whole 256-byte blocks (REALCODE.md B.2): the file's tail past its last whole block
    is compared by bytes read back and vouched for by the chip's CRC of that block (verify_flash), so the real
    bootloader finds a good chip good."""
    dump = dump_of(fixtures_dir, version)
    assert len(ua_image) % 256
    with real_t(with_app(dump, ua_image)) as (url, _):
        with Session(url, baud=921600) as s:
            s.connect()
            assert s.verify(ua_image, BOOT_END).ok


@pytest.mark.parametrize("version", VERSIONS)
def test_restore_puts_the_stock_firmware_back(version, fixtures_dir, ua_image, tmp_path):
    dump = dump_of(fixtures_dir, version)
    backup = tmp_path / "stock.bin"
    backup.write_bytes(dump)
    with real_t(with_app(dump, ua_image)) as (url, dev):
        rc = main(["restore", "--port", url, str(backup), "--json", "-q", "--library", str(tmp_path / "lib")])
        flash = bytes(dev.flash.data)
    assert flash[:BOOT_END] == dump[:BOOT_END] and flash[RF:] == dump[RF:]
    assert flash == dump
    assert rc == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_config_write_changes_the_config_sector_only(version, fixtures_dir, tmp_path):
    dump = dump_of(fixtures_dir, version)
    src = tmp_path / "stock.bin"
    src.write_bytes(dump)
    out = tmp_path / "obk.bin"
    assert main(["config", "set", str(src), "ssid=RealCodeNet", "pass=not-a-secret", "-o", str(out)]) == 0
    sector = out.read_bytes()[CONFIG:CONFIG + 0x1000]
    assert sector[:3] == b"CFG"
    with real_t(dump) as (url, dev):
        rc = main(["config", "write", str(out), "--port", url, "--json", "-q", "--library", str(tmp_path / "lib")])
        flash = bytes(dev.flash.data)
    assert flash[:BOOT_END] == dump[:BOOT_END] and flash[RF:CONFIG] == dump[RF:CONFIG]
    assert flash == dump[:CONFIG] + sector + dump[CONFIG + 0x1000:]
    assert rc == 0


def test_an_idle_bootloader_is_kept_in_download_mode_then_written(fixtures_dir, tmp_path):
    """REALCODE.md B.11 by the real code: paced at 20 M instructions/s, the 1.0.4's idle count runs out in about
    half a second of wall time and its boot window (after the Reboot the write needs) in ~50 ms. Connected, left
    alone for 3 s, then a config write: the keepalive held it, the restart caught its short boot window."""
    dump = dump_of(fixtures_dir, "1.0.4")
    sector = b"CFG" + bytes(range(253)) * 16 + b"\xff" * (0x1000 - 3 - 253 * 16)
    events: list = []
    with real_t(dump, pace=20e6) as (url, dev):
        with Session(url, baud=921600, on_event=events.append) as s:
            s.connect()
            time.sleep(3.0)
            assert dev.boot.stats.resets == 0 and not dev.boot.in_app
            s.write(sector, CONFIG, backup_first=False)
        flash, resets = bytes(dev.flash.data), dev.boot.stats.resets
    assert flash == dump[:CONFIG] + sector + dump[CONFIG + 0x1000:]
    assert resets == 1  # the restart before erasing, nothing else
    assert not [e for e in events if isinstance(e, Retry)]


# ------------------------------------------------------------------------------------------- a peer


@pytest.mark.parametrize("version", VERSIONS)
def test_bk7231tools_reads_the_whole_flash_through_a_pty(version, fixtures_dir):
    bk7231tools = pytest.importorskip("bk7231tools.serial")
    dump = dump_of(fixtures_dir, version)
    dev = RealTDevice(dump)
    bridge = PtyBridge(dev).start()
    try:
        peer = bk7231tools.BK7231Serial(bridge.path, baudrate=921600, link_timeout=5)
        peer.connect()
        try:
            size = 0x200000 if version == "1.0.5" else 0x80000  # the whole chip once; CI time
            data = peer.flash_read_bytes(0, size, crc_check=True)
        finally:
            peer.close()
    finally:
        bridge.stop()
        dev.close()
    assert data == dump[:size] and bytes(dev.flash.data) == dump
