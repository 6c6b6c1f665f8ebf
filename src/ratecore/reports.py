"""Reports (SPEC §9): DuckDB SQL over a run's Parquet outputs, and exports.

Each report is one file ``queries/NAME.sql`` shipped inside the package and
read with :mod:`importlib.resources`; a new file is a new report. The SQL
reads views that :func:`connect` creates over the output directory:

``rated``, ``rejects``, ``ledger``, ``notifications``, ``pools``
    the Hive-partitioned datasets, with their ``month`` partition column
    (``YYYY-MM``, text). A dataset no run has written yet is an empty view
    of the same columns.
``state_tenants``
    ``state/tenants.parquet`` (per tenant: last ledger ``seq``, ``balance``
    in micro-units, ...), for ``reconcile``.
``candidate_rated``, ``candidate_ledger``, ...
    the same over a second output directory (``--candidate``), for
    ``impact``.

Parameters are bound, never pasted into SQL text: a query names them as
``$month`` (``YYYY-MM``), ``$tenant``, ``$date`` (DATE) and ``$days``
(INTEGER), and each is NULL when not given. The runner passes a query only
the parameters its text uses.

Money stays DECIMAL in SQL and ``decimal128(18, 6)`` in Arrow; the exports
write it as exact decimal text (CSV, TSV, JSON), as Parquet decimals, and
as XLSX numbers with the currency's format.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import re
import sys
from decimal import Decimal
from importlib import resources
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ratecore.errors import InputError

MONEY = pa.decimal128(18, 6)
TIME = pa.timestamp("us", tz="UTC")
FORMATS = ("table", "csv", "tsv", "json", "parquet", "xlsx")
#: Formats that are not text: they need --output.
BINARY_FORMATS = ("parquet", "xlsx")
#: Rows printed by the ``table`` format; the rest are counted.
TABLE_ROWS = 200
XLSX_MAX_ROWS = 1_048_575
PARAMETERS = ("month", "tenant", "date", "days")
DEFAULT_DAYS = 30
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_COMMENT = re.compile(r"--[^\n]*")


def _rated_schema() -> pa.Schema:
    from ratecore import cdrs

    s = pa.string()
    # Microsoft's price of imported Teams calls (for audit), when cdrs.py has it
    reference = list(getattr(cdrs, "REFERENCE_SCHEMA", []))
    return pa.schema(list(cdrs.CDR_SCHEMA) + reference + [
        ("service", s), ("deck", s), ("prefix", s), ("destination", s), ("country", s),
        ("number_class", s), ("domestic", pa.bool_()), ("rate", MONEY),
        ("billable_seconds", pa.int32()), ("pool", s), ("pool_seconds", pa.int32()),
        ("charged_seconds", pa.int32()), ("connect_fee", MONEY), ("charge", MONEY),
        ("currency", s), ("capability", s), ("status", s), ("unbilled_seconds", pa.int32()),
        ("unbilled_amount", MONEY), ("balance_after", MONEY), ("late", pa.bool_()),
        ("file", s), ("row", pa.int64())])


def dataset_schemas() -> dict[str, pa.Schema]:
    """The columns of each output dataset (SPEC §7), for empty views."""
    from ratecore.billing import LEDGER_SCHEMA, NOTIFICATION_SCHEMA, POOL_SCHEMA
    from ratecore.outputs import INPUT_SCHEMA, REJECT_SCHEMA

    return {"rated": _rated_schema(), "rejects": REJECT_SCHEMA, "ledger": LEDGER_SCHEMA,
            "notifications": NOTIFICATION_SCHEMA, "pools": POOL_SCHEMA, "inputs": INPUT_SCHEMA}


# ---- the queries -----------------------------------------------------------------


def _queries():
    return resources.files("ratecore") / "queries"


def report_names() -> list[str]:
    """Every report shipped (``queries/*.sql``), sorted."""
    return sorted(p.name[:-4] for p in _queries().iterdir()
                  if p.name.endswith(".sql") and not p.name.startswith("_"))


def report_sql(name: str) -> str:
    """The SQL text of report `name`."""
    names = report_names()
    if name not in names:
        raise InputError(f"unknown report {name!r}; reports: {', '.join(names)}")
    return (_queries() / f"{name}.sql").read_text(encoding="utf-8")


def parameters_of(sql: str) -> list[str]:
    """The ``$name`` parameters a query uses (comments ignored)."""
    return sorted(set(_PARAM.findall(_COMMENT.sub("", sql))))


# ---- the connection --------------------------------------------------------------


def _parquet_files(directory: Path) -> list[str]:
    return sorted(str(p) for p in directory.rglob("*.parquet")) if directory.is_dir() else []


def _sql_type(t: pa.DataType) -> str:
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision}, {t.scale})"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    return {pa.int64(): "BIGINT", pa.int32(): "INTEGER", pa.int8(): "TINYINT",
            pa.bool_(): "BOOLEAN"}.get(t, "VARCHAR")


def _view(con: duckdb.DuckDBPyConnection, name: str, files: list[str],
          empty: pa.Schema, by_month: bool = True) -> None:
    """View `name` over the Parquet `files` (bound as a list, never pasted
    into SQL), Hive-partitioned by ``month`` when `by_month`; an empty view
    of `empty` (plus ``month``) when there are none."""
    if files:
        hive = ", hive_partitioning = true, hive_types = {'month': 'VARCHAR'}" if by_month else ""
        rel = con.sql(f"SELECT * FROM read_parquet($files{hive}, union_by_name = true)",
                      params={"files": files})
        # columns no file has yet (e.g. the reference columns of Teams
        # imports) are NULL, so queries can name every column of `empty`
        missing = [f for f in empty if f.name not in rel.columns]
        if missing:
            rel = rel.select(", ".join(["*"] + [f"CAST(NULL AS {_sql_type(f.type)}) AS \"{f.name}\""
                                               for f in missing]))
        rel.create_view(name)
        return
    if by_month and "month" not in empty.names:
        empty = empty.append(pa.field("month", pa.string()))
    con.from_arrow(empty.empty_table()).create_view(name)


def check_output_dir(path, option: str = "--data") -> Path:
    """`path` as an output directory of ``ratecore rate``, or InputError."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{option}: {path} is not a directory")
    if not any((path / d).is_dir() for d in ("rated", "rejects", "ledger", "state")):
        raise InputError(f"{option}: {path} holds no ratecore outputs (rated/, rejects/, "
                         "ledger/, state/); give the --out directory of `ratecore rate`")
    return path


def connect(data_dir, candidate_dir=None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the report views over `data_dir`
    (and ``candidate_*`` views over `candidate_dir`). Times are UTC."""
    from ratecore.outputs import INPUTS_DIR
    from ratecore.state import SCHEMAS, STATE_DIR, recover

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    # a query without ORDER BY (usage) returns rows in the order of the
    # files (sorted paths) and of their rows: keep it so (the default)
    con.execute("SET preserve_insertion_order = true")
    schemas = dataset_schemas()
    for prefix, directory in (("", data_dir), ("candidate_", candidate_dir)):
        if directory is None:
            continue
        directory = Path(directory)
        recover(directory)  # finish a publish a killed run committed to (state.py)
        for name, schema in schemas.items():
            _view(con, prefix + name, _parquet_files(directory / name), schema,
                  by_month=name != INPUTS_DIR)
        tenants = directory / STATE_DIR / "tenants.parquet"
        if tenants.exists():
            con.sql("SELECT * FROM read_parquet($f)",
                    params={"f": str(tenants)}).create_view(prefix + "state_tenants")
        else:
            con.from_arrow(SCHEMAS["tenants"].empty_table()).create_view(prefix + "state_tenants")
    return con


def as_of_date(data_dir) -> _dt.date | None:
    """The UTC date of the outputs' as-of time (the last run's), if known."""
    meta = Path(data_dir) / "state" / "meta.json"
    try:
        as_of = json.loads(meta.read_text()).get("as_of")
    except (OSError, ValueError):
        return None
    if as_of is None:
        return None
    return (_dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
            + _dt.timedelta(microseconds=int(as_of))).date()


def check_month(month: str | None) -> str | None:
    if month is not None and not _MONTH.fullmatch(month):
        raise InputError(f"--month: {month!r} is not a month (YYYY-MM)")
    return month


def check_date(date) -> _dt.date | None:
    if date is None or isinstance(date, _dt.date):
        return date
    try:
        return _dt.date.fromisoformat(str(date))
    except ValueError:
        raise InputError(f"--date: {date!r} is not a date (YYYY-MM-DD)") from None


def _prepare(name: str, data_dir, month, tenant, date, days, candidate_dir):
    """Check a report's parameters: (sql, bound values, connection)."""
    sql = report_sql(name)
    data_dir = check_output_dir(data_dir)
    used = parameters_of(sql)
    unknown = sorted(set(used) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"queries/{name}.sql uses unknown parameters: {', '.join(unknown)}")
    needs_candidate = "candidate_" in _COMMENT.sub("", sql)
    if needs_candidate and candidate_dir is None:
        raise InputError(f"report {name} compares two rating outputs: give the candidate's "
                         "with --candidate DIR")
    if candidate_dir is not None:
        candidate_dir = check_output_dir(candidate_dir, "--candidate")
    if days is not None and days < 0:
        raise InputError(f"--days: {days} is negative")
    date = check_date(date)
    if date is None and "date" in used:
        date = as_of_date(data_dir) or _dt.datetime.now(_dt.timezone.utc).date()
    values = {"month": check_month(month), "tenant": tenant, "date": date,
              "days": DEFAULT_DAYS if days is None and "days" in used else days}
    con = connect(data_dir, candidate_dir if needs_candidate else None)
    return sql, {k: values[k] for k in used}, con


def run_report(name: str, data_dir, *, month: str | None = None, tenant: str | None = None,
               date=None, days: int | None = None, candidate_dir=None) -> pa.Table:
    """Run report `name` over the outputs in `data_dir`.

    Parameters
    ----------
    name : str
        A report of :func:`report_names`.
    data_dir : path
        The ``--out`` directory of ``ratecore rate``.
    month : str, optional
        ``YYYY-MM``: only this month (of the call's start, or of the ledger
        entry, as each report says).
    tenant : str, optional
        Only this tenant.
    date : date or str, optional
        ``expiry``: the day the window starts (default: the outputs' as-of
        date, else today, UTC).
    days : int, optional
        ``expiry``: the window's length in days (default 30).
    candidate_dir : path, optional
        ``impact``: the outputs of the candidate rating.

    Returns
    -------
    pyarrow.Table
        Money as ``decimal128(18, 6)``, times as UTC timestamps.

    Raises
    ------
    InputError
        An unknown report, a bad parameter, a directory that holds no
        outputs, or a missing ``--candidate`` for a report that needs one.
    """
    sql, params, con = _prepare(name, data_dir, month, tenant, date, days, candidate_dir)
    try:
        return con.sql(sql, params=params).to_arrow_table()
    finally:
        con.close()


#: Rows per record batch (and Parquet row group) when a report is streamed
#: to a file. Smaller batches reuse the allocators' memory instead of
#: faulting fresh pages in: streaming a 20M-call usage month took 2.4 s of
#: system time at 65,536 rows, 5.1 s at 262,144 and 7.4 s at 1,048,576.
STREAM_ROWS = 1 << 16


def write_report(name: str, data_dir, fmt: str, output, *, month: str | None = None,
                 tenant: str | None = None, date=None, days: int | None = None,
                 candidate_dir=None) -> int:
    """Run report `name` and write it as `fmt` (``parquet`` or ``csv``) to
    the file `output`, streaming: record batches go from DuckDB to the
    writer as they are produced, on two threads, and the whole result is
    never held in memory. The file is the one :func:`run_report` and
    :func:`export` write. Parameters as :func:`run_report`.

    Returns
    -------
    int
        The rows written.
    """
    import queue
    import threading

    if fmt not in ("parquet", "csv"):
        raise InputError(f"--format {fmt}: only parquet and csv are streamed")
    sql, params, con = _prepare(name, data_dir, month, tenant, date, days, candidate_dir)
    batches: queue.Queue = queue.Queue(maxsize=2)
    failure: list[BaseException] = []
    done = threading.Event()
    try:
        reader = con.sql(sql, params=params).to_arrow_reader(STREAM_ROWS)

        def produce():
            # DuckDB fetches the next batch while the main thread encodes this one
            try:
                for batch in reader:
                    while not done.is_set():
                        try:
                            batches.put(batch, timeout=0.1)
                            break
                        except queue.Full:
                            pass
                    if done.is_set():
                        return
            except Exception as e:  # noqa: BLE001 (re-raised in the caller's thread)
                failure.append(e)
            finally:
                batches.put(None)

        producer = threading.Thread(target=produce, name=f"report-{name}", daemon=True)
        producer.start()
        rows, finished = 0, False
        try:
            # Arrow's own file stream: a Python file object would take the
            # GIL for every page written
            with pa.OSFile(str(output), "wb") as fh:
                writer = (pq.ParquetWriter(fh, reader.schema, **_parquet_options(reader.schema))
                          if fmt == "parquet" else _CsvWriter(fh, reader.schema))
                try:
                    while (batch := batches.get()) is not None:
                        writer.write_batch(batch)
                        rows += batch.num_rows
                    finished = True
                finally:
                    writer.close()
        finally:
            done.set()
            while not finished and batches.get() is not None:  # unblock the producer
                pass
            producer.join()
        if failure:
            raise failure[0]
        return rows
    finally:
        con.close()


# ---- exports ---------------------------------------------------------------------


def _is_money(t: pa.DataType) -> bool:
    return pa.types.is_decimal(t) and t.scale == 6


def _text_columns(table: pa.Table) -> pa.Table:
    """Timestamps as ISO 8601 text (``2026-10-01T10:00:00.000000Z``).

    Arrow's cast of a zone-less timestamp to text, with ``T`` and ``Z`` put
    in, writes what ``strftime`` does at a sixth of the cost (strftime took
    36 of the 45 CPU-s of a 20M-call usage CSV). Times are UTC instants, so
    dropping the zone before the cast keeps their digits."""
    cols = []
    for col, field in zip(table.columns, table.schema):
        t = field.type
        if pa.types.is_timestamp(t):
            text = pc.cast(col.cast(pa.timestamp(t.unit)) if t.tz else col, pa.string())
            col = pc.utf8_replace_slice(text, start=10, stop=11, replacement="T")
            if t.tz:
                col = pc.binary_join_element_wise(col, "Z", "")
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def _text_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, pa.string()) if pa.types.is_timestamp(f.type) else f
                      for f in schema])


_CSV_OPTIONS = pacsv.WriteOptions(eol="\r\n", quoting_style="needed")


def write_csv(table: pa.Table, sink) -> None:
    """RFC 4180: comma-separated, CRLF line ends, fields quoted when needed."""
    pacsv.write_csv(_text_columns(table), sink, write_options=_CSV_OPTIONS)


class _CsvWriter:
    """:func:`write_csv`, a record batch at a time (the header first)."""

    def __init__(self, sink, schema: pa.Schema):
        self._writer = pacsv.CSVWriter(sink, _text_schema(schema), write_options=_CSV_OPTIONS)

    def write_batch(self, batch: pa.RecordBatch) -> None:
        self._writer.write_table(_text_columns(pa.Table.from_batches([batch])))

    def close(self) -> None:
        self._writer.close()


def _tsv_escape(col: pa.ChunkedArray) -> pa.ChunkedArray:
    for old, new in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        col = pc.replace_substring(col, old, new)
    return col


def write_tsv(table: pa.Table, sink) -> None:
    """Tab-separated, LF line ends, no quoting; a backslash, tab, newline or
    carriage return inside a value is written ``\\\\``, ``\\t``, ``\\n``,
    ``\\r`` (the convention of PostgreSQL's text format); null is empty."""
    table = _text_columns(table)
    cols = [_tsv_escape(pc.cast(c, pa.string()).fill_null("")) for c in table.columns]
    header = "\t".join(_tsv_escape(pa.chunked_array([table.column_names])).to_pylist())
    sink.write((header + "\n").encode())
    if table.num_rows:
        lines = pc.binary_join_element_wise(*cols, "\t") if len(cols) > 1 else cols[0]
        for chunk in lines.chunks:
            if len(chunk):
                sink.write(("\n".join(chunk.to_pylist()) + "\n").encode())


def write_json(table: pa.Table, sink) -> None:
    """A JSON array of objects, one per row. Money is a JSON number written
    with its exact decimal digits (parse it with ``parse_float=Decimal`` to
    keep it exact); times are ISO 8601 text."""
    con = duckdb.connect()
    try:
        con.register("report_rows", _text_columns(table))
        rows = con.sql("SELECT CAST(to_json(r) AS VARCHAR) AS j FROM report_rows AS r") \
            .to_arrow_table()
    finally:
        con.close()
    sink.write(b"[")
    first = True
    for chunk in rows.column("j").chunks:
        if not len(chunk):
            continue
        text = ",\n".join(chunk.to_pylist())
        sink.write((("\n" if first else ",\n") + text).encode())
        first = False
    sink.write(b"\n]\n" if not first else b"]\n")


# Columns whose values are (nearly) unique per row: identifiers and phone
# numbers, start and end times. A dictionary never pays for them (the
# writer builds one, then falls back to plain), snappy shrinks them little,
# and min/max statistics of random strings prune nothing. Written plain,
# uncompressed and without string statistics, a usage export of 3M calls
# encodes in 1.05 CPU-s instead of 1.72 for a file 6 % larger (measured,
# README "Reports"); every other column is dictionary-encoded and snappy.
_UNIQUE = frozenset({"UsageId", "Call ID", "Conference ID", "Caller ID", "Destination Number",
                     "Start Time", "End Time", "usage_id", "call_id", "conference_id",
                     "caller_number", "callee_number", "start_time"})


def _parquet_options(schema: pa.Schema) -> dict:
    unique = {f.name for f in schema if f.name in _UNIQUE}
    stats = [f.name for f in schema
             if f.name not in unique or not (pa.types.is_string(f.type)
                                             or pa.types.is_large_string(f.type))]
    return {"compression": {f.name: "none" if f.name in unique else "snappy" for f in schema},
            "use_dictionary": [f.name for f in schema if f.name not in unique],
            "write_statistics": stats}


def write_parquet(table: pa.Table, path) -> None:
    pq.write_table(table, path, **_parquet_options(table.schema))


# Currencies whose minor unit is not 2 digits (ISO 4217); others show 2.
_MINOR_UNITS = {**dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
                                 "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
                **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3)}


def money_format(currency: str | None) -> str:
    """XLSX number format of a currency: its code, thousands separators, its
    minor-unit digits always and up to 6 decimals when present
    (``[$USD] #,##0.00####``)."""
    digits = _MINOR_UNITS.get(currency or "", 2)
    frac = "." + "0" * digits + "#" * (6 - digits)
    code = f'[${currency}] ' if currency else ""
    return f"{code}#,##0{frac}"


def write_xlsx(table: pa.Table, path, sheet: str = "report") -> None:
    """One worksheet with typed cells: money as numbers in the row's
    currency format (the ``currency`` column, when the table has one),
    other decimals and integers as numbers, timestamps as date-times (UTC),
    dates as dates, booleans as booleans, text as text. A header row,
    frozen, with a filter."""
    import xlsxwriter

    if table.num_rows > XLSX_MAX_ROWS:
        raise InputError(f"{table.num_rows:,} rows do not fit in one XLSX sheet "
                         f"({XLSX_MAX_ROWS:,} at most): filter with --month/--tenant, or "
                         "use --format parquet or csv")
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True, "remove_timezone": True})
    try:
        ws = wb.add_worksheet(sheet[:31])
        bold = wb.add_format({"bold": True})
        formats: dict[str, object] = {}

        def fmt(spec: str):
            if spec not in formats:
                formats[spec] = wb.add_format({"num_format": spec})
            return formats[spec]

        currency = (table.column("currency").to_pylist()
                    if "currency" in table.column_names else None)
        kinds, widths = [], []
        for j, field in enumerate(table.schema):
            t = field.type
            if _is_money(t):
                kinds.append("money")
            elif pa.types.is_decimal(t):
                kinds.append(("number", fmt("#,##0." + "0" * t.scale if t.scale else "#,##0")))
            elif pa.types.is_integer(t):
                kinds.append(("number", fmt("0")))
            elif pa.types.is_floating(t):
                kinds.append(("number", None))
            elif pa.types.is_timestamp(t):
                kinds.append(("time", fmt("yyyy-mm-dd hh:mm:ss")))
            elif pa.types.is_date(t):
                kinds.append(("date", fmt("yyyy-mm-dd")))
            elif pa.types.is_boolean(t):
                kinds.append(("bool", None))
            else:
                kinds.append(("text", None))
            ws.write_string(0, j, field.name, bold)
            widths.append(max(len(field.name), 10))
        for j, (col, kind) in enumerate(zip(table.columns, kinds)):
            if kind == "money" or kind[0] in ("time", "date"):
                widths[j] = max(widths[j], 20)
            elif kind[0] == "text":
                sample = [len(v) for v in col.slice(0, 200).to_pylist() if v is not None]
                widths[j] = min(max([widths[j]] + sample), 50)
        for j, w in enumerate(widths):
            ws.set_column(j, j, w + 2)
        ws.freeze_panes(1, 0)
        ws.autofilter(0, 0, max(table.num_rows, 1), max(table.num_columns - 1, 0))
        columns = [c.to_pylist() for c in table.columns]
        for i in range(table.num_rows):
            r = i + 1
            for j, kind in enumerate(kinds):
                v = columns[j][i]
                if v is None:
                    continue
                if kind == "money":
                    ws.write_number(r, j, v, fmt(money_format(currency[i] if currency else None)))
                elif kind[0] == "number":
                    ws.write_number(r, j, v, kind[1])
                elif kind[0] in ("time", "date"):
                    ws.write_datetime(r, j, v, kind[1])
                elif kind[0] == "bool":
                    ws.write_boolean(r, j, v)
                else:
                    ws.write_string(r, j, str(v))
    finally:
        wb.close()


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return f"{value:,}"
    if isinstance(value, _dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def print_table(table: pa.Table, console, title: str | None = None,
                limit: int = TABLE_ROWS) -> None:
    """A readable rich table of the first `limit` rows, numbers right-aligned.
    A table wider than the console is printed one record per block (field,
    value), like psql's expanded display, instead of squeezing its columns."""
    from rich.measure import Measurement
    from rich.table import Table

    def numeric(t):
        return pa.types.is_integer(t) or pa.types.is_decimal(t) or pa.types.is_floating(t)

    shown = table.slice(0, limit).to_pylist()
    t = Table(title=title, header_style="bold", show_edge=False, pad_edge=False)
    for field in table.schema:
        t.add_column(field.name, justify="right" if numeric(field.type) else "left")
    for row in shown:
        t.add_row(*[_cell(v) for v in row.values()])
    wide = Measurement.get(console, console.options.update(max_width=100_000), t).maximum
    if wide <= console.width or not shown:
        console.print(t)
    else:
        if title:
            console.print(f"[bold]{title}[/]")
        for i, row in enumerate(shown, 1):
            block = Table(title=f"record {i}", title_justify="left", show_header=False,
                          show_edge=False, pad_edge=False, box=None)
            block.add_column(style="bold", no_wrap=True)
            block.add_column()
            for name, value in row.items():
                block.add_row(name, _cell(value))
            console.print(block)
    if table.num_rows > limit:
        console.print(f"… {table.num_rows - limit:,} more rows of {table.num_rows:,}: "
                      "use --format csv, parquet or xlsx with --output for all of them")
    elif table.num_rows == 0:
        console.print("no rows")


def export(table: pa.Table, fmt: str, output=None, *, console=None, name: str = "report") -> None:
    """Write `table` as `fmt` to the file `output`, or to standard output
    (``table``, ``csv``, ``tsv``, ``json`` only)."""
    if fmt not in FORMATS:
        raise InputError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt in BINARY_FORMATS and output is None:
        raise InputError(f"--format {fmt} writes a file: give --output FILE")
    if fmt == "table":
        if output is None:
            print_table(table, console, title=name)
        else:
            from rich.console import Console

            with open(output, "w", encoding="utf-8") as fh:
                print_table(table, Console(file=fh, width=200), title=name, limit=table.num_rows)
        return
    if fmt == "parquet":
        write_parquet(table, output)
        return
    if fmt == "xlsx":
        write_xlsx(table, output, sheet=name)
        return
    writer = {"csv": write_csv, "tsv": write_tsv, "json": write_json}[fmt]
    if output is None:
        buf = io.BytesIO()
        writer(table, buf)
        sys.stdout.buffer.write(buf.getvalue())
        sys.stdout.flush()
    else:
        with open(output, "wb") as fh:
            writer(table, fh)
