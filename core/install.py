"""How this copy of bkbench was installed, so that a hint to add an optional extra is a command that works.

A pipx copy lives in its own venv (`pipx inject` adds to it; `pip install 'bkbench[serve]'` would look for
bkbench on PyPI and install into another Python); a source checkout has `./dev` and its `.venv`; anything
else gets pip for the very Python running bkbench.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path


def pipx_venv(prefix: str | None = None) -> str | None:
    """The pipx venv name (`bkbench`) when this Python is a venv pipx made (it leaves pipx_metadata.json in
    it, wherever PIPX_HOME is), else None."""
    path = Path(prefix or sys.prefix)
    return path.name if (path / "pipx_metadata.json").is_file() else None


def checkout_dir() -> Path | None:
    """The source checkout this copy runs from (an editable install, or `python -m` in the checkout)."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "dev").is_file() and (root / "pyproject.toml").is_file() else None


def add_extra_hint(extra: str, requirement: str, dev_command: str = "") -> str:
    """One command that gives this copy the optional extra `extra` (whose package is `requirement`)."""
    req = shlex.quote(requirement)
    venv = pipx_venv()
    if venv is not None:
        return f"pipx inject {venv} {req}"
    root = checkout_dir()
    if root is not None:
        alt = f"./dev {dev_command}, or " if dev_command else ""
        return f"in {root}: {alt}{shlex.quote(sys.executable)} -m pip install -e '.[{extra}]'"
    return f"{shlex.quote(sys.executable)} -m pip install {req}"
