"""Rate decks (SPEC §2): read, validate, and compile into lookup tables.

A deck file (CSV with a header row, or Parquet) is validated column by column
with vectorised checks; any bad cell refuses the whole set of decks with an
error naming file, line and column. The validated rows of all decks are then
compiled into one :class:`RateBook`: per (deck, service) table, the nested
prefixes are flattened into disjoint ranges of the 15-digit number space
(see ``ratecore_ext/_tables.pxd`` for the layout the kernels read).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ratecore import buffers, fields
from ratecore._lookup import N_BUCKETS, flatten
from ratecore.errors import DeckError, InputError, Problem

SERVICES = ("outbound", "conference_dialout", "tollfree_inbound")
NUMBER_CLASSES = ("geographic", "mobile", "tollfree", "premium", "shared_cost", "special")
ROUNDINGS = ("half_up", "up", "half_even", "down")  # codes match _tables.pxd
REQUIRED = ("deck", "currency", "service", "prefix", "country", "destination", "rate",
            "effective_from")
OPTIONAL = ("number_class", "connect_fee", "initial_increment", "next_increment",
            "min_charge", "blocked", "effective_to", "rounding", "decimals")
#: Prices are below one million currency units (per minute, per call), which
#: keeps ``rate * seconds`` inside int64 micro-units for any accepted call.
MAX_PRICE_MICRO = 1_000_000 * fields.MICRO - 1
MAX_INCREMENT = 86_400
OPEN_END = np.iinfo(np.int64).max
SPACE = 10**15

# Arrays of structs read by the kernels: these mirror Node, Version and
# RowTerms in ratecore_ext/_tables.pxd field for field (tests check sizes).
# Nodes (32 bytes) and row terms (48) are read at random: their arrays start
# on a cache line (`buffers.zeros_on_line`), so a node never crosses one,
# nor do the 16 bytes of a row that pricing reads (its increments first).
NODE_DTYPE = np.dtype([("eff_from", "<i8"), ("eff_to", "<i8"), ("row", "<i4"),
                       ("parent", "<i4"), ("plen", "i1")], align=True)
VERSION_DTYPE = np.dtype([("eff_from", "<i8"), ("eff_to", "<i8"), ("row", "<i4")], align=True)
ROW_DTYPE = np.dtype([("inc1", "<i4"), ("inc2", "<i4"), ("rounding", "i1"),
                      ("blocked", "i1"), ("number_class", "i1"), ("rate", "<i8"),
                      ("connect_fee", "<i8"), ("min_charge", "<i8"), ("quantum", "<i8")],
                     align=True)


def _country_codes() -> frozenset[str]:
    import phonenumbers
    import pycountry

    # ISO 3166-1 alpha-2, plus the telephony-only regions of libphonenumber
    # (AC Ascension, TA Tristan da Cunha, XK Kosovo) that real decks list.
    iso = {c.alpha_2 for c in pycountry.countries}
    telephony = {r for r in phonenumbers.SUPPORTED_REGIONS if len(r) == 2 and r.isalpha()}
    return frozenset(iso | telephony)


def _currency_codes() -> frozenset[str]:
    import pycountry

    return frozenset(c.alpha_3 for c in pycountry.currencies)


COUNTRIES = _country_codes()
CURRENCIES = _currency_codes()


def deck_files(path: str | Path) -> list[Path]:
    """The deck files of a file or a directory (``*.csv`` and ``*.parquet``)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir()
                       if f.suffix.lower() in (".csv", ".parquet") and f.is_file())
        if not files:
            raise DeckError(f"{p}: no deck files (*.csv, *.parquet)")
        return files
    if not p.exists():
        raise DeckError(f"{p}: no such deck file")
    return [p]


