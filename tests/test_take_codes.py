"""fields.take (the take_codes kernel) against numpy's take with mode="clip",
for every table type a batch looks up by code and the fallback types."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ratecore._lookup import take_codes

from ratecore import fields


@settings(max_examples=60, deadline=None)
@given(dtype=st.sampled_from([np.int8, np.uint8, np.int16, np.int32, np.int64]),
       n_table=st.integers(1, 300), codes=st.lists(st.integers(-2**31, 2**31 - 1), max_size=200),
       code_type=st.sampled_from([np.int32, np.int64]), seed=st.integers(0, 2**32 - 1))
def test_matches_numpy_take_with_clip(dtype, n_table, codes, code_type, seed):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    table = rng.integers(info.min, info.max, n_table, endpoint=True).astype(dtype)
    codes = np.array(codes + list(rng.integers(-3, n_table + 3, 50)), code_type)
    got = fields.take(table, codes)
    assert got.dtype == table.dtype
    assert np.array_equal(got, table.take(codes, mode="clip"))


def test_no_codes_and_bad_shapes():
    table = np.array([3, 4], np.int16)
    assert len(fields.take(table, np.zeros(0, np.int32))) == 0
    with pytest.raises(ValueError, match="differ in length"):
        take_codes(table, np.zeros(3, np.int32), np.empty(2, np.int16))
    with pytest.raises(ValueError, match="empty table"):
        take_codes(np.zeros(0, np.int16), np.zeros(3, np.int32), np.empty(3, np.int16))
