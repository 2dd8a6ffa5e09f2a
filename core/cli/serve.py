"""`bkbench serve`: the workbench in a web browser (textual-serve, the optional extra `serve`).

Bound to 127.0.0.1 by default: reach it from another machine through an SSH tunnel. Bound anywhere else
it needs a secret (a token printed once, or a password) and says loudly why: the page can flash chips.
The web server (bkbench.tui.serve) is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import getpass
import importlib
import json
import os
import secrets
import shlex
import socket
import sys

from ..errors import BkError
from .common import HelpFormatter, baud_rate, demo_count

DEFAULT_WEB_PORT = 7231
TOKEN_ENV = "BKBENCH_SERVE_TOKEN"
PASSWORD_ENV = "BKBENCH_SERVE_PASSWORD"
URL_SPECIAL = "+#&%"  # characters a token in `?token=` would not survive as typed
MIN_SECRET = 12  # characters; a shorter one is guessable within the throttle's patience
SERVE_REQUIREMENT = "textual-serve>=1.1,<2"  # pyproject.toml's `serve` extra


def install_hint() -> str:
    """How to add the extra to *this* copy (pipx, checkout or plain pip): a `pip install 'bkbench[serve]'`
    would install a PyPI package into another Python."""
    from ..install import add_extra_hint

    return "the browser workbench needs textual-serve: " + add_extra_hint("serve", SERVE_REQUIREMENT, "serve")


class ServeError(BkError):
    """`bkbench serve` cannot start as asked."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="the workbench in a web browser (textual-serve; localhost unless told otherwise)",
        description="Serve the workbench to a web browser: every browser tab gets its own workbench. It listens "
        "on 127.0.0.1 only unless --bind says otherwise; from another machine use an SSH tunnel. Bound to any "
        f"other address it requires a token (printed once; ${TOKEN_ENV} to choose it) or, with --password, an "
        f"HTTP password (${PASSWORD_ENV} or asked), and warns: the page can erase and flash chips, over plain "
        "HTTP. The workbench options (--port, --demo, --baud, --data-dir) go to every session.")
    p.epilog = ("examples:\n"
                "  bkbench serve --demo                      http://127.0.0.1:7231/ on the simulated plug\n"
                "  ssh -L 7231:localhost:7231 pi@raspberrypi  then open http://localhost:7231/ here\n"
                "  bkbench serve --port /dev/ttyUSB0 --bind 0.0.0.0   LAN, with a printed token (warns)")
    p.formatter_class = HelpFormatter
    p.add_argument("--bind", default="127.0.0.1", metavar="ADDRESS",
                   help="address to listen on (default 127.0.0.1; anything else requires a token or password)")
    p.add_argument("--web-port", type=_web_port, default=DEFAULT_WEB_PORT, metavar="N",
                   help=f"TCP port of the web page (default {DEFAULT_WEB_PORT}; 0 picks a free one)")
    p.add_argument("--token", action="store_true",
                   help=f"require a token on localhost too (shared machines); from ${TOKEN_ENV} or generated")
    p.add_argument("--password", action="store_true",
                   help=f"require an HTTP password instead of a token (from ${PASSWORD_ENV}, else asked)")
    p.add_argument("--max-sessions", type=_positive, default=2, metavar="N",
                   help="browser sessions (workbench processes) at once (default 2)")
    # The workbench's own options, also accepted after `serve`; SUPPRESS keeps a value given before it.
    p.add_argument("--port", "-p", action="append", default=argparse.SUPPRESS,
                   help="serial port or URL for the workbench; repeated, it opens on the multi-port view")
    p.add_argument("--demo", nargs="?", const=1, type=demo_count, default=argparse.SUPPRESS, metavar="N",
                   help="serve the workbench on a simulated chip (N: that many plugs)")
    p.add_argument("--baud", "-b", type=baud_rate, default=argparse.SUPPRESS, help="transfer baud rate")
    p.set_defaults(func=cmd_serve)


def _web_port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r} (0-65535)")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return value


def workbench_command(args: argparse.Namespace) -> str:
    """The shell command textual-serve runs per session: this interpreter, this package, the given options."""
    argv = [sys.executable, "-m", "bkbench.core.cli.main"]
    ports = getattr(args, "port", None) or []
    for port in [ports] if isinstance(ports, str) else ports:  # the main parser's --port is a list
        argv += ["--port", port]
    demo = getattr(args, "demo", 0)
    if demo:
        argv += ["--demo"] + ([str(demo)] if demo > 1 else [])
    if getattr(args, "baud", None):
        argv += ["--baud", str(args.baud)]
    data_dir = getattr(args, "data_dir", None) or os.environ.get("BKBENCH_DATA_DIR")
    if data_dir:
        argv += ["--data-dir", os.path.abspath(os.path.expanduser(data_dir))]
    return shlex.join(argv)  # textual-serve starts it through a shell: every argument quoted


