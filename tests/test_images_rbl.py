"""OTA package parsing on the two real OpenBK 1.18.219 UG files (and packages built from their apps)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from bkbench.core.errors import ImageError
from bkbench.core.images import rbl
from bkbench.core.images.recognize import PLAIN_APP_SIGNATURE, find_banner

CHIPS = ("BK7231N", "BK7231T")


def _ota(fixtures_dir: Path, chip: str) -> bytes:
    return (fixtures_dir / "firmware" / f"OpenBeken-v1.18.219_{chip.lower()}.ug.bin").read_bytes()


@pytest.mark.parametrize("chip", CHIPS)
def test_real_ug_wrapper_and_rbl_header(fixtures_dir: Path, chip: str) -> None:
    data = _ota(fixtures_dir, chip)
    assert rbl.is_ug(data) and not rbl.is_rbl(data)
    ug = rbl.parse_ug_header(data)
    assert ug.version == "1.18.219"
    assert ug.header_sum_ok
    assert ug.length == len(data) - rbl.UG_HEADER_SIZE  # the wrapper covers exactly the rest of the file
    pkg = rbl.parse_ota(data)
    assert pkg.format == "ug" and pkg.version == "1.18.219"
    h = pkg.rbl
    assert h.header_crc_ok and h.name == "app"
    assert h.encryption == rbl.ENC_AES256 and h.compression == rbl.COMP_GZIP
    assert h.algorithm_text == "aes256+gzip"
    assert h.body_size == len(data) - rbl.UG_HEADER_SIZE - rbl.RBL_HEADER_SIZE
    assert h.body_size % 16 == 0  # AES blocks
    assert not pkg.warnings


@pytest.mark.parametrize("chip", CHIPS)
def test_real_ota_unpacks_to_plain_app_with_banner(fixtures_dir: Path, chip: str) -> None:
    pkg = rbl.parse_ota(_ota(fixtures_dir, chip))
    app = rbl.unpack_ota(pkg)  # checks raw size and FNV-1a hash against the header
    assert len(app) == pkg.rbl.raw_size
    assert rbl.fnv1a32(app) == pkg.rbl.raw_hash
    assert app[:8] == PLAIN_APP_SIGNATURE  # ARM vector table of an app linked at 0x10000
    assert find_banner(app) == (chip, "1.18.219")
    assert f"Open{chip} 1.18.219 ".encode() in app  # the boot banner, e.g. "OpenBK7231N 1.18.219 Nov 25 ..."


def test_rbl_without_ug_wrapper(fixtures_dir: Path) -> None:
    data = _ota(fixtures_dir, "BK7231N")[rbl.UG_HEADER_SIZE :]
    pkg = rbl.parse_ota(data)
    assert pkg.format == "rbl" and pkg.ug is None
    assert find_banner(rbl.unpack_ota(pkg))[0] == "BK7231N"


def test_pack_and_wrap_round_trip(fixtures_dir: Path) -> None:
    app = rbl.unpack_ota(_ota(fixtures_dir, "BK7231T"))
    packed = rbl.wrap_ug(rbl.pack_rbl(app, version="9.9.9", timestamp=1), "9.9.9")
    pkg = rbl.parse_ota(packed)
    assert pkg.ug.version == "9.9.9" and pkg.rbl.version == "9.9.9" and pkg.rbl.timestamp == 1
    assert rbl.unpack_ota(pkg) == app


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: d[:-1000], "truncated"),
        (lambda d: d[:0x90] + bytes([d[0x90] ^ 1]) + d[0x91:], "checksum"),
        (lambda d: d[:0x18] + b"\x00\x00\x00\x00" + d[0x1C:], "checksum"),
    ],
)
def test_damaged_ug_is_refused(fixtures_dir: Path, damage, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        rbl.parse_ota(damage(_ota(fixtures_dir, "BK7231N")))


def test_damaged_rbl_body_and_header(fixtures_dir: Path) -> None:
    data = bytearray(_ota(fixtures_dir, "BK7231N")[rbl.UG_HEADER_SIZE :])
    body_flip = bytes(data[:0x100]) + bytes([data[0x100] ^ 0x40]) + bytes(data[0x101:])
    with pytest.raises(ImageError, match="body CRC"):
        rbl.parse_ota(body_flip)
    data[0x10] ^= 1  # inside the name field: only the header CRC catches it
    with pytest.raises(ImageError, match="header CRC"):
        rbl.parse_ota(bytes(data))


def test_wrong_key_is_detected(fixtures_dir: Path) -> None:
    with pytest.raises(ImageError):
        rbl.unpack_ota(_ota(fixtures_dir, "BK7231N"), key=b"X" * 32)


def test_consistent_package_with_bad_payload_is_refused() -> None:
    # Structurally valid (all CRCs right) but the gzip stream inside is garbage.
    body = rbl._aes_cbc(rbl.OTA_AES_KEY, rbl.OTA_AES_IV, b"not gzip at all!" * 4, encrypt=True)
    head = rbl._RBL_STRUCT.pack(b"RBL\x00", 0x102, 0, b"app", b"", b"", zlib.crc32(body), 0, 10, len(body), 0)
    head = head[:92] + struct.pack("<I", zlib.crc32(head[:92]))
    with pytest.raises(ImageError, match="gzip"):
        rbl.unpack_ota(head + body)
