"""Teams admin center PSTN usage exports → canonical CDRs (SPEC §7).

The style map puts the Teams export with the other CDR readers in
``cdrs.py``; it lives here because its reading is row by row with its own
header mapping, and ``cdrs.py`` is already large. Its output is an ordinary
CDR file: a Parquet file of :data:`ratecore.cdrs.CDR_SCHEMA` plus the three
``reference_*`` columns (:data:`ratecore.cdrs.REFERENCE_SCHEMA`), which
``ratecore rate --cdrs`` reads like any other and carries into ``rated/``.

What is read
------------
* The **Teams admin center** export (Analytics & reports → PSTN usage →
  Export to Excel → ``PSTN.calls.<date>.csv``): RFC 4180 CSV, header
  ``UsageId, Call ID, Conference ID, User Location, AAD ObjectId, UPN,
  User Display Name, Caller ID, Call Type, Number Type,
  Domestic/International, Destination Dialed, Destination Number, Start
  Time, End Time, Duration Seconds, Connection Fee, Charge, Currency,
  Capability`` (Microsoft's "Fields in the export" table of
  pstn-usage-report).
* The older **Skype for Business admin center** export (Reports → PSTN
  usage details → Export to Excel): a tab-separated file named ``.csv``.
  Its documented columns are the report's: ``Call ID, User ID, Phone
  number, User location, Caller ID, Call type, Domestic/International,
  Destination dialed, Number type, Start Time (UTC), Duration, ConfID,
  Charge, Currency, Capability``. It has no ``UsageId``, ``End Time`` or
  ``Connection Fee``.

The format is detected from the header line: the delimiter (comma or tab)
that splits it into more known column names wins; column names are matched
case-insensitively, ignoring extra spaces and a ``(UTC)`` suffix, and the
columns may come in any order. Extra columns are ignored. Text is UTF-8
(with or without BOM) or UTF-16 with a BOM (what "Unicode text" exports
write); quoted fields may hold commas, tabs, doubled quotes and line breaks.

How columns map
---------------
============================  =====================================================
canonical column              from
============================  =====================================================
``usage_id``                  ``UsageId``. The SfB export has none: there it is
                              ``sfb-`` + a SHA-256 of the row's Call ID, start time,
                              call type, both numbers and duration, so re-importing
                              an overlapping export gives the same ids and
                              ``rate`` rejects the repeats as ``duplicate``.
``tenant_id``                 the ``tenant_id`` argument (an export is one tenant's)
``user_id``                   ``UPN`` (SfB: ``User ID``); empty for bot calls
``call_type``                 ``Call Type``, trimmed and lower-cased (below)
``caller_number``             ``Caller ID``
``callee_number``             ``Destination Number`` (SfB: ``Phone number``)
``number_type``               ``Number Type``, lower-cased, with spaces, ``-`` and
                              ``_`` dropped (``Toll-free`` → ``tollfree``)
``start_time``                ``Start Time``, ISO 8601 (a ``T`` or a space, 0–7
                              fractional digits truncated to µs, ``Z`` or an
                              offset; none = UTC)
``duration_seconds``          ``Duration Seconds`` (SfB: ``Duration``, also as
                              ``[h:]mm:ss``); when empty, ``End Time`` − ``Start
                              Time`` rounded up to whole seconds
``call_id``                   ``Call ID``
``conference_id``             ``Conference ID`` (SfB: ``ConfID``)
``reference_charge``          ``Charge``, decimal128(18, 6), never a float
``reference_connection_fee``  ``Connection Fee`` (null in SfB exports)
``reference_currency``        ``Currency``, upper-cased ISO 4217
============================  =====================================================

``User Location``, ``AAD ObjectId``, ``User Display Name``,
``Domestic/International``, ``Destination Dialed`` and ``Capability`` are
not carried: ratecore decides location, destination and license itself
from its config, which is what the audit compares.

**Numbers** are kept exactly as exported (trimmed), masked digits included
(``+1425555****``): ``rate`` normalises them and rates a masked number on
its known digits. **Caller and callee do not swap with the direction**:
Microsoft's export documentation describes ``Caller ID`` in words copied
from the report's "Phone number", but the same record in Graph
(``pstnCallLogRow``: ``callerNumber`` "number of the user or bot who made
the call", ``calleeNumber`` "... who received the call") and the SfB report
("Caller ID is the caller's telephone number for inbound calls ... the
number from which the call originated for outbound calls") both make
``Caller ID`` the party that placed the call and ``Destination Number``
the one that received it, whatever the direction. The direction (the call
type) then decides which of the two ``rate`` prices (SPEC §4): the callee
of an outbound call, the caller of a toll-free inbound one.

**Call types** are Microsoft's own, which SPEC §4 uses unchanged
(``user_in``, ``user_out``, ``user_out_conf``, ``user_out_transfer``,
``user_out_forwarding``, ``conf_in``, ``conf_out``, ``ucap_in``,
``ucap_out``, plus ``unassigned_in`` and ``emergency_out``). Other values
(Direct Routing's ``dr_*``, anything new) are written unchanged, so
``rate`` rejects those rows as ``unknown_call_type`` into ``rejects/``
(with Microsoft's charge in the raw row) instead of the import guessing;
the summary lists them.

Bad rows
--------
The import is all or nothing: every source row becomes exactly one CDR, or
the import fails with an :class:`~ratecore.errors.InputError` listing each
bad cell as ``file:line: column 'Name': problem`` and writes nothing (the
Parquet file is written to a temporary name and renamed at the end). A row
is bad when a value cannot be represented in the canonical file: an empty
``UsageId``, a start time or duration that does not parse, money that is
not a decimal with at most 6 places, a currency that is not ISO 4217, a
wrong number of fields. Skipping such rows would lose a charged call before
anything could report it. Values that can be represented but that ratecore
will not rate (unknown call type, missing or malformed number, negative
duration, a duplicate ``UsageId``) are written and left to ``rate``, whose
``rejects/`` records them with a reason; the summary counts them. A file
that cannot be read, is not UTF-8/UTF-16, has no header, or lacks a
required column (call type, start time, caller, callee, a duration or end
time, and ``UsageId`` or ``Call ID``) fails the import naming the file and
column.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ratecore.cdrs import CDR_SCHEMA, REFERENCE_SCHEMA
from ratecore.deck import CURRENCIES
from ratecore.errors import InputError, Problem
from ratecore.pricing import CALL_TYPES

#: The columns of the Teams admin center export, in Microsoft's order.
TEAMS_COLUMNS = (
    "UsageId", "Call ID", "Conference ID", "User Location", "AAD ObjectId", "UPN",
    "User Display Name", "Caller ID", "Call Type", "Number Type", "Domestic/International",
    "Destination Dialed", "Destination Number", "Start Time", "End Time", "Duration Seconds",
    "Connection Fee", "Charge", "Currency", "Capability")
#: The columns of the Skype for Business admin center's PSTN usage details report.
SFB_COLUMNS = (
    "Call ID", "User ID", "Phone number", "User location", "Caller ID", "Call type",
    "Domestic/International", "Destination dialed", "Number type", "Start Time (UTC)",
    "Duration", "ConfID", "Charge", "Currency", "Capability")
#: Schema of the file :func:`import_teams` writes.
IMPORT_SCHEMA = pa.schema(list(CDR_SCHEMA) + list(REFERENCE_SCHEMA))

# field -> accepted header names (normalised), the Teams name first
_HEADERS = {
    "usage_id": ("usageid",),
    "call_id": ("call id",),
    "conference_id": ("conference id", "confid"),
    "upn": ("upn", "user id"),
    "caller": ("caller id",),
    "call_type": ("call type",),
    "number_type": ("number type",),
    "callee": ("destination number", "phone number"),
    "start": ("start time",),
    "end": ("end time",),
    "duration": ("duration seconds", "duration"),
    "connection_fee": ("connection fee",),
    "charge": ("charge",),
    "currency": ("currency",),
}
_KNOWN = {n for names in _HEADERS.values() for n in names} | {
    "user location", "aad objectid", "user display name", "domestic/international",
    "destination dialed", "capability"}
_REQUIRED = ("call_type", "start", "caller", "callee")
#: Stop reading a file after this many bad cells (the error lists the first ones).
MAX_PROBLEMS = 1000
_CHUNK = 65536

_TIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?")
_MONEY_RE = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,6})?")
_CLOCK_RE = re.compile(r"(?:(\d+):)?([0-5]?\d):([0-5]\d)")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass
class ImportedFile:
    """One export read: its path, detected format, and how many CDRs it gave."""

    path: str
    format: str        # "teams" (admin center CSV) or "sfb" (Skype for Business)
    delimiter: str     # "," or "\t"
    encoding: str      # "utf-8" or "utf-16"
    rows: int = 0


@dataclass
class ImportSummary:
    """What :func:`import_teams` wrote.

    ``reference_charge`` totals Microsoft's ``Charge`` per currency
    (``""`` for rows without one) as exact ``Decimal``. The counters name
    what ``rate`` will reject: call types it does not know, and
    ``UsageId`` values seen more than once across the files.
    """

    out_path: Path
    tenant_id: str
    files: list[ImportedFile] = field(default_factory=list)
    rows: int = 0
    call_types: Counter = field(default_factory=Counter)
    unknown_call_types: Counter = field(default_factory=Counter)
    duplicate_usage_ids: int = 0
    reference_charge: dict = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The summary as short lines for a terminal."""
        out = [f"{f.path}: {f.rows:,} rows ({_FORMAT_NAMES[f.format]}, "
               f"{'tab' if f.delimiter == chr(9) else 'comma'}-separated, {f.encoding})"
               for f in self.files]
        out.append(f"wrote {self.rows:,} CDRs for tenant {self.tenant_id} → {self.out_path}")
        for cur, total in sorted(self.reference_charge.items()):
            out.append(f"Microsoft's charge: {cur or '(no currency)'} {total}")
        if self.unknown_call_types:
            out.append("call types ratecore does not rate (rate rejects them): " + ", ".join(
                f"{k or '(empty)'} ×{n}" for k, n in sorted(self.unknown_call_types.items())))
        if self.duplicate_usage_ids:
            out.append(f"{self.duplicate_usage_ids:,} rows repeat an earlier UsageId "
                       "(rate rejects them as duplicate)")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


