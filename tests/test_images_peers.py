"""ltchiptool (an independent implementation) agrees with our OTA parsing and image placement."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from bkbench.core.images import rbl
from bkbench.core.images.recognize import recognize

pytestmark = pytest.mark.peers
lt_binary = pytest.importorskip("ltchiptool.soc.bk72xx.binary")
lt_rbl = pytest.importorskip("ltchiptool.soc.bk72xx.util.rbl")
lt_util = pytest.importorskip("ltchiptool.soc.bk72xx.util.binary")

CHIPS = ("BK7231N", "BK7231T")
LT_NAMES = {
    "ua": "Beken CRC/UA App",
    ("qio", "BK7231N"): "Beken QIO Firmware",  # LT knows the N release QIO by its exact size
    ("qio", "BK7231T"): "Beken QIO (OBK T) Firmware",  # and the OBK T QIO by 1 MiB
}


def _lt_detect(data: bytes):
    return lt_binary.BK72XXBinary.detect_file_type(None, io.BytesIO(data), len(data))


@pytest.mark.parametrize("chip", CHIPS)
@pytest.mark.parametrize("kind", ["ua", "qio"])
def test_ltchiptool_places_our_built_images_where_we_do(obk_images: dict, chip: str, kind: str) -> None:
    data = obk_images[chip][kind]
    theirs = _lt_detect(data)
    ours = recognize(data)
    assert theirs.file_type == LT_NAMES.get(kind) or theirs.file_type == LT_NAMES[(kind, chip)]
    assert (theirs.offset, theirs.skip, theirs.length) == (ours.write_offset, ours.skip, ours.length)


@pytest.mark.parametrize("chip", CHIPS)
def test_ltchiptool_reads_the_same_rbl_header_and_payload(fixtures_dir: Path, chip: str) -> None:
    data = (fixtures_dir / "firmware" / f"OpenBeken-v1.18.219_{chip.lower()}.ug.bin").read_bytes()
    body = data[rbl.UG_HEADER_SIZE :]
    theirs = lt_rbl.RBL.deserialize(body[: rbl.RBL_HEADER_SIZE])  # checks the header CRC itself
    ours = rbl.parse_ota(data)
    assert (theirs.encryption, theirs.compression) == (ours.rbl.encryption, ours.rbl.compression)
    assert (theirs.data_crc, theirs.data_hash) == (ours.rbl.body_crc, ours.rbl.raw_hash)
    assert (theirs.raw_size, theirs.data_size) == (ours.rbl.raw_size, ours.rbl.body_size)
    assert _lt_detect(body).file_type == "Beken OTA"
    bk = lt_util.BekenBinary()
    payload = b"".join(
        bk.ota_unpackage(io.BytesIO(ours.body), theirs, key=rbl.OTA_AES_KEY, iv=rbl.OTA_AES_IV)
    )
    assert payload == rbl.unpack_ota(ours)
