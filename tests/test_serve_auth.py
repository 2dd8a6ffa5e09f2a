"""`bkbench serve`: who gets in. Plain HTTP and websocket clients playing a LAN attacker, no browser.

Each guarded server runs a command that leaves a marker file: a refused websocket must never start a
workbench process, an accepted one must (so the refusals below cannot pass by refusing everything).
"""

from __future__ import annotations

import asyncio
import base64
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("textual_serve", reason="the serve extra (textual-serve) is not installed")

from aiohttp import WSServerHandshakeError  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402
from bkbench.core.cli import serve as cli_serve  # noqa: E402
from bkbench.tui import serve as web  # noqa: E402

_servers: dict[int, web.WorkbenchServer] = {}
TOKEN = "t0ken-for-the-tests-0123456789"
PASSWORD = "correct horse battery"


def _run(coro):
    return asyncio.run(coro)


async def _client(tmp_path: Path, guard: web.Guard) -> tuple[TestClient, Path]:
    marker = tmp_path / "started"
    server = web.WorkbenchServer(f"touch {shlex.quote(str(marker))}", guard, log=lambda _t: None)
    client = TestClient(TestServer(server.make_app(), host="127.0.0.1"))
    await client.start_server()
    _servers[id(client)] = server
    return client, marker


async def _close(client: TestClient) -> None:
    """Let open sessions end (their processes reaped) before the server goes, then close it."""
    server = _servers.pop(id(client), None)
    end = time.monotonic() + 20
    while server is not None and server.sessions and time.monotonic() < end:
        await asyncio.sleep(0.05)
    await client.close()


def _origin(client: TestClient) -> str:
    return f"http://{client.host}:{client.port}"


async def _ws_status(client: TestClient, **headers: str) -> int:
    try:
        ws = await client.ws_connect("/ws", headers=headers)
    except WSServerHandshakeError as exc:
        return exc.status
    await ws.close()
    return 101


