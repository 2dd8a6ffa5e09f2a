"""Reset strategies as data: how to get the chip into its boot window (esptool's model, adapted).

A strategy is a list of steps run on the port: `D1`/`D0` (assert/release DTR), `R1`/`R0` (RTS),
`W0.1` (wait seconds). Asserted at TTL level means low, so an asserted line wired to CEN holds the
chip in reset. Besides the port lines a strategy may pulse a GPIO line (`actuator`, see gpio.py) and
type text to a running application (`text`: OpenBK reboots on "reboot\\n", PROTOCOL.md 6). A
strategy without lines or GPIO is manual: the UI tells the user exactly what to do instead.

Specs accepted by `get_strategy`: a preset name (auto, manual/none, dtr-rts, gui, rts, dtr, reboot),
a sequence (`R1|D1|W0.1|D0|W0.1|R0`), `gpio:GPIO17[,power=GPIO27][,invert][,pulse=0.25]`,
`power:GPIO27[,off=1][,invert]` (a Pi GPIO switching the module's 3.3 V through a transistor: the forum's
"power-cycle it while the flasher links", automated), or several joined by `+` (`dtr-rts+reboot`).
Everything is parsed before a port or GPIO line is touched. `CHOICES` lists them for a selector, GPIO
methods with a placeholder line the user fills in.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import BkError

STEP = re.compile(r"^(?:(D|R)([01])|W(\d+(?:\.\d+)?))$")
REBOOT_TEXT = b"reboot\n"

MANUAL_TEXT = ("reset the chip now: short CEN to GND for about a quarter second, or power-cycle the module "
               "(keep TX, RX and GND connected)")


@dataclass(frozen=True)
class ResetStrategy:
    name: str
    steps: tuple[tuple[str, float], ...] = ()
    instructions: str = ""
    repeat_every: float = 3.0  # seconds between repeats while the link check runs
    needs_lines: bool = field(default=False)
    text: bytes = b""  # typed to a running application each round (OpenBK's "reboot")
    actuator: Any = field(default=None, compare=False, repr=False)  # GpioReset or any object with pulse()

    @property
    def manual(self) -> bool:
        """True when only the user can reset the chip (typing `reboot` is a nudge, not a reset)."""
        return not self.steps and self.actuator is None

    @property
    def acts(self) -> bool:
        """True when apply() does anything at all."""
        return bool(self.steps or self.text or self.actuator is not None)

    def describe(self) -> str:
        """How this strategy resets the chip, for messages ("reset by ...")."""
        parts = []
        if self.steps:
            parts.append(f"DTR/RTS sequence {format_sequence(self.steps)}")
        if self.actuator is not None:
            parts.append(getattr(self.actuator, "describe", lambda: "GPIO")())
        if self.text:
            parts.append(f"typing {self.text.decode('ascii', 'replace').strip()!r} to a running OpenBK")
        if not parts:
            return "hand (short CEN to GND, or power-cycle the module)"
        return " + ".join(parts)

    def check(self) -> None:
        """Fail early (e.g. a GPIO line that does not exist) before linking starts."""
        check = getattr(self.actuator, "check", None)
        if check is not None:
            check()

    def apply(self, port) -> None:
        for op, value in self.steps:
            if op == "W":
                time.sleep(value)
            elif op == "D":
                port.dtr = bool(value)
            elif op == "R":
                port.rts = bool(value)
        if self.actuator is not None:
            self.actuator.pulse()
        if self.text:
            port.write(self.text)


def format_sequence(steps: tuple[tuple[str, float], ...]) -> str:
    return "|".join(f"W{v:g}" if op == "W" else f"{op}{int(v)}" for op, v in steps)


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
    ops = [op for op, _ in steps]
    for line in ("D", "R"):
        last = [v for op, v in steps if op == line]
        if last and last[-1]:
            # A line left asserted holds a CEN wired to it low: the chip would never boot.
            raise BkError(f"reset sequence leaves {'DTR' if line == 'D' else 'RTS'} asserted at the end; "
                          f"add {line}0 so the chip can boot")
    if "D" not in ops and "R" not in ops:
        raise BkError("reset sequence drives neither DTR nor RTS")
    return ResetStrategy(name, tuple(steps), needs_lines=True)


def gpio_strategy(spec: str, **kwargs: Any) -> ResetStrategy:
    """`gpio:GPIO17,power=GPIO27`: parsed now; gpiod is imported only when a line is opened."""
    from .gpio import GpioReset, parse_gpio_spec

    actuator = GpioReset.from_spec(parse_gpio_spec(spec), **kwargs)
    return ResetStrategy("gpio", actuator=actuator, repeat_every=3.0)


def power_strategy(spec: str, **kwargs: Any) -> ResetStrategy:
    """`power:GPIO27[,off=S][,invert]`: each round switches the supply off for `off` s (the module's
    capacitors drain), then on; the link checks run on, so the boot window after power-on is caught."""
    from .gpio import GpioReset, parse_power_spec

    parsed = parse_power_spec(spec)
    actuator = GpioReset.from_spec(parsed, **kwargs)
    # Repeat once the chip has had its boot window and its application a moment to print a banner.
    return ResetStrategy(spec.strip(), actuator=actuator, repeat_every=max(3.0, parsed.power_off + 2.0))


def combine(name: str, parts: list[ResetStrategy]) -> ResetStrategy:
    steps: tuple[tuple[str, float], ...] = ()
    actuator = None
    text = b""
    for p in parts:
        steps += p.steps
        if p.actuator is not None:
            if actuator is not None:
                raise BkError("only one GPIO reset can be combined")
            actuator = p.actuator
        text += p.text
    strategy = ResetStrategy(name, steps, needs_lines=bool(steps), text=text, actuator=actuator,
                             repeat_every=min(p.repeat_every for p in parts))
    if strategy.manual:
        strategy = ResetStrategy(name, steps, MANUAL_TEXT, strategy.repeat_every, False, text)
    return strategy


PRESETS: dict[str, ResetStrategy] = {
    "manual": ResetStrategy("manual", instructions=MANUAL_TEXT),
    # bk7231tools / ltchiptool: RTS+DTR on, 100 ms, DTR off, 100 ms, RTS off.
    "dtr-rts": parse_sequence("R1|D1|W0.1|D0|W0.1|R0", "dtr-rts"),
    # BK7231GUIFlashTool: both lines pulsed for 50 ms.
    "gui": parse_sequence("D1|R1|W0.05|D0|R0", "gui"),
    "rts": parse_sequence("R1|W0.2|R0", "rts"),
    "dtr": parse_sequence("D1|W0.2|D0", "dtr"),
    # OpenBK's command line reboots into the boot window (GUIFlashTool does this every 5th try).
    "reboot": ResetStrategy("reboot", instructions=MANUAL_TEXT, text=REBOOT_TEXT, repeat_every=2.0),
}
# auto: the bk7231tools pulse (harmless when nothing is wired) plus `reboot` for a running OpenBK.
PRESETS["auto"] = combine("auto", [PRESETS["dtr-rts"], PRESETS["reboot"]])


def get_strategy(spec: str) -> ResetStrategy:
    spec = spec.strip()
    if "+" in spec:
        parts = [get_strategy(p) for p in spec.split("+") if p.strip()]
        if not parts:
            raise BkError(f"empty reset method {spec!r}")
        return combine(spec, parts)
    if spec == "none":
        return PRESETS["manual"]
    if spec in PRESETS:
        return PRESETS[spec]
    if spec.lower().startswith("gpio:"):
        return gpio_strategy(spec)
    if spec.lower().startswith("power:"):
        return power_strategy(spec)
    if any(c in spec for c in "|,") or STEP.match(spec.upper() or "x"):
        return parse_sequence(spec)
    raise BkError(f"unknown reset method {spec!r}; use auto, manual, dtr-rts, gui, rts, dtr, reboot, "
                  "gpio:GPIO17, power:GPIO27 or a sequence like R1|W0.1|R0")


def port_has_lines(port) -> bool:
    """ptys, sockets and the Pi's UART cannot drive DTR/RTS: fall back to manual there."""
    name = str(getattr(port, "portstr", "") or getattr(port, "port", "") or "")
    passes = getattr(port, "passes_lines", None)  # core/rfc2217.py: did the server confirm DTR/RTS?
    if passes is not None:
        return bool(passes)
    if name.startswith(("socket://", "rfc2217://", "loop://")):
        return False
    real = os.path.realpath(name) if name.startswith("/") else name
    for cand in (name, real):
        if "/dev/pts/" in cand or cand == "/dev/ptmx":
            return False
        if cand.startswith(("/dev/ttyAMA", "/dev/ttyS", "/dev/serial0", "/dev/serial1")):
            return False
    try:
        port.dtr = False
        port.rts = False
    except Exception:  # noqa: BLE001 - any failure means the lines are not there
        return False
    return True


