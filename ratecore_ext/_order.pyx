# Grouping one run's calls for the per-tenant pass: each tenant's calls as
# 32-byte records (see _calls.pxd) in order of start time.
#
# A stable counting sort moves every call into its cell: its tenant's slice,
# or with time buckets counted beforehand (ratecore.billing.TimeCounts) a
# run of 2**k of its tenant's buckets holding at most IN_CACHE calls (one
# sequential read of the priced columns, a few hundred write streams). Each cell is then
# checked and, unless it is already in time order, sorted by an LSD radix
# sort of packed (start - cell minimum, position in cell) keys: the cell
# fits in the cache, the keys are 8 bytes, and only the digits that differ
# are passed over (a cell too big is split by its top time bits first).
# The counting sort is stable, so equal starts stay in input order;
# ratecore.billing reorders those rare runs by usage_id, from the tie
# positions returned here.

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, qsort, realloc
from libc.string cimport memcpy, memset

import numpy as np
import pyarrow as pa

from _calls cimport CallRec

cdef enum:
    DIGIT_BITS = 11
    DIGITS = 1 << DIGIT_BITS
    # a slice bigger than this is first split by its top time bits into TOP
    # buckets, records moved, so every radix sort runs in cache: 4 MB of
    # records plus 2 MB of keys, a share of the 32 MB L3 that two threads
    # can hold at once. Sorting the 20M sample's tenants (finish(), best of
    # 8) took 0.38 s at 1 << 15 (the L2), 0.295 s at 1 << 17, 0.29 s at
    # 1 << 19, 0.30 s at 1 << 20 and 0.56 s at 1 << 13: splitting costs a
    # pass over the records, the L3 is fast enough for the radix passes.
    IN_CACHE = 1 << 17
    TOP_BITS = 8
    TOP = 1 << TOP_BITS
    MAX_PASSES = (64 + DIGIT_BITS - 1) // DIGIT_BITS


def in_cache_records():
    """How many records a slice may hold and be radix-sorted without a split."""
    return IN_CACHE


def record_size():
    """sizeof(CallRec), checked against ratecore.billing.CALL_DTYPE."""
    return sizeof(CallRec)


cdef inline int bit_length(uint64_t v) noexcept nogil:
    cdef int n = 0
    while v:
        n += 1
        v >>= 1
    return n


cdef int by_start(const void* a, const void* b) noexcept nogil:
    cdef const CallRec* x = <const CallRec*> a
    cdef const CallRec* y = <const CallRec*> b
    if x.start != y.start:
        return -1 if x.start < y.start else 1
    return -1 if x.idx < y.idx else (1 if x.idx > y.idx else 0)


cdef bint time_span(const CallRec* r, int64_t m, int64_t* lo_t, int64_t* hi_t) noexcept nogil:
    """Whether the `m` (>= 1) records are in time order; their first and last
    start in lo_t, hi_t."""
    cdef int64_t j
    cdef bint ordered = True
    lo_t[0] = hi_t[0] = r[0].start
    for j in range(1, m):
        if r[j].start < r[j - 1].start:
            ordered = False
        if r[j].start < lo_t[0]:
            lo_t[0] = r[j].start
        if r[j].start > hi_t[0]:
            hi_t[0] = r[j].start
    return ordered


cdef int sort_slice(CallRec* seg, int64_t m, uint64_t* keys, uint64_t* tmp,
                    CallRec* spare) noexcept nogil:
    """Sort `m` records by (start, idx) in place; `spare` holds m records,
    `keys` and `tmp` min(m, IN_CACHE)."""
    cdef int64_t lo_t, hi_t
    if time_span(seg, m, &lo_t, &hi_t):
        return 0                            # already in time order
    if m > IN_CACHE:
        return split_slice(seg, m, lo_t, bit_length(<uint64_t>(hi_t - lo_t)), keys, tmp, spare)
    sort_into(seg, m, lo_t, hi_t, spare, keys, tmp)
    memcpy(seg, spare, m * sizeof(CallRec))
    return 0


