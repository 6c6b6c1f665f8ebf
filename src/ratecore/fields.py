"""Cell values under the CSV conventions of SPEC §1, parsed a column at a time,
and the reading and checking of config files (decks, tenants) cell by cell.

Every parser takes an Arrow string array and returns the parsed values plus a
boolean numpy mask of the cells that did not parse, so callers can name the
file, line and column of each bad cell without a Python loop per row.
Money is parsed to int64 micro-units and never passes through a float.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ratecore._lookup import take_codes
from ratecore.errors import InputError, Problem

MICRO = 1_000_000
#: Money and prices carry at most 12 integer digits: micro-units then fit in
#: int64 with room for ``rate * seconds`` (see ratecore_ext/_tables.pxd).
MONEY_RE = r"^-?[0-9]{1,12}(\.[0-9]{1,6})?$"
_TZ_RE = r"[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]*)?)?(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$"
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


def _strings(arr) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    return pc.utf8_trim_whitespace(arr)


def blank(arr) -> np.ndarray:
    """Mask of empty (or null) cells."""
    s = _strings(arr)
    return np.asarray(pc.fill_null(pc.equal(pc.utf8_length(s), 0), True))


def to_mask(arr) -> np.ndarray:
    """A boolean Arrow array (nulls as False) as a numpy bool array."""
    return np.asarray(pc.fill_null(arr, False), dtype=bool)


def parse_timestamps(arr) -> tuple[np.ndarray, np.ndarray]:
    """ISO 8601 timestamps, or bare dates meaning 00:00:00 UTC, to UTC µs.

    Strings with a zone offset are converted to UTC; strings without one are
    taken as UTC. Empty cells are bad here; callers decide on defaults.
    """
    s = _strings(arr)
    n = len(s)
    has_tz = to_mask(pc.match_substring_regex(s, _TZ_RE))
    out = np.zeros(n, dtype=np.int64)
    bad = np.zeros(n, dtype=bool)
    for zoned in (False, True):
        idx = np.flatnonzero(has_tz == zoned)
        if len(idx) == 0:
            continue
        part = s.take(pa.array(idx))
        target = pa.timestamp("us", tz="UTC") if zoned else pa.timestamp("us")
        try:
            parsed = pc.cast(part, target)
            values = np.asarray(parsed.cast(pa.int64()).fill_null(0))
            out[idx] = values
            bad[idx] = np.asarray(parsed.is_null())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            # slow path, only for a column that has bad cells: find them
            for j, k in enumerate(idx):
                try:
                    out[k] = pc.cast(part.slice(j, 1), target).cast(pa.int64())[0].as_py()
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
                    bad[k] = True
    return out, bad


def parse_money(arr) -> tuple[np.ndarray, np.ndarray]:
    """Decimal strings (at most 6 fractional digits) to int64 micro-units."""
    s = _strings(arr)
    bad = ~to_mask(pc.match_substring_regex(s, MONEY_RE))
    good = pc.if_else(pa.array(bad), "0", s)
    dec = pc.cast(good, pa.decimal128(18, 6))
    # decimal128 values are 16-byte little-endian two's complement integers of
    # micro-units; with at most 12 integer digits the low 8 bytes hold them.
    words = np.frombuffer(dec.buffers()[1], dtype=np.int64)
    micro = words[2 * dec.offset: 2 * (dec.offset + len(dec)): 2].copy()
    return micro, bad


def money_problem(text: str) -> str:
    """Why a money cell failed MONEY_RE, in words."""
    t = text.strip()
    if "." in t and len(t.split(".", 1)[1]) > 6:
        return f"{t!r} has more than 6 decimal places"
    return f"{t!r} is not a decimal amount"


def parse_bool(arr) -> tuple[np.ndarray, np.ndarray]:
    """true/false, 1/0, yes/no (any case); empty cells parse as False."""
    s = pc.utf8_lower(_strings(arr))
    is_true = to_mask(pc.is_in(s, pa.array(_TRUE)))
    is_false = to_mask(pc.is_in(s, pa.array(_FALSE + ("",))))
    return is_true, ~(is_true | is_false)


def parse_int(arr, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Whole numbers within [lo, hi]."""
    s = _strings(arr)
    bad = ~to_mask(pc.match_substring_regex(s, r"^-?[0-9]{1,18}$"))
    good = pc.if_else(pa.array(bad), "0", s)
    values = np.asarray(pc.cast(good, pa.int64()))
    bad |= (values < lo) | (values > hi)
    return np.where(bad, 0, values), bad


