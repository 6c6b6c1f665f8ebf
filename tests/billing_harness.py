"""Bill calls through the kernel and through the reference, comparably.

A :class:`Both` holds one config and the billing state of each side, so a
test (or the hypothesis state machine) can run several runs in a row and
compare every rated outcome, ledger entry, notification and pool.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
from conftest import write_csv, write_deck
from pricing_harness import reference_rows

from ratecore import billing, pricing
from ratecore.config import load_config
from ratecore.reference import billing as ref
from ratecore.reference import pricing as ref_pricing

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min
TENANT_HEADER = ["tenant_id", "name", "country", "currency", "deck", "credits_enabled",
                 "auto_recharge", "trigger_amount", "recharge_amount", "card_expires"]
LICENSE_HEADER = ["tenant_id", "user_id", "usage_location", "sku", "assigned_from",
                  "assigned_to"]


def at(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(us))


def us(t: datetime) -> int:
    return (t - EPOCH) // timedelta(microseconds=1)


def tenant(tid="t1", country="US", credits=True, auto=False, trigger="", recharge="",
           card="", deck="d1", currency="USD"):
    return {"tenant_id": tid, "name": tid.upper(), "country": country, "currency": currency,
            "deck": deck, "credits_enabled": "true" if credits else "false",
            "auto_recharge": "true" if auto else "false", "trigger_amount": trigger,
            "recharge_amount": recharge, "card_expires": card}


def lic(user, sku, location="US", frm="2024-01-01", to="", tid="t1"):
    return {"tenant_id": tid, "user_id": user, "usage_location": location, "sku": sku,
            "assigned_from": frm, "assigned_to": to}


def fund(when, amount, tid="t1", reference="PO-1"):
    return {"tenant_id": tid, "funded_at": when, "amount": amount, "reference": reference}


def card_update(when, expires, tid="t1"):
    return {"tenant_id": tid, "updated_at": when, "card_expires": expires}


def write_config(root: Path, deck_rows, tenants, licenses=(), funds=(), cards=()) -> Path:
    config = Path(root) / "config"
    write_deck(config / "decks" / "deck.csv", deck_rows)
    write_csv(config / "tenants.csv", TENANT_HEADER, tenants)
    write_csv(config / "licenses.csv", LICENSE_HEADER, licenses)
    write_csv(config / "funds.csv", ["tenant_id", "funded_at", "amount", "reference"], funds)
    write_csv(config / "card_updates.csv", ["tenant_id", "updated_at", "card_expires"], cards)
    return config


def reference_billing(cfg) -> ref.Billing:
    """The reference's view of a loaded config."""
    t = cfg.tenants

    def when(v):
        return None if v == INT64_MIN else at(v)

    tenants = [ref.Tenant(t.ids[i].as_py(), t.country[i], bool(t.credits_enabled[i]),
                          bool(t.auto_recharge[i]), Decimal(int(t.trigger_micro[i])).scaleb(-6),
                          Decimal(int(t.recharge_micro[i])).scaleb(-6),
                          when(int(t.card_valid_until[i])))
               for i in range(len(t.ids))]
    li = cfg.licenses
    licenses = [ref.License(t.ids[int(li.tenant[i])].as_py(), li.user_id[i],
                            li.usage_location[i], li.sku[i], at(li.assigned_from[i]),
                            None if li.assigned_to[i] == INT64_MAX else at(li.assigned_to[i]))
                for i in range(len(li.sku))]
    return ref.Billing(tenants, licenses, cfg.skus, cfg.zones)


def reference_events(cfg):
    t = cfg.tenants
    f, u = cfg.funds, cfg.card_updates
    funds = [ref.Funding(t.ids[int(f.tenant[i])].as_py(), at(f.funded_at[i]),
                         Decimal(int(f.amount[i])).scaleb(-6), f.reference[i] or "")
             for i in range(len(f.amount))]
    cards = [ref.CardUpdate(t.ids[int(u.tenant[i])].as_py(), at(u.updated_at[i]),
                            at(u.card_valid_until[i])) for i in range(len(u.tenant))]
    return funds, cards


