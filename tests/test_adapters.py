"""USB-serial adapter families: divisor arithmetic, the baud ladder per adapter, the FTDI latency timer
(lowered for a session and put back on every way out, against a fake ftdi_sio: sysfs tree + ioctl), and the
simulated adapters (latency on host-bound data, divisor error that garbles)."""

from __future__ import annotations

import array
import errno
import json
import os
import uuid
from pathlib import Path

import pytest
from bkbench.core.client import BkClient
from bkbench.core.errors import LinkError, PortError, ProtocolError
from bkbench.core.link import latency
from bkbench.core.link.adapters import (
    FAMILIES,
    ch341_rate,
    chip_rate,
    cp210x_actual_rate,
    cp2102_rate,
    family_for,
    ftdi_bm_rate,
    pl2303_rate,
)
from bkbench.core.link.baud import plan, remembered
from bkbench.core.ops.events import Notice
from bkbench.core.protocol import LINK_CHECK_REPLY_CODE, Cmd, encode, encode_response
from bkbench.core.session import Session
from bkbench.core.sim.adapter import SimAdapter
from bkbench.core.sim.registry import create_device, register, unregister
from bkbench.core.sim.timing import Timing
from bkbench.core.transport import open_port

FT232R = FAMILIES["ft232r"]


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("BKBENCH_CONFIG_DIR", str(tmp_path / "config"))


# ----------------------------------------------------------------------------------------- arithmetic
def test_divisor_arithmetic_of_each_driver():
    # chip: 26 MHz / (26 MHz // baud)
    assert chip_rate(2_000_000) == 2_000_000 and chip_rate(3_000_000) == 3_250_000
    assert chip_rate(1_500_000) == pytest.approx(26e6 / 17) and chip_rate(921600) == pytest.approx(26e6 / 28)
    # FT232R: 3 MHz / (n + k/8); 2 and 3 MBd special; 1 < n < 2 otherwise not generated
    assert ftdi_bm_rate(921600) == pytest.approx(24e6 / 26)
    assert (ftdi_bm_rate(2_000_000), ftdi_bm_rate(3_000_000), ftdi_bm_rate(1_500_000)) == (2e6, 3e6, 1.5e6)
    assert ftdi_bm_rate(2_500_000) is None and ftdi_bm_rate(3_500_000) is None
    # CH340: 48 MHz / (2^(12-3ps-fact) x div), next divisor when closer
    assert ch341_rate(921600) == pytest.approx(12e6 / 13) and ch341_rate(2_000_000) == 2e6
    assert ch341_rate(115200) == pytest.approx(12e6 / 104) and ch341_rate(3_500_000) is None
    # CP2102: AN205 table, nothing above 1 053 257; CP2102N: 24 MHz / round(24 MHz / baud)
    assert cp2102_rate(1_000_000) == 921600 and cp2102_rate(490000) == 460800 and cp2102_rate(1_500_000) is None
    assert cp210x_actual_rate(921600, 3_000_000) == pytest.approx(24e6 / 26)
    assert cp210x_actual_rate(3_100_000, 3_000_000) is None
    # PL2303HX: direct table, else 12 MHz x 32 / (mantissa x 4^exp) with the mantissa rounded down
    assert pl2303_rate(921600) == 921600 and pl2303_rate(1_500_000) == 1.5e6
    assert pl2303_rate(1_300_000) == pytest.approx(384e6 / 295)
    assert pl2303_rate(10_000) == pytest.approx(384e6 / (38400 >> 8) / 4 ** 4)


def test_family_from_vid_pid_and_the_product_string_where_shared():
    assert family_for(0x0403, 0x6001).key == "ft232r"
    assert family_for(0x1A86, 0x7523).key == "ch340"
    assert family_for(0x067B, 0x2303).key == "pl2303"
    assert family_for(0x10C4, 0xEA60, "CP2102N USB to UART Bridge Controller").key == "cp2102n"
    assert family_for(0x10C4, 0xEA60, "CP2102 USB to UART Bridge Controller").key == "cp2102"
    assert family_for(0x10C4, 0xEA60, "CP2104 USB to UART Bridge Controller").key == "cp2104"
    assert family_for(0x10C4, 0xEA60, "").key == "cp2102"  # unknown part: the strictest limits
    assert family_for(0x1234, 0x5678) is None and family_for(None, None) is None


