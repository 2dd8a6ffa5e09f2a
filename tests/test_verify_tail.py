"""`bkbench verify --start X FILE` and `verify` of a raw file on a T (issue 22, after the engine merge): the T
bootloader's CheckCRC hashes whole 256-byte blocks only (REALCODE.md B.2, modelled by core/sim), so a file that
ends inside a 256-byte block cannot have its last bytes hashed; they are compared by reading their sector back,
vouched for by the chip's CRC of their whole block (verify_flash). A good chip is not called different, and a
changed last byte still is."""

from __future__ import annotations

import json
import random

from bkbench.core.cli.main import main
from simhelpers import sim_url

AT = 0x100000


def _verify(capsys, url: str, *argv: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["verify", "--port", url, *argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_verify_start_of_a_ragged_file_on_a_t(tmp_path, capsys):
    blob = random.Random(3).randbytes(0x1234)  # ends 0x234 bytes into a sector, not on a 256-byte block
    f = tmp_path / "part.bin"
    f.write_bytes(blob)
    with sim_url("BK7231T") as (url, dev):
        dev.flash.data[AT:AT + len(blob)] = blob  # the chip holds the file there (and other bytes after it)
        dev.flash.data[AT + len(blob):AT + 0x2000] = b"\x5a" * (0x2000 - len(blob))
        code, out = _verify(capsys, url, "--start", hex(AT), str(f))
        assert (code, out["ok"]) == (0, True), out
        dev.flash.data[AT + len(blob) - 1] ^= 0x01  # the file's very last byte differs on the chip
        code, out = _verify(capsys, url, "--start", hex(AT), str(f))
    assert code == 2 and out["ok"] is False


def test_verify_of_a_raw_file_on_a_t_compares_from_zero(tmp_path, capsys):
    with sim_url("BK7231T") as (url, dev):
        dev.flash.data[:0x13000] = random.Random(4).randbytes(0x13000)  # no image bkbench recognises: raw data
        f = tmp_path / "head.raw"
        f.write_bytes(bytes(dev.flash.data[:0x12345]))  # compared from 0, ending mid-sector
        code, out = _verify(capsys, url, str(f))
        assert (code, out["ok"]) == (0, True), out
