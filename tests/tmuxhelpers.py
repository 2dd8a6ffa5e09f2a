"""The real app in tmux, on a tmux server of the test's own.

A plain `tmux new-session` joins the user's running server, whose environment is that server's (the
user's real XDG dirs, not the test's): the app then wrote into the real ~/.config/bkbench. Each `Tmux`
starts its own server (`tmux -L NAME`) with the test's environment and kills it at the end.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid


class Tmux:
    def __init__(self, command: str, width: int = 80, height: int = 24, **env: str) -> None:
        self.socket = f"bkbench-test-{uuid.uuid4().hex[:12]}"
        self.session = "app"
        self.env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        self.env.update(env, TERM="xterm-256color")
        self.command, self.size = command, (width, height)

    def __enter__(self) -> Tmux:
        # -f /dev/null: no user tmux.conf (key bindings, default shell) changes what the test sees
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", self.session, "-x", str(self.size[0]),
                  "-y", str(self.size[1]), self.command, check=True)
        return self

    def __exit__(self, *exc) -> None:
        self.tmux("kill-server")

    def tmux(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, env=self.env,
                              check=check)

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.tmux("send-keys", "-t", self.session, *(("-l",) if literal else ()), *keys, check=True)

    def capture(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.session).stdout

    def alive(self) -> bool:
        return self.tmux("has-session", "-t", self.session).returncode == 0

    def wait(self, cond, timeout: float, what: str = "") -> str:
        end = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < end:
            screen = self.capture()
            if cond(screen):
                return screen
            time.sleep(0.3)
        raise AssertionError(f"{what or 'not reached'} within {timeout:.0f} s; screen was:\n{screen}")

    def wait_for(self, text: str, timeout: float) -> str:
        return self.wait(lambda s: text in s, timeout, f"{text!r} did not appear")

    def wait_gone(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self.alive():
                return
            time.sleep(0.3)
        raise AssertionError("the app did not quit:\n" + self.capture())
