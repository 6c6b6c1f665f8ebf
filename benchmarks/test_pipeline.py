"""The full pipeline: pricing plus the per-tenant billing pass, against the
DuckDB pricing-only SQL on the same in-memory sample, one thread each.

Target (issue 3): pipeline >= 10x the DuckDB ASOF pricing SQL. The pipeline
here is what a run does between reading and writing: map tenants, price
every batch, sort the run's events per tenant and bill them (pools, lots,
ledger, notifications), from an empty state.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from conftest import record

import peers
from ratecore import billing, pricing
from ratecore.config import load_config

BATCH = 1 << 20


@pytest.fixture(scope="module")
def config(sample):
    cfg = load_config(sample / "config")
    return cfg, billing.compile_plan(cfg)


def pipeline(cfg, plan, cdrs: pa.Table, threads: int = 1) -> dict[str, int]:
    """Price and bill `cdrs`; total credit charge per currency (micro-units)."""
    n = cdrs.num_rows
    full = pricing.allocate(n)
    tenant = np.empty(n, np.int32)
    start = np.empty(n, np.int64)
    at = 0
    for b in cdrs.to_batches(max_chunksize=BATCH):
        lo, hi = at, at + b.num_rows
        at = hi
        tenant[lo:hi] = cfg.tenants.lookup(b.column("tenant_id"))
        start[lo:hi] = pricing.int64_values(b.column("start_time"))
        pricing.price(
            cfg.book, call_type=pricing.call_type_codes(b.column("call_type")),
            tollfree=pricing.tollfree_flags(b.column("number_type")),
            deck=cfg.tenants.deck_index[tenant[lo:hi]], caller=b.column("caller_number"),
            callee=b.column("callee_number"), start=b.column("start_time"),
            duration=b.column("duration_seconds"), threads=threads,
            out=pricing.Priced(*(a[lo:hi] for a in (full.status, full.service, full.row,
                                                    full.billable, full.charge))))
    user_id, usage_id = cdrs.column("user_id"), cdrs.column("usage_id")
    ok = full.status >= 0
    if not ok.all():     # kernel rejects (bad numbers): rare, so filter only then
        keep = pa.array(ok)
        user_id, usage_id = user_id.filter(keep), usage_id.filter(keep)
        full = pricing.Priced(*(a[ok] for a in (full.status, full.service, full.row,
                                                full.billable, full.charge)))
        tenant, start = tenant[ok], start[ok]
    calls = billing.Calls(tenant=tenant, user_id=user_id, usage_id=usage_id, start=start,
                          status=full.status, service=full.service, row=full.row,
                          billable=full.billable)
    billed = billing.bill(cfg, plan, billing.BillingState(), calls, threads=threads)
    decks = cfg.tenants.table.column("deck").to_pylist()
    currencies = sorted({cfg.book.decks[d].currency for d in decks})
    code = np.array([currencies.index(cfg.book.decks[d].currency) for d in decks], np.int8)
    by_tenant = billed.charges_by_tenant()
    return {c: int(by_tenant[code == k].sum()) for k, c in enumerate(currencies)}


@pytest.mark.parametrize("threads", [1, 2])
def test_ratecore_pipeline(benchmark, loaded, config, threads):
    cfg, plan = config
    cdrs = loaded[2]
    totals = benchmark.pedantic(lambda: pipeline(cfg, plan, cdrs, threads), rounds=2,
                                iterations=1, warmup_rounds=0)
    record(f"ratecore_pipeline_{threads}thread{'s' if threads > 1 else ''}", cdrs.num_rows,
           benchmark.stats.stats.min, threads)
    assert sum(totals.values()) > 0


def test_duckdb_asof_pricing_only(benchmark, loaded):
    book, tenants, cdrs = loaded
    deck = peers.sql_deck(book)
    tenant_table = pa.table({"tenant_id": tenants.ids, "deck_idx": tenants.deck_index})
    con = peers.connect(cdrs, tenant_table, deck, 1)
    got = benchmark.pedantic(lambda: peers.duckdb_asof(con), rounds=2, iterations=1,
                             warmup_rounds=0)
    record("duckdb_asof_pricing_only_1thread", cdrs.num_rows, benchmark.stats.stats.min, 1)
    assert got
