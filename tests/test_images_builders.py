"""UA / QIO builders: checked against the Beken code cipher and against the real dumps' app regions."""

from __future__ import annotations

from pathlib import Path

import pytest
from bkbench.core.analysis import beken_code as bc
from bkbench.core.errors import ImageError
from bkbench.core.images import builders
from bkbench.core.images.rbl import parse_rbl_header
from bkbench.core.images.recognize import UA_SIGNATURE, find_banner

CHIPS = ("BK7231N", "BK7231T")
FULL_DUMPS = [
    "bk7231n-ap-smt-breaker02-relay.bin",
    "bk7231n-elegrp-dpr10-tuyamcu-dimmer.bin",
    "bk7231n-lspa9-clone-bl0937-plug.bin",
    "bk7231n-mirabella-genio-i003632-plug.bin",
    "bk7231t-feit-br30-rgbw-bulb.bin",
    "bk7231t-globe-37783-rgbct-bulb.bin",
]


@pytest.mark.parametrize("chip", CHIPS)
def test_ua_decrypts_back_to_the_app(obk_images: dict, chip: str) -> None:
    app, ua = obk_images[chip]["app"], obk_images[chip]["ua"]
    assert ua[:8] == UA_SIGNATURE
    assert bc.crc16_ok(ua)
    assert len(ua) % bc.PHYS_BLOCK == 0
    plain = bc.decrypt_physical(ua, 0x11000)
    assert plain[: len(app)] == app
    enc_end = (len(app) + 15) // 16 * 16
    assert set(plain[len(app) : enc_end]) <= {0xFF}  # app padded with 0xFF to 16 bytes, encrypted
    assert set(bc.strip_crc16(ua)[enc_end:]) <= {0xFF}  # then raw (erased) 0xFF to the end of the block
    assert find_banner(plain)[0] == chip


@pytest.mark.parametrize("chip, size", [("BK7231N", 1_220_464), ("BK7231T", 0x100000)])
def test_qio_layout(obk_images: dict, fixtures_dir: Path, chip: str, size: int) -> None:
    qio = obk_images[chip]["qio"]
    assert len(qio) == size  # the release QIO sizes (PROTOCOL-DETAILS 8.2)
    dump_name = "bk7231n-lspa9-clone-bl0937-plug.bin" if chip == "BK7231N" else "bk7231t-feit-br30-rgbw-bulb.bin"
    assert qio[:0x11000] == (fixtures_dir / "dumps" / dump_name).read_bytes()[:0x11000]
    app_region = qio[0x11000:]
    ua = obk_images[chip]["ua"]
    assert app_region[: len(ua) - bc.PHYS_BLOCK] == ua[: len(ua) - bc.PHYS_BLOCK]
    plain = bc.decrypt_physical(app_region[: len(ua)], 0x11000)
    assert plain[: len(obk_images[chip]["app"])] == obk_images[chip]["app"]


def test_n_qio_has_an_app_trailer_where_the_sdk_puts_it(obk_images: dict) -> None:
    qio = obk_images["BK7231N"]["qio"]
    trailer = bc.strip_crc16(qio[-102:])
    h = parse_rbl_header(trailer)
    assert h.header_crc_ok and h.name == "app" and h.version == "1.00"
    assert h.raw_size == (len(obk_images["BK7231N"]["app"]) + 15) // 16 * 16
    assert h.body_size == h.raw_size + 16


@pytest.mark.parametrize("name", FULL_DUMPS)
def test_rebuilding_a_dump_app_region_gives_the_same_bytes(fixtures_dir: Path, name: str) -> None:
    """The builder reproduces what Tuya's packager wrote: decrypt a real dump's app, rebuild, compare."""
    dump = (fixtures_dir / "dumps" / name).read_bytes()
    end = 0x11000 + builders.to_physical(builders.APP_CONTAINER_SIZE)
    trailer = parse_rbl_header(bc.strip_crc16(dump[end - 102 : end]))
    assert trailer.header_crc_ok
    app = bc.decrypt_physical(dump[0x11000 : end - 102], 0x11000)[: trailer.raw_size]
    rebuilt = builders.build_ua(app, container=builders.APP_CONTAINER_SIZE, timestamp=trailer.timestamp)
    assert len(rebuilt) == end - 0x11000
    # Everything up to the trailer is identical, including the never-written 0xFF gap.
    assert rebuilt[:-102] == dump[0x11000 : end - 102]
    # The trailer's fields match (the real one carries uninitialised bytes after the NUL of its strings).
    mine = parse_rbl_header(bc.strip_crc16(rebuilt[-102:]))
    for f in ("algorithm", "timestamp", "name", "version", "body_crc", "raw_hash", "raw_size", "body_size"):
        assert getattr(mine, f) == getattr(trailer, f), f


def test_builder_refusals(obk_images: dict) -> None:
    app = obk_images["BK7231N"]["app"]
    with pytest.raises(ImageError):
        builders.build_ua(b"")
    with pytest.raises(ImageError, match="does not fit"):
        builders.build_ua(app, container=0x1000)
    with pytest.raises(ImageError, match="0x11000"):
        builders.build_qio(app, b"\x00" * 100, "BK7231N")
    with pytest.raises(ImageError, match="No QIO layout"):
        builders.build_qio(app, b"\x00" * 0x11000, "BK7236")
