"""Running several ports at once from the workbench: one Textual thread worker per port, each calling the
engine's `core.station.run_port` with its own CancelToken and event pump (tui/station.py).

The workers belong to the App, not to the multi-port screen, so leaving the screen (Escape) does not stop
them; the App's 10 Hz timer drains their events whether the screen is shown or not. A port the
single-port view is using (its serial log, a held session) is handed over first and given back after.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from bkbench.core.ops.events import CancelToken
from bkbench.core.station import ChipResult

from .messages import PortDone, PortsFound
from .state import AppState
from .station import PortRun, StationModel

PLANS = {  # key -> (what the port does, Plan fields)
    "openbk": ("backup + OpenBK", {"backup": True, "openbk": True}),
    "backup": ("backup", {"backup": True}),
}


class StationMixin(AppState):
    """BkBenchApp's multi-port runner; the screen is tui/screens/station.py."""

    _station_log_dir: Path | None = None  # one folder of port logs per app run

    @property
    def station(self) -> StationModel:
        if self._station is None:
            self._station = StationModel()
            self._station_timer = self.set_interval(0.1, self.drain_station)
        return self._station

    def action_station(self) -> None:
        from .screens.station import StationScreen

        if not isinstance(self.screen, StationScreen):
            self.push_screen(StationScreen())

    def station_populate(self, rescan: bool = False) -> None:
        """The ports the view lists: those given on the command line (or the demo's plugs), the one the
        single-port view uses, and the adapters found now (listed off the UI thread)."""
        model = self.station
        if len(model) and not rescan:
            return
        for url in self.station_ports:
            model.add(url, "simulated" if url.startswith("sim://@demo") else "")
        if self.url:
            model.add(self.url, "simulated" if self.demo and self.url.startswith("sim://@demo") else "")
        self.run_worker(self._station_scan, thread=True, group="station-scan", exclusive=True,
                        exit_on_error=False)

    def _station_scan(self) -> None:
        def quick() -> list[Any]:
            from bkbench.core.ports import list_ports

            return list(list_ports(check_in_use=False))

        try:
            found = list((self.ports_source or quick)())
        except Exception:  # a flaky sysfs read must not break the view
            found = []
        self.post_message(PortsFound(found))

    def on_ports_found(self, message: PortsFound) -> None:
        model = self.station
        new = [model.add(p.device, str(getattr(p, "adapter", "") or "")) for p in message.ports
               if p.device not in model.ports]
        if new:
            self._station_changed(new)

    def drain_station(self) -> None:
        if self._station is None:
            return
        changed = self._station.drain()
        if changed:
            self._station_changed(changed)

    def _station_changed(self, runs: list[PortRun]) -> None:
        from .screens.station import StationScreen

        screen = self.screen
        if isinstance(screen, StationScreen):
            screen.show_runs(runs)

    def station_busy_on(self, url: str) -> bool:
        run = self._station.find(url) if self._station is not None and url else None
        return bool(run and run.running)

    def _same_port(self, url: str) -> bool:
        """The single-port view's port, under this name or another (a by-id link)."""
        from bkbench.core.station import port_key

        return bool(self.url) and port_key(url) == port_key(self.url)

    def start_station(self, runs: list[PortRun], kind: str) -> list[PortRun]:
        """Start `kind` ("openbk", "backup") on each idle port of `runs`; the ports started."""
        what, fields = PLANS[kind]
        started = []
        for run in runs:
            if run.running:
                continue
            if self.busy and self._same_port(run.url):
                run.log(f"not started: the single-port view is running {self.op_name} on this port")
                run.state, run.error = "failed", f"busy: {self.op_name} runs on it in the single-port view"
                continue
            cancel = CancelToken()
            run.begin(what, cancel)
            self.run_worker(lambda r=run, c=cancel: self._station_worker(r, fields, c), thread=True,
                            group=f"station:{run.url}", name=f"{what} on {run.url}", exit_on_error=False)
            started.append(run)
        if started:
            self.refresh_bindings()
        return started

    def _station_worker(self, run: PortRun, fields: dict[str, Any], cancel: CancelToken) -> None:
        """Worker thread: one port's plan from link to reboot. Never raises: the outcome is its ChipResult."""
        started = time.monotonic()
        shared = self._same_port(run.url)
        try:
            from bkbench.core.station import Plan, run_port

            if shared:  # the single-port view's log (or a held session) owns this port: take it over
                self._drop_session()
                self._pause_monitor("multi-port")
            result = run_port(run.url, Plan(**fields), baud=self.baud, library=self.library, reset=self.reset,
                              on_event=run.pump.sink, cancel=cancel, log=self._station_log(run.url),
                              link_timeout=self.link_timeout)
        except Exception as exc:  # a bug must end as one failed port, not a stuck row
            result = ChipResult(run.url, "failed", error=f"unexpected error: {exc!r}",
                                seconds=time.monotonic() - started)
        finally:
            if shared:
                self._resume_monitor()
        self.post_message(PortDone(run, result))

    def _station_log(self, url: str) -> Path:
        """This port's own log file (0600, secrets masked by the engine): one folder per app run."""
        from bkbench.core.station import log_name

        if self._station_log_dir is None:
            self._station_log_dir = self.logs_dir / f"station-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        names = [log_name(r.url) for r in self.station]
        name = log_name(url)
        if names.count(name) > 1:  # two ports whose tails look alike: keep their logs apart
            name = f"{list(self.station.ports).index(url) + 1}-{name}"
        return self._station_log_dir / name

    def on_port_done(self, message: PortDone) -> None:
        run, result = message.run, message.result
        run.finish(result)
        self._station_changed([run])
        self.refresh_bindings()
        if self._station is not None and not self._station.busy:
            summary = self._station.summary()
            self.last_outcome = ("finished", f"multi-port: {summary}")
            failed = any(r.state == "failed" for r in self._station)
            self.notify(summary, title="Multi-port run finished", severity="error" if failed else "information",
                        timeout=8)

    def station_report(self) -> list[str]:
        if self._station is None:
            return []
        return [f"{r.url}: {r.state} in {r.result.seconds:.0f} s" + (f": {r.error}" if r.error else "")
                for r in self._station if r.result is not None]

    def cancel_station(self, runs: list[PortRun]) -> int:
        n = 0
        for run in runs:
            if run.running and run.cancel is not None and not run.cancel.cancelled:
                run.cancel.cancel()
                run.log("cancel requested: stopping after the current sector")
                n += 1
        return n
