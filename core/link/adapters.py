"""What bkbench knows about each USB-serial adapter family: IDs, line-rate arithmetic, latency, modem lines.

One `AdapterFamily` per chip family (`FAMILIES`), looked up by VID:PID (and the USB product string where a
VID:PID is shared, as 10C4:EA60 is by CP2102, CP2102N and CP2104), by a port path (`family_for_url`) or by
a name (`by_name`: a family key, a chip name, or a vendor such as "cp210x" or "ftdi"). core/ports.py names
ports from this table, the baud ladder and the latency code use its rate and latency figures, and the
reset strategy and the link doctor say what its vendor's modem-line habits (`LineHabits`, shared by the
families of one vendor) mean for a wire on CEN. Every figure names its source; "Linux ..." means the
kernel's drivers/usb/serial/ source as of 6.x, which states the divisor arithmetic each chip uses.

The chip end of the line: the Beken UART divides 26 MHz by an integer, `26 MHz // baud`, so the rate it
really runs is `26 MHz / (26 MHz // baud)` (Beken's SDK uart driver computes `UART_CLOCK / baud`; the
real T bootloader does the same in SetBaudRate, REALCODE.md B.9). 2 000 000 is exact, 921600 is 0.8 %
fast, 1 500 000 2.0 % fast, 3 000 000 runs at 3 250 000 (8.3 % fast). The N's mask-ROM loader is not
public: the same UART block and 26 MHz crystal are assumed.

Tolerance: an 8N1 receiver that finds the start edge within 1/16 bit (16x oversampling) and samples bit
centres reads the stop bit 9.5 bit times later, so the two ends may differ by at most
(0.5 - 1/16) / 9.5 = 4.6 %; with 3-sample majority voting (7/16..9/16) it is (0.5 - 2/16) / 9.5 = 3.9 %.
`TOLERANCE` = 3 % keeps a margin for edge distortion on jumper wires at MHz rates (our choice).

What holds for every family on Linux: opening a tty asserts DTR and RTS (the kernel's
`tty_port_block_til_ready()` raises them whenever a baud rate is set, drivers/tty/tty_port.c, through the
driver's dtr_rts(): ftdi_dtr_rts, ch341_dtr_rts, cp210x_dtr_rts, pl2303_dtr_rts), and pyserial asserts
both again in `open()` (serialposix.py, `_dtr_state = _rts_state = True` by default). Asserted is low at
TTL level, so a CEN wired to either line is held low until released; bkbench releases both right after
opening (core/transport.py). With CEN on RTS or DTR, opening the port is therefore one short reset.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from ..chips import UART_CLOCK as CHIP_UART_CLOCK

TOLERANCE = 0.03


def chip_rate(baud: int) -> float:
    """The rate the Beken UART really runs when asked for `baud` (26 MHz / integer divisor)."""
    return CHIP_UART_CLOCK / max(1, CHIP_UART_CLOCK // baud)


# ------------------------------------------------------------------------------------------ divisors
# Each returns the line rate the adapter really generates for a request, or None when it cannot.

def ftdi_bm_rate(baud: int, max_baud: int = 3_000_000) -> float | None:
    """FT232R / FT231X (and FT232B/FT2232C): 3 MHz base with eighths.

    Linux ftdi_sio.c ftdi_232bm_baud_base_to_divisor(): divisor3 = round(48 MHz / (2 x baud)) in 1/8
    steps of the 3 MHz base; divisors 1.0 and 1.5 are encoded as the special cases 3 MBd and 2 MBd
    (FTDI AN232B-05: "sub-integer divisors between 0 and 2 are not allowed")."""
    if baud > max_baud:
        return None
    div8 = (48_000_000 + baud) // (2 * baud)  # DIV_ROUND_CLOSEST
    if div8 == 8:
        return 3_000_000.0
    if div8 == 12:
        return 2_000_000.0
    if div8 < 16:  # 1 < divisor < 2 other than 1.5: not generated
        return None
    return 24_000_000 / div8


def ftdi_h_rate(baud: int) -> float | None:
    """FT232H / FT2232H (hi-speed): 12 MHz base with eighths (Linux ftdi_sio.c ftdi_2232h_baud_base_to_divisor:
    divisor3 = round(8 x 120 MHz / (10 x baud)))."""
    if baud > 12_000_000:
        return None
    div8 = (960_000_000 + 5 * baud) // (10 * baud)  # DIV_ROUND_CLOSEST
    if div8 == 8:
        return 12_000_000.0
    if div8 == 12:
        return 8_000_000.0
    if div8 < 16:
        return None
    return 96_000_000 / div8


def ch341_rate(baud: int) -> float | None:
    """CH340 / CH341: 48 MHz / (2^(12 - 3 ps - fact) x div) (Linux ch341.c ch341_get_divisor(): highest
    prescaler, divisor rounded down, then the next divisor if closer; range 46 .. 3 000 000 Bd)."""
    if not 46 <= baud <= 3_000_000:
        return None
    clk = 48_000_000

    def clk_div(ps: int, fact: int) -> int:
        return 1 << (12 - 3 * ps - fact)

    fact, ps = 1, 3
    for ps in range(3, -1, -1):
        if baud > clk // (clk_div(ps, 1) * 512):
            break
    cd = clk_div(ps, fact)
    div = clk // (cd * baud)
    if div < 9 or div > 255:
        div //= 2
        cd *= 2
    if div < 2:
        return None
    if 16 * clk // (cd * div) - 16 * baud >= 16 * baud - 16 * clk // (cd * (div + 1)):
        div += 1
    return clk / (cd * div)


# AN205 Table 1 (Silicon Labs, "CP210x Baud Rate Support"), as Linux cp210x.c cp210x_an205_table1 has it:
# (nominal UART rate, highest request mapped to it). Requests above 1 053 257 are "undefined".
_AN205 = ((300, 300), (600, 600), (1200, 1200), (1800, 1800), (2400, 2400), (4000, 4000), (4800, 4803),
          (7200, 7207), (9600, 9612), (14400, 14428), (16000, 16062), (19200, 19250), (28800, 28912),
          (38400, 38601), (51200, 51558), (56000, 56280), (57600, 58053), (64000, 64111), (76800, 77608),
          (115200, 117028), (128000, 129347), (153600, 156868), (230400, 237832), (250000, 254234),
          (256000, 273066), (460800, 491520), (500000, 567138), (576000, 670254), (921600, 1053257))


def cp2102_rate(baud: int) -> float | None:
    """CP2102 / CP2103: a fixed table of 32 rates (AN205 Table 1); nothing defined above 1 053 257 Bd.

    AN205 gives the nominal rate only; the rate generated is taken as the nominal one (assumption: the
    table's rates are the chip's own, e.g. 921600 from its 48 MHz clock is 923077 with a /52 divider,
    0.16 % off, which changes no decision here)."""
    for rate, high in _AN205:
        if baud <= high:
            return float(rate)
    return None


def cp210x_actual_rate(baud: int, max_baud: int) -> float | None:
    """CP2102N, CP2104, CP2105 (ECI): div = round(48 MHz / (2 x baud)), rate = 48 MHz / (2 x div)
    (Linux cp210x.c cp210x_get_actual_rate(); maxima from cp210x_init_max_speed())."""
    if baud > max_baud:
        return None
    div = (48_000_000 + baud) // (2 * baud)  # DIV_ROUND_CLOSEST
    return 24_000_000 / div


_PL2303_DIRECT = (75, 150, 300, 600, 1200, 1800, 2400, 3600, 4800, 7200, 9600, 14400, 19200, 28800, 38400,
                  57600, 115200, 230400, 460800, 614400, 921600, 1228800, 2457600, 3000000, 6000000)


def pl2303_rate(baud: int, max_baud: int = 6_000_000) -> float | None:
    """PL2303HX: the rates of its direct table are set as they are (modelled exact: Prolific publishes no
    error figure), any other through 12 MHz x 32 / (mantissa x 4^exponent) with the mantissa rounded down
    (Linux pl2303.c pl2303_get_supported_baud_rate() / pl2303_encode_baud_rate_divisor(); HX maximum
    6 Mbd from pl2303_type_data)."""
    if baud > max_baud:
        return None
    if baud in _PL2303_DIRECT:
        return float(baud)
    mantissa = max(1, 384_000_000 // baud)
    exponent = 0
    while mantissa >= 512 and exponent < 7:
        mantissa >>= 2
        exponent += 1
    return (384_000_000 / mantissa) / (4 ** exponent)


def pl2303g_rate(baud: int) -> float | None:
    """PL2303G (HXN types: GC, GS, GT, GL, GE, GR): no divisor encoding, the chip takes the rate as asked
    (Linux pl2303.c, `no_divisors`); modelled exact up to its 12 Mbd maximum (no error figure published)."""
    return float(baud) if baud <= 12_000_000 else None


# ------------------------------------------------------------------------------------------ line habits
LINUX_OPEN = ("Linux drivers/tty/tty_port.c tty_port_block_til_ready(): DTR/RTS raised on open (the driver's "
              "dtr_rts(): ftdi_dtr_rts, ch341_dtr_rts, cp210x_dtr_rts, pl2303_dtr_rts); pyserial "
              "serialposix.py open(): DTR/RTS asserted by default")


@dataclass(frozen=True)
class LineHabits:
    """One vendor's modem-line facts, shared by its families: what they mean for a wire on CEN."""

    key: str  # stable vendor id: "cp210x"
    name: str  # what users read: "CP210x"
    aliases: tuple[str, ...] = ()  # other vendor names a user may give ("silabs")
    modem_lines: str = ""  # which reset lines the chips have and which boards usually bring out
    open_habit: str = ""  # what the lines do when a port opens, and what bkbench does about it
    wiring: str = ""  # one sentence: what it means for a wire from the adapter to CEN
    holds_reset_on_open: bool = False  # reported to keep CEN low after opening until a tool releases it
    sources: tuple[str, ...] = field(default_factory=tuple)


