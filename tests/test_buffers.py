"""The recycler lends a kept block again only once nothing made from its
last loan is alive (views, Arrow buffers and arrays over it)."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pyarrow as pa
import pytest

from ratecore.buffers import ALIGN, Recycler

MB = 1 << 20


def block(n: int) -> int:
    """Bytes kept for a first loan of n: a quarter more, to grow into, and
    room to start on a cache line."""
    return n + n // 4 + ALIGN


def address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


@pytest.fixture
def rec():
    return Recycler(min_bytes=MB)


def test_small_arrays_are_plain(rec):
    a = rec.empty(100, np.int64)
    assert a.shape == (100,) and a.dtype == np.int64
    assert rec.kept_bytes() == 0


def test_shape_dtype_and_writable(rec):
    a = rec.empty((MB // 8, 2), np.int64)
    assert a.shape == (MB // 8, 2) and a.dtype == np.int64 and a.flags.writeable
    a[:] = 7
    assert int(a.sum()) == 7 * MB // 4
    rec_dt = np.dtype([("start", "i8"), ("idx", "i4"), ("g", "i4")], align=True)
    r = rec.empty(MB // 16, rec_dt)
    assert r.dtype == rec_dt and len(r) == MB // 16


def test_lent_arrays_start_on_a_cache_line(rec):
    # 32-byte call records must not straddle two lines (the scatter wrote
    # 1.5 lines a record when blocks started 16 bytes into a page)
    kept = []
    for n in (MB, 3 * MB + 5, 5 * MB + 48):
        a = rec.empty(n, np.uint8)
        kept.append(a)
        assert address(a) % 64 == 0 and len(a) == n
    del kept
    gc.collect()
    assert address(rec.empty(3 * MB, np.uint8)) % 64 == 0     # a block lent again


def test_block_reused_after_the_array_dies(rec):
    a = rec.empty(MB, np.uint8)
    where = address(a)
    del a
    gc.collect()
    b = rec.empty(MB, np.uint8)
    assert address(b) == where
    assert rec.kept_bytes() == block(MB)
    del b
    gc.collect()
    assert address(rec.empty(MB + MB // 8, np.uint8)) == where


def assert_one_of_both_lent_again(rec, n, dtype, blocks):
    """Once nothing holds either block, a loan of the first's size gets one
    of them, and no third block was made."""
    gc.collect()
    assert address(rec.empty(n, dtype)) in blocks
    assert rec.kept_bytes() == 2 * block(MB)


def test_not_reused_while_a_view_lives(rec):
    a = rec.empty(MB // 4, np.int32)
    v = a[10:20].view(np.int16)
    where = address(a)
    del a
    gc.collect()
    b = rec.empty(MB // 4, np.int32)
    assert address(b) != where                # v still holds the first block
    b[:] = 0
    v[:] = 1                                  # and writing one never shows in the other
    assert not b.any()
    second = address(b)
    del v, b
    assert_one_of_both_lent_again(rec, MB // 4, np.int32, {where, second})


def test_not_reused_while_arrow_holds_it(rec):
    a = rec.empty(MB // 8, np.int64)
    a[:] = np.arange(MB // 8)
    arr = pa.Array.from_buffers(pa.int64(), MB // 8, [None, pa.py_buffer(a)])
    where = address(a)
    del a
    gc.collect()
    b = rec.empty(MB // 8, np.int64)
    assert address(b) != where
    b[:] = -1
    assert arr.to_numpy()[-1] == MB // 8 - 1    # Arrow's data is untouched
    second = address(b)
    del arr, b
    assert_one_of_both_lent_again(rec, MB // 8, np.int64, {where, second})


def test_size_classes(rec):
    big = rec.empty(8 * MB, np.uint8)
    del big
    gc.collect()
    small = rec.empty(2 * MB, np.uint8)       # a block over twice the size is not lent
    assert rec.kept_bytes() == block(8 * MB) + block(2 * MB)
    del small
    gc.collect()
    again = rec.empty(5 * MB, np.uint8)       # within twice: the 10 MB block
    assert rec.kept_bytes() == block(8 * MB) + block(2 * MB)
    del again
    gc.collect()
    grown = rec.empty(11 * MB, np.uint8)      # fits no block: the smaller free ones go
    assert rec.kept_bytes() == block(11 * MB)
    del grown


def test_release_keeps_lent_blocks(rec):
    a = rec.empty(MB, np.uint8)
    b = rec.empty(2 * MB, np.uint8)
    del b
    gc.collect()
    rec.release()
    assert rec.kept_bytes() == block(MB)
    a[:] = 3                                   # still usable
    del a
    gc.collect()
    rec.release()
    assert rec.kept_bytes() == 0


def test_threads_get_distinct_blocks(rec):
    got, lock = [], threading.Lock()

    def take():
        a = rec.empty(MB, np.uint8)
        with lock:
            got.append(a)

    ts = [threading.Thread(target=take) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len({address(a) for a in got}) == 8
