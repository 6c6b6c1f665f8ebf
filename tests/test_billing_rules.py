"""Hand-computed cases for the billing rules of SPEC §4 (the parts billing
decides), §5 (plans and minute pools), §6 (Communications Credits) and the
incremental parts of §8.

Every case runs through :class:`tests.billing_harness.Both`, so the kernel
and the reference are checked against each other as well as against the
values worked out by hand in the comments.

Deck used throughout (60/60 increments, 4 decimals, half up unless noted):

    outbound  1     US  0.0100/min      outbound  44    GB  0.1000/min
    outbound  1787  PR  0.0200/min      outbound  4470  GB  blocked
    outbound  1416  CA  0.0150/min      outbound  4484  GB  shared_cost 0.5000
    outbound  1900  US  premium 1.0000  outbound  4487  GB  special 0.2000
    outbound  1212  US  0.0100/min, connect fee 0.0500, min charge 0.0800
    outbound  33    FR  0.0700/min      outbound  20    EG  0.2000/min
    conference_dialout 44 GB 0.0500, 449 GB premium 1.5000, 20 EG 0.3000
    tollfree_inbound   1800 US 0.0400
"""

from __future__ import annotations

from collections import namedtuple
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest
from billing_harness import Both, card_update, fund, lic, tenant, write_config
from conftest import cdr, deck_row, ts, write_csv
from hypothesis import given, settings
from hypothesis import strategies as st
from ratecore._billing import pair_payers, payers_of

from ratecore import billing, pricing

D = Decimal

DECK = [
    deck_row("1", rate="0.0100", country="US"),
    deck_row("1787", rate="0.0200", country="PR"),
    deck_row("1416", rate="0.0150", country="CA"),
    deck_row("1900", rate="1.0000", country="US", number_class="premium"),
    deck_row("1212", rate="0.0100", country="US", connect_fee="0.0500", min_charge="0.0800"),
    deck_row("44", rate="0.1000", country="GB"),
    deck_row("4470", rate="0.1000", country="GB", blocked="true"),
    deck_row("4484", rate="0.5000", country="GB", number_class="shared_cost"),
    deck_row("4487", rate="0.2000", country="GB", number_class="special"),
    deck_row("33", rate="0.0700", country="FR"),
    deck_row("20", rate="0.2000", country="EG"),
    deck_row("44", rate="0.0500", country="GB", service="conference_dialout"),
    deck_row("449", rate="1.5000", country="GB", service="conference_dialout",
             number_class="premium"),
    deck_row("20", rate="0.3000", country="EG", service="conference_dialout"),
    deck_row("1800", rate="0.0400", country="US", service="tollfree_inbound"),
]

US = "+12065550123"
PR = "+17875550123"
CA = "+14165550123"
US_PREMIUM = "+19005550123"
US_FEE = "+12125550123"
GB = "+442071234567"
GB_BLOCKED = "+447012345678"
GB_SHARED = "+448441234567"
GB_SPECIAL = "+448701234567"
GB_PREMIUM = "+449091234567"   # premium on the conference price list only
FR = "+33123456789"
EG = "+20221234567"            # Egypt: not Zone A
NO_RATE = "+8613800000000"     # no prefix in the deck
TOLLFREE_CALLER = "+18005550100"

SKU_HEADER = ["sku", "name", "pool", "country", "minutes"]
#: the shipped plans with pools small enough to run out in a few calls
SMALL_SKUS = [
    ("MCOPSTN1", "Domestic Calling Plan", "domestic", "", 2),
    ("MCOPSTN2", "Domestic and International Calling Plan", "domestic", "", 2),
    ("MCOPSTN2", "Domestic and International Calling Plan", "international", "", 1),
    ("MCOPSTN8", "Domestic Calling Plan (120 min, not pooled)", "user", "", 1),
    ("MCOMEETADD", "Audio Conferencing", "dialout", "", 1),
    ("MCOPSTNPP", "Communications Credits", "credits", "", 0),
]

Rated = namedtuple("Rated", "status domestic pool pool_seconds charged_seconds charge "
                            "capability unbilled_seconds unbilled_amount balance_after late")


def make(tmp_path, licenses=(), funds=(), cards=(), skus=None, **tenant_kw) -> Both:
    """Tenant t1 (US, credits enabled) on DECK with the given config rows."""
    config = write_config(tmp_path, DECK, [tenant(**tenant_kw)], licenses, funds, cards)
    if skus is not None:
        write_csv(config / "skus.csv", SKU_HEADER, [dict(zip(SKU_HEADER, r)) for r in skus])
    return Both(config)


def bill(both: Both, cdrs, as_of=None, threads=1):
    out, ledger, notes = both.run(cdrs, None if as_of is None else ts(as_of), threads=threads)
    return ({k: Rated(*v) for k, v in out.items()}, [dict(e) for e in ledger],
            [dict(n) for n in notes])


def call(uid, number, seconds, start, user="u1", call_type="user_out", **kw):
    return cdr(uid, number, seconds, start=start, call_type=call_type, user=user, **kw)


def tollfree_in(uid, seconds, start, user=None):
    return cdr(uid, "+12065550100", seconds, start=start, call_type="user_in",
               caller=TOLLFREE_CALLER, number_type="tollfree", user=user)


def entries(ledger):
    """(kind, lot_id, amount, balance_after) of each ledger entry."""
    return [(e["kind"], e["lot_id"], e["amount"], e["balance_after"]) for e in ledger]


def kinds(notes):
    return [n["kind"] for n in notes]


def credits_user(user="u1", location="US", frm="2024-01-01"):
    return lic(user, "MCOPSTNPP", location, frm)


# ---- SPEC §4: domestic groups and status precedence -----------------------------


