"""The engine never imports Textual (checked in a fresh interpreter)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import bkbench.core


def test_core_modules_import_without_textual():
    names = [m.name for m in pkgutil.walk_packages(bkbench.core.__path__, "bkbench.core.")]
    assert "bkbench.core.session" in names and "bkbench.core.sim.device" in names
    code = (
        "import importlib, sys\n"
        f"for n in {names!r}:\n"
        "    importlib.import_module(n)\n"
        "bad = [m for m in sys.modules if m == 'textual' or m.startswith('textual.') or m.startswith('bkbench.tui')]\n"
        "print(','.join(bad))\n"
        "sys.exit(1 if bad else 0)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"core pulled in: {res.stdout} {res.stderr[-2000:]}"
