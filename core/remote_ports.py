"""Remote serial ports (ser2net and other RFC 2217 / raw TCP servers) the user has named in config.json.

    "remote_ports": [
      {"url": "rfc2217://pi.local:3333", "name": "garage Pi, CB2S jig"},
      "socket://192.168.1.20:3334"
    ]

`bkbench ports --add URL --name TEXT` / `--remove URL` edit the list; `bkbench ports` shows the entries
with kind `remote` and, unless `--no-probe`, whether each accepts a TCP connection within PROBE_TIMEOUT
(probed in parallel, so a list of dead hosts costs one timeout, never a hang). A probe is a bare connect
and close: ser2net opens the adapter for that moment, and refuses it while another client is connected
(the recommended config has no `kickolduser`, so a probe can never take a port from a running write).
"""

from __future__ import annotations

import socket
import threading
from typing import Any
from urllib.parse import urlsplit

from serial.serialutil import SerialException

from . import userconfig
from .errors import BkError
from .ports import PortInfo
from .rfc2217 import Rfc2217Port
from .transport import _check_host_port as check_host_port

KEY = "remote_ports"
SCHEMES = {"rfc2217": "RFC 2217", "socket": "raw TCP"}
PROBE_TIMEOUT = 0.5  # s


def check_url(url: str) -> tuple[str, int]:
    """(host, port) of a remote port URL, or a one-line BkError saying what is wrong."""
    parts = urlsplit(url.strip())
    if parts.scheme not in SCHEMES:
        raise BkError(f"{url!r} is not a remote port URL: use rfc2217://HOST:PORT (ser2net telnet(rfc2217)) "
                      "or socket://HOST:PORT (raw TCP)")
    try:
        port = parts.port
    except ValueError:
        port = None
    if "@" in parts.netloc:  # not echoed: it may hold a password
        raise BkError(f"{parts.scheme}:// URLs have no login (ser2net has no authentication): drop the "
                      "USER:PASSWORD@ part")
    if not parts.hostname or port is None or not 0 < port < 65536:
        raise BkError(f"{url!r}: expected {parts.scheme}://HOST:PORT (a TCP port 1-65535)")
    return parts.hostname, port


def _check_options(url: str) -> None:
    """The URL's options as the port opener will read them: what it would refuse is not remembered."""
    if url.startswith("rfc2217://"):
        try:
            Rfc2217Port().from_url(url)
        except SerialException as exc:
            raise BkError(str(exc)) from None
    else:
        check_host_port(url)


def _printable(text: str) -> str:
    """One line, no terminal escapes: a name is shown in one-line-per-port lists."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _entries(raw: Any) -> list[dict[str, str]]:
    """Valid entries of the config value; anything else (a typo by hand) is skipped, never fatal."""
    out = []
    for item in raw if isinstance(raw, list) else []:
        entry = {"url": item} if isinstance(item, str) else item
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            continue
        try:
            check_url(entry["url"])
        except BkError:
            continue
        name = entry.get("name")
        out.append({"url": entry["url"].strip(), "name": _printable(name) if isinstance(name, str) else ""})
    return out


def configured() -> list[dict[str, str]]:
    return _entries(userconfig.get(KEY, []))


def remote_ports(probe: bool = False, timeout: float = PROBE_TIMEOUT) -> list[PortInfo]:
    """The configured remote ports as PortInfo (kind "remote"); `probe` fills in `reachable`."""
    ports = []
    for e in configured():
        scheme = e["url"].split("://", 1)[0]
        ports.append(PortInfo(device=e["url"], description=e["name"] or f"remote port ({SCHEMES[scheme]})",
                              adapter=SCHEMES[scheme], kind="remote"))
    if probe and ports:
        results: dict[str, str] = {}

        def one(p: PortInfo) -> None:
            results[p.device] = _probe(p.device, timeout)

        threads = [threading.Thread(target=one, args=(p,), daemon=True) for p in ports]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout + 1.0)  # name resolution can outlast the connect timeout: never wait for it
        for p in ports:
            problem = results.get(p.device, "no answer")
            p.reachable = problem == ""
            if problem:
                p.description += f" [unreachable: {problem}]"
    return ports


def _probe(url: str, timeout: float) -> str:
    """"" when host:port accepts a TCP connection, else why not (a few words)."""
    host, port = check_url(url)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return ""
    except socket.gaierror:
        return "unknown host"
    except ConnectionRefusedError:
        return "connection refused"
    except (TimeoutError, socket.timeout):
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        return exc.strerror or str(exc)


def _url_of(item: Any) -> str | None:
    if isinstance(item, str):
        return item.strip()
    if isinstance(item, dict) and isinstance(item.get("url"), str):
        return item["url"].strip()
    return None


def _raw_list(settings: dict[str, Any]) -> list[Any]:
    raw = settings.get(KEY, [])
    return raw if isinstance(raw, list) else []


def add(url: str, name: str = "") -> None:
    """Add (or rename) a remote port; other entries, even ones we cannot parse, are kept as written."""
    check_url(url)
    url = url.strip()
    _check_options(url)
    if name != _printable(name):
        raise BkError("--name must be one line of printable text (no newlines or control characters)")

    def change(settings: dict[str, Any]) -> None:
        keep = [item for item in _raw_list(settings) if _url_of(item) != url]
        settings[KEY] = keep + [{"url": url, "name": name} if name else {"url": url}]

    userconfig.update(change)


def remove(url: str) -> bool:
    """Remove a remote port; True when it was in the list."""
    url = url.strip()
    found = [False]

    def change(settings: dict[str, Any]) -> None:
        raw = _raw_list(settings)
        keep = [item for item in raw if _url_of(item) != url]
        found[0] = len(keep) != len(raw)
        if found[0]:
            settings[KEY] = keep

    userconfig.update(change)
    return found[0]
