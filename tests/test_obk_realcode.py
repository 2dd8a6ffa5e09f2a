"""OpenBK's config judged by OpenBK's own code, not by bkbench's parser.

The real OpenBK 1.18.219 builds for BK7231N and BK7231T (fixtures/firmware) run under Unicorn
(tests/realcode/openbk_fw.py): their CFG_InitAndLoad decides whether a sector is accepted, their
CFG_SetDefaultConfig makes the defaults, their PIN_Get...ForPinIndex accessors and CFG_Set... setters
say where the fields are. Every test here fails if bkbench's checksum, offsets or defaults drift from
what the firmware does.
"""

from __future__ import annotations

import json
import random
import struct

import pytest
from bkbench.core.analysis.obk_config import (
    FIELDS,
    LAYOUT_32,
    SECRET_FIELDS,
    ObkConfig,
    tiny_crc8,
    tiny_crc8_unsigned,
)
from bkbench.core.analysis.tuya_pins import ROLE_NAMES
from bkbench.core.cli.main import main
from bkbench.core.layout import OBK_CONFIG_OFFSET
from bkbench.core.sim import obk_loader
from simhelpers import DUMP_CHIPS, ROTATED

MAC = bytes.fromhex("c8478c1a2b3c")
SET = ["ssid=Bench Lab", "pass=pw with spaces", "ssid2=Second", "pass2=pw2", "mqtt_host=192.168.1.20",
       "mqtt_port=1884", "mqtt_user=bench", "mqtt_pass=mq-secret", "mqtt_client=plug7", "mqtt_group=grp",
       "name=plug7", "long_name=Bench plug 7", "startup=backlog startDriver BL0937; PowerSave 1",
       "web_password=admin1", "flag.2=1", "flag.37=1", "pin.6=Rel;1", "pin.10=btn;1;2", "p24=CHT8305_SDA;3",
       "pin.28=BL0939_MISO;0", "ntpServer=pool.ntp.org", "buttonLongPress=12", "loggerFlags=6"]  # fmt: skip


def _dumps(chip: str) -> list[str]:
    names = [n for n, (c, _b) in DUMP_CHIPS.items() if c == chip]
    return names + ([ROTATED] if chip == "BK7231T" else [])


def _value(raw: bytes, name: str):
    """A field decoded straight from the firmware's g_cfg (the offsets are proved by the tests below)."""
    off, fmt, size = FIELDS[name]
    if fmt == "s":
        return raw[off : off + size].split(b"\0", 1)[0].decode()
    if fmt == "b":
        return ":".join(f"{b:02x}" for b in raw[off : off + size])
    return struct.unpack_from(fmt, raw, off)[0]


def test_checksum_is_the_firmwares(obk_fw) -> None:
    assert obk_fw.crc8(b"123456789") == tiny_crc8(b"123456789") == 0x63
    assert tiny_crc8_unsigned(b"123456789") == 0xA1  # CRC-8/MAXIM: what bkbench used to write
    rng = random.Random(7)
    for _ in range(40):
        buf = rng.randbytes(rng.randrange(1, 700))
        assert obk_fw.crc8(buf) == tiny_crc8(buf)
    for version in (3, 5):  # CFG_CalcChecksum picks 2016 or 3584 bytes from the version
        cfg = ObkConfig.new(MAC, obk_fw.chip)
        cfg.set("version", version)
        cfg.set("wifi_ssid", rng.randbytes(20).hex())
        assert obk_fw.checksum(cfg.sector()) == cfg.sector()[3]


def test_new_config_is_openbks_own_default(obk_fw) -> None:
    real = obk_fw.defaults(MAC)
    ours = ObkConfig.new(MAC, obk_fw.chip).sector()
    assert real[:3] == b"CFG" and ours[4:3584] == real[4:]  # byte for byte (the firmware adds its CRC on save)
    boot = obk_fw.load(ours)
    assert boot.accepted and boot.saved is None and boot.cfg == ours[:3584]  # no rewrite on its first boot


