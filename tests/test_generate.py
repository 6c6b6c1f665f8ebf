"""Tests of the sample-data generator (SPEC §10): layout, contract, determinism."""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import phonenumbers
import pyarrow as pa
import pyarrow.parquet as pq
import pycountry
import pytest

from ratecore import generate as gen

SMALL = dict(tenants=8, cdrs=20_000, prefixes_per_service=2_000)
START = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
END = START + dt.timedelta(days=30)
SPEC_SKUS = {"MCOPSTN1", "MCOPSTN2", "MCOPSTN5", "MCOPSTN6", "MCOPSTN8", "MCOMEETADD", "MCOPSTNPP"}
SPEC_CALL_TYPES = {
    "user_out", "user_out_conf", "user_out_transfer", "user_out_forwarding", "ucap_out",
    "conf_out", "user_in", "conf_in", "ucap_in", "unassigned_in", "emergency_out",
}
OUTBOUND_TYPES = {"user_out", "user_out_conf", "user_out_transfer", "user_out_forwarding",
                  "ucap_out", "conf_out"}
EMERGENCY_NUMBERS = {"911", "112", "999", "000", "110", "119", "118"}
MONEY = re.compile(r"^\d+(\.\d{1,6})?$")
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}Z)?$")


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        return header, [dict(zip(header, row, strict=True)) for row in reader]


def instant(text: str) -> dt.datetime:
    if "T" not in text:
        text += "T00:00:00Z"
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def money(text: str) -> Decimal:
    assert MONEY.match(text), text
    return Decimal(text)


def normalise(number: str) -> str:
    return number.lstrip("+").replace(" ", "").replace("-", "")


def longest_prefix(number: str, prefixes: set[str]) -> str | None:
    for n in range(min(len(number), 15), 0, -1):
        if number[:n] in prefixes:
            return number[:n]
    return None


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    progress = []
    result = gen.generate(out, seed=7, progress=progress.append, **SMALL)
    return out, result, progress


@pytest.fixture(scope="module")
def config(sample):
    out, _, _ = sample
    tables = {}
    for name in ("tenants", "licenses", "funds", "card_updates"):
        tables[name] = read_csv(out / "config" / f"{name}.csv")
    tables["decks"] = {p.stem: read_csv(p) for p in sorted((out / "config" / "decks").glob("*.csv"))}
    return tables


@pytest.fixture(scope="module")
def cdrs(sample) -> pa.Table:
    out, _, _ = sample
    return pa.concat_tables(pq.read_table(p) for p in sorted((out / "cdrs").glob("*.parquet")))


def test_layout_and_headers(sample, config):
    out, result, progress = sample
    assert result.config_dir == out / "config" and result.cdr_dir == out / "cdrs"
    assert (result.tenants, result.cdrs, result.start, result.end) == (8, 20_000, START, END)
    assert sum(progress) == 20_000
    assert set(config["decks"]) == {"retail-usd", "retail-eur"}
    for header, _ in config["decks"].values():
        assert tuple(header) == gen.DECK_COLUMNS
    assert tuple(config["tenants"][0]) == gen.TENANT_COLUMNS
    assert tuple(config["licenses"][0]) == gen.LICENSE_COLUMNS
    assert tuple(config["funds"][0]) == gen.FUND_COLUMNS
    assert tuple(config["card_updates"][0]) == gen.CARD_UPDATE_COLUMNS
    assert len(config["tenants"][1]) == 8
    assert config["card_updates"][1]


def test_same_seed_same_bytes_other_seed_differs(sample, tmp_path):
    out, _, _ = sample
    again = gen.generate(tmp_path / "again", seed=7, **SMALL)
    other = gen.generate(tmp_path / "other", seed=8, **SMALL)
    files = sorted(p.relative_to(out / "config") for p in (out / "config").rglob("*.csv"))
    assert len(files) == 6
    for rel in files:
        assert (out / "config" / rel).read_bytes() == (again.config_dir / rel).read_bytes(), rel
    first = pq.read_table(out / "cdrs")
    assert first.equals(pq.read_table(again.cdr_dir))
    assert not first.equals(pq.read_table(other.cdr_dir))
    for name in ("tenants.csv", "licenses.csv", "decks/retail-usd.csv"):
        assert (out / "config" / name).read_bytes() != (other.config_dir / name).read_bytes(), name


