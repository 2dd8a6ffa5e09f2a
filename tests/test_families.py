"""Issue 14: every Beken family as data, identified through the protocol, written and refused per family."""

from __future__ import annotations

import json

import pytest
from bkbench.core.backups import BackupLibrary
from bkbench.core.chips import (
    BOOTLOADERS,
    DEFAULT_BOOTLOADER,
    DEMO_BOOTLOADER,
    FAMILIES,
    TUYA_KEY,
    ZERO_KEY,
    Dialect,
    identify,
)
from bkbench.core.cli.main import main
from bkbench.core.errors import ImageError
from bkbench.core.images.recognize import check_compatible, plan_write, recognize
from bkbench.core.layout import layout_for, protected_ranges
from bkbench.core.session import Session
from bkbench.core.sim.efuse import Efuse
from bkbench.core.sim.registry import create_device, default_dump
from familyhelpers import WRITABLE, family_image
from simhelpers import sim_url

ALL = list(FAMILIES)
N_BOOT = BOOTLOADERS[0xE14191BA]
T_BOOT = BOOTLOADERS[0xBA54C1B8]


@pytest.fixture
def datadir(tmp_path, monkeypatch):
    monkeypatch.setenv("BKBENCH_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


# --- the table ---------------------------------------------------------------------------------


@pytest.mark.parametrize("chip", ALL)
def test_layout_is_consistent_and_protects_bootloader_and_rf(chip):
    fam = FAMILIES[chip]
    parts = layout_for(chip)
    for a, b in zip(parts, parts[1:]):
        assert a.end <= b.start, f"{a.name} overlaps {b.name}"
    prot = protected_ranges(chip)
    assert (0, fam.bootloader_end) in prot
    assert (fam.rf_offset, fam.rf_offset + 0x1000) in prot
    for extra in fam.extra_rf:
        assert (extra, extra + 0x1000) in prot
    if fam.obk_config_offset is not None:  # the config sector is written on purpose: never protected
        assert not any(s <= fam.obk_config_offset < e for s, e in prot)
    if fam.writable:
        app = next(p for p in parts if p.kind == "app")
        assert app.start == fam.bootloader_end and not any(s < app.end and app.start < e for s, e in prot)


def test_bootloader_table_agrees_with_bk7231tools():
    """Every bootloader bk7231tools knows has the same CRC, chip and dialect here (independent table)."""
    enums = pytest.importorskip("bk7231tools.serial.base.enums")
    peer = {bt.value.crc: bt.value for bt in enums.BkBootloaderType}
    ours = {crc: bl for crc, bl in BOOTLOADERS.items() if not bl.synthetic}
    assert set(peer) == set(ours)
    for crc, bl in ours.items():
        assert peer[crc].chip.name == bl.chip, hex(crc)
        assert peer[crc].protocol.name == bl.dialect.value, hex(crc)


def test_chip_ids_agree_with_bk7231tools_where_it_knows_them():
    enums = pytest.importorskip("bk7231tools.serial.base.enums")
    for t in enums.BkChipType:
        if t.name in FAMILIES:
            assert t.value in FAMILIES[t.name].chip_ids, t.name


# --- identification from evidence --------------------------------------------------------------


def test_bootloader_chip_id_and_key_together():
    assert identify(N_BOOT, 0x7231C, TUYA_KEY[:1]).chip == "BK7231N"
    assert identify(None, 0x7231C, ZERO_KEY[:1]).chip == "BK7231M"
    twins = identify(None, 0x7231C)
    assert twins.chip is None and twins.candidates == ["BK7231N", "BK7231M"] and twins.disagreement is None


@pytest.mark.parametrize(
    "args, words",
    [
        ((N_BOOT, 0x7231C, ZERO_KEY[:1]), ("BK7231N", "eFuse key", "all-zero")),
        ((N_BOOT, 0x7238, None), ("BK7231N", "chip ID", "BK7238")),
        ((T_BOOT, None, None, "BK7231S_1.0.5"), ()),  # agrees: T bootloader, T boot version
        ((N_BOOT, None, None, "BK7231S_1.0.5"), ("bootloader says BK7231N", "boot version says BK7231T")),
    ],
)
def test_disagreement_is_said_not_guessed(args, words):
    ident = identify(*args)
    if not words:
        assert ident.chip == "BK7231T" and ident.disagreement is None
        return
    assert ident.chip is None and ident.disagreement
    for w in words:
        assert w in ident.disagreement


def test_bk7236_and_bk7258_share_an_id_and_differ_by_flash_size():
    assert identify(None, 0x7236).chip is None
    assert identify(None, 0x7236, flash_size=0x400000).chip == "BK7236"
    assert identify(None, 0x7236, flash_size=0x800000).chip == "BK7258"


# --- through the protocol ----------------------------------------------------------------------


@pytest.mark.parametrize("chip", ALL)
def test_sim_family_is_identified_through_the_protocol(chip):
    fam = FAMILIES[chip]
    with Session(f"sim://{chip.lower()}", baud=921600) as s:
        info = s.connect()
    assert info.chip == chip
    assert info.dialect is fam.dialect
    # sim://bk7231n is a real dump of ../shared when it is there, else the built-in demo plug
    demo = chip == "BK7231N" and default_dump(chip) is None
    assert info.boot_crc == (DEMO_BOOTLOADER.crc if demo else DEFAULT_BOOTLOADER[chip])
    bl = BOOTLOADERS[info.boot_crc]
    assert info.bootloader == bl.name
    assert any("simulator-only" in w for w in info.warnings) == bl.synthetic
    if fam.dialect is Dialect.FULL:
        assert info.chip_id == fam.chip_ids[0]
    if fam.key_tells_family:
        assert info.code_key and ("Tuya" in info.code_key) == (fam.code_key == TUYA_KEY)
    assert info.mac is not None  # read from the family's RF/TLV sector
    assert info.flash_size == fam.default_flash


def test_n_bootloader_on_a_zero_key_chip_is_reported_as_a_disagreement():
    flash = bytes(create_device("BK7231N").flash.data)
    with sim_url("BK7231N", flash) as (url, sim):
        sim.efuse = Efuse(bytes(32))  # what an M answers, here behind an N (Tuya-key) bootloader
        with Session(url) as s:
            info = s.connect()
    assert info.chip == "unknown"
    assert any("BK7231N" in w and "all-zero" in w for w in info.warnings)


@pytest.mark.parametrize("chip", WRITABLE)
def test_backup_and_openbk_write_round_trip(chip, datadir, capsys):
    kind, image = family_image(chip)
    f = datadir / f"OpenBK_{kind}.bin"
    f.write_bytes(image)
    with sim_url(chip) as (url, dev):
        before = bytes(dev.flash.data)
        assert main(["write", "--port", url, str(f), "--json", "-q"]) == 0
        out = json.loads(capsys.readouterr().out)
        after = bytes(dev.flash.data)
    fam = FAMILIES[chip]
    payload = image[fam.bootloader_end :] if kind == "qio" else image
    assert out["start"] == fam.bootloader_end
    assert after[fam.bootloader_end : fam.bootloader_end + len(payload)] == payload
    for start, end in protected_ranges(chip):
        assert after[start:end] == before[start:end]
    entries = BackupLibrary(datadir / "data" / "backups").list()
    # the verified backup came first (then the library's record of what the write left: derived, not read)
    assert [e.path.read_bytes() for e in entries if e.origin == "read"] == [before]
    assert [e.origin for e in entries] == ["derived", "read"]


@pytest.mark.parametrize("image_chip, chip", [
    ("BK7231N", "BK7231M"), ("BK7231M", "BK7231N"), ("BK7231T", "BK7231U"),
    ("BK7238", "BK7231N"), ("BK7252N", "BK7252"), ("BK7231U", "BK7238"),
])
def test_wrong_family_image_is_refused_on_the_chip(image_chip, chip, datadir, capsys):
    kind, image = family_image(image_chip)
    f = datadir / "other.bin"
    f.write_bytes(image)
    with sim_url(chip) as (url, dev):
        before = bytes(dev.flash.data)
        code = main(["write", "--port", url, str(f), "--no-backup", "-q"])
        after = bytes(dev.flash.data)
    err = capsys.readouterr().err
    assert code != 0 and image_chip in err and chip in err
    assert after == before


@pytest.mark.parametrize("image_chip", WRITABLE)
def test_every_build_is_refused_by_every_other_family(image_chip):
    _, image = family_image(image_chip)
    info = recognize(image)
    assert info.chip == image_chip
    for other in ALL:
        if other == image_chip:
            plan_write(info, image, other)
            continue
        with pytest.raises(ImageError):
            plan_write(info, image, other)


def test_read_only_families_are_never_written():
    kind, image = family_image("BK7238")
    info = recognize(image)
    info.chip = None  # even an image of unknown family
    with pytest.raises(ImageError, match="layout is not public"):
        plan_write(info, image, "BK7236")


def test_twins_without_a_banner_are_told_apart_by_the_code_key():
    """A UA without banner: the key says which family group; a mismatch with the chip is refused."""
    from bkbench.core.images import builders

    app = b"\x0e\x00\x00\xea\x14\xf0\x9f\xe5" + bytes(0x2000)
    zero_ua = builders.build_ua(app, coeffs=ZERO_KEY)
    info = recognize(zero_ua)
    assert info.chip is None and "BK7231M" in info.candidates and "BK7231N" not in info.candidates
    check_compatible(info, "BK7231M")
    with pytest.raises(ImageError, match="fits"):
        check_compatible(info, "BK7231N")


def test_restore_keeps_every_calibration_sector_of_the_family():
    """BK7238: both the RF sector OpenBK uses (0x1E0000) and the stock T1 one (0x1E3000) stay."""
    with sim_url("BK7238") as (url, dev):
        before = bytes(dev.flash.data)
        backup = bytearray(before)
        for off in (0x1E0000, 0x1E3000, 0x150000):
            backup[off : off + 16] = b"\x5a" * 16  # a backup of "another" chip: different calibration
        with Session(url, baud=921600) as s:
            s.connect()
            s.restore(bytes(backup), backup_first=False)
        after = bytes(dev.flash.data)
    assert after[0x1E0000:0x1E1000] == before[0x1E0000:0x1E1000]
    assert after[0x1E3000:0x1E4000] == before[0x1E3000:0x1E4000]
    assert after[0x150000:0x150010] == b"\x5a" * 16  # the rest was restored


@pytest.mark.parametrize("chip", ["BK7231Q", "unknown"])
def test_no_openbk_image_is_planned_for_a_chip_without_a_family(chip):
    kind, image = family_image("BK7231N")
    info = recognize(image)
    info.chip = None  # not even the family check would stop it
    with pytest.raises(ImageError, match="no app layout"):
        plan_write(info, image, chip)


def test_stock_t1_mac_is_found_in_its_own_rf_sector():
    """Stock Tuya T1 firmware keeps the TLV/MAC at 0x1E3000 (0x1E0000 blank): chip and analysis find it."""
    from bkbench.core.analysis.dump import analyze_dump

    flash = bytearray(create_device("BK7238").flash.data)
    flash[0x1E3000:0x1E4000] = flash[0x1E0000:0x1E1000]
    flash[0x1E3000 + 0x24 : 0x1E3000 + 0x2A] = bytes.fromhex("d8fc922d2222")
    flash[0x1E0000:0x1E1000] = b"\xff" * 0x1000
    with sim_url("BK7238", bytes(flash)) as (url, _):
        with Session(url) as s:
            assert s.connect().mac.lower() == "d8:fc:92:2d:22:22"
    assert analyze_dump(bytes(flash)).mac == "d8:fc:92:2d:22:22"
    info = recognize(bytes(flash))
    assert info.chip == "BK7238" and not any("TLV" in w for w in info.warnings)