_FORMAT_NAMES = {"teams": "Teams admin center export", "sfb": "Skype for Business export"}


def import_teams(paths, tenant_id: str, out_path) -> ImportSummary:
    """Convert Teams / Skype for Business PSTN usage exports to one CDR file.

    Parameters
    ----------
    paths : iterable of str or Path
        Export files, read in the order given.
    tenant_id : str
        The ratecore tenant the calls belong to.
    out_path : str or Path
        The Parquet file to write (``*.parquet``; parent directories are
        created). Written whole or not at all.

    Returns
    -------
    ImportSummary

    Raises
    ------
    InputError
        An unreadable file, a missing required column, or any bad row (each
        named by file, line and column); nothing is written.
    """
    tenant_id = (tenant_id or "").strip()
    if not tenant_id:
        raise InputError("import-teams: the tenant id is empty")
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".parquet":
        raise InputError(f"{out_path}: the output is a Parquet file; name it *.parquet "
                         "so that 'ratecore rate --cdrs DIR' finds it")
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("import-teams: no export files given")
    summary = ImportSummary(out_path, tenant_id)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    problems: list[Problem] = []
    seen: set[str] = set()
    charge_totals: dict[str, Decimal] = {}
    writer = pq.ParquetWriter(tmp_path, IMPORT_SCHEMA, compression="zstd")
    try:
        for path in paths:
            info = _read_export(path, tenant_id, writer, problems, seen, summary,
                                charge_totals)
            summary.files.append(info)
            summary.rows += info.rows
            if len(problems) >= MAX_PROBLEMS:
                break
        writer.close()
        if problems:
            raise InputError(
                f"import-teams: {len(problems)} bad value(s)"
                + (f" (stopped after {MAX_PROBLEMS})" if len(problems) >= MAX_PROBLEMS else "")
                + "; nothing written", problems)
        os.replace(tmp_path, out_path)
    finally:
        writer.close()
        if tmp_path.exists():
            tmp_path.unlink()
    summary.reference_charge = charge_totals
    return summary