def _validate_file(path: Path) -> pa.Table:
    raw, is_csv = fields.read_text_table(path, DeckError)
    missing = [c for c in REQUIRED if c not in raw.column_names]
    if missing:
        raise DeckError(f"{path}: missing required column(s) " + ", ".join(f"'{c}'" for c in missing))
    ck = fields.CellChecker(path, raw, is_csv)
    n = raw.num_rows

    def enum(column, allowed, default):
        s = ck.col(column)
        s = pc.if_else(pc.equal(pc.utf8_length(s), 0), default, s) if default else s
        bad = ~fields.to_mask(pc.is_in(s, pa.array(sorted(allowed))))
        ck.flag(bad, column, lambda t: f"{t!r} is not one of: " + ", ".join(allowed)
                if column not in ("country", "currency") else
                f"unknown {'country' if column == 'country' else 'currency'} code {t!r}")
        return s

    deck = ck.col("deck")
    ck.flag(fields.blank(deck), "deck", lambda t: "deck id is empty")
    currency = enum("currency", CURRENCIES, None)
    service = enum("service", SERVICES, None)
    country = enum("country", COUNTRIES, None)
    number_class = enum("number_class", NUMBER_CLASSES, "geographic")
    rounding = enum("rounding", ROUNDINGS, "half_up")
    destination = ck.col("destination")
    ck.flag(fields.blank(destination), "destination", lambda t: "destination is empty")

    prefix = ck.col("prefix")
    ck.flag(~fields.to_mask(pc.match_substring_regex(prefix, r"^[0-9]{1,15}$")), "prefix",
            lambda t: f"{t!r} is not a prefix of 1 to 15 digits")

    def money(column, default_zero):
        s = ck.col(column)
        if default_zero:
            s = pc.if_else(pc.equal(pc.utf8_length(s), 0), "0", s)
        micro, bad = fields.parse_money(s)
        ck.flag(bad, column, fields.money_problem)
        ck.flag(~bad & (micro < 0), column, lambda t: f"negative price {t}")
        ck.flag(~bad & (micro > MAX_PRICE_MICRO), column,
                lambda t: f"{t} is above the largest accepted price 999999.999999")
        return micro

    rate = money("rate", False)
    connect_fee = money("connect_fee", True)
    min_charge = money("min_charge", True)

    def increment(column):
        s = ck.col(column)
        s = pc.if_else(pc.equal(pc.utf8_length(s), 0), "60", s)
        v, bad = fields.parse_int(s, 1, MAX_INCREMENT)
        ck.flag(bad, column, lambda t: f"{t!r} is not a whole number of seconds from 1 to {MAX_INCREMENT}")
        return v.astype(np.int32)

    inc1 = increment("initial_increment")
    inc2 = increment("next_increment")

    dec_s = ck.col("decimals")
    dec_s = pc.if_else(pc.equal(pc.utf8_length(dec_s), 0), "4", dec_s)
    decimals, bad = fields.parse_int(dec_s, 0, 6)
    ck.flag(bad, "decimals", lambda t: f"{t!r} is not a number of decimals from 0 to 6")

    blocked, bad = fields.parse_bool(ck.col("blocked"))
    ck.flag(bad, "blocked", lambda t: f"{t!r} is not a boolean (true/false, 1/0, yes/no)")

    eff_from, bad = fields.parse_timestamps(ck.col("effective_from"))
    ck.flag(bad, "effective_from", lambda t: f"{t!r} is not a date or ISO 8601 timestamp")
    to_s = ck.col("effective_to")
    open_end = fields.blank(to_s)
    eff_to, bad = fields.parse_timestamps(pc.if_else(pa.array(open_end), "1970-01-01", to_s))
    bad &= ~open_end
    ck.flag(bad, "effective_to", lambda t: f"{t!r} is not a date or ISO 8601 timestamp")
    eff_to = np.where(open_end, OPEN_END, eff_to)
    ck.flag(~bad & ~open_end & (eff_to <= eff_from), "effective_to",
            lambda t: f"{t!r} is not after effective_from")

    if ck.problems:
        raise DeckError(f"{path}: deck refused", ck.problems)
    return pa.table({
        "deck": deck, "currency": currency, "service": service, "prefix": prefix,
        "country": country, "destination": destination, "number_class": number_class,
        "rate": rate, "connect_fee": connect_fee, "min_charge": min_charge,
        "initial_increment": inc1, "next_increment": inc2, "blocked": blocked,
        "effective_from": eff_from, "effective_to": eff_to,
        "rounding": rounding, "decimals": decimals.astype(np.int8),
        "source_file": pa.array([str(path)] * n, pa.string()) if n else pa.array([], pa.string()),
        "source_line": np.arange(n, dtype=np.int64) + (2 if is_csv else 1),
    })


