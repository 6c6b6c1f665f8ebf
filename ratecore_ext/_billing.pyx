# The per-tenant pass (SPEC §5-§6): minute pools, credit lots, recharges and
# notifications. Each tenant's calls arrive as 32-byte records in time order
# (grouped by _order.pyx); its other events (fundings, card updates, the
# run's end) are a short sorted list merged in as the walk goes, so the pass
# reads calls sequentially and writes each call's outputs as one record over
# the call's own (BillRec), noting in `perm` where it went.
#
# Layout: everything is flat arrays built by ratecore.billing. Calls arrive
# priced (deck row, billable seconds); a payer's license rows are one slice
# of the license arrays, already in the order pools are tried, and carry the
# index of each pool they feed. A pool's size over time is a step function
# (change points sorted by time). A tenant's live lots are a ring buffer
# (lots are created in time order, so they also expire in that order, and
# FIFO draws come from the head). State arrays persist between runs.
# Ledger entries and notifications go to growable buffers: when one is
# nearly full the loop stops between two events and returns, and the caller
# grows it and resumes. Tenants are independent, so ranges of tenants run
# on different threads without locks.

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t
from libc.stdlib cimport free, malloc

from _calls cimport BillRec, CallRec
from _tables cimport RowTerms, price_seconds

import numpy as np

cdef extern from *:
    """
    #define RC_INT64_MIN (-9223372036854775807LL - 1)
    #define RC_DAY_US 86400000000LL
    """
    int64_t RC_INT64_MIN
    int64_t DAY_US "RC_DAY_US"
    void prefetch_write "__builtin_prefetch"(const void* p, int rw, int locality) noexcept nogil
    void prefetch "__builtin_prefetch"(const void* p) noexcept nogil

cdef enum:
    RECHARGES_PER_INSTANT = 10
    # calls ahead whose deck row (terms and country), license row and `perm`
    # entry are prefetched (their payer range twice as far ahead)
    AHEAD = 8
    EV_FUND = 0
    EV_CARD = 1
    EV_CALL = 2
    EV_END = 3
    # ledger kinds (order of ratecore.billing.LEDGER_KINDS)
    L_FUND = 0
    L_RECHARGE = 1
    L_RECHARGE_FAILED = 2
    L_DEBIT = 3
    L_EXPIRE = 4
    # notification kinds (order of ratecore.billing.NOTIFICATION_KINDS)
    N_RECHARGE_SUCCEEDED = 0
    N_RECHARGE_FAILED = 1
    N_BALANCE_DEPLETED = 2
    N_FUNDS_EXPIRED = 3
    N_POOL_80 = 4
    N_POOL_100 = 5
    # statuses (order of ratecore.pricing.STATUSES)
    S_FREE = 0
    S_CHARGED = 4
    S_INCLUDED = 5
    S_PARTLY = 6
    S_CUT_NO_LICENSE = 7
    S_CUT_NO_FUNDS = 8
    S_BLOCKED_NO_LICENSE = 9
    S_BLOCKED_NO_FUNDS = 10
    SVC_OUTBOUND = 0
    SVC_CONFERENCE = 1
    SVC_TOLLFREE = 2
    # capability codes: -1 none, CAP_FREECALL, CAP_CREDITS, else CAP_SKU + sku
    CAP_FREECALL = 0
    CAP_CREDITS = 1
    CAP_SKU = 2
    # what bill_range returns
    DONE = 0
    NEED_ROOM = 1
    LOTS_FULL = 2


# ---- calendar (proleptic Gregorian, UTC microseconds) -------------------

cdef inline int64_t floor_div(int64_t a, int64_t b) noexcept nogil:
    cdef int64_t q = a // b
    if (a % b != 0) and ((a < 0) != (b < 0)):
        q -= 1
    return q


cdef inline void civil(int64_t days, int64_t* y, int64_t* m, int64_t* d) noexcept nogil:
    # Howard Hinnant's civil_from_days
    cdef int64_t z = days + 719468
    cdef int64_t era = floor_div(z, 146097)
    cdef int64_t doe = z - era * 146097
    cdef int64_t yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    cdef int64_t doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    cdef int64_t mp = (5 * doy + 2) // 153
    d[0] = doy - (153 * mp + 2) // 5 + 1
    m[0] = mp + 3 if mp < 10 else mp - 9
    y[0] = yoe + era * 400 + (1 if m[0] <= 2 else 0)


cdef inline int64_t days_from(int64_t y, int64_t m, int64_t d) noexcept nogil:
    # Howard Hinnant's days_from_civil
    y -= 1 if m <= 2 else 0
    cdef int64_t era = floor_div(y, 400)
    cdef int64_t yoe = y - era * 400
    cdef int64_t mp = m - 3 if m > 2 else m + 9
    cdef int64_t doy = (153 * mp + 2) // 5 + d - 1
    cdef int64_t doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef inline int32_t month_index(int64_t t) noexcept nogil:
    cdef int64_t y, m, d
    civil(floor_div(t, DAY_US), &y, &m, &d)
    return <int32_t>(y * 12 + m - 1)


cdef inline int64_t plus_year(int64_t t) noexcept nogil:
    """`t` + 12 calendar months, same time of day, day clamped (Feb 29 -> 28)."""
    cdef int64_t days = floor_div(t, DAY_US)
    cdef int64_t tod = t - days * DAY_US
    cdef int64_t y, m, d
    civil(days, &y, &m, &d)
    if m == 2 and d == 29 and not ((y + 1) % 4 == 0 and ((y + 1) % 100 != 0 or (y + 1) % 400 == 0)):
        d = 28
    return days_from(y + 1, m, d) * DAY_US + tod


def month_of(int64_t t):
    """Month index (year * 12 + month - 1) of a UTC microsecond instant."""
    return month_index(t)


