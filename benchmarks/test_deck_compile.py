"""Deck compilation at real-deck and extreme sizes (target: 500k prefixes < 5 s)."""

from __future__ import annotations


import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from conftest import ROOT, record

from ratecore.deck import load_rate_book


def write_deck(path, n_prefixes: int, seed: int = 3):
    """A nested deck: country codes, then breakouts up to 10 digits."""
    rng = np.random.default_rng(seed)
    prefixes = set(str(c) for c in rng.integers(1, 999, 250))
    while len(prefixes) < n_prefixes:
        parents = np.array(sorted(prefixes))
        more = np.char.add(parents[rng.integers(0, len(parents), n_prefixes)],
                           rng.integers(0, 100, n_prefixes).astype(str))
        prefixes.update(p for p in more.tolist() if len(p) <= 10)
    prefixes = sorted(prefixes)[:n_prefixes]
    n = len(prefixes)
    rate = rng.integers(1, 50000, n)
    table = pa.table({
        "deck": ["big"] * n, "currency": ["USD"] * n, "service": ["outbound"] * n,
        "prefix": prefixes, "country": ["GB"] * n, "destination": [f"D{p[:4]}" for p in prefixes],
        "rate": [f"0.{r:05d}" for r in rate.tolist()], "initial_increment": ["60"] * n,
        "next_increment": ["60"] * n, "effective_from": ["2024-01-01"] * n,
    })
    pacsv.write_csv(table, path)


@pytest.mark.parametrize("n_prefixes", [30_000, 60_000, 500_000])
def test_compile_deck(benchmark, n_prefixes):
    ROOT.mkdir(exist_ok=True)
    path = ROOT / f"deck-{n_prefixes}.csv"
    if not path.exists():
        write_deck(path, n_prefixes)
    book = benchmark.pedantic(load_rate_book, args=(path,), rounds=3, iterations=1)
    assert book.n_rows == n_prefixes
    record(f"deck_compile_{n_prefixes // 1000}k", n_prefixes, benchmark.stats.stats.min, 1)
