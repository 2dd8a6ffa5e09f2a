"""What firmware a library image holds, in a few words: the label the library's listings show per entry
("stock Tuya plug 1.1.15", "OpenBK 1.18.219 + config"), so the original is told from what bkbench wrote.

The label is judged from the image itself by the dump analysis (core/analysis/dump.py: the decrypted app's
banner or Tuya SDK strings, the Tuya vault's software version, OpenBK's config sector), never from what a
write said it wrote. An analysis takes about a second, so labels are kept in the user's cache by the image's
SHA-256 (content-addressed: a cached label can only belong to that content) and computed once per image.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .backups import BackupEntry, BackupLibrary, DamagedBackup, atomic_write
from .paths import cache_dir

LABEL_FORMAT = 1  # bump when the wording changes: older cached labels are then made again
_OEM_PREFIX = re.compile(r"^oem_(?:bk\d+\w?_)?")


def firmware_label(data: bytes) -> str:
    """A few words for the firmware in a full dump: its kind, app and version, and an OpenBK config if one
    is there ("stock Tuya plug 1.1.15 + OpenBK config", "OpenBK 1.18.219 + config")."""
    from .analysis.dump import analyze_dump

    try:
        a = analyze_dump(data)
    except Exception:  # noqa: BLE001 - any image gets a label; a crafted one must not break a listing
        return "not analysable"
    fw = a.firmware
    kind = fw.get("kind")
    if kind == "openbk":
        text = f"OpenBK {fw.get('version') or '(version unknown)'}"
    elif kind == "tuya":
        app = _OEM_PREFIX.sub("", str(fw.get("app") or "")) or None
        sdk = f"SDK {fw['sdk_version']}" if fw.get("sdk_version") else None
        text = " ".join(x for x in ("stock Tuya", app, _tuya_version(a) or sdk) if x)
    elif kind == "empty":
        text = "no firmware (app erased)"
    else:
        text = "unknown firmware"
    if a.obk_config is not None:
        text += " + config" if kind == "openbk" else " + OpenBK config"
        if a.obk_config.legacy_crc:
            text += " (old checksum)"
    return text


def _tuya_version(a: Any) -> str | None:
    """The Tuya app's software version from its vault (gw_di "swv"), when the vault holds one."""
    try:
        di = a.vault.value("gw_di") if a.vault is not None else None
    except Exception:  # noqa: BLE001 - a damaged vault value: no version
        return None
    swv = di.get("swv") if isinstance(di, dict) else None
    return str(swv)[:16] if isinstance(swv, (str, int, float)) and str(swv) else None


class Labels:
    """Firmware labels of library entries, cached by SHA-256 in the user's cache folder."""

    def __init__(self, library: BackupLibrary, cache: Path | None = None) -> None:
        self.library = library
        self.path = cache or cache_dir() / "backup-labels.json"
        self._cache: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._cache is None:
            try:
                raw = json.loads(self.path.read_text())
            except (OSError, ValueError, UnicodeDecodeError):
                raw = {}
            ok = isinstance(raw, dict) and raw.get("format") == LABEL_FORMAT and isinstance(raw.get("labels"), dict)
            self._cache = {str(k): str(v) for k, v in raw["labels"].items()} if ok else {}
        return self._cache

    def cached(self, entry: BackupEntry) -> str | None:
        """The label if it is known without reading the image (None: `label` must analyse it)."""
        sha = entry.meta.get("sha256")
        return self._load().get(sha) if isinstance(sha, str) else None

    def label(self, entry: BackupEntry) -> str:
        """The entry's firmware label: from the cache, else from the image (SHA-256 checked), then cached."""
        known = self.cached(entry)
        if known is not None:
            return known
        try:
            data = self.library.load(entry)
        except (DamagedBackup, OSError):
            return "damaged (bkbench backups --check)"
        text = firmware_label(data)
        self._remember(str(entry.meta["sha256"]), text)
        return text

    def _remember(self, sha: str, text: str) -> None:
        cache = self._load()
        cache[sha] = text
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, json.dumps({"format": LABEL_FORMAT, "labels": cache}).encode(), mode=0o600,
                         overwrite=True)
        except OSError:
            pass  # a cache that cannot be written only costs the analysis again next time
