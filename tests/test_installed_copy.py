"""The README's statements for an installed copy (pipx), judged on a wheel built from this checkout.

The wheel is built as pipx builds it (pip, isolated build) and installed into a fresh venv; its
dependencies (textual, pyserial, ...) are borrowed from the test's own venv through a path file, so
nothing is downloaded and no ../shared is in reach: `bkbench` there is the installed copy alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import ORIGINAL_HOME

pytestmark = pytest.mark.slow  # ~25 s: the wheel build takes most of it
ROOT = Path(__file__).resolve().parent.parent


def _pip_env() -> dict[str, str]:
    """pip with the user's own configuration (the package index), not the test's empty home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "PIP_REQ", "PYTHONPATH"))}
    env["HOME"] = ORIGINAL_HOME
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a venv holding the wheel of this checkout."""
    base = tmp_path_factory.mktemp("installed")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in ("core", "tui"):  # a copy: the build leaves build/ and *.egg-info where it runs
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run(  # -v: setuptools' warnings are shown
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(base / "dist"), str(src)],
        capture_output=True, text=True, env=_pip_env(), timeout=300)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    # setuptools deprecated `project.license` as a table (issue 22): the build must not warn about it
    assert "SetuptoolsDeprecationWarning" not in build.stdout + build.stderr, build.stdout[-3000:]
    (wheel,) = (base / "dist").glob("bkbench-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    inst = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", str(wheel)],
                          capture_output=True, text=True, env=_pip_env(), timeout=300)
    assert inst.returncode == 0, inst.stdout[-2000:] + inst.stderr[-2000:]
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # The dependencies, from this venv's site-packages: a plain path entry, so this venv's .pth files (the
    # editable bkbench of the checkout among them) are not run there.
    Path(site, "deps-from-the-test-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin"


def _run(bin_dir: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BKBENCH_SHARED", "PYTHONPATH"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


def test_the_installed_copy_is_the_wheel_and_has_no_fixtures(installed: Path, tmp_path: Path):
    r = _run(installed, str(installed / "python"), "-c",
             "import bkbench.core.paths as p, bkbench.tui as t, pathlib; print(p.__file__); "
             "print(p.fixtures_dir()); print(sorted(f.name for f in pathlib.Path(t.__file__).parent.rglob('*.tcss')))",
             cwd=tmp_path)
    path, fixtures, tcss = r.stdout.splitlines()
    assert path.startswith(str(installed.parent)) and fixtures == "None", r.stdout + r.stderr
    assert eval(tcss) == sorted(f.name for f in (ROOT / "tui").rglob("*.tcss"))  # the styles came along


def test_readme_demo_image_and_station_example(installed: Path, tmp_path: Path):
    """`bkbench simulate --save-demo demo.bin`, `bkbench analyze demo.bin`, and the station example with
    `sim://bk7231n?unplug=100000`, whose last port must fail (it ended `done` with 300000 on the demo plug)."""
    r = _run(installed, "bkbench", "simulate", "--save-demo", "demo.bin", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _run(installed, "bkbench", "analyze", "demo.bin", cwd=tmp_path)
    assert r.returncode == 0 and "stock Tuya" in r.stdout and "02:bd:e0:00:12:31" in r.stdout, r.stdout + r.stderr
    readme = (ROOT / "README.md").read_text()
    comment = next(line for line in readme.splitlines() if line.startswith("$ bkbench read --ports-file bench.txt"))
    ports = [p.strip() for p in comment.split("#", 1)[1].split(",")]
    (tmp_path / "bench.txt").write_text("\n".join(ports) + "\n")
    r = _run(installed, "bkbench", "read", "--ports-file", "bench.txt", "--json", cwd=tmp_path)
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["state"] for row in rows] == ["done", "done", "failed"] and r.returncode == 1, r.stdout + r.stderr
    assert "still to do: 0x010000-0x200000" in rows[2]["error"]  # as the README's table says


def test_readme_demo_plugs_and_their_openbk(installed: Path, tmp_path: Path):
    """`--demo 3` of an installed copy: three built-in BK7231N plugs with their own MACs; its stand-in
    OpenBK is recognised by its banner and boots as OpenBK 0.0.0-demo after a write."""
    script = ("import json; from bkbench.tui.demo import setup_demo_chips, seed_demo_openbk; "
              "from bkbench.core.sim import registry; from bkbench.core.sim.bootlog import _mac; "
              "urls = setup_demo_chips(3); devs = [registry.get(u[7:]) for u in urls]; "
              "print(json.dumps({'chips': [d.chip for d in devs], "
              "'macs': [_mac(bytes(d.flash.data), d.chip) for d in devs], 'openbk': seed_demo_openbk()}))")
    r = _run(installed, str(installed / "python"), "-c", script, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout)
    assert got["chips"] == ["BK7231N"] * 3 and len(set(got["macs"])) == 3
    assert got["openbk"] == ["OpenBK7231N_QIO_0.0.0-demo.bin"]
    (qio,) = Path(os.environ["BKBENCH_CACHE_DIR"]).rglob("OpenBK7231N_QIO_0.0.0-demo.bin")
    r = _run(installed, "bkbench", "image", str(qio), cwd=tmp_path)
    assert "OpenBK 0.0.0-demo" in r.stdout, r.stdout + r.stderr
    r = _run(installed, "bkbench", "write", "-p", "sim://bk7231n", str(qio), cwd=tmp_path)
    assert r.returncode == 0 and "the new firmware is running (banner seen)" in r.stderr, r.stdout + r.stderr
    # What the plug prints after that write (it said "version unknown: no banner found" before issue 22)
    script = ("import sys; from bkbench.core.demo_image import demo_flash; from bkbench.core.sim import bootlog; "
              "flash = bytearray(demo_flash()); qio = open(sys.argv[1], 'rb').read(); "
              "flash[0x11000:len(qio)] = qio[0x11000:]; "
              "print(bootlog.device_log(bytes(flash), 'BK7231N', 'BK7231N_1.0.1', (0xEB, 0x60, 0x15), from_end=False))")
    r = _run(installed, str(installed / "python"), "-c", script, str(qio), cwd=tmp_path)
    assert "OpenBeken 0.0.0-demo started" in r.stdout and "version unknown" not in r.stdout, r.stdout + r.stderr
