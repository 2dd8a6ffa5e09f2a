"""What a firmware file is and where it goes, decided by content (PROTOCOL-DETAILS.md 8.2-8.4).

Formats: ``qio`` (stored bootloader + app, a release QIO or a BL+APP dump), ``ua`` (stored app that
belongs at 0x11000), ``rbl`` / ``ug`` (OTA packages: never for UART), ``dump`` (a full flash image:
a restore), ``raw`` (anything else; only written at an offset the user gives).

The chip family comes from the bootloader CRC (table in core/chips.py), the OpenBK version banner in
the decrypted app (``OpenBK7231N 1.18.219 Nov 25 2025 ...``), the RF/TLV sector position of a dump,
or the exact release sizes. The file name only breaks ties.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Any

from ..analysis.beken_code import PHYS_BLOCK, crc16_bad_blocks, decrypt_physical
from ..chips import BOOTLOADERS, DEFAULT_CHIP, FAMILIES, FLASH_SIZES, KEY_NAMES, MAX_FLASH, Key, family, resolve
from ..errors import ImageError
from ..layout import BOOTLOADER_END, FLASH_2M, SECTOR, app_partition
from . import rbl as rblmod

UA_SIGNATURE = bytes.fromhex("2F07B59435FF2A9B")  # OpenBK app start encrypted for 0x10000 (both chips)
PLAIN_APP_SIGNATURE = bytes.fromhex("0E0000EA14F09FE5")  # ARM vectors of an unencrypted OpenBK app
DUMP_SIZES = FLASH_SIZES  # a full dump is a whole flash
MAX_IMAGE_SIZE = MAX_FLASH
_CHECK_BLOCKS = 8  # CRC16 blocks checked to call a region "stored code"

_BANNER = re.compile(
    rb"OpenBK(7231[NTUM]|72[0-9]{2}[A-Z]?) ([0-9][0-9A-Za-z._+-]{0,40}) [A-Z][a-z]{2} [ 0-9][0-9] [0-9]{4}"
)
_BANNER_LOOSE = re.compile(rb"OpenBK(7231[NTUM]|72[0-9]{2}N?) ([0-9]+\.[0-9]+\.[0-9]+[0-9A-Za-z._+-]{0,30})\x00")
# Weaker content hints, for builds without the version banner (older OpenBK generations):
# the default device name "OpenBK7231N_%02X...", the MQTT group, the "Built on ... version" line.
_DEVICE_NAME = re.compile(rb"OpenBK(7231[NTUM]|72[0-9]{2}N?)_%")
_MQTT_GROUP = re.compile(rb"\x00(bekens_[0-9a-z]{1,3})\x00")
MQTT_GROUPS = {f.mqtt_group.encode(): f.openbk_target for f in FAMILIES.values() if f.mqtt_group}
_BUILT = re.compile(rb"Buil[dt] on [A-Z][a-z]{2} [ 0-9][0-9] [0-9]{4} [0-9:]{8} version ([0-9][0-9A-Za-z._+-]{0,40})")
_NAME_CHIP = re.compile(r"bk(7231[ntum]|7236|7238|7252n?|7258)(?![0-9a-z])", re.IGNORECASE)
CODE_KEYS: tuple[Key, ...] = tuple(dict.fromkeys(f.code_key for f in FAMILIES.values() if f.code_key))

FORMATS = ("qio", "ua", "rbl", "ug", "dump", "raw")


@dataclass
class ImageInfo:
    format: str
    chip: str | None = None
    version: str | None = None
    write_offset: int | None = None  # flash address of the first written byte (None: not writable as is)
    skip: int = 0  # bytes of the file skipped before writing
    length: int = 0  # file bytes after `skip` (what a write would put at write_offset)
    size: int = 0  # file size
    description: str = ""
    warnings: list[str] = field(default_factory=list)
    chip_source: str | None = None  # bootloader, banner, size, rf-sector, app key, device-name, mqtt-group, name
    candidates: list[str] = field(default_factory=list)  # families the content allows (when not one)
    code_key: str | None = None  # the key the stored code decrypts with
    bootloader: str | None = None  # bootloader name from the CRC table
    rotation: int = 0  # dumps read from `rotation` with wrap-around (the file starts at that address)

    @property
    def writable(self) -> bool:
        return self.write_offset is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "chip": self.chip,
            "version": self.version,
            "write_offset": self.write_offset,
            "skip": self.skip,
            "length": self.length,
            "size": self.size,
            "description": self.description,
            "warnings": list(self.warnings),
            "chip_source": self.chip_source,
            "bootloader": self.bootloader,
            "rotation": self.rotation,
            "candidates": list(self.candidates),
            "code_key": self.code_key,
        }

    def summary(self) -> str:
        """One human line: what it is and where it goes."""
        where = (
            f"written at 0x{self.write_offset:06X} (skipping 0x{self.skip:X} bytes, 0x{self.length:X} bytes)"
            if self.write_offset is not None
            else "not writable over UART as is"
        )
        return f"{self.description}; {where}"


@dataclass(frozen=True)
class WritePlan:
    start: int
    payload: bytes
    description: str
    includes_bootloader: bool = False
    banner: bytes | None = None  # what the firmware prints when it boots (checked after the reboot), if known
    dump: bool = False  # a full flash dump: written by a restore (the chip keeps its RF calibration)

    @property
    def end(self) -> int:
        return self.start + len(self.payload)


# --- helpers ---------------------------------------------------------------------------------


def _code_ok(data: bytes, blocks: int = _CHECK_BLOCKS) -> bool:
    """The first `blocks` 34-byte blocks carry valid CRC16s (and are not all erased)."""
    chunk = data[: blocks * PHYS_BLOCK]
    if len(chunk) < blocks * PHYS_BLOCK or chunk.count(0xFF) == len(chunk):
        return False
    return not crc16_bad_blocks(chunk)


def _bootloader_at(data: bytes, pos: int = 0):
    """Table entry of the bootloader stored at `pos` (CRC over 256 or 257 bytes), or None."""
    head = data[pos : pos + 257]
    if len(head) < 257:
        return None
    for crc in (zlib.crc32(head), zlib.crc32(head[:256])):
        entry = BOOTLOADERS.get(crc)
        if entry is not None:
            return entry
    return None


def _starts_with_bootloader(data: bytes) -> bool:
    """Stored code at 0 that is not an app for 0x10000: a (possibly unknown) bootloader."""
    return _bootloader_at(data) is not None or (_code_ok(data) and not _is_encrypted_app(data))


def app_key(data: bytes) -> Key | None:
    """The code key under which `data` is stored app code for logical 0x10000 (valid CRC16s and ARM
    vectors after decryption), or None."""
    if not _code_ok(data, 2):
        return None
    if data[:8] == UA_SIGNATURE:
        return CODE_KEYS[0]
    for key in CODE_KEYS:
        plain = decrypt_physical(data[:PHYS_BLOCK], BOOTLOADER_END, key)
        if plain[3] == 0xEA and plain[4:8] == PLAIN_APP_SIGNATURE[4:8]:
            return key
    return None


def _is_encrypted_app(data: bytes) -> bool:
    return app_key(data) is not None


def find_banner(plain: bytes) -> tuple[str, str] | None:
    """(chip, version) from an OpenBK version banner in plain app bytes."""
    m = _BANNER.search(plain) or _BANNER_LOOSE.search(plain)
    if not m:
        return None
    return "BK" + m.group(1).decode(), m.group(2).decode("ascii", "replace")


def _banner_of_stored_app(stored: bytes, key: Key | None = None) -> tuple[str, str] | None:
    """Decrypt stored code that starts at flash 0x11000 and look for the banner."""
    stored = stored[: len(stored) - len(stored) % PHYS_BLOCK]
    if not stored:
        return None
    return find_banner(decrypt_physical(stored, BOOTLOADER_END, key or CODE_KEYS[0]))


def families_for_target(chip: str) -> list[str]:
    """Families an OpenBK build for `chip` (as its banner names it) runs on: BK7231N builds also
    make the BK7231M images (same target, zero-key code)."""
    target = chip[2:] if chip.upper().startswith("BK") else chip
    return [n for n, f in FAMILIES.items() if f.openbk_target == target] or [chip]


def _chip_from_name(name: str) -> str | None:
    hits = {"BK" + m.group(1).upper() for m in _NAME_CHIP.finditer(name)}
    return hits.pop() if len(hits) == 1 else None


def _version_from_name(name: str) -> str | None:
    m = re.search(r"(\d+\.\d+\.\d+)", name)
    return m.group(1) if m else None


def _chips_from_rf(data: bytes) -> list[str]:
    """Families whose RF/TLV sector position (or stock calibration sector) holds a TLV header."""
    return [name for name, fam in FAMILIES.items()
            if any(data[off : off + 4] == b"TLV\x00" for off in (fam.rf_offset, *fam.extra_rf))]


def _app_limit(chip: str | None) -> int:
    """End of the family's app partition (N stops at 0x12A000, T at 0x132000)."""
    return app_partition(chip or DEFAULT_CHIP).end


