"""Reset strategies as data: how to get the chip into its boot window (esptool's model, adapted).

A strategy is a list of steps run on the port: `D1`/`D0` (assert/release DTR), `R1`/`R0` (RTS),
`W0.1` (wait seconds). Asserted at TTL level means low, so an asserted line wired to CEN holds the
chip in reset. Manual strategies have no steps; the UI tells the user what to do instead.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from ..errors import BkError

STEP = re.compile(r"^(?:(D|R)([01])|W(\d+(?:\.\d+)?))$")


@dataclass(frozen=True)
class ResetStrategy:
    name: str
    steps: tuple[tuple[str, float], ...] = ()
    instructions: str = ""
    repeat_every: float = 3.0  # seconds between repeats while the link check runs
    needs_lines: bool = field(default=False)

    @property
    def manual(self) -> bool:
        return not self.steps

    def apply(self, port) -> None:
        for op, value in self.steps:
            if op == "W":
                time.sleep(value)
            elif op == "D":
                port.dtr = bool(value)
            elif op == "R":
                port.rts = bool(value)


def parse_sequence(text: str, name: str = "custom") -> ResetStrategy:
    """Parse `R1|D1|W0.1|D0|W0.1|R0` before any port is touched; errors name the bad step."""
    steps: list[tuple[str, float]] = []
    for raw in text.replace(",", "|").split("|"):
        item = raw.strip().upper()
        if not item:
            continue
        m = STEP.match(item)
        if not m:
            raise BkError(f"reset sequence step {raw.strip()!r} is not D0, D1, R0, R1 or W<seconds>")
        if m.group(3) is not None:
            wait = float(m.group(3))
            if wait > 5:
                raise BkError(f"reset sequence wait {wait} s is longer than 5 s")
            steps.append(("W", wait))
        else:
            steps.append((m.group(1), float(m.group(2))))
    if not steps:
        raise BkError("empty reset sequence")
    return ResetStrategy(name, tuple(steps), needs_lines=True)


MANUAL_TEXT = ("reset the chip now: short CEN to GND for a second, or power-cycle the module "
               "(keep TX, RX and GND connected)")

PRESETS: dict[str, ResetStrategy] = {
    "manual": ResetStrategy("manual", instructions=MANUAL_TEXT),
    # bk7231tools / ltchiptool: RTS+DTR on, 100 ms, DTR off, 100 ms, RTS off.
    "dtr-rts": parse_sequence("R1|D1|W0.1|D0|W0.1|R0", "dtr-rts"),
    # BK7231GUIFlashTool: both lines pulsed for 50 ms.
    "gui": parse_sequence("D1|R1|W0.05|D0|R0", "gui"),
    "rts": parse_sequence("R1|W0.2|R0", "rts"),
    "dtr": parse_sequence("D1|W0.2|D0", "dtr"),
}


def get_strategy(spec: str) -> ResetStrategy:
    if spec in ("auto",):
        return PRESETS["dtr-rts"]
    if spec in ("none",):
        return PRESETS["manual"]
    if spec in PRESETS:
        return PRESETS[spec]
    if any(c in spec for c in "|,") or STEP.match(spec.strip().upper() or "x"):
        return parse_sequence(spec)
    raise BkError(f"unknown reset method {spec!r}; use manual, dtr-rts, gui, rts, dtr or a sequence like R1|W0.1|R0")


def port_has_lines(port) -> bool:
    """ptys, sockets and the Pi's UART cannot drive DTR/RTS: fall back to manual there."""
    name = str(getattr(port, "portstr", "") or getattr(port, "port", "") or "")
    if name.startswith(("socket://", "rfc2217://", "loop://")):
        return False
    if "/dev/pts/" in name or name.startswith(("/dev/ttyAMA", "/dev/ttyS", "/dev/serial0", "/dev/serial1")):
        return False
    try:
        port.dtr = False
        port.rts = False
    except Exception:  # noqa: BLE001 - any failure means the lines are not there
        return False
    return True