FOLLOWS_HOST = "no habit of its own: DTR and RTS follow the host (asserted on open, released by bkbench)"

CP210X = LineHabits(
    "cp210x", "CP210x", aliases=("silabs",),
    modem_lines="RTS and DTR are active-low outputs of the chip",
    open_habit="CP2102 boards drive RTS low when the port opens and keep it there until a program releases "
               "it: with RTS on CEN the chip stays in reset; bkbench releases it at once",
    wiring="RTS or DTR on CEN works, as bkbench releases both after opening; a tool that never releases "
           "RTS keeps the chip in reset",
    holds_reset_on_open=True,
    sources=("bk7231tools issue 16 (CP2102 on Linux: RTS low after open, MCU in reset; fix rts=False)",
             "cc2538-bsl pull request 27 (CP2104 on Linux pulses the reset line on every open)", LINUX_OPEN),
)
CH34X = LineHabits(
    "ch34x", "CH34x", aliases=("wch",),
    modem_lines="the 16-pin CH340G/C have RTS# and DTR#; the smaller packages bring out fewer modem lines, "
                "and many CH340 boards wire neither to their header",
    open_habit=FOLLOWS_HOST,
    wiring="check that the board brings RTS or DTR to a pin at all before wiring CEN to it",
    sources=("WCH CH340DS1 datasheet (modem signals RTS, DTR, DCD, RI, DSR, CTS; SOP-8 and MSOP-10 packages)",
             "wiki.kewl.org CH340 page (CH340G/T/R pinouts with RTS# and DTR#)",
             "esp8266/Arduino issue 1019 (a CH340G's RTS held an ESP in reset during a transfer)", LINUX_OPEN),
)
FTDI = LineHabits(
    "ftdi", "FTDI",
    modem_lines="RTS# and DTR# are chip outputs; FTDI's TTL-232R cable brings out RTS# (green wire), boards "
                "with the 6-pin 'FTDI header' usually DTR",
    open_habit=FOLLOWS_HOST,
    wiring="on a TTL-232R cable wire the green RTS# to CEN; on a breakout board use its DTR pin",
    sources=("FTDI DS_FT232R datasheet (RTS#, DTR# outputs)", "FTDI DS_TTL-232R_CABLES (pin 6 green = RTS#)",
             LINUX_OPEN),
)
PL2303 = LineHabits(
    "pl2303", "PL2303", aliases=("prolific",),
    modem_lines="the chip has DTR and RTS, but the common 4-wire PL2303 cables (red 5 V, black GND, white "
                "RX, green TX) bring out neither",
    open_habit=FOLLOWS_HOST,
    wiring="a 4-wire PL2303 cable has no DTR or RTS wire to put on CEN",
    sources=("Prolific PL2303HX datasheet (DTR_N, RTS_N pins)",
             "Adafruit USB to TTL serial cable, product 954 (PL2303, 4 wires: red 5V, black GND, white RX, "
             "green TX)", LINUX_OPEN),
)


