"""OpenBK config sector: layout/checksum per new_pins.h mainConfig_t + new_cfg.c CFG_CalcChecksum.

The same facts are judged against the real OpenBK builds in tests/test_obk_realcode.py; these tests pin
what needs no emulator (the BK7252 layout has no fixture build, so its offsets rest on new_pins.h).
"""

from __future__ import annotations

import argparse
import json
import struct

import pytest
from bkbench.core.analysis.dump import analyze_dump
from bkbench.core.analysis.obk_config import (
    LAYOUT_48,
    ObkConfig,
    layout_hint,
    parse_assignment,
    tiny_crc8,
    tiny_crc8_unsigned,
)
from bkbench.core.cli import config as config_cli
from bkbench.core.cli.main import main
from bkbench.core.config_file import check_sector_for
from bkbench.core.errors import BkError


def test_tiny_crc8_is_the_signed_char_one_of_the_beken_builds() -> None:
    # Tiny_CRC8 shifts a signed char (-fsigned-char): 0x63, where CRC-8/MAXIM (logical shift) gives 0xA1.
    assert tiny_crc8(b"123456789") == 0x63
    assert tiny_crc8_unsigned(b"123456789") == 0xA1
    assert tiny_crc8(b"") == 0 and tiny_crc8(b"\x80") == tiny_crc8_unsigned(b"\x80")  # bit 7 never set yet


def test_built_sector_layout_and_checksum() -> None:
    cfg = ObkConfig.new(bytes.fromhex("c8478c112233"))
    for a in ("ssid=Home", "pass=hunter22", "ssid2=Backup", "mqtt_host=192.168.1.2", "mqtt_port=1884",
              "mqtt_user=u", "mqtt_pass=p", "mqtt_client=plug1", "mqtt_group=grp", "short_name=plug1",
              "long_name=Kitchen plug", "flag.10=1", "flag.37=1", "pin.26=Rel;1", "P10=Btn;1",
              "startup=startDriver BL0937"):
        parse_assignment(cfg, a)
    sec = cfg.sector()
    assert len(sec) == 4096 and sec[:3] == b"CFG" and sec[3584:] == b"\xff" * 512
    assert struct.unpack_from("<i", sec, 4)[0] == 5
    assert sec[3] == tiny_crc8(sec[4:3584])
    # Offsets as commented in mainConfig_t.
    assert sec[0x14:0x18] == b"Home" and struct.unpack_from("<i", sec, 0x294)[0] == 1884
    assert sec[0xC00:0xC06] == b"Backup" and sec[0x5E0:0x5E6] == b"startD"
    assert sec[0x33E + 26] == 1 and sec[0x35E + 26] == 1  # roles[26] = IOR_Relay, channels[26] = 1
    assert sec[0x33E + 10] == 3  # IOR_Button
    assert sec[0x37E + 10] == 0 and sec[0x39E] == 0  # channels2[10], channelTypes[0]
    assert struct.unpack_from("<I", sec, 8)[0] == 1 << 10 and struct.unpack_from("<I", sec, 12)[0] == 1 << 5
    back = ObkConfig.parse(sec)
    assert back.sector() == sec
    assert back.get("wifi_ssid2") == "Backup" and back.get("mqtt_userName") == "u"
    assert {g: (p.role, p.channel) for g, p in back.pins().items()} == {26: ("Rel", 1), 10: ("Btn", 1)}
    assert back.to_json()["wifi_pass"] == "<secret>"


def test_bad_checksum_and_limits() -> None:
    sec = bytearray(ObkConfig.new().sector())
    sec[0x20] ^= 1
    with pytest.raises(BkError):
        ObkConfig.parse(bytes(sec))
    with pytest.raises(BkError):
        ObkConfig.parse(b"\xff" * 4096)
    cfg = ObkConfig.new()
    with pytest.raises(BkError):
        cfg.set("wifi_ssid", "x" * 64)
    with pytest.raises(BkError):
        parse_assignment(cfg, "pin.5=NoSuchRole")


def test_version3_checksum_covers_2016_bytes() -> None:
    cfg = ObkConfig.new()
    cfg.set("version", 3)
    body = cfg.struct_bytes()
    assert len(body) == 2016 and body[3] == tiny_crc8(body[4:2016])
    tail = bytes(range(256)) * 9
    sector = body + tail[: 4096 - 2016]
    back = ObkConfig.parse(sector)
    assert back.version == 3
    # OpenBK reads 3584 bytes whatever the version: the flash after 0x7E0 is what it runs with
    assert back.get("disable_web_server") == sector[0xCBB] != 0
    assert back.get("wifi_ssid2") == "" and back.get("webPassword") == ""  # cleared by OpenBK's loader
    back.set("mqtt_host", "10.0.0.9")
    assert back.sector()[2016:] == sector[2016:]  # an edit inside the v3 struct keeps the tail
    back.set("wifi_ssid2", "late")  # past it: saved as version 5, the way OpenBK saves it
    out = back.sector()
    assert back.version == 5 and out[3] == tiny_crc8(out[4:3584]) and out[0xCBB] == sector[0xCBB]
    assert ObkConfig.parse(out).get("wifi_ssid2") == "late"


