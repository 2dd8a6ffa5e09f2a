"""The community device list matcher on the real fixture dumps and on hand-made facts: which entries it names,
how it scores them pin by pin, and that it says so when nothing matches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bkbench.core.analysis.device_list import DeviceList, DeviceListStore
from bkbench.core.analysis.devices import (
    DeviceFacts,
    DevicePin,
    backup_note,
    compare,
    facts_from_report,
    match_device,
    match_report,
)
from bkbench.core.cli import analyze
from bkbench.core.cli.analyze import analyze_file
from test_station import cli

LSPA9 = "bk7231n-lspa9-clone-bl0937-plug.bin"
# Elektroda topic of the ELIVCO LSPA9 entries, the forum thread this very dump was posted in (fixtures README).
LSPA9_TOPIC = "topic3887748"


@pytest.fixture(scope="module")
def dl(fixtures_dir: Path) -> DeviceList:
    return DeviceList.parse((fixtures_dir / "devices" / "openbk-devices.json").read_bytes(), "fixture")


@pytest.fixture(scope="module")
def reports(fixtures_dir: Path) -> dict[str, dict]:
    return {p.name: analyze_file(p) for p in sorted((fixtures_dir / "dumps").glob("*.bin"))}


def entry(dl: DeviceList, name: str):
    return next(e for e in dl.entries if e.name == name)


def test_lspa9_plug_finds_the_lspa9_entries(dl: DeviceList, reports: dict) -> None:
    c = match_report(reports[LSPA9], dl)
    assert c["status"] == "matched" and c["device"]["chip"] == "BK7231N" and c["device"]["meter"] == "BL0937"
    by_name = {m["name"]: m for m in c["matches"]}
    # the entry of this dump's own forum thread: every pin it lists agrees; it leaves out the Wi-Fi LED on P8
    elivco = by_name["LSPA9 Power metering plug BL0937 version"]
    assert LSPA9_TOPIC in elivco["wiki"] and elivco["score"] == 88 and elivco["pins_agreeing"] == 5
    verdicts = {p["gpio"]: p["verdict"] for p in elivco["pins"]}
    assert verdicts == {6: "agrees", 7: "agrees", 8: "only device", 10: "agrees", 24: "agrees", 26: "agrees"}
    assert elivco["module"]["verdict"] == "agrees" and elivco["meter"]["verdict"] == "agrees"
    # the other LSPA9 models of the list agree on all but the button pin / LED role
    for name in ("Tuya AU LSPA9? Smart Socket: Energy Monitoring", "16A/20A plug from aliexpress ZN275250",
                 "Smart Plug (Aubess LSPA9 clone)"):
        assert name in by_name and by_name[name]["score"] >= 70, name
    # the BL0942 revision of the LSPA9 and the meterless look-alike are other hardware: not among the matches
    assert "LSPA9 Power metering plug BL0942 version" not in by_name
    assert "SmartLife generic no-name LSPA9-like plug, no energy meter" not in by_name
    # an LSPA9 on another chip never competes
    assert all(m["chip"] == "BK7231N" for m in c["matches"])
    # the best group is the exact pin map, shared by several plugs (the list cannot tell them apart)
    top = c["groups"][0]
    assert top["score"] == 100 and len(top["ids"]) == 7 and top["differs"] == []
    assert [m["score"] for m in c["matches"]] == sorted((m["score"] for m in c["matches"]), reverse=True)


def test_tuyamcu_dimmer_and_breaker_relay_have_no_match(dl: DeviceList, reports: dict) -> None:
    mcu = match_report(reports["bk7231n-elegrp-dpr10-tuyamcu-dimmer.bin"], dl)
    assert mcu["status"] == "tuyamcu" and mcu["matches"] == [] and "TuyaMCU" in mcu["message"]
    relay = match_report(reports["bk7231n-ap-smt-breaker02-relay.bin"], dl)
    assert relay["status"] == "weak" and len(relay["matches"]) == 1 and relay["matches"][0]["score"] < 60
    assert "no community entry agrees well" in relay["message"]


@pytest.mark.parametrize("dump, status, first", [
    ("bk7231n-mirabella-genio-i003632-plug.bin", "matched", "Genio Smart Plug with USB A and C"),
    ("bk7231t-led-moon-cct-rotated-0x11000.bin", "matched", "Kobi Smart LED Moon"),
    ("bk7231t-globe-37783-rgbct-bulb.bin", "matched", "Globe 35804"),
    ("bk7231t-feit-br30-rgbw-bulb.bin", "matched", "Feit BPA800/RGBW/2"),
    ("bk7231t-pc44ha-tuya-kv-region-only.bin", "matched", None),
])
def test_fixture_dumps(dl: DeviceList, reports: dict, dump: str, status: str, first: str | None) -> None:
    c = match_report(reports[dump], dl)
    assert c["status"] == status
    if first:
        assert first in c["matches"][0]["title"]


def test_chip_of_a_kv_region_comes_from_its_module(dl: DeviceList, reports: dict) -> None:
    c = match_report(reports["bk7231t-pc44ha-tuya-kv-region-only.bin"], dl)
    assert c["device"]["chip"] == "BK7231T" and c["device"]["chip_source"] == "module"
    assert any("inferred from module WB2S" in n for n in c["notes"])
    assert all(m["chip"] == "BK7231T" for m in c["matches"])


def test_misspelt_role_counts_but_is_flagged(dl: DeviceList, reports: dict) -> None:
    # The Globe entry writes SM2135_CLK / SM2135_DAT, names OpenBK rejects: same circuit, flagged.
    c = match_report(reports["bk7231t-globe-37783-rgbct-bulb.bin"], dl)
    globe = c["matches"][0]
    assert [p["verdict"] for p in globe["pins"]] == ["agrees", "agrees"]
    assert any("SM2135_CLK, which OpenBK rejects" in d for d in globe["differs"])


def _facts(**pins) -> DeviceFacts:
    return DeviceFacts("BK7231N", "dump", "CB2S", None, "pins",
                       {int(g[1:]): DevicePin(r, c, "key") for g, (r, c) in pins.items()})


def _entry(dl: DeviceList, pins: dict[str, str], board: str = "CB2S", command: str = ""):
    raw = {"devices": [{"name": "probe", "chip": "BK7231N", "board": board, "pins": pins, "command": command}]}
    return DeviceList.parse(json.dumps(raw).encode()).entries[0]


def test_channels_agree_up_to_one_renumbering(dl: DeviceList) -> None:
    facts = _facts(P6=("Rel", 1), P7=("Rel", 2), P8=("Btn", 1), P9=("Btn", 2), P24=("WifiLED_n", 0))
    renumbered = compare(facts, _entry(dl, {"6": "Rel;0", "7": "Rel;1", "8": "Btn;0", "9": "Btn;1",
                                            "24": "WifiLED_n;3"}))
    assert [p.verdict for p in renumbered.pins] == ["agrees"] * 5 and renumbered.percent == 100
    crossed = compare(facts, _entry(dl, {"6": "Rel;1", "7": "Rel;2", "8": "Btn;2", "9": "Btn;1",
                                         "24": "wifiled_N;0"}))  # role names compared case-blind, as OpenBK
    assert [p.verdict for p in crossed.pins] == ["agrees", "agrees", "channel", "channel", "agrees"]


def test_verdicts_for_polarity_kind_and_absence(dl: DeviceList) -> None:
    facts = _facts(P6=("Rel", 1), P7=("Btn", 1), P8=("LED", 1), P24=("BL0937CF", 0))
    m = compare(facts, _entry(dl, {"6": "Rel_n;1", "7": "TglChanOnTgl;1", "8": "WifiLED;0", "26": "Btn;1",
                                   "24": "Relay;1"}))
    v = {p.gpio: p.verdict for p in m.pins}
    assert v == {6: "inverted", 7: "similar", 8: "similar", 24: "differs", 26: "only entry"}
    unknown = compare(facts, _entry(dl, {"6": "Rel;1", "7": "Btnl;1"}))
    assert {p.gpio: p.verdict for p in unknown.pins}[7] == "unknown role"


def test_meter_and_module_are_features(dl: DeviceList) -> None:
    facts = _facts(P26=("Rel", 1), P10=("Btn", 1))
    facts.meter = "BL0942"
    bl0942 = compare(facts, _entry(dl, {"26": "Rel;1", "10": "Btn;1"}, command="backlog startDriver BL0942; VREF 1"))
    none = compare(facts, _entry(dl, {"26": "Rel;1", "10": "Btn;1"}, board="WB2S"))
    assert bl0942.meter.verdict == "agrees" and bl0942.percent == 100
    assert none.meter.verdict == "differs" and none.module.verdict == "differs" and none.percent == 50


def test_other_chips_never_match(dl: DeviceList, reports: dict) -> None:
    facts = facts_from_report(reports[LSPA9])
    facts.chip = "BK7231T"
    report = match_device(facts, dl)
    assert all(m.entry.chip == "BK7231T" for m in report.matches) and report.compared == 210


def test_no_list_cached_says_how_to_get_it(reports: dict) -> None:
    c = match_report(reports[LSPA9])
    assert c["status"] == "no list" and "bkbench fetch --devices" in c["message"] and c["matches"] == []


def test_backup_note_names_the_closest_entry(dl: DeviceList, fixtures_dir: Path) -> None:
    data = (fixtures_dir / "dumps" / LSPA9).read_bytes()
    note = backup_note(data, "BK7231N", dl)
    assert note.startswith("community list: 22 entries agree, closest ") and "100%" in note
    assert backup_note(b"\xff" * 0x200000, "BK7231N", dl) is None  # no Tuya vault: nothing to say
    assert backup_note(data, "BK7231N") is None  # no list cached


EXPECTED = {  # dump -> (a phrase of the human output, an entry it names or None)
    "bk7231n-ap-smt-breaker02-relay.bin": ("no community entry agrees well", "Mirabella Genio Double Plug"),
    "bk7231n-elegrp-dpr10-tuyamcu-dimmer.bin": ("TuyaMCU device", None),
    LSPA9: ("22 of 422 BK7231N entries agree", "LSPA9 Power metering plug BL0937 version"),
    "bk7231n-mirabella-genio-i003632-plug.bin": ("1 of 422 BK7231N entries agree", "(I03632)"),
    "bk7231t-feit-br30-rgbw-bulb.bin": ("of 210 BK7231T entries agree", "Feit BPA800/RGBW/2"),
    "bk7231t-globe-37783-rgbct-bulb.bin": ("1 of 210 BK7231T entries agree", "Globe 35804"),
    "bk7231t-led-moon-cct-rotated-0x11000.bin": ("2 of 210 BK7231T entries agree", "Kobi Smart LED Moon"),
    "bk7231t-pc44ha-tuya-kv-region-only.bin": ("of 210 BK7231T entries agree", "SA-SWPWPM"),
}


def test_analyze_names_the_entries_of_every_fixture_dump(fixtures_dir: Path, dl: DeviceList, reports: dict) -> None:
    dumps = sorted(p.name for p in (fixtures_dir / "dumps").glob("*.bin"))
    assert dumps == sorted(EXPECTED)
    for name in dumps:  # the human text `analyze` prints, from the reports analysed once for this module
        out = analyze._human({**reports[name], "community": match_report(reports[name], dl)})
        phrase, named = EXPECTED[name]
        section = out[out.index("Community devices:"):]
        assert phrase in section, (name, section)
        if named:
            assert named in section, (name, section)
            assert "elektroda.com" in section and "pins differ between hardware revisions" in section
    # and the command itself, reading the list `fetch --devices` cached
    DeviceListStore().save((fixtures_dir / "devices" / "openbk-devices.json").read_bytes(), "fixture")
    code, out, err = cli(["analyze", str(fixtures_dir / "dumps" / LSPA9)])
    assert code == 0 and "LSPA9 Power metering plug BL0937 version [aa7da527]" in out, err


def test_cli_backup_names_the_closest_entry(fixtures_dir: Path, tmp_path: Path) -> None:
    DeviceListStore().save((fixtures_dir / "devices" / "openbk-devices.json").read_bytes(), "fixture")
    url = f"sim://?dump={fixtures_dir / 'dumps' / LSPA9}"
    code, out, err = cli(["read", "-p", url, "--library", str(tmp_path / "lib")])
    assert code == 0, err
    assert "community list: 22 entries agree, closest " in out and "[f0e1b41f] 100%" in out
    code, out, err = cli(["--json", "read", "-p", url, "--library", str(tmp_path / "lib2")])
    assert code == 0 and json.loads(out)["ok"] is True  # JSON output stays one document