def test_us_user_treats_pr_and_ca_as_domestic(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOPSTN1", "US")])
    out, _, _ = bill(both, [call("pr", PR, 60, "2024-03-10T10:00:00Z"),
                            call("ca", CA, 60, "2024-03-10T11:00:00Z")])
    # both domestic for a US user: drawn from the US domestic pool, 60 s each
    for u in ("pr", "ca"):
        r = out[u]
        assert (r.status, r.domestic, r.pool, r.pool_seconds, r.capability) == (
            "included", True, "MCOPSTN1:domestic:US", 60, "MCOPSTN1")


def test_canadian_user_calling_us_is_domestic(tmp_path):
    # Microsoft: a CA user treats CA and US as domestic (but not PR)
    both = make(tmp_path, [lic("u1", "MCOPSTN1", "CA")])
    out, _, _ = bill(both, [call("us", US, 60, "2024-03-10T10:00:00Z"),
                            call("pr", PR, 60, "2024-03-10T11:00:00Z")])
    assert (out["us"].status, out["us"].domestic, out["us"].pool) == (
        "included", True, "MCOPSTN1:domestic:CA")
    # PR is international for CA; no MCOPSTN2, no MCOPSTNPP: 60 s at 0.0200 unbilled
    assert out["pr"] == Rated("blocked_no_license", False, None, 0, 0, D(0), None, 60,
                              D("0.0200"), D(0), False)


def test_pr_user_treats_us_as_domestic_but_not_ca(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOPSTN1", "PR")])
    out, _, _ = bill(both, [call("us", US, 60, "2024-03-10T10:00:00Z"),
                            call("ca", CA, 60, "2024-03-10T11:00:00Z")])
    assert (out["us"].status, out["us"].domestic) == ("included", True)
    # CA for a PR user: international, 0.0150 unbilled
    assert (out["ca"].status, out["ca"].domestic, out["ca"].unbilled_amount) == (
        "blocked_no_license", False, D("0.0150"))


def test_other_countries_only_their_own_country_1200_minutes(tmp_path):
    # a GB user: GB pool of 1200 min = 72,000 s; FR is international
    both = make(tmp_path, [lic("u1", "MCOPSTN1", "GB")])
    out, _, _ = bill(both, [call("gb", GB, 72060, "2024-03-10T10:00:00Z"),
                            call("fr", FR, 60, "2024-03-10T11:00:00Z")])
    # 72,060 s bills 72,060 s: 72,000 from the pool, 60 s cut (0.1000 unbilled)
    assert out["gb"] == Rated("cut_no_license", True, "MCOPSTN1:domestic:GB", 72000, 0, D(0),
                              "MCOPSTN1", 60, D("0.1000"), D(0), False)
    assert (out["fr"].status, out["fr"].domestic, out["fr"].unbilled_amount) == (
        "blocked_no_license", False, D("0.0700"))


def test_free_zero_duration_no_rate_and_blocked_destination_precede_licensing(tmp_path):
    # u1 holds nothing and the tenant has no funds, yet none of these is blocked_no_*
    both = make(tmp_path)
    out, ledger, notes = bill(both, [
        call("in", US, 120, "2024-03-10T10:00:00Z", call_type="user_in"),
        call("sos", "911", 120, "2024-03-10T10:01:00Z"),
        call("zero", GB, 0, "2024-03-10T10:02:00Z"),
        call("norate", NO_RATE, 60, "2024-03-10T10:03:00Z"),
        call("blocked", GB_BLOCKED, 60, "2024-03-10T10:04:00Z")])
    assert (out["in"].status, out["in"].capability, out["in"].charge) == ("free", "FREECALL", 0)
    assert (out["sos"].status, out["sos"].capability) == ("free", "FREECALL")
    assert (out["zero"].status, out["zero"].capability) == ("zero_duration", None)
    assert out["norate"].status == "no_rate"
    # blocked_destination: no billable seconds, nothing charged, nothing unbilled
    b = out["blocked"]
    assert (b.status, b.pool, b.pool_seconds, b.charged_seconds, b.charge, b.capability,
            b.unbilled_seconds, b.unbilled_amount) == (
        "blocked_destination", None, 0, 0, D(0), None, 0, D(0))
    for r in out.values():
        assert (r.unbilled_seconds, r.unbilled_amount, r.pool) == (0, D(0), None)
    assert ledger == [] and notes == []


def test_blocked_destination_draws_no_pool(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOPSTN2", "US")], skus=SMALL_SKUS)
    out, _, _ = bill(both, [call("b", GB_BLOCKED, 60, "2024-03-10T10:00:00Z"),
                            call("gb", GB, 60, "2024-03-10T10:01:00Z")])
    assert out["b"].status == "blocked_destination"
    # the international pool (1 min) is still whole for the next GB call
    assert (out["gb"].status, out["gb"].pool, out["gb"].pool_seconds) == (
        "included", "MCOPSTN2:international:US", 60)


# ---- SPEC §5: pool sizes ------------------------------------------------------


def test_domestic_pool_3000_minutes_in_us(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOPSTN1", "US"), credits_user()],
                [fund("2024-01-01", "10")])
    out, ledger, _ = bill(both, [call("c1", US, 180030, "2024-03-10T10:00:00Z")])
    # 180,030 s bills 60 + ceil(179,970/60)*60 = 180,060 s; pool 3000 min = 180,000 s;
    # 60 s to credits at 0.0100/min = 0.0100; balance 10 - 0.01 = 9.99
    assert out["c1"] == Rated("partly_included", True, "MCOPSTN1:domestic:US", 180000, 60,
                              D("0.0100"), "MCOPSTNPP", 0, D(0), D("9.99"), False)
    assert entries(ledger)[-1] == ("debit", 1, D("-0.01"), D("9.99"))
    assert both.pools_k[("t1", "2024-03", "MCOPSTN1:domestic:US")] == (180000, 180000)


def test_microsoft_115_users_make_a_6900_minute_dial_out_pool(tmp_path):
    licenses = [lic(f"u{k:03d}", "MCOMEETADD", "US") for k in range(115)]
    licenses.append(credits_user("u000"))
    both = make(tmp_path, licenses, [fund("2024-01-01", "10")])
    # 115 x 60 min = 6,900 min = 414,000 s; a 414,060 s dial-out to GB (Zone A)
    # takes all 414,000 s; 60 s at the conference rate 0.0500 go to credits
    out, _, notes = bill(both, [call("c1", GB, 414060, "2024-03-10T10:00:00Z",
                                     user="u000", call_type="conf_out")])
    assert out["c1"] == Rated("partly_included", False, "MCOMEETADD:dialout:tenant", 414000,
                              60, D("0.0500"), "MCOPSTNPP", 0, D(0), D("9.95"), False)
    assert both.pools_k[("t1", "2024-03", "MCOMEETADD:dialout:tenant")] == (414000, 414000)
    # 80 % and 100 % are crossed by the same call
    assert [(n["kind"], n["pool"]) for n in notes] == [
        ("pool_80", "MCOMEETADD:dialout:tenant"), ("pool_100", "MCOMEETADD:dialout:tenant")]


def test_us_and_pr_users_share_one_pool(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOPSTN1", "US"), lic("u2", "MCOPSTN1", "PR")])
    # the PR user's call draws from the shared pool of 2 x 3000 min = 360,000 s
    out, _, _ = bill(both, [call("c1", US, 360060, "2024-03-10T10:00:00Z", user="u2")])
    assert out["c1"] == Rated("cut_no_license", True, "MCOPSTN1:domestic:US", 360000, 0, D(0),
                              "MCOPSTN1", 60, D("0.0100"), D(0), False)


def test_pool_size_follows_assignments_evaluated_at_call_start(tmp_path):
    # SMALL: MCOPSTN1 = 2 min = 120 s per user; u2 is assigned from 15 March
    both = make(tmp_path, [lic("u1", "MCOPSTN1"), credits_user(),
                           lic("u2", "MCOPSTN1", frm="2024-03-15")],
                [fund("2024-01-01", "10")], skus=SMALL_SKUS)
    out, _, _ = bill(both, [call("c1", US, 180, "2024-03-10T10:00:00Z"),
                            call("c2", US, 60, "2024-03-15T00:00:00Z")])
    # c1: size 120 (one user): 120 s pooled, 60 s charged 0.0100
    assert (out["c1"].status, out["c1"].pool_seconds, out["c1"].charge) == (
        "partly_included", 120, D("0.0100"))
    # c2: size 240 from 15 March 00:00 (inclusive), 120 used: 60 s included
    assert (out["c2"].status, out["c2"].pool_seconds) == ("included", 60)


def test_assigned_to_is_exclusive(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOPSTN1"), lic("u2", "MCOPSTN1", to="2024-03-20")],
                skus=SMALL_SKUS)
    out, _, _ = bill(both, [call("c1", US, 180, "2024-03-19T23:59:59Z"),
                            call("c2", US, 60, "2024-03-20T00:00:00Z")])
    # c1: two users, size 240: 180 s included (used 180)
    assert (out["c1"].status, out["c1"].pool_seconds) == ("included", 180)
    # c2 at u2's assigned_to: size back to 120 < 180 used: nothing left, cut off
    assert (out["c2"].status, out["c2"].pool, out["c2"].unbilled_seconds) == (
        "blocked_no_license", None, 60)


def test_usage_location_from_license_in_force_at_call_start(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOPSTN1", "GB", to="2024-03-15"),
                           lic("u1", "MCOPSTN1", "US", frm="2024-03-15")], skus=SMALL_SKUS)
    out, _, _ = bill(both, [call("c1", US, 60, "2024-03-14T23:59:59Z"),
                            call("c2", US, 60, "2024-03-15T00:00:00Z")])
    # as a GB user a US call is international: no pool
    assert (out["c1"].status, out["c1"].domestic) == ("blocked_no_license", False)
    assert (out["c2"].status, out["c2"].domestic, out["c2"].pool) == (
        "included", True, "MCOPSTN1:domestic:US")


def test_pool_resets_on_the_first_without_rollover(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOPSTN1"), credits_user()],
                [fund("2024-01-01", "10")], skus=SMALL_SKUS)
    out, _, _ = bill(both, [call("feb", US, 60, "2024-02-29T23:59:59Z"),
                            call("mar", US, 180, "2024-03-01T00:00:00Z")])
    # February used 60 of 120 s; March starts at 0 used of 120 (no rollover of
    # the 60 s left): 120 s pooled, 60 s charged 0.0100
    assert (out["feb"].status, out["feb"].pool_seconds) == ("included", 60)
    assert (out["mar"].status, out["mar"].pool_seconds, out["mar"].charged_seconds,
            out["mar"].charge) == ("partly_included", 120, 60, D("0.0100"))
    assert both.pools_k[("t1", "2024-02", "MCOPSTN1:domestic:US")] == (120, 60)
    assert both.pools_k[("t1", "2024-03", "MCOPSTN1:domestic:US")] == (120, 120)


def test_per_user_mcopstn8_drawn_first_and_one_pool_per_call(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOPSTN1"), lic("u1", "MCOPSTN8"), credits_user()],
                [fund("2024-01-01", "10")])
    out, _, _ = bill(both, [call("c1", US, 7260, "2024-03-10T10:00:00Z"),
                            call("c2", US, 60, "2024-03-10T11:00:00Z")])
    # MCOPSTN8: 120 min = 7,200 s of u1's own; the other 60 s go to credits, not to
    # the MCOPSTN1 pool (a call draws from at most one pool)
    assert out["c1"] == Rated("partly_included", True, "MCOPSTN8:user:u1", 7200, 60,
                              D("0.0100"), "MCOPSTNPP", 0, D(0), D("9.99"), False)
    # the per-user pool is used up: the next call goes to MCOPSTN1
    assert (out["c2"].status, out["c2"].pool, out["c2"].capability) == (
        "included", "MCOPSTN1:domestic:US", "MCOPSTN1")


def test_mcopstn8_is_not_pooled(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOPSTN8"), lic("u2", "MCOPSTN8")])
    out, _, _ = bill(both, [call("c1", US, 7260, "2024-03-10T10:00:00Z")])
    # u2's 120 min do not help u1: 7,200 s, 60 s cut
    assert (out["c1"].status, out["c1"].pool, out["c1"].pool_seconds,
            out["c1"].unbilled_seconds) == ("cut_no_license", "MCOPSTN8:user:u1", 7200, 60)


def test_microsoft_either_cap_international_ends_domestic_until_month_end(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOPSTN2"), credits_user()], [fund("2024-01-01", "100")])
    out, _, notes = bill(both, [
        call("intl", GB, 36000, "2024-03-05T10:00:00Z"),
        call("dom", US, 60, "2024-03-05T11:00:00Z"),
        call("last", US, 60, "2024-03-31T23:59:59Z"),
        call("april", US, 60, "2024-04-01T00:00:00Z"),
        call("april_intl", GB, 60, "2024-04-01T00:01:00Z")])
    # 600 international min = 36,000 s: used up by one call
    assert (out["intl"].status, out["intl"].pool, out["intl"].pool_seconds) == (
        "included", "MCOPSTN2:international:US", 36000)
    # the domestic pool is untouched (0 of 180,000 s) but counts as used up
    assert (out["dom"].status, out["dom"].pool, out["dom"].charge,
            out["dom"].balance_after) == ("charged", None, D("0.0100"), D("99.99"))
    assert (out["last"].status, out["last"].balance_after) == ("charged", D("99.98"))
    # 1 April: both pools again
    assert (out["april"].status, out["april"].pool) == ("included", "MCOPSTN2:domestic:US")
    assert (out["april_intl"].status, out["april_intl"].pool) == (
        "included", "MCOPSTN2:international:US")
    assert [(n["kind"], n["pool"]) for n in notes] == [
        ("pool_80", "MCOPSTN2:international:US"), ("pool_100", "MCOPSTN2:international:US")]


def test_either_cap_domestic_ends_international(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOPSTN2"), credits_user()], [fund("2024-01-01", "10")])
    out, _, _ = bill(both, [call("dom", US, 180000, "2024-03-05T10:00:00Z"),
                            call("intl", GB, 60, "2024-03-05T11:00:00Z")])
    # the US domestic pool, 3000 min = 180,000 s, is used up: the GB call, with its
    # 600 international minutes untouched, goes to credits at 0.1000
    assert (out["dom"].status, out["dom"].pool_seconds) == ("included", 180000)
    assert (out["intl"].status, out["intl"].pool, out["intl"].charge) == (
        "charged", None, D("0.1000"))


def test_either_cap_holds_even_when_the_pool_grows(tmp_path):
    # SMALL: 1 international minute per MCOPSTN2 user; u2 joins on 15 March
    both = make(tmp_path, [lic("u1", "MCOPSTN2"), credits_user(),
                           lic("u2", "MCOPSTN2", frm="2024-03-15")],
                [fund("2024-01-01", "10")], skus=SMALL_SKUS)
    out, _, _ = bill(both, [call("c1", GB, 60, "2024-03-05T10:00:00Z"),
                            call("c2", GB, 60, "2024-03-16T10:00:00Z"),
                            call("c3", US, 60, "2024-03-16T11:00:00Z")])
    assert (out["c1"].status, out["c1"].pool_seconds) == ("included", 60)
    # the international pool is now 120 s with 60 used, but the cap hit on 5 March
    # holds until the month ends, for both pools
    assert (out["c2"].status, out["c2"].pool, out["c2"].charge) == ("charged", None, D("0.1000"))
    assert (out["c3"].status, out["c3"].pool, out["c3"].charge) == ("charged", None, D("0.0100"))


def test_plan_types_do_not_share_minutes(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOPSTN1"), lic("u2", "MCOPSTN5")])
    out, _, _ = bill(both, [call("c1", US, 7260, "2024-03-05T10:00:00Z", user="u2"),
                            call("c2", US, 60, "2024-03-05T11:00:00Z")])
    # u2's MCOPSTN5 pool is 120 min = 7,200 s; u1's unused 3000 MCOPSTN1 minutes
    # are another pool: 60 s cut
    assert (out["c1"].status, out["c1"].pool, out["c1"].pool_seconds,
            out["c1"].unbilled_seconds) == ("cut_no_license", "MCOPSTN5:domestic:US", 7200, 60)
    assert (out["c2"].status, out["c2"].pool) == ("included", "MCOPSTN1:domestic:US")


def test_pools_and_credits_are_per_tenant(tmp_path):
    config = write_config(
        tmp_path, DECK, [tenant("t1"), tenant("t2", country="GB")],
        [lic("u1", "MCOPSTN1"), credits_user(), lic("u1", "MCOPSTN1", "GB", tid="t2"),
         lic("u1", "MCOPSTNPP", "GB", tid="t2")],
        [fund("2024-01-01", "1.00"), fund("2024-01-01", "2.00", tid="t2")])
    write_csv(config / "skus.csv", SKU_HEADER, [dict(zip(SKU_HEADER, r)) for r in SMALL_SKUS])
    both = Both(config)
    out, ledger, _ = bill(both, [call("a", US, 180, "2024-03-05T10:00:00Z"),
                                 call("b", GB, 180, "2024-03-05T10:00:00Z", tenant="t2")],
                          threads=2)
    # each tenant's own 120 s pool and own lot; the 60 s left cost t1 0.0100 (US)
    # and t2 0.1000 (GB): 1.00 - 0.01 and 2.00 - 0.10
    assert (out["a"].pool, out["a"].pool_seconds, out["a"].charge, out["a"].balance_after) == (
        "MCOPSTN1:domestic:US", 120, D("0.0100"), D("0.99"))
    assert (out["b"].pool, out["b"].pool_seconds, out["b"].charge, out["b"].balance_after) == (
        "MCOPSTN1:domestic:GB", 120, D("0.1000"), D("1.90"))
    assert sorted((e["tenant_id"], e["seq"], e["kind"], e["lot_id"]) for e in ledger) == [
        ("t1", 1, "fund", 1), ("t1", 2, "debit", 1), ("t2", 1, "fund", 1), ("t2", 2, "debit", 1)]


def test_connect_fee_and_min_charge_only_on_the_credit_part(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOPSTN1"), credits_user()], [fund("2024-01-01", "10")],
                skus=SMALL_SKUS)
    out, _, _ = bill(both, [call("c1", US_FEE, 60, "2024-03-05T10:00:00Z"),
                            call("c2", US_FEE, 120, "2024-03-05T11:00:00Z")])
    # c1 fully pooled: no connect fee, no minimum
    assert (out["c1"].status, out["c1"].charge) == ("included", D(0))
    # c2: 60 s pooled, 60 s credits: 0.0500 + 0.0100 = 0.0600 < min 0.0800 -> 0.0800
    assert (out["c2"].status, out["c2"].pool_seconds, out["c2"].charged_seconds,
            out["c2"].charge, out["c2"].balance_after) == (
        "partly_included", 60, 60, D("0.0800"), D("9.92"))


def test_international_call_without_mcopstn2_goes_to_credits(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOPSTN1"), credits_user()], [fund("2024-01-01", "10")])
    out, _, _ = bill(both, [call("c1", GB, 60, "2024-03-05T10:00:00Z")])
    assert out["c1"] == Rated("charged", False, None, 0, 60, D("0.1000"), "MCOPSTNPP", 0, D(0),
                              D("9.90"), False)


@pytest.mark.parametrize("number, price", [(US_PREMIUM, "1.0000"), (GB_SHARED, "0.5000"),
                                           (GB_SPECIAL, "0.2000")],
                         ids=["premium", "shared_cost", "special"])
def test_premium_shared_cost_special_only_credits(tmp_path, number, price):
    # every plan that could apply is held; none covers these classes
    both = make(tmp_path, [lic("u1", "MCOPSTN2"), lic("u1", "MCOPSTN8"), credits_user()],
                [fund("2024-01-01", "10")])
    out, _, _ = bill(both, [call("c1", number, 60, "2024-03-05T10:00:00Z")])
    r = out["c1"]
    assert (r.status, r.pool, r.pool_seconds, r.charged_seconds, r.charge, r.capability,
            r.balance_after) == ("charged", None, 0, 60, D(price), "MCOPSTNPP",
                                 D(10) - D(price))


def test_tollfree_inbound_credits_only_and_needs_no_user_license(tmp_path):
    # u1 has a domestic plan but no MCOPSTNPP; the caller pays nothing, the tenant does
    both = make(tmp_path, [lic("u1", "MCOPSTN1")], [fund("2024-01-01", "10")])
    out, ledger, _ = bill(both, [tollfree_in("anon", 120, "2024-03-05T10:00:00Z"),
                                 tollfree_in("u1", 90, "2024-03-05T11:00:00Z", user="u1")])
    # 120 s at 0.0400/min = 0.0800; 90 s bills 120 s = 0.0800; no pool either time
    assert (out["anon"].status, out["anon"].pool, out["anon"].charge,
            out["anon"].capability, out["anon"].balance_after) == (
        "charged", None, D("0.0800"), "MCOPSTNPP", D("9.92"))
    assert (out["u1"].status, out["u1"].pool, out["u1"].charge,
            out["u1"].balance_after) == ("charged", None, D("0.0800"), D("9.84"))
    assert [e["usage_id"] for e in ledger if e["kind"] == "debit"] == ["anon", "u1"]


def test_conf_out_to_zone_a_draws_dial_out_pool(tmp_path):
    # FR has no conference row: rated on the outbound FR row (0.0700); FR is Zone A
    both = make(tmp_path, [lic("u1", "MCOMEETADD")], skus=SMALL_SKUS)
    out, _, _ = bill(both, [call("c1", FR, 100, "2024-03-05T10:00:00Z", call_type="conf_out")])
    # 100 s bills 120 s; dial-out pool 1 min = 60 s; 60 s at 0.0700 cut
    assert out["c1"] == Rated("cut_no_license", False, "MCOMEETADD:dialout:tenant", 60, 0, D(0),
                              "MCOMEETADD", 60, D("0.0700"), D(0), False)


def test_conf_out_non_zone_a_goes_to_credits(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOMEETADD"), credits_user()], [fund("2024-01-01", "10")])
    out, _, _ = bill(both, [call("c1", EG, 60, "2024-03-05T10:00:00Z", call_type="conf_out")])
    # Egypt is not in Zone A: conference rate 0.3000 from credits
    assert out["c1"] == Rated("charged", False, None, 0, 60, D("0.3000"), "MCOPSTNPP", 0, D(0),
                              D("9.70"), False)


def test_conf_out_premium_or_without_mcomeetadd_goes_to_credits(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOMEETADD"), credits_user(), credits_user("u2")],
                [fund("2024-01-01", "10")])
    out, _, _ = bill(both, [
        call("prem", GB_PREMIUM, 60, "2024-03-05T10:00:00Z", call_type="conf_out"),
        call("nolic", GB, 60, "2024-03-05T11:00:00Z", call_type="conf_out", user="u2")])
    # premium on the conference list: 1.5000; u2 holds no MCOMEETADD: 0.0500
    assert (out["prem"].status, out["prem"].pool, out["prem"].charge) == (
        "charged", None, D("1.5000"))
    assert (out["nolic"].status, out["nolic"].pool, out["nolic"].charge,
            out["nolic"].balance_after) == ("charged", None, D("0.0500"), D("8.45"))


def test_included_call_charges_nothing(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOPSTN1"), credits_user()], [fund("2024-01-01", "10")])
    out, ledger, _ = bill(both, [call("c1", US, 90, "2024-03-05T10:00:00Z")])
    # 90 s bills 120 s, all from the pool; balance untouched
    assert out["c1"] == Rated("included", True, "MCOPSTN1:domestic:US", 120, 0, D(0), "MCOPSTN1",
                              0, D(0), D("10"), False)
    assert [e["kind"] for e in ledger] == ["fund"]


def test_partly_included(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOPSTN1"), credits_user()], [fund("2024-01-01", "10")],
                skus=SMALL_SKUS)
    out, ledger, _ = bill(both, [call("c1", US, 200, "2024-03-05T10:00:00Z")])
    # 200 s bills 240 s; 120 s pooled; 120 s at 0.0100 = 0.0200
    assert out["c1"] == Rated("partly_included", True, "MCOPSTN1:domestic:US", 120, 120,
                              D("0.0200"), "MCOPSTNPP", 0, D(0), D("9.98"), False)
    assert entries(ledger) == [("fund", 1, D(10), D(10)), ("debit", 1, D("-0.02"), D("9.98"))]


def test_pool_80_and_100_once_per_pool_per_month(tmp_path):
    # MCOPSTN5: 120 min = 7,200 s; 80 % = 5,760 s
    both = make(tmp_path, [lic("u1", "MCOPSTN5")])
    out, _, notes = bill(both, [
        call("a", US, 5700, "2024-03-05T10:00:00Z"),     # 5,700: 79 %, nothing
        call("b", US, 60, "2024-03-05T11:00:00Z"),       # 5,760: 80 %  -> pool_80
        call("c", US, 60, "2024-03-05T12:00:00Z"),       # 5,820: nothing
        call("d", US, 1380, "2024-03-05T13:00:00Z"),     # 7,200: 100 % -> pool_100
        call("e", US, 60, "2024-03-05T14:00:00Z"),       # used up: nothing
        call("f", US, 7200, "2024-04-01T00:00:00Z")])    # April: 80 % and 100 % again
    assert out["e"].status == "blocked_no_license"
    assert [(n["kind"], n["time"], n["pool"]) for n in notes] == [
        ("pool_80", ts("2024-03-05T11:00:00Z"), "MCOPSTN5:domestic:US"),
        ("pool_100", ts("2024-03-05T13:00:00Z"), "MCOPSTN5:domestic:US"),
        ("pool_80", ts("2024-04-01T00:00:00Z"), "MCOPSTN5:domestic:US"),
        ("pool_100", ts("2024-04-01T00:00:00Z"), "MCOPSTN5:domestic:US")]


# ---- SPEC §6: lots, debits, authorization --------------------------------------


def test_lots_first_in_first_out_one_debit_entry_per_lot(tmp_path):
    # the later funding is listed first: lots still go oldest first
    both = make(tmp_path, [credits_user()], [fund("2024-02-01", "5.00", reference="PO-2"),
                                             fund("2024-01-01", "1.00", reference="PO-1")])
    out, ledger, _ = bill(both, [call("c1", GB, 900, "2024-03-10T10:00:00Z"),
                                 call("c2", GB, 60, "2024-03-10T11:00:00Z")])
    # c1: 15 min x 0.1000 = 1.5000: 1.00 from lot 1 (Jan), 0.50 from lot 2 (Feb)
    assert out["c1"].balance_after == D("4.50")
    assert [(e["kind"], e["lot_id"], e["amount"], e["balance_after"], e["reference"],
             e["usage_id"]) for e in ledger] == [
        ("fund", 1, D("1.00"), D("1.00"), "PO-1", None),
        ("fund", 2, D("5.00"), D("6.00"), "PO-2", None),
        ("debit", 1, D("-1.00"), D("5.00"), None, "c1"),
        ("debit", 2, D("-0.50"), D("4.50"), None, "c1"),
        ("debit", 2, D("-0.10"), D("4.40"), None, "c2")]
    assert [e["seq"] for e in ledger] == [1, 2, 3, 4, 5]
    # a call is debited at its start
    assert ledger[2]["time"] == ts("2024-03-10T10:00:00Z")


def test_overrun_below_zero_and_next_lot_pays_debt(tmp_path):
    both = make(tmp_path, [credits_user()], [fund("2024-01-01", "0.10"),
                                             fund("2024-03-12", "1.00", reference="PO-2")])
    out, ledger, notes = bill(both, [call("c1", GB, 300, "2024-03-10T10:00:00Z"),
                                     call("c2", GB, 60, "2024-03-11T10:00:00Z"),
                                     call("c3", GB, 60, "2024-03-13T10:00:00Z")])
    # c1 costs 5 x 0.1000 = 0.50 with 0.10 in lot 1: charged in full, 0.40 overrun
    assert (out["c1"].status, out["c1"].charge, out["c1"].balance_after) == (
        "charged", D("0.5000"), D("-0.40"))
    # c2: balance <= 0, nothing may be spent
    assert (out["c2"].status, out["c2"].unbilled_seconds, out["c2"].unbilled_amount,
            out["c2"].balance_after) == ("blocked_no_funds", 60, D("0.1000"), D("-0.40"))
    # the 1.00 lot pays the 0.40 debt first; its fund entry shows 1.00; c3 takes 0.10
    # from lot 2 (0.60 left in it)
    assert entries(ledger) == [
        ("fund", 1, D("0.10"), D("0.10")),
        ("debit", 1, D("-0.10"), D(0)),
        ("debit", None, D("-0.40"), D("-0.40")),
        ("fund", 2, D("1.00"), D("0.60")),
        ("debit", 2, D("-0.10"), D("0.50"))]
    assert out["c3"].balance_after == D("0.50")
    assert [(n["kind"], n["balance"]) for n in notes] == [("balance_depleted", D("-0.40"))]
    # lot 2 forfeits what it holds (0.50), not its 1.00, a year later
    _, ledger2, _ = bill(both, [], as_of="2025-03-12T00:00:00Z")
    assert entries(ledger2) == [("expire", 2, D("-0.50"), D(0))]


def test_balance_must_be_positive_at_call_start(tmp_path):
    both = make(tmp_path, [credits_user()], [fund("2024-01-01", "0.01")])
    out, ledger, _ = bill(both, [call("c1", US, 60, "2024-03-10T10:00:00Z"),
                                 call("c2", US, 60, "2024-03-10T11:00:00Z")])
    # c1 costs exactly 0.01: balance 0; c2 finds 0, not > 0
    assert (out["c1"].status, out["c1"].balance_after) == ("charged", D(0))
    assert out["c2"] == Rated("blocked_no_funds", True, None, 0, 0, D(0), None, 60, D("0.0100"),
                              D(0), False)
    assert len([e for e in ledger if e["kind"] == "debit"]) == 1


def test_no_license_blocked_keeps_unbilled(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOPSTN1")], [fund("2024-01-01", "10")])
    out, ledger, _ = bill(both, [call("c1", GB, 90, "2024-03-10T10:00:00Z")])
    # international, no MCOPSTNPP: 90 s bills 120 s = 0.2000 unbilled, nothing charged
    assert out["c1"] == Rated("blocked_no_license", False, None, 0, 0, D(0), None, 120,
                              D("0.2000"), D(10), False)
    assert [e["kind"] for e in ledger] == ["fund"]


def test_no_license_cut_after_pool(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOPSTN1")], [fund("2024-01-01", "10")], skus=SMALL_SKUS)
    out, _, _ = bill(both, [call("c1", US, 150, "2024-03-10T10:00:00Z")])
    # 150 s bills 180 s: 120 s pooled, 60 s cut (0.0100)
    assert out["c1"] == Rated("cut_no_license", True, "MCOPSTN1:domestic:US", 120, 0, D(0),
                              "MCOPSTN1", 60, D("0.0100"), D(10), False)


def test_no_funds_cut_and_blocked(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOPSTN1"), credits_user()], skus=SMALL_SKUS)
    out, ledger, _ = bill(both, [call("c1", US, 180, "2024-03-10T10:00:00Z"),
                                 call("c2", GB, 60, "2024-03-10T11:00:00Z")])
    assert out["c1"] == Rated("cut_no_funds", True, "MCOPSTN1:domestic:US", 120, 0, D(0),
                              "MCOPSTN1", 60, D("0.0100"), D(0), False)
    assert out["c2"] == Rated("blocked_no_funds", False, None, 0, 0, D(0), None, 60,
                              D("0.1000"), D(0), False)
    assert ledger == []


def test_credits_disabled_blocks_spending(tmp_path):
    # a tenant without credits_enabled: MCOPSTNPP and a balance do not help, nor
    # for toll-free inbound (counted as not licensed)
    both = make(tmp_path, [credits_user()], [fund("2024-01-01", "10")], credits=False)
    out, ledger, _ = bill(both, [call("c1", GB, 60, "2024-03-10T10:00:00Z"),
                                 tollfree_in("c2", 60, "2024-03-10T11:00:00Z")])
    assert (out["c1"].status, out["c1"].unbilled_amount) == ("blocked_no_license", D("0.1000"))
    assert (out["c2"].status, out["c2"].unbilled_amount) == ("blocked_no_license", D("0.0400"))
    assert [e["kind"] for e in ledger] == ["fund"]


# ---- SPEC §6: expiry -------------------------------------------------------------


def test_lot_expiry_forfeits_remaining_with_notification(tmp_path):
    both = make(tmp_path, [credits_user()], [fund("2024-03-10T08:00:00Z", "2.00")])
    out, ledger, notes = bill(both, [call("c1", GB, 60, "2024-06-01T10:00:00Z")],
                              as_of="2025-03-10T08:00:00Z")
    # 2.00 - 0.10 = 1.90 forfeited 12 months after funding, same time of day
    assert out["c1"].balance_after == D("1.90")
    assert entries(ledger)[-1] == ("expire", 1, D("-1.90"), D(0))
    assert ledger[-1]["time"] == ts("2025-03-10T08:00:00Z")
    n = notes[0]
    assert (n["kind"], n["time"], n["amount"], n["balance"]) == (
        "funds_expired", ts("2025-03-10T08:00:00Z"), D("1.90"), D(0))
    # the forfeiture also took the balance from > 0 to 0
    assert kinds(notes) == ["funds_expired", "balance_depleted"]


def test_lot_expiry_clamped_to_month_end_29_february(tmp_path):
    both = make(tmp_path, [credits_user()], [fund("2024-02-29T12:00:00Z", "1.00")])
    out, ledger, _ = bill(both, [call("c1", GB, 60, "2025-02-28T11:59:59Z")],
                          as_of="2025-03-01T00:00:00Z")
    # 2024-02-29 12:00 + 12 months = 2025-02-28 12:00 (no 29th): live one second before
    assert (out["c1"].status, out["c1"].balance_after) == ("charged", D("0.90"))
    assert [(e["kind"], e["time"], e["amount"]) for e in ledger[-1:]] == [
        ("expire", ts("2025-02-28T12:00:00Z"), D("-0.90"))]


def test_lot_expiring_at_call_start_is_already_gone(tmp_path):
    both = make(tmp_path, [credits_user()], [fund("2024-03-10T10:00:00Z", "1.00")])
    out, ledger, _ = bill(both, [call("before", GB, 60, "2025-03-10T09:59:59.999999Z"),
                                 call("at", GB, 60, "2025-03-10T10:00:00Z")])
    assert (out["before"].status, out["before"].balance_after) == ("charged", D("0.90"))
    # at 10:00 the lot expires first (0.90 forfeited), the call then finds 0
    assert (out["at"].status, out["at"].unbilled_amount) == ("blocked_no_funds", D("0.1000"))
    assert entries(ledger) == [("fund", 1, D("1.00"), D("1.00")),
                               ("debit", 1, D("-0.10"), D("0.90")),
                               ("expire", 1, D("-0.90"), D(0))]


def test_the_next_lot_expires_on_time_after_an_earlier_one(tmp_path):
    # after the first lot expires the pass looks ahead to the next one's
    # expiry; a call half an hour after that must find it gone too
    both = make(tmp_path, [credits_user()], [fund("2024-01-10T10:00:00Z", "1.00"),
                                             fund("2024-03-10T10:00:00Z", "1.00", reference="PO-2")])
    out, ledger, _ = bill(both, [call("c1", GB, 60, "2025-01-10T10:30:00Z"),
                                 call("c2", GB, 60, "2025-03-10T10:30:00Z")])
    assert (out["c1"].status, out["c1"].balance_after) == ("charged", D("0.90"))
    assert (out["c2"].status, out["c2"].balance_after) == ("blocked_no_funds", D(0))
    assert [(e["kind"], e["time"], e["amount"]) for e in ledger if e["kind"] == "expire"] == [
        ("expire", ts("2025-01-10T10:00:00Z"), D("-1.00")),
        ("expire", ts("2025-03-10T10:00:00Z"), D("-0.90"))]


def test_empty_lot_expires_silently(tmp_path):
    both = make(tmp_path, [credits_user()], [fund("2024-03-10T10:00:00Z", "0.10")])
    _, ledger, notes = bill(both, [call("c1", GB, 60, "2024-03-11T10:00:00Z")],
                            as_of="2025-04-01T00:00:00Z")
    # the lot was spent to 0 by c1: no expire entry, no funds_expired
    assert [e["kind"] for e in ledger] == ["fund", "debit"]
    assert kinds(notes) == ["balance_depleted"]


# ---- SPEC §6: auto-recharge -----------------------------------------------------


AUTO = {"auto": True, "trigger": "5.00", "recharge": "10.00"}


def test_auto_recharge_at_trigger_and_balance_after_is_before_it(tmp_path):
    both = make(tmp_path, [credits_user()], [fund("2024-01-01", "6.00")], card="2030-01", **AUTO)
    out, ledger, notes = bill(both, [call("c1", GB, 900, "2024-03-10T10:00:00Z"),
                                     call("c2", GB, 60, "2024-03-10T11:00:00Z")])
    # c1: 6.00 - 1.50 = 4.50 < 5.00: a 10.00 recharge (lot 2) -> 14.50
    assert out["c1"].balance_after == D("4.50")
    assert out["c2"].balance_after == D("14.40")
    assert [(e["kind"], e["lot_id"], e["amount"], e["balance_after"], e["time"])
            for e in ledger] == [
        ("fund", 1, D("6.00"), D("6.00"), ts("2024-01-01T00:00:00Z")),
        ("debit", 1, D("-1.50"), D("4.50"), ts("2024-03-10T10:00:00Z")),
        ("recharge", 2, D("10.00"), D("14.50"), ts("2024-03-10T10:00:00Z")),
        ("debit", 1, D("-0.10"), D("14.40"), ts("2024-03-10T11:00:00Z"))]
    assert [(n["kind"], n["amount"], n["balance"]) for n in notes] == [
        ("recharge_succeeded", D("10.00"), D("14.50"))]


def test_recharge_not_triggered_at_or_above_trigger(tmp_path):
    both = make(tmp_path, [credits_user()], [fund("2024-01-01", "5.10")], card="2030-01", **AUTO)
    _, ledger, _ = bill(both, [call("c1", GB, 60, "2024-03-10T10:00:00Z")])
    # 5.10 - 0.10 = 5.00: not below 5.00
    assert [e["kind"] for e in ledger] == ["fund", "debit"]


def test_expiry_triggers_auto_recharge(tmp_path):
    both = make(tmp_path, [credits_user()], [fund("2024-03-01", "20.00")], card="2030-01", **AUTO)
    _, ledger, notes = bill(both, [], as_of="2025-03-01T00:00:00Z")
    # 20.00 forfeited at 2025-03-01 00:00 -> 0 < 5.00: one 10.00 recharge
    assert entries(ledger) == [("fund", 1, D("20.00"), D("20.00")),
                               ("expire", 1, D("-20.00"), D(0)),
                               ("recharge", 2, D("10.00"), D("10.00"))]
    assert kinds(notes) == ["funds_expired", "balance_depleted", "recharge_succeeded"]


def test_recharge_repeats_at_most_10_times_per_instant(tmp_path):
    both = make(tmp_path, [credits_user()], [fund("2024-01-01", "50.00")], card="2030-01",
                auto=True, trigger="100.00", recharge="1.00")
    out, ledger, notes = bill(both, [call("b", GB, 60, "2024-03-10T10:00:00Z"),
                                     call("a", GB, 60, "2024-03-10T10:00:00Z"),
                                     call("c", GB, 60, "2024-03-10T10:00:01Z")])
    # "a" (first at the instant): 49.90 then ten 1.00 recharges -> 59.90 (still < 100)
    # "b": 59.80, the instant's 10 attempts are spent; "c" a second later: ten more
    assert [out[u].balance_after for u in "abc"] == [D("49.90"), D("59.80"), D("59.70")]
    recharges = [e for e in ledger if e["kind"] == "recharge"]
    assert len(recharges) == 20
    assert [e["lot_id"] for e in recharges] == list(range(2, 22))
    assert recharges[9]["balance_after"] == D("59.90")
    assert recharges[19]["balance_after"] == D("69.70")
    assert {e["time"] for e in recharges[:10]} == {ts("2024-03-10T10:00:00Z")}
    assert kinds(notes) == ["recharge_succeeded"] * 20


def test_card_valid_through_end_of_expiry_month(tmp_path):
    both = make(tmp_path, [credits_user()], [fund("2024-01-01", "5.20")], card="2024-03", **AUTO)
    out, ledger, notes = bill(both, [call("c1", GB, 180, "2024-03-31T23:59:59Z"),
                                     call("c2", GB, 6000, "2024-04-01T00:00:00Z")])
    # c1: 5.20 - 0.30 = 4.90 -> recharge works on the card's last second -> 14.90
    # c2: 14.90 - 10.00 = 4.90 -> card expired with March -> recharge_failed, amount 0
    assert entries(ledger) == [("fund", 1, D("5.20"), D("5.20")),
                               ("debit", 1, D("-0.30"), D("4.90")),
                               ("recharge", 2, D("10.00"), D("14.90")),
                               ("debit", 1, D("-4.90"), D("10.00")),
                               ("debit", 2, D("-5.10"), D("4.90")),
                               ("recharge_failed", None, D(0), D("4.90"))]
    assert ledger[-1]["time"] == ts("2024-04-01T00:00:00Z")
    assert out["c2"].balance_after == D("4.90")
    assert [(n["kind"], n["balance"]) for n in notes] == [
        ("recharge_succeeded", D("14.90")), ("recharge_failed", D("4.90"))]


def test_recharge_failure_backs_off_24_hours(tmp_path):
    both = make(tmp_path, [credits_user()], [fund("2024-01-01", "5.20")], card="2024-01", **AUTO)
    _, ledger, notes = bill(both, [call("c1", GB, 180, "2024-03-10T10:00:00Z"),
                                   call("c2", GB, 60, "2024-03-11T09:59:59Z"),
                                   call("c3", GB, 60, "2024-03-11T10:00:00Z")])
    # c1 4.90: fails; c2 4.80 within 24 h: no attempt; c3 4.70 at +24 h: fails again
    assert [(e["kind"], e["time"], e["balance_after"]) for e in ledger
            if e["kind"] == "recharge_failed"] == [
        ("recharge_failed", ts("2024-03-10T10:00:00Z"), D("4.90")),
        ("recharge_failed", ts("2024-03-11T10:00:00Z"), D("4.70"))]
    assert kinds(notes) == ["recharge_failed", "recharge_failed"]


def test_card_update_lifts_back_off(tmp_path):
    both = make(tmp_path, [credits_user()], [fund("2024-01-01", "5.20")],
                [card_update("2024-03-10T12:00:00Z", "2030-01")], card="2024-01", **AUTO)
    _, ledger, notes = bill(both, [call("c1", GB, 180, "2024-03-10T10:00:00Z"),
                                   call("c2", GB, 60, "2024-03-10T13:00:00Z")])
    # c1 4.90: fails (back-off to 11 March 10:00); the 12:00 card update lifts it but
    # triggers nothing itself; c2 4.80 -> recharge 10.00 -> 14.80
    assert [(e["kind"], e["time"], e["balance_after"]) for e in ledger[1:]] == [
        ("debit", ts("2024-03-10T10:00:00Z"), D("4.90")),
        ("recharge_failed", ts("2024-03-10T10:00:00Z"), D("4.90")),
        ("debit", ts("2024-03-10T13:00:00Z"), D("4.80")),
        ("recharge", ts("2024-03-10T13:00:00Z"), D("14.80"))]
    assert kinds(notes) == ["recharge_failed", "recharge_succeeded"]


# ---- SPEC §6: notifications and order of events ------------------------------------


def test_balance_depleted_is_edge_triggered(tmp_path):
    both = make(tmp_path, [credits_user()], [fund("2024-01-01", "0.10"),
                                             fund("2024-03-12", "1.00")])
    out, _, notes = bill(both, [call("c1", GB, 60, "2024-03-10T10:00:00Z"),
                                call("c2", GB, 60, "2024-03-11T10:00:00Z"),
                                call("c3", GB, 900, "2024-03-13T10:00:00Z")])
    # c1 0.10 -> 0 (edge); c2 blocked at 0 (no edge); 1.00 funded; c3 1.00 -> -0.50 (edge)
    assert out["c2"].status == "blocked_no_funds"
    assert [(n["kind"], n["time"], n["balance"]) for n in notes] == [
        ("balance_depleted", ts("2024-03-10T10:00:00Z"), D(0)),
        ("balance_depleted", ts("2024-03-13T10:00:00Z"), D("-0.50"))]


def test_order_at_one_instant_expiry_funding_card_update_calls(tmp_path):
    t = "2024-03-10T10:00:00Z"
    both = make(tmp_path, [credits_user()],
                [fund(t, "1.00", reference="PO-2"), fund("2023-03-10T10:00:00Z", "0.50")],
                [card_update(t, "2030-01")], card="2024-01", auto=True, trigger="2.00",
                recharge="5.00")
    _, ledger, notes = bill(both, [call("c1", GB, 60, t)])
    # at t: lot 1 (0.50) expires -> 0 -> recharge fails (old card); then the 1.00
    # funding; then the card update (lifts the back-off); then c1 (0.10 -> 0.90 < 2.00)
    # recharges 5.00 on the new card -> 5.90
    assert [(e["kind"], e["lot_id"], e["amount"], e["balance_after"]) for e in ledger] == [
        ("fund", 1, D("0.50"), D("0.50")),
        ("expire", 1, D("-0.50"), D(0)),
        ("recharge_failed", None, D(0), D(0)),
        ("fund", 2, D("1.00"), D("1.00")),
        ("debit", 2, D("-0.10"), D("0.90")),
        ("recharge", 3, D("5.00"), D("5.90"))]
    assert {e["time"] for e in ledger[1:]} == {ts(t)}
    assert kinds(notes) == ["funds_expired", "balance_depleted", "recharge_failed",
                            "recharge_succeeded"]


def test_calls_at_one_instant_ordered_by_usage_id(tmp_path):
    both = make(tmp_path, [credits_user()], [fund("2024-01-01", "0.05")])
    t = "2024-03-10T10:00:00Z"
    out, ledger, _ = bill(both, [call("b", GB, 60, t), call("a", GB, 60, t)])
    # "a" first: 0.05 > 0 so charged 0.10 (overrun to -0.05); "b" then finds -0.05
    assert (out["a"].status, out["a"].balance_after) == ("charged", D("-0.05"))
    assert (out["b"].status, out["b"].unbilled_amount) == ("blocked_no_funds", D("0.1000"))
    assert [e["usage_id"] for e in ledger if e["kind"] == "debit"] == ["a", "a"]


def test_capability_values(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOPSTN1"), lic("u1", "MCOMEETADD"), credits_user()],
                [fund("2024-01-01", "10")], skus=SMALL_SKUS)
    out, _, _ = bill(both, [
        call("free", US, 60, "2024-03-10T09:00:00Z", call_type="user_in"),
        call("incl", US, 60, "2024-03-10T10:00:00Z"),
        call("conf", GB, 60, "2024-03-10T10:30:00Z", call_type="conf_out"),
        call("part", US, 120, "2024-03-10T11:00:00Z"),
        call("chg", GB, 60, "2024-03-10T12:00:00Z"),
        call("zero", GB, 0, "2024-03-10T13:00:00Z")])
    # any credits -> MCOPSTNPP; only a pool -> that SKU; free -> FREECALL
    assert {u: out[u].capability for u in out} == {
        "free": "FREECALL", "incl": "MCOPSTN1", "conf": "MCOMEETADD", "part": "MCOPSTNPP",
        "chg": "MCOPSTNPP", "zero": None}
    assert out["part"].status == "partly_included"


# ---- SPEC §8: incremental runs ------------------------------------------------------


def test_second_run_continues_balances_lots_and_pools(tmp_path):
    both = make(tmp_path, [lic("u1", "MCOPSTN1"), credits_user()], [fund("2024-01-01", "1.00")],
                skus=SMALL_SKUS)
    out1, _, _ = bill(both, [call("c1", US, 60, "2024-03-10T10:00:00Z"),
                             call("c2", GB, 300, "2024-03-10T11:00:00Z")])
    assert (out1["c1"].status, out1["c2"].balance_after) == ("included", D("0.50"))
    out2, ledger2, _ = bill(both, [call("c3", US, 120, "2024-03-12T10:00:00Z")])
    # 60 of the 120 pool seconds left from run 1; 60 s at 0.0100 from lot 1
    assert (out2["c3"].status, out2["c3"].pool_seconds, out2["c3"].charge,
            out2["c3"].balance_after, out2["c3"].late) == (
        "partly_included", 60, D("0.0100"), D("0.49"), False)
    assert [(e["seq"], e["kind"], e["lot_id"], e["amount"], e["balance_after"])
            for e in ledger2] == [(3, "debit", 1, D("-0.01"), D("0.49"))]


def test_fundings_up_to_as_of_applied_without_calls(tmp_path):
    both = make(tmp_path, [credits_user()], [fund("2024-03-01", "1.00", reference="PO-1"),
                                             fund("2024-03-20", "2.00", reference="PO-2")])
    _, ledger1, _ = bill(both, [call("c1", GB, 60, "2024-03-10T10:00:00Z")])
    # as-of = the latest call start, 10 March: the 20 March funding waits
    assert entries(ledger1) == [("fund", 1, D("1.00"), D("1.00")),
                                ("debit", 1, D("-0.10"), D("0.90"))]
    _, ledger2, _ = bill(both, [], as_of="2024-03-15T00:00:00Z")
    assert ledger2 == []
    _, ledger3, _ = bill(both, [], as_of="2024-03-20T00:00:00Z")
    assert [(e["kind"], e["lot_id"], e["amount"], e["balance_after"], e["reference"])
            for e in ledger3] == [("fund", 2, D("2.00"), D("2.90"), "PO-2")]
    assert both.state.balance("t1") == 2_900_000


def test_late_cdr_flagged_and_charged_at_the_tenant_point(tmp_path):
    # MCOPSTNPP ends 8 March: the late call of 5 March still had it at its start
    both = make(tmp_path, [lic("u1", "MCOPSTNPP", to="2024-03-08")], [fund("2024-01-01", "1.00")])
    out1, _, _ = bill(both, [call("c1", GB, 60, "2024-03-10T10:00:00Z")])
    assert out1["c1"].status == "blocked_no_license"
    out2, ledger2, _ = bill(both, [call("c0", GB, 60, "2024-03-05T10:00:00Z")])
    assert (out2["c0"].status, out2["c0"].late, out2["c0"].balance_after) == (
        "charged", True, D("0.90"))
    # the debit is dated at the tenant's point (10 March 10:00), not 5 March
    assert [(e["kind"], e["time"], e["usage_id"]) for e in ledger2] == [
        ("debit", ts("2024-03-10T10:00:00Z"), "c0")]


def test_late_cdr_uses_current_month_pool_and_lots(tmp_path):
    # lot 1 expires 2024-03-05 00:00, between the late call's start and the point
    both = make(tmp_path, [lic("u1", "MCOPSTN1"), credits_user()],
                [fund("2023-03-05", "1.00"), fund("2024-03-01", "0.05")], skus=SMALL_SKUS)
    out1, _, _ = bill(both, [call("c1", US, 120, "2024-03-10T10:00:00Z")])
    assert out1["c1"].status == "included"  # March pool (120 s) used up
    out2, ledger2, _ = bill(both, [call("c0", US, 60, "2024-02-20T10:00:00Z")])
    # February's pool is untouched, but the late call draws from March's (used up);
    # lot 1 expired at the point, so 0.01 comes from lot 2 (0.05 -> 0.04)
    assert (out2["c0"].status, out2["c0"].pool, out2["c0"].late, out2["c0"].charge,
            out2["c0"].balance_after) == ("charged", None, True, D("0.0100"), D("0.04"))
    assert entries(ledger2) == [("debit", 2, D("-0.01"), D("0.04"))]


def test_two_months_in_two_runs_equals_one_run(tmp_path):
    licenses = [lic("u1", "MCOPSTN2"), lic("u1", "MCOMEETADD"), credits_user(),
                lic("u2", "MCOPSTN1", "PR", frm="2024-02-15")]
    funds = [fund("2023-02-20", "1.00"), fund("2024-01-01", "4.00")]
    kw = {"skus": SMALL_SKUS, "card": "2024-02", "auto": True, "trigger": "3.00",
          "recharge": "2.00"}
    feb = [call("f1", US, 150, "2024-02-10T10:00:00Z"),
           call("f2", GB, 1500, "2024-02-12T10:00:00Z"),
           call("f3", PR, 120, "2024-02-20T10:00:00Z", user="u2"),
           call("f4", GB, 60, "2024-02-29T23:59:59Z", call_type="conf_out")]
    mar = [call("m1", GB, 3000, "2024-03-01T00:00:00Z"),
           call("m2", US, 400, "2024-03-02T10:00:00Z"),
           call("m3", EG, 60, "2024-03-05T10:00:00Z", call_type="conf_out"),
           call("m4", US, 60, "2024-03-06T10:00:00Z")]
    one = make(tmp_path / "one", licenses, funds, **kw)
    two = make(tmp_path / "two", licenses, funds, **kw)
    out_one, ledger_one, notes_one = one.run(feb + mar)
    out_a, ledger_a, notes_a = two.run(feb)
    out_b, ledger_b, notes_b = two.run(mar)
    assert {**out_a, **out_b} == out_one
    assert ledger_a + ledger_b == ledger_one
    assert notes_a + notes_b == notes_one
    assert two.pools_k == one.pools_k
    # f1 used up the 2-min domestic pool (4.99 left), so by either cap f2 gets no
    # international minute: 25 min x 0.1000 = 2.50 -> 2.49 < 3.00 -> a 2.00 recharge
    # (card valid in Feb) -> 4.49; m1 on 1 March: pools reset, 60 s pooled,
    # 49 min x 0.1000 = 4.90 -> -0.41, and the recharge fails (card expired)
    assert Rated(*out_one["f2"]).balance_after == D("2.49")
    assert Rated(*out_one["m1"])[3:6] == (60, 2940, D("4.90"))
    assert Rated(*out_one["m1"]).balance_after == D("-0.41")
    kinds_one = [dict(e)["kind"] for e in ledger_one]
    assert kinds_one.count("recharge") == 1 and kinds_one.count("recharge_failed") == 1


def test_pools_of_a_former_config_stay_in_the_pools_table(tmp_path):
    """A pool the config no longer has (its user moved from the US to
    Canada) keeps its month's use in the state: the next run's pools table
    shows it, in (tenant, month, pool) order with the new pool's row."""
    both = make(tmp_path / "a", [lic("u1", "MCOPSTN1")], skus=SMALL_SKUS)
    out, _, _ = bill(both, [call("c1", US, 60, "2024-03-10T10:00:00Z")])
    assert out["c1"].pool == "MCOPSTN1:domestic:US"
    config = write_config(tmp_path / "b", DECK, [tenant()], [lic("u1", "MCOPSTN1", "CA")])
    write_csv(config / "skus.csv", SKU_HEADER, [dict(zip(SKU_HEADER, r)) for r in SMALL_SKUS])
    both.reload(config)
    *_, b = both.kernel([call("c2", CA, 100, "2024-03-11T10:00:00Z")])
    assert b.pools.to_pylist() == [
        {"tenant_id": "t1", "month": "2024-03", "pool": name, "capability": "MCOPSTN1",
         "kind": "domestic", "scope": scope, "size_seconds": 120, "used_seconds": used}
        for name, scope, used in (("MCOPSTN1:domestic:CA", "CA", 120),
                                  ("MCOPSTN1:domestic:US", "US", 60))]


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["a", "b", "c", "z", None])),
                     max_size=30),
       cut=st.integers(0, 30), dictionary=st.booleans())
def test_payers_match_a_lookup_by_tenant_and_user(tmp_path_factory, rows, cut, dictionary):
    """Each call's payer is the license holder (tenant, user) of its own
    tenant; nulls, unlicensed users and a user licensed in two tenants
    included, whatever the array's encoding, slicing and chunking."""
    both = _three_tenants(tmp_path_factory)
    plan = both.plan
    keys = plan.payer_keys.to_pylist()
    want = [keys.index(f"{t}\x1f{u}") if u is not None and f"{t}\x1f{u}" in keys else -1
            for t, u in rows]
    users = pa.array(["pad"] + [u for _, u in rows], pa.string()).slice(1)
    if dictionary:
        users = users.dictionary_encode()
    users = pa.chunked_array([users.slice(0, cut), users.slice(cut)])
    got = plan.payers(np.array([t for t, _ in rows], np.int32), users)
    assert got.tolist() == want


@settings(max_examples=80, deadline=None)
@given(n_codes=st.integers(0, 6), n_payers=st.integers(0, 4), seed=st.integers(0, 2**32 - 1),
       offset=st.integers(0, 9), nulls=st.booleans())
def test_payers_of_matches_its_rule_on_any_codes(n_codes, n_payers, seed, offset, nulls):
    """The kernel under Plan.payers, on codes and tables no plan makes:
    codes out of range, payer indices out of range, -2, nulls, an offset."""
    rng = np.random.default_rng(seed)
    n = 40
    codes = rng.integers(-2, n_codes + 2, offset + n).astype(np.int32)
    by_code = rng.integers(-2, n_payers + 2, n_codes).astype(np.int32)
    payer_tenant = rng.integers(0, 3, n_payers).astype(np.int32)
    tenant = rng.integers(-1, 3, n).astype(np.int32)
    valid_bits = rng.integers(0, 2, offset + n).astype(bool) if nulls else None
    valid = np.packbits(valid_bits, bitorder="little") if nulls else None
    out = np.empty(n, np.int32)
    payers_of(codes, valid, offset, pair_payers(by_code, payer_tenant), tenant, out)
    want = []
    for i in range(n):
        j, p = offset + i, -1
        if (valid_bits is None or valid_bits[j]) and 0 <= codes[j] < n_codes:
            p = int(by_code[codes[j]])
            if p >= 0 and (p >= n_payers or payer_tenant[p] != tenant[i]):
                p = -1
        want.append(p)
    assert out.tolist() == want


_BOTH = {}


def _three_tenants(factory) -> Both:
    """t1, t2, t3; a licensed in t1 and t2 (two payers), b in t2, c in t3."""
    if "both" not in _BOTH:
        root = factory.mktemp("payers")
        config = write_config(root, DECK, [tenant(tid) for tid in ("t1", "t2", "t3")], [
            lic("a", "MCOPSTN1", tid="t1"), lic("a", "MCOPSTN1", tid="t2"),
            lic("b", "MCOPSTN1", tid="t2"), lic("c", "MCOPSTN1", tid="t3")])
        _BOTH["both"] = Both(config)
    return _BOTH["both"]


def test_records_refuse_positions_outside_them(tmp_path):
    """A call's record is looked up by position: one outside the records
    is refused, not read."""
    both = make(tmp_path, [lic("u1", "MCOPSTN1")])
    *_, b = both.kernel([call("c1", US, 60, "2024-03-10T10:00:00Z"),
                         call("c2", US, 60, "2024-03-10T11:00:00Z")])
    bad = billing.Billed(b.recs, np.array([0, 2], np.int32), np.array([0, 1], np.int32),
                         b.call_lo, b.ledger, b.notifications, b.pools, b.as_of, b.charged)
    with pytest.raises(IndexError, match="position 2 is outside the 2 records"):
        bad.columns()
    assert b.columns()["status"].tolist() == [pricing.STATUSES.index("included")] * 2
