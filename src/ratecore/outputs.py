"""Output tables (SPEC §7) and how they are written: Parquet by month.

Money columns are decimal128(18, 6) built straight from int64 micro-units.
Deck-derived text columns (deck, prefix, destination, …) are dictionary
arrays whose indices are the kernel's deck rows: no string is copied per CDR.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ratecore import fields
from ratecore.cdrs import RAW_COLUMNS, REFERENCE_SCHEMA
from ratecore.deck import SERVICES, RateBook
from ratecore.pricing import STATUSES, Priced

MONEY = pa.decimal128(18, 6)
REJECT_SCHEMA = pa.schema(
    [("file", pa.string()), ("row", pa.int64()), ("reason", pa.string()),
     ("message", pa.string())] + [(c, pa.string()) for c in RAW_COLUMNS])
#: Columns written with dictionary encoding: few distinct values. The
#: high-cardinality ones (usage_id, numbers, call ids) are written plain.
DICTIONARY_COLUMNS = ("tenant_id", "user_id", "call_type", "number_type", "service", "deck",
                      "prefix", "destination", "country", "number_class", "currency", "status",
                      "month", "file", "reason", "pool", "capability", "kind",
                      "reference_currency")


def _dict(indices: np.ndarray, values: pa.Array, missing: np.ndarray) -> pa.DictionaryArray:
    idx = pa.array(np.where(missing, 0, indices).astype(np.int32), mask=missing)
    return pa.DictionaryArray.from_arrays(idx, values)


def file_column(file, n: int) -> pa.Array:
    """`file` (one name, or already one per row) as a column of `n` rows."""
    if isinstance(file, str):
        return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)),
                                              pa.array([file], pa.string()))
    return file


def rated_table(cdrs: pa.Table, priced: Priced, book: RateBook, billed=None,
                plan=None, origin=None) -> pa.Table:
    """The rated records of accepted CDRs: the input columns, pricing, and
    (given the billing columns of the same rows) billing (SPEC §7).

    `billed` is a :class:`ratecore.billing.Billed` sliced to these rows and
    `plan` the :class:`ratecore.billing.Plan` that names its pools and
    capabilities. Without them ``charge`` is the full credit price.
    `origin` is (file, rows): where each CDR was read, written as the
    ``file`` and ``row`` columns that rejects/ has too, so that
    ``reconcile`` can show every input row rated or rejected once.
    """
    rows = book.rows
    no_row = priced.row < 0
    row = np.where(no_row, 0, priced.row)
    no_service = priced.service < 0
    out = {name: cdrs.column(name) for name in cdrs.column_names}
    for f in REFERENCE_SCHEMA:  # every rated file has them: null unless the CDR file had them
        if f.name not in out:
            out[f.name] = pa.nulls(cdrs.num_rows, f.type)
    out["service"] = _dict(priced.service, pa.array(SERVICES), no_service)
    for name in ("deck", "prefix", "destination", "country", "number_class"):
        out[name] = _dict(row, rows.column(name).combine_chunks(), no_row)
    if billed is not None:
        out["domestic"] = pa.array(billed.domestic == 1, mask=billed.domestic < 0)
    out["rate"] = fields.micro_to_decimal(book.row_terms["rate"][row], no_row)
    out["billable_seconds"] = pa.array(priced.billable)
    if billed is not None:
        no_pool = billed.pool < 0
        out["pool"] = _dict(billed.pool, pa.array(plan.pool_names or [""], pa.string()), no_pool)
        out["pool_seconds"] = pa.array(billed.pool_seconds)
        out["charged_seconds"] = pa.array(billed.charged_seconds)
    out["connect_fee"] = fields.micro_to_decimal(book.row_terms["connect_fee"][row], no_row)
    out["charge"] = fields.micro_to_decimal(priced.charge if billed is None else billed.charge)
    out["currency"] = _dict(row, rows.column("currency").combine_chunks(), no_row)
    if billed is not None:
        out["capability"] = _dict(billed.capability, pa.array(plan.capability_names(), pa.string()),
                                  billed.capability < 0)
    status = priced.status if billed is None else billed.status
    out["status"] = _dict(status, pa.array(STATUSES), status < 0)
    if billed is not None:
        out["unbilled_seconds"] = pa.array(billed.unbilled_seconds)
        out["unbilled_amount"] = fields.micro_to_decimal(billed.unbilled_amount)
        out["balance_after"] = fields.micro_to_decimal(billed.balance_after)
        out["late"] = pa.array(billed.late, pa.bool_())
    if origin is not None:
        file, rows = origin
        out["file"] = file_column(file, cdrs.num_rows)
        out["row"] = pa.array(rows, pa.int64())
    return pa.table(out)


def rejects_table(file, rows: np.ndarray, raw: pa.Table, reason: np.ndarray,
                  message: np.ndarray) -> pa.Table:
    """Rejected rows: where they were (`file`: one name or one per row),
    why, and the row as read."""
    cols = {"file": file_column(file, len(rows)).cast(pa.string()),
            "row": pa.array(rows, pa.int64()),
            "reason": pa.array(reason.tolist(), pa.string()),
            "message": pa.array(message.tolist(), pa.string())}
    cols.update({c: raw.column(c) for c in RAW_COLUMNS})
    return pa.table(cols, schema=REJECT_SCHEMA)


def month_of(times) -> pa.Array:
    """'YYYY-MM' of UTC timestamps (null for null), as a dictionary array:
    the month of each row is computed as an integer and only the distinct
    months are formatted (strftime over every row took 8 % of a run)."""
    if isinstance(times, pa.ChunkedArray):
        times = times.combine_chunks() if times.num_chunks != 1 else times.chunk(0)
    micros = times.cast(pa.timestamp("us", tz=times.type.tz)).cast(pa.int64())
    valid = np.asarray(micros.is_valid())
    months = np.asarray(micros.fill_null(0)).view("datetime64[us]").astype("datetime64[M]")
    distinct = np.unique(months[valid])
    names = pa.array([str(m) for m in distinct], pa.string())
    codes = np.searchsorted(distinct, months).astype(np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(codes, mask=~valid), names)


def write_by_month(table: pa.Table, months, directory: Path, part: str,
                   each=None) -> list[Path]:
    """Write `table` as Hive partitions ``month=YYYY-MM/part.parquet``;
    `months` holds each row's 'YYYY-MM' (null: ``month=unknown``).
    ``each(path, rows)`` is called for every file written, with the mask of
    the table's rows it holds."""
    if isinstance(months, pa.ChunkedArray):
        months = months.combine_chunks()
    if not pa.types.is_dictionary(months.type):
        months = months.dictionary_encode()
    codes = np.asarray(months.indices.fill_null(-1))
    written = []
    for code, month in [(-1, None)] + sorted(enumerate(months.dictionary.to_pylist()),
                                             key=lambda cm: cm[1]):
        rows = codes == code
        if rows.any():
            target = directory / f"month={month or 'unknown'}"
            target.mkdir(parents=True, exist_ok=True)
            # most parts fall in one month: write them as they are (filtering a
            # rated part copies all its columns: 1.1 s of a 4M-call run)
            write_parquet(table if rows.all() else table.filter(pa.array(rows)),
                          target / f"{part}.parquet")
            written.append(target / f"{part}.parquet")
            if each is not None:
                each(written[-1], rows)
    return written


INPUTS_DIR = "inputs"
#: Schema of ``inputs/`` (one file per run): how many data rows
#: each CDR file it read had. ``reconcile`` checks that rated/ and rejects/
#: hold each of them once per read.
INPUT_SCHEMA = pa.schema([("run", pa.int32()), ("file", pa.string()), ("rows", pa.int64())])


def inputs_table(run: int, rows_per_file: dict[str, int]) -> pa.Table:
    return pa.table({"run": pa.array([run] * len(rows_per_file), pa.int32()),
                     "file": pa.array(list(rows_per_file), pa.string()),
                     "rows": pa.array(list(rows_per_file.values()), pa.int64())},
                    schema=INPUT_SCHEMA)


def write_parquet(table: pa.Table, path: Path) -> None:
    dict_cols = [c for c in table.column_names if c in DICTIONARY_COLUMNS]
    # row numbers climb by one: delta-encoded they take next to nothing
    delta = {"row": "DELTA_BINARY_PACKED"} if "row" in table.column_names else None
    pq.write_table(table, path, compression="snappy", use_dictionary=dict_cols,
                   column_encoding=delta,
                   write_statistics=[c for c in table.column_names
                                     if c in ("start_time", "tenant_id", "time")],
                   row_group_size=1 << 20)
