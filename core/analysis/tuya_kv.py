"""Tuya KV storage ("vault"): find, decrypt and read it (PROTOCOL.md section 9).

Layout (learnt from bk7231tools `analysis/kvstorage.py` and checked on the fixture dumps):
- 4 KiB blocks. The first is the key block, AES-128-ECB with the ASCII master key: u32 magic 0x13579753,
  u32 byte-sum of the 16-byte device key, the device key, 0xFF padding. Its third 16-byte chunk is
  therefore AES(master, FF*16), which is how the vault is found in a dump.
- Data blocks, AES-128-ECB with a key derived from the device key: u32 magic, u32 byte-sum of the rest
  of the block, u16 block id, u32 generation, u8 bitmap length, bitmap (bit i set = page i is an index
  page), padding to 128 bytes, then 31 pages of 128 bytes.
- Index page: u32 byte-sum of the value, u32 length, u16 block id, u8 page id, u16 part count, u32 element,
  u8 name length (incl. NUL), name, then parts (u16 block id, u8 first page, u8 last page).
- Tuya rewrites a block into a spare one before erasing it, so a block id can appear more than once:
  the copy with the highest generation wins.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 0x1000
PAGE = 128
MASTER_KEY = b"qwertyuiopasdfgh"
KEY_MAGIC = 0x13579753
DATA_MAGICS = (0x98761234, 0x135726AB)
_KEY_PART_1 = b"8710_2M"
_KEY_PART_2 = b"HHRRQbyemofrtytf"

# Keys whose whole value is secret, and fields inside JSON values that are secret. A name *ending* in key
# is one (key, lckey, auth_key, psk21_key); `keyfunc` (what a button does, in user_param_key) is not.
SECRET_KEYS = frozenset({"gw_wsm"})
_SECRET_FIELD = re.compile(r"(pass|pwd|psk|key$|token|secret|uuid|auz|ssid|fac_pin|random|wfb64)", re.I)
MASK = "<secret>"
# Tuya's values nest a few levels (user_param_key, gw_di); text nested deeper is kept as text, never parsed:
# both parsers recurse per level, and a crafted value 1,000 levels deep would exhaust Python's stack.
MAX_NESTING = 64


def _aes_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    dec = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    return dec.update(data) + dec.finalize()


def _aes_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def data_key(device_key: bytes) -> bytes:
    """AES key of data blocks: byte i = "8710_2M"[i & 3] + "HHRRQbyemofrtytf"[i] + device_key[i]."""
    return bytes((_KEY_PART_1[i & 3] + _KEY_PART_2[i] + device_key[i]) & 0xFF for i in range(16))


def _marker() -> bytes:
    return _aes_ecb_encrypt(MASTER_KEY, b"\xff" * 16)


def find_vault(data: bytes) -> int | None:
    """Offset of the key block in `data`, or None. Checks magic and key checksum, not just the marker."""
    marker = _marker()
    pos = data.find(marker)
    while pos != -1:
        start = pos - 32
        if start >= 0:
            head = _aes_ecb_decrypt(MASTER_KEY, data[start : start + 32])
            magic, csum = struct.unpack_from("<II", head)
            if magic == KEY_MAGIC and csum == sum(head[8:24]):
                return start
        pos = data.find(marker, pos + 1)
    return None


@dataclass
class KvEntry:
    name: str
    value: bytes
    block_id: int
    page_id: int
    checksum_ok: bool


@dataclass
class TuyaVault:
    offset: int  # of the key block in the analysed data
    blocks: dict[int, int] = field(default_factory=dict)  # block id -> offset of the copy used
    entries: dict[str, KvEntry] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def keys(self) -> list[str]:
        return list(self.entries)

    def raw(self, name: str) -> bytes | None:
        e = self.entries.get(name)
        return e.value if e else None

    def value(self, name: str) -> Any:
        """Decoded value: JSON, user_param_key as dict, text, or bytes for binary values."""
        raw = self.raw(name)
        return None if raw is None else decode_value(name, raw)

    @property
    def user_param_key(self) -> dict[str, Any] | None:
        v = self.value("user_param_key")
        return v if isinstance(v, dict) else None

    @property
    def baud_cfg(self) -> int | None:
        v = self.value("baud_cfg")
        if isinstance(v, dict) and isinstance(v.get("baud"), int):
            return v["baud"]
        return None

    def to_json(self, show_secrets: bool = False) -> dict[str, Any]:
        values = {}
        for name in self.entries:
            v = self.value(name)
            values[name] = _jsonable(v if show_secrets else mask_value(name, v))
        return {
            "offset": self.offset,
            "keys": self.keys(),
            "values": values,
            "user_param_key": self.user_param_key,
            "baud_cfg": self.baud_cfg,
            "problems": list(self.problems),
        }


def _jsonable(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        return "HEX:" + bytes(v).hex()
    return v


def read_vault(data: bytes, offset: int | None = None) -> TuyaVault | None:
    """Decrypt the vault in `data` (a full dump or just the KV region); None when there is none."""
    if offset is None:
        offset = find_vault(data)
        if offset is None:
            return None
    head = _aes_ecb_decrypt(MASTER_KEY, data[offset : offset + 32])
    device_key = head[8:24]
    dkey = data_key(device_key)
    vault = TuyaVault(offset=offset)

    chosen: dict[int, tuple[int, int, bytes]] = {}  # id -> (generation, offset, plaintext)
    for off in range(offset + BLOCK, len(data) - BLOCK + 1, BLOCK):
        raw = data[off : off + BLOCK]
        if raw == b"\xff" * BLOCK:
            continue
        plain = _aes_ecb_decrypt(dkey, raw)
        magic, csum, block_id, gen = struct.unpack_from("<IIHI", plain)
        if magic not in DATA_MAGICS:
            continue  # e.g. the wrapped bootloader in a rotated dump
        if csum != sum(plain[8:]) & 0xFFFFFFFF:
            vault.problems.append(f"data block at 0x{off:X} has a bad checksum")
            continue
        if block_id not in chosen or gen > chosen[block_id][0]:
            chosen[block_id] = (gen, off, plain)
    vault.blocks = {bid: v[1] for bid, v in sorted(chosen.items())}

    def page(block_id: int, page_id: int) -> bytes:
        plain = chosen[block_id][2]
        return plain[page_id * PAGE : (page_id + 1) * PAGE]

    for block_id in sorted(chosen):
        plain = chosen[block_id][2]
        bitmap = plain[15 : 15 + plain[14]]
        for page_id in range(1, BLOCK // PAGE):
            if not (page_id // 8 < len(bitmap) and bitmap[page_id // 8] >> (page_id % 8) & 1):
                continue
            pg = page(block_id, page_id)
            csum, length, ibid, ipid, nparts, _element, name_len = struct.unpack_from("<IIHBHIB", pg)
            if ibid != block_id or ipid != page_id:
                vault.problems.append(f"index page {block_id}/{page_id} names {ibid}/{ipid}")
                continue
            name = pg[18 : 18 + name_len].split(b"\0", 1)[0].decode("ascii", "replace")
            value = bytearray()
            ok = True
            for k in range(nparts):
                pos = 18 + name_len + 4 * k
                if pos + 4 > PAGE:
                    ok = False
                    break
                pbid, first, last = struct.unpack_from("<HBB", pg, pos)
                if pbid not in chosen:
                    ok = False
                    break
                for pid in range(first, last + 1):
                    value += page(pbid, pid)
            data = bytes(value[:length])
            if not ok or len(data) != length:
                vault.problems.append(f"value of {name!r} is incomplete")
            if name in vault.entries:
                vault.problems.append(f"duplicate key {name!r}")
                continue
            vault.entries[name] = KvEntry(name, data, block_id, page_id, sum(data) == csum)
            depth = nesting_depth(data.decode("latin-1"))
            if depth > MAX_NESTING:
                vault.problems.append(f"value of {name!r} nests {depth} levels deep (more than {MAX_NESTING}): "
                                      "kept as text, not parsed")
    return vault


# --- values --------------------------------------------------------------------------------------


def nesting_depth(text: str) -> int:
    """How deep `{`/`[` nest in `text` (brackets inside JSON strings not counted); one linear pass."""
    depth = deepest = 0
    in_str = False
    for m in _NEST_TOKEN.finditer(text):
        tok = m.group()
        if in_str:
            if tok == '"':
                in_str = False
        elif tok == '"':
            in_str = True
        elif tok in "{[":
            depth += 1
            deepest = max(deepest, depth)
        elif tok in "}]":
            depth = max(0, depth - 1)
    return deepest


_NEST_TOKEN = re.compile(r'\\.|[{}\[\]"]', re.S)  # an escaped char is one token, so \" never ends a string

_UPK_INT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")


def parse_user_param_key(text: str) -> dict[str, Any]:
    """Parse Tuya's unquoted `{a:1,b:x,}` syntax; integers become int, everything else str.

    Leading-zero numbers (`category:0505`) and dotted versions (`jv:1.0.5`) stay strings, as Tuya
    treats them. Nested `{}`/`[]` are supported; a trailing comma is allowed.
    """
    depth = nesting_depth(text)
    if depth > MAX_NESTING:
        raise ValueError(f"nested {depth} levels deep (Tuya's configs nest a few): not parsed")
    tokens = re.findall(r"[{}\[\]:,]|[^{}\[\]:,]+", text.strip())
    pos = 0

    def scalar(tok: str) -> Any:
        tok = tok.strip()
        if len(tok) >= 2 and tok[0] == tok[-1] == '"':
            return tok[1:-1]
        return int(tok) if _UPK_INT.match(tok) else tok

    def parse() -> Any:
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "{":
            obj: dict[str, Any] = {}
            while tokens[pos] != "}":
                if tokens[pos] == ",":
                    pos += 1
                    continue
                key = str(scalar(tokens[pos]))
                if tokens[pos + 1] != ":":
                    raise ValueError(f"expected ':' after {key!r}")
                pos += 2
                if tokens[pos] in (",", "}"):
                    obj[key] = ""
                else:
                    obj[key] = parse()
            pos += 1
            return obj
        if tok == "[":
            arr: list[Any] = []
            while tokens[pos] != "]":
                if tokens[pos] == ",":
                    pos += 1
                    continue
                arr.append(parse())
            pos += 1
            return arr
        return scalar(tok)

    try:
        result = parse()
    except IndexError:
        raise ValueError("user_param_key is truncated") from None
    if not isinstance(result, dict):
        raise ValueError("user_param_key is not an object")
    return result


def decode_value(name: str, raw: bytes) -> Any:
    text = raw.rstrip(b"\0")
    if not all(32 <= c < 127 or c in (9, 10, 13) for c in text):
        return bytes(raw)
    s = text.decode("ascii")
    if nesting_depth(s) > MAX_NESTING:
        return s  # kept as text (read_vault names it among the vault's problems)
    try:
        return json.loads(s)
    except ValueError:
        pass
    if name == "user_param_key" or (s.startswith("{") and s.endswith("}")):
        try:
            return parse_user_param_key(s)
        except ValueError:
            pass
    return s


def mask_value(name: str, value: Any) -> Any:
    """A copy of `value` with secrets replaced by MASK (whole value for Wi-Fi credentials)."""
    if name in SECRET_KEYS:
        return MASK
    if isinstance(value, dict):
        return {k: (MASK if _SECRET_FIELD.search(k) and v not in (None, "") else mask_value("", v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value("", v) for v in value]
    return value
