"""Build UART images (UA, QIO) from a plain OpenBK app and a real bootloader.

Used by tests and by the simulator demo: the project ships no firmware, so images are derived from
the real OTA packages (plain app inside) and the real bootloaders in the fixture dumps.

Layout of what Tuya's packager puts in the app partition (checked on the fixture dumps: rebuilding
a dump's app region from its decrypted app gives the same bytes, see tests):

- logical 0x10000 (physical 0x11000): the app, padded with 0xFF to 16 bytes, Beken-encrypted;
- then erased flash (0xFF, CRC16 bytes included: never written) up to the end of the "container";
- in the last 0x60 logical bytes of the container: an unencrypted RBL trailer describing the
  encrypted app (CRC-32 over the encrypted app plus 16 bytes of 0x10, FNV-1a over the encrypted app);
- a CRC16 after every 32 logical bytes throughout.
"""

from __future__ import annotations

import struct
import zlib

from ..analysis.beken_code import BLOCK, TUYA_COEFFS, add_crc16, encrypt
from ..errors import ImageError
from ..layout import BOOTLOADER_END
from .rbl import RBL_HEADER_SIZE, RBL_MAGIC, fnv1a32

APP_LOGICAL = 0x10000  # CPU/logical address of flash 0x11000
APP_CONTAINER_SIZE = 0x108700  # logical size of the app container in the SDK builds (N QIO size)
OBK_T_QIO_SIZE = 0x100000
_TRAILER = struct.Struct("<4sII16s24s24sIIII")


def to_physical(logical_size: int) -> int:
    """Physical bytes taken by `logical_size` logical bytes (CRC16 after every 32)."""
    return logical_size + (logical_size // BLOCK) * 2


def app_trailer(encrypted_app: bytes, timestamp: int = 0, version: str = "1.00") -> bytes:
    """The unencrypted 96-byte RBL record the SDK packager puts at the end of the app container."""
    head = _TRAILER.pack(
        RBL_MAGIC,
        0,
        timestamp,
        b"app",
        version.encode()[:23],
        b"0" * 23,
        zlib.crc32(encrypted_app + b"\x10" * 16),
        fnv1a32(encrypted_app),
        len(encrypted_app),
        len(encrypted_app) + 16,
    )
    return head + struct.pack("<I", zlib.crc32(head))


def build_ua(
    app: bytes,
    container: int | None = None,
    timestamp: int = 0,
    coeffs: tuple[int, int, int, int] = TUYA_COEFFS,
) -> bytes:
    """What belongs at flash 0x11000 for a plain `app` (linked at 0x10000).

    Without `container`: just the encrypted app with its CRC16s (ends where the app ends).
    With `container` (logical bytes, e.g. APP_CONTAINER_SIZE): padded with 0xFF to the container
    size and closed by the RBL trailer, as the SDK packager does.
    """
    if not app:
        raise ImageError("Cannot build an image from an empty app.")
    plain = app + b"\xff" * (-len(app) % 16)
    enc = encrypt(plain, APP_LOGICAL, coeffs)
    if container is None:
        return add_crc16(enc)  # pads the last block with raw 0xFF
    if len(enc) + RBL_HEADER_SIZE > container:
        raise ImageError(f"App of {len(app)} bytes does not fit a container of 0x{container:X} bytes.")
    if container % BLOCK:
        raise ImageError("The container size must be a multiple of 32 bytes.")
    body = add_crc16(enc)
    # Never-written flash between the app and the trailer: raw 0xFF, CRC bytes included.
    gap = to_physical(container - RBL_HEADER_SIZE) - len(body)
    return body + b"\xff" * gap + add_crc16(app_trailer(enc, timestamp))


def bootloader_from_dump(dump: bytes) -> bytes:
    """The stored (encrypted, CRC16) bootloader: the first 0x11000 bytes of a full, unrotated dump."""
    if len(dump) < BOOTLOADER_END:
        raise ImageError("A dump shorter than 0x11000 bytes holds no complete bootloader.")
    return bytes(dump[:BOOTLOADER_END])


def build_qio(app: bytes, bootloader: bytes, chip: str) -> bytes:
    """Bootloader + app as the OpenBK release QIO file of `chip` is laid out.

    BK7231N: bootloader + app container of 0x108700 logical bytes = 1,220,464 bytes.
    BK7231T: bootloader + app padded with 0xFF to exactly 1 MiB.
    """
    if len(bootloader) != BOOTLOADER_END:
        raise ImageError("The bootloader must be exactly 0x11000 bytes (as stored in flash).")
    if chip == "BK7231N":
        return bootloader + build_ua(app, container=APP_CONTAINER_SIZE)
    if chip == "BK7231T":
        ua = build_ua(app)
        if BOOTLOADER_END + len(ua) > OBK_T_QIO_SIZE:
            raise ImageError("App too large for a 1 MiB BK7231T QIO image.")
        return bootloader + ua + b"\xff" * (OBK_T_QIO_SIZE - BOOTLOADER_END - len(ua))
    from ..chips import family

    fam = family(chip)
    if fam is None or not fam.writable or fam.code_key is None:
        raise ImageError(f"No QIO layout known for {chip}.")
    # Other families: bootloader + the app stored with the family's code key (no container padding).
    return bootloader + build_ua(app, coeffs=fam.code_key)


def build_from_ota(
    ota: bytes, bootloader_dump: bytes | None = None, chip: str | None = None
) -> dict[str, bytes]:
    """Convenience for tests and the demo: {"app", "ua", "qio"?} from an OTA package (+ a dump)."""
    from .rbl import unpack_ota

    app = unpack_ota(ota)
    out = {"app": app, "ua": build_ua(app)}
    if bootloader_dump is not None and chip:
        out["qio"] = build_qio(app, bootloader_from_dump(bootloader_dump), chip)
    return out
