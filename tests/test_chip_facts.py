"""Every chip fact lives in core/chips.py and core/layout.py: one baud list, one size table, one SECTOR and
BLOCK, no family name or flash address written out anywhere else in the engine or the workbench (help and
message text aside). And the parts that table describes work end to end: an 8 MiB BK7258 backs up,
verifies, restores and analyzes."""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from pathlib import Path

import pytest
from bkbench.core.chips import FAMILIES, FLASH_SIZES, MAX_FLASH
from bkbench.core.cli.main import main
from bkbench.core.layout import LAYOUTS, Partition
from bkbench.core.link.baud import SUPPORTED_BAUDS

ROOT = Path(__file__).resolve().parents[1]
FACT_MODULES = {"core/chips.py", "core/layout.py"}
# Modules whose literals are facts of something else than a chip family's flash: the flash part table,
# the simulated hardware, register maps, file formats (OTA packages, OpenBK's QIO layouts), the demo plug.
OTHER_FACTS = {
    "core/flash_ids.py": "SPI flash parts",
    "core/client.py": "bootloader protocol (wire addresses, erase sizes, register reads)",
    "core/efuse.py": "eFuse and ROM registers",
    "core/images/builders.py": "OpenBK release file layouts",
    "core/images/rbl.py": "OTA package format",
    "core/demo_image.py": "the demo plug's own flash",
    "tui/demo.py": "the demo plugs",
}
FAMILY_NAME = re.compile(r"(BK|bk)?72\d\d[A-Za-z]?")


def _sources() -> list[Path]:
    out = []
    for base in ("core", "tui"):
        for p in sorted((ROOT / base).rglob("*.py")):
            rel = p.relative_to(ROOT).as_posix()
            if rel in FACT_MODULES or rel in OTHER_FACTS or rel.startswith("core/sim/"):
                continue
            out.append(p)
    return out


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _scan(paths: list[Path]) -> list[str]:
    found = []
    for path in paths:
        src = path.read_text()
        rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
        tree = ast.parse(src)
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            # A string that is a family name and nothing else is data (a key, a default, a comparison);
            # prose that names a family (help, messages) is text for a person and stays.
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
                    and FAMILY_NAME.fullmatch(node.value)):
                found.append(f"{rel}:{node.lineno}: family name {node.value!r}")
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                    and any(isinstance(t, ast.Name) and (t.id, node.value.value) in (("SECTOR", 0x1000),
                                                                                    ("BLOCK", 0x10000))
                            for t in node.targets)):
                found.append(f"{rel}:{node.lineno}: its own SECTOR / BLOCK")
        for tok in tokenize.generate_tokens(io.StringIO(src).readline):
            # A hex literal of 64 KiB or more on a sector boundary is a flash address or size.
            if tok.type == tokenize.NUMBER and tok.string.lower().startswith("0x"):
                value = int(tok.string, 16)
                if value >= 0x10000 and value % 0x1000 == 0:
                    found.append(f"{rel}:{tok.start[0]}: flash address {tok.string}")
    return found


def test_no_family_name_or_flash_address_outside_the_fact_modules() -> None:
    found = _scan(_sources())
    assert not found, "\n".join(found)


def test_the_check_above_sees_what_it_forbids(tmp_path: Path) -> None:
    """The scanner must fail on the literals it exists to keep out (so it cannot pass by looking nowhere)."""
    probe = tmp_path / "probe.py"
    probe.write_text('CHIP = "BK7231N"\nRF = 0x1D0000\nSECTOR = 0x1000\nTEXT = "a BK7231N plug at 0x1D0000"\n')
    text = "\n".join(_scan([probe]))
    assert "'BK7231N'" in text and "0x1D0000" in text and "SECTOR / BLOCK" in text
    assert len(text.splitlines()) == 3  # prose naming a family and an address is not data
    assert len(_sources()) > 40  # and it does look at the engine and the workbench


