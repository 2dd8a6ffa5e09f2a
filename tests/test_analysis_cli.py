"""`bkbench analyze` JSON contract on a fixture dump and on the boot log."""

from __future__ import annotations

import argparse
import json

import pytest
from bkbench.core.cli import analyze
from bkbench.core.errors import BkError


def _run(capsys, **kw) -> dict:
    args = argparse.Namespace(json=True, port=None, show_secrets=False, **kw)
    assert analyze.run(args) == 0
    return json.loads(capsys.readouterr().out)


def test_analyze_json_contract(fixtures_dir, capsys) -> None:
    r = _run(capsys, file=str(fixtures_dir / "dumps" / "bk7231n-lspa9-clone-bl0937-plug.bin"))
    for key in ("chip", "bootloader", "mac", "firmware", "partitions"):
        assert key in r
    assert "user_param_key" in r["tuya"]["keys"]
    assert r["tuya"]["user_param_key"]["rl1_pin"] == 26 and r["tuya"]["user_param_key"]["jv"] == "1.0.5"
    assert r["openbk"]["pins"]["24"]["role"] == "BL0937SEL"
    assert r["tuya"]["values"]["gw_wsm"] == "<secret>"


def test_analyze_bootlog(fixtures_dir, capsys) -> None:
    r = _run(capsys, file=str(fixtures_dir / "bootlogs" / "bk7231n-lspa9-gray-t34-bl0937.log"))
    assert r["source"] == "bootlog" and r["openbk"]["pins"]["24"]["role"] == "Rel"


def test_analyze_without_file_or_port_is_a_clear_error() -> None:
    with pytest.raises(BkError, match="FILE"):
        analyze.run(argparse.Namespace(json=False, port=None, show_secrets=False, file=None))