cdef void sort_into(const CallRec* src, int64_t m, int64_t lo_t, int64_t hi_t, CallRec* dst,
                    uint64_t* keys, uint64_t* tmp) noexcept nogil:
    """dst = the `m` (<= IN_CACHE) records of src sorted by (start, idx);
    their starts lie in [lo_t, hi_t]. An LSD radix sort of packed (start -
    lo_t, position) keys, over the time digits that differ only. The
    counts of every digit are taken while the keys are built (one pass
    over the records, not one per digit)."""
    cdef int64_t j
    cdef int tb = bit_length(<uint64_t>(hi_t - lo_t)), ib = bit_length(<uint64_t>(m - 1))
    cdef int n_pass = (tb + DIGIT_BITS - 1) // DIGIT_BITS, p, d
    cdef uint32_t[MAX_PASSES][DIGITS] count
    cdef uint32_t c, total
    cdef uint64_t v
    cdef uint64_t* a
    cdef uint64_t* b
    cdef uint64_t* swap
    if ib + tb > 64:
        memcpy(dst, src, m * sizeof(CallRec))
        qsort(dst, m, sizeof(CallRec), by_start)
        return
    memset(count, 0, (n_pass if n_pass > 4 else 4) * sizeof(count[0]))
    if n_pass <= 4:                         # the usual case (spans up to 203 days), unrolled
        for j in range(m):
            v = <uint64_t>(src[j].start - lo_t)
            keys[j] = (v << ib) | <uint64_t>j
            count[0][v & (DIGITS - 1)] += 1
            count[1][(v >> DIGIT_BITS) & (DIGITS - 1)] += 1
            count[2][(v >> (2 * DIGIT_BITS)) & (DIGITS - 1)] += 1
            count[3][(v >> (3 * DIGIT_BITS)) & (DIGITS - 1)] += 1
    else:
        for j in range(m):
            v = <uint64_t>(src[j].start - lo_t)
            keys[j] = (v << ib) | <uint64_t>j
            for p in range(n_pass):
                count[p][(v >> (p * DIGIT_BITS)) & (DIGITS - 1)] += 1
    # the index bits are already in order and the sort is stable: sort the time bits only
    a, b = keys, tmp
    for p in range(n_pass):
        if count[p][(a[0] >> (ib + p * DIGIT_BITS)) & (DIGITS - 1)] == m:
            continue                        # one value of this digit: nothing moves
        total = 0
        for d in range(DIGITS):
            c = count[p][d]
            count[p][d] = total
            total += c
        for j in range(m):
            d = (a[j] >> (ib + p * DIGIT_BITS)) & (DIGITS - 1)
            b[count[p][d]] = a[j]
            count[p][d] += 1
        swap = a
        a = b
        b = swap
    cdef uint64_t mask = ((<uint64_t>1) << ib) - 1 if ib < 64 else <uint64_t>(-1)
    for j in range(m):
        dst[j] = src[a[j] & mask]


cdef int split_slice(CallRec* seg, int64_t m, int64_t lo_t, int tb, uint64_t* keys,
                     uint64_t* tmp, CallRec* spare) noexcept nogil:
    """Stable MSD step: move records into `spare` in TOP buckets by their
    top time bits, then sort each bucket from there back into `seg` (a
    bucket still too big goes back as it is, split again with its own
    part of `spare`, now free, as scratch)."""
    cdef int shift = tb - TOP_BITS if tb > TOP_BITS else 0
    cdef int64_t[TOP + 1] at
    cdef int64_t j, d, c, lo_d, hi_d
    memset(at, 0, sizeof(at))
    for j in range(m):
        at[((seg[j].start - lo_t) >> shift) + 1] += 1
    for d in range(TOP):
        at[d + 1] += at[d]
    cdef int64_t[TOP + 1] begin
    memcpy(begin, at, sizeof(at))
    for j in range(m):
        d = (seg[j].start - lo_t) >> shift
        spare[at[d]] = seg[j]
        at[d] += 1
    for d in range(TOP):
        c = begin[d + 1] - begin[d]
        if c == 0:
            continue
        if c > IN_CACHE:
            memcpy(seg + begin[d], spare + begin[d], c * sizeof(CallRec))
            sort_slice(seg + begin[d], c, keys, tmp, spare + begin[d])
            continue
        if time_span(spare + begin[d], c, &lo_d, &hi_d):
            memcpy(seg + begin[d], spare + begin[d], c * sizeof(CallRec))
        else:
            sort_into(spare + begin[d], c, lo_d, hi_d, seg + begin[d], keys, tmp)
    return 0


