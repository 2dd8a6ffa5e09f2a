"""Link doctor: what arrives on RX while linking, what it means, and what to do next.

`Diagnosis` (shown by the CLI, the TUI's Connect screen and in LinkError hints) is a plain dataclass:

- `kind`: one of KINDS:
  `ok` (the chip answers reliably), `waiting` (nothing decisive yet), `silent` (no byte at all),
  `app-running` (readable application log at 115200: the boot window was missed),
  `unstable` (answers sometimes, or answered then stopped: something loads RX1/TX1),
  `garbage` (unreadable bytes: baud mismatch or noise), `zero-flash` (flash reads all zeros:
  strap/boot-mode problem), `echo` (our own bytes come back: TX and RX shorted / adapter mode);
- `title`: one sentence saying what was seen;
- `advice`: what to do next, most useful first (each item one sentence);
- `evidence`: JSON-able facts behind it (byte counts, ratios, boot-log facts, pins on UART1);
- `action`: a short stable key for the first advice (check-wiring, reset-now, isolate-uart-pins,
  check-baud-noise, check-straps, fix-tx-rx-short, none, wait).

`LinkDoctor` is the incremental classifier: feed it what is sent and received (a `PortTap` around the
port does this), ask `current()` any time. `diagnose(url, ...)` runs a whole read-only check: listen,
link with the reset strategy, then probe the link and identify the chip. It never writes flash.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..client import LINK_BAUD, BkClient
from ..errors import BkError, OperationCancelled, ProtocolError
from ..ops.events import CancelToken, EventSink, LinkAttempt, Notice, Stage, null_sink
from ..protocol import LINK_CHECK_REPLY_CODE, Cmd, encode
from ..transport import open_port
from .reset import PRESETS, ResetStrategy, for_port, get_strategy

KINDS = ("ok", "waiting", "silent", "app-running", "unstable", "garbage", "zero-flash", "echo")
LINK_FRAME = encode(Cmd.LINK_CHECK)  # 01 E0 FC 01 00
REPLY_FRAME = bytes.fromhex("040E0501E0FC0100")
REPLY_HEAD = bytes.fromhex("040E05")
ZERO_FLASH_MARK = "0xB7BFA0CE"
PRINTABLE = bytes(range(0x20, 0x7F)) + b"\t\n\r"
HEAD_KEEP = 32768  # the start of a boot log holds the banner and `json cfg`
TAIL_KEEP = 4096
PROBE_CHECKS = 30
UART1 = {10: "RX1", 11: "TX1"}
_BANNER = re.compile(rb"V:BK72\d\d")


@dataclass
class Diagnosis:
    kind: str
    title: str
    advice: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    action: str = ""

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "title": self.title, "action": self.action, "advice": list(self.advice),
                "evidence": dict(self.evidence)}

    def text(self) -> str:
        lines = [self.title] + [f"  - {a}" for a in self.advice]
        return "\n".join(lines)

    def hint(self) -> str:
        """One line for a LinkAttempt or an error hint."""
        return f"{self.title} {self.advice[0]}" if self.advice else self.title


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 3) if whole else 0.0


def uart_pin_notes(cfg: dict[str, Any] | None = None, mapping: Any = None) -> list[str]:
    """Sentences naming what the device's own config puts on P10 (RX1) / P11 (TX1)."""
    from ..analysis.tuya_pins import map_user_param_key

    if mapping is None and cfg:
        try:
            mapping = map_user_param_key(cfg)
        except Exception:  # noqa: BLE001 - a half-parsed log must not break the diagnosis
            return []
    if mapping is None:
        return []
    notes = []
    for gpio, uart in UART1.items():
        pin = mapping.pins.get(gpio)
        if pin is not None:
            notes.append(f"its Tuya config puts {pin.role} ({pin.source}) on P{gpio} ({uart})")
    if getattr(mapping, "kind", "") == "tuyamcu":
        notes.append("it is a TuyaMCU design: its MCU talks on UART1 (P10/P11)")
    meter = getattr(mapping, "meter", None)
    if meter in ("HLW8032", "BL0942"):
        notes.append(f"its {meter} power meter talks on UART1 (P10/P11)")
    return notes


def uart_pins_from_dump(dump: bytes | str | Path) -> list[str]:
    """UART1 notes from a full flash dump (e.g. an earlier backup of this device)."""
    from ..analysis.dump import analyze_dump

    data = dump if isinstance(dump, (bytes, bytearray)) else Path(dump).read_bytes()
    try:
        analysis = analyze_dump(bytes(data))
    except BkError:
        return []
    return uart_pin_notes(mapping=analysis.mapping)


