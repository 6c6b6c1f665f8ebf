"""Benchmark data: one generated sample, built once and cached in .benchdata/.

Size with RATECORE_BENCH_CDRS (default 20,000,000). The throughput table and
ratios are printed at the end of the run and written to
.benchdata/results.json.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parent.parent / ".benchdata"
CDRS = int(os.environ.get("RATECORE_BENCH_CDRS", 20_000_000))
SEED = 7
RESULTS: dict[str, dict] = {}


@pytest.fixture(scope="session")
def sample():
    from ratecore.generate import generate

    target = ROOT / f"sample-{CDRS}-seed{SEED}"
    if not (target / "done").exists():
        generate(target, tenants=400, cdrs=CDRS, days=30, seed=SEED,
                 prefixes_per_service=30_000)
        (target / "done").write_text("ok\n")
    return target


@pytest.fixture(scope="session")
def loaded(sample):
    from ratecore.config import load_config

    cfg = load_config(sample / "config")
    book, tenants = cfg.book, cfg.tenants
    # low-cardinality text columns come as dictionaries, as Parquet stores them
    cdrs = pq.read_table(sample / "cdrs", read_dictionary=["tenant_id", "user_id", "call_type",
                                                           "number_type"])
    # One contiguous table (the reader hands out 128k-row pieces); the kernel
    # then walks it in zero-copy 1M-row batches, as a run walks row groups.
    return book, tenants, cdrs.combine_chunks()


def record(name: str, rows: int, seconds: float, threads: int) -> None:
    """Keep a measurement (best of the rounds) for the summary."""
    RESULTS[name] = {"rows": rows, "seconds": seconds, "threads": threads,
                     "per_s": rows / seconds}


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    tr = terminalreporter
    # the pricing benchmarks' DuckDB row, else the pipeline file's (same SQL)
    base = RESULTS.get("duckdb_asof_1thread") or RESULTS.get("duckdb_asof_pricing_only_1thread")
    tr.section("ratecore pricing throughput (same data, same run)")
    tr.write_line(f"{'method':<28}{'threads':>8}{'M CDR/s':>10}{'vs DuckDB ASOF 1t':>20}")
    for name, r in RESULTS.items():
        if name.startswith("deck_compile"):
            continue
        ratio = f"{r['per_s'] / base['per_s']:.1f}x" if base else "-"
        tr.write_line(f"{name:<28}{r['threads']:>8}{r['per_s'] / 1e6:>10.1f}{ratio:>20}")
    k1, k2 = RESULTS.get("ratecore_kernel_1thread"), RESULTS.get("ratecore_kernel_2threads")
    if k1 and k2:
        tr.write_line(f"ratecore two threads / one thread: {k2['per_s'] / k1['per_s']:.2f}x")
    for name, r in RESULTS.items():
        if name.startswith("deck_compile"):
            tr.write_line(f"{name}: {r['rows']:,} prefixes in {r['seconds']:.2f} s")
    ROOT.mkdir(exist_ok=True)
    (ROOT / "results.json").write_text(json.dumps(RESULTS, indent=2))
