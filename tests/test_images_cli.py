"""`bkbench image` and `bkbench fetch` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bkbench.core.cli.main import main
from test_releases import TAG, FakeGitHub  # the local GitHub-shaped server


@pytest.fixture()
def files(tmp_path: Path, obk_images: dict, fixtures_dir: Path) -> dict[str, Path]:
    out = {}
    for chip in ("BK7231N", "BK7231T"):
        for kind in ("qio", "ua"):
            p = tmp_path / f"{kind}-{chip}.bin"
            p.write_bytes(obk_images[chip][kind])
            out[f"{kind}-{chip}"] = p
    out["ug-n"] = fixtures_dir / "firmware" / "OpenBeken-v1.18.219_bk7231n.ug.bin"
    out["dump-t"] = fixtures_dir / "dumps" / "bk7231t-globe-37783-rgbct-bulb.bin"
    return out


@pytest.mark.parametrize(
    "key, expected",
    [
        ("qio-BK7231N", {"format": "qio", "chip": "BK7231N", "write_offset": 0x11000, "skip": 0x11000}),
        ("ua-BK7231T", {"format": "ua", "chip": "BK7231T", "write_offset": 0x11000, "skip": 0}),
        ("ug-n", {"format": "ug", "chip": "BK7231N", "version": "1.18.219", "write_offset": None}),
        ("dump-t", {"format": "dump", "chip": "BK7231T", "version": None}),
    ],
)
def test_image_json(files, capsys, key: str, expected: dict) -> None:
    assert main(["--json", "image", str(files[key])]) == 0
    out = json.loads(capsys.readouterr().out)
    for k, v in expected.items():
        assert out[k] == v, k
    assert out["length"] == out["size"] - out["skip"]
    assert main(["image", str(files[key]), "--json"]) == 0  # the flag after the command works too
    assert json.loads(capsys.readouterr().out) == out


def test_image_text(files, capsys) -> None:
    assert main(["image", str(files["ug-n"])]) == 0
    text = capsys.readouterr().out
    assert "OTA" in text and "never for UART" in text and "1.18.219" in text
    assert main(["image", str(files["qio-BK7231N"])]) == 0
    text = capsys.readouterr().out
    assert "0x011000" in text and "bl_bk7231n 1.0.1" in text


def test_image_missing_file(tmp_path, capsys) -> None:
    assert main(["image", str(tmp_path / "nope.bin")]) == 1
    assert "no such file" in capsys.readouterr().err


@pytest.fixture()
def server(obk_images):
    gh = FakeGitHub()
    assets = [
        gh.asset(TAG, f"OpenBK7231N_QIO_{TAG}.bin", obk_images["BK7231N"]["qio"]),
        gh.asset(TAG, f"OpenBK7231T_UA_{TAG}.bin", obk_images["BK7231T"]["ua"]),
    ]
    gh.publish(gh.release(TAG, assets))
    gh.routes["/repos/openshwprojects/OpenBK7231T_App/releases?per_page=3"] = (
        200, {}, json.dumps([gh.release(TAG, assets)]).encode())
    yield gh
    gh.stop()


def test_fetch_cli(server, tmp_path, capsys, obk_images) -> None:
    base = ["fetch", "--api", server.base, "--cache-dir", str(tmp_path / "c")]
    assert main(base + ["--chip", "bk7231t"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path.read_bytes() == obk_images["BK7231T"]["ua"]
    out_file = tmp_path / "out.bin"
    assert main(["--json"] + base + ["--chip", "bk7231n", "--version", TAG, "--output", str(out_file)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["path"] == str(out_file) and res["image"]["format"] == "qio" and res["tag"] == TAG
    assert out_file.read_bytes() == obk_images["BK7231N"]["qio"]
    assert main(base + ["--list", "--count", "3", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing[0]["tag"] == TAG and listing[0]["files"]["BK7231N"][""] == f"OpenBK7231N_QIO_{TAG}.bin"


def test_fetch_cli_errors(server, tmp_path, capsys) -> None:
    base = ["fetch", "--api", server.base, "--cache-dir", str(tmp_path / "c")]
    assert main(base) == 1
    assert "--chip" in capsys.readouterr().err
    assert main(base + ["--chip", "bk7231n", "--version", "0.0.1"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(base + ["--chip", "bk7231n", "--variant", "berry"]) == 1
    assert "variant" in capsys.readouterr().err