class LinkDoctor:
    """Incremental classifier of one link attempt. Cheap to feed: counters are kept as bytes arrive."""

    def __init__(self, strategy: ResetStrategy | None = None, pin_notes: list[str] | None = None,
                 clock=time.monotonic) -> None:
        self.strategy = strategy or PRESETS["manual"]
        self.clock = clock
        self.start = clock()
        self.pin_notes = list(pin_notes or [])
        self.head = bytearray()
        self.tail = bytearray()
        self.rx_total = 0
        self.printable = 0
        self.zeros = 0
        self.newlines = 0
        self.echo_frames = 0
        self.reply_frames = 0
        self.reply_heads = 0
        self.sent_frames = 0
        self.sent_bytes = 0
        self.text_sent = 0  # bytes of typed text (reboot), which an echo returns too
        self.resets = 0
        self.first_send: float | None = None
        self.banner_while_linking = False
        self.linked = False
        self.probe: tuple[int, int] | None = None  # (answered, tried)
        self.lost: str | None = None
        self.zero_flash: str | None = None
        self.chip: dict[str, Any] | None = None
        self._boot_cache: tuple[int, Any] = (-1, None)

    # ------------------------------------------------------------------ feeding
    def sent(self, data: bytes) -> None:
        if not data:
            return
        if self.first_send is None:
            self.first_send = self.clock()
        self.sent_bytes += len(data)
        n = bytes(data).count(LINK_FRAME)
        self.sent_frames += n
        if n * len(LINK_FRAME) != len(data):
            self.text_sent += len(data) - n * len(LINK_FRAME)

    def feed(self, data: bytes) -> None:
        if not data:
            return
        data = bytes(data)
        # Frames may straddle reads: search over the previous few bytes as well.
        joined = bytes(self.tail[-7:]) + data
        before = bytes(self.tail[-7:])
        replies = joined.count(REPLY_FRAME) - before.count(REPLY_FRAME)
        self.reply_frames += replies
        # A reply frame ends with the LinkCheck frame's bytes: only the rest are echoes of ours.
        self.echo_frames += joined.count(LINK_FRAME) - before.count(LINK_FRAME) - replies
        self.reply_heads += joined.count(REPLY_HEAD) - before.count(REPLY_HEAD)
        self.rx_total += len(data)
        self.printable += len(data) - len(data.translate(None, PRINTABLE))
        self.zeros += data.count(0)
        self.newlines += data.count(b"\n")
        if (self.first_send is not None and not self.linked and _BANNER.search(joined)
                and self.clock() - self.first_send > 0.5):
            # A boot banner while we spam LinkCheck: the chip reset but never heard us.
            self.banner_while_linking = True
        if len(self.head) < HEAD_KEEP:
            self.head += data[: HEAD_KEEP - len(self.head)]
        self.tail += data
        if len(self.tail) > TAIL_KEEP:
            del self.tail[: len(self.tail) - TAIL_KEEP]

    def reset_applied(self) -> None:
        self.resets += 1

    def link_ok(self) -> None:
        self.linked = True

    def probe_result(self, answered: int, tried: int) -> None:
        self.probe = (answered, tried)

    def link_lost(self, reason: str) -> None:
        self.lost = reason

    def flash_zero(self, message: str) -> None:
        self.zero_flash = message

    def identified(self, info: dict[str, Any]) -> None:
        self.chip = info

    def note_error(self, exc: BaseException) -> None:
        """Classify an error raised after the link came up (identify, reads)."""
        if ZERO_FLASH_MARK in str(exc) or "reads 00 00 00" in str(exc):
            self.flash_zero(str(exc))
        else:
            self.link_lost(str(exc))

    # ------------------------------------------------------------------ facts
    @property
    def elapsed(self) -> float:
        return self.clock() - self.start

    def boot_log(self):
        """parse_boot_log over what arrived (cached per byte count)."""
        if self._boot_cache[0] != self.rx_total:
            from ..analysis.bootlog import parse_boot_log

            text = bytes(self.head if self.rx_total <= HEAD_KEEP else self.head + b"\n" + self.tail)
            self._boot_cache = (self.rx_total, parse_boot_log(text.decode("latin-1")))
        return self._boot_cache[1]

    def uart_notes(self) -> list[str]:
        notes = list(self.pin_notes)
        if self.rx_total and b"json cfg" in self.head:
            for note in uart_pin_notes(self.boot_log().json_cfg):
                if note not in notes:
                    notes.append(note)
        return notes

    def evidence(self) -> dict[str, Any]:
        ev: dict[str, Any] = {
            "seconds": round(self.elapsed, 2),
            "link_checks_sent": self.sent_frames,
            "rx_bytes": self.rx_total,
            "replies": self.reply_frames,
            "printable_ratio": _ratio(self.printable, self.rx_total),
            "zero_ratio": _ratio(self.zeros, self.rx_total),
            "echoed_frames": self.echo_frames,
            "resets": self.resets,
            "reset_method": self.strategy.name,
        }
        if self.probe is not None:
            ev["probe_answered"], ev["probe_tried"] = self.probe
        if self.lost:
            ev["lost"] = self.lost
        if self.zero_flash:
            ev["zero_flash"] = self.zero_flash
        if self.chip:
            ev["chip"] = self.chip
        if self.rx_total and self._readable():
            log = self.boot_log()
            facts = {k: v for k, v in (("bootloader", log.bootloader), ("app", log.app),
                                       ("openbk", log.openbk)) if v}
            if self._openbk_seen():
                facts.setdefault("openbk", "yes")
            if facts:
                ev["boot_log"] = facts
        notes = self.uart_notes()
        if notes:
            ev["uart1_pins"] = notes
        return ev

    def _readable(self) -> bool:
        return self.rx_total >= 16 and self.printable / self.rx_total >= 0.85 and self.newlines >= 1

    def _echoing(self) -> bool:
        if self.echo_frames < 3:
            return False
        ours = self.echo_frames * len(LINK_FRAME) + min(self.text_sent, self.rx_total)
        return ours >= 0.6 * self.rx_total

    def _openbk_seen(self) -> bool:
        blob = bytes(self.head) + bytes(self.tail)
        return b"OpenBK" in blob or b"OpenBeken" in blob

    def certain(self) -> bool:
        """True once waiting longer cannot change the verdict (lets diagnose() stop early)."""
        return self._echoing() and self.echo_frames >= 10

    # ------------------------------------------------------------------ verdict
    def current(self, final: bool = False) -> Diagnosis:
        kind = self._kind(final)
        title, advice, action = getattr(self, "_advise_" + kind.replace("-", "_"))()
        return Diagnosis(kind, title, advice, self.evidence(), action)

    def _kind(self, final: bool) -> str:
        if self.zero_flash:
            return "zero-flash"
        if self._echoing():
            return "echo"
        if self.linked or self.reply_frames:
            answered, tried = self.probe if self.probe else (0, 0)
            if self.lost or (tried and answered < tried):
                return "unstable"
            return "ok" if (final or self.probe) else "waiting"
        if self.rx_total == 0:
            return "silent" if (final or self.elapsed >= 1.0) else "waiting"
        if self._readable():
            return "app-running"
        if self.reply_heads:
            return "unstable"  # reply frames arrive, mangled: the lines are loaded
        if self.rx_total < 8 and not final:
            return "waiting"
        return "garbage"

    def _reset_hint(self) -> str:
        s = self.strategy
        if s.manual:
            return "short CEN to GND for about a quarter second, or power-cycle the module (keep TX, RX and GND " \
                   "connected), while bkbench is linking"
        return f"bkbench resets it by {s.describe()}"

    def _advise_waiting(self) -> tuple[str, list[str], str]:
        if self.strategy.manual:
            return "Waiting for the chip to answer.", [self.strategy.instructions or self._reset_hint()], "wait"
        return "Waiting for the chip to answer.", [f"resetting by {self.strategy.describe()}"], "wait"

    def _advise_ok(self) -> tuple[str, list[str], str]:
        chip = self.chip or {}
        what = chip.get("chip") or "the chip"
        boot = f" ({chip['bootloader']})" if chip.get("bootloader") else ""
        extra = []
        if self.probe:
            extra.append(f"it answered {self.probe[0]} of {self.probe[1]} link checks")
        return (f"The link works: {what}{boot} answers in its bootloader.",
                ["Nothing to fix: back it up with `bkbench read` before writing anything."] + extra, "none")

    def _advise_silent(self) -> tuple[str, list[str], str]:
        advice = [
            "Check the wiring: adapter TX to RX1 (P10), adapter RX to TX1 (P11); if unsure swap TX and RX.",
            "Connect the adapter's GND to the module's GND (a common ground is required).",
            "Make sure the module is powered at all and gets a stable 3.3 V (measure it; an adapter's own "
            "3.3 V regulator is often too weak): never 5 V.",
            "Use UART1 (P10/P11): TX2 only prints a log and cannot be used to flash.",
        ]
        if self.strategy.manual:
            advice.append("Then reset the chip while bkbench is linking: " + self._reset_hint() + ".")
        elif self.resets:
            advice.append(f"{self.resets} reset(s) by {self.strategy.describe()} gave no sign of life either.")
        return "Nothing at all arrived on RX.", advice, "check-wiring"

    def _advise_app_running(self) -> tuple[str, list[str], str]:
        log = self.boot_log()
        firmware = "OpenBK" if (log.openbk or self._openbk_seen()) else ("a Tuya application" if log.app else
                                                                         "its application")
        advice = []
        if self.banner_while_linking:
            advice.append("The chip rebooted while bkbench was linking but never answered: the adapter's TX "
                          "does not reach RX1 (P10). Check that wire and anything connected to P10.")
        if self.strategy.manual:
            advice.append("Reset it now, while bkbench is linking: " + self._reset_hint() + ".")
        else:
            advice.append(f"Reset it now: the configured reset is {self.strategy.describe()}.")
            if self.strategy.steps and self.resets:
                advice.append(f"{self.resets} DTR/RTS reset(s) did not restart the chip: DTR/RTS is probably not "
                              "wired to CEN. Wire RTS to CEN, or use --reset manual and short CEN to GND by hand.")
        if firmware == "OpenBK" and not self.strategy.text:
            advice.append("It runs OpenBK: --reset reboot types `reboot` on its console, which restarts it into "
                          "the boot window.")
        elif firmware == "OpenBK" and self.strategy.text:
            advice.append("It runs OpenBK but did not reboot on `reboot`: its console may be disabled on UART1.")
        notes = self.uart_notes()
        if notes:
            advice.append("Note: " + "; ".join(notes) + ".")
        return (f"The chip is running {firmware} (its log is readable at 115200): the bootloader's short window "
                "after a reset was missed.", advice, "reset-now")

    def _advise_unstable(self) -> tuple[str, list[str], str]:
        if self.probe and self.probe[1]:
            seen = f"The chip answered only {self.probe[0]} of {self.probe[1]} link checks"
        elif self.lost:
            seen = "The chip answered the link check, then stopped answering"
        else:
            seen = "Link replies arrive, but mangled"
        notes = self.uart_notes()
        advice = [
            "Something on the board loads RX1/TX1 (P10/P11): a button, a power-meter UART or a TuyaMCU. "
            "Isolate the pin from that circuit (lift the pin or cut the trace to the module).",
            "If a button sits on P10 (as on LSPA9-like plugs), keep it untouched or hold it steady while flashing; "
            "if an MCU is on the UART, hold it in reset or disconnect it.",
            "Use short wires and a stable 3.3 V supply; desolder the module only as a last resort.",
        ]
        if notes:
            advice.insert(0, "On this device " + "; ".join(notes) + ": that is the likely culprit.")
        return seen + ": the link is unreliable.", advice, "isolate-uart-pins"

    def _advise_garbage(self) -> tuple[str, list[str], str]:
        zeros = self.rx_total and self.zeros / self.rx_total >= 0.8
        advice = [
            "Bytes arrive but are unreadable at 115200: the firmware may log at another baud rate (the bootloader "
            "always links at 115200, so resetting the chip while bkbench links still works).",
            "Check GND between adapter and module and keep the wires short: noise looks like this too.",
        ]
        if zeros:
            advice.insert(0, "Nearly all bytes are 0x00: RX is held low (a loaded or shorted TX1 line, or the "
                             "module browning out).")
        if self.strategy.manual:
            advice.append("Reset the chip while bkbench is linking: " + self._reset_hint() + ".")
        return "Unreadable bytes arrive on RX (baud mismatch or noise).", advice, "check-baud-noise"

    def _advise_zero_flash(self) -> tuple[str, list[str], str]:
        return ("The chip answers, but every flash read returns zeros (CheckCRC 0xB7BFA0CE over 257 zero bytes).", [
            "The flash is not running: a strap / boot-mode pin is wrong or the flash has no supply.",
            "Check that nothing pulls the module's pins at power-up, measure 3.3 V at the module, then power-cycle "
            "and try again.",
            "Do not write to this chip until reads return real data.",
        ], "check-straps")

    def _advise_echo(self) -> tuple[str, list[str], str]:
        return ("Every byte bkbench sends comes straight back (echo).", [
            "TX and RX are shorted or both go to the same pin: adapter TX must go to RX1 (P10) and adapter RX to "
            "TX1 (P11).",
            "Check the adapter's mode: a loopback jumper, an RS-485/half-duplex mode or a wrong voltage jumper "
            "echoes like this.",
        ], "fix-tx-rx-short")


