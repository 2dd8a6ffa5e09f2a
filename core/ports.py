"""Serial port discovery: USB adapters by VID:PID, /dev/serial/by-id, and the Raspberry Pi UARTs."""

from __future__ import annotations

import glob
import os
from dataclasses import asdict, dataclass

from serial.tools import list_ports as _lp

from .link.adapters import names_by_vid_pid

# VID:PID -> chip name; the families and their facts live in core/link/adapters.py.
ADAPTERS: dict[tuple[int, int], str] = names_by_vid_pid()
PI_UARTS = ("/dev/serial0", "/dev/serial1", "/dev/ttyS0", "/dev/ttyAMA0", "/dev/ttyAMA1",
            "/dev/ttyAMA2", "/dev/ttyAMA3", "/dev/ttyAMA4", "/dev/ttyAMA10")


@dataclass
class PortInfo:
    device: str
    description: str
    adapter: str = ""
    vid: int | None = None
    pid: int | None = None
    serial_number: str = ""
    by_id: str = ""
    in_use: bool = False
    kind: str = "usb"  # usb, pi-uart, other, remote (core/remote_ports.py)
    reachable: bool | None = None  # remote ports only: accepted a TCP connection when probed

    @property
    def vid_pid(self) -> str:
        return f"{self.vid:04X}:{self.pid:04X}" if self.vid is not None and self.pid is not None else ""

    def to_json(self) -> dict:
        d = asdict(self)
        d["vid_pid"] = self.vid_pid
        return d


def _by_id_map() -> dict[str, str]:
    out = {}
    for link in glob.glob("/dev/serial/by-id/*"):
        out[os.path.realpath(link)] = link
    return out


def _in_use(device: str) -> bool:
    """True when another process holds the device open (Linux /proc scan)."""
    target = os.path.realpath(device)
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]
    except OSError:
        return False
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.path.realpath(f"/proc/{pid}/fd/{fd}") == target:
                    return True
        except OSError:
            continue
    return False


def list_ports(check_in_use: bool = True) -> list[PortInfo]:
    by_id = _by_id_map()
    ports: list[PortInfo] = []
    seen: set[str] = set()
    for p in _lp.comports(include_links=False):
        real = os.path.realpath(p.device)
        adapter = ADAPTERS.get((p.vid, p.pid), "") if p.vid is not None else ""
        ports.append(PortInfo(
            device=p.device,
            description=p.description or "",
            adapter=adapter or (p.product or ""),
            vid=p.vid,
            pid=p.pid,
            serial_number=p.serial_number or "",
            by_id=by_id.get(real, ""),
            kind="usb" if p.vid is not None else "other",
        ))
        seen.add(real)
    # pyserial hides on-board UARTs without a driver "device" link; the Pi's are the ones users wire.
    for dev in PI_UARTS:
        if os.path.exists(dev) and os.path.realpath(dev) not in seen:
            target = os.path.realpath(dev)
            desc = "Raspberry Pi UART" + (f" (-> {target})" if target != dev else "")
            ports.append(PortInfo(device=dev, description=desc, adapter="Pi UART", kind="pi-uart"))
            seen.add(target if dev.startswith("/dev/tty") else dev)
    if check_in_use:
        for p in ports:
            p.in_use = _in_use(p.device)
    return ports
