"""Tuya pin configuration compiled into the application image (not in the KV vault).

Some Tuya firmwares carry their `user_param_key` as a C string constant in the app: the same
unquoted `{Jsonver:1.1.8,module:CB2S,...,crc:...}` text the vault holds. bk7231tools' dissect_dump
looks for it in the decrypted app the same way: find a marker that only this text has, take the
NUL-terminated string around it, and parse it. Strings that do not parse as an object are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .tuya_kv import parse_user_param_key

MARKERS = (b"Jsonver:", b",module:", b",crc:")
MAX_LEN = 8192


@dataclass(frozen=True)
class AppConfig:
    offset: int  # of the string in the decrypted (logical) app
    text: str
    user_param_key: dict[str, Any]


def _string_at(data: bytes, pos: int) -> tuple[int, bytes] | None:
    start = data.rfind(b"\x00", max(0, pos - MAX_LEN), pos) + 1
    end = data.find(b"\x00", pos, pos + MAX_LEN)
    if end == -1:
        return None
    return start, data[start:end]


def find_app_config(plain: bytes) -> AppConfig | None:
    """The first parseable `user_param_key` text in decrypted app bytes, or None."""
    seen: set[int] = set()
    for marker in MARKERS:
        pos = plain.find(marker)
        while pos != -1:
            found = _string_at(plain, pos)
            if found is not None and found[0] not in seen:
                start, raw = found
                seen.add(start)
                text = raw.strip()
                if text.startswith(b"{") and text.endswith(b"}") and all(32 <= c < 127 for c in text):
                    try:
                        upk = parse_user_param_key(text.decode("ascii"))
                    except ValueError:
                        upk = None
                    if upk:
                        return AppConfig(start, text.decode("ascii"), upk)
            pos = plain.find(marker, pos + 1)
    return None