def expiry_of(int64_t t):
    """A lot's expires_at: `t` plus 12 calendar months, day clamped."""
    return plus_year(t)


ctypedef struct PayerOf:
    int32_t payer
    int32_t tenant


def pair_payers(const int32_t[::1] by_code, const int32_t[::1] payer_tenant):
    """Each user_id code's payer next to that payer's tenant row, as int32
    (n_codes, 2), for :func:`payers_of`: one random read a call instead of
    two (the two tables are 1 MB for the sample's 134k users). A payer
    index out of range is no payer (-1); negative codes (-1, -2) pass."""
    cdef Py_ssize_t n_codes = by_code.shape[0], n_payers = payer_tenant.shape[0], c
    cdef int32_t p
    pairs = np.empty((n_codes, 2), np.int32)
    cdef int32_t[:, ::1] out = pairs
    with nogil:
        for c in range(n_codes):
            p = by_code[c]
            out[c, 0] = -1 if p >= n_payers else p
            out[c, 1] = payer_tenant[p] if 0 <= p < n_payers else -1
    return pairs


def payers_of(const int32_t[::1] codes, valid, Py_ssize_t offset,
              const int32_t[:, ::1] pairs, const int32_t[::1] tenant, int32_t[::1] out):
    """The payer of each call from its user_id dictionary code, by the
    code's (payer, tenant) pair (:func:`pair_payers`): -1 not licensed, -2
    licensed in several tenants (left for the caller), -1 when the code is
    null (`valid`: the Arrow validity bitmap, or None; `offset`: the array's
    offset into it and into `codes`) or the payer belongs to another
    tenant. One pass, no temporaries."""
    cdef Py_ssize_t n = tenant.shape[0], i, j, n_codes = pairs.shape[0]
    cdef int32_t c, p
    cdef const uint8_t[::1] vmv
    cdef const uint8_t* v = NULL
    cdef const PayerOf* of = <const PayerOf*> &pairs[0, 0] if n_codes else NULL
    if codes.shape[0] < offset + n or out.shape[0] != n:
        raise ValueError("payers_of: columns differ in length")
    if pairs.shape[1] != 2:
        raise ValueError("payers_of: pairs must be (payer, tenant) rows")
    if valid is not None:
        vmv = valid
        if vmv.shape[0] * 8 < offset + n:
            raise ValueError("payers_of: validity bitmap too short")
        v = &vmv[0]
    with nogil:
        for i in range(n):
            j = offset + i
            p = -1
            if v == NULL or (v[j >> 3] >> (j & 7)) & 1:
                c = codes[j]
                if 0 <= c < n_codes:
                    p = of[c].payer
                    if p >= 0 and of[c].tenant != tenant[i]:
                        p = -1
            out[i] = p


# ---- the pass ----------------------------------------------------------

# A license row as the pass reads it: Plan keeps its fields as columns, and a
# call reading six of them from six arrays took six cache misses for its
# payer's first row (the 20M sample's 270k rows are 11 MB); Pass packs them.
ctypedef struct LicRow:
    int64_t start                     # assigned [start, stop)
    int64_t stop
    int32_t loc                       # usage location (country index)
    int32_t user_pool                 # pools it feeds, -1 none
    int32_t dom_pool
    int32_t intl_pool
    int32_t dial_pool
    uint8_t credits                   # a Communications Credits license

ctypedef struct PayerRange:           # a payer's license rows [lo, hi)
    int32_t lo
    int32_t hi


cdef struct Ctx:
    # inputs: each tenant's calls [call_lo[t], call_lo[t + 1]) in time order,
    # and its other events [ev_lo[t], ev_lo[t + 1]) sorted by time and kind;
    # a billed call's record becomes its BillRec
    CallRec* calls
    const int64_t* call_lo
    const int64_t* ev_time
    const int8_t* ev_kind
    const int64_t* ev_ref
    const int64_t* ev_lo
    const int64_t* point0             # each tenant's point when the run began
    int64_t* cur_call                 # where each tenant's walk stands (resumable)
    int64_t* cur_ev
    # fundings and card updates
    const int64_t* fund_amount
    const int64_t* card_valid
    # deck rows
    const RowTerms* rows
    const int32_t* row_country
    const uint8_t* row_premium
    # geography
    int32_t n_countries
    const uint8_t* domestic          # [location * n_countries + destination]
    const uint8_t* zone_a
    # tenants (config)
    const int32_t* t_country
    const uint8_t* t_credits
    const uint8_t* t_auto
    const int64_t* t_trigger
    const int64_t* t_recharge
    # payers and their license rows
    const PayerRange* payers
    const LicRow* lic
    # pools
    const int32_t* pool_cp_lo
    const int32_t* pool_cp_hi
    const int64_t* cp_time
    const int64_t* cp_size
    const int32_t* pool_partner
    const int32_t* pool_cap
    const int8_t* pool_sku
    # state: tenants
    int64_t* s_point
    int64_t* s_balance
    int64_t* s_debt
    int64_t* s_card
    int64_t* s_backoff
    int64_t* s_rc_instant
    int32_t* s_rc_count
    int64_t* s_next_lot
    int64_t* s_seq
    int64_t* s_nseq
    # state: lots (ring per tenant)
    const int64_t* lot_base
    const int32_t* lot_cap
    int32_t* lot_head
    int32_t* lot_count
    int64_t* lot_id
    int64_t* lot_funded
    int64_t* lot_expires
    int64_t* lot_amount
    int64_t* lot_remaining
    # state: pools and either-cap groups
    int32_t* p_month
    int64_t* p_used
    int64_t* p_size
    uint8_t* p_flags
    int32_t* p_cp                     # change point of each pool's last size lookup
    int32_t* cap_month
    # outputs per call: perm[grouped position] = position of its BillRec
    # (both within the tenant's slice: stores that stay in the cache)
    int32_t* perm
    int64_t* t_charged                # each tenant's charge to credits this pass
    # growable outputs
    int64_t l_cap
    int64_t l_n
    int32_t* l_tenant
    int64_t* l_seq
    int64_t* l_time
    int8_t* l_kind
    int64_t* l_lot
    int64_t* l_amount
    int64_t* l_balance
    int64_t* l_ref
    int64_t n_cap
    int64_t n_n
    int32_t* n_tenant
    int64_t* n_seq
    int64_t* n_time
    int8_t* n_kind
    int64_t* n_amount
    int64_t* n_balance
    int32_t* n_pool
    int64_t f_cap
    int64_t f_n
    int32_t* f_pool
    int32_t* f_month
    int64_t* f_size
    int64_t* f_used


