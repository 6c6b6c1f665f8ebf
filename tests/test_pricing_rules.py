"""Hand-computed cases for each rule of SPEC §1–§4, checked on the kernel and
the reference alike (``both`` asserts they agree, then we check the value)."""

from decimal import Decimal as D

import pytest
from conftest import cdr, deck_row, write_deck
from pricing_harness import both, kernel_price

from ratecore.deck import load_rate_book


def book_of(tmp, rows):
    return load_rate_book(write_deck(tmp / "deck.csv", rows))


# --- §3 charging -----------------------------------------------------------

def test_spec_example_30_6(tmp):
    """SPEC §3: 30/6 at 0.0600/min: 57 s bills 60 s = 0.0600; 75 s bills 78 s = 0.0780."""
    book = book_of(tmp, [deck_row("44", "0.0600", initial_increment=30, next_increment=6)])
    r = both(book, [cdr("a", "+442079460000", 57), cdr("b", "+442079460000", 75)])
    assert r[0] == ("charged", "44", 60, D("0.0600"))
    assert r[1] == ("charged", "44", 78, D("0.0780"))


@pytest.mark.parametrize("d, i1, i2, billable", [
    (1, 60, 60, 60), (60, 60, 60, 60), (61, 60, 60, 120), (1, 1, 1, 1), (59, 1, 1, 59),
    (30, 30, 6, 30), (31, 30, 6, 36), (36, 30, 6, 36), (37, 30, 6, 42), (3600, 60, 60, 3600),
])
def test_billable_seconds(tmp, d, i1, i2, billable):
    book = book_of(tmp, [deck_row("44", "6", initial_increment=i1, next_increment=i2)])
    r = both(book, [cdr("a", "+44207946", d)])
    # 6.0000/min = 0.1 per second: the charge shows the billable seconds too
    assert r[0] == ("charged", "44", billable, D(billable) / 10)


def test_connect_fee_and_min_charge(tmp):
    book = book_of(tmp, [
        deck_row("44", "0.0100", connect_fee="0.0500"),
        deck_row("33", "0.0100", min_charge="0.2500"),
    ])
    r = both(book, [cdr("a", "+44207946", 90), cdr("b", "+33140000", 90),
                    cdr("c", "+33140000", 3600)])
    assert r[0][3] == D("0.0700")   # 0.05 + 0.01 * 120 / 60
    assert r[1][3] == D("0.2500")   # 0.02 raised to the minimum
    assert r[2][3] == D("0.6000")   # above the minimum


@pytest.mark.parametrize("rounding, decimals, expected", [
    # 0.00125 * 7 s / 1 s-increments: amount = 0.0125 * 7 / 60 = 0.001458333…
    ("half_up", 4, "0.0015"), ("down", 4, "0.0014"), ("up", 4, "0.0015"),
    ("half_even", 4, "0.0015"), ("half_up", 6, "0.001458"), ("up", 6, "0.001459"),
    ("up", 0, "1"), ("down", 0, "0"), ("half_up", 2, "0.00"),
])
def test_rounding_modes(tmp, rounding, decimals, expected):
    book = book_of(tmp, [deck_row("44", "0.0125", initial_increment=1, next_increment=1,
                                  rounding=rounding, decimals=decimals)])
    assert both(book, [cdr("a", "+44207946", 7)])[0][3] == D(expected)


@pytest.mark.parametrize("rounding, expected", [
    ("half_up", "0.0002"), ("half_even", "0.0002"), ("down", "0.0001"), ("up", "0.0002"),
])
def test_rounding_exact_half(tmp, rounding, expected):
    """0.0090/min for 1 s = 0.00015 exactly: the half case of each mode."""
    book = book_of(tmp, [deck_row("44", "0.0090", initial_increment=1, next_increment=1,
                                  rounding=rounding)])
    assert both(book, [cdr("a", "+44207946", 1)])[0][3] == D(expected)


def test_half_even_rounds_to_even(tmp):
    """0.0150/min for 1 s = 0.00025: half_even gives 0.0002, half_up 0.0003."""
    book = book_of(tmp, [deck_row("44", "0.0150", initial_increment=1, next_increment=1,
                                  rounding="half_even"),
                         deck_row("44", "0.0150", deck="d2", initial_increment=1,
                                  next_increment=1)])
    assert both(book, [cdr("a", "+44207946", 1)])[0][3] == D("0.0002")
    k, _ = kernel_price(book, [cdr("a", "+44207946", 1)], deck_ids=["d2"])
    assert k[0][3] == D("0.0003")


# --- §2 row selection -------------------------------------------------------

def test_longest_prefix_wins(tmp):
    book = book_of(tmp, [deck_row("44", "0.01"), deck_row("447", "0.10"),
                         deck_row("4479", "0.20"), deck_row("4", "0.50")])
    r = both(book, [cdr("a", "+447912345678", 60), cdr("b", "+447712345678", 60),
                    cdr("c", "+442012345678", 60), cdr("d", "+452012345678", 60),
                    cdr("e", "+12012345678", 60)])
    assert [x[1] for x in r] == ["4479", "447", "44", "4", None]
    assert r[4][0] == "no_rate"


