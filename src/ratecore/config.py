"""The config directory (SPEC §7): tenants, licenses, funds, card updates, the
SKU catalog and zones, read and validated; rate decks through deck.py.

Every file is validated whole: all bad cells of a file are collected, each
named by file, line and column, and the file is refused with one ConfigError.
The SKU catalog and the zones ship with the package (``ratecore/data/``); a
``skus.csv`` or ``zones.csv`` in the config directory replaces the shipped
file wholesale.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ratecore import fields
from ratecore.deck import COUNTRIES, CURRENCIES, RateBook, load_rate_book
from ratecore.errors import ConfigError, Problem

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
SKU_POOL_KINDS = ("domestic", "user", "international", "dialout", "credits")
ZONE_KINDS = ("domestic", "pool_group", "zone_a")
MAX_SKU_MINUTES = 1_000_000

TENANT_COLUMNS = ("tenant_id", "name", "country", "currency", "deck")
#: absent columns take their defaults (no credits, no auto-recharge, no card)
TENANT_OPTIONAL = ("credits_enabled", "auto_recharge", "trigger_amount", "recharge_amount",
                   "card_expires")
LICENSE_COLUMNS = ("tenant_id", "user_id", "usage_location", "sku", "assigned_from")
FUND_COLUMNS = ("tenant_id", "funded_at", "amount")
CARD_UPDATE_COLUMNS = ("tenant_id", "updated_at", "card_expires")
SKU_COLUMNS = ("sku", "name", "pool", "country", "minutes")
ZONE_COLUMNS = ("kind", "country", "member")

_COUNTRY_LIST = pa.array(sorted(COUNTRIES))
_MONTH_RE = r"^[0-9]{4}-(0[1-9]|1[0-2])$"


# --------------------------------------------------------------------------
# Shared checks
# --------------------------------------------------------------------------

def _read(path: Path, required, what: str, *, optional_file: bool = False):
    """A CellChecker over a config file (its table as strings), or None for
    a missing optional file."""
    path = Path(path)
    if not path.exists():
        if optional_file:
            return None
        raise ConfigError(f"{path}: missing (the config directory needs {path.name}, {what})")
    raw, is_csv = fields.read_text_table(path, ConfigError)
    missing = [c for c in required if c not in raw.column_names]
    if missing:
        raise ConfigError(f"{path}: missing required column(s) "
                          + ", ".join(f"'{c}'" for c in missing))
    return fields.CellChecker(path, raw, is_csv)


def _lines(ck: fields.CellChecker) -> np.ndarray:
    return np.arange(ck.table.num_rows, dtype=np.int64) + ck.line(0)


def _known_country(s: pa.Array) -> np.ndarray:
    return fields.to_mask(pc.is_in(s, _COUNTRY_LIST))


def _tenant_rows(ck: fields.CellChecker, tenants: Tenants) -> tuple[np.ndarray, np.ndarray]:
    """(int32 row in tenants.ids, unknown mask) of each tenant_id cell; flags the unknown ones."""
    ids = ck.col("tenant_id")
    row = tenants.lookup(ids)
    ck.flag(row < 0, "tenant_id", lambda t: f"unknown tenant {t!r} (not in tenants.csv)"
            if t else "tenant_id is empty")
    return np.where(row < 0, 0, row).astype(np.int32), row < 0


def _timestamps(ck: fields.CellChecker, column: str, *, empty=None) -> tuple[np.ndarray, np.ndarray]:
    """(int64 UTC µs, bad mask) of a timestamp column; with `empty` given,
    empty cells take that value, else they are bad."""
    s = ck.col(column)
    blank = fields.blank(s) if empty is not None else np.zeros(len(s), dtype=bool)
    us, bad = fields.parse_timestamps(pc.if_else(pa.array(blank), "1970-01-01", s))
    bad &= ~blank
    ck.flag(bad, column,
            lambda t: f"{t!r} is not a date or ISO 8601 timestamp" if t else f"{column} is empty")
    return np.where(blank, empty if empty is not None else 0, us).astype(np.int64), bad


def _bools(ck: fields.CellChecker, column: str) -> np.ndarray:
    value, bad = fields.parse_bool(ck.col(column))
    ck.flag(bad, column, lambda t: f"{t!r} is not a boolean (true/false, 1/0, yes/no)")
    return value


def _card_months(ck: fields.CellChecker, column: str, *, allow_empty: bool) -> np.ndarray:
    """A ``YYYY-MM`` card expiry as the first instant the card is no longer
    valid (00:00 UTC on the 1st of the next month); INT64_MIN when empty."""
    s = ck.col(column)
    blank = fields.blank(s)
    ok = fields.to_mask(pc.match_substring_regex(s, _MONTH_RE))
    ck.flag(~ok & ~(blank & allow_empty), column,
            lambda t: f"{t!r} is not a card expiry month YYYY-MM (month 01-12)"
            if t else f"{column} is empty")
    good = pc.if_else(pa.array(ok), s, "1970-01")
    year = np.asarray(pc.cast(pc.utf8_slice_codeunits(good, 0, 4), pa.int64()))
    month = np.asarray(pc.cast(pc.utf8_slice_codeunits(good, 5, 7), pa.int64()))
    after = ((year - 1970) * 12 + month).astype("datetime64[M]")  # month + 1, 0-based
    until = after.astype("datetime64[us]").astype(np.int64)
    return np.where(ok, until, INT64_MIN).astype(np.int64)


def _shipped(name: str) -> resources.abc.Traversable:
    return resources.files("ratecore") / "data" / name


# --------------------------------------------------------------------------
# SKU catalog and zones
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class SkuCatalog:
    """The SKUs that give minutes or credits (SPEC §5), from ``skus.csv``.

    Attributes
    ----------
    skus : tuple of str
        Catalog order (first appearance in the file).
    names : dict
        sku -> capability name.
    pools : dict
        sku -> the pool kinds it gives (SKU_POOL_KINDS), in file order.
    minutes : dict
        (sku, pool kind, country) -> minutes per assigned user per month;
        country ``""`` stands for every country without a row of its own.
    """

    skus: tuple[str, ...]
    names: dict[str, str]
    pools: dict[str, tuple[str, ...]]
    minutes: dict[tuple[str, str, str], int]

    def minutes_for(self, sku: str, pool: str, country: str) -> int:
        """Minutes per user per month: the country's row, else the ``""`` row, else 0."""
        m = self.minutes.get((sku, pool, country))
        return m if m is not None else self.minutes.get((sku, pool, ""), 0)