cdef inline void entry(Ctx* c, int32_t t, int64_t time, int8_t kind, int64_t lot,
                       int64_t amount, int64_t ref) noexcept nogil:
    cdef int64_t k = c.l_n
    c.l_n += 1
    c.s_seq[t] += 1
    c.l_tenant[k] = t
    c.l_seq[k] = c.s_seq[t]
    c.l_time[k] = time
    c.l_kind[k] = kind
    c.l_lot[k] = lot
    # amount and balance as decimal128(18, 6) words: low, then its sign
    c.l_amount[2 * k] = amount
    c.l_amount[2 * k + 1] = -1 if amount < 0 else 0
    c.l_balance[2 * k] = c.s_balance[t]
    c.l_balance[2 * k + 1] = -1 if c.s_balance[t] < 0 else 0
    c.l_ref[k] = ref


cdef inline void notify(Ctx* c, int32_t t, int64_t time, int8_t kind, int64_t amount,
                        int32_t pool) noexcept nogil:
    cdef int64_t k = c.n_n
    c.n_n += 1
    c.s_nseq[t] += 1
    c.n_tenant[k] = t
    c.n_seq[k] = c.s_nseq[t]
    c.n_time[k] = time
    c.n_kind[k] = kind
    c.n_amount[k] = amount
    c.n_balance[k] = c.s_balance[t]
    c.n_pool[k] = pool


cdef inline int add_lot(Ctx* c, int32_t t, int64_t now, int64_t amount, int8_t kind,
                        int64_t ref) noexcept nogil:
    """A funding or recharge: pays the debt first, then is a live lot."""
    cdef int64_t pays = c.s_debt[t] if c.s_debt[t] < amount else amount
    cdef int64_t lot = c.s_next_lot[t]
    cdef int64_t k
    c.s_next_lot[t] += 1
    c.s_debt[t] -= pays
    if amount - pays > 0:
        if c.lot_count[t] >= c.lot_cap[t]:
            return LOTS_FULL
        k = c.lot_base[t] + (c.lot_head[t] + c.lot_count[t]) % c.lot_cap[t]
        c.lot_count[t] += 1
        c.lot_id[k] = lot
        c.lot_funded[k] = now
        c.lot_expires[k] = plus_year(now)
        c.lot_amount[k] = amount
        c.lot_remaining[k] = amount - pays
    c.s_balance[t] += amount
    entry(c, t, now, kind, lot, amount, ref)
    return DONE


cdef inline int recharge(Ctx* c, int32_t t, int64_t now) noexcept nogil:
    if not c.t_auto[t] or c.s_balance[t] >= c.t_trigger[t]:
        return DONE
    if c.s_backoff[t] != RC_INT64_MIN and now < c.s_backoff[t]:
        return DONE
    if c.s_rc_instant[t] != now:
        c.s_rc_instant[t] = now
        c.s_rc_count[t] = 0
    while c.s_balance[t] < c.t_trigger[t] and c.s_rc_count[t] < RECHARGES_PER_INSTANT:
        c.s_rc_count[t] += 1
        if now < c.s_card[t]:
            if add_lot(c, t, now, c.t_recharge[t], L_RECHARGE, -1) != DONE:
                return LOTS_FULL
            notify(c, t, now, N_RECHARGE_SUCCEEDED, c.t_recharge[t], -1)
        else:
            entry(c, t, now, L_RECHARGE_FAILED, 0, 0, -1)
            notify(c, t, now, N_RECHARGE_FAILED, c.t_recharge[t], -1)
            c.s_backoff[t] = now + DAY_US
            return DONE
    return DONE


cdef inline int advance(Ctx* c, int32_t t, int64_t now) noexcept nogil:
    """Expire the lots whose expires_at is at or before `now`, oldest first."""
    cdef int64_t k, left, before, at
    while c.lot_count[t] > 0:
        # room for this expiry: an entry, three notifications, a recharge round
        if c.l_n + 2 * RECHARGES_PER_INSTANT + 4 > c.l_cap or \
                c.n_n + 2 * RECHARGES_PER_INSTANT + 4 > c.n_cap:
            return NEED_ROOM
        k = c.lot_base[t] + c.lot_head[t]
        at = c.lot_expires[k]
        if at > now:
            break
        c.lot_head[t] = (c.lot_head[t] + 1) % c.lot_cap[t]
        c.lot_count[t] -= 1
        left = c.lot_remaining[k]
        if left > 0:
            before = c.s_balance[t]
            c.s_balance[t] -= left
            entry(c, t, at, L_EXPIRE, c.lot_id[k], -left, -1)
            notify(c, t, at, N_FUNDS_EXPIRED, left, -1)
            if before > 0 and c.s_balance[t] <= 0:
                notify(c, t, at, N_BALANCE_DEPLETED, left, -1)
            if recharge(c, t, at) != DONE:
                return LOTS_FULL
    return DONE


