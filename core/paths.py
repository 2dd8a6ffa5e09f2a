"""Where bkbench keeps its data, cache and config (XDG), and where test fixtures live."""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(var: str, default: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / default


def data_dir() -> Path:
    env = os.environ.get("BKBENCH_DATA_DIR")
    return Path(env) if env else _xdg("XDG_DATA_HOME", ".local/share") / "bkbench"


def cache_dir() -> Path:
    env = os.environ.get("BKBENCH_CACHE_DIR")
    return Path(env) if env else _xdg("XDG_CACHE_HOME", ".cache") / "bkbench"


def config_dir() -> Path:
    env = os.environ.get("BKBENCH_CONFIG_DIR")
    return Path(env) if env else _xdg("XDG_CONFIG_HOME", ".config") / "bkbench"


def fixtures_dir() -> Path | None:
    """The shared fixtures (real dumps, logs) when present beside a source checkout."""
    env = os.environ.get("BKBENCH_SHARED")
    # An explicit BKBENCH_SHARED is the only place looked at (so a run without fixtures can be tried).
    candidates = [Path(env)] if env else [Path(__file__).resolve().parent.parent.parent / "shared"]
    for cand in candidates:
        if (cand / "fixtures").is_dir():
            return cand / "fixtures"
    return None


def rescue_dirs() -> list[Path]:
    """Where verified data goes when the backup library cannot take it, in order of preference:
    $BKBENCH_RESCUE_DIR, the working directory, home, $XDG_RUNTIME_DIR, the system temp dir."""
    import tempfile

    out = [Path(v) for v in (os.environ.get("BKBENCH_RESCUE_DIR"),) if v]
    try:
        out.append(Path.cwd())
    except OSError:
        pass
    out.append(Path.home())
    if os.environ.get("XDG_RUNTIME_DIR"):
        out.append(Path(os.environ["XDG_RUNTIME_DIR"]))
    out.append(Path(tempfile.gettempdir()))
    return out


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) and make it 0700: it holds logs or dumps with secrets."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path
