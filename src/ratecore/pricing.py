"""Pricing (SPEC §3–§4): the Python side of the ``_price`` kernel.

Turns a batch of canonical CDR columns into the kernel's inputs without
copying the big buffers (Arrow string and timestamp buffers are read in
place), runs the kernel on one or more threads, and returns plain arrays:
status, service, deck row, billable seconds and the full charge of every
CDR, as if all billable seconds were charged to credits.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ratecore import fields
from ratecore._price import price_batch
from ratecore.deck import SERVICES, RateBook

#: Microsoft's call types (PSTN usage report); the kernel sees their index.
CALL_TYPES = (
    "user_out", "user_out_conf", "user_out_transfer", "user_out_forwarding", "ucap_out",
    "conf_out", "user_in", "conf_in", "ucap_in", "unassigned_in", "emergency_out",
)
OUTBOUND_CALL_TYPES = CALL_TYPES[:6]
#: Statuses of rated records; the kernel writes the first five, the
#: per-tenant pass the rest. The index is the code used inside the kernels.
STATUSES = (
    "free", "zero_duration", "no_rate", "blocked_destination", "charged",
    "included", "partly_included", "cut_no_license", "cut_no_funds",
    "blocked_no_license", "blocked_no_funds",
)
#: Kernel codes of rows it could not rate (negative statuses).
KERNEL_REJECTS = {-1: "missing_number", -2: "bad_number"}
SKIPPED = -128
EMERGENCY_NUMBERS = ("911", "112", "999", "000", "110", "119", "118")


@dataclass
class Priced:
    """Kernel outputs for one batch, one entry per CDR."""

    status: np.ndarray    # int8, index into STATUSES; negative = reject
    service: np.ndarray   # int8, index into SERVICES; -1 for free calls
    row: np.ndarray       # int32 deck row in RateBook.rows, -1 for none
    billable: np.ndarray  # int32 billable seconds
    # int64 micro-units: all billable seconds at credit price (None when not
    # asked for: a billed run prices each call's credit part in the pass)
    charge: np.ndarray | None = None


def allocate(n: int, charge: bool = True) -> Priced:
    """Output arrays for a batch of `n` CDRs."""
    return Priced(np.empty(n, np.int8), np.empty(n, np.int8), np.empty(n, np.int32),
                  np.empty(n, np.int32), np.empty(n, np.int64) if charge else None)


def emergency_table(numbers=EMERGENCY_NUMBERS) -> tuple[np.ndarray, np.ndarray]:
    """Emergency numbers as (value, digit count) pairs for the kernel."""
    digits = [n.strip().lstrip("+") for n in numbers]
    for d in digits:
        if not d.isdigit() or len(d) > 15:
            raise ValueError(f"emergency number {d!r} is not 1 to 15 digits")
    return (np.array([int(d) for d in digits] or [0], dtype=np.int64)[: len(digits)],
            np.array([len(d) for d in digits], dtype=np.int8))


def _single(arr) -> pa.Array:
    """One contiguous array (a batch's column may arrive chunked)."""
    if isinstance(arr, pa.ChunkedArray):
        return arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    return arr


def string_buffers(arr: pa.Array):
    """(offsets, data, validity or None, offset) of a string array, no copy."""
    arr = _single(arr)
    if pa.types.is_large_string(arr.type) or not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    validity, offsets, data = arr.buffers()
    offsets = np.frombuffer(offsets, dtype=np.int32) if offsets is not None \
        else np.zeros(arr.offset + len(arr) + 1, dtype=np.int32)
    data = np.frombuffer(data, dtype=np.uint8) if data is not None and data.size \
        else np.zeros(1, dtype=np.uint8)
    valid = np.frombuffer(validity, dtype=np.uint8) if validity is not None else None
    return offsets, data, valid, arr.offset


def int64_values(arr: pa.Array) -> np.ndarray:
    """The int64 (or timestamp) values of an array as a read-only view."""
    arr = _single(arr)
    buf = arr.buffers()[1]
    return np.frombuffer(buf, dtype=np.int64)[arr.offset: arr.offset + len(arr)]


def _call_type_codes(call_type: pa.Array) -> np.ndarray:
    codes = pc.index_in(pc.utf8_lower(pc.utf8_trim_whitespace(call_type)), pa.array(CALL_TYPES))
    return np.asarray(codes.fill_null(-1)).astype(np.int8)


def _tollfree_flags(number_type: pa.Array) -> np.ndarray:
    flag = pc.equal(pc.utf8_lower(pc.utf8_trim_whitespace(number_type)), "tollfree")
    return np.asarray(flag.fill_null(False)).astype(np.uint8)


def call_type_codes(call_type) -> np.ndarray:
    """Index into CALL_TYPES, -1 for unknown or missing."""
    return fields.by_value(call_type, _call_type_codes, np.int8(-1)).astype(np.int8, copy=False)


def tollfree_flags(number_type) -> np.ndarray:
    """1 where number_type is tollfree (any case), else 0."""
    return fields.by_value(number_type, _tollfree_flags, np.uint8(0)).astype(np.uint8, copy=False)


def price(book: RateBook, *, call_type: np.ndarray, tollfree: np.ndarray, deck: np.ndarray,
          caller: pa.Array, callee: pa.Array, start: pa.Array, duration: pa.Array,
          emergency=None, threads: int = 1, out: Priced | None = None,
          charge: bool = True) -> Priced:
    """Classify, look up and price one batch of CDRs.

    Parameters
    ----------
    book : RateBook
        Compiled decks.
    call_type : int8 array
        Codes from :func:`call_type_codes`.
    tollfree : uint8 array
        1 where ``number_type`` is ``tollfree``.
    deck : int16 array
        ``book.deck_index`` of each CDR's tenant; -1 marks a row already
        rejected (the kernel skips it).
    caller, callee : string arrays
        Raw numbers, read in place.
    start : timestamp[us] array
        Call start, UTC.
    duration : int64 array
        Whole seconds, already checked to be >= 0.
    emergency : (values, lengths), optional
        From :func:`emergency_table`; defaults to the shipped list.
    threads : int
        Split the batch across this many threads (the kernel drops the GIL).
    out : Priced, optional
        Arrays of at least the batch's length to write into (reused across
        batches, they save the page faults of fresh allocations).
    charge : bool
        Work out ``charge`` (the full credit price). A billed run does not
        need it (the pass prices each call's credit part): without it the
        kernel is about 7 % faster and ``charge`` is None.
    """
    n = len(call_type)
    ev, el = emergency if emergency is not None else emergency_table()
    if out is None:
        out = allocate(n, charge)
    else:
        if charge and out.charge is None:
            raise ValueError("price: charge asked for, but `out` has no charge array")
        out = Priced(*(a[:n] for a in (out.status, out.service, out.row, out.billable)),
                     out.charge[:n] if charge else None)
    charge_out = out.charge if charge else np.zeros(0, np.int64)
    cr = string_buffers(caller)
    ce = string_buffers(callee)
    args = (book, np.ascontiguousarray(call_type, np.int8),
            np.ascontiguousarray(tollfree, np.uint8), np.ascontiguousarray(deck, np.int16),
            *cr, *ce, int64_values(start), int64_values(duration), ev, el,
            out.status, out.service, out.row, out.billable, charge_out)
    if threads <= 1 or n < 2 * 65536:
        price_batch(*args, 0, n, charge)
    else:
        bounds = np.linspace(0, n, threads + 1).astype(np.int64)
        list(_pool(threads).map(
            lambda k: price_batch(*args, int(bounds[k]), int(bounds[k + 1]), charge),
            range(threads)))
    return out


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool(threads: int) -> ThreadPoolExecutor:
    """One long-lived pool per thread count: batches are priced back to back."""
    if threads not in _POOLS:
        _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="ratecore-price")
    return _POOLS[threads]


__all__ = ["CALL_TYPES", "STATUSES", "SERVICES", "Priced", "price", "emergency_table"]
