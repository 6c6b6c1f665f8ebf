# Compiled rate tables and the two inline operations every kernel shares:
# longest-effective-prefix lookup and pricing of `c` seconds on a deck row.
#
# Layout (built once per run by ratecore.deck.compile_decks, read-only here):
#   table t = deck_index * N_SERVICES + service. Each table's prefixes are
#   flattened into disjoint ranges of the 15-digit padded number space
#   [0, 10**15); range r covers [range_start[r], range_start[r + 1]) and is
#   labelled with the node of its longest prefix (-1 = no prefix).
#   bucket[t * (N_BUCKETS + 1) + b] is the range containing b * 10**11, so a
#   number's first 4 digits narrow the binary search to a few ranges. (Five
#   digits measured no faster on the benchmark sample: the L2 holds less.)
#   A node is one distinct (table, prefix): its length, its parent (the next
#   shorter prefix of the same table, -1 at the root) and its versions
#   sorted by effective_from; a version maps an effective window
#   [eff_from, eff_to) in UTC microseconds to a deck row. A node with one
#   version carries it inline, so the common lookup touches one cache line;
#   the versions of the others are [first, end) in node_versions.
# Nodes, versions and row terms are arrays of structs (numpy structured
# arrays in Python) so each step of a lookup is one cache line: both arrays
# start on a cache line, so a node (32 bytes) never crosses one, nor do the
# first 16 bytes of a row (48 bytes), which hold all that pricing reads.

from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t

cdef enum:
    N_SERVICES = 3
    N_BUCKETS = 10000     # by the first 4 digits
    SVC_OUTBOUND = 0
    SVC_CONFERENCE = 1
    SVC_TOLLFREE = 2

cdef extern from *:
    """
    #define RC_BUCKET_WIDTH 100000000000LL
    """
    int64_t RC_BUCKET_WIDTH    # 10**15 / N_BUCKETS

cdef enum Rounding:
    ROUND_HALF_UP = 0
    ROUND_UP = 1
    ROUND_HALF_EVEN = 2
    ROUND_DOWN = 3

cdef struct Node:
    # one distinct (table, prefix); 32 bytes, so in one cache line of the
    # 64-byte aligned array (40 bytes put half the nodes across two lines,
    # and the kernel prefetches one). Mirrored by deck.NODE_DTYPE.
    int64_t eff_from       # the window of its only version (when row >= 0)
    int64_t eff_to
    int32_t row            # deck row of its only version; -1 if it has several
    int32_t parent         # next shorter prefix of the same table, or -1
    int8_t plen            # prefix length in digits

cdef struct Version:
    # 24 bytes, mirrored by deck.VERSION_DTYPE
    int64_t eff_from
    int64_t eff_to
    int32_t row

cdef struct RowTerms:
    # price terms of one deck row; 48 bytes, mirrored by deck.ROW_DTYPE. The
    # terms pricing reads come first (inc1 to blocked), so in the 64-byte
    # aligned array they never cross a cache line. (Padding rows to 64 bytes
    # measured 6 % slower: more of them miss the caches.)
    int32_t inc1           # initial increment, seconds
    int32_t inc2           # next increment, seconds
    int8_t rounding
    int8_t blocked
    int8_t number_class
    int64_t rate           # micro-units per minute
    int64_t connect_fee    # micro-units
    int64_t min_charge     # micro-units
    int64_t quantum        # 10**(6 - decimals): the rounding step in micro-units

cdef struct Tables:
    const int32_t* bucket
    const int64_t* range_start
    const int32_t* range_node
    const Node* nodes
    const int32_t* node_versions   # [2 * node, 2 * node + 1]: its [first, end) version
    const Version* versions
    const RowTerms* rows


