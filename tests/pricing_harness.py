"""Price CDRs through the kernel and through the reference, comparably."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pyarrow as pa

from ratecore import pricing
from ratecore.deck import RateBook
from ratecore.reference import pricing as ref

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def reference_rows(book: RateBook) -> list[ref.DeckRow]:
    """The validated deck rows of a RateBook as reference DeckRows."""
    out = []
    for r in book.rows.to_pylist():
        to = None if r["effective_to"] == np.iinfo(np.int64).max else \
            EPOCH + timedelta(microseconds=r["effective_to"])
        out.append(ref.DeckRow(
            r["deck"], r["currency"], r["service"], r["prefix"], r["country"],
            r["destination"], r["number_class"], Decimal(r["rate"]).scaleb(-6),
            Decimal(r["connect_fee"]).scaleb(-6), r["initial_increment"], r["next_increment"],
            Decimal(r["min_charge"]).scaleb(-6), bool(r["blocked"]),
            EPOCH + timedelta(microseconds=r["effective_from"]), to, r["rounding"], r["decimals"]))
    return out




def kernel_price(book: RateBook, cdrs: list[dict], deck_ids=None, threads=1):
    """Kernel results as (status, prefix, billable, charge Decimal) per CDR.

    Rejects come back as ("reject", reason, 0, 0).
    """
    n = len(cdrs)
    deck_ids = deck_ids or ["d1"] * n
    deck = np.array([book.deck_index[d] for d in deck_ids], dtype=np.int16)
    start = pa.array([c["start_time"] for c in cdrs], pa.timestamp("us", tz="UTC"))
    args = {
        "call_type": pricing.call_type_codes(pa.array([c["call_type"] for c in cdrs],
                                                      pa.string())),
        "tollfree": pricing.tollfree_flags(pa.array([c.get("number_type") for c in cdrs],
                                                    pa.string())),
        "deck": deck, "caller": pa.array([c.get("caller_number") for c in cdrs], pa.string()),
        "callee": pa.array([c.get("callee_number") for c in cdrs], pa.string()),
        "start": start, "duration": pa.array([c["duration_seconds"] for c in cdrs], pa.int64()),
        "threads": threads}
    p = pricing.price(book, **args)
    # a billed run prices without the full charge: everything else the same
    q = pricing.price(book, **args, out=pricing.allocate(n + 3, charge=False), charge=False)
    assert q.charge is None
    for name in ("status", "service", "row", "billable"):
        assert getattr(q, name).tolist() == getattr(p, name).tolist(), name
    return [_kernel_result(book, p, i) for i in range(n)], p


def _kernel_result(book, p, i):
    s = int(p.status[i])
    if s < 0:
        return ("reject", pricing.KERNEL_REJECTS[s], 0, Decimal(0))
    prefix = book.rows.column("prefix")[int(p.row[i])].as_py() if p.row[i] >= 0 else None
    return (pricing.STATUSES[s], prefix, int(p.billable[i]), Decimal(int(p.charge[i])).scaleb(-6))


def reference_price(rows: list[ref.DeckRow], cdrs: list[dict], deck_ids=None):
    deck_ids = deck_ids or ["d1"] * len(cdrs)
    out = []
    for c, d in zip(cdrs, deck_ids):
        r = ref.price_cdr(rows, d, call_type=c["call_type"], number_type=c.get("number_type"),
                          caller=c.get("caller_number"), callee=c.get("callee_number"),
                          start=c["start_time"], duration=c["duration_seconds"])
        if r.status == "reject":
            out.append(("reject", r.reason, 0, Decimal(0)))
        else:
            out.append((r.status, r.row.prefix if r.row else None, r.billable_seconds,
                        r.charge))
    return out


def both(book: RateBook, cdrs: list[dict]):
    """Kernel and reference results; asserts they agree and returns them."""
    k, _ = kernel_price(book, cdrs)
    r = reference_price(reference_rows(book), cdrs)
    assert k == r
    return k