# ------------------------------------------------------------------------------------------ families
@dataclass(frozen=True)
class AdapterFamily:
    key: str  # the name used by `bkbench simulate --adapter` and `sim://...?adapter=`
    name: str
    ids: tuple[tuple[int, int], ...]  # (VID, PID)
    driver: str  # Linux driver
    max_baud: int
    rate: Callable[[int], float | None]  # line rate generated for a request; None = cannot
    rate_source: str
    # Latency: how long a reply that does not fill a USB packet may wait in the adapter before the host
    # gets it (FTDI: the latency timer), and whether Linux can lower it for one port.
    latency_ms: float
    latency_adjustable: bool
    packet_bytes: int  # data bytes per USB packet towards the host
    latency_source: str
    vendor: LineHabits  # the reset habits of its modem lines (shared by the vendor's families)
    product_match: str = ""  # regex on the USB product string when several families share a VID:PID
    chip_names: dict[tuple[int, int], str] = field(default_factory=dict, compare=False)  # VID:PID -> chip
    aliases: tuple[str, ...] = ()  # further chip names a user or a sim:// URL may give ("ft232rl")
    lines_on_open: tuple[str, ...] = ("dtr", "rts")
    lines_source: str = LINUX_OPEN
    notes: tuple[str, ...] = field(default_factory=tuple)

    def fit(self, baud: int) -> tuple[bool, str]:
        """Whether both ends of the line can run `baud` within TOLERANCE, and why not."""
        made = self.rate(baud)
        chip = chip_rate(baud)
        if made is None:
            return False, f"beyond what this {self.name} generates ({self.rate_source})"
        off = chip / made - 1
        if abs(off) > TOLERANCE:
            return False, (f"the chip's UART would run {chip:,.0f} (26 MHz / {CHIP_UART_CLOCK // baud}), this "
                           f"{self.name} {made:,.0f}: {abs(off):.1%} apart, over the {TOLERANCE:.0%} an 8N1 "
                           "frame tolerates")
        return True, ""

    def mismatch(self, baud: int) -> float | None:
        made = self.rate(baud)
        return None if made is None else chip_rate(baud) / made - 1

    def names(self) -> set[str]:
        """Every lower-case name this family answers to: key, name (each part of "CP2104/CP2105"), chips."""
        return {self.key, *self.name.lower().split("/"), *self.aliases, *(c.lower() for c in self.chip_names.values())}


