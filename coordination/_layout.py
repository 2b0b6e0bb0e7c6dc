"""The binary layout of every coordination shared-memory segment, in one place.

Why one module: two independent processes (a supervisor and a worker that
may have been started by a different interpreter) read the same bytes.
If a field moved in one place and not in another, they would silently
disagree, so every offset is derived here from one :mod:`struct` format
and nowhere else.  Everything is little-endian with explicit padding
(``<`` formats never insert hidden alignment) and every 8-byte field sits
at an 8-byte-aligned offset, so a single aligned load reads it whole.

Common header (``HEADER_SIZE`` = 64 bytes, offset 0 of every segment)::

    off  size  field
      0     8  magic          b"DROVERSM"
      8     4  kind           b"OWN " (ownership table) or b"CTN " (contention)
     12     2  version        LAYOUT_VERSION
     14     2  reserved
     16     4  creator_pid    pid of the process that created the segment
     20     4  count          number of slots / worker rows
     24     8  creator_start  creator's process start (s since boot)
     32     8  created_at     wall-clock time of creation
     40    16  table totals   (ownership only) invalid_transitions u64, unowned_uses u64
     56     8  reserved

Ownership slot (``SLOT_SIZE`` = 128 bytes, at ``HEADER_SIZE + i * SLOT_SIZE``)::

      0     8  seq            seqlock counter: odd while a writer is mid-write
      8     8  epoch          fencing token, only ever rises
     16     8  owner_start    owner's process start time (0.0 when none)
     24     4  owner_worker   worker id, -1 when none (signed)
     28     4  owner_pid      0 when none
     32     1  state          SlotState value
     33     7  padding
     40     8  claimed_at     wall clock of the claim
     48     8  updated_at     wall clock of the last transition
     56    64  session_id     utf-8, NUL padded
    120     8  padding

Contention row (``ROW_SIZE`` = 1152 bytes, at ``HEADER_SIZE + w * ROW_SIZE``)::

      0     8  seq            seqlock counter of the row's single writer
      8     4  worker         worker id, -1 when the row was never bound
     12     4  pid            pid of the current writer
     16     8  start_time     writer's process start time
     24     8  updated_at     wall clock of the last update
     32    48  counters       retries, forced_reconnects, unowned_uses,
                              invalid_transitions, lock_timeouts, reserved (u64 each)
     80   536  queue wait     count u64, sum f64, max f64, HIST_BUCKETS x u32
    616   536  lock wait      same layout

Histogram buckets are log-scale with ``HIST_PER_OCTAVE`` buckets per
doubling, in microseconds: bucket 0 holds values below 1 µs, bucket ``k``
(1..127) holds ``[2**((k-1)/4), 2**(k/4))`` µs, and the last bucket also
takes everything larger (about one hour and up).  Bucket width is ~19 %,
which bounds the error of a percentile read from the buckets.
"""
from __future__ import annotations

import math
import struct

MAGIC = b"DROVERSM"
LAYOUT_VERSION = 1
KIND_OWNERSHIP = b"OWN "
KIND_CONTENTION = b"CTN "

HEADER_SIZE = 64
COMMON_HEADER = struct.Struct("<8s4sHHIIdd")  # magic, kind, version, reserved, creator_pid, count, creator_start, created_at
TABLE_TOTALS = struct.Struct("<QQ")  # invalid_transitions, unowned_uses
TABLE_TOTALS_OFFSET = 40

SLOT_SIZE = 128
SESSION_ID_BYTES = 64
SLOT_SEQ = struct.Struct("<Q")
SLOT_BODY = struct.Struct("<QdiIB7xdd64s")  # epoch .. session_id, at slot offset 8
SLOT_BODY_OFFSET = 8
# The fields a fencing check needs, read with the seq in one unpack (leading 33 bytes of a slot).
SLOT_CHECK = struct.Struct("<QQdiIB")  # seq, epoch, owner_start, owner_worker, owner_pid, state
NO_WORKER = -1

