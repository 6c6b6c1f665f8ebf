# Pricing kernel: one pass over a batch of CDRs, straight from Arrow buffers.
#
# For each CDR: classify by call type (SPEC §4), normalise the rated number
# from its UTF-8 bytes (`+`, spaces, dashes, masked trailing `*`), find the
# deck row of the longest prefix effective at the start time (SPEC §2), and
# price all billable seconds as if charged to credits (SPEC §3), in int64
# micro-units. Outputs are plain column arrays (status, service, deck row,
# billable seconds, full charge) so the per-tenant pass can later split a
# call between pools and credits with price_seconds() without re-pricing.
#
# Why it is fast: strings are parsed in place (no Python objects, no copies);
# the lookup is a 4-digit bucket plus a short binary search over ranges that
# fit in L2, done for 16 CDRs in lockstep so their cache misses overlap
# instead of queueing. Blocks of 16 go through three stages at once (parse
# and search, resolve the version, price), so the node and deck row each CDR
# needs are prefetched a block before they are read, and the number bytes
# two blocks before; everything runs without the GIL on a [begin, end) slice
# so two threads price two halves of a batch at once.

from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t
from _tables cimport (Tables, RowTerms, Node, find_row, resolve, billable_seconds,
                      price_seconds, tables_from, N_SERVICES, N_BUCKETS, RC_BUCKET_WIDTH,
                      SVC_OUTBOUND,
                      SVC_CONFERENCE, SVC_TOLLFREE)

import numpy as np

cdef extern from *:
    """
    #ifdef CYTHON_BOUNDSCHECK_BUILD
    #define RATECORE_BOUNDSCHECK 1
    #else
    #define RATECORE_BOUNDSCHECK 0
    #endif
    """
    int RATECORE_BOUNDSCHECK

#: True when this module was built with Cython bounds checking (CI's second run).
BOUNDSCHECK = bool(RATECORE_BOUNDSCHECK)

# Call type codes: the order of ratecore.pricing.CALL_TYPES.
cdef enum:
    CT_CONF_OUT = 5           # 0..4 are the user/ucap outbound types
    CT_USER_IN = 6
    CT_UCAP_IN = 8
    CT_EMERGENCY_OUT = 10

# Status codes: the order of ratecore.pricing.STATUSES; negatives are rejects.
cdef enum:
    ST_FREE = 0
    ST_ZERO_DURATION = 1
    ST_NO_RATE = 2
    ST_BLOCKED_DESTINATION = 3
    ST_CHARGED = 4
    REJ_MISSING_NUMBER = -1
    REJ_BAD_NUMBER = -2
    REJ_SKIPPED = -128        # rejected by the Python checks before the kernel

cdef enum:
    NUM_OK = 0
    NUM_MISSING = 1
    NUM_BAD = 2

cdef int64_t[16] POW10 = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
                          100000000, 1000000000, 10000000000, 100000000000,
                          1000000000000, 10000000000000, 100000000000000,
                          1000000000000000]


cdef inline int parse_number(const uint8_t* s, int64_t n, int64_t* value,
                             int* known, int* total) noexcept nogil:
    """E.164 digits of s[0:n] after dropping spaces, dashes and one leading
    `+`; trailing `*` are masked digits. At most 15 digits in all."""
    cdef int64_t i, v = 0
    cdef int k = 0, t = 0, plus = 0
    cdef uint8_t ch
    for i in range(n):
        ch = s[i]
        if ch == 32 or ch == 45:                  # ' ' '-'
            continue
        if 48 <= ch <= 57:                        # digit
            if t > k:                             # a digit after a mask
                return NUM_BAD
            v = v * 10 + (ch - 48)
            k += 1
            t += 1
        elif ch == 42:                            # '*'
            if k == 0:
                return NUM_BAD
            t += 1
        elif ch == 43 and t == 0 and not plus:    # leading '+'
            plus = 1
        else:
            return NUM_BAD
        if t > 15:
            return NUM_BAD
    if t == 0:
        return NUM_BAD if plus else NUM_MISSING
    value[0] = v
    known[0] = k
    total[0] = t
    return NUM_OK


