"""The built-in demo plug (core/demo_image.py): what `bkbench --demo` shows without ../shared.

Judged by the analyser and the simulator's flash, not by what the demo module says about itself."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import zlib

import pytest
from bkbench.core import demo_image
from bkbench.core.analysis.bootlog import parse_boot_log
from bkbench.core.analysis.dump import analyze_dump
from bkbench.core.chips import BOOTLOADERS
from bkbench.core.cli.main import main
from bkbench.core.sim import registry


@pytest.fixture(scope="module")
def flash() -> bytes:
    return demo_image.demo_flash()


def test_analyses_as_a_stock_tuya_plug(flash) -> None:
    a = analyze_dump(flash)
    assert a.chip == "BK7231N" and len(flash) == 0x200000
    assert a.bootloader is not None and "demo" in a.bootloader["name"] and "synthetic" in a.bootloader["name"]
    assert a.firmware["kind"] == "tuya" and a.firmware["sdk_version"] == "2.3.1"
    assert a.firmware.get("app") == "oem_bk7231n_demo_plug"
    assert a.mac == demo_image.DEMO_MAC
    assert a.vault is not None and not a.vault.problems
    assert set(a.vault.keys()) == {"user_param_key", "gw_bi", "gw_wsm"}
    assert all(e.checksum_ok for e in a.vault.entries.values())
    pins = {g: (p.role, p.channel) for g, p in a.mapping.pins.items()}
    assert pins == {15: ("Rel", 1), 17: ("Btn", 1), 14: ("LED", 1), 16: ("WifiLED_n", 0),
                    6: ("BL0937CF", 0), 7: ("BL0937CF1", 0), 24: ("BL0937SEL", 0)}
    assert a.mapping.meter == "BL0937" and not a.warnings
    assert {p["kind"]: p["status"] for p in a.to_json()["partitions"]}["app"] == "Tuya app"


def test_secrets_are_masked_like_real_ones(flash) -> None:
    masked = json.dumps(analyze_dump(flash).to_json())
    assert "correct-horse-battery" not in masked and "DemoAuthKeyNotARealKey" not in masked
    shown = json.dumps(analyze_dump(flash).to_json(show_secrets=True))
    assert "correct-horse-battery" in shown


def test_the_bootloader_is_registered_as_demo_only_and_not_as_a_real_one(flash) -> None:
    crc = zlib.crc32(flash[:257])
    assert BOOTLOADERS[crc].name.startswith("bkbench demo")
    assert flash[:7] == b"bkbench"  # the bytes say what they are
    real = [b for b in BOOTLOADERS.values() if "demo" not in b.name]
    assert all(b.crc != crc for b in real)


def test_generated_not_stored_and_deterministic() -> None:
    demo_image.demo_flash.cache_clear()
    first = demo_image.demo_flash()
    demo_image.demo_flash.cache_clear()
    assert demo_image.demo_flash() == first
    pkg = demo_image.__file__.rsplit("/", 1)[0]
    big = subprocess.run(["find", pkg, "-size", "+256k", "-name", "*.bin"], capture_output=True, text=True)
    assert big.stdout == ""  # no binary blob shipped in the package


def test_boot_log_agrees_with_the_image(flash) -> None:
    log = parse_boot_log(demo_image.boot_log().encode())
    assert log.chip == "BK7231N" and log.sdk_version == "2.3.1"
    assert log.mac and log.mac.lower() == demo_image.DEMO_MAC
    assert log.json_cfg == analyze_dump(flash).vault.user_param_key


def test_demo_falls_back_to_the_builtin_image_without_fixtures(monkeypatch, flash) -> None:
    from bkbench.tui import demo

    monkeypatch.setattr(registry, "default_dump", lambda chip: None)  # as after `pipx install`
    monkeypatch.delenv("BKBENCH_BOOTLOG", raising=False)
    monkeypatch.setenv("BKBENCH_DEMO_TIMING", "0")
    registry.unregister(demo.DEMO_NAME)
    try:
        url = demo.setup_demo()
        device = registry.get(demo.DEMO_NAME)
        assert device.flash.read(0, 0x200000) == flash
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["analyze", "-p", url, "-q", "-b", "2000000", "--json"])
        report = json.loads(out.getvalue())
        assert code == 0 and report["firmware"]["kind"] == "tuya"
        assert report["openbk"]["pins"]["15"]["role"] == "Rel"
    finally:
        registry.unregister(demo.DEMO_NAME)


def test_module_writes_the_image_for_the_cli(tmp_path, flash) -> None:
    out = tmp_path / "demo.bin"
    subprocess.run([sys.executable, "-m", "bkbench.core.demo_image", str(out)], check=True, timeout=120)
    assert out.read_bytes() == flash
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["analyze", str(out)]) == 0
    text = buf.getvalue()
    assert "stock Tuya, SDK 2.3.1" in text and "P15  Rel" in text