async def _raw_get(client: TestClient, path: str) -> str:
    """The response head to a GET whose path goes out exactly as written (no URL normalising)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {client.host}:{client.port}\r\nConnection: close\r\n\r\n"
                 .encode())
    data = await reader.read()
    writer.close()
    return data.decode("latin-1").split("\r\n\r\n", 1)[0]


async def _wait_for(path: Path, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists():
            return True
        await asyncio.sleep(0.05)
    return False


def test_loopback_open_but_only_to_localhost_names_and_own_origin(tmp_path: Path):
    async def go():
        client, marker = await _client(tmp_path, web.Guard(loopback=True))
        try:
            page = await client.get("/")
            assert page.status == 200 and "textual.js" in await page.text()
            assert page.headers["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in \
                page.headers["Content-Security-Policy"]
            assert page.headers["Referrer-Policy"] == "no-referrer"
            # DNS rebinding: an attacker's name pointed at 127.0.0.1 carries its own Host header.
            for host in ("evil.example", f"evil.example:{client.port}", "127.0.0.1.evil.example", "192.168.1.2"):
                assert (await client.get("/", headers={"Host": host})).status == 403, host
                assert await _ws_status(client, Host=host, Origin=f"http://{host}") == 403
            # Cross-site websocket hijacking: a page elsewhere opening our websocket.
            for origin in ("http://evil.example", f"http://localhost:{client.port + 1}", "null", "file://"):
                assert await _ws_status(client, Origin=origin) == 403, origin
            await asyncio.sleep(0.3)
            assert not marker.exists(), "a refused websocket started a workbench"
            assert await _ws_status(client, Origin=_origin(client)) == 101
            assert await _wait_for(marker), "the accepted websocket started no workbench"
        finally:
            await _close(client)

    _run(go())


def test_token_needed_for_page_websocket_and_files(tmp_path: Path):
    async def go():
        client, marker = await _client(tmp_path, web.Guard(token=TOKEN, loopback=False))
        try:
            for path in ("/", "/static/js/textual.js", "/download/x", "/ws"):
                assert (await client.get(path)).status == 401, path
            assert await _ws_status(client, Origin=_origin(client)) == 401
            for wrong in ("", TOKEN[:-1], TOKEN + "x", TOKEN.upper(), " " + TOKEN, "ö" * 30):
                assert (await client.get("/", params={"token": wrong})).status == 403, wrong
                assert await _ws_status(client, Origin=_origin(client)) == 401  # no cookie was set
            # The token as the cookie is not the session key either.
            assert (await client.get("/", cookies={"bkbench_session": TOKEN})).status == 401
            assert (await client.get("/", headers={"Cookie": f"bkbench_session={TOKEN}"})).status == 401
            await asyncio.sleep(0.3)
            assert not marker.exists(), "a websocket without the session cookie started a workbench"
        finally:
            await _close(client)

    _run(go())


def test_right_token_becomes_an_httponly_cookie_and_leaves_the_address_bar(tmp_path: Path):
    async def go():
        client, marker = await _client(tmp_path, web.Guard(token=TOKEN, loopback=False))
        try:
            first = await client.get("/", params={"token": TOKEN, "fontsize": "12"}, allow_redirects=False)
            assert first.status == 303
            assert TOKEN not in first.headers["Location"] and "fontsize=12" in first.headers["Location"]
            cookie = first.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
            for path in ("//evil.example/", "/\\evil.example/", "/static/../x"):  # sent as they are
                head = await _raw_get(client, f"{path}?token={TOKEN}")
                location = next(line.split(":", 1)[1].strip() for line in head.splitlines()
                                if line.lower().startswith("location:"))
                assert head.startswith("HTTP/1.1 303") and location == "/", (path, location)
            page = await client.get("/")  # the client's jar now holds the cookie
            assert page.status == 200 and TOKEN not in await page.text()
            assert await _ws_status(client, Origin="http://evil.example") == 403  # cookie alone is not enough
            await asyncio.sleep(0.3)
            assert not marker.exists()
            assert await _ws_status(client, Origin=_origin(client)) == 101
            assert await _wait_for(marker)
        finally:
            await _close(client)

    _run(go())


def test_password_by_http_basic(tmp_path: Path):
    def basic(pw: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"anyone:{pw}".encode()).decode()}

    async def go():
        client, _marker = await _client(tmp_path, web.Guard(password=PASSWORD, loopback=False))
        try:
            bare = await client.get("/")
            assert bare.status == 401 and bare.headers["WWW-Authenticate"].startswith("Basic")
            for wrong in (PASSWORD[:-1], PASSWORD + " ", ""):
                assert (await client.get("/", headers=basic(wrong))).status == 401
            assert (await client.get("/", headers={"Authorization": "Basic !!notbase64"})).status == 401
            assert (await client.get("/", params={"token": PASSWORD})).status == 401  # no token mode here
            good = await client.get("/", headers=basic(PASSWORD))
            assert good.status == 200 and "HttpOnly" in good.headers["Set-Cookie"]
            assert (await client.get("/static/js/textual.js")).status == 200  # by the cookie now
        finally:
            await _close(client)

    _run(go())


def test_guessing_is_throttled(tmp_path: Path):
    async def go():
        client, _marker = await _client(tmp_path, web.Guard(token=TOKEN, loopback=False))
        try:
            for i in range(web.MAX_FAILURES):
                assert (await client.get("/", params={"token": f"guess-{i}"})).status == 403
            assert (await client.get("/", params={"token": "another"})).status == 429
            assert (await client.get("/", params={"token": TOKEN}, allow_redirects=False)).status == 429
        finally:
            await _close(client)

    _run(go())


def test_one_guesser_does_not_lock_the_owner_out(tmp_path: Path):
    """The throttle counts per peer address: ten wrong tokens from 127.0.0.2 get that address 429, while the
    owner on 127.0.0.1 still gets in with the right token (and its own wrong guesses are its own count)."""
    import aiohttp

    async def go():
        client, _marker = await _client(tmp_path, web.Guard(token=TOKEN, loopback=False))
        base = f"http://127.0.0.1:{client.port}"
        guesser = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0)))
        try:
            for i in range(web.MAX_FAILURES):
                assert (await guesser.get(f"{base}/", params={"token": f"guess-{i}"})).status == 403
            assert (await guesser.get(f"{base}/", params={"token": "another"})).status == 429
            # While the guesser keeps trying, the owner's right token works at once, and then the cookie.
            assert (await guesser.get(f"{base}/", params={"token": TOKEN}, allow_redirects=False)).status == 429
            assert (await client.get("/", params={"token": "typo"})).status == 403
            right = await client.get("/", params={"token": TOKEN}, allow_redirects=False)
            assert right.status == 303 and "Set-Cookie" in right.headers
            assert (await client.get("/")).status == 200
            assert (await guesser.get(f"{base}/", params={"token": "more"})).status == 429
        finally:
            await guesser.close()
            await _close(client)

    _run(go())


def test_throttle_memory_is_bounded_and_ipv6_counts_by_64(monkeypatch):
    guard = web.Guard(token=TOKEN, loopback=False)
    monkeypatch.setattr(web, "MAX_PEERS", 64)
    for _ in range(web.MAX_FAILURES * 3):
        guard.failed("10.0.0.1")
    assert len(guard.failures["10.0.0.1"]) == web.MAX_FAILURES and guard.throttled("10.0.0.1")
    for n in range(1000):  # a guesser with many addresses: memory stays bounded
        guard.failed(f"10.1.{n // 256}.{n % 256}")
    assert len(guard.failures) <= 64
    assert not guard.throttled("192.0.2.7")
    assert web.peer_key("2001:db8:1:2::1") == web.peer_key("2001:db8:1:2:ffff::9") != web.peer_key("2001:db8:1:3::1")
    assert web.peer_key("::ffff:192.0.2.7") == "192.0.2.7" and web.peer_key("127.0.0.1") == "127.0.0.1"


def test_static_files_no_listing_no_traversal(tmp_path: Path):
    async def go():
        client, _marker = await _client(tmp_path, web.Guard(loopback=True))
        try:
            assert (await client.get("/static/js/textual.js")).status == 200
            assert (await client.get("/static/")).status in (403, 404)
            for path in ("/static/../serve.py", "/static/%2e%2e/server.py", "/static/..%2fserver.py",
                         "/static/css/../../server.py", "/static//etc/passwd"):
                resp = await client.get(path)
                assert resp.status in (403, 404), path
                assert "import" not in await resp.text()
        finally:
            await _close(client)

    _run(go())


def test_workbench_command_quotes_every_argument(tmp_path: Path):
    import argparse

    odd = tmp_path / "lib; touch pwned $(id) 'x'"
    args = argparse.Namespace(port="sim://bk7231n?dump=/a b&scenario=app-running", demo=True, baud=2000000,
                              data_dir=str(odd))
    argv = shlex.split(cli_serve.workbench_command(args))
    assert argv[:3] == [sys.executable, "-m", "bkbench.core.cli.main"]
    assert argv[3:] == ["--port", args.port, "--demo", "--baud", "2000000", "--data-dir", str(odd)]


def test_auth_choice(monkeypatch: pytest.MonkeyPatch):
    import argparse

    monkeypatch.delenv(cli_serve.TOKEN_ENV, raising=False)
    monkeypatch.delenv(cli_serve.PASSWORD_ENV, raising=False)
    plain = argparse.Namespace(password=False, token=False)
    assert cli_serve.resolve_auth(plain, loopback=True) == (None, None, False)
    token, password, generated = cli_serve.resolve_auth(plain, loopback=False)  # elsewhere: never open
    assert generated and password is None and len(token) >= 24
    assert cli_serve.resolve_auth(plain, loopback=False)[0] != token  # fresh each run
    monkeypatch.setenv(cli_serve.TOKEN_ENV, "short")
    with pytest.raises(cli_serve.ServeError, match="too short"):
        cli_serve.resolve_auth(plain, loopback=False)
    monkeypatch.setenv(cli_serve.PASSWORD_ENV, PASSWORD)
    assert cli_serve.resolve_auth(argparse.Namespace(password=True, token=False), loopback=False) == \
        (None, PASSWORD, False)
    for host, loop in (("127.0.0.1", True), ("::1", True), ("localhost", True), ("127.8.9.10", True),
                       ("0.0.0.0", False), ("", False), ("::", False), ("192.168.1.5", False),
                       ("localhost.evil.example", False)):
        assert web.is_loopback(host) is loop, host


def _bkbench(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bkbench.core.cli.main", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_cli_bad_secrets_and_missing_extra_are_one_line(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]):
    from bkbench.core.cli.main import main

    monkeypatch.setenv(cli_serve.PASSWORD_ENV, "1234")
    assert main(["serve", "--password", "--web-port", "0"]) == 1
    err = capsys.readouterr().err
    assert "too short" in err and err.count("\n") == 1, err
    monkeypatch.delenv(cli_serve.PASSWORD_ENV)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    assert main(["serve", "--password", "--web-port", "0"]) == 1
    err = capsys.readouterr().err
    assert cli_serve.PASSWORD_ENV in err and "Traceback" not in err
    monkeypatch.setitem(sys.modules, "textual_serve", None)  # as if the extra were not installed
    monkeypatch.delitem(sys.modules, "bkbench.tui.serve")
    assert main(["serve"]) == 1
    err = capsys.readouterr().err
    # A command for this copy (a checkout here), not `pip install 'bkbench[serve]'` (issue 22)
    assert "./dev serve" in err and "pip install -e '.[serve]'" in err and "Traceback" not in err


def test_the_serve_hint_of_a_pipx_copy_is_pipx_inject(tmp_path: Path, monkeypatch):
    from bkbench.core import install

    venv = tmp_path / "pipx" / "venvs" / "bkbench"
    venv.mkdir(parents=True)
    monkeypatch.setattr(sys, "prefix", str(venv))
    assert install.pipx_venv() is None  # not a venv pipx made
    (venv / "pipx_metadata.json").write_text("{}")
    assert cli_serve.install_hint().endswith(": pipx inject bkbench 'textual-serve>=1.1,<2'")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.setattr(install, "checkout_dir", lambda: None)
    assert cli_serve.install_hint().endswith("-m pip install 'textual-serve>=1.1,<2'")


def test_cli_elsewhere_warns_prints_token_once_and_never_logs_it(tmp_path: Path):
    """`--bind 0.0.0.0` (traffic below goes to 127.0.0.1 only): warning, token URL on stdout, guard on."""
    import http.client

    def get(port: int, path: str, cookie: str = "") -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        return resp

    env = {k: v for k, v in os.environ.items() if not k.startswith("BKBENCH_SERVE_")}
    env["BKBENCH_CACHE_DIR"] = str(tmp_path / "cache")
    proc = _bkbench("serve", "--bind", "0.0.0.0", "--web-port", "0", "--demo", "--data-dir", str(tmp_path),
                    env=env)
    try:
        line = proc.stdout.readline()
        assert "?token=" in line, line
        token = line.strip().rsplit("?token=", 1)[1]
        port = int(line.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
        assert get(port, "/").status == 401
        assert get(port, "/?token=" + token[:-1]).status == 403
        first = get(port, "/?token=" + token)
        assert first.status == 303 and first.getheader("Location") == "/"
        cookie = first.getheader("Set-Cookie").split(";", 1)[0]
        assert cookie.startswith(f"bkbench_{port}=") and token not in cookie
        assert get(port, "/", cookie).status == 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "WARNING" in err and "plain HTTP" in err and f"ssh -L {port}:localhost:{port}" in err  # the port it got
    assert token not in err and token not in out  # printed exactly once (the line read above), logged never
    assert "wrong token" in err and "token accepted" in err


# A stand-in workbench that speaks textual-serve's framing: after the quit request (its browser is gone) it
# still has 1 MiB to show, far past a pipe's 64 KiB, and only then finishes (writes the marker).
FINISHING_APP = r"""
import sys
import time
from pathlib import Path
sys.stdout.buffer.write(b"__GANGLION__\n"); sys.stdout.buffer.flush()
seen = b""
while b"quit" not in seen:
    byte = sys.stdin.buffer.read(1)
    if not byte:
        break
    seen += byte
