"""Runs carry state (SPEC §8): two runs equal one, re-runs add only
duplicates, --as-of advances tenants without calls, publishing is atomic."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from ratecore import ids, run, state
from ratecore.generate import generate

OUTPUTS = {"rated": ["usage_id"], "ledger": ["tenant_id", "seq"],
           "notifications": ["tenant_id", "seq"], "pools": ["tenant_id", "month", "pool"]}


def read(out: Path, name: str) -> pa.Table:
    path = out / name
    if not path.exists():
        return pa.table({})
    t = ds.dataset(path, format="parquet", partitioning="hive").to_table()
    t = t.select([c for c in t.column_names if c != "month" or name == "pools"])
    for i, f in enumerate(t.schema):
        if pa.types.is_dictionary(f.type):
            t = t.set_column(i, f.name, t.column(i).cast(f.type.value_type))
    return t.sort_by([(k, "ascending") for k in OUTPUTS.get(name, ["file", "row"])])


def state_of(out: Path) -> dict:
    return {p.name: pq.read_table(p) for p in sorted((out / "state").glob("*.parquet"))}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    s = generate(root, tenants=12, cdrs=20_000, days=62, seed=3,
                 start=datetime(2025, 12, 20, tzinfo=timezone.utc))
    cdrs = ds.dataset(s.cdr_dir, format="parquet").to_table()
    month = pc.strftime(cdrs.column("start_time"), format="%Y-%m")
    months = sorted(set(month.to_pylist()))
    split = root / "split"
    for m in months:
        (split / m).mkdir(parents=True)
        pq.write_table(cdrs.filter(pc.equal(month, m)), split / m / "cdrs.parquet")
    return s, split, months


def test_two_runs_equal_one(sample, tmp_path):
    s, split, months = sample
    assert len(months) >= 3
    one = tmp_path / "one"
    run.rate(s.config_dir, [split], one)
    many = tmp_path / "many"
    for m in months:
        run.rate(s.config_dir, [split / m], many)
    for name in OUTPUTS:
        a, b = read(one, name), read(many, name)
        assert a.num_rows > 0, name
        assert a.equals(b), name
    assert state_of(one)["tenants.parquet"].equals(state_of(many)["tenants.parquet"])
    assert state_of(one)["lots.parquet"].equals(state_of(many)["lots.parquet"])
    statuses = set(read(one, "rated").column("status").to_pylist())
    assert {"included", "charged", "free"} <= statuses


@pytest.mark.parametrize("window", [150, 3_000])
def test_billing_a_run_in_stretches_changes_nothing(sample, tmp_path, monkeypatch, window):
    """A run bills its calls a stretch of start time at a time (bounded
    memory); however short the stretches, the outputs, the state and the
    states kept at month openings are the ones of a single pass."""
    s, split, months = sample
    whole = tmp_path / "whole"
    run.rate(s.config_dir, [split], whole)
    assert len(list((whole / "rated").rglob("*.parquet"))) == len(months)  # no cut but months
    monkeypatch.setattr(run, "WINDOW_CALLS", window)
    cut = tmp_path / "cut"
    run.rate(s.config_dir, [split], cut)
    n = read(cut, "rated").num_rows
    assert len(list((cut / "rated").rglob("*.parquet"))) >= n // window   # it was cut
    for name in OUTPUTS:
        assert read(whole, name).equals(read(cut, name)), name
    kept = [Path("state")] + [Path("state") / "months" / m for m in months]
    for d in kept:
        tables = sorted((whole / d).glob("*.parquet"))
        assert tables, d
        for f in tables:
            assert pq.read_table(f).equals(pq.read_table(cut / d / f.name)), f


def test_running_twice_adds_only_duplicates(sample, tmp_path):
    s, split, months = sample
    out = tmp_path / "out"
    first = run.rate(s.config_dir, [split / months[0]], out)
    before = {name: read(out, name) for name in OUTPUTS}
    st = state_of(out)
    again = run.rate(s.config_dir, [split / months[0]], out)
    assert again.rated == 0 and again.reasons == {"duplicate": first.rated}
    for name in OUTPUTS:
        assert read(out, name).equals(before[name]), name
    after = state_of(out)
    for name in ("tenants.parquet", "lots.parquet", "pools.parquet", "applied_funds.parquet"):
        assert after[name].equals(st[name]), name
    rej = read(out, "rejects")
    assert set(rej.column("reason").to_pylist()) == {"duplicate"}
    assert "earlier run" in rej.column("message")[0].as_py()


def assert_index_matches(out: Path) -> None:
    """Every rated/ file has its hash index in state/ids, and every index a
    rated/ file: the hashes of its usage_ids in row order."""
    rated = sorted(p.relative_to(out / "rated").with_suffix("")
                   for p in (out / "rated").rglob("*.parquet"))
    index = sorted(p.relative_to(out / run.ID_INDEX).with_suffix("")
                   for p in (out / run.ID_INDEX).rglob("*.npy"))
    assert rated and rated == index
    for rel in rated:
        ids_ = pq.read_table(out / "rated" / rel.with_suffix(".parquet"), columns=["usage_id"])
        assert np.array_equal(np.load(out / run.ID_INDEX / rel.with_suffix(".npy")),
                              ids.hashes(ids_.column("usage_id")))


@pytest.mark.parametrize("damage", ["none", "missing", "truncated", "garbage"])
def test_a_second_run_finds_duplicates_through_the_index_or_without_it(sample, tmp_path,
                                                                       damage):
    """The index spares reading earlier ids; one that is missing or does not
    fit its rated/ file is not trusted, and the strings are read instead."""
    s, split, months = sample
    out = tmp_path / "out"
    first = run.rate(s.config_dir, [split / months[0]], out)
    assert_index_matches(out)
    for f in (out / run.ID_INDEX).rglob("*.npy"):
        if damage == "missing":
            f.unlink()
        elif damage == "truncated":
            np.save(f, np.load(f)[:-1])
        elif damage == "garbage":
            f.write_bytes(b"not an index")
    again = run.rate(s.config_dir, [split / months[0], split / months[1]], out)
    assert again.reasons == {"duplicate": first.rated}
    assert again.rated == pq.read_metadata(split / months[1] / "cdrs.parquet").num_rows


def test_a_duplicate_within_a_run_keeps_its_row_as_read(tmp_path):
    """The reject of a row whose usage_id an earlier row of the same run
    has holds the cells as the file wrote them, like any other reject."""
    config = _mini_config(tmp_path, [("2024-01-01", "5.00")])
    path = tmp_path / "c" / "c.csv"
    path.parent.mkdir()
    path.write_text(
        "usage_id,tenant_id,user_id,call_type,caller_number,callee_number,number_type,"
        "start_time,duration_seconds,call_id,conference_id,reference_charge,reference_currency\n"
        "a,t1,u1,user_out,+12065550100,+4420,user,2024-02-10T10:00:00Z,60,c-a,,0.0300,GBP\n"
        "a, t1 ,u1,USER_OUT,+12065550100,+4420,user,2024-02-10 11:00:00+01:00,061,c-b,,0.0310,gbp\n")
    run.rate(config, [path.parent], tmp_path / "out")
    (rej,) = read(tmp_path / "out", "rejects").to_pylist()
    assert (rej["file"], rej["row"], rej["reason"]) == (str(path), 2, "duplicate")
    assert (rej["tenant_id"], rej["call_type"], rej["start_time"], rej["duration_seconds"],
            rej["call_id"], rej["reference_charge"], rej["reference_currency"]) == \
        (" t1 ", "USER_OUT", "2024-02-10 11:00:00+01:00", "061", "c-b", "0.0310", "gbp")



def test_duplicates_of_an_earlier_run_keep_their_rows_as_read(tmp_path):
    """A second run's rows whose usage_id the first rated are rejected with
    their cells as the file wrote them; an id twice in the second run and
    never rated before is rated once, its second row rejected."""
    config = _mini_config(tmp_path, [("2024-01-01", "5.00")])
    head = ("usage_id,tenant_id,user_id,call_type,caller_number,callee_number,number_type,"
            "start_time,duration_seconds\n")
    first, second = tmp_path / "c1" / "c.csv", tmp_path / "c2" / "c.csv"
    first.parent.mkdir()
    second.parent.mkdir()
    first.write_text(head + "a,t1,u1,user_out,+12065550100,+4420,user,2024-02-10T10:00:00Z,60\n")
    second.write_text(head
                      + "b,t1,u1,user_out,+12065550100,+4420,user,2024-02-11T10:00:00Z,60\n"
                      + "a, t1 ,u1,USER_OUT,+12065550100,+4420,user,2024-02-10T10:00:00Z,060\n"
                      + "b,t1,u1,user_out,+12065550100,+4420,user,2024-02-11T11:00:00Z,61\n"
                      + "a,t1,u1,user_out,+12065550100,+4420,user,2024-02-12T10:00:00Z,7\n")
    out = tmp_path / "out"
    run.rate(config, [first.parent], out)
    summary = run.rate(config, [second.parent], out)
    assert (summary.rated, summary.reasons) == (1, {"duplicate": 3})
    rej = sorted(read(out, "rejects").to_pylist(), key=lambda r: r["row"])
    assert [(r["file"], r["row"], r["usage_id"]) for r in rej] == \
        [(str(second), 2, "a"), (str(second), 3, "b"), (str(second), 4, "a")]
    assert [r["message"].endswith("earlier run") for r in rej] == [True, False, True]
    assert (rej[0]["tenant_id"], rej[0]["call_type"], rej[0]["duration_seconds"]) == \
        (" t1 ", "USER_OUT", "060")
    rated = read(out, "rated")
    assert sorted(zip(rated.column("usage_id").to_pylist(),
                      rated.column("duration_seconds").to_pylist())) == [("a", 60), ("b", 60)]

def test_balances_reconcile_with_the_ledger(sample, tmp_path):
    s, split, _ = sample
    out = tmp_path / "out"
    run.rate(s.config_dir, [split], out)
    ledger = read(out, "ledger")
    tenants = state_of(out)["tenants.parquet"].to_pylist()
    sums = {}
    for r in ledger.to_pylist():
        sums[r["tenant_id"]] = sums.get(r["tenant_id"], 0) + r["amount"]
        assert r["balance_after"] == sums[r["tenant_id"]]
    for t in tenants:
        assert int(Decimal(sums.get(t["tenant_id"], 0)).scaleb(6)) == t["balance"]
    # rated charges are the ledger's debits
    rated = read(out, "rated")
    debits = sum(r["amount"] for r in ledger.to_pylist() if r["kind"] == "debit")
    assert -debits == pc.sum(rated.column("charge")).as_py()


def _mini_config(root: Path, funds) -> Path:
    from billing_harness import fund, lic, tenant, write_config
    from conftest import deck_row
    return write_config(root, [deck_row("44", rate="0.6000")],
                        [tenant("t1", auto=False)], [lic("u1", "MCOPSTNPP")],
                        [fund(*f) for f in funds])


def test_as_of_applies_fundings_and_expiries_without_calls(tmp_path):
    from conftest import cdr, write_cdrs
    config = _mini_config(tmp_path, [("2024-01-10", "5.00"), ("2024-06-01", "7.00")])
    write_cdrs(tmp_path / "a" / "a.parquet", [cdr("a", "+4420", 60, start="2024-01-15T10:00:00Z",
                                                  user="u1")])
    out = tmp_path / "out"
    s1 = run.rate(config, [tmp_path / "a"], out, as_of=run.parse_as_of("2024-03-01"))
    assert s1.statuses == {"charged": 1}
    kinds = read(out, "ledger").column("kind").to_pylist()
    assert kinds == ["fund", "debit"]             # the June funding waits
    write_cdrs(tmp_path / "b" / "b.parquet", [])
    run.rate(config, [tmp_path / "b"], out, as_of=run.parse_as_of("2025-01-10T00:00:00Z"))
    ledger = read(out, "ledger").to_pylist()
    assert [(r["kind"], str(r["amount"])) for r in ledger] == [
        ("fund", "5.000000"), ("debit", "-0.600000"), ("fund", "7.000000"),
        ("expire", "-4.400000")]
    assert str(ledger[-1]["balance_after"]) == "7.000000"


def test_late_cdr_is_flagged_and_billed_at_the_point(tmp_path):
    from conftest import cdr, write_cdrs
    config = _mini_config(tmp_path, [("2024-01-01", "5.00")])
    write_cdrs(tmp_path / "a" / "a.parquet", [cdr("a", "+4420", 60, start="2024-02-10T10:00:00Z",
                                                  user="u1")])
    write_cdrs(tmp_path / "b" / "b.parquet", [cdr("b", "+4420", 60, start="2024-02-01T10:00:00Z",
                                                  user="u1")])
    out = tmp_path / "out"
    run.rate(config, [tmp_path / "a"], out)
    run.rate(config, [tmp_path / "b"], out)
    rated = {r["usage_id"]: r for r in read(out, "rated").to_pylist()}
    assert rated["b"]["late"] is True and rated["a"]["late"] is False
    debit = [r for r in read(out, "ledger").to_pylist() if r["usage_id"] == "b"][0]
    assert debit["time"] == rated["a"]["start_time"]   # the tenant's point


def _a_rated_b_waiting(tmp_path):
    """(config, out): a/ (1 Mar) rated into out, b/ (2 Mar) written, not rated."""
    from conftest import cdr, write_cdrs
    config = _mini_config(tmp_path, [("2024-01-01", "5.00")])
    write_cdrs(tmp_path / "a" / "a.parquet", [cdr("a", "+4420", 60, user="u1")])
    write_cdrs(tmp_path / "b" / "b.parquet", [cdr("b", "+4420", 60, user="u1",
                                                  start="2024-03-02T10:00:00Z")])
    run.rate(config, [tmp_path / "a"], tmp_path / "out")
    return config, tmp_path / "out"


def test_a_run_killed_before_the_journal_leaves_the_previous_outputs(tmp_path, monkeypatch):
    config, out = _a_rated_b_waiting(tmp_path)
    before = {name: read(out, name) for name in OUTPUTS}

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "publish", killed)
    with pytest.raises(KeyboardInterrupt):
        run.rate(config, [tmp_path / "b"], out)
    monkeypatch.undo()
    for name in OUTPUTS:
        assert read(out, name).equals(before[name]), name
    assert not list(out.glob(".staging-*"))
    run.rate(config, [tmp_path / "b"], out)
    assert read(out, "rated").num_rows == 2


def kill_after_journal(monkeypatch, command) -> None:
    """Run `command`, killed right after its journal is written (in the
    recover() that publish() calls, the second recover() of a run)."""
    real_recover = state.recover
    calls = []

    def killed(out_dir):
        calls.append(out_dir)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_recover(out_dir)

    monkeypatch.setattr(state, "recover", killed)
    monkeypatch.setattr(run, "recover", killed)
    with pytest.raises(KeyboardInterrupt):
        command()
    monkeypatch.undo()


def test_a_run_killed_after_the_journal_is_completed_by_the_next(tmp_path, monkeypatch):
    from conftest import cdr, write_cdrs
    config = _mini_config(tmp_path, [("2024-01-01", "5.00")])
    write_cdrs(tmp_path / "a" / "a.parquet", [cdr("a", "+4420", 60, user="u1")])
    clean = tmp_path / "clean"
    run.rate(config, [tmp_path / "a"], clean)
    out = tmp_path / "out"
    kill_after_journal(monkeypatch, lambda: run.rate(config, [tmp_path / "a"], out))
    assert (out / state.JOURNAL).exists() and not (out / "rated").exists()
    state.recover(out)
    assert not (out / state.JOURNAL).exists()
    for name in OUTPUTS:
        assert read(out, name).equals(read(clean, name)), name


def test_a_second_run_on_the_same_out_is_refused_while_the_first_writes(tmp_path):
    from ratecore.errors import InputError
    config, out = _a_rated_b_waiting(tmp_path)
    with state.writer_lock(out):       # as another process running on `out` would
        with pytest.raises(InputError, match="another ratecore run is writing here"):
            run.rate(config, [tmp_path / "b"], out)
        with pytest.raises(InputError, match="another ratecore run"):
            run.rerate(config, out, "2024-03")
    assert read(out, "rated").num_rows == 1
    run.rate(config, [tmp_path / "b"], out)     # released: runs
    assert read(out, "rated").num_rows == 2