# Where any family's app partition ends: a banner is looked for up to there when the family is not known yet.
LARGEST_APP_END = max(app_partition(name).end for name, f in FAMILIES.items() if f.writable)


def _key_evidence(key: Key | None) -> tuple[str, list[str]]:
    return ("app key", [n for n, f in FAMILIES.items() if key is not None and f.code_key == key])


def _decide(info: ImageInfo, evidence: list[tuple[str, list[str]]], banner: tuple[str, str] | None = None) -> None:
    """Set chip / chip_source / candidates from the evidence (strongest first); say disagreements."""
    if banner is not None:
        info.version = banner[1]
    ident = resolve(evidence)
    if ident.disagreement:
        info.warnings.append(ident.disagreement)
        info.chip, info.chip_source, info.candidates = None, None, []
        return
    info.chip, info.chip_source = ident.chip, ident.source if ident.chip else None
    info.candidates = [] if ident.chip else ident.candidates


# --- recognisers -----------------------------------------------------------------------------


def ota_app_chip(app: bytes) -> tuple[str | None, str | None, str | None]:
    """(chip, version, source) of a plain OpenBK app, content only: the version banner first, then
    the default device name, then the MQTT group (older generations lack the banner)."""
    banner = find_banner(app)
    built = _BUILT.search(app)
    version = banner[1] if banner else (built.group(1).decode("ascii", "replace") if built else None)
    if banner:
        return banner[0], version, "banner"
    names = {m.group(1).decode() for m in _DEVICE_NAME.finditer(app)}
    if len(names) == 1:
        return "BK" + names.pop(), version, "device-name"
    groups = {MQTT_GROUPS[m.group(1)] for m in _MQTT_GROUP.finditer(app) if m.group(1) in MQTT_GROUPS}
    if len(groups) == 1:
        return "BK" + groups.pop(), version, "mqtt-group"
    return None, version, None


