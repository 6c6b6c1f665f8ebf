# Deck compilation helpers: flatten one table's nested prefixes into disjoint
# ranges of the 15-digit padded number space, and look numbers up in the
# compiled tables (used by tests and the reference comparison). Also the
# lookup of small code tables by int32 codes every batch makes (take_codes).
#
# flatten(): prefixes sorted by (range start, length) form a laminar family
# of intervals; one sweep with a stack of open intervals labels every piece of
# [0, 10**15) with its innermost (longest) prefix and gives each prefix its
# parent (the next shorter prefix that contains it). O(n), no allocation per
# prefix, so a 500k-prefix deck flattens in milliseconds.

from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t
from _tables cimport Tables, find_row, tables_from

import numpy as np



cdef inline Py_ssize_t _emit(int64_t[::1] starts, int32_t[::1] labels, Py_ssize_t nout,
                             int64_t at, int32_t label) noexcept nogil:
    """Append range [at, …) labelled `label`, merged into the previous one
    when it has the same label."""
    if nout == 0 or labels[nout - 1] != label:
        starts[nout] = at
        labels[nout] = label
        nout += 1
    return nout


def flatten(const int64_t[::1] lo, const int64_t[::1] hi):
    """Flatten sorted nested intervals into labelled disjoint ranges.

    Parameters
    ----------
    lo, hi : int64 arrays
        Interval bounds of the prefixes, sorted by (lo ascending, hi
        descending); intervals are either nested or disjoint.

    Returns
    -------
    starts : int64 array
        Start of each range; ranges cover [0, 10**15) without gaps.
    labels : int32 array
        Index (into lo/hi) of the innermost interval of each range, -1 where
        no interval covers it.
    parent : int32 array
        For each interval, the index of the innermost interval containing it,
        or -1.
    """
    cdef Py_ssize_t n = lo.shape[0]
    starts_arr = np.empty(2 * n + 1, dtype=np.int64)
    labels_arr = np.empty(2 * n + 1, dtype=np.int32)
    parent_arr = np.empty(n, dtype=np.int32)
    stack_arr = np.empty(n + 1, dtype=np.int32)
    cdef int64_t[::1] starts = starts_arr
    cdef int32_t[::1] labels = labels_arr
    cdef int32_t[::1] parent = parent_arr
    cdef int32_t[::1] stack = stack_arr
    cdef Py_ssize_t depth = 0, nout = 0, i
    cdef int64_t cur = 0
    cdef int32_t top
    with nogil:
        for i in range(n + 1):
            # close the intervals that end at or before the next one starts
            while depth > 0 and (i == n or hi[stack[depth - 1]] <= lo[i]):
                top = stack[depth - 1]
                if cur < hi[top]:
                    nout = _emit(starts, labels, nout, cur, top)
                    cur = hi[top]
                depth -= 1
            if i == n:
                break
            top = stack[depth - 1] if depth > 0 else -1
            if cur < lo[i]:
                nout = _emit(starts, labels, nout, cur, top)
                cur = lo[i]
            parent[i] = top
            stack[depth] = <int32_t>i
            depth += 1
        if cur < 1000000000000000LL:
            nout = _emit(starts, labels, nout, cur, -1)
    return starts_arr[:nout].copy(), labels_arr[:nout].copy(), parent_arr


def lookup(book, const int16_t[::1] table, const int64_t[::1] padded,
           const int8_t[::1] ndigits, const int64_t[::1] at):
    """Deck row (or -1) for each (table, padded number, known digits, time)."""
    cdef Tables tb = tables_from(book)
    cdef Py_ssize_t n = padded.shape[0], i
    out_arr = np.empty(n, dtype=np.int32)
    cdef int32_t[::1] out = out_arr
    with nogil:
        for i in range(n):
            out[i] = find_row(&tb, table[i], padded[i], ndigits[i], at[i])
    return out_arr


ctypedef fused code_t:
    int8_t
    uint8_t
    int16_t
    int32_t


def take_codes(const code_t[::1] table, const int32_t[::1] codes, code_t[::1] out):
    """out[i] = table[codes[i]], a code outside the table taken as its
    nearest end (numpy's take with mode="clip"). Each batch looks up its
    tenant rows, call types, number types and decks by code: numpy's take
    spent 0.6-0.9 ms a million codes on each, this loop a third of that."""
    cdef Py_ssize_t n = codes.shape[0], nt = table.shape[0], i
    cdef int32_t c
    if out.shape[0] != n:
        raise ValueError("take_codes: out and codes differ in length")
    if nt == 0 and n:
        raise ValueError("take_codes: an empty table")
    with nogil:
        for i in range(n):
            c = codes[i]
            c = 0 if c < 0 else c
            c = <int32_t>(nt - 1) if c >= nt else c
            out[i] = table[c]


from _tables cimport Node, Version, RowTerms

#: C struct sizes, checked against the numpy dtypes of ratecore.deck.
STRUCT_SIZES = {"Node": sizeof(Node), "Version": sizeof(Version), "RowTerms": sizeof(RowTerms)}

from _tables cimport N_BUCKETS as _N_BUCKETS

#: Buckets per table (by leading digits); deck.py sizes the bucket table with it.
N_BUCKETS = _N_BUCKETS
