"""Lookup + price: the ratecore kernel against DuckDB SQL and numpy.

Run apart from the tests: ``pytest benchmarks/ -s``. Every method prices the
same in-memory sample and must agree with the kernel on the total charge of
every deck; the throughputs and ratios are printed at the end.
Targets (issue 2): kernel on one thread >= 15x the best DuckDB SQL on one
thread; two threads >= 1.8x one thread.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pytest
from conftest import record

import peers
from ratecore import pricing

BATCH = 1 << 20


def kernel_totals(book, tenants, cdrs: pa.Table, threads: int) -> dict[int, int]:
    """The pricing stage of a ratecore run over an in-memory table: map
    tenants and call types, price, and sum the charges per deck, one batch
    per thread (numpy, Arrow compute and the kernel all release the GIL)."""
    local = threading.local()

    def one(batch) -> np.ndarray:
        if not hasattr(local, "out"):
            local.out = pricing.allocate(BATCH)
        deck = tenants.deck_index[tenants.lookup(batch.column("tenant_id"))]
        p = pricing.price(
            book, call_type=pricing.call_type_codes(batch.column("call_type")),
            tollfree=pricing.tollfree_flags(batch.column("number_type")),
            deck=deck, caller=batch.column("caller_number"),
            callee=batch.column("callee_number"), start=batch.column("start_time"),
            duration=batch.column("duration_seconds"), out=local.out)
        return np.array([p.charge[deck == k].sum() for k in range(len(book.decks))])

    batches = cdrs.to_batches(max_chunksize=BATCH)
    if threads == 1:
        parts = list(map(one, batches))
    else:
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(one, batches))
    totals = np.sum(parts, axis=0, dtype=np.int64)
    return {k: int(v) for k, v in enumerate(totals) if v}


def timed(benchmark, name, threads, rows, fn):
    result = benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=0)
    record(name, rows, benchmark.stats.stats.min, threads)
    return result


@pytest.fixture(scope="module")
def expected(loaded):
    book, tenants, cdrs = loaded
    return kernel_totals(book, tenants, cdrs, 1)


@pytest.fixture(scope="module")
def sql(loaded):
    book, tenants, cdrs = loaded
    t0 = time.perf_counter()
    deck = peers.sql_deck(book)
    print(f"\nSQL deck: {deck.ranges.num_rows:,} ranges in {time.perf_counter() - t0:.1f} s")
    tenant_table = pa.table({"tenant_id": tenants.ids, "deck_idx": tenants.deck_index})
    return deck, tenant_table


@pytest.mark.parametrize("threads", [1, 2])
def test_ratecore_kernel(benchmark, loaded, expected, threads):
    book, tenants, cdrs = loaded
    got = timed(benchmark, f"ratecore_kernel_{threads}thread{'s' if threads > 1 else ''}",
                threads, cdrs.num_rows, lambda: kernel_totals(book, tenants, cdrs, threads))
    assert got == expected


@pytest.mark.parametrize("threads", [1, 2])
def test_duckdb_asof(benchmark, loaded, expected, sql, threads):
    book, tenants, cdrs = loaded
    con = peers.connect(cdrs, sql[1], sql[0], threads)
    got = timed(benchmark, f"duckdb_asof_{threads}thread{'s' if threads > 1 else ''}",
                threads, cdrs.num_rows, lambda: peers.duckdb_asof(con))
    assert {k: int(v) for k, v in got.items()} == expected


def test_duckdb_cascade(benchmark, loaded, expected, sql):
    book, tenants, cdrs = loaded
    con = peers.connect(cdrs, sql[1], sql[0], 1)
    max_len = int(max(len(p) for p in book.rows.column("prefix").to_pylist()))
    got = timed(benchmark, "duckdb_cascade_1thread", 1, cdrs.num_rows,
                lambda: peers.duckdb_cascade(con, max_len))
    assert {k: int(v) for k, v in got.items()} == expected


def test_numpy_searchsorted(benchmark, loaded, expected):
    book, tenants, cdrs = loaded
    got = timed(benchmark, "numpy_searchsorted_1thread", 1, cdrs.num_rows,
                lambda: peers.numpy_price(book, cdrs, tenants))
    assert got == expected
