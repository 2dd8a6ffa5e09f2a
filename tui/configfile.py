"""An OpenBK config taken from a file (offline editing): a 4 KiB config sector or a full flash dump, loaded by
the engine's one config loader (core/config_file.py, as `bkbench config set` loads it).

The edited config is saved as a copy beside the file (or in the data dir when that folder is read-only):
a sector file gets a new sector, a dump a copy of the dump with only the config sector replaced.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bkbench.core.analysis.obk_config import LEGACY_CRC_NOTE, ObkConfig
from bkbench.core.analysis.tuya_pins import PinMapping
from bkbench.core.config_file import ConfigSource, load_config
from bkbench.core.errors import BkError
from bkbench.core.files import read_input_file


@dataclass
class ConfigFile:
    path: Path
    source: ConfigSource
    note: str
    mapping: PinMapping | None = None

    @property
    def config(self) -> ObkConfig:
        return self.source.config

    @property
    def chip(self) -> str | None:
        """The dump's chip, else the one a bare sector names itself after (else the connected chip's guess)."""
        return self.source.chip or self.source.config.chip

    @property
    def offset(self) -> int | None:
        return self.source.offset

    def target(self) -> Path:
        suffix = "-edited.bin" if self.source.offset is None else "-with-config.bin"
        return self.path.with_name(self.path.stem + suffix)

    def save(self, cfg: ObkConfig, fallback_dir: Path | None = None) -> Path:
        blob = self.source.file_with(cfg)
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


def load_config_file(path: Path, chip_hint: str | None = None) -> ConfigFile:
    data = read_input_file(path, "config sector or flash dump")
    source = load_config(data, fallback_chip=chip_hint, create=True)
    dump = source.offset is not None
    if source.created:
        note = f"{source.created} Starting from OpenBK's defaults" + ("; saved as a copy of the dump." if dump else ".")
    elif dump:
        note = f"OpenBK config of the dump {path.name} (0x{source.offset:06X}); saved as a copy of the dump"
    else:
        note = f"OpenBK config read from {path.name}; saved as a new file"
    if source.config.legacy_crc:
        note = LEGACY_CRC_NOTE.replace("re-save it with `bkbench config set`", "saving here fixes it")
    mapping = None
    if dump:
        try:
            from bkbench.core.analysis.dump import analyze_dump

            mapping = analyze_dump(source.data).mapping
        except Exception:
            mapping = None
    return ConfigFile(path, source, note, mapping)
