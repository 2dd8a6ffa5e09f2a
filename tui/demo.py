"""The simulated demo chip: registration, and whether real hardware is attached."""

from __future__ import annotations

import os

DEMO_NAME = "demo"
DEMO_URL = f"sim://@{DEMO_NAME}"


def _hardware_present() -> bool:
    try:
        from bkbench.core.ports import list_ports

        return any(p.kind in ("usb", "pi-uart") for p in list_ports(check_in_use=False))
    except Exception:
        return False


def setup_demo() -> str:
    """Register the simulated demo chip (prints its boot log until reset) and return its URL."""
    from bkbench.core.sim import registry

    try:
        registry.get(DEMO_NAME)
    except KeyError:
        dump = None if os.environ.get("BKBENCH_DEMO_IMAGE") == "builtin" else registry.default_dump("BK7231N")
        if dump is None:
            # No real fixture dumps (an installed copy): the built-in synthetic plug and its boot log.
            # Its boot log is synthesised from its flash like any simulated chip's (core/sim/bootlog.py); no
            # process-wide BKBENCH_BOOTLOG, which would give every other simulated chip the demo's log.
            from bkbench.core.demo_image import demo_dump_path

            dump = demo_dump_path()
        # Real wire and flash timing by default, so the demo shows honest progress (0 turns it off).
        timing = os.environ.get("BKBENCH_DEMO_TIMING", "1") != "0"
        device = registry.create_device(chip="BK7231N", dump=dump, scenario="app-running", wiring="rts",
                                        timing=timing)
        registry.register(DEMO_NAME, device)
    return DEMO_URL
