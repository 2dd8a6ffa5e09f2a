"""Several chips at once: one Session per port, each in its own thread, with its own log and record.

`run_port` does a `Plan` (backup, then optionally write one image or the cached OpenBK for the chip's
family, verify, reboot: the Session's own `backup` and `write_image`, as for one chip) on one port and
never raises a BkError: a port that fails or is cancelled comes back as a `ChipResult` with one line
saying why, so the other ports are never disturbed. `Station` runs
`run_port` on every port in parallel; `port_state` turns the ordinary events into a short state
("backing up 43 %") for a live line or a table column. The CLI (`--port` given several times,
`bkbench station`) and the workbench drive the same code.
"""

from __future__ import annotations

import copy
import os
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, TextIO

from .backups import BackupLibrary
from .errors import BkError, ImageError, OperationCancelled
from .files import read_input_file
from .images.placement import Firmware, as_firmware, load_firmware, place
from .logmask import mask_secrets
from .ops.events import (
    CancelToken,
    Connected,
    Event,
    EventSink,
    LinkAttempt,
    Notice,
    OperationRecord,
    Progress,
    Retry,
    Stage,
)
from .paths import data_dir, private_dir
from .session import Session

MAX_PORTS = 64  # more threads than any USB hub holds adapters; a longer list is a mistake
MAX_PORTS_FILE = 64 * 1024


@dataclass(frozen=True)
class Plan:
    """What to do on each port, in this order."""

    backup: bool = True  # full verified backup into the library (reused if it already covers the chip)
    image: Path | None = None  # one firmware file for every chip (refused per port if it does not fit)
    openbk: bool = False  # instead of `image`: the newest cached OpenBK release for each chip's family
    verify: bool = True  # after a write, compare the whole written range with the image by CRC once more
    reboot: bool = True  # after a write, start the firmware and watch for its banner
    differential: bool = True  # write only the sectors that differ

    @property
    def writes(self) -> bool:
        return self.image is not None or self.openbk

    def describe(self) -> str:
        steps = ["backup"] if self.backup else []
        if self.writes:
            steps.append("write " + ("OpenBK" if self.openbk else Path(self.image or "").name))
            steps += ["verify"] if self.verify else []
            steps += ["reboot"] if self.reboot else []
        return " then ".join(steps) or "link only"


@dataclass
class ChipResult:
    port: str
    state: str  # "done" | "failed" | "cancelled"
    chip: str = ""
    mac: str = ""
    backup: str = ""  # library image that covers the chip (taken now or found)
    wrote: str = ""  # what was written, with the sector counts
    error: str = ""  # one line: why it failed, or what a cancel left undone
    seconds: float = 0.0
    hint: str = ""
    log: str = ""  # this port's log file
    backup_taken: bool = False  # the backup was read now (False: an existing one covers the chip)
    retries: int = 0  # exchanges repeated on the way (0 on a clean line)
    notes: list[str] = field(default_factory=list)  # warnings on the way (e.g. no boot banner seen)
    # The failed or cancelled operation's OperationRecord (what was verified, what is left), for a UI;
    # not in to_json: `error` says the same in one line.
    record: OperationRecord | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.state == "done"

    def to_json(self) -> dict:
        out = asdict(self)
        out.pop("record", None)
        out["ok"] = self.ok
        out["seconds"] = round(self.seconds, 2)
        return out


# ---------------------------------------------------------------------------------------------- ports

def port_key(port: str) -> str:
    """What makes two port arguments the same adapter: the device behind symlinks (by-id, by-path,
    serial0), or the URL itself."""
    if "://" in port:
        return port.strip()
    return os.path.realpath(os.path.expanduser(port))


def check_ports(ports: list[str]) -> list[str]:
    """The ports as given, refusing an empty list, blank entries and the same adapter twice (one line)."""
    ports = [p.strip() for p in ports]
    if not ports:
        raise BkError("no port given")
    if any(not p for p in ports):
        raise BkError("an empty port name was given")
    for p in ports:  # printed on the terminal in every line and table: no escape sequences from a file
        if any(ord(c) < 32 or ord(c) == 127 for c in p):
            raise BkError(f"port {p.encode('unicode_escape').decode()[:60]} has a control character in its name")
    if len(ports) > MAX_PORTS:
        raise BkError(f"{len(ports)} ports given; at most {MAX_PORTS} at once")
    seen: dict[str, str] = {}
    for p in ports:
        key = port_key(p)
        if key in seen:
            same = "" if seen[key] == p else f" (the same device as {seen[key]})"
            raise BkError(f"port {p} is given twice{same}; each adapter can carry one chip",
                          hint="list every adapter once")
        seen[key] = p
    return ports


