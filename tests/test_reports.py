"""Reports (SPEC §9): every figure recomputed here in Python, from the rated
rows, ledger, pools and state read with pyarrow, on a generated sample and
on a hand-built case; ``reconcile --check`` green on generated outputs and
red on each planted corruption; the export formats and the CLI."""

from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from xml.etree import ElementTree

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from click.testing import CliRunner
from conftest import (
    cdr,
    deck_row,
    fund_row,
    license_row,
    tenant_row,
    write_billing_files,
    write_cdrs,
    write_csv,
    write_deck,
)

from ratecore import reports, run
from ratecore.cli import main
from ratecore.generate import generate

TEAMS_COLUMNS = ["UsageId", "Call ID", "Conference ID", "User Location", "AAD ObjectId", "UPN",
                 "User Display Name", "Caller ID", "Call Type", "Number Type",
                 "Domestic/International", "Destination Dialed", "Destination Number",
                 "Start Time", "End Time", "Duration Seconds", "Connection Fee", "Charge",
                 "Currency", "Capability"]
MONEY = pa.decimal128(18, 6)


# ---- reading outputs the plain way ---------------------------------------------------


def rows(out: Path, name: str) -> list[dict]:
    """Every row of an output dataset (no Hive column: months are
    recomputed from the times), dictionaries decoded."""
    files = sorted((out / name).rglob("*.parquet"))
    if not files:
        return []
    tables = []
    for f in files:
        t = pq.read_table(f, partitioning=None)
        for i, field in enumerate(t.schema):
            if pa.types.is_dictionary(field.type):
                t = t.set_column(i, field.name, t.column(i).cast(field.type.value_type))
        tables.append(t)
    return pa.concat_tables(tables, promote_options="default").to_pylist()


