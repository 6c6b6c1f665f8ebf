"""The call grouping of the billing pass (_order.pyx) against numpy's
lexsort: every tenant's calls in (start, usage_id) order, records carrying
their columns, offsets and tie positions right, inputs untouched."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ratecore._billing import bill_record_size
from ratecore._order import (
    group_calls,
    in_cache_records,
    record_size,
    scatter_calls,
    sort_tenants,
)

from ratecore import billing

BASE = 1_790_000_000_000_000


def _columns(rng, n, n_t, span):
    return dict(tenant=rng.integers(0, n_t, n).astype(np.int32),
                start=(BASE + rng.integers(0, span, n)).astype(np.int64),
                payer=rng.integers(-1, 50, n).astype(np.int32),
                row=rng.integers(-1, 1000, n).astype(np.int32),
                billable=rng.integers(0, 7200, n).astype(np.int32),
                service=rng.integers(-1, 3, n).astype(np.int8),
                status=rng.integers(-4, 11, n).astype(np.int8))


def _group(cols, n_t):
    n = len(cols["tenant"])
    recs = np.empty(n, billing.CALL_DTYPE)
    offsets = np.empty(n_t + 1, np.int64)
    ties = group_calls(cols["tenant"], cols["start"], cols["payer"], cols["row"],
                       cols["billable"], cols["service"], cols["status"], n_t,
                       recs.view(np.uint8), offsets)
    return recs, offsets, ties


def _check(cols, n_t):
    before = {k: v.copy() for k, v in cols.items()}
    recs, offsets, ties = _group(cols, n_t)
    n = len(cols["tenant"])
    order = np.lexsort((np.arange(n), cols["start"], cols["tenant"]))
    assert np.array_equal(recs["idx"], order)
    for name in ("start", "payer", "row", "billable", "service", "status"):
        assert np.array_equal(recs[name], cols[name][order]), name
    assert np.array_equal(offsets, np.searchsorted(cols["tenant"][order], np.arange(n_t + 1)))
    t, s = cols["tenant"][order], cols["start"][order]
    expected_ties = np.flatnonzero((t[1:] == t[:-1]) & (s[1:] == s[:-1])) + 1
    assert np.array_equal(ties, expected_ties)
    for k, v in before.items():
        assert np.array_equal(cols[k], v), f"{k} was modified"


def test_record_layout_matches_numpy():
    assert record_size() == billing.CALL_DTYPE.itemsize == 32
    assert bill_record_size() == billing.BILL_DTYPE.itemsize == 32


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 3000), n_t=st.integers(1, 5),
       span=st.sampled_from([1, 7, 10**6, 30 * 86_400 * 10**6, 2**50, 2**62]),
       seed=st.integers(0, 2**32 - 1), presorted=st.booleans())
def test_matches_lexsort(n, n_t, span, seed, presorted):
    rng = np.random.default_rng(seed)
    cols = _columns(rng, n, n_t, span)
    if presorted:
        cols["start"] = np.sort(cols["start"])
    _check(cols, n_t)


@pytest.mark.parametrize("span", [30 * 86_400 * 10**6, 10**4, 2**62])
def test_a_tenant_bigger_than_the_cache_is_split_first(span):
    # one tenant well above IN_CACHE, one small: the MSD split, then radix or qsort
    big = 3 * in_cache_records()
    rng = np.random.default_rng(5)
    cols = _columns(rng, big + 10_000, 2, span)
    cols["tenant"][:big] = 0
    rng.shuffle(cols["tenant"])
    _check(cols, 2)


@pytest.mark.parametrize("shape", ["crowded", "nearly_sorted"])
def test_split_buckets_too_big_or_already_in_order(shape):
    # crowded: nearly all of a big tenant's calls in one of the split's time
    # buckets, which is split again; nearly_sorted: most buckets come out of
    # the split in order and are copied back without a sort
    big = 3 * in_cache_records()
    rng = np.random.default_rng(11)
    cols = _columns(rng, big, 1, 10**6)
    if shape == "crowded":
        cols["start"][:8] = BASE + 2**40 + np.arange(8)   # far out: a wide, sparse range
    else:
        cols["start"] = np.sort(cols["start"])
        cols["start"][[0, -1]] = cols["start"][[-1, 0]]
    _check(cols, 1)


def test_equal_starts_are_ordered_by_usage_id():
    n = 6
    calls = billing.Calls(
        tenant=np.array([0, 0, 1, 0, 1, 0], np.int32),
        user_id=pa.array([""] * n), usage_id=pa.array(["f", "b", "z", "a", "y", "c"]),
        start=np.array([5, 5, 3, 5, 3, 1], np.int64), service=np.zeros(n, np.int8),
        status=np.zeros(n, np.int8), row=np.zeros(n, np.int32), billable=np.zeros(n, np.int32))
    recs, offsets = billing._group_calls(calls, np.full(n, -1, np.int32), 2)
    ids = np.array(calls.usage_id.to_pylist())[recs["idx"]]
    assert list(ids) == ["c", "a", "b", "f", "y", "z"]
    assert list(offsets) == [0, 4, 6]


@settings(max_examples=200, deadline=None)
@given(ties=st.sets(st.integers(1, 80), max_size=40))
def test_tie_runs_are_the_ties_and_the_record_before_each_run(ties):
    ties = np.array(sorted(ties), np.int64)
    pos, run = billing._tie_runs(ties)
    want = np.union1d(ties, ties - 1)
    assert pos.tolist() == want.tolist()
    assert run.tolist() == (np.cumsum(~np.isin(want, ties)) - 1).tolist()


def test_bad_tenant_rows_and_sizes_are_refused():
    cols = _columns(np.random.default_rng(1), 10, 2, 100)
    cols["tenant"][3] = 2
    with pytest.raises(ValueError, match="out of range"):
        _group(cols, 2)
    cols = _columns(np.random.default_rng(1), 10, 2, 100)
    with pytest.raises(ValueError, match="wrong size"):
        group_calls(cols["tenant"], cols["start"], cols["payer"], cols["row"], cols["billable"],
                    cols["service"], cols["status"], 2, np.empty(5, np.uint8),
                    np.empty(3, np.int64))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 2000), n_t=st.integers(1, 6), seed=st.integers(0, 2**32 - 1),
       cuts=st.lists(st.integers(0, 6), max_size=4))
def test_sorting_tenant_ranges_apart_gives_the_whole_sort(n, n_t, seed, cuts):
    """Threads sort disjoint tenant ranges: any cut into ranges gives the
    records and ties of one sort over all tenants."""
    cols = _columns(np.random.default_rng(seed), n, n_t, 10**4)
    whole, offsets, ties = _group(cols, n_t)
    recs = np.empty(n, billing.CALL_DTYPE)
    offs = np.empty(n_t + 1, np.int64)
    scatter_calls(cols["tenant"], cols["start"], cols["payer"], cols["row"], cols["billable"],
                  cols["service"], cols["status"], n_t, recs.view(np.uint8), offs)
    bounds = sorted({0, n_t, *(min(c, n_t) for c in cuts)})
    parts = [sort_tenants(recs.view(np.uint8), offs, lo, hi)
             for lo, hi in reversed(list(itertools.pairwise(bounds)))]
    assert np.array_equal(offs, offsets)
    assert np.array_equal(recs, whole)
    assert np.array_equal(np.sort(np.concatenate(parts)) if parts else parts, ties)


def test_grouping_on_two_threads_equals_one():
    rng = np.random.default_rng(11)
    n = 300_000          # enough calls for the work to be split
    cols = _columns(rng, n, 7, 10**5)   # many equal starts: ties by usage_id
    calls = billing.Calls(
        tenant=cols["tenant"], user_id=None, usage_id=pa.array([f"u{i:07d}" for i in
                                                               rng.permutation(n)]),
        start=cols["start"], service=cols["service"], status=cols["status"], row=cols["row"],
        billable=cols["billable"])
    one = billing._group_calls(calls, cols["payer"], 7, threads=1)
    two = billing._group_calls(calls, cols["payer"], 7, threads=2)
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])
    assert len(billing._tenant_ranges(one[1], np.zeros(8, np.int64), 2)) == 2


def test_sort_tenants_refuses_a_bad_range():
    cols = _columns(np.random.default_rng(1), 10, 2, 100)
    recs, offsets, _ = _group(cols, 2)
    for lo, hi in ((-1, 1), (1, 0), (0, 3)):
        with pytest.raises(ValueError, match="bad tenant range"):
            sort_tenants(recs.view(np.uint8), offsets, lo, hi)


def _calls(cols, usage_id):
    return billing.Calls(tenant=cols["tenant"], user_id=None, usage_id=usage_id,
                         start=cols["start"], service=cols["service"], status=cols["status"],
                         row=cols["row"], billable=cols["billable"])


def _add(groups, cols, rows):
    groups.add(*(cols[k][rows] for k in ("tenant", "start", "payer", "row", "billable",
                                         "service", "status")))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 2000), n_t=st.integers(1, 6), seed=st.integers(0, 2**32 - 1),
       cuts=st.lists(st.integers(0, 2000), max_size=5), drop=st.floats(0, 0.5))
def test_groups_added_batch_by_batch_equal_one_grouping(n, n_t, seed, cuts, drop):
    """A run adds its calls batch by batch, counted beforehand, some rows
    dropped after counting (pricing rejects): the records equal grouping
    the kept calls at once, numbered in the order they were added."""
    rng = np.random.default_rng(seed)
    cols = _columns(rng, n, n_t, 10**3)     # many equal starts: ties by usage_id
    ids = np.array([f"u{i:05d}" for i in rng.permutation(n)])
    kept = rng.random(n) >= drop
    groups = billing.CallGroups(np.bincount(cols["tenant"], minlength=n_t))
    bounds = sorted({0, n, *(min(c, n) for c in cuts)})
    for lo, hi in itertools.pairwise(bounds):
        _add(groups, cols, np.arange(lo, hi)[kept[lo:hi]])
    groups.usage_id = pa.array(ids[kept])
    got = groups.finish()
    want = billing._group_calls(_calls({k: v[kept] for k, v in cols.items()},
                                       pa.array(ids[kept])), cols["payer"][kept], n_t)
    assert len(groups) == kept.sum()
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    # where[call] is the position the call was grouped at, which its record keeps
    recs, _, where = got
    assert np.array_equal(where[recs["idx"]], recs["grouped"])
    assert sorted(recs["grouped"].tolist()) == list(range(len(recs)))


def test_groups_refuse_calls_beyond_their_counts():
    cols = _columns(np.random.default_rng(3), 10, 2, 100)
    counts = np.bincount(cols["tenant"], minlength=2)
    groups = billing.CallGroups(counts)
    _add(groups, cols, np.arange(10))
    with pytest.raises(ValueError, match=r"more calls than counted \(11 of 10\)"):
        _add(groups, cols, np.arange(1))
    drop_one = billing.CallGroups(counts + np.array([1, 0]))   # room for 11 calls
    _add(drop_one, cols, np.arange(10))
    with pytest.raises(ValueError, match="more calls of tenant row 1"):
        _add(drop_one, cols, np.flatnonzero(cols["tenant"] == 1)[:1])
    cols["tenant"][0] = 5
    with pytest.raises(ValueError, match="tenant row 5 out of range"):
        _add(billing.CallGroups(counts), cols, np.arange(10))
    with pytest.raises(ValueError, match="usage_id must name the 10 calls"):
        groups.finish()


def test_groups_without_tenants_refuse_any_call():
    cols = _columns(np.random.default_rng(4), 3, 1, 100)
    with pytest.raises(ValueError, match="tenant row 0 out of range"):
        _add(billing.CallGroups(np.zeros(0, np.int64)), cols, np.arange(3))
    empty = billing.CallGroups(np.zeros(0, np.int64))
    _add(empty, cols, np.arange(0))
    empty.usage_id = pa.array([], pa.string())
    recs, offsets, where = empty.finish()
    assert len(recs) == len(where) == 0 and offsets.tolist() == [0]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 1500), n_t=st.integers(1, 5), seed=st.integers(0, 2**32 - 1),
       span=st.sampled_from([1, 300, 10**6, 2**62]), cell=st.integers(1, 80),
       cuts=st.lists(st.integers(0, 1500), max_size=4), drop=st.floats(0, 0.3))
def test_time_cells_sort_like_lexsort(n, n_t, seed, span, cell, cuts, drop):
    """Counted per tenant and time bucket, a tenant's calls are cut into
    cells of about `cell` calls, filled and sorted apart: each tenant's
    records still come out in (start, usage_id) order, rows dropped after
    counting included, and where[call] is its grouped position."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(billing.CallGroups, "CELL", cell)
        _check_time_cells(n, n_t, seed, span, cuts, drop)