FTDI_LATENCY = ("FTDI AN232B-04 3.3: a partial packet goes to the host when the latency timer (default "
                "16 ms) expires, counted from the last packet sent; Linux ftdi_sio.c sets 1 ms while "
                "ASYNC_LOW_LATENCY is set (write_latency_timer) or what sysfs latency_timer holds")
NO_TIMER = ("no latency timer: the driver ({driver}) has no setting for it, the chip hands a partial packet "
            "to the next USB poll; no published figure, modelled as one 1 ms full-speed USB frame")

FAMILIES: dict[str, AdapterFamily] = {f.key: f for f in (
    AdapterFamily(
        "ft232r", "FT232R", ((0x0403, 0x6001),), "ftdi_sio", 3_000_000, ftdi_bm_rate,
        "Linux ftdi_sio.c ftdi_232bm_baud_base_to_divisor: 3 MHz / (n + k/8), 2 and 3 MBd special",
        16.0, True, 62,
        FTDI_LATENCY + "; 64-byte packets carry 2 status bytes (AN232B-04)", FTDI, aliases=("ft232rl",)),
    AdapterFamily(
        "ft231x", "FT231X", ((0x0403, 0x6015),), "ftdi_sio", 3_000_000, ftdi_bm_rate,
        "Linux ftdi_sio.c ftdi_232bm_baud_base_to_divisor (FT-X uses the FT232R arithmetic)",
        16.0, True, 62, FTDI_LATENCY, FTDI),
    AdapterFamily(
        "ft232h", "FT232H/FT2232H", ((0x0403, 0x6014), (0x0403, 0x6010)), "ftdi_sio", 12_000_000, ftdi_h_rate,
        "Linux ftdi_sio.c ftdi_2232h_baud_base_to_divisor: 12 MHz / (n + k/8)",
        16.0, True, 510, FTDI_LATENCY + "; hi-speed: 512-byte packets", FTDI,
        chip_names={(0x0403, 0x6014): "FT232H", (0x0403, 0x6010): "FT2232"},
        notes=("PID 6010 is also the full-speed FT2232C/D, whose 3 MHz arithmetic gives the same rates at "
               "every rung of the baud ladder",)),
    AdapterFamily(
        "ch340", "CH340", ((0x1A86, 0x7523), (0x1A86, 0x7522), (0x1A86, 0x5523)), "ch341", 3_000_000,
        ch341_rate, "Linux ch341.c ch341_get_divisor: 48 MHz / (2^(12-3ps-fact) x div)",
        1.0, False, 32,
        NO_TIMER.format(driver="ch341") + "; Linux ch341.c sets bit 7 of the divisor register so the chip "
        "does not hold data until a full 32-byte packet", CH34X,
        chip_names={(0x1A86, 0x7523): "CH340", (0x1A86, 0x7522): "CH340K", (0x1A86, 0x5523): "CH341"},
        aliases=("ch340g",)),
    AdapterFamily(
        "ch343", "CH343/CH9102", ((0x1A86, 0x55D3), (0x1A86, 0x55D4)), "cdc_acm", 6_000_000,
        lambda b: float(b) if b <= 6_000_000 else None,
        "no public divisor arithmetic: taken as exact (WCH datasheet: up to 6 MBd)",
        1.0, False, 64, NO_TIMER.format(driver="cdc_acm"), CH34X,
        chip_names={(0x1A86, 0x55D3): "CH343", (0x1A86, 0x55D4): "CH9102"}),
    AdapterFamily(
        "cp2102", "CP2102", ((0x10C4, 0xEA60),), "cp210x", 1_000_000, cp2102_rate,
        "Silicon Labs AN205 Table 1 (Linux cp210x.c cp210x_an205_table1): 32 fixed rates, none above 921600",
        1.0, False, 64, NO_TIMER.format(driver="cp210x"), CP210X, product_match=r"CP210[123](?!N)|^$",
        notes=("10C4:EA60 is shared by CP2102, CP2102N and CP2104: the USB product string tells them apart; "
               "with none, the CP2102's limits are assumed (the strictest)",)),
    AdapterFamily(
        "cp2102n", "CP2102N", ((0x10C4, 0xEA60),), "cp210x", 3_000_000,
        lambda b: cp210x_actual_rate(b, 3_000_000),
        "Linux cp210x.c cp210x_get_actual_rate: 48 MHz / (2 x round(48 MHz / (2 x baud))), max 3 MBd",
        1.0, False, 64, NO_TIMER.format(driver="cp210x"), CP210X, product_match=r"CP2102N"),
    AdapterFamily(
        "cp2104", "CP2104/CP2105", ((0x10C4, 0xEA60), (0x10C4, 0xEA70)), "cp210x", 2_000_000,
        lambda b: cp210x_actual_rate(b, 2_000_000),
        "Linux cp210x.c cp210x_get_actual_rate: 48 MHz / (2 x round(48 MHz / (2 x baud))), max 2 MBd",
        1.0, False, 64, NO_TIMER.format(driver="cp210x"), CP210X, product_match=r"CP210[45]",
        chip_names={(0x10C4, 0xEA70): "CP2105"}),
    AdapterFamily(
        "pl2303", "PL2303", ((0x067B, 0x2303),), "pl2303", 6_000_000, pl2303_rate,
        "Linux pl2303.c: direct table, else 12 MHz x 32 / (mantissa x 4^exp)",
        1.0, False, 64, NO_TIMER.format(driver="pl2303"), PL2303, aliases=("pl2303hx",),
        notes=("067B:2303 also covers the old PL2303H (max 1 228 800 Bd); the HX is assumed",)),
    AdapterFamily(
        "pl2303g", "PL2303G", ((0x067B, 0x23A3), (0x067B, 0x23B3), (0x067B, 0x23C3), (0x067B, 0x23D3),
                               (0x067B, 0x23E3), (0x067B, 0x23F3)), "pl2303", 12_000_000, pl2303g_rate,
        "Linux pl2303.c TYPE_HXN: no divisors, the rate is sent as asked",
        1.0, False, 64, NO_TIMER.format(driver="pl2303"), PL2303,
        chip_names={(0x067B, 0x23A3): "PL2303GC"}),
)}


