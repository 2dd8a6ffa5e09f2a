"""Issue 10 item 9: serial logs are private (0600 files in a 0700 folder) and saved text logs carry no
Wi-Fi password or key; the raw capture stays complete (unmasked) but private."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from bkbench.core.logmask import MASK, mask_secrets
from bkbench.tui.app import BkBenchApp
from bkbench.tui.widgets.seriallog import RawLog

SECRET_LINES = [
    (b"Info:MAIN:Using SSID [HomeNet]\r\n", None),
    (b"Info:MAIN:Using Pass [hunter2-wifi]\r\n", b"hunter2-wifi"),
    (b'[01-01 18:12:16 TUYA N] gw cfg:{"ssid":"HomeNet","passwd":"TuyaWifiPw9","token":"AYtok123"}\r\n',
     b"TuyaWifiPw9"),
    (b'{"uuid":"tuya1234abcd","auth_key":"Zx9AuthKeyZx9AuthKeyZx9AuthKey12"}\r\n', b"Zx9AuthKeyZx9AuthKey"),
    (b"local_key=f00dfeedbeefcafe psk: WpaPsk77\r\n", b"f00dfeedbeefcafe"),
]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_raw_capture_is_private_unmasked_and_stays_private_when_rotated(tmp_path: Path):
    logs = tmp_path / "data" / "logs"
    logs.mkdir(parents=True, mode=0o755)
    old = logs / "serial-raw.bin"
    old.write_bytes(b"from an older version\n")
    old.chmod(0o644)
    raw = RawLog(old, max_bytes=200, backups=2)
    payload = b"".join(line for line, _ in SECRET_LINES)
    raw.write(payload)
    raw.write(payload)
    raw.close()
    assert _mode(logs) == 0o700
    files = sorted(logs.iterdir())
    assert len(files) >= 2 and all(_mode(p) == 0o600 for p in files)
    assert b"hunter2-wifi" in b"".join(p.read_bytes() for p in files)  # the capture is complete


def test_mask_secrets_hides_passwords_and_keys_but_keeps_the_log_readable(fixtures_dir: Path):
    for line, secret in SECRET_LINES:
        masked = mask_secrets(line.decode())
        if secret:
            assert secret.decode() not in masked and MASK in masked
    assert "HomeNet" in mask_secrets(SECRET_LINES[0][0].decode())
    boot = (fixtures_dir / "bootlogs" / "bk7231n-lspa9-gray-t34-bl0937.log").read_text(errors="replace")
    masked = mask_secrets(boot)
    assert "firmwarekey:keyjnuy4s3kre7m7" not in masked
    for keep in ("wd key[wd_cfg_mem] is null", "read key type fail:1", "[KEY] - pin:16", "V:BK7231N"):
        assert keep in masked  # lines that only mention a key name stay as they were
    assert len(masked.splitlines()) == len(boot.splitlines())


def test_saved_text_log_is_masked_and_private(tmp_path: Path):
    async def run() -> Path:
        app = BkBenchApp(url="", data_dir=tmp_path, ports_source=lambda: [], monitor=False, poll_ports=0)
        async with app.run_test(size=(120, 36)) as pilot:
            app.log_buffer.feed(b"".join(line for line, _ in SECRET_LINES))
            await pilot.pause(0.3)
            await pilot.press("ctrl+s")
            saved = app.log_pane.last_saved
            assert saved is not None
            return saved

    saved = asyncio.run(run())
    text = saved.read_bytes()
    for _, secret in SECRET_LINES:
        if secret:
            assert secret not in text
    assert b"HomeNet" in text and MASK.encode() in text
    assert _mode(saved) == 0o600 and _mode(saved.parent) == 0o700
    raw = saved.parent / "serial-raw.bin"
    assert _mode(raw) == 0o600 and b"hunter2-wifi" in raw.read_bytes()


# (line, secret that must not survive, text that must stay)
MASK_TABLE = [
    ("passwd:my secret phrase", "secret phrase", "passwd:"),
    ("password Hunter2", "Hunter2", "password "),
    ("Wifi_Password my wifi pw\r", "my wifi pw", "\r"),
    ("passwd[8]:12345678", "12345678", "passwd[8]:"),
    ('{"ssid":"Home","pass":"a\\"b, c;d","x":1}', 'b, c;d', '"ssid":"Home"'),
    ("{'psk':'it\\'s; mine'}", "mine", "psk"),
    ("pass=ab,cd;ef", "cd;ef", "pass="),
    ("local_key = 0123,4567", "4567", "local_key = "),
    ("token: abc def", "def", "token: "),
    ('"pass":"cut-off-by-another-task', "cut-off", '"pass":'),
    ("Info:MAIN:Using Pass [hunter 2]", "hunter 2", "Using Pass ["),
    ("ssid:Home  key:abc def", "abc def", "ssid:Home"),
]
HARMLESS = [
    "keyfunc:1,key_pin:2,bt_key_lv:0", "Using SSID [HomeNet]", "wrong password entered", "password is empty",
    "bypass mode on", "token expired", "read key type fail:1", "wd key[wd_cfg_mem] is null", "[KEY] - pin:16",
    'secret=""', "passwords: 3 tried",
]


def test_mask_table() -> None:
    for line, secret, kept in MASK_TABLE:
        masked = mask_secrets(line)
        assert secret not in masked and MASK in masked and kept in masked, (line, masked)
    for line in HARMLESS:
        assert mask_secrets(line) == line, line
