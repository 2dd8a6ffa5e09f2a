"""OpenBK's community device list (`devices.json` of OpenBekenIOT/webapp): read, check, cache, download.

The list is what OpenBK's web app offers as device templates: per device vendor, name, model, chip, module
("board"), an OpenBK pin map (`"26": "Rel;1"`), flags, a startup command and a forum link. It is community
data: bkbench checks its shape, never trusts it as fact, and keeps it out of the repository.

Cache (default ``$XDG_CACHE_HOME/bkbench/devices``; ``BKBENCH_CACHE_DIR`` overrides the root, as for
releases)::

    <cache>/devices.json          the list as downloaded or imported, unchanged
    <cache>/devices.json.sha256   "<sha256>  devices.json", written after it (checked on every load)
    <cache>/source.json           where and when it came from, its size and entry count
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import time
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from ..backups import atomic_write
from ..errors import BkError

# Where OpenBK's web app itself loads the list from (GitHub Pages of OpenBekenIOT/webapp).
DEFAULT_URL = "https://openbekeniot.github.io/webapp/devices.json"
URL_ENV = "BKBENCH_DEVICES_URL"
# The 2026-04 list is 482 KB for 863 devices; 16 MiB leaves room for growth and refuses anything absurd.
MAX_LIST_SIZE = 16 * 1024 * 1024
LIST_NAME = "devices.json"
USER_AGENT = "bkbench (+https://github.com/OpenBekenIOT/webapp devices.json)"


class DeviceListError(BkError):
    """The device list cannot be read, downloaded or trusted."""


class DeviceListNetworkError(DeviceListError):
    """The list's host cannot be reached (offline, DNS, refused, timeout, truncated)."""


@dataclass(frozen=True)
class Entry:
    """One device of the list; `pins` keeps the list's own text per GPIO (roles are judged later)."""

    id: str
    index: int
    vendor: str
    name: str
    model: str
    chip: str
    board: str
    pins: dict[int, str]  # gpio -> "Role;channel[;channel2]" exactly as listed (trimmed)
    flags: int | None
    command: str
    wiki: str
    keywords: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()  # parts of the entry that could not be read (kept out of matching)

    @property
    def title(self) -> str:
        bits = [self.vendor, self.name]
        if self.model and self.model.lower() not in self.name.lower():
            bits.append(f"({self.model})")
        return " ".join(b for b in bits if b)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "vendor": self.vendor, "name": self.name, "model": self.model, "chip": self.chip,
                "board": self.board, "pins": {str(g): v for g, v in sorted(self.pins.items())},
                "flags": self.flags, "command": self.command, "wiki": self.wiki,
                "problems": list(self.problems)}


def _text(value: Any) -> str:
    """A string field with control characters dropped: the list is printed to terminals (no escape sequences)."""
    if not isinstance(value, str):
        return ""
    return "".join(ch for ch in value if unicodedata.category(ch) != "Cc").strip()


def _flags(obj: dict[str, Any], problems: list[str]) -> int | None:
    """OpenBK's 64-bit flags word (the web app sends it as `Flags N`); a few entries spell the key `flag`."""
    raw = obj.get("flags", obj.get("flag"))
    if raw is None or raw == "":
        return None
    try:
        value = int(str(raw).strip(), 10)
    except ValueError:
        problems.append(f"flags {raw!r} is not a number")
        return None
    if not 0 <= value < 1 << 64:
        problems.append(f"flags {raw!r} is out of range")
        return None
    return value


def entry_id(obj: dict[str, Any]) -> str:
    """A short id that stays the same across list updates as long as the entry's identity does."""
    ident = [_text(obj.get(k)) for k in ("vendor", "name", "model", "chip", "board", "wiki")]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:8]


def _entry(index: int, obj: dict[str, Any]) -> Entry:
    problems: list[str] = []
    pins: dict[int, str] = {}
    raw_pins = obj.get("pins")
    if isinstance(raw_pins, dict):
        for key, value in raw_pins.items():
            gpio = str(key).strip()
            if not gpio.isdigit() or not isinstance(value, str):
                problems.append(f"pin {key!r}: {value!r} is not a 'GPIO: Role;channel' pair")
                continue
            pins[int(gpio)] = _text(value)
    elif raw_pins is not None:
        problems.append("pins is not an object")
    keywords = obj.get("keywords")
    return Entry(
        id=entry_id(obj), index=index, vendor=_text(obj.get("vendor")), name=_text(obj.get("name")),
        model=_text(obj.get("model")), chip=_text(obj.get("chip")).upper(), board=_text(obj.get("board")),
        pins=pins, flags=_flags(obj, problems), command=_text(obj.get("command")), wiki=_text(obj.get("wiki")),
        keywords=tuple(_text(k) for k in keywords if isinstance(k, str)) if isinstance(keywords, list) else (),
        problems=tuple(problems),
    )


