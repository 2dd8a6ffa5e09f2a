"""Dump analysis on every real fixture dump: expectations stated per device.

MACs were read by hand from the RF/TLV sector (tag 0x11111102 at +0x1C, value at +0x24); chips and
bootloaders are those of fixtures/README.md; SDK versions are the `< TUYA IOT SDK V:` banners.
"""

from __future__ import annotations

import pytest
from bkbench.core.analysis import beken_code
from bkbench.core.analysis.dump import analyze_dump, identify_firmware

EXPECT = {
    # file: (chip, bootloader, mac, sdk, rotated, {gpio: (role, channel)}, meter)
    "bk7231n-lspa9-clone-bl0937-plug.bin": (
        "BK7231N", "bl_bk7231n 1.0.1", "1c:90:ff:f7:c9:34", "2.3.3", 0,
        {24: ("BL0937SEL", 0), 7: ("BL0937CF", 0), 6: ("BL0937CF1", 0), 26: ("Rel", 1), 10: ("Btn", 1),
         8: ("WifiLED_n", 0)}, "BL0937"),
    "bk7231n-mirabella-genio-i003632-plug.bin": (
        "BK7231N", "bl_bk7231n 1.0.1", "38:1f:8d:1e:74:68", "2.3.1", 0,
        {6: ("Rel", 1), 8: ("LED", 1), 26: ("WifiLED", 0), 7: ("Btn_Tgl_All", 0)}, None),
    "bk7231n-ap-smt-breaker02-relay.bin": (
        "BK7231N", "bl_bk7231n 1.0.1", "cc:8c:bf:3a:7b:fc", "2.3.3", 0,
        {6: ("Rel", 1), 24: ("WifiLED_n", 0), 8: ("Btn_Tgl_All", 0), 26: ("TglChanOnTgl", 1)}, None),
    "bk7231n-elegrp-dpr10-tuyamcu-dimmer.bin": (
        "BK7231N", "bl_bk7231n 1.0.1", "fc:67:1f:6f:1f:76", "2.3.1", 0, {}, None),
    "bk7231t-feit-br30-rgbw-bulb.bin": (
        "BK7231T", "bk7231s 1.0.5", "10:d5:61:77:4a:ac", "1.0.8", 0,
        {6: ("PWM", 0), 26: ("PWM", 1), 24: ("PWM", 2), 7: ("PWM", 3), 8: ("PWM", 4)}, None),
    "bk7231t-globe-37783-rgbct-bulb.bin": (
        "BK7231T", "bk7231s 1.0.3", "68:57:2d:b3:24:43", "2.0.0", 0,
        {26: ("SM2135DAT", 0), 8: ("SM2135CLK", 0)}, None),
    "bk7231t-led-moon-cct-rotated-0x11000.bin": (
        "BK7231T", "bk7231s 1.0.5", "50:8a:06:ae:1b:4d", "1.0.8", 0x11000,
        {7: ("PWM", 3), 6: ("PWM", 4)}, None),
}  # fmt: skip


@pytest.fixture(scope="module")
def reports(fixtures_dir):
    return {n: analyze_dump((fixtures_dir / "dumps" / n).read_bytes()) for n in EXPECT}


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_dump_identity(reports, name: str) -> None:
    chip, boot, mac, sdk, rotated, pins, meter = EXPECT[name]
    a = reports[name]
    j = a.to_json()
    assert j["chip"] == chip
    assert j["bootloader"]["name"] == boot
    assert j["mac"] == mac
    assert j["rotated"] == rotated
    assert j["flash_size"] == 0x200000
    assert j["firmware"]["kind"] == "tuya" and j["firmware"]["sdk_version"] == sdk
    got = {int(g): (p["role"], p["channel"]) for g, p in j["openbk"]["pins"].items()}
    assert got == pins
    assert (a.mapping.meter if a.mapping else None) == meter
    parts = {p["kind"]: p["status"] for p in j["partitions"]}
    assert parts["app"] == "Tuya app"
    assert parts["tuya_kv"].startswith("Tuya vault")
    assert parts["rf"] == f"TLV, MAC {mac}"
    assert "user_param_key" in j["tuya"]["keys"] or name.endswith("tuyamcu-dimmer.bin")


