"""Issue 20 items 4-6: crafted inputs get a bounded parse or a one-line refusal, never an internal error.

4: a Tuya KV value or an app-embedded user_param_key nested 1,400 levels deep (analyze, analyze -p,
   config set --from-tuya, doctor --dump). 5: boot-log lines of a megabyte parse in linear time (a
   quadratic pattern would need hours here; the per-test timeout fails it). 6: doctor --dump reads its
   file like every other input (size cap, no FIFO or device).
"""

from __future__ import annotations

import os

import pytest
from bkbench.core.analysis import tuya_kv
from bkbench.core.analysis.app_config import find_app_config
from bkbench.core.analysis.bootlog import parse_boot_log
from bkbench.core.cli.main import main
from bkbench.core.demo_image import demo_flash, kv_region
from bkbench.core.layout import TUYA_KV_OFFSET
from simhelpers import sim_url

DEEP = 1400  # deeper than Python's default recursion limit (1000)


def _with_kv(values: dict[str, bytes]) -> bytes:
    flash = bytearray(demo_flash())
    kv = kv_region(values)
    flash[TUYA_KV_OFFSET : TUYA_KV_OFFSET + len(kv)] = kv
    return bytes(flash)


def _no_internal_error(capsys) -> str:
    out = capsys.readouterr()
    assert "internal error" not in out.err and "Traceback" not in out.err
    return out.out + out.err


def test_deep_values_are_kept_as_text_and_named() -> None:
    deep_json = "[" * DEEP + "]" * DEEP
    assert tuya_kv.decode_value("gw_di", deep_json.encode()) == deep_json
    with pytest.raises(ValueError, match="levels deep"):
        tuya_kv.parse_user_param_key("{a:" + "[" * DEEP + "]" * DEEP + "}")
    assert tuya_kv.parse_user_param_key("{a:" + "[" * 5 + "1" + "]" * 5 + "}") == {"a": [[[[[1]]]]]}
    assert tuya_kv.nesting_depth('{"a":"[[[[","b":[{}]}') == 3  # brackets inside strings do not count
    plain = b"\0" * 64 + b"{Jsonver:1.1.8,module:" + b"[" * DEEP + b"]" * DEEP + b",rl1_pin:6}\0"
    assert find_app_config(plain) is None


@pytest.mark.parametrize("key,value", [
    ("user_param_key", b"{a:" + b"[" * DEEP + b"]" * DEEP + b"}"),
    ("gw_di", b"[" * DEEP + b"]" * DEEP),
], ids=["user_param_key", "json"])
def test_deep_kv_value_in_every_command(key, value, tmp_path, capsys) -> None:
    dump = tmp_path / "deep.bin"
    dump.write_bytes(_with_kv({key: value}))
    assert main(["analyze", str(dump), "--json"]) == 0
    assert f"value of '{key}' nests {DEEP + (key == 'user_param_key')} levels deep" in _no_internal_error(capsys)
    rc = main(["config", "set", str(dump), "--from-tuya", "ssid=x", "-o", str(tmp_path / "out.bin")])
    assert rc in (0, 1)
    _no_internal_error(capsys)
    if key != "user_param_key":
        return  # the live commands run the same analysis: one case is enough
    with sim_url("BK7231N", dump.read_bytes()) as (url, _dev):
        assert main(["doctor", "-p", url, "--dump", str(dump), "--seconds", "2", "-q"]) in (0, 1)
        _no_internal_error(capsys)
        assert main(["analyze", "-p", url, "-q", "--json"]) == 0
        _no_internal_error(capsys)


@pytest.mark.timeout(120)
def test_a_megabyte_boot_log_line_parses_in_linear_time() -> None:
    mb = 1 << 20
    lines = [
        "< TUYA IOT SDK V:" + "a" * mb,  # 32 KB of this took 3.9 s with the quadratic pattern
        "< TUYA IOT SDK V:a " * (mb // 19),
        "< BUILD AT:" + "a" * mb,
        "OpenBK" * (mb // 6),
        "mac 1:2:3:4:5:6" + " " * mb,
        "json cfg:[" + ",a:1" * (mb // 4),
        "] oem_" + "a" * mb,
        "firmware compiled at Jan " + " " * mb,
        "serial_no:" + "0" * mb,
    ]
    for line in lines:
        parse_boot_log(line + "\n< TUYA IOT SDK V:2.3.1 BS:40.00_PT:2.2 >\n")
    assert parse_boot_log("< TUYA IOT SDK V:2.3.1 BS:40.00_PT:2.2_LAN:3.3 >").sdk_version == "2.3.1"
    assert parse_boot_log("< TUYA IOT SDK V:2.3.1 cut off").sdk_version is None  # no closing '>'


def test_doctor_dump_is_read_like_every_other_input(tmp_path, capsys) -> None:
    big = tmp_path / "sparse.bin"
    with open(big, "wb") as fh:
        fh.truncate(2 << 30)  # 2 GiB, sparse: it used to be read whole
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, words in ((big, "larger than any flash dump"), (fifo, "not a regular file"),
                        (tmp_path / "missing.bin", "no such file")):
        assert main(["doctor", "-p", "sim://bk7231n", "--dump", str(path)]) == 1
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