def for_port(strategy: ResetStrategy, port) -> tuple[ResetStrategy, str]:
    """The strategy this port can run, and one message when DTR/RTS had to be dropped ("" if not)."""
    if not strategy.steps or port_has_lines(port):
        return strategy, ""
    name = str(getattr(port, "portstr", "") or getattr(port, "port", "") or "this port")
    kept = ResetStrategy(
        f"{strategy.name} (without DTR/RTS)", (), MANUAL_TEXT if strategy.actuator is None else "",
        strategy.repeat_every, False, strategy.text, strategy.actuator,
    )
    what = "reset the chip by hand while bkbench links" if kept.manual else f"resetting by {kept.describe()}"
    if getattr(port, "passes_lines", None) is False:
        return kept, f"{name}: the RFC 2217 server does not pass DTR/RTS (ser2net in front of a pty or a UART " \
                     f"without modem lines): {what}"
    return kept, f"{name} cannot drive DTR/RTS (pty, socket or Pi UART): {what}"


@dataclass(frozen=True)
class ResetChoice:
    """One entry of a reset-method selector: a spec, or a template whose `{gpio}` the user fills in."""

    spec: str
    label: str

    @property
    def needs_gpio(self) -> bool:
        return "{gpio}" in self.spec

    def fill(self, gpio: str | int) -> str:
        """The spec with the user's line, e.g. fill(27) -> "power:GPIO27" (a name like GPIO27 is kept)."""
        name = str(gpio).strip()
        return self.spec.format(gpio=name[4:] if name.upper().startswith("GPIO") else name)


