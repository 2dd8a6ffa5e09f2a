"""The chip's CRC of a range, with retry, tied to its request: every CRC a decision rests on comes from here.

Reads (vouching a piece as erased, accepting a transfer), writes (skipping a sector, calling it written,
the final check), verify, the guard outside a write and the per-64 KiB block CRCs (a backup's identity,
the guard's baseline) all ask `chip_crc` / `chip_crc_is`.

Why a reply needs tying. CheckCRC's reply is four bytes of CRC: no address, no length. A reply the chip
sends twice, or answers with its previous reply, or that an adapter's buffer delivers again a few ms
later (after the host drained its input and sent the next command), or one held back and delivered after
the next reply, is a well-formed answer to whatever CheckCRC the host asks next. One stale reply was
enough to vouch the stock app's RBL header as erased flash, or to let a write skip a sector that differed.

Fault model: one whole reply frame repeated, replaced by the chip's previous reply of its kind, copied
again a few ms later (up to two commands later), delivered after the next reply, or dropped
(core/sim/faults.py plays each). The chip answers its commands in order. Then the first answer that is
not the reply to its own request is a copy of an answer the host has already received, at most RECENT
(3) CheckCRC answers back:
- stale: it is the chip's previous CheckCRC reply, the previous answer the host got;
- repeated or copied later: a copy of a received reply, released `lag` commands later. Only a CheckCRC
  request takes it (the host skips frames of another code): at most `lag` CheckCRC answers back, one
  more if it arrives only after the chip's own answer to the request it was released by;
- delivered after the next reply: the host timed out first, sent a LinkCheck and asks again; the held
  reply is then drained, or answers the repeated request (its own range: the right value) and pushes that
  request's reply onto the next one, a copy of the answer just received;
- dropped: a timeout and the same request again.
The first wrong answer must be caught whatever the caller decides from it: left alone, every later
request would get its predecessor's reply (the stream shifts) and the next one whose predecessor's
value happens to be the expected one would pass.

The rule (`_tied`). An answer equal to one of the RECENT answers before it is not evidence, unless that
earlier answer was for the same range with no erase, program or status write in between (a copy of it
is then the right value). The host sends a LinkCheck (the barrier: the chip answers in order, so every
reply still in flight arrives before the LinkCheck's and is dropped with it) and asks again; the value
stands when the answer after the barrier is the same (a copy cannot be on both sides of it, the chip's
own reply can). A caller that only asks whether the range holds an expected value stops at the barrier
when the answer is not that value: "not shown to hold it" is the cautious direction everywhere
(transfer, rewrite, confirm a difference before reporting it).

Equal answers that are not copies: ranges of the same length and content, erased flash above all (whole
64 KiB blocks of it in a row in every stock dump), and a few identical sectors (Tuya keeps copies of its
KV sectors). Each costs a barrier and a second hash (160 ms for 64 KiB), so a request whose own answer is
likely to equal a recent one (the caller's expected value, or without one the CRC of erased flash, is
among the RECENT answers) is shaped (`_cut`): asked in two parts of unequal length, neither as long as
those requests, and the CRCs combined (CRC-32 is affine, `crc_combine`). Erased ranges of different
lengths have different CRCs and other contents collide with 2^-32, so a repeated answer then is a copy,
or one of those identical sectors. The strong check's pieces (flash_ops) are cut so that no two of any
three in a row have the same length and need no shaping. A caller that only asks whether the range holds
a value learns "no" from a repeated answer that is not that value without asking again (it is not that
value whether stale or not); the barrier still ends any shift. Lengths stay whole 256-byte blocks: the
real T bootloader hashes floor((end - start + 1) / 256) of them (REALCODE.md B.2). The barrier is a
LinkCheck, not a CheckCRC, and on BASIC bootloaders the caller's relink still follows the last CheckCRC
before any erase. Cost, fault-free, on the stock LSPA9 dump: a backup 5 more CheckCRCs and 2 barriers
(the KV copies), a write or a re-write about 8 more, a verify none.

Not covered: two faults at once (say a copy that lands later than RECENT answers back), and a reply
damaged in its bits (not a copy: a wrong value that no rule of this kind can see). Callers confirm
a difference before reporting it, and vouch erased flash only by CRCs that tile it (flash_ops docstring).
"""

from __future__ import annotations

import zlib

from ..client import BkClient
from ..errors import OperationCancelled, ProtocolError
from ..layout import BLOCK
from .events import CancelToken, EventSink, OperationRecord, Retry, null_sink

RECENT = 3  # CheckCRC answers back a copy may come from (module docstring)
TIE_TRIES = 4  # barriers before the replies are declared untieable
READ_RETRIES = 20  # exchanges that failed outright (timeout, damaged frame), as bk7231tools
GRAIN = 256  # the T bootloader hashes whole 256-byte blocks


def crc_combine(crc_a: int, crc_b: int, len_b: int) -> int:
    """zlib.crc32(A + B) from zlib.crc32(A), zlib.crc32(B) and len(B): the CRC register is linear in
    (state, data), so crc(A+B) = crc(0^n continuing from crc(A)) ^ crc(B) ^ crc(0^n)."""
    zeros = bytes(len_b)
    return zlib.crc32(zeros, crc_a) ^ crc_b ^ zlib.crc32(zeros)


def _same_request(a, b) -> bool:
    return (a.start, a.end) == (b.start, b.end) and a.epoch == b.epoch


def _may_be_copy(client: BkClient) -> bool:
    """Is the newest answer equal to one of the RECENT before it (other than a still-valid one of its range)?"""
    log = list(client.crc_log)
    if not log:
        return False
    new = log[-1]
    return any(old.value == new.value and not _same_request(old, new) for old in log[-1 - RECENT : -1])


