"""Keeping a T bootloader in download mode, and getting it back there: the keepalive, the restart, the revive.

The Tuya T bootloader reboots itself after ~400,000 main-loop passes without a byte once a host linked
(REALCODE.md B.11): a loop count, not a timer, so on a chip it may be well under a second. Its watchdog reboot
passes through a new boot window (at 115200) and then runs the application. Three mechanisms, one primitive
each (the client's exchange lock keeps every one of them out of an operation's exchanges):

- `Keepalive`: a small owner of the port between exchanges. When the line has been quiet for `interval` s and
  no exchange holds the port, it sends one LinkCheck (what the client sends as a barrier anyway; on a T it arms
  the one-shot unprotect of the next erase, which is what every write does before erasing). No answer at the
  session's rate: the chip may have rebooted anyway (an interval longer than its idle count): LinkChecks at
  115200 catch its boot window and the rate is switched back; each such catch quarters the interval (the
  chip has shown it idles out sooner). Nothing caught: `lost`, and the session revives it before its next operation.
- `restart`: the Reboot command (`0e a5`) plus LinkChecks in the boot window (REALCODE.md B.10), else the
  session's reset strategy; then the rate again. A write uses it where only a restart lets erases through
  (bootloader 1.0.4 after a CheckCRC, core/ops/planned.py).
- `revive`: before an operation, a chip that stopped answering is caught in a boot window or reset by the
  session's strategy (which may ask the user), and must be the same chip as before.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from ..client import LINK_BAUD, BkClient
from ..errors import BkError, LinkLost, ProtocolError
from ..ops.events import Notice
from ..protocol import LINK_CHECK_REPLY_CODE, Cmd

if TYPE_CHECKING:
    from ..session import Session

INTERVAL = 0.1  # s of quiet line before a keepalive LinkCheck; the real idle time is unmeasured (B.11)
MIN_INTERVAL = 0.02
CATCH = 0.6  # s of LinkChecks at 115200 to catch a boot window (the simulator's is 0.3 s; a chip's unmeasured)
PROBE_AFTER = 0.5  # s of quiet line after which an operation first checks that the chip still answers


def _ping(client: BkClient) -> bool:
    """One LinkCheck; False when nothing answered (a damaged reply counts as an answer: the chip is there)."""
    try:
        client.command(Cmd.LINK_CHECK, reply_code=LINK_CHECK_REPLY_CODE, timeout=0.1)
        return True
    except ProtocolError:
        try:
            client.command(Cmd.LINK_CHECK, reply_code=LINK_CHECK_REPLY_CODE, timeout=0.1)
            return True
        except ProtocolError:
            return False


def catch(client: BkClient, baud: int, window: float = CATCH) -> bool:
    """LinkChecks at 115200 for `window` s (a boot window after an idle or Reboot restart), then `baud` again.
    Raises ProtocolError when caught but the rate switch fails (the chip then listens at 115200)."""
    with client.lock:
        client.drain()  # a reply received at the old rate is not an answer from a boot window
        if not client.link(timeout=window, baud=LINK_BAUD, window=0.003):
            return False
        if baud != LINK_BAUD:
            client.set_baudrate(baud)
        return True


def restart(client: BkClient, baud: int | None = None, tries: int = 3) -> None:
    """Restart the bootloader (Reboot command, boot window caught by LinkChecks; else `client.reset_link`, the
    session's reset strategy) and leave it linked at `baud` (the port's rate by default), BootVersion as before.
    A chip that does not come back cleanly raises LinkLost: the session then reconnects and resumes."""
    try:
        _restart(client, baud, tries)
    except ProtocolError as exc:
        raise LinkLost(f"the bootloader did not come back cleanly after its restart: {exc}") from exc


def _restart(client: BkClient, baud: int | None, tries: int) -> None:
    with client.lock:
        baud = baud or client.port.baudrate
        caught = False
        for _ in range(tries):
            if client.restart_bootloader(CATCH):
                caught = True
                break
            # Not caught at 115200: the Reboot frame may have been lost and the chip still listens at `baud`.
            if baud == LINK_BAUD or not client.link(0.2, baud=baud):
                break
        if not caught:
            if client.reset_link is None:
                raise LinkLost("the bootloader did not come back after its Reboot command (no boot window caught)")
            client.reset_link()
        if client.port.baudrate != baud:
            client.set_baudrate(baud)
        client.relink()  # the one-shot unprotect of the next erase is armed by a LinkCheck at the final rate
        said = client.boot_version() if client.boot_said else None
        if said != client.boot_said:
            raise LinkLost(f"after the restart the bootloader reports {said or 'nothing'}, not {client.boot_said}: "
                           "is it the same chip?")


class Keepalive:
    """LinkChecks on a quiet line from a background thread while the session holds a linked BASIC chip."""

    def __init__(self, client: BkClient, interval: float | None = None) -> None:
        self.client = client
        self.interval = interval or INTERVAL
        self.lost = False  # nothing answered, not even in a boot window: the session revives it
        self.caught = 0  # idle restarts caught in their boot window (the interval was too long)
        self.pings = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Keepalive:
        self._thread = threading.Thread(target=self._run, name="bkbench-keepalive", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stop.is_set()

    def _run(self) -> None:
        client = self.client
        while not self._stop.wait(min(self.interval / 2, 0.05)):
            if self.lost or time.monotonic() - client.last_io < self.interval:
                continue
            if not client.lock.acquire(blocking=False):
                continue  # an exchange owns the port
            try:
                if self._stop.is_set() or time.monotonic() - client.last_io < self.interval:
                    continue
                self._tick()
            except BkError as exc:
                # A reply to a destructive command that arrived between operations: the next command says so.
                if client.deferred_error is None and not isinstance(exc, ProtocolError):
                    client.deferred_error = exc
            except Exception:  # noqa: BLE001 - a vanished port: the next operation finds out and says so
                self.lost = True
            finally:
                client.lock.release()

    def _tick(self) -> None:
        client = self.client
        self.pings += 1
        if _ping(client):
            return
        baud = client.port.baudrate
        try:
            if catch(client, baud):
                self.caught += 1
                self.interval = max(MIN_INTERVAL, self.interval / 4)
                return
        except ProtocolError:
            pass
        client.port.baudrate = baud
        self.lost = True


def revive(session: Session) -> str | None:
    """Before an operation: the chip must answer. A keepalive that lost it, or a line quiet for a while with no
    answer now: catch a boot window, else reconnect by the session's reset strategy (it may ask the user) and
    check that the same chip answers. Returns what happened (None: nothing needed)."""
    client, info, keep = session.client, session.info, session.keepalive
    if client is None or info is None or keep is None:
        return None
    with client.lock:  # a keepalive tick under way finishes first (it may be catching a boot window)
        if not keep.lost and (time.monotonic() - client.last_io < PROBE_AFTER or _ping(client)):
            return None
    keep.stop()
    baud = info.baud
    how = None
    try:
        if catch(client, baud):
            how = "caught again in its boot window"
    except ProtocolError:
        pass
    if how is None:
        before = (info.chip, info.boot_crc, info.mac)
        if not session._reconnect():
            raise LinkLost("the chip stopped answering while idle and did not come back")
        now = session.info
        assert now is not None
        if (now.chip, now.boot_crc, now.mac) != before:
            raise BkError(f"another chip answers on this port now ({now.chip}, MAC {now.mac}, was {before[0]}, "
                          f"MAC {before[2]}): nothing was done to it",
                          hint="start the operation again: it takes this chip's backup first")
        how = "linked again by a reset"
    else:
        session.start_keepalive()
    note = f"the chip had left its bootloader while idle (its idle timeout): {how}"
    session.sink(Notice("info", note))
    return note
