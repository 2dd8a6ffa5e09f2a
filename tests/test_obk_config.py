"""OpenBK config sector: layout/checksum per new_pins.h mainConfig_t + new_cfg.c CFG_CalcChecksum."""

from __future__ import annotations

import argparse
import struct

import pytest
from bkbench.core.analysis.dump import analyze_dump
from bkbench.core.analysis.obk_config import ObkConfig, parse_assignment, tiny_crc8
from bkbench.core.cli import config as config_cli
from bkbench.core.errors import BkError


def test_tiny_crc8_is_dallas_maxim() -> None:
    assert tiny_crc8(b"123456789") == 0xA1  # CRC-8/MAXIM check value


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
    assert ObkConfig.parse(body + b"\xff" * (4096 - 2016)).version == 3


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
