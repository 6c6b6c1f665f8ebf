"""The per-tenant pass (SPEC §5-§6): the Python side of the ``_billing`` kernel.

:func:`compile_plan` turns a validated :class:`~ratecore.config.Config`
into the flat arrays the kernel reads (payers and their license rows in the
order pools are tried, pools with their sizes over time, geography).
:class:`BillingState` is what one run leaves for the next: every tenant's
point in time, balance, debt, live lots, recharge timers, pool use of the
current month, and which fundings and card updates were applied. :func:`bill`
sorts one run's events, runs the kernel over ranges of tenants on threads,
and returns the billing columns of each call plus ledger, notifications and
pool-use rows.

The semantics are those of :mod:`ratecore.reference.billing`, including the
decisions it lists where the spec is silent.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ratecore import buffers, fields
from ratecore._billing import Pass, pair_payers, payers_of, unpack
from ratecore._order import (
    in_cache_records,
    scatter_batch,
    sort_tenants,
    take_strings,
    time_histogram,
)

INT64_MIN = np.iinfo(np.int64).min
INT64_MAX = np.iinfo(np.int64).max
PREMIUM_CLASSES = ("premium", "shared_cost", "special")
LEDGER_KINDS = ("fund", "recharge", "recharge_failed", "debit", "expire")
NOTIFICATION_KINDS = ("recharge_succeeded", "recharge_failed", "balance_depleted",
                      "funds_expired", "pool_80", "pool_100")
POOL_NOTIFICATIONS = (4, 5)
EV_FUND, EV_CARD, EV_END = 0, 1, 3
CAP_FREECALL, CAP_CREDITS, CAP_SKU = 0, 1, 2
FREECALL = "FREECALL"


def pool_name(sku: str, kind: str, scope: str) -> str:
    """``SKU:kind:scope``; scope is the pool's country group, the user
    (per-user pools) or ``tenant`` (conferencing dial-out)."""
    return f"{sku}:{kind}:{scope}"


def month_text(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


# ---- the compiled config ----------------------------------------------------


@dataclass
class Plan:
    """The config as the kernel reads it; built once per run."""

    n_countries: int
    countries: list
    row_terms: np.ndarray
    row_country: np.ndarray
    row_premium: np.ndarray
    domestic: np.ndarray
    zone_a: np.ndarray
    tenant_ids: list
    t_country: np.ndarray
    t_credits: np.ndarray
    t_auto: np.ndarray
    t_trigger: np.ndarray
    t_recharge: np.ndarray
    t_card: np.ndarray
    payer_keys: pa.Array          # "tenant_row\x1fuser_id" of each payer
    payer_lo: np.ndarray
    payer_hi: np.ndarray
    lic_from: np.ndarray
    lic_to: np.ndarray
    lic_loc: np.ndarray
    lic_credits: np.ndarray
    lic_user_pool: np.ndarray
    lic_dom_pool: np.ndarray
    lic_intl_pool: np.ndarray
    lic_dial_pool: np.ndarray
    pool_names: list
    pool_tenant: np.ndarray
    pool_sku: np.ndarray
    pool_cp_lo: np.ndarray
    pool_cp_hi: np.ndarray
    cp_time: np.ndarray
    cp_size: np.ndarray
    pool_partner: np.ndarray
    pool_cap: np.ndarray
    cap_keys: list                # (tenant_id, sku, group) of each either-cap group
    skus: tuple
    credits_sku: str | None

    def payers(self, tenant_row: np.ndarray, user_id) -> np.ndarray:
        """Payer index of each (tenant row, user_id); -1 without licenses.

        Works on the user_id dictionary (the one Parquet hands out, else one
        built here): each distinct user is looked up once, then the kernel
        (``payers_of``) takes each call's payer by its code and checks that
        the payer is of the call's tenant, in one pass. Users licensed in
        several tenants take a slower path by full key.
        """
        if isinstance(user_id, pa.ChunkedArray):
            parts, at = [], 0
            for chunk in user_id.chunks:
                parts.append(self.payers(tenant_row[at: at + len(chunk)], chunk))
                at += len(chunk)
            return np.concatenate(parts) if parts else np.zeros(0, np.int32)
        if not pa.types.is_dictionary(user_id.type):
            user_id = pc.dictionary_encode(user_id)
        pairs, several = self._payers_by_code(user_id.dictionary)
        indices = user_id.indices.cast(pa.int32())
        validity, data = indices.buffers()
        payer = np.empty(len(user_id), np.int32)
        payers_of(np.frombuffer(data, np.int32),
                  None if validity is None or not indices.null_count
                  else np.frombuffer(validity, np.uint8), indices.offset,
                  pairs, np.ascontiguousarray(tenant_row, np.int32), payer)
        if several:
            rows = np.flatnonzero(payer == -2)
            user = pc.take(user_id, pa.array(rows)).cast(pa.string())
            keys = pc.binary_join_element_wise(
                pa.array(tenant_row[rows].astype(np.int64)).cast(pa.string()), user, "\x1f")
            payer[rows] = np.asarray(pc.index_in(keys, self.payer_keys).fill_null(-1))
        return payer

    def _payers_by_code(self, dictionary: pa.Array):
        """((payer, its tenant row) of each code of a user_id dictionary, as
        payers_of reads them: payer -1 not licensed, -2 licensed in several
        tenants; whether any is -2). The last dictionary's answer is kept: a
        run's batches, sliced from one table or read from one file, share
        theirs (same buffers), and looking up its 300k users again for every
        batch cost 30 ms each time."""
        key = (len(dictionary), dictionary.offset, dictionary.type,
               tuple(b.address if b is not None else 0 for b in dictionary.buffers()))
        last = self.__dict__.get("_last_codes")
        if last is not None and last[0] == key:
            return last[1], last[2]
        by_user, users, payer_tenant = self._payers_by_user()
        hit = np.asarray(pc.index_in(dictionary.cast(pa.string()), users)
                         .fill_null(-1)).astype(np.int64)
        # index -1 (not licensed) reads the -1 appended at the end
        by_code = np.append(by_user, np.int32(-1))[hit]
        pairs, several = pair_payers(by_code, payer_tenant), bool((by_code == -2).any())
        # the key holds addresses only: keep the dictionary so they stay its
        self.__dict__["_last_codes"] = (key, pairs, several, dictionary)
        return pairs, several

    def _payers_by_user(self):
        """(payer of each distinct licensed user or -2 if in several tenants,
        those users, tenant row of each payer); built once."""
        cached = self.__dict__.get("_by_user")
        if cached is None:
            tenants, first = [], {}
            for p, key in enumerate(self.payer_keys.to_pylist()):
                t, user = key.split("\x1f", 1)
                tenants.append(int(t))
                first[user] = -2 if user in first else p
            cached = (np.array(list(first.values()), np.int32),
                      pa.array(list(first), pa.string()), np.array(tenants, np.int32))
            self.__dict__["_by_user"] = cached
        return cached

    def capability_names(self) -> list:
        return [FREECALL, self.credits_sku] + list(self.skus)


def compile_plan(cfg) -> Plan:
    """Flatten tenants, licenses, SKUs and zones for the kernel."""
    book, tenants, lic, skus, zones = cfg.book, cfg.tenants, cfg.licenses, cfg.skus, cfg.zones
    row_countries = book.rows.column("country").to_pylist()
    zone_countries = set(zones.zone_a) | set(zones.pool_group) | set(zones.pool_group.values())
    for loc, dests in zones.domestic.items():
        zone_countries |= {loc} | set(dests)
    countries = sorted(set(row_countries) | set(tenants.country) | set(lic.usage_location)
                       | zone_countries)
    cidx = {c: i for i, c in enumerate(countries)}
    nc = len(countries)
    domestic = np.zeros(nc * nc, np.uint8)
    for a in countries:
        for b in countries:
            domestic[cidx[a] * nc + cidx[b]] = zones.is_domestic(a, b)
    zone_a = np.array([c in zones.zone_a for c in countries], np.uint8)
    row_class = book.rows.column("number_class").to_pylist()

    # payers: a tenant's users with license rows, rows in the order pools are tried
    sku_rank = {s: k for k, s in enumerate(skus.skus)}
    # plain lists: a numpy scalar per license row costs 1 s for 270k rows
    l_tenant, l_line = lic.tenant.tolist(), lic.line.tolist()
    l_from, l_to = lic.assigned_from.tolist(), lic.assigned_to.tolist()
    user_first = {s: "user" not in skus.pools[s] for s in skus.skus}
    order = sorted(range(len(lic.sku)), key=lambda i: (
        l_tenant[i], lic.user_id[i], user_first[lic.sku[i]], sku_rank[lic.sku[i]], l_line[i]))
    payer_keys, payer_lo, payer_hi = [], [], []
    pools: dict[tuple, int] = {}
    contrib: list[list] = []
    pool_names, pool_tenant, pool_sku = [], [], []
    n = len(order)
    lic_pool = {k: np.full(n, -1, np.int32) for k in ("user", "domestic", "international",
                                                      "dialout")}
    lic_credits = np.zeros(n, np.uint8)
    for j, i in enumerate(order):
        t, user, sku, loc = l_tenant[i], lic.user_id[i], lic.sku[i], lic.usage_location[i]
        key = f"{t}\x1f{user}"
        if not payer_keys or payer_keys[-1] != key:
            payer_keys.append(key)
            payer_lo.append(j)
            payer_hi.append(j)
        payer_hi[-1] = j + 1
        for kind in skus.pools[sku]:
            if kind == "credits":
                lic_credits[j] = 1
                continue
            scope = user if kind == "user" else "tenant" if kind == "dialout" \
                else zones.group_of(loc)
            pkey = (t, sku, kind, scope)
            if pkey not in pools:
                pools[pkey] = len(pool_names)
                pool_names.append(pool_name(sku, kind, scope))
                pool_tenant.append(t)
                pool_sku.append(sku_rank[sku])
                contrib.append([])
            p = pools[pkey]
            lic_pool[kind][j] = p
            contrib[p].append((l_from[i], l_to[i], 60 * skus.minutes_for(sku, kind, loc)))
    cp_lo, cp_hi, cp_time, cp_size = [], [], [], []
    for rows in contrib:
        steps = Counter()
        for f, to, s in rows:
            steps[f] += s
            if to != INT64_MAX:
                steps[to] -= s
        cp_lo.append(len(cp_time))
        total = 0
        for time in sorted(steps):
            total += steps[time]
            cp_time.append(time)
            cp_size.append(total)
        cp_hi.append(len(cp_time))
    partner = np.full(len(pool_names), -1, np.int32)
    cap = np.full(len(pool_names), -1, np.int32)
    cap_keys, cap_index = [], {}
    for (t, sku, kind, scope), p in pools.items():
        if kind in ("domestic", "international") and \
                {"domestic", "international"} <= set(skus.pools[sku]):
            other = pools.get((t, sku, "international" if kind == "domestic" else "domestic", scope))
            partner[p] = -1 if other is None else other
            ck = (tenants.ids[t].as_py(), sku, scope)
            if ck not in cap_index:
                cap_index[ck] = len(cap_keys)
                cap_keys.append(ck)
            cap[p] = cap_index[ck]
    order_a = np.array(order, dtype=np.int64)
    credits = [s for s in skus.skus if "credits" in skus.pools[s]]
    i64 = lambda v: np.array(v, dtype=np.int64)
    i32 = lambda v: np.array(v, dtype=np.int32)
    return Plan(
        n_countries=nc, countries=countries, row_terms=book.row_terms,
        row_country=i32([cidx[c] for c in row_countries]),
        row_premium=np.array([c in PREMIUM_CLASSES for c in row_class], np.uint8),
        domestic=domestic, zone_a=zone_a,
        tenant_ids=tenants.ids.to_pylist(),
        t_country=i32([cidx[c] for c in tenants.country]),
        t_credits=np.asarray(tenants.credits_enabled, np.uint8),
        t_auto=np.asarray(tenants.auto_recharge, np.uint8),
        t_trigger=np.asarray(tenants.trigger_micro, np.int64),
        t_recharge=np.asarray(tenants.recharge_micro, np.int64),
        t_card=np.asarray(tenants.card_valid_until, np.int64),
        payer_keys=pa.array(payer_keys, pa.string()), payer_lo=i32(payer_lo),
        payer_hi=i32(payer_hi),
        lic_from=i64(lic.assigned_from)[order_a] if n else i64([]),
        lic_to=i64(lic.assigned_to)[order_a] if n else i64([]),
        lic_loc=i32([cidx[lic.usage_location[i]] for i in order]),
        lic_credits=lic_credits, lic_user_pool=lic_pool["user"],
        lic_dom_pool=lic_pool["domestic"], lic_intl_pool=lic_pool["international"],
        lic_dial_pool=lic_pool["dialout"], pool_names=pool_names, pool_tenant=i32(pool_tenant),
        pool_sku=np.array(pool_sku, np.int8), pool_cp_lo=i32(cp_lo), pool_cp_hi=i32(cp_hi),
        cp_time=i64(cp_time), cp_size=i64(cp_size), pool_partner=partner, pool_cap=cap,
        cap_keys=cap_keys, skus=tuple(skus.skus), credits_sku=credits[0] if credits else None)


# ---- state between runs ------------------------------------------------------

TENANT_FIELDS = ("point", "balance", "debt", "card", "backoff", "rc_instant", "rc_count",
                 "next_lot", "seq", "nseq")


@dataclass
class BillingState:
    """What a run leaves for the next, keyed by names (not by config order),
    so a config that gains tenants, users or pools still lines up.

    ``card`` is INT64_MIN until a card update was applied: until then the
    tenant's card is the one in tenants.csv.
    """

    as_of: int = INT64_MIN
    tenants: dict = field(default_factory=dict)     # tenant_id -> {TENANT_FIELDS}
    lots: dict = field(default_factory=dict)        # tenant_id -> [(lot_id, funded, expires, amount, remaining)]
    pools: dict = field(default_factory=dict)       # (tenant_id, pool) -> (month, used, size, flags)
    caps: dict = field(default_factory=dict)        # (tenant_id, sku, group) -> month
    applied_funds: Counter = field(default_factory=Counter)
    applied_cards: Counter = field(default_factory=Counter)

    def copy(self) -> BillingState:
        return BillingState(self.as_of, {k: dict(v) for k, v in self.tenants.items()},
                            {k: list(v) for k, v in self.lots.items()}, dict(self.pools),
                            dict(self.caps), Counter(self.applied_funds),
                            Counter(self.applied_cards))

    def balance(self, tenant_id: str) -> int:
        return self.tenants.get(tenant_id, {}).get("balance", 0)


def fund_keys(cfg) -> list:
    f = cfg.funds
    return [(cfg.tenants.ids[int(t)].as_py(), int(at), int(a), r or "")
            for t, at, a, r in zip(f.tenant, f.funded_at, f.amount, f.reference)]


def card_keys(cfg) -> list:
    u = cfg.card_updates
    return [(cfg.tenants.ids[int(t)].as_py(), int(at), int(v))
            for t, at, v in zip(u.tenant, u.updated_at, u.card_valid_until)]


def _unapplied(keys: list, applied: Counter) -> np.ndarray:
    """Indices of `keys` not applied yet, as a multiset."""
    left = Counter(applied)
    out = []
    for i, k in enumerate(keys):
        if left[k] > 0:
            left[k] -= 1
        else:
            out.append(i)
    return np.array(out, dtype=np.int64)


# ---- one run ----------------------------------------------------------------


@dataclass
class Calls:
    """One run's priced, accepted calls (any order). ``payer`` may be given
    instead of ``user_id`` (see :meth:`Plan.payers`)."""

    tenant: np.ndarray     # int32 row in Tenants.ids
    user_id: pa.Array | None
    usage_id: pa.Array
    start: np.ndarray      # int64 µs
    service: np.ndarray    # int8
    status: np.ndarray     # int8 (pricing status)
    row: np.ndarray        # int32
    billable: np.ndarray   # int32
    payer: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.tenant)


PER_CALL = ("domestic", "pool", "pool_seconds", "charged_seconds", "charge", "capability",
            "status", "unbilled_seconds", "unbilled_amount", "balance_after", "late")
_PER_CALL_TYPES = (np.int8, np.int32, np.int32, np.int32, np.int64, np.int8, np.int8, np.int32,
                   np.int64, np.int64, np.bool_)


class Billed:
    """Billing columns of each call (in the order given) and the run's other
    outputs.

    The pass leaves each call's outputs as a record in tenant and time order
    (``recs``, written over the call's own). Call ``i`` was grouped at
    ``where[i]`` and the pass left its record at ``perm[where[i]]`` (``perm``
    is written tenant by tenant, so its stores stay in the cache, where
    storing at each call's input position missed it). The columns in call
    order are gathered from them when first read (:data:`PER_CALL` as
    attributes), for all calls or, after :meth:`slice`, for a stretch of
    them, which is how a run writes its rated parts. Holding 32 bytes a call
    instead of ten columns keeps a 20M-call run 0.9 GB smaller than columns
    would, and the pass never writes to scattered fresh memory (SPEC §8
    memory; measured in the README).
    """

    def __init__(self, recs: np.ndarray, perm: np.ndarray, where: np.ndarray,
                 call_lo: np.ndarray, ledger: pa.Table, notifications: pa.Table,
                 pools: pa.Table, as_of: int, charged: np.ndarray):
        self.recs, self.perm, self.where, self.call_lo = recs, perm, where, call_lo
        self.ledger, self.notifications, self.pools, self.as_of = (
            ledger, notifications, pools, as_of)
        self.charged = charged
        self._columns: dict | None = None

    def slice(self, lo: int, hi: int) -> Billed:
        """The calls [lo, hi) (the same records; nothing is copied)."""
        return Billed(self.recs, self.perm, self.where[lo:hi], self.call_lo, self.ledger,
                      self.notifications, self.pools, self.as_of, self.charged)

    def __len__(self) -> int:
        return len(self.where)

    @property
    def inv(self) -> np.ndarray:
        """Where each call's record is (int32, in call order)."""
        return np.take(self.perm, self.where)

    def columns(self) -> dict:
        """{name: array} of every :data:`PER_CALL` column, in call order."""
        if self._columns is None:
            n = len(self.where)
            cols = {k: buffers.empty(n, t) for k, t in zip(PER_CALL, _PER_CALL_TYPES)}
            unpack(self.recs.view(np.uint8), self.inv,
                   *(v.view(np.uint8) if v.dtype == np.bool_ else v for v in cols.values()))
            self._columns = cols
        return self._columns

    def __getattr__(self, name: str):
        if name in PER_CALL:
            return self.columns()[name]
        raise AttributeError(name)

    def charges_by_tenant(self) -> np.ndarray:
        """Each tenant's charge to credits in this run (micro-units), as the
        pass added it up: no column is gathered, no record read again."""
        return self.charged.copy()


def _grow(ns: SimpleNamespace, n_used: int, capacity: int) -> SimpleNamespace:
    out = SimpleNamespace()
    for name, arr in vars(ns).items():
        new = buffers.empty((capacity, *arr.shape[1:]), arr.dtype)
        new[:n_used] = arr[:n_used]
        setattr(out, name, new)
    return out


# The pass writes every field of each entry it adds and only the entries
# added are kept, so the buffers start empty, not zeroed: zeroing one wrote
# all of it (numpy's zeros memsets what malloc hands out from its heap),
# 110 MB of fresh memory for the 20M sample's 17k notifications.

def _ledger_buffers(n):
    e = buffers.empty
    return SimpleNamespace(tenant=e(n, np.int32), seq=e(n, np.int64), time=e(n, np.int64),
                           kind=e(n, np.int8), lot=e(n, np.int64), amount=e((n, 2), np.int64),
                           balance=e((n, 2), np.int64), ref=e(n, np.int64))


def _note_buffers(n):
    return SimpleNamespace(tenant=np.empty(n, np.int32), seq=np.empty(n, np.int64),
                           time=np.empty(n, np.int64), kind=np.empty(n, np.int8),
                           amount=np.empty(n, np.int64), balance=np.empty(n, np.int64),
                           pool=np.empty(n, np.int32))


def _flush_buffers(n):
    return SimpleNamespace(pool=np.empty(n, np.int32), month=np.empty(n, np.int32),
                           size=np.empty(n, np.int64), used=np.empty(n, np.int64))


#: Layouts of _calls.pxd's CallRec and BillRec (their sizes checked against
#: the kernel's); a billed call's BillRec is written over its CallRec.
CALL_DTYPE = np.dtype([("start", "i8"), ("idx", "i4"), ("grouped", "i4"), ("payer", "i4"),
                       ("row", "i4"), ("billable", "i4"), ("service", "i1"), ("status", "i1")],
                      align=True)
BILL_DTYPE = np.dtype([("amount", "i8"), ("balance_after", "i8"), ("pool", "i4"),
                       ("pool_seconds", "i4"), ("seconds", "i4"), ("domestic", "i1"),
                       ("capability", "i1"), ("status", "i1"), ("late", "i1")], align=True)


#: Fewest entries the pass's output buffers start with (tests set 1, so the
#: pass stops for room and resumes at nearly every event).
_MIN_ROOM = 1024


def _run_range(ins, kstate, perm, lo: int, hi: int):
    """Run the kernel over tenants [lo, hi), growing its output buffers as needed."""
    p = Pass(ins, kstate, perm)
    n_calls = int(ins.call_lo[hi] - ins.call_lo[lo])
    # about one debit a call pays credits for; notifications and closed pool
    # months are rarer (the buffers grow when full)
    cap = max(_MIN_ROOM, n_calls // 4)
    few = max(_MIN_ROOM, n_calls // 64)
    led, notes, flushed = _ledger_buffers(cap), _note_buffers(few), _flush_buffers(few)
    ln = nn = fn = 0
    pos = lo
    while True:
        p.set_buffers(led, notes, flushed, ln, nn, fn)
        code, pos, ln, nn, fn = p.run(pos, hi)
        if code == 0:
            break
        if code != 1:
            raise RuntimeError("billing kernel: a tenant's lot buffer is full")
        led = _grow(led, ln, 2 * len(led.tenant))
        notes = _grow(notes, nn, 2 * len(notes.tenant))
        flushed = _grow(flushed, fn, 2 * len(flushed.pool))
    return (SimpleNamespace(**{k: v[:ln] for k, v in vars(led).items()}),
            SimpleNamespace(**{k: v[:nn] for k, v in vars(notes).items()}),
            SimpleNamespace(**{k: v[:fn] for k, v in vars(flushed).items()}))


class TimeCounts:
    """A run's calls per tenant and time bucket, counted batch by batch
    before they are grouped: :class:`CallGroups` cuts big tenants' slices
    into cells of consecutive buckets, each sorted in cache, instead of
    splitting them by time after the fact (a pass over their records and a
    spare copy of the biggest: 172 MB of fresh memory on the 20M sample).

    [lo, hi] holds every start; a call's bucket is (start - lo) >> shift.
    """

    BUCKETS = 256

    def __init__(self, n_tenants: int, lo: int, hi: int):
        self.lo = int(lo)
        span = max(int(hi) - self.lo, 0)
        self.shift = max(0, span.bit_length() - (self.BUCKETS.bit_length() - 1))
        self.counts = np.zeros((n_tenants, self.BUCKETS), np.int64)

    def add(self, tenant, start) -> None:
        """Count one batch's calls (tenant rows, start instants)."""
        time_histogram(np.ascontiguousarray(tenant, np.int32),
                       np.ascontiguousarray(start, np.int64), self.lo, self.shift, self.counts)


class CallGroups:
    """One run's priced calls moved into per-tenant slices of 32-byte
    records as they come, batch by batch, so the run's columns never have
    to exist whole (a 20M-call run saves 30 bytes a call of fresh memory and
    a pass over it). :func:`bill` takes it in place of :class:`Calls`.

    `counts` is each tenant's number of calls, or a :class:`TimeCounts`;
    counts may be more than the calls added (rows a batch drops leave a gap
    that :meth:`finish` closes). With time counts, a tenant's slice is made
    of cells (runs of its time buckets of at most CELL calls) that are filled
    and sorted apart. Calls are numbered in the order added; `usage_id`
    (set before billing) holds their ids in that order.
    """

    #: most calls of a cell: what the sort takes in cache at once
    CELL = in_cache_records()

    def __init__(self, counts):
        if isinstance(counts, TimeCounts):
            per_bucket, self.lo, self.shift = counts.counts, counts.lo, counts.shift
        else:
            per_bucket, self.lo, self.shift = np.asarray(counts, np.int64)[:, None], 0, 0
        self.n_tenants, n_b = per_bucket.shape
        self.n_b = n_b
        # each tenant's cells are runs of 2**k of its buckets, k as large as
        # keeps every cell within CELL calls (0 if one bucket alone is more):
        # the scatter finds a call's cell from its tenant's first cell and a
        # shift, with no table to look up
        bits = np.zeros(self.n_tenants, np.int64)
        groups = {}
        for k in range(min(n_b.bit_length() - 1, 63 - self.shift), -1, -1):  # shifts < 64
            groups[k] = per_bucket.reshape(self.n_tenants, n_b >> k, 1 << k).sum(axis=2)
            fits = (bits == 0) & (groups[k].max(axis=1, initial=0) <= self.CELL)
            bits[fits & (k > 0)] = k
        sizes = [groups[int(k)][t] for t, k in enumerate(bits.tolist())]
        per_tenant = np.array([len(x) for x in sizes], np.int64)
        self.first_cell = np.zeros(self.n_tenants, np.int32)
        if self.n_tenants:
            self.first_cell[1:] = np.cumsum(per_tenant)[:-1]
        self.cell_shift = (self.shift + bits).astype(np.uint8)
        self.cells = np.zeros(int(per_tenant.sum()) + 1, np.int64)
        if len(self.cells) > 1:
            np.cumsum(np.concatenate(sizes), out=self.cells[1:])
        self.cursor = self.cells[:-1].copy()
        self.recs = buffers.empty(int(self.cells[-1]), CALL_DTYPE)
        self.where = buffers.empty(int(self.cells[-1]), np.int32)   # each call's record
        self.n = 0
        self.last_start: int | None = None
        self.usage_id = None

    def __len__(self) -> int:
        return self.n

    def add(self, tenant, start, payer, row, billable, service, status) -> None:
        """The next calls, in order (columns of one batch). A tenant row out
        of range, a start outside the time counts' span or more calls of a
        tenant than counted is refused; the groups are not to be used after
        that."""
        c = np.ascontiguousarray
        start = c(start, np.int64)
        scatter_batch(c(tenant, np.int32), start, c(payer, np.int32), c(row, np.int32),
                      c(billable, np.int32), c(service, np.int8), c(status, np.int8), self.n,
                      self.recs.view(np.uint8), self.cursor, self.cells[1:], self.where,
                      self.first_cell, self.cell_shift, self.lo, self.shift, self.n_b)
        self.n += len(start)
        if len(start):
            top = int(start.max())
            self.last_start = top if self.last_start is None else max(self.last_start, top)

    def finish(self, threads: int = 1):
        """(records, offsets, where): each tenant's calls in (start,
        usage_id) order, where each tenant's begin, and where each call was
        before the sort (its ``grouped`` position). The cells are sorted on
        `threads` threads."""
        if self.usage_id is None or len(self.usage_id) != self.n:
            raise ValueError(f"CallGroups: usage_id must name the {self.n:,} calls added")
        recs, cells = self.recs, self.cells
        where = self.where[:self.n]
        if self.n != len(recs):   # rows dropped: close the gaps, cell by cell
            keep = np.zeros(len(recs), bool)
            for k in np.flatnonzero(self.cursor > cells[:-1]).tolist():
                keep[cells[k]:self.cursor[k]] = True
            moved = (np.cumsum(keep) - 1).astype(np.int32)
            recs = recs[keep]
            recs["grouped"] = np.arange(len(recs), dtype=np.int32)
            where = moved[where]
            cells = np.zeros(len(self.cells), np.int64)
            np.cumsum(self.cursor - self.cells[:-1], out=cells[1:])
        n_c = len(cells) - 1
        raw = recs.view(np.uint8)
        ranges = _tenant_ranges(cells, np.zeros(n_c + 1, np.int64), threads)
        if len(ranges) == 1:
            ties = sort_tenants(raw, cells, 0, n_c)
        else:
            with ThreadPoolExecutor(len(ranges), thread_name_prefix="ratecore-group") as ex:
                ties = np.concatenate(list(ex.map(lambda r: sort_tenants(raw, cells, *r),
                                                  ranges)))
        if len(ties):
            # runs of equal starts within a cell (equal starts share a
            # bucket): order each by usage_id, all at once. `ties` is sorted,
            # so a run is consecutive ties plus the record before the first
            pos, run = _tie_runs(ties)
            uid = _take(self.usage_id, recs["idx"][pos].astype(np.int64))
            perm = pc.sort_indices(pa.table({"run": run, "uid": uid}),
                                   sort_keys=[("run", "ascending"), ("uid", "ascending")])
            words = recs.view(np.uint64).reshape(-1, 4)    # 3x numpy's record copies
            words[pos] = words[pos[np.asarray(perm)]]
        offsets = np.append(cells[self.first_cell], cells[-1])   # where each tenant begins
        return recs, offsets, where


def _tie_runs(ties: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions, run of each) of the runs of equal starts, from the sorted
    positions k whose start equals record k-1's: each run is its ties and
    the record before its first (np.union1d and np.isin did this by
    hashing: 8 ms for the 20M sample's 34k ties)."""
    first = np.ones(len(ties), bool)
    first[1:] = ties[1:] != ties[:-1] + 1
    run = np.cumsum(first) - 1
    at = np.arange(len(ties)) + run + 1             # where each tie goes
    pos = np.empty(len(ties) + int(first.sum()), np.int64)
    runs = np.empty(len(pos), np.int64)
    pos[at], runs[at] = ties, run
    pos[at[first] - 1], runs[at[first] - 1] = ties[first] - 1, run[first]
    return pos, runs


def _grouped(calls: Calls, payer: np.ndarray, n_t: int) -> CallGroups:
    """`calls` (whole columns) as :class:`CallGroups`."""
    tenant = np.ascontiguousarray(calls.tenant, np.int32)
    if len(tenant) and (tenant.min() < 0 or tenant.max() >= n_t):
        bad = int(tenant.min()) if tenant.min() < 0 else int(tenant.max())
        raise ValueError(f"group_calls: tenant row {bad} out of range")
    start = np.ascontiguousarray(calls.start, np.int64)
    counts = TimeCounts(n_t, int(start.min()) if len(start) else 0,
                        int(start.max()) if len(start) else 0)
    counts.add(tenant, start)
    g = CallGroups(counts)
    g.add(tenant, calls.start, payer, calls.row, calls.billable, calls.service, calls.status)
    g.usage_id = calls.usage_id
    return g


def _group_calls(calls: Calls, payer: np.ndarray, n_t: int, threads: int = 1):
    """The calls as records grouped by tenant, each tenant's in (start,
    usage_id) order, and where each tenant's records begin."""
    return _grouped(calls, payer, n_t).finish(threads)[:2]


def _other_events(cfg, fund_i, card_i, n_t: int, point: np.ndarray, run_as_of: int):
    """Fundings, card updates and each tenant's end of run, sorted by
    (tenant, instant processed, kind, own time, file order)."""
    n_f, n_u = len(fund_i), len(card_i)
    tenant = np.concatenate([cfg.funds.tenant[fund_i].astype(np.int64),
                             cfg.card_updates.tenant[card_i].astype(np.int64),
                             np.arange(n_t, dtype=np.int64)])
    own = np.concatenate([cfg.funds.funded_at[fund_i], cfg.card_updates.updated_at[card_i],
                          np.full(n_t, run_as_of, np.int64)]).astype(np.int64)
    kind = np.concatenate([np.full(n_f, EV_FUND, np.int8), np.full(n_u, EV_CARD, np.int8),
                           np.full(n_t, EV_END, np.int8)])
    ref = np.concatenate([fund_i, card_i, np.zeros(n_t, np.int64)]).astype(np.int64)
    time = np.maximum(own, point[tenant])
    order = np.lexsort((ref, own, kind, time, tenant))
    tenant = tenant[order]
    return (time[order], kind[order], ref[order],
            np.searchsorted(tenant, np.arange(n_t + 1), side="left").astype(np.int64))


def _joined(parts: list) -> SimpleNamespace:
    """The outputs of the tenant ranges as one set of arrays (one range's
    as they are: a run's 3M ledger entries are not copied for nothing)."""
    if len(parts) == 1:
        return parts[0]
    return SimpleNamespace(**{k: np.concatenate([getattr(p, k) for p in parts])
                              for k in vars(parts[0])})


def _tenant_ranges(call_lo: np.ndarray, ev_lo: np.ndarray, threads: int) -> list:
    """Tenant ranges of about equal work, one per thread."""
    n_t = len(call_lo) - 1
    work = call_lo + ev_lo
    bounds = [0]
    if threads > 1 and work[-1] > 100_000:
        for k in range(1, threads):
            cut = int(np.searchsorted(work, work[-1] * k // threads))
            if bounds[-1] < cut < n_t:
                bounds.append(cut)
    bounds.append(n_t)
    return list(zip(bounds[:-1], bounds[1:]))


def bill(cfg, plan: Plan, state: BillingState, calls: Calls | CallGroups, *,
         as_of: int | None = None, threads: int = 1) -> Billed:
    """Bill one run: advance every tenant through its fundings, card updates
    and calls to the run's as-of time. `state` is updated in place."""
    n_t = len(plan.tenant_ids)
    if isinstance(calls, Calls):
        payer = calls.payer if calls.payer is not None else (
            plan.payers(calls.tenant, calls.user_id) if len(calls) else np.zeros(0, np.int32))
        calls = _grouped(calls, payer, n_t)
    if calls.n_tenants != n_t:
        raise ValueError(f"billing: calls grouped for {calls.n_tenants} tenants, not {n_t}")
    run_as_of = end_of_run(state, calls.last_start, as_of)

    # kernel state in config order
    ks = SimpleNamespace()
    for name in TENANT_FIELDS:
        ks.__dict__[name] = np.zeros(n_t, np.int32 if name == "rc_count" else np.int64)
    for t, tid in enumerate(plan.tenant_ids):
        st = state.tenants.get(tid)
        if st is None:
            st = {"point": INT64_MIN, "balance": 0, "debt": 0, "card": INT64_MIN,
                  "backoff": INT64_MIN, "rc_instant": INT64_MIN, "rc_count": 0, "next_lot": 1,
                  "seq": 0, "nseq": 0}
        for name in TENANT_FIELDS:
            ks.__dict__[name][t] = st[name]
    updated_card = ks.card.copy()
    ks.card = np.where(updated_card == INT64_MIN, plan.t_card, updated_card)
    card_from_update = updated_card != INT64_MIN
    point = ks.point.copy()

    # events: calls grouped per tenant, the rest in a short sorted list
    fk, ck = fund_keys(cfg), card_keys(cfg)
    fund_i = _unapplied(fk, state.applied_funds)
    fund_i = fund_i[cfg.funds.funded_at[fund_i] <= run_as_of] if len(fund_i) else fund_i
    card_i = _unapplied(ck, state.applied_cards)
    card_i = card_i[cfg.card_updates.updated_at[card_i] <= run_as_of] if len(card_i) else card_i
    n_c = len(calls)
    recs, call_lo, where = calls.finish(threads)
    ev_time, ev_kind, ev_ref, ev_lo = _other_events(cfg, fund_i, card_i, n_t, point, run_as_of)

    # lots: live lots from the state in rings sized for this run
    per_t_funds = np.bincount(cfg.funds.tenant[fund_i].astype(np.int64), minlength=n_t)
    per_t_calls = np.diff(call_lo)
    live = [state.lots.get(tid, []) for tid in plan.tenant_ids]
    lot_cap = np.empty(n_t, np.int32)
    for t in range(n_t):
        extra = 0
        if plan.t_auto[t] and plan.t_recharge[t] > 0:
            need = -(-int(plan.t_trigger[t]) // int(plan.t_recharge[t])) + 2 * 10 + 2
            extra = min(need, 10 * (int(per_t_calls[t]) + len(live[t]) + int(per_t_funds[t])) + 11)
        lot_cap[t] = max(1, len(live[t]) + int(per_t_funds[t]) + extra)
    lot_base = np.zeros(n_t, np.int64)
    lot_base[1:] = np.cumsum(lot_cap.astype(np.int64))[:-1]
    total = int(lot_cap.sum())
    for name in ("lot_id", "lot_funded", "lot_expires", "lot_amount", "lot_remaining"):
        ks.__dict__[name] = np.zeros(total, np.int64)
    ks.lot_base, ks.lot_cap = lot_base, lot_cap
    ks.lot_head = np.zeros(n_t, np.int32)
    ks.lot_count = np.array([len(x) for x in live], np.int32)
    for t, lots in enumerate(live):
        for k, lot in enumerate(lots):
            j = lot_base[t] + k
            (ks.lot_id[j], ks.lot_funded[j], ks.lot_expires[j], ks.lot_amount[j],
             ks.lot_remaining[j]) = lot
    ks.cur_call = call_lo[:-1].copy()
    ks.charged = np.zeros(n_t, np.int64)
    ks.cur_ev = ev_lo[:-1].copy()

    # pools and either-cap groups
    n_p = len(plan.pool_names)
    ks.p_month = np.full(n_p, -1, np.int32)
    ks.p_used = np.zeros(n_p, np.int64)
    ks.p_size = np.zeros(n_p, np.int64)
    ks.p_flags = np.zeros(n_p, np.uint8)
    ks.p_cp = np.full(n_p, -1, np.int32)      # the pass's size-lookup cursors
    pool_keys = [(plan.tenant_ids[t], name) for t, name in zip(plan.pool_tenant, plan.pool_names)]
    for p, key in enumerate(pool_keys):
        if key in state.pools:
            ks.p_month[p], ks.p_used[p], ks.p_size[p], ks.p_flags[p] = state.pools[key]
    ks.cap_month = np.array([state.caps.get(k, -1) for k in plan.cap_keys], np.int32) \
        if plan.cap_keys else np.zeros(0, np.int32)

    ins = SimpleNamespace(
        calls=recs, call_lo=call_lo, ev_time=ev_time, ev_kind=ev_kind, ev_ref=ev_ref,
        ev_lo=ev_lo, point0=point,
        fund_amount=np.ascontiguousarray(cfg.funds.amount, np.int64),
        card_valid=np.ascontiguousarray(cfg.card_updates.card_valid_until, np.int64),
        **{k: getattr(plan, k) for k in (
            "row_terms", "row_country", "row_premium", "n_countries", "domestic", "zone_a",
            "t_country", "t_credits", "t_auto", "t_trigger", "t_recharge", "payer_lo",
            "payer_hi", "lic_from", "lic_to", "lic_loc", "lic_credits", "lic_user_pool",
            "lic_dom_pool", "lic_intl_pool", "lic_dial_pool", "pool_cp_lo", "pool_cp_hi",
            "cp_time", "cp_size", "pool_partner", "pool_cap", "pool_sku")})
    perm = buffers.empty(n_c, np.int32)    # int32: grouping refuses 2**31 calls or more

    # tenants are independent: ranges of them run on threads
    ranges = _tenant_ranges(call_lo, ev_lo, threads)
    if len(ranges) == 1:
        parts = [_run_range(ins, ks, perm, *ranges[0])]
    else:
        with ThreadPoolExecutor(len(ranges), thread_name_prefix="ratecore-bill") as ex:
            parts = list(ex.map(lambda r: _run_range(ins, ks, perm, *r), ranges))
    led, notes, flushed = (_joined([p[j] for p in parts]) for j in range(3))

    # state back, by name
    card_updated = np.zeros(n_t, bool)
    card_updated[cfg.card_updates.tenant[card_i].astype(np.int64)] = True
    for t, tid in enumerate(plan.tenant_ids):
        st = {name: int(ks.__dict__[name][t]) for name in TENANT_FIELDS}
        if not card_from_update[t] and not card_updated[t]:
            st["card"] = INT64_MIN
        st["point"] = max(st["point"], run_as_of)
        state.tenants[tid] = st
        lots = []
        for k in range(int(ks.lot_count[t])):
            j = int(lot_base[t] + (ks.lot_head[t] + k) % lot_cap[t])
            lots.append((int(ks.lot_id[j]), int(ks.lot_funded[j]), int(ks.lot_expires[j]),
                         int(ks.lot_amount[j]), int(ks.lot_remaining[j])))
        state.lots[tid] = lots
    # as Python ints once, not 13k numpy scalars at a time (20M sample)
    for key, month, used, size, flags in zip(pool_keys, ks.p_month.tolist(), ks.p_used.tolist(),
                                             ks.p_size.tolist(), ks.p_flags.tolist()):
        if month >= 0:
            state.pools[key] = (month, used, size, flags)
    for g, key in enumerate(plan.cap_keys):
        if ks.cap_month[g] >= 0:
            state.caps[key] = int(ks.cap_month[g])
    for i in fund_i:
        state.applied_funds[fk[i]] += 1
    for i in card_i:
        state.applied_cards[ck[i]] += 1
    state.as_of = run_as_of

    return Billed(
        recs.view(BILL_DTYPE), perm, where, call_lo,
        ledger=_ledger_table(plan, cfg, calls.usage_id, led),
        notifications=_notes_table(plan, notes), pools=_pools_table(plan, state, flushed, ks),
        as_of=run_as_of, charged=ks.charged)


def month_openings(lo: int, hi: int) -> list:
    """UTC month starts (microseconds) t with lo < t <= hi."""
    if hi <= lo:
        return []
    first = np.datetime64(max(lo, -(2**62)), "us").astype("datetime64[M]") + 1
    last = np.datetime64(hi, "us").astype("datetime64[M]")
    months = np.arange(first, last + 1, dtype="datetime64[M]")
    return [int(m.astype("datetime64[us]").astype(np.int64)) for m in months]


def end_of_run(state: BillingState, last_start: int | None, as_of: int | None) -> int:
    """The instant a run ends at: the latest of the state's, `as_of` and
    its last call's start."""
    return max([state.as_of] + ([int(as_of)] if as_of is not None else [])
               + ([int(last_start)] if last_start is not None else []))


def run_openings(state: BillingState, first_start: int | None, last_start: int | None,
                 as_of: int | None) -> list[int]:
    """The month openings a run from `state` over calls starting from
    `first_start` to `last_start` passes: a run stops its billing at each
    and keeps the state there for --rerate (a first run: from the opening
    of its first call's month)."""
    final = end_of_run(state, last_start, as_of)
    if final == INT64_MIN:          # nothing happened yet: no month to open
        return []
    lower = state.as_of
    if lower == INT64_MIN:
        first = first_start if first_start is not None else final
        lower = month_openings(first - 32 * 86_400_000_000, first)[-1] - 1
    return month_openings(lower, final)


def merge_pools(tables: list[pa.Table]) -> pa.Table:
    """The pools tables of consecutive stretches of one run as one: a later
    stretch's figure for the same pool-month is the newer one."""
    pools = pa.concat_tables(tables)
    if pools.num_rows:
        key = pc.binary_join_element_wise(pools.column("tenant_id"), pools.column("month"),
                                          pools.column("pool"), "\x1f")
        last = pa.table({"k": key, "i": pa.array(np.arange(pools.num_rows))}).group_by(
            "k", use_threads=False).aggregate([("i", "max")]).column("i_max")
        pools = pools.take(last)
        pools = pools.sort_by([("tenant_id", "ascending"), ("month", "ascending"),
                               ("pool", "ascending")])
    return pools


# ---- output tables ------------------------------------------------------------

MONEY = pa.decimal128(18, 6)
TIME = pa.timestamp("us", tz="UTC")
# tenant_id and kind are dictionaries over the tenants and the kinds: a
# ledger of 3.2M entries builds them without copying text (Parquet stores
# both dictionary-encoded either way)
LEDGER_SCHEMA = pa.schema([
    ("tenant_id", pa.dictionary(pa.int32(), pa.string())), ("seq", pa.int64()), ("time", TIME),
    ("kind", pa.dictionary(pa.int8(), pa.string())),
    ("lot_id", pa.int64()), ("amount", MONEY), ("balance_after", MONEY),
    ("reference", pa.string()), ("usage_id", pa.string())])
NOTIFICATION_SCHEMA = pa.schema([
    ("tenant_id", pa.string()), ("seq", pa.int64()), ("time", TIME), ("kind", pa.string()),
    ("amount", MONEY), ("balance", MONEY), ("pool", pa.string())])
POOL_SCHEMA = pa.schema([
    ("tenant_id", pa.string()), ("month", pa.string()), ("pool", pa.string()),
    ("capability", pa.string()), ("kind", pa.string()), ("scope", pa.string()),
    ("size_seconds", pa.int64()), ("used_seconds", pa.int64())])


def _take(values, idx: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """values[idx] as strings; null where `mask`. A plain string array
    without nulls (usage_id) is gathered by the prefetching kernel."""
    if not isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = pa.array(list(values) or [None], pa.string())
    if isinstance(values, pa.ChunkedArray) and values.num_chunks == 1:
        values = values.chunk(0)
    if isinstance(values, pa.ChunkedArray) or values.type != pa.string() or values.null_count:
        return pc.take(values, pa.array(idx, mask=mask)).cast(pa.string())
    n = len(idx)
    keep = np.ones(n, bool) if mask is None else ~np.asarray(mask, bool)
    _, off_buf, data_buf = values.buffers()
    offsets = np.frombuffer(off_buf, np.int32)[values.offset: values.offset + len(values) + 1]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    off, chars = take_strings(offsets, data, np.ascontiguousarray(idx, np.int64),
                              keep.view(np.uint8))
    nulls = n - int(np.count_nonzero(keep))
    validity = pa.array(keep).buffers()[1] if nulls else None
    return pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(off),
                                                  pa.py_buffer(chars)], null_count=nulls)


def _ledger_table(plan, cfg, usage_id, led) -> pa.Table:
    return pa.table({
        "tenant_id": pa.DictionaryArray.from_arrays(
            pa.array(led.tenant), pa.array(list(plan.tenant_ids) or [""], pa.string())),
        "seq": pa.array(led.seq), "time": pa.array(led.time, TIME),
        "kind": pa.DictionaryArray.from_arrays(pa.array(led.kind),
                                               pa.array(list(LEDGER_KINDS), pa.string())),
        "lot_id": pa.array(led.lot, mask=led.lot == 0),
        "amount": fields.words_to_decimal(led.amount),       # the kernel wrote them so
        "balance_after": fields.words_to_decimal(led.balance),
        "reference": _take(cfg.funds.reference, led.ref, led.kind != 0),
        "usage_id": _take(usage_id, led.ref, led.kind != 3)}, schema=LEDGER_SCHEMA)


def _notes_table(plan, notes) -> pa.Table:
    kind = notes.kind.astype(np.int64)
    is_pool = np.isin(kind, POOL_NOTIFICATIONS)
    return pa.table({
        "tenant_id": _take(plan.tenant_ids, notes.tenant), "seq": pa.array(notes.seq),
        "time": pa.array(notes.time, TIME), "kind": _take(list(NOTIFICATION_KINDS), kind),
        "amount": fields.micro_to_decimal(notes.amount, is_pool),
        "balance": fields.micro_to_decimal(notes.balance),
        "pool": _take(plan.pool_names, notes.pool, ~is_pool)}, schema=NOTIFICATION_SCHEMA)


def _pool_labels(plan) -> SimpleNamespace:
    """Each plan pool's tenant_id and name, the parts of its name, and the
    ranks that order pools by tenant_id then name; built once per plan."""
    cached = plan.__dict__.get("_pool_labels")
    if cached is None:
        tenant = [plan.tenant_ids[t] for t in plan.pool_tenant.tolist()]
        cached = _labels(tenant, list(plan.pool_names))
        plan.__dict__["_pool_labels"] = cached
    return cached


def _labels(tenant: list, name: list) -> SimpleNamespace:
    parts = [n.split(":", 2) for n in name]
    col = lambda values: pa.array(values, pa.string())
    rank = lambda values: np.asarray(pc.rank(col(values), "ascending", tiebreaker="dense"),
                                     np.int64) if values else np.zeros(0, np.int64)
    return SimpleNamespace(
        tenant=col(tenant), name=col(name), capability=col([p[0] for p in parts]),
        kind=col([p[1] for p in parts]), scope=col([p[2] for p in parts]),
        tenant_rank=rank(tenant), name_rank=rank(name))


def _pools_table(plan, state, flushed, ks) -> pa.Table:
    """Month use per pool: months closed during the run, and every month the
    state still holds (the current one of each pool); a pool-month closed
    more than once (late calls) shows its last figures, the current month
    over a closed one. Pools of the plan are taken from the pass's arrays;
    pools an earlier run's config had (still in the state) by their keys."""
    labels = _pool_labels(plan)
    live = ks.p_month >= 0
    n_p = len(plan.pool_names)
    # rows: (pool, month, size, used), closed months first, current ones last
    pool = [flushed.pool.astype(np.int64), np.flatnonzero(live & (ks.p_used > 0))]
    month = [flushed.month.astype(np.int64), ks.p_month[pool[1]].astype(np.int64)]
    size = [flushed.size, ks.p_size[pool[1]]]
    used = [flushed.used, ks.p_used[pool[1]]]
    if len(state.pools) != int(live.sum()):     # pools the plan does not have
        ours = {(plan.tenant_ids[t], n) for t, n in zip(plan.pool_tenant.tolist(),
                                                        plan.pool_names)}
        extra = [(k, v) for k, v in state.pools.items() if k not in ours and v[1] > 0]
        labels = _labels(labels.tenant.to_pylist() + [k[0] for k, _ in extra],
                         labels.name.to_pylist() + [k[1] for k, _ in extra])
        pool.append(n_p + np.arange(len(extra), dtype=np.int64))
        month.append(np.array([v[0] for _, v in extra], np.int64))
        size.append(np.array([v[2] for _, v in extra], np.int64))
        used.append(np.array([v[1] for _, v in extra], np.int64))
    pool, month, size, used = (np.concatenate(x) for x in (pool, month, size, used))
    # the last row of each pool-month
    key = pool * (1 << 32) + month
    last = len(key) - 1 - np.unique(key[::-1], return_index=True)[1]
    order = last[np.lexsort((labels.name_rank[pool[last]], month[last],
                             labels.tenant_rank[pool[last]]))]
    at = pa.array(pool[order])
    months, month_at = np.unique(month[order], return_inverse=True)
    return pa.table({
        "tenant_id": labels.tenant.take(at),
        "month": pa.array([month_text(m) for m in months.tolist()], pa.string()).take(
            pa.array(month_at.reshape(-1))),
        "pool": labels.name.take(at), "capability": labels.capability.take(at),
        "kind": labels.kind.take(at), "scope": labels.scope.take(at),
        "size_seconds": pa.array(size[order], pa.int64()),
        "used_seconds": pa.array(used[order], pa.int64())}, schema=POOL_SCHEMA)


__all__ = [
    "LEDGER_KINDS",
    "NOTIFICATION_KINDS",
    "Billed",
    "BillingState",
    "Calls",
    "Plan",
    "bill",
    "compile_plan",
]