def test_field_offsets_are_the_firmwares(obk_fw) -> None:
    """Every string field where the firmware's own setters write it, every flag bit where CFG_SetFlag
    sets it, pins where PIN_Get...ForPinIndex read them, and OpenBK applies P0..P28 only."""
    setters = obk_fw.string_setters()
    ours = {off: size for off, fmt, size in FIELDS.values() if fmt == "s"}
    assert {off: setters.get(off) for off in ours} == ours
    bits = obk_fw.flag_bits()
    assert len(bits) >= 60
    for bit, (off, b) in bits.items():
        cfg = ObkConfig.new(MAC, obk_fw.chip)
        cfg.set("genericFlags", 0)
        cfg.set_flag(bit, True)
        raw = cfg.sector()
        assert raw[off] == 1 << b and sum(raw[8:16]) == 1 << b
    assert obk_fw.pin_limit() == LAYOUT_32.gpio_max == 29
    cfg = ObkConfig.new(MAC, obk_fw.chip)
    rng = random.Random(3)
    want = {}
    for g in rng.sample(range(29), 12):
        want[g] = (rng.randrange(1, len(ROLE_NAMES)), rng.randrange(256), rng.randrange(256))
        cfg.set_pin(g, want[g][0], want[g][1], want[g][2])
    raw = cfg.sector()
    for g in range(29):
        assert obk_fw.pin(raw, g) == want.get(g, (0, 0, 0))
    # changeCounter: CFG_InitAndLoad logs it from the loaded config
    cfg.set("changeCounter", 4242)
    assert obk_fw.load(cfg.sector()).change_count_logged == 4242


@pytest.mark.parametrize("tail", ["erased", "random"])
def test_version3_keeps_its_flash_tail(obk_fw, tmp_path, tail) -> None:
    rng = random.Random(11)
    cfg = ObkConfig.new(MAC, obk_fw.chip)
    cfg.set("version", 3)
    cfg.set("wifi_ssid", "old-net")
    body = cfg.struct_bytes()
    sector = body + (b"\xff" * (4096 - 2016) if tail == "erased" else rng.randbytes(4096 - 2016))
    boot = obk_fw.load(sector)
    assert boot.accepted
    shown = ObkConfig.parse(sector, obk_fw.chip)
    for name in FIELDS:
        if name not in ("version", "initCommandLine"):  # OpenBK raises the version to 5 in memory
            assert shown.get(name) == ObkConfig(boot.cfg).get(name), name  # what the firmware runs with
    # an edit inside the version-3 struct keeps version 3 and every byte after 0x7E0
    src, out = tmp_path / "v3.bin", tmp_path / "v3-edited.bin"
    src.write_bytes(sector)
    assert main(["config", "set", str(src), "mqtt_host=10.1.2.3", "-o", str(out)]) == 0
    edited = out.read_bytes()
    assert edited[2016:] == sector[2016:] and struct.unpack_from("<i", edited, 4)[0] == 3
    assert obk_fw.load(edited).accepted
    # a field past it (second Wi-Fi) makes it version 5, as OpenBK's own save would
    assert main(["config", "set", str(src), "ssid2=newer", "-o", str(out)]) == 0
    edited = out.read_bytes()
    boot = obk_fw.load(edited)
    assert boot.accepted and struct.unpack_from("<i", edited, 4)[0] == 5
    assert _value(boot.cfg, "wifi_ssid2") == "newer" and _value(boot.cfg, "wifi_ssid") == "old-net"


