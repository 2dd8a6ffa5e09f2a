"""Link doctor: what arrives on RX while linking, what it means, and what to do next.

`Diagnosis` (shown by the CLI, the TUI's Connect screen and in LinkError hints) is a plain dataclass:

- `kind`: one of KINDS:
  `ok` (the chip answers reliably), `waiting` (nothing decisive yet), `silent` (no byte at all over a
  window long enough to hear a quiet application), `app-running` (readable application log at 115200: the
  boot window was missed), `brown-out` (the chip restarts by itself: banner after banner, or a restart in
  the middle of a flash command: weak supply), `rx1-blocked` (the chip restarted while link checks were on
  the wire but never answered: nothing reaches RX1, e.g. a board holding it low), `unstable` (answers
  sometimes, or answered then stopped: something loads RX1/TX1), `garbage` (unreadable bytes: baud
  mismatch or noise), `zero-flash` (flash reads all zeros: strap/boot-mode problem), `echo` (our own bytes
  come back: TX and RX shorted / adapter mode);
- `title`: one sentence saying what was seen;
- `advice`: what to do next, most useful first (each item one sentence, none repeating another);
- `evidence`: JSON-able facts behind it (byte counts, restarts, boot-log facts, parts on UART1);
- `action`: a short stable key for the first advice (check-wiring, reset-now, fix-supply, free-rx1,
  isolate-uart-pins, check-baud-noise, check-straps, fix-tx-rx-short, none, wait).

A verdict only uses what the evidence covers: "silent" needs a window longer than a quiet application's
heartbeat (QUIET_S) or a prior capture (the workbench's serial log) that says otherwise; live advice says
what to do now ("reset it now"), the final one what to do after the window ended (run it again, wire a
reset, `power:GPIOn`).

`LinkDoctor` is the incremental classifier: feed it what is sent and received (a `PortTap` around the
port does this), ask `current()` any time. `diagnose(url, ...)` runs a whole read-only check: listen,
link with the reset strategy, then probe the link, identify the chip and keep its flash busy with a few
CRCs (a weak supply shows there). It never writes flash.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..client import LINK_BAUD, BkClient
from ..errors import BkError, OperationCancelled, ProtocolError
from ..layout import BLOCK, BOOTLOADER_END
from ..ops.events import CancelToken, EventSink, LinkAttempt, Notice, Stage, null_sink
from ..protocol import LINK_CHECK_REPLY_CODE, Cmd, encode
from ..transport import open_port
from . import uart1
from .adapters import AdapterFamily, family_for_url
from .capture import RxCapture
from .reset import MANUAL_TEXT, PRESETS, ResetStrategy, adapter_note, for_port, format_sequence, get_strategy

KINDS = ("ok", "waiting", "silent", "app-running", "brown-out", "rx1-blocked", "unstable", "garbage", "zero-flash",
         "echo")
LINK_FRAME = encode(Cmd.LINK_CHECK)  # 01 E0 FC 01 00
REPLY_FRAME = bytes.fromhex("040E0501E0FC0100")
REPLY_HEAD = bytes.fromhex("040E05")
ZERO_FLASH_MARK = "0xB7BFA0CE"
PRINTABLE = bytes(range(0x20, 0x7F)) + b"\t\n\r"
HEAD_KEEP = 32768  # the start of a boot log holds the banner and `json cfg`
TAIL_KEEP = 4096
PROBE_CHECKS = 30
# CRCs that keep the flash busy: the first three 64 KiB blocks after the bootloader
FLASH_PROBE = tuple((BOOTLOADER_END + i * BLOCK, BLOCK) for i in range(3))
UART1 = uart1.UART1
_BANNER = re.compile(rb"V:BK72\d\d")
# A stock Tuya application prints a heartbeat every few seconds once booted (the simulator every 5 s): no
# byte for less than this says nothing about the wiring.
QUIET_S = 6.0
PRIOR_FRESH_S = 300.0  # a readable line in the workbench's serial log this recent: the chip was running
EXPLAIN_S = 1.5  # a banner this soon after one of our resets is that reset's doing
LOOP_MIN = 3  # banners nobody asked for, each within LOOP_GAP_S of the previous: a boot loop
LOOP_GAP_S = 3.0
AFTER_LOSS_S = 1.2  # after the chip stopped answering: listen this long for its boot banner
RESET_BY_HAND = ("short CEN to GND for about a quarter second, or power-cycle the module (keep TX, RX and GND "
                 "connected)")
POWER_OFFER = "a Pi GPIO that cuts the module's 3.3 V (--reset power:GPIO27; README: Wiring a module)"


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

    def text(self, width: int | None = None) -> str:
        """Title and one bullet per advice; wrapped with a hanging indent when `width` is given."""
        if width is None:
            return "\n".join([self.title] + [f"  - {a}" for a in self.advice])
        import textwrap

        lines = textwrap.wrap(self.title, width) or [""]
        for a in self.advice:
            lines += textwrap.wrap(a, width, initial_indent="  - ", subsequent_indent="    ",
                                   break_on_hyphens=False, break_long_words=False)
        return "\n".join(lines)

    def hint(self) -> str:
        """One line for a LinkAttempt or an error hint."""
        return f"{self.title} {self.advice[0]}" if self.advice else self.title


def _times(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 3) if whole else 0.0


def uart_pin_notes(cfg: dict[str, Any] | None = None, mapping: Any = None,
                   source: str = "its Tuya config") -> list[str]:
    """Sentences naming the parts the device's own config puts on P10 (RX1) / P11 (TX1)."""
    parts = uart1.parts_from_mapping(mapping, source) if mapping is not None else uart1.parts_from_cfg(cfg, source)
    return [f"{source} puts {p.sentence()}" for p in parts]