def group_calls(const int32_t[::1] tenant, const int64_t[::1] start, const int32_t[::1] payer,
                const int32_t[::1] row, const int32_t[::1] billable,
                const int8_t[::1] service, const int8_t[::1] status, int32_t n_tenants,
                uint8_t[::1] recs_out, int64_t[::1] offsets_out):
    """Fill `recs_out` (n CallRec) with the calls grouped by tenant, each
    tenant's in (start, input position) order, and `offsets_out` (n_tenants
    + 1) with where each tenant's records begin.

    Returns the record positions k whose start equals record k-1's within a
    tenant (ties, to be ordered by usage_id), as an int64 array. The same as
    :func:`scatter_calls` then :func:`sort_tenants` over every tenant.
    """
    scatter_calls(tenant, start, payer, row, billable, service, status, n_tenants, recs_out,
                  offsets_out)
    return sort_tenants(recs_out, offsets_out, 0, n_tenants)


cdef inline int64_t bucket_of(int64_t start, int64_t lo, int shift, int64_t n_b) noexcept nogil:
    """A start's time bucket, (start - lo) >> shift, or -1 outside [0, n_b)."""
    if n_b == 1:
        return 0
    if start < lo or ((<uint64_t>start - <uint64_t>lo) >> shift) >= <uint64_t>n_b:
        return -1
    return <int64_t>((<uint64_t>start - <uint64_t>lo) >> shift)


ctypedef struct Cursor:         # a cell's next record and its end
    int64_t at
    int64_t end

ctypedef struct TenantCells:    # a tenant's first cell and its cells' time shift
    int32_t first
    int32_t shift


cdef int64_t scatter(const int32_t* tenant, const int64_t* start, const int32_t* payer,
                     const int32_t* row, const int32_t* billable, const int8_t* service,
                     const int8_t* status, int64_t n, int64_t first, int32_t n_tenants,
                     const int32_t* first_cell, const uint8_t* cell_shift, int64_t lo,
                     int shift, int64_t n_b, CallRec* recs, int64_t* cursor,
                     const int64_t* ends, int64_t n_c, int32_t* where) noexcept nogil:
    """Move calls [0, n) to their cells' cursors (call i's cell is
    first_cell[tenant] + ((start - lo) >> cell_shift[tenant]); it becomes
    record idx first + i, and where[first + i] is the record's position);
    returns the first call whose tenant or start is out of range or whose
    cell is full, else -1, having moved the calls before it (-2: no memory
    for the packed cursors).

    The loop reads a cell's cursor and end, and a tenant's first cell and
    shift, as one record each (packed here): as separate arrays they were
    more pointers than registers, reloaded from the stack for every call."""
    cdef Cursor* cur = <Cursor*> malloc(n_c * sizeof(Cursor) + 1)
    cdef TenantCells* tc = <TenantCells*> malloc(n_tenants * sizeof(TenantCells) + 1)
    cdef int64_t i, k, bad = -1
    cdef int32_t t, c
    cdef uint64_t d, keep = 0 if n_b == 1 else <uint64_t>(-1)
    cdef CallRec* r
    if cur == NULL or tc == NULL:
        free(cur)
        free(tc)
        return -2
    for i in range(n_c):
        cur[i].at = cursor[i]
        cur[i].end = ends[i]
    for i in range(n_tenants):
        tc[i].first = first_cell[i]
        tc[i].shift = cell_shift[i]
    where += first
    for i in range(n):
        t = tenant[i]
        # one bucket: every call in its tenant's one cell, whatever its start
        d = (<uint64_t>start[i] - <uint64_t>lo) & keep
        if t < 0 or t >= n_tenants or (keep and (start[i] < lo or (d >> shift) >= <uint64_t>n_b)):
            bad = i
            break
        c = tc[t].first + <int32_t>(d >> tc[t].shift)
        k = cur[c].at
        if k >= cur[c].end:
            bad = i
            break
        cur[c].at = k + 1
        r = recs + k
        r.start = start[i]
        r.idx = <int32_t>(first + i)
        r.grouped = <int32_t>k
        where[i] = <int32_t>k
        r.payer = payer[i]
        r.row = row[i]
        r.billable = billable[i]
        r.service = service[i]
        r.status = status[i]
    for i in range(n_c):
        cursor[i] = cur[i].at
    free(cur)
    free(tc)
    return bad


