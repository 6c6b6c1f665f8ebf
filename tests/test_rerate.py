"""Month re-rate (SPEC §8): replaying a month and the months after it from
the state saved at its opening gives what one clean run over the same CDRs
gives, replaces those months' outputs, and is refused where it cannot."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_runs import (  # noqa: F401
    OUTPUTS,
    assert_index_matches,
    kill_after_journal,
    read,
    sample,
    state_of,
)

from ratecore import run, state
from ratecore.errors import InputError


def _same_outputs(a, b):
    for name in OUTPUTS:
        x, y = read(a, name), read(b, name)
        assert x.num_rows > 0, name
        assert x.equals(y), name
    for name in ("tenants.parquet", "lots.parquet", "pools.parquet", "caps.parquet",
                 "applied_funds.parquet"):
        assert state_of(a)[name].equals(state_of(b)[name]), name


def _monthly(sample, out):
    """`out` rated month by month, one run per month of the sample."""
    s, split, months = sample
    for m in months:
        run.rate(s.config_dir, [split / m], out)
    return out


def _one_and_monthly(sample, tmp_path):
    """(one run over every month, one run per month): what a re-rate of
    the second must come back to, and the second."""
    s, split, _ = sample
    run.rate(s.config_dir, [split], tmp_path / "one")
    return tmp_path / "one", _monthly(sample, tmp_path / "many")


def test_runs_keep_the_state_at_each_month_opening(sample, tmp_path):
    s, split, months = sample
    out = tmp_path / "out"
    run.rate(s.config_dir, [split], out)
    kept = sorted(p.name for p in (out / "state" / state.MONTHS_DIR).iterdir())
    assert kept == months
    meta = json.loads((out / "state" / state.MONTHS_DIR / months[1] / "meta.json").read_text())
    assert meta["as_of"] < meta["as_of"] + 1   # an integer instant
    # the opening of month 2 is the instant before its first microsecond
    from ratecore.billing import month_openings
    opening = month_openings(meta["as_of"], meta["as_of"] + 1)
    assert len(opening) == 1


@pytest.mark.parametrize("which", [0, 1, 2])
def test_rerate_after_monthly_runs_equals_one_run(sample, tmp_path, which):
    s, split, months = sample
    one, many = _one_and_monthly(sample, tmp_path)
    summary = run.rerate(s.config_dir, many, months[which])
    assert summary.rated == sum(pq.read_metadata(f).num_rows
                                for m in months[which:] for f in (split / m).glob("*.parquet"))
    _same_outputs(one, many)
    assert_index_matches(many)      # the replaced files' indexes went with them
    # and again: a re-rate is repeatable
    run.rerate(s.config_dir, many, months[which])
    _same_outputs(one, many)
    assert_index_matches(many)


def test_rerate_billed_in_stretches_equals_one_run(sample, tmp_path, monkeypatch):
    s, _, months = sample
    monkeypatch.setattr(run, "WINDOW_CALLS", 500)
    one, many = _one_and_monthly(sample, tmp_path)
    run.rerate(s.config_dir, many, months[1])
    _same_outputs(one, many)


def test_rerate_with_a_new_deck_rebills_that_month_and_the_later_ones(sample, tmp_path):
    s, split, months = sample
    # every deck at twice its rates, in one candidate file
    cheaper = tmp_path / "cheaper.csv"
    with open(cheaper, "w", newline="") as out_fh:
        writer = None
        for deck in sorted((s.config_dir / "decks").glob("*.csv")):
            with open(deck, newline="") as fh:
                for row in csv.DictReader(fh):
                    row["rate"] = str(Decimal(row["rate"]) * 2)
                    if writer is None:
                        writer = csv.DictWriter(out_fh, fieldnames=list(row))
                        writer.writeheader()
                    writer.writerow(row)
    expected = tmp_path / "expected"
    run.rate(s.config_dir, [split / months[0]], expected)
    run.rate(s.config_dir, [split / m for m in months[1:]], expected, deck_file=cheaper)
    got = _monthly(sample, tmp_path / "got")
    run.rerate(s.config_dir, got, months[1], deck_file=cheaper)
    _same_outputs(expected, got)


def test_rerate_refuses_a_bad_or_unknown_month(sample, tmp_path):
    s, split, months = sample
    out = tmp_path / "out"
    run.rate(s.config_dir, [split / months[0]], out)
    with pytest.raises(InputError, match="not a month"):
        run.rerate(s.config_dir, out, "2026-13")
    with pytest.raises(InputError, match="no state saved at the opening of 2031-01"):
        run.rerate(s.config_dir, out, "2031-01")


def _late_february(tmp_path):
    """A config and two CDR directories: a/ (10 Feb and 10 Mar) and b/
    (1 Feb, which is late once a/ has been rated)."""
    from conftest import cdr, write_cdrs
    from test_runs import _mini_config
    config = _mini_config(tmp_path, [("2024-01-01", "5.00")])
    write_cdrs(tmp_path / "a" / "a.parquet", [
        cdr("a", "+4420", 60, start="2024-02-10T10:00:00Z", user="u1"),
        cdr("c", "+4420", 60, start="2024-03-10T10:00:00Z", user="u1")])
    write_cdrs(tmp_path / "b" / "b.parquet", [cdr("b", "+4420", 60, start="2024-02-01T10:00:00Z",
                                                  user="u1")])
    return config


def test_rerate_refuses_when_late_cdrs_of_an_earlier_month_were_billed_after(tmp_path):
    config = _late_february(tmp_path)
    out = tmp_path / "out"
    run.rate(config, [tmp_path / "a"], out)
    run.rate(config, [tmp_path / "b"], out)      # late: a February CDR billed in March
    with pytest.raises(InputError, match="re-rate from 2024-02"):
        run.rerate(config, out, "2024-03")
    before = read(out, "ledger")
    run.rerate(config, out, "2024-02")
    assert read(out, "rated").num_rows == 3
    assert not any(read(out, "rated").column("late").to_pylist())
    assert read(out, "ledger").num_rows == before.num_rows


def test_a_rerate_killed_after_the_journal_is_completed_by_the_next_command(sample, tmp_path,
                                                                             monkeypatch):
    s, _, months = sample
    one, out = _one_and_monthly(sample, tmp_path)
    kill_after_journal(monkeypatch, lambda: run.rerate(s.config_dir, out, months[1]))
    assert (out / state.JOURNAL).exists()
    state.recover(out)
    _same_outputs(one, out)


def test_cli_rerate_with_the_same_cdrs_again_equals_one_run(sample, tmp_path):
    from click.testing import CliRunner

    from ratecore.cli import main
    s, split, months = sample
    one, out = _one_and_monthly(sample, tmp_path)
    res = CliRunner().invoke(main, ["rate", "--config", str(s.config_dir), "--cdrs", str(split),
                                    "--out", str(out), "--rerate", months[1]])
    assert res.exit_code == 0, res.output
    _same_outputs(one, out)
    # every row of the files given again was rated already: each is a
    # duplicate reject, as when any run reads a file twice (SPEC §8)
    rejects = read(out, "rejects")
    assert set(rejects.column("reason").to_pylist()) == {"duplicate"}
    assert rejects.num_rows == sum(pq.read_metadata(f).num_rows for f in split.rglob("*.parquet"))
    # rows of months the re-rate replays name the replay; earlier ones the earlier run
    for file, message in zip(rejects.column("file").to_pylist(),
                             rejects.column("message").to_pylist()):
        replayed = Path(file).parent.name >= months[1]
        assert message.endswith("replays it from rated/)" if replayed else "earlier run"), \
            (file, message)
    from ratecore.reports import run_report
    assert all(run_report("reconcile", out).column("passed").to_pylist())
    bad = CliRunner().invoke(main, ["rate", "--config", str(s.config_dir), "--out", str(out),
                                    "--rerate", "2026/01"])
    assert bad.exit_code == 2 and "not a month" in bad.output


def test_rerate_takes_in_cdrs_that_arrived_late_for_the_month(tmp_path):
    config = _late_february(tmp_path)
    clean = tmp_path / "clean"
    run.rate(config, [tmp_path / "a", tmp_path / "b"], clean)
    out = tmp_path / "out"
    run.rate(config, [tmp_path / "a"], out)
    # b arrived after a run passed it: re-rating February takes it in, in time order
    run.rerate(config, out, "2024-02", [tmp_path / "a", tmp_path / "b"])
    for name in OUTPUTS:
        assert read(out, name).equals(read(clean, name)), name
    # replayed calls still name the row they were read from; a/ read again
    # is two duplicate rejects; every input row is accounted for
    rated = {r["usage_id"]: (r["file"], r["row"]) for r in read(out, "rated").to_pylist()}
    assert rated == {"a": (str(tmp_path / "a" / "a.parquet"), 1),
                     "c": (str(tmp_path / "a" / "a.parquet"), 2),
                     "b": (str(tmp_path / "b" / "b.parquet"), 1)}
    assert read(out, "rejects").column("reason").to_pylist() == ["duplicate"] * 2
    from ratecore.reports import run_report
    result = {r["invariant"]: r for r in run_report("reconcile", out).to_pylist()}
    assert all(r["passed"] for r in result.values()), result
    assert result["rows_accounted"]["checked"] == 5   # a/ twice, b/ once


def test_reconcile_passes_after_a_rerate(sample, tmp_path):
    from ratecore.reports import run_report
    s, _, months = sample
    out = _monthly(sample, tmp_path / "out")
    run.rerate(s.config_dir, out, months[1])
    result = run_report("reconcile", out).to_pylist()
    assert result and all(r["passed"] for r in result), [r for r in result if not r["passed"]]