def load_skus(path: str | Path | None = None) -> SkuCatalog:
    """Read a SKU catalog (columns ``sku,name,pool,country,minutes``).

    The shipped catalog is used when `path` is None or does not exist.
    """
    return _or_shipped(path, "skus.csv", _load_skus)


def _load_skus(path: Path) -> SkuCatalog:
    ck = _read(path, SKU_COLUMNS, "the SKU catalog")
    sku = ck.col("sku")
    ck.flag(fields.blank(sku), "sku", lambda t: "sku is empty")
    name = ck.col("name")
    ck.flag(fields.blank(name), "name", lambda t: "name is empty")
    pool = ck.col("pool")
    ck.flag(~fields.to_mask(pc.is_in(pool, pa.array(SKU_POOL_KINDS))), "pool",
            lambda t: f"{t!r} is not one of: " + ", ".join(SKU_POOL_KINDS))
    country = ck.col("country")
    ck.flag(~fields.blank(country) & ~_known_country(country), "country",
            lambda t: f"unknown country code {t!r}")
    minutes, bad = fields.parse_int(ck.col("minutes"), 0, MAX_SKU_MINUTES)
    ck.flag(bad, "minutes",
            lambda t: f"{t!r} is not a whole number of minutes from 0 to {MAX_SKU_MINUTES}")

    lines = _lines(ck)
    skus: dict[str, None] = {}
    names: dict[str, tuple[str, int]] = {}
    pools: dict[str, dict[str, None]] = {}
    table: dict[tuple[str, str, str], tuple[int, int]] = {}
    for i, (s, n, p, c, m) in enumerate(zip(sku.to_pylist(), name.to_pylist(), pool.to_pylist(),
                                            country.to_pylist(), minutes.tolist())):
        line = int(lines[i])
        first = names.setdefault(s, (n, line))
        if first[0] != n:
            ck.problems.append(Problem(str(path), line, "name", f"sku {s!r} is named {n!r} here "
                                       f"and {first[0]!r} at line {first[1]}"))
        key = (s, p, c)
        if key in table:
            ck.problems.append(Problem(str(path), line, "country",
                                       f"sku {s!r} pool {p!r} country {c or '(every other)'!r} "
                                       f"is listed more than once (also line {table[key][1]})"))
            continue
        table[key] = (m, line)
        skus.setdefault(s)
        pools.setdefault(s, {}).setdefault(p)
    if ck.problems:
        raise ConfigError(f"{path}: SKU catalog refused", ck.problems)
    return SkuCatalog(skus=tuple(skus), names={s: n for s, (n, _) in names.items()},
                      pools={s: tuple(p) for s, p in pools.items()},
                      minutes={k: m for k, (m, _) in table.items()})