chunk = b"x" * 4096
for _ in range(256):
    sys.stdout.buffer.write(b"D" + len(chunk).to_bytes(4, "big") + chunk)
sys.stdout.buffer.flush()
time.sleep(0.5)  # still busy a moment after its output
Path(sys.argv[1]).write_text("finished")
"""


def test_a_closed_browser_does_not_stall_a_finishing_workbench(tmp_path: Path):
    script = tmp_path / "finishing_app.py"
    script.write_text(FINISHING_APP)
    marker = tmp_path / "finished"

    async def go():
        server = web.WorkbenchServer(shlex.join([sys.executable, str(script), str(marker)]), web.Guard(),
                                     log=lambda _t: None)
        client = TestClient(TestServer(server.make_app(), host="127.0.0.1"))
        await client.start_server()
        _servers[id(client)] = server
        try:
            ws = await client.ws_connect("/ws", headers={"Origin": _origin(client)})
            await asyncio.sleep(0.2)
            await ws.close()  # the tab is closed
            assert await _wait_for(marker, 20), "the workbench blocked on output nobody reads"
        finally:
            await _close(client)

    _run(go())


async def _serve_script(script: Path, marker: Path):
    """A real server (web.run) in front of a stand-in workbench script: (server, stop, task, base URL)."""
    server = web.WorkbenchServer(shlex.join([sys.executable, str(script), str(marker)]), web.Guard(),
                                 log=lambda _t: None)
    stop, ports = asyncio.Event(), []
    task = asyncio.create_task(web.run(server, "127.0.0.1", 0, ports.append, stop))
    end = time.monotonic() + 20
    while not ports and time.monotonic() < end:
        await asyncio.sleep(0.02)
    return server, stop, task, f"http://127.0.0.1:{ports[0]}"


def test_stopping_the_server_waits_for_a_finishing_workbench(tmp_path: Path):
    import aiohttp

    script = tmp_path / "finishing_app.py"
    script.write_text(FINISHING_APP)
    marker = tmp_path / "finished"

    async def go():
        server, stop, task, base = await _serve_script(script, marker)
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(base + "/ws", headers={"Origin": base})
            while server.sessions == 0:
                await asyncio.sleep(0.02)
            stop.set()  # ctrl+c on `bkbench serve` while a browser is connected
            await asyncio.wait_for(task, 30)
            assert marker.exists(), "the server quit before its workbench had finished"
            assert (await ws.receive()).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)

    _run(go())


def test_garbled_websocket_messages_end_the_session_quietly_and_sizes_stay_sane(tmp_path: Path,
                                                                                 caplog: pytest.LogCaptureFixture):
    """A hostile (or buggy) page's messages: odd resizes never reach the workbench as a size it would crash
    on (a string width would end it mid-write), and a malformed envelope ends only that session, with one
    log line and no traceback."""
    import json
    import logging

    received = tmp_path / "stdin"  # each session's (the last one's stays)
    said: list[str] = []

    async def go():
        server = web.WorkbenchServer(f"cat > {shlex.quote(str(received))}", web.Guard(), log=said.append)
        client = TestClient(TestServer(server.make_app(), host="127.0.0.1"))
        await client.start_server()
        _servers[id(client)] = server
        try:
            for last in ([], ["stdin", 5], ["resize"], ["resize", None], 7, ["resize", {"height": 30}]):
                ws = await client.ws_connect("/ws", headers={"Origin": _origin(client)})
                for width, height in (("x", 5), (10**9, -1), (None, 30), (1.5, 2), (100, 30)):
                    await ws.send_json(["resize", {"width": width, "height": height}])
                await ws.send_json(last)
                assert (await ws.receive(timeout=20)).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                await ws.close()
                end = time.monotonic() + 20
                while server.sessions and time.monotonic() < end:
                    await asyncio.sleep(0.05)
                assert not server.sessions, last
        finally:
            await _close(client)

    import aiohttp

    with caplog.at_level(logging.DEBUG):
        _run(go())
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]
    assert sum("bad message" in line for line in said) == 6, said
    data, sizes = received.read_bytes(), []
    while data:
        kind, size = data[:1], int.from_bytes(data[1:5], "big")
        payload, data = data[5:5 + size], data[5 + size:]
        if kind == b"M" and json.loads(payload).get("type") == "resize":
            meta = json.loads(payload)
            sizes.append((meta["width"], meta["height"]))
    assert sizes and all(type(w) is int and type(h) is int and 10 <= w <= 500 and 10 <= h <= 500
                         for w, h in sizes), sizes
    assert (100, 30) in sizes


# A stand-in workbench whose operation runs until it is asked to quit a second time (that cancels it), as
# BkBenchApp does; it gives up by itself after 30 s so a failing test cannot hang.
CANCELLING_APP = r"""
import sys
import time
from pathlib import Path
sys.stdout.buffer.write(b"__GANGLION__\n"); sys.stdout.buffer.flush()
seen, end = b"", time.monotonic() + 30
while seen.count(b"quit") < 2 and time.monotonic() < end:
    byte = sys.stdin.buffer.read(1)
    if not byte:
        break
    seen += byte
