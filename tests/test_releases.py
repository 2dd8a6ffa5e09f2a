"""Release listing and download against a real local HTTP server speaking the GitHub API's shape."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from bkbench.core.errors import BkError, ImageError
from bkbench.core.images import releases as rel
from bkbench.core.images.releases import (
    AssetNotFoundError,
    ChecksumError,
    NetworkError,
    NotFoundError,
    RateLimitError,
    Release,
    ReleaseClient,
)

REPO = "/repos/openshwprojects/OpenBK7231T_App"
TAG = "1.18.219"
OLD = "1.18.100"


class FakeGitHub:
    """An http.server in a thread: routes map a path to (status, headers, body[, declared length])."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple] = {}
        self.requests: list[tuple[str, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                outer.requests.append((self.path, dict(self.headers)))
                route = outer.routes.get(self.path)
                if route is None:
                    route = (404, {}, json.dumps({"message": "Not Found"}).encode())
                status, headers, body = route[:3]
                declared = route[3] if len(route) > 3 else len(body)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(declared))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                if declared != len(body):
                    self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def asset(self, tag: str, name: str, data: bytes, **extra) -> dict:
        path = f"/download/{tag}/{name}"
        self.routes[path] = (200, {"Content-Type": "application/octet-stream"}, data)
        return {
            "url": f"{self.base}{REPO}/releases/assets/{abs(hash(name)) % 10**8}",
            "id": abs(hash(name)) % 10**8,
            "name": name,
            "label": "",
            "content_type": "application/octet-stream",
            "state": "uploaded",
            "size": len(data),
            "download_count": 7,
            "created_at": "2025-11-25T18:10:00Z",
            "updated_at": "2025-11-25T18:10:00Z",
            "browser_download_url": f"{self.base}{path}",
            **extra,
        }

    def release(self, tag: str, assets: list[dict], published: str = "2025-11-25T18:10:00Z") -> dict:
        return {
            "url": f"{self.base}{REPO}/releases/1",
            "html_url": f"https://github.com/openshwprojects/OpenBK7231T_App/releases/tag/{tag}",
            "id": 1,
            "tag_name": tag,
            "target_commitish": "main",
            "name": tag,
            "draft": False,
            "prerelease": False,
            "created_at": published,
            "published_at": published,
            "assets": assets,
            "tarball_url": f"{self.base}/tarball/{tag}",
            "zipball_url": f"{self.base}/zipball/{tag}",
            "body": "release notes",
        }

    def publish(self, release: dict, latest: bool = True) -> None:
        body = json.dumps(release).encode()
        self.routes[f"{REPO}/releases/tags/{release['tag_name']}"] = (200, {"Content-Type": "application/json"}, body)
        if latest:
            self.routes[f"{REPO}/releases/latest"] = (200, {"Content-Type": "application/json"}, body)


@pytest.fixture()
def gh(obk_images: dict):
    server = FakeGitHub()
    n, t = obk_images["BK7231N"], obk_images["BK7231T"]
    assets = [
        server.asset(TAG, f"OpenBK7231N_QIO_{TAG}.bin", n["qio"]),
        server.asset(TAG, f"OpenBK7231N_UA_{TAG}.bin", n["ua"]),
        server.asset(TAG, f"OpenBK7231N_QIO_{TAG}_berry.bin", n["qio"]),
        server.asset(TAG, f"OpenBK7231N_{TAG}.rbl", n["ota"][0x20:]),
        server.asset(TAG, f"OpenBK7231N_UG_{TAG}.bin", n["ota"]),
        server.asset(TAG, f"OpenBK7231T_UA_{TAG}.bin", t["ua"]),
        server.asset(TAG, f"OpenBK7231T_QIO_{TAG}.bin", t["qio"]),
        server.asset(TAG, f"OpenBK7231T_UG_{TAG}.bin", t["ota"]),
        server.asset(TAG, f"OpenBK7231T_UA_{TAG}_tuyaMCU.bin", t["ua"]),
    ]
    server.publish(server.release(TAG, assets))
    old = server.release(OLD, [server.asset(OLD, f"OpenBK7231N_QIO_{OLD}.bin", n["qio"])], "2025-10-01T00:00:00Z")
    server.publish(old, latest=False)
    listing = json.dumps([server.release(TAG, assets), old]).encode()
    server.routes[f"{REPO}/releases?per_page=5"] = (200, {"Content-Type": "application/json"}, listing)
    yield server
    server.stop()


@pytest.fixture()
def client(gh: FakeGitHub, tmp_path: Path) -> ReleaseClient:
    return ReleaseClient(api_base=gh.base, cache_dir=tmp_path / "cache", timeout=5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- happy paths ---------------------------------------------------------------------------------


def test_fetch_latest_for_n_downloads_the_qio_and_caches_it(gh, client, obk_images, tmp_path) -> None:
    res = client.fetch("bk7231n")
    assert res.asset.name == f"OpenBK7231N_QIO_{TAG}.bin" and not res.from_cache
    assert res.path.read_bytes() == obk_images["BK7231N"]["qio"]
    assert res.path.is_relative_to(tmp_path / "cache")
    digest = hashlib.sha256(obk_images["BK7231N"]["qio"]).hexdigest()
    assert res.sha256 == digest
    assert res.path.with_name(res.path.name + ".sha256").read_text().split()[0] == digest
    assert (res.info.format, res.info.chip, res.info.version) == ("qio", "BK7231N", "1.18.219")
    paths = [p for p, _ in gh.requests]
    assert f"{REPO}/releases/latest" in paths and f"/download/{TAG}/OpenBK7231N_QIO_{TAG}.bin" in paths
    api_headers = next(h for p, h in gh.requests if p.endswith("/releases/latest"))
    assert "github" in api_headers.get("Accept", "") and api_headers.get("User-Agent", "").startswith("bkbench")
    assert not list((tmp_path / "cache").rglob("*.part"))  # no temp files left behind


def test_fetch_t_by_version_takes_the_ua(gh, client, obk_images) -> None:
    res = client.fetch("BK7231T", version=TAG)
    assert res.asset.name == f"OpenBK7231T_UA_{TAG}.bin"
    assert (res.info.format, res.info.chip) == ("ua", "BK7231T")
    assert any(p == f"{REPO}/releases/tags/{TAG}" for p, _ in gh.requests)


def test_variants(gh, client) -> None:
    assert client.fetch("BK7231N", variant="berry").asset.name == f"OpenBK7231N_QIO_{TAG}_berry.bin"
    assert client.fetch("BK7231T", variant="tuyamcu").asset.name == f"OpenBK7231T_UA_{TAG}_tuyaMCU.bin"
    with pytest.raises(AssetNotFoundError, match="berry"):  # the message lists what exists
        client.fetch("BK7231N", variant="nonexistent")


def test_list_releases(gh, client) -> None:
    rels = client.list_releases(5)
    assert [r.tag for r in rels] == [TAG, OLD]
    assert rels[0].variants("BK7231N") == ["", "berry"]
    assert rels[0].variants("BK7231T") == ["", "tuyaMCU"]


def test_second_fetch_comes_from_the_cache_even_offline(gh, client, tmp_path) -> None:
    first = client.fetch("BK7231N")
    gh.stop()
    again = client.fetch("BK7231N")  # latest unreachable: cached latest release + cached file
    assert again.from_cache and again.path == first.path and again.sha256 == first.sha256
    assert any("cached latest" in w for w in again.warnings)
    pinned = ReleaseClient(api_base=gh.base, cache_dir=tmp_path / "cache", offline=True).fetch("BK7231N", TAG)
    assert pinned.from_cache
    offline_list = ReleaseClient(api_base=gh.base, cache_dir=tmp_path / "cache", offline=True).list_releases(5)
    assert [r.tag for r in offline_list] == [TAG]


def test_env_overrides(gh, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("BKBENCH_GITHUB_API", gh.base)
    monkeypatch.delenv("BKBENCH_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    res = ReleaseClient().fetch("BK7231T")
    assert res.path.parent == tmp_path / "xdg" / "bkbench" / "releases" / TAG
    monkeypatch.setenv("BKBENCH_CACHE_DIR", str(tmp_path / "mine"))
    assert rel.default_cache_dir() == tmp_path / "mine" / "releases"


# --- asset choice ------------------------------------------------------------------------------


def test_asset_choice_never_offers_ota_files(gh) -> None:
    ota_only = Release.from_json(
        gh.release(
            "x",
            [
                gh.asset("x", f"OpenBK7231N_{TAG}.rbl", b"1"),
                gh.asset("x", f"OpenBK7231N_UG_{TAG}.bin", b"1"),
                gh.asset("x", f"OpenBK7231N_QIO_{TAG}_ota.bin", b"1"),
                gh.asset("x", f"OpenBK7231N_QIO_{TAG}_gz.bin", b"1"),
                gh.asset("x", f"OpenBK7231N_QIO_{TAG}.zip", b"1"),
                gh.asset("x", f"OpenBK7231T_UA_{TAG}.bin", b"1"),
            ],
        )
    )
    with pytest.raises(AssetNotFoundError, match="no BK7231N UART image"):
        ota_only.choose_asset("BK7231N")
    assert ota_only.choose_asset("BK7231T").name == f"OpenBK7231T_UA_{TAG}.bin"
    with pytest.raises(AssetNotFoundError):
        ota_only.choose_asset("BK7238")


def test_n_falls_back_to_ua_when_no_qio(gh) -> None:
    r = Release.from_json(gh.release("y", [gh.asset("y", f"OpenBK7231N_UA_{TAG}.bin", b"1")]))
    assert r.choose_asset("bk7231n").name == f"OpenBK7231N_UA_{TAG}.bin"


# --- failures -----------------------------------------------------------------------------------


def test_unknown_version_is_404(gh, client) -> None:
    with pytest.raises(NotFoundError, match="9.9.9"):
        client.fetch("BK7231N", version="9.9.9")
    assert f"{REPO}/releases/tags/v9.9.9" in [p for p, _ in gh.requests]  # also tried the v-prefixed tag


@pytest.mark.parametrize("status", [403, 429])
def test_rate_limit_says_when_it_resets(gh, client, status: int) -> None:
    reset = int(time.time()) + 1800
    gh.routes[f"{REPO}/releases/latest"] = (
        status,
        {
            "X-RateLimit-Limit": "60",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset),
            "Content-Type": "application/json",
        },
        json.dumps({"message": "API rate limit exceeded for 127.0.0.1."}).encode(),
    )
    with pytest.raises(RateLimitError) as err:
        client.fetch("BK7231N")
    assert err.value.reset_at == reset
    assert time.strftime("%H:%M:%S UTC", time.gmtime(reset)) in str(err.value)
    assert "30 min" in str(err.value) or "29 min" in str(err.value)


def test_plain_403_is_not_called_rate_limit(gh, client) -> None:
    gh.routes[f"{REPO}/releases/latest"] = (403, {}, b"{}")
    with pytest.raises(BkError) as err:
        client.fetch("BK7231N")
    assert not isinstance(err.value, RateLimitError) and "403" in str(err.value)


def test_connection_refused(tmp_path) -> None:
    c = ReleaseClient(api_base=f"http://127.0.0.1:{_free_port()}", cache_dir=tmp_path / "c", timeout=3)
    with pytest.raises(NetworkError, match="Cannot reach 127.0.0.1"):
        c.fetch("BK7231N")
    with pytest.raises(NetworkError):
        c.list_releases(5)


def test_truncated_download_leaves_nothing_cached(gh, client, obk_images, tmp_path) -> None:
    data = obk_images["BK7231N"]["qio"]
    gh.routes[f"/download/{TAG}/OpenBK7231N_QIO_{TAG}.bin"] = (200, {}, data[:300_000], len(data))
    with pytest.raises(NetworkError, match="truncated|interrupted"):
        client.fetch("BK7231N")
    assert not list((tmp_path / "cache").rglob("*.bin"))
    assert not list((tmp_path / "cache").rglob("*.part"))


def test_server_sends_a_different_file_size_than_the_api_lists(gh, client, obk_images) -> None:
    data = obk_images["BK7231N"]["qio"]
    gh.routes[f"/download/{TAG}/OpenBK7231N_QIO_{TAG}.bin"] = (200, {}, data[:-34])
    with pytest.raises(NetworkError, match="truncated"):
        client.fetch("BK7231N")


def test_corrupted_cache_is_reported_then_refreshed(gh, client, obk_images) -> None:
    res = client.fetch("BK7231N")
    blob = bytearray(res.path.read_bytes())
    blob[0x20000] ^= 0xFF
    res.path.write_bytes(bytes(blob))
    with pytest.raises(ChecksumError, match="corrupted"):
        client.fetch("BK7231N")
    fixed = client.fetch("BK7231N", refresh=True)
    assert not fixed.from_cache and fixed.path.read_bytes() == obk_images["BK7231N"]["qio"]
    assert client.fetch("BK7231N").from_cache


def test_api_digest_is_checked(gh, obk_images, tmp_path) -> None:
    bad = gh.release("d1", [gh.asset("d1", f"OpenBK7231T_UA_{TAG}.bin", obk_images["BK7231T"]["ua"],
                                     digest="sha256:" + "0" * 64)])
    gh.publish(bad, latest=False)
    c = ReleaseClient(api_base=gh.base, cache_dir=tmp_path / "d")
    with pytest.raises(ChecksumError):
        c.fetch("BK7231T", version="d1")
    good_digest = "sha256:" + hashlib.sha256(obk_images["BK7231T"]["ua"]).hexdigest()
    good = gh.release("d2", [gh.asset("d2", f"OpenBK7231T_UA_{TAG}.bin", obk_images["BK7231T"]["ua"],
                                      digest=good_digest)])
    gh.publish(good, latest=False)
    assert c.fetch("BK7231T", version="d2").info.format == "ua"


@pytest.mark.parametrize(
    "served, message",
    [
        (lambda imgs: imgs["BK7231N"]["ota"], "not a QIO"),  # an OTA file under the QIO name
        (lambda imgs: imgs["BK7231N"]["ua"], "not a QIO"),  # a UA under the QIO name
        (lambda imgs: imgs["BK7231T"]["qio"], "is for BK7231T"),  # the other chip's QIO
        (lambda imgs: b"<html>rate limited</html>" * 100, "not a QIO"),
    ],
)
def test_downloaded_file_must_be_what_the_name_says(gh, client, obk_images, tmp_path, served, message) -> None:
    data = served(obk_images)
    name = f"OpenBK7231N_QIO_{TAG}.bin"
    r = gh.release("w", [gh.asset("w", name, data)])
    gh.publish(r, latest=False)
    with pytest.raises(ImageError, match=message):
        client.fetch("BK7231N", version="w")
    assert not (tmp_path / "cache" / "w" / name).exists()


def test_unsafe_names_from_the_api_are_refused(gh, client) -> None:
    evil = gh.release("../../etc", [])
    gh.routes[f"{REPO}/releases/latest"] = (200, {}, json.dumps(evil).encode())
    with pytest.raises(BkError, match="unsafe"):
        client.fetch("BK7231N")


def test_invalid_json(gh, client) -> None:
    gh.routes[f"{REPO}/releases/latest"] = (200, {}, b"<html>")
    with pytest.raises(BkError, match="invalid JSON"):
        client.fetch("BK7231N")