def read_ports_file(path: str | os.PathLike) -> list[str]:
    """One port or URL per line; `#` starts a comment (at the line start or after a space)."""
    p = os.fspath(path)
    try:
        # utf-8-sig: a byte order mark (Notepad) is not part of the first port
        text = read_input_file(p, "ports file", MAX_PORTS_FILE).decode("utf-8-sig")
    except BkError as exc:
        raise BkError(f"ports file {exc}") from None
    except UnicodeDecodeError:
        raise BkError(f"ports file {p} is not text (one port per line)") from None
    ports = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = re.split(r"(?:^|\s)#", raw, maxsplit=1)[0].strip()
        if not line:
            continue
        if "\0" in line or any(c.isspace() for c in line):
            raise BkError(f"ports file {p}, line {n}: {line[:40]!r} is not one port name (one per line)")
        if any(ord(c) < 32 or ord(c) == 127 for c in line):
            raise BkError(f"ports file {p}, line {n}: {line[:40]!r} has a control character (one port per line)")
        ports.append(line)
    if not ports:
        raise BkError(f"ports file {p} names no port (one port or URL per line, # for comments)")
    return ports


# ---------------------------------------------------------------------------------------------- state

_PHASES = {
    "link": "linking", "identify": "identifying", "connected": "connected", "identity": "checking backups",
    "guard": "checking", "read": "backing up", "backup": "saving backup", "unprotect": "unprotecting",
    "erase": "writing", "write": "writing", "verify": "verifying", "reboot": "rebooting", "done": "finishing",
}


def port_state(event: object, current: str) -> str:
    """A short state for a live line or a table column, from the ordinary core events."""
    base = re.sub(r" \d+ %$| \d+\.\d s$", "", current)
    if isinstance(event, Stage):
        return _PHASES.get(event.name, event.name)
    if isinstance(event, Progress) and event.total:
        return f"{base or 'working'} {min(100, event.done * 100 // event.total)} %"
    if isinstance(event, LinkAttempt):
        return f"linking {event.elapsed:.1f} s"
    return current


# ---------------------------------------------------------------------------------------------- log

