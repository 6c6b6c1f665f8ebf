"""Realistic sample data: rate decks, tenants, licenses, funds and CDRs (SPEC §10).

``ratecore generate --out DIR`` calls :func:`generate`, which writes the
config directory of SPEC §7 (``config/decks/*.csv``, ``tenants.csv``,
``licenses.csv``, ``funds.csv``, ``card_updates.csv``) and Parquet CDRs
(``cdrs/cdrs-NNNNN.parquet``), so that ``ratecore rate --config DIR/config
--cdrs DIR/cdrs`` runs on it directly. Benchmarks build the same data in
memory with :func:`generate_deck`, :func:`generate_config` and
:func:`generate_cdrs`.

Where the data comes from
-------------------------
- **Country calling codes and numbering plans** come from the ``phonenumbers``
  package (Google's libphonenumber metadata), never from a hand-typed list:
  every calling code of ``phonenumbers.COUNTRY_CODE_TO_REGION_CODE`` with a
  geographic region gets a country-level row. The non-geographic codes
  (region ``001``: +800, +808, +870, +878, +881, +882, +883, +888, +979) have
  no ISO 3166-1 country and are left out of the deck; the CDRs use them as
  numbers that match no prefix.
- **Breakouts** under a code are the shortest digit strings that the
  metadata's per-type number patterns (fixed line, mobile, toll-free, premium
  rate, shared cost) assign to a single type, plus nested, longer prefixes
  below them. The national-number regexes are compiled into small digit
  automata for this (``_Pattern``).
- **Geographic breakouts and their names** (``United Kingdom - London``) come
  from the ``phonenumbers`` geocoding data; NANP area codes are attributed to
  their region (US, CA, PR, JM, ...) by the regions' own patterns.
- Tenant time zones (for the business-hours profile of the call times) come
  from ``phonenumbers.timezone`` and the system's ``zoneinfo`` database; a
  missing zone counts as UTC.

Decisions where the SPEC is silent
----------------------------------
- Everything is a pure function of the arguments: the same seed gives
  byte-identical CSV files and identical Parquet contents, on any number of
  threads. Random draws come from ``numpy.random.default_rng`` streams spawned
  from the seed; prices are drawn as integer micro-units and formatted from
  integers, never from a float.
- Config tables are returned as all-string :class:`pyarrow.Table` objects,
  holding exactly the CSV cells (null = empty cell).
- Money is written with 4 decimals for rates (6 where a rate has sub-0.0001
  precision) and 2 for amounts. Dates at midnight UTC are written as bare
  dates (``2026-10-15``), other instants as ``2026-10-15T13:00:00Z``.
- CDR files are not sorted by time (the rater sorts); ``user_id`` is null for
  ``unassigned_in`` calls and ``conference_id`` is null outside conferences.
- A tenant's users may place calls before a license assigned in the middle of
  the month or after one that ended: the rater must cope with both.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import math
import random
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = [
    "CARD_UPDATE_COLUMNS",
    "CDR_SCHEMA",
    "DECK_COLUMNS",
    "DEFAULT_START",
    "FUND_COLUMNS",
    "LICENSE_COLUMNS",
    "TENANT_COLUMNS",
    "GeneratedSample",
    "SampleConfig",
    "generate",
    "generate_cdrs",
    "generate_config",
    "generate_deck",
]

DEFAULT_START = _dt.datetime(2026, 10, 1, tzinfo=_dt.timezone.utc)
"""Default first instant of the CDR window (fixed, so output is deterministic)."""

DECK_COLUMNS = (
    "deck", "currency", "service", "prefix", "country", "destination",
    "number_class", "rate", "connect_fee", "initial_increment",
    "next_increment", "min_charge", "blocked", "effective_from",
    "effective_to", "rounding", "decimals",
)
TENANT_COLUMNS = (
    "tenant_id", "name", "country", "currency", "deck", "credits_enabled",
    "auto_recharge", "trigger_amount", "recharge_amount", "card_expires",
)
LICENSE_COLUMNS = (
    "tenant_id", "user_id", "usage_location", "sku", "assigned_from", "assigned_to",
)
FUND_COLUMNS = ("tenant_id", "funded_at", "amount", "reference")
CARD_UPDATE_COLUMNS = ("tenant_id", "updated_at", "card_expires")

CDR_SCHEMA = pa.schema([
    ("usage_id", pa.string()),
    ("tenant_id", pa.string()),
    ("user_id", pa.string()),
    ("call_type", pa.string()),
    ("caller_number", pa.string()),
    ("callee_number", pa.string()),
    ("number_type", pa.string()),
    ("start_time", pa.timestamp("us", tz="UTC")),
    ("duration_seconds", pa.int64()),
    ("call_id", pa.string()),
    ("conference_id", pa.string()),
])
"""Arrow schema of generated CDRs (SPEC §7)."""

_DECKS = (("retail-usd", "USD"), ("retail-eur", "EUR"))
_SERVICES = ("outbound", "conference_dialout", "tollfree_inbound")
_CLASSES = ("geographic", "mobile", "tollfree", "premium", "shared_cost")
_GEO, _MOB, _TF, _PREM, _SHARED = range(5)
_CLASS_LABEL = ("Fixed", "Mobile", "Toll-free", "Premium", "Shared cost")
# phonenumbers PhoneMetadata attribute per emitted class, then the number
# types that only serve to decide whether a prefix belongs to one class.
_CLASS_ATTRS = ("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost")
_OTHER_ATTRS = ("personal_number", "voip", "uan", "pager", "voicemail")

_VERSION_EPOCH = "2020-01-01"
_US_PER_S = 1_000_000
_US_PER_DAY = 86_400 * _US_PER_S
_MICRO = 1_000_000  # micro-units per currency unit
_BLOCK_ROWS = 1_000_000  # CDR rows per generated batch and Parquet row group
_FILE_ROWS = 2_000_000  # CDR rows per Parquet file

# Market weights: how likely a tenant is based in, or an international call
# goes to, a country. Countries not listed get _TAIL_WEIGHT. These are
# weights, not the country list: the countries come from phonenumbers.
_MARKETS = {
    "US": 30, "GB": 10, "DE": 8, "FR": 6, "CA": 5, "IN": 4, "JP": 4, "AU": 4,
    "PR": 2, "NL": 3, "ES": 3, "IT": 3, "MX": 2, "BR": 2, "SE": 2, "CH": 2,
    "IE": 2, "SG": 2, "PL": 2, "BE": 2, "AT": 2, "KR": 1.5, "DK": 1, "NO": 1,
    "FI": 1, "PT": 1, "NZ": 1, "ZA": 1, "HK": 1, "AE": 1, "IL": 1, "PH": 1,
    "CN": 1, "TW": 1, "CZ": 1, "RO": 1, "TR": 0.6, "AR": 0.6, "CO": 0.6,
}
_TAIL_WEIGHT = 0.08
# SPEC §5 Zone A (shipped default): cheaper destinations.
_ZONE_A = frozenset(
    "AU AT BE BR BG CA CN HR CZ DK EE FI FR DE GR HK HU IN IE IT JP LU MY MX "
    "NL NZ NO PL PT PR RO RU SG SK SI ZA KR ES SE CH TW TH GB US".split()
)
_CHEAPEST = frozenset({"US", "CA", "PR"})
# Euro area members plus territories and states that use the euro.
_EURO = frozenset(
    "AT BE HR CY EE FI FR DE GR IE IT LV LT LU MT NL PT SK SI ES "
    "AD MC SM VA ME XK GP MQ GF RE YT BL MF PM AX".split()
)
_NAMES_MISSING_FROM_ISO = {"AC": "Ascension Island", "TA": "Tristan da Cunha", "XK": "Kosovo"}
_EMERGENCY = {"GB": "999", "AU": "000", "JP": "110", "CN": "110"}
# Price of a currency unit in US dollars, in parts per million (deck prices
# are drawn in USD micro-units and converted with integer arithmetic).
_FX_PPM = {"USD": 1_000_000, "EUR": 920_000, "GBP": 790_000, "CAD": 1_370_000,
           "AUD": 1_520_000, "JPY": 150_000_000, "CHF": 880_000}

_SKUS = ("MCOPSTN1", "MCOPSTN2", "MCOPSTN5", "MCOPSTN6", "MCOPSTN8", "MCOMEETADD", "MCOPSTNPP")
_COMPANIES = (
    "Contoso", "Fabrikam", "Northwind", "Tailspin", "Woodgrove", "Litware",
    "Adatum", "Proseware", "Lucerne", "Wingtip", "Alpine", "Coho", "Trey",
    "Humongous", "Wide World", "Blue Yonder", "Fourth Coffee", "Southridge",
    "Relecloud", "Lamna", "Munson's", "VanArsdel", "Datum", "Bellows",
)
_SECTORS = (
    "Traders", "Logistics", "Health", "Energy", "Systems", "Bank", "Foods",
    "Media", "Labs", "Airlines", "Insurance", "Retail", "Consulting", "Motors",
)
_LEGAL = {
    "US": "Inc.", "GB": "Ltd", "DE": "GmbH", "AT": "GmbH", "CH": "AG", "FR": "SAS",
    "ES": "S.L.", "IT": "S.p.A.", "NL": "B.V.", "BE": "NV", "JP": "K.K.",
    "AU": "Pty Ltd", "IN": "Pvt Ltd", "BR": "Ltda.", "SE": "AB", "NO": "AS",
    "DK": "A/S", "FI": "Oy", "PL": "sp. z o.o.", "MX": "S.A. de C.V.",
    "CA": "Inc.", "PR": "LLC", "IE": "DAC",
}


# --------------------------------------------------------------------------
# Numbering plans: phonenumbers regexes compiled into digit automata.
# --------------------------------------------------------------------------

_EMPTY: frozenset = frozenset()


def _parse_regex(rx: str):
    """Parse the regex subset used by phonenumbers' national-number patterns.

    Grammar: digits, ``\\d``, ``[...]`` classes with ranges, ``(?:...)`` and
    ``(...)`` groups, ``|``, and the quantifiers ``?``, ``*``, ``+``,
    ``{n}``, ``{m,n}``, ``{m,}``. Returns a tree of tuples:
    ``("set", mask)``, ``("seq", items)``, ``("alt", branches)``,
    ``("rep", node, lo, hi)`` with ``hi`` None for unbounded.
    """
    pos = 0

    def fail(what):
        raise ValueError(f"unsupported number pattern {rx!r} at {pos}: {what}")

    def alternation():
        nonlocal pos
        branches = [sequence()]
        while pos < len(rx) and rx[pos] == "|":
            pos += 1
            branches.append(sequence())
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def sequence():
        items = []
        while pos < len(rx) and rx[pos] not in "|)":
            items.append(quantified(atom()))
        return ("seq", items)

    def atom():
        nonlocal pos
        c = rx[pos]
        if c == "(":
            pos += 3 if rx.startswith("(?:", pos) else 1
            inner = alternation()
            if pos >= len(rx) or rx[pos] != ")":
                fail("unclosed group")
            pos += 1
            return inner
        if c == "[":
            end = rx.index("]", pos)
            body, pos = rx[pos + 1:end], end + 1
            mask, i = 0, 0
            while i < len(body):
                if body.startswith("\\d", i):
                    mask, i = mask | 0x3FF, i + 2
                elif i + 2 < len(body) and body[i + 1] == "-":
                    for d in range(int(body[i]), int(body[i + 2]) + 1):
                        mask |= 1 << d
                    i += 3
                else:
                    mask, i = mask | (1 << int(body[i])), i + 1
            return ("set", mask)
        if rx.startswith("\\d", pos):
            pos += 2
            return ("set", 0x3FF)
        if c.isdigit():
            pos += 1
            return ("set", 1 << int(c))
        fail(repr(c))

    def quantified(node):
        nonlocal pos
        while pos < len(rx) and rx[pos] in "?*+{":
            c = rx[pos]
            if c == "{":
                end = rx.index("}", pos)
                lo_s, _, hi_s = rx[pos + 1:end].partition(",")
                lo = int(lo_s)
                hi = lo if "," not in rx[pos + 1:end] else (int(hi_s) if hi_s else None)
                pos = end + 1
            else:
                lo, hi = {"?": (0, 1), "*": (0, None), "+": (1, None)}[c]
                pos += 1
            node = ("rep", node, lo, hi)
        return node

    tree = alternation()
    if pos != len(rx):
        fail("trailing text")
    return tree


class _Pattern:
    """A national-number regex as a digit automaton (Thompson NFA, lazy DFA).

    A state set is a frozenset of NFA states; every NFA state can reach the
    accepting state, so a non-empty state set after some digits means those
    digits begin at least one number of the pattern.
    """

    _ACCEPT = 0

    def __init__(self, regex: str):
        self.regex = regex
        self._mask = [0]  # digit mask per state; 0 = epsilon or accept
        self._next = [-1]
        self._eps: list[tuple[int, ...]] = [()]
        start = self._build(_parse_regex(regex), self._ACCEPT)
        self._closure_memo: dict[int, frozenset] = {}
        self.start = self._closure(start)
        self._step_memo: dict[tuple[frozenset, int], frozenset] = {}
        self._prefix_memo: dict[str, frozenset] = {"": self.start}

    def _new(self, mask=0, nxt=-1, eps=()) -> int:
        self._mask.append(mask)
        self._next.append(nxt)
        self._eps.append(tuple(eps))
        return len(self._mask) - 1

    def _build(self, node, cont: int) -> int:
        kind = node[0]
        if kind == "set":
            return self._new(node[1], cont)
        if kind == "seq":
            for item in reversed(node[1]):
                cont = self._build(item, cont)
            return cont
        if kind == "alt":
            return self._new(eps=[self._build(b, cont) for b in node[1]])
        _, body, lo, hi = node
        if hi is None:
            loop = self._new()
            self._eps[loop] = (self._build(body, loop), cont)
            cur = loop
        else:
            cur = cont
            for _ in range(hi - lo):
                cur = self._new(eps=(self._build(body, cur), cont))
        for _ in range(lo):
            cur = self._build(body, cur)
        return cur

    def _closure(self, state: int) -> frozenset:
        memo = self._closure_memo.get(state)
        if memo is not None:
            return memo
        seen, stack, out = {state}, [state], set()
        while stack:
            s = stack.pop()
            if self._mask[s] or s == self._ACCEPT:
                out.add(s)
            for t in self._eps[s]:
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        result = self._closure_memo[state] = frozenset(out)
        return result

    def step(self, states: frozenset, digit: int) -> frozenset:
        """States after reading one more digit (empty: no number continues so)."""
        key = (states, digit)
        out = self._step_memo.get(key)
        if out is None:
            acc: set = set()
            bit = 1 << digit
            for s in states:
                if self._mask[s] & bit:
                    acc |= self._closure(self._next[s])
            out = self._step_memo[key] = frozenset(acc) if acc else _EMPTY
        return out

    def states(self, digits: str) -> frozenset:
        """States after ``digits``; empty if no number of the pattern starts so."""
        out = self._prefix_memo.get(digits)
        if out is None:
            parent = self.states(digits[:-1])
            out = self.step(parent, ord(digits[-1]) - 48) if parent else _EMPTY
            self._prefix_memo[digits] = out
        return out

    def viable(self, digits: str) -> bool:
        """True if some number of the pattern starts with ``digits``."""
        return bool(self.states(digits))

    def leads(self, digits: str) -> bool:
        """True if ``digits`` fits this pattern used as *leading digits*.

        Either the digits are still a prefix of a match, or a prefix of the
        digits is a whole match (the number goes on after its leading digits).
        """
        for i in range(len(digits) + 1):
            s = self.states(digits[:i])
            if not s:
                return False
            if self._ACCEPT in s:
                return True
        return True


@dataclass
class _Region:
    """Numbering-plan facts of one region (ISO country) under one calling code."""

    code: str  # ISO 3166-1 alpha-2, or AC / TA / XK
    cc: str
    main: bool
    name: str
    patterns: list  # _Pattern per emitted class (None = class absent)
    others: list  # _Pattern of the remaining number types (decide uniqueness only)
    leading: _Pattern | None
    number_len: list  # typical national number length per class
    frontier: list = field(default_factory=list)  # per class: shortest unique prefixes
    country: list = field(default_factory=list)  # national prefixes of the country-level rows
    geo_keys: list = field(default_factory=list)  # (national prefix, place name)

    def unique(self, klass: int, national: str, ignore: int = -1) -> bool:
        """True if ``national`` starts numbers of class ``klass`` only
        (numbers of class ``ignore`` allowed too)."""
        if self.leading is not None and not self.leading.leads(national):
            return False
        if not self.patterns[klass].viable(national):
            return False
        for k, p in enumerate(self.patterns):
            if k != klass and k != ignore and p is not None and p.viable(national):
                return False
        return not any(p.viable(national) for p in self.others)


def _country_name(code: str) -> str:
    import pycountry

    if code in _NAMES_MISSING_FROM_ISO:
        return _NAMES_MISSING_FROM_ISO[code]
    c = pycountry.countries.get(alpha_2=code)
    return getattr(c, "common_name", None) or c.name


def _typical_length(desc, general) -> int:
    lengths = sorted((desc.possible_length if desc and desc.possible_length else None)
                     or (general.possible_length if general and general.possible_length else None)
                     or (10,))
    lengths = [n for n in lengths if n > 0] or [10]
    return lengths[len(lengths) // 2]


def _frontier(region: _Region, max_depth: int, max_level: int = 4000) -> list:
    """Shortest national prefixes that belong to exactly one class, per class.

    Breadth-first over digit strings, following every number type at once;
    a string alive for one emitted class only is a frontier node of that
    class, one alive for several types is expanded further.
    """
    pats = [p for p in region.patterns if p is not None] + list(region.others)
    owner = [k for k, p in enumerate(region.patterns) if p is not None]
    owner += [-1] * len(region.others)
    out: list[list[str]] = [[] for _ in _CLASSES]
    level = [("", tuple(p.start for p in pats))]
    for _depth in range(max_depth):
        nxt = []
        for prefix, states in level:
            for d in range(10):
                child = prefix + chr(48 + d)
                if region.leading is not None and not region.leading.leads(child):
                    continue
                ns = tuple(p.step(s, d) if s else _EMPTY for p, s in zip(pats, states))
                alive = [i for i, s in enumerate(ns) if s]
                if not alive:
                    continue
                if len(alive) == 1:
                    if owner[alive[0]] >= 0:
                        out[owner[alive[0]]].append(child)
                    continue
                nxt.append((child, ns))
        level = nxt
        if not level or len(level) > max_level:
            break
    return out


@lru_cache(maxsize=1)
def _geodata_by_cc() -> dict:
    """Geocoding prefixes of phonenumbers grouped by calling code.

    At most 3000 per code, shortest first and evenly spread over the rest,
    so that big plans (China, Australia) stay cheap to classify.
    """
    import phonenumbers
    from phonenumbers.geodata import GEOCODE_DATA

    keys = sorted(GEOCODE_DATA)
    out = {}
    for cc in map(str, phonenumbers.COUNTRY_CODE_TO_REGION_CODE):
        # Calling codes are prefix-free: the keys of a code are one sorted run.
        lo = bisect.bisect_left(keys, cc)
        hi = bisect.bisect_left(keys, cc + ":")
        run = sorted((k for k in keys[lo:hi] if len(cc) < len(k) <= 10), key=len)
        keep, room, i = [], 3000, 0
        while i < len(run) and room > 0:
            j = i
            while j < len(run) and len(run[j]) == len(run[i]):
                j += 1
            same = run[i:j]
            if len(same) > room:
                same = same[:: math.ceil(len(same) / room)][:room]
            keep += same
            room -= len(same)
            i = j
        names = (GEOCODE_DATA[k] for k in keep)
        out[cc] = [(k[len(cc):], n.get("en", "")) for k, n in zip(keep, names)]
    return out


@lru_cache(maxsize=1)
def _numbering_plan() -> tuple:
    """All geographic regions of phonenumbers with their number patterns.

    Seed-independent and cached: regions ordered by calling code, the code's
    main region first. Returns ``(regions, non_geographic_codes)``.
    """
    import phonenumbers
    from phonenumbers import PhoneMetadata

    regions: list[_Region] = []
    non_geo: list[str] = []
    geodata = _geodata_by_cc()
    for cc_int in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE):
        cc = str(cc_int)
        codes = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[cc_int]
        codes = [c for c in codes if c != "001" and _is_country(c)]
        if not codes:
            non_geo.append(cc)
            continue
        main_md = PhoneMetadata.metadata_for_region(codes[0])
        group: list[_Region] = []
        for i, code in enumerate(codes):
            md = PhoneMetadata.metadata_for_region(code)
            descs = [getattr(md, a) for a in _CLASS_ATTRS]
            rxs = [d.national_number_pattern if d is not None else None for d in descs]
            if rxs[_MOB] == rxs[_GEO]:  # NANP: fixed and mobile look the same
                rxs[_MOB] = None
            if i > 0:  # a region sharing its code leaves the shared ranges to the main region
                for k in range(1, len(rxs)):
                    main_desc = getattr(main_md, _CLASS_ATTRS[k])
                    if main_desc is not None and rxs[k] == main_desc.national_number_pattern:
                        rxs[k] = None
            others = [getattr(md, a).national_number_pattern for a in _OTHER_ATTRS
                      if getattr(md, a) is not None and getattr(md, a).national_number_pattern]
            others = [rx for rx in others if rx not in rxs]
            if rxs[_GEO] is None:
                rxs[_GEO] = md.general_desc.national_number_pattern
            group.append(_Region(
                code=code, cc=cc, main=i == 0, name=_country_name(code),
                patterns=[_Pattern(rx) if rx else None for rx in rxs],
                others=[_Pattern(rx) for rx in others],
                leading=_Pattern(md.leading_digits) if md.leading_digits else None,
                number_len=[_typical_length(d, md.general_desc) for d in descs],
            ))
        # Regions sharing a code must not claim each other's ranges: each
        # sees the others' numbers as one extra pattern (a region with
        # leading digits owns everything that starts with them).
        own_rxs = [[f"(?:{r.leading.regex})\\d*"] if r.leading is not None and not r.main
                   else [p.regex for p in (*r.patterns, *r.others) if p] for r in group]
        for i, r in enumerate(group):
            sibling_rxs = [rx for j, rxs in enumerate(own_rxs) if j != i for rx in rxs]
            if sibling_rxs:
                r.others.append(_Pattern("|".join(f"(?:{rx})" for rx in dict.fromkeys(sibling_rxs))))
            r.frontier = _frontier(r, max_depth=min(5, 10 - len(cc)))
            r.country = [""] if r.main else _matches(r.leading) if r.leading is not None else []
        # Geocoded prefixes go to the region whose fixed-line pattern owns
        # them; regions sharing the code are asked before the main one. Where
        # fixed and mobile numbers share ranges (Mexico, ...) the place wins.
        order = group[1:] + group[:1]
        for national, name in geodata.get(cc, ()):
            for r in order:
                if r.unique(_GEO, national, ignore=_MOB):
                    r.geo_keys.append((national, name))
                    break
        regions += group
    return regions, non_geo


def _matches(pattern: _Pattern, max_len: int = 6) -> list:
    """The shortest strings matching a leading-digits pattern (``787|939``)."""
    out, level = [], [("", pattern.start)]
    for _ in range(max_len):
        nxt = []
        for prefix, states in level:
            for d in range(10):
                s = pattern.step(states, d)
                if pattern._ACCEPT in s:
                    out.append(prefix + chr(48 + d))
                elif s:
                    nxt.append((prefix + chr(48 + d), s))
        level = nxt
    return out


def _is_country(code: str) -> bool:
    import pycountry

    return code in _NAMES_MISSING_FROM_ISO or pycountry.countries.get(alpha_2=code) is not None


# --------------------------------------------------------------------------
# Breakouts: the seeded choice of prefixes (shared by every deck of a seed).
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Breakouts:
    """Outbound prefixes of one seed, one row per distinct prefix.

    ``regions`` is the numbering plan; ``region``/``klass`` index it and
    :data:`_CLASSES`; ``number_len`` is the E.164 length of generated numbers.
    """

    regions: tuple
    prefix: tuple  # str
    region: np.ndarray  # int32
    klass: np.ndarray  # int8
    destination: tuple  # str
    number_len: np.ndarray  # int8
    non_geographic: tuple  # calling codes without a country (numbers that rate nowhere)


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=stream))


def _seed_int(seed) -> int:
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63))
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return int(seed)
    raise ValueError(f"seed must be a non-negative int or a numpy Generator, not {seed!r}")


@lru_cache(maxsize=4)
def _breakouts(seed: int, prefixes_per_service: int) -> _Breakouts:
    """Choose about ``prefixes_per_service`` nested outbound prefixes.

    Every region gets its country-level row (the calling code itself, for the
    main region of a code) and one row per number class it has; the rest of
    the budget is spread by market weight and filled with geocoded places
    and random nested sub-prefixes of the class frontiers.
    """
    regions, non_geo = _numbering_plan()
    rnd = random.Random(int(_rng(seed, 0).integers(0, 2**63)))
    taken: dict[str, tuple[int, int, str]] = {}  # prefix -> (region, class, name)
    chosen: list[list[list[str]]] = [[[] for _ in _CLASSES] for _ in regions]

    def add(ri: int, k: int, national: str, label: str) -> bool:
        r = regions[ri]
        prefix = r.cc + national
        if prefix in taken or len(prefix) > 10:
            return False
        taken[prefix] = (ri, k, label)
        if national:
            chosen[ri][k].append(national)
        return True

    def grow(ri: int, k: int, want: int) -> int:
        """Add up to ``want`` random one-digit-longer children of chosen prefixes."""
        r, pool, added = regions[ri], chosen[ri][k], 0
        label = f"{r.name} - {_CLASS_LABEL[k]}"
        tries = 4 * want + 20
        while added < want and tries > 0 and pool:
            tries -= 1
            parent = pool[rnd.randrange(len(pool))]
            child = parent + chr(48 + rnd.randrange(10))
            if len(r.cc) + len(child) > 10 or r.cc + child in taken:
                continue
            if r.patterns[k].viable(child) and (r.leading is None or r.leading.leads(child)):
                if add(ri, k, child, label if k != _GEO else taken[r.cc + parent][2]):
                    added += 1
        return added

    # Mandatory rows: the calling code (for a region sharing it, its leading
    # digits), and one prefix per class per region.
    for ri, r in enumerate(regions):
        for national in r.country:
            add(ri, _GEO, national, r.name)
    shares = np.array([0.50, 0.35, 0.05, 0.04, 0.06])
    weights = np.array([
        (1.0 + math.log1p(len(r.geo_keys) + sum(map(len, r.frontier))))
        * (_MARKETS.get(r.code, _TAIL_WEIGHT * 5) ** 0.5)
        for r in regions
    ])
    budget = max(prefixes_per_service - len(taken), 0)
    per_region = np.floor(budget * weights / weights.sum()).astype(int)
    for ri, r in enumerate(regions):
        present = [k for k in range(len(_CLASSES)) if r.patterns[k] is not None]
        share = shares[present] / shares[present].sum()
        for k, s in zip(present, share):
            want = max(1, int(round(per_region[ri] * s)))
            if k == _GEO and r.geo_keys:
                keyed = sorted(r.geo_keys, key=lambda kv: len(kv[0]) + 2.5 * rnd.random())
                for national, place in keyed[:want]:
                    add(ri, k, national, f"{r.name} - {place}" if place else f"{r.name} - Fixed")
            front = list(r.frontier[k])
            rnd.shuffle(front)
            room = want - len(chosen[ri][k])
            for national in front[:max(room, 0 if chosen[ri][k] else 1)]:
                add(ri, k, national, f"{r.name} - {_CLASS_LABEL[k]}")
            grow(ri, k, want - len(chosen[ri][k]))
    # Top up to the requested size with nested geographic and mobile prefixes.
    for _ in range(6):
        short = prefixes_per_service - len(taken)
        if short <= 0:
            break
        top = np.floor(short * weights / weights.sum()).astype(int) + 1
        for ri in np.argsort(-weights, kind="stable"):
            if len(taken) >= prefixes_per_service:
                break
            for k in (_GEO, _MOB):
                if regions[ri].patterns[k] is not None:
                    grow(int(ri), k, int(top[ri]) // 2 + 1)

    prefixes = sorted(taken)
    rows = [taken[p] for p in prefixes]
    region = np.fromiter((r[0] for r in rows), np.int32, len(rows))
    klass = np.fromiter((r[1] for r in rows), np.int8, len(rows))
    plen = np.fromiter(map(len, prefixes), np.int64, len(prefixes))
    cc_len = np.array([len(r.cc) for r in regions])[region]
    national_len = np.array([r.number_len for r in regions])[region, klass]
    number_len = np.clip(np.maximum(cc_len + national_len, plen + 2), 3, 15).astype(np.int8)
    return _Breakouts(
        regions=tuple(regions), prefix=tuple(prefixes), region=region, klass=klass,
        destination=tuple(r[2] for r in rows), number_len=number_len,
        non_geographic=tuple(non_geo),
    )


# --------------------------------------------------------------------------
# Decks
# --------------------------------------------------------------------------


def _round_rate(micro: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Round rates to 0.0001, except ~3% left at full micro-unit precision."""
    rounded = np.maximum((micro + 50) // 100 * 100, 100)
    return np.where(rng.random(len(micro)) < 0.03, np.maximum(micro, 1), rounded)


def _scale(micro: np.ndarray, rng: np.random.Generator, lo_pct: int, hi_pct: int) -> np.ndarray:
    return micro * rng.integers(lo_pct, hi_pct + 1, len(micro)) // 100


@lru_cache(maxsize=4)
def _deck_rows(seed: int, prefixes_per_service: int, start_us: int, days: int) -> dict:
    """Currency-independent deck rows: prices in USD micro-units, versions.

    Returns a dict of equal-length numpy arrays / tuples, one entry per row,
    already sorted by (service, prefix, effective_from).
    """
    b = _breakouts(seed, prefixes_per_service)
    regions = b.regions
    rng = _rng(seed, 1)
    nreg = len(regions)
    codes = [r.code for r in regions]
    # Per-region tariff: base fixed-line price, increments, fees.
    base = np.where(
        np.isin(codes, list(_CHEAPEST)), rng.integers(5_000, 12_001, nreg),
        np.where(np.isin(codes, list(_ZONE_A)), rng.integers(10_000, 40_001, nreg),
                 rng.integers(30_000, 150_001, nreg)))
    incr_choice = rng.choice(4, nreg, p=[0.72, 0.10, 0.10, 0.08])
    incr = np.array([(60, 60), (1, 1), (30, 6), (6, 6)])[incr_choice]
    has_connect = rng.random(nreg) < 0.12
    connect = rng.integers(1, 6, nreg) * 10_000
    has_min = rng.random(nreg) < 0.06
    min_charge = rng.integers(1, 4, nreg) * 10_000

    n = len(b.prefix)
    reg, kls = b.region, b.klass
    factor_lo = np.array([85, 150, 100, 100, 200])[kls]
    factor_hi = np.array([125, 350, 200, 100, 350])[kls]
    rate = base[reg] * rng.integers(factor_lo, factor_hi + 1) // 100
    is_cc = np.fromiter((len(p) == len(regions[r].cc) for p, r in zip(b.prefix, reg)), bool, n)
    rate = np.where(is_cc, base[reg], rate)
    rate = np.minimum(np.maximum(rate, 5_000), 500_000)
    premium = kls == _PREM
    rate = np.where(premium, rng.integers(60, 251, n) * 10_000, rate)
    rate = _round_rate(rate, rng)
    connect_fee = np.where(has_connect[reg] & np.isin(kls, (_MOB, _PREM, _SHARED)), connect[reg], 0)
    connect_fee = np.where(premium & (rng.random(n) < 0.5), rng.integers(5, 26, n) * 10_000, connect_fee)
    outbound = {
        "prefix": np.array(b.prefix, dtype=object), "region": reg, "klass": kls,
        "destination": np.array(b.destination, dtype=object), "rate": rate,
        "connect_fee": connect_fee,
        "initial_increment": np.where(premium, 60, incr[reg, 0]),
        "next_increment": np.where(premium, 60, incr[reg, 1]),
        "min_charge": np.where(has_min[reg], min_charge[reg], 0),
        "blocked": premium & (np.array(codes)[reg] == "US"),
    }
    # Conference dial-out lists only the ~15% of prefixes priced differently.
    pick = np.flatnonzero(rng.random(n) < 0.15)
    conference = {k: v[pick] for k, v in outbound.items()}
    conference["rate"] = _round_rate(_scale(conference["rate"], rng, 80, 130), rng)
    # Toll-free origin prices: the calling code of each region (a sharing
    # region's own top prefixes) and the mobile prefixes at their frontier.
    tf_prefix, tf_region, tf_mobile = [], [], []
    seen = set()
    for ri, r in enumerate(regions):
        tops = r.country or list(r.frontier[_GEO][:60])
        for national in tops:
            tf_prefix.append(r.cc + national), tf_region.append(ri), tf_mobile.append(False)
        for national in r.frontier[_MOB][:40] if r.patterns[_MOB] is not None else ():
            tf_prefix.append(r.cc + national), tf_region.append(ri), tf_mobile.append(True)
    keep = [i for i, p in enumerate(tf_prefix) if not (p in seen or seen.add(p))]
    tf_region_a = np.array(tf_region, np.int32)[keep]
    tf_mobile_a = np.array(tf_mobile, bool)[keep]
    m = len(keep)
    tf_codes = np.array(codes)[tf_region_a]
    fixed_price = np.where(
        np.isin(tf_codes, list(_CHEAPEST)), rng.integers(120, 251, m) * 100,
        np.where(np.isin(tf_codes, list(_ZONE_A)), rng.integers(200, 451, m) * 100,
                 rng.integers(600, 2001, m) * 100))
    tollfree = {
        "prefix": np.array(tf_prefix, dtype=object)[keep], "region": tf_region_a,
        "klass": np.full(m, _TF, np.int8),
        "destination": np.array([
            f"{regions[r].name} - Toll-free ({'mobile' if mob else 'fixed'} origin)"
            for r, mob in zip(tf_region_a, tf_mobile_a)], dtype=object),
        "rate": _round_rate(np.where(tf_mobile_a, _scale(fixed_price, rng, 300, 600), fixed_price), rng),
        "connect_fee": np.zeros(m, np.int64),
        "initial_increment": np.full(m, 60), "next_increment": np.full(m, 60),
        "min_charge": np.zeros(m, np.int64), "blocked": np.zeros(m, bool),
    }

    parts = []
    for si, rows in enumerate((outbound, conference, tollfree)):
        parts.append(_add_versions(rows, si, rng, start_us, days))
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.lexsort((out["effective_from"], out["prefix"].astype(str), out["service"]))
    return {k: v[order] for k, v in out.items()}


def _add_versions(rows: dict, service: int, rng: np.random.Generator,
                  start_us: int, days: int) -> dict:
    """Split ~2% of rows into two versions around a price-change instant.

    Most changes fall inside the CDR window (at a midnight, sometimes at a
    whole hour) so both versions get used; the rest fall after it.
    """
    n = len(rows["prefix"])
    epoch = min(_us_of_date(_VERSION_EPOCH), start_us - 366 * _US_PER_DAY)
    changed = np.flatnonzero(rng.random(n) < 0.02)
    k = len(changed)
    window_hours = max(days * 24, 2)
    inside = rng.random(k) < 0.6
    at_midnight = rng.random(k) < 0.75
    hour = rng.integers(1, window_hours, k)
    hour = np.where(at_midnight, np.maximum(hour // 24, 1) * 24 if days >= 2 else hour, hour)
    change = np.where(inside, start_us + hour * 3_600 * _US_PER_S,
                      start_us + (days + rng.integers(1, 121, k)) * _US_PER_DAY)
    change = change - change % (3_600 * _US_PER_S)
    out = {key: np.concatenate([v, v[changed]]) for key, v in rows.items()}
    out["effective_from"] = np.concatenate([np.full(n, epoch), change])
    effective_to = np.full(n + k, -1, np.int64)
    effective_to[changed] = change
    out["effective_to"] = effective_to
    out["rate"][n:] = _round_rate(_scale(rows["rate"][changed], rng, 90, 125), rng)
    out["service"] = np.full(n + k, service, np.int8)
    return out


def generate_deck(seed=1, prefixes_per_service: int = 30_000, currency: str = "USD",
                  deck_id: str | None = None, start: _dt.datetime | None = None,
                  *, days: int = 30) -> pa.Table:
    """Generate a rate deck (SPEC §2) as a table of CSV cells.

    Parameters
    ----------
    seed : int or numpy.random.Generator
        Seed of the prefixes, prices and versions. Decks generated with the
        same integer seed and size share their prefixes, increments, fees and
        version dates whatever the currency; only prices differ. A Generator
        is consumed for one integer seed.
    prefixes_per_service : int
        About how many distinct ``outbound`` prefixes to list (at least one
        per calling code and number class, so never fewer than ~700).
        ``conference_dialout`` lists ~15% of them at other prices and
        ``tollfree_inbound`` one price per origin country and mobile range.
    currency : str
        ISO 4217 code. Prices are drawn in USD and converted at a fixed rate
        for USD, EUR, GBP, CAD, AUD, JPY, CHF (1:1 otherwise), with a small
        per-currency deviation.
    deck_id : str, optional
        The ``deck`` column; default ``retail-<currency in lower case>``.
    start, days : datetime, int
        The CDR window: about 2% of prefixes per service change price at an
        instant inside it (60%) or after it (40%); the first version ends
        (``effective_to``, exclusive) exactly where the second begins. Every
        first version starts on 2020-01-01 (or a year before ``start`` if
        that is earlier).

    Returns
    -------
    pyarrow.Table
        Columns :data:`DECK_COLUMNS`, all strings exactly as written to CSV
        (``effective_to`` null when open), sorted by service, prefix and
        ``effective_from``.
    """
    seed = _seed_int(seed)
    start = _utc(start)
    currency = currency.upper()
    deck_id = deck_id or f"retail-{currency.lower()}"
    rows = _deck_rows(seed, int(prefixes_per_service), _to_us(start), int(days))
    n = len(rows["prefix"])
    fx_rng = _rng(seed, 2, int.from_bytes(currency.encode()[:8], "big"))
    fx = _FX_PPM.get(currency, 1_000_000)
    deviation = 1_000_000 if currency == "USD" else fx_rng.integers(980_000, 1_020_001, n)

    def convert(micro):
        out = micro * fx // 1_000_000 * deviation // 1_000_000
        return np.where(micro > 0, np.maximum(out, 1), 0)

    rate = convert(rows["rate"])
    # Keep the 4-decimal look of converted prices unless the row was precise.
    precise = rows["rate"] % 100 != 0
    rate = np.where(precise, rate, np.maximum((rate + 50) // 100 * 100, 100))
    connect_fee = (convert(rows["connect_fee"]) + 50) // 100 * 100
    min_charge = (convert(rows["min_charge"]) + 50) // 100 * 100
    regions = _breakouts(seed, int(prefixes_per_service)).regions
    codes = np.array([r.code for r in regions], dtype=object)
    cols = {
        "deck": pa.array([deck_id] * n, pa.string()),
        "currency": pa.array([currency] * n, pa.string()),
        "service": pa.array(np.array(_SERVICES, dtype=object)[rows["service"]], pa.string()),
        "prefix": pa.array(rows["prefix"], pa.string()),
        "country": pa.array(codes[rows["region"]], pa.string()),
        "destination": pa.array(rows["destination"], pa.string()),
        "number_class": pa.array(np.array(_CLASSES, dtype=object)[rows["klass"]], pa.string()),
        "rate": _format_money(rate, 4),
        "connect_fee": _format_money(connect_fee, 4),
        "initial_increment": pc.cast(pa.array(rows["initial_increment"], pa.int64()), pa.string()),
        "next_increment": pc.cast(pa.array(rows["next_increment"], pa.int64()), pa.string()),
        "min_charge": _format_money(min_charge, 4),
        "blocked": pa.array(np.where(rows["blocked"], "true", "false").astype(object), pa.string()),
        "effective_from": _format_instants(rows["effective_from"]),
        "effective_to": _format_instants(rows["effective_to"]),
        "rounding": pa.array(["half_up"] * n, pa.string()),
        "decimals": pa.array(["4"] * n, pa.string()),
    }
    return pa.table(cols)


# --------------------------------------------------------------------------
# Formatting (vectorised; every cell is a string, exactly as in the CSV)
# --------------------------------------------------------------------------


def _format_money(micro: np.ndarray, min_decimals: int) -> pa.Array:
    """Decimal strings from non-negative integer micro-units.

    Trailing zeros are dropped down to ``min_decimals`` fractional digits
    (``12340000`` with 2 -> ``12.34``; ``12345`` with 4 -> ``0.012345``).
    """
    micro = np.asarray(micro, np.int64)
    if len(micro) and micro.min() < 0:
        raise ValueError("negative money in generated data")
    whole = pc.cast(pa.array(micro // _MICRO), pa.string())
    frac = micro % _MICRO
    decimals = np.full(len(micro), 6, np.int8)
    for drop in range(1, 7 - min_decimals):
        decimals = np.where(frac % 10**drop == 0, 6 - drop, decimals)
    frac_text = pc.utf8_lpad(pc.cast(pa.array(frac), pa.string()), width=6, padding="0")
    variants = [pc.utf8_slice_codeunits(frac_text, 0, d) for d in range(min_decimals, 7)]
    frac_part = pc.choose(pa.array(decimals - min_decimals, pa.int8()), *variants)
    joined = pc.binary_join_element_wise(whole, frac_part, ".")
    if min_decimals == 0:
        joined = pc.if_else(pa.array(decimals == 0), whole, joined)
    return joined


def _format_instants(us: np.ndarray) -> pa.Array:
    """ISO 8601 cells from UTC microseconds: a bare date at midnight, else
    ``YYYY-MM-DDTHH:MM:SSZ`` (whole seconds); -1 gives an empty cell."""
    us = np.asarray(us, np.int64)
    missing = us < 0
    seconds = pa.array(np.where(missing, 0, us) // _US_PER_S, pa.timestamp("s", tz="UTC"))
    full = pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%SZ")
    date = pc.strftime(seconds, format="%Y-%m-%d")
    out = pc.if_else(pa.array(us % _US_PER_DAY == 0), date, full)
    return pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), out)


def _write_csv(table: pa.Table, path: Path) -> None:
    """Write an all-string table as RFC 4180 CSV with a header, ``\\n`` line
    ends, quoting only the cells that need it, nulls as empty cells."""
    cols = []
    for name in table.column_names:
        col = pc.fill_null(table.column(name).combine_chunks(), "")
        needs = pc.match_substring_regex(col, '[,"\r\n]')
        quoted = pc.binary_join_element_wise('"', pc.replace_substring(col, '"', '""'), '"', "")
        cols.append(pc.if_else(needs, quoted, col))
    header = ",".join(table.column_names) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(header.encode())
        if table.num_rows:
            lines = pc.binary_join_element_wise(*cols, ",")
            body = pc.binary_join_element_wise(lines, "", "\n")
            body = body.cast(pa.large_string())
            offsets = np.frombuffer(body.buffers()[1], np.int64)[body.offset:body.offset + len(body) + 1]
            f.write(memoryview(body.buffers()[2])[offsets[0]:offsets[-1]])


def _utc(start: _dt.datetime | None) -> _dt.datetime:
    if start is None:
        return DEFAULT_START
    if start.tzinfo is None:
        return start.replace(tzinfo=_dt.timezone.utc)
    return start.astimezone(_dt.timezone.utc)


def _to_us(t: _dt.datetime) -> int:
    delta = t - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * _US_PER_S + delta.microseconds


def _us_of_date(iso_date: str) -> int:
    return int(np.datetime64(iso_date, "us").astype(np.int64))


def _from_us(us: int) -> _dt.datetime:
    return _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(microseconds=int(us))


def _add_months(t: _dt.datetime, months: int) -> _dt.datetime:
    import calendar

    y, m = divmod(t.month - 1 + months, 12)
    year, month = t.year + y, m + 1
    return t.replace(year=year, month=month, day=min(t.day, calendar.monthrange(year, month)[1]))


# --------------------------------------------------------------------------
# Tenants, licenses, funds, card updates
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Groups:
    """Outbound prefixes grouped by (region, class), for vectorised sampling."""

    start: np.ndarray  # per group: first row
    count: np.ndarray
    redirect: np.ndarray  # group -> a non-empty group (same class, else geographic)
    prefix_int: np.ndarray  # per row
    prefix_len: np.ndarray
    number_len: np.ndarray  # E.164 length of numbers under the prefix
    cc_len: np.ndarray  # length of the calling code
    region_cc_len: np.ndarray  # per region

    def has(self, region: np.ndarray, klass: int) -> np.ndarray:
        return self.count[np.asarray(region, np.int64) * len(_CLASSES) + klass] > 0


@dataclass(frozen=True)
class _Population:
    """Arrays the CDR generator draws from (one entry per tenant / account)."""

    breakouts: _Breakouts
    groups: _Groups
    dest_weights: np.ndarray  # per region, for international calls
    tenant_ids: pa.Array
    tenant_region: np.ndarray
    tenant_weight: np.ndarray  # probability of a CDR belonging to the tenant
    tenant_tz_us: np.ndarray
    tenant_service: np.ndarray  # number of the tenant's auto attendant / conference bridge
    tenant_tollfree: np.ndarray
    tenant_emergency: np.ndarray  # index into emergency_numbers
    emergency_numbers: pa.Array
    user_start: np.ndarray  # per tenant: first account index of its users
    user_count: np.ndarray
    ra_start: np.ndarray  # per tenant: first account index of its resource accounts
    ra_count: np.ndarray
    account_upn: pa.Array
    account_number: np.ndarray
    account_region: np.ndarray  # usage location
    no_match_codes: np.ndarray  # leading digits of numbers that match no prefix


@dataclass
class SampleConfig:
    """A generated config directory, in memory (SPEC §7).

    Every table holds strings exactly as written to CSV (null = empty cell).

    Attributes
    ----------
    decks : dict of str to pyarrow.Table
        ``retail-usd`` and ``retail-eur``, columns :data:`DECK_COLUMNS`.
    tenants, licenses, funds, card_updates : pyarrow.Table
        Columns :data:`TENANT_COLUMNS`, :data:`LICENSE_COLUMNS`,
        :data:`FUND_COLUMNS`, :data:`CARD_UPDATE_COLUMNS`.
    seed, start, days, cdrs :
        The arguments the sample was generated with; ``start`` is UTC.
    """

    decks: dict
    tenants: pa.Table
    licenses: pa.Table
    funds: pa.Table
    card_updates: pa.Table
    seed: int
    start: _dt.datetime
    days: int
    cdrs: int
    _population: _Population = field(repr=False)

    def write(self, config_dir) -> Path:
        """Write the config directory: ``decks/<deck>.csv`` and the CSV files."""
        config_dir = Path(config_dir)
        for deck_id, table in self.decks.items():
            _write_csv(table, config_dir / "decks" / f"{deck_id}.csv")
        _write_csv(self.tenants, config_dir / "tenants.csv")
        _write_csv(self.licenses, config_dir / "licenses.csv")
        _write_csv(self.funds, config_dir / "funds.csv")
        _write_csv(self.card_updates, config_dir / "card_updates.csv")
        return config_dir


def _group_tables(b: _Breakouts) -> _Groups:
    """Group the outbound rows by (region, class)."""
    nreg, ncls = len(b.regions), len(_CLASSES)
    group = b.region.astype(np.int64) * ncls + b.klass
    order = np.argsort(group, kind="stable")
    counts = np.bincount(group, minlength=nreg * ncls)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    # An empty group falls back to the region's geographic rows, and a
    # region without any to its calling code's main region.
    main_of = np.zeros(nreg, np.int64)
    for ri, r in enumerate(b.regions):
        main_of[ri] = ri if r.main else main_of[ri - 1]
    gid = np.arange(nreg * ncls)
    geo = gid // ncls * ncls + _GEO
    geo = np.where(counts[geo] > 0, geo, main_of[gid // ncls] * ncls + _GEO)
    redirect = np.where(counts > 0, gid, geo)
    prefixes = np.array(b.prefix, dtype=object)[order]
    prefix_int = np.array([int(p) for p in prefixes], np.int64)
    prefix_len = np.fromiter(map(len, prefixes), np.int64, len(prefixes))
    cc_len = np.array([len(r.cc) for r in b.regions])[b.region[order]]
    return _Groups(start=starts, count=counts, redirect=redirect, prefix_int=prefix_int,
                   prefix_len=prefix_len, number_len=b.number_len[order].astype(np.int64),
                   cc_len=cc_len, region_cc_len=np.array([len(r.cc) for r in b.regions]))


def _sample_numbers(groups: _Groups, rng: np.random.Generator, region: np.ndarray,
                    klass) -> tuple[np.ndarray, np.ndarray]:
    """E.164 numbers (as int64) under random outbound prefixes of the given
    regions and classes; also returns the calling-code length of each."""
    region = np.asarray(region, np.int64)
    g = groups.redirect[region * len(_CLASSES) + np.asarray(klass, np.int64)]
    row = groups.start[g] + (rng.random(len(g)) * groups.count[g]).astype(np.int64)
    scale = _POW10[groups.number_len[row] - groups.prefix_len[row]]
    return groups.prefix_int[row] * scale + rng.integers(0, scale), groups.cc_len[row]


_POW10 = 10 ** np.arange(19, dtype=np.int64)


@lru_cache(maxsize=1024)
def _tz_offset_us(code: str, at: _dt.datetime) -> int:
    """UTC offset of a region's (first) time zone, from phonenumbers + zoneinfo."""
    try:
        import phonenumbers
        import zoneinfo
        from phonenumbers import timezone as pn_tz

        example = (phonenumbers.example_number_for_type(code, phonenumbers.PhoneNumberType.FIXED_LINE)
                   or phonenumbers.example_number(code))
        zones = pn_tz.time_zones_for_number(example) if example is not None else ()
        if not zones or zones[0] == pn_tz.UNKNOWN_TIMEZONE:
            return 0
        offset = at.astimezone(zoneinfo.ZoneInfo(zones[0])).utcoffset()
        return int(offset.total_seconds()) * _US_PER_S
    except Exception:  # no tz database: business hours in UTC
        return 0


def _zipf_sizes(rng: np.random.Generator, n: int, total: int, exponent: float = 1.1) -> np.ndarray:
    """``n`` heavy-tailed sizes (Zipf by rank, shuffled) summing to about ``total``."""
    w = 1.0 / np.arange(1, n + 1) ** exponent
    rng.shuffle(w)
    return np.maximum(1, np.round(total * w / w.sum())).astype(np.int64)


def _str_concat(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def generate_config(*, tenants: int = 50, cdrs: int = 100_000, days: int = 30, seed=1,
                    start: _dt.datetime | None = None,
                    prefixes_per_service: int = 30_000) -> SampleConfig:
    """Generate decks, tenants, licenses, funds and card updates in memory.

    Parameters
    ----------
    tenants : int
        Number of tenants (``tenant1`` ... ``tenantN``), based in many
        countries, weighted towards the big markets.
    cdrs : int
        Planned CDR count; sizes the user base (about one licensed user per
        150 CDRs, at least three per tenant), Zipf-distributed over tenants.
    days : int
        Length of the CDR window; some licenses, fundings, card updates and
        price changes fall inside it.
    seed : int or numpy.random.Generator
        Same seed, same output.
    start : datetime, optional
        First instant of the window (naive = UTC); default
        :data:`DEFAULT_START`.
    prefixes_per_service : int
        Deck size, see :func:`generate_deck`.

    Returns
    -------
    SampleConfig
    """
    if tenants < 1 or cdrs < 0 or days < 1:
        raise ValueError("need tenants >= 1, cdrs >= 0 and days >= 1")
    seed = _seed_int(seed)
    start = _utc(start)
    start_us = _to_us(start)
    window_us = days * _US_PER_DAY
    b = _breakouts(seed, int(prefixes_per_service))
    regions = b.regions
    codes = np.array([r.code for r in regions], dtype=object)
    decks = {d: generate_deck(seed, prefixes_per_service, cur, d, start, days=days) for d, cur in _DECKS}
    rng = _rng(seed, 3)
    groups = _group_tables(b)
    has_geo = groups.has(np.arange(len(regions)), _GEO)
    weights = np.array([_MARKETS.get(c, _TAIL_WEIGHT) for c in codes]) * has_geo

    # Tenants ----------------------------------------------------------
    t_region = rng.choice(len(regions), tenants, p=weights / weights.sum())
    t_code = codes[t_region]
    n_users_total = int(np.clip(cdrs // 150, 3 * tenants, 2_000_000))
    n_users = np.maximum(_zipf_sizes(rng, tenants, n_users_total), 2)
    n_ras = 1 + (n_users >= 25) + (n_users >= 250) + (n_users >= 2500)
    credits = rng.random(tenants) < 0.9
    auto = credits & (rng.random(tenants) < 0.4)
    trigger = rng.choice([25, 50, 100, 250], tenants) * (1 + n_users // 200)
    recharge = trigger * rng.choice([2, 4, 10], tenants)
    card_state = rng.choice(3, tenants, p=[0.8, 0.1, 0.1])  # valid, expired, expires this month
    card_month = np.where(card_state == 0, rng.integers(3, 49, tenants),
                          np.where(card_state == 1, -rng.integers(1, 13, tenants), 0))
    has_card = auto | (rng.random(tenants) < 0.3)
    tenant_ids = [f"tenant{i + 1}" for i in range(tenants)]
    names = []
    for i in range(tenants):
        legal = _LEGAL.get(t_code[i], "Ltd")
        company = f"{_COMPANIES[rng.integers(len(_COMPANIES))]} {_SECTORS[rng.integers(len(_SECTORS))]}"
        comma = legal == "Inc." and rng.random() < 0.5  # "Contoso Bank, Inc." (a quoted CSV cell)
        names.append(f"{company}, {legal}" if comma else f"{company} {legal}")
    euro = np.isin(t_code, list(_EURO))

    def money_or_empty(units, mask):
        text = _format_money(np.asarray(units, np.int64) * _MICRO, 2)
        return pc.if_else(pa.array(mask), text, pa.scalar(None, pa.string()))

    def card(months):
        return _add_months(start, int(months)).strftime("%Y-%m")

    tenants_t = pa.table({
        "tenant_id": pa.array(tenant_ids, pa.string()),
        "name": pa.array(names, pa.string()),
        "country": pa.array(t_code, pa.string()),
        "currency": pa.array(np.where(euro, "EUR", "USD").astype(object), pa.string()),
        "deck": pa.array(np.where(euro, "retail-eur", "retail-usd").astype(object), pa.string()),
        "credits_enabled": pa.array(np.where(credits, "true", "false").astype(object), pa.string()),
        "auto_recharge": pa.array(np.where(auto, "true", "false").astype(object), pa.string()),
        "trigger_amount": money_or_empty(trigger, auto),
        "recharge_amount": money_or_empty(recharge, auto),
        "card_expires": pa.array([card(m) if c else None for m, c in zip(card_month, has_card)], pa.string()),
    })

    # Accounts: each tenant's users, then its resource accounts ---------
    per_tenant = n_users + n_ras
    acct_start = np.concatenate([[0], np.cumsum(per_tenant)[:-1]])
    n_acct = int(per_tenant.sum())
    acct_tenant = np.repeat(np.arange(tenants), per_tenant)
    local = np.arange(n_acct) - acct_start[acct_tenant]
    is_ra = local >= n_users[acct_tenant]
    local_no = np.where(is_ra, local - n_users[acct_tenant], local) + 1
    tenant_arr = pa.array(tenant_ids, pa.string())
    acct_upn = _str_concat(
        pa.array(np.where(is_ra, "ra", "user").astype(object), pa.string()),
        pc.cast(pa.array(local_no), pa.string()),
        pa.scalar("@"), pc.take(tenant_arr, pa.array(acct_tenant)), pa.scalar(".example.com"))
    # Usage location: mostly the tenant's country, some users abroad
    # (US tenants' travellers mostly in PR and CA).
    abroad = (~is_ra) & (rng.random(n_acct) < 0.07)
    abroad_region = rng.choice(len(regions), n_acct, p=weights / weights.sum())
    near = {c: i for i, c in enumerate(codes)}
    us_tenant = t_code[acct_tenant] == "US"
    near_us = np.where(rng.random(n_acct) < 0.5, near.get("PR", 0), near.get("CA", 0))
    abroad_region = np.where(us_tenant & (rng.random(n_acct) < 0.6), near_us, abroad_region)
    acct_region = np.where(abroad, abroad_region, t_region[acct_tenant])

    # Phone numbers: each user's DID, each tenant's service and toll-free
    # number (a US toll-free number where the country has no toll-free range).
    acct_number, _ = _sample_numbers(groups, rng, acct_region, _GEO)
    tenant_service, _ = _sample_numbers(groups, rng, t_region, _GEO)
    tenant_tollfree, _ = _sample_numbers(groups, rng, t_region, _TF)
    us_tf, _ = _sample_numbers(groups, rng, np.full(tenants, near.get("US", 0)), _TF)
    tenant_tollfree = np.where(groups.has(t_region, _TF), tenant_tollfree, us_tf)

    # Licenses -----------------------------------------------------------
    licenses_t = _licenses(rng, start_us, window_us, tenants, credits, n_users, acct_start,
                           is_ra, acct_tenant, acct_upn, codes[acct_region], tenant_arr)

    # Funds and card updates ----------------------------------------------
    funds_t = _funds(rng, start, days, tenant_ids, credits, n_users)
    updates = []
    for i in np.flatnonzero(has_card & (card_state > 0) & (rng.random(tenants) < 0.7)):
        at = start_us + int(rng.integers(0, window_us // _US_PER_S)) * _US_PER_S
        updates.append((at, tenant_ids[i], card(rng.integers(12, 49))))
    if not updates and tenants:
        i = int(rng.integers(tenants))
        updates.append((start_us + window_us // 2, tenant_ids[i], card(36)))
    updates.sort()
    card_updates_t = pa.table({
        "tenant_id": pa.array([u[1] for u in updates], pa.string()),
        "updated_at": _format_instants(np.array([u[0] for u in updates], np.int64)),
        "card_expires": pa.array([u[2] for u in updates], pa.string()),
    })

    activity = np.exp(rng.normal(0.0, 0.4, tenants))
    tenant_weight = n_users * activity
    emergency_numbers = sorted({"911", "112", *(_EMERGENCY.values())})
    nanp = {r.code for r in regions if r.cc == "1"}
    tenant_emergency = np.array([
        emergency_numbers.index("911" if c in nanp else _EMERGENCY.get(c, "112")) for c in t_code],
        np.int64)
    pop = _Population(
        breakouts=b, groups=groups, dest_weights=weights, tenant_ids=tenant_arr,
        tenant_region=t_region, tenant_weight=tenant_weight / tenant_weight.sum(),
        tenant_tz_us=np.array([_tz_offset_us(c, start) for c in t_code], np.int64),
        tenant_service=tenant_service, tenant_tollfree=tenant_tollfree,
        tenant_emergency=tenant_emergency, emergency_numbers=pa.array(emergency_numbers, pa.string()),
        user_start=acct_start, user_count=n_users, ra_start=acct_start + n_users, ra_count=n_ras,
        account_upn=acct_upn, account_number=acct_number, account_region=acct_region,
        no_match_codes=_no_match_codes(b),
    )
    return SampleConfig(decks=decks, tenants=tenants_t, licenses=licenses_t, funds=funds_t,
                        card_updates=card_updates_t, seed=seed, start=start, days=days,
                        cdrs=int(cdrs), _population=pop)


def _licenses(rng, start_us, window_us, tenants, credits, n_users, acct_start, is_ra,
              acct_tenant, acct_upn, acct_location, tenant_arr) -> pa.Table:
    """License rows: a domestic plan, credits and conferencing per user.

    Each tenant has a main plan; a few users hold another or none. Resource
    accounts hold ``MCOPSTNPP``. About 3% of users are hired and 2% leave
    during the window; 2% switch plan at an instant inside it.
    """
    n_acct = len(acct_tenant)
    plans = np.array([0, 1, 2, 3, 4])  # indexes of MCOPSTN1/2/5/6/8 in _SKUS
    main_plan = rng.choice(plans, tenants, p=[0.6, 0.2, 0.06, 0.06, 0.08])
    tenant_credits = credits[acct_tenant]
    u = rng.random(n_acct)
    plan = np.where(u < 0.8, main_plan[acct_tenant], rng.choice(plans, n_acct))
    has_plan = (~is_ra) & (u < 0.95)
    # Every account holds a license: those without a plan spend credits.
    has_pp = is_ra | ~has_plan | (rng.random(n_acct) < np.where(tenant_credits, 0.75, 0.1))
    has_meet = (~is_ra) & (rng.random(n_acct) < 0.4)
    # Assignment window per account.
    epoch_us = min(_us_of_date("2021-01-01"), start_us - 730 * _US_PER_DAY)
    first_day = rng.integers(0, max((start_us - epoch_us) // _US_PER_DAY - 7, 1), n_acct)
    assigned = epoch_us + first_day * _US_PER_DAY
    inside = start_us + rng.integers(3_600, window_us // _US_PER_S, n_acct) * _US_PER_S
    kind = rng.random(n_acct)
    hired = (~is_ra) & (kind < 0.03)
    left = (~is_ra) & (kind >= 0.03) & (kind < 0.05)
    switch = (~is_ra) & has_plan & (kind >= 0.05) & (kind < 0.07)
    assigned = np.where(hired, inside, assigned)
    until = np.where(left, inside, -1)
    other_plan = (plan + 1 + rng.integers(0, 4, n_acct)) % 5

    acct, sku, frm, to = [], [], [], []

    def rows(mask, sku_codes, f, t):
        idx = np.flatnonzero(mask)
        acct.append(idx)
        sku.append(np.broadcast_to(sku_codes, n_acct)[idx])
        frm.append(np.broadcast_to(f, n_acct)[idx])
        to.append(np.broadcast_to(t, n_acct)[idx])

    rows(has_plan & ~switch, plan, assigned, until)
    rows(switch, plan, assigned, inside)
    rows(switch, other_plan, inside, -1)
    rows(has_pp, 6, assigned, until)
    rows(has_meet, 5, assigned, until)
    acct_i = np.concatenate(acct)
    sku_i = np.concatenate(sku)
    frm_i = np.concatenate(frm)
    to_i = np.concatenate(to)
    order = np.lexsort((frm_i, sku_i, acct_i))
    acct_i, sku_i, frm_i, to_i = acct_i[order], sku_i[order], frm_i[order], to_i[order]
    return pa.table({
        "tenant_id": pc.take(tenant_arr, pa.array(acct_tenant[acct_i])),
        "user_id": pc.take(acct_upn, pa.array(acct_i)),
        "usage_location": pa.array(acct_location[acct_i], pa.string()),
        "sku": pa.array(np.array(_SKUS, dtype=object)[sku_i], pa.string()),
        "assigned_from": _format_instants(frm_i),
        "assigned_to": _format_instants(to_i),
    })


def _funds(rng, start, days, tenant_ids, credits, n_users) -> pa.Table:
    """Fundings of credit-enabled tenants: EA or PO references, amounts sized
    to the tenant; a quarter of the first fundings are 12 months old so they
    expire inside the window, some fundings fall inside it."""
    start_us = _to_us(start)
    year_ago = _to_us(_add_months(start, -12))
    rows = []
    for i in np.flatnonzero(credits):
        for j in range(1 + min(int(rng.poisson(1.2)), 4)):
            r = rng.random()
            if j == 0 and r < 0.25:
                at = year_ago + int(rng.integers(0, days * 24)) * 3_600 * _US_PER_S
            elif r < 0.8:
                at = (year_ago + int(rng.integers(1, 365 - 14)) * _US_PER_DAY
                      + int(rng.integers(0, 24)) * 3_600 * _US_PER_S)
            else:
                at = start_us + int(rng.integers(0, days * 24)) * 3_600 * _US_PER_S
            if rng.random() < 0.3:
                at -= at % _US_PER_DAY
            amount = max(50, int(n_users[i] * rng.integers(5, 41)) // 50 * 50)
            if rng.random() < 0.5:
                ref = f"EA-{int(rng.integers(10**7, 10**8))}"
            else:
                ref = f"PO-{_from_us(at).year}-{int(rng.integers(1, 10**6)):06d}"
            rows.append((tenant_ids[i], at, amount, ref))
    rows.sort(key=lambda r: (r[1], r[0]))
    return pa.table({
        "tenant_id": pa.array([r[0] for r in rows], pa.string()),
        "funded_at": _format_instants(np.array([r[1] for r in rows], np.int64)),
        "amount": _format_money(np.array([r[2] for r in rows], np.int64) * _MICRO, 2),
        "reference": pa.array([r[3] for r in rows], pa.string()),
    })


def _no_match_codes(b: _Breakouts) -> np.ndarray:
    """Three-digit starts that no deck prefix matches: the non-geographic
    codes (+800, +882, ...) and unassigned calling codes (+280, ...)."""
    ccs = {r.cc for r in b.regions}
    free = [str(c) for c in range(100, 1000)
            if not any(str(c)[:n] in ccs for n in (1, 2, 3))]
    return np.array(sorted({int(c) for c in (*b.non_geographic, *free) if len(c) == 3}), np.int64)


# --------------------------------------------------------------------------
# CDRs
# --------------------------------------------------------------------------

# Role of a mix entry: which account pays / owns, which number is rated.
(_OUT, _OUT_RA, _OUT_CONF, _IN, _IN_RA, _IN_CONF, _IN_UNASSIGNED,
 _TF_USER, _TF_RA, _TF_CONF, _EMERG) = range(11)
_CALL_MIX = (
    # call_type, number_type, role, share
    ("user_out", "user", _OUT, 0.400),
    ("user_out_transfer", "user", _OUT, 0.020),
    ("user_out_forwarding", "user", _OUT, 0.030),
    ("user_out_conf", "user", _OUT, 0.010),
    ("ucap_out", "service", _OUT_RA, 0.020),
    ("conf_out", "service", _OUT_CONF, 0.050),
    ("user_in", "user", _IN, 0.220),
    ("conf_in", "service", _IN_CONF, 0.090),
    ("ucap_in", "service", _IN_RA, 0.060),
    ("unassigned_in", "user", _IN_UNASSIGNED, 0.010),
    ("user_in", "tollfree", _TF_USER, 0.010),
    ("conf_in", "tollfree", _TF_CONF, 0.040),
    ("ucap_in", "tollfree", _TF_RA, 0.040),
    ("emergency_out", "user", _EMERG, 0.0005),
)
_MIX_P = np.array([m[3] for m in _CALL_MIX]) / sum(m[3] for m in _CALL_MIX)
_MIX_ROLE = np.array([m[2] for m in _CALL_MIX])
_MIX_TYPE = pa.array([m[0] for m in _CALL_MIX], pa.string())
_MIX_NUMBER_TYPE = pa.array([m[1] for m in _CALL_MIX], pa.string())
_CONF_TYPES = np.array([m[0] in ("user_out_conf", "conf_out", "conf_in") for m in _CALL_MIX])
# Class mix of called numbers: domestic, international.
_DOMESTIC_CLASS_P = np.array([0.55, 0.40, 0.03, 0.005, 0.015])
_INTL_CLASS_P = np.array([0.45, 0.52, 0.01, 0.005, 0.015])


def _mix64(x: np.ndarray, key: int) -> np.ndarray:
    """A bijective 62-bit mix (xorshift-multiply) of ``x``, keyed."""
    mask = np.uint64((1 << 62) - 1)
    z = (x.astype(np.uint64) + np.uint64(key & ((1 << 62) - 1))) & mask
    for shift, mult in ((31, 0xBF58476D1CE4E5B9), (29, 0x94D049BB133111EB), (32, 0xD6E8FEB86659FD93)):
        z = z ^ (z >> np.uint64(shift))
        z = (z * np.uint64(mult)) & mask
    return z


# Two hex digits per byte value, as the uint16 whose memory holds them in order.
_HEX_PAIRS = np.frombuffer(b"".join(f"{b:02x}".encode() for b in range(256)), np.uint16)


def _uuid_strings(hi: np.ndarray, lo: np.ndarray) -> pa.Array:
    """Version-4-shaped UUID strings from 64 high and 62 low random bits."""
    n = len(hi)
    hi = (hi & np.uint64(0xFFFFFFFFFFFF0FFF)) | np.uint64(0x4000)
    lo = (lo & np.uint64((1 << 62) - 1)) | np.uint64(1 << 63)
    raw = np.empty((n, 2), ">u8")
    raw[:, 0], raw[:, 1] = hi, lo
    hexed = _HEX_PAIRS[raw.view(np.uint8)].view(np.uint8)  # (n, 32) hex digits
    out = np.empty((n, 36), np.uint8)
    for dst, src, width in ((0, 0, 8), (9, 8, 4), (14, 12, 4), (19, 16, 4), (24, 20, 12)):
        out[:, dst:dst + width] = hexed[:, src:src + width]
    out[:, [8, 13, 18, 23]] = ord("-")
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(out.tobytes()))


def _format_numbers(rng, digits: pa.Array, cc_len: np.ndarray, p_bare, p_spaced, p_masked,
                    special: pa.Array | None = None,
                    special_mask: np.ndarray | None = None) -> pa.Array:
    """Format E.164 digit strings the way CDR exports show them.

    Mostly ``+<digits>``; some bare digits, some ``+44 207 9460000`` or
    ``+44-207-9460000``, some masked (``+4420794****``); rows of
    ``special_mask`` take ``special`` (emergency numbers) verbatim. The
    probabilities are scalars or per-row arrays.
    """
    n = len(digits)
    u = rng.random(n)
    style = np.zeros(n, np.int8)  # 0 plus, 1 bare, 2 spaced, 3 dashed, 4 masked
    edge = np.zeros(n)
    for s, p in ((1, p_bare), (2, np.divide(p_spaced, 2)), (3, np.divide(p_spaced, 2)), (4, p_masked)):
        style[(u >= edge) & (u < edge + p)] = s
        edge = edge + p
    if special_mask is not None:
        style[special_mask] = 5
    order = np.argsort(style, kind="stable")
    bounds = np.searchsorted(style[order], np.arange(7))
    pieces = []
    for s in range(6):
        idx = order[bounds[s]:bounds[s + 1]]
        if len(idx) == 0:
            continue
        if s == 5:
            pieces.append(special.take(pa.array(idx)))
            continue
        d = digits.take(pa.array(idx))
        if s == 1:
            pieces.append(d)
        elif s == 0:
            pieces.append(_str_concat(pa.scalar("+"), d))
        elif s in (2, 3):
            sep = " " if s == 2 else "-"
            ccl = cc_len[idx]
            part = []
            for n_cc in (1, 2, 3):
                head = pc.utf8_slice_codeunits(d, 0, n_cc)
                mid = pc.utf8_slice_codeunits(d, n_cc, n_cc + 3)
                tail = pc.utf8_slice_codeunits(d, n_cc + 3)
                part.append(_str_concat(pa.scalar("+"), head, pa.scalar(sep), mid, pa.scalar(sep), tail))
            pieces.append(pc.choose(pa.array(ccl - 1, pa.int8()), *part))
        else:
            hide = rng.integers(3, 5, len(idx))
            masked = [_str_concat(pa.scalar("+"), pc.utf8_slice_codeunits(d, 0, -k), pa.scalar("*" * k))
                      for k in (3, 4)]
            pieces.append(pc.choose(pa.array(hide - 3, pa.int8()), *masked))
    stacked = pa.concat_arrays([p.cast(pa.string()) for p in pieces]) if pieces else pa.array([], pa.string())
    inverse = np.empty(n, np.int64)
    inverse[order] = np.arange(n)
    return stacked.take(pa.array(inverse))


def _cdr_block(pop: _Population, seed: int, block: int, rows: int, first_row: int,
               start_us: int, days: int) -> pa.RecordBatch:
    """One block of CDRs; a pure function of (population, seed, block, rows)."""
    rng = _rng(seed, 4, block)
    n = rows
    tenant = rng.choice(len(pop.tenant_weight), n, p=pop.tenant_weight)
    mix = rng.choice(len(_CALL_MIX), n, p=_MIX_P)
    role = _MIX_ROLE[mix]
    # Accounts: users skewed towards a few heavy callers; resource accounts.
    user = pop.user_start[tenant] + (rng.random(n) ** 1.4 * pop.user_count[tenant]).astype(np.int64)
    ra = pop.ra_start[tenant] + (rng.random(n) * pop.ra_count[tenant]).astype(np.int64)
    uses_ra = np.isin(role, (_OUT_RA, _IN_RA, _TF_RA))
    account = np.where(uses_ra, ra, user)
    no_account = role == _IN_UNASSIGNED
    home = pop.account_region[account]
    # Rated and other numbers.
    outbound = np.isin(role, (_OUT, _OUT_RA, _OUT_CONF))
    tollfree = np.isin(role, (_TF_USER, _TF_RA, _TF_CONF))
    intl_p = np.where(role == _OUT_CONF, 0.25, np.where(role == _OUT_RA, 0.10, 0.12))
    abroad = rng.random(n) < np.where(outbound, intl_p, np.where(tollfree, 0.35, 0.15))
    abroad_region = rng.choice(len(pop.dest_weights), n, p=pop.dest_weights / pop.dest_weights.sum())
    far_region = np.where(abroad & (abroad_region != home), abroad_region, home)
    klass = np.where(abroad, rng.choice(5, n, p=_INTL_CLASS_P), rng.choice(5, n, p=_DOMESTIC_CLASS_P))
    klass = np.where(outbound, klass, np.where(rng.random(n) < 0.4, _MOB, _GEO))
    other, other_cc = _sample_numbers(pop.groups, rng, far_region, klass)
    # A small share of rated numbers matches no prefix at all.
    no_match = rng.random(n) < 0.003
    nm = pop.no_match_codes[rng.integers(0, len(pop.no_match_codes), n)] * 10**9 + rng.integers(0, 10**9, n)
    other = np.where(no_match, nm, other)
    other_cc = np.where(no_match, 3, other_cc)
    own = np.where(uses_ra | np.isin(role, (_OUT_CONF, _IN_CONF)), pop.tenant_service[tenant],
                   pop.account_number[account])
    # An unassigned number of the tenant: its service number's block of 100.
    unassigned = pop.tenant_service[tenant] // 100 * 100 + rng.integers(0, 100, n)
    own = np.where(role == _IN_UNASSIGNED, unassigned, own)
    own = np.where(tollfree, pop.tenant_tollfree[tenant], own)
    own_cc = pop.groups.region_cc_len[
        np.where(tollfree | uses_ra | (role == _IN_UNASSIGNED) | np.isin(role, (_OUT_CONF, _IN_CONF)),
                 pop.tenant_region[tenant], home)]
    emergency = (role == _EMERG) | ((role == _OUT) & (rng.random(n) < 0.0003))
    out_side = outbound | (role == _EMERG)
    caller_digits = np.where(out_side, own, other)
    callee_digits = np.where(out_side, other, own)
    caller_cc = np.where(out_side, own_cc, other_cc)
    callee_cc = np.where(out_side, other_cc, own_cc)
    emergency_text = pop.emergency_numbers.take(pa.array(pop.tenant_emergency[tenant]))
    callee = _format_numbers(rng, pc.cast(pa.array(callee_digits), pa.string()), callee_cc,
                             p_bare=0.07, p_spaced=0.04, p_masked=np.where(outbound, 0.02, 0.0),
                             special=emergency_text, special_mask=emergency)
    caller = _format_numbers(rng, pc.cast(pa.array(caller_digits), pa.string()), caller_cc,
                             p_bare=0.06, p_spaced=0.02, p_masked=np.where(tollfree, 0.02, 0.0))
    # Durations: lognormal, median 2.5 min (25 min for conferences), ~3% zero.
    conf = _CONF_TYPES[mix]
    seconds = rng.lognormal(np.where(conf, math.log(1_500), math.log(150)), 1.0)
    duration = np.minimum(np.ceil(seconds), 6 * 3_600).astype(np.int64)
    duration[rng.random(n) < 0.03] = 0
    # Start times: weekdays busier, local business hours, spread over the window.
    weekday0 = _from_us(start_us).weekday()
    day_w = np.array([1.0 if (weekday0 + d) % 7 < 5 else 0.25 for d in range(days)])
    day = rng.choice(days, n, p=day_w / day_w.sum())
    busy = rng.random(n) < 0.85
    local = np.where(busy, np.clip(rng.normal(13.5 * 3_600, 2.6 * 3_600, n), 6 * 3_600, 22 * 3_600),
                     rng.random(n) * 86_400)
    offset = day * _US_PER_DAY + (local * _US_PER_S).astype(np.int64) - pop.tenant_tz_us[tenant]
    offset = offset % (days * _US_PER_DAY)
    start_time = start_us + offset
    # Identifiers: unique usage ids, call ids, conference ids per tenant.
    keys = [int(k) for k in _rng(seed, 5).integers(0, 2**62, 5)]  # the same for every block
    index = np.arange(first_row, first_row + n, dtype=np.uint64)
    usage_id = _uuid_strings(_mix64(index, keys[0]), _mix64(index, keys[1]))
    call_id = _uuid_strings(_mix64(index, keys[2]), _mix64(index, keys[3]))
    meeting = (tenant.astype(np.uint64) * np.uint64(1 << 24)
               + rng.integers(0, 40 * pop.user_count[tenant] + 10).astype(np.uint64))
    conference_no = (_mix64(meeting, keys[4]) % np.uint64(900_000_000)).astype(np.int64) + 100_000_000
    conference_id = pc.if_else(pa.array(conf), pc.cast(pa.array(conference_no), pa.string()),
                               pa.scalar(None, pa.string()))
    user_id = pop.account_upn.take(pa.array(account, mask=no_account))
    return pa.RecordBatch.from_arrays([
        usage_id,
        pop.tenant_ids.take(pa.array(tenant)),
        user_id,
        _MIX_TYPE.take(pa.array(mix)),
        caller,
        callee,
        _MIX_NUMBER_TYPE.take(pa.array(mix)),
        pa.array(start_time, pa.timestamp("us", tz="UTC")),
        pa.array(duration, pa.int64()),
        call_id,
        conference_id,
    ], schema=CDR_SCHEMA)


def generate_cdrs(config: SampleConfig, cdrs: int | None = None, *, seed=None,
                  threads: int = 2) -> Iterator[pa.RecordBatch]:
    """Generate CDRs (SPEC §7) for a generated config, as record batches.

    Parameters
    ----------
    config : SampleConfig
        From :func:`generate_config`; CDRs use its tenants, licensed users,
        deck prefixes and window.
    cdrs : int, optional
        Number of CDRs; default ``config.cdrs``.
    seed : int, optional
        Default ``config.seed``.
    threads : int
        Batches built in parallel (the output does not depend on it).

    Yields
    ------
    pyarrow.RecordBatch
        :data:`CDR_SCHEMA`, batches of up to 1,000,000 rows. Batch ``i`` is a
        pure function of (config, seed, i, its size): the same arguments give
        the same CDRs. ``pa.Table.from_batches(list(...))`` collects them.

    Notes
    -----
    The call mix follows SPEC §4: mostly ``user_out`` (12% international),
    ``user_in`` and conferences, some ``ucap_*``, transfers, forwards,
    ``unassigned_in``, toll-free inbound calls (``number_type = tollfree``,
    caller from many countries) and rare emergency calls (``emergency_out``,
    and ``user_out`` to 911/112/...). Numbers are ``+E.164`` mostly; ~7% bare
    digits, ~4% with spaces or dashes, ~2% of rated numbers masked
    (``+4420794****``), ~0.3% match no prefix. Durations are lognormal
    (median 150 s, 25 min for conferences), 3% zero. Start times follow local
    business hours and weekdays over ``[start, start + days)``.
    """
    pop = config._population
    n = config.cdrs if cdrs is None else int(cdrs)
    seed = config.seed if seed is None else _seed_int(seed)
    start_us = _to_us(config.start)
    blocks = [(i, min(_BLOCK_ROWS, n - first), first) for i, first in enumerate(range(0, n, _BLOCK_ROWS))]

    def make(args):
        i, rows, first = args
        return _cdr_block(pop, seed, i, rows, first, start_us, config.days)

    if threads <= 1 or len(blocks) <= 1:
        for b in blocks:
            yield make(b)
        return
    with ThreadPoolExecutor(threads) as pool:
        pending = [pool.submit(make, b) for b in blocks[:threads]]
        for k in range(len(blocks)):
            batch = pending[k].result()
            pending[k] = None
            if k + threads < len(blocks):
                pending.append(pool.submit(make, blocks[k + threads]))
            yield batch


# --------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratedSample:
    """What :func:`generate` wrote."""

    config_dir: Path
    cdr_dir: Path
    tenants: int
    cdrs: int
    start: _dt.datetime
    end: _dt.datetime


def generate(out_dir, *, tenants: int = 50, cdrs: int = 100_000, days: int = 30, seed: int = 1,
             start: _dt.datetime | None = None, prefixes_per_service: int = 30_000,
             progress: Callable[[int], None] | None = None) -> GeneratedSample:
    """Write a realistic sample: config directory and Parquet CDRs (SPEC §10).

    Parameters
    ----------
    out_dir : str or Path
        Created if missing. Writes ``out_dir/config/`` (``decks/retail-usd.csv``,
        ``decks/retail-eur.csv``, ``tenants.csv``, ``licenses.csv``,
        ``funds.csv``, ``card_updates.csv``) and ``out_dir/cdrs/`` (files
        ``cdrs-00000.parquet``, ... of up to 2,000,000 rows in row groups of
        1,000,000, zstd). Earlier ``cdrs-*.parquet`` files there are removed.
    tenants, cdrs, days : int
        Tenant count, CDR count and window length in days.
    seed : int
        Same seed, same bytes in every CSV and the same Parquet contents.
    start : datetime, optional
        First instant of the CDR window (naive = UTC); default
        2026-10-01T00:00:00Z. Calls start in ``[start, start + days)``.
    prefixes_per_service : int
        About how many outbound prefixes each deck lists.
    progress : callable, optional
        Called with the number of CDR rows after each batch is written.

    Returns
    -------
    GeneratedSample
    """
    out_dir = Path(out_dir)
    config = generate_config(tenants=tenants, cdrs=cdrs, days=days, seed=seed, start=start,
                             prefixes_per_service=prefixes_per_service)
    config_dir = config.write(out_dir / "config")
    cdr_dir = out_dir / "cdrs"
    cdr_dir.mkdir(parents=True, exist_ok=True)
    for old in cdr_dir.glob("cdrs-*.parquet"):
        old.unlink()
    writer, written, file_no = None, 0, 0
    try:
        for batch in generate_cdrs(config, cdrs):
            if writer is None or written >= _FILE_ROWS:
                if writer is not None:
                    writer.close()
                writer = pq.ParquetWriter(
                    cdr_dir / f"cdrs-{file_no:05d}.parquet", CDR_SCHEMA, compression="zstd",
                    use_dictionary=["tenant_id", "user_id", "call_type", "number_type", "conference_id"])
                file_no, written = file_no + 1, 0
            writer.write_batch(batch, row_group_size=_BLOCK_ROWS)
            written += batch.num_rows
            if progress is not None:
                progress(batch.num_rows)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:  # zero CDRs: still leave a readable, empty file
        pq.write_table(CDR_SCHEMA.empty_table(), cdr_dir / "cdrs-00000.parquet", compression="zstd")
    return GeneratedSample(config_dir=config_dir, cdr_dir=cdr_dir, tenants=tenants, cdrs=int(cdrs),
                           start=config.start, end=config.start + _dt.timedelta(days=days))
