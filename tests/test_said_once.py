"""Issue 22 item 9 and a help text after the engine merge: `bkbench read` names the backup once (its result line,
not also a notice), a write names its backup-first step once, and `config write --help` takes any full dump."""

from __future__ import annotations

from bkbench.core.backups import BackupLibrary
from bkbench.core.cli.main import main
from simhelpers import sim_url


def test_read_names_the_backup_once(tmp_path, capsys):
    data = tmp_path / "data"
    with sim_url("BK7231N") as (url, _dev):
        assert main(["--data-dir", str(data), "read", "--port", url]) == 0
        out, err = capsys.readouterr()
        (entry,) = BackupLibrary(data / "backups").list()
        assert (out + err).count(entry.name) == 1, out + err
        assert (out + err).count("backup saved") == 1
        assert main(["--data-dir", str(data), "read", "--port", url]) == 0  # the library holds it already
        out, err = capsys.readouterr()
        assert (out + err).count(entry.name) == 1 and "already in the library" in out


def test_a_write_names_its_backup_first_once(tmp_path, capsys):
    data = tmp_path / "data"
    blob = tmp_path / "raw.bin"
    blob.write_bytes(b"\x42" * 0x2000)
    with sim_url("BK7231N") as (url, _dev):
        assert main(["--data-dir", str(data), "write", "--port", url, "--start", "0x100000", str(blob),
                     "--no-reboot"]) == 0
    out, err = capsys.readouterr()
    read = next(e for e in BackupLibrary(data / "backups").list() if e.origin == "read")
    assert (out + err).count(str(read.path)) == 1 and (out + err).count("backup saved") == 1, out + err


def test_config_write_help_takes_any_full_dump(capsys):
    try:
        main(["config", "write", "--help"])
    except SystemExit:
        pass
    text = " ".join(capsys.readouterr().out.split())
    assert "2 MiB" not in text and "full flash dump of any size" in text
