"""The peers ratecore's kernel is measured against, on the same data.

Each peer does the same work as the kernel's pricing stage: classify the
call (SPEC §4), normalise the rated number, find the deck row of the longest
prefix effective at the start time (with fallback to shorter prefixes and
from conference to outbound rows), and price all billable seconds with the
deck's rounding. Each returns the total charge in micro-units per deck, which
must equal the kernel's.

Money is BIGINT micro-units in the SQL (the fastest exact form for DuckDB);
the deck compilation of each peer (like ratecore's) happens before timing.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ratecore import pricing
from ratecore.deck import N_BUCKETS, SERVICES, SPACE, RateBook

OUTBOUND = ",".join(f"'{t}'" for t in pricing.OUTBOUND_CALL_TYPES[:5])
INBOUND = "'user_in', 'conf_in', 'ucap_in'"
EMERGENCY = ",".join(f"'{n}'" for n in pricing.EMERGENCY_NUMBERS)
OPEN = np.iinfo(np.int64).max


@dataclass
class SqlDeck:
    """A RateBook as SQL tables: the same disjoint prefix ranges the kernel
    searches, each labelled with the node (distinct prefix) of its longest
    prefix, and the effective-dated versions of every node."""

    rows: pa.Table      # row_id, deck_idx, price terms
    ranges: pa.Table    # t, start, node_id, plen
    versions: pa.Table  # node_id, eff_from, eff_to, row_id
    prefixes: pa.Table  # t, prefix, plen, row_id, eff_from, eff_to


def sql_deck(book: RateBook) -> SqlDeck:
    """Flatten for SQL. Conference tables are merged over their deck's
    outbound ranges (where no conference prefix covers a number, the
    outbound node does), so the fallback of SPEC §2 needs no second join in
    the common case; every other case goes to the candidate-prefix path."""
    rows = book.rows
    n = rows.num_rows
    n_tables = len(book.decks) * len(SERVICES)
    deck_idx = np.array([book.deck_index[d] for d in rows.column("deck").to_pylist()])
    svc = np.asarray(pc.index_in(rows.column("service"), pa.array(SERVICES)))
    table = deck_idx * len(SERVICES) + svc
    first = book.bucket[:: N_BUCKETS + 1][:n_tables]
    bounds = np.append(first, len(book.range_start))
    n_nodes = len(book.nodes) if n else 0
    nodes = book.nodes[:n_nodes]
    r_t, r_start, r_node = [], [], []
    for t in range(n_tables):
        starts = book.range_start[bounds[t]:bounds[t + 1]]
        node = book.range_node[bounds[t]:bounds[t + 1]]
        if t % len(SERVICES) == SERVICES.index("conference_dialout"):
            s_out = book.range_start[bounds[t - 1]:bounds[t]]
            n_out = book.range_node[bounds[t - 1]:bounds[t]]
            merged = np.union1d(starts, s_out)
            own = node[np.searchsorted(starts, merged, side="right") - 1]
            other = n_out[np.searchsorted(s_out, merged, side="right") - 1]
            starts, node = merged, np.where(own >= 0, own, other)
        r_t.append(np.full(len(starts), t))
        r_start.append(starts)
        r_node.append(node)
    node = np.concatenate(r_node)
    vstart, vend = book.node_versions[:n_nodes].T
    counts = (vend - vstart).astype(np.int64)
    terms = book.row_terms[:n]
    prefix = rows.column("prefix")
    return SqlDeck(
        rows=pa.table({"row_id": np.arange(n), "deck_idx": deck_idx,
                       **{f: terms[f].astype(np.int64) for f in
                          ("rate", "connect_fee", "min_charge", "quantum", "inc1", "inc2",
                           "rounding", "blocked")}}),
        ranges=pa.table({"t": np.concatenate(r_t), "start": np.concatenate(r_start),
                         "node_id": pa.array(node, mask=node < 0),
                         "plen": np.where(node >= 0, nodes["plen"][np.maximum(node, 0)], 0)
                         .astype(np.int64)}),
        versions=pa.table({"node_id": np.repeat(np.arange(n_nodes), counts),
                           "eff_from": book.versions["eff_from"][:n],
                           "eff_to": book.versions["eff_to"][:n],
                           "row_id": book.versions["row"][:n].astype(np.int64)}),
        prefixes=pa.table({"t": table, "prefix": prefix,
                           "plen": np.asarray(pc.utf8_length(prefix)).astype(np.int64),
                           "row_id": np.arange(n),
                           "eff_from": np.asarray(rows.column("effective_from")),
                           "eff_to": np.asarray(rows.column("effective_to"))}))


def connect(cdrs: pa.Table, tenants: pa.Table, deck: SqlDeck, threads: int):
    """A DuckDB connection holding the data as native tables."""
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.register("cdrs_in", cdrs.select(["usage_id", "tenant_id", "call_type", "caller_number",
                                         "callee_number", "number_type", "start_time",
                                         "duration_seconds"]))
    con.execute("CREATE TABLE cdrs AS SELECT * FROM cdrs_in")
    for name in ("rows", "ranges", "versions", "prefixes"):
        con.register(f"{name}_in", getattr(deck, name))
        con.execute(f"CREATE TABLE deck_{name} AS SELECT * FROM {name}_in")
    con.register("tenants_in", tenants)
    con.execute("CREATE TABLE tenants AS SELECT * FROM tenants_in")
    return con


# Classification and normalisation, shared by both SQL forms. `t` is the
# table (deck * 3 + service), `known` the known digits, `k` their count.
_CLASSIFY = f"""
classified AS (
    SELECT tn.deck_idx, c.duration_seconds AS d, epoch_us(c.start_time) AS start_us,
           CASE WHEN c.call_type IN ({OUTBOUND}) THEN 0
                WHEN c.call_type = 'conf_out' THEN 1
                WHEN c.call_type IN ({INBOUND}) AND lower(c.number_type) = 'tollfree' THEN 2
           END AS svc,
           CASE WHEN svc = 2 THEN c.caller_number ELSE c.callee_number END AS raw_number
    FROM cdrs c JOIN tenants tn USING (tenant_id)
),
normalised AS (
    SELECT deck_idx, d, start_us, svc,
           regexp_replace(replace(replace(raw_number, ' ', ''), '-', ''), '^\\+', '') AS x,
           rtrim(x, '*') AS known, length(known) AS k,
           deck_idx * 3 + svc AS t,
           CAST(rpad(known, 15, '0') AS BIGINT) AS padded
    FROM classified
    WHERE svc IS NOT NULL
      AND regexp_full_match(x, '[0-9]+\\**') AND length(x) <= 15
      AND NOT (svc < 2 AND x IN ({EMERGENCY}))
)"""

# Price all billable seconds of a call on its row, exactly as SPEC §3.
_PRICE = """
priced AS (
    SELECT f.deck_idx,
           CASE WHEN f.d <= r.inc1 THEN r.inc1
                ELSE r.inc1 + ((f.d - r.inc1 + r.inc2 - 1) // r.inc2) * r.inc2 END AS billable,
           greatest(r.connect_fee * 60 + r.rate * billable, r.min_charge * 60) AS num,
           r.quantum * 60 AS q, num // q AS whole, num % q AS rem,
           (whole + CASE r.rounding WHEN 0 THEN (2 * rem >= q)::INT
                                    WHEN 1 THEN (rem > 0)::INT
                                    WHEN 2 THEN ((2 * rem > q) OR (2 * rem = q AND whole % 2 = 1))::INT
                                    ELSE 0 END) * r.quantum AS charge
    FROM found f JOIN deck_rows r USING (row_id)
    WHERE f.d > 0 AND r.blocked = 0
)
SELECT deck_idx, sum(charge)::HUGEINT AS total FROM priced GROUP BY deck_idx ORDER BY deck_idx"""

# The few CDRs the ranges cannot answer (a masked or short number that hit a
# prefix longer than its known digits; conference numbers with no conference
# row) are looked up by candidate prefixes.
_SLOW = """
slow_rows AS (
    SELECT row_number() OVER () AS rid, deck_idx, d, start_us, svc, t, known, k
    FROM fast WHERE row_id IS NULL OR plen > k
),
slow_cand AS (
    SELECT s.rid, s.deck_idx, s.d, p.row_id, (p.t = s.t)::INT * 100 + p.plen AS score
    FROM (SELECT *, unnest(range(1, k + 1)) AS L FROM slow_rows) s
    JOIN deck_prefixes p ON (p.t = s.t OR (s.svc = 1 AND p.t = s.t - 1))
        AND p.prefix = left(s.known, s.L) AND p.eff_from <= s.start_us AND s.start_us < p.eff_to
),
slow_best AS (
    -- a conference call takes its own rows first, then the outbound rows
    SELECT deck_idx, d, arg_max(row_id, score) AS row_id FROM slow_cand GROUP BY rid, deck_idx, d
),"""


def duckdb_asof(con) -> dict[int, int]:
    """ASOF JOIN over the flattened prefix ranges, then the node's effective
    version by an equi-join (the fastest SQL found)."""
    sql = f"""
    WITH {_CLASSIFY},
    ranged AS (
        SELECT n.*, r.node_id, r.plen FROM normalised n
        ASOF JOIN deck_ranges r ON n.t = r.t AND n.padded >= r.start
    ),
    fast AS (
        SELECT g.*, v.row_id FROM ranged g
        LEFT JOIN deck_versions v ON v.node_id = g.node_id
            AND v.eff_from <= g.start_us AND g.start_us < v.eff_to
    ),
    {_SLOW}
    found AS (
        SELECT deck_idx, d, row_id FROM fast WHERE row_id IS NOT NULL AND plen <= k
        UNION ALL
        SELECT deck_idx, d, row_id FROM slow_best
    ),
    {_PRICE}"""
    return dict(con.execute(sql).fetchall())


def duckdb_cascade(con, max_len: int) -> dict[int, int]:
    """One LEFT JOIN per prefix length, longest first: the SQL most teams write."""
    joins = "\n".join(
        f"LEFT JOIN deck_prefixes p{L} ON p{L}.t = n.t AND p{L}.plen = {L} AND {L} <= n.k "
        f"AND p{L}.prefix = left(n.known, {L}) AND p{L}.eff_from <= n.start_us AND n.start_us < p{L}.eff_to"
        for L in range(1, max_len + 1))
    joins_out = "\n".join(
        f"LEFT JOIN deck_prefixes o{L} ON o{L}.t = n.t - 1 AND n.svc = 1 AND o{L}.plen = {L} "
        f"AND {L} <= n.k AND o{L}.prefix = left(n.known, {L}) AND o{L}.eff_from <= n.start_us "
        f"AND n.start_us < o{L}.eff_to" for L in range(1, max_len + 1))
    own = ", ".join(f"p{L}.row_id" for L in range(max_len, 0, -1))
    out = ", ".join(f"o{L}.row_id" for L in range(max_len, 0, -1))
    sql = f"""
    WITH {_CLASSIFY},
    found AS (
        SELECT n.deck_idx, n.d, coalesce({own}, {out}) AS row_id
        FROM normalised n
        {joins}
        {joins_out}
    ),
    {_PRICE.replace("FROM found f JOIN", "FROM (SELECT * FROM found WHERE row_id IS NOT NULL) f JOIN")}"""
    return dict(con.execute(sql).fetchall())


def _normalise_arrow(numbers: pa.Array):
    """(valid, known digits, count, padded) with Arrow compute kernels."""
    x = pc.replace_substring(pc.replace_substring(numbers, " ", ""), "-", "")
    x = pc.replace_substring_regex(x, r"^\+", "")
    valid = pc.and_(pc.match_substring_regex(x, r"^[0-9]+\**$"),
                    pc.less_equal(pc.utf8_length(x), 15))
    valid = np.asarray(valid.fill_null(False))
    known = pc.utf8_rtrim(x, "*")
    k = np.asarray(pc.utf8_length(known).fill_null(0))
    padded = pc.utf8_rpad(pc.if_else(pa.array(valid), known, "0"), 15, "0")
    return valid, known, k, np.asarray(pc.cast(padded, pa.int64())), x


def numpy_price(book: RateBook, cdrs: pa.Table, tenants) -> dict[int, int]:
    """Pad + searchsorted + gather over the compiled ranges, then price, with
    numpy and Arrow compute: the vectorised peer."""
    n_tables = len(book.decks) * len(SERVICES)
    first = book.bucket[:: N_BUCKETS + 1][:n_tables]
    counts = np.diff(np.append(first, len(book.range_start)))
    keys = np.repeat(np.arange(n_tables, dtype=np.int64), counts) * SPACE + book.range_start
    nodes, versions, terms = book.nodes, book.versions, book.row_terms

    def per_chunk(column, fn):
        return np.concatenate([fn(c) for c in cdrs.column(column).chunks])

    codes = per_chunk("call_type", pricing.call_type_codes)
    tf = per_chunk("number_type", pricing.tollfree_flags).astype(bool)
    deck = tenants.deck_index[per_chunk("tenant_id", tenants.lookup)].astype(np.int64)
    svc = np.full(len(codes), -1, dtype=np.int64)
    svc[codes <= 4] = 0
    svc[codes == 5] = 1
    svc[(codes >= 6) & (codes <= 8) & tf] = 2
    number = pc.if_else(pa.array(svc == 2), cdrs.column("caller_number").combine_chunks(),
                        cdrs.column("callee_number").combine_chunks())
    valid, known, k, padded, x = _normalise_arrow(number)
    emergency = np.asarray(pc.is_in(x, pa.array(pricing.EMERGENCY_NUMBERS)).fill_null(False))
    rated = (svc >= 0) & valid & ~((svc < 2) & emergency)
    at = np.asarray(cdrs.column("start_time").combine_chunks().cast(pa.int64()))
    d = np.asarray(cdrs.column("duration_seconds").combine_chunks())

    def lookup(t, sel):
        idx = np.searchsorted(keys, t[sel] * SPACE + padded[sel], side="right") - 1
        node = book.range_node[idx]
        row = np.full(len(idx), -1, dtype=np.int64)
        kk, tt = k[sel], at[sel]
        todo = np.flatnonzero(node >= 0)
        while len(todo):
            nd = nodes[node[todo]]
            fits = nd["plen"] <= kk[todo]
            hit = fits & (nd["row"] >= 0) & (nd["eff_from"] <= tt[todo]) & (tt[todo] < nd["eff_to"])
            multi = np.flatnonzero(fits & (nd["row"] < 0))
            vs, ve = book.node_versions[node[todo]].T
            for j in range(int((ve - vs)[multi].max(initial=0))):
                m = multi[(vs[multi] + j) < ve[multi]]
                v = versions[vs[m] + j]
                ok = (v["eff_from"] <= tt[todo[m]]) & (tt[todo[m]] < v["eff_to"]) & ~hit[m]
                row[todo[m[ok]]] = v["row"][ok]
                hit[m[ok]] = True
            row[todo[hit & (nd["row"] >= 0)]] = nd["row"][hit & (nd["row"] >= 0)]
            node[todo] = nd["parent"]
            todo = todo[~hit & (nd["parent"] >= 0)]
        return row

    sel = np.flatnonzero(rated)
    t = deck * len(SERVICES) + svc
    row = np.full(len(codes), -1, dtype=np.int64)
    row[sel] = lookup(t, sel)
    again = sel[(svc[sel] == 1) & (row[sel] < 0)]
    row[again] = lookup(t - 1, again)

    charged = np.flatnonzero((row >= 0) & (d > 0))
    r = terms[row[charged]]
    charged = charged[r["blocked"] == 0]
    r = r[r["blocked"] == 0]
    dd = d[charged]
    i1, i2 = r["inc1"].astype(np.int64), r["inc2"].astype(np.int64)
    billable = np.where(dd <= i1, i1, i1 + ((dd - i1 + i2 - 1) // i2) * i2)
    num = np.maximum(r["connect_fee"] * 60 + r["rate"] * billable, r["min_charge"] * 60)
    q = r["quantum"] * 60
    whole, rem = np.divmod(num, q)
    mode = r["rounding"]
    whole += np.select([mode == 0, mode == 1, mode == 2],
                       [2 * rem >= q, rem > 0, (2 * rem > q) | ((2 * rem == q) & (whole % 2 == 1))],
                       False)
    charge = whole * r["quantum"]
    return {int(dk): int(charge[deck[charged] == dk].sum()) for dk in np.unique(deck[charged])}