class PortTap:
    """Wraps a serial port so the doctor sees every byte read and written; everything else passes through."""

    _own = ("_port", "_doctor")

    def __init__(self, port, doctor: LinkDoctor) -> None:
        object.__setattr__(self, "_port", port)
        object.__setattr__(self, "_doctor", doctor)

    def read(self, size: int = 1) -> bytes:
        data = self._port.read(size)
        self._doctor.feed(data)
        return data

    def write(self, data: bytes) -> int:
        self._doctor.sent(bytes(data))
        return self._port.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._port, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._port, name, value)


def _listen(tap: PortTap, seconds: float, cancel: CancelToken | None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cancel is not None and cancel.cancelled:
            raise OperationCancelled("diagnosis cancelled")
        tap.read(tap.in_waiting or 1)


def probe_link(client: BkClient, doctor: LinkDoctor, checks: int = PROBE_CHECKS) -> None:
    """Send `checks` link checks on a linked chip and count answers (a loaded RX1 loses some)."""
    answered = tried = 0
    for _ in range(checks):
        tried += 1
        try:
            reply = client.command(Cmd.LINK_CHECK, reply_code=LINK_CHECK_REPLY_CODE, timeout=0.08)
            answered += reply.payload[:1] == b"\x00"
        except ProtocolError:
            pass
        if tried - answered >= 5:
            break  # enough evidence; a loaded line would keep failing
    doctor.probe_result(answered, tried)


def diagnose(
    url: str,
    reset: str | ResetStrategy = "auto",
    seconds: float = 10.0,
    sink: EventSink = null_sink,
    dump: bytes | str | Path | None = None,
    cancel: CancelToken | None = None,
) -> Diagnosis:
    """Listen, link (resetting with `reset`), then probe and identify; read-only, never writes flash."""
    strategy = reset if isinstance(reset, ResetStrategy) else get_strategy(reset)
    notes = uart_pins_from_dump(dump) if dump is not None else []
    strategy.check()
    port = open_port(url, LINK_BAUD)
    try:
        strategy, note = for_port(strategy, port)
        if note:
            sink(Notice("warning", note))
        doctor = LinkDoctor(strategy, notes)
        tap = PortTap(port, doctor)
        client = BkClient(tap, sink)
        sink(Stage("doctor", "listening, then linking at 115200: " + (
            strategy.instructions if strategy.manual else f"resetting by {strategy.describe()}")))
        _listen(tap, min(0.4, seconds / 5), cancel)
        stop = CancelToken()
        state = {"reset": -1e9, "event": -1e9}

        def on_attempt(n: int, elapsed: float) -> None:
            if cancel is not None and cancel.cancelled:
                stop.cancel()
            # Like Session.link: a moment without reset first (the chip may already wait in its bootloader).
            if strategy.acts and elapsed >= 0.3 and elapsed - state["reset"] >= strategy.repeat_every:
                state["reset"] = elapsed
                strategy.apply(tap)
                doctor.reset_applied()
            if elapsed - state["event"] >= 0.25:
                state["event"] = elapsed
                sink(LinkAttempt(n, elapsed, doctor.current().hint()))
            if doctor.certain():
                stop.cancel()

        try:
            linked = client.link(max(0.5, seconds - min(0.4, seconds / 5)), stop, on_attempt)
        except OperationCancelled:
            if cancel is not None and cancel.cancelled:
                raise
            linked = False
        if linked:
            doctor.link_ok()
            probe_link(client, doctor)
            try:
                info = client.identify()
                doctor.identified({"chip": info.chip, "bootloader": info.bootloader, "flash": info.flash_name,
                                   "flash_size": info.flash_size})
            except BkError as exc:
                doctor.note_error(exc)
        return doctor.current(final=True)
    finally:
        port.close()
