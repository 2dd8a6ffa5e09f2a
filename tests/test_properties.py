"""Property-based tests (hypothesis): malformed input gives a clear error, never a crash or a hang."""

from __future__ import annotations

import contextlib
import io
import os
import random
import tempfile
from pathlib import Path

import pytest
from bkbench.core.errors import BkError, ImageError
from bkbench.core.protocol import CMD_HEADER, CommandParser, ResponseScanner, encode, encode_response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simhelpers import temp_env

FAST = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
SLOWER = settings(max_examples=40, deadline=10000, suppress_health_check=[HealthCheck.too_slow])
FIXTURES = Path(os.environ.get("BKBENCH_SHARED", Path(__file__).resolve().parent.parent.parent / "shared")) / "fixtures"


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


# ------------------------------------------------------------------------------------ response scanner
@FAST
@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=8))
def test_scanner_survives_any_bytes(data: bytes, cuts: list[int]) -> None:
    sc = ResponseScanner()
    frames = 0
    for piece in chunked(data, cuts):
        sc.feed(piece)
        while sc.next_frame() is not None:  # terminates: every frame consumes input
            frames += 1
            assert frames <= len(data)
    assert sc.pending <= len(data)


# Garbage that cannot itself form a response header in front of our frame.
garbage = st.binary(max_size=600).filter(lambda b: b"\x04\x0e" not in b and not b.endswith(b"\x04"))


@FAST
@given(garbage, st.integers(0, 0xFF), st.booleans(), st.binary(max_size=300), st.binary(max_size=300),
       st.lists(st.integers(0, 2000), max_size=6))
def test_scanner_finds_frame_in_garbage(pre: bytes, code: int, long: bool, payload: bytes, post: bytes,
                                        cuts: list[int]) -> None:
    if long:
        payload = b"\x00" + payload  # long responses carry a status byte
    elif len(payload) > 250:
        payload = payload[:250]
    stream = pre + encode_response(code, payload, long) + post
    sc = ResponseScanner()
    found = None
    for piece in chunked(stream, cuts):
        sc.feed(piece)
        found = found or sc.find(code, long)
    assert found is not None
    assert found.payload == payload and found.long == long


# ------------------------------------------------------------------------------------ command parser
@FAST
@given(st.binary(max_size=6000), st.lists(st.integers(0, 6000), max_size=8))
def test_command_parser_survives_any_bytes(data: bytes, cuts: list[int]) -> None:
    p = CommandParser()
    for piece in chunked(data, cuts):
        for code, _long, payload in p.feed(piece):
            assert 0 <= code <= 0xFF and isinstance(payload, bytes)


@FAST
@given(st.binary(max_size=400).filter(lambda b: CMD_HEADER not in b and CMD_HEADER[:2] not in b[-2:]),
       st.integers(0, 0xFF), st.booleans(), st.binary(max_size=300), st.lists(st.integers(0, 800), max_size=6))
def test_command_parser_finds_command_after_garbage(pre: bytes, code: int, long: bool, payload: bytes,
                                                   cuts: list[int]) -> None:
    if not long:
        payload = payload[:200]
    stream = pre + encode(code, payload, long)
    p = CommandParser()
    got = []
    for piece in chunked(stream, cuts):
        got += p.feed(piece)
    assert (code, long or len(payload) + 1 >= 0xFF, payload) in got


# ------------------------------------------------------------------------------------ image recognition
def _real_images() -> list[bytes]:
    fw = FIXTURES / "firmware"
    return [p.read_bytes() for p in sorted(fw.glob("*.bin"))] if fw.is_dir() else []


REAL_IMAGES = _real_images()


@SLOWER
@given(st.binary(max_size=70000), st.sampled_from(["", "x.bin", "OpenBeken_v1.0_bk7231n_QIO.bin", "a_UA.bin",
                                                    "OpenBeken-v1.18.219_bk7231t.ug.bin", "dump.rbl"]))
def test_recognize_random_bytes(data: bytes, name: str) -> None:
    from bkbench.core.images.recognize import recognize

    try:
        info = recognize(data, name)
    except ImageError as exc:
        assert str(exc)
        return
    assert info.size == len(data)


@pytest.mark.skipif(not REAL_IMAGES, reason="no firmware fixtures")
@SLOWER
@given(st.integers(0, 10**9), st.integers(0, 40), st.sampled_from(["cut", "flip", "both"]))
def test_recognize_mutated_real_images(seed: int, flips: int, how: str) -> None:
    from bkbench.core.images.recognize import recognize

    rng = random.Random(seed)
    data = bytearray(rng.choice(REAL_IMAGES))
    if how in ("flip", "both"):
        for _ in range(flips):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    if how in ("cut", "both"):
        data = data[: rng.randrange(len(data) + 1)]
    try:
        recognize(bytes(data), "OpenBeken-v1.18.219_bk7231n.ug.bin")
    except ImageError as exc:
        assert str(exc)


