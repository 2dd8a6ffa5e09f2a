"""Shared pytest fixtures: where the read-only ground truth (../shared) lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return Path(os.environ.get("BKBENCH_SHARED", Path(__file__).resolve().parent.parent.parent / "shared"))


@pytest.fixture(scope="session")
def fixtures_dir(shared_dir: Path) -> Path:
    return shared_dir / "fixtures"


@pytest.fixture(scope="session")
def obk_images(fixtures_dir: Path) -> dict:
    """Per chip: the real OpenBK 1.18.219 OTA file, its plain app, and UA / QIO images built from it
    (core/images/builders.py) with the bootloader of a real dump of that chip."""
    from bkbench.core.images.builders import build_from_ota

    out = {}
    for chip, dump in (
        ("BK7231N", "bk7231n-lspa9-clone-bl0937-plug.bin"),
        ("BK7231T", "bk7231t-feit-br30-rgbw-bulb.bin"),
    ):
        ota = (fixtures_dir / "firmware" / f"OpenBeken-v1.18.219_{chip.lower()}.ug.bin").read_bytes()
        images = build_from_ota(ota, (fixtures_dir / "dumps" / dump).read_bytes(), chip)
        images["ota"] = ota
        out[chip] = images
    return out


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Every test gets its own config, data and cache dirs: nothing leaks between tests or into $HOME."""
    base = tmp_path_factory.mktemp("user")
    for var, sub in (("BKBENCH_CONFIG_DIR", "config"), ("BKBENCH_DATA_DIR", "data"), ("BKBENCH_CACHE_DIR", "cache")):
        monkeypatch.setenv(var, str(base / sub))