Path(sys.argv[1]).write_text(f"asked {seen.count(b'quit')} times")
"""


def test_a_second_ctrl_c_has_the_workbenches_cancel(tmp_path: Path):
    import signal

    import aiohttp

    script = tmp_path / "cancelling_app.py"
    script.write_text(CANCELLING_APP)
    marker = tmp_path / "ended"

    async def go():
        server, stop, task, base = await _serve_script(script, marker)
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(base + "/ws", headers={"Origin": base})
            browser = asyncio.create_task(ws.receive())  # answers the server's close, as a browser does
            while server.sessions == 0:
                await asyncio.sleep(0.02)
            stop.set()  # the first ctrl+c: the workbench is asked to quit and goes on with its operation
            await asyncio.sleep(0.5)
            assert not task.done() and not marker.exists()
            os.kill(os.getpid(), signal.SIGINT)  # the second, caught by the server's handler
            await asyncio.wait_for(task, 40)
            await browser
        assert marker.exists() and marker.read_text() == "asked 2 times", \
            marker.read_text() if marker.exists() else "the workbench never ended"

    _run(go())


def test_cli_cannot_listen_says_why_in_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """A name that does not resolve or an address not of this machine is a --bind mistake, named as one;
    a port in use is a --web-port one."""
    import socket

    from bkbench.core.cli.main import main

    monkeypatch.delenv(cli_serve.TOKEN_ENV, raising=False)
    monkeypatch.delenv(cli_serve.PASSWORD_ENV, raising=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["serve", "--web-port", str(taken.getsockname()[1])]) == 1
    err = capsys.readouterr().err
    assert "address already in use" in err and "--web-port" in err and "Traceback" not in err, err

    async def unresolvable(*_a, **_k):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(web, "run", unresolvable)
    assert main(["serve", "--bind", "nosuchhost.invalid", "--web-port", "0"]) == 1
    err = capsys.readouterr().err
    assert "unknown error" not in err.lower() and "name or service not known" in err.lower(), err
    assert "--bind" in err.split("error:", 1)[1] and "another program uses this port" not in err, err


def test_a_secret_that_could_never_match_is_refused_at_start(monkeypatch: pytest.MonkeyPatch):
    """A token typed into an address: '+' arrives as a space, '#' and '&' cut it, so such a token could never
    be accepted (and every try would count as a wrong guess). Text that is not UTF-8 (a stray byte in the
    environment) cannot be compared at all: every request would fail with a traceback."""
    import argparse

    monkeypatch.delenv(cli_serve.PASSWORD_ENV, raising=False)
    plain = argparse.Namespace(password=False, token=False)
    for bad in ("a+b-0123456789", "my token is long", "abc#def0123456", "abc&def0123456", "abc%41def01234"):
        monkeypatch.setenv(cli_serve.TOKEN_ENV, bad)
        with pytest.raises(cli_serve.ServeError, match="token"):
            cli_serve.resolve_auth(plain, loopback=False)
    for good in ("Good_token-0123.456~", "ä" * 12):  # a browser sends ä as UTF-8, which comes back as ä
        monkeypatch.setenv(cli_serve.TOKEN_ENV, good)
        assert cli_serve.resolve_auth(plain, loopback=False)[0] == good
    monkeypatch.setenv(cli_serve.PASSWORD_ENV, "correct horse \udcff battery")  # as os.environ gives byte 0xff
    with pytest.raises(cli_serve.ServeError, match="password"):
        cli_serve.resolve_auth(argparse.Namespace(password=True, token=False), loopback=False)
    monkeypatch.setenv(cli_serve.PASSWORD_ENV, "correct horse ä battery")  # any UTF-8 text is fine
    assert cli_serve.resolve_auth(argparse.Namespace(password=True, token=False), loopback=False)[1] == \
        "correct horse ä battery"


def test_a_malformed_request_is_one_log_line_not_a_traceback(tmp_path: Path, capfd: pytest.CaptureFixture[str]):
    """Any peer on the network can send garbage: the server's console gets one line, never a traceback."""
    said: list[str] = []

    async def go():
        server = web.WorkbenchServer("true", web.Guard(), log=said.append)
        stop, ports = asyncio.Event(), []
        task = asyncio.create_task(web.run(server, "127.0.0.1", 0, ports.append, stop))
        end = time.monotonic() + 20
        while not ports and time.monotonic() < end:
            await asyncio.sleep(0.02)
        for raw in (b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 40,
                    b"GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n",
                    f"GET /?token={TOKEN} HTTP/1.1 x\r\nHost: localhost\r\n\r\n".encode()):
            reader, writer = await asyncio.open_connection("127.0.0.1", ports[0])
            writer.write(raw)
            await reader.read()
            writer.close()
        stop.set()
        await asyncio.wait_for(task, 20)

    _run(go())
    out, err = capfd.readouterr()
    assert "Traceback" not in err + out, err
    bad = [line for line in said if "bad request" in line]
    assert len(bad) >= 3 and all("\n" not in line for line in bad), said  # (a TLS hello may go unlogged)
    assert not any(TOKEN in line for line in said), said