def family_for(vid: int | None, pid: int | None, product: str | None = "") -> AdapterFamily | None:
    """The family of a USB adapter, from its VID:PID (and product string where the VID:PID is shared)."""
    if vid is None or pid is None:
        return None
    found = [f for f in FAMILIES.values() if (vid, pid) in f.ids]
    if len(found) > 1:
        product = product or ""
        found = [f for f in found if f.product_match and re.search(f.product_match, product)] or found[:1]
    return found[0] if found else None


def names_by_vid_pid() -> dict[tuple[int, int], str]:
    """VID:PID -> chip name (what core/ports.py shows in its adapter column); a VID:PID several families
    share (10C4:EA60) gets the vendor's name, as only the product string tells its chip."""
    owners: dict[tuple[int, int], list[AdapterFamily]] = {}
    for fam in FAMILIES.values():
        for vp in fam.ids:
            owners.setdefault(vp, []).append(fam)
    return {vp: fams[0].vendor.name if len(fams) > 1 else fams[0].chip_names.get(vp, fams[0].name)
            for vp, fams in owners.items()}


def by_name(name: str) -> AdapterFamily | None:
    """A family by key ("cp2102"), chip name ("CH341", "FT2232") or vendor ("cp210x", "ftdi", "prolific").

    A vendor gives its first family: the one `family_for` assumes when the product string says nothing
    (CP2102, the strictest CP210x), FT232R, CH340, PL2303 (HX)."""
    want = name.strip().lower()
    if want in FAMILIES:
        return FAMILIES[want]
    for fam in FAMILIES.values():
        if want in fam.names():
            return fam
    for fam in FAMILIES.values():
        if want in (fam.vendor.key, fam.vendor.name.lower(), *fam.vendor.aliases):
            return fam
    return None


def family_for_url(url: str, ports=None) -> AdapterFamily | None:
    """The family of the adapter behind a port path (by VID:PID and product), or a simulated one
    (`sim://...?adapter=`).

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
            return family_for(p.vid, p.pid, p.description)
    return None
