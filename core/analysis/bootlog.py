"""Facts from a UART boot log of a stock Tuya device: pins (`json cfg:[...]`), banners, MAC, flash ID.

Tuya's SDK prints the same object it keeps as `user_param_key` in its storage, as
`json cfg:[,key:value,...,crc:N,}]`. Logs are captured from one UART shared by concurrent tasks, so
lines can be cut and interleaved; parsing keeps only well-formed `key:value` items and says what it
dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .tuya_kv import parse_user_param_key

_CFG_MARK = re.compile(r"json cfg:\s*\[")
_ITEM = re.compile(r"[A-Za-z_][A-Za-z0-9_]*:[^,:\[\]{}]*")
_BOOT = re.compile(r"^V:(\S+)", re.M)
_FLASH_ID = re.compile(r"\[Flash\]id:0x([0-9a-fA-F]+)")
# Every pattern here runs on logs of any length (a cut or garbled line may be a megabyte): each is written so
# that no two quantifiers can trade the same characters, which keeps every search linear in the text.
_SDK = re.compile(r"< TUYA IOT SDK V:([^\s>]{1,64})(?:[ \t][^>\n]{0,256})?>")
_BUILD = re.compile(r"< (?:tuya_iot_lib )?BUILD AT:(\S+) BY (\S+)(?: FOR (\S+))? AT (\S+) >")
_APP = re.compile(r"\] (oem_[A-Za-z0-9_]+):([0-9][0-9.]*)")
_COMPILED = re.compile(r"firmware compiled at ([A-Za-z]{3} +\d+ \d{4} [\d:]+)")
_MAC = re.compile(r"^mac ((?:[ 0-9a-fA-F]{1,2}:){5}[ 0-9a-fA-F]{1,2})\s*$", re.M)
_SERIAL = re.compile(r"serial_no:([0-9a-fA-F]{12})\b")
# the version with a suffix if any: 1.18.219, 0.0.0-demo
_OBK = re.compile(r"\b(OpenBK7231[NT]|OpenBK7238|OpenBK_?\w*) (\d+\.\d+\.\d+(?:[-_+][\w.+-]*\w)?)")
# A time stamp a terminal program put before each line: the workbench's ctrl+s (`12:00:01.234  `), and the
# like of `[2026-01-15 12:00:01.234] ` or `12:00:01.234 -> `. Tuya's own `[01-01 00:00:00 TUYA D]` stays.
_STAMP = re.compile(r"^[ \t]*\[?(?:\d{4}-\d{2}-\d{2}[ T])?\d{2}:\d{2}:\d{2}(?:[.,]\d{1,6})?\]?(?:[ \t]*-?>)?[ \t]+",
                    re.M)


@dataclass
class BootLog:
    bootloader: str | None = None  # e.g. "BK7231N_1.0.1"
    flash_id: int | None = None
    mac: str | None = None
    sdk_version: str | None = None
    sdk_build: str | None = None
    app: str | None = None  # e.g. "oem_bk7231n_control_switch"
    app_version: str | None = None
    compiled: str | None = None
    openbk: str | None = None
    json_cfg: dict[str, Any] | None = None
    json_cfg_raw: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def chip(self) -> str | None:
        if self.bootloader:
            m = re.match(r"(BK\d{4}[A-Z]?)", self.bootloader.upper())
            if m:
                return m.group(1)
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "chip": self.chip,
            "bootloader": self.bootloader,
            "flash_id": None if self.flash_id is None else f"0x{self.flash_id:06X}",
            "mac": self.mac,
            "sdk_version": self.sdk_version,
            "sdk_build": self.sdk_build,
            "app": self.app,
            "app_version": self.app_version,
            "compiled": self.compiled,
            "openbk": self.openbk,
            "json_cfg": self.json_cfg,
            "problems": list(self.problems),
        }


def extract_json_cfg(text: str) -> tuple[dict[str, Any] | None, str | None, list[str]]:
    """(parsed object, raw text, problems) of the first `json cfg:[...]` in `text`."""
    m = _CFG_MARK.search(text)
    if not m:
        return None, None, []
    problems: list[str] = []
    # Tuya closes the object with "}]"; another task's "[tag]" may sit in between on a cut line.
    end = text.find("}]", m.end())
    if end == -1:
        end = text.find("]", m.end())
    if end == -1:
        problems.append("json cfg is cut off (no closing ']')")
        end = len(text)
    raw = text[m.end() : end]
    body = raw
    if "\n" in body.strip():
        # Another task's output was interleaved: keep the cfg line and its continuations.
        problems.append("json cfg spans several lines (interleaved output); items were re-joined")
        body = body.replace("\r", "").replace("\n", "")
    body = body.strip().strip("{}").strip(",").rstrip("}").strip(",")
    items = []
    for part in body.split(","):
        part = part.strip()
        if not part:
            continue
        if _ITEM.fullmatch(part):
            items.append(part)
        else:
            problems.append(f"dropped malformed item {part[:40]!r}")
    if not items:
        return None, raw, problems + ["json cfg holds no key:value items"]
    return parse_user_param_key("{" + ",".join(items) + "}"), raw, problems


def parse_boot_log(text: str | bytes) -> BootLog:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = _STAMP.sub("", text)
    log = BootLog()
    if m := _BOOT.search(text):
        log.bootloader = m.group(1)
    if m := _FLASH_ID.search(text):
        log.flash_id = int(m.group(1), 16)
    if m := _SDK.search(text):
        log.sdk_version = m.group(1)
    if m := _BUILD.search(text):
        log.sdk_build = m.group(1)
    if m := _APP.search(text):
        log.app, log.app_version = m.group(1), m.group(2)
    if m := _COMPILED.search(text):
        log.compiled = m.group(1)
    if m := _OBK.search(text):
        log.openbk = f"{m.group(1)} {m.group(2)}"
    if m := _MAC.search(text):
        log.mac = ":".join(f"{int(b.strip() or '0', 16):02x}" for b in m.group(1).split(":"))
    elif m := _SERIAL.search(text):
        s = m.group(1).lower()
        log.mac = ":".join(s[i : i + 2] for i in range(0, 12, 2))
    log.json_cfg, log.json_cfg_raw, log.problems = extract_json_cfg(text)
    return log