cdef inline void debit(Ctx* c, int32_t t, int64_t now, int64_t amount, int64_t call) noexcept nogil:
    """FIFO over live lots; what they cannot pay is one debit without a lot."""
    cdef int64_t before = c.s_balance[t]
    cdef int64_t left = amount, take, k
    while left > 0 and c.lot_count[t] > 0:
        k = c.lot_base[t] + c.lot_head[t]
        take = c.lot_remaining[k] if c.lot_remaining[k] < left else left
        c.lot_remaining[k] -= take
        left -= take
        c.s_balance[t] -= take
        entry(c, t, now, L_DEBIT, c.lot_id[k], -take, call)
        if c.lot_remaining[k] == 0:
            c.lot_head[t] = (c.lot_head[t] + 1) % c.lot_cap[t]
            c.lot_count[t] -= 1
    if left > 0:
        c.s_debt[t] += left
        c.s_balance[t] -= left
        entry(c, t, now, L_DEBIT, 0, -left, call)
    if before > 0 and c.s_balance[t] <= 0:
        notify(c, t, now, N_BALANCE_DEPLETED, amount, -1)


cdef inline int64_t pool_size(Ctx* c, int32_t p, int64_t at) noexcept nogil:
    """Seconds of pool `p` at instant `at`: the last change point at or before it.

    A tenant's instants only grow during a pass, so the change point found
    last time (p_cp) is walked forward; a binary search finds it the first
    time, or if `at` ever lies before it."""
    cdef int32_t lo = c.pool_cp_lo[p], hi = c.pool_cp_hi[p], k = c.p_cp[p], mid
    if lo >= hi or c.cp_time[lo] > at:
        return 0
    if lo <= k < hi and c.cp_time[k] <= at:
        while k + 1 < hi and c.cp_time[k + 1] <= at:
            k += 1
    else:
        while hi - lo > 1:
            mid = (lo + hi) >> 1
            if c.cp_time[mid] <= at:
                lo = mid
            else:
                hi = mid
        k = lo
    c.p_cp[p] = k
    return c.cp_size[k]


cdef inline int touch(Ctx* c, int32_t p, int32_t month) noexcept nogil:
    """Bring pool `p` to `month` (the monthly reset), flushing the old month's use."""
    if c.p_month[p] == month:
        return DONE
    if c.p_month[p] >= 0 and c.p_used[p] > 0:
        if c.f_n >= c.f_cap:
            return NEED_ROOM
        c.f_pool[c.f_n] = p
        c.f_month[c.f_n] = c.p_month[p]
        c.f_size[c.f_n] = c.p_size[p]
        c.f_used[c.f_n] = c.p_used[p]
        c.f_n += 1
    c.p_month[p] = month
    c.p_used[p] = 0
    c.p_size[p] = 0
    c.p_flags[p] = 0
    return DONE


cdef inline bint exhausted(Ctx* c, int32_t p, int64_t size, int64_t now,
                           int32_t month) noexcept nogil:
    cdef int32_t q = c.pool_partner[p], g = c.pool_cap[p]
    cdef int64_t qsize
    if size <= c.p_used[p]:
        return True
    if g < 0:
        return False
    if c.cap_month[g] == month:
        return True
    if q >= 0 and c.p_month[q] == month:
        qsize = pool_size(c, q, now)
        if qsize > 0 and c.p_used[q] >= qsize:
            c.cap_month[g] = month
            return True
    return False


cdef inline int draw(Ctx* c, int32_t t, int32_t p, int64_t now, int32_t month, int64_t want,
                     int64_t* taken) noexcept nogil:
    """Take up to `want` seconds from pool `p`; taken[0] = -1 if it had none left."""
    cdef int64_t size = pool_size(c, p, now)
    cdef int64_t got
    taken[0] = -1
    if touch(c, p, month) != DONE:
        return NEED_ROOM
    if exhausted(c, p, size, now, month):
        return DONE
    got = size - c.p_used[p]
    if got > want:
        got = want
    c.p_used[p] += got
    c.p_size[p] = size
    if c.p_used[p] * 100 >= size * 80 and not (c.p_flags[p] & 1):
        c.p_flags[p] |= 1
        notify(c, t, now, N_POOL_80, 0, p)
    if c.p_used[p] >= size and not (c.p_flags[p] & 2):
        c.p_flags[p] |= 2
        notify(c, t, now, N_POOL_100, 0, p)
    if c.p_used[p] >= size and c.pool_cap[p] >= 0:
        c.cap_month[c.pool_cap[p]] = month
    taken[0] = got
    return DONE


