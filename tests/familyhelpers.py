"""Test helpers for the chip families: OpenBK-like images built for a family with the project's code."""

from __future__ import annotations

import hashlib

from bkbench.core.chips import FAMILIES
from bkbench.core.images import builders
from bkbench.core.images.recognize import PLAIN_APP_SIGNATURE
from bkbench.core.sim.synth import bootloader_bytes

WRITABLE = [n for n, f in FAMILIES.items() if f.writable]


def plain_app(target: str, version: str = "1.18.230", extra: bytes = b"", size: int = 0x9000) -> bytes:
    """An app that looks like OpenBK to the recogniser: ARM vectors, the version banner, filler."""
    banner = f"OpenBK{target} {version} Nov 25 2025 18:05:53".encode() + b"\x00"
    filler = b"".join(hashlib.sha256(i.to_bytes(4, "little")).digest() for i in range(size // 32))
    head = PLAIN_APP_SIGNATURE + bytes(56)
    return head + banner + extra + filler[: size - len(head) - len(banner) - len(extra)]


def family_image(chip: str, version: str = "1.18.230", extra: bytes = b"") -> tuple[str, bytes]:
    """(kind, bytes) of the release file bkbench writes on `chip`: QIO or UA, stored with its key."""
    fam = FAMILIES[chip]
    app = plain_app(fam.openbk_target, version, extra)
    ua = builders.build_ua(app, coeffs=fam.code_key)
    if fam.image_kind == "UA":
        return "ua", ua
    return "qio", bootloader_bytes(fam) + ua
