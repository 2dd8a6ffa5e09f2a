#!/usr/bin/env python3
"""Make the README pictures: the real workbench against the simulated chip, saved as SVG (and PNG
when `rsvg-convert` is installed) in screenshots/.

    python scripts/screenshots.py [--out screenshots] [--sizes 120x36,80x24]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bkbench.core.ports import PortInfo
from bkbench.core.sim import registry
from bkbench.core.sim.timing import Timing
from bkbench.tui.app import BkBenchApp

PORTS = [
    PortInfo("/dev/ttyUSB0", "CP2102 USB to UART Bridge", adapter="CP2102", vid=0x10C4, pid=0xEA60,
             by_id="/dev/serial/by-id/usb-Silicon_Labs_CP2102_0001-if00-port0", kind="usb"),
    PortInfo("/dev/ttyAMA0", "Raspberry Pi UART", adapter="Pi UART", kind="pi-uart"),
]


def device(name: str, timing: bool = False) -> str:
    dump = registry.default_dump("BK7231N")
    dev = registry.create_device(chip="BK7231N", dump=dump, scenario="app-running", wiring="rts",
                                 timing=Timing(enabled=timing))
    registry.register(name, dev)
    return f"sim://@{name}"


async def wait_idle(app: BkBenchApp, pilot, timeout: float = 90) -> None:
    await pilot.pause(0.3)
    end = time.monotonic() + timeout
    while app.busy and time.monotonic() < end:
        await pilot.pause(0.1)
    await pilot.pause(0.3)


def monitor_available() -> bool:
    try:
        import bkbench.core.monitor  # noqa: F401
    except ImportError:
        return False
    return True


async def shoot(out: Path, size: tuple[int, int], data: Path, fixtures: Path | None) -> list[Path]:
    w, h = size
    tag = f"{w}x{h}"
    made: list[Path] = []

    def save(app: BkBenchApp, name: str) -> None:
        path = out / f"{name}-{tag}.svg"
        app.save_screenshot(filename=path.name, path=str(out))
        made.append(path)

    # 1. idle with ports + 2. live boot log (the demo chip prints its log until reset)
    url = device(f"shot-idle-{tag}")
    app = BkBenchApp(url=url, data_dir=data / "idle", ports_source=lambda: PORTS, poll_ports=0)
    async with app.run_test(size=size) as pilot:
        if not monitor_available() and fixtures is not None:
            app.log_buffer.feed((fixtures / "bootlogs" / "bk7231n-lspa9-gray-t34-bl0937.log").read_bytes()[:3000])
        await pilot.pause(1.5)
        if w < 100:
            await pilot.press("1")
            await pilot.pause(0.2)
            save(app, "1-idle-ports")
            await pilot.press("2")
            await pilot.pause(0.2)
        else:
            save(app, "1-idle-ports")
        save(app, "2-boot-log")

    # 3. backup in progress (simulated UART timing so it takes a while)
    url = device(f"shot-backup-{tag}", timing=True)
    app = BkBenchApp(url=url, data_dir=data / "backup", ports_source=lambda: PORTS, poll_ports=0, monitor=False)
    async with app.run_test(size=size) as pilot:
        await pilot.press("b")
        end = time.monotonic() + 60
        while app.op_pane.state.done < 0x90000 and app.busy and time.monotonic() < end:
            await pilot.pause(0.1)
        if w < 100:
            await pilot.press("3")
        await pilot.pause(0.3)
        save(app, "3-backup-in-progress")
        await pilot.press("x")
        await wait_idle(app, pilot)

    # 4. write finished (an image built from the real OpenBK release, when the fixtures are there)
    url = device(f"shot-write-{tag}")
    app = BkBenchApp(url=url, data_dir=data / "write", ports_source=lambda: PORTS, poll_ports=0, monitor=False)
    image = data / "OpenBK7231N_1.18.219_UA.bin"
    if fixtures is not None and not image.exists():
        from bkbench.core.images.builders import build_from_ota

        ota = (fixtures / "firmware" / "OpenBeken-v1.18.219_bk7231n.ug.bin").read_bytes()
        image.write_bytes(build_from_ota(ota)["ua"])
    if image.exists():
        async with app.run_test(size=size) as pilot:
            await pilot.press("w")
            await pilot.pause(0.2)
            app.screen.query_one("#write-path").value = str(image)
            await pilot.press("enter")
            await pilot.pause(0.2)
            save(app, "4a-write-dialog")
            await pilot.press("ctrl+o")
            await pilot.pause(0.2)
            await pilot.press("y")
            await wait_idle(app, pilot)
            if w < 100:
                await pilot.press("4")
            await pilot.pause(0.3)
            save(app, "4-write-finished")

    # 5. a failure: the chip never answers (wrong port)
    app = BkBenchApp(url="sim://@nothing-here", data_dir=data / "fail", ports_source=lambda: PORTS,
                     poll_ports=0, monitor=False)
    async with app.run_test(size=size) as pilot:
        await pilot.press("c")
        await wait_idle(app, pilot)
        if w < 100:
            await pilot.press("4")
        await pilot.pause(0.3)
        save(app, "5-failure")
    return made


def to_png(svgs: list[Path]) -> int:
    tool = shutil.which("rsvg-convert")
    if tool is None:
        print("rsvg-convert not found (Debian: librsvg2-bin): SVG only", file=sys.stderr)
        return 0
    for svg in svgs:
        subprocess.run([tool, str(svg), "-o", str(svg.with_suffix(".png"))], check=True)
    return len(svgs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "screenshots"))
    ap.add_argument("--sizes", default="120x36,80x24")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from bkbench.core.paths import fixtures_dir

    fixtures = fixtures_dir()
    made: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.sizes.split(","):
            w, h = (int(x) for x in spec.split("x"))
            made += asyncio.run(shoot(out, (w, h), Path(tmp), fixtures))
    pngs = to_png(made)
    print(f"{len(made)} SVG, {pngs} PNG in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