cdef inline int32_t resolve(const Tables* tb, int32_t node, int ndigits,
                            int64_t at) noexcept nogil:
    """Row of the longest prefix from `node` up its parents that is no longer
    than the known digits and has a version effective at `at`; -1."""
    cdef const Node* nd
    cdef int32_t v
    while node >= 0:
        nd = tb.nodes + node
        # A prefix longer than the known digits only matched the zero padding.
        if nd.plen <= ndigits:
            if nd.row >= 0:
                if nd.eff_from <= at and at < nd.eff_to:
                    return nd.row
            else:
                for v in range(tb.node_versions[2 * node], tb.node_versions[2 * node + 1]):
                    if tb.versions[v].eff_from <= at and at < tb.versions[v].eff_to:
                        return tb.versions[v].row
        node = nd.parent
    return -1


cdef inline int32_t find_range(const Tables* tb, int table, int64_t padded) noexcept nogil:
    """Index of the range holding a 15-digit padded number in a table."""
    cdef const int32_t* bucket = tb.bucket + table * (N_BUCKETS + 1) + <int32_t>(padded // RC_BUCKET_WIDTH)
    cdef int32_t lo = bucket[0]
    cdef int32_t n = bucket[1] + 1 - lo
    cdef int32_t half
    while n > 1:
        half = n >> 1
        if tb.range_start[lo + half] <= padded:
            lo = lo + half
        n -= half
    return lo


cdef inline int32_t find_row(const Tables* tb, int table, int64_t padded,
                             int ndigits, int64_t at) noexcept nogil:
    """Deck row of the longest prefix of a number (padded to 15 digits, of
    which `ndigits` are known) that has a version effective at `at`; -1."""
    return resolve(tb, tb.range_node[find_range(tb, table, padded)], ndigits, at)


cdef inline int64_t billable_seconds(int64_t d, int64_t i1, int64_t i2) noexcept nogil:
    """`i1` if d <= i1, else i1 + ceil((d - i1) / i2) * i2; 0 for d == 0."""
    if d <= 0:
        return 0
    if d <= i1:
        return i1
    return i1 + ((d - i1 + i2 - 1) // i2) * i2


cdef inline int64_t price_seconds(const RowTerms* r, int64_t c) noexcept nogil:
    """Charge in micro-units for `c` seconds charged to credits on row `r`:
    connect_fee + rate * c / 60, at least min_charge, rounded once to the
    deck's decimals with the deck's rounding. Exact: the amount is kept as a
    numerator over 60 until the single rounding step."""
    if c <= 0:
        return 0
    cdef int64_t num = r.connect_fee * 60 + r.rate * c
    cdef int64_t floor_min = r.min_charge * 60
    if num < floor_min:
        num = floor_min
    cdef int64_t q = r.quantum * 60
    cdef int64_t whole = num // q
    cdef int64_t rem = num - whole * q
    if r.rounding == ROUND_HALF_UP:
        whole += <int64_t>(2 * rem >= q)
    elif r.rounding == ROUND_UP:
        whole += <int64_t>(rem > 0)
    elif r.rounding == ROUND_HALF_EVEN:
        whole += <int64_t>((2 * rem > q) | ((2 * rem == q) & (whole & 1)))
    return whole * r.quantum


cdef inline Tables tables_from(object t) except *:
    """Point a Tables struct at the arrays of a ratecore.deck.RateBook.
    The arrays stay owned (and alive) by that Python object."""
    cdef const int32_t[::1] bucket = t.bucket
    cdef const int64_t[::1] range_start = t.range_start
    cdef const int32_t[::1] range_node = t.range_node
    cdef const uint8_t[::1] nodes = t.nodes.view("u1")
    cdef const int32_t[:, ::1] node_versions = t.node_versions
    cdef const uint8_t[::1] versions = t.versions.view("u1")
    cdef const uint8_t[::1] rows = t.row_terms.view("u1")
    cdef Tables tb
    tb.bucket = &bucket[0]
    tb.range_start = &range_start[0]
    tb.range_node = &range_node[0]
    tb.nodes = <const Node*> &nodes[0]
    tb.node_versions = &node_versions[0, 0]
    tb.versions = <const Version*> &versions[0]
    tb.rows = <const RowTerms*> &rows[0]
    return tb
