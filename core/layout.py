"""Flash layout of 2 MiB Tuya BK7231 parts (PROTOCOL.md section 7, PROTOCOL-DETAILS.md 8.1)."""

from __future__ import annotations

from dataclasses import dataclass

SECTOR = 0x1000
BLOCK = 0x10000
BOOTLOADER_END = 0x11000
FLASH_2M = 0x200000


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
        Partition("OpenBK flash vars", "obk_vars", 0x1D3000, 0x2000),
        Partition("Free", "free", 0x1D5000, 0x18000),
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
        Partition("OpenBK flash vars", "obk_vars", 0x1E3000, 0x2000),
        Partition("Free", "free", 0x1E5000, 0x8000),
        Partition("Tuya KV storage", "tuya_kv", 0x1ED000, 0x13000),
    )


LAYOUTS: dict[str, tuple[Partition, ...]] = {"BK7231N": _n_layout(), "BK7231T": _t_layout()}
RF_OFFSET = {"BK7231N": 0x1D0000, "BK7231T": 0x1E0000}
OBK_CONFIG_OFFSET = {"BK7231N": 0x1D1000, "BK7231T": 0x1E1000}
TUYA_KV_OFFSET = 0x1ED000


def layout_for(chip: str) -> tuple[Partition, ...]:
    return LAYOUTS.get(chip, LAYOUTS["BK7231N"])


def partition_at(chip: str, addr: int) -> Partition | None:
    for part in layout_for(chip):
        if part.contains(addr):
            return part
    return None


def protected_ranges(chip: str) -> list[tuple[int, int]]:
    """Half-open ranges that writes must not touch unless the user asks explicitly."""
    return [(p.start, p.end) for p in layout_for(chip) if p.protected]
