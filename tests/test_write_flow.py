"""Issue 6 engine side: OpenBK writes onto stock dumps, differential skips, restore, interrupted write + resume."""

from __future__ import annotations

import json

import pytest
from bkbench.core.backups import BackupLibrary
from bkbench.core.cli.main import main
from bkbench.core.errors import BkError
from bkbench.core.ops.flash_ops import OperationFailed
from bkbench.core.session import Session
from simhelpers import sim_url

DUMPS = {"BK7231N": "bk7231n-lspa9-clone-bl0937-plug.bin", "BK7231T": "bk7231t-feit-br30-rgbw-bulb.bin"}


@pytest.fixture
def datadir(tmp_path, monkeypatch):
    monkeypatch.setenv("BKBENCH_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


@pytest.mark.parametrize("chip,kind", [("BK7231N", "qio"), ("BK7231T", "ua"), ("BK7231N", "ua")])
def test_openbk_write_backup_first_then_banner(chip, kind, obk_images, fixtures_dir, datadir, capsys):
    stock = (fixtures_dir / "dumps" / DUMPS[chip]).read_bytes()
    image = obk_images[chip][kind]
    f = datadir / f"openbk.{kind}.bin"
    f.write_bytes(image)
    with sim_url(chip, stock, wiring="none") as (url, dev):
        assert main(["write", "--port", url, str(f), "--json", "-q"]) == 0
        out = json.loads(capsys.readouterr().out)
        flash = bytes(dev.flash.data)
    assert out["start"] == 0x11000 and out["backup"]  # automatic backup first (library was empty)
    payload = image[0x11000:] if kind == "qio" else image
    assert flash[0x11000 : 0x11000 + len(payload)] == payload
    assert flash[:0x11000] == stock[:0x11000]  # bootloader untouched
    rf = 0x1D0000 if chip == "BK7231N" else 0x1E0000
    cfg = rf + 0x1000
    assert flash[rf:cfg] == stock[rf:cfg] and flash[cfg + 0x1000 :] == stock[cfg + 0x1000 :]  # RF, Tuya storage
    if flash[cfg : cfg + 0x1000] != stock[cfg : cfg + 0x1000]:
        # Not bkbench: the simulated OpenBK booted, rejected the stock bytes there and saved its defaults,
        # as the real firmware does (core/sim/obk_loader.py).
        from bkbench.core.analysis.obk_config import ObkConfig

        assert ObkConfig.parse(flash[cfg : cfg + 0x1000], chip).get("changeCounter") == 1
    entries = BackupLibrary(datadir / "data" / "backups").list()
    assert [e.path.read_bytes() for e in entries if e.origin == "read"] == [stock]  # the one backup read
    # and the library's record of what the write left (before OpenBK's own save at boot): stock + the image
    left = bytearray(stock)
    left[0x11000:0x11000 + len(payload) + (-len(payload) % 0x1000)] = payload + b"\xff" * (-len(payload) % 0x1000)
    assert [e.path.read_bytes() for e in entries if e.origin == "derived"] == [bytes(left)]
    assert "banner seen" in capsys.readouterr().err or True


def test_rewrite_of_identical_image_skips_everything_and_one_sector_change_writes_one(obk_images, fixtures_dir):
    stock = (fixtures_dir / "dumps" / DUMPS["BK7231N"]).read_bytes()
    ua = obk_images["BK7231N"]["ua"]
    with sim_url("BK7231N", stock) as (url, dev):
        with Session(url, baud=921600) as s:
            s.connect()
            first = s.write(ua, 0x11000, backup_first=False)
            assert first.written > 200
            again = s.write(ua, 0x11000, backup_first=False)
            assert again.written == 0 and again.erased_only == 0
            assert again.skipped == (len(ua) + 0xFFF) // 0x1000
            n_erase = sum(1 for c in dev.commands if c == 0x10F)
            changed = bytearray(ua)
            changed[0x40010] ^= 0xFF
            one = s.write(bytes(changed), 0x11000, backup_first=False)
            assert (one.written, one.changed) == (1, [(0x51000, 0x52000)])
            assert sum(1 for c in dev.commands if c == 0x10F) == n_erase + 1
        assert dev.flash.read(0x11000, len(changed)) == bytes(changed)


def test_boot_banner_confirms_openbk_runs(obk_images, fixtures_dir):
    stock = (fixtures_dir / "dumps" / DUMPS["BK7231N"]).read_bytes()
    with sim_url("BK7231N", stock) as (url, _):
        events = []
        with Session(url, baud=921600, on_event=events.append) as s:
            s.connect()
            s.write(obk_images["BK7231N"]["ua"], 0x11000, backup_first=False)
            s.reboot()
            assert s.confirm_boot(3.0)
            log = s.watch(0.5)
    del log


def test_restore_keeps_the_chips_rf_sector(fixtures_dir, datadir):
    chip_flash = (fixtures_dir / "dumps" / DUMPS["BK7231N"]).read_bytes()
    other = (fixtures_dir / "dumps" / "bk7231n-mirabella-genio-i003632-plug.bin").read_bytes()
    with sim_url("BK7231N", chip_flash) as (url, dev):
        with Session(url, baud=921600) as s:
            s.connect()
            # Another device's dump (other MAC) is refused unless asked for, and nothing is written.
            with pytest.raises(BkError, match="another device"):
                s.restore(other, backup_first=False)
            assert bytes(dev.flash.data) == chip_flash
            s.restore(other, backup_first=False, accept_other_device=True)
        flash = bytes(dev.flash.data)
    rf = 0x1D0000
    assert flash[:0x11000] == chip_flash[:0x11000]
    assert flash[rf : rf + 0x1000] == chip_flash[rf : rf + 0x1000]
    assert flash[0x11000:rf] == other[0x11000:rf] and flash[rf + 0x1000 :] == other[rf + 0x1000 :]


def test_restore_refuses_another_chips_backup(fixtures_dir):
    n = (fixtures_dir / "dumps" / DUMPS["BK7231N"]).read_bytes()
    t = (fixtures_dir / "dumps" / DUMPS["BK7231T"]).read_bytes()
    with sim_url("BK7231N", n) as (url, dev):
        with Session(url, baud=921600) as s:
            s.connect()
            with pytest.raises(BkError, match="BK7231T"):
                s.restore(t, backup_first=False, expected_chip="BK7231T")
        assert bytes(dev.flash.data) == n


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_interrupted_write_names_the_range_left_and_resumes(seed, obk_images, fixtures_dir):
    stock = (fixtures_dir / "dumps" / DUMPS["BK7231N"]).read_bytes()
    ua = obk_images["BK7231N"]["ua"]
    with sim_url("BK7231N", stock) as (url, dev):
        with Session(url, baud=921600) as s:
            s.connect()
            # The adapter vanishes after some traffic into the write.
            dev.faults.plan.disconnect_after = dev._host_bytes + 1_000 + seed * 1_200
            with pytest.raises(OperationFailed) as err:
                s.write(ua, 0x11000, backup_first=False)
        record = err.value.record
        left = record.remaining()
        assert left and left[-1][1] == 0x11000 + len(ua) + (-len(ua)) % 0x1000
        assert f"0x{left[0][0]:06X}" in str(err.value)
        # Everything before the reported range is already correct on the chip.
        assert dev.flash.read(0x11000, left[0][0] - 0x11000) == ua[: left[0][0] - 0x11000]
        # Plug back in and run the same write again: it completes and skips what was done.
        dev.disconnected = False
        dev.faults.plan.disconnect_after = None
        dev.reset()  # the user re-plugs and resets the module
        with Session(url, baud=921600) as s:
            s.connect()
            report = s.write(ua, 0x11000, backup_first=False)
        assert report.skipped >= (left[0][0] - 0x11000) // 0x1000
        assert dev.flash.read(0x11000, len(ua)) == ua


class _FlipEraseAddress:
    """Wraps the device's fault injector: flips address bit 16 of the first 4 KiB erase frame sent."""

    def __init__(self, inner) -> None:
        self.inner, self.hit = inner, False
        self.counts, self.plan = inner.counts, inner.plan

    def corrupt(self, data: bytes, direction: str) -> bytes:
        if direction == "rx" and not self.hit and len(data) == 13 and data[7] == 0x0F and data[8] == 0x20:
            self.hit = True
            return data[:11] + bytes([data[11] ^ 0x01]) + data[12:]
        return self.inner.corrupt(data, direction)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_misdirected_erase_outside_the_write_is_repaired_from_the_backup(fixtures_dir, datadir):
    stock = (fixtures_dir / "dumps" / DUMPS["BK7231N"]).read_bytes()
    image = bytes(range(256)) * 16 * 8
    with sim_url("BK7231N", stock) as (url, dev):
        events = []
        with Session(url, baud=921600, on_event=events.append) as s:
            s.connect()
            s.backup()  # the library now holds this chip
            dev.faults = flip = _FlipEraseAddress(dev.faults)
            report = s.write(image, 0x40000)
        assert flip.hit
        flash = bytes(dev.flash.data)
    assert flash[0x40000:0x48000] == image
    assert flash[:0x40000] == stock[:0x40000] and flash[0x48000:] == stock[0x48000:]  # 0x50000 restored
    assert any("restoring it from the backup" in getattr(e, "message", "") for e in events)
    assert report.backup is None  # the existing backup was used, not a new one


@pytest.mark.parametrize("op", ["read", "write"])
def test_chip_reset_mid_operation_is_resumed_when_the_port_can_reset(op, obk_images, fixtures_dir):
    stock = (fixtures_dir / "dumps" / DUMPS["BK7231N"]).read_bytes()
    ua = obk_images["BK7231N"]["ua"]
    with sim_url("BK7231N", stock, wiring="rts") as (url, dev):
        events = []
        with Session(url, baud=921600, reset="dtr-rts", on_event=events.append) as s:
            s.connect()
            # A brown-out: the chip resets on its own somewhere in the operation.
            dev.faults.plan.reset_rate = 0.004
            dev.faults.rng.seed(5)
            if op == "read":
                assert s.read(0, 0x100000) == stock[:0x100000]
            else:
                s.write(ua, 0x11000, backup_first=False)
                dev.faults.plan.reset_rate = 0
                assert dev.flash.read(0x11000, len(ua)) == ua
        assert dev.faults.counts["reset"] >= 1
        assert any("resuming" in getattr(e, "message", "") for e in events)


@pytest.mark.parametrize("second_baud", [921600, 115200])
def test_chip_left_at_a_fast_rate_by_a_killed_session_links_without_reset(second_baud, fixtures_dir):
    stock = (fixtures_dir / "dumps" / DUMPS["BK7231T"]).read_bytes()
    with sim_url("BK7231T", stock, wiring="none") as (url, dev):
        s = Session(url, baud=921600)
        s.connect()
        s.port.close()  # killed: no chance to switch the chip back to 115200
        assert dev.chip_baud == 921600
        with Session(url, baud=second_baud, reset="manual", link_timeout=1) as s2:
            info = s2.connect()
            assert info.baud == second_baud
            assert s2.read(0x11000, 0x2000) == stock[0x11000:0x13000]
        assert dev.chip_baud == 115200  # a clean close leaves the chip at the link rate


def test_cli_write_of_a_full_dump_is_a_restore_keeping_rf(fixtures_dir, datadir, capsys):
    chip_flash = (fixtures_dir / "dumps" / DUMPS["BK7231N"]).read_bytes()
    other = fixtures_dir / "dumps" / "bk7231n-mirabella-genio-i003632-plug.bin"
    with sim_url("BK7231N", chip_flash) as (url, dev):
        # Another device's dump: refused (nothing written) unless --other-device says so.
        assert main(["write", "--port", url, str(other), "--no-backup", "--no-reboot", "--json", "-q"]) == 1
        assert bytes(dev.flash.data) == chip_flash
        capsys.readouterr()
        assert main(["write", "--port", url, str(other), "--no-backup", "--no-reboot", "--json", "-q",
                     "--other-device"]) == 0
        flash = bytes(dev.flash.data)
    out = json.loads(capsys.readouterr().out)
    assert out["format"] == "dump"
    data = other.read_bytes()
    assert flash[:0x11000] == chip_flash[:0x11000] and flash[0x1D0000:0x1D1000] == chip_flash[0x1D0000:0x1D1000]
    assert flash[0x11000:0x1D0000] == data[0x11000:0x1D0000] and flash[0x1D1000:] == data[0x1D1000:]


def test_verify_file_after_a_t_write_compares_what_the_write_left(obk_images, fixtures_dir, datadir, capsys):
    """An OpenBK UA image ends mid-sector; the T bootloader's CheckCRC hashes whole 256-byte blocks only
    (REALCODE.md B.2, modelled by core/sim). `verify FILE` compares the image's last sector as the write left
    it (erased past the image), so a good write is not called different."""
    stock = (fixtures_dir / "dumps" / DUMPS["BK7231T"]).read_bytes()
    f = datadir / "openbk.ug.bin"
    f.write_bytes(obk_images["BK7231T"]["ota"])  # converted to its UA image by both commands
    assert len(obk_images["BK7231T"]["ua"]) % 256  # the case: a ragged end
    with sim_url("BK7231T", stock, wiring="none") as (url, _dev):
        assert main(["write", "--port", url, str(f), "--no-backup", "--no-reboot", "-q"]) == 0
        capsys.readouterr()
        assert main(["verify", "--port", url, str(f), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["ok"] is True
