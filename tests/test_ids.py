"""Duplicate usage_ids found through 64-bit hashes (ratecore.ids) are
exactly the ones a set of strings finds, with real hashes and with hashes
that all collide."""

from __future__ import annotations

import contextlib
from unittest import mock

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratecore import ids

# few distinct letters, short and long (over 8 bytes: whole words hashed)
ID = st.one_of(st.text("ab", max_size=3), st.text("abc-0", min_size=7, max_size=20))
CHUNKS = st.lists(st.lists(ID, max_size=12), max_size=4)


def naive_later(chunks):
    seen, out = set(), []
    for c in chunks:
        mask = []
        for u in c:
            mask.append(u in seen)
            seen.add(u)
        out.append(mask)
    return out


def _arrays(chunks):
    # sliced arrays: the kernel must honour an array's offset
    return [pa.array(["pad"] + c, pa.string()).slice(1) for c in chunks]


def _collide(offsets, data, out):
    out[:] = 7                                # every id hashes alike


def hashing(kind):
    """The real kernel hash, or one under which every id collides."""
    return contextlib.nullcontext() if kind == "real" else \
        mock.patch.object(ids, "hash_strings", _collide)


@pytest.mark.parametrize("kind", ["real", "colliding"])
@settings(max_examples=80, deadline=None)
@given(chunks=CHUNKS)
def test_later_duplicates_match_a_set(kind, chunks):
    with hashing(kind):
        got = [m.tolist() for m in ids.later_duplicates(_arrays(chunks))]
    assert got == naive_later(chunks)


@pytest.mark.parametrize("kind", ["real", "colliding"])
@settings(max_examples=80, deadline=None)
@given(known=st.lists(ID, max_size=15), asked=CHUNKS, cut=st.integers(0, 15))
def test_present_in_matches_a_set(kind, known, asked, cut):
    # the history arrives in pieces (row groups), some of them chunked
    # or as a hash index whose strings are read only on a match
    with hashing(kind):
        rest = _arrays([known[cut:]])[0]
        history = [pa.chunked_array(_arrays([known[:cut // 2], known[cut // 2: cut]]),
                                    pa.string()),
                   (ids.hashes(rest), lambda: rest)]
        got = [m.tolist() for m in ids.present_in(_arrays(asked), iter(history))]
    assert got == [[a in set(known) for a in c] for c in asked]


def test_hashes_are_of_the_bytes_not_the_position():
    a = pa.array(["x", "0123456789abcdef-long", "", None, "x"])
    h = ids.hashes(a)
    assert h.dtype == np.uint64
    assert h[0] == h[4] and h[2] == h[3]              # a null hashes as ""
    assert np.array_equal(ids.hashes(a.slice(1, 2)), h[1:3])
    assert np.array_equal(ids.hashes(pa.chunked_array([a.slice(0, 2), a.slice(2)])), h)
    assert np.array_equal(ids.hashes(a.dictionary_encode()), h)
    assert len(set(ids.hashes(pa.array([f"u{i}" for i in range(10_000)])).tolist())) == 10_000


def test_present_in_reads_an_indexed_pieces_ids_only_on_a_hash_match():
    read = []
    known = pa.array([f"id-{i}" for i in range(1000)])

    def strings():
        read.append(1)
        return known

    piece = (ids.hashes(known), strings)
    assert ids.present_in([pa.array(["other", "id-x"])], iter([piece]))[0].tolist() == \
        [False, False]
    assert not read
    assert ids.present_in([pa.array(["other", "id-7"])], iter([piece]))[0].tolist() == \
        [False, True]
    assert read == [1]
