"""Wire-timing model of the simulated chip and adapter; off by default, on for benchmarks.

Sources for the defaults:
- 10 bits per byte (8N1), PROTOCOL-DETAILS.md 9.1.
- Chip CRC throughput 400 kB/s: bk7231tools `crc_speed_bps` (PROTOCOL-DETAILS.md 9.2).
- Flash latencies: GigaDevice GD25Q16C datasheet typical values (4 KiB sector erase 50 ms,
  64 KiB block erase 200 ms, 256-byte page program 0.6 ms); no BK7231 source gives figures.
- USB adapter latency 1 ms per reply: one full-speed USB frame; families without a latency timer
  (CH340, CP210x, PL2303) publish no figure. A simulated adapter (core/sim/adapter.py, `?adapter=`)
  replaces it with its own model: an FTDI holds a partial packet until its latency timer (16 ms by
  default, 1 ms once lowered) ticks.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Timing:
    enabled: bool = False
    crc_bytes_per_s: float = 400_000.0
    erase_4k_s: float = 0.050
    erase_64k_s: float = 0.200
    program_page_s: float = 0.0006  # per 256 bytes
    usb_latency_s: float = 0.001
    command_overhead_s: float = 0.0001  # chip firmware dispatch

    def wire(self, nbytes: int, baud: int) -> float:
        return nbytes * 10.0 / baud if self.enabled else 0.0

    def crc(self, nbytes: int) -> float:
        return nbytes / self.crc_bytes_per_s if self.enabled else 0.0

    def erase(self, size: int) -> float:
        if not self.enabled:
            return 0.0
        return self.erase_64k_s if size >= 0x10000 else self.erase_4k_s

    def program(self, nbytes: int) -> float:
        return ((nbytes + 255) // 256) * self.program_page_s if self.enabled else 0.0

    def latency(self) -> float:
        return self.usb_latency_s if self.enabled else 0.0

    def overhead(self) -> float:
        return self.command_overhead_s if self.enabled else 0.0