def test_bl0937_plug_warns_about_rx1(reports) -> None:
    m = reports["bk7231n-lspa9-clone-bl0937-plug.bin"].mapping
    assert any("P10" in w and "RX1" in w for w in m.warnings)
    tpl = m.template(chip="BK7231N")
    assert tpl["pins"]["24"] == "BL0937SEL;0" and tpl["pins"]["26"] == "Rel;1"


def test_tuyamcu_dimmer_reported_with_baud(reports) -> None:
    a = reports["bk7231n-elegrp-dpr10-tuyamcu-dimmer.bin"]
    j = a.to_json()
    assert j["tuya"]["user_param_key"] is None
    assert j["tuya"]["baud_cfg"] == 9600
    assert j["openbk"]["mapping"]["kind"] == "tuyamcu"
    assert "tuyaMcu_setBaudRate 9600" in a.mapping.commands
    assert "startDriver TuyaMCU" in a.mapping.commands


def test_i2c_bulb_startup_commands(reports) -> None:
    m = reports["bk7231t-globe-37783-rgbct-bulb.bin"].mapping
    # iicr:2 iicg:1 iicb:0 iicc:4 iicw:3, campere:20 wampere:50 in its user_param_key.
    assert m.commands == ["SM2135_Current 20 50", "LED_Map 2 1 0 4 3"]


def test_secrets_masked_in_json(reports, fixtures_dir) -> None:
    a = reports["bk7231n-lspa9-clone-bl0937-plug.bin"]
    masked = a.to_json()["tuya"]["values"]
    assert masked["gw_wsm"] == "<secret>"
    assert masked["gw_bi"]["psk_key"] == "<secret>" and masked["gw_bi"]["auth_key"] == "<secret>"
    shown = a.to_json(show_secrets=True)["tuya"]["values"]
    assert shown["gw_bi"]["psk_key"] != "<secret>"  # compared, never printed


def test_kv_region_only_file(fixtures_dir) -> None:
    a = analyze_dump((fixtures_dir / "dumps" / "bk7231t-pc44ha-tuya-kv-region-only.bin").read_bytes())
    j = a.to_json()
    assert j["chip"] is None
    got = {int(g): p["role"] for g, p in j["openbk"]["pins"].items()}
    # chip_type:1 (HLW8012), sel_pin_lv:0 -> inverted SEL; led1_lv:0 -> LED_n on P11 (TX1).
    assert got[24] == "BL0937SEL_n" and got[7] == "BL0937CF" and got[8] == "BL0937CF1"
    assert got[11] == "LED_n" and got[26] == "Rel"
    assert a.mapping.meter == "HLW8012"
    assert any("P11" in w for w in a.mapping.warnings)


def _openbk_plain_app(fixtures_dir, chip: str) -> bytes:
    """Plaintext app of the OpenBK OTA fixture: UG wrapper -> RBL -> AES-256-CBC -> gzip (PROTOCOL 8)."""
    import zlib

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    ug = (fixtures_dir / "firmware" / f"OpenBeken-v1.18.219_bk7231{chip}.ug.bin").read_bytes()
    body = ug[ug.index(b"RBL\0") + 96 :]
    body = body[: len(body) // 16 * 16]
    dec = Cipher(algorithms.AES(b"0123456789ABCDEF" * 2), modes.CBC(b"0123456789ABCDEF")).decryptor()
    return zlib.decompressobj(31).decompress(dec.update(body))


def test_openbk_app_identified_after_flashing(fixtures_dir) -> None:
    plain = _openbk_plain_app(fixtures_dir, "n")
    assert identify_firmware(plain)["version"] == "1.18.219"
    # Put it into a real N dump the way the chip stores it (encrypted + CRC16) and analyse that.
    dump = bytearray((fixtures_dir / "dumps" / "bk7231n-mirabella-genio-i003632-plug.bin").read_bytes())
    phys = beken_code.encrypt_physical(plain, 0x11000)
    dump[0x11000 : 0x11000 + 0x119000] = b"\xff" * 0x119000
    dump[0x11000 : 0x11000 + len(phys)] = phys
    fw = analyze_dump(bytes(dump)).firmware
    assert fw == {"kind": "openbk", "name": "OpenBK7231N", "version": "1.18.219", "build": fw["build"]}
    assert fw["build"].endswith("2025 18:05:53")
