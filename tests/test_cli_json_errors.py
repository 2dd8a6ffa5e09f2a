"""Issue 20 item 8: with --json every failure, an internal error too, is one JSON line on stdout."""

from __future__ import annotations

import errno
import json

import pytest
from bkbench.core.backups import BackupLibrary
from bkbench.core.cli.main import main


@pytest.mark.parametrize("where", ["--json backups", "backups --json"])
@pytest.mark.parametrize("raised, code", [(RuntimeError("boom"), 70), (RecursionError("too deep"), 70),
                                          (OSError(errno.EIO, "Input/output error", "/x/y"), 1)])
def test_json_commands_print_one_json_line_on_any_error(tmp_path, monkeypatch, capsys, where, raised, code):
    def broken(self):
        raise raised

    monkeypatch.setattr(BackupLibrary, "list", broken)
    monkeypatch.delenv("BKBENCH_DEBUG", raising=False)
    argv = where.split() + ["--library", str(tmp_path)]
    assert main(argv) == code
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 1, out
    obj = json.loads(lines[0])
    assert obj["ok"] is False and str(raised.args[-1]) in obj["error"]
    assert obj.get("internal") is (True if code == 70 else None)
    assert err.count("\n") == 1 and "Traceback" not in err  # the person still gets one line on stderr


def test_without_json_an_internal_error_prints_nothing_on_stdout(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(BackupLibrary, "list", lambda self: 1 / 0)
    monkeypatch.delenv("BKBENCH_DEBUG", raising=False)
    assert main(["backups", "--library", str(tmp_path)]) == 70
    out, err = capsys.readouterr()
    assert out == "" and "internal error: ZeroDivisionError" in err
