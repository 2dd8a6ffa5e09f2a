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


def test_no_engine_module_imports_the_cli():
    """The CLI drives the engine, never the other way round: no module under core/ outside core/cli/ imports
    bkbench.core.cli (checked in a fresh interpreter, so a lazy import inside a function counts once run)."""
    engine = [m.name for m in pkgutil.walk_packages(bkbench.core.__path__, "bkbench.core.")
              if not m.name.startswith("bkbench.core.cli.") and m.name != "bkbench.core.cli"]
    code = (
        "import importlib, sys\n"
        f"for n in {engine!r}:\n"
        "    importlib.import_module(n)\n"
        "bad = [m for m in sys.modules if m == 'bkbench.core.cli' or m.startswith('bkbench.core.cli.')]\n"
        "print(','.join(bad))\n"
        "sys.exit(1 if bad else 0)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"the engine pulled in the CLI: {res.stdout} {res.stderr[-2000:]}"
    # A lazy import inside a function is only seen when it runs: read the source for those too.
    from pathlib import Path

    root = Path(bkbench.core.__path__[0])
    cli_imports = ("from .cli ", "from .cli.", "from ..cli ", "from ..cli.", "import bkbench.core.cli",
                   "from bkbench.core.cli")
    found = [f"{p.relative_to(root)}: {line.strip()}" for p in root.rglob("*.py") if "cli" not in p.parts
             for line in p.read_text().splitlines() if line.strip().startswith(cli_imports)]
    assert not found, found
