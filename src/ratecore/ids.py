"""Exact duplicate checks of usage_ids through 64-bit hashes.

A run rejects a usage_id that an earlier row of the run, or an earlier run,
rated (SPEC §8). Hash tables of the strings cost too much at run sizes
(``count_distinct`` over 20M ids: 13 s and 3.5 GB), so the ids are hashed
to 8 bytes by the kernel (``_order.hash_strings``) and the hashes sorted;
only ids whose hashes are equal are compared as strings. Equal ids always
have equal hashes, so nothing is missed; comparing the strings means a
collision never rejects a call.
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
    masks = [np.zeros(n, bool) for n in sizes]
    if not chunks or sum(sizes) == 0:
        return masks
    h = np.concatenate([hashes(c) for c in chunks])
    s = np.sort(h)
    same = s[1:] == s[:-1]
    if not same.any():
        return masks
    cand = np.flatnonzero(np.isin(h, np.unique(s[1:][same])))
    # the candidates' strings, in position order; the first of each id wins
    bounds = np.cumsum([0] + sizes)
    which = np.searchsorted(bounds, cand, side="right") - 1
    strings = pa.chunked_array(
        [fields.as_string(chunks[k]).take(pa.array(cand[which == k] - bounds[k]))
         for k in range(len(chunks)) if (which == k).any()], pa.string())
    table = pa.table({"u": strings, "i": pa.array(np.arange(len(cand), dtype=np.int64))})
    first = np.asarray(table.group_by("u", use_threads=False).aggregate(
        [("i", "min")]).column("i_min"))
    later = np.ones(len(cand), bool)
    later[first] = False
    for k in np.unique(which[later]):
        masks[k][cand[later & (which == k)] - bounds[k]] = True
    return masks


class IdSet:
    """A set of ids (those earlier runs rated) to test batches against."""

    def __init__(self, ids):
        self.ids = pa.chunked_array(_chunks(ids), pa.string())
        h = hashes(self.ids)
        self.order = np.argsort(h, kind="stable")
        self.sorted = h[self.order]

    def __len__(self) -> int:
        return len(self.ids)

    def member(self, ids) -> np.ndarray:
        """Mask of the `ids` in the set."""
        ids = fields.as_string(ids)
        out = np.zeros(len(ids), bool)
        if not len(self.ids) or not len(ids):
            return out
        h = hashes(ids)
        lo = np.searchsorted(self.sorted, h, side="left")
        hi = np.searchsorted(self.sorted, h, side="right")
        cand = np.flatnonzero(hi > lo)
        if not len(cand):
            return out
        # compare with the first id of each equal-hash run, then any others
        first = self.ids.take(pa.array(self.order[lo[cand]]))
        mine = ids.take(pa.array(cand))
        out[cand] = np.asarray(pc.fill_null(pc.equal(first, mine), False))
        for k in np.flatnonzero((hi[cand] - lo[cand] > 1) & ~out[cand]):
            i = cand[k]
            others = self.ids.take(pa.array(self.order[lo[i] + 1: hi[i]]))
            out[i] = ids[i].as_py() in others.to_pylist()
        return out