def uart_pins_from_dump(dump: bytes | str | Path) -> list[str]:
    """UART1 notes from a full flash dump (e.g. an earlier backup of this device)."""
    return [f"{p.source} puts {p.sentence()}" for p in uart1.parts_from_dump(dump)]


class LinkDoctor:
    """Incremental classifier of one link attempt. Cheap to feed: counters are kept as bytes arrive.

    `parts`: what a dump says sits on UART1 (uart1.Uart1Part, or sentences from older callers); `prior`:
    what the port showed before (the workbench's serial log); `rerun`: the command that repeats this check,
    named in the final advice; `adapter`: the USB adapter's family (adapters.py)."""

    def __init__(self, strategy: ResetStrategy | None = None, pin_notes: list[Any] | None = None,
                 clock=time.monotonic, prior: RxCapture | None = None, rerun: str | None = None,
                 adapter: AdapterFamily | None = None, rerun_manual: str | None = None) -> None:
        self.strategy = strategy or PRESETS["manual"]
        self.clock = clock
        self.start = clock()
        notes = list(pin_notes or [])
        self.parts = [n for n in notes if isinstance(n, uart1.Uart1Part)]
        self.pin_notes = [n for n in notes if isinstance(n, str)]
        self.prior = prior
        self.rerun = rerun
        self.rerun_manual = rerun_manual  # the same check with --reset manual
        self.adapter = adapter
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
        self.reset_times: list[float] = []
        self.banners: list[float] = []  # when each boot banner arrived
        self.first_send: float | None = None
        self.last_rx: float | None = None
        self.linked = False
        self.probe: tuple[int, int] | None = None  # (answered, tried)
        self.flash_probe: tuple[int, int] | None = None
        self.lost: str | None = None
        self.lost_at: float | None = None
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
        now = self.clock()
        # Frames may straddle reads: search over the previous few bytes as well (7 bytes cannot hold a
        # whole frame or banner, so nothing is counted twice).
        joined = bytes(self.tail[-7:]) + data
        before = bytes(self.tail[-7:])
        replies = joined.count(REPLY_FRAME) - before.count(REPLY_FRAME)
        self.reply_frames += replies
        # A reply frame ends with the LinkCheck frame's bytes: only the rest are echoes of ours.
        self.echo_frames += joined.count(LINK_FRAME) - before.count(LINK_FRAME) - replies
        self.reply_heads += joined.count(REPLY_HEAD) - before.count(REPLY_HEAD)
        self.banners += [now] * len(_BANNER.findall(joined))
        self.rx_total += len(data)
        self.printable += len(data) - len(data.translate(None, PRINTABLE))
        self.zeros += data.count(0)
        self.newlines += data.count(b"\n")
        self.last_rx = now
        if len(self.head) < HEAD_KEEP:
            self.head += data[: HEAD_KEEP - len(self.head)]
        self.tail += data
        if len(self.tail) > TAIL_KEEP:
            del self.tail[: len(self.tail) - TAIL_KEEP]

    def reset_applied(self) -> None:
        self.resets += 1
        self.reset_times.append(self.clock())

    def link_ok(self) -> None:
        self.linked = True

    def probe_result(self, answered: int, tried: int) -> None:
        self.probe = (answered, tried)

    def flash_probe_result(self, answered: int, tried: int) -> None:
        self.flash_probe = (answered, tried)

    def link_lost(self, reason: str) -> None:
        self.lost = reason
        if self.lost_at is None:
            self.lost_at = self.clock()

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

    def uart_parts(self) -> list[uart1.Uart1Part]:
        """What sits on P10/P11: from a dump, from this run's boot log, from the serial log seen before."""
        seen = []
        if self.rx_total and (b"json cfg" in self.head or b"] - pin:" in self.head):
            seen = uart1.parts_from_boot_log(bytes(self.head))
        before = []
        if self.prior is not None and self.prior.total:
            before = uart1.parts_from_boot_log(self.prior.text(), "its boot log (serial log)")
        return uart1.merge(self.parts, seen, before)

    def uart_notes(self) -> list[str]:
        notes = list(self.pin_notes)
        parts = self.uart_parts()
        if parts:
            notes.append(uart1.describe(parts))
        return notes

    def _explained(self, t: float) -> bool:
        # A banner needs the chip to come out of reset first: one arriving with the reset is older.
        return any(0.02 < t - r <= EXPLAIN_S for r in self.reset_times)

    def unasked_restarts(self) -> list[float]:
        """Banners no reset of ours explains (a user resetting by hand makes these too, but not in a loop)."""
        return [t for t in self.banners if not self._explained(t)]

    def boot_loop(self) -> int:
        """Length of the longest run of unasked restarts, each within LOOP_GAP_S of the previous."""
        times = self.unasked_restarts()
        best = run = 1 if times else 0
        for a, b in zip(times, times[1:]):
            run = run + 1 if b - a <= LOOP_GAP_S else 1
            best = max(best, run)
        return best

    def restarts_while_linking(self) -> int:
        """Boot banners that arrived while link checks were on the wire and before any answer."""
        if self.first_send is None or self.linked:
            return 0
        # The log the chip was printing when the port opened may still be arriving just after the first
        # link check: a banner counts when a reset of ours explains it, or once that log is surely over.
        first = self.first_send
        return sum(1 for t in self.banners if t >= first and (self._explained(t) or t - first > 0.5))

    def restart_after_loss(self) -> bool:
        return self.lost_at is not None and any(t >= self.lost_at for t in self.banners)

    def prior_alive(self) -> float | None:
        """Age in seconds of the last readable line the serial log showed before this check, if fresh."""
        if self.prior is None or not self.prior.readable():
            return None
        age = self.prior.age()
        if age is None or age > PRIOR_FRESH_S:
            return None
        return age

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
            "boot_banners": len(self.banners),
            "unasked_restarts": len(self.unasked_restarts()),
        }
        if self.last_rx is not None:
            ev["quiet_for"] = round(self.clock() - self.last_rx, 2)
        if self.probe is not None:
            ev["probe_answered"], ev["probe_tried"] = self.probe
        if self.flash_probe is not None:
            ev["flash_probe_answered"], ev["flash_probe_tried"] = self.flash_probe
        if self.lost:
            ev["lost"] = self.lost
        if self.zero_flash:
            ev["zero_flash"] = self.zero_flash
        if self.chip:
            ev["chip"] = self.chip
        if self.adapter is not None:
            ev["adapter"] = self.adapter.name
        age = self.prior_alive()
        if age is not None:
            ev["serial_log_seconds_ago"] = round(age, 1)
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
        # Text arrives from the middle of a line when the port opens mid-line: a printable fragment counts.
        return self.rx_total >= 16 and self.printable / self.rx_total >= 0.85

    def _echoing(self) -> bool:
        if self.echo_frames < 3:
            return False
        ours = self.echo_frames * len(LINK_FRAME) + min(self.text_sent, self.rx_total)
        return ours >= 0.6 * self.rx_total

    def _openbk_seen(self) -> bool:
        blob = bytes(self.head) + bytes(self.tail)
        if self.prior is not None:
            blob += self.prior.text()
        return b"OpenBK" in blob or b"OpenBeken" in blob

    def certain(self) -> bool:
        """True once waiting longer cannot change the verdict (lets diagnose() stop early)."""
        return self._echoing() and self.echo_frames >= 10

    # ------------------------------------------------------------------ verdict
    def current(self, final: bool = False) -> Diagnosis:
        """The verdict now; `final` once the window is over (advice then says how to repeat the check)."""
        kind = self._kind(final)
        title, advice, action = getattr(self, "_advise_" + kind.replace("-", "_"))(final)
        if final and kind != "ok" and not any(a.startswith("Run ") for a in advice):
            advice.append(self._again(True, " after each change"))
        ev = self.evidence()
        ev["final"] = final
        return Diagnosis(kind, title, advice, ev, action)

    def _kind(self, final: bool) -> str:
        if self.zero_flash:
            return "zero-flash"
        if self._echoing():
            return "echo"
        if self.boot_loop() >= LOOP_MIN or self.restart_after_loss():
            return "brown-out"
        if self.linked or self.reply_frames:
            answered, tried = self.probe if self.probe else (0, 0)
            if self.lost or (tried and answered < tried):
                return "unstable"
            return "ok" if (final or self.probe) else "waiting"
        if self.rx_total == 0:
            if self.prior_alive() is not None:
                return "app-running"
            return "silent" if (final or self.elapsed >= QUIET_S) else "waiting"
        if self._readable():
            return "rx1-blocked" if self.restarts_while_linking() else "app-running"
        if self.reply_heads:
            return "unstable"  # reply frames arrive, mangled: the lines are loaded
        if self.rx_total < 8 and not final:
            return "waiting"
        return "garbage"

    # ------------------------------------------------------------------ advice pieces
    def _again(self, final: bool, what: str = "") -> str:
        """How to repeat the check once this window is over ("" while it still runs)."""
        if not final:
            return ""
        cmd = f"Run `{self.rerun}` again" if self.rerun else "Run the command again"
        return f"{cmd}{what}."

    def _rerun_manual(self) -> str:
        """The rerun, told to use a manual reset (the configured one did not restart the chip)."""
        if self.rerun_manual and not self.strategy.manual:
            return f"Run `{self.rerun_manual}` and reset the chip by hand while it links: {RESET_BY_HAND}."
        return self._again(True, " and reset the chip while it links: " + RESET_BY_HAND)

    def _family_wiring(self) -> str:
        return f" ({self.adapter.vendor.name}: {self.adapter.vendor.wiring})" if self.adapter is not None else ""

    def _rx1_note(self, lead: str) -> str:
        parts = [p for p in self.uart_parts() if p.gpio == 10]
        return f"{lead}{uart1.describe(parts)}" if parts else ""

    # ------------------------------------------------------------------ advice per verdict
    def _advise_waiting(self, final: bool) -> tuple[str, list[str], str]:
        if self.rx_total == 0 and self.elapsed >= 1.0:
            title = ("Nothing on RX yet: a running application may print only every few seconds, so bkbench keeps "
                     "listening.")
        else:
            title = "Waiting for the chip to answer."
        if self.strategy.manual:
            todo = self.strategy.instructions or MANUAL_TEXT
            return title, [todo[0].upper() + todo[1:].rstrip(".") + "."], "wait"
        return title, [f"bkbench resets it every {self.strategy.repeat_every:g} s (--reset {self.strategy.name})."], \
            "wait"

    def _advise_ok(self, final: bool) -> tuple[str, list[str], str]:
        chip = self.chip or {}
        what = chip.get("chip") or "the chip"
        boot = f" ({chip['bootloader']})" if chip.get("bootloader") else ""
        extra = []
        if self.probe:
            extra.append(f"It answered {self.probe[0]} of {self.probe[1]} link checks")
        if self.flash_probe:
            extra.append(f"and {self.flash_probe[0]} of {self.flash_probe[1]} flash CRCs")
        return (f"The link works: {what}{boot} answers in its bootloader.",
                ["Nothing to fix: back it up with `bkbench read` before writing anything."]
                + ([" ".join(extra) + "."] if extra else []), "none")

    def _advise_silent(self, final: bool) -> tuple[str, list[str], str]:
        advice = [
            "Check the wiring: adapter TX to RX1 (P10), adapter RX to TX1 (P11); if unsure, swap TX and RX.",
            "Connect the adapter's GND to the module's GND (a common ground is required).",
            "Make sure the module is powered at all and gets a stable 3.3 V (measure it; an adapter's own "
            "regulator is often too weak): never 5 V.",
            "Use UART1 (P10/P11): TX2 only prints a log and cannot be used to flash.",
        ]
        if self.elapsed < QUIET_S:
            advice.append(f"It listened only {self.elapsed:.0f} s: a quiet application prints every few seconds, "
                          "so listen longer (--seconds 10).")
        if not self.strategy.manual and self.resets:
            advice.append(f"{_times(self.resets, 'reset')} (--reset {self.strategy.name}) gave no sign of life either.")
        if self.strategy.manual:
            advice.append(self._again(final, " and reset the chip while it links: " + RESET_BY_HAND)
                          or "Then reset the chip: " + RESET_BY_HAND + ".")
        elif final:
            advice.append(self._again(final, " after each change"))
        return f"Nothing at all arrived on RX in {self.elapsed:.0f} s.", advice, "check-wiring"

    def _advise_app_running(self, final: bool) -> tuple[str, list[str], str]:
        log = self.boot_log() if self.rx_total else None
        openbk = bool((log is not None and log.openbk) or self._openbk_seen())
        tuya = bool(log is not None and log.app) or (self.prior is not None and b"TUYA" in self.prior.text())
        firmware = "OpenBK" if openbk else ("a Tuya application" if tuya else "its application")
        age = self.prior_alive() if self.rx_total == 0 else None
        if age is not None:
            title = (f"The chip is running {firmware}: the serial log showed it {age:.0f} s ago, and it printed "
                     "nothing during this check.")
        elif final:
            title = (f"The chip is running {firmware} (its log is readable at 115200): it never restarted into its "
                     "bootloader while bkbench linked.")
        else:
            title = (f"The chip is running {firmware} (its log is readable at 115200): the bootloader's short "
                     "window after a reset was missed.")
        s = self.strategy
        lines_tried = bool(s.steps) and self.resets
        power = getattr(s.actuator, "power", None) is not None and getattr(s.actuator, "cen", None) is None
        advice = []
        if power and self.resets:
            advice.append(f"{_times(self.resets, 'power cycle')} by {s.describe()} did not restart it (no new banner): "
                          "check the transistor and its wiring; a longer off time (off=2) lets the module's "
                          "capacitors drain, and the adapter's idle-high TX can keep a module half-powered "
                          "through RX1 (a 1 kΩ resistor in that line limits it).")
        elif lines_tried:
            advice.append(f"{_times(self.resets, 'reset')} by the DTR/RTS sequence {format_sequence(s.steps)} did "
                          f"not restart it: DTR/RTS is probably not wired to CEN{self._family_wiring()}.")
        if final:
            advice.append(self._rerun_manual() if not s.manual or self.rerun else self._again(
                True, " and reset the chip while it links: " + RESET_BY_HAND))
        elif s.manual or lines_tried or power:
            advice.append("Reset it now, by hand: " + RESET_BY_HAND + ".")
        else:
            advice.append(f"bkbench resets it every {s.repeat_every:g} s (--reset {s.name}).")
        if final and not power:
            advice.append("Or let bkbench reset it: RTS or DTR to CEN (then --reset auto works), or " + POWER_OFFER
                          + ".")
        if openbk and not s.text:
            advice.append("It runs OpenBK: --reset reboot types `reboot` on its console, which restarts it into "
                          "the boot window.")
        elif openbk:
            advice.append("It runs OpenBK but did not restart on `reboot`: its console may be off on UART1.")
        note = self._rx1_note("If a restart still brings no answer, suspect RX1: ")
        if note:
            advice.append(note + ".")
        return title, advice, "reset-now"

    def _advise_rx1_blocked(self, final: bool) -> tuple[str, list[str], str]:
        n = self.restarts_while_linking()
        advice = []
        note = self._rx1_note("")
        if note:
            advice.append(note[0].upper() + note[1:] + ": that circuit holds RX1 low or loads it, so the link "
                          "checks never reach the chip.")
        advice += [
            "Measure P10 against GND with everything connected and idle: about 3.3 V is right, near 0 V means "
            "the board holds RX1 low.",
            "Check the wire from the adapter's TX to RX1 (P10); if unsure, swap TX and RX.",
            "Free RX1: disconnect what loads it (remove the button's resistor or capacitor, cut its trace, or "
            "lift the module's P10 pin); desolder the module only as a last resort.",
        ]
        if final:
            advice.append(self._again(True, " after each change"))
        return (f"The chip restarted {_times(n, 'time')} while bkbench sent link checks but never answered: the "
                "adapter's TX does not reach RX1 (P10).", advice, "free-rx1")

    def _advise_brown_out(self, final: bool) -> tuple[str, list[str], str]:
        if self.restart_after_loss():
            title = ("The chip answered, then restarted while its flash was busy (a boot banner followed): its "
                     "3.3 V supply collapses under load (brown-out).")
        else:
            loop = self.boot_loop()
            title = (f"The chip restarts by itself again and again ({loop} boot banners, no reset from bkbench): "
                     "its 3.3 V supply collapses (brown-out).")
        advice = [
            "Power the module from its own 3.3 V supply of at least 300 mA (a bench supply, or an AMS1117-type "
            "regulator from 5 V), not from the adapter's 3V3 pin.",
            "Join the GNDs of that supply, the adapter and the module.",
            "Keep power wires short; 100 µF or more across VCC and GND at the module helps.",
            "In-circuit, the relay, LEDs and meter share that rail: power the module alone if you can; never "
            "connect mains while the adapter is wired.",
        ]
        if final:
            advice.append(self._again(True, " once the supply is fixed"))
        return title, advice, "fix-supply"

    def _advise_unstable(self, final: bool) -> tuple[str, list[str], str]:
        if self.probe and self.probe[1] and self.probe[0] < self.probe[1]:
            seen = f"The chip answered only {self.probe[0]} of {self.probe[1]} link checks"
        elif self.lost:
            seen = "The chip answered the link check, then stopped answering"
        else:
            seen = "Link replies arrive, but mangled"
        parts = self.uart_parts()
        advice = [
            "Something on the board loads RX1/TX1 (P10/P11): a button, a power-meter UART or a TuyaMCU. "
            "Isolate the pin from that circuit (lift the pin or cut the trace to the module).",
            "If a button sits on P10 (as on LSPA9-like plugs), keep it untouched while flashing; if an MCU is on "
            "the UART, hold it in reset or disconnect it.",
            "Use short wires and a stable 3.3 V supply; desolder the module only as a last resort.",
        ]
        notes = list(self.pin_notes) + ([uart1.describe(parts)] if parts else [])
        if notes:
            advice.insert(0, "On this device " + "; ".join(notes) + ": that is the likely culprit.")
        if final:
            advice.append(self._again(True, " after each change"))
        return seen + ": the link is unreliable.", advice, "isolate-uart-pins"

    def _advise_garbage(self, final: bool) -> tuple[str, list[str], str]:
        zeros = self.rx_total and self.zeros / self.rx_total >= 0.8
        advice = [
            "Bytes arrive but are unreadable at 115200: the firmware may log at another baud rate (the bootloader "
            "always links at 115200, so resetting the chip while bkbench links still works).",
            "Check GND between adapter and module and keep the wires short: noise looks like this too.",
        ]
        if zeros:
            advice.insert(0, "Nearly all bytes are 0x00: the line into the adapter's RX (TX1, P11) is held low, "
                             "by a part on P11 or a module browning out.")
        if self.strategy.manual:
            advice.append(self._again(final, " and reset the chip while it links: " + RESET_BY_HAND)
                          or "Reset the chip now: " + RESET_BY_HAND + ".")
        return "Unreadable bytes arrive on RX (baud mismatch or noise).", advice, "check-baud-noise"

    def _advise_zero_flash(self, final: bool) -> tuple[str, list[str], str]:
        return ("The chip answers, but every flash read returns zeros (CheckCRC 0xB7BFA0CE over 257 zero bytes).", [
            "The flash is not running: a strap / boot-mode pin is wrong or the flash has no supply.",
            "Check that nothing pulls the module's pins at power-up, measure 3.3 V at the module, then power-cycle "
            "it.",
            "Do not write to this chip until reads return real data.",
        ], "check-straps")

    def _advise_echo(self, final: bool) -> tuple[str, list[str], str]:
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


