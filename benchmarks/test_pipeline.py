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
    out = pricing.allocate(BATCH)
    keep, parts = [], []
    for b in cdrs.to_batches(max_chunksize=BATCH):
        trow = cfg.tenants.lookup(b.column("tenant_id"))
        p = pricing.price(
            cfg.book, call_type=pricing.call_type_codes(b.column("call_type")),
            tollfree=pricing.tollfree_flags(b.column("number_type")),
            deck=cfg.tenants.deck_index[trow], caller=b.column("caller_number"),
            callee=b.column("callee_number"), start=b.column("start_time"),
            duration=b.column("duration_seconds"), out=out)
        ok = p.status >= 0
        keep.append(ok)
        parts.append((trow[ok].astype(np.int32), p.status[ok], p.service[ok], p.row[ok],
                      p.billable[ok], pricing.int64_values(b.column("start_time"))[ok]))
    ok = pa.array(np.concatenate(keep))
    calls = billing.Calls(
        tenant=np.concatenate([x[0] for x in parts]),
        user_id=cdrs.column("user_id").filter(ok).combine_chunks(),
        usage_id=cdrs.column("usage_id").filter(ok).combine_chunks(),
        start=np.concatenate([x[5] for x in parts]), status=np.concatenate([x[1] for x in parts]),
        service=np.concatenate([x[2] for x in parts]), row=np.concatenate([x[3] for x in parts]),
        billable=np.concatenate([x[4] for x in parts]))
    billed = billing.bill(cfg, plan, billing.BillingState(), calls, threads=threads)
    currency = np.array([cfg.book.decks[d].currency for d in
                         cfg.tenants.table.column("deck").to_pylist()])[calls.tenant]
    return {c: int(billed.charge[currency == c].sum()) for c in sorted(set(currency))}


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