def _check_deck_level(t: pa.Table) -> None:
    """currency, rounding and decimals are the same on every row of a deck."""
    problems: list[Problem] = []
    ids, first, inverse = np.unique(np.asarray(t.column("deck")), return_index=True,
                                    return_inverse=True)
    for column, what in (("currency", "mixed currencies in deck"),
                         ("rounding", "mixed rounding in deck"),
                         ("decimals", "mixed decimals in deck")):
        values = np.asarray(t.column(column))
        differs = np.flatnonzero(values != values[first][inverse])
        for i in differs[: InputError.SHOWN]:
            j = first[inverse[i]]
            problems.append(Problem(
                t.column("source_file")[int(i)].as_py(), int(t.column("source_line")[int(i)].as_py()),
                column, f"{what} {ids[inverse[i]]!r}: {values[i]!r} here, {values[j]!r} at "
                f"{t.column('source_file')[int(j)].as_py()}:{t.column('source_line')[int(j)].as_py()}"))
    if problems:
        raise DeckError("decks refused", problems)


def load_decks(paths) -> pa.Table:
    """Read and validate deck files; return the validated rows of all decks.

    Raises
    ------
    DeckError
        naming file, line and column of every bad cell; nothing is returned
        from a refused deck.
    """
    files = [f for p in ([paths] if isinstance(paths, (str, Path)) else paths)
             for f in deck_files(p)]
    tables = [_validate_file(f) for f in files]
    table = pa.concat_tables(tables) if tables else None
    if table is None or table.num_rows == 0:
        raise DeckError("no deck rows in " + ", ".join(map(str, files)))
    _check_deck_level(table)
    return table


@dataclass(frozen=True)
class DeckInfo:
    deck: str
    currency: str
    rounding: str
    decimals: int