def _recognize_ota(data: bytes, info: ImageInfo) -> ImageInfo:
    info.format = "ug" if rblmod.is_ug(data) else "rbl"
    kind = "Tuya UG OTA package" if info.format == "ug" else "RBL OTA package"
    note = "OTA packages are for over-the-air updates (web UI or cloud), never for UART flashing"
    try:
        pkg = rblmod.parse_ota(data)
        app = rblmod.unpack_ota(pkg)
    except ImageError as exc:
        info.description = f"{kind} (damaged)"
        info.warnings += [str(exc), note]
        return info
    info.warnings += pkg.warnings
    # The OTA app is plain: it names its build target (BK7231N builds also serve BK7231M).
    info.chip, info.version, info.chip_source = ota_app_chip(app)
    if info.version is None and pkg.version:
        info.version = pkg.version
    info.description = f"{kind}, {pkg.rbl.algorithm_text}, app of {len(app)} bytes"
    info.warnings.append(note)
    return info


def _find_rotated_bootloader(data: bytes):
    """(rotation, entry) when a full dump was read starting at some sector with wrap-around."""
    size = len(data)
    for pos in range(SECTOR, size, SECTOR):
        entry = _bootloader_at(data, pos)
        if entry is not None:
            return (size - pos) % size, entry
    return None


def unrotate(data: bytes, rotation: int) -> bytes:
    """A dump read from address `rotation` with wrap-around, put back in flash order."""
    if not rotation:
        return bytes(data)
    cut = len(data) - rotation
    return bytes(data[cut:]) + bytes(data[:cut])