@dataclass(frozen=True)
class Zones:
    """Domestic destinations, shared country pools and Zone A (SPEC §4-5),
    from ``zones.csv``.

    Attributes
    ----------
    domestic : dict
        usage location -> countries listed as domestic for it (the location
        itself is always domestic).
    pool_group : dict
        country -> the country whose pool it shares (PR -> US).
    zone_a : frozenset
        Audio Conferencing dial-out Zone A countries.
    """

    domestic: dict[str, frozenset[str]]
    pool_group: dict[str, str]
    zone_a: frozenset[str]

    def is_domestic(self, location: str, country: str) -> bool:
        """Is a call to `country` domestic for a user in `location`?"""
        return country == location or country in self.domestic.get(location, ())

    def group_of(self, country: str) -> str:
        """The country whose pool users in `country` draw from."""
        return self.pool_group.get(country, country)


def load_zones(path: str | Path | None = None) -> Zones:
    """Read zones (columns ``kind,country,member``; kinds ``domestic``,
    ``pool_group``, ``zone_a``). The shipped file is used when `path` is
    None or does not exist."""
    return _or_shipped(path, "zones.csv", _load_zones)


def _or_shipped(path, name: str, load):
    """`load` the file at `path`, or the shipped `name` when there is none."""
    if path is None or not Path(path).exists():
        with resources.as_file(_shipped(name)) as shipped:
            return load(Path(shipped))
    return load(Path(path))