def _listen(tap: PortTap, seconds: float, cancel: CancelToken | None, until=None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cancel is not None and cancel.cancelled:
            raise OperationCancelled("diagnosis cancelled")
        tap.read(tap.in_waiting or 1)
        if until is not None and until():
            return


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


def probe_flash(client: BkClient, doctor: LinkDoctor, spans=FLASH_PROBE) -> None:
    """Read-only CRCs over the application: the flash draws current, a weak supply resets the chip here."""
    answered = 0
    for start, length in spans:
        if start + length > (client.flash_size or 0):
            break
        try:
            client.crc(start, length)
            answered += 1
        except ProtocolError as exc:
            doctor.flash_probe_result(answered, answered + 1)
            doctor.note_error(exc)
            return
    doctor.flash_probe_result(answered, answered)


def rerun_command(url: str, reset: str | ResetStrategy, seconds: float) -> str:
    """`bkbench doctor -p URL [--reset R] [--seconds S]`: what the final advice tells the user to run again."""
    import shlex

    cmd = f"bkbench doctor -p {shlex.quote(url)}"
    name = reset if isinstance(reset, str) else reset.name
    if name and name != "auto":
        cmd += f" --reset {shlex.quote(name)}"
    if seconds != 10.0:
        cmd += f" --seconds {seconds:g}"
    return cmd


def diagnose(
    url: str,
    reset: str | ResetStrategy = "auto",
    seconds: float = 10.0,
    sink: EventSink = null_sink,
    dump: bytes | str | Path | None = None,
    cancel: CancelToken | None = None,
    prior: RxCapture | None = None,
) -> Diagnosis:
    """Listen, link (resetting with `reset`), then probe, identify and load the flash; read-only.

    `prior`: what the port showed before (the workbench's serial log), used for pins and liveness."""
    strategy = reset if isinstance(reset, ResetStrategy) else get_strategy(reset)
    parts = uart1.parts_from_dump(dump) if dump is not None else []
    strategy.check()
    family = family_for_url(url)
    port = open_port(url, LINK_BAUD)
    try:
        strategy, note = for_port(strategy, port)
        if note:
            sink(Notice("warning", note))
        habit = adapter_note(strategy, family)
        if habit:
            sink(Notice("info", habit))
        doctor = LinkDoctor(strategy, parts, prior=prior, rerun=rerun_command(url, reset, seconds), adapter=family,
                            rerun_manual=rerun_command(url, "manual", seconds))
        tap = PortTap(port, doctor)
        client = BkClient(tap, sink)
        # The manual instruction is the first live advice: said there once, not here as well.
        sink(Stage("doctor", "listening, then linking at 115200" + (
            " (you reset the chip)" if strategy.manual else f": resetting by {strategy.describe()}")))
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
                info = client.identify(attempts=2)
                doctor.identified({"chip": info.chip, "bootloader": info.bootloader, "flash": info.flash_name,
                                   "flash_size": info.flash_size})
                probe_flash(client, doctor)
            except BkError as exc:
                doctor.note_error(exc)
            if doctor.lost:
                # A chip that restarted prints its boot banner once its boot window is over: a weak supply
                # shows here (the link checks of a loaded RX1 would not make it restart).
                _listen(tap, AFTER_LOSS_S, cancel, until=doctor.restart_after_loss)
        return doctor.current(final=True)
    finally:
        port.close()