# ------------------------------------------------------------------------------------ Tuya KV
KV_REGION = FIXTURES / "dumps" / "bk7231t-pc44ha-tuya-kv-region-only.bin"


@pytest.mark.skipif(not KV_REGION.is_file(), reason="no Tuya KV fixture")
@SLOWER
@given(st.integers(0, 10**9), st.integers(1, 64))
def test_read_vault_on_damaged_vault(seed: int, flips: int) -> None:
    from bkbench.core.analysis.tuya_kv import find_vault, read_vault

    data = bytearray(KV_REGION.read_bytes())
    start = find_vault(bytes(data)) or 0
    rng = random.Random(seed)
    for _ in range(flips):  # damage the vault itself, not the empty flash around it
        i = start + rng.randrange(min(0x8000, len(data) - start))
        data[i] ^= 1 << rng.randrange(8)
    try:
        vault = read_vault(bytes(data))
    except (BkError, ValueError) as exc:
        assert str(exc)
        return
    if vault is not None:
        vault.to_json() if hasattr(vault, "to_json") else None


@FAST
@given(st.binary(max_size=5000))
def test_read_vault_random_bytes(data: bytes) -> None:
    from bkbench.core.analysis.tuya_kv import read_vault

    try:
        read_vault(data)
    except (BkError, ValueError) as exc:
        assert str(exc)


upk_text = st.lists(st.sampled_from(list('{}[]:,"') + ["a", "1", "07", "x y", "1.0.5", "-3", " "]),
                    max_size=40).map("".join) | st.text(max_size=200)


@FAST
@given(upk_text)
def test_user_param_key_parser(text: str) -> None:
    from bkbench.core.analysis.tuya_kv import parse_user_param_key

    try:
        out = parse_user_param_key(text)
    except ValueError as exc:
        assert str(exc)
        return
    assert isinstance(out, dict)


# ------------------------------------------------------------------------------------ OBK config
@FAST
@given(st.one_of(st.binary(max_size=5000), st.binary(max_size=5000).map(lambda b: b"CFG" + b)))
def test_obk_config_parse(data: bytes) -> None:
    from bkbench.core.analysis.obk_config import ObkConfig

    try:
        ObkConfig.parse(data)
    except BkError as exc:
        assert str(exc)


# ------------------------------------------------------------------------------------ CLI arguments
# Commands that never block: no `simulate` (serves forever), `fetch` (network) or bare argv (opens the TUI).
COMMANDS = ["ports", "info", "read", "write", "restore", "verify", "reboot", "analyze", "config", "image",
            "backups", "doctor"]
TOKENS = ["--json", "-p", "--port", "/dev/ttyNOPE", "sim://nochip", "-b", "--baud", "0", "-1", "abc", "0x11000",
          "64K", "--start", "--length", "--output", "-o", "/nonexistent/x.bin", "--reset", "R1|W9|R0", "bogus",
          "--timeout", "0.01", "--allow-protected", "--full", "--no-backup", "-q", "show", "set", "--help", "",
          "--library", "P26=Relay;1", "flag1=1", "\x00", "é", "--", "-"]


@settings(max_examples=80, deadline=20000, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(COMMANDS), st.lists(st.sampled_from(TOKENS) | st.text(max_size=12), max_size=6))
def test_cli_random_argv_never_tracebacks(command: str, rest: list[str]) -> None:
    from bkbench.core.cli.main import main

    argv = [command, *rest]
    if command in ("info", "read", "write", "restore", "verify", "reboot", "doctor"):
        argv += ["--timeout", "0.01"]  # never wait for a chip
    out, err = io.StringIO(), io.StringIO()
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            temp_env(BKBENCH_DATA_DIR=tmp, BKBENCH_CACHE_DIR=tmp, BKBENCH_CONFIG_DIR=tmp):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
            code = exc.code
    text = err.getvalue()
    assert "Traceback" not in text
    assert code in (0, 1, 2), (argv, code, text[-300:])
    if code == 1:
        assert "bkbench: error:" in text, (argv, text[-300:])
        first = text.strip().splitlines()[0]
        assert first.startswith("bkbench: error:") or first.startswith("usage:"), (argv, text[-300:])
