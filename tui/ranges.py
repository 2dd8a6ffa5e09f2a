"""Half-open flash address ranges as short human text (subtraction is core.layout.subtract_ranges)."""

from __future__ import annotations

from typing import Iterable


def ranges_text(ranges: Iterable[tuple[int, int]], limit: int = 4) -> str:
    items = list(ranges)
    if not items:
        return "none"
    text = ", ".join(f"0x{s:06X}-0x{e:06X}" for s, e in items[:limit])
    return text + (f" (+{len(items) - limit} more)" if len(items) > limit else "")
