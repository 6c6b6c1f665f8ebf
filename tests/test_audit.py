"""The ``audit`` report: Microsoft's charge versus ratecore's for imported Teams
calls, checked against hand-computed figures and an independent Python
recomputation from the rated and rejected rows."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal as D

import pyarrow.dataset as pads
import pytest
from click.testing import CliRunner
from conftest import deck_row, write_config
from test_import_teams import sfb_row, teams_row, write_export

from ratecore.cli import main
from ratecore.reports import run_report
from ratecore.run import rate
from ratecore.teams import SFB_COLUMNS, import_teams

DECK = [deck_row("44", "0.0600"),
        deck_row("1", "0.0100", country="US"),
        deck_row("44", "0.0300", service="tollfree_inbound")]
TENANTS = [{"tenant_id": t, "name": t, "country": "US", "currency": "USD", "deck": "d1"}
           for t in ("t1", "t2")]
UK = "+442079460000"


def call(uid, seconds, charge, currency="USD", **kw):
    return teams_row(**{"UsageId": uid, "Call ID": f"call-{uid}", "Duration Seconds": str(seconds),
                        "Charge": charge, "Currency": currency, "Destination Number": UK,
                        "End Time": "", **kw})


#: usage_id -> (Microsoft's charge, ratecore's charge, comparison): figured by hand
#: from DECK (60/60 increments, credits pay for everything).
T1 = [
    call("a", 57, "0.06"),                                     # 1 min  0.06 = 0.06
    call("b", 61, "0.10"),                                     # 2 min  0.12 vs 0.10
    call("c", 30, "0.05", **{"Destination Number": "+4420794600**"}),  # masked: 0.06
    call("d", 300, "0.00", **{"Call Type": "user_in", "Caller ID": UK,
                              "Destination Number": "+12065550100"}),  # free
    call("e", 120, "0.07", **{"Call Type": "conf_in", "Number Type": "Toll-free",
                              "Caller ID": UK, "Destination Number": "+18005550199",
                              "UPN": ""}),                     # toll-free in: 2 × 0.03
    call("f", 60, "0.25", **{"Call Type": "dr_out"}),          # rate rejects it
    call("g", 60, "0.05", currency="EUR"),                     # ratecore bills USD
    call("h", 60, "", currency="USD"),                         # Microsoft left it empty
    call("i", 60, "0.06", **{"Start Time": "2024-04-02T08:00:00Z"}),
    call("j", 60, "0.08", **{"Destination Number": "+33140000000"}),  # no deck row
]
HAND = {"a": (D("0.06"), D("0.06"), "equal"), "b": (D("0.10"), D("0.12"), "differs"),
        "c": (D("0.05"), D("0.06"), "differs"), "d": (D(0), D(0), "equal"),
        "e": (D("0.07"), D("0.06"), "differs"), "f": (D("0.25"), None, "rejected"),
        "g": (D("0.05"), D("0.06"), "currency_mismatch"),
        "h": (None, D("0.06"), "no_microsoft_charge"), "i": (D("0.06"), D("0.06"), "equal"),
        "j": (D("0.08"), D(0), "differs")}


@pytest.fixture
def audited(tmp):
    """Two tenants' exports (Teams CSV for t1, SfB TSV for t2), imported and
    rated twice over the same files (the second run adds only rejects)."""
    config = write_config(tmp, DECK, tenants=TENANTS)
    import_teams([write_export(tmp / "exports" / "t1.csv", T1)], "t1",
                 tmp / "cdrs" / "t1.parquet")
    t2 = [sfb_row(**{"Call ID": "k", "User ID": "u1@t2.example", "Duration": "120",
                     "Charge": "0.12"}),
          sfb_row(**{"Call ID": "l", "User ID": "u1@t2.example", "Duration": "30",
                     "Charge": "0.04"})]
    import_teams([write_export(tmp / "exports" / "t2.csv", t2, columns=SFB_COLUMNS,
                               delimiter="\t")], "t2", tmp / "cdrs" / "t2.parquet")
    for _ in range(2):
        rate(config, [tmp / "cdrs"], tmp / "out")
    return tmp / "out"


def audit(out, **kw):
    return run_report("audit", out, **kw).to_pylist()


# ---- the independent recomputation ----------------------------------------------


def _rows(path):
    if not path.is_dir():
        return []
    return pads.dataset(path, format="parquet", partitioning="hive").to_table().to_pylist()


def recompute(out, month=None, tenant=None):
    """Per-call comparisons and totals from rated/ and rejects/, in Python."""
    rated = _rows(out / "rated")
    rated_ids = {r["usage_id"] for r in rated}
    keep = lambda r: (month is None or r["month"] == month) and \
        (tenant is None or r["tenant_id"] == tenant)
    calls = []
    for r in rated:
        if keep(r) and any(r[c] is not None for c in ("reference_charge",
                                                      "reference_connection_fee",
                                                      "reference_currency")):
            calls.append({"tenant": r["tenant_id"], "month": r["month"], "uid": r["usage_id"],
                          "ms": r["reference_charge"], "ms_cur": r["reference_currency"],
                          "rc": r["charge"], "rc_cur": r["currency"]})
    seen = set()
    for r in sorted(_rows(out / "rejects"), key=lambda r: (r["file"], r["row"])):
        text = {c: (r[c] or "").strip() for c in ("reference_charge", "reference_connection_fee",
                                                  "reference_currency")}
        key = (r["tenant_id"], r["usage_id"])
        if r["reason"] == "duplicate" or not any(text.values()) or not keep(r) \
                or r["usage_id"] in rated_ids or key in seen:
            continue
        seen.add(key)
        calls.append({"tenant": r["tenant_id"], "month": r["month"], "uid": r["usage_id"],
                      "ms": D(text["reference_charge"]) if text["reference_charge"] else None,
                      "ms_cur": text["reference_currency"].upper() or None,
                      "rc": None, "rc_cur": None})
    for c in calls:
        c["currency"] = c["ms_cur"] or c["rc_cur"]
        if c["rc"] is None:
            c["comparison"] = "rejected"
        elif c["ms"] is None:
            c["comparison"] = "no_microsoft_charge"
        elif c["ms_cur"] and c["rc_cur"] and c["ms_cur"] != c["rc_cur"]:
            c["comparison"] = "currency_mismatch"
        else:
            c["comparison"] = "equal" if c["ms"] == c["rc"] else "differs"
        compared = c["comparison"] in ("equal", "differs")
        c["difference"] = c["rc"] - c["ms"] if compared else None
    totals = defaultdict(lambda: {"calls": 0, "compared": 0, "differing": 0, "not_compared": 0,
                                  "ms": D(0), "rc": D(0), "diff": D(0), "ms_nc": D(0)})
    for c in calls:
        for key in (("total", c["tenant"], c["month"], c["currency"]),
                    ("grand_total", None, None, c["currency"])):
            t = totals[key]
            t["calls"] += 1
            if c["difference"] is not None:
                t["compared"] += 1
                t["differing"] += c["comparison"] == "differs"
                t["ms"] += c["ms"]
                t["rc"] += c["rc"]
                t["diff"] += c["difference"]
            else:
                t["not_compared"] += 1
                t["ms_nc"] += c["ms"] or 0
    return {c["uid"]: c for c in calls}, dict(totals)


def split(rows):
    calls = {r["usage_id"]: r for r in rows if r["row_kind"] == "call"}
    totals = {(r["row_kind"], r["tenant_id"], r["month"], r["currency"]): {
        "calls": r["calls"], "compared": r["compared"], "differing": r["differing"],
        "not_compared": r["not_compared"], "ms": r["microsoft_charge"],
        "rc": r["ratecore_charge"], "diff": r["difference"],
        "ms_nc": r["microsoft_charge_not_compared"]}
        for r in rows if r["row_kind"] != "call"}
    assert len(calls) + len(totals) == len(rows)  # one row per call or group
    return calls, totals


def check_against_recomputation(out, **kw):
    calls, totals = split(audit(out, **kw))
    want_calls, want_totals = recompute(out, **kw)
    assert set(calls) == set(want_calls)
    for uid, c in calls.items():
        w = want_calls[uid]
        assert (c["tenant_id"], c["month"], c["currency"], c["microsoft_charge"],
                c["ratecore_charge"], c["difference"], c["comparison"]) == \
            (w["tenant"], w["month"], w["currency"], w["ms"], w["rc"], w["difference"],
             w["comparison"]), uid
    assert totals == want_totals
    return calls, totals


# ---- tests -------------------------------------------------------------------------


def test_audit_per_call_matches_hand_figures(audited):
    calls, _ = check_against_recomputation(audited)
    t1 = {uid: (c["microsoft_charge"], c["ratecore_charge"], c["comparison"])
          for uid, c in calls.items() if c["tenant_id"] == "t1"}
    assert t1 == HAND
    assert calls["b"]["difference"] == D("0.02") and calls["e"]["difference"] == D("-0.01")
    assert calls["j"]["difference"] == D("-0.08") and calls["j"]["status"] == "no_rate"
    assert calls["f"]["status"] == "rejected: unknown_call_type"
    assert calls["f"]["difference"] is None and calls["g"]["difference"] is None
    assert (calls["g"]["currency"], calls["g"]["microsoft_currency"],
            calls["g"]["ratecore_currency"]) == ("EUR", "EUR", "USD")
    assert calls["a"]["microsoft_connection_fee"] == D(0)
    assert calls["c"]["callee_number"] == "+4420794600**"
    assert calls["a"]["capability"] == "MCOPSTNPP" and calls["d"]["capability"] == "FREECALL"
    t2 = {c["usage_id"]: c for c in calls.values() if c["tenant_id"] == "t2"}
    assert sorted((c["microsoft_charge"], c["ratecore_charge"]) for c in t2.values()) == [
        (D("0.04"), D("0.06")), (D("0.12"), D("0.12"))]


def test_audit_totals_match_hand_figures(audited):
    _, totals = check_against_recomputation(audited)
    assert totals[("total", "t1", "2024-03", "USD")] == {
        # compared: a b c d e j; not compared: f (rejected) and h (no charge)
        "calls": 8, "compared": 6, "differing": 4, "not_compared": 2,
        "ms": D("0.36"), "rc": D("0.30"), "diff": D("-0.06"), "ms_nc": D("0.25")}
    assert totals[("total", "t1", "2024-03", "EUR")] == {
        "calls": 1, "compared": 0, "differing": 0, "not_compared": 1,
        "ms": D(0), "rc": D(0), "diff": D(0), "ms_nc": D("0.05")}
    assert totals[("total", "t1", "2024-04", "USD")]["calls"] == 1
    assert totals[("total", "t2", "2024-03", "USD")] == {
        "calls": 2, "compared": 2, "differing": 1, "not_compared": 0,
        "ms": D("0.16"), "rc": D("0.18"), "diff": D("0.02"), "ms_nc": D(0)}
    assert totals[("grand_total", None, None, "USD")] == {
        "calls": 11, "compared": 9, "differing": 5, "not_compared": 2,
        "ms": D("0.58"), "rc": D("0.54"), "diff": D("-0.04"), "ms_nc": D("0.25")}
    for t in totals.values():
        assert t["rc"] - t["ms"] == t["diff"]


def test_audit_order_and_types(audited):
    table = run_report("audit", audited)
    for name in ("microsoft_charge", "ratecore_charge", "difference",
                 "microsoft_charge_not_compared", "microsoft_connection_fee"):
        assert str(table.schema.field(name).type).startswith("decimal128(")
    kinds = [(r["tenant_id"], r["month"], r["row_kind"]) for r in table.to_pylist()]
    # each tenant-month's calls, then its totals; grand totals last
    assert kinds[-2:] == [(None, None, "grand_total")] * 2
    assert kinds.index(("t1", "2024-03", "total")) == 9  # after its 9 calls
    assert kinds[11] == ("t1", "2024-04", "call") and kinds[12] == ("t1", "2024-04", "total")


@pytest.mark.parametrize("month, tenant", [("2024-03", None), ("2024-04", None),
                                           (None, "t2"), ("2024-03", "t1"),
                                           ("2024-05", None)])
def test_audit_filters_by_month_and_tenant(audited, month, tenant):
    calls, totals = check_against_recomputation(audited, month=month, tenant=tenant)
    assert all(month in (None, c["month"]) and tenant in (None, c["tenant_id"])
               for c in calls.values())
    if month == "2024-04":
        assert set(calls) == {"i"}
        assert totals[("grand_total", None, None, "USD")]["calls"] == 1
    if month == "2024-05":
        assert calls == {} and totals == {}


def test_a_rejected_call_rated_by_a_later_run_counts_once(tmp):
    """Run 1 rejects tenant t2's call (t2 not configured yet); once t2 is added,
    run 2 rates it: the audit shows the rated call only."""
    config = write_config(tmp, DECK, tenants=TENANTS[:1])
    import_teams([write_export(tmp / "x.csv", [call("z", 60, "0.05", UPN="u1@t2.example")])],
                 "t2", tmp / "cdrs" / "z.parquet")
    rate(config, [tmp / "cdrs"], tmp / "out")
    [only] = [r for r in audit(tmp / "out") if r["row_kind"] == "call"]
    assert (only["status"], only["comparison"]) == ("rejected: unknown_tenant", "rejected")
    write_config(tmp, DECK, tenants=TENANTS)
    rate(config, [tmp / "cdrs"], tmp / "out")
    calls, totals = check_against_recomputation(tmp / "out")
    assert calls["z"]["status"] == "charged" and calls["z"]["difference"] == D("0.01")
    assert totals[("total", "t2", "2024-03", "USD")]["calls"] == 1


def test_audit_is_empty_without_imported_calls(tmp):
    from conftest import cdr, write_cdrs

    config = write_config(tmp, DECK)
    write_cdrs(tmp / "cdrs" / "a.parquet", [cdr("p1", UK, 60)])
    rate(config, [tmp / "cdrs"], tmp / "out")
    assert audit(tmp / "out") == []


def test_audit_from_the_cli(audited):
    res = CliRunner().invoke(main, ["report", "audit", "--data", str(audited),
                                    "--tenant", "t2", "--format", "csv"])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert lines[0].startswith('"row_kind","tenant_id","month","currency"') or \
        lines[0].startswith("row_kind,tenant_id,month,currency")
    assert len(lines) == 1 + 2 + 1 + 1  # header, 2 calls, the total, the grand total
