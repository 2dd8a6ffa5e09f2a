"""USB-serial adapter families as data: who they are (VID:PID) and their reset habits, with sources.

One `AdapterFamily` per chip family. core/ports.py names ports from this table, the reset strategy and the
link doctor say what a family's modem-line habits mean for a wire on CEN. Every fact carries its source in
`sources` (datasheet, driver source, a peer tool's issue). More per-family facts (latency timer, baud
divisor) belong in the same dataclass as further fields with defaults.

What holds for every family on Linux: opening a tty asserts DTR and RTS (the kernel's
`tty_port_block_til_ready()` raises them whenever a baud rate is set, drivers/tty/tty_port.c), and pyserial
asserts both again in `open()` (serialposix.py, `_dtr_state = _rts_state = True` by default). Asserted is
low at TTL level, so a CEN wired to either line is held low until released; bkbench releases both right
after opening (core/transport.py). With CEN on RTS or DTR, opening the port is therefore one short reset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

LINUX_OPEN = ("Linux drivers/tty/tty_port.c tty_port_block_til_ready(): DTR/RTS raised on open; "
              "pyserial serialposix.py open(): DTR/RTS asserted by default")


@dataclass(frozen=True)
class AdapterFamily:
    key: str  # stable id: "cp210x"
    name: str  # what users read: "CP210x"
    chips: dict[tuple[int, int], str]  # VID:PID -> chip name as `bkbench ports` shows it
    aliases: tuple[str, ...] = ()  # other names a user or a sim:// URL may give (`adapter=cp2102`)
    modem_lines: str = ""  # which reset lines the chips have and which boards usually bring out
    open_habit: str = ""  # what the lines do when a port opens, and what bkbench does about it
    wiring: str = ""  # one sentence: what it means for a wire from the adapter to CEN
    holds_reset_on_open: bool = False  # reported to keep CEN low after opening until a tool releases it
    sources: tuple[str, ...] = field(default_factory=tuple)

    def matches(self, name: str) -> bool:
        want = name.strip().lower()
        return want in (self.key, self.name.lower(), *self.aliases, *(c.lower() for c in self.chips.values()))


FAMILIES: tuple[AdapterFamily, ...] = (
    AdapterFamily(
        "cp210x", "CP210x",
        {(0x10C4, 0xEA60): "CP210x", (0x10C4, 0xEA70): "CP2105"},
        aliases=("cp2102", "cp2104", "cp2102n", "silabs"),
        modem_lines="RTS and DTR are active-low outputs of the chip",
        open_habit="CP2102 boards drive RTS low when the port opens and keep it there until a program releases "
                   "it: with RTS on CEN the chip stays in reset; bkbench releases it at once",
        wiring="RTS or DTR on CEN works, as bkbench releases both after opening; a tool that never releases "
               "RTS keeps the chip in reset",
        holds_reset_on_open=True,
        sources=("bk7231tools issue 16 (CP2102 on Linux: RTS low after open, MCU in reset; fix rts=False)",
                 "cc2538-bsl pull request 27 (CP2104 on Linux pulses the reset line on every open)", LINUX_OPEN),
    ),
    AdapterFamily(
        "ch34x", "CH34x",
        {(0x1A86, 0x7523): "CH340", (0x1A86, 0x5523): "CH341", (0x1A86, 0x7522): "CH340K",
         (0x1A86, 0x55D4): "CH9102", (0x1A86, 0x55D3): "CH343"},
        aliases=("ch340", "ch341", "ch340g", "ch9102", "ch343", "wch"),
        modem_lines="the 16-pin CH340G/C have RTS# and DTR#; the smaller packages bring out fewer modem lines, "
                    "and many CH340 boards wire neither to their header",
        open_habit="no habit of its own: DTR and RTS follow the host (asserted on open, released by bkbench)",
        wiring="check that the board brings RTS or DTR to a pin at all before wiring CEN to it",
        sources=("WCH CH340DS1 datasheet (modem signals RTS, DTR, DCD, RI, DSR, CTS; SOP-8 and MSOP-10 packages)",
                 "wiki.kewl.org CH340 page (CH340G/T/R pinouts with RTS# and DTR#)",
                 "esp8266/Arduino issue 1019 (a CH340G's RTS held an ESP in reset during a transfer)", LINUX_OPEN),
    ),
    AdapterFamily(
        "ftdi", "FTDI",
        {(0x0403, 0x6001): "FT232R", (0x0403, 0x6010): "FT2232", (0x0403, 0x6014): "FT232H",
         (0x0403, 0x6015): "FT231X"},
        aliases=("ft232r", "ft232rl", "ft231x", "ft232h", "ft2232"),
        modem_lines="RTS# and DTR# are chip outputs; FTDI's TTL-232R cable brings out RTS# (green wire), boards "
                    "with the 6-pin 'FTDI header' usually DTR",
        open_habit="no habit of its own: DTR and RTS follow the host (asserted on open, released by bkbench)",
        wiring="on a TTL-232R cable wire the green RTS# to CEN; on a breakout board use its DTR pin",
        sources=("FTDI DS_FT232R datasheet (RTS#, DTR# outputs)", "FTDI DS_TTL-232R_CABLES (pin 6 green = RTS#)",
                 LINUX_OPEN),
    ),
    AdapterFamily(
        "pl2303", "PL2303",
        {(0x067B, 0x2303): "PL2303", (0x067B, 0x23A3): "PL2303GC"},
        aliases=("prolific", "pl2303hx", "pl2303gc"),
        modem_lines="the chip has DTR and RTS, but the common 4-wire PL2303 cables (red 5 V, black GND, white "
                    "RX, green TX) bring out neither",
        open_habit="no habit of its own: DTR and RTS follow the host (asserted on open, released by bkbench)",
        wiring="a 4-wire PL2303 cable has no DTR or RTS wire to put on CEN",
        sources=("Prolific PL2303HX datasheet (DTR_N, RTS_N pins)",
                 "Adafruit USB to TTL serial cable, product 954 (PL2303, 4 wires: red 5V, black GND, white RX, "
                 "green TX)", LINUX_OPEN),
    ),
)


def names_by_vid_pid() -> dict[tuple[int, int], str]:
    """VID:PID -> chip name for every family (what core/ports.py shows in its adapter column)."""
    return {vp: chip for fam in FAMILIES for vp, chip in fam.chips.items()}


def by_vid_pid(vid: int | None, pid: int | None) -> AdapterFamily | None:
    if vid is None or pid is None:
        return None
    for fam in FAMILIES:
        if (vid, pid) in fam.chips:
            return fam
    return None


def by_name(name: str) -> AdapterFamily | None:
    for fam in FAMILIES:
        if fam.matches(name):
            return fam
    return None


def family_for_url(url: str, ports=None) -> AdapterFamily | None:
    """The family of the adapter behind a port path (by VID:PID), or a simulated one (`sim://...?adapter=`).

    `ports`: PortInfo list (tests pass their own); listed lazily, so a pty or a URL costs nothing."""
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme.lower() == "sim":
            given = parse_qs(parts.query).get("adapter")
            return by_name(given[-1]) if given else None
        return None  # remote ports: the adapter is on another machine
    if ports is None:
        from ..ports import list_ports

        try:
            ports = list_ports(check_in_use=False)
        except Exception:  # noqa: BLE001 - discovery must never break a link attempt
            return None
    real = os.path.realpath(url)
    for p in ports:
        if real in (os.path.realpath(p.device), os.path.realpath(p.by_id) if p.by_id else ""):
            return by_vid_pid(p.vid, p.pid)
    return None