def check_records(b: billing.Billed, tenant: np.ndarray, n_tenants: int) -> None:
    """The billed records read three ways agree: all columns at once, any
    stretch of calls on its own (as a run writes its parts), and each
    tenant's charge as the pass added it up."""
    cols = b.columns()
    want = np.zeros(n_tenants, np.int64)
    np.add.at(want, tenant, cols["charge"])
    assert b.charges_by_tenant().tolist() == want.tolist()
    n = len(b)
    for lo, hi in ((0, n // 2), (n // 3, n), (n, n)):
        part = b.slice(lo, hi).columns()
        for name, values in cols.items():
            assert part[name].tolist() == values[lo:hi].tolist(), name


class Both:
    """One config, billed by the kernel and by the reference, run after run."""

    def __init__(self, config_dir: Path):
        self.cfg = load_config(config_dir)
        self.plan = billing.compile_plan(self.cfg)
        self.state = billing.BillingState()
        self.ref = reference_billing(self.cfg)
        self.rows = reference_rows(self.cfg.book)
        self.ledger_k, self.notes_k = [], []
        self.pools_k = {}

    def reload(self, config_dir: Path) -> None:
        """A changed config (new licenses, fundings, card updates) for the next run."""
        self.cfg = load_config(config_dir)
        self.plan = billing.compile_plan(self.cfg)
        fresh = reference_billing(self.cfg)
        self.ref.tenants, self.ref.licenses = fresh.tenants, fresh.licenses
        for tid in fresh.state:
            self.ref.state.setdefault(tid, fresh.state[tid])
        self.rows = reference_rows(self.cfg.book)

    # ---- kernel ----
    def kernel(self, cdrs: list[dict], as_of=None, threads=1):
        cfg = self.cfg
        n = len(cdrs)
        tenant_row = cfg.tenants.lookup(pa.array([c["tenant_id"] for c in cdrs], pa.string())) \
            if n else np.zeros(0, np.int64)
        assert (tenant_row >= 0).all()
        deck = cfg.tenants.deck_index[tenant_row] if n else np.zeros(0, np.int16)
        start = pa.array([c["start_time"] for c in cdrs], pa.timestamp("us", tz="UTC"))
        p = pricing.price(
            cfg.book,
            call_type=pricing.call_type_codes(pa.array([c["call_type"] for c in cdrs], pa.string())),
            tollfree=pricing.tollfree_flags(pa.array([c.get("number_type") for c in cdrs],
                                                     pa.string())),
            deck=deck.astype(np.int16),
            caller=pa.array([c.get("caller_number") for c in cdrs], pa.string()),
            callee=pa.array([c.get("callee_number") for c in cdrs], pa.string()), start=start,
            duration=pa.array([c["duration_seconds"] for c in cdrs], pa.int64()))
        assert (p.status >= 0).all(), "the harness bills valid CDRs only"
        calls = billing.Calls(
            tenant=tenant_row.astype(np.int32),
            user_id=pa.array([c.get("user_id") for c in cdrs], pa.string()),
            usage_id=pa.array([c["usage_id"] for c in cdrs], pa.string()),
            start=np.array([us(c["start_time"]) for c in cdrs], np.int64),
            service=p.service, status=p.status, row=p.row, billable=p.billable)
        b = billing.bill(cfg, self.plan, self.state, calls,
                         as_of=None if as_of is None else us(as_of), threads=threads)
        check_records(b, calls.tenant, len(self.plan.tenant_ids))
        caps = self.plan.capability_names()
        out = {}
        for i, c in enumerate(cdrs):
            pool = int(b.pool[i])
            cap = int(b.capability[i])
            dom = int(b.domestic[i])
            out[c["usage_id"]] = (
                pricing.STATUSES[int(b.status[i])], None if dom < 0 else bool(dom),
                None if pool < 0 else self.plan.pool_names[pool], int(b.pool_seconds[i]),
                int(b.charged_seconds[i]), _money(b.charge[i]), None if cap < 0 else caps[cap],
                int(b.unbilled_seconds[i]), _money(b.unbilled_amount[i]),
                _money(b.balance_after[i]), bool(b.late[i]))
        ledger = [_row(r) for r in b.ledger.to_pylist()]
        notes = [_row(r) for r in b.notifications.to_pylist()]
        self.ledger_k += ledger
        self.notes_k += notes
        for r in b.pools.to_pylist():
            self.pools_k[(r["tenant_id"], r["month"], r["pool"])] = (r["size_seconds"],
                                                                     r["used_seconds"])
        return out, ledger, notes, b

    # ---- reference ----
    def reference(self, cdrs: list[dict], as_of=None):
        calls = []
        for c in cdrs:
            deck = self.cfg.book.decks[self.cfg.tenants.table.column("deck")[
                self.cfg.tenants.ids.to_pylist().index(c["tenant_id"])].as_py()].deck
            pr = ref_pricing.price_cdr(self.rows, deck, call_type=c["call_type"],
                                       number_type=c.get("number_type"),
                                       caller=c.get("caller_number"),
                                       callee=c.get("callee_number"), start=c["start_time"],
                                       duration=c["duration_seconds"])
            calls.append(ref.Call(c["usage_id"], c["tenant_id"], c.get("user_id"),
                                  c["start_time"], pr.service, pr.status, pr.row,
                                  pr.billable_seconds))
        funds, cards = reference_events(self.cfg)
        n_l, n_n = len(self.ref.ledger), len(self.ref.notifications)
        res = self.ref.run(calls, funds, cards, as_of)
        out = {u: (o.status, o.domestic, o.pool, o.pool_seconds, o.charged_seconds,
                   _dec(o.charge), o.capability, o.unbilled_seconds, _dec(o.unbilled_amount),
                   _dec(o.balance_after), o.late) for u, o in res.items()}
        ledger = [_row(r) for r in self.ref.ledger[n_l:]]
        notes = [_row(r) for r in self.ref.notifications[n_n:]]
        return out, ledger, notes

    def run(self, cdrs: list[dict], as_of=None, threads=1):
        """Both sides; asserts they agree; returns the kernel's view."""
        k_out, k_led, k_notes, b = self.kernel(cdrs, as_of, threads)
        r_out, r_led, r_notes = self.reference(cdrs, as_of)
        assert k_out == r_out
        assert k_led == r_led
        assert k_notes == r_notes
        r_pools = {(t, m, p): (u.size, u.used) for (t, m, p), u in self.ref.pools.items()
                   if u.used > 0}
        assert self.pools_k == r_pools
        return k_out, k_led, k_notes


def _money(micro) -> Decimal:
    return Decimal(int(micro)).scaleb(-6)


def _dec(d) -> Decimal:
    return Decimal(d).quantize(Decimal("0.000001"))


def _row(r: dict) -> tuple:
    """A ledger entry or notification as a comparable tuple."""
    out = []
    for k in ("tenant_id", "seq", "time", "kind", "lot_id", "amount", "balance_after",
              "balance", "reference", "usage_id", "pool"):
        if k in r:
            v = r[k]
            if isinstance(v, Decimal):
                v = _dec(v)
            if isinstance(v, datetime):
                v = v.astimezone(timezone.utc)
            if k == "reference" and v == "":
                v = None
            out.append((k, v))
    return tuple(out)
