"""Exact duplicate checks of usage_ids through 64-bit hashes.

A run rejects a usage_id that an earlier row of the run, or an earlier run,
rated (SPEC §8). Hash tables of the strings cost too much at run sizes
(``count_distinct`` over 20M ids: 13 s and 3.5 GB), so the ids are hashed
to 8 bytes by the kernel (``_order.hash_strings``) and the hashes sorted;
only ids whose hashes are equal are compared as strings. Equal ids always
have equal hashes, so nothing is missed; comparing the strings means a
collision never rejects a call. Earlier runs' ids are streamed past the
run's sorted hashes, never held together, so a long history costs reading
time, not memory.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ratecore import fields
from ratecore._order import hash_strings


def _chunks(ids) -> list[pa.Array]:
    """The chunks of ids as plain string arrays, never combined: the ids of
    a long history hold more than the 2 GiB one string array can."""
    if isinstance(ids, pa.ChunkedArray):
        return [fields.as_string(c) for c in ids.chunks] or [pa.array([], pa.string())]
    return [fields.as_string(ids)]


def hashes(ids) -> np.ndarray:
    """uint64 hash of each id (a null id hashes as the empty string)."""
    parts = _chunks(ids)
    if len(parts) > 1:
        return np.concatenate([hashes(c) for c in parts])
    ids = parts[0]
    if ids.null_count:
        ids = pc.fill_null(ids, "")
    n = len(ids)
    out = np.empty(n, np.uint64)
    if n == 0:
        return out
    offsets = np.frombuffer(ids.buffers()[1], np.int32)[ids.offset: ids.offset + n + 1]
    data = ids.buffers()[2]
    hash_strings(np.ascontiguousarray(offsets),
                 np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8),
                 out)
    return out


def later_duplicates(chunks: list) -> list[np.ndarray]:
    """Per chunk of ids (taken in order, as one sequence), the mask of ids
    that an earlier position already holds."""
    sizes = [len(c) for c in chunks]
    found = np.zeros(sum(sizes), bool)
    if not len(found):
        return _split(found, sizes)
    h = np.concatenate([hashes(c) for c in chunks])
    s = np.sort(h)
    same = s[1:] == s[:-1]
    if not same.any():
        return _split(found, sizes)
    cand = np.flatnonzero(np.isin(h, np.unique(s[1:][same])))
    # the candidates' strings, in position order; the first of each id wins
    strings = _strings_at(chunks, cand)
    table = pa.table({"u": strings, "i": pa.array(np.arange(len(cand), dtype=np.int64))})
    first = np.asarray(table.group_by("u", use_threads=False).aggregate(
        [("i", "min")]).column("i_min"))
    later = np.ones(len(cand), bool)
    later[first] = False
    found[cand[later]] = True
    return _split(found, sizes)


def _split(found: np.ndarray, sizes: list) -> list[np.ndarray]:
    """A mask over chunks taken as one sequence, cut back into one per chunk."""
    bounds = np.cumsum([0] + sizes)
    return [found[bounds[k]: bounds[k + 1]] for k in range(len(sizes))]


def _strings_at(chunks: list, pos: np.ndarray) -> pa.ChunkedArray:
    """The ids at global positions `pos` (ascending) of chunks taken as one
    sequence."""
    bounds = np.cumsum([0] + [len(c) for c in chunks])
    which = np.searchsorted(bounds, pos, side="right") - 1
    return pa.chunked_array(
        [fields.as_string(chunks[k]).take(pa.array(pos[which == k] - bounds[k]))
         for k in np.unique(which)], pa.string())


#: Bits of a hash that index present_in's filter (2**24 flags: 16 MB).
_FILTER_BITS = 24


def present_in(chunks: list, history) -> list[np.ndarray]:
    """Per chunk of ids, the mask of ids that `history` holds.

    `history` is an iterable of string arrays, or of (hashes, ids) pairs
    whose `ids` is called for the strings only when a hash matches (an
    earlier run's rated file and its hash index). Each is read once and let
    go: memory holds the chunks' hashes and one history piece, whatever the
    history's length (SPEC §8). Ids of equal hash are compared as strings,
    so the answer is exact.
    """
    sizes = [len(c) for c in chunks]
    found = np.zeros(sum(sizes), bool)
    if not len(found):
        return _split(found, sizes)
    h = np.concatenate([hashes(c) for c in chunks])
    order = np.argsort(h, kind="stable")
    s = h[order]
    # a bitmap of the hashes' top bits turns most history ids away with one
    # load from a table that stays in cache; a binary search is for the rest
    bits = np.zeros(1 << _FILTER_BITS, bool)
    bits[s >> np.uint64(64 - _FILTER_BITS)] = True
    mine, theirs = [], []
    for piece in history:
        hp, strings = piece if isinstance(piece, tuple) else (hashes(piece), lambda p=piece: p)
        hit = np.flatnonzero(bits[hp >> np.uint64(64 - _FILTER_BITS)])
        lo = np.searchsorted(s, hp[hit], side="left")
        equal = s[np.minimum(lo, len(s) - 1)] == hp[hit]
        hit, lo = hit[equal], lo[equal]
        if not len(hit):
            continue
        reps = np.searchsorted(s, hp[hit], side="right") - lo
        # each history id against every position of the chunks with its hash
        first = np.repeat(lo, reps)
        within = np.arange(int(reps.sum())) - np.repeat(np.cumsum(reps) - reps, reps)
        mine.append(order[first + within])
        theirs.append(pa.chunked_array(_chunks(strings()), pa.string())
                      .take(pa.array(np.repeat(hit, reps))))
    if not mine:
        return _split(found, sizes)
    pos = np.concatenate(mine)
    by_pos = np.argsort(pos, kind="stable")
    pos = pos[by_pos]
    other = pa.chunked_array(theirs, pa.string()).take(pa.array(by_pos))
    same = np.asarray(pc.fill_null(pc.equal(_strings_at(chunks, pos), other), False))
    found[pos[same]] = True
    return _split(found, sizes)
