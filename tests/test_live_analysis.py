"""analyze --port and config show/write --port against the simulator: only the config sector changes."""

from __future__ import annotations

import json

import pytest
from bkbench.core.cli.main import main
from simhelpers import sim_url

N_DUMP = "bk7231n-lspa9-clone-bl0937-plug.bin"


@pytest.fixture
def datadir(tmp_path, monkeypatch):
    monkeypatch.setenv("BKBENCH_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def test_analyze_live_chip_matches_file_analysis(fixtures_dir, datadir, capsys):
    path = fixtures_dir / "dumps" / N_DUMP
    assert main(["analyze", str(path), "--json"]) == 0
    offline = json.loads(capsys.readouterr().out)
    with sim_url("BK7231N", path) as (url, _):
        assert main(["analyze", "--port", url, "--json", "-q"]) == 0
    live = json.loads(capsys.readouterr().out)
    assert live["chip"] == offline["chip"] == "BK7231N"
    assert live["mac"] == offline["mac"] and live["openbk"]["pins"] == offline["openbk"]["pins"]
    assert (datadir / "data" / "backups").is_dir() and live["backup"].endswith(".bin")


def test_config_write_touches_only_the_config_sector(fixtures_dir, datadir, capsys):
    path = fixtures_dir / "dumps" / N_DUMP
    original = path.read_bytes()
    edited = datadir / "edited.bin"
    assert main(["config", "set", str(path), "--new", "--from-tuya", "ssid=HomeNet", "pass=s3cret-pass",
                 "mqtt_host=192.0.2.10", "-o", str(edited)]) == 0
    with sim_url("BK7231N", original) as (url, dev):
        assert main(["config", "write", str(edited), "--port", url, "-q", "--no-backup"]) == 0
        after = bytes(dev.flash.data)
        assert main(["config", "show", "--port", url, "--json", "-q"]) == 0
    capsys.readouterr()
    cfg_off = 0x1D1000
    assert after[:cfg_off] == original[:cfg_off] and after[cfg_off + 0x1000 :] == original[cfg_off + 0x1000 :]
    assert after[cfg_off : cfg_off + 0x1000] == edited.read_bytes()[cfg_off : cfg_off + 0x1000]
    assert after[cfg_off : cfg_off + 3] == b"CFG"