# Eight ASCII digits at a time (SWAR): a number's digits are read as one or
# two 8-byte words ending at its last byte, checked to be digits and
# converted with three multiplications (Lemire's parse_eight_digits). The
# sample's numbers read alone: 11.6-12.2 ns each byte by byte, 9.3-9.4 ns
# so. Anything else (spaces, dashes, masks, the first bytes of a buffer, a
# big-endian machine) is parsed byte by byte.
cdef extern from *:
    """
    #include <string.h>
    #define RC_ZEROS 0x3030303030303030ULL
    static inline uint64_t rc_load8(const uint8_t* p) {
        uint64_t w;
        memcpy(&w, p, 8);
        return w;
    }
    /* every byte an ASCII digit */
    static inline int rc_all_digits(uint64_t w) {
        return ((w & 0xF0F0F0F0F0F0F0F0ULL)
                | (((w + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4))
               == 0x3333333333333333ULL;
    }
    /* the value of 8 ASCII digits, the first in the low byte */
    static inline uint64_t rc_eight(uint64_t w) {
        w -= RC_ZEROS;
        w = (w * 10) + (w >> 8);
        return (((w & 0x000000FF000000FFULL) * 0x000F424000000064ULL)
                + (((w >> 16) & 0x000000FF000000FFULL) * 0x0000271000000001ULL)) >> 32;
    }
    /* the n (1..8) bytes before `end` as 8 digits, with '0's in front */
    static inline uint64_t rc_tail(const uint8_t* end, int64_t n) {
        uint64_t w = rc_load8(end - 8);
        if (n < 8) {
            uint64_t keep = ~0ULL << (8 * (8 - n));
            w = (w & keep) | (RC_ZEROS & ~keep);
        }
        return w;
    }
    /* 1 and the value if [digits, stop) is 1 to 15 ASCII digits and the words
       read lie in the buffer starting at `begin`; 0 otherwise (the caller
       parses byte by byte) */
    static inline int rc_swar_digits(const uint8_t* digits, const uint8_t* stop,
                                     const uint8_t* begin, int64_t* value) {
        int64_t n = stop - digits;
        uint64_t lo, hi;
    #if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
        return 0;       /* the words are read as little-endian */
    #endif
        if (n < 1 || n > 15 || stop - begin < (n > 8 ? 16 : 8))
            return 0;
        if (n <= 8) {
            lo = rc_tail(stop, n);
            if (!rc_all_digits(lo))
                return 0;
            *value = (int64_t)rc_eight(lo);
            return 1;
        }
        lo = rc_load8(stop - 8);
        hi = rc_tail(stop - 8, n - 8);
        if (!rc_all_digits(lo) || !rc_all_digits(hi))
            return 0;
        *value = (int64_t)(rc_eight(hi) * 100000000ULL + rc_eight(lo));
        return 1;
    }
    """
    bint rc_swar_digits(const uint8_t* digits, const uint8_t* stop, const uint8_t* begin,
                        int64_t* value) noexcept nogil


