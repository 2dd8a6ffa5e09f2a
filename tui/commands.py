"""The command palette's entries for every workflow (ctrl+p)."""

from __future__ import annotations

from typing import Any, Callable

from textual.command import DiscoveryHit, Hit, Hits, Provider


class OperationsProvider(Provider):
    """Command palette entries for every workflow."""

    COMMANDS = (
        ("Connect to the chip", "connect", "Handshake with the bootloader (reset the chip when asked)"),
        ("Link doctor: diagnose the connection", "doctor", "Listen, link, probe: says what is wrong and what to do"),
        ("Analyze the newest backup of this chip", "analyze", "Chip, firmware, Tuya keys, OpenBK pins, partitions"),
        ("Edit OpenBK config (Wi-Fi, MQTT, pins)…", "config", "Read, edit and write only the config sector"),
        ("Backup: read the full flash into the library", "backup", "Full dump, verified by CRC"),
        ("Write image…", "write", "Pick a file, see where it goes, confirm, write, verify, reboot"),
        ("Verify chip against the newest backup", "verify", "Compare the flash with a backup by CRC"),
        ("Backups library (verify / restore)", "library", "Browse backups and their metadata"),
        ("Release port (reboot chip, resume log)", "release", "Hand the port back to the serial log"),
        ("Cancel the running operation", "cancel_op", "Stops between sectors"),
        ("Multi-port view: several chips at once", "station",
         "A state per port; backup then OpenBK on every selected port (m)"),
        ("Serial log: pause / resume", "log('toggle_pause')", ""),
        ("Serial log: hex view", "log('toggle_hex')", ""),
        ("Serial log: search", "log('search')", ""),
        ("Serial log: clear", "log('clear')", ""),
        ("Serial log: save to file", "log('save')", ""),
    )

    async def discover(self) -> Hits:
        for title, action, help_text in self.COMMANDS:
            yield DiscoveryHit(title, self._runner(action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, action, help_text in self.COMMANDS:
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), self._runner(action), help=help_text)

    def _runner(self, action: str) -> Callable[[], Any]:
        async def run() -> None:
            await self.app.run_action(action)

        return run