def test_every_family_names_its_sources():
    for fam in FAMILIES.values():
        assert fam.rate_source and fam.latency_source and fam.lines_source, fam.key
        assert fam.rate(115200) is not None and fam.fit(115200)[0], fam.key


# ----------------------------------------------------------------------------------------- ladder
def test_ladder_per_adapter_skips_what_both_ends_cannot_share_and_says_why():
    rates, why = plan(3_000_000, (), FT232R)
    assert rates[0] == 2_000_000 and 3_000_000 not in rates
    assert len(why) == 1 and "3,250,000" in why[0] and "8.3%" in why[0]
    rates, why = plan(2_000_000, (), FAMILIES["cp2102"])
    assert rates[0] == 921600 and len(why) == 1 and "2000000, 1500000" in why[0] and "AN205" in why[0]
    assert plan(3_000_000, (), None) == ([3_000_000, 2_000_000, 1_500_000, 921600, 460800, 230400, 115200], [])
    assert plan(2_000_000, [2_000_000], FT232R)[0][0] == 1_500_000  # memory still applies


@pytest.mark.parametrize("adapter, requested, expected", [("cp2102", 2_000_000, 921600),
                                                          ("ft232r", 3_000_000, 2_000_000),
                                                          (None, 3_000_000, 3_000_000)])
def test_session_starts_at_the_rate_the_adapter_can_share(adapter, requested, expected):
    url = "sim://bk7231n" + (f"?adapter={adapter}" if adapter else "")
    events = []
    with Session(url, baud=requested, reset="manual", link_timeout=3, on_event=events.append) as s:
        assert s.connect().baud == expected
        assert len(s.read(0x11000, 0x1000)) == 0x1000
        assert s.port.device.commands.count(0x0F) == 1  # one SetBaudRate: nothing tried that could not work
    notes = [e.message for e in events if isinstance(e, Notice)]
    assert not [e for e in events if isinstance(e, Notice) and e.level == "warning"]  # no rate failed
    assert remembered(url).get("failed", []) == []
    assert any(n.startswith("skipping") for n in notes) == (adapter is not None)


# ----------------------------------------------------------------------------------------- simulated adapters
@pytest.mark.parametrize("adapter, baud, works", [("ft232r", 3_000_000, False), ("ft232r", 2_000_000, True),
                                                  ("cp2102", 2_000_000, False), ("cp2102", 921600, True),
                                                  (None, 3_000_000, True)])
def test_simulated_adapter_garbles_a_rate_out_of_tolerance(adapter, baud, works):
    port = open_port("sim://bk7231n" + (f"?adapter={adapter}" if adapter else ""))
    try:
        client = BkClient(port)
        assert client.link(2.0)
        if works:
            client.set_baudrate(baud)
            client.relink()
        else:
            with pytest.raises(ProtocolError):
                client.set_baudrate(baud)
                client.relink()
    finally:
        port.close()


def test_ftdi_latency_model_holds_a_partial_packet_until_the_timer_ticks():
    t = Timing(enabled=True)
    ad = SimAdapter("ft232r")
    ad._last_packet = 10.0
    assert ad.deliver(10.005, 11, 921600, t) == pytest.approx(10.016)  # short reply: the next 16 ms tick
    assert ad.deliver(10.020, 11, 921600, t) == pytest.approx(10.032)  # ticks count from the last packet
    assert ad.deliver(10.100, 62 * 10, 921600, t) == 10.100  # whole packets: no wait
    end = 10.200
    tail_start = end - 19 * 10 / 921600
    assert ad.deliver(end, 4111, 921600, t) == pytest.approx(tail_start + 0.016)  # 4111 = 66 x 62 + 19
    ad.set_low_latency(True)
    assert ad.deliver(10.3005, 11, 921600, t) == pytest.approx(ad._last_packet) and ad._last_packet < 10.302
    assert SimAdapter("ch340").deliver(5.0, 11, 921600, t) == pytest.approx(5.0 + t.usb_latency_s)
    assert SimAdapter("ft232r").deliver(5.0, 11, 921600, Timing()) == 5.0  # timing off: no delay