cdef int bill_call(Ctx* c, int32_t t, int64_t now, int32_t month,
                   const CallRec* call, BillRec* o) noexcept nogil:
    """Bill one call into `o`; nothing is written where NEED_ROOM is returned
    (the call is billed again once the buffers have grown)."""
    cdef int32_t payer = call.payer, row = call.row
    cdef int64_t start = call.start, i = call.idx
    cdef int32_t lo = 0, hi = 0, r, loc = c.t_country[t], p
    cdef bint found = False, pp = False, domestic = False
    cdef int8_t service = call.service, status = call.status
    cdef int64_t b, taken = -1, amount, ch
    cdef int32_t pool = -1, pass_no, n_pass
    cdef const LicRow* L = c.lic
    # the payer's licenses give the call's location (for `domestic`) and
    # its pools and credits (if charged): all of it is for calls with a deck
    # row, which charged ones have; the others (free calls, 38 % of the 20M
    # sample) skip them
    if payer >= 0 and row >= 0:
        lo = c.payers[payer].lo
        hi = c.payers[payer].hi
    for r in range(lo, hi):
        if L[r].start <= start and start < L[r].stop:
            if not found:
                loc = L[r].loc
                found = True
            if L[r].credits:
                pp = True
    o.domestic = -1
    if row >= 0:
        domestic = c.domestic[loc * c.n_countries + c.row_country[row]]
        o.domestic = domestic
    o.pool = -1
    o.pool_seconds = 0
    o.seconds = 0
    o.amount = 0
    o.status = status
    o.balance_after = c.s_balance[t]
    o.capability = -1
    o.late = start < c.point0[t]
    if status != S_CHARGED:
        if status == S_FREE:
            o.capability = CAP_FREECALL
        return DONE

    b = call.billable
    # the pools to try, in the licenses' order: domestic outbound calls try
    # the per-user pools, then the pooled domestic ones; other outbound calls
    # the international ones; Zone A dial-out the conferencing ones (one
    # loop, so draw() is inlined at its one call)
    n_pass = 0
    if not c.row_premium[row]:
        if service == SVC_OUTBOUND:
            n_pass = 2 if domestic else 1
        elif service == SVC_CONFERENCE and c.zone_a[c.row_country[row]]:
            n_pass = 1
    for pass_no in range(n_pass):
        for r in range(lo, hi):
            if not (L[r].start <= start and start < L[r].stop):
                continue
            if service == SVC_CONFERENCE:
                p = L[r].dial_pool
            elif domestic:
                p = L[r].user_pool if pass_no == 0 else L[r].dom_pool
            else:
                p = L[r].intl_pool
            if p < 0:
                continue
            if draw(c, t, p, now, month, b, &taken) != DONE:
                return NEED_ROOM
            if taken >= 0:
                pool = p
                break
        if pool >= 0:
            break
    if pool < 0:
        taken = 0
    o.pool = pool
    o.pool_seconds = <int32_t>taken
    ch = b - taken
    if ch == 0:
        o.status = S_INCLUDED
        o.capability = CAP_SKU + c.pool_sku[pool]
        return DONE
    amount = price_seconds(c.rows + row, ch)
    pp = c.t_credits[t] and (pp or service == SVC_TOLLFREE)
    if pp and c.s_balance[t] > 0:
        if amount > 0:
            debit(c, t, now, amount, i)
        c.t_charged[t] += amount
        o.status = S_PARTLY if pool >= 0 else S_CHARGED
        o.capability = CAP_CREDITS
        o.seconds = <int32_t>ch
        o.amount = amount
        o.balance_after = c.s_balance[t]
        if amount > 0:
            return recharge(c, t, now)
        return DONE
    if pool >= 0:
        o.status = S_CUT_NO_LICENSE if not pp else S_CUT_NO_FUNDS
        o.capability = CAP_SKU + c.pool_sku[pool]
    else:
        o.status = S_BLOCKED_NO_LICENSE if not pp else S_BLOCKED_NO_FUNDS
    o.seconds = <int32_t>ch
    o.amount = amount
    return DONE


cdef inline int32_t and_both(int32_t a, int32_t b) noexcept nogil:
    """`a` if both are >= 0, else 0 (without a branch)."""
    return a & ~((a | b) >> 31)


cdef inline void month_span(int64_t t, int32_t* month, int64_t* lo, int64_t* hi) noexcept nogil:
    """The month index of `t` and the instants [lo, hi) it spans."""
    cdef int64_t y, m, d
    civil(floor_div(t, DAY_US), &y, &m, &d)
    month[0] = <int32_t>(y * 12 + m - 1)
    lo[0] = days_from(y, m, 1) * DAY_US
    hi[0] = days_from(y + (1 if m == 12 else 0), 1 if m == 12 else m + 1, 1) * DAY_US