cdef inline int string_number(const int32_t* offsets, const uint8_t* data,
                              const uint8_t* valid, int64_t base, int64_t i,
                              int64_t* value, int* known, int* total) noexcept nogil:
    cdef int64_t j = base + i
    if valid != NULL and not ((valid[j >> 3] >> (j & 7)) & 1):
        return NUM_MISSING
    cdef const uint8_t* s = data + offsets[j]
    cdef const uint8_t* stop = data + offsets[j + 1]
    cdef const uint8_t* p = s
    cdef int64_t v = 0
    cdef uint8_t c
    # fast path: an optional '+' then only digits, as most exports write them
    if p < stop and p[0] == 43:
        p += 1
    cdef const uint8_t* digits = p
    if rc_swar_digits(digits, stop, data, &v):
        value[0] = v
        known[0] = <int>(stop - digits)
        total[0] = known[0]
        return NUM_OK
    # the first bytes of a buffer, or a number with something else in it:
    # digits byte by byte, then the full rules (timed: going straight to
    # parse_number made the kernel 5-10 % slower in three alternating pairs)
    while p < stop:
        c = p[0] - 48
        if c > 9:
            break
        v = v * 10 + c
        p += 1
    if p == stop and 0 < p - digits <= 15:
        value[0] = v
        known[0] = <int>(p - digits)
        total[0] = known[0]
        return NUM_OK
    return parse_number(s, stop - s, value, known, total)


cdef extern from *:
    """
    #define rc_prefetch(p) __builtin_prefetch(p)
    """
    void rc_prefetch(const void* p) noexcept nogil

cdef enum:
    LANES = 16    # CDRs in flight: their memory loads overlap
    AHEAD_BLOCKS = 2


cdef inline void prefetch_span(const uint8_t* lo, const uint8_t* hi) noexcept nogil:
    while lo < hi:
        rc_prefetch(lo)
        lo += 64
    rc_prefetch(hi - 1)