def _secret(env: str, what: str, ask: bool) -> str:
    value = os.environ.get(env)
    if value is None and ask:
        if not sys.stdin.isatty():
            raise ServeError(f"--password needs a password: set ${env} or run in a terminal to be asked")
        try:
            value = getpass.getpass("password for the browser workbench: ")
            again = getpass.getpass("again: ")
        except EOFError:  # ctrl+d at the prompt
            raise ServeError("no password given") from None
        if again != value:
            raise ServeError("the two passwords differ")
    if value is not None and len(value) < MIN_SECRET:
        raise ServeError(f"the {what} is too short: at least {MIN_SECRET} characters (it guards flashing chips)")
    if value is not None:
        try:
            value.encode("utf-8")  # a stray byte in the environment: no request could ever be compared to it
        except UnicodeEncodeError:
            raise ServeError(f"the {what} in ${env} is not UTF-8 text") from None
    if value is not None and what == "token" and any(c in URL_SPECIAL or c.isspace() for c in value):
        # In the address a '+' arrives as a space and '#', '&' cut it short: it could never be accepted.
        raise ServeError(f"the token may not contain spaces or any of {URL_SPECIAL} (it goes into an address)")
    return value or ""


def resolve_auth(args: argparse.Namespace, loopback: bool) -> tuple[str | None, str | None, bool]:
    """(token, password, token_generated): loopback alone may go without a secret."""
    if args.password:
        return None, _secret(PASSWORD_ENV, "password", ask=True), False
    if args.token or not loopback or os.environ.get(TOKEN_ENV):
        token = _secret(TOKEN_ENV, "token", ask=False)
        if token:
            return token, None, False
        return secrets.token_urlsafe(24), None, True
    return None, None, False


def _load_server():
    try:
        return importlib.import_module("bkbench.tui.serve")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("textual_serve", "aiohttp", "aiohttp_jinja2", "jinja2", "yarl"):
            raise ServeError(f"{exc.name} is not installed", hint=install_hint()) from None
        raise


def _display_host(bind: str) -> str:
    if bind in ("", "0.0.0.0", "::"):
        return socket.gethostname()
    return f"[{bind}]" if ":" in bind else bind


def cmd_serve(args: argparse.Namespace) -> int:
    web = _load_server()
    loopback = web.is_loopback(args.bind)
    token, password, generated = resolve_auth(args, loopback)
    for name in (TOKEN_ENV, PASSWORD_ENV):  # the sessions' workbench processes need no secret in their env
        os.environ.pop(name, None)
    guard = web.Guard(token=token, password=password, loopback=loopback)

    def say(text: str) -> None:
        print(f"bkbench serve: {text}", file=sys.stderr, flush=True)

    server = web.WorkbenchServer(workbench_command(args), guard, max_sessions=args.max_sessions, log=say)

    def ready(port: int) -> None:  # the warning waits for the port: --web-port 0 picks one
        guard.cookie_name = f"bkbench_{port}"  # cookies ignore ports: two servers on one host keep apart
        if not loopback:
            say(f"WARNING: listening on {args.bind or 'every address'}, not only this machine. The page can erase "
                "and flash chips: anyone who can reach it and has the " + ("password" if password else "token")
                + " can. It is plain HTTP: the secret and the screen cross the network unencrypted. Safer: the "
                f"default --bind 127.0.0.1 and an SSH tunnel (ssh -L {port}:localhost:{port} "
                "USER@THIS-MACHINE).")
        url = f"http://{'localhost' if loopback else _display_host(args.bind)}:{port}/"
        if generated:
            url += f"?token={token}"  # printed this once, on stdout only; never logged
        if getattr(args, "json", False):  # one line, like `simulate --json`, for scripts
            print(json.dumps({"url": url, "port": port, "bind": args.bind,
                              "auth": "password" if password else "token" if token else "none"}), flush=True)
        else:
            print(f"bkbench serve: the workbench is at {url}", flush=True)
        if loopback:
            say(f"this machine only; from another one: ssh -L {port}:localhost:{port} USER@THIS-MACHINE, "
                f"then open http://localhost:{port}/ there" + (" with the token" if token else ""))
        elif token and not generated:
            say(f"open {url}?token=... with the token from ${TOKEN_ENV}")
        say("ctrl+c stops it")

    try:
        asyncio.run(web.run(server, args.bind, args.web_port, ready))
    except OSError as exc:
        # A resolver error's errno is negative (EAI_*): os.strerror would say "unknown error -2".
        why = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))
        port_taken = exc.errno in (errno.EADDRINUSE, errno.EACCES)
        raise ServeError(f"cannot listen on {args.bind}:{args.web_port}: {why.lower()}",
                         hint="another program uses this port? try --web-port N" if port_taken else
                         "--bind takes an address (or name) of this machine, e.g. 0.0.0.0 for all") from None
    return 0