def test_effective_dates_inclusive_from_exclusive_to(tmp):
    book = book_of(tmp, [
        deck_row("44", "0.0100", effective_from="2024-01-01", effective_to="2024-03-01T12:00:00Z"),
        deck_row("44", "0.0200", effective_from="2024-03-01T12:00:00Z"),
    ])
    r = both(book, [cdr("a", "+4420", 60, start="2024-03-01T11:59:59.999999Z"),
                    cdr("b", "+4420", 60, start="2024-03-01T12:00:00Z"),
                    cdr("c", "+4420", 60, start="2023-12-31T23:59:59Z")])
    assert [x[3] for x in r] == [D("0.0100"), D("0.0200"), D(0)]
    assert r[2][0] == "no_rate"


def test_fallback_to_shorter_prefix_when_longest_not_effective(tmp):
    """The 447 breakout starts in June: before that, 44 rates mobile numbers."""
    book = book_of(tmp, [deck_row("44", "0.0100"),
                         deck_row("447", "0.1000", effective_from="2024-06-01"),
                         deck_row("4479", "0.2000", effective_to="2024-02-01")])
    r = both(book, [cdr("a", "+447912345", 60, start="2024-03-01T00:00:00Z"),
                    cdr("b", "+447912345", 60, start="2024-07-01T00:00:00Z"),
                    cdr("c", "+447912345", 60, start="2024-01-15T00:00:00Z")])
    assert [x[1] for x in r] == ["44", "447", "4479"]


def test_conference_falls_back_to_outbound(tmp):
    book = book_of(tmp, [deck_row("44", "0.0100"),
                         deck_row("44", "0.0300", service="conference_dialout"),
                         deck_row("33", "0.0500")])
    r = both(book, [cdr("a", "+4420", 60, call_type="conf_out"),
                    cdr("b", "+3314", 60, call_type="conf_out"),
                    cdr("c", "+4420", 60, call_type="user_out")])
    assert [x[3] for x in r] == [D("0.0300"), D("0.0500"), D("0.0100")]


def test_masked_number_rated_on_known_digits(tmp):
    book = book_of(tmp, [deck_row("44", "0.0100"), deck_row("44207", "0.0200"),
                         deck_row("4420794", "0.0300")])
    r = both(book, [cdr("a", "+44207****", 60), cdr("b", "+4420794****", 60),
                    cdr("c", "+44 20 7*** ****", 60), cdr("d", "+442****", 60)])
    # a masked digit can never match a longer prefix
    assert [x[1] for x in r] == ["44207", "4420794", "44207", "44"]


def test_short_number_does_not_match_longer_prefix(tmp):
    book = book_of(tmp, [deck_row("1", "0.0100"), deck_row("1800", "0.0200")])
    r = both(book, [cdr("a", "180", 60), cdr("b", "18005550100", 60)])
    assert [x[1] for x in r] == ["1", "1800"]


# --- §1 numbers and §4 classification ---------------------------------------

@pytest.mark.parametrize("number, ok", [
    ("+44 20 7946 0000", True), ("44-20-7946-0000", True), ("+4420794600*0", False),
    ("4420794600000000", False), ("+442079460000000", True), ("+44(20)7946", False),
    ("++4420", False), ("44+20", False), ("+", False), ("abc", False), ("*44", False),
    ("4420794600000**", True), ("4420794600000***", False),
])
def test_number_normalisation(tmp, number, ok):
    book = book_of(tmp, [deck_row("44", "0.0100")])
    r = both(book, [cdr("a", number, 60)])
    assert (r[0][0] == "charged") == ok
    if not ok:
        assert r[0] == ("reject", "bad_number", 0, D(0))


@pytest.mark.parametrize("number", [None, "", "   ", " - "])
def test_missing_number_for_rated_call_is_reject(tmp, number):
    book = book_of(tmp, [deck_row("44", "0.0100")])
    assert both(book, [cdr("a", number, 60)])[0] == ("reject", "missing_number", 0, D(0))


@pytest.mark.parametrize("call_type", ["user_out", "user_out_conf", "user_out_transfer",
                                       "user_out_forwarding", "ucap_out", "conf_out"])
def test_outbound_types_rate_callee(tmp, call_type):
    book = book_of(tmp, [deck_row("44", "0.0100")])
    r = both(book, [cdr("a", "+4420", 60, call_type=call_type, caller="+330000")])
    assert r[0] == ("charged", "44", 60, D("0.0100"))


@pytest.mark.parametrize("call_type", ["user_in", "conf_in", "ucap_in"])
def test_tollfree_inbound_rates_caller(tmp, call_type):
    book = book_of(tmp, [deck_row("44", "0.0100"),
                         deck_row("33", "0.0400", service="tollfree_inbound",
                                  number_class="tollfree")])
    r = both(book, [cdr("a", "+18005550100", 60, call_type=call_type, caller="+33140000",
                        number_type="tollfree"),
                    cdr("b", "+18005550100", 60, call_type=call_type, caller="+33140000",
                        number_type="user")])
    assert r[0] == ("charged", "33", 60, D("0.0400"))
    assert r[1] == ("free", None, 0, D(0))