def test_the_simulated_chip_replies_through_the_adapter_model():
    clock = [100.0]
    dev = create_device(timing=True, adapter=SimAdapter("ft232r"), clock=lambda: clock[0])
    dev.host_write(encode(Cmd.LINK_CHECK))  # the adapter's timer last ticked at 0.0: ticks every 16 ms since
    reply = dev.out[-1]
    assert reply.t == pytest.approx(6251 * 0.016)  # the first tick after the reply's last byte (100.0012 s)
    clock[0] = reply.t
    assert dev.host_read() == encode_response(LINK_CHECK_REPLY_CODE, b"\x00")


def test_a_tool_that_cannot_lower_the_latency_gets_the_default():
    ad = SimAdapter("ft232r", can_lower_latency=False)
    result = latency.lower(FT232R, ad)
    assert not result.changed and result.said == "latency stays 16 ms (permission denied; README: Adapters)"
    assert ad.latency_s == 0.016


def test_simulated_ftdi_is_lowered_for_the_session_and_put_back_on_close():
    name = f"ad-{uuid.uuid4().hex[:8]}"
    dev = create_device(adapter="ft232r")
    register(name, dev)
    events = []
    try:
        with Session(f"sim://@{name}", baud=921600, reset="manual", link_timeout=3, on_event=events.append) as s:
            info = s.connect()
            assert dev.adapter.low_latency() and dev.adapter.latency_s == 0.001
            assert info.adapter == "FT232R (simulated): latency 16 -> 1 ms until the port closes"
        assert not dev.adapter.low_latency()
    finally:
        unregister(name)
    assert any(isinstance(e, Notice) and e.message == info.adapter for e in events)


def test_unknown_simulated_adapter_is_one_clear_error():
    with pytest.raises(PortError, match="unknown adapter 'nope'; choose one of ft232r"):
        open_port("sim://bk7231n?adapter=nope")


# ----------------------------------------------------------------------------------------- Linux knobs
ASYNC_USR_MASK = 0x1030 | 0x0400 | latency.ASYNC_LOW_LATENCY  # SPD_MASK | CALLOUT_NOHUP | LOW_LATENCY


class FakeFtdiSio:
    """What drivers/usb/serial/ftdi_sio.c does for one port: TIOCGSERIAL/TIOCSSERIAL flags (without
    CAP_SYS_ADMIN only ASYNC_USR_MASK bits may change), and sysfs latency_timer showing 1 while
    ASYNC_LOW_LATENCY is set, else the timer value (16 unless written)."""

    def __init__(self, root: Path, tty: str, timer: int = 16, admin: bool = False, ioctl_works: bool = True):
        self.attr = root / "bus" / "usb-serial" / "devices" / tty / "latency_timer"
        self.attr.parent.mkdir(parents=True)
        self.flags = 0x0040  # some unrelated flag the user had: must survive
        self.timer = timer
        self.admin = admin
        self.ioctl_works = ioctl_works
        self.calls: list[str] = []
        self._show()

    def _show(self) -> None:
        self.attr.write_text(f"{1 if self.flags & latency.ASYNC_LOW_LATENCY else self.timer}\n")

    def ioctl(self, fd, request, buf, mutate=True):
        os.fstat(fd)  # EBADF once the port is closed: restoring must come first
        if not self.ioctl_works:
            raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")
        if request == latency.TIOCGSERIAL:
            buf[latency.FLAGS_INDEX] = self.flags
            return 0
        assert request == latency.TIOCSSERIAL and isinstance(buf, array.array)
        new = buf[latency.FLAGS_INDEX]
        if not self.admin and (new ^ self.flags) & ~ASYNC_USR_MASK:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        self.calls.append(f"flags {new:#x}")
        self.flags = new
        self._show()
        return 0