def test_config_set_on_every_dump_is_accepted_by_openbk(obk_fw, fixtures_dir, tmp_path, capsys) -> None:
    """The 'done when' of issue 19: `config set` (through the CLI) on every fixture dump gives a sector the
    real loader accepts, runs with unchanged and does not rewrite, with every field and pin where `config
    show` says it is. Each dump is judged by its own chip's build."""
    chip = obk_fw.chip
    for name in _dumps(chip):
        src, out = fixtures_dir / "dumps" / name, tmp_path / f"{name}.cfg.bin"
        assert main(["config", "set", str(src), *SET, "-o", str(out)]) == 0, name
        before, after = src.read_bytes(), out.read_bytes()
        diff = [a for a in range(0, len(before), 4096) if before[a : a + 4096] != after[a : a + 4096]]
        assert len(diff) == 1, name
        flash_at = (diff[0] + (0x11000 if name == ROTATED else 0)) % len(before)
        assert flash_at == OBK_CONFIG_OFFSET[chip], name
        sector = after[diff[0] : diff[0] + 4096]
        boot = obk_fw.load(sector)
        assert boot.accepted and boot.saved is None and boot.cfg == sector[:3584], name
        capsys.readouterr()
        assert main(["config", "show", str(out), "--json", "--show-secrets"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["warnings"] == []
        for field in FIELDS:
            assert shown[field] == _value(boot.cfg, field), (name, field)
        assert shown["wifi_ssid"] == "Bench Lab" and shown["wifi_pass"] == "pw with spaces"
        assert shown["initCommandLine"] == "backlog startDriver BL0937; PowerSave 1"
        assert shown["webPassword"] == "admin1" and shown["ntpServer"] == "pool.ntp.org"
        assert 2 in shown["flags"] and 37 in shown["flags"] and 10 in shown["flags"]
        pins = {int(g): (ROLE_NAMES.index(p["role"]), p["channel"], p["channel2"]) for g, p in shown["pins"].items()}
        assert pins == {6: (1, 1, 0), 10: (3, 1, 2), 24: (46, 3, 0), 28: (98, 0, 0)}
        for g in range(29):
            assert obk_fw.pin(boot.cfg, g) == pins.get(g, (0, 0, 0)), (name, g)
        assert obk_fw.pin(boot.cfg, 29) is None  # the firmware never applies P29 and up
        if name != _dumps(chip)[0]:
            continue  # the text view is the same code for every dump
        capsys.readouterr()
        assert main(["config", "show", str(out)]) == 0
        text = capsys.readouterr().out
        assert "pw with spaces" not in text and "mq-secret" not in text and "admin1" not in text
        assert not set(SECRET_FIELDS) - {ln.split()[0] for ln in text.splitlines() if "<secret>" in ln}


def test_openbk_written_sectors_read_back_clean(obk_fw, tmp_path, capsys) -> None:
    """Sectors the firmware itself saved (defaults over an erased sector, a rewritten version-3 config)
    read back with no complaint and the values the firmware holds."""
    made = obk_fw.load(b"\xff" * 4096)
    assert not made.accepted and made.saved is not None
    old = ObkConfig.new(MAC, obk_fw.chip)
    old.set("version", 3)
    old.set("wifi_ssid", "legacy")
    old.raw[0x53C:0x554] = bytes(24)  # an old config without the LED table: OpenBK saves after loading
    upgraded = obk_fw.load(old.sector())
    assert upgraded.accepted and upgraded.saved is not None
    for i, saved in enumerate((made.saved, upgraded.saved)):
        path = tmp_path / f"openbk-{i}.bin"
        path.write_bytes(saved + b"\xff" * (4096 - len(saved)))
        capsys.readouterr()
        assert main(["config", "show", str(path), "--json", "--show-secrets"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["warnings"] == [] and "checksum" not in shown
        for field in FIELDS:
            assert shown[field] == _value(saved, field), field
    assert json.loads(json.dumps(shown))["wifi_ssid"] == "legacy"


def test_old_bkbench_checksum_is_rejected_by_openbk_and_never_called_good(obk_fw, tmp_path, capsys) -> None:
    cfg = ObkConfig.new(MAC, obk_fw.chip)
    cfg.set("wifi_ssid", "was-set-by-old-bkbench")
    sector = bytearray(cfg.sector())
    sector[3] = tiny_crc8_unsigned(bytes(sector[4:3584]))
    assert sector[3] != tiny_crc8(bytes(sector[4:3584]))
    assert not obk_fw.load(bytes(sector)).accepted  # what every config bkbench wrote before got at boot
    path = tmp_path / "old.bin"
    path.write_bytes(bytes(sector))
    capsys.readouterr()
    assert main(["config", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("warning:") == 1 and "OpenBK rejects" in out
    fixed = tmp_path / "fixed.bin"
    assert main(["config", "set", str(path), "name=again", "-o", str(fixed)]) == 0
    assert "OpenBK's own" in capsys.readouterr().out
    boot = obk_fw.load(fixed.read_bytes())
    assert boot.accepted and _value(boot.cfg, "wifi_ssid") == "was-set-by-old-bkbench"
    assert main(["config", "write", str(path), "--port", "/dev/ttyUSB99"]) != 0  # refused before linking
    assert "OpenBK rejects" in capsys.readouterr().err


def _cases(chip: str, rng: random.Random) -> list[tuple[str, bytes]]:
    good = ObkConfig.new(MAC, chip)
    good.set("wifi_ssid", "home")
    good.set_pin(8, "Rel", 1)
    sec = good.sector()
    out = [("good", sec), ("erased", b"\xff" * 4096), ("zeros", bytes(4096))]
    for pos in (3, 4, 0x14, 0x33E, 0x7DF, 0x7E0, 0xC00, 0xDFF):
        b = bytearray(sec)
        b[pos] ^= 0x10
        out.append((f"flip@{pos:#x}", bytes(b)))
    b = bytearray(sec)
    b[3] = tiny_crc8_unsigned(bytes(b[4:3584]))
    out.append(("old-crc", bytes(b)))
    out.append(("ident", b"CFH" + sec[3:]))
    for version in (0, 1, 2, 3, 4, 5, 6, -1):
        for tail in ("ff", "random"):
            c = ObkConfig.new(MAC, chip)
            c.set("version", version)
            c.set("shortDeviceName", "n" * rng.randrange(1, 31))
            if rng.random() < 0.5:
                c.raw[0x53C:0x554] = bytes(24)  # no LED table: loaded, then saved
            if rng.random() < 0.5:
                c.raw[0x4B8:0x4BB] = bytes(3)  # zero button timings
            body = c.struct_bytes()
            rest = b"\xff" * (4096 - len(body)) if tail == "ff" else rng.randbytes(4096 - len(body))
            out.append((f"v{version}-{tail}", body + rest))
    for i in range(15):
        r = bytearray(rng.randbytes(4096))
        r[0:3] = b"CFG"
        struct.pack_into("<i", r, 4, rng.choice([1, 2, 3, 4, 5]))
        size = 2016 if struct.unpack_from("<i", r, 4)[0] == 3 else 3584
        r[3] = tiny_crc8(bytes(r[4:size]))
        out.append((f"random-valid-{i}", bytes(r)))
        out.append((f"random-{i}", rng.randbytes(4096)))
    return out


def test_simulator_loader_agrees_with_the_firmware(obk_fw) -> None:
    """core/sim/obk_loader.py (the simulator's OpenBK) against the real CFG_InitAndLoad on ~120 sectors:
    good, bit flips, old checksum, wrong ident, erased, every version with erased or random tails, zero
    LED tables and buttons, random ones: same verdict, same bytes in memory, same sector saved."""
    rng = random.Random(19)
    cases = _cases(obk_fw.chip, rng)
    verdicts = set()
    for name, sector in cases:
        real = obk_fw.load(sector, MAC)
        sim = obk_loader.init_and_load(sector, obk_fw.chip, MAC)
        assert sim.accepted == real.accepted, name
        assert sim.cfg == real.cfg, name
        assert (sim.saved[:3584] if sim.saved else None) == real.saved, name
        if sim.saved:
            assert sim.saved[3584:] == b"\xff" * 512
        assert [ln for ln in real.logs if ln.startswith("CFG_InitAndLoad")][0].split("%")[0] in sim.logs[0]
        verdicts.add((real.accepted, real.saved is not None))
    assert verdicts == {(True, True), (True, False), (False, True)}  # every path was taken
