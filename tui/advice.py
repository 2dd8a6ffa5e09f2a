"""The engine's advice rephrased for the workbench: name a key or a field, never a CLI flag, and give the
manual-reset instruction one way only."""

from __future__ import annotations

import re

# One instruction for a manual reset, wherever it appears.
RESET_INSTRUCTION = ("short CEN to GND for about a quarter second (or power-cycle the module, keeping TX, RX and "
                     "GND connected)")

_REPLACEMENTS: tuple[tuple[str, str], ...] = (
    # The doctor's final advice names the command that repeats it: here that is a key.
    (r"Run `bkbench doctor [^`]*--reset manual[^`]*` and", "Set Reset to manual in the Ports pane (1), press o and"),
    (r"Run `bkbench doctor [^`]*` again", "Press o again"),
    (r"Run the command again", "Press c again"),
    (r"so listen longer \(--seconds \d+\)", "so run the doctor again (o) and wait"),
    (r"\(then --reset auto works\)", "(then Reset: auto works)"),
    (r"\(--reset (power:GPIO\d+);", r"(Reset: \1;"),
    (r"or use --reset manual and short CEN to GND by hand", "or set Reset to manual in the Ports pane (1) and "
                                                           "short CEN to GND by hand"),
    (r"--reset manual", "Reset: manual in the Ports pane (1)"),
    (r"It runs OpenBK: --reset reboot types `reboot`", "It runs OpenBK: Reset: reboot (Ports pane, 1) types `reboot`"),
    (r"--reset reboot", "Reset: reboot in the Ports pane (1)"),
    (r"--reset ([\w:|.-]+)", r"Reset: \1 in the Ports pane (1)"),
    (r"back it up with `bkbench read`", "back it up with b"),
    (r"`bkbench read`", "b (Backup)"),
    (r"run `bkbench doctor`", "press o (link doctor)"),
    (r"`?bkbench doctor`?", "o (link doctor)"),
    (r"bkbench fetch --chip \w+", "w, then f in the picker"),
    (r"short CEN to GND for (?:about )?a (?:quarter )?second, or power-cycle the module \(keep TX, RX and GND "
     r"connected\)(?:, while bkbench is linking)?", RESET_INSTRUCTION),
)
_COMPILED = tuple((re.compile(p), r) for p, r in _REPLACEMENTS)


def for_tui(text: str) -> str:
    """`text` with CLI flags and commands replaced by the workbench's keys and fields."""
    for pattern, repl in _COMPILED:
        text = pattern.sub(repl, text)
    return text
