"""OTA packages of every OpenBK generation, the right release asset per family, another family's build refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from bkbench.core.errors import ImageError
from bkbench.core.images import rbl
from bkbench.core.images.recognize import PLAIN_APP_SIGNATURE, recognize
from bkbench.core.images.releases import AssetNotFoundError, ReleaseClient
from familyhelpers import family_image
from test_releases import FakeGitHub

TAG = "1.18.230"


def _ota(app: bytes, version: str = "1.17.205") -> bytes:
    return rbl.wrap_ug(rbl.pack_rbl(app, version=version, timestamp=1), version)


def _old_app(*strings: bytes) -> bytes:
    """An app of an older generation: no "OpenBK7231N <ver> <date>" banner, only other strings."""
    return PLAIN_APP_SIGNATURE + bytes(56) + b"\x00".join(strings) + b"\x00" + bytes(range(256)) * 64


@pytest.mark.parametrize(
    "strings, chip, source",
    [
        ((b"OpenBK7231N_%02X%02X%02X%02X", b"Built on Mar  3 2023 10:00:00 version 1.17.205"), "BK7231N",
         "device-name"),
        ((b"OpenBK7231T_%02X%02X%02X%02X", b"Build on Jan 10 2023 10:00:00 version 1.15.480"), "BK7231T",
         "device-name"),
        ((b"", b"bekens_8s", b"Built on Mar  3 2023 10:00:00 version 1.17.205"), "BK7238", "mqtt-group"),
        ((b"", b"bekens_52n"), "BK7252N", "mqtt-group"),
    ],
)
def test_older_ota_generations_are_recognised_by_content(strings, chip, source):
    info = recognize(_ota(_old_app(*strings)), "firmware.bin")
    assert info.format == "ug" and (info.chip, info.chip_source) == (chip, source)
    built = next((s for s in strings if b"version" in s), None)
    assert info.version == (built.rsplit(b" ", 1)[1].decode() if built else "1.17.205")


def test_ota_without_content_hints_takes_the_name_last_and_says_so():
    ota = _ota(_old_app(b"nothing to see"))
    assert recognize(ota, "firmware.bin").chip is None
    info = recognize(ota, "OpenBK7238_1.17.205.rbl")
    assert (info.chip, info.chip_source) == ("BK7238", "name")
    assert any("file name only" in w for w in info.warnings)


def test_content_beats_the_name_for_ota_too():
    info = recognize(_ota(_old_app(b"OpenBK7231T_%02X%02X%02X%02X")), "OpenBK7231N_UG_1.17.205.bin")
    assert (info.chip, info.chip_source) == ("BK7231T", "device-name")


def test_name_that_contradicts_the_code_key_is_not_taken():
    # A zero-key app without banner fits M, U, BK7238, ...; a name saying BK7231N (Tuya key) is refused.
    from bkbench.core.images import builders

    ua = builders.build_ua(PLAIN_APP_SIGNATURE + bytes(0x2000), coeffs=(0, 0, 0, 0))
    info = recognize(ua, "OpenBK7231N_UA_1.18.230.bin")
    assert info.chip is None and any("file name says BK7231N" in w for w in info.warnings)


@pytest.fixture()
def gh():
    server = FakeGitHub()
    assets = []
    for chip in ("BK7231M", "BK7231U", "BK7238", "BK7252", "BK7252N"):
        kind, data = family_image(chip, TAG)
        target = chip[2:]
        assets.append(server.asset(TAG, f"OpenBK{target}_{kind.upper()}_{TAG}.bin", data))
        assets.append(server.asset(TAG, f"OpenBK{target}_{TAG}.rbl", b"RBL\x00" + bytes(200)))
    # The other kind too, so the choice is real: a UA for the QIO families, a QIO for the UA ones.
    assets.append(server.asset(TAG, f"OpenBK7238_UA_{TAG}.bin", family_image("BK7238", TAG)[1][0x11000:]))
    server.publish(server.release(TAG, assets))
    yield server
    server.stop()


@pytest.mark.parametrize("chip, name, fmt", [
    ("BK7231M", f"OpenBK7231M_QIO_{TAG}.bin", "qio"),
    ("BK7238", f"OpenBK7238_QIO_{TAG}.bin", "qio"),
    ("BK7252N", f"OpenBK7252N_QIO_{TAG}.bin", "qio"),
    ("BK7231U", f"OpenBK7231U_UA_{TAG}.bin", "ua"),
    ("BK7252", f"OpenBK7252_UA_{TAG}.bin", "ua"),
])
def test_fetch_takes_the_family_asset(gh, tmp_path: Path, chip, name, fmt):
    client = ReleaseClient(api_base=gh.base, cache_dir=tmp_path / "cache")
    res = client.fetch(chip)
    assert res.asset.name == name
    assert (res.info.format, res.info.chip, res.info.version) == (fmt, chip, TAG)


def test_fetch_refuses_another_familys_build_under_the_name(gh, tmp_path: Path):
    _, n_build = family_image("BK7231N", TAG)
    gh.publish(gh.release("w", [gh.asset("w", f"OpenBK7238_QIO_{TAG}.bin", n_build)]), latest=False)
    client = ReleaseClient(api_base=gh.base, cache_dir=tmp_path / "cache")
    with pytest.raises(ImageError, match="is for BK7231N"):
        client.fetch("BK7238", version="w")


def test_no_uart_image_for_read_only_families(gh, tmp_path: Path):
    client = ReleaseClient(api_base=gh.base, cache_dir=tmp_path / "cache")
    with pytest.raises(AssetNotFoundError):
        client.fetch("BK7236")
