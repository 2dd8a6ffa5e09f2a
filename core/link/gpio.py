"""Reset through Raspberry Pi GPIO lines (libgpiod v2): one wired to CEN, optionally one switching power.

Lines are found by NAME ("GPIO17") across every /dev/gpiochip*: the Pi 5 moved the header pins to
another chip number, so numbers are not portable. `chip:offset` ("gpiochip0:17") is accepted too.
The `gpiod` package (libgpiod v2 bindings, extra `bkbench[gpio]`) is imported only when a line is
opened, so everything else works without it.

Levels are physical (True = high). CEN is active low: a GPIO wired straight to CEN drives it low
to hold the chip in reset; through an NPN transistor the GPIO goes high instead (`invert`). The
power line is high = module powered unless inverted (P-MOSFET high-side switches are).

Any object with `set(level: bool)` and `close()` can stand in for a line (tests inject fakes).
"""

from __future__ import annotations

import glob
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Union

from ..errors import BkError

CONSUMER = "bkbench"
GPIOD_MISSING = ("GPIO reset needs the libgpiod v2 Python bindings: pip install 'bkbench[gpio]' "
                 "(the `gpiod` package, version 2 or later)")


class OutputLine(Protocol):
    def set(self, level: bool) -> None: ...

    def close(self) -> None: ...


LineRef = Union[str, OutputLine]


def _gpiod() -> Any:
    try:
        import gpiod
    except ImportError:
        raise BkError(GPIOD_MISSING) from None
    if not hasattr(gpiod, "request_lines"):
        raise BkError("the installed `gpiod` module is the libgpiod v1 API; bkbench needs v2: "
                      "pip install -U 'gpiod>=2'")
    return gpiod


def chip_paths() -> list[str]:
    def num(p: str) -> int:
        m = re.search(r"(\d+)$", p)
        return int(m.group(1)) if m else 0

    return sorted(glob.glob("/dev/gpiochip*"), key=num)


def find_line(name: str) -> tuple[str, int]:
    """(chip path, offset) of a line given as a name ("GPIO17") or as `chip:offset`."""
    m = re.fullmatch(r"(/dev/)?(gpiochip\d+):(\d+)", name.strip())
    if m:
        return f"/dev/{m.group(2)}", int(m.group(3))
    gpiod = _gpiod()
    wanted = name.strip()
    if wanted.isdigit():
        wanted = f"GPIO{wanted}"  # the Pi's BCM numbering, as printed on pinout diagrams
    chips = [p for p in chip_paths() if gpiod.is_gpiochip_device(p)]
    if not chips:
        raise BkError("no GPIO chips found (/dev/gpiochip*): GPIO reset works on a Raspberry Pi or "
                      "another Linux board with GPIO character devices")
    for path in chips:
        try:
            with gpiod.Chip(path) as chip:
                return path, int(chip.line_offset_from_id(wanted))
        except PermissionError:
            raise BkError(f"permission denied on {path}: add yourself to the gpio group "
                          "(sudo usermod -aG gpio $USER) and log in again") from None
        except (OSError, ValueError):
            continue
    raise BkError(f"no GPIO line named {wanted!r} on {', '.join(chips)} (see `gpioinfo` for the names)")


class GpiodLine:
    """One output line requested through libgpiod v2, driven at physical levels."""

    def __init__(self, name: str, level: bool) -> None:
        gpiod = _gpiod()
        from gpiod.line import Direction, Value

        self.name = name
        self._values = {True: Value.ACTIVE, False: Value.INACTIVE}
        self.path, self.offset = find_line(name)
        settings = gpiod.LineSettings(direction=Direction.OUTPUT, output_value=self._values[level])
        try:
            self._request = gpiod.request_lines(self.path, consumer=CONSUMER, config={self.offset: settings})
        except PermissionError:
            raise BkError(f"permission denied on {self.path}: add yourself to the gpio group "
                          "(sudo usermod -aG gpio $USER) and log in again") from None
        except OSError as exc:
            raise BkError(f"cannot drive {name} ({self.path} line {self.offset}): {exc.strerror or exc}") from None

    def set(self, level: bool) -> None:
        self._request.set_value(self.offset, self._values[bool(level)])

    def close(self) -> None:
        req, self._request = self._request, None
        if req is not None:
            req.release()


@dataclass(frozen=True)
class GpioSpec:
    """What `--reset gpio:...` asked for, parsed before any line is touched."""

    cen: Optional[str] = None
    power: Optional[str] = None
    cen_invert: bool = False
    power_invert: bool = False
    pulse: float = 0.25  # CEN low time; GUIFlashTool's guide says about 0.25 s
    power_off: float = 1.0  # long enough for the module's capacitors to drain


def parse_gpio_spec(text: str) -> GpioSpec:
    """`gpio:GPIO17`, `gpio:GPIO17,power=GPIO27`, `gpio:cen=GPIO17,invert,pulse=0.3`, `gpio:power=GPIO27`."""
    body = text.strip()
    if body.lower().startswith("gpio:"):
        body = body[5:]
    fields: dict[str, Any] = {}
    for raw in body.split(","):
        item = raw.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        value = value.strip()
        if not sep:
            if key in ("invert", "cen-invert"):
                fields["cen_invert"] = True
            elif key == "power-invert":
                fields["power_invert"] = True
            elif "cen" not in fields:
                fields["cen"] = item
            else:
                raise BkError(f"GPIO reset: unexpected {item!r} (use cen=NAME, power=NAME, invert, pulse=S)")
        elif key in ("cen", "power") and value:
            fields[key] = value
        elif key in ("pulse", "power_off", "power-off"):
            try:
                seconds = float(value)
            except ValueError:
                raise BkError(f"GPIO reset: {key}={value!r} is not a number of seconds") from None
            if not 0.01 <= seconds <= 5:
                raise BkError(f"GPIO reset: {key} must be between 0.01 and 5 s")
            fields[key.replace("-", "_")] = seconds
        else:
            raise BkError(f"GPIO reset: unknown option {item!r} (use cen=NAME, power=NAME, invert, pulse=S)")
    if not fields.get("cen") and not fields.get("power"):
        raise BkError("GPIO reset needs a line: gpio:GPIO17 (CEN) and/or gpio:power=GPIO27")
    return GpioSpec(**fields)