def test_inbound_free_even_with_bad_numbers(tmp):
    book = book_of(tmp, [deck_row("44", "0.0100")])
    r = both(book, [cdr("a", "garbage", 60, call_type="user_in", caller=None),
                    cdr("b", None, 60, call_type="unassigned_in", number_type="tollfree"),
                    cdr("c", None, 60, call_type="emergency_out")])
    assert all(x == ("free", None, 0, D(0)) for x in r)


@pytest.mark.parametrize("number", ["911", "112", "999", "000", "110", "119", "118", "+911"])
def test_emergency_numbers_are_free(tmp, number):
    book = book_of(tmp, [deck_row("9", "1.0000"), deck_row("1", "1.0000"),
                         deck_row("0", "1.0000")])
    assert both(book, [cdr("a", number, 60)])[0] == ("free", None, 0, D(0))


def test_masked_or_longer_numbers_are_not_emergency(tmp):
    book = book_of(tmp, [deck_row("9", "1.0000")])
    r = both(book, [cdr("a", "91*", 60), cdr("b", "9110", 60)])
    assert [x[0] for x in r] == ["charged", "charged"]


def test_status_precedence(tmp):
    """free > zero_duration > no_rate > blocked_destination > charged."""
    book = book_of(tmp, [deck_row("44", "0.0100"), deck_row("449", "1.0", blocked="true")])
    r = both(book, [
        cdr("free", "+4420", 0, call_type="user_in"),
        cdr("zero-norate", "+3320", 0),
        cdr("zero-blocked", "+44900", 0),
        cdr("norate", "+3320", 60),
        cdr("blocked", "+44900", 60),
    ])
    assert [x[0] for x in r] == ["free", "zero_duration", "zero_duration", "no_rate",
                                 "blocked_destination"]
    # a blocked call has no billable seconds: the network never connects it
    assert r[4] == ("blocked_destination", "449", 0, D(0))


def test_kernel_threads_agree(tmp):
    book = book_of(tmp, [deck_row("44", "0.0100"), deck_row("447", "0.1000")])
    cdrs = [cdr(str(i), f"+44{7 if i % 3 else 2}0{i:07d}", i % 500) for i in range(300_000)]
    one, p1 = kernel_price(book, cdrs[:1000])
    many, p2 = kernel_price(book, cdrs, threads=2)
    assert many[:1000] == one


def test_kernel_leaves_inputs_alone_and_writes_into_given_buffers(tmp):
    import numpy as np
    import pyarrow as pa

    from ratecore import pricing

    book = book_of(tmp, [deck_row("44", "0.0100")])
    callee = pa.array(["+4420", None, "bad", "+4479"] * 3).slice(2, 8)
    start = pa.array([1709251200 * 10**6] * 12, pa.timestamp("us", tz="UTC")).slice(2, 8)
    duration = pa.array(list(range(12)), pa.int64()).slice(2, 8)
    codes = pricing.call_type_codes(pa.array(["user_out"] * 8))
    before = (callee.to_pylist(), start.to_pylist(), duration.to_pylist(), codes.copy())
    out = pricing.allocate(16)
    p = pricing.price(book, call_type=codes, tollfree=np.zeros(8, np.uint8),
                      deck=np.zeros(8, np.int16), caller=pa.nulls(8, pa.string()),
                      callee=callee, start=start, duration=duration, out=out)
    assert (callee.to_pylist(), start.to_pylist(), duration.to_pylist()) == before[:3]
    assert (codes == before[3]).all()
    for got, buf in zip((p.status, p.service, p.row, p.billable, p.charge),
                        (out.status, out.service, out.row, out.billable, out.charge)):
        assert np.shares_memory(got, buf) and len(got) == 8
    assert p.status.tolist() == [-2, 4, 4, -1, -2, 4, 4, -1]
    assert p.billable.tolist()[1:3] == [60, 60]


def test_compiled_deck_is_read_only(tmp):
    book = book_of(tmp, [deck_row("44", "0.0100")])
    with pytest.raises(ValueError):
        book.row_terms["rate"][0] = 1


def test_empty_batch(tmp):
    import numpy as np
    import pyarrow as pa

    from ratecore import pricing

    book = book_of(tmp, [deck_row("44", "0.0100")])
    p = pricing.price(book, call_type=np.zeros(0, np.int8), tollfree=np.zeros(0, np.uint8),
                      deck=np.zeros(0, np.int16), caller=pa.array([], pa.string()),
                      callee=pa.array([], pa.string()),
                      start=pa.array([], pa.timestamp("us", tz="UTC")),
                      duration=pa.array([], pa.int64()))
    assert len(p.status) == 0