def _check_time_cells(n, n_t, seed, span, cuts, drop):
    rng = np.random.default_rng(seed)
    cols = _columns(rng, n, n_t, span)
    ids = np.array([f"u{i:05d}" for i in rng.permutation(n)])
    kept = rng.random(n) >= drop
    lo, hi = (int(cols["start"].min()), int(cols["start"].max())) if n else (0, 0)
    counts = billing.TimeCounts(n_t, lo, hi)
    counts.add(cols["tenant"], cols["start"])
    assert counts.counts.sum() == n
    groups = billing.CallGroups(counts)
    for a, b in itertools.pairwise(sorted({0, n, *(min(c, n) for c in cuts)})):
        _add(groups, cols, np.arange(a, b)[kept[a:b]])
    groups.usage_id = pa.array(ids[kept])
    recs, offsets, where = groups.finish()
    k = {name: v[kept] for name, v in cols.items()}
    order = np.lexsort((ids[kept], k["start"], k["tenant"]))
    assert recs["idx"].tolist() == order.tolist()
    for name in ("start", "payer", "row", "billable", "service", "status"):
        assert np.array_equal(recs[name], k[name][order]), name
    assert offsets.tolist() == np.searchsorted(k["tenant"][order], np.arange(n_t + 1)).tolist()
    assert np.array_equal(where[recs["idx"]], recs["grouped"])
    assert sorted(recs["grouped"].tolist()) == list(range(len(recs)))


