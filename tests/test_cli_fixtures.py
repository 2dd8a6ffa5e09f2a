"""Issue 2 'done when': every real dump in the simulator identifies, reads back and round-trips via the CLI."""

from __future__ import annotations

import json
import zlib

import pytest
from bkbench.core.cli.main import main
from simhelpers import DUMP_CHIPS, ROTATED, sim_url, unrotate


@pytest.fixture
def datadir(tmp_path, monkeypatch):
    monkeypatch.setenv("BKBENCH_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def _dump(fixtures_dir, name):
    data = (fixtures_dir / "dumps" / name).read_bytes()
    return unrotate(data) if name == ROTATED else data


ALL = sorted(DUMP_CHIPS) + [ROTATED]
# The Globe bootloader (1.0.4 by its own code) protects the flash after the block CRCs bkbench takes before a
# write, and drops every later erase until a reset (REALCODE.md B.8): the engine's write order fails there.
ITEM4 = pytest.mark.xfail(strict=True, reason="issue 19 item 4: on bootloader 1.0.4 the CheckCRCs before the write "
                          "protect the flash and every later erase is dropped until a reset")
WRITABLE = [pytest.param(n, marks=ITEM4) if n == "bk7231t-globe-37783-rgbct-bulb.bin" else n for n in ALL]


@pytest.mark.parametrize("name", ALL)
def test_info_names_chip_and_bootloader(name, fixtures_dir, capsys, datadir):
    data = _dump(fixtures_dir, name)
    chip, bootloader = DUMP_CHIPS.get(name, ("BK7231T", "bk7231s 1.0.5"))
    with sim_url(chip, data) as (url, _dev):
        assert main(["info", "--port", url, "--json", "-q"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["chip"] == chip
    # the version the bootloader's code reports wins; the CRC tables' name stays as evidence (issue 19 item 6)
    said = {"bk7231s 1.0.3": "bk7231s 1.0.4"}.get(bootloader, bootloader)
    assert out["bootloader"] == said
    assert out.get("bootloader_table") == (bootloader if said != bootloader else None)
    assert out["flash_size"] == 0x200000
    tlv = data[0x1D0000 if chip == "BK7231N" else 0x1E0000 :][:0x30]
    assert out["mac"] == ":".join(f"{b:02X}" for b in tlv[0x24:0x2A])


@pytest.mark.parametrize("name", WRITABLE)
def test_read_is_byte_identical_and_write_round_trips(name, fixtures_dir, datadir, capsys):
    data = _dump(fixtures_dir, name)
    chip = DUMP_CHIPS.get(name, ("BK7231T", ""))[0]
    with sim_url(chip, data) as (url, dev):
        out = datadir / "dump.bin"
        assert main(["read", "--port", url, "-o", str(out), "-q"]) == 0
        assert out.read_bytes() == data
        # Modify two sectors of the application partition, write, read back.
        image = bytearray(data[0x11000:0x12A000])
        image[0x3000:0x3010] = b"bkbench-was-here"
        image[0x110000] ^= 0x5A
        src = datadir / "mod.bin"
        src.write_bytes(bytes(image))
        assert main(["write", "--port", url, str(src), "--start", "0x11000", "--no-backup", "--no-reboot",
                     "-q", "--json"]) == 0
        report = capsys.readouterr().out
        back = datadir / "back.bin"
        assert main(["read", "--port", url, "-o", str(back), "-q"]) == 0
        got = back.read_bytes()
    assert got[0x11000:0x12A000] == bytes(image)
    assert got[:0x11000] == data[:0x11000] and got[0x12A000:] == data[0x12A000:]
    assert zlib.crc32(got) != zlib.crc32(data)
    del report


def test_full_read_goes_into_the_library_with_sidecar(fixtures_dir, datadir, capsys):
    data = _dump(fixtures_dir, "bk7231n-lspa9-clone-bl0937-plug.bin")
    with sim_url("BK7231N", data) as (url, _):
        assert main(["read", "--port", url, "--json", "-q"]) == 0
    meta = json.loads(capsys.readouterr().out)
    lib = datadir / "data" / "backups"
    files = sorted(p.name for p in lib.iterdir())
    assert len(files) == 2 and files[0].endswith(".bin") and files[1].endswith(".json")
    assert (lib / files[0]).read_bytes() == data
    assert (lib / files[0]).stat().st_mode & 0o777 == 0o400  # read-only once saved (issue 10)
    assert lib.stat().st_mode & 0o777 == 0o700
    side = json.loads((lib / files[1]).read_text())
    assert side["chip"] == "BK7231N" and side["crc32"] == f"0x{zlib.crc32(data):08X}"
    assert side["sha256"] == meta["sha256"] and "T" in side["time"] and side["mac"]


def test_cli_errors_are_one_line(capsys, datadir):
    assert main(["info", "--port", "/dev/ttyNOPE", "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bkbench: error: /dev/ttyNOPE: no such port") and "Traceback" not in err


def test_write_refuses_bootloader_without_explicit_request(fixtures_dir, datadir, capsys):
    data = _dump(fixtures_dir, "bk7231n-mirabella-genio-i003632-plug.bin")
    src = datadir / "raw.bin"
    src.write_bytes(b"\x00" * 0x1000)
    with sim_url("BK7231N", data) as (url, dev):
        assert main(["write", "--port", url, str(src), "--start", "0", "--no-backup", "-q"]) == 1
        assert bytes(dev.flash.data) == data
    assert "bootloader" in capsys.readouterr().err


def test_engine_refuses_rf_sector_without_explicit_request(fixtures_dir):
    from bkbench.core.errors import UnsafeWriteError
    from bkbench.core.session import Session

    data = _dump(fixtures_dir, "bk7231t-feit-br30-rgbw-bulb.bin")
    with sim_url("BK7231T", data) as (url, dev):
        with Session(url, baud=921600) as s:
            s.connect()
            with pytest.raises(UnsafeWriteError, match="RF calibration"):
                s.write(b"\x00" * 0x2000, 0x1DF000, backup_first=False)
            s.write(b"\x00" * 0x1000, 0x1DF000, backup_first=False)  # the sector before is fine
        assert dev.flash.read(0x1E0000, 0x1000) == data[0x1E0000:0x1E1000]
