"""Which entries of OpenBK's community device list look like the device a dump came from.

Evidence, judged per entry of the same chip family (a different chip never matches):
- every GPIO the device's Tuya config names (mapped to OpenBK roles by tuya_pins) against the entry's pin
  map, role names compared case-blind as OpenBK's PIN_ParsePinRoleName does; a channel counts only for the
  roles OpenBK gives a channel (PIN_IOR_NofChan in new_pins.c), and only up to renumbering: Tuya counts
  relays from 1, many entries from 0, so channels agree when one consistent renumbering maps the device's
  onto the entry's;
- the Tuya module (CB2S, WB2S...) against the entry's "board";
- the power meter (BL0937/HLW8012 pulse pins, BL0942 or CSE7766/HLW8032 over UART) against the entry's
  meter pins and startup command.
Each pin in either map, the module and the meter (when both sides name one) is one feature; the score is
the share of features that agree (a renumbered channel, an inverted polarity or a related role count in
part). The list is community data and boards change between hardware revisions: a score is a pointer to
a forum page to read, never a fact about the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from . import obk_config
from .device_list import DeviceList, Entry, load_default

# A result is "matched" when its score and its agreeing pins reach these; below, the closest is "weak".
MATCH_SCORE = 0.6
MATCH_PINS = 2
MAX_MATCHES = 40  # good entries kept in a report
SHOW_GROUPS = 6  # groups a person is shown
SHOW_NAMES = 3  # entries named per group

WEIGHTS = {"agrees": 1.0, "channel": 0.75, "inverted": 0.5, "similar": 0.5, "device pin": 0.5,
           "differs": 0.0, "unknown role": 0.0, "only device": 0.0, "only entry": 0.0}

# Spellings OpenBK's web app accepts in templates besides the role names (templateParser.js).
ROLE_ALIASES = {"button": "Btn", "button_n": "Btn_n", "relay": "Rel", "relay_n": "Rel_n"}

# Roles without a channel (OpenBK new_pins.c, PIN_IOR_NofChan returns 0): their channel is ignored here.
NO_CHANNEL = frozenset(n.lower() for n in (
    "SGP_CLK", "SHT3X_SCK", "CHT8305_SCK", "CHT83XX_SCK", "Btn_Tgl_All", "Btn_Tgl_All_n", "BL0937CF",
    "BL0937CF1", "BL0937SEL", "BL0937SEL_n", "WifiLED", "WifiLED_n", "RCRecv", "RCRecv_nPup", "IRRecv_nPup",
    "IRRecv", "IRSend", "Btn_NextColor", "Btn_NextColor_n", "Btn_NextDimmer", "Btn_NextDimmer_n", "AlwaysHigh",
    "AlwaysLow", "UCS1912_DIN", "SM16703P_DIN", "Btn_NextTemperature", "Btn_NextTemperature_n",
    "Btn_ScriptOnly", "Btn_ScriptOnly_n", "SM2135DAT", "SM2135CLK", "BP5758D_DAT", "BP5758D_CLK",
    "BP1658CJ_DAT", "BP1658CJ_CLK", "BL0939_SCLK", "BL0939_MOSI", "BL0939_MISO", "HLW8112_SCSN",
    "HLW_8112_SCSN",
))  # fmt: skip

# Roles of one kind: a different one on the same pin is a related reading of the same circuit.
_GROUPS = {
    "relay": ("Rel", "Rel_n"),
    "input": ("Btn", "Btn_n", "Btn_pd", "Btn_pd_n", "Btn_Tgl_All", "Btn_Tgl_All_n", "Btn_ScriptOnly",
              "Btn_ScriptOnly_n", "Btn_SmartLED", "Btn_SmartLED_n", "Btn_NextColor", "Btn_NextColor_n",
              "Btn_NextDimmer", "Btn_NextDimmer_n", "Btn_NextTemperature", "Btn_NextTemperature_n",
              "BtnShutterUp", "BtnShutterDown", "dInput", "dInput_n", "dInput_NoPullUp", "dInput_NoPullUp_n",
              "TglChanOnTgl", "TglChanOnTgl_pd", "DoorSnsrWSleep", "DoorSnsrWSleep_nPup", "DoorSnsrWSleep_pd"),
    "led": ("LED", "LED_n", "WifiLED", "WifiLED_n"),
    "pwm": ("PWM", "PWM_n", "PWM_ScriptOnly", "PWM_ScriptOnly_n"),
    "bl0937": ("BL0937SEL", "BL0937SEL_n", "BL0937CF", "BL0937CF1"),
    "led driver data": ("SM2135DAT", "BP5758D_DAT", "BP1658CJ_DAT", "SM2235DAT", "KP18058_DAT"),
    "led driver clock": ("SM2135CLK", "BP5758D_CLK", "BP1658CJ_CLK", "SM2235CLK", "KP18058_CLK"),
    "ir receiver": ("IRRecv", "IRRecv_nPup"),
}
GROUP_OF = {name.lower(): group for group, names in _GROUPS.items() for name in names}

# Tuya's metering chip -> the OpenBK driver family that reads it (BL0937 and HLW8012 share the pin roles).
METER_FAMILY = {"BL0937": "BL0937", "HLW8012": "BL0937", "BL0942": "BL0942", "HLW8032": "CSE7766",
                "CSE7766": "CSE7766", "BL0939": "BL0939", "HLW8112": "HLW8112"}


def role_names() -> dict[str, str]:
    """lower-case name -> OpenBK's spelling, from the role table the config code writes (read at call time)."""
    return {n.lower(): n for n in obk_config.ROLE_NAMES[1:] if n and n.strip() and n != "error"}


