#!/usr/bin/env python3
"""Draw the bench wiring (USB-serial adapter, 3.3 V supply, BK7231 module) as screenshots/wiring.svg.

Plain SVG written by hand, no dependencies: `python scripts/wiring_svg.py [OUT.svg]`; with `--power` it
draws the optional supply switch for `--reset power:GPIO27` as screenshots/wiring-power.svg.
The module is drawn generically: which physical pad is RX1/TX1/CEN differs between CB2S, CB3S, WB2S,
T34 ..., so the picture names signals and the README's table says where to find the pads.
"""

from __future__ import annotations

import sys
from pathlib import Path
from xml.sax.saxutils import escape

W, H = 860, 500
FONT = "font-family='DejaVu Sans Mono, Menlo, Consolas, monospace'"

# (label on the adapter / supply side, label on the module side, colour, note on the wire)
WIRES = [
    ("TX", "RX1 (P10)", "#1f77b4", "data to the chip"),
    ("RX", "TX1 (P11)", "#2ca02c", "data from the chip"),
    ("RTS", "CEN", "#9467bd", "reset (optional: else touch CEN to GND)"),
    ("GND", "GND", "#222222", "common ground"),
]


def box(x: int, y: int, w: int, h: int, title: str, sub: str, fill: str) -> str:
    return (f"<rect x='{x}' y='{y}' width='{w}' height='{h}' rx='10' fill='{fill}' stroke='#333' stroke-width='2'/>"
            f"<text x='{x + w / 2}' y='{y + 24}' text-anchor='middle' font-size='16' font-weight='bold' {FONT}>"
            f"{escape(title)}</text>"
            f"<text x='{x + w / 2}' y='{y + 42}' text-anchor='middle' font-size='11' fill='#555' {FONT}>"
            f"{escape(sub)}</text>")


def pin(x: int, y: int, label: str, anchor: str) -> str:
    dx = -8 if anchor == "end" else 8
    return (f"<circle cx='{x}' cy='{y}' r='5' fill='#d4a017' stroke='#333'/>"
            f"<text x='{x + dx}' y='{y + 4}' text-anchor='{anchor}' font-size='13' {FONT}>{escape(label)}</text>")