CHOICES: tuple[ResetChoice, ...] = (
    ResetChoice("auto", "DTR/RTS pulse, then `reboot` typed to a running OpenBK"),
    ResetChoice("manual", "you short CEN to GND or power-cycle the module when told"),
    ResetChoice("dtr-rts", "RTS and DTR pulsed as bk7231tools does (CEN on RTS or DTR)"),
    ResetChoice("gui", "DTR and RTS pulsed together for 50 ms (BK7231GUIFlashTool)"),
    ResetChoice("rts", "RTS held 0.2 s (CEN on RTS)"),
    ResetChoice("dtr", "DTR held 0.2 s (CEN on DTR)"),
    ResetChoice("reboot", "types `reboot` to a running OpenBK"),
    ResetChoice("gpio:GPIO{gpio}", "a Raspberry Pi GPIO pulses CEN low (bkbench[gpio])"),
    ResetChoice("power:GPIO{gpio}", "a Raspberry Pi GPIO switches the module's 3.3 V through a transistor"),
)


def adapter_note(strategy: ResetStrategy, family: Any) -> str:
    """What the adapter vendor's modem-line habit means for this strategy ("" when nothing worth saying)."""
    habits = getattr(family, "vendor", None)  # core/link/adapters.py LineHabits
    if habits is None or not strategy.steps or not habits.holds_reset_on_open:
        return ""
    return f"{habits.name} adapter: {habits.open_habit}."
