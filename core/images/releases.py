"""OpenBK release listing and download from the GitHub releases API, with an offline cache.

Cache layout (default ``$XDG_CACHE_HOME/bkbench/releases``; env ``BKBENCH_CACHE_DIR`` or the
``cache_dir`` argument override it)::

    <cache>/latest.json                      last "latest" release JSON seen
    <cache>/<tag>/release.json               that release's JSON (asset lists work offline)
    <cache>/<tag>/<asset name>               the downloaded file
    <cache>/<tag>/<asset name>.sha256        "<sha256>  <asset name>" written after the file

API base: ``https://api.github.com`` unless ``BKBENCH_GITHUB_API`` or ``api_base`` says otherwise.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..backups import atomic_write as _atomic_write
from ..chips import FAMILIES, MAX_FLASH
from ..errors import BkError, ImageError
from .recognize import ImageInfo, check_compatible, recognize

DEFAULT_API = "https://api.github.com"
DEFAULT_REPO = "openshwprojects/OpenBK7231T_App"
USER_AGENT = "bkbench (+https://github.com/openshwprojects/OpenBK7231T_App releases)"
MAX_ASSET_SIZE = MAX_FLASH  # no release file is larger than a flash

# Which release file each family takes, best first (core/chips.py `image_kind`; PROTOCOL-DETAILS 8.2):
# QIO for N, M, BK7238, BK7252N; UA for T, U, BK7252. Families without a public layout get none.
PREFERRED_KINDS = {
    name: (fam.image_kind, "UA" if fam.image_kind == "QIO" else "QIO")
    for name, fam in FAMILIES.items()
    if fam.writable
}
_ASSET_RE = re.compile(r"^OpenBK(7231[NTUM]|7236|7238|7252N?|7258)_(QIO|UA)_([0-9][^_]*?)(?:_(.+))?\.bin$")
_NEVER = ("_ug_", "_ota", "_gz", ".rbl", ".zip", "cloudcutter", "_alt_")


class ReleaseError(BkError):
    """A release or asset cannot be listed or fetched."""


class NetworkError(ReleaseError):
    """The API or download host cannot be reached (offline, DNS, refused, timeout, truncated)."""


class RateLimitError(NetworkError):
    """GitHub refused the request because the API rate limit is used up."""

    def __init__(self, message: str, reset_at: float | None = None) -> None:
        super().__init__(message, hint="Wait until then, or use a cached release or a local file.")
        self.reset_at = reset_at


class NotFoundError(ReleaseError):
    """The release (tag) does not exist."""


class AssetNotFoundError(ReleaseError):
    """The release has no file for this chip (or variant)."""


class ChecksumError(ImageError):
    """A cached or downloaded file does not match its recorded checksum."""


@dataclass(frozen=True)
class Asset:
    name: str
    size: int
    url: str
    content_type: str = ""
    digest: str | None = None  # "sha256:<hex>" when the API gives it

    @property
    def parsed(self) -> tuple[str, str, str, str | None] | None:
        """(chip, kind QIO/UA, version, variant) of an OpenBK UART image name, else None."""
        low = self.name.lower()
        if any(bad in low for bad in _NEVER):
            return None
        m = _ASSET_RE.match(self.name)
        if not m:
            return None
        return "BK" + m.group(1), m.group(2), m.group(3), m.group(4)


@dataclass
class Release:
    tag: str
    name: str = ""
    published_at: str = ""
    prerelease: bool = False
    assets: list[Asset] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, obj: Any) -> Release:
        if not isinstance(obj, dict) or not isinstance(obj.get("tag_name"), str):
            raise ReleaseError("The releases API answered with something that is not a release.")
        assets = []
        for a in obj.get("assets") or []:
            if isinstance(a, dict) and isinstance(a.get("name"), str) and a.get("browser_download_url"):
                assets.append(
                    Asset(
                        name=a["name"],
                        size=int(a.get("size") or 0),
                        url=str(a["browser_download_url"]),
                        content_type=str(a.get("content_type") or ""),
                        digest=a.get("digest") if isinstance(a.get("digest"), str) else None,
                    )
                )
        return cls(
            tag=obj["tag_name"],
            name=str(obj.get("name") or ""),
            published_at=str(obj.get("published_at") or ""),
            prerelease=bool(obj.get("prerelease")),
            assets=assets,
            raw=obj,
        )

    @property
    def version(self) -> str:
        return self.tag[1:] if self.tag[:1] in ("v", "V") and self.tag[1:2].isdigit() else self.tag

    def variants(self, chip: str) -> list[str]:
        """Variant names available for `chip` ("" = the plain build)."""
        out: list[str] = []
        for a in self.assets:
            p = a.parsed
            if p and p[0] == chip and (p[3] or "") not in out:
                out.append(p[3] or "")
        return out

    def choose_asset(self, chip: str, variant: str | None = None) -> Asset:
        """The release file to flash on `chip`: preferred kind first, plain build unless `variant`."""
        chip = _norm_chip(chip)
        if chip not in PREFERRED_KINDS:
            raise AssetNotFoundError(f"OpenBK releases have no UART image for {chip}.")
        want = (variant or "").lower()
        candidates = []
        for a in self.assets:
            p = a.parsed
            if not p or p[0] != chip or (p[3] or "").lower() != want:
                continue
            candidates.append((PREFERRED_KINDS[chip].index(p[1]), a.name, a))
        if not candidates:
            have = ", ".join(v or "(plain)" for v in self.variants(chip)) or "none"
            what = f"variant '{variant}' of " if variant else ""
            raise AssetNotFoundError(
                f"Release {self.tag} has no {what}{chip} UART image (available variants: {have})."
            )
        return sorted(candidates)[0][2]


@dataclass
class FetchResult:
    path: Path
    sha256: str
    release: Release
    asset: Asset
    info: ImageInfo
    from_cache: bool
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "tag": self.release.tag,
            "asset": self.asset.name,
            "size": self.asset.size,
            "from_cache": self.from_cache,
            "image": self.info.to_json(),
            "warnings": list(self.warnings),
        }


def _norm_chip(chip: str) -> str:
    chip = chip.upper()
    return chip if chip.startswith("BK") else "BK" + chip


def default_cache_dir() -> Path:
    env = os.environ.get("BKBENCH_CACHE_DIR")
    if env:
        return Path(env) / "releases"
    base = os.environ.get("XDG_CACHE_HOME") or os.environ.get("LOCALAPPDATA")
    root = Path(base) if base else Path.home() / ".cache"
    return root / "bkbench" / "releases"


def default_api_base() -> str:
    return os.environ.get("BKBENCH_GITHUB_API") or DEFAULT_API


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old file or the new one."""
    _atomic_write(path, data, mode=0o644, overwrite=True)


