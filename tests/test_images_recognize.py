"""Recognition by content on real files and on images built from them; chip mismatch refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from bkbench.core.analysis import beken_code as bc
from bkbench.core.errors import ImageError
from bkbench.core.images import builders
from bkbench.core.images.recognize import (
    ImageInfo,
    check_compatible,
    plan_write,
    recognize,
    unrotate,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CHIPS = ("BK7231N", "BK7231T")
OTHER = {"BK7231N": "BK7231T", "BK7231T": "BK7231N"}
DUMPS = {
    "bk7231n-ap-smt-breaker02-relay.bin": ("BK7231N", "bl_bk7231n 1.0.1"),
    "bk7231n-elegrp-dpr10-tuyamcu-dimmer.bin": ("BK7231N", "bl_bk7231n 1.0.1"),
    "bk7231n-lspa9-clone-bl0937-plug.bin": ("BK7231N", "bl_bk7231n 1.0.1"),
    "bk7231n-mirabella-genio-i003632-plug.bin": ("BK7231N", "bl_bk7231n 1.0.1"),
    "bk7231t-feit-br30-rgbw-bulb.bin": ("BK7231T", "bk7231s 1.0.5"),
    "bk7231t-globe-37783-rgbct-bulb.bin": ("BK7231T", "bk7231s 1.0.3"),
}
JSON_KEYS = {"format", "chip", "version", "write_offset", "skip", "length", "description", "warnings"}


# --- the real OTA files ------------------------------------------------------------------------


@pytest.mark.parametrize("chip", CHIPS)
def test_real_ota_files(fixtures_dir: Path, chip: str) -> None:
    data = (fixtures_dir / "firmware" / f"OpenBeken-v1.18.219_{chip.lower()}.ug.bin").read_bytes()
    info = recognize(data, "firmware.bin")  # a neutral name: content decides
    assert info.format == "ug"
    assert info.chip == chip and info.chip_source == "banner"
    assert info.version == "1.18.219"
    assert info.write_offset is None and not info.writable
    assert any("never for UART" in w for w in info.warnings)
    with pytest.raises(ImageError, match="OTA"):
        plan_write(info, data, chip)


def test_bare_rbl_and_damaged_ota(fixtures_dir: Path) -> None:
    data = (fixtures_dir / "firmware" / "OpenBeken-v1.18.219_bk7231n.ug.bin").read_bytes()
    bare = recognize(data[0x20:])
    assert (bare.format, bare.chip, bare.version) == ("rbl", "BK7231N", "1.18.219")
    damaged = recognize(data[:-5000])
    assert damaged.format == "ug" and "damaged" in damaged.description
    with pytest.raises(ImageError):
        plan_write(damaged, data[:-5000], "BK7231N")


# --- images built from them ------------------------------------------------------------------


@pytest.mark.parametrize("chip", CHIPS)
def test_built_ua(obk_images: dict, chip: str) -> None:
    ua = obk_images[chip]["ua"]
    info = recognize(ua, "x.bin")
    assert (info.format, info.chip, info.version) == ("ua", chip, "1.18.219")
    assert (info.write_offset, info.skip, info.length) == (0x11000, 0, len(ua))
    plan = plan_write(info, ua, chip)
    assert plan.start == 0x11000 and plan.payload == ua and not plan.includes_bootloader


@pytest.mark.parametrize("chip, boot", [("BK7231N", "bl_bk7231n 1.0.1"), ("BK7231T", "bk7231s 1.0.5")])
def test_built_qio(obk_images: dict, chip: str, boot: str) -> None:
    qio = obk_images[chip]["qio"]
    info = recognize(qio)
    assert (info.format, info.chip, info.chip_source, info.bootloader) == ("qio", chip, "bootloader", boot)
    assert info.version == "1.18.219"
    assert (info.write_offset, info.skip, info.length) == (0x11000, 0x11000, len(qio) - 0x11000)
    plan = plan_write(info, qio, chip)
    assert plan.start == 0x11000 and plan.payload == qio[0x11000:] and not plan.includes_bootloader
    full = plan_write(info, qio, chip, replace_bootloader=True)
    assert full.start == 0 and full.payload == qio and full.includes_bootloader


@pytest.mark.parametrize("chip", CHIPS)
def test_qio_with_unknown_bootloader_uses_size_then_banner(obk_images: dict, chip: str) -> None:
    qio = obk_images[chip]["qio"]
    # Replace the bootloader by an unknown one (valid stored code, CRC not in the table).
    fake_boot = bc.encrypt_physical(os.urandom(0x10000), 0)
    assert len(fake_boot) == 0x11000
    info = recognize(fake_boot + qio[0x11000:])
    assert info.format == "qio" and info.bootloader is None
    assert info.chip == chip and info.chip_source == "size"
    shorter = fake_boot + qio[0x11000 : 0x11000 + len(obk_images[chip]["ua"])]
    info2 = recognize(shorter)
    assert info2.format == "qio" and info2.chip == chip and info2.chip_source == "banner"


def test_conflicting_bootloader_and_app_gives_no_chip(obk_images: dict) -> None:
    # A BK7231N bootloader in front of the BK7231T app: not something to flash anywhere blindly.
    mixed = obk_images["BK7231N"]["qio"][:0x11000] + obk_images["BK7231T"]["ua"]
    info = recognize(mixed)
    assert info.format == "qio" and info.chip is None
    assert any("BK7231T" in w and "BK7231N" in w for w in info.warnings)


@pytest.mark.parametrize("chip", CHIPS)
@pytest.mark.parametrize("kind", ["ua", "qio"])
def test_mismatch_is_refused_both_ways(obk_images: dict, chip: str, kind: str) -> None:
    data = obk_images[chip][kind]
    info = recognize(data)
    check_compatible(info, chip)  # the right chip passes
    check_compatible(info, chip.lower())  # names are case-insensitive
    with pytest.raises(ImageError, match=f"is for {chip}.*chip is {OTHER[chip]}"):
        check_compatible(info, OTHER[chip])
    with pytest.raises(ImageError, match=f"is for {chip}"):
        plan_write(info, data, OTHER[chip])


def test_name_never_overrides_content(obk_images: dict) -> None:
    ua = obk_images["BK7231N"]["ua"]
    info = recognize(ua, "OpenBK7231T_UA_1.0.0.bin")
    assert info.chip == "BK7231N" and info.version == "1.18.219"


# --- dumps -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DUMPS))
def test_fixture_dumps(fixtures_dir: Path, name: str) -> None:
    data = (fixtures_dir / "dumps" / name).read_bytes()
    chip, boot = DUMPS[name]
    info = recognize(data, "backup.bin")
    assert (info.format, info.chip, info.chip_source, info.bootloader) == ("dump", chip, "bootloader", boot)
    assert info.rotation == 0 and info.version is None  # stock Tuya firmware: no OpenBK banner
    assert not any("TLV" in w for w in info.warnings)  # RF sector found where the layout says
    plan = plan_write(info, data, chip)
    assert plan.start == 0x11000 and plan.payload == data[0x11000:]
    restore = plan_write(info, data, chip, replace_bootloader=True)
    assert restore.start == 0 and restore.payload == data and restore.includes_bootloader
    with pytest.raises(ImageError):
        plan_write(info, data, OTHER[chip], replace_bootloader=True)


def test_rotated_dump(fixtures_dir: Path) -> None:
    data = (fixtures_dir / "dumps" / "bk7231t-led-moon-cct-rotated-0x11000.bin").read_bytes()
    info = recognize(data)
    assert (info.format, info.chip, info.bootloader) == ("dump", "BK7231T", "bk7231s 1.0.5")
    assert info.rotation == 0x11000
    assert any("rotated" in w for w in info.warnings)
    flash = unrotate(data, info.rotation)
    assert flash[:0x11000] == data[-0x11000:]
    assert flash[0x1E0000:0x1E0004] == b"TLV\x00"  # the RF sector is back where the T layout has it
    again = recognize(flash)
    assert again.rotation == 0 and again.chip == "BK7231T"
    plan = plan_write(info, data, "BK7231T", replace_bootloader=True)
    assert plan.payload == flash


def test_dump_without_bootloader_falls_back_to_rf_sector(fixtures_dir: Path) -> None:
    data = bytearray((fixtures_dir / "dumps" / "bk7231n-mirabella-genio-i003632-plug.bin").read_bytes())
    data[:0x11000] = b"\xff" * 0x11000  # erased bootloader
    info = recognize(bytes(data))
    assert info.format == "dump" and info.chip == "BK7231N" and info.chip_source == "rf-sector"
    assert info.bootloader is None and any("bootloader" in w for w in info.warnings)


def test_dump_with_openbk_installed(obk_images: dict, fixtures_dir: Path) -> None:
    """A 2 MiB backup of a chip running OpenBK: the version comes from the banner."""
    dump = bytearray((fixtures_dir / "dumps" / "bk7231t-globe-37783-rgbct-bulb.bin").read_bytes())
    ua = obk_images["BK7231T"]["ua"]
    dump[0x11000 : 0x11000 + len(ua)] = ua
    info = recognize(bytes(dump))
    assert (info.format, info.chip, info.version) == ("dump", "BK7231T", "1.18.219")


# --- raw -----------------------------------------------------------------------------------


def test_raw_inputs(fixtures_dir: Path, obk_images: dict) -> None:
    kv = (fixtures_dir / "dumps" / "bk7231t-pc44ha-tuya-kv-region-only.bin").read_bytes()
    for data in (kv, os.urandom(200_000), b"\xff" * 0x2000, b"", os.urandom(0x200000)):
        info = recognize(data)
        assert info.format == "raw" and info.chip is None and info.write_offset is None
        with pytest.raises(ImageError, match="offset"):
            plan_write(info, data, "BK7231N")
    plan = plan_write(recognize(kv), kv, "BK7231T", offset=0x1ED000)
    assert plan.start == 0x1ED000 and plan.payload == kv
    with pytest.raises(ImageError, match="bootloader"):
        plan_write(recognize(kv), kv, "BK7231T", offset=0x1000)
    with pytest.raises(ImageError, match="past the end"):
        plan_write(recognize(kv), kv, "BK7231T", offset=0x1FF000)
    plain = recognize(obk_images["BK7231N"]["app"])
    assert plain.format == "raw" and plain.chip == "BK7231N" and "plain" in plain.description


def test_plan_write_guards(obk_images: dict) -> None:
    ua = obk_images["BK7231N"]["ua"]
    info = recognize(ua)
    with pytest.raises(ImageError, match="custom offset"):
        plan_write(info, ua, "BK7231N", offset=0x20000)
    with pytest.raises(ImageError, match="size differs"):
        plan_write(info, ua[:-34], "BK7231N")
    big = ua + bc.add_crc16(b"\x00" * 0x60000)
    with pytest.raises(ImageError, match="app partition"):
        plan_write(recognize(big), big, "BK7231N")


def test_json_shape(obk_images: dict) -> None:
    out = recognize(obk_images["BK7231T"]["qio"]).to_json()
    assert JSON_KEYS <= set(out)
    assert json.loads(json.dumps(out)) == out
    assert out["format"] in ("qio", "ua", "rbl", "ug", "dump", "raw")


# --- robustness ----------------------------------------------------------------------------


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    try:
        info = recognize(data)
    except ImageError:
        return
    assert isinstance(info, ImageInfo) and info.format in ("qio", "ua", "rbl", "ug", "dump", "raw")


_MAGICS = [b"", b"RBL\x00", b"\x55\xaa\x55\xaa", bytes.fromhex("2F07B59435FF2A9B"), bytes.fromhex("0E0000EA14F09FE5")]


@settings(max_examples=150, deadline=3000, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_MAGICS), st.binary(max_size=0x200), st.integers(0, 0x12000))
def test_adversarial_prefixes_never_crash(magic: bytes, body: bytes, pad: int) -> None:
    data = magic + body + b"\x00" * pad
    try:
        recognize(data)
    except ImageError:
        pass


@settings(max_examples=40, deadline=5000, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 0x1000 - 1), st.integers(0, 255))
def test_corrupted_real_ota_never_crashes(fixtures_dir: Path, pos: int, value: int) -> None:
    data = bytearray((fixtures_dir / "firmware" / "OpenBeken-v1.18.219_bk7231t.ug.bin").read_bytes()[:0x2000])
    data[pos] = value
    info = recognize(bytes(data))
    assert info.format in ("ug", "rbl", "raw", "ua", "qio")


def test_stock_tuya_app_region_is_a_ua_of_unknown_chip(fixtures_dir: Path) -> None:
    # The app partition of a stock dump is stored code for 0x11000 too, but carries no OpenBK banner.
    dump = (fixtures_dir / "dumps" / "bk7231n-ap-smt-breaker02-relay.bin").read_bytes()
    end = 0x11000 + builders.to_physical(builders.APP_CONTAINER_SIZE)
    info = recognize(dump[0x11000:end])
    assert info.format == "ua" and info.write_offset == 0x11000 and info.chip is None
    assert any("banner" in w for w in info.warnings)
    check_compatible(info, "BK7231T")  # unknown chip: nothing to refuse on
