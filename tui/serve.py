"""The workbench in a browser: textual-serve's per-session app runner behind bkbench's own guard.

Every browser session gets its own workbench process (`bkbench --demo ...` under Textual's web driver)
spoken to over one websocket. The page can erase and flash chips, so this module decides who gets in:

- Bound to a loopback address, no secret is needed, but the Host header must name a loopback host: a page
  on another site that re-points its DNS name at 127.0.0.1 (DNS rebinding) is refused.
- Anywhere else a secret is required: a token (`?token=` once; it becomes an HttpOnly, SameSite=Strict
  session cookie and the address bar drops it) or an HTTP Basic password. The cookie holds a random
  session key, not the token. Every route is guarded, the websocket too, before any process is started.
- The websocket also checks Origin against the Host it was asked on (no cross-site websocket hijacking),
  and the page may not be framed (no clickjacking into key presses).
- Secrets never reach a log: there is no access log with query strings; refusals are logged without them.

A session whose browser goes away (or every session, when the server stops) is asked to quit; the app
finishes a running operation first (BkBenchApp._on_exit_app) and its output is drained meanwhile.

textual-serve (optional extra `serve`) is imported here only; `bkbench serve` imports this module lazily.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import html
import ipaddress
import logging
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

import textual_serve
from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server
from yarl import URL

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Logger = Callable[[str], None]

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
MAX_FAILURES = 10  # wrong secrets from one peer per FAILURE_WINDOW_S before its unauthenticated requests get 429
FAILURE_WINDOW_S = 60.0
MAX_PEERS = 4096  # peers whose wrong secrets are remembered at once (the least recent is forgotten first)
SESSION_ENDING_S = 900.0  # how long a session may finish its operation after its browser went away
SLOT_WAIT_S = 5.0  # a reloaded page's new session waits this long for the old one to close
STATIC_DIR = Path(textual_serve.__file__).resolve().parent / "static"
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def is_loopback(host: str) -> bool:
    """True for a name or address that only this machine can reach."""
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Guard:
    """Who may use the served workbench: a token, a password, or (loopback only) nobody needs one."""

    token: str | None = None
    password: str | None = None
    loopback: bool = True
    cookie_name: str = "bkbench_session"
    session_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    # Wrong secrets per peer (see peer_key), most recent last: one guesser must not lock the owner out.
    failures: OrderedDict[str, list[float]] = field(default_factory=OrderedDict)

    @property
    def open(self) -> bool:
        return self.token is None and self.password is None

    def cookie_ok(self, request: web.Request) -> bool:
        return _same(request.cookies.get(self.cookie_name, ""), self.session_key)

    def password_ok(self, request: web.Request) -> bool | None:
        """None when no Basic credentials were sent, else whether the password is right (user name ignored)."""
        header = request.headers.get("Authorization", "")
        if self.password is None or not header.lower().startswith("basic "):
            return None
        try:
            _user, _, given = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return _same(given, self.password)

    def throttled(self, peer: str) -> bool:
        """Has this peer sent MAX_FAILURES wrong secrets within the window? Others are not affected."""
        now = time.monotonic()
        times = self.failures.get(peer)
        if times is None:
            return False
        times[:] = [t for t in times if now - t < FAILURE_WINDOW_S]
        if not times:
            del self.failures[peer]
        return len(times) >= MAX_FAILURES

    def failed(self, peer: str) -> None:
        """Count one wrong secret from `peer`. Memory stays bounded: MAX_FAILURES times per peer, MAX_PEERS
        peers; when full, expired peers go first, then the one whose last wrong secret is oldest."""
        now = time.monotonic()
        times = self.failures.pop(peer, [])
        times = [t for t in times if now - t < FAILURE_WINDOW_S][-(MAX_FAILURES - 1):] + [now]
        if len(self.failures) >= MAX_PEERS:
            for key in [k for k, v in self.failures.items() if not v or now - v[-1] >= FAILURE_WINDOW_S]:
                del self.failures[key]
            while len(self.failures) >= MAX_PEERS:
                self.failures.popitem(last=False)
        self.failures[peer] = times

    def set_cookie(self, response: web.StreamResponse, secure: bool) -> None:
        response.set_cookie(self.cookie_name, self.session_key, httponly=True, samesite="Strict", path="/",
                            secure=secure)


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison (an attacker learns nothing from how long a wrong guess takes)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


def _client(request: web.Request) -> str:
    return request.remote or "?"


def peer_key(address: str) -> str:
    """Whom the wrong-secret throttle counts: an IPv4 address, or an IPv6 /64 (one host holds a whole /64,
    so counting single IPv6 addresses would give a guesser endless fresh ones). Behind a reverse proxy every
    browser is the proxy; X-Forwarded-For is not trusted (any peer could write it)."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _refuse(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=text + "\n", headers=headers)


