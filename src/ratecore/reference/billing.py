"""Reference billing: SPEC §5 (minute pools) and §6 (Communications Credits)
and the incremental parts of §8, one event at a time, in plain Python.

This is the definition the ``_billing`` kernel is tested against: dicts,
lists, ``Decimal`` money and ``datetime`` times, written to be read.

A :class:`Billing` keeps every tenant's state between runs. Each
:meth:`Billing.run` takes the priced calls of one run, applies the fundings
and card updates not applied yet, and advances every tenant to the run's
as-of time. Decisions where the spec is silent (also in the README):

- A payer without a license in force at the call's start is located in its
  tenant's country.
- The pool size is evaluated at the instant the call is processed (its start,
  or the tenant's point for a late call); the payer's licenses at its start.
- A pool is "used up" when its size is positive and its use reaches it.
- A funding or card update dated before the tenant's point (added to the
  config after a later run) is applied at the point, like a late CDR; a late
  funding's lot counts from the point.
- A call whose credit part prices to zero debits nothing (no ledger entry).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from ratecore.reference.pricing import DeckRow, charge

PREMIUM_CLASSES = ("premium", "shared_cost", "special")
RECHARGES_PER_INSTANT = 10
BACKOFF = timedelta(hours=24)
ZERO = Decimal(0)


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    country: str
    credits_enabled: bool = True
    auto_recharge: bool = False
    trigger: Decimal = ZERO
    recharge: Decimal = ZERO
    card_valid_until: datetime | None = None   # first instant the card is invalid


@dataclass(frozen=True)
class License:
    tenant_id: str
    user_id: str
    usage_location: str
    sku: str
    assigned_from: datetime
    assigned_to: datetime | None = None        # exclusive

    def in_force(self, t: datetime) -> bool:
        return self.assigned_from <= t and (self.assigned_to is None or t < self.assigned_to)


@dataclass(frozen=True)
class Funding:
    tenant_id: str
    funded_at: datetime
    amount: Decimal
    reference: str | None = None


@dataclass(frozen=True)
class CardUpdate:
    tenant_id: str
    updated_at: datetime
    card_valid_until: datetime


@dataclass(frozen=True)
class Call:
    """A priced CDR: pricing's status, deck row and billable seconds."""

    usage_id: str
    tenant_id: str
    user_id: str | None
    start: datetime
    service: str | None          # None for free calls
    status: str                  # free, zero_duration, no_rate, blocked_destination, charged
    row: DeckRow | None
    billable: int


@dataclass
class Outcome:
    """What billing made of one call: the billing columns of its rated row."""

    domestic: bool | None
    pool: str | None
    pool_seconds: int
    charged_seconds: int
    charge: Decimal
    capability: str | None
    status: str
    unbilled_seconds: int
    unbilled_amount: Decimal
    balance_after: Decimal
    late: bool


@dataclass
class Lot:
    lot_id: int
    funded_at: datetime
    amount: Decimal
    remaining: Decimal
    expires_at: datetime


@dataclass
class PoolUse:
    size: int = 0        # seconds, at the last draw
    used: int = 0        # seconds
    notified: set = field(default_factory=set)


@dataclass
class TenantState:
    point: datetime | None = None
    balance: Decimal = ZERO
    debt: Decimal = ZERO
    lots: list = field(default_factory=list)            # all lots, oldest first
    card_valid_until: datetime | None = None
    backoff_until: datetime | None = None
    recharge_instant: datetime | None = None
    recharge_count: int = 0
    next_lot: int = 1
    seq: int = 0
    nseq: int = 0
    capped: set = field(default_factory=set)            # (month, sku, group)


def add_months(t: datetime, months: int) -> datetime:
    """`t` plus calendar months, same time of day, the day clamped to the month's end."""
    m = t.month - 1 + months
    year, month = t.year + m // 12, m % 12 + 1
    day = min(t.day, calendar.monthrange(year, month)[1])
    return t.replace(year=year, month=month, day=day)


def month_of(t: datetime) -> str:
    return f"{t.year:04d}-{t.month:02d}"


