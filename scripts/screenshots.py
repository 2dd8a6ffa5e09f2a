#!/usr/bin/env python3
"""Make the README pictures: the real workbench against the simulated chip, saved as SVG (and PNG
when `rsvg-convert` is installed) in screenshots/.

Everything shown comes from the app driving the simulator: the boot log is the demo chip's UART read by
the live SerialMonitor, the failure is a real Connect on a chip that runs its firmware with no reset
wiring (the link doctor's diagnosis). The only sample data is the adapter list of the idle picture, and
that picture says so in its title.

    python scripts/screenshots.py [--out screenshots] [--sizes 120x36,80x24] [--only multi-port]
"""

from __future__ import annotations

import argparse
import asyncio
import os
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

SAMPLE_TITLE = "sample adapters (no hardware on the build machine)"
PORTS = [
    PortInfo("/dev/ttyUSB0", "CP2102 USB to UART Bridge", adapter="CP2102", vid=0x10C4, pid=0xEA60,
             by_id="/dev/serial/by-id/usb-Silicon_Labs_CP2102_0001-if00-port0", kind="usb"),
    PortInfo("/dev/ttyAMA0", "Raspberry Pi UART", adapter="Pi UART", kind="pi-uart"),
]


def device(name: str, timing: bool = False, wiring: str = "rts") -> str:
    dump = registry.default_dump("BK7231N")
    dev = registry.create_device(chip="BK7231N", dump=dump, scenario="app-running", wiring=wiring,
                                 timing=Timing(enabled=timing))
    registry.register(name, dev)
    return f"sim://@{name}"


async def wait_idle(app: BkBenchApp, pilot, timeout: float = 90) -> None:
    await pilot.pause(0.3)
    end = time.monotonic() + timeout
    while app.busy and time.monotonic() < end:
        await pilot.pause(0.1)
    await pilot.pause(0.3)


async def wait_for(pilot, cond, timeout: float = 15) -> None:
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        await pilot.pause(0.1)


