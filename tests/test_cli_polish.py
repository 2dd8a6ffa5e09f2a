"""CLI behaviour a new user meets: one library for every command, checks before linking, --json and
help everywhere, human text, hints that name the right file and flag, config on a stock dump,
OTA -> UART conversion. Runs on the built-in demo plug and the simulator (no ../shared needed)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

import pytest
from bkbench.core import demo_image
from bkbench.core.analysis.beken_code import PHYS_BLOCK, decrypt_physical
from bkbench.core.analysis.dump import analyze_dump
from bkbench.core.cli.main import build_parser, main
from bkbench.core.images.rbl import pack_rbl, wrap_ug
from bkbench.core.images.recognize import recognize
from bkbench.core.sim import registry
from simhelpers import temp_env


def run(argv: list[str], **env: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with temp_env(**env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def demo_dump(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "stock.bin"
    path.write_bytes(demo_image.demo_flash())
    return path


@pytest.fixture()
def demo_chip(demo_dump):
    """A simulated BK7231N holding the demo plug's flash, in its bootloader."""
    dev = registry.create_device("BK7231N", dump=demo_dump)
    registry.register("polish", dev)
    yield "sim://@polish", dev
    registry.unregister("polish")


def _leaves(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for p in dict.fromkeys(action.choices.values()):
                yield from _leaves(p)
            return
    yield parser


LEAVES = list(_leaves(build_parser()))


@pytest.mark.parametrize("parser", LEAVES, ids=[p.prog for p in LEAVES])
def test_every_command_has_json_data_dir_description_and_examples(parser) -> None:
    flags = parser._option_string_actions
    assert "--json" in flags and "--data-dir" in flags
    assert parser.description and len(parser.description) > 40
    assert parser.epilog and "examples:" in parser.epilog and "bkbench " in parser.epilog
    if not parser.prog.endswith("simulate"):  # simulate's own options belong to the simulator module
        undocumented = [a.dest for a in parser._actions if a.help is None]
        assert undocumented == []


def test_data_dir_is_one_library_for_every_command(tmp_path, demo_chip) -> None:
    url, _ = demo_chip
    lib = tmp_path / "shared-lib"
    code, out, err = run(["--data-dir", str(lib), "read", "-p", url, "-b", "2000000", "-q"],
                         BKBENCH_DATA_DIR=str(tmp_path / "elsewhere"))
    assert code == 0, err
    saved = list((lib / "backups").glob("*.bin"))
    assert len(saved) == 1 and saved[0].read_bytes() == demo_image.demo_flash()
    assert not (tmp_path / "elsewhere").exists()
    # after the command too, and `backups` sees the same library
    code, out, _ = run(["backups", "--json", "--data-dir", str(lib)], BKBENCH_DATA_DIR=str(tmp_path / "elsewhere"))
    assert code == 0 and [Path(b["path"]) for b in json.loads(out)["backups"]] == saved


def test_read_refuses_an_existing_output_before_touching_the_chip(tmp_path, demo_chip) -> None:
    url, dev = demo_chip
    existing = tmp_path / "mine.bin"
    existing.write_bytes(b"precious")
    rx_before = getattr(dev, "rx_bytes", None)
    code, _, err = run(["read", "-p", url, "-o", str(existing), "-q"])
    assert code == 1 and "exists" in err and existing.read_bytes() == b"precious"
    assert "[link]" not in err and getattr(dev, "rx_bytes", None) == rx_before


def test_an_ota_file_is_converted_and_judged_before_linking(tmp_path) -> None:
    """An OTA package is converted to its UA image, as the picker and `station` do; one that does not hold an
    OpenBK app (no version banner) is refused in one line before the port is touched."""
    ota = tmp_path / "fw.ug.bin"
    ota.write_bytes(wrap_ug(pack_rbl(demo_image.app(), version="9.9.9", timestamp=0), "9.9.9"))
    code, _, err = run(["write", "-p", "/dev/ttyNOPE", str(ota)])
    assert code == 1 and "no such port" not in err
    assert "No OpenBK version banner in this UA image" in err and "Traceback" not in err


def test_dump_of_another_chip_family_names_backups_not_the_wrong_build(tmp_path, demo_dump) -> None:
    registry.register("polish-t", registry.create_device("BK7231T"))
    try:
        code, _, err = run(["write", "-p", "sim://@polish-t", "--no-backup", "-q", str(demo_dump)])
    finally:
        registry.unregister("polish-t")
    assert code == 1 and "BK7231N" in err
    assert "Use the BK7231T build" not in err
    assert "bkbench backups" in err


def test_info_text_is_for_people(demo_chip) -> None:
    url, _ = demo_chip
    code, out, err = run(["info", "-p", url, "-q"])
    assert code == 0, err
    assert "[" not in out and "2 MiB" in out and "02:BD:E0:00:12:31" in out.upper()
    assert "bkbench demo bootloader" in out
    assert "921,600 baud" in out  # the rate the session ran at, not the 115200 it falls back to on close
    code, out, _ = run(["info", "-p", url, "-q", "--json", "-b", "2000000"])
    assert json.loads(out)["flash_size"] == 0x200000 and json.loads(out)["baud"] == 2000000


def test_config_set_on_a_stock_dump_creates_the_config_and_says_so(tmp_path, demo_dump) -> None:
    out_path = tmp_path / "obk.bin"
    code, out, err = run(["config", "set", str(demo_dump), "ssid=Lab", "pass=pw12345678", "--from-tuya",
                          "-o", str(out_path)])
    assert code == 0, err
    assert "no OpenBK config" in out and "created" in out
    new = out_path.read_bytes()
    old = demo_dump.read_bytes()
    assert [i for i in range(0, len(old), 4096) if old[i : i + 4096] != new[i : i + 4096]] == [0x1D1000]
    cfg = analyze_dump(new).obk_config
    assert cfg is not None and cfg.get("wifi_ssid") == "Lab"
    assert cfg.get("mac") == bytes.fromhex(demo_image.DEMO_MAC.replace(":", ""))
    assert {g: p.role for g, p in cfg.pins().items()}[15] == "Rel"
    # --json, and `config show` of the result with an explicit --chip
    code, out, _ = run(["config", "set", str(out_path), "mqtt_host=10.0.0.2", "-o", str(tmp_path / "b.bin"),
                        "--json"])
    assert code == 0 and json.loads(out)["created"] is False
    code, out, _ = run(["config", "show", "--chip", "bk7231n", "--json", str(tmp_path / "b.bin")])
    assert code == 0 and json.loads(out)["mqtt_host"] == "10.0.0.2"


def test_config_set_never_writes_into_the_library(tmp_path, demo_dump) -> None:
    lib = tmp_path / "data"
    (lib / "backups").mkdir(parents=True)
    target = lib / "backups" / "x.bin"
    code, _, err = run(["config", "set", str(demo_dump), "ssid=x", "-o", str(target)], BKBENCH_DATA_DIR=str(lib))
    assert code == 1 and "library" in err and not target.exists()


def test_image_convert_turns_an_ota_package_into_the_uart_image(tmp_path) -> None:
    app = demo_image.app()
    ota = tmp_path / "fw.rbl"
    ota.write_bytes(pack_rbl(app, version="1.2.3", timestamp=0))
    out = tmp_path / "fw-uart.bin"
    code, text, err = run(["image", "convert", str(ota), "-o", str(out)])
    assert code == 0, err
    assert "unpacked" in text and "0x11000" in text and f"bkbench write -p PORT {out}" in text
    data = out.read_bytes()
    info = recognize(data, out.name)
    assert info.format == "ua" and info.write_offset == 0x11000
    # judged independently: decrypting the image at its flash address gives the app back
    whole = len(data) // PHYS_BLOCK * PHYS_BLOCK
    assert decrypt_physical(data[:whole], 0x11000)[: len(app)] == app
    # and the result is refused as an input of another conversion, an existing output is kept
    code, _, err = run(["image", "convert", str(out), "-o", str(tmp_path / "again.bin")])
    assert code == 1 and "not an OTA package" in err
    code, _, err = run(["image", "convert", str(ota), "-o", str(out), "--json"])
    assert code == 1 and "exists" in err


def test_data_dir_does_not_leak_into_the_next_command(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BKBENCH_DATA_DIR", str(tmp_path / "default"))
    code, out, _ = run(["--data-dir", str(tmp_path / "once"), "backups", "--json"])
    assert code == 0 and json.loads(out)["library"] == str(tmp_path / "once" / "backups")
    code, out, _ = run(["backups", "--json"])
    assert json.loads(out)["library"] == str(tmp_path / "default" / "backups")


def test_config_made_from_a_stock_dump_lands_only_in_its_sector(tmp_path, demo_dump, demo_chip) -> None:
    url, dev = demo_chip
    made = tmp_path / "obk.bin"
    assert run(["config", "set", str(demo_dump), "ssid=Lab", "--from-tuya", "-o", str(made)])[0] == 0
    code, out, err = run(["config", "write", str(made), "-p", url, "-b", "2000000", "-q", "--json",
                          "--data-dir", str(tmp_path / "lib")])
    assert code == 0, err
    assert json.loads(out) == {"ok": True, "chip": "BK7231N", "offset": 0x1D1000, "length": 4096}
    flash = dev.flash.read(0, 0x200000)
    stock = demo_dump.read_bytes()
    assert flash[0x1D1000:0x1D2000] == made.read_bytes()[0x1D1000:0x1D2000]
    assert flash[:0x1D1000] == stock[:0x1D1000] and flash[0x1D2000:] == stock[0x1D2000:]
    assert list((tmp_path / "lib" / "backups").glob("*.bin"))  # the stock flash was backed up first


def test_ports_without_a_usb_adapter_has_a_header_and_says_so(monkeypatch, capsys):
    """A PC's lone /dev/ttyS0 (issue 22): one bare row read like an adapter. Now a header, and one line
    saying no USB adapter was found; with an adapter, no such line."""
    from bkbench.core.cli import device
    from bkbench.core.ports import PortInfo

    uart = PortInfo(device="/dev/ttyS0", description="n/a", kind="other")
    monkeypatch.setattr(device, "list_ports", lambda: [uart])
    assert main(["ports", "--no-probe"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["port", "adapter", "VID:PID", "description"]
    assert out[1].split() == ["/dev/ttyS0", "-", "-"]
    assert out[-1].startswith("no USB serial adapter found") and len(out) == 3
    ch340 = PortInfo(device="/dev/ttyUSB0", description="USB Serial", adapter="CH340", vid=0x1A86, pid=0x7523)
    monkeypatch.setattr(device, "list_ports", lambda: [uart, ch340])
    assert main(["ports", "--no-probe"]) == 0
    out = capsys.readouterr().out
    assert "CH340" in out and "no USB serial adapter" not in out


def test_read_names_the_backup_once(tmp_path, demo_chip) -> None:
    """Issue 22: `read` printed the backup path twice (a notice on stderr, the result on stdout)."""
    url, _ = demo_chip
    code, out, err = run(["--data-dir", str(tmp_path), "read", "-p", url, "-b", "2000000"])
    assert code == 0, err
    (saved,) = (tmp_path / "backups").glob("*.bin")
    assert out.strip() == f"backup saved: {saved}"
    assert str(saved) not in err and "[backup]" in err  # the progress is still there
