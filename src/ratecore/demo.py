"""``ratecore demo``: generate a sample, rate and bill it, show what came out.

Every table is DuckDB SQL over the published Parquet outputs. Money stays
DECIMAL from the files to the screen: sums and rounding happen in SQL on
DECIMAL, and Python formats the resulting ``Decimal``.
"""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
from rich.measure import Measurement
from rich.table import Table

from ratecore.billing import LEDGER_SCHEMA, NOTIFICATION_KINDS, NOTIFICATION_SCHEMA, POOL_SCHEMA
from ratecore.errors import InputError

TOP_TENANTS = 12
POOLS_SHOWN = 10
OUTPUTS = ("rated", "rejects", "ledger", "notifications", "pools")
MARKER = ".ratecore-demo"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _numeric(dtype) -> bool:
    name = str(dtype).upper()
    return name.startswith(("DECIMAL", "DOUBLE", "FLOAT", "HUGEINT", "BIGINT", "INTEGER",
                            "SMALLINT", "TINYINT", "UBIGINT", "UINTEGER"))


def _table(title: str, rel: duckdb.DuckDBPyRelation, footer=(), no_wrap=()) -> Table:
    """A rich table of a relation; `footer` rows go below a rule, in bold;
    columns named in `no_wrap` are squeezed last."""
    t = Table(title=title, header_style="bold", show_edge=False, pad_edge=False)
    for name, dtype in zip(rel.columns, rel.types):
        t.add_column(name, justify="right" if _numeric(dtype) else "left",
                     no_wrap=name in no_wrap)
    for row in rel.fetchall():
        t.add_row(*[_cell(v) for v in row])
    if footer:
        t.add_section()
        for row in footer:
            t.add_row(*[_cell(v) for v in row], style="bold")
    return t


def _view(con: duckdb.DuckDBPyConnection, name: str, path: Path, empty: pa.Schema | None) -> bool:
    """Create view `name` over a Hive-partitioned Parquet dataset; an empty
    view of `empty` when the run wrote no file there. False if neither."""
    if path.is_dir() and next(path.rglob("*.parquet"), None) is not None:
        con.read_parquet(str(path / "**" / "*.parquet"), hive_partitioning=True).create_view(name)
        return True
    if empty is None:
        return False
    con.from_arrow(empty.empty_table()).create_view(name)
    return True


def _fresh_out(work_dir: Path) -> Path:
    """An empty ``work_dir/out`` to rate into. The demo regenerates its
    sample, and rating it into earlier outputs would reject every CDR as a
    duplicate; so the outputs of an earlier demo (``work_dir`` holds the
    marker) are removed, and any other non-empty ``out`` is refused."""
    out, marker = work_dir / "out", work_dir / MARKER
    if out.exists() and any(out.iterdir()):
        if not marker.exists():
            raise InputError(f"{out} holds files the demo did not write; remove it or "
                             f"choose another --dir")
        shutil.rmtree(out)
    work_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text("written by `ratecore demo`: its out/ is replaced on every demo\n")
    return out


# The first call (by usage_id) of each status, commonest status first.
CALLS_BY_STATUS = """
SELECT status, billable_seconds AS billable, pool_seconds AS pool,
       charged_seconds AS charged, charge, unbilled_amount AS unbilled, currency AS cur
FROM (SELECT *, row_number() OVER (PARTITION BY status ORDER BY usage_id) AS k,
             count(*) OVER (PARTITION BY status) AS n FROM rated)
WHERE k = 1 ORDER BY n DESC, status
"""

# Per tenant: calls, pool use and credits from rated/; recharges and the
# closing balance (the balance_after of the tenant's last entry) from ledger/.
PER_TENANT = """
CREATE TEMP TABLE per_tenant AS
WITH calls AS (
    SELECT tenant_id, count(*) AS cdrs, max(currency) AS currency,
           coalesce(sum(pool_seconds), 0) AS pool_seconds,
           coalesce(sum(charge), 0) AS spent,
           count(*) FILTER (status LIKE 'cut_%' OR status LIKE 'blocked_no_%') AS cut
    FROM rated GROUP BY tenant_id),
entries AS (
    SELECT tenant_id,
           count(*) FILTER (kind = 'recharge') AS recharges,
           coalesce(sum(amount) FILTER (kind = 'recharge'), 0) AS recharged,
           count(*) FILTER (kind = 'recharge_failed') AS failed,
           arg_max(balance_after, seq) AS balance
    FROM ledger GROUP BY tenant_id),
notes AS (SELECT tenant_id, count(*) AS notifications FROM notifications GROUP BY tenant_id)
SELECT tenant_id, currency, coalesce(cdrs, 0) AS cdrs,
       coalesce(pool_seconds, 0) AS pool_seconds, coalesce(spent, 0) AS spent,
       coalesce(recharges, 0) AS recharges, coalesce(recharged, 0) AS recharged,
       coalesce(failed, 0) AS failed, coalesce(cut, 0) AS cut,
       coalesce(notifications, 0) AS notifications, coalesce(balance, 0) AS balance
FROM calls FULL JOIN entries USING (tenant_id) FULL JOIN notes USING (tenant_id)
"""

