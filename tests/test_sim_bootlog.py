"""The simulated chip's boot log is the loaded device's own (issue 11, item 6).

Judge: our boot-log parser (core/analysis/bootlog.py) reads the log off the simulated UART, and what it
finds must match the dump analyser's view of the same flash (MAC, SDK, app, json cfg pins).
"""

from __future__ import annotations

import time

import pytest
from bkbench.core.analysis.bootlog import parse_boot_log
from bkbench.core.analysis.dump import analyze_dump
from bkbench.core.sim.registry import create_device, register, unregister
from bkbench.core.transport import open_port
from simhelpers import DUMP_CHIPS, ROTATED, unrotate


def uart_log(dev, quiet: float = 0.6, limit: float = 15.0) -> str:
    """Everything the app prints after a reset, until the line stays quiet for `quiet` s."""
    register("log", dev)
    try:
        port = open_port("sim://@log")
        port.timeout = 0.05
        dev.reset()
        out = bytearray()
        start = last = time.monotonic()
        while time.monotonic() - start < limit:
            chunk = port.read(4096)
            now = time.monotonic()
            if chunk:
                out += chunk
                last = now
            elif out and now - last > quiet:
                break
        return out.decode("latin-1")
    finally:
        unregister("log")


@pytest.mark.parametrize("name", sorted(DUMP_CHIPS) + [ROTATED])
def test_log_names_this_devices_firmware_mac_and_pins(name, fixtures_dir):
    raw = (fixtures_dir / "dumps" / name).read_bytes()
    flash = unrotate(raw) if name == ROTATED else raw
    want = analyze_dump(flash).to_json()
    dev = create_device(None, fixtures_dir / "dumps" / name, boot_window=0.05)
    log = parse_boot_log(uart_log(dev))
    assert log.mac == want["mac"]
    assert log.bootloader == dev.boot_string() and log.flash_id == int(bytes(dev.flash.jedec).hex(), 16)
    assert log.sdk_version == want["firmware"]["sdk_version"]
    assert log.app == want["firmware"].get("app")
    assert log.json_cfg == want["tuya"]["user_param_key"]
    assert log.openbk is None


def test_two_n_dumps_do_not_share_a_log(fixtures_dir):
    logs = [uart_log(create_device(None, fixtures_dir / "dumps" / n, boot_window=0.05))
            for n in ("bk7231n-lspa9-clone-bl0937-plug.bin", "bk7231n-mirabella-genio-i003632-plug.bin")]
    assert parse_boot_log(logs[0]).mac != parse_boot_log(logs[1]).mac
    assert "b8:06:0d:2a:01:4b" not in logs[0] and "b8: 6: d:2a: 1:4b" not in logs[0]  # the recorded log's MAC


def test_after_an_openbk_write_the_log_is_openbks(fixtures_dir, obk_images):
    dev = create_device(None, fixtures_dir / "dumps" / "bk7231n-lspa9-clone-bl0937-plug.bin", boot_window=0.05)
    ua = obk_images["BK7231N"]["ua"]
    dev.flash.data[0x11000 : 0x11000 + len(ua)] = ua  # as a finished `bkbench write` leaves it
    log = uart_log(dev)
    parsed = parse_boot_log(log)
    assert parsed.openbk == "OpenBK7231N 1.18.219" and parsed.sdk_version is None
    assert parsed.mac == "1c:90:ff:f7:c9:34"
    assert "TUYA IOT SDK" not in log


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _app_output(dev, clock: _Clock, seconds: float) -> str:
    """What the running app prints over `seconds` of simulated time after a reset."""
    dev.reset()
    out = ""
    for _ in range(int(seconds * 10)):
        clock.t += 0.1
        out += dev.host_read().decode("latin-1")
    return out


def test_the_demo_plug_after_openbk_logs_openbks_banner_and_heartbeat(monkeypatch, tmp_path):
    """Issue 22: after OpenBK was written the demo plug still printed the Tuya heartbeat, and the installed
    demo's stand-in OpenBK booted as "version unknown: no banner found". Built-in images only (no ../shared)."""
    from bkbench.core.demo_image import demo_flash
    from bkbench.core.sim.device import SimDevice
    from bkbench.tui.demo import seed_demo_openbk

    monkeypatch.setenv("BKBENCH_DEMO_IMAGE", "builtin")
    monkeypatch.setenv("BKBENCH_CACHE_DIR", str(tmp_path / "demo"))
    (name,) = seed_demo_openbk()
    qio = (tmp_path / "demo" / "releases" / "0.0.0-demo" / name).read_bytes()
    clock = _Clock()
    dev = SimDevice(demo_flash(), scenario="app-running", clock=clock, boot_window=0.05)
    stock = _app_output(dev, clock, 12)
    assert "TUYA IOT SDK" in stock and stock.count("heart beat") >= 2
    dev.flash.data[0x11000 : len(qio)] = qio[0x11000:]  # as a finished `bkbench write` of the stand-in leaves it
    obk = _app_output(dev, clock, 12)
    assert parse_boot_log(obk).openbk == "OpenBK7231N 0.0.0-demo"
    assert "version unknown" not in obk and "TUYA" not in obk and "heart beat" not in obk
    assert obk.count("Info:MAIN:Time") >= 2  # OpenBK's own periodic line


def test_simulated_openbk_judges_its_config_as_openbk_does(fixtures_dir, obk_images):
    """The simulated OpenBK reads its config with OpenBK's loader rules (core/sim/obk_loader.py), not with
    bkbench's parser: a good sector is used as it is, anything it rejects (no config, the old unsigned
    checksum) is logged as OpenBK logs it and replaced by OpenBK's defaults in flash."""
    from bkbench.core.analysis.obk_config import ObkConfig, tiny_crc8_unsigned

    dev = create_device(None, fixtures_dir / "dumps" / "bk7231n-lspa9-clone-bl0937-plug.bin", boot_window=0.05)
    ua = obk_images["BK7231N"]["ua"]
    dev.flash.data[0x11000 : 0x11000 + len(ua)] = ua
    off = 0x1D1000
    stock = bytes(dev.flash.data[off : off + 0x1000])
    log = uart_log(dev)  # the stock sector holds no OpenBK config
    assert "Config crc or ident mismatch. Default config will be loaded." in log and "Started in AP mode" in log
    saved = ObkConfig.parse(bytes(dev.flash.data[off : off + 0x1000]), "BK7231N")
    assert bytes(dev.flash.data[off : off + 0x1000]) != stock
    assert saved.get("longDeviceName") == "OpenBK7231N_FFF7C934" and saved.get("changeCounter") == 1
    assert saved.get("wifi_ssid") == "" and not saved.pins()

    good = ObkConfig.new(saved.get("mac"), "BK7231N")
    good.set("wifi_ssid", "BenchNet")
    dev.flash.data[off : off + 0x1000] = good.sector()
    log = uart_log(dev)
    assert "Correct config has been loaded with 0 changes count." in log and "Connecting to SSID [BenchNet]" in log
    assert bytes(dev.flash.data[off : off + 0x1000]) == good.sector()  # used as it is, not rewritten

    old = bytearray(good.sector())
    old[3] = tiny_crc8_unsigned(bytes(old[4:3584]))  # what bkbench wrote before it matched OpenBK
    dev.flash.data[off : off + 0x1000] = old
    log = uart_log(dev)
    assert "Config crc or ident mismatch" in log and "BenchNet" not in log
    assert ObkConfig.parse(bytes(dev.flash.data[off : off + 0x1000])).get("wifi_ssid") == ""