async def shoot(out: Path, size: tuple[int, int], data: Path, fixtures: Path | None,
                only: str | None = None) -> list[Path]:
    w, h = size
    tag = f"{w}x{h}"
    made: list[Path] = []

    def save(app: BkBenchApp, name: str) -> None:
        path = out / f"{name}-{tag}.svg"
        app.save_screenshot(filename=path.name, path=str(out))
        made.append(path)

    if only == "multi-port":
        if fixtures is not None:
            await shoot_station(app_size=size, data=data / f"station-{tag}", fixtures=fixtures, save=save, tag=tag)
        return made
    if only == "library":
        from bkbench.tui.screens.config import ConfigScreen

        app = BkBenchApp(url=device(f"shot-lib-{tag}"), data_dir=data / f"lib-{tag}", ports_source=lambda: [],
                         poll_ports=0, monitor=False)
        async with app.run_test(size=size) as pilot:
            await pilot.press("b")
            await wait_idle(app, pilot)
            await pilot.press("e")
            await wait_idle(app, pilot)
            await wait_for(pilot, lambda: isinstance(app.screen, ConfigScreen))
            app.screen.query_one("#cfg-wifi_ssid").value = "bench-net"
            await library_after_config_write(app, pilot, save)
        return made

    # 1. idle with ports: the adapter rows are sample data, and the title says so
    url = device(f"shot-idle-{tag}")
    app = BkBenchApp(url=url, data_dir=data / "idle", ports_source=lambda: PORTS, poll_ports=0, monitor=False)
    async with app.run_test(size=size) as pilot:
        app.title = f"bkbench · {SAMPLE_TITLE}"
        app.query_one("#pane-ports").border_title = f"1 Ports: {SAMPLE_TITLE}"
        await pilot.pause(0.3)
        if w < 100:
            await pilot.press("1")
            await pilot.pause(0.2)
        save(app, "1-idle-ports")

    # 2. live boot log: the demo chip's UART read by the SerialMonitor (reset it so the banner shows)
    url = device(f"shot-log-{tag}")
    app = BkBenchApp(url=url, data_dir=data / "log", ports_source=lambda: [], poll_ports=0)
    async with app.run_test(size=size) as pilot:
        from bkbench.tui.widgets.seriallog import SerialLog

        view = app.query_one(SerialLog)
        await wait_for(pilot, lambda: any(x.kind == "boot" for x in view.lines))
        await wait_for(pilot, lambda: len(view.lines) > 40, timeout=6)
        if w < 100:
            await pilot.press("2")
        await pilot.pause(0.3)
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

    # 4. the firmware picker on a folder holding the UG packages tuya-cloudcutter ships (the N one is picked
    # and converted to a UA image on the spot; the T one is greyed out), then the write finished
    url = device(f"shot-write-{tag}")
    app = BkBenchApp(url=url, data_dir=data / f"write-{tag}", ports_source=lambda: PORTS, poll_ports=0)
    home = data / f"home-{tag}"
    folder = home / "firmware"
    n_ug = "OpenBeken-v1.18.219_bk7231n.ug.bin"
    if fixtures is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for name in (n_ug, "OpenBeken-v1.18.219_bk7231t.ug.bin"):
            shutil.copyfile(fixtures / "firmware" / name, folder / name)
    if (folder / n_ug).exists():
        old_home, old_cwd = os.environ.get("HOME"), os.getcwd()
        os.environ["HOME"] = str(home)  # the picker shows the folder as ~/firmware
        os.chdir(folder)
        try:
            async with app.run_test(size=size) as pilot:
                from bkbench.tui.screens.write import WriteScreen

                await pilot.press("c")
                await wait_idle(app, pilot)
                await pilot.press("w")
                await wait_for(pilot, lambda: isinstance(app.screen, WriteScreen))
                screen = app.screen
                await wait_for(pilot, lambda: len(screen.verdicts) == 2, timeout=120)
                for _ in range(4):  # arrow down to the N package, Enter: converted on the spot
                    node = screen.query_one("#write-tree").cursor_node
                    if node is not None and node.data is not None and node.data.path.name == n_ug:
                        break
                    await pilot.press("down")
                await pilot.press("enter")
                await wait_for(pilot, lambda: screen.request is not None, timeout=120)
                screen.query_one("#write-tree").focus()
                await pilot.pause(0.3)
                save(app, "4a-write-dialog")
                await pilot.press("ctrl+o")
                await pilot.pause(0.2)
                await pilot.press("y")
                await wait_idle(app, pilot)
                if w < 100:
                    await pilot.press("2")  # the chip boots OpenBK: its banner in the log
                await pilot.pause(1.0)
                save(app, "4-write-finished")
        finally:
            os.chdir(old_cwd)
            if old_home is None:
                os.environ.pop("HOME", None)
            else:
                os.environ["HOME"] = old_home

    # 5. a realistic failure: Connect on a chip running its firmware, no reset wiring (auto reset cannot
    # reach CEN): the link doctor says what it saw and what to do
    url = device(f"shot-fail-{tag}", wiring="none")
    app = BkBenchApp(url=url, data_dir=data / "fail", ports_source=lambda: [], poll_ports=0, monitor=False,
                     link_timeout=6)
    async with app.run_test(size=size) as pilot:
        await pilot.press("c")
        await wait_idle(app, pilot)
        if w < 100:
            await pilot.press("4")
        await pilot.pause(0.3)
        save(app, "5-failure")

    # 6. analysis of a backup + 7. the OpenBK config editor (demo chip)
    url = device(f"shot-cfg-{tag}")
    app = BkBenchApp(url=url, data_dir=data / "cfg", ports_source=lambda: [], poll_ports=0, monitor=False)
    async with app.run_test(size=size) as pilot:
        from bkbench.tui.screens.analysis import AnalysisScreen
        from bkbench.tui.screens.config import ConfigScreen

        await pilot.press("b")
        await wait_idle(app, pilot)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, AnalysisScreen))
        await pilot.pause(0.3)
        save(app, "6-analysis")
        await pilot.press("q")
        await pilot.press("e")
        await wait_idle(app, pilot)
        await wait_for(pilot, lambda: isinstance(app.screen, ConfigScreen))
        screen = app.screen
        for field, value in (("wifi_ssid", "bench-net"), ("wifi_pass", "example-only"),
                             ("mqtt_host", "192.168.1.20"), ("mqtt_userName", "homeassistant")):
            screen.query_one(f"#cfg-{field}").value = value
        await pilot.press("ctrl+t")
        await pilot.pause(0.3)
        save(app, "7-config-editor")
        # 9. the library after that config write: the read backup (the original) and the derived entry the
        # write left, each with the firmware its image holds
        await library_after_config_write(app, pilot, save)

    # 8. the multi-port view mid-run: one plug already writing OpenBK, two backing up (started later),
    # one whose adapter was unplugged mid-read (failed), each with its own map and log
    if fixtures is not None:
        await shoot_station(app_size=size, data=data / f"station-{tag}", fixtures=fixtures, save=save, tag=tag)
    return made