def test_workbench_options_given_before_or_after_serve_reach_every_session(monkeypatch: pytest.MonkeyPatch):
    """`bkbench --port X serve` (the global --port is a list) ended in 'internal error: TypeError'; `--demo 3`
    and a repeated --port (the multi-port view) were cut down to one chip without a word."""
    from bkbench.core.cli.main import build_parser

    monkeypatch.delenv("BKBENCH_DATA_DIR", raising=False)

    def session_argv(*argv: str) -> list[str]:
        return shlex.split(cli_serve.workbench_command(build_parser().parse_args(list(argv))))[3:]

    assert session_argv("--port", "sim://bk7231n", "serve") == ["--port", "sim://bk7231n", "--baud", "921600"]
    assert session_argv("serve", "--port", "A", "--port", "B")[:4] == ["--port", "A", "--port", "B"]
    assert session_argv("--port", "A", "--port", "B", "serve")[:4] == ["--port", "A", "--port", "B"]
    assert session_argv("--demo", "3", "serve")[:2] == ["--demo", "3"]
    assert session_argv("serve", "--demo", "3")[:2] == ["--demo", "3"]
    assert session_argv("serve", "--demo")[:1] == ["--demo"] and "1" not in session_argv("serve", "--demo")
    assert session_argv("serve") == ["--baud", "921600"]


def test_ctrl_d_at_the_password_prompt_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]):
    from bkbench.core.cli.main import main

    def eof(_prompt: str = "") -> str:
        raise EOFError

    monkeypatch.delenv(cli_serve.PASSWORD_ENV, raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(cli_serve.getpass, "getpass", eof)
    assert main(["serve", "--password", "--web-port", "0"]) == 1
    err = capsys.readouterr().err
    assert "internal error" not in err and "password" in err and err.count("\n") == 1, err
