"""Applying a community entry to an OpenBK config: pins, flags, startup command; every refusal one line and
nothing changed; `config set --device` writes a config OpenBK's own checksum accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bkbench.core.analysis.device_apply import EntryRefused, apply_plan, plan_entry
from bkbench.core.analysis.device_list import DeviceList, DeviceListStore
from bkbench.core.analysis.devices import facts_from_report
from bkbench.core.analysis.dump import analyze_dump
from bkbench.core.analysis.obk_config import ObkConfig
from bkbench.core.layout import OBK_CONFIG_OFFSET, SECTOR
from test_station import cli, one_error

LSPA9 = "bk7231n-lspa9-clone-bl0937-plug.bin"
ELIVCO_BL0937 = "aa7da527"  # "LSPA9 Power metering plug BL0937 version"
RMC021 = "f0e1b41f"  # a plug with exactly the LSPA9 clone's pins, flags 1024, "startDriver NTP"
GLOBE = "22c8c0fb"  # a BK7231T bulb whose entry spells SM2135_CLK / SM2135_DAT


@pytest.fixture(scope="module")
def dl(fixtures_dir: Path) -> DeviceList:
    return DeviceList.parse((fixtures_dir / "devices" / "openbk-devices.json").read_bytes(), "fixture")


def one(pins: dict, chip: str = "BK7231N", **extra):
    raw = {"devices": [{"name": "probe", "chip": chip, "board": "CB2S", "pins": pins, **extra}]}
    return DeviceList.parse(json.dumps(raw).encode()).entries[0]


def test_apply_sets_pins_flags_and_startup(dl: DeviceList) -> None:
    cfg = ObkConfig.new(bytes.fromhex("1c90fff7c934"))
    cfg.set_pin(11, "LED", 3)  # replaced: the entry's pin map is the whole map
    cfg.set("wifi_ssid", "kept")
    plan = plan_entry(dl.get(RMC021), "BK7231N")
    apply_plan(cfg, plan)
    parsed = ObkConfig.parse(cfg.sector())  # checksum right
    pins = {g: (p.role, p.channel) for g, p in parsed.pins().items()}
    assert pins == {6: ("BL0937CF1", 0), 7: ("BL0937CF", 0), 8: ("WifiLED_n", 0), 10: ("Btn", 1),
                    24: ("BL0937SEL", 0), 26: ("Rel", 1)}
    assert parsed.get("genericFlags") == 1024 and parsed.flag(10) and parsed.get("initCommandLine") == "startDriver NTP"
    assert parsed.get("wifi_ssid") == "kept"


def test_flags_are_64_bits_and_only_set_when_given() -> None:
    cfg = ObkConfig.new()
    cfg.set("initCommandLine", "mine")
    cfg.set("genericFlags", 5)
    apply_plan(cfg, plan_entry(one({"26": "rel;1", "10": "BUTTON;1"}, flags=str((1 << 33) | 1024)), "BK7231N"))
    assert cfg.get("genericFlags") == 1024 and cfg.get("genericFlags2") == 2 and cfg.flag(33)
    assert cfg.pins()[26].role == "Rel" and cfg.pins()[10].role == "Btn"  # case-blind, web-app aliases
    apply_plan(cfg, plan_entry(one({"26": "Rel;1"}), "BK7231N"))
    assert cfg.get("genericFlags") == 1024 and cfg.get("initCommandLine") == "mine"  # entry gives neither


@pytest.mark.parametrize("pins, chip, words", [
    ({"8": "SM2135_CLK;0"}, "BK7231N", ["P8", "'SM2135_CLK'", "OpenBK's name is SM2135CLK"]),
    ({"9": "Btn_NextColour;0"}, "BK7231N", ["not an OpenBK pin role", "did you mean Btn_NextColor"]),
    ({"35": "LED;1"}, "BK7231N", ["P35", "P0-P28"]),
    ({"20": "PWM;1"}, "BK7231N", ["P20 has no PWM channel", "P6, P7, P8, P9, P24, P26"]),
    ({"26": "Rel;1"}, "BK7231T", ["is for a BK7231T", "BK7231N"]),
])
def test_refusals_are_one_line_and_change_nothing(pins: dict, chip: str, words: list[str]) -> None:
    with pytest.raises(EntryRefused) as exc:
        plan_entry(one(pins, chip=chip), "BK7231N")
    text = str(exc.value)
    assert "\n" not in text and "nothing was changed" in text.lower()
    for w in words:
        assert w in text, text


def test_plan_lists_differences_from_the_device(dl: DeviceList, fixtures_dir: Path) -> None:
    facts = facts_from_report(analyze_dump((fixtures_dir / "dumps" / LSPA9).read_bytes()).to_json())
    plan = plan_entry(dl.get(ELIVCO_BL0937), "BK7231N", facts)
    assert plan.differences() == ["P8 WifiLED_n here (netled1_pin), not used by the entry"]
    assert plan_entry(dl.get(RMC021), "BK7231N", facts).differences() == []



def test_config_set_device_on_the_lspa9_dump(dl: DeviceList, fixtures_dir: Path, tmp_path: Path) -> None:
    dump = fixtures_dir / "dumps" / LSPA9
    out = tmp_path / "obk.bin"
    code, _, err = cli(["config", "set", str(dump), "--device", ELIVCO_BL0937, "-o", str(out)])
    one_error(code, err, "community device list", "bkbench fetch --devices")
    assert not out.exists()
    DeviceListStore().save((fixtures_dir / "devices" / "openbk-devices.json").read_bytes(), "fixture")
    code, text, err = cli(["config", "set", str(dump), "--device", ELIVCO_BL0937, "ssid=bench", "-o", str(out)])
    assert code == 0, err
    assert "P8 WifiLED_n here (netled1_pin), not used by the entry" in text and "topic3887748" in text
    data, before = out.read_bytes(), dump.read_bytes()
    off = OBK_CONFIG_OFFSET["BK7231N"]
    assert data[:off] == before[:off] and data[off + SECTOR:] == before[off + SECTOR:]
    cfg = ObkConfig.parse(data[off:off + SECTOR])
    assert {g: p.role for g, p in cfg.pins().items()} == {6: "BL0937CF1", 7: "BL0937CF", 10: "Btn", 24: "BL0937SEL",
                                                         26: "Rel"}
    assert cfg.get("initCommandLine").startswith("backlog startDriver BL0937") and cfg.get("wifi_ssid") == "bench"
    # refusals: another chip's entry, an entry with a name OpenBK rejects, an unknown id, two pin sources
    for args, words in (([GLOBE], ["BK7231T"]), (["zzzz"], ["no entry 'zzzz'"]),
                        ([ELIVCO_BL0937, "--from-tuya"], ["choose one"])):
        target = tmp_path / "refused.bin"
        code, _, err = cli(["config", "set", str(dump), "--device", *args, "-o", str(target)])
        one_error(code, err, *words)
        assert not target.exists()
    globe = fixtures_dir / "dumps" / "bk7231t-globe-37783-rgbct-bulb.bin"
    code, _, err = cli(["config", "set", str(globe), "--device", GLOBE, "-o", str(tmp_path / "g.bin")])
    one_error(code, err, "SM2135_CLK", "SM2135CLK")
    assert not (tmp_path / "g.bin").exists()


def test_config_set_takes_assignments_after_options(fixtures_dir: Path, tmp_path: Path) -> None:
    # `key=value` after --from-tuya: argparse alone would call it unrecognized once the pairs are optional
    dump = fixtures_dir / "dumps" / LSPA9
    out = tmp_path / "obk.bin"
    code, _, err = cli(["config", "set", str(dump), "--from-tuya", "ssid=Lab", "-o", str(out), "name=plug"])
    assert code == 0, err
    cfg = ObkConfig.parse(out.read_bytes()[OBK_CONFIG_OFFSET["BK7231N"]:][:SECTOR])
    assert cfg.get("wifi_ssid") == "Lab" and cfg.get("shortDeviceName") == "plug" and cfg.pins()[26].role == "Rel"
    code, _, err = cli(["config", "set", str(dump), "-o", str(tmp_path / "none.bin")])
    one_error(code, err, "nothing to set")
    code, _, err = cli(["config", "set", str(dump), "ssid=x", "--bogus", "-o", str(tmp_path / "none.bin")])
    assert code == 2 and "--bogus" in err and not (tmp_path / "none.bin").exists()
