"""Reading a file a user named: the one reader every frontend uses (CLI, station, workbench)."""

from __future__ import annotations

import os
import stat

from .chips import MAX_FLASH
from .errors import BkError


def read_input_file(path: str | os.PathLike, what: str = "file", max_size: int = MAX_FLASH) -> bytes:
    """Read a user-named input file, refusing before opening it what would hang or exhaust memory:
    directories, FIFOs, devices (/dev/zero), and anything larger than the largest flash."""
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except OSError as exc:
        raise BkError(f"{p}: {exc.strerror.lower() if exc.strerror else exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise BkError(f"{p} is a directory, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise BkError(f"{p} is not a regular file (a pipe or device); give a {what} saved on disk")
    if st.st_size > max_size:
        raise BkError(f"{p} is {st.st_size:,} bytes, larger than any {what} ({max_size:,} bytes at most)")
    try:
        with open(p, "rb") as fh:
            return fh.read(max_size + 1)[: max_size]
    except OSError as exc:
        raise BkError(f"cannot read {p}: {exc.strerror or exc}") from None
