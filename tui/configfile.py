"""An OpenBK config taken from a file (offline editing): a 4 KiB config sector or a full flash dump.

The edited config is saved as a copy beside the file (or in the data dir when that folder is read-only):
a sector file gets a new sector, a dump a copy of the dump with only the config sector replaced.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bkbench.core.analysis.obk_config import ObkConfig
from bkbench.core.chips import DEFAULT_CHIP
from bkbench.core.errors import BkError
from bkbench.core.layout import OBK_CONFIG_OFFSET, SECTOR


@dataclass
class ConfigFile:
    path: Path
    data: bytes
    config: ObkConfig
    chip: str
    offset: int | None  # where the sector sits in `data` (None: the file is the sector)
    note: str
    mapping: Any = None

    def target(self) -> Path:
        suffix = "-edited.bin" if self.offset is None else "-with-config.bin"
        return self.path.with_name(self.path.stem + suffix)

    def save(self, cfg: ObkConfig, fallback_dir: Path | None = None) -> Path:
        sector = cfg.sector()
        if self.offset is None:
            blob = sector
        else:
            blob = self.data[:self.offset] + sector + self.data[self.offset + SECTOR:]
        out = self.target()
        if out.resolve() == self.path.resolve():
            raise BkError("refusing to overwrite the source file")
        folder = out.parent if os.access(out.parent, os.W_OK) else (fallback_dir or Path.home())
        out = folder / out.name
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".cfg-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            os.chmod(tmp, 0o600)  # it holds Wi-Fi and MQTT passwords
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return out


def load_config_file(path: Path, chip_hint: str = DEFAULT_CHIP) -> ConfigFile:
    data = path.read_bytes()
    if not data:
        raise BkError("the file is empty")
    if data[:3] == b"CFG" or len(data) <= SECTOR:
        try:
            cfg = ObkConfig.parse(data)
            note = f"OpenBK config read from {path.name}; saved as a new file"
        except BkError as exc:
            cfg, note = ObkConfig.new(), f"{exc} Starting from OpenBK's defaults."
        return ConfigFile(path, data, cfg, chip_hint, None, note)
    from bkbench.core.images.recognize import recognize

    info = recognize(data, path.name)
    if info.format != "dump":
        raise BkError(f"it is a {info.format} image, not a dump or an OpenBK config sector")
    chip = info.chip or chip_hint
    flash = data
    if info.rotation:
        from bkbench.core.images.recognize import unrotate

        flash = unrotate(data, info.rotation)
    offset = OBK_CONFIG_OFFSET.get(chip, OBK_CONFIG_OFFSET[DEFAULT_CHIP])
    mapping = None
    try:
        from bkbench.core.analysis.dump import analyze_dump

        mapping = analyze_dump(flash).mapping
    except Exception:
        mapping = None
    try:
        cfg = ObkConfig.parse(flash[offset:offset + SECTOR])
        note = f"OpenBK config of the dump {path.name} (0x{offset:06X}); saved as a copy of the dump"
    except BkError as exc:
        cfg, note = ObkConfig.new(), f"{exc} Starting from OpenBK's defaults; saved as a copy of the dump."
    return ConfigFile(path, flash, cfg, chip, offset, note, mapping)
