"""Flash layouts per chip family (PROTOCOL.md section 7, PROTOCOL-DETAILS.md 8.1), built from core/chips.py.

BK7231N/M and BK7231T keep their hand-checked maps (verified on fixture dumps). The other families
get a map derived from their table row: bootloader, app, OTA, RF/TLV, OpenBK config, the sector
after it, OpenBK's flash variables and the Tuya storage. Protected: the bootloader and every
RF/calibration sector the family may use.

OpenBK's flash variables (easyflash: boot count, channel states, SSID choice) sit at OBK_VARS on every
Beken chip since OpenBK #1969 (2026-02); older builds kept them two sectors after the config.
"""

from __future__ import annotations

from dataclasses import dataclass

from .chips import FAMILIES, Family, family

SECTOR = 0x1000
BLOCK = 0x10000
BOOTLOADER_END = 0x11000
FLASH_2M = 0x200000
OBK_VARS = (0x1E5000, 0x8000)  # 0x1E5000-0x1ECFFF


@dataclass(frozen=True)
class Partition:
    name: str
    kind: str  # bootloader, app, ota, rf, obk_config, obk_vars, net, tuya_kv, free
    start: int
    size: int
    protected: bool = False  # never erased or written without an explicit request

    @property
    def end(self) -> int:
        return self.start + self.size

    def contains(self, addr: int) -> bool:
        return self.start <= addr < self.end


def _n_layout() -> tuple[Partition, ...]:
    return (
        Partition("Bootloader", "bootloader", 0x000000, 0x11000, protected=True),
        Partition("Application", "app", 0x011000, 0x119000),
        Partition("OTA download", "ota", 0x12A000, 0xA6000),
        Partition("RF calibration / TLV", "rf", 0x1D0000, 0x1000, protected=True),
        Partition("OpenBK config", "obk_config", 0x1D1000, 0x1000),
        Partition("Net / TLV", "net", 0x1D2000, 0x1000),
        Partition("Free", "free", 0x1D3000, 0x12000),
        Partition("OpenBK flash vars", "obk_vars", *OBK_VARS),
        Partition("Tuya KV storage", "tuya_kv", 0x1ED000, 0x13000),
    )


def _t_layout() -> tuple[Partition, ...]:
    return (
        Partition("Bootloader", "bootloader", 0x000000, 0x11000, protected=True),
        Partition("Application", "app", 0x011000, 0x121000),
        Partition("OTA download", "ota", 0x132000, 0x96000),
        Partition("Free", "free", 0x1C8000, 0x18000),
        Partition("RF calibration / TLV", "rf", 0x1E0000, 0x1000, protected=True),
        Partition("OpenBK config", "obk_config", 0x1E1000, 0x1000),
        Partition("Net", "net", 0x1E2000, 0x1000),
        Partition("Free", "free", 0x1E3000, 0x2000),
        Partition("OpenBK flash vars", "obk_vars", *OBK_VARS),
        Partition("Tuya KV storage", "tuya_kv", 0x1ED000, 0x13000),
    )


def _fill(parts: list[Partition], end: int) -> tuple[Partition, ...]:
    """Sort, clip a partition where a protected one begins, drop other overlaps (first one wins) and
    name the gaps "Free"."""
    out: list[Partition] = []
    pos = 0
    guards = sorted(p.start for p in parts if p.protected)
    for p in sorted(parts, key=lambda p: (p.start, not p.protected)):
        if p.start < pos:
            continue
        stop = next((g for g in guards if p.start < g < p.end), None)
        if stop is not None and not p.protected:
            p = Partition(p.name, p.kind, p.start, stop - p.start, p.protected)
        if p.start > pos:
            out.append(Partition("Free", "free", pos, p.start - pos))
        out.append(p)
        pos = p.end
    if pos < end:
        out.append(Partition("Free", "free", pos, end - pos))
    return tuple(out)


def _derived_layout(f: Family) -> tuple[Partition, ...]:
    boot_end = f.bootloader_end
    parts = [Partition("Bootloader", "bootloader", 0, boot_end, protected=True)]
    if f.writable:
        parts += [Partition("Application", "app", *f.app), Partition("OTA download", "ota", *f.ota)]
    else:
        parts.append(Partition("Application (layout not public)", "app", boot_end, FLASH_2M - boot_end - SECTOR))
    parts.append(Partition("RF calibration / TLV", "rf", f.rf_offset, SECTOR, protected=True))
    for extra in f.extra_rf:
        parts.append(Partition("Stock RF calibration", "rf", extra, SECTOR, protected=True))
    if f.obk_config_offset is not None:
        cfg = f.obk_config_offset
        parts += [
            Partition("OpenBK config", "obk_config", cfg, SECTOR),
            Partition("Net", "net", cfg + SECTOR, SECTOR),
            Partition("OpenBK flash vars", "obk_vars", *OBK_VARS),
        ]
    if f.tuya_kv is not None:
        parts.append(Partition("Tuya KV storage", "tuya_kv", *f.tuya_kv))
    end = max(max(p.end for p in parts), FLASH_2M)
    return _fill(parts, end)


def _build() -> dict[str, tuple[Partition, ...]]:
    out: dict[str, tuple[Partition, ...]] = {}
    for name, fam in FAMILIES.items():
        if name in ("BK7231N", "BK7231M"):
            out[name] = _n_layout()
        elif name == "BK7231T":
            out[name] = _t_layout()
        else:
            out[name] = _derived_layout(fam)
    return out


LAYOUTS: dict[str, tuple[Partition, ...]] = _build()
RF_OFFSET: dict[str, int] = {n: f.rf_offset for n, f in FAMILIES.items()}
OBK_CONFIG_OFFSET: dict[str, int] = {
    n: f.obk_config_offset for n, f in FAMILIES.items() if f.obk_config_offset is not None
}
TUYA_KV_OFFSET = 0x1ED000


def layout_for(chip: str | None) -> tuple[Partition, ...]:
    fam = family(chip)
    return LAYOUTS[fam.name] if fam else LAYOUTS["BK7231N"]


def partition_at(chip: str, addr: int) -> Partition | None:
    for part in layout_for(chip):
        if part.contains(addr):
            return part
    return None


def app_partition(chip: str | None) -> Partition:
    return next(p for p in layout_for(chip) if p.kind == "app")


def protected_ranges(chip: str) -> list[tuple[int, int]]:
    """Half-open ranges that writes must not touch unless the user asks explicitly."""
    return [(p.start, p.end) for p in layout_for(chip) if p.protected]


def subtract_ranges(ranges: list[tuple[int, int]], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Half-open `ranges` minus `holes`, in order, empty pieces dropped."""
    out = list(ranges)
    for hs, he in holes:
        nxt: list[tuple[int, int]] = []
        for s, e in out:
            if he <= s or hs >= e:
                nxt.append((s, e))
                continue
            if s < hs:
                nxt.append((s, hs))
            if he < e:
                nxt.append((he, e))
        out = nxt
    return out
