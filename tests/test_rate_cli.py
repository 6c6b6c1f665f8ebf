"""``ratecore rate`` end to end: outputs, rejects, exit codes, --strict."""

from decimal import Decimal as D

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import cdr, deck_row, write_cdrs, write_config, write_csv

from ratecore.cli import main

DECK = [deck_row("44", "0.0600", initial_increment=30, next_increment=6),
        deck_row("447", "0.1000", number_class="mobile"),
        deck_row("1900", "1.0", country="US", blocked="true"),
        deck_row("1", "0.0100", country="US")]


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def arrow(rel):
    """A relation as a pyarrow Table (duckdb 2 returns a reader from .arrow())."""
    t = rel.arrow()
    return t.read_all() if hasattr(t, "read_all") else t


def table(path):
    return duckdb.sql(f"SELECT * FROM read_parquet('{path}/**/*.parquet', "
                      "hive_partitioning = true) ORDER BY usage_id")


def test_rate_writes_priced_records_by_month(tmp):
    config = write_config(tmp, DECK)
    write_cdrs(tmp / "cdrs" / "a.parquet", [
        cdr("a1", "+442079460000", 57),
        cdr("a2", "+447700900123", 61, start="2024-04-02T00:00:00Z"),
        cdr("a3", "+19005550100", 30),
        cdr("a4", "+12065550100", 0),
        cdr("a5", "+4420", 30, call_type="user_in"),
        cdr("a6", "+33140000000", 30),
    ])
    code, out = run("rate", "--config", config, "--cdrs", tmp / "cdrs", "--out", tmp / "out")
    assert code == 0, out
    rows = {r["usage_id"]: r for r in arrow(table(tmp / "out" / "rated")).to_pylist()}
    assert {r["status"] for r in rows.values()} == {"charged", "blocked_destination",
                                                   "zero_duration", "free", "no_rate"}
    assert rows["a1"]["charge"] == D("0.0600") and rows["a1"]["billable_seconds"] == 60
    assert rows["a1"]["destination"] == "Dest 44" and rows["a1"]["currency"] == "USD"
    assert rows["a2"]["charge"] == D("0.2000") and rows["a2"]["month"] == "2024-04"
    assert rows["a3"]["status"] == "blocked_destination" and rows["a3"]["charge"] == 0
    assert rows["a6"]["prefix"] is None and rows["a6"]["status"] == "no_rate"
    schema = pq.read_schema(next((tmp / "out" / "rated").rglob("*.parquet")))
    assert str(schema.field("charge").type) == "decimal128(18, 6)"
    assert str(schema.field("rate").type) == "decimal128(18, 6)"
    assert sorted(p.name for p in (tmp / "out" / "rated").iterdir()) == [
        "month=2024-03", "month=2024-04"]
    assert "charged USD 0.2600" in out


def test_bad_rows_go_to_rejects_with_reason(tmp):
    config = write_config(tmp, DECK)
    write_cdrs(tmp / "cdrs" / "a.parquet", [
        cdr("ok", "+4420", 60),
        cdr("bad-type", "+4420", 60, call_type="carrier_pigeon"),
        cdr("no-number", None, 60),
        cdr("bad-number", "+44 (20) 7946", 60),
        cdr("bad-tenant", "+4420", 60, tenant="nobody"),
        cdr("negative", "+4420", -5),
        cdr("ok", "+4420", 99),                      # duplicate usage_id: first wins
        cdr("", "+4420", 60),
        cdr("tf", "+18005550100", 60, call_type="user_in", number_type="tollfree",
            caller=None),
    ])
    code, out = run("rate", "--config", config, "--cdrs", tmp / "cdrs", "--out", tmp / "out")
    assert code == 0, out
    rej = {r[0]: r[1:] for r in table(tmp / "out" / "rejects").project(
        "usage_id, reason, row, file, message, duration_seconds").fetchall()}
    assert rej["bad-type"][0] == "unknown_call_type"
    assert "column 'call_type'" in rej["bad-type"][3]
    assert rej["no-number"][0] == "missing_number"
    assert rej["bad-number"][0] == "bad_number" and "callee_number" in rej["bad-number"][3]
    assert rej["bad-tenant"][0] == "unknown_tenant"
    assert rej["negative"][0] == "negative_duration" and rej["negative"][4] == "-5"
    assert rej["ok"][0] == "duplicate" and rej["ok"][1] == 7 and rej["ok"][4] == "99"
    assert rej[""][0] == "missing_usage_id"
    assert rej["tf"][0] == "missing_number" and "caller_number" in rej["tf"][3]
    assert rej["bad-type"][2].endswith("a.parquet") and rej["bad-type"][1] == 2
    ok = table(tmp / "out" / "rated").project("usage_id").fetchall()
    assert len(ok) == 1
    # nothing lost: every input row is rated or rejected exactly once
    assert len(ok) + len(rej) + 0 == 9 - 0 and len(rej) == 8