@dataclass
class DeviceList:
    entries: list[Entry]
    version: str = ""
    sha256: str = ""
    source: str = ""  # URL or file it came from
    fetched_at: str = ""  # ISO time of the download / import
    _by_id: dict[str, Entry] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        seen: dict[str, int] = {}
        fixed = []
        for e in self.entries:  # identical identities (there are a few) get -2, -3 in list order
            n = seen.get(e.id, 0) + 1
            seen[e.id] = n
            fixed.append(e if n == 1 else replace(e, id=f"{e.id}-{n}"))
        self.entries = fixed
        self._by_id = {e.id: e for e in fixed}

    @classmethod
    def parse(cls, data: bytes, origin: str = "the device list") -> DeviceList:
        """Check and read the list; DeviceListError (one line) when it is not OpenBK's devices.json."""
        if not data.strip():
            raise DeviceListError(f"{origin} is empty, not OpenBK's devices.json.")
        if len(data) > MAX_LIST_SIZE:
            raise DeviceListError(f"{origin} is {len(data):,} bytes, larger than any device list "
                                  f"({MAX_LIST_SIZE:,} at most).")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise DeviceListError(f"{origin} is binary data, not OpenBK's devices.json.") from None
        try:
            obj = json.loads(text)
        except ValueError as exc:
            if text.lstrip()[:15].lower().startswith(("<!doctype", "<html")):
                raise DeviceListError(f"{origin} is an HTML page (an error or login page?), not OpenBK's "
                                      "devices.json.") from None
            where = f"line {exc.lineno} column {exc.colno}: {exc.msg}" if isinstance(exc, json.JSONDecodeError) \
                else str(exc)
            raise DeviceListError(f"{origin} is not valid JSON ({where}), not OpenBK's devices.json.") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("devices"), list):
            raise DeviceListError(f"{origin} is JSON but not OpenBK's devices.json: expected an object with a "
                                  "'devices' list.")
        raw = obj["devices"]
        bad = {i for i, d in enumerate(raw) if not isinstance(d, dict) or not isinstance(d.get("name"), str)
               or not isinstance(d.get("chip"), str)}
        if not raw or len(bad) > len(raw) // 10:
            raise DeviceListError(f"{origin} has {len(raw)} devices, {len(bad)} of them without a name and chip: "
                                  "not OpenBK's devices.json.")
        entries = [_entry(i, d) for i, d in enumerate(raw) if i not in bad]
        return cls(entries, version=str(obj.get("version") or ""), sha256=hashlib.sha256(data).hexdigest(),
                   source=origin)

    def get(self, key: str) -> Entry:
        """The entry with this id (a unique prefix of 4+ characters is enough)."""
        key = key.strip().lower()
        if key in self._by_id:
            return self._by_id[key]
        found = [e for e in self.entries if len(key) >= 4 and e.id.startswith(key)]
        if len(found) == 1:
            return found[0]
        if found:
            raise DeviceListError(f"'{key}' is the start of {len(found)} entry ids; give more of it.")
        raise DeviceListError(f"No entry '{key}' in the community device list ({len(self.entries)} entries); "
                              "`bkbench analyze DUMP` names the closest ones with their ids.")

    def chips(self) -> set[str]:
        return {e.chip for e in self.entries if e.chip}

    def module_chip(self, module: str | None, min_entries: int = 3, share: float = 0.9) -> tuple[str, int] | None:
        """(chip, entries) when the list's entries on this Tuya module almost all name one chip, else None."""
        if not module:
            return None
        counts: dict[str, int] = {}
        for e in self.entries:
            if e.board.upper() == module.upper() and e.chip:
                counts[e.chip] = counts.get(e.chip, 0) + 1
        total = sum(counts.values())
        if total < min_entries:
            return None
        chip, n = max(counts.items(), key=lambda kv: kv[1])
        return (chip, total) if n >= share * total else None

    def describe(self) -> str:
        when = f", fetched {self.fetched_at[:10]}" if self.fetched_at else ""
        return f"{len(self.entries)} entries{when}"


# --- cache -------------------------------------------------------------------------------------------

def default_cache_dir() -> Path:
    env = os.environ.get("BKBENCH_CACHE_DIR")
    if env:
        return Path(env) / "devices"
    base = os.environ.get("XDG_CACHE_HOME") or os.environ.get("LOCALAPPDATA")
    root = Path(base) if base else Path.home() / ".cache"
    return root / "bkbench" / "devices"