def format_micro(micro: int) -> str:
    """Micro-units as a plain decimal string, e.g. 1500 -> '0.0015'."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(int(micro)), MICRO)
    text = f"{sign}{whole}.{frac:06d}".rstrip("0")
    return text[:-1] if text.endswith(".") else text


def as_string(col) -> pa.Array:
    """A text column (array or chunked, plain or dictionary, any string
    type) as one plain string array."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if not pa.types.is_string(col.type):
        col = col.cast(pa.string())
    return col


def micro_to_decimal(micro: np.ndarray, null_mask: np.ndarray | None = None) -> pa.Array:
    """int64 micro-units as decimal128(18, 6), exactly and without a loop.

    A decimal128 value is a 16-byte little-endian two's complement integer
    of 10**-scale units; with scale 6 that integer is the micro-unit count.
    """
    micro = np.asarray(micro)
    words = np.empty((len(micro), 2), dtype=np.int64)
    words[:, 0] = micro
    np.right_shift(words[:, 0], 63, out=words[:, 1])
    return words_to_decimal(words, null_mask)


def words_to_decimal(words: np.ndarray, null_mask: np.ndarray | None = None) -> pa.Array:
    """decimal128(18, 6) over (n, 2) int64 words (micro-units, then their
    sign: see :func:`micro_to_decimal`), without copying them."""
    words = np.ascontiguousarray(words, np.int64)
    if words.ndim != 2 or words.shape[1] != 2:
        raise ValueError(f"decimal words must be (n, 2), not {words.shape}")
    validity = None
    null_count = 0
    if null_mask is not None and null_mask.any():
        validity = pa.array(~null_mask).buffers()[1]
        null_count = int(null_mask.sum())
    return pa.Array.from_buffers(pa.decimal128(18, 6), len(words),
                                 [validity, pa.py_buffer(words)], null_count=null_count)


def take(table: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``table.take(codes, mode="clip")``, in one pass of the kernel's
    ``take_codes`` for the small tables a batch looks up by int32 code."""
    table = np.ascontiguousarray(table)
    if table.dtype in _CODE_TYPES and len(table) and codes.dtype == np.int32:
        out = np.empty(len(codes), table.dtype)
        take_codes(table, np.ascontiguousarray(codes), out)
        return out
    return table.take(codes, mode="clip")


_CODE_TYPES = tuple(np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.int32))


def by_value(arr, fn, null_value) -> np.ndarray:
    """fn over a string array; over a dictionary array, fn of its dictionary
    taken by the indices (low-cardinality columns cost one pass of ints)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        values = np.append(fn(arr.dictionary.cast(pa.string())), null_value)
        indices = arr.indices
        if indices.null_count:
            indices = indices.fill_null(len(arr.dictionary))
        # the codes as they are (no copy); all lie in [0, len(values))
        return take(values, np.asarray(indices))
    return fn(arr)


def read_text_table(path: Path, error=InputError) -> tuple[pa.Table, bool]:
    """A CSV (header row) or Parquet file with every column as strings, so
    each cell can be checked and named; returns (table, is_csv). A file that
    cannot be read raises `error`."""
    try:
        if path.suffix.lower() == ".parquet":
            t = pq.read_table(path)
            return t.cast(pa.schema([(f.name, pa.string()) for f in t.schema])), False
        # Read the header first so every column can be forced to string.
        with open(path, newline="", encoding="utf-8-sig") as fh:
            names = next(csv.reader(fh), [])
        t = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=False),
        )
        t = t.rename_columns([c.strip() for c in t.column_names])
        return t, True
    except (OSError, UnicodeDecodeError, csv.Error, pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise error(f"{path}: cannot read: {e}") from e


class CellChecker:
    """Collects the bad cells of one file, vectorised per column."""

    def __init__(self, path: Path, table: pa.Table, is_csv: bool):
        self.path = path
        self.table = table
        self.is_csv = is_csv
        self.problems: list[Problem] = []

    def line(self, i: int) -> int:
        return i + 2 if self.is_csv else i + 1  # CSV: the header is line 1

    def col(self, name: str) -> pa.Array:
        if name not in self.table.column_names:
            return pa.array([""] * self.table.num_rows, pa.string())
        return _strings(self.table.column(name))

    def flag(self, bad: np.ndarray, column: str, why) -> None:
        """Record each row of `bad`; `why(i, text)` words the problem."""
        idx = np.flatnonzero(bad)
        if len(idx) == 0:
            return
        cells = self.col(column)
        for i in idx[: InputError.SHOWN]:
            text = cells[int(i)].as_py()
            self.problems.append(Problem(str(self.path), self.line(int(i)), column, why(text)))
        for i in idx[InputError.SHOWN:]:
            self.problems.append(Problem(str(self.path), self.line(int(i)), column, "bad value"))
