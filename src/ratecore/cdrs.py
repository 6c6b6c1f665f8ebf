"""CDR files (SPEC §7) → canonical Arrow batches, with the rows they reject.

Parquet is read one row group at a time, CSV in blocks, so a file is never
held whole. Each batch is normalised to :data:`CDR_SCHEMA` and comes with a
reject mask and reason for the row-level problems a vectorised check can
find (missing usage_id, unknown call type, bad or missing start, negative
duration, end before start). A file that cannot be read at all, or lacks a
required column, raises :class:`CdrFileError` naming the file and column.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ratecore import fields
from ratecore.deck import CURRENCIES
from ratecore.errors import CdrFileError
from ratecore.pricing import CALL_TYPES

STRING_COLUMNS = ("usage_id", "tenant_id", "user_id", "call_type", "caller_number",
                  "callee_number", "number_type", "call_id", "conference_id")
CDR_SCHEMA = pa.schema(
    [(c, pa.string()) for c in STRING_COLUMNS[:7]]
    + [("start_time", pa.timestamp("us", tz="UTC")), ("duration_seconds", pa.int64())]
    + [(c, pa.string()) for c in STRING_COLUMNS[7:]])
CDR_COLUMNS = tuple(CDR_SCHEMA.names)
#: Microsoft's price of an imported Teams call (SPEC §7), for the audit report.
REFERENCE_SCHEMA = pa.schema([("reference_charge", pa.decimal128(18, 6)),
                              ("reference_connection_fee", pa.decimal128(18, 6)),
                              ("reference_currency", pa.string())])
REFERENCE_COLUMNS = tuple(REFERENCE_SCHEMA.names)
REQUIRED = ("usage_id", "tenant_id", "call_type", "caller_number", "callee_number",
            "start_time")
#: The raw columns a reject keeps (as text), whichever of them the file has.
RAW_COLUMNS = CDR_COLUMNS + ("end_time",) + REFERENCE_COLUMNS
#: Where a rated CDR was read (rated/ and rejects/ both have them).
ORIGIN_COLUMNS = ("file", "row")
#: Longest accepted call. Longer ones are rejected: they are broken records,
#: and the bound keeps ``rate * seconds`` inside int64 micro-units.
MAX_DURATION = 1_000_000
CSV_BLOCK = 32 << 20


@dataclass
class CdrBatch:
    """One normalised batch of a CDR file.

    ``reason`` holds a reject code per row (None = so far accepted) and
    ``message`` a sentence naming the column; ``raw`` keeps the row as read.
    """

    file: str
    rows: np.ndarray          # int64 1-based row number in the file (header excluded)
    cdrs: pa.Table            # CDR_SCHEMA
    raw: RawText              # RAW_COLUMNS as strings, converted on demand
    reason: np.ndarray        # object array of str | None
    message: np.ndarray       # object array of str | None
    #: the ``file`` and ``row`` columns of a batch read back from ``rated/``
    #: (a re-rate's replay): where each CDR was first read. None otherwise.
    origin: pa.Table | None = None

    def reject(self, mask: np.ndarray, reason: str, message) -> None:
        """Mark rows of `mask` not rejected yet; message(i) or a str."""
        mask = mask & (self.reason == None)  # noqa: E711 - numpy elementwise
        for i in np.flatnonzero(mask):
            self.reason[i] = reason
            self.message[i] = message(int(i)) if callable(message) else message


def cdr_files(paths) -> list[Path]:
    """Files named, and the *.parquet / *.csv files under directories, sorted."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file()
                           and f.suffix.lower() in (".parquet", ".csv"))
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise CdrFileError(f"{p}: no such CDR file or directory")
    if not out:
        raise CdrFileError("no CDR files (*.parquet, *.csv) in " + ", ".join(map(str, paths)))
    return out


def _check_columns(path: Path, names: list[str]) -> None:
    missing = [c for c in REQUIRED if c not in names]
    if "duration_seconds" not in names and "end_time" not in names:
        missing.append("duration_seconds (or end_time)")
    if missing:
        raise CdrFileError(f"{path}: missing required column(s) "
                           + ", ".join(f"'{c}'" for c in missing))