@pytest.fixture
def ftdi_pty(tmp_path, monkeypatch):
    """A pty that bkbench takes for an FT232R whose driver is the fake above."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    fake = FakeFtdiSio(tmp_path / "sys", os.path.basename(path))
    real = latency.LinuxLatency
    monkeypatch.setattr(latency, "_usb_identity", lambda device: (0x0403, 0x6001, "FT232R USB UART"))
    monkeypatch.setattr(latency, "LinuxLatency",
                        lambda fd, device, sysfs: real(fd, device, tmp_path / "sys", fake.ioctl))
    yield path, fake
    for fd in (master, slave):
        os.close(fd)


def test_open_port_lowers_the_ftdi_timer_and_close_puts_the_port_back(ftdi_pty):
    path, fake = ftdi_pty
    port = open_port(path)
    assert fake.flags & latency.ASYNC_LOW_LATENCY and fake.attr.read_text() == "1\n"
    assert port.bkbench_adapter.line() == "FT232R 0403:6001: latency 16 -> 1 ms until the port closes"
    port.close()
    assert fake.flags == 0x0040 and fake.attr.read_text() == "16\n"  # as found, unrelated flag kept
    port.close()  # a second close (pyserial's __del__) changes nothing
    assert fake.calls == ["flags 0x2040", "flags 0x40"]


def test_a_failed_link_still_puts_the_port_back(ftdi_pty):
    path, fake = ftdi_pty
    seen = []
    with pytest.raises(LinkError):
        with Session(path, reset="manual", link_timeout=0.3, on_event=lambda e: seen.append(fake.flags)) as s:
            s.connect()  # nothing answers on the pty
    assert latency.ASYNC_LOW_LATENCY & max(seen) and fake.flags == 0x0040 and fake.attr.read_text() == "16\n"


def test_a_process_that_never_closes_the_port_is_put_back_at_exit(ftdi_pty):
    path, fake = ftdi_pty
    port = open_port(path)
    assert fake.flags & latency.ASYNC_LOW_LATENCY
    latency._restore_all()  # what atexit runs
    assert fake.flags == 0x0040
    port.close()
    assert fake.calls == ["flags 0x2040", "flags 0x40"]


def test_without_the_ioctl_root_writes_sysfs_and_writes_the_old_value_back(ftdi_pty):
    path, fake = ftdi_pty
    fake.ioctl_works = False
    fake.timer = 10
    fake._show()
    port = open_port(path)
    assert fake.attr.read_text() == "1\n"
    assert port.bkbench_adapter.line().endswith("latency 10 -> 1 ms until the port closes (sysfs)")
    port.close()
    assert fake.attr.read_text() == "10\n"


def test_already_low_or_another_family_changes_nothing(ftdi_pty, monkeypatch):
    path, fake = ftdi_pty
    fake.flags |= latency.ASYNC_LOW_LATENCY
    port = open_port(path)
    port.close()
    assert fake.calls == [] and port.bkbench_adapter.line() == "FT232R 0403:6001: latency timer already 1 ms"
    fake.flags = 0x0040
    monkeypatch.setattr(latency, "_usb_identity", lambda device: (0x1A86, 0x7523, "USB Serial"))
    port = open_port(path)
    port.close()
    assert fake.calls == [] and port.bkbench_adapter.line() == "CH340 1A86:7523: no latency timer (nothing to lower)"


def test_a_refused_restore_does_not_break_close(ftdi_pty):
    path, fake = ftdi_pty
    port = open_port(path)
    fake.ioctl_works = False  # the adapter was unplugged: the driver forgot the setting with it
    port.close()
    assert not port.is_open


def test_simulate_adapter_on_a_pty_garbles_for_a_peer_what_the_adapter_cannot_make():
    import signal
    import subprocess
    import sys

    from bk7231tools.serial import BK7231Serial

    cmd = [sys.executable, "-m", "bkbench.core.cli.main", "--json", "simulate", "--adapter", "cp2102"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        first = json.loads(proc.stdout.readline())
        assert first["adapter"] == "cp2102" and first["path"].startswith("/dev/pts/")
        peer = BK7231Serial(first["path"], baudrate=2000000, link_timeout=5)
        with pytest.raises(Exception, match="No response"):
            peer.connect()  # links at 115200, then the CP2102 cannot make 2M: the echo is garbage
        peer.close()
        proc.send_signal(signal.SIGUSR1)  # reset: the chip is back at 115200
        peer = BK7231Serial(first["path"], baudrate=921600, link_timeout=5)
        peer.connect()
        assert len(peer.flash_read_bytes(0x11000, 0x1000, crc_check=True)) == 0x1000
        peer.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