# What the tenants table shows; k orders the rows.
TENANT_TABLES = f"""
CREATE TEMP TABLE top_tenants AS
SELECT row_number() OVER (ORDER BY cdrs DESC, tenant_id) AS k,
       tenant_id AS tenant, currency AS cur, cdrs AS CDRs, pool_seconds // 60 AS "pool min",
       cut AS "cut/blocked", notifications, round(spent, 2) AS "credits spent",
       recharges, round(recharged, 2) AS recharged, failed AS "recharge failed",
       round(balance, 2) AS "closing balance"
FROM per_tenant QUALIFY k <= {TOP_TENANTS};

-- one totals row per currency: money in different currencies is never added
CREATE TEMP TABLE tenant_totals AS
SELECT row_number() OVER (ORDER BY currency NULLS LAST) AS k,
       'all ' || count(*) || ' tenants' AS tenant, currency AS cur, sum(cdrs) AS CDRs,
       sum(pool_seconds) // 60 AS "pool min", sum(cut) AS "cut/blocked",
       sum(notifications) AS notifications, round(sum(spent), 2) AS "credits spent",
       sum(recharges) AS recharges, round(sum(recharged), 2) AS recharged,
       sum(failed) AS "recharge failed", round(sum(balance), 2) AS "closing balance"
FROM per_tenant GROUP BY currency
"""
CALL_COLUMNS = ("CDRs", "pool min", "cut/blocked", "notifications")
CREDIT_COLUMNS = ("credits spent", "recharges", "recharged", "recharge failed",
                  "closing balance")

# Every kind, in the order of billing.NOTIFICATION_KINDS, with its count.
NOTIFICATIONS_BY_KIND = """
SELECT k.kind, count(n.tenant_id) AS notifications, count(DISTINCT n.tenant_id) AS tenants
FROM (SELECT unnest($kinds) AS kind, generate_subscripts($kinds, 1) AS i) AS k
LEFT JOIN notifications AS n USING (kind)
GROUP BY k.kind, k.i ORDER BY k.i
"""

POOLS_BY_USE = f"""
SELECT tenant_id AS tenant, month, pool, size_seconds // 60 AS "size min",
       used_seconds // 60 AS "used min",
       round(100.0 * used_seconds / nullif(size_seconds, 0), 1) AS percent
FROM pools
ORDER BY percent DESC NULLS LAST, used_seconds DESC, tenant, pool LIMIT {POOLS_SHOWN}
"""


def _print_tenants(console, con: duckdb.DuckDBPyConnection) -> None:
    """The per-tenant table; split in two (calls, credits) if the console is
    too narrow for it."""
    con.execute(PER_TENANT)
    con.execute(TENANT_TABLES)
    title = f"Tenants: top {TOP_TENANTS} by CDRs, then totals per currency"

    def table(columns, suffix=""):
        cols = ", ".join(f'"{c}"' for c in ("tenant", "cur") + columns)
        return _table(title + suffix, con.sql(f"SELECT {cols} FROM top_tenants ORDER BY k"),
                      footer=con.sql(f"SELECT {cols} FROM tenant_totals ORDER BY k").fetchall(),
                      no_wrap=("tenant",))

    whole = table(CALL_COLUMNS + CREDIT_COLUMNS)
    unbounded = console.options.update(max_width=10_000)
    if Measurement.get(console, unbounded, whole).maximum <= console.width:
        console.print(whole)
    else:
        console.print(table(CALL_COLUMNS, ": calls"))
        console.print(table(CREDIT_COLUMNS, ": credits"))


def run_demo(work_dir: Path, cdrs: int, *, console, progress_bar, print_summary) -> None:
    from ratecore import run
    from ratecore.generate import generate

    work_dir = Path(work_dir)
    out = _fresh_out(work_dir)
    with progress_bar("generating sample", cdrs) as bar:
        sample = generate(work_dir / "sample", tenants=30, cdrs=cdrs, seed=1, progress=bar)
    console.print(f"sample: {sample.cdrs:,} CDRs for {sample.tenants} tenants in {sample.cdr_dir}")
    with progress_bar("rating", cdrs) as bar:
        summary = run.rate(sample.config_dir, [sample.cdr_dir], out, progress=bar)
    print_summary(summary, title="ratecore demo: rating run")
    show_outputs(out, console)


def show_outputs(out: Path, console) -> None:
    """Print the demo's tables over the outputs of the runs in `out`."""
    out = Path(out)
    con = duckdb.connect()
    if not _view(con, "rated", out / "rated", None):
        console.print(f"no CDR was rated; see {out}/rejects")
        return
    _view(con, "ledger", out / "ledger", LEDGER_SCHEMA)
    _view(con, "notifications", out / "notifications", NOTIFICATION_SCHEMA)
    _view(con, "pools", out / "pools", POOL_SCHEMA)

    console.print(_table("One call of each status", con.sql(CALLS_BY_STATUS)))
    console.print(_table("Top destinations by revenue", con.sql(
        "SELECT destination, currency, count(*) AS CDRs, "
        "sum(charged_seconds) // 60 AS minutes, sum(charge) AS revenue "
        "FROM rated WHERE charge > 0 GROUP BY ALL ORDER BY revenue DESC, destination LIMIT 10")))

    _print_tenants(console, con)
    console.print(_table("Notifications by kind", con.sql(
        NOTIFICATIONS_BY_KIND, params={"kinds": list(NOTIFICATION_KINDS)})))
    pools, used_up = con.sql("SELECT count(*), count(*) FILTER (size_seconds > 0 AND "
                             "used_seconds >= size_seconds) FROM pools").fetchall()[0]
    if pools:
        console.print(_table(f"Pools by share used: top {min(pools, POOLS_SHOWN)} of {pools:,}, "
                             f"{used_up:,} used up", con.sql(POOLS_BY_USE)))
    else:
        console.print("no call drew from a minute pool")
    console.print(f"outputs in {out}: " + ", ".join(f"{name}/" for name in OUTPUTS)
                  + " (Parquet by month=YYYY-MM), inputs/ and state/")
