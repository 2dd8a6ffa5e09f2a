"""Framing: encoder, chip-side parser and the host's response scanner (failure modes 1-4)."""

from __future__ import annotations

from bkbench.core.protocol import (
    Cmd,
    CommandParser,
    LongCmd,
    ResponseScanner,
    encode,
    encode_response,
)


def test_worked_frames_from_protocol_details():
    assert encode(Cmd.LINK_CHECK) == bytes.fromhex("01E0FC0100")
    assert encode(Cmd.READ_REG, bytes.fromhex("00008000")) == bytes.fromhex("01E0FC050300008000")
    assert encode(Cmd.SET_BAUD, bytes.fromhex("00100E0014")) == bytes.fromhex("01E0FC060F00100E0014")
    assert encode(LongCmd.FLASH_READ_4K, bytes(4), long=True) == bytes.fromhex("01E0FCFFF405000900000000")
    assert encode(LongCmd.FLASH_ERASE, bytes.fromhex("2000100100"), long=True) == bytes.fromhex(
        "01E0FCFFF406000F2000100100")
    assert encode_response(0x01, b"\x00") == bytes.fromhex("040E0501E0FC0100")


def test_long_form_forced_by_payload_size():
    frame = encode(LongCmd.FLASH_WRITE_4K, bytes(4 + 4096))
    assert frame[:5] == bytes.fromhex("01E0FCFFF4") and frame[5:7] == (0x1005).to_bytes(2, "little")


def test_scanner_finds_reply_inside_boot_log_garbage():
    sc = ResponseScanner()
    sc.feed(b"V:BK7231N_1.0.1\r\nJ 0x10000\r\n\x04\x0e garbage \x04" + encode_response(0x01, b"\x00"))
    frame = sc.find(0x01, False)
    assert frame is not None and frame.payload == b"\x00"
    assert sc.garbage > 20


def test_scanner_resumes_one_byte_after_a_false_header():
    # A false "04 0E" whose body contains the start of the real frame must not swallow it.
    real = encode_response(Cmd.CHECK_CRC, bytes.fromhex("11223344"))
    sc = ResponseScanner()
    sc.feed(b"\x04\x0e\x08" + real)
    frame = sc.find(Cmd.CHECK_CRC, False)
    assert frame is not None and frame.payload == bytes.fromhex("11223344")


def test_scanner_skips_stale_link_check_reply_before_baud_echo():
    sc = ResponseScanner()
    echo = encode_response(Cmd.SET_BAUD, bytes.fromhex("00100E0014"))
    sc.feed(encode_response(0x01, b"\x00") + echo)
    frame = sc.find(Cmd.SET_BAUD, False)
    assert frame is not None and frame.payload == bytes.fromhex("00100E0014")
    assert sc.skipped and sc.skipped[-1].code == 0x01


def test_short_and_long_code_spaces_are_separate():
    sc = ResponseScanner()
    mid = encode_response(LongCmd.FLASH_GET_MID, bytes.fromhex("009FEB6015"), long=True)
    sc.feed(mid)
    assert sc.find(0x0E, False) is None  # short 0x0E is Reboot: a long 0x0E reply is not it
    sc.feed(mid)
    frame = sc.find(0x0E, True)
    assert frame is not None and frame.payload[-3:] == bytes.fromhex("EB6015")


def test_scanner_waits_for_partial_frames():
    full = encode_response(LongCmd.FLASH_READ_4K, b"\x00" + bytes(4) + bytes(range(256)) * 16, long=True)
    sc = ResponseScanner()
    for i in range(0, len(full), 1000):
        assert sc.find(LongCmd.FLASH_READ_4K, True) is None or i >= len(full)
        sc.feed(full[i : i + 1000])
    frame = sc.find(LongCmd.FLASH_READ_4K, True)
    assert frame is not None and len(frame.payload) == 1 + 4 + 4096


def test_chip_parser_survives_garbage_and_split_frames():
    p = CommandParser()
    stream = b"\xff\x00\x01\xe0" + encode(Cmd.LINK_CHECK) + b"noise" + encode(LongCmd.FLASH_READ_4K, bytes(4), True)
    got = []
    for b in stream:
        got += p.feed(bytes([b]))
    assert [(c, long) for c, long, _ in got] == [(0x00, False), (0x09, True)]