class RateBook:
    """All decks of a run, compiled for the kernels. Immutable once built.

    Rows keep the order of the validated deck table; ``row_*`` arrays are
    indexed by that row number, and so are the output columns (``deck``,
    ``prefix``, ``destination``…) the rated records take from ``rows``.
    """

    def __init__(self, rows: pa.Table):
        self.rows = rows
        ids = sorted(set(rows.column("deck").to_pylist()))
        self.decks: dict[str, DeckInfo] = {}
        deck_col = np.asarray(rows.column("deck"))
        for d in ids:
            i = int(np.argmax(deck_col == d))
            self.decks[d] = DeckInfo(d, rows.column("currency")[i].as_py(),
                                     rows.column("rounding")[i].as_py(),
                                     int(rows.column("decimals")[i].as_py()))
        self.deck_index = {d: k for k, d in enumerate(ids)}
        self._compile(deck_col)

    def _compile(self, deck_col: np.ndarray) -> None:
        rows = self.rows
        n = rows.num_rows
        deck_i = np.vectorize(self.deck_index.__getitem__, otypes=[np.int64])(deck_col) \
            if n else np.zeros(0, np.int64)
        svc = np.asarray(pc.index_in(rows.column("service"), pa.array(SERVICES))).astype(np.int64)
        table = deck_i * len(SERVICES) + svc
        prefix = rows.column("prefix")
        plen = np.asarray(pc.utf8_length(prefix)).astype(np.int64)
        value = np.asarray(pc.cast(prefix, pa.int64()))
        scale = (10 ** (15 - plen)).astype(np.int64)
        lo = value * scale
        eff_from = np.asarray(rows.column("effective_from"))
        eff_to = np.asarray(rows.column("effective_to"))

        # versions sorted by table, then prefix interval (outer first), then time
        order = np.lexsort((eff_from, plen, lo, table))
        t_s, lo_s, len_s = table[order], lo[order], plen[order]
        new_node = np.ones(n, dtype=bool)
        new_node[1:] = (t_s[1:] != t_s[:-1]) | (lo_s[1:] != lo_s[:-1]) | (len_s[1:] != len_s[:-1])
        self._check_overlaps(order, new_node, eff_from, eff_to)

        node_first = np.flatnonzero(new_node)
        node_table = t_s[node_first]
        node_lo = lo_s[node_first]
        node_len = len_s[node_first]
        node_hi = node_lo + (10 ** (15 - node_len)).astype(np.int64)

        n_tables = len(self.decks) * len(SERVICES)
        node_parent = np.full(len(node_first), -1, dtype=np.int32)
        bucket = np.empty(n_tables * (N_BUCKETS + 1), dtype=np.int32)
        bucket_points = np.arange(N_BUCKETS + 1, dtype=np.int64) * (SPACE // N_BUCKETS)
        table_bounds = np.searchsorted(node_table, np.arange(n_tables + 1))
        starts, labels = [], []
        n_ranges = 0
        for t in range(n_tables):
            a, b = table_bounds[t], table_bounds[t + 1]
            s, lab, par = flatten(np.ascontiguousarray(node_lo[a:b]),
                                  np.ascontiguousarray(node_hi[a:b]))
            node_parent[a:b] = np.where(par >= 0, par + a, -1)
            starts.append(s)
            labels.append(np.where(lab >= 0, lab + a, -1).astype(np.int32))
            bucket[t * (N_BUCKETS + 1):(t + 1) * (N_BUCKETS + 1)] = \
                np.searchsorted(s, bucket_points, side="right") - 1 + n_ranges
            n_ranges += len(s)

        n_nodes = len(node_first)
        node_vend = np.append(node_first[1:], n).astype(np.int32)
        single = (node_vend - node_first) == 1
        nodes = buffers.zeros_on_line(max(n_nodes, 1), NODE_DTYPE)
        nodes["eff_from"][:n_nodes] = np.where(single, eff_from[order][node_first], 0)
        nodes["eff_to"][:n_nodes] = np.where(single, eff_to[order][node_first], 0)
        nodes["row"][:n_nodes] = np.where(single, order[node_first], -1)
        nodes["parent"][:n_nodes] = node_parent
        nodes["plen"][:n_nodes] = node_len
        node_versions = np.zeros((max(n_nodes, 1), 2), np.int32)
        node_versions[:n_nodes, 0] = node_first
        node_versions[:n_nodes, 1] = node_vend

        versions = np.zeros(max(n, 1), dtype=VERSION_DTYPE)
        versions["eff_from"][:n] = eff_from[order]
        versions["eff_to"][:n] = eff_to[order]
        versions["row"][:n] = order

        terms = buffers.zeros_on_line(max(n, 1), ROW_DTYPE)
        terms["rate"][:n] = np.asarray(rows.column("rate"))
        terms["connect_fee"][:n] = np.asarray(rows.column("connect_fee"))
        terms["min_charge"][:n] = np.asarray(rows.column("min_charge"))
        terms["quantum"][:n] = 10 ** (6 - np.asarray(rows.column("decimals")).astype(np.int64))
        terms["inc1"][:n] = np.asarray(rows.column("initial_increment"))
        terms["inc2"][:n] = np.asarray(rows.column("next_increment"))
        terms["rounding"][:n] = np.asarray(
            pc.index_in(rows.column("rounding"), pa.array(ROUNDINGS)))
        terms["blocked"][:n] = np.asarray(rows.column("blocked"))
        terms["number_class"][:n] = np.asarray(
            pc.index_in(rows.column("number_class"), pa.array(NUMBER_CLASSES)))

        self.bucket = bucket
        self.range_start = np.concatenate(starts)
        self.range_node = np.concatenate(labels)
        self.nodes = nodes
        self.node_versions = node_versions
        self.versions = versions
        self.row_terms = terms
        for a in (self.nodes, self.node_versions, self.versions, self.row_terms):
            a.flags.writeable = False

    def _check_overlaps(self, order, new_node, eff_from, eff_to) -> None:
        same = ~new_node[1:]
        prev, cur = order[:-1][same], order[1:][same]
        clash = eff_from[cur] < eff_to[prev]
        if not clash.any():
            return
        f, ln = self.rows.column("source_file"), self.rows.column("source_line")
        problems = []
        for a, b in zip(prev[clash][: InputError.SHOWN], cur[clash][: InputError.SHOWN]):
            a, b = int(a), int(b)
            problems.append(Problem(
                f[b].as_py(), int(ln[b].as_py()), "effective_from",
                f"version of {self.rows.column('service')[b].as_py()} prefix "
                f"{self.rows.column('prefix')[b].as_py()} overlaps the one at "
                f"{f[a].as_py()}:{ln[a].as_py()}"))
        raise DeckError("decks refused: overlapping versions", problems)

    @cached_property
    def n_rows(self) -> int:
        return self.rows.num_rows


def load_rate_book(paths) -> RateBook:
    """Read, validate and compile deck files or directories."""
    return RateBook(load_decks(paths))