def month(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m")


def minutes(seconds: int) -> Decimal:
    return (Decimal(seconds) / 60).quantize(Decimal("0.01"), ROUND_HALF_UP)


def plus_12_months(t: datetime) -> datetime:
    y, m = t.year + 1, t.month
    for day in range(t.day, 27, -1):
        try:
            return t.replace(year=y, month=m, day=day)
        except ValueError:
            continue
    return t.replace(year=y)


def report(name, out, **kw) -> list[dict]:
    return reports.run_report(name, out, **kw).to_pylist()


def cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


# ---- the generated sample -------------------------------------------------------------


def candidate_deck(config: Path, path: Path) -> Path:
    """The configured decks with mobile rates up 10 % and GB premium blocked."""
    out, header = [], None
    for f in sorted((config / "decks").glob("*.csv")):
        with open(f, newline="") as fh:
            r = csv.DictReader(fh)
            header = r.fieldnames
            out += list(r)
    for r in out:
        if r["number_class"] == "mobile":
            r["rate"] = str((Decimal(r["rate"]) * Decimal("1.1")).quantize(Decimal("0.0001")))
        if r["number_class"] == "premium" and r["country"] == "GB":
            r["blocked"] = "true"
    write_csv(path, header, out)
    return path


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """A 3-month sample rated in two runs (current deck), and once more
    with a candidate deck."""
    root = tmp_path_factory.mktemp("reports")
    s = generate(root / "sample", tenants=10, cdrs=12_000, days=62, seed=11,
                 start=datetime(2025, 12, 20, tzinfo=timezone.utc), prefixes_per_service=800)
    files = sorted(s.cdr_dir.glob("*.parquet"))
    # rated with the second half: three bad rows (an unknown tenant, a
    # negative duration, a usage_id the first run rated) and a good one
    bad = pq.read_table(files[0]).slice(0, 4).to_pylist()
    bad[0]["tenant_id"] = "nobody"
    bad[1]["usage_id"], bad[1]["duration_seconds"] = "bad-duration", -5
    bad[3]["usage_id"] = "good-one"
    (root / "bad").mkdir()
    pq.write_table(pa.Table.from_pylist(bad, schema=pq.read_schema(files[0])),
                   root / "bad" / "bad.parquet")
    out = root / "out"
    half = max(1, len(files) // 2)
    run.rate(s.config_dir, files[:half], out, threads=1)
    run.rate(s.config_dir, files[half:] + [root / "bad" / "bad.parquet"], out, threads=1)
    deck = candidate_deck(s.config_dir, root / "candidate.csv")
    cand = root / "candidate"
    run.rate(s.config_dir, [s.cdr_dir, root / "bad" / "bad.parquet"], cand, deck_file=deck,
             threads=1)
    return out, cand


def months_of(out) -> list[str]:
    return sorted({month(r["start_time"]) for r in rows(out, "rated")})


def test_rated_view_has_the_columns_of_the_outputs(sample):
    out, _ = sample
    written = pq.read_table(next((out / "rated").rglob("*.parquet")), partitioning=None).schema
    expected = reports.dataset_schemas()["rated"]
    for field in written:
        t = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        assert expected.field(field.name).type == t, field.name


def test_usage_is_the_rated_month_in_teams_columns(sample):
    out, _ = sample
    rated = rows(out, "rated")
    m = months_of(out)[1]
    got = reports.run_report("usage", out, month=m)
    assert got.column_names == TEAMS_COLUMNS
    assert got.schema.field("Charge").type == MONEY
    assert got.schema.field("Connection Fee").type == MONEY
    # in the order rated/ holds them (files by path, then rows): no sort
    expect = [r for r in rated if month(r["start_time"]) == m]
    assert expect != sorted(expect, key=lambda r: (r["start_time"], r["usage_id"]))
    got = got.to_pylist()
    assert len(got) == len(expect) > 100
    for g, r in zip(got, expect):
        assert g["UsageId"] == r["usage_id"]
        assert g["UPN"] == r["user_id"] and g["Caller ID"] == r["caller_number"]
        assert g["Destination Number"] == r["callee_number"]
        assert g["Call Type"] == r["call_type"] and g["Capability"] == r["capability"]
        assert g["Charge"] == r["charge"] and g["Currency"] == r["currency"]
        assert g["Connection Fee"] == (r["connect_fee"] if r["charge"] > 0 else 0)
        assert g["End Time"] - g["Start Time"] == timedelta(seconds=r["duration_seconds"])
        assert g["Domestic/International"] == {True: "Domestic", False: "International",
                                               None: None}[r["domestic"]]
        assert g["User Location"] is None and g["AAD ObjectId"] is None
    tenant = expect[0]["tenant_id"]
    one = report("usage", out, month=m, tenant=tenant)
    assert [g["UsageId"] for g in one] == [r["usage_id"] for r in expect
                                           if r["tenant_id"] == tenant]


def test_pools_minutes_from_seconds(sample):
    out, _ = sample
    pools = rows(out, "pools")
    got = report("pools", out)
    assert len(got) == len(pools) > 10
    by_key = {(p["tenant_id"], p["month"], p["pool"]): p for p in pools}
    for g in got:
        p = by_key[(g["tenant_id"], g["month"], g["pool"])]
        assert g["total_minutes"] == minutes(p["size_seconds"])
        assert g["minutes_used"] == minutes(p["used_seconds"])
        assert g["minutes_available"] == minutes(max(p["size_seconds"] - p["used_seconds"], 0))
        assert g["percent_used"] == (Decimal(100 * p["used_seconds"]) / p["size_seconds"]) \
            .quantize(Decimal("0.1"), ROUND_HALF_UP)
        assert g["capability"] == p["pool"].split(":")[0]
        assert g["country_or_region"] == (p["scope"] if p["kind"] in ("domestic",
                                                                      "international") else None)
    m = months_of(out)[0]
    assert {g["pool"] for g in report("pools", out, month=m)} == \
        {p["pool"] for p in pools if p["month"] == m}


def expected_statements(out: Path) -> dict:
    """(tenant, month) -> sorted statement lines, from the ledger and rated rows."""
    ledger = sorted(rows(out, "ledger"), key=lambda e: (e["tenant_id"], e["seq"]))
    rated = rows(out, "rated")
    by_usage = {r["usage_id"]: r for r in rated}
    currency = {}
    for r in rated:
        if r["currency"] is not None:
            currency[r["tenant_id"]] = min(currency.get(r["tenant_id"], r["currency"]),
                                           r["currency"])
    months = sorted({month(e["time"]) for e in ledger} | {month(r["start_time"]) for r in rated})
    first = {}
    for e in ledger:
        first.setdefault(e["tenant_id"], month(e["time"]))
    keys = {(t, m) for t, f in first.items() for m in months if m >= f}
    keys |= {(r["tenant_id"], month(r["start_time"])) for r in rated}
    lines = defaultdict(list)
    for t, m in keys:
        before = [e for e in ledger if e["tenant_id"] == t and month(e["time"]) < m]
        upto = [e for e in ledger if e["tenant_id"] == t and month(e["time"]) <= m]
        opening = before[-1]["balance_after"] if before else Decimal(0)
        closing = upto[-1]["balance_after"] if upto else Decimal(0)
        lines[(t, m)] += [("balance", "opening balance", None, None, None, None, None, None,
                           opening),
                          ("balance", "closing balance", None, None, None, None, None, None,
                           closing)]
    spend = defaultdict(lambda: [0, 0, Decimal(0)])
    debited = defaultdict(Decimal)
    for e in ledger:
        t, m, k = e["tenant_id"], month(e["time"]), e["kind"]
        if k == "fund":
            lines[(t, m)].append(("funds", "funds added", None, None, e["reference"], e["time"],
                                  1, None, e["amount"]))
        elif k == "debit":
            debited[(t, m, e["usage_id"])] += e["amount"]
    for (t, m, u), amount in debited.items():
        r = by_usage[u]
        s = spend[(t, m, r["capability"], r["call_type"])]
        s[0] += 1
        s[1] += r["charged_seconds"]
        s[2] += amount
    for (t, m, cap, ct), (n, sec, amount) in spend.items():
        lines[(t, m)].append(("spend", "calls charged to credits", cap, ct, None, None, n,
                              minutes(sec), amount))
    for kind, section, item in (("recharge", "recharges", "auto-recharge"),
                                ("recharge_failed", "recharges", "recharge failed"),
                                ("expire", "forfeited", "credits expired")):
        agg = defaultdict(lambda: [0, Decimal(0)])
        for e in ledger:
            if e["kind"] == kind:
                a = agg[(e["tenant_id"], month(e["time"]))]
                a[0] += 1
                a[1] += e["amount"]
        for key, (n, amount) in agg.items():
            lines[key].append((section, item, None, None, None, None, n, None, amount))
    calls = defaultdict(lambda: [0, 0])
    for r in rated:
        key = (r["tenant_id"], month(r["start_time"]))
        if r["pool_seconds"] > 0:
            c = calls[key + ("included in plan", r["pool"].split(":")[0])]
            c[0] += 1
            c[1] += r["pool_seconds"]
        for item, sec in (("charged to credits", r["charged_seconds"]),
                          ("cut or blocked", r["unbilled_seconds"])):
            if sec > 0:
                c = calls[key + (item, None)]
                c[0] += 1
                c[1] += sec
    for (t, m, item, cap), (n, sec) in calls.items():
        lines[(t, m)].append(("minutes", item, cap, None, None, None, n, minutes(sec), None))
    return {k: (currency.get(k[0]), sorted(v, key=repr)) for k, v in lines.items()}


SECTION_ORDER = ["balance:opening balance", "funds", "recharges:auto-recharge",
                 "recharges:recharge failed", "spend", "forfeited", "balance:closing balance",
                 "minutes:included in plan", "minutes:charged to credits",
                 "minutes:cut or blocked"]


def _part(line) -> int:
    key = f"{line['section']}:{line['item']}"
    return next(i for i, s in enumerate(SECTION_ORDER) if key.startswith(s) or s == line[
        "section"])


def check_statements(out: Path, got: list[dict], only_month=None, only_tenant=None) -> None:
    expect = expected_statements(out)
    if only_month:
        expect = {k: v for k, v in expect.items() if k[1] == only_month}
    if only_tenant:
        expect = {k: v for k, v in expect.items() if k[0] == only_tenant}
    by_key = defaultdict(list)
    for g in got:
        by_key[(g["tenant_id"], g["month"])].append(g)
    assert set(by_key) == set(expect)
    for key, lines in by_key.items():
        currency, want = expect[key]
        assert [g["line"] for g in lines] == list(range(1, len(lines) + 1)), key
        assert [_part(g) for g in lines] == sorted(_part(g) for g in lines), key
        assert {g["currency"] for g in lines} == {currency}
        have = sorted(((g["section"], g["item"], g["capability"], g["call_type"],
                        g["reference"], g["time"], g["count"], g["minutes"], g["amount"])
                       for g in lines), key=repr)
        assert have == want, key
        # the statement balances: opening + movements = closing
        amounts = {g["item"]: g["amount"] for g in lines if g["section"] == "balance"}
        moved = sum(g["amount"] for g in lines if g["section"] in ("funds", "recharges",
                                                                   "spend", "forfeited"))
        assert amounts["opening balance"] + moved == amounts["closing balance"], key


def test_billing_statement_recomputed(sample):
    out, _ = sample
    got = report("billing", out)
    assert {g["section"] for g in got} >= {"balance", "funds", "spend", "minutes"}
    check_statements(out, got)
    m = months_of(out)[1]
    check_statements(out, report("billing", out, month=m), only_month=m)
    tenant = got[0]["tenant_id"]
    check_statements(out, report("billing", out, month=m, tenant=tenant), m, tenant)


def test_expiry_recomputed(sample):
    out, _ = sample
    ledger = rows(out, "ledger")
    since = date(2026, 1, 1)
    got = report("expiry", out, date=since, days=365)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    lots = [e for e in ledger if e["kind"] in ("fund", "recharge")]
    want = {}
    for lot in lots:
        expires = plus_12_months(lot["time"])
        if not start <= expires < start + timedelta(days=365):
            continue
        mine = [e for e in ledger if e["tenant_id"] == lot["tenant_id"]
                and e["lot_id"] == lot["lot_id"] and e["kind"] in ("debit", "expire")]
        drawn = sum((e["amount"] for e in mine if e["kind"] == "debit" and e["time"] < start),
                    Decimal(0))
        forfeited = [-e["amount"] for e in mine if e["kind"] == "expire"]
        want[(lot["tenant_id"], lot["lot_id"])] = (
            lot["time"], expires, lot["amount"], lot["amount"] + drawn,
            forfeited[0] if forfeited else None, (expires.date() - since).days)
    expiring = [g for g in got if g["section"] == "expiring"]
    assert len(expiring) == len(want) > 0
    for g in expiring:
        assert (g["funded_at"], g["expires_at"], g["amount"], g["remaining"], g["forfeited"],
                g["days_left"]) == want[(g["tenant_id"], g["lot_id"])]
    # live lots agree with the state's expiry times
    state = {(r["tenant_id"], r["lot_id"]): r["expires_at"]
             for r in pq.read_table(out / "state" / "lots.parquet").to_pylist()}
    for g in expiring:
        if (g["tenant_id"], g["lot_id"]) in state:
            us = state[(g["tenant_id"], g["lot_id"])]
            assert g["expires_at"] == datetime(1970, 1, 1, tzinfo=timezone.utc) \
                + timedelta(microseconds=us)
    forfeited = defaultdict(lambda: [0, Decimal(0)])
    for e in ledger:
        if e["kind"] == "expire":
            f = forfeited[(e["tenant_id"], month(e["time"]))]
            f[0] += 1
            f[1] -= e["amount"]
    assert {(g["tenant_id"], g["month"]): [g["lots"], g["forfeited"]]
            for g in got if g["section"] == "forfeited"} == dict(forfeited)
    assert forfeited, "the sample should forfeit something"


def test_impact_recomputed(sample):
    out, cand = sample
    got = report("impact", out, candidate_dir=cand)
    cur, new = rows(out, "rated"), rows(cand, "rated")
    for section, key in (("country", ("currency", "country")),
                         ("destination", ("currency", "country", "destination")),
                         ("tenant", ("currency", "tenant_id"))):
        want = defaultdict(lambda: [0, 0, Decimal(0), Decimal(0)])
        for side, data in ((0, cur), (1, new)):
            for r in data:
                if r["charge"] != 0:
                    w = want[tuple(r[k] for k in key)]
                    w[side] += 1
                    w[2 + side] += r["charge"]
        have = {tuple(g[k] for k in key): [g["current_calls"], g["candidate_calls"],
                                           g["current_revenue"], g["candidate_revenue"]]
                for g in got if g["section"] == section}
        assert have == dict(want), section
        for g in got:
            if g["section"] == section:
                assert g["delta"] == g["candidate_revenue"] - g["current_revenue"]
    new_by = {r["usage_id"]: r for r in new}
    changed = Counter()
    for r in cur:
        n = new_by[r["usage_id"]]
        if n["status"] != r["status"]:
            changed[(r["status"], n["status"], n["destination"] or r["destination"])] += 1
    have = Counter({(g["current_status"], g["candidate_status"], g["destination"]):
                    g["current_calls"] for g in got if g["section"] == "status"})
    assert have == changed and changed, "the candidate deck should change some statuses"
    # sorted by |delta| within a section
    for section in ("country", "destination", "tenant"):
        d = [abs(g["delta"]) for g in got if g["section"] == section]
        assert d == sorted(d, reverse=True)


# ---- reconcile -------------------------------------------------------------------------


def test_reconcile_green_on_generated_outputs(sample):
    out, cand = sample
    for data in (out, cand):
        got = report("reconcile", data)
        assert [g["invariant"] for g in got] == [
            "balance_rollforward", "ledger_sequence", "ledger_matches_state", "charges_debited",
            "pools_within_size", "pool_use_matches_calls", "usage_id_unique",
            "rows_accounted", "duplicates_named"]
        assert all(g["passed"] for g in got), got
        checked = {g["invariant"]: g["checked"] for g in got}
        assert checked["rows_accounted"] == input_rows(data)
        assert checked["duplicates_named"] == sum(r["reason"] == "duplicate"
                                                  for r in rows(data, "rejects"))
        assert checked["ledger_sequence"] == len(rows(data, "ledger"))
        assert checked["usage_id_unique"] == len(rows(data, "rated"))
        assert checked["pools_within_size"] == len(rows(data, "pools"))
        assert checked["charges_debited"] == len({e["usage_id"] for e in rows(data, "ledger")
                                                   if e["kind"] == "debit"})
    code, _ = cli("report", "reconcile", "--data", out, "--check")
    assert code == 0
    one = {g["invariant"]: g for g in report("reconcile", out, tenant="tenant1")}
    assert all(g["passed"] for g in one.values()), one
    assert one["rows_accounted"]["checked"] == 0          # needs every tenant
    assert one["usage_id_unique"]["checked"] == sum(r["tenant_id"] == "tenant1"
                                                    for r in rows(out, "rated")) > 0


def input_rows(out: Path) -> int:
    """Data rows of the CDR files the runs into `out` read (from the files)."""
    return sum(pq.read_metadata(r["file"]).num_rows for r in rows(out, "inputs"))


def _rewrite(path: Path, change) -> None:
    t = pq.read_table(path, partitioning=None)
    pq.write_table(change(t), path)


def _corrupt(sample, tmp_path, dataset, change, pick=lambda files: files[0]) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(sample[0], out)
    _rewrite(pick(sorted((out / dataset).rglob("*.parquet"))), change)
    return out


def _failed(out) -> dict:
    return {g["invariant"]: g["failed"] for g in report("reconcile", out) if not g["passed"]}


def test_reconcile_red_on_a_dropped_ledger_row(sample, tmp_path):
    def drop_middle(t):
        debits = [i for i, k in enumerate(t.column("kind").to_pylist()) if k == "debit"]
        i = debits[len(debits) // 2]
        return pa.concat_tables([t.slice(0, i), t.slice(i + 1)])

    out = _corrupt(sample, tmp_path, "ledger", drop_middle, lambda f: f[-1])
    failed = _failed(out)
    assert failed["ledger_sequence"] >= 1 and failed["charges_debited"] == 1
    assert failed["balance_rollforward"] == 1
    code, output = cli("report", "reconcile", "--data", out, "--check")
    assert code == 3 and "ledger_sequence" in output


def test_reconcile_red_on_a_dropped_last_ledger_entry(sample, tmp_path):
    """Dropping a tenant's very last entry leaves the ledger consistent with
    itself; the state still names that entry."""
    ledger = rows(sample[0], "ledger")
    last = max(ledger, key=lambda e: (e["time"], e["seq"]))

    def drop_last(t):
        keep = pc.invert(pc.and_(pc.equal(t.column("tenant_id").cast(pa.string()),
                                          last["tenant_id"]),
                                 pc.equal(t.column("seq"), last["seq"])))
        return t.filter(keep)

    out = _corrupt(sample, tmp_path, "ledger", drop_last,
                   lambda files: [f for f in files if f"month={month(last['time'])}" in str(f)
                                  and last["seq"] in pq.read_table(f, partitioning=None)
                                  .column("seq").to_pylist()][-1])
    assert "ledger_matches_state" in _failed(out)
    assert cli("report", "reconcile", "--data", out, "--check")[0] == 3


def test_reconcile_red_on_a_duplicated_rated_row(sample, tmp_path):
    out = _corrupt(sample, tmp_path, "rated", lambda t: pa.concat_tables([t, t.slice(5, 1)]))
    assert _failed(out) == {"usage_id_unique": 1, "rows_accounted": 1}
    assert cli("report", "reconcile", "--data", out, "--check")[0] == 3


def _drop_row(t: pa.Table, i: int) -> pa.Table:
    return pa.concat_tables([t.slice(0, i), t.slice(i + 1)])


def test_reconcile_red_on_a_dropped_rated_row_that_charged_nothing(sample, tmp_path):
    """A lost call that moved no money and drew no pool: only the input
    row count can tell."""
    def drop_free(t):
        free = [i for i, (c, p) in enumerate(zip(t.column("charge").to_pylist(),
                                                  t.column("pool_seconds").to_pylist()))
                if c == 0 and p == 0]
        return _drop_row(t, free[0])

    out = _corrupt(sample, tmp_path, "rated", drop_free)
    assert _failed(out) == {"rows_accounted": 1}
    code, output = cli("report", "reconcile", "--data", out, "--check")
    assert code == 3 and "1 of" in output


def test_reconcile_red_on_a_dropped_or_doubled_reject(sample, tmp_path):
    assert rows(sample[0], "rejects"), "the sample has rejects"
    out = _corrupt(sample, tmp_path, "rejects", lambda t: _drop_row(t, 0))
    assert _failed(out) == {"rows_accounted": 1}
    twice = tmp_path / "twice"
    shutil.copytree(sample[0], twice)
    _rewrite(sorted((twice / "rejects").rglob("*.parquet"))[0],
             lambda t: pa.concat_tables([t, t.slice(0, 1)]))
    assert _failed(twice) == {"rows_accounted": 1}


def test_reconcile_red_on_a_row_both_rated_and_rejected(sample, tmp_path):
    """The counts add up (one row lost, another twice): each row is checked."""
    def move(t):
        r = rows(sample[0], "rejects")[0]
        same = [i for i, f in enumerate(t.column("file").to_pylist()) if f == r["file"]]
        row = t.column("row").to_pylist()
        row[same[0]] = r["row"]   # this rated row now claims the rejected row's place
        return t.set_column(t.schema.get_field_index("row"), "row", pa.array(row, pa.int64()))

    out = _corrupt(sample, tmp_path, "rated", move,
                   lambda files: next(f for f in files if rows(sample[0], "rejects")[0]["file"]
                                      in pq.read_table(f, partitioning=None)
                                      .column("file").cast(pa.string()).to_pylist()))
    assert _failed(out) == {"rows_accounted": 2}


def test_reconcile_green_after_the_same_files_are_rated_three_times(tmp_path):
    """Each read of a file is accounted for: the second and third reads
    are all duplicate rejects."""
    s = generate(tmp_path / "s", tenants=3, cdrs=600, days=20, seed=5,
                 start=datetime(2026, 1, 3, tzinfo=timezone.utc), prefixes_per_service=100)
    out = tmp_path / "out"
    for _ in range(3):
        run.rate(s.config_dir, [s.cdr_dir], out, threads=1)
    got = {g["invariant"]: g for g in report("reconcile", out)}
    assert all(g["passed"] for g in got.values()), got
    assert got["rows_accounted"]["checked"] == 3 * input_rows(out) // 3 == \
        3 * sum(pq.read_metadata(f).num_rows for f in s.cdr_dir.glob("*.parquet"))


def test_reconcile_red_on_a_pool_over_its_size(sample, tmp_path):
    def overfill(t):
        size = t.column("size_seconds").to_pylist()
        used = t.column("used_seconds").to_pylist()
        used[0] = size[0] + 60
        return t.set_column(t.schema.get_field_index("used_seconds"), "used_seconds",
                            pa.array(used, pa.int64()))

    out = _corrupt(sample, tmp_path, "pools", overfill)
    failed = _failed(out)
    assert failed["pools_within_size"] == 1
    assert cli("report", "reconcile", "--data", out, "--check")[0] == 3


# ---- a hand-built case ------------------------------------------------------------------


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    """One tenant, 0.06/min 60/60 to GB. Fundings: 10.00 on 29 Feb 2024
    (EA-1; expires 28 Feb 2025), 5.00 on 15 Mar 2024 (PO-2). Calls:
    a 120 s (0.12), b 61 s (bills 120 s: 0.12), c 0 s, d inbound (free).
    Rated as of 1 Mar 2025, so lot 1 forfeits 10 - 0.24 = 9.76."""
    root = tmp_path_factory.mktemp("hand")
    config = root / "config"
    write_deck(config / "decks" / "deck.csv", [deck_row("44", "0.0600")])
    write_csv(config / "tenants.csv", list(tenant_row()), [tenant_row()])
    write_billing_files(config, licenses=[license_row(sku="MCOPSTNPP")],
                        funds=[fund_row("10", "2024-02-29", reference="EA-1"),
                               fund_row("5", "2024-03-15", reference="PO-2")])
    write_cdrs(root / "cdrs" / "c.parquet", [
        cdr("a", "+442071234567", 120, "2024-03-01T10:00:00Z"),
        cdr("b", "+442071234567", 61, "2024-03-20T10:00:00Z"),
        cdr("c", "+442071234567", 0, "2024-04-02T10:00:00Z"),
        cdr("d", "+12065550100", 60, "2024-04-03T10:00:00Z", call_type="user_in",
            caller="+442071234567")])
    out = root / "out"
    run.rate(config, [root / "cdrs"], out, as_of=run.parse_as_of("2025-03-01"), threads=1)
    return out


D = Decimal


def test_hand_billing_statement(hand):
    got = [(g["month"], g["line"], g["section"], g["item"], g["capability"], g["call_type"],
            g["reference"], g["count"], g["minutes"], g["amount"])
           for g in report("billing", hand)]
    assert got == [
        ("2024-02", 1, "balance", "opening balance", None, None, None, None, None, D(0)),
        ("2024-02", 2, "funds", "funds added", None, None, "EA-1", 1, None, D("10")),
        ("2024-02", 3, "balance", "closing balance", None, None, None, None, None, D("10")),
        ("2024-03", 1, "balance", "opening balance", None, None, None, None, None, D("10")),
        ("2024-03", 2, "funds", "funds added", None, None, "PO-2", 1, None, D("5")),
        ("2024-03", 3, "spend", "calls charged to credits", "MCOPSTNPP", "user_out", None, 2,
         D("4.00"), D("-0.24")),
        ("2024-03", 4, "balance", "closing balance", None, None, None, None, None, D("14.76")),
        ("2024-03", 5, "minutes", "charged to credits", None, None, None, 2, D("4.00"), None),
        ("2024-04", 1, "balance", "opening balance", None, None, None, None, None, D("14.76")),
        ("2024-04", 2, "balance", "closing balance", None, None, None, None, None, D("14.76")),
        ("2025-02", 1, "balance", "opening balance", None, None, None, None, None, D("14.76")),
        ("2025-02", 2, "forfeited", "credits expired", None, None, None, 1, None, D("-9.76")),
        ("2025-02", 3, "balance", "closing balance", None, None, None, None, None, D("5")),
    ]
    assert {g["currency"] for g in report("billing", hand)} == {"USD"}


def test_hand_expiry_clamps_29_february(hand):
    got = report("expiry", hand, date="2025-02-01", days=30)
    assert [(g["section"], g["lot_id"], g["reference"], g["expires_at"], g["days_left"],
             g["amount"], g["remaining"], g["forfeited"], g["month"], g["lots"])
            for g in got] == [
        ("expiring", 1, "EA-1", datetime(2025, 2, 28, tzinfo=timezone.utc), 27, D(10),
         D("9.76"), D("9.76"), "2025-02", None),
        ("forfeited", None, None, None, None, None, None, D("9.76"), "2025-02", 1)]
    # the window is half-open: lot 2 expires on 15 Mar 2025
    assert [g["lot_id"] for g in report("expiry", hand, date="2025-03-15", days=1)
            if g["section"] == "expiring"] == [2]
    assert [g for g in report("expiry", hand, date="2025-03-14", days=1)
            if g["section"] == "expiring"] == []
    # default window: 30 days from the outputs' as-of date (1 Mar 2025)
    assert [g["lot_id"] for g in report("expiry", hand) if g["section"] == "expiring"] == [2]


def test_a_tenant_without_calls_has_its_currency(tmp_path):
    """A tenant that was funded but made no call has no rated row to show
    its currency: the statement and the expiry report take it from the
    tenants.csv the run kept in state/."""
    from billing_harness import fund, tenant, write_config
    from conftest import cdr, deck_row, write_cdrs
    config = write_config(tmp_path, [deck_row("44", rate="0.6000")],
                          [tenant("t1"), tenant("t2")],
                          funds=[fund("2024-01-05", "5.00"), fund("2024-01-06", "7.00", tid="t2")])
    write_cdrs(tmp_path / "c" / "c.parquet", [cdr("a", "+4420", 60, start="2024-02-10T10:00:00Z")])
    run.rate(config, [tmp_path / "c"], tmp_path / "out")
    got = {(r["tenant_id"], r["month"]): r["currency"] for r in report("billing", tmp_path / "out")}
    assert got[("t2", "2024-01")] == "USD" and got[("t1", "2024-02")] == "USD"
    exp = report("expiry", tmp_path / "out", date="2025-01-01", days=30)
    assert {r["tenant_id"]: r["currency"] for r in exp}.get("t2") == "USD"


def test_hand_usage_and_reconcile(hand):
    got = report("usage", hand)
    assert [(g["UsageId"], g["Charge"], g["Connection Fee"], g["Capability"],
             g["Duration Seconds"]) for g in got] == [
        ("a", D("0.12"), D(0), "MCOPSTNPP", 120), ("b", D("0.12"), D(0), "MCOPSTNPP", 61),
        ("c", D(0), D(0), None, 0), ("d", D(0), D(0), "FREECALL", 60)]
    assert got[0]["Destination Dialed"] == "Dest 44" and got[0]["Call ID"] == "c-a"
    assert all(g["passed"] for g in report("reconcile", hand))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_write_report_streams_the_file_export_writes(sample, tmp_path, monkeypatch, fmt):
    """write_report, a few rows a batch, writes the bytes that run_report +
    export write (same rows, order, types, CSV text); an empty result is a
    header (CSV) or a file with the columns and no rows (Parquet)."""
    out, _ = sample
    m = months_of(out)[1]
    monkeypatch.setattr(reports, "STREAM_ROWS", 100)
    table = reports.run_report("usage", out, month=m)
    assert table.num_rows > 300
    whole, streamed = tmp_path / f"whole.{fmt}", tmp_path / f"streamed.{fmt}"
    reports.export(table, fmt, whole)
    assert reports.write_report("usage", out, fmt, streamed, month=m) == table.num_rows
    if fmt == "csv":
        assert streamed.read_bytes() == whole.read_bytes()
    else:
        back = pq.read_table(streamed)
        assert back.equals(pq.read_table(whole)) and back.equals(table)
        assert pq.ParquetFile(streamed).metadata.num_row_groups > 1
    empty = tmp_path / f"empty.{fmt}"
    assert reports.write_report("usage", out, fmt, empty, tenant="no such tenant") == 0
    if fmt == "csv":
        reports.export(table.slice(0, 0), fmt, whole)
        assert empty.read_bytes() == whole.read_bytes()
        assert empty.read_bytes().count(b"\r\n") == 1
    else:
        assert pq.read_table(empty).schema == table.schema and pq.read_table(empty).num_rows == 0
    with pytest.raises(reports.InputError, match="xlsx"):
        reports.write_report("usage", out, "xlsx", tmp_path / "r.xlsx")


def test_missing_datasets_are_empty_views(tmp_path, hand):
    """Outputs with no notifications/ or pools/ yet: reports run, with no
    rows from them."""
    out = tmp_path / "out"
    shutil.copytree(hand, out)
    for name in ("notifications", "pools", "rejects"):
        shutil.rmtree(out / name, ignore_errors=True)
    assert report("pools", out) == []
    assert all(g["passed"] for g in report("reconcile", out))
    con = reports.connect(out)
    assert con.sql("SELECT count(*) FROM notifications").fetchall() == [(0,)]
    assert "month" in con.sql("SELECT * FROM notifications").columns


# ---- exports ----------------------------------------------------------------------------


@pytest.fixture
def table():
    return pa.table({
        "tenant_id": ["t,1", 'say "hi"', "tab\there", None],
        "currency": ["USD", "JPY", "EUR", None],
        "amount": pa.array([D("1234.5"), D("-0.000001"), D("123456789012.123456"), None],
                           MONEY),
        "minutes": pa.array([D("1.50"), D("0"), None, D("2.25")], pa.decimal128(18, 2)),
        "count": pa.array([1, 2, None, 4], pa.int64()),
        "time": pa.array([datetime(2024, 2, 29, 10, 0, 1, tzinfo=timezone.utc), None,
                          datetime(2024, 3, 1, tzinfo=timezone.utc), None],
                         pa.timestamp("us", tz="UTC")),
        "day": pa.array([date(2025, 2, 28), None, None, None], pa.date32()),
        "ok": [True, False, None, True],
    })


def test_csv_is_rfc_4180_with_exact_money(table, tmp_path):
    path = tmp_path / "r.csv"
    reports.export(table, "csv", path)
    raw = path.read_bytes()
    assert raw.count(b"\r\n") == 5 and b"\n" not in raw.replace(b"\r\n", b"")
    back = list(csv.DictReader(io.StringIO(raw.decode(), newline="")))
    assert [r["tenant_id"] for r in back] == ["t,1", 'say "hi"', "tab\there", ""]
    assert [r["amount"] for r in back] == ["1234.500000", "-0.000001", "123456789012.123456", ""]
    assert back[0]["time"] == "2024-02-29T10:00:01.000000Z" and back[0]["day"] == "2025-02-28"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-30_610_224_000_000_000, 253_402_300_799_999_999)),
                max_size=40),
       st.sampled_from(["s", "ms", "us"]), st.sampled_from(["UTC", None]))