class PortLog:
    """This port's own log: stages, notices, retries and progress every 10 %, secrets masked, 0600."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fh: TextIO | None = None
        self._pct = -10
        self.problem = ""  # why there is no log (the work goes on without one: a log never costs a backup)
        if path is not None:
            try:
                private_dir(path.parent)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                os.fchmod(fd, 0o600)
                self._fh = os.fdopen(fd, "a", encoding="utf-8")
            except OSError as exc:
                self.path, self.problem = None, f"no log file {path}: {exc.strerror or exc}"

    def line(self, text: str) -> None:
        if self._fh is not None:
            try:
                self._fh.write(time.strftime("%H:%M:%S ") + mask_secrets(text) + "\n")
                self._fh.flush()
            except OSError as exc:  # disk full mid-run: stop logging, keep working
                self.problem = f"the log {self.path} stopped: {exc.strerror or exc}"
                self.close()

    def event(self, ev: object) -> None:
        if isinstance(ev, Stage):
            self._pct = -10
            self.line(f"[{ev.name}] {ev.message}")
        elif isinstance(ev, Notice):
            self.line(f"{ev.level}: {ev.message}")
        elif isinstance(ev, Retry):
            self.line(f"retry 0x{ev.addr:06X} (attempt {ev.attempt}): {ev.reason}")
        elif isinstance(ev, Progress) and ev.total:
            pct = ev.done * 100 // ev.total
            if pct >= self._pct + 10 or ev.done == ev.total:
                self._pct = pct
                self.line(f"  {pct:3d} % {ev.done}/{ev.total} bytes")

    def close(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            try:
                fh.close()
            except OSError:
                pass


def log_name(port: str) -> str:
    """A file name for a port: /dev/serial/by-id/usb-1a86_...-port0 -> usb-1a86_...-port0.log."""
    tail = port.split("://", 1)[-1].rstrip("/").rsplit("/", 1)[-1] or port
    return re.sub(r"[^A-Za-z0-9_.@-]", "_", tail)[:80] + ".log"


# ---------------------------------------------------------------------------------------------- images

def load_image(path: Path) -> Firmware:
    """The file of `Plan.image`, checked once before any chip is touched: readable, a firmware image
    (an OTA package converted to a UA image, as everywhere), never a full dump (a dump belongs to one
    device) and never a damaged library image."""
    fw = load_firmware(path)
    if fw.is_dump:
        raise ImageError(f"{path.name} is a full flash dump of one device; it is not written to several chips",
                         hint="restore a dump with one --port: bkbench restore -p PORT FILE")
    if fw.info.format == "raw":
        raise ImageError(f"{fw.name} is not a recognised firmware image (raw data needs a flash address; "
                         "write it with one --port and --start)")
    return fw


_openbk_lock = threading.Lock()


def openbk_for(chip: str) -> Firmware:
    """The newest cached OpenBK release's image for `chip`'s family (offline; nothing is downloaded)."""
    from .images.releases import ReleaseClient, ReleaseError

    with _openbk_lock:  # several ports of one family ask at once: one reader of the cache at a time
        try:
            result = ReleaseClient(offline=True).fetch(chip)
        except ReleaseError as exc:
            raise ImageError(f"no cached OpenBK release for {chip} ({str(exc).rstrip('.')})",
                             hint=f"download it once: bkbench fetch --chip {chip.lower()}") from None
        data = result.path.read_bytes()
    fw = as_firmware(result.asset.name, data)
    return Firmware(fw.name, fw.data, fw.info, fw.note or f"OpenBK {result.release.tag} from the cache")


# ---------------------------------------------------------------------------------------------- one port

def _own_library(library: BackupLibrary) -> BackupLibrary:
    """A per-thread handle on the same library: `problems` is per call, the files are shared safely."""
    lib = copy.copy(library)
    lib.problems = []
    return lib


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def run_port(port: str, plan: Plan, *, baud: int, library: BackupLibrary, reset: str = "auto",
             on_event: EventSink | None = None, cancel: CancelToken | None = None,
             log: Path | None = None, firmware: Firmware | None = None,
             session_hook: Callable[[Session], None] | None = None, **session_kwargs) -> ChipResult:
    """Do `plan` on one port with its own Session; blocking. Never raises a BkError: a failure comes back
    as state "failed" with one line, a cancel as "cancelled" with what is left undone.

    `log` is this port's log file; `firmware` the already loaded `plan.image` (loaded here otherwise);
    `session_hook(session)` is called once the session exists (a Station keeps it for Ctrl-C reports)."""
    t0 = time.monotonic()
    plog = PortLog(log)
    result = ChipResult(port, "failed", log=str(plog.path) if plog.path else "")
    if plog.problem:
        result.notes.append(plog.problem)

    def sink(ev: Event) -> None:
        plog.event(ev)
        if isinstance(ev, Notice) and ev.level == "warning":
            result.notes.append(ev.message)
        elif isinstance(ev, Retry):
            result.retries += 1
        if on_event is not None:
            on_event(ev)

    session: Session | None = None
    plog.line(f"bkbench station on {port}: {plan.describe()} at {baud} baud")
    try:
        lib = _own_library(library)
        if plan.writes and firmware is None and plan.image is not None:
            firmware = load_image(Path(plan.image))
        session = Session(port, baud=baud, on_event=sink, reset=reset, **session_kwargs)
        session.cancel_token = cancel
        session.backup_library = lib
        if session_hook is not None:
            session_hook(session)
        if plan.backup:
            lib.check_space()  # before the chip is touched
        info = session.connect(cancel)
        result.chip, result.mac = info.chip, info.mac or ""
        fw = write = None
        if plan.writes:  # decided before any long work: an image that does not fit fails in a second
            fw = firmware if firmware is not None else openbk_for(info.chip)
            write = place(fw, info.chip, info.flash_size)
            if fw.note:
                sink(Notice("info", fw.note))
            sink(Notice("info", f"{fw.name}: {write.description}"))
        if plan.backup and write is None:
            session.backup(lib, cancel)
        if fw is not None and write is not None:
            # The write takes (or finds) the backup first, as with one chip.
            report = session.write_image(write, cancel, backup_library=lib, backup_first=plan.backup,
                                         differential=plan.differential, verify=plan.verify, reboot=plan.reboot)
            result.wrote = f"{fw.name}: {report.summary()}"
        result.state = "done"
    except OperationCancelled as exc:
        result.state = "cancelled"
        result.error = _one_line(str(exc))
        result.record = exc.record
    except BkError as exc:
        result.state = "cancelled" if cancel is not None and cancel.cancelled else "failed"
        result.error, result.hint = _one_line(str(exc)), _one_line(exc.hint)
        result.record = exc.record
    except Exception as exc:  # noqa: BLE001 - one port's bug must not take the others down
        result.error = f"internal error: {type(exc).__name__}: {_one_line(str(exc))}"
    finally:
        if session is not None:
            if session.last_backup is not None:  # also when the write after it failed
                result.backup, result.backup_taken = str(session.last_backup.entry.path), session.last_backup.taken
            session.close()
        result.seconds = time.monotonic() - t0
        plog.line(f"result: {result.state}" + (f": {result.error}" if result.error else "")
                  + (f" (hint: {result.hint})" if result.hint else ""))
        plog.close()
        if plog.problem and plog.problem not in result.notes:
            result.notes.append(plog.problem)
    return result


# ---------------------------------------------------------------------------------------------- station

class Station:
    """Several ports in parallel (a thread per port), each with its own Session, log and record.

    `run()` blocks until every port is done (the CLI); a UI calls `start(cancel)` and polls `states`
    (port -> "backing up 43 %"), `chips`, `results` and `finished`, or follows `on_event(port, event)`,
    which is called on the worker threads. `unfinished()` says what an abort leaves on each port."""

    def __init__(self, ports: list[str], plan: Plan, *, baud: int, library: BackupLibrary, reset: str = "auto",
                 on_event: Callable[[str, object], None] | None = None, log_dir: Path | None = None,
                 **session_kwargs) -> None:
        self.ports = check_ports(list(ports))
        self.plan = plan
        self.baud = baud
        self.library = library
        self.reset = reset
        self.on_event = on_event
        self.session_kwargs = session_kwargs
        # The image is read and judged once, before any chip is touched (bad input: one line, no port busy).
        self.firmware = load_image(Path(plan.image)) if plan.image is not None else None
        stamp = time.strftime("%Y%m%dT%H%M%S")  # + pid: two stations started in one second keep apart
        self._own_log_dir = log_dir is None
        self.log_dir = Path(log_dir) if log_dir is not None else data_dir() / "logs" / f"station-{stamp}-{os.getpid()}"
        self.states: dict[str, str] = {p: "waiting" for p in self.ports}
        self.results: dict[str, ChipResult] = {}
        self.sessions: dict[str, Session] = {}
        self.chips: dict[str, str] = {}  # port -> chip family, once identified
        self.cancel: CancelToken | None = None
        self._lock = threading.Lock()

    def log_path(self, port: str) -> Path:
        name = log_name(port)
        clash = [p for p in self.ports if log_name(p) == name]
        if len(clash) > 1:  # two ports whose tails look alike: keep both logs apart
            name = f"{clash.index(port) + 1}-{name}"
        return self.log_dir / name

    def _event(self, port: str, ev: object) -> None:
        with self._lock:
            self.states[port] = port_state(ev, self.states[port])
            if isinstance(ev, Connected) and ev.info is not None:
                self.chips[port] = ev.info.chip
        if self.on_event is not None:
            self.on_event(port, ev)

    def _run_one(self, port: str, cancel: CancelToken) -> None:
        def keep(session: Session) -> None:
            with self._lock:
                self.sessions[port] = session

        try:
            res = run_port(port, self.plan, baud=self.baud, library=self.library, reset=self.reset,
                           on_event=lambda ev: self._event(port, ev), cancel=cancel, log=self.log_path(port),
                           firmware=self.firmware, session_hook=keep, **self.session_kwargs)
        except BaseException as exc:  # noqa: BLE001 - e.g. the log folder cannot be made: still a result
            res = ChipResult(port, "failed", error=f"{type(exc).__name__}: {_one_line(str(exc))}")
        with self._lock:
            self.results[port] = res
            self.states[port] = res.state

    def start(self, cancel: CancelToken | None = None) -> list[threading.Thread]:
        """Start a worker per port and return the threads (daemon: a second Ctrl-C may end the process)."""
        self.cancel = cancel = cancel or CancelToken()
        if self._own_log_dir:
            try:
                private_dir(self.log_dir.parent)  # DATA_DIR/logs holds other logs with secrets too: 0700
            except OSError:
                pass  # each port then fails with the reason when it opens its own log
        threads = [threading.Thread(target=self._run_one, args=(p, cancel), name=f"station {p}", daemon=True)
                   for p in self.ports]
        for t in threads:
            t.start()
        return threads

    def run(self, cancel: CancelToken | None = None, poll: Callable[[], None] | None = None,
            interval: float = 0.2) -> list[ChipResult]:
        """Run the plan on every port in parallel; the results in the order of `ports`. `poll()` is called
        every `interval` seconds while the ports work (a live display)."""
        threads = self.start(cancel)
        for t in threads:
            while t.is_alive():
                t.join(interval)
                if poll is not None:
                    poll()
        return [self.results[p] for p in self.ports]

    @property
    def finished(self) -> bool:
        """Every port has its result (for a UI that started the station and polls it)."""
        return len(self.results) == len(self.ports)

    def unfinished(self) -> dict[str, str]:
        """What an abort right now leaves undone on each port that was writing (a sector may be erased)."""
        with self._lock:
            sessions = dict(self.sessions)
        out = {}
        for port, s in sessions.items():
            left = s.unfinished_write()
            if left and port not in self.results:
                out[port] = left
        return out