def test_new_config_has_openbks_defaults() -> None:
    mac = bytes.fromhex("c8478c112233")
    n, t = ObkConfig.new(mac, "BK7231N"), ObkConfig.new(mac, "BK7231T")
    assert n.get("longDeviceName") == "OpenBK7231N_8C112233" and t.get("longDeviceName") == "OpenBK7231T_8C112233"
    assert n.get("shortDeviceName") == n.get("mqtt_clientId") == "obk8C112233"
    assert (n.get("mqtt_group"), t.get("mqtt_group")) == ("bekens_n", "bekens_t")
    assert ObkConfig.new(mac, "BK7238").get("mqtt_group") == "bekens_8s"
    assert ObkConfig.new(mac, "BK7231U").get("mqtt_group") == "bekens_u"
    assert n.get("mqtt_userName") == "homeassistant" and n.get("mqtt_pass") == "qqqqqqqqqq"
    assert n.get("ping_host") == "192.168.0.1" and n.get("genericFlags") == 1024 and n.get("mqtt_port") == 1883
    assert struct.unpack_from("<6f", n.sector(), 0x53C) == pytest.approx((1, 1, 1, 2.2, 0.1, 0.1))


def test_bk7252_uses_the_48_pin_layout() -> None:
    cfg = ObkConfig.new(bytes(6), "BK7252")
    assert cfg.layout is LAYOUT_48 and cfg.get("mqtt_group") == "bekens_52s"
    cfg.set_pin(39, "Rel", 2, 3)
    cfg.set_pin(0, "PWM", 1)
    cfg.set("ntpServer", "ntp.lan")
    cfg.set("buttonLongPress", 11)
    cfg.set("loggerFlags", 7)
    sec = cfg.sector()
    assert sec[0x33E + 39] == 1 and sec[0x36E + 39] == 2 and sec[0x39E + 39] == 3 and sec[0x33E] == 7
    assert sec[0x4A8:0x4AF] == b"ntp.lan" and sec[0x4E8:0x4EB] == bytes([3, 11, 5])
    assert struct.unpack_from("<i", sec, 0x4F0)[0] == 7
    assert sec[0x554:0x55E] == b"bekens_52s"  # from 0x527 on the offsets are the 32-pin layout's
    assert layout_hint(sec) == "BK7252"  # a bare sector tells its layout by OpenBK's default names
    back = ObkConfig.parse(sec)
    assert back.chip == "BK7252" and back.pins()[39].role == "Rel" and back.get("ntpServer") == "ntp.lan"
    with pytest.raises(BkError, match="P40"):
        cfg.set_pin(40, "Rel")
    assert ObkConfig.new(bytes(6), "BK7252N").layout is LAYOUT_48


def test_role_names_are_openbks_current_ones_old_names_still_read() -> None:
    cfg = ObkConfig.new()
    for assignment in ("pin.1=CHT83XX_SDA", "pin.2=cht8305_sck", "pin.3=HLW_8112_SCSN", "pin.4=hlw8112_scsn",
                       "pin.5=Btn_pd_n;2", "pin.7=bl0939_miso", "P8=shutterB;1", "p9=rel;3"):
        parse_assignment(cfg, assignment)
    pins = {g: (p.role, p.channel) for g, p in cfg.pins().items()}
    assert pins == {1: ("CHT83XX_SDA", 0), 2: ("CHT83XX_SCK", 0), 3: ("HLW_8112_SCSN", 0),
                    4: ("HLW_8112_SCSN", 0), 5: ("Btn_pd_n", 2), 7: ("BL0939_MISO", 0), 8: ("ShutterB", 1),
                    9: ("Rel", 3)}
    assert cfg.sector()[0x33E + 7] == 98 and cfg.sector()[0x33E + 5] == 90


@pytest.mark.parametrize("chip", ["BK7231N", "BK7231T", "BK7231U", "BK7238", None])
def test_pins_the_chip_never_applies_are_refused_in_one_line(chip) -> None:
    cfg = ObkConfig.new(None, chip)
    cfg.set_pin(28, "Rel", 1)
    for gpio in (29, 31, 39, -1):
        with pytest.raises(BkError) as err:
            parse_assignment(cfg, f"pin.{gpio}=Rel;1")
        assert "\n" not in str(err.value) and "P0..P28" in str(err.value)
    with pytest.raises(BkError, match="twice"):
        cfg.set_pins_text("P6=Rel;1 P6=Btn;1")
    with pytest.raises(BkError, match="P30"):
        cfg.set_pins_text("P6=Rel;1, P30=Btn;1")
    assert set(cfg.pins()) == {28}  # a refused pins line changes nothing
    cfg.set_pins_text("P6=Rel;1 10=btn;1;2")
    assert cfg.pins_text() == "P6=Rel;1 P10=Btn;1;2"


