"""Create simulated devices from options or `sim://` URLs, and share them by name in-process."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from ..chips import FAMILIES
from ..flash_ids import lookup
from ..paths import fixtures_dir
from .adapter import SimAdapter
from .device import SimDevice
from .efuse import default_efuse, parse_efuse, sidecar_for
from .faults import FaultPlan
from .identity import ImageIdentityError, SimIdentity, identify, normalise_chip
from .synth import synth_flash
from .timing import Timing

CHIPS = {name.lower(): name for name in FAMILIES}  # every family of core/chips.py
DEFAULT_DUMPS = {
    "BK7231N": "bk7231n-lspa9-clone-bl0937-plug.bin",
    "BK7231T": "bk7231t-feit-br30-rgbw-bulb.bin",
}

# `--realistic` / `realistic=1`: the chip runs its application after power-on and listens for a
# LinkCheck only in the boot window after a reset; a T bootloader leaves download mode when the host
# stays silent this long (PROTOCOL-DETAILS.md 6.2 gives no figure; 5 s is our choice).
T_IDLE_TIMEOUT = 5.0

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


def read_dump(dump: str | Path) -> bytes:
    """The bytes of a dump file, or one clear ImageIdentityError line (missing, directory, unreadable)."""
    path = Path(dump)
    if not path.exists():
        raise ImageIdentityError(f"{path}: no such file")
    if path.is_dir():
        raise ImageIdentityError(f"{path}: is a directory, not a flash dump")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageIdentityError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not data:
        raise ImageIdentityError(f"{path}: the file is empty")
    return data


def load_identity(chip: str | None, dump: str | Path | None) -> SimIdentity:
    """Chip identity and flash (in flash order) from a dump, the default fixture, or a synthetic image."""
    want = normalise_chip(chip)
    if dump is not None:  # any chip whose bootloader core/chips.py knows can be played from its dump
        return identify(read_dump(dump), want, source=str(dump))
    if want is not None and want not in ("BK7231N", "BK7231T"):
        # An M's flash is encrypted with its all-zero key, so an N dump (Tuya key) cannot be an M's:
        # No fixture dumps of the other families: a flash synthesised from their table row (core/sim/synth.py).
        return identify(synth_flash(want), want, source=f"synthetic {want} image")
    family = want or "BK7231N"
    found = default_dump(family)
    if found is not None:
        return identify(found.read_bytes(), want or family, source=str(found))
    if family == "BK7231N":  # no fixtures (a pipx install): the built-in demo plug, a whole stock device
        from ..demo_image import demo_flash

        return identify(demo_flash(), want or family, source="built-in demo plug")
    return identify(synth_flash(family), want or family, source="synthetic image")


def load_flash(chip: str, dump: str | Path | None) -> bytes:
    return load_identity(chip, dump).flash


def efuse_for(ident: SimIdentity, dump: str | Path | None, efuse: bytes | str | None) -> bytes:
    """eFuse contents: an explicit value, else the dump's `.efuse` sidecar, else the variant's default."""
    if efuse is not None:
        return parse_efuse(efuse, "--efuse")
    if dump is not None:
        side = sidecar_for(Path(dump))
        if side.is_file():
            return parse_efuse(side.read_bytes(), str(side))
    return default_efuse(ident.variant)


def parse_flash_id(text: str) -> tuple[int, int, int]:
    digits = text.strip().lower().removeprefix("0x").replace(" ", "")
    if len(digits) != 6:
        raise ValueError(f"flash ID {text!r}: give 3 bytes in JEDEC order, e.g. EB6015")
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        raise ValueError(f"flash ID {text!r} is not hex") from None
    return raw[0], raw[1], raw[2]


def create_device(
    chip: str | None = None,
    dump: str | Path | None = None,
    scenario: str = "bootloader",
    wiring: str = "none",
    timing: bool | Timing = False,
    faults: FaultPlan | None = None,
    seed: int = 0,
    efuse: bytes | str | None = None,
    flash_id: str | tuple[int, int, int] | None = None,
    realistic: bool = False,
    **kwargs: object,
) -> SimDevice:
    """A chip whose identity comes from the image; `chip` only where the image does not say."""
    if chip is not None:
        chip = CHIPS.get(chip.lower(), chip.upper())
        if chip not in FAMILIES:
            raise ImageIdentityError(f"the simulator knows {', '.join(FAMILIES)}, not {chip}")
    ident = load_identity(chip, dump)
    if realistic:
        scenario = "app-running" if scenario == "bootloader" else scenario
        timing = timing or True
        if ident.dialect.crc_locks_protection:  # Tuya/Beken bootloaders, not the N BootROM
            kwargs.setdefault("idle_timeout", T_IDLE_TIMEOUT)
    t = timing if isinstance(timing, Timing) else Timing(enabled=bool(timing))
    if isinstance(kwargs.get("adapter"), str):  # a family name of core/link/adapters.py
        kwargs["adapter"] = SimAdapter(str(kwargs["adapter"]))
    if flash_id is not None:
        jedec = parse_flash_id(flash_id) if isinstance(flash_id, str) else tuple(flash_id)
        part = lookup(jedec)  # type: ignore[arg-type]
        if part is not None and part.size != len(ident.flash):
            raise ImageIdentityError(
                f"flash ID {bytes(jedec).hex().upper()} is a {part.name} of {part.size >> 10} KiB, "
                f"but the image is {len(ident.flash) >> 10} KiB")
        kwargs["jedec"] = jedec
    return SimDevice(
        ident.flash, chip=ident.chip, scenario=scenario, wiring=wiring, timing=t, faults=faults,
        seed=seed, efuse=efuse_for(ident, dump, efuse), variant=ident.variant,
        **kwargs,  # type: ignore[arg-type]
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
    """`sim://bk7231n?dump=F&scenario=S&wiring=rts&timing=1&seed=N&window=0.3&max_baud=B&unplug=BYTES&adapter=A`
    or `sim://@name`; `unplug`: the adapter vanishes after that many bytes towards the host (a pulled cable);
    `adapter`: a USB-serial family of core/link/adapters.py (ft232r, ch340, cp2102, pl2303, ...)."""
    parsed = urlparse(url)
    host = parsed.netloc or parsed.path.lstrip("/")
    if host.startswith("@"):
        return get(host[1:])
    q = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    kwargs: dict[str, Any] = {}
    if "window" in q:
        kwargs["boot_window"] = float(q["window"])
    if "max_baud" in q:
        kwargs["max_baud"] = int(q["max_baud"])
    if "idle" in q:
        kwargs["idle_timeout"] = float(q["idle"])
    if "efuse" in q:
        kwargs["efuse"] = q["efuse"]
    if "flash_id" in q:
        kwargs["flash_id"] = q["flash_id"]
    if "adapter" in q:
        kwargs["adapter"] = SimAdapter(q["adapter"])
    if "unplug" in q:
        kwargs["faults"] = FaultPlan(seed=int(q.get("seed", "0")), disconnect_after=int(q["unplug"]))
    return create_device(
        chip=host or None,
        dump=q.get("dump"),
        scenario=q.get("scenario", "bootloader"),
        wiring=q.get("wiring", "none"),
        timing=q.get("timing", "0") not in ("0", "", "false"),
        realistic=q.get("realistic", "0") not in ("0", "", "false"),
        seed=int(q.get("seed", "0")),
        **kwargs,
    )
