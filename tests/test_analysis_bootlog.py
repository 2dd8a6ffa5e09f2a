"""Boot log parsing on the real fixture log (interleaved UART output)."""

from __future__ import annotations

from bkbench.core.analysis.bootlog import extract_json_cfg, parse_boot_log
from bkbench.core.analysis.tuya_pins import map_user_param_key

LOG = "bk7231n-lspa9-gray-t34-bl0937.log"


def test_banners_and_pins_from_fixture_log(fixtures_dir) -> None:
    log = parse_boot_log((fixtures_dir / "bootlogs" / LOG).read_text())
    assert log.bootloader == "BK7231N_1.0.1" and log.chip == "BK7231N"
    assert log.flash_id == 0xEB6015
    assert log.sdk_version == "2.3.3"
    assert (log.app, log.app_version) == ("oem_bk7231n_control_switch", "1.3.16")
    assert log.mac == "b8:06:0d:2a:01:4b"  # "mac b8: 6: d:2a: 1:4b" and serial_no:b8060d2a014b
    cfg = log.json_cfg
    assert cfg["module"] == "T34" and cfg["chip_type"] == 0 and cfg["jv"] == "110.0.3"
    pins = {g: (p.role, p.channel) for g, p in map_user_param_key(cfg).pins.items()}
    # sel_pin_pin:8 ele_pin:6 vi_pin:7 rl1_pin:24 bt1_pin:16 total_bt_pin:26 netled1_pin:28 (lv 0)
    assert pins == {8: ("BL0937SEL", 0), 6: ("BL0937CF", 0), 7: ("BL0937CF1", 0), 24: ("Rel", 1),
                    16: ("Btn", 1), 26: ("Btn_Tgl_All", 0), 28: ("WifiLED_n", 0)}


def test_interleaved_json_cfg_is_rejoined() -> None:
    text = "x json cfg:[,rl1_pin:26,rl1_\n[other task] hello\n_lv:1,crc:5,}]\n"
    cfg, _raw, problems = extract_json_cfg(text)
    assert cfg["rl1_pin"] == 26 and cfg["crc"] == 5
    assert problems  # the damaged item is reported, not silently invented


def test_no_json_cfg() -> None:
    assert extract_json_cfg("V:BK7231N_1.0.1\n")[0] is None


def test_analyze_reads_a_log_saved_with_ctrl_s(tmp_path, capsys) -> None:
    """The workbench saves its log with a time stamp before each line (issue 22: `analyze` of such a file
    found no chip, bootloader or MAC)."""
    import json

    from bkbench.core.cli.main import main
    from bkbench.core.demo_image import DEMO_MAC, boot_log
    from bkbench.tui.widgets.seriallog import LogLine, SerialLog

    view = SerialLog()
    view.lines.extend(LogLine(i, 1_765_000_000.0 + i / 7, text, b"") for i, text in enumerate(boot_log().splitlines()))
    path = tmp_path / "serial-20261207-120000.log"
    path.write_text(view.plain_text() + "\n")  # what ctrl+s writes (secrets masked)
    assert path.read_text().startswith(view.plain_text()[:14])  # HH:MM:SS.mmm before each line
    assert main(["analyze", "--json", str(path)]) == 0
    got = json.loads(capsys.readouterr().out)
    assert (got["chip"], got["bootloader"], got["mac"]) == ("BK7231N", "BK7231N_1.0.1", DEMO_MAC)
    assert got["json_cfg"]["rl1_pin"] == 15