def pool_name(sku: str, kind: str, scope: str) -> str:
    """``SKU:kind:scope``; scope is the pool's country group, the user (per-user
    pools) or ``tenant`` (conferencing dial-out)."""
    return f"{sku}:{kind}:{scope}"


class Billing:
    """Tenants' pools, lots and timers, carried from run to run."""

    def __init__(self, tenants, licenses, skus, zones):
        self.tenants = {t.tenant_id: t for t in tenants}
        self.licenses = list(licenses)
        self.skus = skus
        self.zones = zones
        self.credits_skus = {s for s in skus.skus if "credits" in skus.pools[s]}
        self.state = {t: TenantState(card_valid_until=self.tenants[t].card_valid_until)
                      for t in self.tenants}
        self.pools: dict[tuple[str, str, str], PoolUse] = {}   # (tenant, month, pool)
        self.applied_funds: list[Funding] = []
        self.applied_cards: list[CardUpdate] = []
        self.as_of: datetime | None = None
        self.ledger: list[dict] = []
        self.notifications: list[dict] = []

    # ---- one run -------------------------------------------------------

    def run(self, calls, fundings=(), card_updates=(), as_of: datetime | None = None):
        """Bill one run's calls; returns {usage_id: Outcome}. Ledger entries
        and notifications of the run are appended to ``self.ledger`` and
        ``self.notifications``; pools update ``self.pools``."""
        calls = list(calls)
        candidates = [t for t in [as_of, self.as_of] + [c.start for c in calls] if t]
        if not candidates:
            return {}
        run_as_of = max(candidates)
        fresh_funds = _unapplied(fundings, self.applied_funds)
        fresh_cards = _unapplied(card_updates, self.applied_cards)
        outcomes = {}
        for tid in self.tenants:
            st = self.state[tid]
            events = []
            for f in fresh_funds:
                if f.tenant_id == tid and f.funded_at <= run_as_of:
                    events.append((_at(f.funded_at, st.point), 0, f.funded_at, "", f))
            for u in fresh_cards:
                if u.tenant_id == tid and u.updated_at <= run_as_of:
                    events.append((_at(u.updated_at, st.point), 1, u.updated_at, "", u))
            for c in calls:
                if c.tenant_id == tid:
                    events.append((_at(c.start, st.point), 2, c.start, c.usage_id, c))
            events.sort(key=lambda e: e[:4])
            start_point = st.point
            for now, kind, _, _, obj in events:
                self._advance(tid, now)
                if kind == 0:
                    self._fund(tid, now, obj.amount, "fund", obj.reference)
                    self.applied_funds.append(obj)
                elif kind == 1:
                    st.card_valid_until = obj.card_valid_until
                    st.backoff_until = None
                    self.applied_cards.append(obj)
                else:
                    late = start_point is not None and obj.start < start_point
                    outcomes[obj.usage_id] = self._call(tid, now, obj, late)
                st.point = now if st.point is None else max(st.point, now)
            self._advance(tid, run_as_of)
            st.point = run_as_of
        self.as_of = run_as_of
        return outcomes

    # ---- events --------------------------------------------------------

    def _advance(self, tid: str, now: datetime) -> None:
        """Expire every lot whose expires_at is at or before `now`, in order."""
        st = self.state[tid]
        while True:
            due = [lot for lot in st.lots if lot.expires_at <= now]
            if not due:
                return
            lot = due[0]
            st.lots.remove(lot)
            if lot.remaining > 0:
                before = st.balance
                st.balance -= lot.remaining
                self._entry(tid, lot.expires_at, "expire", lot.lot_id, -lot.remaining)
                self._notify(tid, lot.expires_at, "funds_expired", lot.remaining)
                if before > 0 and st.balance <= 0:
                    self._notify(tid, lot.expires_at, "balance_depleted", lot.remaining)
                self._recharge(tid, lot.expires_at)

    def _fund(self, tid: str, now: datetime, amount: Decimal, kind: str, reference=None) -> None:
        st = self.state[tid]
        pays = min(st.debt, amount)
        st.debt -= pays
        lot = Lot(st.next_lot, now, amount, amount - pays, add_months(now, 12))
        st.next_lot += 1
        if lot.remaining > 0:
            st.lots.append(lot)
        st.balance += amount
        self._entry(tid, now, kind, lot.lot_id, amount, reference=reference)

    def _debit(self, tid: str, now: datetime, amount: Decimal, usage_id: str) -> None:
        st = self.state[tid]
        before = st.balance
        left = amount
        for lot in list(st.lots):
            if left == 0:
                break
            take = min(lot.remaining, left)
            lot.remaining -= take
            left -= take
            st.balance -= take
            self._entry(tid, now, "debit", lot.lot_id, -take, usage_id=usage_id)
            if lot.remaining == 0:
                st.lots.remove(lot)
        if left > 0:
            st.debt += left
            st.balance -= left
            self._entry(tid, now, "debit", None, -left, usage_id=usage_id)
        if before > 0 and st.balance <= 0:
            self._notify(tid, now, "balance_depleted", amount)

    def _recharge(self, tid: str, now: datetime) -> None:
        t, st = self.tenants[tid], self.state[tid]
        if not t.auto_recharge or st.balance >= t.trigger:
            return
        if st.backoff_until is not None and now < st.backoff_until:
            return
        if st.recharge_instant != now:
            st.recharge_instant, st.recharge_count = now, 0
        while st.balance < t.trigger and st.recharge_count < RECHARGES_PER_INSTANT:
            st.recharge_count += 1
            if st.card_valid_until is not None and now < st.card_valid_until:
                self._fund(tid, now, t.recharge, "recharge")
                self._notify(tid, now, "recharge_succeeded", t.recharge)
            else:
                self._entry(tid, now, "recharge_failed", None, ZERO)
                self._notify(tid, now, "recharge_failed", t.recharge)
                st.backoff_until = now + BACKOFF
                return

    def _call(self, tid: str, now: datetime, call: Call, late: bool) -> Outcome:
        t, st = self.tenants[tid], self.state[tid]
        row = call.row
        held = sorted((lic for lic in self.licenses
                       if lic.tenant_id == tid and lic.user_id == call.user_id
                       and lic.in_force(call.start)),
                      key=lambda lic: ("user" not in self.skus.pools[lic.sku],
                                       self.skus.skus.index(lic.sku)))
        location = held[0].usage_location if held else t.country
        domestic = self.zones.is_domestic(location, row.country) if row is not None else None
        out = Outcome(domestic, None, 0, 0, ZERO, None, call.status, 0, ZERO, st.balance, late)
        if call.status != "charged":
            out.capability = "FREECALL" if call.status == "free" else None
            return out

        month = month_of(now)
        b = call.billable
        taken, pool_sku = 0, None
        for sku, kind, scope in self._candidates(call, row, held, domestic):
            name = pool_name(sku, kind, scope)
            size = self._pool_size(tid, sku, kind, scope, now)
            use = self.pools.setdefault((tid, month, name), PoolUse())
            if self._exhausted(tid, month, sku, kind, scope, size, use.used, now):
                if not use.used and not use.size:
                    del self.pools[(tid, month, name)]
                continue
            taken = min(b, size - use.used)
            use.used += taken
            use.size = size
            for pct, kind_n in ((80, "pool_80"), (100, "pool_100")):
                if use.used * 100 >= size * pct and kind_n not in use.notified:
                    use.notified.add(kind_n)
                    self._notify(tid, now, kind_n, None, pool=name)
            if use.used >= size and self._either_cap(sku):
                st.capped.add((month, sku, scope))
            out.pool, pool_sku = name, sku
            break
        out.pool_seconds = taken
        c = b - taken
        if c == 0:
            out.status, out.capability = "included", pool_sku
            return out
        amount = charge(row, c)
        licensed = t.credits_enabled and (call.service == "tollfree_inbound" or any(
            lic.sku in self.credits_skus for lic in held))
        if licensed and st.balance > 0:
            if amount > 0:
                self._debit(tid, now, amount, call.usage_id)
            out.status = "partly_included" if taken else "charged"
            out.capability = sorted(self.credits_skus)[0] if self.credits_skus else None
            out.charged_seconds, out.charge = c, amount
            out.balance_after = st.balance
            if amount > 0:
                self._recharge(tid, now)
            return out
        why = "no_license" if not licensed else "no_funds"
        out.status = ("cut_" if taken else "blocked_") + why
        out.capability = pool_sku
        out.unbilled_seconds, out.unbilled_amount = c, amount
        return out

    # ---- pools ---------------------------------------------------------

    def _candidates(self, call: Call, row: DeckRow, held, domestic: bool):
        """Pools the call may draw from, in order (SPEC §5)."""
        if row.number_class in PREMIUM_CLASSES:
            return []
        out = []
        pools = self.skus.pools
        group = self.zones.group_of
        if call.service == "outbound":
            if domestic:
                out += [(lic.sku, "user", lic.user_id) for lic in held if "user" in pools[lic.sku]]
                out += [(lic.sku, "domestic", group(lic.usage_location))
                        for lic in held if "domestic" in pools[lic.sku]]
            else:
                out += [(lic.sku, "international", group(lic.usage_location))
                        for lic in held if "international" in pools[lic.sku]]
        elif call.service == "conference_dialout" and row.country in self.zones.zone_a:
            out += [(lic.sku, "dialout", "tenant") for lic in held if "dialout" in pools[lic.sku]]
        return out

    def _pool_size(self, tid: str, sku: str, kind: str, scope: str, now: datetime) -> int:
        seconds = 0
        for lic in self.licenses:
            if lic.tenant_id != tid or lic.sku != sku or not lic.in_force(now):
                continue
            if kind == "user" and lic.user_id != scope:
                continue
            if kind in ("domestic", "international") and self.zones.group_of(lic.usage_location) != scope:
                continue
            seconds += 60 * self.skus.minutes_for(sku, kind, lic.usage_location)
        return seconds

    def _either_cap(self, sku: str) -> bool:
        pools = self.skus.pools[sku]
        return "domestic" in pools and "international" in pools

    def _exhausted(self, tid, month, sku, kind, scope, size, used, now) -> bool:
        if size <= used:
            return True
        if not self._either_cap(sku) or kind not in ("domestic", "international"):
            return False
        st = self.state[tid]
        if (month, sku, scope) in st.capped:
            return True
        other = "international" if kind == "domestic" else "domestic"
        other_size = self._pool_size(tid, sku, other, scope, now)
        other_use = self.pools.get((tid, month, pool_name(sku, other, scope)))
        if other_size > 0 and other_use is not None and other_use.used >= other_size:
            st.capped.add((month, sku, scope))
            return True
        return False

    # ---- ledger and notifications --------------------------------------

    def _entry(self, tid, time, kind, lot_id, amount, reference=None, usage_id=None) -> None:
        st = self.state[tid]
        st.seq += 1
        self.ledger.append({"tenant_id": tid, "seq": st.seq, "time": time, "kind": kind,
                            "lot_id": lot_id, "amount": amount, "balance_after": st.balance,
                            "reference": reference, "usage_id": usage_id})

    def _notify(self, tid, time, kind, amount, pool=None) -> None:
        st = self.state[tid]
        st.nseq += 1
        self.notifications.append({"tenant_id": tid, "seq": st.nseq, "time": time, "kind": kind,
                                   "amount": amount, "balance": st.balance, "pool": pool})


def _at(t: datetime, point: datetime | None) -> datetime:
    """When an event dated `t` is processed: at `t`, or at the tenant's point if later."""
    return t if point is None or t >= point else point


def _unapplied(items, applied) -> list:
    """Items not applied yet (as a multiset: two identical rows are two items)."""
    left = list(applied)
    out = []
    for it in items:
        if it in left:
            left.remove(it)
        else:
            out.append(it)
    return out
