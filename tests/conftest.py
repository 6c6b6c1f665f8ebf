"""Small builders for decks, tenants and CDRs written to a temporary directory."""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

DECK_HEADER = ["deck", "currency", "service", "prefix", "country", "destination",
               "number_class", "rate", "connect_fee", "initial_increment", "next_increment",
               "min_charge", "blocked", "effective_from", "effective_to", "rounding", "decimals"]


def deck_row(prefix, rate="0.0600", **kw):
    row = {"deck": "d1", "currency": "USD", "service": "outbound", "prefix": prefix,
           "country": "GB", "destination": f"Dest {prefix}", "number_class": "",
           "rate": rate, "connect_fee": "", "initial_increment": "", "next_increment": "",
           "min_charge": "", "blocked": "", "effective_from": "2024-01-01",
           "effective_to": "", "rounding": "", "decimals": ""}
    row.update({k: str(v) for k, v in kw.items()})
    return row


def write_csv(path: Path, header, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return path


def write_deck(path: Path, rows) -> Path:
    return write_csv(path, DECK_HEADER, rows)


def write_config(root: Path, deck_rows, tenants=None) -> Path:
    """config/ with decks/deck.csv and tenants.csv (tenant t1 on deck d1).

    Every tenant may spend credits and has plenty: its user ``u1@<tenant>.example``
    holds MCOPSTNPP and the tenant is funded with 1,000,000 every 1 January of
    2019-2030 (lots expire after 12 months), so a rated call is ``charged``
    its full price (the pricing tests' view)."""
    config = root / "config"
    write_deck(config / "decks" / "deck.csv", deck_rows)
    tenants = tenants or [{"tenant_id": "t1", "name": "Contoso", "country": "US",
                           "currency": "USD", "deck": "d1"}]
    tenants = [{"credits_enabled": "true", **t} for t in tenants]
    write_csv(config / "tenants.csv", ["tenant_id", "name", "country", "currency", "deck",
                                       "credits_enabled"], tenants)
    ids = [t["tenant_id"] for t in tenants if t.get("tenant_id")]
    write_csv(config / "licenses.csv", LICENSE_HEADER, [
        {"tenant_id": t, "user_id": f"u1@{t}.example", "usage_location": "US",
         "sku": "MCOPSTNPP", "assigned_from": "2020-01-01", "assigned_to": ""}
        for t in dict.fromkeys(ids)])
    write_csv(config / "funds.csv", FUND_HEADER, [
        {"tenant_id": t, "funded_at": f"{year}-01-01", "amount": "1000000",
         "reference": f"EA-{year}"} for t in dict.fromkeys(ids) for year in range(2019, 2031)])
    return config


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def cdr(usage_id, callee, duration, start="2024-03-01T10:00:00Z", call_type="user_out",
        caller="+12065550100", tenant="t1", number_type="user", user="u1@t1.example"):
    return {"usage_id": usage_id, "tenant_id": tenant, "user_id": user, "call_type": call_type,
            "caller_number": caller, "callee_number": callee, "number_type": number_type,
            "start_time": ts(start), "duration_seconds": duration,
            "call_id": f"c-{usage_id}", "conference_id": None}


def write_cdrs(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("usage_id", pa.string()), ("tenant_id", pa.string()),
                        ("user_id", pa.string()), ("call_type", pa.string()),
                        ("caller_number", pa.string()), ("callee_number", pa.string()),
                        ("number_type", pa.string()),
                        ("start_time", pa.timestamp("us", tz="UTC")),
                        ("duration_seconds", pa.int64()), ("call_id", pa.string()),
                        ("conference_id", pa.string())])
    pq.write_table(pa.Table.from_pylist(list(rows), schema=schema), path)
    return path


@pytest.fixture
def tmp(tmp_path):
    return tmp_path


TENANT_HEADER = ["tenant_id", "name", "country", "currency", "deck", "credits_enabled",
                 "auto_recharge", "trigger_amount", "recharge_amount", "card_expires"]
LICENSE_HEADER = ["tenant_id", "user_id", "usage_location", "sku", "assigned_from", "assigned_to"]
FUND_HEADER = ["tenant_id", "funded_at", "amount", "reference"]
CARD_UPDATE_HEADER = ["tenant_id", "updated_at", "card_expires"]


def tenant_row(tenant_id="t1", **kw):
    """A tenants.csv row with every column of SPEC §6 (credits on, no auto-recharge)."""
    row = {"tenant_id": tenant_id, "name": f"Tenant {tenant_id}", "country": "US",
           "currency": "USD", "deck": "d1", "credits_enabled": "true", "auto_recharge": "false",
           "trigger_amount": "", "recharge_amount": "", "card_expires": ""}
    row.update({k: str(v) for k, v in kw.items()})
    return row


def license_row(user="u1@t1.example", sku="MCOPSTN1", tenant="t1", location="US",
                assigned_from="2024-01-01", assigned_to=""):
    return {"tenant_id": tenant, "user_id": user, "usage_location": location, "sku": sku,
            "assigned_from": assigned_from, "assigned_to": assigned_to}


def fund_row(amount="100", funded_at="2024-01-01", tenant="t1", reference=""):
    return {"tenant_id": tenant, "funded_at": funded_at, "amount": str(amount),
            "reference": reference}


def write_billing_files(config: Path, licenses=(), funds=(), card_updates=None) -> Path:
    """licenses.csv and funds.csv (a header alone when empty) in `config`, and
    card_updates.csv when rows are given."""
    write_csv(config / "licenses.csv", LICENSE_HEADER, licenses)
    write_csv(config / "funds.csv", FUND_HEADER, funds)
    if card_updates is not None:
        write_csv(config / "card_updates.csv", CARD_UPDATE_HEADER, card_updates)
    return config