def test_deck_covers_every_country_calling_code(config):
    _, rows = config["decks"]["retail-usd"]
    outbound = {r["prefix"]: r for r in rows if r["service"] == "outbound"}
    for cc, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        if regions == ("001",):  # non-geographic (+800, +882, ...): no country, not listed
            assert str(cc) not in outbound
            continue
        row = outbound[str(cc)]
        assert row["country"] == regions[0] and row["number_class"] == "geographic"
    nanp = {r["country"] for p, r in outbound.items() if p.startswith("1") and len(p) > 1}
    assert {"US", "CA", "PR", "JM"} <= nanp
    classes = Counter(r["number_class"] for r in outbound.values())
    assert set(classes) == {"geographic", "mobile", "tollfree", "premium", "shared_cost"}
    assert outbound["1900"]["blocked"] == "true"  # premium numbers in the US
    gb_mobile = [r["destination"] for p, r in outbound.items() if p.startswith("447")]
    assert "United Kingdom - Mobile" in gb_mobile


def test_deck_rows_follow_the_contract(config):
    for deck_id, (_, rows) in config["decks"].items():
        currency = {"retail-usd": "USD", "retail-eur": "EUR"}[deck_id]
        seen = set()
        for r in rows:
            assert r["deck"] == deck_id and r["currency"] == currency
            assert r["service"] in {"outbound", "conference_dialout", "tollfree_inbound"}
            assert r["prefix"].isdigit() and 1 <= len(r["prefix"]) <= 15
            c = r["country"]
            assert pycountry.countries.get(alpha_2=c) is not None or c in {"AC", "TA", "XK"}
            assert r["destination"]
            assert money(r["rate"]) > 0
            assert money(r["connect_fee"]) >= 0 and money(r["min_charge"]) >= 0
            assert int(r["initial_increment"]) >= 1 and int(r["next_increment"]) >= 1
            assert r["blocked"] in {"true", "false"}
            assert (r["rounding"], r["decimals"]) == ("half_up", "4")
            assert INSTANT.match(r["effective_from"])
            assert r["effective_to"] == "" or INSTANT.match(r["effective_to"])
            key = (r["service"], r["prefix"], r["effective_from"])
            assert key not in seen
            seen.add(key)
        services = Counter(r["service"] for r in rows)
        outbound_prefixes = {r["prefix"] for r in rows if r["service"] == "outbound"}
        assert 1_800 <= len(outbound_prefixes) <= 2_300
        share = services["conference_dialout"] / len(outbound_prefixes)
        assert 0.08 <= share <= 0.25
        assert all(r["number_class"] == "tollfree" for r in rows if r["service"] == "tollfree_inbound")
        increments = Counter((r["initial_increment"], r["next_increment"]) for r in rows)
        assert increments.most_common(1)[0][0] == ("60", "60") and len(increments) > 1


def test_versions_do_not_overlap_and_some_change_in_the_window(config):
    _, rows = config["decks"]["retail-usd"]
    versions = defaultdict(list)
    for r in rows:
        end = instant(r["effective_to"]) if r["effective_to"] else None
        versions[(r["service"], r["prefix"])].append((instant(r["effective_from"]), end))
    changes = []
    for windows in versions.values():
        windows.sort()
        assert windows[0][0] == dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
        for (a_from, a_to), (b_from, _) in zip(windows, windows[1:]):
            assert a_to is not None and a_from < a_to <= b_from
            assert a_to == b_from  # the new price starts where the old one ends
            changes.append(b_from)
        assert all(to is None or to > frm for frm, to in windows)
    assert 0.01 * len(versions) <= len(changes) <= 0.04 * len(versions)
    assert any(START < c < END for c in changes) and any(c >= END for c in changes)


def test_decks_share_prefixes_and_differ_in_price():
    usd = gen.generate_deck(3, 1_000, "USD")
    eur = gen.generate_deck(3, 1_000, "EUR")
    assert usd.column_names == list(gen.DECK_COLUMNS)
    assert all(t == pa.string() for t in usd.schema.types)
    for col in ("service", "prefix", "country", "number_class", "effective_from", "effective_to",
                "initial_increment", "next_increment", "blocked"):
        assert usd[col].equals(eur[col]), col
    assert usd["rate"].to_pylist() != eur["rate"].to_pylist()
    assert set(eur["deck"].to_pylist()) == {"retail-eur"}
    assert gen.generate_deck(3, 1_000, "USD").equals(usd)


def test_tenants_currency_matches_their_deck(config):
    deck_currency = {d: rows[0]["currency"] for d, (_, rows) in config["decks"].items()}
    for t in config["tenants"][1]:
        assert t["currency"] == deck_currency[t["deck"]]
        assert (t["currency"] == "EUR") == (t["country"] in gen._EURO)
        assert t["credits_enabled"] in {"true", "false"} and t["auto_recharge"] in {"true", "false"}
        if t["auto_recharge"] == "true":
            assert money(t["trigger_amount"]) > 0 and money(t["recharge_amount"]) > 0
        if t["card_expires"]:
            assert re.match(r"^\d{4}-(0[1-9]|1[0-2])$", t["card_expires"])