def blank_crc(n: int) -> int:
    """CRC-32 of n bytes of 0xFF (an erased range)."""
    c = _BLANK_CRCS.get(n)
    if c is None:
        c = _BLANK_CRCS[n] = zlib.crc32(b"\xff" * n)
    return c


_BLANK_CRCS: dict[int, int] = {}


def _cut(client: BkClient, addr: int, n: int, expect: int | None) -> int | None:
    """Where to split [addr, addr+n) when its own answer is likely to equal one of the RECENT answers
    (`expect`, or without one the CRC of erased flash: runs of erased blocks and sectors); None: ask it
    whole. The parts are as long as none of those requests."""
    if n % GRAIN or n < 3 * GRAIN:
        return None
    wire = client._wire(addr)
    likely = blank_crc(n) if expect is None else expect
    recent = list(client.crc_log)[-RECENT:]
    if not any(r.value == likely and (r.start, r.length) != (wire, n) for r in recent):
        return None
    taken = {r.length for r in recent}
    a = n // 2 // GRAIN * GRAIN
    while a >= GRAIN:
        a -= GRAIN
        if a >= GRAIN and a != n - a and a not in taken and n - a not in taken:
            return a
    return None


def _tied(client: BkClient, addr: int, n: int, expect: int | None, sink: EventSink,
          record: OperationRecord | None) -> int:
    """The chip's CRC of [addr, addr+n), tied to this request (module docstring). With `expect`, an answer
    that is not `expect` may come back untied: the caller only learns "not shown to be `expect`"."""
    cut = _cut(client, addr, n, expect)
    if cut is not None:
        head = _tied(client, addr, cut, None, sink, record)
        return crc_combine(head, _tied(client, addr + cut, n - cut, None, sink, record), n - cut)
    value = client.crc_once(addr, n)
    for attempt in range(TIE_TRIES):
        if not _may_be_copy(client):
            return value
        client.relink()  # the barrier: whatever the chip sent before arrives ahead of this answer
        if expect is not None and value != expect:
            return value  # not `expect` either way (stale, or the same content as a range before): no need to ask
        again = client.crc_once(addr, n)
        if again == value:
            return value  # the same answer on both sides of the barrier: this range's own
        _desync(client, addr, attempt, sink, record)
        value = again
    raise ProtocolError(f"the chip's CRC replies for 0x{addr:06X}+0x{n:X} keep repeating earlier ones: "
                        "they cannot be told from stale replies")


def _desync(client: BkClient, addr: int, attempt: int, sink: EventSink, record: OperationRecord | None) -> None:
    client.anomalies += 1  # a write then checks everything outside it, as after any failed exchange
    if record is not None:
        record.retries += 1
    sink(Retry(addr, attempt + 1, "a CRC reply repeated an earlier one (stale or late): asked again after a "
                                  "link check"))


def _exchange(client: BkClient, addr: int, n: int, expect: int | None, sink: EventSink,
              record: OperationRecord | None, retries: int, relink: bool) -> int:
    for attempt in range(retries + 1):
        try:
            value = _tied(client, addr, n, expect, sink, record)
            if relink and client.dialect is not None and client.dialect.crc_locks_protection:
                client.relink()  # BASIC bootloaders: the next erase needs a LinkCheck after the last CheckCRC
            return value
        except ProtocolError as exc:
            if attempt == retries:
                raise
            if record is not None:
                record.retries += 1
            sink(Retry(addr, attempt + 1, f"crc: {exc}"))
            client.recover()
    raise AssertionError("unreachable")


def chip_crc(client: BkClient, addr: int, n: int, sink: EventSink = null_sink, record: OperationRecord | None = None,
             *, retries: int = READ_RETRIES, relink: bool = True) -> int:
    """The chip's CRC-32 (zlib convention) of logical [addr, addr+n), tied to this request, retried after a
    failed exchange. `relink`: on BASIC bootloaders end with a LinkCheck (needed before the next erase;
    reads and verifies, which erase nothing, relink once at their end instead)."""
    return _exchange(client, addr, n, None, sink, record, retries, relink)


def chip_crc_check(client: BkClient, addr: int, n: int, expect: int, sink: EventSink = null_sink,
                   record: OperationRecord | None = None, *, retries: int = READ_RETRIES, relink: bool = True) -> int:
    """The chip's CRC of [addr, addr+n) as far as `expect` is concerned: `expect` only when an answer tied
    to this request says so; another value may be a stale one (confirm it before reporting it)."""
    return _exchange(client, addr, n, expect, sink, record, retries, relink)


def chip_crc_is(client: BkClient, addr: int, n: int, expect: int, sink: EventSink = null_sink,
                record: OperationRecord | None = None, *, retries: int = READ_RETRIES, relink: bool = True) -> bool:
    """Whether the chip's CRC of [addr, addr+n) is `expect`, shown by an answer tied to this request."""
    return _exchange(client, addr, n, expect, sink, record, retries, relink) == expect


def block_crcs(client: BkClient, flash_size: int, sink: EventSink = null_sink,
               cancel: CancelToken | None = None, cancelled: str = "cancelled") -> list[int]:
    """The chip's CRC of every 64 KiB block (content identity for a backup, the guard's baseline), each tied
    to its request and retried; on BASIC bootloaders one relink at the end instead of one per block."""
    out = []
    for addr in range(0, flash_size, BLOCK):
        if cancel is not None and cancel.cancelled:
            raise OperationCancelled(cancelled)
        out.append(chip_crc(client, addr, min(BLOCK, flash_size - addr), sink, relink=False))
    if client.dialect is not None and client.dialect.crc_locks_protection:
        client.relink()
    return out
