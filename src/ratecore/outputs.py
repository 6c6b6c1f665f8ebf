"""Output tables (SPEC §7) and how they are written: Parquet by month.

Money columns are decimal128(18, 6) built straight from int64 micro-units.
Deck-derived text columns (deck, prefix, destination, …) are dictionary
arrays whose indices are the kernel's deck rows: no string is copied per CDR.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ratecore import fields
from ratecore.cdrs import RAW_COLUMNS
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
                      "month", "file", "reason")


def _dict(indices: np.ndarray, values: pa.Array, missing: np.ndarray) -> pa.DictionaryArray:
    idx = pa.array(np.where(missing, 0, indices).astype(np.int32), mask=missing)
    return pa.DictionaryArray.from_arrays(idx, values)


def rated_table(cdrs: pa.Table, priced: Priced, book: RateBook) -> pa.Table:
    """The rated records of accepted CDRs: the input columns plus pricing."""
    rows = book.rows
    no_row = priced.row < 0
    row = np.where(no_row, 0, priced.row)
    no_service = priced.service < 0
    out = {name: cdrs.column(name) for name in cdrs.column_names}
    out["service"] = _dict(priced.service, pa.array(SERVICES), no_service)
    for name in ("deck", "prefix", "destination", "country", "number_class"):
        out[name] = _dict(row, rows.column(name).combine_chunks(), no_row)
    out["rate"] = fields.micro_to_decimal(book.row_terms["rate"][row], no_row)
    out["billable_seconds"] = pa.array(priced.billable)
    out["connect_fee"] = fields.micro_to_decimal(book.row_terms["connect_fee"][row], no_row)
    out["charge"] = fields.micro_to_decimal(priced.charge)
    out["currency"] = _dict(row, rows.column("currency").combine_chunks(), no_row)
    out["status"] = _dict(priced.status, pa.array(STATUSES), priced.status < 0)
    return pa.table(out)


def rejects_table(file: str, rows: np.ndarray, raw: pa.Table, reason: np.ndarray,
                  message: np.ndarray) -> pa.Table:
    """Rejected rows: where they were, why, and the row as read."""
    n = len(rows)
    cols = {"file": pa.array([file] * n, pa.string()), "row": pa.array(rows, pa.int64()),
            "reason": pa.array(reason.tolist(), pa.string()),
            "message": pa.array(message.tolist(), pa.string())}
    cols.update({c: raw.column(c) for c in RAW_COLUMNS})
    return pa.table(cols, schema=REJECT_SCHEMA)


def month_of(times: pa.Array) -> pa.Array:
    """'YYYY-MM' of UTC timestamps."""
    return pc.strftime(times, format="%Y-%m")


def write_by_month(table: pa.Table, months, directory: Path, part: str) -> list[Path]:
    """Write `table` as Hive partitions ``month=YYYY-MM/part.parquet``;
    `months` holds each row's 'YYYY-MM' (null: ``month=unknown``)."""
    written = []
    for month in sorted(pc.unique(months).to_pylist(), key=lambda m: m or ""):
        mask = pc.equal(months, month) if month is not None else pc.is_null(months)
        sub = table.filter(mask)
        target = directory / f"month={month or 'unknown'}"
        target.mkdir(parents=True, exist_ok=True)
        path = target / f"{part}.parquet"
        write_parquet(sub, path)
        written.append(path)
    return written


def write_parquet(table: pa.Table, path: Path) -> None:
    dict_cols = [c for c in table.column_names if c in DICTIONARY_COLUMNS]
    pq.write_table(table, path, compression="snappy", use_dictionary=dict_cols,
                   write_statistics=[c for c in table.column_names
                                     if c in ("start_time", "tenant_id", "time")],
                   row_group_size=1 << 20)