def test_time_cells_cut_big_tenants_only(monkeypatch):
    monkeypatch.setattr(billing.CallGroups, "CELL", 100)
    counts = billing.TimeCounts(2, 0, 10**6)
    start = np.arange(0, 10**6, 1000, dtype=np.int64)           # 1000 calls over the span
    counts.add(np.zeros(len(start), np.int32), start)
    counts.add(np.ones(50, np.int32), start[:50])
    groups = billing.CallGroups(counts)
    cells = np.diff(groups.cells)
    # tenant 0: runs of 2**k buckets, k as large as keeps each within 100
    # calls (16 buckets of about 4 calls); tenant 1 fits in one cell
    assert groups.first_cell.tolist() == [0, len(cells) - 1] and cells[-1] == 50
    assert cells[:-1].sum() == 1000 and cells[:-1].max() <= 100
    assert len(cells) - 1 == counts.BUCKETS >> (int(groups.cell_shift[0]) - counts.shift)
    assert np.add.reduceat(counts.counts[0], np.arange(0, 256, 32)).max() > 100   # k=5: too big


def test_time_cells_over_the_whole_int64_range():
    # a span of nearly 2**64 microseconds: shifts stay below 64
    start = np.array([-2**63 + 1, 0, 2**63 - 1, 5, -7], np.int64)
    counts = billing.TimeCounts(1, int(start.min()), int(start.max()))
    counts.add(np.zeros(5, np.int32), start)
    groups = billing.CallGroups(counts)          # 5 calls: one cell, but for the shift
    assert groups.cell_shift.max() < 64
    _add(groups, {"tenant": np.zeros(5, np.int32), "start": start,
                  "payer": np.zeros(5, np.int32), "row": np.zeros(5, np.int32),
                  "billable": np.zeros(5, np.int32), "service": np.zeros(5, np.int8),
                  "status": np.zeros(5, np.int8)}, np.arange(5))
    groups.usage_id = pa.array([f"u{i}" for i in range(5)])
    recs, offsets, _ = groups.finish()
    assert recs["start"].tolist() == sorted(start.tolist()) and offsets.tolist() == [0, 5]


def test_time_counts_and_cells_refuse_calls_outside_them():
    counts = billing.TimeCounts(2, 1000, 5000)
    with pytest.raises(ValueError, match="start 999 outside the span"):
        counts.add(np.array([0, 1], np.int32), np.array([1000, 999], np.int64))
    with pytest.raises(ValueError, match="tenant row 2 out of range"):
        counts.add(np.array([2], np.int32), np.array([1000], np.int64))
    counts = billing.TimeCounts(2, 1000, 5000)
    counts.add(np.array([0, 1], np.int32), np.array([1000, 5000], np.int64))
    groups = billing.CallGroups(counts)
    cols = _columns(np.random.default_rng(2), 1, 1, 1)
    cols["start"][:] = 5000 + (1 << counts.shift) * counts.BUCKETS
    with pytest.raises(ValueError, match="outside the counted span"):
        _add(groups, cols, np.arange(1))
    cols["start"][:] = 999                        # before the span
    with pytest.raises(ValueError, match="outside the counted span"):
        _add(groups, cols, np.arange(1))
