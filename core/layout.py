"""Flash layouts per chip family (PROTOCOL.md section 7, PROTOCOL-DETAILS.md 8.1), built from core/chips.py.

Every family's map is derived from its table row: bootloader, app, OTA, RF/TLV, OpenBK config, the
sector after it, OpenBK's flash variables and the Tuya storage (the BK7231N/T maps derived so equal the
ones checked on fixture dumps: tests/test_chip_facts.py). Protected: the bootloader and every
RF/calibration sector the family may use. This module and core/chips.py hold every flash address and size
the engine uses.

OpenBK's flash variables (easyflash: boot count, channel states, SSID choice) sit at OBK_VARS on every
Beken chip since OpenBK #1969 (2026-02); older builds kept them two sectors after the config.
"""

from __future__ import annotations

from dataclasses import dataclass

from .chips import DEFAULT_CHIP, FAMILIES, Family, MiB, family

SECTOR = 0x1000
BLOCK = 0x10000
BOOTLOADER_END = 0x11000
FLASH_2M = 2 * MiB
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


LAYOUTS: dict[str, tuple[Partition, ...]] = {name: _derived_layout(fam) for name, fam in FAMILIES.items()}
RF_OFFSET: dict[str, int] = {n: f.rf_offset for n, f in FAMILIES.items()}
OBK_CONFIG_OFFSET: dict[str, int] = {
    n: f.obk_config_offset for n, f in FAMILIES.items() if f.obk_config_offset is not None
}
TUYA_KV_OFFSET = 0x1ED000


def layout_for(chip: str | None) -> tuple[Partition, ...]:
    fam = family(chip)
    return LAYOUTS[fam.name] if fam else LAYOUTS[DEFAULT_CHIP]


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
