"""Mask secrets in serial log text before it is saved: Wi-Fi passwords, PSKs, Tuya keys and tokens.

Boot logs print credentials as `name: value`, `name=value`, `name[8]: value`, JSON `"name":"value"`,
`Pass [value]` (OpenBK's style) or `password value`. The name decides; the value is replaced, the line
stays readable. A quoted value ends at its closing quote (escaped quotes included); an unquoted one may
hold spaces, commas and semicolons, and nothing says where it ends, so it is masked to the end of the
line. The raw capture (serial-raw.bin) is kept unmasked but private (0600): it is the evidence for a
protocol problem.
"""

from __future__ import annotations

import re

MASK = "<secret>"

# A field name ending in one of these words is a secret (auth_key, local_key, psk, wifi_pass, passwd...);
# `keyfunc` or `key_pin` are not (the word must end the name).
_NAME = r"\b[A-Za-z_]*(?:pass(?:word|wd|phrase)?|pwd|psk|secret|token|key)\b"
_QUOTED = r"\"(?:\\.|[^\"\\\r\n])*\"|'(?:\\.|[^'\\\r\n])*'"
_VALUE = rf"{_QUOTED}|\[[^\]\r\n]*\]|\S[^\r\n]*"  # last: unquoted, or a quote never closed on this line
_ASSIGNED = re.compile(rf"(?P<name>{_NAME})(?P<sep>(?:\[\d{{1,4}}\])?[\"']?[ \t]*[:=][ \t]*)(?P<value>{_VALUE})",
                       re.IGNORECASE)
# `Pass [hunter2]` without a separator: only for password-like names, since `key[name]` is a KV lookup.
_PASSWORD = r"\b(?:[A-Za-z]+_)?(?:pass(?:word|wd|phrase)?|pwd|psk)\b"
_BRACKETED = re.compile(rf"(?P<name>{_PASSWORD})(?P<sep>[ \t]*)(?P<value>\[[^\]\r\n]*\])(?![ \t]*[:=])",
                        re.IGNORECASE)  # `passwd[8]: ...` is a length: _ASSIGNED masks what follows it
# `password Hunter2`: a password-like name, a space, then the value (to the end of the line), unless the
# next word is plain prose about the password ("password is empty", "wrong password entered").
_PROSE = ("is|was|not|no|for|to|of|and|or|in|on|at|by|with|set|saved|changed|empty|error|ok|len|length|"
          "required|missing|wrong|incorrect|invalid|mismatch|failed|too|enabled|disabled|mode|the|a|an|check|"
          "field|entered|protected|reset|timeout|type|auth|authentication|must|should|has|have|will|can")
_SPACED = re.compile(rf"(?P<name>{_PASSWORD})(?P<sep>[ \t]+)(?!(?:{_PROSE})\b|[\[\"':=])(?P<value>[^\s][^\r\n]*)",
                     re.IGNORECASE)


def _mask(m: re.Match) -> str:
    value = m.group("value")
    if value[:1] in "\"'[" and len(value) >= 2 and value[-1] == {"[": "]"}.get(value[0], value[0]):
        if len(value) == 2:
            return m.group(0)  # an empty value hides nothing
        value = value[0] + MASK + value[-1]
    else:
        trail = value[len(value.rstrip()):]  # keep the line's own trailing spaces / \r
        value = MASK + trail
    return m.group("name") + m.group("sep") + value


def mask_secrets(text: str) -> str:
    """`text` with the value of every secret-named field replaced by MASK."""
    return _SPACED.sub(_mask, _BRACKETED.sub(_mask, _ASSIGNED.sub(_mask, text)))