cdef int64_t run_tenants(Ctx* c, int64_t lo, int64_t hi, int* code) noexcept nogil:
    """Walk tenants [lo, hi) from where each stands; returns the tenant it
    stopped in (hi when done). A tenant's call at instant `now` comes after
    its fundings and card updates at or before `now`, and before the run's
    end event at the same instant.

    The walk's own cursors and the tenant's point live in locals, stored
    back wherever it stops: the kernel's int8 stores (statuses, kinds) may
    alias anything, so the compiler reloads what it reads through `c` after
    each of them."""
    cdef int64_t t, k, kh, e, eh, now, p0, ref, point, exp_at
    cdef int64_t m_lo = 0, m_hi = 0
    cdef int32_t month = 0
    cdef CallRec* calls = c.calls
    cdef int32_t* perm = c.perm
    cdef const PayerRange* payers = c.payers
    cdef const LicRow* lic = c.lic
    cdef const RowTerms* rows = c.rows
    cdef const int32_t* row_country = c.row_country
    cdef const int64_t* ev_time = c.ev_time
    cdef const int8_t* ev_kind = c.ev_kind
    cdef int32_t* lot_count = c.lot_count
    cdef int32_t* lot_head = c.lot_head
    cdef const int64_t* lot_base = c.lot_base
    cdef const int64_t* lot_expires = c.lot_expires
    cdef CallRec* call = NULL
    cdef BillRec billed
    cdef bint is_call
    cdef int8_t kind
    cdef int64_t room
    cdef int32_t g, r
    code[0] = DONE
    for t in range(lo, hi):
        k = c.cur_call[t]
        kh = c.call_lo[t + 1]
        e = c.cur_ev[t]
        eh = c.ev_lo[t + 1]
        p0 = c.point0[t]
        point = c.s_point[t]
        exp_at = RC_INT64_MIN       # no bound yet: look at the lots first
        while k < kh or e < eh:
            is_call = False
            if k < kh:
                call = calls + k
                if k + AHEAD < kh:
                    prefetch_write(perm + call[AHEAD].grouped, 1, 3)
                    # its deck row and the payer's first license row (its
                    # range was fetched AHEAD calls ago), for calls that
                    # read them (bill_call); a call without either fetches
                    # entry 0, which stays cached. Masks, not branches:
                    # whether a call is free is random, and these branches
                    # were a third of the pass's mispredictions (callgrind)
                    r = call[AHEAD].row
                    r &= ~(r >> 31)
                    prefetch(rows + r)
                    prefetch(row_country + r)
                    prefetch(lic + payers[and_both(call[AHEAD].payer, call[AHEAD].row)].lo)
                    if k + 2 * AHEAD < kh:
                        prefetch(payers + and_both(call[2 * AHEAD].payer, call[2 * AHEAD].row))
                now = call.start if call.start > p0 else p0
                is_call = not (e < eh and (ev_time[e] < now or (
                    ev_time[e] == now and ev_kind[e] != EV_END)))
            if not is_call:
                now = ev_time[e]
            # lots due to expire (oldest first); expiries check their own
            # room, and stopping between two is safe. `exp_at` is a bound
            # below which no lot expires: debits only take head lots away,
            # and a lot added at `now` or later expires a year on, so the
            # bound holds until `now` reaches it (it saves reading the ring
            # for every call)
            if now >= exp_at:
                if lot_count[t] > 0 and lot_expires[lot_base[t] + lot_head[t]] <= now:
                    code[0] = advance(c, <int32_t>t, now)
                    if code[0] != DONE:
                        break
                exp_at = lot_expires[lot_base[t] + lot_head[t]] if lot_count[t] > 0 \
                    else plus_year(now)
            # worst case of the event itself: a debit over every live lot plus
            # one overrun, a recharge round, three notifications
            room = lot_count[t] + 2 * RECHARGES_PER_INSTANT + 8
            if c.l_n + room > c.l_cap or c.n_n + room > c.n_cap or c.f_n + 8 > c.f_cap:
                code[0] = NEED_ROOM
                break
            if is_call:
                if now < m_lo or now >= m_hi:
                    month_span(now, &month, &m_lo, &m_hi)
                code[0] = bill_call(c, <int32_t>t, now, month, call, &billed)
                if code[0] != DONE:
                    break
                g = call.grouped
                (<BillRec*> call)[0] = billed
                perm[g] = <int32_t>k
                k += 1
            else:
                kind = ev_kind[e]
                ref = c.ev_ref[e]
                if kind == EV_FUND:
                    if add_lot(c, <int32_t>t, now, c.fund_amount[ref], L_FUND, ref) != DONE:
                        code[0] = LOTS_FULL
                        break
                elif kind == EV_CARD:
                    c.s_card[t] = c.card_valid[ref]
                    c.s_backoff[t] = RC_INT64_MIN
                e += 1
            if point < now:
                point = now
        c.cur_call[t] = k
        c.cur_ev[t] = e
        c.s_point[t] = point
        if code[0] != DONE:
            return t
    return hi