def test_csv_cdrs_with_end_time(tmp):
    config = write_config(tmp, DECK)
    write_csv(tmp / "cdrs.csv", ["usage_id", "tenant_id", "user_id", "call_type",
                                 "caller_number", "callee_number", "start_time", "end_time"], [
        {"usage_id": "c1", "tenant_id": "t1", "user_id": "u1@t1.example", "call_type": "user_out",
         "caller_number": "", "callee_number": "+44 20 7946 0000",
         "start_time": "2024-03-01T10:00:00Z", "end_time": "2024-03-01T10:00:56.2Z"},
        {"usage_id": "c2", "tenant_id": "t1", "user_id": "u1@t1.example", "call_type": "user_out",
         "caller_number": "", "callee_number": "+4420", "start_time": "2024-03-01 10:00:00",
         "end_time": "2024-03-01T09:00:00Z"},
        {"usage_id": "c3", "tenant_id": "t1", "user_id": "u1@t1.example", "call_type": "user_out",
         "caller_number": "", "callee_number": "+4420", "start_time": "yesterday",
         "end_time": "2024-03-01T09:00:00Z"},
    ])
    code, out = run("rate", "--config", config, "--cdrs", tmp / "cdrs.csv", "--out", tmp / "out")
    assert code == 0, out
    rows = table(tmp / "out" / "rated").project("usage_id, duration_seconds, charge").fetchall()
    assert rows == [("c1", 57, D("0.0600"))]
    rej = dict(table(tmp / "out" / "rejects").project("usage_id, reason").fetchall())
    assert rej == {"c2": "end_before_start", "c3": "bad_start_time"}


def test_strict_publishes_nothing_and_exits_2(tmp):
    config = write_config(tmp, DECK)
    write_cdrs(tmp / "cdrs" / "a.parquet", [cdr("ok", "+4420", 60)])
    assert run("rate", "--config", config, "--cdrs", tmp / "cdrs", "--out", tmp / "out")[0] == 0
    before = sorted(p.relative_to(tmp) for p in (tmp / "out").rglob("*"))
    write_cdrs(tmp / "cdrs2" / "a.parquet", [cdr("x", "+4420", 60), cdr("y", None, 60)])
    code, out = run("rate", "--config", config, "--cdrs", tmp / "cdrs2", "--out", tmp / "out",
                    "--strict")
    assert code == 2 and "--strict: 1 CDR(s) rejected" in out and "row 2" in out
    assert sorted(p.relative_to(tmp) for p in (tmp / "out").rglob("*")) == before


def test_bad_deck_exits_2_naming_file_line_column(tmp):
    config = write_config(tmp, DECK + [deck_row("4x4")])
    write_cdrs(tmp / "cdrs" / "a.parquet", [cdr("ok", "+4420", 60)])
    code, out = run("rate", "--config", config, "--cdrs", tmp / "cdrs", "--out", tmp / "out")
    assert code == 2
    assert "deck.csv:6: column 'prefix'" in out
    assert not (tmp / "out").exists()


def test_missing_cdr_column_exits_2(tmp):
    config = write_config(tmp, DECK)
    (tmp / "c.csv").write_text("usage_id,tenant_id,call_type,callee_number,start_time\n")
    code, out = run("rate", "--config", config, "--cdrs", tmp / "c.csv", "--out", tmp / "out")
    assert code == 2 and "c.csv: missing required column(s) 'caller_number'" in out


@pytest.mark.parametrize("tenants, words", [
    ([{"tenant_id": "t1", "name": "x", "country": "US", "currency": "EUR", "deck": "d1"}],
     "differs from the currency"),
    ([{"tenant_id": "t1", "name": "x", "country": "US", "currency": "USD", "deck": "dz"}],
     "unknown deck 'dz'"),
    ([{"tenant_id": "t1", "name": "x", "country": "US", "currency": "USD", "deck": "d1"}] * 2,
     "listed more than once"),
])
def test_bad_tenants_exit_2(tmp, tenants, words):
    config = write_config(tmp, DECK, tenants)
    write_cdrs(tmp / "cdrs" / "a.parquet", [cdr("ok", "+4420", 60)])
    code, out = run("rate", "--config", config, "--cdrs", tmp / "cdrs", "--out", tmp / "out")
    assert code == 2 and "tenants.csv:" in out and words in out


def test_candidate_deck_replaces_configured(tmp):
    config = write_config(tmp, DECK)
    cand = write_csv(tmp / "cand.csv", list(deck_row("44").keys()),
                     [deck_row("44", "0.5000", deck="retail-2027")])
    write_cdrs(tmp / "cdrs" / "a.parquet", [cdr("a", "+4420", 60)])
    code, out = run("rate", "--config", config, "--cdrs", tmp / "cdrs", "--out", tmp / "out",
                    "--deck", cand)
    assert code == 0, out
    assert table(tmp / "out" / "rated").project("deck, charge").fetchall() == [
        ("retail-2027", D("0.5000"))]


def test_empty_cdr_file_rates_nothing(tmp):
    config = write_config(tmp, DECK)
    write_cdrs(tmp / "cdrs" / "empty.parquet", [])
    code, out = run("rate", "--config", config, "--cdrs", tmp / "cdrs", "--out", tmp / "out")
    assert code == 0, out
    assert "0 CDRs read" in out


def test_generate_then_rate_then_demo(tmp):
    code, out = run("generate", "--out", tmp / "s", "--tenants", 5, "--cdrs", 3000, "--seed", 3)
    assert code == 0, out
    code, out = run("rate", "--config", tmp / "s" / "config", "--cdrs", tmp / "s" / "cdrs",
                    "--out", tmp / "out")
    assert code == 0, out
    rated = table(tmp / "out" / "rated").project(
        "count(*), count(DISTINCT usage_id)").fetchall()[0]
    rejects = (table(tmp / "out" / "rejects").project("count(*)").fetchall()[0][0]
               if (tmp / "out" / "rejects").exists() else 0)
    assert rated[0] == rated[1] and rated[0] + rejects == 3000
    code, out = run("demo", "--dir", tmp / "demo", "--cdrs", 2000)
    assert code == 0, out
    assert "Top destinations by revenue" in out and "charged" in out