def _load_zones(path: Path) -> Zones:
    ck = _read(path, ZONE_COLUMNS, "zones")
    kind = ck.col("kind")
    ck.flag(~fields.to_mask(pc.is_in(kind, pa.array(ZONE_KINDS))), "kind",
            lambda t: f"{t!r} is not one of: " + ", ".join(ZONE_KINDS))
    country = ck.col("country")
    ck.flag(~_known_country(country), "country",
            lambda t: f"unknown country code {t!r}" if t else "country is empty")
    member = ck.col("member")
    paired = fields.to_mask(pc.is_in(kind, pa.array(["domestic", "pool_group"])))
    member_blank = fields.blank(member)
    ck.flag(paired & member_blank, "member", lambda t: "member is empty (required for this kind)")
    ck.flag(paired & ~member_blank & ~_known_country(member), "member",
            lambda t: f"unknown country code {t!r}")
    ck.flag((kind.to_numpy(zero_copy_only=False) == "zone_a") & ~member_blank, "member",
            lambda t: f"zone_a rows take no member ({t!r})")

    lines = _lines(ck)
    domestic: dict[str, set[str]] = {}
    pool_group: dict[str, tuple[str, int]] = {}
    zone_a: set[str] = set()
    seen: dict[tuple[str, str, str], int] = {}
    rows = zip(kind.to_pylist(), country.to_pylist(), member.to_pylist())
    for i, (k, c, m) in enumerate(rows):
        line = int(lines[i])
        if (k, c, m) in seen:
            ck.problems.append(Problem(str(path), line, "country",
                                       f"listed more than once (also line {seen[(k, c, m)]})"))
            continue
        seen[(k, c, m)] = line
        if k == "domestic":
            domestic.setdefault(c, set()).add(m)
        elif k == "zone_a":
            zone_a.add(c)
        elif k == "pool_group":
            if c in pool_group:
                ck.problems.append(Problem(
                    str(path), line, "country", f"{c!r} is in more than one pool_group row "
                    f"(also line {pool_group[c][1]})"))
            elif c == m:
                ck.problems.append(Problem(str(path), line, "member",
                                           f"{c!r} cannot share its own pool"))
            else:
                pool_group[c] = (m, line)
    for c, (m, line) in pool_group.items():
        if m in pool_group:
            ck.problems.append(Problem(
                str(path), line, "member", f"{m!r} itself shares the pool of "
                f"{pool_group[m][0]!r} (line {pool_group[m][1]}); name that country instead"))
    if ck.problems:
        raise ConfigError(f"{path}: zones refused", ck.problems)
    return Zones(domestic={c: frozenset(ms) for c, ms in domestic.items()},
                 pool_group={c: m for c, (m, _) in pool_group.items()},
                 zone_a=frozenset(zone_a))


# --------------------------------------------------------------------------
# Tenants
# --------------------------------------------------------------------------

@dataclass
class Tenants:
    """tenants.csv, validated, with each tenant's deck resolved in a RateBook.

    Money is int64 micro-units; ``card_valid_until`` is the first UTC µs at
    which the card is no longer valid (INT64_MIN: no card).
    """

    table: pa.Table
    ids: pa.Array           # tenant_id, in file order
    deck_index: np.ndarray  # int16 RateBook.deck_index of each tenant
    country: list[str]
    credits_enabled: np.ndarray   # bool
    auto_recharge: np.ndarray     # bool
    trigger_micro: np.ndarray     # int64, 0 when empty
    recharge_micro: np.ndarray    # int64, 0 when empty
    card_valid_until: np.ndarray  # int64 µs, INT64_MIN when empty

    def lookup(self, tenant_id: pa.Array) -> np.ndarray:
        """int32 row in `ids` of each tenant id; -1 where unknown."""
        return fields.by_value(tenant_id, lambda a: np.asarray(
            pc.index_in(a, self.ids).fill_null(-1)).astype(np.int32), np.int32(-1))

    def decks(self, rows: np.ndarray) -> np.ndarray:
        """int16 deck index of each tenant row (rows out of range read the
        nearest end: callers mark those rows rejected)."""
        return fields.take(self.deck_index, np.asarray(rows))


def _amount(ck: fields.CellChecker, column: str, *, positive: bool) -> tuple[np.ndarray, np.ndarray]:
    """(micro, blank) of an optional money column."""
    s = ck.col(column)
    blank = fields.blank(s)
    micro, bad = fields.parse_money(s)
    bad &= ~blank
    ck.flag(bad, column, fields.money_problem)
    if positive:
        ck.flag(~bad & ~blank & (micro <= 0), column, lambda t: f"{t!r} is not a positive amount")
    else:
        ck.flag(~bad & ~blank & (micro < 0), column, lambda t: f"{t!r} is negative")
    return np.where(bad | blank, 0, micro).astype(np.int64), blank


