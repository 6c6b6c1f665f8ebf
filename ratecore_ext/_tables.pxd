# Compiled rate tables and the two inline operations every kernel shares:
# longest-effective-prefix lookup and pricing of `c` seconds on a deck row.
#
# Layout (built once per run by ratecore.deck.compile_decks, read-only here):
#   table t = deck_index * N_SERVICES + service. Each table's prefixes are
#   flattened into disjoint ranges of the 15-digit padded number space
#   [0, 10**15); range r covers [range_start[r], range_start[r + 1]) and is
#   labelled with the node of its longest prefix (-1 = no prefix).
#   bucket[t * (N_BUCKETS + 1) + b] is the range containing b * 10**11, so a
#   number's first 4 digits narrow the binary search to a few ranges.
#   A node is one distinct (table, prefix): its length, its parent (the next
#   shorter prefix of the same table, -1 at the root) and its versions
#   [node_vstart, node_vend) sorted by effective_from; a version maps an
#   effective window [ver_from, ver_to) in UTC microseconds to a deck row.
# Rows carry the price terms; the deck's rounding is copied onto each row.

from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t

cdef enum:
    N_SERVICES = 3
    N_BUCKETS = 10000
    SVC_OUTBOUND = 0
    SVC_CONFERENCE = 1
    SVC_TOLLFREE = 2

cdef enum Rounding:
    ROUND_HALF_UP = 0
    ROUND_UP = 1
    ROUND_HALF_EVEN = 2
    ROUND_DOWN = 3

cdef struct Tables:
    const int32_t* bucket
    const int64_t* range_start
    const int32_t* range_node
    const int8_t* node_plen
    const int32_t* node_parent
    const int32_t* node_vstart
    const int32_t* node_vend
    const int64_t* ver_from
    const int64_t* ver_to
    const int32_t* ver_row

cdef struct Rows:
    const int64_t* rate          # micro-units per minute
    const int64_t* connect_fee   # micro-units
    const int64_t* min_charge    # micro-units
    const int32_t* inc1          # initial increment, seconds
    const int32_t* inc2          # next increment, seconds
    const int64_t* quantum       # 10**(6 - decimals): the rounding step in micro-units
    const int8_t* rounding
    const uint8_t* blocked
    const int8_t* number_class


cdef inline int32_t find_row(const Tables* tb, int table, int64_t padded,
                             int ndigits, int64_t at) noexcept nogil:
    """Deck row of the longest prefix of a number (padded to 15 digits, of
    which `ndigits` are known) that has a version effective at `at`; -1."""
    cdef const int32_t* bucket = tb.bucket + table * (N_BUCKETS + 1) + <int32_t>(padded // 100000000000LL)
    cdef int32_t lo = bucket[0]
    cdef int32_t n = bucket[1] + 1 - lo
    cdef int32_t half, node, v
    while n > 1:
        half = n >> 1
        if tb.range_start[lo + half] <= padded:
            lo = lo + half
        n -= half
    node = tb.range_node[lo]
    while node >= 0:
        # A prefix longer than the known digits only matched the zero padding.
        if tb.node_plen[node] <= ndigits:
            for v in range(tb.node_vstart[node], tb.node_vend[node]):
                if tb.ver_from[v] <= at and at < tb.ver_to[v]:
                    return tb.ver_row[v]
        node = tb.node_parent[node]
    return -1


cdef inline int64_t billable_seconds(int64_t d, int64_t i1, int64_t i2) noexcept nogil:
    """`i1` if d <= i1, else i1 + ceil((d - i1) / i2) * i2; 0 for d == 0."""
    if d <= 0:
        return 0
    if d <= i1:
        return i1
    return i1 + ((d - i1 + i2 - 1) // i2) * i2


cdef inline int64_t price_seconds(const Rows* rows, int32_t row, int64_t c) noexcept nogil:
    """Charge in micro-units for `c` seconds charged to credits on `row`:
    connect_fee + rate * c / 60, at least min_charge, rounded once to the
    deck's decimals with the deck's rounding. Exact: the amount is kept as a
    numerator over 60 until the single rounding step."""
    if c <= 0:
        return 0
    cdef int64_t num = rows.connect_fee[row] * 60 + rows.rate[row] * c
    cdef int64_t floor_min = rows.min_charge[row] * 60
    if num < floor_min:
        num = floor_min
    cdef int64_t quantum = rows.quantum[row]
    cdef int64_t q = quantum * 60
    cdef int64_t whole = num // q
    cdef int64_t rem = num - whole * q
    cdef int8_t mode = rows.rounding[row]
    if mode == ROUND_HALF_UP:
        whole += <int64_t>(2 * rem >= q)
    elif mode == ROUND_UP:
        whole += <int64_t>(rem > 0)
    elif mode == ROUND_HALF_EVEN:
        whole += <int64_t>((2 * rem > q) | ((2 * rem == q) & (whole & 1)))
    return whole * quantum


cdef inline Tables tables_from(object t) except *:
    """Point a Tables struct at the arrays of a ratecore.deck.RateBook.
    The arrays stay owned (and alive) by that Python object."""
    cdef const int32_t[::1] bucket = t.bucket
    cdef const int64_t[::1] range_start = t.range_start
    cdef const int32_t[::1] range_node = t.range_node
    cdef const int8_t[::1] node_plen = t.node_plen
    cdef const int32_t[::1] node_parent = t.node_parent
    cdef const int32_t[::1] node_vstart = t.node_vstart
    cdef const int32_t[::1] node_vend = t.node_vend
    cdef const int64_t[::1] ver_from = t.ver_from
    cdef const int64_t[::1] ver_to = t.ver_to
    cdef const int32_t[::1] ver_row = t.ver_row
    cdef Tables tb
    tb.bucket = &bucket[0]
    tb.range_start = &range_start[0]
    tb.range_node = &range_node[0]
    tb.node_plen = &node_plen[0]
    tb.node_parent = &node_parent[0]
    tb.node_vstart = &node_vstart[0]
    tb.node_vend = &node_vend[0]
    tb.ver_from = &ver_from[0]
    tb.ver_to = &ver_to[0]
    tb.ver_row = &ver_row[0]
    return tb


cdef inline Rows rows_from(object t) except *:
    """Point a Rows struct at the per-row price arrays of a RateBook."""
    cdef const int64_t[::1] rate = t.row_rate
    cdef const int64_t[::1] connect_fee = t.row_connect_fee
    cdef const int64_t[::1] min_charge = t.row_min_charge
    cdef const int32_t[::1] inc1 = t.row_inc1
    cdef const int32_t[::1] inc2 = t.row_inc2
    cdef const int64_t[::1] quantum = t.row_quantum
    cdef const int8_t[::1] rounding = t.row_rounding
    cdef const uint8_t[::1] blocked = t.row_blocked
    cdef const int8_t[::1] number_class = t.row_number_class
    cdef Rows rows
    rows.rate = &rate[0]
    rows.connect_fee = &connect_fee[0]
    rows.min_charge = &min_charge[0]
    rows.inc1 = &inc1[0]
    rows.inc2 = &inc2[0]
    rows.quantum = &quantum[0]
    rows.rounding = &rounding[0]
    rows.blocked = &blocked[0]
    rows.number_class = &number_class[0]
    return rows
