"""`bkbench fetch --devices`: OpenBK's community device list downloaded from a real local HTTP server (or taken
from a file), checked, cached with its SHA-256, and used offline afterwards; bad input is one clear line."""

from __future__ import annotations

import json
import threading
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from bkbench.core.analysis.device_list import (
    DeviceList,
    DeviceListError,
    DeviceListNetworkError,
    DeviceListStore,
    download,
)
from test_station import cli, one_error


@pytest.fixture(scope="module")
def list_bytes(fixtures_dir: Path) -> bytes:
    return (fixtures_dir / "devices" / "openbk-devices.json").read_bytes()


class ListServer:
    """http.server on 127.0.0.1: path -> (status, body, declared Content-Length or None for the true one)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, int | None]] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                status, body, declared = outer.routes.get(self.path, (404, b"not found", None))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body) if declared is None else declared))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def server():
    s = ListServer()
    yield s
    s.stop()


def test_parse_reads_the_real_list(list_bytes: bytes) -> None:
    dl = DeviceList.parse(list_bytes, "fixture")
    assert len(dl.entries) == 863 and dl.version == "0.1"
    assert sum(e.chip == "BK7231N" for e in dl.entries) == 422 and sum(e.chip == "BK7231T" for e in dl.entries) == 210
    ids = [e.id for e in dl.entries]
    assert len(set(ids)) == len(ids)  # two entries share vendor/name/model/chip/board/link: -2 keeps them apart
    elivco = [e for e in dl.entries if e.name == "LSPA9 Power metering plug BL0937 version"][0]
    assert elivco.pins == {6: "BL0937CF1;1", 7: "BL0937CF;1", 10: "Btn;1", 24: "BL0937SEL;1", 26: "Rel;1"}
    assert dl.get(elivco.id) is elivco and dl.get(elivco.id[:5].upper()) is elivco
    # ids depend on the entry, not on its place in the list
    moved = json.loads(list_bytes)
    moved["devices"].reverse()
    assert DeviceList.parse(json.dumps(moved).encode()).get(elivco.id).name == elivco.name
    assert dl.module_chip("CB2S")[0] == "BK7231N" and dl.module_chip("WB2S")[0] == "BK7231T"
    assert dl.module_chip("WB3S") is not None and dl.module_chip("on PCB") is None  # mixed chips: no inference


@pytest.mark.parametrize("data, words", [
    (b"", "empty"),
    (b"\x00\xff\x10binary", "binary"),
    (b"<!DOCTYPE html><html><body>rate limited</body></html>", "HTML page"),
    (b'{"devices": [', "not valid JSON"),
    (b'[{"name": "x", "chip": "BK7231N"}]', "'devices' list"),
    (b'{"devices": "many"}', "'devices' list"),
    (b'{"devices": []}', "0 devices"),
    (b'{"devices": [1, 2, {"name": "x"}]}', "without a name and chip"),
])
def test_parse_refuses_what_is_not_the_list(data: bytes, words: str) -> None:
    with pytest.raises(DeviceListError, match=words):
        DeviceList.parse(data, "the file")


def test_store_is_checked_on_every_load(tmp_path: Path, list_bytes: bytes) -> None:
    store = DeviceListStore(tmp_path)
    assert store.load() is None
    saved = store.save(list_bytes, "https://example.invalid/devices.json")
    again = store.load()
    assert again is not None and len(again.entries) == 863 and again.sha256 == saved.sha256
    assert again.source == "https://example.invalid/devices.json" and again.fetched_at
    assert store.path.read_bytes() == list_bytes  # the list is kept exactly as downloaded
    damaged = bytearray(list_bytes)
    damaged[1000] ^= 0x20
    store.path.write_bytes(bytes(damaged))
    with pytest.raises(DeviceListError, match="damaged"):
        store.load()
    store.sums.unlink()
    with pytest.raises(DeviceListError, match="no checksum"):
        store.load()


def test_download_from_a_local_server(server: ListServer, tmp_path: Path, list_bytes: bytes) -> None:
    server.routes["/webapp/devices.json"] = (200, list_bytes, None)
    store = DeviceListStore(tmp_path)
    dl = store.fetch(f"{server.base}/webapp/devices.json", timeout=5)
    assert len(dl.entries) == 863 and store.load().sha256 == dl.sha256


@pytest.mark.parametrize("route, error, words", [
    ((404, b"missing", None), DeviceListError, "HTTP 404"),
    ((200, b"<html>captive portal</html>", None), DeviceListError, "HTML page"),
    ((200, b'{"devices": []}', None), DeviceListError, "0 devices"),
    ((200, b'{"devices": [{"name": "a", "chip": "BK7231N"}]}', 5000), DeviceListNetworkError, "truncated"),
    ((200, b"{}", 64 * 1024 * 1024), DeviceListError, "larger than any device list"),
])
def test_a_bad_download_leaves_the_cache_alone(server: ListServer, tmp_path: Path, list_bytes: bytes, route, error,
                                               words) -> None:
    store = DeviceListStore(tmp_path)
    store.save(list_bytes, "earlier")
    before = (store.path.read_bytes(), store.sums.read_bytes(), store.meta.read_bytes())
    server.routes["/devices.json"] = route
    with pytest.raises(error, match=words):
        store.fetch(f"{server.base}/devices.json", timeout=5)
    assert (store.path.read_bytes(), store.sums.read_bytes(), store.meta.read_bytes()) == before
    assert len(store.load().entries) == 863


def test_download_body_is_capped_even_without_a_length() -> None:
    class Endless:
        headers: dict = {}

        def read(self, n: int) -> bytes:
            return b" " * n

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            pass

    with pytest.raises(DeviceListError, match="larger than any device list"):
        download("http://x.invalid/devices.json", opener=lambda req, timeout: Endless(), limit=1 << 20)


def test_unreachable_host_is_a_network_error() -> None:
    def refused(req, timeout):
        raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))

    with pytest.raises(DeviceListNetworkError, match="Cannot reach x.invalid"):
        download("http://x.invalid/devices.json", opener=refused)


def test_cli_fetch_devices_download_offline_and_import(server: ListServer, tmp_path: Path, list_bytes: bytes,
                                                       monkeypatch) -> None:
    server.routes["/devices.json"] = (200, list_bytes, None)
    code, out, err = cli(["fetch", "--devices", "--devices-url", f"{server.base}/devices.json"])
    assert code == 0, err
    assert "downloaded: 863 entries" in out and "devices.json" in out.splitlines()[-1]
    cached = Path(out.splitlines()[-1])
    assert cached.read_bytes() == list_bytes
    # the network gone: the cached list stays in use, with a warning, and --offline reads it without asking
    server.stop()
    code, out, err = cli(["fetch", "--devices", "--devices-url", f"{server.base}/devices.json"])
    assert code == 0 and "warning: Cannot reach" in err and "cached: 863 entries" in out
    code, out, err = cli(["--json", "fetch", "--devices", "--offline"])
    assert code == 0 and json.loads(out)["entries"] == 863
    # a copy downloaded elsewhere (an offline Pi)
    copy = tmp_path / "devices.json"
    copy.write_bytes(list_bytes)
    code, out, err = cli(["fetch", "--devices", str(copy)])
    assert code == 0 and "imported: 863 entries" in out


def test_cli_fetch_devices_bad_inputs_are_one_line(tmp_path: Path, fixtures_dir: Path) -> None:
    code, _, err = cli(["fetch", "--devices", "--offline"])
    one_error(code, err, "no cached device list")
    code, _, err = cli(["fetch", "--devices", "--devices-url", "http://127.0.0.1:9/devices.json"])
    one_error(code, err, "cannot reach 127.0.0.1:9")
    code, _, err = cli(["fetch", "--devices", str(fixtures_dir / "dumps" / "bk7231n-lspa9-clone-bl0937-plug.bin")])
    one_error(code, err, "binary data")
    bad = tmp_path / "other.json"
    bad.write_text('{"releases": []}')
    code, _, err = cli(["fetch", "--devices", str(bad)])
    one_error(code, err, "not OpenBK's devices.json")
    code, _, err = cli(["fetch", "--devices", str(tmp_path / "missing.json")])
    one_error(code, err, "missing.json")
    code, _, err = cli(["fetch", "--devices", str(tmp_path)])
    one_error(code, err, "directory")


def test_text_fields_lose_terminal_control_characters() -> None:
    raw = {"devices": [{"name": "Plug\x1b[2J\x1b]0;owned\x07 X", "chip": "BK7231N", "vendor": "A\rB",
                        "wiki": "https://e.x/\x1b[31m", "pins": {"26": "Rel;1\x1b[0m"}}]}
    e = DeviceList.parse(json.dumps(raw).encode()).entries[0]
    for text in (e.title, e.wiki, e.pins[26]):
        assert not any(ord(ch) < 32 or ord(ch) == 127 for ch in text), repr(text)
    assert e.name == "Plug[2J]0;owned X" and e.pins[26] == "Rel;1[0m"