def default_url() -> str:
    return os.environ.get(URL_ENV) or DEFAULT_URL


Opener = Callable[[urllib.request.Request, float], Any]


class DeviceListStore:
    """The cached list: saved atomically with its SHA-256, checked on every load."""

    def __init__(self, cache_dir: Path | str | None = None) -> None:
        self.dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.path = self.dir / LIST_NAME
        self.sums = self.dir / (LIST_NAME + ".sha256")
        self.meta = self.dir / "source.json"

    def load(self) -> DeviceList | None:
        """The cached list, or None when none was fetched; DeviceListError when the cache is damaged."""
        if not self.path.is_file():
            return None
        try:
            data = self.path.read_bytes()
            recorded = self.sums.read_text("utf-8").split()[0].lower()
        except (OSError, IndexError):
            raise DeviceListError(f"The cached device list {self.path} has no checksum file.",
                                  hint="Fetch it again: bkbench fetch --devices") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != recorded:
            raise DeviceListError(f"The cached device list {self.path} is damaged (SHA-256 {actual[:12]}... "
                                  f"differs from the recorded {recorded[:12]}...).",
                                  hint="Fetch it again: bkbench fetch --devices")
        dl = DeviceList.parse(data, str(self.path))
        try:
            meta = json.loads(self.meta.read_text("utf-8"))
        except (OSError, ValueError):
            meta = {}
        dl.source = str(meta.get("source") or self.path)
        dl.fetched_at = str(meta.get("fetched_at") or "")
        return dl

    def save(self, data: bytes, source: str) -> DeviceList:
        """Check `data`, then store it (list first, checksum second: a list without one is not trusted)."""
        dl = DeviceList.parse(data, source)
        dl.source = source
        dl.fetched_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        atomic_write(self.path, data, mode=0o644, overwrite=True)
        atomic_write(self.sums, f"{dl.sha256}  {LIST_NAME}\n".encode(), mode=0o644, overwrite=True)
        meta = {"source": source, "fetched_at": dl.fetched_at, "sha256": dl.sha256, "size": len(data),
                "entries": len(dl.entries), "version": dl.version}
        atomic_write(self.meta, json.dumps(meta, indent=1).encode(), mode=0o644, overwrite=True)
        return dl

    def fetch(self, url: str | None = None, opener: Opener | None = None, timeout: float = 30.0) -> DeviceList:
        """Download the list and cache it; nothing in the cache changes unless the download is whole and valid."""
        url = url or default_url()
        return self.save(download(url, opener, timeout), url)


def _default_opener(req: urllib.request.Request, timeout: float) -> Any:
    return urllib.request.urlopen(req, timeout=timeout)


def download(url: str, opener: Opener | None = None, timeout: float = 30.0, limit: int = MAX_LIST_SIZE) -> bytes:
    """The bytes at `url`: size-capped, checked against Content-Length; every failure is one line."""
    host = urllib.parse.urlsplit(url).netloc or url
    req = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": USER_AGENT})
    try:
        resp = (opener or _default_opener)(req, timeout)
    except urllib.error.HTTPError as exc:
        raise DeviceListError(f"{host} answered HTTP {exc.code} {exc.reason} for {url}.") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeviceListNetworkError(f"Cannot reach {host} ({reason}).") from None
    with resp:
        declared = (resp.headers.get("Content-Length") or "") if getattr(resp, "headers", None) else ""
        want = int(declared) if declared.isdigit() else None
        if want is not None and want > limit:
            raise DeviceListError(f"{url} is {want:,} bytes, larger than any device list ({limit:,} at most).")
        chunks, got = [], 0
        while True:
            try:
                chunk = resp.read(65536)
            except (OSError, http.client.HTTPException) as exc:
                raise DeviceListNetworkError(f"Download of {url} was interrupted ({type(exc).__name__}).") from None
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
            if got > limit:
                raise DeviceListError(f"{url} is larger than any device list ({limit:,} bytes at most).")
    if want is not None and got != want:
        raise DeviceListNetworkError(f"Download of {url} was truncated: got {got:,} of {want:,} bytes.")
    return b"".join(chunks)


def load_default() -> tuple[DeviceList | None, str]:
    """(the cached list or None, a one-line note when there is none or it is damaged)."""
    store = DeviceListStore()
    try:
        dl = store.load()
    except DeviceListError as exc:
        return None, f"{exc} {exc.hint}".strip()
    if dl is None:
        return None, "no community device list cached: `bkbench fetch --devices` downloads it"
    return dl, ""