def guard_middleware(guard: Guard, log: Logger):
    """Every route passes here first: Host check on loopback, then the secret, before any handler runs."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if guard.loopback and not is_loopback(request.url.host or ""):
            log(f"refused {_client(request)}: Host {request.host!r} is not this machine (DNS rebinding?)")
            return _refuse(403, "bkbench: this workbench answers only to localhost addresses")
        if guard.open or guard.cookie_ok(request):
            return await handler(request)
        peer = peer_key(_client(request))
        if guard.throttled(peer):
            return _refuse(429, "bkbench: too many wrong secrets from your address; wait a minute")
        given = request.query.get("token")
        if given is not None and guard.token is not None:
            if not _same(given, guard.token):
                guard.failed(peer)
                log(f"refused {_client(request)}: wrong token")
                return _refuse(403, "bkbench: wrong token")
            # Right token: trade it for the session cookie and drop it from the address bar and history.
            log(f"token accepted from {_client(request)}")
            rest = {k: v for k, v in request.query.items() if k != "token"}
            # Always to our own page: a path like //elsewhere would make the redirect leave this server.
            response = web.Response(status=303, headers={"Location": str(URL("/").with_query(rest))})
            guard.set_cookie(response, request.secure)
            return response
        verdict = guard.password_ok(request)
        if verdict:
            reply = await handler(request)
            if not reply.prepared:  # a websocket is under way already; its page got the cookie
                guard.set_cookie(reply, request.secure)
            return reply
        if verdict is False:
            guard.failed(peer)
            log(f"refused {_client(request)}: wrong password")
        if guard.password is not None:
            return _refuse(401, "bkbench: password required",
                           {"WWW-Authenticate": 'Basic realm="bkbench", charset="UTF-8"'})
        return _refuse(401, "bkbench: this workbench needs its token: open the address `bkbench serve` printed")

    return middleware


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Runs just before any response's headers go out (pages, files, errors, the websocket upgrade)."""
    response.headers.update(SECURITY_HEADERS)
    if request.path == "/":
        response.headers["Cache-Control"] = "no-store"


def origin_ok(request: web.Request) -> bool:
    """A browser's websocket must come from a page of this very server (scheme-less host:port compare)."""
    origin = request.headers.get("Origin")
    if origin is None:  # not a browser; such a client still needed the secret
        return True
    try:
        url = URL(origin)
    except ValueError:
        return False
    if not url.host or url.scheme not in ("http", "https"):
        return False
    here = request.url
    return (url.host.lower(), url.port) == ((here.host or "").lower(), here.port)


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="/static/css/xterm.css">
<style>
@font-face {{ font-family: "Roboto Mono"; src: url("/static/fonts/RobotoMono-VariableFont_wght.ttf"); }}
html, body {{ margin: 0; height: 100%; background: #0c181f; color: #e0e0e0; font-family: monospace; }}
#terminal {{ position: absolute; inset: 0; }}
#ended {{ display: none; position: absolute; inset: 0; z-index: 10; background: rgba(12, 24, 31, 0.92);
          align-items: center; justify-content: center; flex-direction: column; }}
body.-closed #ended {{ display: flex; }}
#ended button {{ font: inherit; padding: 0.6em 1.6em; margin-top: 1em; }}
#focus-note {{ position: absolute; top: 0; right: 0; z-index: 5; padding: 0.2em 0.8em; background: #ffa62b;
               color: #0c181f; cursor: pointer; }}