def scatter_calls(const int32_t[::1] tenant, const int64_t[::1] start,
                  const int32_t[::1] payer, const int32_t[::1] row,
                  const int32_t[::1] billable, const int8_t[::1] service,
                  const int8_t[::1] status, int32_t n_tenants, uint8_t[::1] recs_out,
                  int64_t[::1] offsets_out):
    """The stable counting sort by tenant: `recs_out` gets each tenant's
    calls as records in input order, `offsets_out` where each tenant's
    begin. Each tenant's slice is then sorted by :func:`sort_tenants`."""
    cdef int64_t n = tenant.shape[0], i, t
    if recs_out.shape[0] != n * <int64_t>sizeof(CallRec) or offsets_out.shape[0] != n_tenants + 1:
        raise ValueError("group_calls: output buffers have the wrong size")
    for i in range(n):
        if tenant[i] < 0 or tenant[i] >= n_tenants:
            raise ValueError(f"group_calls: tenant row {tenant[i]} out of range")
    cdef int64_t* pos = &offsets_out[0]
    with nogil:
        memset(pos, 0, (n_tenants + 1) * sizeof(int64_t))
        for i in range(n):
            pos[tenant[i] + 1] += 1
        for t in range(n_tenants):
            pos[t + 1] += pos[t]
    cursor = offsets_out[:n_tenants].copy()
    scatter_batch(tenant, start, payer, row, billable, service, status, 0, recs_out, cursor,
                  offsets_out[1:], np.empty(n, np.int32), np.arange(n_tenants, dtype=np.int32),
                  np.zeros(n_tenants, np.uint8))