def canonical_role(text: str) -> str | None:
    """OpenBK's name for a role as a template spells it (case-blind, web-app aliases), or None if unknown."""
    key = text.strip().lower()
    if key == "none":
        return "None"  # OpenBK's PIN_ParsePinRoleName accepts it whatever the table calls role 0
    key = ROLE_ALIASES.get(key, key).lower()
    return role_names().get(key)


def _squash(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def intended_role(text: str) -> str | None:
    """The role a misspelt name means when only '_' or spaces differ ('SM2135_DAT' -> SM2135DAT), else None.

    Used to compare, never to write: OpenBK itself rejects such a name, so applying the entry refuses it."""
    want = _squash(text)
    found = {n for n in role_names().values() if _squash(n) == want}
    return found.pop() if len(found) == 1 else None


def parse_pin_value(text: str) -> tuple[str, int, int]:
    """("Role", channel, channel2) of a template value "Role;ch;ch2"; bad channel text counts as 0."""
    parts = [p.strip() for p in text.split(";")]

    def num(i: int) -> int:
        try:
            return int(parts[i]) if len(parts) > i and parts[i] else 0
        except ValueError:
            return 0

    return parts[0], num(1), num(2)


def _base(role: str) -> str:
    low = role.lower()
    return low[:-2] if low.endswith("_n") else low


def uses_channel(role: str) -> bool:
    return role.lower() not in NO_CHANNEL


def entry_meter(entry: Entry) -> str | None:
    """The meter family an entry sets up: BL0937 pins, or the driver its startup command starts."""
    for value in entry.pins.values():
        if value.lower().startswith("bl0937"):
            return "BL0937"
    cmd = entry.command.lower()
    for drv, family in (("bl0942", "BL0942"), ("cse7766", "CSE7766"), ("bl0937", "BL0937"), ("bl0939", "BL0939"),
                        ("hlw8112", "HLW8112")):
        if f"startdriver {drv}" in cmd:
            return family
    return None


def is_tuyamcu_entry(entry: Entry) -> bool:
    return "startdriver tuyamcu" in entry.command.lower() or any(k.lower() == "tuyamcu" for k in entry.keywords)


def _norm_module(name: str | None) -> str:
    return "".join(ch for ch in (name or "").upper() if ch.isalnum())


# --- the device's side -------------------------------------------------------------------------------

@dataclass
class DevicePin:
    role: str
    channel: int
    source: str  # the Tuya key it came from


@dataclass
class DeviceFacts:
    chip: str | None
    chip_source: str  # "dump", "boot log", "module" (inferred from the list) or ""
    module: str | None
    meter: str | None  # METER_FAMILY value
    kind: str  # "pins", "tuyamcu", "unknown"
    pins: dict[int, DevicePin] = field(default_factory=dict)
    unmapped: dict[int, str] = field(default_factory=dict)  # gpio -> Tuya key with no OpenBK role

    def to_json(self) -> dict[str, Any]:
        return {"chip": self.chip, "chip_source": self.chip_source, "module": self.module, "meter": self.meter,
                "kind": self.kind,
                "pins": {str(g): {"role": p.role, "channel": p.channel, "source": p.source}
                         for g, p in sorted(self.pins.items())},
                "unmapped": {str(g): k for g, k in sorted(self.unmapped.items())}}


def facts_from_report(report: dict[str, Any]) -> DeviceFacts:
    """The facts `analyze` found (DumpAnalysis.to_json() or a boot-log report)."""
    mapping = (report.get("openbk") or {}).get("mapping") or {}
    pins = {}
    for g, p in (mapping.get("pins") or {}).items():
        if str(g).isdigit() and isinstance(p, dict) and p.get("role"):
            pins[int(g)] = DevicePin(str(p["role"]), int(p.get("channel") or 0), str(p.get("source") or ""))
    unmapped = {v: str(k) for k, v in (mapping.get("unmapped") or {}).items() if isinstance(v, int) and v not in pins}
    meter = mapping.get("meter")
    chip = report.get("chip") or None
    source = ("boot log" if report.get("source") == "bootlog" else "dump") if chip else ""
    return DeviceFacts(chip=chip, chip_source=source, module=mapping.get("module") or None,
                       meter=METER_FAMILY.get(str(meter).upper()) if meter else None,
                       kind=str(mapping.get("kind") or ("unknown" if not mapping else "pins")), pins=pins,
                       unmapped=unmapped)


# --- comparing ----------------------------------------------------------------------------------------

@dataclass
class PinVerdict:
    gpio: int
    device: str  # "Rel;1" or ""
    source: str  # Tuya key
    entry: str  # the entry's text or ""
    verdict: str  # a WEIGHTS key
    note: str = ""

    @property
    def weight(self) -> float:
        return WEIGHTS[self.verdict]

    def to_json(self) -> dict[str, Any]:
        return {"gpio": self.gpio, "device": self.device, "source": self.source, "entry": self.entry,
                "verdict": self.verdict, "weight": self.weight, "note": self.note}

    def describe(self) -> str:
        """One line for people: 'P8 WifiLED_n here, not used by the entry'."""
        if self.verdict == "only device":
            return f"P{self.gpio} {self.device} here ({self.source}), not used by the entry"
        if self.verdict == "only entry":
            return f"P{self.gpio} {self.entry} in the entry, not in this device's Tuya config"
        if self.verdict == "device pin":
            return f"P{self.gpio} {self.entry} in the entry; the Tuya config uses it as {self.source} (no OpenBK role)"
        return f"P{self.gpio} {self.device} here, {self.entry} in the entry" + (f" ({self.note})" if self.note else "")


def _channel_map(pairs: list[tuple[int, int]]) -> dict[int, int]:
    """The renumbering device channel -> entry channel that most pins agree on (one-to-one)."""
    counts: dict[tuple[int, int], int] = {}
    for pair in pairs:
        counts[pair] = counts.get(pair, 0) + 1
    out: dict[int, int] = {}
    taken: set[int] = set()
    for (dev, ent), _n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if dev not in out and ent not in taken:
            out[dev] = ent
            taken.add(ent)
    return out


def compare_pins(facts: DeviceFacts, entry: Entry) -> list[PinVerdict]:
    parsed: dict[int, tuple[str | None, str, int]] = {}  # gpio -> (canonical role, text, channel)
    misspelt: set[int] = set()
    for g, text in entry.pins.items():
        role_text, ch, _ch2 = parse_pin_value(text)
        role = canonical_role(role_text)
        if role is None and role_text:
            role = intended_role(role_text)
            if role is not None:
                misspelt.add(g)
        if role == "None" or not role_text:
            continue  # an explicitly unused pin
        parsed[g] = (role, text, ch)
    pairs = [(facts.pins[g].channel, ch) for g, (known, _text, ch) in parsed.items()
             if g in facts.pins and known and known.lower() == facts.pins[g].role.lower()
             and uses_channel(facts.pins[g].role)]
    renumber = _channel_map(pairs)
    out: list[PinVerdict] = []
    for g in sorted(set(facts.pins) | set(parsed)):
        dev = facts.pins.get(g)
        ent = parsed.get(g)
        if dev is None and ent is None:
            continue
        dev_text = f"{dev.role};{dev.channel}" if dev and uses_channel(dev.role) else (dev.role if dev else "")
        source = dev.source if dev else facts.unmapped.get(g, "")
        if ent is None:
            out.append(PinVerdict(g, dev_text, source, "", "only device"))
            continue
        role, text, ch = ent
        if dev is None:
            verdict = "device pin" if g in facts.unmapped else "only entry"
            out.append(PinVerdict(g, "", source, text, verdict))
            continue
        if role is None:
            out.append(PinVerdict(g, dev_text, source, text, "unknown role",
                                  f"'{parse_pin_value(text)[0]}' is not an OpenBK role"))
        elif role.lower() == dev.role.lower():
            note = f"the entry spells it {parse_pin_value(text)[0]}, which OpenBK rejects" if g in misspelt else ""
            if uses_channel(role) and renumber.get(dev.channel) != ch:
                out.append(PinVerdict(g, dev_text, source, text, "channel", note or "another channel"))
            else:
                out.append(PinVerdict(g, dev_text, source, text, "agrees", note))
        elif _base(role) == _base(dev.role):
            out.append(PinVerdict(g, dev_text, source, text, "inverted", "opposite polarity"))
        elif GROUP_OF.get(role.lower()) and GROUP_OF.get(role.lower()) == GROUP_OF.get(dev.role.lower()):
            out.append(PinVerdict(g, dev_text, source, text, "similar", f"both {GROUP_OF[role.lower()]}"))
        else:
            out.append(PinVerdict(g, dev_text, source, text, "differs"))
    return out


@dataclass
class Feature:
    device: str
    entry: str
    verdict: str  # "agrees", "differs"

    def to_json(self) -> dict[str, Any]:
        return {"device": self.device, "entry": self.entry, "verdict": self.verdict}


@dataclass
class Match:
    entry: Entry
    pins: list[PinVerdict]
    module: Feature | None
    meter: Feature | None

    @property
    def features(self) -> int:
        return len(self.pins) + (self.module is not None) + (self.meter is not None)

    @property
    def agreement(self) -> float:
        return (sum(p.weight for p in self.pins) + (self.module is not None and self.module.verdict == "agrees")
                + (self.meter is not None and self.meter.verdict == "agrees"))

    @property
    def score(self) -> float:
        return self.agreement / self.features if self.features else 0.0

    @property
    def pins_agreeing(self) -> int:
        return sum(p.verdict in ("agrees", "channel") for p in self.pins)

    @property
    def percent(self) -> int:
        return int(round(self.score * 100))

    @property
    def contradictions(self) -> int:
        """Pins where the entry says something else (a pin it leaves out is not counted)."""
        return sum(p.verdict not in ("agrees", "only device") for p in self.pins)

    def agreements(self) -> list[str]:
        """What agrees, in the device's own terms (so every entry of a group reads the same)."""
        out = [f"P{p.gpio} {p.device}" for p in self.pins if p.verdict == "agrees"]
        for name, feat in (("module", self.module), ("meter", self.meter)):
            if feat is not None and feat.verdict == "agrees":
                out.append(f"{name} {feat.device}")
        return out

    def disagreements(self) -> list[str]:
        out = [p.describe() for p in self.pins if p.verdict != "agrees"]
        for name, feat in (("module", self.module), ("meter", self.meter)):
            if feat is not None and feat.verdict != "agrees":
                out.append(f"{name} {feat.device or 'none'} here, {feat.entry or 'none'} in the entry")
        out += [f"P{p.gpio} {p.note}" for p in self.pins if p.verdict == "agrees" and p.note]
        return out

    def signature(self) -> tuple:
        """Entries with the same signature read the same against this device: one group."""
        pins = tuple((p.gpio, p.verdict, (canonical_role(parse_pin_value(p.entry)[0]) or p.entry).lower(), p.note)
                     for p in self.pins if p.verdict != "agrees" or p.note)
        feats = tuple((f.verdict, _norm_module(f.entry)) if f else None for f in (self.module, self.meter))
        return (round(self.score, 6), pins, feats)

    def to_json(self) -> dict[str, Any]:
        e = self.entry
        return {"id": e.id, "title": e.title, "vendor": e.vendor, "name": e.name, "model": e.model, "chip": e.chip,
                "board": e.board, "wiki": e.wiki, "score": self.percent, "agreement": round(self.agreement, 2),
                "features": self.features, "pins_agreeing": self.pins_agreeing,
                "pins": [p.to_json() for p in self.pins],
                "module": self.module.to_json() if self.module else None,
                "meter": self.meter.to_json() if self.meter else None,
                "flags": e.flags, "command": e.command, "entry_pins": {str(g): v for g, v in sorted(e.pins.items())},
                "problems": list(e.problems), "agrees": self.agreements(), "differs": self.disagreements()}


def compare(facts: DeviceFacts, entry: Entry) -> Match:
    module = None
    if facts.module and entry.board and _norm_module(entry.board) not in ("", "ONPCB", "UNKNOWN", "NONE"):
        same = _norm_module(facts.module) == _norm_module(entry.board)
        module = Feature(facts.module, entry.board, "agrees" if same else "differs")
    em = entry_meter(entry)
    meter = None
    if facts.meter or em:
        meter = Feature(facts.meter or "", em or "", "agrees" if facts.meter == em else "differs")
    return Match(entry, compare_pins(facts, entry), module, meter)


def _rank(m: Match) -> tuple:
    # At equal scores an entry that leaves a pin out ranks before one that contradicts one.
    return (-round(m.score, 6), m.contradictions, -m.pins_agreeing, m.entry.index)


@dataclass
class MatchReport:
    status: str  # "matched", "weak", "tuyamcu", "no pins", "no list"
    message: str
    facts: DeviceFacts | None = None
    matches: list[Match] = field(default_factory=list)  # best first: every good one, or the closest weak one
    compared: int = 0  # entries of the device's chip
    notes: list[str] = field(default_factory=list)
    list_info: dict[str, Any] = field(default_factory=dict)

    def groups(self) -> list[list[Match]]:
        """`matches` in groups of entries that agree and disagree on the same pins, best group first."""
        out: dict[tuple, list[Match]] = {}
        for m in self.matches:
            out.setdefault(m.signature(), []).append(m)
        return list(out.values())

    def to_json(self) -> dict[str, Any]:
        groups = []
        for g in self.groups():
            first = g[0]
            groups.append({"score": first.percent, "ids": [m.entry.id for m in g], "agrees": first.agreements(),
                           "differs": first.disagreements()})
        return {"status": self.status, "message": self.message, "compared": self.compared,
                "device": self.facts.to_json() if self.facts else None, "notes": list(self.notes),
                "list": dict(self.list_info), "matches": [m.to_json() for m in self.matches], "groups": groups}


def _list_info(dl: DeviceList) -> dict[str, Any]:
    return {"source": dl.source, "fetched_at": dl.fetched_at, "entries": len(dl.entries), "version": dl.version,
            "sha256": dl.sha256}


def match_device(facts: DeviceFacts, dl: DeviceList, limit: int = MAX_MATCHES) -> MatchReport:
    """The closest entries of `dl` for `facts`, best first, with a status saying how far to trust them."""
    notes: list[str] = []
    chip = facts.chip
    if not chip:
        inferred = dl.module_chip(facts.module)
        if inferred:
            chip = inferred[0]
            facts.chip, facts.chip_source = chip, "module"
            notes.append(f"chip {chip} inferred from module {facts.module} ({inferred[1]} entries of the list on "
                         "that module name it)")
        else:
            notes.append("chip unknown: entries of every chip were compared")
    pool = [e for e in dl.entries if not chip or e.chip == chip.upper()]
    what = f"{chip} entries" if chip else "entries"
    info = _list_info(dl)
    if facts.kind == "tuyamcu":
        mcu = sum(is_tuyamcu_entry(e) for e in pool)
        return MatchReport("tuyamcu", "TuyaMCU device: its buttons and relays hang on a separate MCU, so the Tuya "
                           "config has no pins to compare and no community entry can be told from the dump "
                           f"({mcu} {what} of the list use TuyaMCU: compare the device's look and model on their "
                           "forum pages)", facts, [], len(pool), notes, info)
    if not facts.pins:
        return MatchReport("no pins", "no Tuya pin configuration in this file: nothing to compare with the "
                           "community list", facts, [], len(pool), notes, info)
    ranked = sorted((compare(facts, e) for e in pool), key=_rank)
    if not ranked:
        return MatchReport("weak", f"the community list has no {what}", facts, [], 0, notes, info)
    good = [m for m in ranked if m.score >= MATCH_SCORE and m.pins_agreeing >= MATCH_PINS]
    if good:
        msg = f"{len(good)} of {len(pool)} {what} agree on most pins (closest first)"
        if len(good) > limit:
            msg += f"; the {limit} closest are listed"
        return MatchReport("matched", msg, facts, good[:limit], len(pool), notes, info)
    best = ranked[0]
    return MatchReport("weak", f"no community entry agrees well: the closest of {len(pool)} {what} scores "
                       f"{best.percent}%", facts, [best], len(pool), notes, info)


def match_report(report: dict[str, Any], dl: DeviceList | None = None) -> dict[str, Any]:
    """The `community` part of an analysis report: what the cached list (or `dl`) says about it."""
    if dl is None:
        dl, why = load_default()
        if dl is None:
            return MatchReport("no list", why).to_json()
    return match_device(facts_from_report(report), dl).to_json()


def note_after_backup(data: bytes, chip: str | None, say: Callable[[str], Any]) -> None:
    """Tell `say` the one-line community note for a fresh backup; never fails the backup that called it."""
    try:
        note = backup_note(data, chip)
    except Exception:  # a damaged vault or list must not turn a good backup into an error
        return
    if note:
        say(note)


def backup_note(data: bytes, chip: str | None, dl: DeviceList | None = None) -> str | None:
    """One line after a backup: the best entry from the dump's Tuya config, or None (no list, no config)."""
    from . import tuya_kv, tuya_pins

    if dl is None:
        dl, _why = load_default()
        if dl is None:
            return None
    vault = tuya_kv.read_vault(data)
    if vault is None:
        return None
    mapping = tuya_pins.mapping_for_vault(vault.user_param_key, vault.baud_cfg)
    report = match_device(facts_from_report({"chip": chip, "openbk": {"mapping": mapping.to_json()}}), dl)
    if report.status == "matched":
        m = report.matches[0]
        count = f"{len(report.matches)} entries agree" if len(report.matches) > 1 else "1 entry agrees"
        return (f"community list: {count}, closest {m.entry.title} [{m.entry.id}] {m.percent}%; analyse the "
                "backup to compare them pin by pin")
    return f"community list: {report.message}"


def summary_lines(community: dict[str, Any], groups: int = SHOW_GROUPS, names: int = SHOW_NAMES) -> list[str]:
    """People's lines for the `community` JSON (CLI `analyze`; the TUI draws its own from the same JSON)."""
    lines = [f"Community devices: {community.get('message', '')}"]
    if community.get("status") == "no list":
        return lines
    for note in community.get("notes") or []:
        lines.append(f"  note: {note}")
    by_id = {m["id"]: m for m in community.get("matches") or []}
    shown = (community.get("groups") or [])[:groups]
    if shown:
        info = community.get("list") or {}
        when = f", fetched {info['fetched_at'][:10]}" if info.get("fetched_at") else ""
        lines.append(f"  (community data: {info.get('entries', '?')} entries{when}; a score points to a forum page "
                     "to read, never a fact: pins differ between hardware revisions)")
    for g in shown:
        count = len(g["ids"])
        lines.append(f"  {g['score']:>3}%  {count} entr{'y' if count == 1 else 'ies'}")
        if g["agrees"]:
            lines.append("        agree:  " + ", ".join(g["agrees"]))
        for d in g["differs"]:
            lines.append(f"        differ: {d}")
        for i in g["ids"][:names]:
            m = by_id[i]
            link = m["wiki"] or "(no forum link)"
            lines.append(f"        - {m['title']} [{m['id']}] {m['chip']} {m['board'] or '?'}  {link}")
        if count > names:
            lines.append(f"        - and {count - names} more with the same pins (--json lists them)")
    rest = (community.get("groups") or [])[groups:]
    if rest:
        lines.append(f"  ... {sum(len(g['ids']) for g in rest)} more entries in {len(rest)} groups scoring "
                     f"{rest[-1]['score']}-{rest[0]['score']}% (--json lists them)")
    return lines
