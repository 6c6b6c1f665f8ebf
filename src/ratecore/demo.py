"""``ratecore demo``: generate a sample, rate it, show what came out."""

from __future__ import annotations

from pathlib import Path

import duckdb
from rich.table import Table


def _table(title: str, rel: duckdb.DuckDBPyRelation) -> Table:
    t = Table(title=title, header_style="bold")
    for name in rel.columns:
        t.add_column(name, justify="right" if name in ("CDRs", "billable_s", "charge", "duration",
                                                        "revenue", "minutes") else "left")
    for row in rel.fetchall():
        t.add_row(*["" if v is None else str(v) for v in row])
    return t


def run_demo(work_dir: Path, cdrs: int, *, console, progress_bar, print_summary) -> None:
    from ratecore import run
    from ratecore.generate import generate

    work_dir = Path(work_dir)
    with progress_bar("generating sample", cdrs) as bar:
        sample = generate(work_dir / "sample", tenants=30, cdrs=cdrs, seed=1, progress=bar)
    console.print(f"sample: {sample.cdrs:,} CDRs for {sample.tenants} tenants in {sample.cdr_dir}")
    out = work_dir / "out"
    with progress_bar("rating", cdrs) as bar:
        summary = run.rate(sample.config_dir, [sample.cdr_dir], out, progress=bar)
    print_summary(summary, title="ratecore demo: rating run")

    con = duckdb.connect()
    rated = str(out / "rated" / "**" / "*.parquet")
    con.read_parquet(rated, hive_partitioning=True).create_view("rated")
    console.print(_table("A few priced calls", con.sql(
        "SELECT callee_number AS number, destination, duration_seconds AS duration, "
        "billable_seconds AS billable_s, rate, charge, currency, status FROM rated "
        "WHERE status = 'charged' ORDER BY usage_id LIMIT 8")))
    console.print(_table("Top destinations by revenue", con.sql(
        "SELECT destination, currency, count(*) AS CDRs, "
        "round(sum(billable_seconds) / 60) :: BIGINT AS minutes, sum(charge) AS revenue "
        "FROM rated WHERE status = 'charged' GROUP BY ALL ORDER BY revenue DESC LIMIT 10")))
    console.print(f"outputs: {out}/rated and {out}/rejects (Parquet by month)")
