"""Baud ladder: link at 115200, switch up, step down on failure, and remember what each adapter managed.

No peer tool steps down by itself (PROTOCOL-DETAILS.md 6.6): adapters differ (CP2102 fails 921600,
CH34x may fail above ~500k), and after a failed SetBaudRate the chip is already at the new rate, so
only a reset brings it back to 115200. `climb()` therefore reconnects (reset + link + identify)
before trying the next lower rate. A lost confirmation is not a failed rate, though: a host that sets
its own UART late (a busy machine that did not run the process within the chip's 20 ms delay) reads the
chip's echo, sent at the new rate, as garbage while the chip is fine at that rate. `climb()` first asks
the chip at the new rate (`LATE_PROBE`) and goes on there when it answers.

Before trying, the rungs are matched to the adapter at hand (core/link/adapters.py: the rate its
divisor really makes against the chip's 26 MHz / n): a rate the two ends cannot share within tolerance
is skipped and the reason said, so an FT232R asked for 3 000 000 starts at 2 000 000 (the chip would
run 3 250 000) and a CP2102 at 921600 (AN205 defines nothing faster). Unknown adapters (ptys, network
ports, Pi UARTs) keep the whole ladder and learn by stepping down.

The memory lives in the user config under `adapters.<key>`: `{"good": rate, "failed": [rates]}`.
The key names the adapter, not the port: `usb:VID:PID:SERIAL`, else the /dev/serial/by-id path,
else the device path; URLs (sim://, socket://) are their own key.
"""

from __future__ import annotations

import os
from typing import Callable

from .. import userconfig
from ..client import LINK_BAUD, BkClient
from ..errors import ProtocolError
from ..ops.events import EventSink, Notice, null_sink
from .adapters import AdapterFamily

LADDER = (3000000, 2000000, 1500000, 921600, 460800, 230400, LINK_BAUD)
SUPPORTED_BAUDS = tuple(sorted(LADDER))  # the rates bkbench accepts for transfers
SECTION = "adapters"
LATE_PROBE = 0.3  # s of LinkCheck at the new rate after an unconfirmed switch (a reply takes ~1 ms)


def adapter_key(url: str) -> str:
    """A stable name for the adapter behind `url` (see the module docstring)."""
    if "://" in url:
        return url
    real = os.path.realpath(url)
    try:
        from ..ports import list_ports

        for p in list_ports(check_in_use=False):
            if os.path.realpath(p.device) != real:
                continue
            if p.vid is not None and p.pid is not None and p.serial_number:
                return f"usb:{p.vid:04X}:{p.pid:04X}:{p.serial_number}"
            if p.by_id:
                return p.by_id
            if p.vid is not None and p.pid is not None:
                return f"usb:{p.vid:04X}:{p.pid:04X}@{p.device}"
    except Exception:  # noqa: BLE001 - discovery is a nicety; the path still names the port
        pass
    return real


def remembered(key: str) -> dict:
    entry = userconfig.get(f"{SECTION}.{key}", {})
    return entry if isinstance(entry, dict) else {}


def forget(key: str) -> None:
    userconfig.set_value(f"{SECTION}.{key}", None)


def ladder_from(requested: int, failed: list[int] | tuple[int, ...] = ()) -> list[int]:
    """Rates to try, fastest first: the request (unless it failed before) then the lower ladder rungs."""
    rates = [requested] + [b for b in LADDER if b < requested]
    rates = [b for b in rates if b not in failed or b == LINK_BAUD]
    return rates or [LINK_BAUD]


def plan(requested: int, failed: list[int] | tuple[int, ...] = (),
         family: AdapterFamily | None = None) -> tuple[list[int], list[str]]:
    """The ladder for this adapter, fastest first, and one reason per rung left out."""
    rates = ladder_from(requested, failed)
    if family is None:
        return rates, []
    keep: list[int] = []
    reasons: dict[str, list[int]] = {}  # rungs skipped for the same reason are said in one line
    for baud in rates:
        ok, why = (True, "") if baud == LINK_BAUD else family.fit(baud)
        if ok:
            keep.append(baud)
        else:
            reasons.setdefault(why, []).append(baud)
    skipped = [f"skipping {', '.join(str(b) for b in bauds)} baud: {why}" for why, bauds in reasons.items()]
    return keep or [LINK_BAUD], skipped


def port_family(port: object) -> AdapterFamily | None:
    """The adapter family transport.open_port found behind `port` (None when unknown)."""
    return getattr(getattr(port, "bkbench_adapter", None), "family", None)


def _record(key: str, good: int | None = None, failed: int | None = None) -> None:
    def change(settings: dict) -> None:
        section = settings.setdefault(SECTION, {})
        if not isinstance(section, dict):
            section = settings[SECTION] = {}
        entry = section.setdefault(key, {})
        if not isinstance(entry, dict):
            entry = section[key] = {}
        bad = [b for b in entry.get("failed", []) if isinstance(b, int)]
        if failed is not None and failed not in bad:
            bad.append(failed)
        if good is not None:
            entry["good"] = good
            bad = [b for b in bad if b != good]
        entry["failed"] = sorted(bad, reverse=True)

    try:
        userconfig.update(change)
    except OSError:
        pass  # a read-only home must not stop a flash; the next run just starts higher again


def climb(
    client: BkClient,
    requested: int,
    key: str,
    reconnect: Callable[[], None],
    sink: EventSink = null_sink,
    remember: bool = True,
) -> int:
    """Switch a linked chip from 115200 to the fastest rate that works, at most `requested`; returns it.

    `reconnect()` must bring the chip back to a linked, identified state at 115200 (reset + link).
    """
    memory = remembered(key) if remember else {}
    failed_before = [b for b in memory.get("failed", []) if isinstance(b, int)]
    rates, skipped = plan(requested, failed_before, port_family(client.port))
    for why in skipped:
        sink(Notice("info", why))
    if requested in failed_before and requested != LINK_BAUD and rates[0] != requested:
        sink(Notice("info", f"starting at {rates[0]} baud: {requested} failed on this adapter before "
                            "(`bkbench doctor --forget-baud` retries it)"))
    for baud in rates:
        if baud == LINK_BAUD:
            break
        try:
            try:
                client.set_baudrate(baud)
            except ProtocolError as exc:
                if not _answers_at(client, baud):
                    raise
                sink(Notice("info", f"{exc}, but it answers at {baud} baud (its confirmation came before this "
                                    "machine had switched)"))
            client.relink()  # short frames only: a lost byte in a long reply is retried by the operation
        except ProtocolError as exc:
            sink(Notice("warning", f"{exc}; reconnecting at 115200 to step down"))
            if remember:
                _record(key, failed=baud)
            client.port.baudrate = LINK_BAUD
            reconnect()
            continue
        if remember and (memory.get("good") != baud or baud in failed_before):
            _record(key, good=baud)
        sink(Notice("info", f"transferring at {baud} baud"))
        return baud
    if remember and memory.get("good") != LINK_BAUD and requested != LINK_BAUD:
        _record(key, good=LINK_BAUD)
    sink(Notice("info", f"transferring at {LINK_BAUD} baud"))
    return LINK_BAUD


def _answers_at(client: BkClient, baud: int) -> bool:
    """Whether the chip answers a LinkCheck at `baud` (it switched although its echo was lost)."""
    try:
        return client.link(LATE_PROBE, baud=baud)
    except (ProtocolError, OSError, ValueError):
        return False