def scatter_batch(const int32_t[::1] tenant, const int64_t[::1] start,
                  const int32_t[::1] payer, const int32_t[::1] row,
                  const int32_t[::1] billable, const int8_t[::1] service,
                  const int8_t[::1] status, int64_t first, uint8_t[::1] recs_out,
                  int64_t[::1] cursor, const int64_t[::1] ends, int32_t[::1] where,
                  const int32_t[::1] first_cell, const uint8_t[::1] cell_shift,
                  int64_t lo=0, int shift=0, int64_t n_b=1):
    """Move a batch of calls into their cells of `recs_out`, in order: call
    i of tenant t goes to record cursor[c] of its cell c = first_cell[t] +
    ((start[i] - lo) >> cell_shift[t]) (then advanced, never to ends[c]) as
    call number first + i, and where[first + i] is set to that record's
    position. A cell is a tenant's slice, or with n_b time buckets of
    (start - lo) >> shift, 2**(cell_shift[t] - shift) consecutive buckets of
    it. Batches added in input order give the counting sort of
    :func:`scatter_calls` without its columns for the whole run existing at
    once."""
    cdef int64_t n = tenant.shape[0], bad, n_c = cursor.shape[0], n_t, b, t
    if (start.shape[0] != n or payer.shape[0] != n or row.shape[0] != n
            or billable.shape[0] != n or service.shape[0] != n or status.shape[0] != n):
        raise ValueError("group_calls: columns differ in length")
    if ends.shape[0] != n_c or n_c >= 2**31 or first < 0:
        raise ValueError("group_calls: cursor and ends differ in length")
    n_t = first_cell.shape[0]
    if n_b < 1 or not 0 <= shift < 64 or cell_shift.shape[0] != n_t or n_t >= 2**31:
        raise ValueError("group_calls: bad time buckets")
    for t in range(n_t):
        if n_b > 1 and not shift <= cell_shift[t] < 64:
            raise ValueError("group_calls: bad time buckets")
        # the tenant's last bucket's cell must be one of the cells
        b = 0 if n_b == 1 else ((n_b - 1) << shift) >> cell_shift[t]
        if not 0 <= first_cell[t] or first_cell[t] + b >= n_c:
            raise ValueError("group_calls: a bucket's cell is out of range")
    if recs_out.shape[0] // sizeof(CallRec) >= 2**31:
        raise ValueError("group_calls: at most 2**31 - 1 calls are grouped at once")
    if n and n_t == 0:
        raise ValueError(f"group_calls: tenant row {tenant[0]} out of range")
    if first + n > where.shape[0]:
        raise ValueError(f"group_calls: more calls than counted ({first + n:,} of "
                         f"{where.shape[0]:,})")
    cdef int64_t n_recs = recs_out.shape[0] // sizeof(CallRec)
    for t in range(n_c):
        if not 0 <= cursor[t] <= ends[t] <= n_recs:
            raise ValueError("group_calls: a tenant's slice is outside the records")
    if n == 0:
        return
    with nogil:
        bad = scatter(&tenant[0], &start[0], &payer[0], &row[0], &billable[0], &service[0],
                      &status[0], n, first, <int32_t>n_t, &first_cell[0], &cell_shift[0], lo,
                      shift, n_b, <CallRec*> &recs_out[0], &cursor[0], &ends[0], n_c,
                      &where[0])
    if bad == -2:
        raise MemoryError()
    if bad >= 0:
        t = tenant[bad]
        if t < 0 or t >= n_t:
            raise ValueError(f"group_calls: tenant row {t} out of range")
        if bucket_of(start[bad], lo, shift, n_b) < 0:
            raise ValueError(f"group_calls: call start {start[bad]} outside the counted span")
        raise ValueError(f"group_calls: more calls of tenant row {t} than counted")


def time_histogram(const int32_t[::1] tenant, const int64_t[::1] start, int64_t lo, int shift,
                   int64_t[:, ::1] counts):
    """Add each call to counts[tenant, (start - lo) >> shift]: the calls per
    tenant and time bucket that cut a run's tenants into cells."""
    cdef int64_t n = tenant.shape[0], i, b, bad = -1
    cdef int64_t n_t = counts.shape[0], n_b = counts.shape[1]
    cdef int32_t t
    if start.shape[0] != n:
        raise ValueError("time_histogram: columns differ in length")
    if not 0 <= shift < 64 or n_b < 1:
        raise ValueError("time_histogram: bad time buckets")
    if n == 0:
        return
    with nogil:
        for i in range(n):
            t = tenant[i]
            b = bucket_of(start[i], lo, shift, n_b)
            if t < 0 or t >= n_t or b < 0:
                bad = i
                break
            counts[t, b] += 1
    if bad >= 0:
        if not 0 <= tenant[bad] < n_t:
            raise ValueError(f"time_histogram: tenant row {tenant[bad]} out of range")
        raise ValueError(f"time_histogram: call start {start[bad]} outside the span")


