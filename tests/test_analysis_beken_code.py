"""Beken code cipher + CRC16 packing, checked on real Tuya dumps of both chip families."""

from __future__ import annotations

import random
import struct

import pytest
from bkbench.core.analysis import beken_code as bc

APP = 0x11000
N_DUMP = "bk7231n-lspa9-clone-bl0937-plug.bin"
T_DUMP = "bk7231t-feit-br30-rgbw-bulb.bin"


def _app_head(fixtures_dir, name: str, blocks: int = 0x9000 // 34) -> bytes:
    data = (fixtures_dir / "dumps" / name).read_bytes()
    return data[APP : APP + blocks * 34]


def test_crc16_parameters() -> None:
    # CRC-16 with poly 0x8005, init 0xFFFF, MSB first, no xorout: check value for "123456789" is 0xAEE7.
    assert bc.crc16(b"123456789") == 0xAEE7


def test_tuya_coefficients_are_the_documented_words() -> None:
    assert bytes.fromhex("510fb093a3cbeadc5993a17ec7adeb03") == struct.pack(">4I", *bc.TUYA_COEFFS)


@pytest.mark.parametrize("name", [N_DUMP, T_DUMP])
def test_app_start_has_valid_crcs_and_roundtrips_packing(fixtures_dir, name: str) -> None:
    phys = _app_head(fixtures_dir, name)
    assert bc.crc16_ok(phys)
    assert bc.add_crc16(bc.strip_crc16(phys)) == phys
    broken = bytearray(phys)
    broken[40] ^= 1  # second block
    assert not bc.crc16_ok(bytes(broken))
    assert bc.crc16_bad_blocks(bytes(broken)) == [34]


@pytest.mark.parametrize("name", [N_DUMP, T_DUMP])
def test_decrypted_app_is_arm_code(fixtures_dir, name: str) -> None:
    phys = _app_head(fixtures_dir, name)
    plain = bc.decrypt(bc.strip_crc16(phys), bc.logical_address(APP))
    words = struct.unpack_from("<8I", plain)
    # ARM exception vector table: a branch (B, cond AL = 0xEA) then seven "LDR PC, [PC, #20]".
    assert words[0] >> 24 == 0xEA
    assert words[1:] == (0xE59FF014,) * 7
    # The raw (encrypted) bytes are not code.
    assert struct.unpack_from("<I", phys, 4)[0] != 0xE59FF014


@pytest.mark.parametrize("name, chip", [(N_DUMP, b"bk7231n"), (T_DUMP, b"bk7231t")])
def test_whole_app_decrypts_to_the_sdk_banner(fixtures_dir, name: str, chip: bytes) -> None:
    data = (fixtures_dir / "dumps" / name).read_bytes()
    phys = data[APP : APP + 0x119000 // 34 * 34]
    plain = bc.decrypt_physical(phys, APP)
    assert b"< TUYA IOT SDK V:" in plain
    assert b" AT " + chip + b" >" in plain
    assert b"< TUYA IOT SDK V:" not in phys


@pytest.mark.parametrize("name", [N_DUMP, T_DUMP])
def test_encrypt_inverts_decrypt(fixtures_dir, name: str) -> None:
    phys = _app_head(fixtures_dir, name, 64)
    logical = bc.strip_crc16(phys)
    plain = bc.decrypt(logical, 0x10000)
    assert bc.encrypt(plain, 0x10000) == logical
    assert bc.encrypt_physical(plain, APP) == phys
    assert bc.decrypt(logical, 0x10000 + 32) != plain  # the keystream depends on the address


def test_unaligned_address_rejected() -> None:
    with pytest.raises(ValueError):
        bc.decrypt(b"\0" * 8, 2)


@pytest.mark.peers
def test_matches_bk7231tools_on_random_keys() -> None:
    from bk7231tools.crypto.code import BekenCodeCipher

    rng = random.Random(7)
    checked = 0
    for _ in range(200):
        coeffs = tuple(rng.getrandbits(32) for _ in range(4))
        addr = rng.getrandbits(22) & ~31
        data = bytes(rng.getrandbits(8) for _ in range(64))
        try:
            ref = bytes(BekenCodeCipher(coeffs).encrypt(data, addr))
        except OverflowError:  # the peer cannot represent some 33-bit intermediate masks
            continue
        assert bc.encrypt(data, addr, coeffs) == ref
        checked += 1
    assert checked > 100
    ref = bytes(BekenCodeCipher(bc.TUYA_COEFFS).encrypt(bytes(range(32)) * 4, 0x10000))
    assert bc.encrypt(bytes(range(32)) * 4, 0x10000) == ref
