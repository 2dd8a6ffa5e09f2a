"""Tuya KV vault: parser details and agreement with bk7231tools (never printing values)."""

from __future__ import annotations

import hashlib

import pytest
from bkbench.core.analysis import tuya_kv

DUMPS_WITH_VAULT = [
    "bk7231n-lspa9-clone-bl0937-plug.bin",
    "bk7231n-mirabella-genio-i003632-plug.bin",
    "bk7231n-elegrp-dpr10-tuyamcu-dimmer.bin",
    "bk7231n-ap-smt-breaker02-relay.bin",
    "bk7231t-feit-br30-rgbw-bulb.bin",
    "bk7231t-globe-37783-rgbct-bulb.bin",
    "bk7231t-led-moon-cct-rotated-0x11000.bin",
    "bk7231t-pc44ha-tuya-kv-region-only.bin",
]


def test_parse_user_param_key_types() -> None:
    upk = tuya_kv.parse_user_param_key("{rl1_pin:26,jv:1.0.5,module:CB2S,category:0505,neg:-3,crc:1,}")
    assert upk == {"rl1_pin": 26, "jv": "1.0.5", "module": "CB2S", "category": "0505", "neg": -3, "crc": 1}
    assert tuya_kv.parse_user_param_key("{a:[1,x],b:{c:2}}") == {"a": [1, "x"], "b": {"c": 2}}
    with pytest.raises(ValueError):
        tuya_kv.parse_user_param_key("{a:1")


def test_mask_value() -> None:
    v = {"ssid": "x", "passwd": "y", "country_code": "CN", "inner": {"psk_key": "z"}, "token": None}
    m = tuya_kv.mask_value("gw_other", v)
    assert m == {"ssid": "<secret>", "passwd": "<secret>", "country_code": "CN",
                 "inner": {"psk_key": "<secret>"}, "token": None}
    assert tuya_kv.mask_value("gw_wsm", {"a": 1}) == "<secret>"


def test_mask_value_keeps_button_functions_and_masks_keys() -> None:
    """`keyfunc` (a button's function in user_param_key) is configuration, not a secret (issue 22)."""
    m = tuya_kv.mask_value("user_param_key", {"keyfunc": 1, "bt1_pin": 10, "key": "k", "lckey": "l",
                                              "auth_key": "a", "psk21_key": "p", "Key": "K"})
    assert m == {"keyfunc": 1, "bt1_pin": 10, "key": "<secret>", "lckey": "<secret>", "auth_key": "<secret>",
                 "psk21_key": "<secret>", "Key": "<secret>"}


@pytest.mark.parametrize("name", DUMPS_WITH_VAULT)
def test_vault_found_with_valid_checksums(fixtures_dir, name: str) -> None:
    data = (fixtures_dir / "dumps" / name).read_bytes()
    v = tuya_kv.read_vault(data)
    assert v is not None and v.problems == []
    assert all(e.checksum_ok for e in v.entries.values())
    assert {"gw_bi", "gw_wsm"} <= set(v.keys())


def test_no_vault_in_erased_data() -> None:
    assert tuya_kv.read_vault(b"\xff" * 0x20000) is None


def _h(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.mark.peers
@pytest.mark.parametrize("name", DUMPS_WITH_VAULT)
def test_agrees_with_bk7231tools(fixtures_dir, name: str) -> None:
    pytest.importorskip("Crypto")
    from bk7231tools.analysis.kvstorage import KVStorage

    data = (fixtures_dir / "dumps" / name).read_bytes()
    ours = tuya_kv.read_vault(data)
    pos, storage = KVStorage.find_storage(data)
    assert ours.offset == pos
    peer = KVStorage.decrypt_and_unpack(storage)
    theirs = peer.read_all_values()
    # Every key the peer finds, with the same bytes (compared by hash so nothing is printed).
    assert set(theirs) <= set(ours.keys())
    mismatched = [k for k in theirs if _h(ours.raw(k)) != _h(theirs[k])]
    assert mismatched == []
    # The peer reads only the first 0x8000 bytes of the vault; extra keys must come from later blocks.
    for extra in set(ours.keys()) - set(theirs):
        block = ours.entries[extra].block_id
        assert ours.blocks[block] >= pos + 0x8000
    if "user_param_key" in theirs:
        assert peer.read_value_parsed(peer.indexes["user_param_key"]) == ours.user_param_key
