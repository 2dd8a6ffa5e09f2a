"""Half-open flash address ranges: subtraction and short human text."""

from __future__ import annotations

from typing import Iterable


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


def ranges_text(ranges: Iterable[tuple[int, int]], limit: int = 4) -> str:
    items = list(ranges)
    if not items:
        return "none"
    text = ", ".join(f"0x{s:06X}-0x{e:06X}" for s, e in items[:limit])
    return text + (f" (+{len(items) - limit} more)" if len(items) > limit else "")
