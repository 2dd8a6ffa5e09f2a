"""Tuya pin configuration compiled into the app image: found after decryption and mapped like the vault's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bkbench.core.analysis import beken_code
from bkbench.core.analysis.app_config import find_app_config
from bkbench.core.analysis.dump import analyze_dump
from bkbench.core.chips import FAMILIES
from bkbench.core.cli.main import main
from bkbench.core.sim.synth import synth_flash
from familyhelpers import family_image, plain_app

UPK = b"{Jsonver:1.1.8,module:CB2S,rl1_pin:6,rl1_lv:1,netled1_pin:8,netled1_lv:0,bt_pin:24,bt_lv:0,crc:62}"
NOISE = b"log: Jsonver:%s module:%s\x00{not json Jsonver:\x00"


def _dump_with_app_config(chip: str, upk: bytes = UPK) -> bytes:
    """A plausible flash of `chip` whose app (encrypted with the family's key by beken_code) carries
    the configuration as a C string, and whose Tuya storage is empty."""
    fam = FAMILIES[chip]
    flash = bytearray(synth_flash(chip))
    app = plain_app(fam.openbk_target, extra=NOISE + b"\x00" + upk + b"\x00", size=0x12000)
    stored = beken_code.encrypt_physical(app, 0x11000, fam.code_key)
    flash[0x11000 : 0x11000 + len(stored)] = stored
    return bytes(flash)


def test_finder_skips_format_strings_and_parses_the_object():
    found = find_app_config(b"\x00" + NOISE + b"\x00" + UPK + b"\x00tail")
    assert found is not None and found.text == UPK.decode()
    assert found.user_param_key["module"] == "CB2S" and found.user_param_key["rl1_pin"] == 6
    assert find_app_config(NOISE) is None


@pytest.mark.parametrize("chip", ["BK7231N", "BK7238", "BK7231T"])
def test_user_param_key_in_the_app_image_is_found_and_mapped(chip):
    dump = _dump_with_app_config(chip)
    res = analyze_dump(dump)
    assert res.chip == chip
    assert res.vault is None  # nothing in the KV storage: the app is the only source
    assert res.app_config is not None and res.app_config.user_param_key["module"] == "CB2S"
    pins = {g: (p.role, p.channel) for g, p in res.mapping.pins.items()}
    assert pins == {6: ("Rel", 1), 8: ("WifiLED_n", 0), 24: ("Btn", 1)}
    out = res.to_json()
    assert out["tuya"]["user_param_key"]["rl1_pin"] == 6
    assert out["tuya"]["user_param_key_source"].startswith("app image")


def test_wrong_key_finds_nothing():
    """The search runs on the app decrypted with the family's key: the same bytes under another key
    are noise (this is what tells the finder really decrypts)."""
    dump = bytearray(_dump_with_app_config("BK7231N"))
    stored = beken_code.encrypt_physical(plain_app("7231N", extra=UPK + b"\x00", size=0x12000), 0x11000,
                                         FAMILIES["BK7238"].code_key)
    dump[0x11000 : 0x11000 + len(stored)] = stored
    assert analyze_dump(bytes(dump)).app_config is None


def test_ua_image_with_embedded_config(tmp_path: Path, capsys):
    _, ua = family_image("BK7231U", extra=b"\x00" + UPK + b"\x00")
    f = tmp_path / "app.bin"
    f.write_bytes(ua)
    assert main(["analyze", str(f), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["chip"] == "BK7231U" and out["firmware"]["version"] == "1.18.230"
    assert out["openbk"]["pins"]["6"]["role"] == "Rel"


@pytest.mark.parametrize("name", ["OpenBeken-v1.18.219_bk7231n.ug.bin", "OpenBeken-v1.18.219_bk7231t.ug.bin"])
def test_analyze_and_image_agree_on_ota_files(fixtures_dir: Path, name: str, capsys):
    path = fixtures_dir / "firmware" / name
    assert main(["image", str(path), "--json"]) == 0
    image = json.loads(capsys.readouterr().out)
    assert main(["analyze", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert image["chip"] == report["chip"] and report["chip"] is not None
    assert report["firmware"]["kind"] == "openbk" and report["firmware"]["version"] == image["version"]


@pytest.mark.parametrize("chip", ["BK7238", "BK7231M", "BK7252N"])
def test_analyze_and_image_agree_on_family_builds(tmp_path: Path, chip: str, capsys):
    _, data = family_image(chip)
    f = tmp_path / "x.bin"
    f.write_bytes(data)
    assert main(["image", str(f), "--json"]) == 0
    image = json.loads(capsys.readouterr().out)
    assert main(["analyze", str(f), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert image["chip"] == report["chip"] == chip


def test_analyze_prints_each_line_once(fixtures_dir: Path, capsys):
    for path in sorted((fixtures_dir / "dumps").glob("*.bin")):
        assert main(["analyze", str(path)]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == len(set(lines)), path.name
        assert sum(line.startswith("Startup command") for line in lines) <= 1
