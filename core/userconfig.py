"""The user's settings file: `config.json` in `bkbench.core.paths.config_dir()`.

A small JSON object, written atomically (temporary file, fsync, rename) under an advisory lock so
two bkbench processes cannot lose each other's changes. A file that does not parse never blocks
flashing: it reads as empty and is kept aside as `config.json.corrupt` on the next write.

Keys used so far (dotted paths): `adapters.<key>` = per-adapter link memory (core/link/baud.py).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

from .backups import atomic_write
from .paths import config_dir

CONFIG_NAME = "config.json"

try:  # advisory locking where the platform has it (Linux, macOS)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def config_path() -> Path:
    return config_dir() / CONFIG_NAME


def _read(path: Path) -> tuple[dict[str, Any], bool]:
    """(settings, corrupt)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, False
    except OSError:
        return {}, False
    try:
        data = json.loads(text)
    except ValueError:
        return {}, True
    return (data, False) if isinstance(data, dict) else ({}, True)


def load() -> dict[str, Any]:
    """The whole settings object ({} when there is no file or it is unreadable)."""
    return _read(config_path())[0]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def save(settings: dict[str, Any]) -> Path:
    path = config_path()
    with _locked(path):
        return _write(path, settings)


def _write(path: Path, settings: dict[str, Any]) -> Path:
    data = (json.dumps(settings, indent=2, sort_keys=True) + "\n").encode("utf-8")
    return atomic_write(path, data, mode=0o600, overwrite=True)


def update(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """Read, let `change` edit the dict in place, write back only if it changed; returns the new dict."""
    path = config_path()
    with _locked(path):
        settings, corrupt = _read(path)
        before = json.dumps(settings, sort_keys=True)
        change(settings)
        if json.dumps(settings, sort_keys=True) != before or corrupt:
            if corrupt:
                with contextlib.suppress(OSError):
                    os.replace(path, path.with_name(path.name + ".corrupt"))
            _write(path, settings)
        return settings


def get(key: str, default: Any = None) -> Any:
    """A value by dotted path (`adapters.usb:1A86:7523`; only the first dot splits adapter keys)."""
    node: Any = load()
    for part in _split(key):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def set_value(key: str, value: Any) -> None:
    """Set (or with value None remove) a value by dotted path."""
    parts = _split(key)

    def change(settings: dict[str, Any]) -> None:
        node = settings
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if value is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value

    update(change)


def _split(key: str) -> list[str]:
    # Adapter keys contain dots and colons (paths, URLs): only the section name is split off.
    head, sep, rest = key.partition(".")
    return [head, rest] if sep else [head]