def parse_power_spec(text: str) -> GpioSpec:
    """`power:GPIO27`, `power:GPIO27,off=2`, `power:GPIO27,invert`.

    The line *cuts* the supply while driven high (a P-MOSFET whose gate the GPIO pulls up to the source, a
    pull-down resistor keeping it on otherwise): between cycles the line is released and the module stays
    powered, during a whole backup too. `invert`: low cuts it (e.g. an active-low relay board)."""
    body = text.strip()
    if body.lower().startswith("power:"):
        body = body[6:]
    items = [i.strip() for i in body.split(",") if i.strip()]
    if not items or "=" in items[0]:
        raise BkError("power reset needs the GPIO that switches the module's supply: power:GPIO27")
    fields: dict[str, Any] = {"power": items[0], "power_invert": True}  # on = low: high cuts the supply
    for item in items[1:]:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep and key == "invert":
            fields["power_invert"] = False  # low cuts the supply, high (or released) keeps it on
        elif sep and key in ("off", "power_off", "power-off"):
            try:
                seconds = float(value)
            except ValueError:
                raise BkError(f"power reset: off={value.strip()!r} is not a number of seconds") from None
            if not 0.1 <= seconds <= 5:
                raise BkError("power reset: off must be between 0.1 and 5 s (long enough for the module to drain)")
            fields["power_off"] = seconds
        else:
            raise BkError(f"power reset: unknown option {item!r} (use off=SECONDS or invert)")
    return GpioSpec(**fields)


def open_line(name: str, level: bool) -> OutputLine:
    return GpiodLine(name, level)


class GpioReset:
    """Pulses CEN (and every `power_every`-th round, or always without CEN, cycles the power line)."""

    def __init__(
        self,
        cen: LineRef | None = None,
        power: LineRef | None = None,
        *,
        pulse: float = 0.25,
        power_off: float = 1.0,
        cen_invert: bool = False,
        power_invert: bool = False,
        power_every: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        opener: Callable[[str, bool], OutputLine] = open_line,
    ) -> None:
        if cen is None and power is None:
            raise BkError("GPIO reset needs a CEN line or a power line")
        self.cen, self.power = cen, power
        self.pulse_s, self.power_off = pulse, power_off
        self.cen_invert, self.power_invert = cen_invert, power_invert
        self.power_every = max(1, power_every)
        self.sleep, self.opener = sleep, opener
        self.rounds = 0

    @classmethod
    def from_spec(cls, spec: GpioSpec, **kwargs: Any) -> GpioReset:
        return cls(spec.cen, spec.power, pulse=spec.pulse, power_off=spec.power_off, cen_invert=spec.cen_invert,
                   power_invert=spec.power_invert, **kwargs)

    def describe(self) -> str:
        parts = []
        if self.cen is not None:
            parts.append(f"a {self.pulse_s:g} s low pulse on CEN via {_name(self.cen)}")
        if self.power is not None and self.cen is None:
            level = "high" if self.power_invert else "low"
            parts.append(f"cutting the module's supply for {self.power_off:g} s ({_name(self.power)} {level})")
        elif self.power is not None:
            parts.append(f"a {self.power_off:g} s power cycle via {_name(self.power)}")
        return " and ".join(parts)

    # Levels: CEN released = high unless inverted; power on = high unless inverted.
    def _cen_level(self, reset: bool) -> bool:
        return reset if self.cen_invert else not reset

    def _power_level(self, on: bool) -> bool:
        return not on if self.power_invert else on

    def _open(self, ref: LineRef, level: bool) -> tuple[OutputLine, bool]:
        """(line, owned): names are requested for one pulse and released after it."""
        if isinstance(ref, str):
            return self.opener(ref, level), True
        return ref, False

    def check(self) -> None:
        """Request and release the named lines once, so a wrong name fails before linking starts."""
        for ref, level in ((self.cen, self._cen_level(False)), (self.power, self._power_level(True))):
            if isinstance(ref, str):
                line, _ = self._open(ref, level)
                line.close()

    def pulse(self) -> None:
        self.rounds += 1
        cycle_power = self.power is not None and (self.cen is None or self.rounds % self.power_every == 0)
        if cycle_power:
            assert self.power is not None
            line, owned = self._open(self.power, self._power_level(True))
            try:
                line.set(self._power_level(False))
                self.sleep(self.power_off)
                line.set(self._power_level(True))
            finally:
                if owned:
                    line.close()
            return
        assert self.cen is not None
        line, owned = self._open(self.cen, self._cen_level(False))
        try:
            line.set(self._cen_level(True))
            self.sleep(self.pulse_s)
            line.set(self._cen_level(False))
        finally:
            if owned:
                line.close()


def _name(ref: LineRef) -> str:
    return ref if isinstance(ref, str) else str(getattr(ref, "name", "a GPIO line"))