def test_text_times_are_strftime_iso(micros, unit, tz):
    """The fast ISO text of times equals pyarrow's strftime, years 1000-9999."""
    scale = {"s": 1_000_000, "ms": 1_000, "us": 1}[unit]
    col = pa.chunked_array([pa.array([None if m is None else m // scale for m in micros],
                                     pa.timestamp(unit, tz=tz))])
    got = reports._text_columns(pa.table({"t": col})).column("t")
    want = pc.strftime(col, format="%Y-%m-%dT%H:%M:%SZ" if tz else "%Y-%m-%dT%H:%M:%S")
    assert got.to_pylist() == want.to_pylist()


def test_tsv_escapes_tabs_and_newlines(table, tmp_path):
    t = table.set_column(0, "tenant_id", pa.array(["a\tb", "c\nd", "e\\f", None]))
    path = tmp_path / "r.tsv"
    reports.export(t, "tsv", path)
    lines = path.read_text().split("\n")
    assert lines[0].split("\t") == t.column_names
    assert [line.split("\t")[0] for line in lines[1:5]] == ["a\\tb", "c\\nd", "e\\\\f", ""]
    assert lines[3].split("\t")[2] == "123456789012.123456" and lines[5] == ""


def test_json_keeps_money_digits(table, tmp_path):
    path = tmp_path / "r.json"
    reports.export(table, "json", path)
    back = json.loads(path.read_text(), parse_float=Decimal)
    assert [r["amount"] for r in back] == [D("1234.5"), D("-0.000001"),
                                           D("123456789012.123456"), None]
    assert back[0]["tenant_id"] == "t,1" and back[3]["tenant_id"] is None
    assert back[0]["count"] == 1 and back[0]["ok"] is True
    assert back[0]["time"] == "2024-02-29T10:00:01.000000Z"
    empty = tmp_path / "e.json"
    reports.export(table.slice(0, 0), "json", empty)
    assert json.loads(empty.read_text()) == []


def test_parquet_keeps_types(table, tmp_path):
    path = tmp_path / "r.parquet"
    reports.export(table, "parquet", path)
    assert pq.read_table(path).equals(table)


def _xlsx(path: Path):
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    with zipfile.ZipFile(path) as z:
        sheet = ElementTree.fromstring(z.read("xl/worksheets/sheet1.xml"))
        styles = ElementTree.fromstring(z.read("xl/styles.xml"))
    fmts = {f.get("numFmtId"): f.get("formatCode")
            for f in styles.findall("m:numFmts/m:numFmt", ns)}
    xfs = [xf.get("numFmtId") for xf in styles.findall("m:cellXfs/m:xf", ns)]
    cells = {}
    for c in sheet.iter(f"{{{ns['m']}}}c"):
        v = c.find("m:v", ns)
        text = c.find("m:is/m:t", ns)
        fmt_id = xfs[int(c.get("s", 0))]
        cells[c.get("r")] = (c.get("t"), v.text if v is not None else text.text,
                             fmts.get(fmt_id, fmt_id))
    return cells


def test_xlsx_cells_are_typed(table, tmp_path):
    path = tmp_path / "r.xlsx"
    reports.export(table, "xlsx", path, name="billing")
    cells = _xlsx(path)
    assert cells["A1"][:2] == ("inlineStr", "tenant_id")
    # money: a number with its exact digits, in its row's currency format
    assert cells["C2"] == (None, "1234.500000", "[$USD] #,##0.00####")
    assert cells["C3"] == (None, "-0.000001", "[$JPY] #,##0.######")
    assert cells["C4"] == (None, "123456789012.1235", "[$EUR] #,##0.00####")
    assert "C5" not in cells
    assert cells["D2"] == (None, "1.50", "#,##0.00")
    assert cells["E2"] == (None, "1", "1")  # built-in format 1 is "0"
    assert cells["F2"][0] is None and cells["F2"][2] == "yyyy-mm-dd hh:mm:ss"
    # 2024-02-29 10:00:01 as an Excel serial date
    assert abs(float(cells["F2"][1]) - (45351 + (10 * 3600 + 1) / 86400)) < 1e-6
    assert cells["G2"] == (None, "45716", "yyyy-mm-dd")
    assert cells["H2"] == ("b", "1", "0")


def test_table_format_prints_and_counts(table):
    from rich.console import Console

    console = Console(file=io.StringIO(), width=200)
    reports.print_table(table, console, title="t", limit=2)
    text = console.file.getvalue()
    assert "1,234.500000" in text and "… 2 more rows of 4" in text


# ---- the command line ---------------------------------------------------------------------


def test_cli_report_to_files(hand, tmp_path):
    code, _ = cli("report", "billing", "--data", hand, "--format", "xlsx", "--output",
                  tmp_path / "s.xlsx")
    assert code == 0 and (tmp_path / "s.xlsx").stat().st_size > 0
    code, out = cli("report", "billing", "--data", hand, "--month", "2024-03", "--tenant", "t1",
                    "--format", "csv")
    assert code == 0
    back = list(csv.DictReader(io.StringIO(out)))
    assert [r["amount"] for r in back if r["section"] == "balance"] == ["10.000000",
                                                                         "14.760000"]
    code, out = cli("report", "pools", "--data", hand, "--format", "json")
    assert code == 0 and json.loads(out) == []
    code, out = cli("report", "expiry", "--data", hand, "--date", "2025-02-01", "--days", "30",
                    "--format", "tsv")
    assert code == 0 and out.splitlines()[1].startswith("expiring\tt1\tUSD\t2025-02\t1\t")


@pytest.mark.parametrize("args, message", [
    (["report", "nope", "--data", "{out}"], "unknown report 'nope'"),
    (["report", "pools", "--data", "{out}/missing"], "is not a directory"),
    (["report", "pools", "--data", "{tmp}"], "holds no ratecore outputs"),
    (["report", "pools", "--data", "{out}", "--month", "2024-3"], "is not a month"),
    (["report", "expiry", "--data", "{out}", "--date", "2024-02-30"], "is not a date"),
    (["report", "pools", "--data", "{out}", "--format", "parquet"], "give --output"),
    (["report", "impact", "--data", "{out}"], "--candidate DIR"),
    (["report", "impact", "--data", "{out}", "--candidate", "{tmp}"], "--candidate"),
    (["report", "pools", "--data", "{out}", "--check"], "no passed column"),
])
def test_cli_bad_input_exits_2(hand, tmp_path, args, message):
    args = [a.format(out=hand, tmp=tmp_path) for a in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_cli_impact_with_candidate(sample):
    out, cand = sample
    code, text = cli("report", "impact", "--data", out, "--candidate", cand, "--format", "csv")
    assert code == 0 and text.startswith('"section","currency"')


def test_cli_import_teams_is_wired(tmp_path):
    pytest.importorskip("ratecore.teams")
    export = tmp_path / "teams.csv"
    write_csv(export, TEAMS_COLUMNS, [{
        "UsageId": "u-1", "Call ID": "c-1", "Conference ID": "", "User Location": "US",
        "AAD ObjectId": "", "UPN": "ann@contoso.com", "User Display Name": "Ann",
        "Caller ID": "+12065550100", "Call Type": "user_out", "Number Type": "user",
        "Domestic/International": "International", "Destination Dialed": "United Kingdom",
        "Destination Number": "+442071234567", "Start Time": "2024-03-01T10:00:00Z",
        "End Time": "2024-03-01T10:02:00Z", "Duration Seconds": "120",
        "Connection Fee": "0", "Charge": "0.12", "Currency": "USD",
        "Capability": "MCOPSTNPP"}])
    code, _ = cli("import-teams", export, "--tenant", "t1", "--out", tmp_path / "cdrs.parquet")
    assert code == 0
    got = pq.read_table(tmp_path / "cdrs.parquet").to_pylist()
    assert [(g["usage_id"], g["tenant_id"]) for g in got] == [("u-1", "t1")]


def test_every_report_is_shipped_and_binds_known_parameters():
    names = reports.report_names()
    assert {"usage", "pools", "billing", "expiry", "reconcile", "impact"} <= set(names)
    for name in names:
        assert set(reports.parameters_of(reports.report_sql(name))) <= set(reports.PARAMETERS)


def test_table_format_wider_than_the_console_prints_records(table):
    from rich.console import Console

    console = Console(file=io.StringIO(), width=40)
    reports.print_table(table, console, title="t")
    text = console.file.getvalue()
    assert text.count("record ") == 4 and "123,456,789,012.123456" in text
