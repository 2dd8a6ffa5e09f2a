"""Remote ports in config.json: `bkbench ports --add/--remove`, listing with kind "remote", probing that is
bounded, and hand-edited entries that are skipped (never fatal) and kept when the list is edited."""

from __future__ import annotations

import json
import socket

from bkbench.core import remote_ports, userconfig
from bkbench.core.sim.ser2net import free_port
from simhelpers import run_with_deadline
from test_bad_input import assert_one_clear_error, run_cli


def _cli_json(argv: list[str], tmp_path) -> dict:
    code, out, err = run_cli([*argv, "--json"], tmp_path)
    assert code == 0, err
    return json.loads(out)


def test_add_list_probe_remove(tmp_path):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    up = f"rfc2217://127.0.0.1:{srv.getsockname()[1]}"
    down = f"socket://127.0.0.1:{free_port()}"
    try:
        _cli_json(["ports", "--add", up, "--name", "bench Pi"], tmp_path)
        listed = _cli_json(["ports", "--add", down], tmp_path)["ports"]
    finally:
        srv.close()
    remote = {p["device"]: p for p in listed if p["kind"] == "remote"}
    assert set(remote) == {up, down}
    assert remote[up]["reachable"] is True and "bench Pi" in remote[up]["description"]
    assert remote[down]["reachable"] is False and "connection refused" in remote[down]["description"]
    cfg = json.loads((tmp_path / "cfg" / "config.json").read_text())
    assert cfg["remote_ports"] == [{"url": up, "name": "bench Pi"}, {"url": down}]
    listed = _cli_json(["ports", "--remove", down, "--no-probe"], tmp_path)["ports"]
    assert [p["device"] for p in listed if p["kind"] == "remote"] == [up]
    assert all(p["reachable"] is None for p in listed if p["kind"] == "remote")  # --no-probe: not asked


def test_bad_remote_port_edits_get_one_line(tmp_path):
    for argv, words in ((["ports", "--add", "http://pi:80"], ["not a remote port URL"]),
                        (["ports", "--add", "rfc2217://pi"], ["HOST:PORT"]),
                        (["ports", "--remove", "rfc2217://pi:1"], ["not in the remote ports list"]),
                        (["ports", "--name", "x"], ["--name goes with --add"])):
        code, _, err = run_cli(argv, tmp_path)
        assert_one_clear_error(code, err, *words)


def test_hand_edited_junk_is_skipped_and_kept(tmp_path):
    keep = ["rfc2217://pi:3333", {"url": "ftp://nope"}, 42, {"name": "no url"}]
    userconfig.set_value("remote_ports", keep)
    assert [p.device for p in remote_ports.remote_ports()] == ["rfc2217://pi:3333"]
    remote_ports.add("socket://pi:3334", "raw")
    # Entries we cannot parse are the user's: an edit through bkbench must not drop them.
    assert userconfig.get("remote_ports") == keep + [{"url": "socket://pi:3334", "name": "raw"}]
    userconfig.set_value("remote_ports", "not a list")
    assert remote_ports.remote_ports() == []


def test_probe_of_many_silent_hosts_is_bounded(tmp_path):
    # Listening sockets with a full backlog never complete a handshake: like hosts that drop packets.
    servers, fillers = [], []
    try:
        for _ in range(6):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(0)
            servers.append(s)
            for _ in range(4):
                f = socket.socket()
                f.setblocking(False)
                f.connect_ex(s.getsockname())
                fillers.append(f)
            remote_ports.add(f"rfc2217://127.0.0.1:{s.getsockname()[1]}")
        ports, exc, hung = run_with_deadline(lambda: remote_ports.remote_ports(probe=True, timeout=0.3), 10)
    finally:
        for s in fillers + servers:
            s.close()
    assert not hung and exc is None
    assert len(ports) == 6 and all(p.kind == "remote" and p.reachable is not None for p in ports)


def test_workbench_port_list_shows_remote_ports_unprobed(monkeypatch):
    from bkbench.tui.widgets import ports as pane

    remote_ports.add("rfc2217://pi:3333", "garage Pi")
    probed = []
    monkeypatch.setattr(remote_ports, "_probe", lambda *a: probed.append(a) or "")
    rows = [pane.port_row(p) for p in pane.default_ports_source()]
    assert ("rfc2217://pi:3333", "remote: garage Pi") in [r[:2] for r in rows]
    assert probed == []  # polled every 1.5 s: a probe would make ser2net open the adapter each time


def test_workbench_port_list_shows_a_name_with_brackets_as_written():
    """A remote port's name is the user's text (`--name "jig [/b]"`, config.json by hand): the port list
    must show it as written, not read it as Textual markup (a stray closing tag crashed the workbench)."""
    import asyncio

    from bkbench.core.ports import PortInfo
    from bkbench.tui.widgets.ports import PortsPane
    from textual.app import App
    from textual.widgets import DataTable

    names = ["jig [/b] bench", "garage [CB2S] jig"]
    ports = [PortInfo(device=f"rfc2217://pi:{3333 + i}", description=n, kind="remote") for i, n in enumerate(names)]

    class One(App):
        def compose(self):
            yield PortsPane(source=lambda: ports, poll=60)

    async def run() -> list[str]:
        app = One()
        async with app.run_test(size=(80, 24)) as pilot:
            pane = app.query_one(PortsPane)
            pane.show_ports(ports)
            await pilot.pause()
            table = app.query_one(DataTable)
            return [str(table.get_row_at(i)[1]) for i in range(table.row_count)]

    shown = asyncio.run(run())
    assert [f"remote: {n}" for n in names] == shown


def test_remote_port_that_could_never_open_or_leaks_is_not_remembered(tmp_path):
    """--add used to store what every later use refuses (a bad option), a login in the URL (ser2net has
    none; it was printed by every listing), and a name that breaks the one-line-per-port list or the terminal."""
    for argv, words in ((["ports", "--add", "rfc2217://pi:3333?timeout=abc"], ["timeout"]),
                        (["ports", "--add", "rfc2217://pi:3333?bogus"], ["unknown option"]),
                        (["ports", "--add", "socket://pi:3334?bogus=1"], ["unknown option"]),
                        (["ports", "--add", "rfc2217://admin:hunter2@pi:3333"], ["no login"]),
                        (["ports", "--add", "socket://admin:hunter2@pi:3334"], ["no login"]),
                        (["ports", "--add", "rfc2217://pi:3333", "--name", "jig\nfake\x1b[2J"], ["--name"])):
        code, _, err = run_cli(argv, tmp_path)
        line = assert_one_clear_error(code, err, *words)
        assert "hunter2" not in err and "\x1b" not in line
    assert not (tmp_path / "cfg" / "config.json").exists() or "remote_ports" not in json.loads(
        (tmp_path / "cfg" / "config.json").read_text())
    # A name with control characters put in config.json by hand is listed on one line, escapes defused.
    userconfig.set_value("remote_ports", [{"url": "rfc2217://pi:3333", "name": "jig\nfake\x1b[2J"}])
    shown = remote_ports.remote_ports()[0].description
    assert "\n" not in shown and "\x1b" not in shown and shown.startswith("jig")