async def library_after_config_write(app: BkBenchApp, pilot, save) -> None:
    from bkbench.tui.screens.backups import BackupsScreen
    from bkbench.tui.screens.confirm import ConfirmScreen

    await pilot.press("ctrl+o")
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    await pilot.press("y")
    await wait_idle(app, pilot)
    await pilot.press("l")
    await wait_for(pilot, lambda: isinstance(app.screen, BackupsScreen) and app.screen.report is not None
                   and len(app.screen.label) == len(app.screen.entries), timeout=60)
    await pilot.pause(0.3)
    save(app, "9-library")


async def shoot_station(app_size: tuple[int, int], data: Path, fixtures: Path, save, tag: str) -> None:
    from bkbench.core.sim.faults import FaultPlan
    from bkbench.tui.demo import seed_demo_openbk
    from bkbench.tui.screens.confirm import ConfirmScreen
    from bkbench.tui.screens.station import StationScreen

    os.environ["BKBENCH_CACHE_DIR"] = str(data / "cache")  # the demo's offline OpenBK, not the user's cache
    seed_demo_openbk()
    urls = []
    for i, (dump, faults) in enumerate((
        ("bk7231n-lspa9-clone-bl0937-plug.bin", None),
        ("bk7231t-feit-br30-rgbw-bulb.bin", None),
        ("bk7231n-mirabella-genio-i003632-plug.bin", None),
        ("bk7231t-globe-37783-rgbct-bulb.bin", FaultPlan(disconnect_after=700_000)),
    )):
        dev = registry.create_device(dump=fixtures / "dumps" / dump, scenario="app-running", wiring="rts",
                                     timing=Timing(enabled=True), faults=faults)
        registry.unregister(f"plug{i + 1}")  # the previous size's plugs
        registry.register(f"plug{i + 1}", dev)
        urls.append(f"sim://@plug{i + 1}")
    app = BkBenchApp(url=urls[0], ports=urls, data_dir=data, ports_source=lambda: [], poll_ports=0, monitor=False)
    async with app.run_test(size=app_size) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, StationScreen))
        runs = list(app.station)

        async def run_openbk() -> None:
            await pilot.press("o")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await wait_for(pilot, lambda: isinstance(app.screen, StationScreen))

        await run_openbk()  # nothing selected: the highlighted (first) port
        await wait_for(pilot, lambda: runs[0].op.done > 0x100000 and runs[0].state.startswith("backing"), 90)
        await pilot.press("down", "space", "down", "space", "down", "space", "up", "up", "up")
        await run_openbk()
        await wait_for(pilot, lambda: runs[0].state.startswith("writing") and runs[0].op.done > 0x30000
                       and runs[3].state.startswith("failed"), 120)
        await pilot.pause(0.5)
        save(app, "8-multi-port")
        await pilot.press("X")
        await wait_for(pilot, lambda: not app.station.busy, 60)


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
    ap.add_argument("--only", choices=["multi-port", "library"], help="make only this picture")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from bkbench.core.paths import fixtures_dir

    fixtures = fixtures_dir()
    made: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.sizes.split(","):
            w, h = (int(x) for x in spec.split("x"))
            made += asyncio.run(shoot(out, (w, h), Path(tmp), fixtures, args.only))
    pngs = to_png(made)
    print(f"{len(made)} SVG, {pngs} PNG in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