def sort_tenants(uint8_t[::1] recs_out, const int64_t[::1] offsets, int64_t lo, int64_t hi):
    """Sort the slices of tenants [lo, hi) of grouped records by (start,
    input position), without the GIL: threads may sort disjoint ranges.

    Returns the record positions k in those slices whose start equals
    record k-1's (ties, to be ordered by usage_id), as an int64 array.
    """
    cdef int64_t t, k, m, biggest = 0
    if lo < 0 or hi < lo or hi >= offsets.shape[0]:
        raise ValueError("sort_tenants: bad tenant range")
    if offsets[hi] * <int64_t>sizeof(CallRec) > recs_out.shape[0]:
        raise ValueError("sort_tenants: offsets beyond the records")
    for t in range(lo, hi):
        if offsets[t + 1] < offsets[t]:
            raise ValueError("sort_tenants: offsets out of order")
        if offsets[t + 1] - offsets[t] > biggest:
            biggest = offsets[t + 1] - offsets[t]
    cdef CallRec* recs = <CallRec*> &recs_out[0] if recs_out.shape[0] else NULL
    cdef const int64_t* pos = &offsets[0]
    cdef int64_t* ties = NULL
    cdef int64_t* grown
    cdef int64_t n_ties = 0, cap_ties = 0
    cdef bint failed = False
    # scratch for the biggest slice, from numpy (huge pages: fewer page faults);
    # keys only ever hold a slice radix-sorted whole (a bigger one is split),
    # and fresh pages cost: this machine's first touch of a page is ~0.5 GB/s
    cdef int64_t n_keys = biggest if biggest < IN_CACHE else IN_CACHE
    cdef uint64_t[::1] keys = np.empty(n_keys + 1, np.uint64)
    cdef uint64_t[::1] tmp = np.empty(n_keys + 1, np.uint64)
    cdef uint8_t[::1] spare = np.empty((biggest + 1) * sizeof(CallRec), np.uint8)
    try:
        with nogil:
            for t in range(lo, hi):
                m = pos[t + 1] - pos[t]
                if m > 1:
                    sort_slice(recs + pos[t], m, &keys[0], &tmp[0], <CallRec*> &spare[0])
                for k in range(pos[t] + 1, pos[t + 1]):
                    if recs[k].start == recs[k - 1].start:
                        if n_ties == cap_ties:
                            cap_ties = 2 * cap_ties + 1024
                            grown = <int64_t*> realloc(ties, cap_ties * sizeof(int64_t))
                            if grown == NULL:
                                failed = True
                                break
                            ties = grown
                        ties[n_ties] = k
                        n_ties += 1
                if failed:
                    break
        if failed:
            raise MemoryError()
        out = np.empty(n_ties, np.int64)
        for k in range(n_ties):
            out[k] = ties[k]
        return out
    finally:
        free(ties)


# ---- 64-bit hashes of strings, for finding duplicate usage_ids ---------------------
#
# A run checks its usage_ids for duplicates by sorting their hashes (8 bytes
# each) instead of building a hash table of the strings (count_distinct over
# 20M ids took 13 s and 3.5 GB); equal hashes are then compared as strings,
# so the check stays exact.

cdef inline uint64_t _mix(uint64_t x) noexcept nogil:
    # splitmix64's finaliser: every input bit flips each output bit with p ~ 1/2
    x ^= x >> 30
    x *= 0xbf58476d1ce4e5b9ULL
    x ^= x >> 27
    x *= 0x94d049bb133111ebULL
    x ^= x >> 31
    return x


def hash_strings(const int32_t[::1] offsets, const uint8_t[::1] data, uint64_t[::1] out):
    """out[i] = a 64-bit hash of bytes data[offsets[i]:offsets[i + 1]]
    (an Arrow string array's buffers, its offset already applied)."""
    cdef int64_t n = out.shape[0], i
    cdef int32_t lo, hi, p
    cdef uint64_t h, w
    if offsets.shape[0] != n + 1:
        raise ValueError("hash_strings: offsets must have one entry more than out")
    if n and (offsets[0] < 0 or offsets[n] > data.shape[0] or offsets[n] < offsets[0]):
        raise ValueError("hash_strings: offsets point outside the data")
    cdef const uint8_t* d = &data[0] if data.shape[0] else NULL
    with nogil:
        for i in range(n):
            lo = offsets[i]
            hi = offsets[i + 1]
            h = 0x9e3779b97f4a7c15ULL ^ <uint64_t>(hi - lo)
            p = lo
            while p + 8 <= hi:
                memcpy(&w, d + p, 8)
                h = (h ^ w) * 0xff51afd7ed558ccdULL
                h ^= h >> 32
                p += 8
            if p < hi:
                w = 0
                memcpy(&w, d + p, hi - p)
                h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL
            out[i] = _mix(h)


