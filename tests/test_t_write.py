"""Issue 19 item 4 on the simulator (fixed to the real code, tests/golden): writes that work on every T bootloader.

After a CheckCRC the Tuya bootloader acknowledges every erase and drops it; a LinkCheck re-arms on 1.0.5, only a
restart on 1.0.4 (REALCODE.md B.8). A write takes every CRC first, re-arms once, then erases and programs with no
CheckCRC between (core/ops/planned.py). tests/realcode/ runs the same against the real bootloaders.
"""

from __future__ import annotations

import pytest
from bkbench.core.client import BkClient
from bkbench.core.errors import BkError
from bkbench.core.ops import planned
from bkbench.core.ops.events import Notice, Retry
from bkbench.core.protocol import Cmd, LongCmd
from bkbench.core.session import Session
from simhelpers import sim_url

FEIT, GLOBE = "bk7231t-feit-br30-rgbw-bulb.bin", "bk7231t-globe-37783-rgbct-bulb.bin"
ERASE, WRITE_4K = LongCmd.FLASH_ERASE | 0x100, LongCmd.FLASH_WRITE_4K | 0x100  # as SimDevice.commands records them
APP = 0x11000


def _image(dump: bytes) -> bytes:
    """The app region changed in two places a block apart and in a whole block: sectors and a 64 KiB erase."""
    img = bytearray(dump[APP:APP + 0x40000])
    img[0x3000:0x3010] = b"bkbench-was-here"
    img[0x12345] ^= 0x5A
    img[0x1F000:0x30000] = bytes(range(256)) * (0x11000 // 256)
    return bytes(img)


def _write(url: str, image: bytes, events: list, **kwargs) -> None:
    with Session(url, baud=921600, on_event=events.append, **kwargs) as s:
        s.connect()
        s.write(image, APP, backup_first=False)


@pytest.mark.parametrize(("name", "restarts"), [(FEIT, 0), (GLOBE, 1)])
def test_every_crc_comes_before_the_erases_and_one_rearm_between(name, restarts, fixtures_dir):
    dump = (fixtures_dir / "dumps" / name).read_bytes()
    image = _image(dump)
    events: list = []
    with sim_url("BK7231T", dump) as (url, dev):
        _write(url, image, events)
        cmds, resets = list(dev.commands), dev.resets
        flash = bytes(dev.flash.data)
    assert flash == dump[:APP] + image + dump[APP + len(image):]
    first, last = cmds.index(ERASE), max(i for i, c in enumerate(cmds) if c == WRITE_4K)
    between = cmds[first:last]
    assert Cmd.CHECK_CRC not in between  # one CheckCRC there and every later erase is dropped
    assert between.count(ERASE) == 4  # three sectors and one 64 KiB block
    rearm = cmds[max(i for i, c in enumerate(cmds[:first]) if c == Cmd.CHECK_CRC):first]
    assert rearm.count(Cmd.REBOOT) == restarts and Cmd.LINK_CHECK in rearm
    assert resets == restarts  # the sim starts waiting in its bootloader, no boot counted
    assert not [e for e in events if isinstance(e, Retry)]
    said = [e.message for e in events if isinstance(e, Notice) and "ignores erases" in e.message]
    assert said == (["the bootloader BK7231S_1.0.4 ignores erases after a CRC check until it restarts: restarting "
                     "it (its Reboot command) before erasing"] if restarts else [])


def test_a_bootloader_that_drops_erases_against_its_version_is_restarted_on_evidence(fixtures_dir, monkeypatch):
    """A 1.0.4 that the table would re-arm with a LinkCheck (as an unknown 1.0.6 would be): the first erase is read
    back, does not take, the bootloader is restarted and named in one line, and the write lands."""
    monkeypatch.setattr(planned, "erases_after_crc", lambda dialect, said: "relink")
    dump = (fixtures_dir / "dumps" / GLOBE).read_bytes()
    image = _image(dump)
    events: list = []
    with sim_url("BK7231T", dump) as (url, dev):
        _write(url, image, events)
        flash = bytes(dev.flash.data)
    assert flash == dump[:APP] + image + dump[APP + len(image):]
    notes = [e.message for e in events if isinstance(e, Notice)]
    assert "the bootloader BK7231S_1.0.4 ignores erases after a CRC check until it restarts: bkbench restarts it " \
           "(its Reboot command) before erasing" in notes
    assert not any("does not verify" in n for n in notes)


def test_flash_that_never_erases_is_named_in_one_line_and_not_called_a_bad_wire(fixtures_dir):
    """Status register locked for good (SRP1:SRP0 = 11, protect-all): no restart helps."""
    dump = (fixtures_dir / "dumps" / FEIT).read_bytes()
    events: list = []
    with sim_url("BK7231T", dump, sr=0x1FC) as (url, dev):
        with pytest.raises(BkError) as err:
            _write(url, _image(dump), events)
        flash = bytes(dev.flash.data)
    msg = str(err.value)
    assert "\n" not in msg and "does not verify" not in msg
    assert "the bootloader BK7231S_1.0.5 acknowledges the erase at 0x014000 but the flash does not change, even " \
           "right after a restart: the flash is write-protected" in msg
    assert flash == dump


def test_a_restart_whose_boot_window_is_missed_uses_the_reset_strategy(fixtures_dir, monkeypatch):
    """The Reboot frame lost every time: the session's reset strategy brings the 1.0.4 back, and the write lands."""
    tried = []

    def lost(self, window=1.0):
        tried.append(window)
        return False  # nothing sent: the chip still listens at the session's rate

    monkeypatch.setattr(BkClient, "restart_bootloader", lost)
    dump = (fixtures_dir / "dumps" / GLOBE).read_bytes()
    image = _image(dump)
    events: list = []
    with sim_url("BK7231T", dump, wiring="rts") as (url, dev):
        with Session(url, baud=921600, on_event=events.append, reset="rts") as s:
            s.connect()
            before = dev.resets
            s.write(image, APP, backup_first=False)
        flash, resets = bytes(dev.flash.data), dev.resets - before
    assert len(tried) == 3 and resets == 1  # three Reboots lost, then one reset by RTS
    assert flash == dump[:APP] + image + dump[APP + len(image):]
    assert not [e for e in events if isinstance(e, Retry)]


@pytest.mark.parametrize("name", [FEIT, GLOBE])
def test_verify_of_a_file_with_an_unaligned_tail_compares_the_tail_by_bytes(name, fixtures_dir):
    """The T hashes whole 256-byte blocks only (REALCODE.md B.2): the tail is read back, vouched for by the chip's
    CRC of its block, and compared; a changed byte there is still a difference."""
    dump = (fixtures_dir / "dumps" / name).read_bytes()
    data = dump[APP:APP + 0x2345]
    with sim_url("BK7231T", dump) as (url, dev):
        with Session(url, baud=921600) as s:
            s.connect()
            assert s.verify(data, APP).ok
            dev.flash.data[APP + 0x2340] ^= 0x01
            diff = s.verify(data, APP)
            assert s.verify(data[:0x2300], APP).ok
    assert not diff.ok and diff.mismatched == [(APP + 0x2300, APP + 0x2345)]


def test_a_restart_that_does_not_come_back_cleanly_is_resumed_by_the_session(fixtures_dir, monkeypatch):
    """The Reboot went out but the exchange after it failed (a baud switch not confirmed): the chip is treated as
    lost, the session resets it by its strategy and resumes the write, which lands."""
    from bkbench.core.errors import ProtocolError
    from bkbench.core.link import keepalive

    real, failed = keepalive._restart, []

    def once(client, baud, tries):
        if not failed:
            failed.append(client.restart_bootloader(0.6))  # restarted, and then nothing more is done
            raise ProtocolError("chip did not confirm the switch to 921600 baud")
        real(client, baud, tries)

    monkeypatch.setattr(keepalive, "_restart", once)
    dump = (fixtures_dir / "dumps" / GLOBE).read_bytes()
    image = _image(dump)
    events: list = []
    with sim_url("BK7231T", dump, wiring="rts") as (url, dev):
        _write(url, image, events, reset="rts")
        flash = bytes(dev.flash.data)
    assert failed == [True]
    assert flash == dump[:APP] + image + dump[APP + len(image):]
    assert [e.message for e in events if isinstance(e, Notice) and "resuming" in e.message] == [
        "the bootloader did not come back cleanly after its restart: chip did not confirm the switch to 921600 "
        "baud: resetting the chip and resuming the write at 0x014000"]