cdef class Pass:
    """Holds the pointers of one pass over a range of events; the Python side
    (ratecore.billing) owns every array and keeps them alive."""

    cdef Ctx c
    cdef object keep
    cdef PayerRange* payer_buf
    cdef LicRow* lic_buf

    def __init__(self, ins, state, perm):
        self.keep = (ins, state, perm)
        cdef Ctx* c = &self.c
        _check_layouts(ins.calls)
        if len(perm) != len(ins.calls):
            raise ValueError("billing kernel: perm and the calls differ in length")
        c.calls = <CallRec*> _ptr(ins.calls.view(np.uint8), U8, True)
        c.call_lo = <const int64_t*> _ptr(ins.call_lo, I64, False)
        c.ev_time = <const int64_t*> _ptr(ins.ev_time, I64, False)
        c.ev_kind = <const int8_t*> _ptr(ins.ev_kind, I8, False)
        c.ev_ref = <const int64_t*> _ptr(ins.ev_ref, I64, False)
        c.ev_lo = <const int64_t*> _ptr(ins.ev_lo, I64, False)
        c.point0 = <const int64_t*> _ptr(ins.point0, I64, False)
        c.cur_call = <int64_t*> _ptr(state.cur_call, I64, True)
        c.cur_ev = <int64_t*> _ptr(state.cur_ev, I64, True)
        c.fund_amount = <const int64_t*> _ptr(ins.fund_amount, I64, False)
        c.card_valid = <const int64_t*> _ptr(ins.card_valid, I64, False)
        c.rows = <const RowTerms*> _ptr(ins.row_terms.view("u1"), U8, False)
        c.row_country = <const int32_t*> _ptr(ins.row_country, I32, False)
        c.row_premium = <const uint8_t*> _ptr(ins.row_premium, U8, False)
        c.n_countries = ins.n_countries
        c.domestic = <const uint8_t*> _ptr(ins.domestic, U8, False)
        c.zone_a = <const uint8_t*> _ptr(ins.zone_a, U8, False)
        c.t_country = <const int32_t*> _ptr(ins.t_country, I32, False)
        c.t_credits = <const uint8_t*> _ptr(ins.t_credits, U8, False)
        c.t_auto = <const uint8_t*> _ptr(ins.t_auto, U8, False)
        c.t_trigger = <const int64_t*> _ptr(ins.t_trigger, I64, False)
        c.t_recharge = <const int64_t*> _ptr(ins.t_recharge, I64, False)
        self._pack_licenses(ins)
        c.payers = self.payer_buf
        c.lic = self.lic_buf
        c.pool_cp_lo = <const int32_t*> _ptr(ins.pool_cp_lo, I32, False)
        c.pool_cp_hi = <const int32_t*> _ptr(ins.pool_cp_hi, I32, False)
        c.cp_time = <const int64_t*> _ptr(ins.cp_time, I64, False)
        c.cp_size = <const int64_t*> _ptr(ins.cp_size, I64, False)
        c.pool_partner = <const int32_t*> _ptr(ins.pool_partner, I32, False)
        c.pool_cap = <const int32_t*> _ptr(ins.pool_cap, I32, False)
        c.pool_sku = <const int8_t*> _ptr(ins.pool_sku, I8, False)
        c.s_point = <int64_t*> _ptr(state.point, I64, True)
        c.s_balance = <int64_t*> _ptr(state.balance, I64, True)
        c.s_debt = <int64_t*> _ptr(state.debt, I64, True)
        c.s_card = <int64_t*> _ptr(state.card, I64, True)
        c.s_backoff = <int64_t*> _ptr(state.backoff, I64, True)
        c.s_rc_instant = <int64_t*> _ptr(state.rc_instant, I64, True)
        c.s_rc_count = <int32_t*> _ptr(state.rc_count, I32, True)
        c.s_next_lot = <int64_t*> _ptr(state.next_lot, I64, True)
        c.s_seq = <int64_t*> _ptr(state.seq, I64, True)
        c.s_nseq = <int64_t*> _ptr(state.nseq, I64, True)
        c.lot_base = <const int64_t*> _ptr(state.lot_base, I64, False)
        c.lot_cap = <const int32_t*> _ptr(state.lot_cap, I32, False)
        c.lot_head = <int32_t*> _ptr(state.lot_head, I32, True)
        c.lot_count = <int32_t*> _ptr(state.lot_count, I32, True)
        c.lot_id = <int64_t*> _ptr(state.lot_id, I64, True)
        c.lot_funded = <int64_t*> _ptr(state.lot_funded, I64, True)
        c.lot_expires = <int64_t*> _ptr(state.lot_expires, I64, True)
        c.lot_amount = <int64_t*> _ptr(state.lot_amount, I64, True)
        c.lot_remaining = <int64_t*> _ptr(state.lot_remaining, I64, True)
        c.p_month = <int32_t*> _ptr(state.p_month, I32, True)
        c.p_used = <int64_t*> _ptr(state.p_used, I64, True)
        c.p_size = <int64_t*> _ptr(state.p_size, I64, True)
        c.p_flags = <uint8_t*> _ptr(state.p_flags, U8, True)
        if len(state.p_cp) != len(state.p_flags):
            raise ValueError("billing kernel: p_cp must have one entry per pool")
        c.p_cp = <int32_t*> _ptr(state.p_cp, I32, True)
        c.cap_month = <int32_t*> _ptr(state.cap_month, I32, True)
        if len(state.charged) != len(state.balance):
            raise ValueError("billing kernel: charged must have one entry per tenant")
        c.t_charged = <int64_t*> _ptr(state.charged, I64, True)
        c.perm = <int32_t*> _ptr(perm, I32, True)
        c.l_n = c.n_n = c.f_n = 0
        c.l_cap = c.n_cap = c.f_cap = 0

    cdef _pack_licenses(self, ins):
        """The payers' ranges and license rows as structs (see LicRow)."""
        cdef const int32_t[::1] p_lo = ins.payer_lo, p_hi = ins.payer_hi
        cdef const int64_t[::1] l_from = ins.lic_from, l_to = ins.lic_to
        cdef const int32_t[::1] loc = ins.lic_loc, user = ins.lic_user_pool
        cdef const int32_t[::1] dom = ins.lic_dom_pool, intl = ins.lic_intl_pool
        cdef const int32_t[::1] dial = ins.lic_dial_pool
        cdef const uint8_t[::1] credits = ins.lic_credits
        cdef Py_ssize_t n_p = p_lo.shape[0], n_l = l_from.shape[0], k
        if (p_hi.shape[0] != n_p or l_to.shape[0] != n_l or loc.shape[0] != n_l
                or user.shape[0] != n_l or dom.shape[0] != n_l or intl.shape[0] != n_l
                or dial.shape[0] != n_l or credits.shape[0] != n_l):
            raise ValueError("billing kernel: payer or license columns differ in length")
        for k in range(n_p):
            if not 0 <= p_lo[k] <= p_hi[k] <= n_l:
                raise ValueError(f"billing kernel: payer {k}'s license rows are outside them")
        self.payer_buf = <PayerRange*> malloc((n_p + 1) * sizeof(PayerRange))
        self.lic_buf = <LicRow*> malloc((n_l + 1) * sizeof(LicRow))
        if self.payer_buf == NULL or self.lic_buf == NULL:
            raise MemoryError()
        for k in range(n_p):
            self.payer_buf[k].lo = p_lo[k]
            self.payer_buf[k].hi = p_hi[k]
        # a call without a payer prefetches payer 0's rows: an empty range
        # when there are no payers
        self.payer_buf[n_p].lo = self.payer_buf[n_p].hi = 0
        for k in range(n_l):
            self.lic_buf[k].start = l_from[k]
            self.lic_buf[k].stop = l_to[k]
            self.lic_buf[k].loc = loc[k]
            self.lic_buf[k].user_pool = user[k]
            self.lic_buf[k].dom_pool = dom[k]
            self.lic_buf[k].intl_pool = intl[k]
            self.lic_buf[k].dial_pool = dial[k]
            self.lic_buf[k].credits = credits[k]

    def __dealloc__(self):
        free(self.payer_buf)
        free(self.lic_buf)

    def set_buffers(self, ledger, notes, flushed, int64_t l_n, int64_t n_n, int64_t f_n):
        """Point at (grown) growable outputs, with how much each already holds."""
        self.keep = self.keep[:3] + (ledger, notes, flushed)
        cdef Ctx* c = &self.c
        c.l_cap = len(ledger.tenant)
        c.l_n = l_n
        c.l_tenant = <int32_t*> _ptr(ledger.tenant, I32, True)
        c.l_seq = <int64_t*> _ptr(ledger.seq, I64, True)
        c.l_time = <int64_t*> _ptr(ledger.time, I64, True)
        c.l_kind = <int8_t*> _ptr(ledger.kind, I8, True)
        c.l_lot = <int64_t*> _ptr(ledger.lot, I64, True)
        if ledger.amount.shape != (c.l_cap, 2) or ledger.balance.shape != (c.l_cap, 2):
            raise ValueError("billing kernel: ledger amounts are (n, 2) decimal128 words")
        c.l_amount = <int64_t*> _ptr(ledger.amount.reshape(-1), I64, True)
        c.l_balance = <int64_t*> _ptr(ledger.balance.reshape(-1), I64, True)
        c.l_ref = <int64_t*> _ptr(ledger.ref, I64, True)
        c.n_cap = len(notes.tenant)
        c.n_n = n_n
        c.n_tenant = <int32_t*> _ptr(notes.tenant, I32, True)
        c.n_seq = <int64_t*> _ptr(notes.seq, I64, True)
        c.n_time = <int64_t*> _ptr(notes.time, I64, True)
        c.n_kind = <int8_t*> _ptr(notes.kind, I8, True)
        c.n_amount = <int64_t*> _ptr(notes.amount, I64, True)
        c.n_balance = <int64_t*> _ptr(notes.balance, I64, True)
        c.n_pool = <int32_t*> _ptr(notes.pool, I32, True)
        c.f_cap = len(flushed.pool)
        c.f_n = f_n
        c.f_pool = <int32_t*> _ptr(flushed.pool, I32, True)
        c.f_month = <int32_t*> _ptr(flushed.month, I32, True)
        c.f_size = <int64_t*> _ptr(flushed.size, I64, True)
        c.f_used = <int64_t*> _ptr(flushed.used, I64, True)

    def run(self, int64_t lo, int64_t hi):
        """Walk tenants [lo, hi) without the GIL; (code, tenant stopped in,
        ledger entries, notifications, flushed pool months) written so far."""
        cdef int code = DONE
        cdef int64_t stopped
        with nogil:
            stopped = run_tenants(&self.c, lo, hi, &code)
        return code, stopped, self.c.l_n, self.c.n_n, self.c.f_n