# ---- gathering strings ----------------------------------------------------------
#
# The ledger names the call of each debit: 3.2M usage_ids gathered from 20M
# for a 20M-call run, each one a cache miss on the offsets and another on
# the bytes. Arrow's take waits for each in turn; here both are prefetched
# AHEAD_STR strings early, so the misses overlap. Gathering the 20M sample's
# ledger ids (in-process A/B, ten alternating rounds each): 0.078 s at 16
# ahead fetching each id's first line, 0.067 s fetching its last line too
# (a 36-byte id spans two lines half the time), 0.050 s at 32 ahead, 0.038 s
# at 64, the same at 128.

cdef extern from *:
    void prefetch "__builtin_prefetch"(const void* p) noexcept nogil

cdef enum:
    AHEAD_STR = 64


def take_strings(const int32_t[::1] offsets, const uint8_t[::1] data, const int64_t[::1] idx,
                 const uint8_t[::1] take):
    """(offsets, bytes) of the strings idx[i] of a string array (its
    `offsets`, offset applied, and `data`), where take[i]; empty elsewhere.
    Returns int32 offsets (len(idx) + 1) and uint8 data."""
    cdef int64_t n = idx.shape[0], n_src = offsets.shape[0] - 1, i, j, total = 0, bad = -1, last
    if take.shape[0] != n or n_src < 0:
        raise ValueError("take_strings: idx and take differ in length, or no offsets")
    if n_src and (offsets[0] < 0 or offsets[n_src] > data.shape[0]):
        raise ValueError("take_strings: offsets point outside the data")
    # Arrow's allocator, not numpy's: numpy asks for huge pages, whose direct
    # compaction stalled this gather from 0.09 s to 0.4 s in some rounds
    out_off = np.frombuffer(pa.allocate_buffer(4 * (n + 1)), np.int32)
    src = np.frombuffer(pa.allocate_buffer(4 * n), np.int32)     # offsets are int32
    cdef int32_t[::1] oo = out_off
    cdef int32_t[::1] ss = src
    oo[0] = 0
    with nogil:
        for i in range(n):
            if i + AHEAD_STR < n and take[i + AHEAD_STR]:
                j = idx[i + AHEAD_STR]
                if 0 <= j < n_src:
                    prefetch(&offsets[j])
            ss[i] = 0
            if take[i]:
                j = idx[i]
                if j < 0 or j >= n_src:
                    bad = i
                    break
                ss[i] = offsets[j]
                total += offsets[j + 1] - offsets[j]
            if total > 2147483647:
                bad = -2
                break
            oo[i + 1] = <int32_t>total
    if bad == -2:
        raise OverflowError("take_strings: more than 2 GiB of strings")
    if bad >= 0:
        raise IndexError(f"take_strings: index {idx[bad]} is outside the {n_src} strings")
    out = np.frombuffer(pa.allocate_buffer(total), np.uint8)
    cdef uint8_t[::1] dd = out
    cdef uint8_t* d = &dd[0] if total else NULL
    cdef const uint8_t* s = &data[0] if data.shape[0] else NULL
    with nogil:
        for i in range(n):
            if i + AHEAD_STR < n:
                # its first and last byte: a 36-byte id spans two lines half the time
                last = oo[i + AHEAD_STR + 1] - oo[i + AHEAD_STR] - 1
                prefetch(s + ss[i + AHEAD_STR])
                prefetch(s + ss[i + AHEAD_STR] + (last if last > 0 else 0))
            if oo[i + 1] > oo[i]:
                memcpy(d + oo[i], s + ss[i], oo[i + 1] - oo[i])
    return out_off, out
