"""Every report over a month of the benchmark sample (target: < 10 s each).

The sample is rated twice, once and for all, into ``.benchdata/``: with its
configured decks (``current``) and with a candidate deck (``candidate``) for
``impact``. Rating 20M CDRs takes minutes and many GiB, so the outputs are
kept (a ``done`` marker says a rating finished) and only the reports are
timed.
"""

from __future__ import annotations

import csv
import json
import shutil
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from conftest import CDRS, ROOT, SEED

# The sample's CDRs start in 2026-10 (generate's default window).
MONTH = "2026-10"


def candidate_deck(config: Path, path: Path) -> Path:
    """The configured decks with a price change: mobile rates up 10 %
    (rounded to 4 decimals), and premium numbers of GB and DE blocked, so
    that ``impact`` sees revenue deltas and calls whose status changed."""
    rows, header = [], None
    for f in sorted((config / "decks").glob("*.csv")):
        with open(f, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames
            rows += list(reader)
    for r in rows:
        if r["number_class"] == "mobile":
            r["rate"] = str((Decimal(r["rate"]) * Decimal("1.1")).quantize(
                Decimal("0.0001"), ROUND_HALF_UP))
        if r["number_class"] == "premium" and r["country"] in ("GB", "DE"):
            r["blocked"] = "true"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _rated(sample: Path, out: Path, deck: Path | None = None) -> Path:
    from ratecore import run

    if not (out / "done").exists():
        shutil.rmtree(out, ignore_errors=True)
        run.rate(sample / "config", [sample / "cdrs"], out, deck_file=deck, threads=1)
        (out / "done").write_text("ok\n")
    return out


@pytest.fixture(scope="session")
def outputs(sample):
    """(current, candidate) output directories of the rated sample."""
    root = ROOT / f"reports-{CDRS}-seed{SEED}"
    root.mkdir(parents=True, exist_ok=True)
    current = _rated(sample, root / "current")
    deck = root / "candidate-deck.csv"
    if not deck.exists():
        candidate_deck(sample / "config", deck)
    candidate = _rated(sample, root / "candidate", deck)
    return current, candidate


TARGET_SECONDS = 10.0
TIMES: dict[str, float] = {}


def _largest_tenant(out: Path) -> str:
    from ratecore.reports import connect

    con = connect(out)
    try:
        return con.sql("SELECT tenant_id FROM rated GROUP BY ALL ORDER BY count(*) DESC, "
                       "tenant_id LIMIT 1").fetchall()[0][0]
    finally:
        con.close()


CASES = {
    "pools": {},
    "billing": {},
    "expiry": {"date": "2026-10-01", "days": 30},
    "reconcile": {},
    "impact": {"candidate": True},
    "usage_one_tenant": {"tenant": "largest"},
    # the report itself, every call of the month as one Arrow table
    "usage_all_tenants": {},
    # as `ratecore report usage --format parquet|csv --output F` writes it
    # (reports.write_report: DuckDB's batches streamed into the file writer)
    "usage_all_tenants_streamed": {"output": "parquet", "stream": True},
    "usage_all_tenants_csv_streamed": {"output": "csv", "stream": True},
}


@pytest.mark.parametrize("case", list(CASES))
def test_report_over_a_month(benchmark, outputs, case, tmp_path):
    """One report over the sample's month (20M CDRs by default), to Arrow;
    ``*_streamed`` writes every call of the month to a Parquet or CSV file
    through :func:`reports.write_report`, as ``ratecore report`` does."""
    from ratecore import reports

    current, candidate = outputs
    spec = dict(CASES[case])
    name = case.split("_")[0]
    kw = {"month": MONTH}
    if spec.pop("candidate", False):
        kw["candidate_dir"] = candidate
    if spec.pop("tenant", None):
        kw["tenant"] = _largest_tenant(current)
    output = spec.pop("output", None)
    stream = spec.pop("stream", False)
    kw.update(spec)

    def go():
        path = tmp_path / f"{case}.{output}"
        if stream:
            return reports.write_report(name, current, output, path, **kw)
        table = reports.run_report(name, current, **kw)
        if output:
            reports.export(table, output, path)
        return table.num_rows

    rows = benchmark.pedantic(go, rounds=2, iterations=1, warmup_rounds=0)
    seconds = benchmark.stats.stats.min
    TIMES[case] = seconds
    print(f"\n{case}: {rows:,} rows in {seconds:.2f} s "
          f"({'within' if seconds < TARGET_SECONDS else 'OVER'} the {TARGET_SECONDS:.0f} s target)")
    assert rows > 0
    if name == "reconcile":
        table = reports.run_report(name, current, **kw)
        assert all(table.column("passed").to_pylist()), table.to_pylist()


def teardown_module(module):
    if TIMES:
        path = ROOT / "reports-results.json"
        path.write_text(json.dumps(TIMES, indent=2))