def _norm_header(name: str) -> str:
    name = " ".join(name.replace("\ufeff", "").strip().lower().split())
    return name[: -len("(utc)")].rstrip() if name.endswith("(utc)") else name


def _encoding(path: Path) -> tuple[str, str]:
    """(codec, display name) from the BOM; UTF-8 when there is none."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from e
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16", "utf-16"
    if len(head) >= 2 and (head[1:2] == b"\x00" or head[0:1] == b"\x00"):
        # UTF-16 without a BOM: ASCII header letters are half NUL bytes
        return ("utf-16-le" if head[1:2] == b"\x00" else "utf-16-be"), "utf-16"
    return "utf-8-sig", "utf-8"


def _read_export(path: Path, tenant_id: str, writer, problems: list[Problem], seen: set,
                 summary: ImportSummary, charge_totals: dict) -> ImportedFile:
    codec, enc_name = _encoding(path)
    with _open_text(path, codec) as fh:
        try:
            header_line = fh.readline()
        except UnicodeDecodeError as e:
            raise _encoding_error(path, codec, e) from e
        if not header_line.strip():
            raise InputError(f"{path}: empty file, expected a header row")
        delimiter = max((",", "\t"), key=lambda d: sum(
            _norm_header(h) in _KNOWN for h in next(csv.reader([header_line], delimiter=d))))
        header = [_norm_header(h) for h in next(csv.reader([header_line], delimiter=delimiter))]
        dup = sorted({h for h in header if h and header.count(h) > 1})
        if dup:
            raise InputError(f"{path}: column(s) named twice in the header: " + ", ".join(dup))
        raw_names = next(csv.reader([header_line], delimiter=delimiter))
        col = {}
        for key, names in _HEADERS.items():
            for n in names:
                if n in header:
                    col[key] = header.index(n)
                    break
        missing = [_HEADERS[k][0] for k in _REQUIRED if k not in col]
        if "duration" not in col and "end" not in col:
            missing.append("duration seconds (or end time)")
        if "usage_id" not in col and "call_id" not in col:
            missing.append("usageid (or call id)")
        if missing:
            raise InputError(f"{path}: not a Teams PSTN usage export; missing column(s) "
                             + ", ".join(f"'{m}'" for m in missing)
                             + f" (header has: {', '.join(raw_names)})")
        fmt = "teams" if "usage_id" in col else "sfb"
        info = ImportedFile(str(path), fmt, delimiter, enc_name)
        names = {k: raw_names[i].strip().lstrip("\ufeff") for k, i in col.items()}
        reader = csv.reader(fh, delimiter=delimiter, strict=True)
        rows = _Columns()
        line = 1
        while True:
            try:
                record = next(reader)
            except StopIteration:
                break
            except UnicodeDecodeError as e:
                raise _encoding_error(path, codec, e) from e
            except csv.Error as e:
                raise InputError(f"{path}:{line + 1}: malformed {'TSV' if delimiter == chr(9) else 'CSV'}"
                                 f" ({e}); nothing written") from e
            first_line, line = line + 1, 1 + reader.line_num
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # blank line
            if len(record) != len(header):
                problems.append(Problem(str(path), first_line, None,
                                        f"{len(record)} fields, the header has {len(header)}"))
            else:
                _convert(record, col, names, fmt, tenant_id, str(path), first_line, rows,
                         problems, charge_totals)
            if len(problems) >= MAX_PROBLEMS:
                break
            if len(rows) >= _CHUNK:
                _flush(rows, writer, problems, seen, summary)
        _flush(rows, writer, problems, seen, summary)
        info.rows = rows.written
    return info


def _open_text(path: Path, codec: str):
    try:
        return open(path, encoding=codec, newline="")
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from e


def _encoding_error(path: Path, codec: str, e: UnicodeDecodeError) -> InputError:
    """The error for undecodable text, naming the first bad line (the decoder
    reads ahead in blocks, so the line is found again in bytes)."""
    where = str(path)
    if codec.startswith("utf-8"):
        with open(path, "rb") as fh:
            for number, raw in enumerate(fh, 1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    where += f":{number}"
                    break
    return InputError(f"{where}: not UTF-8 or UTF-16 text ({e.reason}); "
                      "re-save the export as UTF-8")


class _Columns:
    """Canonical columns of converted rows, flushed to Parquet in chunks."""

    def __init__(self):
        self.data = {name: [] for name in IMPORT_SCHEMA.names}
        self.written = 0

    def __len__(self):
        return len(self.data["usage_id"])


def _flush(rows: _Columns, writer, problems, seen: set, summary: ImportSummary) -> None:
    n = len(rows)
    if not n:
        return
    if not problems:  # once a file is bad nothing is written; keep checking only
        writer.write_table(pa.table(rows.data, schema=IMPORT_SCHEMA))
    for uid in rows.data["usage_id"]:
        if uid in seen:
            summary.duplicate_usage_ids += 1
        else:
            seen.add(uid)
    for ct in rows.data["call_type"]:
        summary.call_types[ct] += 1
        if ct not in CALL_TYPES:
            summary.unknown_call_types[ct] += 1
    rows.written += n
    for name in rows.data:
        rows.data[name] = []


def _convert(record, col, names, fmt, tenant_id, file, line, rows: _Columns, problems,
             charge_totals) -> None:
    def cell(key):
        return record[col[key]].strip() if key in col else ""

    def bad(key, why):
        problems.append(Problem(file, line, names.get(key), why))

    ok = True
    start_text = cell("start")
    start = _parse_time(start_text)
    if start is None:
        bad("start", f"{start_text!r} is not an ISO 8601 timestamp" if start_text else "empty")
        ok = False
    dur_text = cell("duration")
    duration = None
    if dur_text:
        duration = _parse_duration(dur_text)
        if duration is None:
            bad("duration", f"{dur_text!r} is not a whole number of seconds")
            ok = False
    else:
        end_text = cell("end")
        end = _parse_time(end_text)
        if end is None:
            key = "end" if "end" in col else "duration"
            bad(key, f"{end_text!r} is not an ISO 8601 timestamp" if end_text
                else "empty (no duration and no end time)")
            ok = False
        elif start is not None:
            duration = -(-(end - start) // 1_000_000)  # whole seconds, rounded up

    money = {}
    for key in ("charge", "connection_fee"):
        text = cell(key)
        if not text:
            money[key] = None
        elif _MONEY_RE.fullmatch(text):
            money[key] = Decimal(text)
        else:
            why = (f"{text!r} has more than 6 decimal places"
                   if "." in text and len(text.split(".", 1)[1]) > 6
                   and _MONEY_RE.fullmatch(text.split(".", 1)[0] + ".0")
                   else f"{text!r} is not a decimal amount (digits, '.' for the decimals)")
            bad(key, why)
            ok = False
    currency = cell("currency").upper() or None
    if currency is not None and currency not in CURRENCIES:
        bad("currency", f"{cell('currency')!r} is not an ISO 4217 currency code")
        ok = False

    if fmt == "teams":
        usage_id = cell("usage_id")
        if not usage_id:
            bad("usage_id", "empty")
            ok = False
    else:
        usage_id = "sfb-" + hashlib.sha256("\x1f".join(
            (cell("call_id"), str(start), cell("call_type").lower(), cell("caller"),
             cell("callee"), str(duration))).encode()).hexdigest()[:32]
    if not ok:
        return
    if money["charge"] is not None:
        key = currency or ""
        charge_totals[key] = charge_totals.get(key, Decimal(0)) + money["charge"]
    d = rows.data
    d["usage_id"].append(usage_id)
    d["tenant_id"].append(tenant_id)
    d["user_id"].append(cell("upn"))
    d["call_type"].append(cell("call_type").lower())
    d["caller_number"].append(cell("caller"))
    d["callee_number"].append(cell("callee"))
    d["number_type"].append(re.sub(r"[\s_-]+", "", cell("number_type").lower()))
    d["start_time"].append(start)
    d["duration_seconds"].append(duration)
    d["call_id"].append(cell("call_id"))
    d["conference_id"].append(cell("conference_id"))
    d["reference_charge"].append(money["charge"])
    d["reference_connection_fee"].append(money["connection_fee"])
    d["reference_currency"].append(currency)


def _parse_time(text: str) -> int | None:
    """ISO 8601 text to UTC microseconds since the epoch; None if it does not parse."""
    m = _TIME_RE.fullmatch(text)
    if not m:
        return None
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        t = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0),
                     int((frac or "").ljust(6, "0")[:6]), tzinfo=timezone.utc)
    except ValueError:
        return None
    if tz and tz not in ("Z", "z"):
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        if len(digits) not in (2, 4) or int(digits[2:] or 0) > 59 or int(digits[:2]) > 23:
            return None
        t -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
    delta = t - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _parse_duration(text: str) -> int | None:
    if re.fullmatch(r"-?[0-9]{1,15}", text):
        return int(text)
    m = _CLOCK_RE.fullmatch(text)
    if m:
        h, mi, s = m.groups()
        return int(h or 0) * 3600 + int(mi) * 60 + int(s)
    return None