def _recognize_dump(data: bytes, info: ImageInfo) -> ImageInfo | None:
    entry = _bootloader_at(data, 0)
    rotation = 0
    if entry is None:
        found = _find_rotated_bootloader(data)
        if found is not None:
            rotation, entry = found
    flash = unrotate(data, rotation) if rotation else data
    has_boot = entry is not None or _code_ok(flash)
    app_ok = _code_ok(flash[BOOTLOADER_END:], 2)
    rf_chips = _chips_from_rf(flash)
    if not (has_boot or app_ok or rf_chips):
        return None
    info.format = "dump"
    info.rotation = rotation
    evidence: list[tuple[str, list[str]]] = []
    if entry is not None:
        info.bootloader = entry.name
        evidence.append(("bootloader", [entry.chip]))
    banner = None
    key = app_key(flash[BOOTLOADER_END:]) if app_ok else None
    if app_ok:
        limit = max(_app_limit(c) for c in (entry.chip if entry else None, *rf_chips))
        banner = _banner_of_stored_app(flash[BOOTLOADER_END:limit], key)
        if banner:
            evidence.append(("app banner", families_for_target(banner[0])))
    evidence.append(("rf-sector", rf_chips))
    evidence.append(_key_evidence(key))
    _decide(info, evidence, banner)
    info.code_key = KEY_NAMES.get(key) if key else None
    fam = family(info.chip)
    if info.chip is not None and (fam is None or not fam.writable):
        info.warnings.append(f"{info.chip} is not a supported chip for writes")
    if entry is None:
        info.warnings.append("bootloader not in the known table (or missing)")
    elif entry.synthetic:
        info.warnings.append(f"bootloader {entry.name}: a simulator-only table entry")
    if rotation:
        info.warnings.append(
            f"rotated dump: read starting at 0x{rotation:X} with wrap-around; "
            "it is put back in order before use"
        )
    if not rf_chips:
        info.warnings.append("no RF calibration (TLV) sector where expected")
    info.write_offset, info.skip, info.length = BOOTLOADER_END, BOOTLOADER_END, len(data) - BOOTLOADER_END
    what = f"full {len(data) // 0x100000} MiB flash dump"
    info.description = (
        f"{what} ({info.chip or _fits(info)}{', bootloader ' + entry.name if entry else ''}): a restore; "
        "the bootloader is only written when explicitly requested"
    )
    return info


def _fits(info: ImageInfo, article: str = "") -> str:
    if info.candidates:
        return "one of " + ", ".join(info.candidates)
    return f"{article}unknown chip"


QIO_SIZES: dict[int, list[str]] = {}
for _fam in FAMILIES.values():
    if _fam.qio_size:
        QIO_SIZES.setdefault(_fam.qio_size, []).append(_fam.name)


def _recognize_qio(data: bytes, info: ImageInfo) -> ImageInfo | None:
    key = app_key(data[BOOTLOADER_END:]) if len(data) > BOOTLOADER_END else None
    if key is None:
        return None
    entry = _bootloader_at(data, 0)
    if entry is None and not _code_ok(data):
        return None
    info.format = "qio"
    evidence: list[tuple[str, list[str]]] = []
    if entry is not None:
        info.bootloader = entry.name
        evidence.append(("bootloader", [entry.chip]))
    else:
        info.warnings.append("bootloader not in the known table")
    evidence.append(("size", QIO_SIZES.get(len(data), [])))
    limit = _app_limit(entry.chip if entry else None)
    banner = _banner_of_stored_app(data[BOOTLOADER_END : max(limit, LARGEST_APP_END)], key)
    if banner:
        evidence.append(("banner", families_for_target(banner[0])))
    evidence.append(_key_evidence(key))
    _decide(info, evidence, banner)
    info.code_key = KEY_NAMES.get(key)
    info.write_offset, info.skip = BOOTLOADER_END, BOOTLOADER_END
    info.length = len(data) - BOOTLOADER_END
    info.description = (
        f"QIO image (bootloader + app) for {info.chip or _fits(info, 'an ')}"
        f"{' OpenBK ' + info.version if info.version else ''}"
    )
    return info


def _recognize_ua(data: bytes, info: ImageInfo) -> ImageInfo | None:
    key = app_key(data)
    if key is None:
        return None
    info.format = "ua"
    banner = _banner_of_stored_app(data[: LARGEST_APP_END - BOOTLOADER_END], key)
    evidence = [("banner", families_for_target(banner[0]))] if banner else []
    _decide(info, evidence + [_key_evidence(key)], banner)
    info.code_key = KEY_NAMES.get(key)
    info.write_offset, info.skip, info.length = BOOTLOADER_END, 0, len(data)
    obk = f" OpenBK {info.version}" if info.version else ""
    info.description = f"UA app image for {info.chip or _fits(info, 'an ')}{obk}"
    if banner is None:
        info.warnings.append("no OpenBK version banner found: the chip family cannot be checked")
    return info


def recognize(data: bytes, name: str = "") -> ImageInfo:
    """Say what `data` is and where it would be written. Raises only ImageError."""
    try:
        return _recognize(bytes(data), name)
    except ImageError:
        raise
    except Exception as exc:  # a malformed file must never crash the caller with something else
        raise ImageError(f"Cannot analyse this file: {exc}.") from exc