def _safe_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise ReleaseError(f"Refusing an unsafe file name from the API: {name!r}.")
    return name


def _reset_text(reset_at: float | None) -> str:
    if reset_at is None:
        return ""
    when = time.strftime("%H:%M:%S UTC", time.gmtime(reset_at))
    mins = max(0, int((reset_at - time.time() + 59) // 60))
    return f"; it resets at {when} (in about {mins} min)"


class ReleaseClient:
    """List and fetch OpenBK releases; every network failure becomes a ReleaseError subclass."""

    def __init__(
        self,
        api_base: str | None = None,
        cache_dir: Path | str | None = None,
        repo: str = DEFAULT_REPO,
        timeout: float = 30.0,
        offline: bool = False,
    ) -> None:
        self.api_base = (api_base or default_api_base()).rstrip("/")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.repo = repo
        self.timeout = timeout
        self.offline = offline

    # --- HTTP ------------------------------------------------------------------------------

    def _open(self, url: str, accept: str):
        if self.offline:
            raise NetworkError("Offline mode: not contacting the network.")
        req = urllib.request.Request(url, headers={"Accept": accept, "User-Agent": USER_AGENT})
        host = urllib.parse.urlsplit(url).netloc or url
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc, url) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NetworkError(
                f"Cannot reach {host} ({reason}); check the network, or use a cached release or a local file."
            ) from None

    def _http_error(self, exc: urllib.error.HTTPError, url: str) -> ReleaseError:
        headers: Any = exc.headers or {}
        remaining = headers.get("X-RateLimit-Remaining")
        if exc.code in (403, 429) and (remaining == "0" or exc.code == 429 or headers.get("Retry-After")):
            reset_at: float | None = None
            try:
                if headers.get("X-RateLimit-Reset"):
                    reset_at = float(headers["X-RateLimit-Reset"])
                elif headers.get("Retry-After"):
                    retry = headers["Retry-After"]
                    if retry.isdigit():
                        reset_at = time.time() + int(retry)
                    else:
                        parsed = email.utils.parsedate_to_datetime(retry)
                        reset_at = parsed.timestamp() if parsed else None
            except (TypeError, ValueError):
                reset_at = None
            return RateLimitError(f"GitHub API rate limit exceeded{_reset_text(reset_at)}.", reset_at)
        if exc.code == 404:
            return NotFoundError(f"Not found on the server (HTTP 404): {url}")
        return ReleaseError(f"The server answered HTTP {exc.code} {exc.reason} for {url}.")

    def _get_json(self, path: str) -> Any:
        url = f"{self.api_base}/repos/{self.repo}/{path}"
        with self._open(url, "application/vnd.github+json") as resp:
            body = self._read_all(resp, url)
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ReleaseError(f"The releases API sent invalid JSON for {url}.") from None

    def _read_all(self, resp, url: str, limit: int = MAX_ASSET_SIZE, progress=None) -> bytes:
        expected = resp.headers.get("Content-Length")
        want = int(expected) if expected and expected.isdigit() else None
        if want is not None and want > limit:
            raise ReleaseError(f"{url} is {want} bytes, larger than any Beken image.")
        chunks, got = [], 0
        while True:
            try:
                chunk = resp.read(65536)
            except (OSError, http.client.HTTPException) as exc:  # IncompleteRead, reset, timeout
                raise NetworkError(f"Download of {url} was interrupted ({type(exc).__name__}).") from None
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
            if got > limit:
                raise ReleaseError(f"{url} is larger than any Beken image.")
            if progress:
                progress(got, want or 0)
        if want is not None and got != want:
            raise NetworkError(f"Download of {url} was truncated: got {got} of {want} bytes.")
        return b"".join(chunks)

    # --- releases ----------------------------------------------------------------------------

    def latest(self) -> Release:
        """The latest release; from the cache when the network is unavailable."""
        try:
            obj = self._get_json("releases/latest")
        except NetworkError:
            cached = self._cached_json(self.cache_dir / "latest.json")
            if cached is None:
                raise
            return Release.from_json(cached)
        rel = Release.from_json(obj)
        self._store_release(rel, latest=True)
        return rel

    def list_releases(self, count: int = 10) -> list[Release]:
        """The newest `count` releases; from the cache when offline."""
        count = max(1, min(int(count), 100))
        try:
            obj = self._get_json(f"releases?per_page={count}")
        except NetworkError:
            cached = self.cached_releases()
            if not cached:
                raise
            return cached[:count]
        if not isinstance(obj, list):
            raise ReleaseError("The releases API answered with something that is not a list of releases.")
        rels = [Release.from_json(o) for o in obj]
        for rel in rels:
            self._store_release(rel)
        return rels

    def by_tag(self, tag: str) -> Release:
        """A release by tag; the cached copy is used first (tags do not change)."""
        cached = self._cached_json(self._tag_dir(tag) / "release.json")
        if cached is not None:
            return Release.from_json(cached)
        quoted = urllib.parse.quote(tag, safe="")
        try:
            obj = self._get_json(f"releases/tags/{quoted}")
        except NotFoundError:
            raise NotFoundError(f"OpenBK release '{tag}' does not exist.") from None
        rel = Release.from_json(obj)
        self._store_release(rel)
        return rel

    def cached_releases(self) -> list[Release]:
        out = []
        if self.cache_dir.is_dir():
            for sub in self.cache_dir.iterdir():
                obj = self._cached_json(sub / "release.json") if sub.is_dir() else None
                if obj is not None:
                    out.append(Release.from_json(obj))
        return sorted(out, key=lambda r: r.published_at, reverse=True)

    # --- cache ------------------------------------------------------------------------------

    def _tag_dir(self, tag: str) -> Path:
        return self.cache_dir / _safe_name(tag)

    @staticmethod
    def _cached_json(path: Path) -> Any:
        try:
            return json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            return None

    def _store_release(self, rel: Release, latest: bool = False) -> None:
        blob = json.dumps(rel.raw, indent=1, sort_keys=True).encode()
        try:
            atomic_write(self._tag_dir(rel.tag) / "release.json", blob)
            if latest:
                atomic_write(self.cache_dir / "latest.json", blob)
        except OSError:
            pass  # a read-only cache only costs offline use

    def cached_file(self, tag: str, asset_name: str) -> tuple[Path, str] | None:
        """(path, sha256) of a cached asset after checking it against its recorded checksum."""
        path = self._tag_dir(tag) / _safe_name(asset_name)
        sums = path.with_name(path.name + ".sha256")
        if not path.is_file():
            return None
        try:
            recorded = sums.read_text("utf-8").split()[0].lower()
        except (OSError, IndexError):
            return None  # no checksum: treated as not cached (download again)
        actual = sha256_of(path.read_bytes())
        if actual != recorded:
            raise ChecksumError(
                f"The cached file {path} is corrupted (SHA-256 {actual[:12]}... differs from the recorded "
                f"{recorded[:12]}...).",
                hint="Fetch again with --refresh, or delete the file.",
            )
        return path, actual

    # --- fetching ------------------------------------------------------------------------------

    def fetch(
        self,
        chip: str,
        version: str | None = None,
        variant: str | None = None,
        refresh: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> FetchResult:
        """Download (or take from the cache) the OpenBK UART image of `version` (latest) for `chip`."""
        chip = _norm_chip(chip)
        warnings: list[str] = []
        if version:
            rel = self._release_for_version(version)
        elif self.offline:
            rel = self._offline_latest()
            warnings.append(f"offline: using the cached latest release {rel.tag}")
        else:
            try:
                rel = Release.from_json(self._get_json("releases/latest"))
                self._store_release(rel, latest=True)
            except NetworkError as exc:
                obj = self._cached_json(self.cache_dir / "latest.json")
                if obj is None:
                    raise
                rel = Release.from_json(obj)
                warnings.append(f"{exc} Using the cached latest release {rel.tag}.")
        asset = rel.choose_asset(chip, variant)
        path = self._tag_dir(rel.tag) / _safe_name(asset.name)
        if not refresh:
            hit = self.cached_file(rel.tag, asset.name)
            if hit is not None:
                data = hit[0].read_bytes()
                info = self._check_image(data, asset, chip)
                return FetchResult(hit[0], hit[1], rel, asset, info, True, warnings)
        data = self.download(asset, progress)
        info = self._check_image(data, asset, chip)
        digest = sha256_of(data)
        atomic_write(path, data)
        atomic_write(path.with_name(path.name + ".sha256"), f"{digest}  {asset.name}\n".encode())
        return FetchResult(path, digest, rel, asset, info, False, warnings)

    def _offline_latest(self) -> Release:
        obj = self._cached_json(self.cache_dir / "latest.json")
        if obj is None:
            raise NetworkError("Offline mode and no cached latest release.")
        return Release.from_json(obj)

    def _release_for_version(self, version: str) -> Release:
        tags = [version] if version[:1] in ("v", "V") else [version, "v" + version]
        last: ReleaseError | None = None
        for tag in tags:
            try:
                return self.by_tag(tag)
            except NotFoundError as exc:
                last = exc
        assert last is not None
        raise NotFoundError(f"OpenBK release '{version}' does not exist.")

    def download(self, asset: Asset, progress: Callable[[int, int], None] | None = None) -> bytes:
        """The asset's bytes, checked against its size and (when the API gives it) its digest."""
        with self._open(asset.url, "application/octet-stream") as resp:
            data = self._read_all(resp, asset.url, progress=progress)
        if asset.size and len(data) != asset.size:
            raise NetworkError(
                f"Download of {asset.name} was truncated: got {len(data)} of {asset.size} bytes."
            )
        if asset.digest and asset.digest.lower().startswith("sha256:"):
            want = asset.digest.split(":", 1)[1].strip().lower()
            if sha256_of(data) != want:
                raise ChecksumError(f"Downloaded {asset.name} does not match the SHA-256 the API lists.")
        return data

    @staticmethod
    def _check_image(data: bytes, asset: Asset, chip: str) -> ImageInfo:
        info = recognize(data, asset.name)
        parsed = asset.parsed
        want = parsed[1].lower() if parsed else None
        if info.format != want:
            raise ImageError(
                f"{asset.name} is not a {want.upper() if want else 'UART'} image "
                f"(it looks like: {info.description}); refusing it."
            )
        check_compatible(info, chip)
        return info
