"""Chip families, bootloader dialects and the tables that identify them (PROTOCOL.md sections 2 and 4).

Every family is one `Family` row in `FAMILIES` (the esptool way: data, not code paths). The
operations ask the table; nothing outside this module and core/layout.py names a family. Each row
says where its facts come from (`verified` / `assumed`), which README's chip table repeats.

Identification combines four pieces of evidence (`identify`): the bootloader CRC, the chip-ID
register, the eFuse code key and the boot-version string. When they disagree the result says so and
names no chip: a wrong guess would send the wrong image or protect the wrong sectors.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Dialect(str, enum.Enum):
    """Which command set and CRC semantics the code answering on UART1 speaks."""

    FULL = "FULL"  # BK7231N BootROM, BK7238: registers, SR, MID, inclusive CRC end
    BASIC_TUYA = "BASIC_TUYA"  # Tuya bk7231s bootloaders on BK7231T: boot version, exclusive end
    BASIC_BEKEN = "BASIC_BEKEN"  # Beken bootloaders on BK7231U/Q, BK7252

    @property
    def crc_end_inclusive(self) -> bool:
        return self is Dialect.FULL

    @property
    def crc_locks_protection(self) -> bool:
        # Tuya/Beken bootloaders re-protect flash after every CheckCRC (PROTOCOL.md 5).
        return self is not Dialect.FULL

    @property
    def has_registers(self) -> bool:
        return self is Dialect.FULL

    @property
    def has_boot_version(self) -> bool:
        return self is Dialect.BASIC_TUYA


Key = tuple[int, int, int, int]
TUYA_KEY: Key = (0x510FB093, 0xA3CBEADC, 0x5993A17E, 0xC7ADEB03)
ZERO_KEY: Key = (0, 0, 0, 0)
KEY_NAMES = {TUYA_KEY: "Tuya key 510fb093 a3cbeadc 5993a17e c7adeb03", ZERO_KEY: "all-zero key"}

CHIP_ID_REGISTER = 0x00800000  # SCTRL_CHIP_ID
DEVICE_ID_REGISTER = 0x44010004  # read first on BK7236 / BK7258 (GUI BKChipIdentity.cs)
EFUSE_CTRL = 0x00800074
EFUSE_OPTR = 0x00800078
# The UART clock of every Beken family here: a baud rate is this divided by an integer (`UART_CLOCK / baud` in
# Beken's SDK uart driver), so the rate the chip really runs is UART_CLOCK / (UART_CLOCK // baud).
UART_CLOCK = 26_000_000

MiB = 0x100000
# Whole-flash sizes of the SPI parts Beken modules carry (core/flash_ids.py): a full dump has one of them.
FLASH_SIZES = (2 * MiB, 4 * MiB, 8 * MiB, 16 * MiB)
MIN_FLASH, MAX_FLASH = 0x40000, FLASH_SIZES[-1]  # plausible flash sizes at all (a 256 KiB part to 16 MiB)
DEFAULT_CHIP = "BK7231N"  # assumed until a chip is connected or a file names one (the commonest module)


@dataclass(frozen=True)
class Family:
    """One Beken chip family: how it answers, how its flash is laid out, which OpenBK build it takes."""

    name: str
    dialect: Dialect
    chip_ids: tuple[int, ...]  # values its ID register reads (empty: not readable over UART)
    code_key: Key | None  # key its code is encrypted with (None: not public)
    flash_sizes: tuple[int, ...]
    rf_offset: int  # RF calibration / TLV sector (MAC at +0x24)
    obk_config_offset: int | None  # OpenBK config sector (None: not public)
    openbk_target: str  # the OpenBK build (`OpenBK<target>_...`, banner `OpenBK<target> <ver>`)
    image_kind: str  # release file bkbench writes: "QIO" (bootloader + app) or "UA" (app only)
    id_register: int = CHIP_ID_REGISTER
    key_tells_family: bool = False  # the eFuse key is read to tell this family from a twin (N / M)
    app: tuple[int, int] = (0x11000, 0x119000)  # app partition (start, size)
    ota: tuple[int, int] = (0x12A000, 0xA6000)
    tuya_kv: tuple[int, int] | None = (0x1ED000, 0x13000)
    extra_rf: tuple[int, ...] = ()  # other sectors stock firmware keeps calibration in (protected too)
    writable: bool = True  # bkbench plans image writes for it (False: layout not public)
    verified: str = ""
    assumed: str = ""
    modules: tuple[str, ...] = ()
    mqtt_group: str = ""  # OpenBK's default MQTT group for this build (src/new_common.h DEF_MQTT_GROUP)
    qio_size: int | None = None  # the OpenBK release QIO file's exact size (bootloader + app container)
    obk_pins: int = 32  # entries in the OpenBK config's pin arrays on this build (new_pins.h MAX_PIN_ROLES)

    @property
    def default_flash(self) -> int:
        return self.flash_sizes[0]

    @property
    def bootloader_end(self) -> int:
        return self.app[0]


_N_QIO_SIZE = 1_220_464  # bootloader + the 0x108700-byte app container of the N release QIO
_T_LIKE: dict[str, Any] = {"app": (0x11000, 0x121000), "ota": (0x132000, 0x96000)}

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "BK7231N", Dialect.FULL, (0x7231C,), TUYA_KEY, (2 * MiB,), 0x1D0000, 0x1D1000, "7231N", "QIO",
            key_tells_family=True, mqtt_group="bekens_n", qio_size=_N_QIO_SIZE,
            verified="bootloader CRC and chip ID 0x7231C: bk7231tools tables and peers against the simulator; "
            "layout, RF and config offsets: fixture dumps, GUI flash tool",
            modules=("CB2S", "CB3S", "WB2S", "T34"),
        ),
        Family(
            "BK7231M", Dialect.FULL, (0x7231C,), ZERO_KEY, (2 * MiB,), 0x1D0000, 0x1D1000, "7231N", "QIO",
            key_tells_family=True, qio_size=_N_QIO_SIZE,
            verified="chip ID 0x7231C shared with N and the all-zero eFuse key: GUI flash tool "
            "(BKChipIdentity.cs, N/M key check); RF/config offsets: GUI",
            assumed="no public bootloader CRC: the simulator uses a synthetic one; OpenBK M builds carry the "
            "N banner (built from the N target) with zero-key code",
            modules=("CB2S (M)",),
        ),
        Family(
            "BK7231T", Dialect.BASIC_TUYA, (0x7231A,), TUYA_KEY, (2 * MiB,), 0x1E0000, 0x1E1000, "7231T", "UA",
            **_T_LIKE, mqtt_group="bekens_t", qio_size=MiB,
            verified="bootloader CRCs and boot version: bk7231tools tables and peers against the simulator; "
            "layout: fixture dumps",
            modules=("WB2S", "WB3S", "CB2S (T)"),
        ),
        Family(
            "BK7231U", Dialect.BASIC_BEKEN, (0x0001,), ZERO_KEY, (2 * MiB,), 0x1E0000, 0x1E1000, "7231U", "UA",
            **_T_LIKE, mqtt_group="bekens_u",
            verified="bootloader CRC 0x2739019F (2 MiB, BASIC_BEKEN): bk7231tools table; RF/config offsets: GUI",
            assumed="app/OTA partitions as on T (LibreTiny's former bk7231u layout); zero code key from the "
            "bk7231tools bootloader comment",
        ),
        Family(
            "BK7238", Dialect.FULL, (0x7238,), ZERO_KEY, (2 * MiB,), 0x1E0000, 0x1E1000, "7238", "QIO",
            app=(0x11000, 0x11B000), ota=(0x12C000, 0xB5000), tuya_kv=(0x1F5000, 0xB000), extra_rf=(0x1E3000,),
            mqtt_group="bekens_8s",
            verified="bootloader CRCs 0xF42F8C32 (T1 2.0.0) and 0x6BEB0924 (1.0.14), chip ID 0x7238: bk7231tools "
            "tables and peers against the simulator; RF 0x1E0000 / config 0x1E1000: GUI; stock T1 RF at "
            "0x1E3000 and app/download partitions: LibreTiny beken-7238-tuya",
            assumed="zero code key from the bk7231tools bootloader comment (the GUI reads only 4 eFuse bytes); "
            "the Tuya download partition (to 0x1E1000) overlaps the RF sector OpenBK uses: it is cut at 0x1E0000",
            modules=("T1-2S", "T1-3S", "T1-U", "CB3S (T1)"),
        ),
        Family(
            "BK7252", Dialect.BASIC_BEKEN, (0x7252,), ZERO_KEY, (2 * MiB, 4 * MiB), 0x1E0000, 0x1E1000,
            "7252", "UA", **_T_LIKE, extra_rf=(0x3FE000,), mqtt_group="bekens_52s", obk_pins=48,
            verified="bootloader CRCs 0x39F9B50C / 0xE3A27C26: bk7231tools table and peers; RF/config: GUI",
            assumed="partitions below 2 MiB as on T; 4 MiB parts keep RF at 0x3FE000 (LibreTiny)",
        ),
        Family(
            "BK7252N", Dialect.FULL, (0x7252A,), ZERO_KEY, (2 * MiB, 4 * MiB), 0x1E0000, 0x1E1000, "7252N", "QIO",
            **_T_LIKE, mqtt_group="bekens_52n", obk_pins=48,
            verified="chip ID 0x7252A: GUI flash tool; RF/config offsets: GUI",
            assumed="no public bootloader CRC (simulator: synthetic); FULL dialect because the GUI reads its "
            "chip ID, ROM and eFuse; partitions as on T",
        ),
        Family(
            "BK7236", Dialect.FULL, (0x7236,), None, (4 * MiB,), 0x3FE000, None, "7236", "QIO",
            id_register=DEVICE_ID_REGISTER, writable=False,
            verified="chip ID 0x7236 at 0x44010004 and RF 0x3FE000: GUI flash tool",
            assumed="FULL dialect and bootloader size; no public layout or code key: bkbench reads and backs "
            "it up but plans no image writes",
        ),
        Family(
            "BK7258", Dialect.FULL, (0x7236,), None, (8 * MiB,), 0x7FE000, None, "7258", "QIO",
            id_register=DEVICE_ID_REGISTER, writable=False,
            verified="chip ID shared with BK7236 ('BK7236 / BK7258 family') and RF 0x7FE000: GUI flash tool",
            assumed="told from BK7236 only by the flash size; no public layout or code key: read-only",
        ),
    )
}

FAMILY_ORDER = tuple(FAMILIES)
SUPPORTED_CHIPS = tuple(n for n, f in FAMILIES.items() if f.writable)
ALL_CHIPS = FAMILY_ORDER


def family(chip: str | None) -> Family | None:
    if not chip:
        return None
    chip = chip.upper()
    if not chip.startswith("BK"):
        chip = "BK" + chip
    return FAMILIES.get(chip)


@dataclass(frozen=True)
class Bootloader:
    crc: int  # zlib CRC-32 of flash 0..256 (257 bytes on FULL, 256 on the others)
    name: str
    chip: str
    dialect: Dialect
    version: str
    flash_size: int | None = None  # when the table fixes it (no MID on BASIC dialects)
    synthetic: bool = False  # made up for the simulator: no real chip has been seen with it
    # What its BootVersion (0x11) answers, where the code was run (REALCODE.md B.1): it can differ from the
    # name the CRC tables give it (0x4B31E44D is "bk7231s 1.0.3" in every table, but says BK7231S_1.0.4).
    reports: str | None = None


BOOTLOADERS: dict[int, Bootloader] = {
    b.crc: b
    for b in (
        Bootloader(0xE14191BA, "bl_bk7231n 1.0.1", "BK7231N", Dialect.FULL, "1.0.1"),
        Bootloader(0xC1ECA871, "bk7231s 1.0.1", "BK7231T", Dialect.BASIC_TUYA, "1.0.1", 0x200000),
        Bootloader(0x4B31E44D, "bk7231s 1.0.3", "BK7231T", Dialect.BASIC_TUYA, "1.0.3", 0x200000,
                   reports="BK7231S_1.0.4"),
        Bootloader(0xBA54C1B8, "bk7231s 1.0.5", "BK7231T", Dialect.BASIC_TUYA, "1.0.5", 0x200000,
                   reports="BK7231S_1.0.5"),
        Bootloader(0xE5CBC953, "bk7231s 1.0.6", "BK7231T", Dialect.BASIC_TUYA, "1.0.6", 0x200000),
        Bootloader(0x2739019F, "bk7231u 1.0.6", "BK7231U", Dialect.BASIC_BEKEN, "1.0.6", 0x200000),
        Bootloader(0xF0231EF6, "bk7231q", "BK7231Q", Dialect.BASIC_BEKEN, ""),
        Bootloader(0xFF5A3EAC, "bk7231q tysdk", "BK7231Q", Dialect.BASIC_BEKEN, ""),
        Bootloader(0x39F9B50C, "bk7252 0.1.3", "BK7252", Dialect.BASIC_BEKEN, "0.1.3"),
        Bootloader(0xE3A27C26, "bk7252 sdk", "BK7252", Dialect.BASIC_BEKEN, ""),
        Bootloader(0xF42F8C32, "T1 2.0.0", "BK7238", Dialect.FULL, "2.0.0"),
        Bootloader(0x6BEB0924, "bk7238 1.0.14", "BK7238", Dialect.FULL, "1.0.14"),
        # Synthetic entries: CRCs of the simulator's made-up bootloaders (core/sim/synth.py) for
        # families whose real bootloader CRC is not public. Marked so every output says so.
        Bootloader(0x5EB7231D, "synthetic bk7231m (simulator only)", "BK7231M", Dialect.FULL, "sim", synthetic=True),
        Bootloader(0x5EB7252A, "synthetic bk7252n (simulator only)", "BK7252N", Dialect.FULL, "sim", synthetic=True),
        Bootloader(0x5EB72360, "synthetic bk7236 (simulator only)", "BK7236", Dialect.FULL, "sim", synthetic=True),
        Bootloader(0x5EB72580, "synthetic bk7258 (simulator only)", "BK7258", Dialect.FULL, "sim", synthetic=True),
    )
}

# The bootloader the simulator synthesises for each family (its CRC is forged to this entry).
DEFAULT_BOOTLOADER: dict[str, int] = {
    "BK7231N": 0xE14191BA, "BK7231M": 0x5EB7231D, "BK7231T": 0xBA54C1B8, "BK7231U": 0x2739019F,
    "BK7238": 0xF42F8C32, "BK7252": 0x39F9B50C, "BK7252N": 0x5EB7252A, "BK7236": 0x5EB72360,
    "BK7258": 0x5EB72580,
}
# The built-in demo plug's bootloader (core/demo_image.py): synthetic text, on no real chip. Registered so
# the demo analyses like a real dump without passing the synthetic bytes off as Beken's bootloader.
DEMO_BOOTLOADER = Bootloader(0x08D47718, "bkbench demo bootloader (synthetic)", "BK7231N", Dialect.FULL, "demo",
                             synthetic=True)
BOOTLOADERS[DEMO_BOOTLOADER.crc] = DEMO_BOOTLOADER

# CRC-32 of 257 zero bytes: the bootloader CRC a chip reports when all flash reads return zeros
# (strap / boot-mode problem, bk7231tools issue 30).
ZERO_FLASH_BOOT_CRC = 0xB7BFA0CE
CRC_FF_4K = 0xF154670A

# Chip-ID register value -> one name (the first family with it; `families_for_id` gives them all).
CHIP_IDS: dict[int, str] = {0x7231: "BK7231Q"}
for _f in FAMILIES.values():
    for _cid in _f.chip_ids:
        CHIP_IDS.setdefault(_cid, _f.name)


def families_for_id(chip_id: int) -> list[str]:
    return [f.name for f in FAMILIES.values() if chip_id in f.chip_ids] or (
        ["BK7231Q"] if chip_id == 0x7231 else []
    )


def name_as_reported(bl: Bootloader, boot_version: str | None) -> str:
    """The bootloader's name by what its code says (BootVersion, e.g. BK7231S_1.0.4) when that differs from
    the CRC table's version: the code wins (REALCODE.md B.1; Globe's 0x4B31E44D is "1.0.3" in every table)."""
    if not boot_version or "_" not in boot_version or not bl.version:
        return bl.name
    said = boot_version.rsplit("_", 1)[1].strip()
    if not said or said == bl.version or not bl.name.endswith(bl.version):
        return bl.name
    return bl.name[: -len(bl.version)] + said


def bootloader_by_crc(crc: int) -> Bootloader | None:
    return BOOTLOADERS.get(crc)


def boot_crc_length(dialect: Dialect) -> int:
    """How many bytes the identification CRC (0, 256) covers on a dialect."""
    return 257 if dialect.crc_end_inclusive else 256


def key_matches(code_key: Key | None, key: tuple[int, ...]) -> bool:
    """`key` is the whole code key or its first words (as far as it was read)."""
    return code_key is not None and 0 < len(key) <= 4 and code_key[: len(key)] == tuple(key)


def key_name(key: tuple[int, ...]) -> str:
    for full, name in KEY_NAMES.items():
        if key_matches(full, key):
            return name if len(key) == 4 else f"{name} (first {4 * len(key)} bytes read)"
    return "non-standard key " + " ".join(f"{w:08x}" for w in key)


def families_for_key(key: tuple[int, ...]) -> list[str]:
    return [f.name for f in FAMILIES.values() if key_matches(f.code_key, key)]


# --- identification from evidence -------------------------------------------------------------


@dataclass
class Identity:
    """What the evidence says the chip is; `chip` is None when it is ambiguous or contradictory."""

    chip: str | None
    candidates: list[str]
    source: str | None  # the evidence that named it first
    evidence: dict[str, list[str]] = field(default_factory=dict)
    disagreement: str | None = None

    @property
    def ambiguous(self) -> bool:
        return self.chip is None and self.disagreement is None and len(self.candidates) > 1


def resolve(evidence: list[tuple[str, list[str]]]) -> Identity:
    """Intersect what each piece of evidence allows, strongest first.

    A piece that leaves nothing is a disagreement: it is reported with the pieces before it and
    no chip is named. Pieces that allow nothing known (empty lists) are ignored.
    """
    cands: list[str] | None = None
    source: str | None = None
    seen: dict[str, list[str]] = {}
    for name, allowed in evidence:
        if not allowed:
            continue
        seen[name] = list(allowed)
        if cands is None:
            cands, source = list(allowed), name
            continue
        narrowed = [c for c in cands if c in allowed]
        if not narrowed:
            before = " and ".join(f"the {k} says {' or '.join(v)}" for k, v in seen.items() if k != name)
            msg = f"{before}, but the {name} says {' or '.join(allowed)}: chip unknown"
            return Identity(None, [], None, seen, msg)
        cands = narrowed
    if not cands:
        return Identity(None, [], None, seen)
    return Identity(cands[0] if len(cands) == 1 else None, cands, source, seen)


def identify(
    bootloader: Bootloader | None = None,
    chip_id: int | None = None,
    key: tuple[int, ...] | None = None,
    boot_version: str | None = None,
    flash_size: int | None = None,
) -> Identity:
    """The chip from bootloader CRC, chip-ID register, eFuse key and boot version together."""
    evidence: list[tuple[str, list[str]]] = []
    if bootloader is not None:
        evidence.append(("bootloader", [bootloader.chip]))
    if chip_id is not None:
        evidence.append(("chip ID", families_for_id(chip_id)))
    if boot_version and boot_version.upper().startswith("BK7231S"):
        evidence.append(("boot version", ["BK7231T"]))
    ident = resolve(evidence)
    # The eFuse key only separates twins that share a chip ID (N / M); elsewhere it is not read.
    if key is not None and ident.disagreement is None:
        twins = [c for c in ident.candidates if FAMILIES.get(c) and FAMILIES[c].key_tells_family]
        if twins:
            by_key = [c for c in twins if key_matches(FAMILIES[c].code_key, key)]
            name = f"eFuse key ({key_name(key)})"
            ident = resolve(evidence + [(name, by_key or ["a chip with a non-standard key"])])
    if ident.chip is None and ident.disagreement is None and flash_size and len(ident.candidates) > 1:
        by_size = [c for c in ident.candidates if FAMILIES.get(c) and FAMILIES[c].default_flash == flash_size]
        if len(by_size) == 1:
            ident = resolve(evidence + [("flash size", by_size)])
    return ident