def test_a_stored_pin_openbk_ignores_is_shown_apart(tmp_path, capsys) -> None:
    cfg = ObkConfig.new(None, "BK7231N")
    cfg.raw[0x33E + 30] = 1  # P30 = Rel, written by some other tool
    path = tmp_path / "cfg.bin"
    path.write_bytes(cfg.sector())
    assert main(["config", "show", str(path), "--chip", "BK7231N"]) == 0
    out = capsys.readouterr().out
    assert "P30 are stored but OpenBK never applies them" in out
    assert not [ln for ln in out.splitlines() if ln.startswith("P30")]  # not listed among the pins it applies


def test_old_unsigned_checksum_is_named_not_called_good(tmp_path) -> None:
    sec = bytearray(ObkConfig.new(bytes(6), "BK7231N").sector())
    sec[3] = tiny_crc8_unsigned(bytes(sec[4:3584]))
    with pytest.raises(BkError, match="older bkbench"):
        ObkConfig.parse(bytes(sec))
    cfg = ObkConfig.parse(bytes(sec), allow_legacy=True)
    assert cfg.legacy_crc and "OpenBK rejects" in cfg.to_json()["checksum"]
    assert ObkConfig.parse(cfg.sector()).legacy_crc is False  # re-saved with OpenBK's checksum
    path = tmp_path / "old.bin"
    path.write_bytes(bytes(sec))
    with pytest.raises(BkError, match="older bkbench"):
        check_sector_for(bytes(sec), "BK7231N")  # what Session.write_config checks
    assert main(["config", "write", str(path), "-p", "sim://bk7231n", "--no-backup"]) != 0  # refused before linking


def test_config_set_json_masks_passwords(tmp_path, capsys) -> None:
    path, out = tmp_path / "cfg.bin", tmp_path / "out.bin"
    path.write_bytes(ObkConfig.new().sector())
    assert main(["config", "set", str(path), "pass=hunter22", "mqtt_pass=mq=pw", "wifi_password2=x2",
                 "web_password=w", "ssid=Home", "-o", str(out), "--json"]) == 0
    text = capsys.readouterr().out
    for secret in ("hunter22", "mq=pw", "x2", '"web_password=w"'):
        assert secret not in text
    assert json.loads(text)["set"] == ["pass=<secret>", "mqtt_pass=<secret>", "wifi_password2=<secret>",
                                        "web_password=<secret>", "ssid=Home"]


def test_config_set_on_dump_touches_only_the_config_sector(fixtures_dir, tmp_path) -> None:
    src = fixtures_dir / "dumps" / "bk7231n-lspa9-clone-bl0937-plug.bin"
    out = tmp_path / "edited.bin"
    args = argparse.Namespace(file=str(src), assignments=["ssid=Lab", "mqtt_host=10.0.0.2"],
                              output=str(out), chip=None, new=True, from_tuya=True)
    assert config_cli.run_set(args) == 0
    old, new = src.read_bytes(), out.read_bytes()
    diff = [i for i in range(0, len(old), 4096) if old[i : i + 4096] != new[i : i + 4096]]
    assert diff == [0x1D1000]
    a = analyze_dump(new)
    assert a.obk_config is not None and a.obk_config.get("wifi_ssid") == "Lab"
    pins = {g: (p.role, p.channel) for g, p in a.obk_config.pins().items()}
    assert pins[24] == ("BL0937SEL", 0) and pins[26] == ("Rel", 1)
    assert a.obk_config.get("mac") == bytes.fromhex("1c90fff7c934")  # taken from the TLV
    # and the sector alone round-trips through `config set` with no edits
    sector = tmp_path / "cfg.bin"
    sector.write_bytes(new[0x1D1000:0x1D2000])
    out2 = tmp_path / "cfg2.bin"
    config_cli.run_set(argparse.Namespace(file=str(sector), assignments=["flag.1=0"], output=str(out2),
                                          chip=None, new=False, from_tuya=False))
    assert out2.read_bytes() == sector.read_bytes()


def test_write_config_writes_only_the_chips_config_sector(tmp_path) -> None:
    from bkbench.core.backups import BackupLibrary
    from bkbench.core.session import Session
    from simhelpers import sim_url

    with sim_url("BK7231T") as (url, dev):
        before = bytes(dev.flash.data)
        with Session(url) as s:
            s.connect()
            with pytest.raises(BkError):
                s.write_config(b"\xff" * 4096, backup_library=BackupLibrary(tmp_path / "lib"))
            assert bytes(dev.flash.data) == before
            sector = ObkConfig.new().sector()
            s.write_config(sector, backup_library=BackupLibrary(tmp_path / "lib"))
        after = bytes(dev.flash.data)
    changed = [a for a in range(0, len(after), 0x1000) if after[a:a + 0x1000] != before[a:a + 0x1000]]
    assert changed == [0x1E1000] and after[0x1E1000:0x1E2000] == sector
