"""OpenBK OTA packages: the RBL container and Tuya's UG wrapper around it (PROTOCOL.md section 8).

RBL (rt-thread ``rt_ota`` packaging, 96-byte little-endian header)::

    0x00  magic "RBL\\0"
    0x04  u32 algorithm: low byte = encryption (1 XOR, 2 AES-256), second byte = compression (1 gzip)
          i.e. flag 0x100 = gzip, 0x2 = AES-256
    0x08  u32 timestamp
    0x0C  name[16], 0x1C version[24], 0x34 serial[24]  (NUL-terminated, rest may be garbage)
    0x4C  u32 CRC-32 of the package body (as stored: compressed and encrypted)
    0x50  u32 FNV-1a 32 of the raw firmware
    0x54  u32 raw size, 0x58 u32 package (body) size
    0x5C  u32 CRC-32 of header bytes 0..0x5C

UG (Tuya upgrade wrapper, 32 bytes big-endian, layout checked on the two fixture packages)::

    0x00  55 AA 55 AA
    0x04  version[12] (NUL padded ASCII)
    0x10  u32 length of what follows the wrapper (the RBL header + body)
    0x14  u32 byte sum of what follows the wrapper
    0x18  u32 byte sum of wrapper bytes 0..0x18
    0x1C  AA 55 AA 55

OpenBK encrypts the body with AES-256-CBC (fixed public key/IV, PKCS#7 padding) over a gzip stream;
the gzip stream holds the plain application binary (linked at CPU 0x10000, no code cipher, no CRC16).
"""

from __future__ import annotations

import gzip
import struct
import time
import zlib
from dataclasses import dataclass, field

from ..errors import ImageError

RBL_MAGIC = b"RBL\x00"
RBL_HEADER_SIZE = 0x60
UG_MAGIC = b"\x55\xaa\x55\xaa"
UG_END_MAGIC = b"\xaa\x55\xaa\x55"
UG_HEADER_SIZE = 0x20

OTA_AES_KEY = b"0123456789ABCDEF0123456789ABCDEF"
OTA_AES_IV = b"0123456789ABCDEF"

ENC_NONE, ENC_XOR, ENC_AES256 = 0, 1, 2
COMP_NONE, COMP_GZIP, COMP_QUICKLZ, COMP_FASTLZ = 0, 1, 2, 3
_ENC_NAMES = {ENC_NONE: "none", ENC_XOR: "xor", ENC_AES256: "aes256"}
_COMP_NAMES = {COMP_NONE: "none", COMP_GZIP: "gzip", COMP_QUICKLZ: "quicklz", COMP_FASTLZ: "fastlz"}

_RBL_STRUCT = struct.Struct("<4sII16s24s24sIIIII")
_UG_STRUCT = struct.Struct(">4s12sIII4s")
# A raw app larger than the biggest app partition is not an OpenBK app; also bounds gunzip memory.
MAX_RAW_SIZE = 0x200000


