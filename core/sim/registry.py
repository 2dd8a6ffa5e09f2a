"""Create simulated devices from options or `sim://` URLs, and share them by name in-process."""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from ..chips import FAMILIES
from ..paths import fixtures_dir
from .device import SimDevice
from .faults import FaultPlan
from .synth import synth_flash
from .timing import Timing

CHIPS = {name.lower(): name for name in FAMILIES}  # every family of core/chips.py
DEFAULT_DUMPS = {
    "BK7231N": "bk7231n-lspa9-clone-bl0937-plug.bin",
    "BK7231T": "bk7231t-feit-br30-rgbw-bulb.bin",
}

_lock = threading.Lock()
_devices: dict[str, SimDevice] = {}


def default_dump(chip: str) -> Path | None:
    fx = fixtures_dir()
    if fx is None:
        return None
    if chip not in DEFAULT_DUMPS:
        return None
    path = fx / "dumps" / DEFAULT_DUMPS[chip]
    return path if path.is_file() else None


def load_flash(chip: str, dump: str | Path | None) -> bytes:
    if dump is None:
        found = default_dump(chip)
        return found.read_bytes() if found else synth_flash(chip)
    data = Path(dump).read_bytes()
    if len(data) not in (0x100000, 0x200000, 0x400000):
        raise ValueError(f"{dump}: a simulator dump must be 1, 2 or 4 MiB, not {len(data)} bytes")
    return data


def create_device(
    chip: str = "BK7231N",
    dump: str | Path | None = None,
    scenario: str = "bootloader",
    wiring: str = "none",
    timing: bool | Timing = False,
    faults: FaultPlan | None = None,
    seed: int = 0,
    **kwargs: object,
) -> SimDevice:
    chip = CHIPS.get(chip.lower(), chip.upper())
    if chip not in FAMILIES:
        raise ValueError(f"the simulator knows {', '.join(FAMILIES)}, not {chip}")
    t = timing if isinstance(timing, Timing) else Timing(enabled=bool(timing))
    return SimDevice(
        load_flash(chip, dump), chip=chip, scenario=scenario, wiring=wiring, timing=t, faults=faults,
        seed=seed, **kwargs,  # type: ignore[arg-type]
    )


def register(name: str, device: SimDevice) -> None:
    with _lock:
        _devices[name] = device


def unregister(name: str) -> None:
    with _lock:
        _devices.pop(name, None)


def get(name: str) -> SimDevice:
    with _lock:
        if name not in _devices:
            raise KeyError(f"no simulated device named {name!r} is registered in this process")
        return _devices[name]


def from_url(url: str) -> SimDevice:
    """`sim://bk7231n?dump=F&scenario=S&wiring=rts&timing=1&seed=N&window=0.3&max_baud=B` or `sim://@name`."""
    parsed = urlparse(url)
    host = parsed.netloc or parsed.path.lstrip("/")
    if host.startswith("@"):
        return get(host[1:])
    q = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    kwargs: dict[str, object] = {}
    if "window" in q:
        kwargs["boot_window"] = float(q["window"])
    if "max_baud" in q:
        kwargs["max_baud"] = int(q["max_baud"])
    if "idle" in q:
        kwargs["idle_timeout"] = float(q["idle"])
    return create_device(
        chip=host or "bk7231n",
        dump=q.get("dump"),
        scenario=q.get("scenario", "bootloader"),
        wiring=q.get("wiring", "none"),
        timing=q.get("timing", "0") not in ("0", "", "false"),
        seed=int(q.get("seed", "0")),
        **kwargs,
    )
