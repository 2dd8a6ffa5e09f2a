"""Mask secrets in serial log text before it is saved: Wi-Fi passwords, PSKs, Tuya keys and tokens.

Boot logs print credentials as `name: value`, `name=value`, JSON `"name":"value"` or `Pass [value]`
(OpenBK's style). The name decides; the value is replaced, the line stays readable. The raw capture
(serial-raw.bin) is kept unmasked but private (0600): it is the evidence for a protocol problem.
"""

from __future__ import annotations

import re

MASK = "<secret>"

# A field name ending in one of these words is a secret (auth_key, local_key, psk, wifi_pass, passwd...).
_NAME = r"\b[A-Za-z_]*(?:pass(?:word|wd|phrase)?|pwd|psk|secret|token|key)\b"
_VALUE = r"\"[^\"]*\"|'[^']*'|\[[^\]]*\]|[^\s,;\"'\]\}]+"
_ASSIGNED = re.compile(rf"(?P<name>{_NAME})(?P<sep>[\"']?\s*[:=]\s*)(?P<value>{_VALUE})", re.IGNORECASE)
# `Pass [hunter2]` without a separator: only for password-like names, since `key[name]` is a KV lookup.
_BRACKETED = re.compile(r"(?P<name>\b[A-Za-z_]*(?:pass(?:word|wd|phrase)?|pwd|psk)\b)(?P<sep>\s*)"
                        r"(?P<value>\[[^\]]*\])", re.IGNORECASE)


def _mask(m: re.Match) -> str:
    value = m.group("value")
    if value[:1] in "\"'[" and len(value) >= 2:
        if len(value) == 2:
            return m.group(0)  # an empty value hides nothing
        value = value[0] + MASK + value[-1]
    else:
        value = MASK
    return m.group("name") + m.group("sep") + value


def mask_secrets(text: str) -> str:
    """`text` with the value of every secret-named field replaced by MASK."""
    return _BRACKETED.sub(_mask, _ASSIGNED.sub(_mask, text))
