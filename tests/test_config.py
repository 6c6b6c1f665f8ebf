"""The config directory (SPEC §5-7): SKU catalog, zones, tenants' credit
settings, licenses, funds and card updates, read and validated."""

from datetime import datetime, timezone

import numpy as np
import pytest
from conftest import (
    CARD_UPDATE_HEADER,
    FUND_HEADER,
    LICENSE_HEADER,
    TENANT_HEADER,
    deck_row,
    fund_row,
    license_row,
    tenant_row,
    write_billing_files,
    write_config,
    write_csv,
)

from ratecore import generate
from ratecore.config import (
    INT64_MAX,
    INT64_MIN,
    SKU_POOL_KINDS,
    load_config,
    load_skus,
    load_zones,
)
from ratecore.errors import ConfigError


def us(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


def make_config(tmp, tenants=None, licenses=(), funds=(), card_updates=None):
    config = write_config(tmp, [deck_row("44")])
    if tenants is not None:
        write_csv(config / "tenants.csv", TENANT_HEADER, tenants)
    return write_billing_files(config, licenses, funds, card_updates)


def refused(fn, *args, **kw) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        fn(*args, **kw)
    return e.value


def assert_problem(err: ConfigError, file: str, line: int, column: str, words: str):
    """One problem names `file`:`line`, `column` and says `words`; so does the text."""
    hits = [p for p in err.problems
            if p.file.endswith(file) and p.line == line and p.column == column]
    assert hits, f"no problem at {file}:{line} column {column!r} in:\n{err}"
    assert any(words in p.message for p in hits), f"{words!r} not in {[p.message for p in hits]}"
    assert f"{file}:{line}: column '{column}': " in str(err)


# --------------------------------------------------------------------------
# The shipped SKU catalog and zones
# --------------------------------------------------------------------------

def test_shipped_catalog_minutes():
    c = load_skus()
    assert c.skus == ("MCOPSTN1", "MCOPSTN2", "MCOPSTN5", "MCOPSTN6", "MCOPSTN8",
                      "MCOMEETADD", "MCOPSTNPP")
    for sku in ("MCOPSTN1", "MCOPSTN2"):
        for country in ("US", "PR", "CA"):
            assert c.minutes_for(sku, "domestic", country) == 3000
        for country in ("GB", "DE", "JP", "MX"):
            assert c.minutes_for(sku, "domestic", country) == 1200
    assert c.minutes_for("MCOPSTN2", "international", "US") == 600
    assert c.minutes_for("MCOPSTN2", "international", "FR") == 600
    assert c.minutes_for("MCOPSTN1", "international", "US") == 0  # no such pool
    assert c.minutes_for("MCOPSTN5", "domestic", "US") == 120
    assert c.minutes_for("MCOPSTN6", "domestic", "GB") == 240
    assert c.minutes_for("MCOPSTN8", "user", "US") == 120
    assert c.minutes_for("MCOMEETADD", "dialout", "GB") == 60
    assert c.minutes_for("NOPE", "domestic", "US") == 0
    assert c.pools == {"MCOPSTN1": ("domestic",), "MCOPSTN2": ("domestic", "international"),
                       "MCOPSTN5": ("domestic",), "MCOPSTN6": ("domestic",),
                       "MCOPSTN8": ("user",), "MCOMEETADD": ("dialout",),
                       "MCOPSTNPP": ("credits",)}
    assert c.names["MCOPSTN8"] == "Domestic Calling Plan (120 min, not pooled)"
    assert c.names["MCOPSTNPP"] == "Communications Credits"
    assert {p for ps in c.pools.values() for p in ps} == set(SKU_POOL_KINDS)


def test_shipped_zones():
    z = load_zones()
    assert z.group_of("PR") == "US"   # PR users share the US pool
    assert z.group_of("US") == "US"
    assert z.group_of("GB") == "GB"
    assert z.is_domestic("CA", "US")  # a CA user's call to the US is domestic
    assert z.is_domestic("US", "CA") and z.is_domestic("US", "PR") and z.is_domestic("PR", "US")
    assert z.is_domestic("GB", "GB") and z.is_domestic("DE", "DE")
    assert not z.is_domestic("GB", "US") and not z.is_domestic("CA", "PR")
    assert len(z.zone_a) == 44
    assert {"US", "PR", "CA", "GB", "AU", "TW", "ZA"} <= z.zone_a
    assert not {"AE", "IL", "AR"} & z.zone_a


def test_missing_override_means_shipped(tmp):
    assert load_skus(tmp / "skus.csv") == load_skus(None)
    assert load_zones(tmp / "zones.csv") == load_zones(None)


def test_override_files_replace_the_shipped_ones(tmp):
    config = make_config(tmp, licenses=[license_row(sku="PLAN9", location="GB")])
    write_csv(config / "skus.csv", ["sku", "name", "pool", "country", "minutes"],
              [{"sku": "PLAN9", "name": "Plan Nine", "pool": "domestic", "country": "GB",
                "minutes": "900"}])
    write_csv(config / "zones.csv", ["kind", "country", "member"],
              [{"kind": "domestic", "country": "GB", "member": "IE"},
               {"kind": "zone_a", "country": "GB", "member": ""}])
    cfg = load_config(config)
    assert cfg.skus.skus == ("PLAN9",)
    assert cfg.skus.minutes_for("PLAN9", "domestic", "GB") == 900
    assert cfg.skus.minutes_for("PLAN9", "domestic", "US") == 0
    assert cfg.zones.zone_a == frozenset({"GB"})
    assert cfg.zones.is_domestic("GB", "IE")
    assert not cfg.zones.is_domestic("CA", "US")   # shipped rows are gone
    assert cfg.zones.group_of("PR") == "PR"
    # a shipped SKU is unknown under the override
    write_billing_files(config, [license_row(sku="MCOPSTN1")])
    err = refused(load_config, config)
    assert_problem(err, "licenses.csv", 2, "sku", "unknown SKU 'MCOPSTN1' (catalog: PLAN9)")


SKU_HEADER = ["sku", "name", "pool", "country", "minutes"]


def sku_row(sku="S1", name="Plan", pool="domestic", country="", minutes="100"):
    return {"sku": sku, "name": name, "pool": pool, "country": country, "minutes": minutes}


@pytest.mark.parametrize("bad, column, words", [
    ({"sku": ""}, "sku", "sku is empty"),
    ({"name": ""}, "name", "name is empty"),
    ({"pool": "shared"}, "pool", "is not one of: domestic, user"),
    ({"country": "QQ"}, "country", "unknown country code 'QQ'"),
    ({"minutes": "-1"}, "minutes", "from 0 to 1000000"),
    ({"minutes": "1000001"}, "minutes", "from 0 to 1000000"),
    ({"minutes": "1.5"}, "minutes", "whole number"),
    ({"minutes": ""}, "minutes", "whole number"),
    ({"country": "US"}, "country", "listed more than once (also line 2)"),
    ({"name": "Other", "pool": "user"}, "name", "named 'Other' here and 'Plan' at line 2"),
])
def test_sku_catalog_refused(tmp, bad, column, words):
    path = write_csv(tmp / "skus.csv", SKU_HEADER, [sku_row(country="US"), sku_row(**bad)])
    err = refused(load_skus, path)
    assert_problem(err, "skus.csv", 3, column, words)


def test_sku_catalog_missing_column(tmp):
    path = write_csv(tmp / "skus.csv", ["sku", "name", "pool", "country"], [])
    assert "missing required column(s) 'minutes'" in str(refused(load_skus, path))


ZONE_HEADER = ["kind", "country", "member"]


@pytest.mark.parametrize("rows, line, column, words", [
    ([("region", "US", "CA")], 2, "kind", "is not one of: domestic, pool_group, zone_a"),
    ([("zone_a", "QQ", "")], 2, "country", "unknown country code 'QQ'"),
    ([("zone_a", "", "")], 2, "country", "country is empty"),
    ([("domestic", "US", "")], 2, "member", "member is empty"),
    ([("pool_group", "PR", "")], 2, "member", "member is empty"),
    ([("domestic", "US", "XX")], 2, "member", "unknown country code 'XX'"),
    ([("zone_a", "US", "CA")], 2, "member", "zone_a rows take no member"),
    ([("pool_group", "PR", "US"), ("pool_group", "PR", "CA")], 3, "country",
     "more than one pool_group row (also line 2)"),
    ([("pool_group", "US", "US")], 2, "member", "cannot share its own pool"),
    ([("pool_group", "VI", "PR"), ("pool_group", "PR", "US")], 2, "member",
     "'PR' itself shares the pool of 'US' (line 3)"),
    ([("zone_a", "US", ""), ("zone_a", "US", "")], 3, "country", "listed more than once"),
])
def test_zones_refused(tmp, rows, line, column, words):
    path = write_csv(tmp / "zones.csv", ZONE_HEADER,
                     [dict(zip(ZONE_HEADER, r)) for r in rows])
    assert_problem(refused(load_zones, path), "zones.csv", line, column, words)


# --------------------------------------------------------------------------
# Tenants: credit settings
# --------------------------------------------------------------------------

def test_minimal_tenants_take_defaults(tmp):
    config = make_config(tmp)
    write_csv(config / "tenants.csv", ["tenant_id", "name", "country", "currency", "deck"],
              [{"tenant_id": "t1", "name": "Contoso", "country": "US", "currency": "USD",
                "deck": "d1"}])
    cfg = load_config(config)  # tenants.csv without the credit columns
    t = cfg.tenants
    assert t.country == ["US"]
    assert t.credits_enabled.tolist() == [False] and t.auto_recharge.tolist() == [False]
    assert t.trigger_micro.dtype == np.int64 and t.trigger_micro.tolist() == [0]
    assert t.recharge_micro.tolist() == [0]
    assert t.card_valid_until.tolist() == [INT64_MIN]


def test_tenant_credit_settings(tmp):
    config = make_config(tmp, tenants=[
        tenant_row("t1", auto_recharge="yes", trigger_amount="25.5", recharge_amount="100",
                   card_expires="2025-02"),
        tenant_row("t2", country="PR", credits_enabled="0", card_expires="2024-12"),
        tenant_row("t3", credits_enabled="", trigger_amount="0")])
    t = load_config(config).tenants
    assert t.country == ["US", "PR", "US"]
    assert t.credits_enabled.tolist() == [True, False, False]
    assert t.auto_recharge.tolist() == [True, False, False]
    assert t.trigger_micro.tolist() == [25_500_000, 0, 0]
    assert t.recharge_micro.tolist() == [100_000_000, 0, 0]
    # valid through the end of the month: no longer valid from the 1st of the next
    assert t.card_valid_until.tolist() == [us("2025-03-01T00:00:00Z"), us("2025-01-01T00:00:00Z"),
                                           INT64_MIN]
    assert t.card_valid_until.dtype == np.int64


@pytest.mark.parametrize("bad, column, words", [
    ({"credits_enabled": "maybe"}, "credits_enabled", "not a boolean"),
    ({"auto_recharge": "on"}, "auto_recharge", "not a boolean"),
    ({"auto_recharge": "true", "recharge_amount": "50"}, "trigger_amount",
     "trigger_amount is empty but auto_recharge is true"),
    ({"auto_recharge": "true", "trigger_amount": "10"}, "recharge_amount",
     "recharge_amount is empty but auto_recharge is true"),
    ({"trigger_amount": "-1"}, "trigger_amount", "negative"),
    ({"trigger_amount": "ten"}, "trigger_amount", "not a decimal amount"),
    ({"recharge_amount": "0"}, "recharge_amount", "not a positive amount"),
    ({"recharge_amount": "1.0000001"}, "recharge_amount", "more than 6 decimal places"),
    ({"card_expires": "2025-13"}, "card_expires", "not a card expiry month YYYY-MM"),
    ({"card_expires": "2025-1"}, "card_expires", "YYYY-MM"),
    ({"card_expires": "25-01"}, "card_expires", "YYYY-MM"),
    ({"card_expires": "2025-02-01"}, "card_expires", "YYYY-MM"),
    ({"currency": "EUR"}, "currency", "differs from the currency of the tenant's deck"),
])
def test_tenants_refused(tmp, bad, column, words):
    config = make_config(tmp, tenants=[tenant_row("t0"), tenant_row("t1", **bad)])
    assert_problem(refused(load_config, config), "tenants.csv", 3, column, words)


def test_all_problems_of_a_file_are_listed(tmp):
    config = make_config(tmp, tenants=[tenant_row("t1", credits_enabled="x"),
                                       tenant_row("t2", card_expires="2025-00")])
    err = refused(load_config, config)
    assert [(p.line, p.column) for p in err.problems] == [(2, "credits_enabled"),
                                                           (3, "card_expires")]


# --------------------------------------------------------------------------
# Licenses
# --------------------------------------------------------------------------

def test_licenses(tmp):
    config = make_config(tmp, tenants=[tenant_row("t0"), tenant_row("t1")], licenses=[
        license_row(),
        license_row(user="u2@t1.example", sku="MCOPSTN2", location="PR",
                    assigned_from="2024-03-05T10:00:00+01:00", assigned_to="2024-04-01"),
        license_row(tenant="t0", user="u1@t1.example", sku="MCOPSTNPP"),
        # back to back windows of one SKU do not overlap ([from, to) is exclusive)
        license_row(user="u3", assigned_from="2024-01-01", assigned_to="2024-02-01"),
        license_row(user="u3", assigned_from="2024-02-01")])
    lic = load_config(config).licenses
    assert lic.tenant.dtype == np.int32 and lic.tenant.tolist() == [1, 1, 0, 1, 1]
    assert lic.user_id[:3] == ["u1@t1.example", "u2@t1.example", "u1@t1.example"]
    assert lic.usage_location[:2] == ["US", "PR"]
    assert lic.sku[:3] == ["MCOPSTN1", "MCOPSTN2", "MCOPSTNPP"]
    assert lic.assigned_from.dtype == np.int64
    assert lic.assigned_from[1] == us("2024-03-05T09:00:00Z")
    assert lic.assigned_to.tolist() == [INT64_MAX, us("2024-04-01T00:00:00Z"), INT64_MAX,
                                        us("2024-02-01T00:00:00Z"), INT64_MAX]
    assert lic.line.tolist() == [2, 3, 4, 5, 6]


def test_licenses_assigned_to_column_is_optional(tmp):
    config = make_config(tmp)
    write_csv(config / "licenses.csv", LICENSE_HEADER[:-1],
              [{k: v for k, v in license_row().items() if k != "assigned_to"}])
    assert load_config(config).licenses.assigned_to.tolist() == [INT64_MAX]


@pytest.mark.parametrize("bad, column, words", [
    ({"tenant": "t9"}, "tenant_id", "unknown tenant 't9'"),
    ({"tenant": ""}, "tenant_id", "tenant_id is empty"),
    ({"user": ""}, "user_id", "user_id is empty"),
    ({"location": "QQ"}, "usage_location", "unknown country code 'QQ'"),
    ({"location": ""}, "usage_location", "usage_location is empty"),
    ({"sku": "ENTERPRISEPACK"}, "sku", ("unknown SKU 'ENTERPRISEPACK' (catalog: MCOPSTN1, "
                                        "MCOPSTN2, MCOPSTN5, MCOPSTN6, MCOPSTN8, MCOMEETADD, "
                                        "MCOPSTNPP)")),
    ({"assigned_from": "2024-02-30"}, "assigned_from", "not a date or ISO 8601 timestamp"),
    ({"assigned_from": ""}, "assigned_from", "assigned_from is empty"),
    ({"assigned_to": "soon"}, "assigned_to", "not a date or ISO 8601 timestamp"),
    ({"assigned_to": "2024-01-01"}, "assigned_to", "not after assigned_from"),
    ({"assigned_to": "2023-12-31"}, "assigned_to", "not after assigned_from"),
])
def test_licenses_refused(tmp, bad, column, words):
    config = make_config(tmp, licenses=[license_row(user="u0"), license_row(**bad)])
    assert_problem(refused(load_config, config), "licenses.csv", 3, column, words)


def test_overlapping_assignments_name_the_other_line(tmp):
    config = make_config(tmp, licenses=[
        license_row(user="u1", assigned_from="2024-01-01", assigned_to="2024-06-01"),
        license_row(user="u1", sku="MCOPSTNPP"),                       # other SKU: fine
        license_row(user="u2", assigned_from="2024-03-01"),           # other user: fine
        license_row(user="u1", assigned_from="2024-05-01", assigned_to="2024-07-01"),
        license_row(user="u1", assigned_from="2024-02-01", assigned_to="2024-03-01"),
        license_row(user="u1", assigned_from="2024-08-01")])           # after all: fine
    err = refused(load_config, config)
    assert_problem(err, "licenses.csv", 5, "assigned_from", "overlaps line 2")
    assert_problem(err, "licenses.csv", 6, "assigned_from", "overlaps line 2")
    assert sorted(p.line for p in err.problems) == [5, 6]


def test_overlap_check_skips_rows_with_bad_cells(tmp):
    config = make_config(tmp, licenses=[
        license_row(user="u1"), license_row(user="u1", assigned_from="never")])
    err = refused(load_config, config)
    assert [(p.line, p.column) for p in err.problems] == [(3, "assigned_from")]


# --------------------------------------------------------------------------
# Funds and card updates
# --------------------------------------------------------------------------

def test_funds(tmp):
    config = make_config(tmp, funds=[
        fund_row("1000.50", "2024-01-15", reference="EA-12345678"),
        fund_row("0.000001", "2024-02-01T01:00:00+01:00")])
    f = load_config(config).funds
    assert f.tenant.dtype == np.int32 and f.tenant.tolist() == [0, 0]
    assert f.funded_at.tolist() == [us("2024-01-15T00:00:00Z"), us("2024-02-01T00:00:00Z")]
    assert f.amount.dtype == np.int64 and f.amount.tolist() == [1_000_500_000, 1]
    assert f.reference == ["EA-12345678", None]
    assert f.line.tolist() == [2, 3]


def test_empty_files_give_empty_arrays(tmp):
    cfg = load_config(make_config(tmp))  # licenses/funds: header only; no card_updates.csv
    for arr, dtype in ((cfg.licenses.tenant, np.int32), (cfg.licenses.assigned_from, np.int64),
                       (cfg.licenses.assigned_to, np.int64), (cfg.licenses.line, np.int64),
                       (cfg.funds.tenant, np.int32), (cfg.funds.funded_at, np.int64),
                       (cfg.funds.amount, np.int64), (cfg.funds.line, np.int64),
                       (cfg.card_updates.tenant, np.int32), (cfg.card_updates.updated_at, np.int64),
                       (cfg.card_updates.card_valid_until, np.int64),
                       (cfg.card_updates.line, np.int64)):
        assert arr.dtype == dtype and arr.shape == (0,)
    assert cfg.licenses.user_id == [] and cfg.funds.reference == []
    assert cfg.card_updates.card_expires == []
    write_csv(tmp / "config" / "card_updates.csv", CARD_UPDATE_HEADER, [])
    assert load_config(tmp / "config").card_updates.tenant.shape == (0,)


def test_funds_reference_column_is_optional(tmp):
    config = make_config(tmp)
    write_csv(config / "funds.csv", FUND_HEADER[:-1],
              [{"tenant_id": "t1", "funded_at": "2024-01-01", "amount": "5"}])
    assert load_config(config).funds.reference == [None]


@pytest.mark.parametrize("bad, column, words", [
    ({"tenant": "t9"}, "tenant_id", "unknown tenant 't9'"),
    ({"funded_at": "yesterday"}, "funded_at", "not a date or ISO 8601 timestamp"),
    ({"funded_at": ""}, "funded_at", "funded_at is empty"),
    ({"amount": "0"}, "amount", "not a positive amount"),
    ({"amount": "-5"}, "amount", "not a positive amount"),
    ({"amount": "1.1234567"}, "amount", "more than 6 decimal places"),
    ({"amount": "1e3"}, "amount", "not a decimal amount"),
    ({"amount": ""}, "amount", "amount is empty"),
])
def test_funds_refused(tmp, bad, column, words):
    config = make_config(tmp, funds=[fund_row(), fund_row(**bad)])
    assert_problem(refused(load_config, config), "funds.csv", 3, column, words)


def test_card_updates(tmp):
    config = make_config(tmp, card_updates=[
        {"tenant_id": "t1", "updated_at": "2024-03-10T08:00:00Z", "card_expires": "2027-02"}])
    c = load_config(config).card_updates
    assert c.tenant.tolist() == [0]
    assert c.updated_at.tolist() == [us("2024-03-10T08:00:00Z")]
    assert c.card_valid_until.tolist() == [us("2027-03-01T00:00:00Z")]
    assert c.card_expires == ["2027-02"]
    assert c.line.tolist() == [2]


@pytest.mark.parametrize("bad, column, words", [
    ({"tenant_id": "t9"}, "tenant_id", "unknown tenant 't9'"),
    ({"updated_at": "2024-13-01"}, "updated_at", "not a date or ISO 8601 timestamp"),
    ({"card_expires": "2027-2"}, "card_expires", "YYYY-MM"),
    ({"card_expires": ""}, "card_expires", "card_expires is empty"),
])
def test_card_updates_refused(tmp, bad, column, words):
    good = {"tenant_id": "t1", "updated_at": "2024-03-10", "card_expires": "2027-02"}
    config = make_config(tmp, card_updates=[good, good | bad])
    assert_problem(refused(load_config, config), "card_updates.csv", 3, column, words)


@pytest.mark.parametrize("name", ["licenses.csv", "funds.csv"])
def test_required_files(tmp, name):
    config = make_config(tmp)
    (config / name).unlink()
    assert f"{name}: missing" in str(refused(load_config, config))


def test_missing_required_column(tmp):
    config = make_config(tmp)
    write_csv(config / "licenses.csv", ["tenant_id", "user_id", "sku", "assigned_from"], [])
    assert "missing required column(s) 'usage_location'" in str(refused(load_config, config))


# --------------------------------------------------------------------------
# The generated sample
# --------------------------------------------------------------------------

def test_generated_sample_loads(tmp):
    sample = generate.generate(tmp, tenants=20, cdrs=1000, seed=1)
    cfg = load_config(sample.config_dir)
    assert len(cfg.tenants.country) == 20
    assert len(cfg.licenses.sku) > 20 and set(cfg.licenses.sku) <= set(cfg.skus.skus)
    assert len(cfg.funds.amount) > 0 and (cfg.funds.amount > 0).all()
    assert cfg.tenants.credits_enabled.any()
    auto = cfg.tenants.auto_recharge
    assert (cfg.tenants.recharge_micro[auto] > 0).all()
    assert len(cfg.card_updates.card_expires) > 0