def read_batches(path: Path) -> Iterator[tuple[pa.Table, int]]:
    """Raw tables of a file with the 0-based index of their first row."""
    try:
        if path.suffix.lower() == ".csv":
            yield from _csv_batches(path)
        else:
            pf = pq.ParquetFile(path)
            _check_columns(path, pf.schema_arrow.names)
            first = 0
            for g in range(pf.num_row_groups):
                t = pf.read_row_group(g)
                yield t, first
                first += t.num_rows
    except (OSError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise CdrFileError(f"{path}: cannot read CDR file: {e}") from e


def _csv_batches(path: Path) -> Iterator[tuple[pa.Table, int]]:
    import csv

    with open(path, newline="", encoding="utf-8-sig") as fh:
        names = [n.strip() for n in next(csv.reader(fh), [])]
    _check_columns(path, names)
    reader = pacsv.open_csv(
        path, read_options=pacsv.ReadOptions(block_size=CSV_BLOCK, column_names=names,
                                              skip_rows=1),
        convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                             strings_can_be_null=False))
    first = 0
    for rb in reader:
        yield pa.Table.from_batches([rb]), first
        first += rb.num_rows


def _times(col: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """A time column as timestamp[us, UTC] plus the mask of bad cells."""
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if pa.types.is_timestamp(arr.type):
        if arr.type.tz is None or arr.type.unit != "us":
            arr = pc.cast(arr, pa.timestamp("us"))
        arr = arr.view(pa.timestamp("us", tz="UTC")) if arr.type.tz is None \
            else arr.cast(pa.timestamp("us", tz="UTC"))
        return arr, np.asarray(arr.is_null())
    if pa.types.is_date(arr.type):
        arr = arr.cast(pa.timestamp("us")).view(pa.timestamp("us", tz="UTC"))
        return arr, np.asarray(arr.is_null())
    values, bad = fields.parse_timestamps(arr)
    return pa.array(values, pa.timestamp("us", tz="UTC"), mask=bad), bad


def normalise(path: Path, raw: pa.Table, first_row: int) -> CdrBatch:
    """Canonical columns of one raw batch, with its row-level rejects."""
    n = raw.num_rows
    names = raw.column_names
    raw_text = RawText(raw)
    batch = CdrBatch(str(path), np.arange(first_row + 1, first_row + n + 1, dtype=np.int64),
                     None, raw_text, np.full(n, None, dtype=object), np.full(n, None, dtype=object),
                     raw.select(list(ORIGIN_COLUMNS))
                     if all(c in names for c in ORIGIN_COLUMNS) else None)
    cols = {}
    for c in STRING_COLUMNS:
        cols[c] = pc.utf8_trim_whitespace(raw_text.column(c))

    def cell(column):
        return lambda i: raw_text.column(column)[i].as_py()

    batch.reject(fields.blank(cols["usage_id"]), "missing_usage_id",
                 "column 'usage_id': empty")
    batch.reject(fields.blank(cols["tenant_id"]), "missing_tenant",
                 "column 'tenant_id': empty")
    cols["call_type"] = pc.utf8_lower(cols["call_type"])
    unknown = ~fields.to_mask(pc.is_in(cols["call_type"], pa.array(CALL_TYPES)))
    batch.reject(unknown, "unknown_call_type",
                 lambda i: f"column 'call_type': unknown call type {cell('call_type')(i)!r}")

    start, bad_start = _times(raw.column("start_time"))
    batch.reject(bad_start, "bad_start_time",
                 lambda i: f"column 'start_time': {cell('start_time')(i)!r} is not a timestamp")
    if "duration_seconds" in names:
        dur_col = raw.column("duration_seconds")
        dur_col = dur_col.combine_chunks() if dur_col.num_chunks != 1 else dur_col.chunk(0)
        if pa.types.is_integer(dur_col.type):
            duration = np.asarray(dur_col.cast(pa.int64()).fill_null(-1))
            bad_dur = np.asarray(dur_col.is_null())
        else:
            duration, bad_dur = fields.parse_int(dur_col, -(2**62), 2**62)
        batch.reject(bad_dur, "bad_duration",
                     lambda i: f"column 'duration_seconds': {cell('duration_seconds')(i)!r} "
                               "is not a whole number of seconds")
        batch.reject(duration < 0, "negative_duration",
                     lambda i: f"column 'duration_seconds': negative duration {duration[i]}")
    else:
        end, bad_end = _times(raw.column("end_time"))
        batch.reject(bad_end, "bad_end_time",
                     lambda i: f"column 'end_time': {cell('end_time')(i)!r} is not a timestamp")
        span = np.asarray(end.cast(pa.int64()).fill_null(0)) - \
            np.asarray(start.cast(pa.int64()).fill_null(0))
        batch.reject(span < 0, "end_before_start", "column 'end_time': before start_time")
        duration = -(-span // 1_000_000)  # whole seconds, rounded up
    batch.reject(duration > MAX_DURATION, "duration_too_long",
                 lambda i: f"column 'duration_seconds': {duration[i]} s is longer than "
                           f"{MAX_DURATION} s")
    reference = _reference(path, raw, raw_text, batch) \
        if any(c in names for c in REFERENCE_COLUMNS) else {}
    duration = np.where(batch.reason == None, duration, 0).astype(np.int64)  # noqa: E711

    batch.cdrs = pa.table({
        **{c: cols[c] for c in STRING_COLUMNS[:7]},
        "start_time": start,
        "duration_seconds": pa.array(duration, pa.int64()),
        **{c: cols[c] for c in STRING_COLUMNS[7:]},
        **reference,
    }, schema=pa.schema(list(CDR_SCHEMA) + (list(REFERENCE_SCHEMA) if reference else [])))
    return batch


def _reference(path: Path, raw: pa.Table, raw_text: RawText, batch: CdrBatch) -> dict:
    """The three reference columns of a batch whose file has any of them."""
    n = raw.num_rows
    out = {}
    for f in REFERENCE_SCHEMA:
        if f.name not in raw.column_names:
            out[f.name] = pa.nulls(n, f.type)
            continue
        col = raw.column(f.name)
        arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        def text(i, name=f.name):   # the cell as read, for a reject's message
            return raw_text.column(name)[i].as_py()

        if f.name == "reference_currency":
            cur = pc.utf8_upper(pc.utf8_trim_whitespace(arr.cast(pa.string())))
            empty = fields.blank(cur)
            bad = ~empty & ~fields.to_mask(pc.is_in(cur, pa.array(sorted(CURRENCIES))))
            batch.reject(bad, "bad_reference", lambda i, f=f, text=text: f"column '{f.name}': "
                         f"{text(i)!r} is not an ISO 4217 currency code")
            out[f.name] = pc.if_else(pa.array(empty), pa.scalar(None, pa.string()), cur)
        elif pa.types.is_decimal(arr.type) or pa.types.is_integer(arr.type):
            try:
                out[f.name] = arr.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise CdrFileError(f"{path}: column '{f.name}': {arr.type} values do not "
                                   f"fit decimal(18, 6): {e}") from e
        elif pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) \
                or pa.types.is_null(arr.type):
            empty = fields.blank(arr)
            micro, bad = fields.parse_money(arr)
            bad &= ~empty
            batch.reject(bad, "bad_reference", lambda i, f=f, text=text: f"column '{f.name}': "
                         + fields.money_problem(text(i)))
            out[f.name] = fields.micro_to_decimal(np.where(bad, 0, micro), empty | bad)
        else:
            raise CdrFileError(f"{path}: column '{f.name}' holds {arr.type}; money must be "
                               "decimal or text (a float is never read as money)")
    return out


class RawText:
    """The cells of a raw batch as text (RAW_COLUMNS; null where the file
    has no such column), each column converted when first asked for: only
    rejects and their messages need the text of non-text columns (casting
    every batch's times and durations to text took 15 % of a run)."""

    def __init__(self, raw: pa.Table):
        self._raw = raw
        self._text: dict[str, pa.Array] = {}

    def column(self, name: str) -> pa.Array:
        if name not in self._text:
            raw = self._raw
            self._text[name] = fields.as_string(raw.column(name)) if name in raw.column_names \
                else pa.nulls(raw.num_rows, pa.string())
        return self._text[name]

    def table(self) -> pa.Table:
        """Every RAW_COLUMN as text."""
        return pa.table({c: self.column(c) for c in RAW_COLUMNS})

    def filter(self, mask) -> pa.Table:
        """The text of the rows of `mask` (every RAW_COLUMN)."""
        return RawText(self._raw.filter(mask)).table()


def raw_rows(path, rows: np.ndarray) -> pa.Table:
    """The raw text (RAW_COLUMNS) of data rows `rows` (1-based, ascending)
    of a CDR file, read again: what a reject found after its batch was let
    go keeps."""
    parts = []
    for raw, first in read_batches(Path(path)):
        pick = rows[(rows > first) & (rows <= first + raw.num_rows)] - first - 1
        if len(pick):
            parts.append(RawText(raw.take(pa.array(pick))).table())
    table = pa.concat_tables(parts) if parts else RawText(pa.table({})).table()
    if table.num_rows != len(rows):
        raise CdrFileError(f"{path}: changed while it was rated (rows {rows[0]}.. no longer "
                           "there)")
    return table


def read_cdrs(paths) -> Iterator[CdrBatch]:
    """Normalised batches of every CDR file under `paths`, in file order."""
    for path in cdr_files(paths):
        for raw, first in read_batches(path):
            yield normalise(path, raw, first)