cdef inline bint is_charged(int8_t status) noexcept nogil:
    return status == S_CHARGED or status == S_PARTLY


cdef inline bint is_unbilled(int8_t status) noexcept nogil:
    return S_CUT_NO_LICENSE <= status <= S_BLOCKED_NO_FUNDS


def bill_record_size():
    """sizeof(BillRec), checked against ratecore.billing.BILL_DTYPE."""
    return sizeof(BillRec)


def _check_layouts(calls):
    """The records' sizes here and in ratecore.billing's dtypes agree."""
    if calls.dtype.itemsize != sizeof(CallRec) or sizeof(BillRec) > sizeof(CallRec):
        raise ValueError("billing kernel: record layouts differ from ratecore.billing's")


def unpack(const uint8_t[::1] recs, const int32_t[::1] pos, int8_t[::1] domestic,
           int32_t[::1] pool, int32_t[::1] pool_seconds, int32_t[::1] charged_seconds,
           int64_t[::1] charge, int8_t[::1] capability, int8_t[::1] status,
           int32_t[::1] unbilled_seconds, int64_t[::1] unbilled_amount,
           int64_t[::1] balance_after, uint8_t[::1] late):
    """The billing columns of some calls, in the order of `pos` (for each
    call, where the pass left its BillRec in `recs`): one read of each
    record, prefetched ahead, into every column at once."""
    cdef Py_ssize_t n = pos.shape[0], i
    cdef int64_t n_recs = recs.shape[0] // sizeof(CallRec), j, bad = -1
    cdef const CallRec* r = <const CallRec*> &recs[0] if recs.shape[0] else NULL
    cdef const BillRec* b
    cdef int8_t st
    if not (domestic.shape[0] == pool.shape[0] == pool_seconds.shape[0]
            == charged_seconds.shape[0] == charge.shape[0] == capability.shape[0]
            == status.shape[0] == unbilled_seconds.shape[0] == unbilled_amount.shape[0]
            == balance_after.shape[0] == late.shape[0] == n):
        raise ValueError("unpack: an output column differs in length from pos")
    with nogil:
        for i in range(n):
            if i + 16 < n and 0 <= pos[i + 16] < n_recs:
                prefetch(r + pos[i + 16])
            j = pos[i]
            if j < 0 or j >= n_recs:
                bad = i
                break
            b = <const BillRec*> (r + j)
            st = b.status
            domestic[i] = b.domestic
            pool[i] = b.pool
            pool_seconds[i] = b.pool_seconds
            capability[i] = b.capability
            status[i] = st
            balance_after[i] = b.balance_after
            late[i] = b.late
            charged_seconds[i] = b.seconds if is_charged(st) else 0
            charge[i] = b.amount if is_charged(st) else 0
            unbilled_seconds[i] = b.seconds if is_unbilled(st) else 0
            unbilled_amount[i] = b.amount if is_unbilled(st) else 0
    if bad >= 0:
        raise IndexError(f"unpack: position {pos[bad]} is outside the {n_recs} records")


# Pointers into numpy arrays: one helper that checks the dtype, that the
# array is C-contiguous (the uint8 memoryview), and, for outputs, writable;
# an empty array yields a pointer that is never read.

I64, I32, I8, U8 = np.dtype(np.int64), np.dtype(np.int32), np.dtype(np.int8), np.dtype(np.uint8)


cdef void* _ptr(object a, object dtype, bint write) except? NULL:
    if a.dtype != dtype:
        raise TypeError(f"billing kernel: a {a.dtype} array where {dtype} is expected")
    cdef const uint8_t[::1] r
    cdef uint8_t[::1] w
    if write:
        w = a.view(np.uint8)
        return <void*> &w[0] if w.shape[0] else NULL
    r = a.view(np.uint8)
    return <void*> &r[0] if r.shape[0] else NULL
