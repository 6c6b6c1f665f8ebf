"""The kernel's calendar (month index, 12-month lot expiry) against the
reference's datetime arithmetic, including leap days and times before 1970."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from ratecore._billing import expiry_of, month_of
from ratecore.reference.billing import add_months

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
INSTANTS = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31)
                        ).map(lambda t: t.replace(tzinfo=timezone.utc))


def us(t: datetime) -> int:
    return (t - EPOCH) // timedelta(microseconds=1)


@given(INSTANTS)
def test_expiry_is_twelve_calendar_months_later(t):
    assert expiry_of(us(t)) == us(add_months(t, 12))


@given(INSTANTS)
def test_month_index(t):
    assert month_of(us(t)) == t.year * 12 + t.month - 1


def test_leap_day_clamps_to_february_28():
    t = datetime(2024, 2, 29, 13, 5, 7, 123, tzinfo=timezone.utc)
    assert expiry_of(us(t)) == us(datetime(2025, 2, 28, 13, 5, 7, 123, tzinfo=timezone.utc))


@given(st.lists(st.one_of(st.none(), st.integers(-30_610_224_000_000_000,
                                                  253_402_300_799_999_999)), max_size=30))
def test_output_partition_month_is_the_utc_month(micros):
    """outputs.month_of (rated/ and ledger/ partitions) gives strftime's
    'YYYY-MM' of each time, null for null, as a dictionary array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from ratecore import outputs
    times = pa.array(micros, pa.timestamp("us", tz="UTC"))
    got = outputs.month_of(times)
    assert pa.types.is_dictionary(got.type)
    assert got.cast(pa.string()).to_pylist() == pc.strftime(times, format="%Y-%m").to_pylist()