def test_many_tenant_countries_and_zipf_sizes():
    config = gen.generate_config(tenants=300, cdrs=150_000, seed=2, prefixes_per_service=1_000)
    countries = Counter(config.tenants["country"].to_pylist())
    assert len(countries) >= 25 and countries.most_common(1)[0][0] == "US"
    users = Counter(config.licenses["tenant_id"].to_pylist())
    sizes = sorted(users.values(), reverse=True)
    assert sizes[0] > 10 * sizes[len(sizes) // 2]  # heavy-tailed


def test_licenses_funds_and_card_updates(config, sample):
    tenants = {t["tenant_id"] for t in config["tenants"][1]}
    credit_tenants = {t["tenant_id"] for t in config["tenants"][1] if t["credits_enabled"] == "true"}
    _, licenses = config["licenses"]
    assert {lic["sku"] for lic in licenses} <= SPEC_SKUS
    location = {}
    for lic in licenses:
        assert lic["tenant_id"] in tenants
        assert lic["user_id"].endswith(f"@{lic['tenant_id']}.example.com")
        assert location.setdefault(lic["user_id"], lic["usage_location"]) == lic["usage_location"]
        if lic["assigned_to"]:
            assert instant(lic["assigned_to"]) > instant(lic["assigned_from"])
    inside = [lic for lic in licenses
              if START < instant(lic["assigned_from"]) < END
              or (lic["assigned_to"] and START < instant(lic["assigned_to"]) < END)]
    assert inside, "some assignments start or end during the month"
    _, funds = config["funds"]
    assert {f["tenant_id"] for f in funds} <= credit_tenants
    expiring = 0
    for f in funds:
        assert money(f["amount"]) > 0
        assert re.match(r"^(EA|PO)-", f["reference"])
        funded = instant(f["funded_at"])
        expires = funded.replace(year=funded.year + 1)
        expiring += START <= expires < END
    assert expiring >= 1
    for u in config["card_updates"][1]:
        assert u["tenant_id"] in tenants and START <= instant(u["updated_at"]) < END


def test_cdr_files_schema_and_counts(sample, cdrs):
    out, _, _ = sample
    for path in (out / "cdrs").glob("*.parquet"):
        assert pq.read_schema(path) == gen.CDR_SCHEMA
    assert cdrs.schema == gen.CDR_SCHEMA
    assert cdrs.num_rows == 20_000
    assert len(set(cdrs["usage_id"].to_pylist())) == 20_000
    times = cdrs["start_time"].to_pylist()
    assert START <= min(times) and max(times) < END
    assert cdrs["duration_seconds"].null_count == 0


def test_cdr_layout_in_files_and_row_groups(tmp_path, monkeypatch):
    monkeypatch.setattr(gen, "_BLOCK_ROWS", 3_000)
    monkeypatch.setattr(gen, "_FILE_ROWS", 6_000)
    result = gen.generate(tmp_path, seed=1, tenants=3, cdrs=14_000, prefixes_per_service=800)
    files = sorted(result.cdr_dir.glob("*.parquet"))
    assert [f.name for f in files] == ["cdrs-00000.parquet", "cdrs-00001.parquet", "cdrs-00002.parquet"]
    assert [pq.ParquetFile(f).metadata.num_row_groups for f in files] == [2, 2, 1]
    assert pq.read_table(result.cdr_dir).num_rows == 14_000
    gen.generate(tmp_path, seed=1, tenants=3, cdrs=10, prefixes_per_service=800)
    assert [f.name for f in result.cdr_dir.glob("*.parquet")] == ["cdrs-00000.parquet"]


def test_zero_cdrs_leave_an_empty_readable_file(tmp_path):
    result = gen.generate(tmp_path, seed=1, tenants=2, cdrs=0, prefixes_per_service=800)
    table = pq.read_table(result.cdr_dir)
    assert table.num_rows == 0 and table.schema == gen.CDR_SCHEMA


def test_call_mix_durations_and_numbers(cdrs, config):
    rows = cdrs.to_pylist()
    types = Counter(r["call_type"] for r in rows)
    assert set(types) <= SPEC_CALL_TYPES and types.most_common(1)[0][0] == "user_out"
    assert {"user_in", "conf_out", "conf_in", "ucap_out", "ucap_in", "unassigned_in"} <= set(types)
    tollfree = [r for r in rows if r["number_type"] == "tollfree"]
    assert 0.05 <= len(tollfree) / len(rows) <= 0.15
    assert {r["call_type"] for r in tollfree} <= {"user_in", "conf_in", "ucap_in"}
    assert len({normalise(r["caller_number"])[:2] for r in tollfree}) > 5  # callers from many countries
    zero = sum(r["duration_seconds"] == 0 for r in rows) / len(rows)
    assert 0.015 <= zero <= 0.05
    positive = sorted(r["duration_seconds"] for r in rows if r["duration_seconds"] > 0)
    assert 60 <= positive[len(positive) // 2] <= 600
    masked = sum("*" in r["callee_number"] or "*" in r["caller_number"] for r in rows) / len(rows)
    assert 0.003 <= masked <= 0.03
    plain = sum(r["callee_number"].startswith("+") for r in rows) / len(rows)
    assert 0.75 <= plain <= 0.97
    assert any(" " in r["callee_number"] for r in rows) and any("-" in r["callee_number"] for r in rows)
    for r in rows:
        for number in (r["caller_number"], r["callee_number"]):
            digits = normalise(number).rstrip("*")
            assert digits.isdigit() and len(normalise(number)) <= 15, number
        assert (r["user_id"] is None) == (r["call_type"] == "unassigned_in")
        in_conference = r["call_type"] in {"conf_in", "conf_out", "user_out_conf"}
        assert (r["conference_id"] is not None) == in_conference


def test_rated_numbers_mostly_match_the_deck(cdrs, config):
    _, deck = config["decks"]["retail-usd"]
    outbound = {r["prefix"] for r in deck if r["service"] == "outbound"}
    tollfree = {r["prefix"] for r in deck if r["service"] == "tollfree_inbound"}
    rated = unmatched = emergency = 0
    for r in cdrs.to_pylist():
        if r["call_type"] in OUTBOUND_TYPES:
            number, prefixes = r["callee_number"], outbound
        elif r["number_type"] == "tollfree":
            number, prefixes = r["caller_number"], tollfree
        else:
            continue
        rated += 1
        digits = normalise(number).rstrip("*")
        if digits in EMERGENCY_NUMBERS:
            emergency += 1
        elif longest_prefix(digits, prefixes) is None:
            unmatched += 1
    assert 0.0005 <= unmatched / rated <= 0.01  # a tiny share matches no prefix
    assert emergency <= 0.005 * rated


def test_cdr_users_are_licensed_users_of_their_tenant(cdrs, config):
    _, licenses = config["licenses"]
    users = {(lic["tenant_id"], lic["user_id"]) for lic in licenses}
    for tenant, user in zip(cdrs["tenant_id"].to_pylist(), cdrs["user_id"].to_pylist()):
        assert user is None or (tenant, user) in users
    per_tenant = Counter(cdrs["tenant_id"].to_pylist())
    counts = sorted(per_tenant.values(), reverse=True)
    assert counts[0] > 3 * counts[-1]  # Zipf-sized tenants


def test_generate_cdrs_in_memory_matches_files(sample, cdrs):
    config = gen.generate_config(seed=7, **SMALL)
    batches = list(gen.generate_cdrs(config))
    assert pa.Table.from_batches(batches, schema=gen.CDR_SCHEMA).equals(cdrs)
    assert list(gen.generate_cdrs(config, 5_000, threads=1)) != []


def test_money_formatting_is_exact():
    import numpy as np

    text = gen._format_money(np.array([0, 1, 100, 12_340_000, 1_234_567_891], np.int64), 4).to_pylist()
    assert text == ["0.0000", "0.000001", "0.0001", "12.3400", "1234.567891"]
    text = gen._format_money(np.array([50_000_000, 1_500_000], np.int64), 2).to_pylist()
    assert text == ["50.00", "1.50"]
    with pytest.raises(ValueError):
        gen._format_money(np.array([-1], np.int64), 2)


def test_csv_quoting_round_trips(tmp_path):
    table = pa.table({"a": ["x", 'say "hi"', None, "1,2"], "b": ["line\nbreak", "", "z", "ok"]})
    gen._write_csv(table, tmp_path / "t.csv")
    header, rows = read_csv(tmp_path / "t.csv")
    assert header == ["a", "b"]
    assert [(r["a"], r["b"]) for r in rows] == [
        ("x", "line\nbreak"), ('say "hi"', ""), ("", "z"), ("1,2", "ok")]


def test_number_pattern_automaton():
    p = gen._Pattern(r"7(?:[1-3]\d|4[0-46-9])\d{6}|8(?:00|44)[2-9]\d{2,3}")
    assert p.viable("7") and p.viable("744") and not p.viable("745")
    assert p.viable("8442") and not p.viable("8441") and not p.viable("9")
    assert p.viable("71" + "1" * 7) and not p.viable("71" + "1" * 8)  # 9 digits at most
    assert gen._Pattern("74576|(?:16|7[56])24").leads("16245")
    assert gen._Pattern("787|939").leads("78") and not gen._Pattern("787|939").leads("79")
    with pytest.raises(ValueError):
        gen._Pattern("7(?=1)")
