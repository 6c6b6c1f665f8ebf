"""Property tests: the pricing kernel equals the plain-Python reference.

Random decks (nested prefixes, several effective-dated versions with gaps,
every increment shape, rounding mode and number of decimals, blocked rows,
three services) and random CDRs (formatted, masked, malformed and missing
numbers, every call type, zero durations, start times on version
boundaries), passed to the kernel as sliced Arrow arrays with nulls.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest
from conftest import DECK_HEADER, write_csv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratecore import pricing
from ratecore.deck import ROUNDINGS, SERVICES, load_rate_book
from ratecore.reference import pricing as ref

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
BOUNDARIES = [T0 + timedelta(days=d, seconds=s) for d, s in
              [(0, 0), (10, 0), (10, 1), (20, 43200), (31, 0), (45, 7)]]
DIGITS = "1247"  # a small alphabet makes nested prefixes and shared digits likely
CALL_TYPES = list(pricing.CALL_TYPES) + ["bogus"]


def money(max_units: int):
    return st.builds(lambda micro: Decimal(micro).scaleb(-6),
                     st.integers(0, max_units * 10**6))


@st.composite
def decks(draw):
    rows: list[ref.DeckRow] = []
    for deck, currency in (("d1", "USD"), ("d2", "EUR"))[: draw(st.integers(1, 2))]:
        rounding = draw(st.sampled_from(ROUNDINGS))
        decimals = draw(st.integers(0, 6))
        keys = draw(st.sets(st.tuples(st.sampled_from(SERVICES),
                                      st.text(DIGITS, min_size=1, max_size=6)),
                            min_size=1, max_size=25))
        for service, prefix in sorted(keys):
            # 1-3 versions from sorted boundaries, possibly with gaps, last maybe open
            picks = sorted(draw(st.sets(st.sampled_from(range(len(BOUNDARIES))),
                                        min_size=1, max_size=4)))
            windows = list(zip(picks, picks[1:]))
            if draw(st.booleans()) or not windows:
                windows.append((picks[-1], None))
            for k, (a, b) in enumerate(windows):
                if k and draw(st.integers(0, 4)) == 0:
                    continue  # a gap in the versions
                rows.append(ref.DeckRow(
                    deck, currency, service, prefix, "GB", f"{service} {prefix}",
                    draw(st.sampled_from(["geographic", "mobile", "premium"])),
                    draw(money(20)), draw(st.one_of(st.just(Decimal(0)), money(1))),
                    draw(st.sampled_from([1, 6, 30, 60, 13, 3600])),
                    draw(st.sampled_from([1, 6, 60, 7])),
                    draw(st.one_of(st.just(Decimal(0)), money(1))),
                    draw(st.integers(0, 9)) == 0,
                    BOUNDARIES[a], BOUNDARIES[b] if b is not None else None,
                    rounding, decimals))
    return rows


@st.composite
def numbers(draw, rows):
    prefixes = sorted({r.prefix for r in rows}) or ["1"]
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.one_of(st.none(), st.sampled_from(["", " ", "+", "abc", "911", "112",
                                                           "000", "*1", "1+2", "++1"])))
    digits = draw(st.sampled_from(prefixes)) if kind < 8 else ""
    digits += draw(st.text(DIGITS + "0", max_size=16 - len(digits)))
    if not digits:
        digits = "4"
    masked = draw(st.integers(0, 4)) if kind == 7 else 0
    text = digits[: max(1, len(digits) - masked)] + "*" * masked
    if draw(st.booleans()):
        text = "+" + text
    if draw(st.integers(0, 4)) == 0:
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.sampled_from([" ", "-", " - "])) + text[cut:]
    return text


@st.composite
def cdr_lists(draw, rows):
    n = draw(st.integers(0, 40))
    out = []
    for _ in range(n):
        start = draw(st.sampled_from(BOUNDARIES)) + timedelta(
            microseconds=draw(st.sampled_from([-1, 0, 1, 3_600_000_000])))
        out.append({
            "deck": draw(st.sampled_from(sorted({r.deck for r in rows}))),
            "call_type": draw(st.sampled_from(CALL_TYPES)),
            "number_type": draw(st.sampled_from([None, "user", "tollfree", "TollFree", "service"])),
            "caller_number": draw(numbers(rows)),
            "callee_number": draw(numbers(rows)),
            "start_time": start,
            "duration_seconds": draw(st.one_of(st.just(0), st.integers(0, 100_000),
                                               st.integers(0, 130))),
        })
    return out


def write_deck_csv(path, rows):
    def cell(v):
        if v is None:
            return ""
        if isinstance(v, datetime):
            return v.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)
    return write_csv(path, DECK_HEADER, [
        {k: cell(getattr(r, k)) for k in DECK_HEADER} for r in rows])


def sliced(values, typ, pad=3):
    """`values` as a slice of a larger array (non-zero offset, with nulls)."""
    return pa.array([None] * pad + list(values) + ["junk" if typ == pa.string() else None] * pad,
                    typ).slice(pad, len(values))


def expected(rows, c):
    if c["call_type"] not in ref.ALL_TYPES:
        return None  # rejected before the kernel (unknown call type)
    r = ref.price_cdr(rows, c["deck"], call_type=c["call_type"], number_type=c["number_type"],
                      caller=c["caller_number"], callee=c["callee_number"],
                      start=c["start_time"], duration=c["duration_seconds"])
    if r.status == "reject":
        return ("reject", r.reason)
    return (r.status, r.row.deck if r.row else None, r.row.service if r.row else None,
            r.row.prefix if r.row else None, r.row.effective_from if r.row else None,
            r.billable_seconds, r.charge)


def actual(book, p, i):
    s = int(p.status[i])
    if s == pricing.SKIPPED:
        return None
    if s < 0:
        return ("reject", pricing.KERNEL_REJECTS[s])
    row = book.rows.slice(int(p.row[i]), 1).to_pylist()[0] if p.row[i] >= 0 else None
    return (pricing.STATUSES[s], row["deck"] if row else None, row["service"] if row else None,
            row["prefix"] if row else None,
            T0 + timedelta(microseconds=row["effective_from"] - int(T0.timestamp() * 10**6))
            if row else None, int(p.billable[i]), Decimal(int(p.charge[i])).scaleb(-6))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_kernel_equals_reference(tmp_path_factory, data):
    rows = data.draw(decks())
    cdrs = data.draw(cdr_lists(rows))
    book = load_rate_book(write_deck_csv(tmp_path_factory.mktemp("deck") / "deck.csv", rows))
    codes = pricing.call_type_codes(pa.array([c["call_type"] for c in cdrs], pa.string()))
    deck = np.array([book.deck_index[c["deck"]] if code >= 0 else -1
                     for c, code in zip(cdrs, codes)], dtype=np.int16)
    args = {
        "call_type": codes,
        "tollfree": pricing.tollfree_flags(sliced([c["number_type"] for c in cdrs], pa.string())),
        "deck": deck,
        "caller": sliced([c["caller_number"] for c in cdrs], pa.string()),
        "callee": sliced([c["callee_number"] for c in cdrs], pa.string()),
        "start": sliced([c["start_time"] for c in cdrs], pa.timestamp("us", tz="UTC")),
        "duration": sliced([c["duration_seconds"] for c in cdrs], pa.int64())}
    p = pricing.price(book, **args)
    for i, c in enumerate(cdrs):
        assert actual(book, p, i) == expected(rows, c), c
    # without the full charge (a billed run), every other output is the same
    q = pricing.price(book, **args, charge=False)
    assert q.charge is None
    for name in ("status", "service", "row", "billable"):
        assert getattr(q, name).tolist() == getattr(p, name).tolist(), name


@settings(max_examples=60, deadline=None)
@given(d=st.integers(0, 10**6), i1=st.integers(1, 86400), i2=st.integers(1, 86400),
       rate=st.integers(0, 999_999_999_999), fee=st.integers(0, 999_999_999_999),
       minimum=st.integers(0, 999_999_999_999), rounding=st.sampled_from(ROUNDINGS),
       decimals=st.integers(0, 6))
def test_extreme_prices_do_not_overflow(tmp_path_factory, d, i1, i2, rate, fee, minimum,
                                        rounding, decimals):
    """Largest accepted prices and durations stay exact in int64 micro-units."""
    row = ref.DeckRow("d1", "USD", "outbound", "4", "GB", "x", "geographic",
                      Decimal(rate).scaleb(-6), Decimal(fee).scaleb(-6), i1, i2,
                      Decimal(minimum).scaleb(-6), False, T0, None, rounding, decimals)
    book = load_rate_book(write_deck_csv(tmp_path_factory.mktemp("deck") / "deck.csv", [row]))
    c = {"deck": "d1", "call_type": "user_out", "number_type": None, "caller_number": None,
         "callee_number": "+44", "start_time": T0, "duration_seconds": d}
    p = pricing.price(book, call_type=pricing.call_type_codes(pa.array(["user_out"])),
                      tollfree=np.zeros(1, np.uint8), deck=np.zeros(1, np.int16),
                      caller=pa.array([None], pa.string()), callee=pa.array(["+44"]),
                      start=pa.array([T0], pa.timestamp("us", tz="UTC")),
                      duration=pa.array([d], pa.int64()))
    assert actual(book, p, 0) == expected([row], c)


def test_charge_asked_for_into_buffers_without_it_is_refused(tmp_path_factory):
    row = ref.DeckRow("d1", "USD", "outbound", "4", "GB", "x", "geographic", Decimal("0.01"),
                      Decimal(0), 60, 60, Decimal(0), False, T0, None, "half_up", 4)
    book = load_rate_book(write_deck_csv(tmp_path_factory.mktemp("deck") / "deck.csv", [row]))
    with pytest.raises(ValueError, match="no charge array"):
        pricing.price(book, call_type=pricing.call_type_codes(pa.array(["user_out"])),
                      tollfree=np.zeros(1, np.uint8), deck=np.zeros(1, np.int16),
                      caller=pa.array([None], pa.string()), callee=pa.array(["+44"]),
                      start=pa.array([T0], pa.timestamp("us", tz="UTC")),
                      duration=pa.array([60], pa.int64()), out=pricing.allocate(1, charge=False))
