"""The ledger's usage_id gather (billing._take over _order.take_strings)
against Arrow's take: any strings, sliced arrays, nulls where masked."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ratecore._order import take_strings

from ratecore import billing


@settings(max_examples=80, deadline=None)
@given(values=st.lists(st.text(max_size=12), max_size=40), skip=st.integers(0, 5),
       data=st.data())
def test_take_matches_arrow(values, skip, data):
    arr = pa.array(["pad"] * skip + values, pa.string()).slice(skip)
    n = len(values)
    idx = np.array(data.draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=30)), np.int64)
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=len(idx), max_size=len(idx))),
                    bool) if n else np.ones(len(idx), bool)
    # masked positions may hold anything: they are never read
    idx[mask] = -7
    got = billing._take(arr, idx, mask)
    want = pc.take(arr, pa.array(np.where(mask, 0, idx), mask=mask))
    assert got.type == pa.string()
    got.validate(full=True)
    assert got.to_pylist() == want.to_pylist()


def test_take_refuses_an_index_outside_the_strings():
    arr = pa.array(["a", "bb"])
    offsets = np.frombuffer(arr.buffers()[1], np.int32)
    data = np.frombuffer(arr.buffers()[2], np.uint8)
    with pytest.raises(IndexError, match="index 2 is outside the 2 strings"):
        take_strings(offsets, data, np.array([0, 2], np.int64), np.ones(2, np.uint8))
    with pytest.raises(ValueError, match="differ in length"):
        take_strings(offsets, data, np.array([0], np.int64), np.ones(2, np.uint8))


def test_take_with_nulls_in_the_values_falls_back_to_arrow():
    arr = pa.array(["a", None, "c"])
    got = billing._take(arr, np.array([2, 1, 0]), np.array([False, False, True]))
    assert got.to_pylist() == ["c", None, None]