def _recognize(data: bytes, name: str) -> ImageInfo:
    info = ImageInfo(format="raw", size=len(data), length=len(data))
    if not data:
        info.description = "empty file"
        info.warnings.append("the file is empty")
        return info
    if len(data) > MAX_IMAGE_SIZE:
        info.description = f"{len(data)} bytes: larger than any supported Beken flash"
        info.warnings.append("too large to be a Beken flash image")
        return info
    result: ImageInfo | None
    if rblmod.is_ug(data) or rblmod.is_rbl(data):
        result = _recognize_ota(data, info)
    elif len(data) in DUMP_SIZES:
        result = _recognize_dump(data, info)
    elif len(data) > BOOTLOADER_END and _starts_with_bootloader(data):
        result = _recognize_qio(data, info)
    else:
        result = _recognize_ua(data, info)
    if result is None:
        result = _recognize_raw(data, info)
    _name_hint(result, name)
    if result.version is None and name and result.format != "raw":
        result.version = _version_from_name(name)
    return result


def _name_hint(info: ImageInfo, name: str) -> None:
    """The file name is the last hint: used only when the content names no chip, and said."""
    guess = _chip_from_name(name) if name else None
    if info.chip is not None or guess is None or info.format == "raw":
        return
    if any("chip unknown" in w for w in info.warnings):
        return  # the content contradicts itself: a name does not settle that
    if info.candidates and guess not in info.candidates:
        info.warnings.append(f"the file name says {guess} but the content fits {', '.join(info.candidates)}")
        return
    info.chip, info.chip_source, info.candidates = guess, "name", []
    info.warnings.append(f"chip {guess} taken from the file name only")


def _recognize_raw(data: bytes, info: ImageInfo) -> ImageInfo:
    info.format = "raw"
    info.write_offset, info.skip, info.length = None, 0, len(data)
    if data[:8] == PLAIN_APP_SIGNATURE:
        banner = find_banner(data)
        if banner:
            info.chip, info.version = banner
            info.chip_source = "banner"
        info.description = "plain (unencrypted) app binary"
        info.warnings.append("a plain app must be encrypted and CRC-packed (UA) before it can be flashed")
    elif data.count(0xFF) == len(data):
        info.description = "all 0xFF (erased flash)"
    else:
        info.description = f"unrecognised data, {len(data)} bytes"
    info.warnings.append("raw data is only written at an offset you give explicitly")
    return info


# --- compatibility and planning ------------------------------------------------------------


def _norm_chip(chip: str) -> str:
    chip = chip.upper()
    return chip if chip.startswith("BK") else "BK" + chip


def check_compatible(info: ImageInfo, chip: str) -> None:
    """Raise ImageError when the image is known to be for another chip family than `chip`."""
    chip = _norm_chip(chip)
    what = {"qio": "QIO image", "ua": "UA app", "dump": "flash dump", "rbl": "OTA file", "ug": "OTA file"}
    if info.chip is not None and info.chip != chip:
        raise ImageError(
            f"This {what.get(info.format, 'image')} is for {info.chip} (from its {info.chip_source}) "
            f"but the chip is {chip}: writing it would leave the device unbootable.",
            hint=f"Use the {chip} build of OpenBK (bkbench fetch --chip {chip.lower()}).",
        )
    if info.chip is None and info.candidates and chip not in info.candidates:
        raise ImageError(
            f"This {what.get(info.format, 'image')} fits {' or '.join(info.candidates)} (from its code key) "
            f"but the chip is {chip}: writing it would leave the device unbootable.",
            hint=f"Use the {chip} build of OpenBK (bkbench fetch --chip {chip.lower()}).",
        )


def _uart_file_hint(chip: str) -> str:
    fam = family(chip)
    if fam is None:
        return "the QIO or UA release file"
    return f"the OpenBK{fam.openbk_target}_{fam.image_kind}_ release file"


