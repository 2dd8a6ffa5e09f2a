"""Guard the flash outside an operation's target: CRCs before, CRCs after, repair or name what changed.

A bit error on the line can turn one command into another (a 64 KiB erase into a 4 KiB erase at
another address, a read into an erase). Echo checks catch most of that, but not all, so every write,
restore and config write is bracketed: before it, the chip's CRC of every region it must not touch
(whole 64 KiB blocks, plus the untouched parts of the blocks at its ends); after it, the same CRCs
again. A region that changed is narrowed to sectors and put back from this chip's verified backup,
or the operation fails naming the sectors. The CRCs are the chip's own, tied to their requests
(core/ops/crc.py: a stale or late reply cannot pass for the baseline), so a damaged CRC reply can only
cause a false alarm, which a second ask clears.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Callable

from ..client import BkClient
from ..errors import BkError
from ..layout import BLOCK, SECTOR, subtract_ranges
from .crc import chip_crc
from .events import EventSink, Notice, OperationRecord, Stage, null_sink

GUARD_RETRIES = 3

Repair = Callable[[int, int], "bytes | None"]


CRITICAL_KINDS = ("bootloader", "rf", "obk_config", "net", "tuya_kv")


def critical_ranges(chip: str, flash_size: int) -> list[tuple[int, int]]:
    """The regions whose loss cannot be undone by flashing firmware again: bootloader, RF calibration /
    MAC, the device's configs and Tuya keys. Checked after every write, whatever else is."""
    from ..layout import layout_for

    return [(p.start, min(p.end, flash_size)) for p in layout_for(chip) if p.kind in CRITICAL_KINDS
            and p.start < flash_size]


class OutsideDamage(BkError):
    """Flash outside the operation's target changed and could not be put back."""

    def __init__(self, sectors: list[int], record: OperationRecord | None = None) -> None:
        runs: list[list[int]] = []
        for a in sorted(sectors):
            if runs and runs[-1][1] == a:
                runs[-1][1] = a + SECTOR
            else:
                runs.append([a, a + SECTOR])
        listed = ", ".join(f"0x{a:06X}" if e - a == SECTOR else f"0x{a:06X}-0x{e - 1:06X}" for a, e in runs[:8])
        listed += " ..." if len(runs) > 8 else ""
        super().__init__(
            f"{len(sectors)} sector(s) outside the write may have changed on the chip ({listed}: the chip's CRC of "
            "their range differs from the one taken before the write) and no verified backup of this chip could "
            "put them back",
            hint="restore them from a backup of this chip: bkbench restore --port PORT BACKUP.bin", record=record)
        self.sectors = sectors


def _ask_crc(client: BkClient, start: int, length: int) -> int:
    return chip_crc(client, start, length, retries=GUARD_RETRIES)  # tied to its request (core/ops/crc.py)


@dataclass
class FlashGuard:
    """CRCs of everything an operation must not change, taken before it."""

    flash_size: int
    targets: list[tuple[int, int]]
    before: dict[tuple[int, int], int] = field(default_factory=dict)
    block_crcs: list[int] = field(default_factory=list)  # whole-flash 64 KiB CRCs (content identity)

    @classmethod
    def take(cls, client: BkClient, flash_size: int, targets: list[tuple[int, int]],
             sink: EventSink = null_sink, block_crcs: list[int] | None = None) -> FlashGuard:
        guard = cls(flash_size, sorted(targets))
        sink(Stage("guard", "taking the chip's CRCs of everything outside the write"))
        if block_crcs is None:
            block_crcs = [_ask_crc(client, a, BLOCK) for a in range(0, flash_size, BLOCK)]
        guard.block_crcs = list(block_crcs)
        for i, addr in enumerate(range(0, flash_size, BLOCK)):
            parts = subtract_ranges([(addr, addr + BLOCK)], guard.targets)
            if parts == [(addr, addr + BLOCK)]:
                guard.before[(addr, addr + BLOCK)] = block_crcs[i]
            else:
                for s, e in parts:
                    guard.before[(s, e)] = _ask_crc(client, s, e - s)
        return guard

    def check(self, client: BkClient, repair: Repair | None, sink: EventSink = null_sink,
              rewrite: Callable[[int, bytes], None] | None = None,
              only: list[tuple[int, int]] | None = None) -> list[int]:
        """Compare with the CRCs taken before; put changed sectors back through `rewrite(addr, data)`
        from `repair(addr, size)`. Returns the repaired sectors; raises OutsideDamage otherwise.

        `only` limits the check to the regions that meet these ranges (the bootloader, RF calibration
        and configs after a run in which every exchange was clean: see Session.write_spans)."""
        sink(Stage("guard", "checking that nothing outside the write changed"))
        changed: list[tuple[int, int]] = []
        for (s, e), want in sorted(self.before.items()):
            if only is not None and not any(s < b and e > a for a, b in only):
                continue
            got = _ask_crc(client, s, e - s)
            if got != want:
                got = _ask_crc(client, s, e - s)  # one damaged reply is not evidence
            if got != want:
                changed.append((s, e))
        if not changed:
            return []
        repaired: list[int] = []
        lost: list[int] = []
        for s, e in changed:
            region_lost = False
            for addr in range(s, e, SECTOR):
                good = repair(addr, SECTOR) if repair else None
                if good is None or rewrite is None:
                    lost.append(addr)
                    region_lost = True
                    continue
                if _ask_crc(client, addr, SECTOR) == zlib.crc32(good):
                    continue
                sink(Notice("warning", f"sector 0x{addr:06X} outside the write changed on the chip: "
                                       "putting it back from this chip's backup"))
                rewrite(addr, good)
                repaired.append(addr)
            if not region_lost and _ask_crc(client, s, e - s) != self.before[(s, e)]:
                # The backup does not hold what the chip held before: it cannot vouch for this region.
                lost.extend(range(s, e, SECTOR))
        if lost:
            raise OutsideDamage(sorted(set(lost)))
        return repaired