def load_tenants(path: Path, book: RateBook, *, by_currency: bool = False) -> Tenants:
    """Read tenants.csv and bind each tenant to its deck.

    With ``by_currency`` (a candidate deck given with ``--deck``), a tenant
    whose deck id is not in the book takes the book's only deck in the
    tenant's currency. The credit columns (``credits_enabled``,
    ``auto_recharge``, ``trigger_amount``, ``recharge_amount``,
    ``card_expires``) are optional: an absent column or empty cell means
    no credits, no auto-recharge, no card.
    """
    path = Path(path)
    ck = _read(path, TENANT_COLUMNS, "one row per tenant")
    ids = ck.col("tenant_id")
    ck.flag(fields.blank(ids), "tenant_id", lambda t: "tenant_id is empty")
    counts = pc.value_counts(ids)
    dup_ids = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    ck.flag(fields.to_mask(pc.is_in(ids, dup_ids)), "tenant_id",
            lambda t: f"tenant {t!r} is listed more than once")
    country = ck.col("country")
    ck.flag(~_known_country(country), "country", lambda t: f"unknown country code {t!r}")
    currency = ck.col("currency")
    ck.flag(~fields.to_mask(pc.is_in(currency, pa.array(sorted(CURRENCIES)))), "currency",
            lambda t: f"unknown currency code {t!r}")
    deck = ck.col("deck")
    if by_currency:
        per_currency: dict[str, list[str]] = {}
        for info in book.decks.values():
            per_currency.setdefault(info.currency, []).append(info.deck)
        names = deck.to_pylist()
        cur = currency.to_pylist()
        for i, d in enumerate(names):
            if d not in book.deck_index and len(per_currency.get(cur[i], [])) == 1:
                names[i] = per_currency[cur[i]][0]
        deck = pa.array(names, pa.string())
    known = fields.to_mask(pc.is_in(deck, pa.array(sorted(book.deck_index))))
    ck.flag(~known, "deck", lambda t: f"unknown deck {t!r} (decks: {', '.join(sorted(book.deck_index))})")
    deck_currency = pa.array([book.decks[d].currency if d in book.decks else None
                              for d in deck.to_pylist()], pa.string())
    ck.flag(known & ~fields.to_mask(pc.equal(deck_currency, currency)), "currency",
            lambda t: f"currency {t!r} differs from the currency of the tenant's deck")

    credits_enabled = _bools(ck, "credits_enabled")
    auto_recharge = _bools(ck, "auto_recharge")
    trigger, no_trigger = _amount(ck, "trigger_amount", positive=False)
    recharge, no_recharge = _amount(ck, "recharge_amount", positive=True)
    for column, empty in (("trigger_amount", no_trigger), ("recharge_amount", no_recharge)):
        ck.flag(auto_recharge & empty, column,
                lambda t, c=column: f"{c} is empty but auto_recharge is true")
    card_valid_until = _card_months(ck, "card_expires", allow_empty=True)

    if ck.problems:
        raise ConfigError(f"{path}: tenants refused", ck.problems)
    deck_index = np.array([book.deck_index[d] for d in deck.to_pylist()], dtype=np.int16)
    table = ck.table.set_column(ck.table.column_names.index("deck"), "deck", deck)
    return Tenants(table, ids, deck_index, country=country.to_pylist(),
                   credits_enabled=credits_enabled, auto_recharge=auto_recharge,
                   trigger_micro=trigger, recharge_micro=recharge,
                   card_valid_until=card_valid_until)


# --------------------------------------------------------------------------
# Licenses, funds, card updates
# --------------------------------------------------------------------------

@dataclass
class Licenses:
    """licenses.csv, one entry per row in file order. ``assigned_to`` is
    exclusive; INT64_MAX when the license is still assigned."""

    tenant: np.ndarray         # int32 row in Tenants.ids
    user_id: list[str]
    usage_location: list[str]
    sku: list[str]
    assigned_from: np.ndarray  # int64 µs
    assigned_to: np.ndarray    # int64 µs
    line: np.ndarray           # int64 file line