def _check_whole_app(info: ImageInfo, app: bytes, explicit: bool = False) -> None:
    """Refuse an app that is cut short: the stored app is a run of 34-byte blocks (32 bytes + CRC16),
    so an image cut anywhere else ends inside a block, and its last block must carry a valid CRC16.
    An OpenBK app also carries its version banner; without it the file may be a slice of something
    else (the first 1 MiB of a dump looks like a QIO image too) or cut before the banner."""
    used = len(app.rstrip(b"\xff"))
    whole = -(-used // PHYS_BLOCK) * PHYS_BLOCK
    if used == 0:
        raise ImageError("The image holds no app (only 0xFF after the bootloader).")
    if whole > len(app) or crc16_bad_blocks(app[whole - PHYS_BLOCK: whole]):
        raise ImageError(f"The {info.format.upper()} image is cut short: its app ends inside a 34-byte block "
                         f"(0x{used:X} bytes), so the file is truncated or damaged.",
                         hint="download or build the image again")
    if info.version is None and not explicit:
        raise ImageError(f"No OpenBK version banner in this {info.format.upper()} image: it may be truncated, a "
                         "slice of a dump, or not OpenBK; bkbench writes UA/QIO images only when it can tell what "
                         "they are.",
                         hint=f"to put back a whole backup use `bkbench restore`; if you know this app is whole, "
                              f"give its address explicitly (--start 0x{BOOTLOADER_END:X})")


def plan_write(
    info: ImageInfo,
    data: bytes,
    chip: str,
    replace_bootloader: bool = False,
    offset: int | None = None,
    flash_size: int = FLASH_2M,
) -> WritePlan:
    """The bytes to put at which flash address for `data` (recognised as `info`) on `chip`.

    Never below the family's bootloader end unless `replace_bootloader`; OTA packages are refused;
    raw data needs an explicit `offset`. The chip family must match (check_compatible) and be one
    whose layout is known.
    """
    chip = _norm_chip(chip)
    if info.format in ("rbl", "ug"):
        raise ImageError(
            "This is an OTA package (RBL/UG): it is for over-the-air updates and must never be flashed "
            f"over UART. Use {_uart_file_hint(chip)} instead."
        )
    check_compatible(info, chip)
    fam = family(chip)
    if fam is None and info.format in ("qio", "ua"):
        raise ImageError(f"The chip is {chip}: bkbench knows no app layout for it, so it writes no OpenBK image.")
    if fam is not None and not fam.writable and info.format != "raw":
        raise ImageError(
            f"bkbench knows how to identify and back up {chip} but its flash layout is not public: "
            "it plans no image writes for it."
        )
    if len(data) != info.size:
        raise ImageError("The data does not match the recognised file (size differs).")
    boot_end = fam.bootloader_end if fam else BOOTLOADER_END
    includes_boot = False
    if info.format == "dump":
        flash = unrotate(data, info.rotation)
        if len(flash) > flash_size:
            raise ImageError(f"The dump is {len(flash)} bytes but the flash has only {flash_size}.")
        if info.chip is None and replace_bootloader:
            raise ImageError("The dump's chip is unknown: its bootloader will not be restored.")
        start = 0 if replace_bootloader else boot_end
        payload = flash[start:]
        includes_boot = replace_bootloader
        desc = f"restore of a full dump from 0x{start:06X}"
    elif info.format == "qio":
        start = 0 if replace_bootloader else boot_end
        payload = data[start:]
        includes_boot = replace_bootloader
        desc = "QIO image, " + ("bootloader included" if replace_bootloader else "app part (bootloader kept)")
    elif info.format == "ua":
        start, payload = boot_end, bytes(data)
        desc = "UA app"
    else:
        if offset is None:
            raise ImageError("This file is not a recognised image: give the flash offset to write it at.")
        start, payload, desc = offset, bytes(data), f"raw data at 0x{offset:06X}"
    if offset is not None and info.format != "raw" and offset != start:
        raise ImageError(
            f"A {info.format} image goes to 0x{start:06X}; refusing the custom offset 0x{offset:06X}."
        )
    if start < boot_end and not replace_bootloader:
        raise ImageError(
            f"This write would overwrite the bootloader (below 0x{boot_end:X}) and was not requested."
        )
    if start % SECTOR:
        raise ImageError(f"Write start 0x{start:X} is not on a 4 KiB sector boundary.")
    end = start + len(payload)
    if end > flash_size:
        raise ImageError(f"The image ends at 0x{end:X}, past the end of the 0x{flash_size:X}-byte flash.")
    if info.format in ("qio", "ua"):
        _check_whole_app(info, data[boot_end:] if info.format == "qio" else bytes(data), explicit=offset is not None)
    if info.format in ("qio", "ua") and end > _app_limit(chip):
        raise ImageError(
            f"The app image ends at 0x{end:X}, past the {chip} app partition (ends 0x{_app_limit(chip):X})."
        )
    banner = b"OpenBK" if info.version and info.format in ("qio", "ua", "dump") else None
    return WritePlan(start=start, payload=payload, description=desc, includes_bootloader=includes_boot,
                     banner=banner, dump=info.format == "dump")
