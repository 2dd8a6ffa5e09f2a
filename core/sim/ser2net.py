"""Run the real ser2net (Debian package, 4.x YAML config) on loopback in front of a serial device or pty.

Tests and scripts/bench.py use it to put a simulated chip (`bkbench simulate`'s pty, or a PtyBridge)
behind `rfc2217://` and `socket://` exactly as a Raspberry Pi owner would serve a USB adapter; the
config written here is the one the README recommends (`config_text`), loopback only.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SEARCH = ("/usr/sbin/ser2net", "/usr/local/sbin/ser2net")


def find_ser2net() -> str | None:
    """The ser2net binary (often in /usr/sbin, which is not on a normal user's PATH)."""
    return shutil.which("ser2net") or next((p for p in SEARCH if os.access(p, os.X_OK)), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_text(device: str, rfc2217_port: int | None, raw_port: int | None, baud: int = 115200,
                host: str = "127.0.0.1", fast: bool = True) -> str:
    """A ser2net.yaml serving `device` as RFC 2217 and/or raw TCP.

    fast=True is the recommended setup: `chardelay: false` (ser2net otherwise holds every reply for at
    least 1 ms, ~5 ms measured here, after the device's last byte) and `tcp(nodelay)` (no Nagle on the
    server side). fast=False is ser2net's default, kept for the benchmark's comparison."""
    tcp = "tcp(nodelay)" if fast else "tcp"
    lines = ["%YAML 1.1", "---"]
    for name, port, accepter in (("bk-rfc2217", rfc2217_port, f"telnet(rfc2217),{tcp}"),
                                 ("bk-raw", raw_port, tcp)):
        if port is None:
            continue
        lines += [f"connection: &{name}", f"  accepter: {accepter},{host},{port}",
                  f"  connector: serialdev,{device},{baud}n81,local"]
        # No kickolduser: a second client (or a `bkbench ports` probe) is refused, never takes the port
        # from a write in progress.
        if fast:
            lines += ["  options:", "    chardelay: false"]
    return "\n".join(lines) + "\n"


class Ser2net:
    """One ser2net process (foreground, its own config in a temporary folder); a context manager."""

    def __init__(self, device: str, rfc2217: bool = True, raw: bool = True, fast: bool = True,
                 baud: int = 115200, port: int | None = None) -> None:
        """`port`: RFC 2217 on it and raw TCP on port + 1 (default: free ports)."""
        exe = find_ser2net()
        if exe is None:
            raise FileNotFoundError("ser2net is not installed (apt-get install ser2net)")
        self.exe = exe
        self.device, self.fast, self.baud = device, fast, baud
        self.rfc2217_port = (port if port else free_port()) if rfc2217 else None
        self.raw_port = ((port + 1) if port else free_port()) if raw else None
        self.dir = Path(tempfile.mkdtemp(prefix="bkbench-ser2net-"))
        self.proc: subprocess.Popen | None = None

    @property
    def rfc2217_url(self) -> str:
        return f"rfc2217://127.0.0.1:{self.rfc2217_port}"

    @property
    def socket_url(self) -> str:
        return f"socket://127.0.0.1:{self.raw_port}"

    def start(self, timeout: float = 10.0) -> Ser2net:
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> Ser2net:
        for port in (self.rfc2217_port, self.raw_port):
            if port is not None and not _free(port):  # else ser2net logs it and we would find the other listener
                raise RuntimeError(f"TCP port {port} on 127.0.0.1 is in use")
        cfg = self.dir / "ser2net.yaml"
        cfg.write_text(config_text(self.device, self.rfc2217_port, self.raw_port, self.baud, fast=self.fast))
        log = open(self.dir / "ser2net.log", "wb")
        # -n: stay in the foreground; -u: no UUCP lock files (a pty needs none, and /var/lock may be read-only)
        self.proc = subprocess.Popen([self.exe, "-n", "-u", "-c", str(cfg), "-P", str(self.dir / "pid")],
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent)
        log.close()
        ports = [p for p in (self.rfc2217_port, self.raw_port) if p is not None]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ser2net exited ({self.proc.returncode}): {self.log()[-500:]}")
            if all(_listening(p) for p in ports):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"ser2net did not listen on {ports} within {timeout:g} s: {self.log()[-500:]}")

    def log(self) -> str:
        try:
            return (self.dir / "ser2net.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Ser2net:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _listening(port: int) -> bool:
    """True when something listens on 127.0.0.1:port, judged from /proc/net/tcp (connecting would make
    ser2net open the device for a client that leaves at once)."""
    want = f":{port:04X}"
    try:
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(want) and fields[3] == "0A":  # 0A = LISTEN
                return True
    except OSError:
        with socket.socket() as s:
            s.settimeout(0.2)
            return s.connect_ex(("127.0.0.1", port)) == 0
    return False


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _die_with_parent() -> None:
    """In the child: SIGTERM when the parent dies (Linux), so a killed test or simulator leaves no ser2net."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