ROW_SIZE = 1152
HIST_BUCKETS = 128
HIST_PER_OCTAVE = 4
ROW_HEAD = struct.Struct("<QiIdd")  # seq, worker, pid, start_time, updated_at
ROW_SEQ = struct.Struct("<Q")
COUNTER_NAMES: tuple[str, ...] = (
    "retries",
    "forced_reconnects",
    "unowned_uses",
    "invalid_transitions",
    "lock_timeouts",
)
ROW_COUNTERS = struct.Struct("<6Q")
ROW_COUNTERS_OFFSET = 32
ROW_COUNTER = struct.Struct("<Q")
WAIT_HEAD = struct.Struct("<Qdd")  # count, sum (s), max (s)
WAIT_HIST = struct.Struct(f"<{HIST_BUCKETS}I")
HIST_CELL = struct.Struct("<I")
WAIT_SIZE = WAIT_HEAD.size + WAIT_HIST.size
QUEUE_WAIT_OFFSET = 80
LOCK_WAIT_OFFSET = QUEUE_WAIT_OFFSET + WAIT_SIZE
WAIT_KINDS: tuple[str, ...] = ("queue_wait", "lock_wait")


def slot_offset(index: int) -> int:
    """Byte offset of slot ``index`` inside an ownership segment."""
    return HEADER_SIZE + index * SLOT_SIZE


def row_offset(index: int) -> int:
    """Byte offset of worker row ``index`` inside a contention segment."""
    return HEADER_SIZE + index * ROW_SIZE


def ownership_size(slots: int) -> int:
    return HEADER_SIZE + slots * SLOT_SIZE


def contention_size(rows: int) -> int:
    return HEADER_SIZE + rows * ROW_SIZE


_LOG2_US = HIST_PER_OCTAVE / math.log(2.0)


def bucket_of(seconds: float) -> int:
    """The histogram bucket holding a duration (negative and NaN durations land in bucket 0)."""
    us = seconds * 1e6
    if not us >= 1.0:  # also catches NaN
        return 0
    k = int(math.log(us) * _LOG2_US) + 1
    return k if k < HIST_BUCKETS else HIST_BUCKETS - 1


def bucket_upper(k: int) -> float:
    """Upper bound (seconds) of bucket ``k``; the last bucket is open-ended and reports its lower bound."""
    if k <= 0:
        return 1e-6
    if k >= HIST_BUCKETS - 1:
        k = HIST_BUCKETS - 2
    return 2.0 ** (k / HIST_PER_OCTAVE) * 1e-6


def _check() -> None:
    """Fail at import if a format drifted from the documented sizes (cheap, and catches edits early)."""
    rules = (
        (COMMON_HEADER.size <= TABLE_TOTALS_OFFSET, "common header overlaps table totals"),
        (TABLE_TOTALS_OFFSET + TABLE_TOTALS.size <= HEADER_SIZE, "table totals overflow the header"),
        (SLOT_BODY_OFFSET + SLOT_BODY.size <= SLOT_SIZE, "slot body overflows the slot"),
        (SLOT_CHECK.size <= SLOT_BODY_OFFSET + SLOT_BODY.size, "check view is longer than the slot"),
        (ROW_HEAD.size <= ROW_COUNTERS_OFFSET, "row head overlaps the counters"),
        (ROW_COUNTERS_OFFSET + ROW_COUNTERS.size <= QUEUE_WAIT_OFFSET, "counters overlap queue wait"),
        (LOCK_WAIT_OFFSET + WAIT_SIZE <= ROW_SIZE, "lock wait overflows the row"),
        (len(COUNTER_NAMES) <= ROW_COUNTERS.size // ROW_COUNTER.size, "more counters than cells"),
    )
    for ok, what in rules:
        if not ok:
            raise RuntimeError(f"coordination layout is inconsistent: {what}")


_check()