def load_licenses(path: Path, tenants: Tenants, skus: SkuCatalog) -> Licenses:
    """Read licenses.csv (``tenant_id, user_id, usage_location, sku,
    assigned_from`` and optional ``assigned_to``).

    A user may not hold the same SKU twice at once: rows of one (tenant,
    user, sku) with overlapping ``[assigned_from, assigned_to)`` are refused.
    """
    path = Path(path)
    ck = _read(path, LICENSE_COLUMNS, "the license assignments")
    tenant, unknown = _tenant_rows(ck, tenants)
    user = ck.col("user_id")
    ck.flag(fields.blank(user), "user_id", lambda t: "user_id is empty")
    location = ck.col("usage_location")
    ck.flag(~_known_country(location), "usage_location",
            lambda t: f"unknown country code {t!r}" if t else "usage_location is empty")
    sku = ck.col("sku")
    catalog = ", ".join(skus.skus)
    ck.flag(~fields.to_mask(pc.is_in(sku, pa.array(list(skus.skus), pa.string()))), "sku",
            lambda t: f"unknown SKU {t!r} (catalog: {catalog})")
    frm, bad_from = _timestamps(ck, "assigned_from")
    to, bad_to = _timestamps(ck, "assigned_to", empty=INT64_MAX)
    ok = ~(unknown | bad_from | bad_to)
    ck.flag(ok & (to <= frm), "assigned_to", lambda t: f"{t!r} is not after assigned_from")
    line = _lines(ck)
    _check_overlaps(ck, np.flatnonzero(ok & (to > frm)), tenant, user, sku, frm, to, line)
    if ck.problems:
        raise ConfigError(f"{path}: licenses refused", ck.problems)
    return Licenses(tenant=tenant, user_id=user.to_pylist(), usage_location=location.to_pylist(),
                    sku=sku.to_pylist(), assigned_from=frm, assigned_to=to, line=line)


def _check_overlaps(ck, rows, tenant, user, sku, frm, to, line) -> None:
    """Flag each of `rows` whose window overlaps an earlier-starting row of
    the same (tenant, user, sku). Sorted by start, a group has an overlap iff
    some adjacent pair overlaps; only such groups are scanned row by row."""
    if len(rows) < 2:
        return
    take = pa.array(rows)
    key = pc.binary_join_element_wise(pa.array(tenant[rows].astype(str)), user.take(take),
                                      sku.take(take), "\x1f")
    group = np.full(len(tenant), -1, dtype=np.int64)
    group[rows] = np.asarray(pc.dictionary_encode(key).indices, dtype=np.int64)
    order = rows[np.lexsort((to[rows], frm[rows], group[rows]))]
    g, f, t = group[order], frm[order], to[order]
    clash = (g[1:] == g[:-1]) & (f[1:] < t[:-1])
    for bad_group in np.unique(g[1:][clash]):
        members = order[g == bad_group]
        latest = members[0]  # the row whose window reaches furthest so far
        for r in members[1:]:
            if frm[r] < to[latest]:
                ck.problems.append(Problem(
                    str(ck.path), int(line[r]), "assigned_from",
                    f"user {user[int(r)].as_py()!r} already holds {sku[int(r)].as_py()!r} then "
                    f"(overlaps line {int(line[latest])})"))
            if to[r] > to[latest]:
                latest = r


@dataclass
class Funds:
    """funds.csv: prepaid fundings of the credit accounts."""

    tenant: np.ndarray      # int32
    funded_at: np.ndarray   # int64 µs
    amount: np.ndarray      # int64 micro-units, > 0
    reference: list[str | None]
    line: np.ndarray        # int64 file line