def price_batch(book,
                const int8_t[::1] call_type, const uint8_t[::1] tollfree,
                const int16_t[::1] deck,
                const int32_t[::1] caller_offsets, const uint8_t[::1] caller_data,
                caller_valid, Py_ssize_t caller_base,
                const int32_t[::1] callee_offsets, const uint8_t[::1] callee_data,
                callee_valid, Py_ssize_t callee_base,
                const int64_t[::1] start_us, const int64_t[::1] duration,
                const int64_t[::1] emergency_value, const int8_t[::1] emergency_len,
                int8_t[::1] status_out, int8_t[::1] service_out,
                int32_t[::1] row_out, int32_t[::1] billable_out,
                int64_t[::1] charge_out,
                Py_ssize_t begin=0, Py_ssize_t end=-1, bint with_charge=True):
    """Classify, look up and price CDRs [begin, end) of one batch.

    String columns arrive as their Arrow buffers: int32 offsets, UTF-8 data,
    the validity bitmap (or None) and the array's offset (`*_base`). Rows
    with deck < 0 were rejected before the kernel and are marked skipped.
    Runs without the GIL, so threads may price disjoint slices of the same
    batch into the same output arrays. Without `with_charge` the full
    credit price is not worked out and `charge_out` (which may be empty)
    is left alone: a billed run prices each call's credit part in the pass.
    """
    cdef Tables tb = tables_from(book)
    cdef const uint8_t[::1] cr_valid_mv, ce_valid_mv
    cdef const uint8_t* cr_valid = NULL
    cdef const uint8_t* ce_valid = NULL
    if caller_valid is not None:
        cr_valid_mv = caller_valid
        cr_valid = &cr_valid_mv[0]
    if callee_valid is not None:
        ce_valid_mv = callee_valid
        ce_valid = &ce_valid_mv[0]
    cdef Py_ssize_t n = call_type.shape[0]
    if end < 0 or end > n:
        end = n
    if begin < 0 or begin > end:
        raise ValueError("bad slice")
    for arr_len in (tollfree.shape[0], deck.shape[0], start_us.shape[0], duration.shape[0],
                    status_out.shape[0], service_out.shape[0], row_out.shape[0],
                    billable_out.shape[0], charge_out.shape[0] if with_charge else n):
        if arr_len != n:
            raise ValueError("all columns of a batch must have the same length")
    if (caller_offsets.shape[0] < caller_base + n + 1
            or callee_offsets.shape[0] < callee_base + n + 1):
        raise ValueError("string offsets shorter than the batch")
    cdef Py_ssize_t n_emergency = emergency_value.shape[0]
    cdef const int32_t* cr_off = &caller_offsets[0]
    cdef const uint8_t* cr_data = &caller_data[0]
    cdef const int32_t* ce_off = &callee_offsets[0]
    cdef const uint8_t* ce_data = &callee_data[0]

    # per-lane state of the CDRs in flight, for three blocks at once: block
    # k is parsed and searched while k - 1 resolves its version and k - 2 is
    # priced, so the node and the deck row each needs were prefetched one
    # block earlier instead of just before their use
    cdef Py_ssize_t idx[3][LANES]
    cdef int64_t padded[3][LANES]
    cdef int known[3][LANES]
    cdef int32_t row[3][LANES]
    cdef int8_t svc_l[3][LANES]
    cdef int nact[3]
    cdef int32_t table[LANES]
    cdef int32_t lo[LANES]
    cdef int32_t cnt[LANES]

    cdef Py_ssize_t blk, i, e
    cdef int a, m, rc, total, maxn, half, s0, s1, s2, drain = 0, k = 0
    cdef int8_t ct, svc
    cdef int64_t value, d, b
    cdef int32_t r, node
    cdef const int32_t* bucket
    cdef const RowTerms* terms
    # numbers longer than every emergency number (nearly all) skip the list
    cdef int max_emergency = 0
    for e in range(n_emergency):
        if emergency_len[e] > max_emergency:
            max_emergency = emergency_len[e]
    nact[0] = nact[1] = nact[2] = 0
    with nogil:
        blk = begin
        while drain < 2:
            s0 = k % 3            # this block
            s1 = (k + 2) % 3      # the one before
            s2 = (k + 1) % 3      # two before
            k += 1
            m = 0
            if blk >= end:
                drain += 1
            else:
                # the number bytes of the CDRs AHEAD_BLOCKS blocks on (about
                # 4 cache lines per column): read only in part, the columns'
                # streams are not always caught by the hardware prefetcher
                i = blk + AHEAD_BLOCKS * LANES
                if i + LANES < end:
                    prefetch_span(ce_data + ce_off[callee_base + i],
                                  ce_data + ce_off[callee_base + i + LANES])
                    prefetch_span(cr_data + cr_off[caller_base + i],
                                  cr_data + cr_off[caller_base + i + LANES])
                # 1. classify and parse; finish the CDRs that need no lookup
                i = blk
                while i < end and i < blk + LANES:
                    ct = call_type[i]
                    svc = -1
                    rc = NUM_OK
                    if deck[i] < 0:
                        svc = -2
                    elif ct <= CT_CONF_OUT:
                        svc = SVC_CONFERENCE if ct == CT_CONF_OUT else SVC_OUTBOUND
                        rc = string_number(ce_off, ce_data, ce_valid, callee_base, i,
                                           &value, &known[s0][m], &total)
                        if rc == NUM_OK and known[s0][m] == total and total <= max_emergency:
                            for e in range(n_emergency):
                                if emergency_value[e] == value and emergency_len[e] == total:
                                    svc = -1          # an emergency number: free
                                    break
                    elif CT_USER_IN <= ct <= CT_UCAP_IN and tollfree[i]:
                        svc = SVC_TOLLFREE
                        rc = string_number(cr_off, cr_data, cr_valid, caller_base, i,
                                           &value, &known[s0][m], &total)
                    billable_out[i] = 0
                    if with_charge:
                        charge_out[i] = 0
                    row_out[i] = -1
                    if svc == -2:
                        status_out[i] = REJ_SKIPPED
                        service_out[i] = -1
                    elif svc == -1:
                        status_out[i] = ST_FREE
                        service_out[i] = -1
                    elif rc != NUM_OK:
                        status_out[i] = (REJ_MISSING_NUMBER if rc == NUM_MISSING
                                         else REJ_BAD_NUMBER)
                        service_out[i] = svc
                    else:
                        idx[s0][m] = i
                        svc_l[s0][m] = svc
                        padded[s0][m] = value * POW10[15 - known[s0][m]]
                        table[m] = deck[i] * N_SERVICES + svc
                        m += 1
                    i += 1
                blk = i

                # 2. bucket, then binary searches in lockstep across the lanes
                maxn = 1
                for a in range(m):
                    bucket = (tb.bucket + table[a] * (N_BUCKETS + 1)
                              + <int32_t>(padded[s0][a] // RC_BUCKET_WIDTH))
                    lo[a] = bucket[0]
                    cnt[a] = bucket[1] + 1 - bucket[0]
                    if cnt[a] > maxn:
                        maxn = cnt[a]
                while maxn > 1:
                    for a in range(m):
                        half = cnt[a] >> 1
                        if tb.range_start[lo[a] + half] <= padded[s0][a]:
                            lo[a] += half
                        cnt[a] -= half
                    maxn -= maxn >> 1
                for a in range(m):
                    row[s0][a] = tb.range_node[lo[a]]
                    if row[s0][a] >= 0:
                        rc_prefetch(tb.nodes + row[s0][a])
            nact[s0] = m

            # 3. the block before: effective version, falling back to
            # shorter prefixes
            for a in range(nact[s1]):
                i = idx[s1][a]
                r = resolve(&tb, row[s1][a], known[s1][a], start_us[i])
                if r < 0 and svc_l[s1][a] == SVC_CONFERENCE:
                    r = find_row(&tb, deck[i] * N_SERVICES + SVC_OUTBOUND, padded[s1][a],
                                 known[s1][a], start_us[i])
                row[s1][a] = r
                if r >= 0:
                    rc_prefetch(tb.rows + r)

            # 4. two blocks before: price
            for a in range(nact[s2]):
                i = idx[s2][a]
                r = row[s2][a]
                d = duration[i]
                service_out[i] = svc_l[s2][a]
                row_out[i] = r
                if d == 0:
                    status_out[i] = ST_ZERO_DURATION
                elif r < 0:
                    status_out[i] = ST_NO_RATE
                else:
                    terms = tb.rows + r
                    if terms.blocked:
                        status_out[i] = ST_BLOCKED_DESTINATION
                    else:
                        b = billable_seconds(d, terms.inc1, terms.inc2)
                        billable_out[i] = <int32_t>b
                        if with_charge:
                            charge_out[i] = price_seconds(terms, b)
                        status_out[i] = ST_CHARGED
            nact[s2] = 0


def parse_numbers(const int32_t[::1] offsets, const uint8_t[::1] data, valid,
                  Py_ssize_t base, Py_ssize_t n):
    """How the kernel reads `n` numbers of a string array (its buffers, as
    price_batch takes them): (code, value, known digits, all digits) of
    each, code 0 ok, 1 missing, 2 bad. For tests of the parse itself."""
    if offsets.shape[0] < base + n + 1:
        raise ValueError("string offsets shorter than the array")
    cdef const uint8_t[::1] valid_mv
    cdef const uint8_t* v = NULL
    if valid is not None:
        valid_mv = valid
        v = &valid_mv[0]
    code = np.zeros(n, np.int8)
    value = np.zeros(n, np.int64)
    known = np.zeros(n, np.int32)
    total = np.zeros(n, np.int32)
    cdef int8_t[::1] cc = code
    cdef int64_t[::1] vv = value
    cdef int32_t[::1] kk = known, tt = total
    cdef Py_ssize_t i
    cdef int64_t x
    cdef int k, t
    for i in range(n):
        x = k = t = 0
        cc[i] = string_number(&offsets[0], &data[0], v, base, i, &x, &k, &t)
        if cc[i] == NUM_OK:
            vv[i] = x
            kk[i] = k
            tt[i] = t
    return code, value, known, total