def _cstr(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("ascii", "replace")


def fnv1a32(data: bytes, seed: int = 0x811C9DC5) -> int:
    """FNV-1a 32-bit hash, the RBL "hash" of the raw firmware."""
    h = seed
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


@dataclass(frozen=True)
class RblHeader:
    algorithm: int
    timestamp: int
    name: str
    version: str
    serial: str
    body_crc: int
    raw_hash: int
    raw_size: int
    body_size: int
    header_crc: int
    header_crc_ok: bool

    @property
    def encryption(self) -> int:
        return self.algorithm & 0xFF

    @property
    def compression(self) -> int:
        return (self.algorithm >> 8) & 0xFF

    @property
    def algorithm_text(self) -> str:
        enc = _ENC_NAMES.get(self.encryption, f"unknown({self.encryption})")
        comp = _COMP_NAMES.get(self.compression, f"unknown({self.compression})")
        return f"{enc}+{comp}"


@dataclass(frozen=True)
class UgHeader:
    version: str
    length: int
    body_sum: int
    header_sum: int
    header_sum_ok: bool


@dataclass
class OtaPackage:
    """A parsed (not yet decrypted) OTA file: optional UG wrapper, RBL header and body."""

    rbl: RblHeader
    body: bytes
    ug: UgHeader | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def format(self) -> str:
        return "ug" if self.ug is not None else "rbl"

    @property
    def version(self) -> str:
        # The RBL version field of OpenBK builds holds garbage; the UG wrapper carries the real one.
        if self.ug is not None and self.ug.version:
            return self.ug.version
        return self.rbl.version if _printable(self.rbl.version) else ""


def _printable(text: str) -> bool:
    return bool(text) and all(32 <= ord(c) < 127 for c in text)


def is_rbl(data: bytes) -> bool:
    return data[:4] == RBL_MAGIC


def is_ug(data: bytes) -> bool:
    return data[:4] == UG_MAGIC and data[0x1C:0x20] == UG_END_MAGIC


def parse_rbl_header(data: bytes) -> RblHeader:
    if len(data) < RBL_HEADER_SIZE or not is_rbl(data):
        raise ImageError("Not an RBL package: the 96-byte header with magic 'RBL' is missing.")
    fields = _RBL_STRUCT.unpack_from(data)
    header_crc = fields[10]
    return RblHeader(
        algorithm=fields[1],
        timestamp=fields[2],
        name=_cstr(fields[3]),
        version=_cstr(fields[4]),
        serial=_cstr(fields[5]),
        body_crc=fields[6],
        raw_hash=fields[7],
        raw_size=fields[8],
        body_size=fields[9],
        header_crc=header_crc,
        header_crc_ok=zlib.crc32(data[: RBL_HEADER_SIZE - 4]) == header_crc,
    )


def parse_ug_header(data: bytes) -> UgHeader:
    if len(data) < UG_HEADER_SIZE or not is_ug(data):
        raise ImageError("Not a UG package: the 55 AA 55 AA ... AA 55 AA 55 wrapper is missing.")
    _magic, version, length, body_sum, header_sum, _end = _UG_STRUCT.unpack_from(data)
    return UgHeader(
        version=_cstr(version),
        length=length,
        body_sum=body_sum,
        header_sum=header_sum,
        header_sum_ok=(sum(data[:0x18]) & 0xFFFFFFFF) == header_sum,
    )


def parse_ota(data: bytes) -> OtaPackage:
    """Parse a UG or RBL file and check its header checksums and body CRC (no decryption)."""
    ug: UgHeader | None = None
    warnings: list[str] = []
    rbl_data = data
    if is_ug(data):
        ug = parse_ug_header(data)
        rbl_data = data[UG_HEADER_SIZE:]
        if not ug.header_sum_ok:
            raise ImageError("UG package header checksum is wrong: the file is damaged.")
        if ug.length != len(rbl_data):
            raise ImageError(
                f"UG package is truncated or padded: the wrapper says {ug.length} bytes, "
                f"the file has {len(rbl_data)}."
            )
        if (sum(rbl_data) & 0xFFFFFFFF) != ug.body_sum:
            raise ImageError("UG package body checksum is wrong: the file is damaged.")
    rbl = parse_rbl_header(rbl_data)
    if not rbl.header_crc_ok:
        raise ImageError("RBL header CRC is wrong: the OTA file is damaged.")
    body = rbl_data[RBL_HEADER_SIZE : RBL_HEADER_SIZE + rbl.body_size]
    if len(body) != rbl.body_size:
        raise ImageError(f"RBL body is truncated: header says {rbl.body_size} bytes, file has {len(body)}.")
    if len(rbl_data) > RBL_HEADER_SIZE + rbl.body_size:
        warnings.append(f"{len(rbl_data) - RBL_HEADER_SIZE - rbl.body_size} extra bytes after the RBL body")
    if zlib.crc32(body) != rbl.body_crc:
        raise ImageError("RBL body CRC-32 is wrong: the OTA file is damaged.")
    return OtaPackage(rbl=rbl, body=body, ug=ug, warnings=warnings)


def _aes_cbc(key: bytes, iv: bytes, data: bytes, encrypt: bool) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    cipher = Cipher(algorithms.AES(key), modes.CBC(iv))
    ctx = cipher.encryptor() if encrypt else cipher.decryptor()
    return ctx.update(data) + ctx.finalize()


def _gunzip_bounded(data: bytes, limit: int) -> bytes:
    dec = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = dec.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ImageError(f"OTA payload is not a valid gzip stream ({exc}).") from exc
    if len(out) > limit:
        raise ImageError("OTA payload decompresses to more than its RBL header (or the flash) allows.")
    if not dec.eof:
        raise ImageError("OTA payload gzip stream is truncated.")
    return out


def unpack_ota(
    data: bytes | OtaPackage, key: bytes = OTA_AES_KEY, iv: bytes = OTA_AES_IV, verify: bool = True
) -> bytes:
    """Return the plain application binary inside a UG/RBL package, checking size and FNV hash."""
    pkg = data if isinstance(data, OtaPackage) else parse_ota(data)
    rbl = pkg.rbl
    body = pkg.body
    if rbl.encryption == ENC_AES256:
        if len(body) % 16:
            raise ImageError("RBL body length is not a multiple of the AES block size.")
        body = _aes_cbc(key, iv, body, encrypt=False)
        pad = body[-1] if body else 0
        if 1 <= pad <= 16 and body[-pad:] == bytes([pad]) * pad:
            body = body[:-pad]
    elif rbl.encryption != ENC_NONE:
        raise ImageError(f"Unsupported OTA encryption ({rbl.algorithm_text}).")
    if rbl.compression == COMP_GZIP:
        raw = _gunzip_bounded(body, min(rbl.raw_size, MAX_RAW_SIZE) if rbl.raw_size else MAX_RAW_SIZE)
    elif rbl.compression == COMP_NONE:
        raw = body
    else:
        raise ImageError(f"Unsupported OTA compression ({rbl.algorithm_text}).")
    if verify:
        if len(raw) != rbl.raw_size:
            raise ImageError(f"OTA payload is {len(raw)} bytes but the RBL header says {rbl.raw_size}.")
        if fnv1a32(raw) != rbl.raw_hash:
            raise ImageError("OTA payload hash does not match the RBL header: wrong key or damaged file.")
    return raw


def pack_rbl(
    raw: bytes,
    name: str = "app",
    version: str = "",
    key: bytes = OTA_AES_KEY,
    iv: bytes = OTA_AES_IV,
    timestamp: int | None = None,
) -> bytes:
    """Build an AES-256 + gzip RBL package of ``raw`` (used by tests to check the parser both ways)."""
    body = gzip.compress(raw, compresslevel=9, mtime=0)
    pad = 16 - len(body) % 16
    body = _aes_cbc(key, iv, body + bytes([pad]) * pad, encrypt=True)
    head = _RBL_STRUCT.pack(
        RBL_MAGIC,
        (COMP_GZIP << 8) | ENC_AES256,
        int(time.time()) if timestamp is None else timestamp,
        name.encode()[:15],
        version.encode()[:23],
        b"0" * 23,
        zlib.crc32(body),
        fnv1a32(raw),
        len(raw),
        len(body),
        0,
    )[: RBL_HEADER_SIZE - 4]
    return head + struct.pack("<I", zlib.crc32(head)) + body


def wrap_ug(rbl: bytes, version: str) -> bytes:
    """Put the Tuya UG wrapper around an RBL package."""
    head = struct.pack(">4s12sII", UG_MAGIC, version.encode()[:12], len(rbl), sum(rbl) & 0xFFFFFFFF)
    return head + struct.pack(">I", sum(head) & 0xFFFFFFFF) + UG_END_MAGIC + rbl