def draw() -> str:
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{W}' height='{H}' viewBox='0 0 {W} {H}'>",
             f"<rect width='{W}' height='{H}' fill='white'/>",
             f"<text x='20' y='28' font-size='18' font-weight='bold' {FONT}>Wiring a BK7231 module for bkbench</text>"]
    ax, mx, top = 40, 600, 60
    parts.append(box(ax, top, 240, 250, "USB-serial adapter", "3.3 V logic: CH340, CP2102, FT232", "#eef4fb"))
    parts.append(box(mx, top, 220, 340, "BK7231 module", "CB2S, CB3S, WB2S, T34 ...", "#f4f4f4"))
    parts.append(box(ax, top + 285, 240, 90, "3.3 V supply", ">= 300 mA (Wi-Fi peaks)", "#fff4e5"))
    for i, (a, m, colour, note) in enumerate(WIRES):
        y = top + 80 + i * 42
        parts.append(pin(ax + 240, y, a, "end"))
        parts.append(pin(mx, y, m, "start"))
        parts.append(f"<line x1='{ax + 245}' y1='{y}' x2='{mx - 5}' y2='{y}' stroke='{colour}' stroke-width='3'"
                     + (" stroke-dasharray='8 5'" if a == "RTS" else "") + "/>")
        parts.append(f"<text x='{(ax + mx) / 2 + 100}' y='{y - 6}' text-anchor='middle' font-size='11' "
                     f"fill='{colour}' {FONT}>{escape(note)}</text>")
    # supply: 3V3 to VCC, GND joined with the adapter's GND
    vy, gy = top + 345, top + 362
    parts.append(pin(ax + 240, vy, "3V3", "end"))
    parts.append(pin(ax + 240, gy, "GND", "end"))
    parts.append(pin(mx, top + 300, "VCC 3.3 V", "start"))
    parts.append(f"<polyline points='{ax + 245},{vy} 450,{vy} 450,{top + 300} {mx - 5},{top + 300}' fill='none' "
                 f"stroke='#d62728' stroke-width='3'/>")
    gnd_y = top + 80 + 3 * 42
    parts.append(f"<polyline points='{ax + 245},{gy} 400,{gy} 400,{gnd_y}' fill='none' stroke='#222' "
                 f"stroke-width='3'/><circle cx='400' cy='{gnd_y}' r='4' fill='#222'/>")
    parts.append(f"<text x='460' y='{top + 325}' font-size='11' fill='#d62728' {FONT}>not the adapter's</text>"
                 f"<text x='460' y='{top + 339}' font-size='11' fill='#d62728' {FONT}>3V3 pin: too weak</text>")
    notes = ["Adapter TX goes to module RX1, adapter RX to module TX1 (crossed).",
             "Never 5 V on any pin. Pads differ per module: see its datasheet."]
    for i, n in enumerate(notes):
        parts.append(f"<text x='20' y='{H - 28 + i * 16}' font-size='12' fill='#444' {FONT}>{escape(n)}</text>")
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def draw_power() -> str:
    """`--reset power:GPIO27`: a P-MOSFET in the module's 3.3 V line; the GPIO pulls its gate up to cut the
    supply, a pull-down keeps it on whenever the line is not driven (bkbench releases it between cycles)."""
    w, h = 860, 400
    t = FONT

    def text(x: float, y: float, s: str, size: int = 12, fill: str = "#222", anchor: str = "start") -> str:
        return f"<text x='{x}' y='{y}' font-size='{size}' fill='{fill}' text-anchor='{anchor}' {t}>{escape(s)}</text>"

    def line(points: str, colour: str = "#222") -> str:
        return f"<polyline points='{points}' fill='none' stroke='{colour}' stroke-width='3'/>"

    red, blue = "#d62728", "#1f77b4"
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' viewBox='0 0 {w} {h}'>",
             f"<rect width='{w}' height='{h}' fill='white'/>",
             text(20, 28, "Letting the Pi power-cycle the module (--reset power:GPIO27)", 18),
             box(30, 60, 180, 70, "3.3 V supply", ">= 300 mA", "#fff4e5"),
             box(640, 60, 190, 70, "BK7231 module", "VCC (3.3 V in)", "#f4f4f4"),
             box(30, 250, 180, 80, "Raspberry Pi", "GPIO27 = pin 13", "#eef4fb"),
             # P-MOSFET in the 3.3 V line: source to the supply, drain to the module
             "<rect x='380' y='70' width='110' height='50' rx='6' fill='#fafafa' stroke='#333' stroke-width='2'/>",
             text(435, 92, "P-MOSFET", 13, anchor="middle"), text(435, 110, "e.g. AO3401", 11, "#555", "middle"),
             line("210,95 380,95", red), text(300, 88, "3.3 V", 11, red, "middle"), text(372, 112, "S", 11),
             line("490,95 640,95", red), text(565, 88, "switched 3.3 V", 11, red, "middle"), text(494, 112, "D", 11),
             # gate: driven by the GPIO through 1 kOhm, pulled down by 10 kOhm (on while nobody drives it)
             text(443, 150, "G", 11), line("435,120 435,360"),
             line("210,290 435,290", blue), text(322, 282, "1 kΩ from GPIO27 to the gate", 11, blue, "middle"),
             text(445, 330, "10 kΩ gate to GND: on by default", 11, "#555"),
             line("640,130 640,360 15,360 15,145 60,145 60,130"), line("120,330 120,360"),
             text(540, 378, "one common GND: supply, Pi, module and the USB adapter", 11, anchor="middle"),
             text(20, 394, "GPIO27 high: gate at 3.3 V, MOSFET off, module unpowered. Released or low: module "
                  "powered.", 12, "#444"),
             "</svg>"]
    return "\n".join(parts) + "\n"


def main() -> int:
    """`wiring_svg.py [OUT.svg]` draws the bench wiring; `wiring_svg.py --power [OUT.svg]` the power switch."""
    args = sys.argv[1:]
    power = bool(args) and args[0] == "--power"
    if power:
        args = args[1:]
    shots = Path(__file__).resolve().parent.parent / "screenshots"
    out = Path(args[0]) if args else shots / ("wiring-power.svg" if power else "wiring.svg")
    out.write_text(draw_power() if power else draw())
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