body.-typing #focus-note {{ display: none; }}
</style>
<script src="/static/js/textual.js"></script>
</head>
<body>
<div id="terminal" class="textual-terminal" data-font-size="{font_size}"></div>
<div id="focus-note">Keys do not reach the workbench now: click it (or press a key) to type</div>
<div id="ended"><div>The workbench session ended (or the server refused a new one).</div>
<button type="button" onclick="location.reload()">Start again</button></div>
<script>
// The websocket goes back to the host the page came from (an SSH tunnel's local port, a proxy's name).
document.getElementById("terminal").dataset.sessionWebsocketUrl =
  (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
// Keys go to the workbench without a click first (they were ignored, silently, until one): the terminal's
// input gets the focus as soon as it exists, when the window gets it back, and on a key pressed anywhere
// on the page; while it does not have it, a note at the top says so.
(function () {{
  const input = () => document.querySelector(".xterm-helper-textarea");
  const grab = () => {{ const el = input(); if (el && document.activeElement !== el) el.focus(); }};
  const watch = setInterval(() => {{
    const el = input();
    if (!el) return;
    clearInterval(watch);
    el.addEventListener("focus", () => document.body.classList.add("-typing"));
    el.addEventListener("blur", () => document.body.classList.remove("-typing"));
    grab();
  }}, 100);
  window.addEventListener("focus", grab);
  document.addEventListener("keydown", (event) => {{ if (event.target !== input()) grab(); }}, true);
  document.getElementById("focus-note").addEventListener("click", grab);
}})();
</script>
</body>
</html>
"""


class Session(AppService):
    """One browser's workbench process, read to its end even when the browser is gone.

    textual-serve stops reading a workbench whose websocket closed; a workbench that is finishing an
    operation (the app defers a quit until then) would block on its full output pipe. Output nobody
    can see any more is dropped instead.
    """

    async def on_data(self, payload: bytes) -> None:
        try:
            await self.remote_write_bytes(payload)
        except (ConnectionError, RuntimeError):
            pass

    async def on_meta(self, data: bytes) -> None:
        try:
            await super().on_meta(data)
        except (ConnectionError, RuntimeError):
            pass

    async def set_terminal_size(self, width: int, height: int) -> None:
        # The page's numbers go to the workbench as they are: a string or absurd size would crash it, even
        # in the middle of a write. A browser never sends such a resize; it is dropped.
        if type(width) is int and type(height) is int:
            await super().set_terminal_size(_clamp_cells(width), _clamp_cells(height))

    async def stop(self) -> None:
        await super().stop()
        # Reap the process and close its pipes now (textual-serve leaves them to the garbage collector,
        # which may run after the event loop is gone).
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            await process.wait()


def _clamp_cells(value: int) -> int:
    return min(max(value, 10), 500)  # a silly size would make the workbench allocate a silly screen


def _cells(text: str, default: int) -> int:
    try:
        return _clamp_cells(int(text))
    except ValueError:
        return default


class WorkbenchServer(Server):
    """textual-serve's Server with bkbench's routes: a guarded page, websocket and download, no listings."""

    def __init__(self, command: str, guard: Guard, *, title: str = "bkbench", max_sessions: int = 2,
                 log: Logger = print) -> None:
        super().__init__(command, title=title)
        self.guard = guard
        self.max_sessions = max(1, max_sessions)
        self.sessions = 0
        self.websockets: set[web.WebSocketResponse] = set()
        self.live: set[Session] = set()
        self._slot_freed = asyncio.Condition()
        self.say = log

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[guard_middleware(self.guard, self.say)])
        app.on_response_prepare.append(_on_prepare)
        app.add_routes([
            web.get("/", self.handle_page),
            web.get("/ws", self.handle_ws),
            web.get("/download/{key}", self.handle_download),
            # No index, no symlinks: aiohttp resolves the path and refuses anything outside STATIC_DIR.
            web.static("/static", STATIC_DIR, show_index=False, follow_symlinks=False),
        ])
        return app

    async def handle_page(self, request: web.Request) -> web.Response:
        try:
            font_size = min(max(int(request.query.get("fontsize", "16")), 6), 48)
        except ValueError:
            font_size = 16
        return web.Response(text=PAGE.format(title=html.escape(self.title), font_size=font_size),
                            content_type="text/html")

    async def _take_slot(self) -> bool:
        async with self._slot_freed:
            try:
                await asyncio.wait_for(self._slot_freed.wait_for(lambda: self.sessions < self.max_sessions),
                                       SLOT_WAIT_S)
            except asyncio.TimeoutError:
                return False
            self.sessions += 1
            return True

    async def _free_slot(self) -> None:
        async with self._slot_freed:
            self.sessions -= 1
            self._slot_freed.notify_all()

    async def handle_ws(self, request: web.Request) -> web.StreamResponse:
        if not origin_ok(request):
            self.say(f"refused {_client(request)}: websocket from another site "
                     f"(Origin {request.headers.get('Origin')!r})")
            return _refuse(403, "bkbench: websocket from another site refused")
        if not await self._take_slot():
            self.say(f"refused {_client(request)}: {self.sessions} workbench session(s) already open "
                     "(--max-sessions)")
            return _refuse(503, "bkbench: too many workbench sessions open")
        self.say(f"session opened from {_client(request)} ({self.sessions} open)")
        try:
            return await self._run_session(request)
        finally:
            await self._free_slot()
            self.say(f"session closed from {_client(request)} ({self.sessions} open)")

    async def _run_session(self, request: web.Request) -> web.WebSocketResponse:
        websocket = web.WebSocketResponse(heartbeat=15)  # a vanished browser is noticed within ~30 s
        await websocket.prepare(request)
        self.websockets.add(websocket)
        async def close() -> None:
            await websocket.close()

        session = Session(self.command, write_bytes=websocket.send_bytes, write_str=websocket.send_str,
                          close=close, download_manager=self.download_manager)
        await session.start(_cells(request.query.get("width", "80"), 80),
                            _cells(request.query.get("height", "24"), 24))
        self.live.add(session)
        try:
            await self._process_messages(websocket, session)
        except (ValueError, AssertionError, KeyError, TypeError, IndexError, AttributeError) as exc:
            # a garbled message ends the session (one line in the log, no traceback)
            self.say(f"session from {_client(request)} sent a bad message: {type(exc).__name__}")
        finally:
            if not websocket.closed:
                await websocket.close()
            # Asks the workbench to quit: it finishes a running operation first (a backup still lands in
            # the library, a write is completed and verified), then exits; its output is drained meanwhile.
            try:
                await asyncio.wait_for(asyncio.shield(session.stop()), SESSION_ENDING_S)
            except asyncio.TimeoutError:
                self.say(f"a workbench from {_client(request)} did not end within {SESSION_ENDING_S:.0f} s")
            self.websockets.discard(websocket)
            self.live.discard(session)
        return websocket

    async def end_sessions(self, interrupt: asyncio.Queue[int]) -> None:
        """Close every browser's websocket and wait until their workbenches have quit; a second signal has
        them cancel their operations (between sectors) instead of finishing them."""
        if not self.sessions:
            return
        self.say(f"ending {self.sessions} workbench session(s); one in the middle of an operation finishes it "
                 "first (ctrl+c again cancels it)")
        for websocket in list(self.websockets):
            await websocket.close()
        while self.sessions and interrupt.empty():
            await asyncio.sleep(0.1)
        if not self.sessions:
            return
        # A second signal: each workbench is asked again, which cancels its operation between sectors (a
        # backup already read is still stored; a write stops with the range still to do named).
        interrupt.get_nowait()
        self.say("cancelling the running operation(s) between sectors")
        for session in list(self.live):
            await session.send_meta({"type": "quit"})
        while self.sessions and interrupt.empty():
            await asyncio.sleep(0.1)


class _OneLine(logging.Handler):
    """aiohttp's and textual-serve's own log records (a peer's malformed request, a failed handler) as one
    line through the server's log: any peer on the network could otherwise fill the console with tracebacks."""

    def __init__(self, log: Logger) -> None:
        super().__init__(logging.WARNING)
        self.say = log

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            text += f": {type(exc).__name__} " + " ".join(str(exc).split())
        text = re.sub(r"token=[^\s&'\"]*", "token=***", text)  # a request line quoted in the error
        self.say(text.replace("Error handling request", "bad request"))


async def run(server: WorkbenchServer, host: str, port: int, on_ready: Callable[[int], None],
              stop: asyncio.Event | None = None) -> None:
    """Listen until SIGINT/SIGTERM (or `stop`); on_ready gets the bound port (0 asks for a free one).

    On the way out every session is asked to end and waited for: a workbench in the middle of a backup or
    a write finishes it first. A second signal has it cancel the operation between sectors."""
    import signal

    loggers = [logging.getLogger(name) for name in ("aiohttp", "textual-serve")]
    one_line = _OneLine(server.say)
    for logger in loggers:
        logger.addHandler(one_line)
        logger.propagate = False
    runner = web.AppRunner(server.make_app(), access_log=None, handle_signals=False)
    await runner.setup()
    signals = asyncio.Queue[int]()
    loop = asyncio.get_running_loop()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, signals.put_nowait, sig)
        on_ready(bound)
        stop = stop or asyncio.Event()
        waits = [asyncio.ensure_future(signals.get()), asyncio.ensure_future(stop.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        await server.end_sessions(signals)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        for logger in loggers:
            logger.removeHandler(one_line)
            logger.propagate = True