def test_the_derived_layouts_are_the_ones_checked_on_fixture_dumps() -> None:
    """The maps that used to be written by hand for BK7231N/M and BK7231T (checked against real dumps; OpenBK's
    flash variables at OBK_VARS since OpenBK #1969)."""
    n = [("bootloader", 0x000000, 0x11000), ("app", 0x011000, 0x119000), ("ota", 0x12A000, 0xA6000),
         ("rf", 0x1D0000, 0x1000), ("obk_config", 0x1D1000, 0x1000), ("net", 0x1D2000, 0x1000),
         ("free", 0x1D3000, 0x12000), ("obk_vars", 0x1E5000, 0x8000), ("tuya_kv", 0x1ED000, 0x13000)]
    t = [("bootloader", 0x000000, 0x11000), ("app", 0x011000, 0x121000), ("ota", 0x132000, 0x96000),
         ("free", 0x1C8000, 0x18000), ("rf", 0x1E0000, 0x1000), ("obk_config", 0x1E1000, 0x1000),
         ("net", 0x1E2000, 0x1000), ("free", 0x1E3000, 0x2000), ("obk_vars", 0x1E5000, 0x8000),
         ("tuya_kv", 0x1ED000, 0x13000)]
    for chip, want in (("BK7231N", n), ("BK7231M", n), ("BK7231T", t)):
        got = [(p.kind, p.start, p.size) for p in LAYOUTS[chip]]
        assert got == want, chip
        assert [p.kind for p in LAYOUTS[chip] if p.protected] == ["bootloader", "rf"], chip
    assert all(isinstance(p, Partition) for parts in LAYOUTS.values() for p in parts)


def test_one_size_table_covers_every_family() -> None:
    for fam in FAMILIES.values():
        assert all(size in FLASH_SIZES for size in fam.flash_sizes), fam.name
        assert all(p.end <= max(fam.flash_sizes) for p in LAYOUTS[fam.name]), fam.name
    assert MAX_FLASH == max(FLASH_SIZES)


@pytest.mark.parametrize("baud", ["500000", "1000000", "1500000"])
def test_baud_accepted_exactly_when_the_session_takes_it(baud: str, capsys) -> None:
    from bkbench.core.cli.common import baud_rate
    from bkbench.core.session import Session

    try:
        Session("sim://bk7231n", baud=int(baud))
        session_takes = True
    except Exception:
        session_takes = False
    assert session_takes == (int(baud) in SUPPORTED_BAUDS)
    from bkbench.tui.widgets.ports import BAUDS

    assert tuple(BAUDS) == tuple(SUPPORTED_BAUDS)  # the workbench offers exactly these
    if session_takes:
        assert baud_rate(baud) == int(baud)
    else:
        with pytest.raises(SystemExit):
            main(["info", "-p", "sim://bk7231n", "--baud", baud])
        assert "not a supported baud rate" in capsys.readouterr().err


@pytest.mark.parametrize("mib", [8, 16])
def test_an_8_or_16_mib_bk7258_backs_up_verifies_restores_and_analyzes(mib: int, tmp_path: Path, capsys,
                                                                        monkeypatch) -> None:
    monkeypatch.setenv("BKBENCH_DATA_DIR", str(tmp_path / "data"))
    from bkbench.core.sim import registry
    from bkbench.core.sim.device import SimDevice

    dev = registry.create_device("BK7258", wiring="rts")  # its 8 MiB flash, RF calibration at 0x7FE000
    if mib == 16:  # the same chip on a 16 MiB part (GD25Q128C)
        dev = SimDevice(bytes(dev.flash.data) + b"\xff" * 0x800000, chip="BK7258", wiring="rts",
                        jedec=(0xC8, 0x40, 0x18))
    registry.register("facts7258", dev)
    url = "sim://@facts7258"
    try:
        assert main(["read", "-p", url, "--json"]) == 0
        backup = Path(json.loads(capsys.readouterr().out)["path"])
        assert backup.stat().st_size == mib * 0x100000 and backup.read_bytes() == bytes(dev.flash.data)
        assert main(["verify", "-p", url, str(backup), "--json"]) == 0, capsys.readouterr()
        assert json.loads(capsys.readouterr().out)["ok"] is True
        assert main(["analyze", str(backup), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["chip"] == "BK7258" and report["flash_size"] == mib * 0x100000
        assert report["mac"], report  # from the RF sector at 0x7FE000
        changed = 0x200000
        dev.flash.data[changed:changed + 0x1000] = b"\x5a" * 0x1000  # the chip moved on since its backup
        assert main(["restore", "-p", url, str(backup), "--json"]) == 0, capsys.readouterr()
        capsys.readouterr()
        assert bytes(dev.flash.data) == backup.read_bytes()
        assert main(["read", "-p", url, "--start", "0x7FE000", "--length", "4K", "-o", str(tmp_path / "rf.bin")]) == 0
        assert (tmp_path / "rf.bin").read_bytes() == bytes(dev.flash.data[0x7FE000:0x7FF000])
    finally:
        registry.unregister("facts7258")