def load_funds(path: Path, tenants: Tenants) -> Funds:
    """Read funds.csv (``tenant_id, funded_at, amount``, optional ``reference``)."""
    path = Path(path)
    ck = _read(path, FUND_COLUMNS, "the fundings; a header row alone will do")
    tenant, _ = _tenant_rows(ck, tenants)
    at, _ = _timestamps(ck, "funded_at")
    s = ck.col("amount")
    micro, bad = fields.parse_money(s)
    ck.flag(bad, "amount", lambda t: fields.money_problem(t) if t else "amount is empty")
    ck.flag(~bad & (micro <= 0), "amount", lambda t: f"{t!r} is not a positive amount")
    ref = ck.col("reference")
    reference = pc.if_else(pa.array(fields.blank(ref)), pa.scalar(None, pa.string()), ref)
    if ck.problems:
        raise ConfigError(f"{path}: funds refused", ck.problems)
    return Funds(tenant=tenant, funded_at=at, amount=micro.astype(np.int64),
                 reference=reference.to_pylist(), line=_lines(ck))


@dataclass
class CardUpdates:
    """card_updates.csv: a tenant's card expiry changing over time."""

    tenant: np.ndarray            # int32
    updated_at: np.ndarray        # int64 µs
    card_valid_until: np.ndarray  # int64 µs, as in Tenants
    card_expires: list[str]       # the YYYY-MM text
    line: np.ndarray              # int64 file line


def load_card_updates(path: Path, tenants: Tenants) -> CardUpdates:
    """Read card_updates.csv (``tenant_id, updated_at, card_expires``);
    a missing file means no updates."""
    path = Path(path)
    ck = _read(path, CARD_UPDATE_COLUMNS, "card updates", optional_file=True)
    if ck is None:
        empty = np.zeros(0, dtype=np.int64)
        return CardUpdates(np.zeros(0, dtype=np.int32), empty, empty.copy(), [], empty.copy())
    tenant, _ = _tenant_rows(ck, tenants)
    at, _ = _timestamps(ck, "updated_at")
    until = _card_months(ck, "card_expires", allow_empty=False)
    if ck.problems:
        raise ConfigError(f"{path}: card updates refused", ck.problems)
    return CardUpdates(tenant=tenant, updated_at=at, card_valid_until=until,
                       card_expires=ck.col("card_expires").to_pylist(), line=_lines(ck))


# --------------------------------------------------------------------------
# The whole directory
# --------------------------------------------------------------------------

@dataclass
class Config:
    """A validated config directory (SPEC §7)."""

    book: RateBook
    tenants: Tenants
    licenses: Licenses
    funds: Funds
    card_updates: CardUpdates
    skus: SkuCatalog
    zones: Zones


def load_config(config_dir: str | Path, deck_file: str | Path | None = None) -> Config:
    """Read and validate a config directory.

    Parameters
    ----------
    config_dir : str or Path
        Holds ``decks/``, ``tenants.csv``, ``licenses.csv``, ``funds.csv``
        and optionally ``card_updates.csv``, ``skus.csv`` and ``zones.csv``
        (these two replace the shipped catalog and zones).
    deck_file : str or Path, optional
        A candidate deck to rate with instead of ``decks/``; tenants whose
        deck is not in it take its deck in their currency.

    Raises
    ------
    DeckError, ConfigError
        For the first file refused, with every problem in it.
    """
    config_dir = Path(config_dir)
    book = load_rate_book(deck_file if deck_file else config_dir / "decks")
    tenants = load_tenants(config_dir / "tenants.csv", book, by_currency=deck_file is not None)
    skus = load_skus(config_dir / "skus.csv")
    zones = load_zones(config_dir / "zones.csv")
    return Config(book=book, tenants=tenants,
                  licenses=load_licenses(config_dir / "licenses.csv", tenants, skus),
                  funds=load_funds(config_dir / "funds.csv", tenants),
                  card_updates=load_card_updates(config_dir / "card_updates.csv", tenants),
                  skus=skus, zones=zones)
