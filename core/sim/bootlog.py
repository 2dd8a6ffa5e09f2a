"""What the simulated chip prints on UART1 when its application runs."""

from __future__ import annotations

import os
from pathlib import Path

from ..paths import fixtures_dir

SYNTHETIC_T_LOG = (
    "\r\nV:BK7231S_1.0.5\r\n"
    "CPSR:000000D3\r\n"
    "J 0x10000\r\n"
    "[Flash]id:0xeb6015\r\n"
    "[01-01 00:00:00 TUYA N][simulated] BK7231T stock application (synthetic log, no real T log in fixtures)\r\n"
)


def openbk_log(chip: str, version: str) -> str:
    """A short OpenBK start-up log; enough for the banner check after a write (synthetic)."""
    return (
        f"\r\nV:{'BK7231N_1.0.1' if chip == 'BK7231N' else 'BK7231S_1.0.5'}\r\n"
        "J 0x10000\r\n"
        f"Info:MAIN:Main_Init_Before_Delay: OpenBK7231{chip[-1]} {version}\r\n"
        f"Info:MAIN:{chip} OpenBeken {version} started (simulated log)\r\n"
        "Info:CFG:CFG_InitAndLoad: config read OK\r\n"
        "Info:MAIN:Started in AP mode\r\n"
    )


def stock_log(chip: str) -> str:
    env = os.environ.get("BKBENCH_BOOTLOG")
    if env and Path(env).is_file():
        return Path(env).read_text(errors="replace")
    fx = fixtures_dir()
    if chip == "BK7231N" and fx is not None:
        logs = sorted((fx / "bootlogs").glob("bk7231n-*.log"))
        if logs:
            return logs[0].read_text(errors="replace")
    if chip == "BK7231N":
        return SYNTHETIC_T_LOG.replace("BK7231S_1.0.5", "BK7231N_1.0.1").replace("BK7231T", "BK7231N")
    return SYNTHETIC_T_LOG


HEARTBEAT = "[TUYA D][simulated] heart beat, free heap 42000\r\n"
