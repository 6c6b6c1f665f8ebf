"""``import-teams``: Teams admin center CSV and Skype for Business TSV exports to
canonical CDRs, and ``rate`` carrying Microsoft's reference charges into rated/."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from decimal import Decimal as D

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import cdr, deck_row, write_cdrs, write_config

from ratecore.cdrs import CDR_SCHEMA, REFERENCE_SCHEMA
from ratecore.cli import main
from ratecore.errors import InputError
from ratecore.run import rate
from ratecore.teams import IMPORT_SCHEMA, SFB_COLUMNS, TEAMS_COLUMNS, import_teams


def teams_row(**kw):
    """A Teams export row (every column of SPEC §7), by Microsoft's column names."""
    row = {"UsageId": "0b3a1f0e-0000-4000-8000-000000000001", "Call ID": "call-1",
           "Conference ID": "", "User Location": "US", "AAD ObjectId": "6f1c0000-aaaa",
           "UPN": "u1@t1.example", "User Display Name": "Ann Smith",
           "Caller ID": "+12065550100", "Call Type": "user_out", "Number Type": "user",
           "Domestic/International": "International", "Destination Dialed": "United Kingdom",
           "Destination Number": "+442079460000", "Start Time": "2024-03-01T10:00:00Z",
           "End Time": "2024-03-01T10:00:57Z", "Duration Seconds": "57",
           "Connection Fee": "0.00", "Charge": "0.06", "Currency": "USD",
           "Capability": "MCOPSTNPP"}
    row.update(kw)
    return row


def write_export(path, rows, columns=TEAMS_COLUMNS, delimiter=",", encoding="utf-8-sig",
                 newline="\r\n"):
    """An export as Microsoft writes it: a header, RFC 4180 quoting, CRLF, a BOM."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator=newline)
    w.writerow(columns)
    for r in rows:
        w.writerow([r.get(c, "") for c in columns])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def read(path):
    return pq.read_table(path).to_pylist()


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


# ---- the Teams admin center export ---------------------------------------------


def test_teams_export_maps_every_column(tmp):
    """Quoted commas, doubled quotes, a line break inside a field, a BOM, CRLF,
    masked digits, empty optional cells: each canonical field checked."""
    src = write_export(tmp / "PSTN.calls.2024-03-31.csv", [
        teams_row(**{"User Display Name": 'Smith, Ann "The Boss"\r\nSales'}),
        teams_row(**{"UsageId": "0b3a1f0e-0000-4000-8000-000000000002", "Call ID": "call-2",
                     "Conference ID": "conf-9", "UPN": "", "AAD ObjectId": "",
                     "User Display Name": "", "Caller ID": "+44207946****",
                     "Call Type": "Conf_In", "Number Type": "Toll-free",
                     "Destination Number": "+18005550199",
                     "Start Time": "2024-03-31 23:59:59.9999999 +00:00",
                     "End Time": "2024-04-01T00:02:00Z", "Duration Seconds": "",
                     "Connection Fee": "", "Charge": "0.12", "Currency": "usd"}),
        teams_row(**{"UsageId": "0b3a1f0e-0000-4000-8000-000000000003", "Call ID": "call-3",
                     "Call Type": "ucap_out", "UPN": "", "Number Type": "service",
                     "Destination Number": "+1425555****", "Caller ID": "+14255550000",
                     "Start Time": "2024-03-02T09:30:00.250+01:00", "Duration Seconds": "0",
                     "Connection Fee": "0.015", "Charge": "", "Currency": ""}),
    ])
    out = tmp / "cdrs" / "teams.parquet"
    summary = import_teams([src], "t1", out)
    assert pq.read_schema(out).remove_metadata().equals(IMPORT_SCHEMA)
    a, b, c = read(out)
    assert a == {
        "usage_id": "0b3a1f0e-0000-4000-8000-000000000001", "tenant_id": "t1",
        "user_id": "u1@t1.example", "call_type": "user_out", "caller_number": "+12065550100",
        "callee_number": "+442079460000", "number_type": "user",
        "start_time": utc(2024, 3, 1, 10, 0, 0), "duration_seconds": 57,
        "call_id": "call-1", "conference_id": "", "reference_charge": D("0.06"),
        "reference_connection_fee": D(0), "reference_currency": "USD"}
    assert b == {
        "usage_id": "0b3a1f0e-0000-4000-8000-000000000002", "tenant_id": "t1",
        "user_id": "", "call_type": "conf_in", "caller_number": "+44207946****",
        "callee_number": "+18005550199", "number_type": "tollfree",
        # 7 fractional digits truncated to µs: the call stays in March
        "start_time": utc(2024, 3, 31, 23, 59, 59, 999999),
        # no Duration Seconds: End Time - Start Time, rounded up
        "duration_seconds": 121, "call_id": "call-2", "conference_id": "conf-9",
        "reference_charge": D("0.12"), "reference_connection_fee": None,
        "reference_currency": "USD"}
    assert c["start_time"] == utc(2024, 3, 2, 8, 30, 0, 250000)
    assert c["callee_number"] == "+1425555****" and c["caller_number"] == "+14255550000"
    assert c["call_type"] == "ucap_out" and c["user_id"] == "" and c["duration_seconds"] == 0
    assert (c["reference_charge"], c["reference_connection_fee"], c["reference_currency"]) \
        == (None, D("0.015"), None)
    assert str(pq.read_schema(out).field("reference_charge").type) == "decimal128(18, 6)"

    assert summary.rows == 3 and summary.tenant_id == "t1" and summary.out_path == out
    [f] = summary.files
    assert (f.format, f.delimiter, f.encoding, f.rows) == ("teams", ",", "utf-8", 3)
    assert summary.reference_charge == {"USD": D("0.18")}
    assert summary.call_types == {"user_out": 1, "conf_in": 1, "ucap_out": 1}
    assert not summary.unknown_call_types and summary.duplicate_usage_ids == 0
    assert "wrote 3 CDRs for tenant t1" in str(summary)


def test_raw_rfc4180_text(tmp):
    """Hand-written bytes: LF and CRLF mixed, quoted header names, quotes
    inside quotes, a trailing blank line, no BOM, columns in another order
    and an extra column Microsoft may add."""
    text = ('"Call Type","UsageId","Start Time","Duration Seconds","Caller ID",'
            '"Destination Number","Charge","Currency","Operator"\n'
            'user_out,id-1,2024-03-01T10:00:00Z,60,"+1 206 555 0100","+44 20 7946 0000",'
            '"1.5",GBP,"Microsoft, Inc. ""MS"""\r\n'
            'user_in,"id-2",2024-03-01,5,+442079460000,+12065550100,,,\n\n')
    src = tmp / "export.csv"
    src.write_bytes(text.encode())
    out = tmp / "o.parquet"
    import_teams([src], "t9", out)
    a, b = read(out)
    assert (a["usage_id"], a["caller_number"], a["callee_number"]) == \
        ("id-1", "+1 206 555 0100", "+44 20 7946 0000")
    assert (a["reference_charge"], a["reference_currency"]) == (D("1.5"), "GBP")
    assert a["user_id"] == "" and a["call_id"] == "" and a["reference_connection_fee"] is None
    assert b["start_time"] == utc(2024, 3, 1) and b["duration_seconds"] == 5
    assert b["reference_charge"] is None and b["reference_currency"] is None


def test_header_only_writes_an_empty_file(tmp):
    src = write_export(tmp / "e.csv", [])
    summary = import_teams([src], "t1", tmp / "e.parquet")
    assert summary.rows == 0
    assert pq.read_table(tmp / "e.parquet").num_rows == 0


# ---- the Skype for Business export ---------------------------------------------


def sfb_row(**kw):
    row = {"Call ID": "sfb-call-1", "User ID": "u1@t1.example", "Phone number": "+442079460000",
           "User location": "US", "Caller ID": "+12065550100", "Call type": "user_out",
           "Domestic/International": "International", "Destination dialed": "United Kingdom",
           "Number type": "user", "Start Time (UTC)": "2024-03-01T10:00:00Z",
           "Duration": "65", "ConfID": "", "Charge": "0.12", "Currency": "USD",
           "Capability": "MCOPSTNPP"}
    row.update(kw)
    return row


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_sfb_tab_separated_export(tmp, encoding):
    src = write_export(tmp / "sfb.csv", [
        sfb_row(),
        sfb_row(**{"Call ID": "sfb-call-2", "Call type": "conf_out", "ConfID": "c-77",
                   "Duration": "1:02:03", "Phone number": "+4930123***",
                   "Charge": "2", "User ID": "org@t1.example"}),
    ], columns=SFB_COLUMNS, delimiter="\t", encoding=encoding)
    out = tmp / "sfb.parquet"
    summary = import_teams([src], "t1", out)
    [f] = summary.files
    assert (f.format, f.delimiter) == ("sfb", "\t")
    assert f.encoding == ("utf-16" if encoding == "utf-16" else "utf-8")
    a, b = read(out)
    assert a["usage_id"].startswith("sfb-") and len(a["usage_id"]) == 36
    assert {k: a[k] for k in ("user_id", "call_type", "caller_number", "callee_number",
                              "number_type", "start_time", "duration_seconds", "call_id",
                              "conference_id", "reference_charge", "reference_currency")} == {
        "user_id": "u1@t1.example", "call_type": "user_out", "caller_number": "+12065550100",
        "callee_number": "+442079460000", "number_type": "user",
        "start_time": utc(2024, 3, 1, 10), "duration_seconds": 65, "call_id": "sfb-call-1",
        "conference_id": "", "reference_charge": D("0.12"), "reference_currency": "USD"}
    assert a["reference_connection_fee"] is None  # the SfB export has no Connection Fee
    assert (b["call_type"], b["conference_id"], b["duration_seconds"], b["callee_number"]) \
        == ("conf_out", "c-77", 3723, "+4930123***")
    assert b["user_id"] == "org@t1.example" and b["reference_charge"] == D(2)


def test_sfb_usage_ids_are_stable_across_overlapping_exports(tmp):
    """Re-importing the same call gives the same usage_id, so rate rejects the
    repeat as a duplicate instead of charging it twice."""
    one = write_export(tmp / "a.csv", [sfb_row()], columns=SFB_COLUMNS, delimiter="\t")
    two = write_export(tmp / "b.csv", [sfb_row(), sfb_row(Duration="66")],
                       columns=SFB_COLUMNS, delimiter="\t")
    summary = import_teams([one, two], "t1", tmp / "o.parquet")
    ids = [r["usage_id"] for r in read(tmp / "o.parquet")]
    assert ids[0] == ids[1] != ids[2]
    assert summary.duplicate_usage_ids == 1
    assert "1 rows repeat an earlier UsageId" in str(summary)


# ---- refusals --------------------------------------------------------------------


def test_missing_columns_name_the_file_and_column(tmp):
    cols = [c for c in TEAMS_COLUMNS if c not in ("Start Time", "Destination Number")]
    src = write_export(tmp / "x.csv", [teams_row()], columns=cols)
    with pytest.raises(InputError) as e:
        import_teams([src], "t1", tmp / "o.parquet")
    msg = str(e.value)
    assert str(src) in msg and "'start time'" in msg and "'destination number'" in msg
    assert not (tmp / "o.parquet").exists()


def test_bad_rows_fail_the_import_naming_file_line_and_column(tmp):
    """All or nothing: every bad cell is listed with its line (counted in
    physical lines, so a quoted line break moves the next rows down), and no
    file is written, not even over an older one."""
    out = tmp / "o.parquet"
    out.write_bytes(b"older")
    src = write_export(tmp / "bad.csv", [
        teams_row(**{"User Display Name": "two\nlines"}),           # lines 2-3, fine
        teams_row(**{"Start Time": "03/01/2024 10:00"}),           # line 4
        teams_row(Charge="0.1234567", Currency="US$"),   # line 5
        teams_row(**{"Duration Seconds": "1.5", "UsageId": ""}),   # line 6
        teams_row(**{"Connection Fee": "1,5"}),                    # line 7
        teams_row(**{"Duration Seconds": "", "End Time": ""}),     # line 8
    ])
    with src.open("ab") as fh:
        fh.write(b"only,three,fields\r\n")                        # line 9
    with pytest.raises(InputError) as e:
        import_teams([src], "t1", out)
    got = [(p.line, p.column) for p in e.value.problems]
    assert got == [(4, "Start Time"), (5, "Charge"), (5, "Currency"),
                   (6, "Duration Seconds"), (6, "UsageId"), (7, "Connection Fee"),
                   (8, "End Time"), (9, None)]
    msg = str(e.value)
    assert f"{src}:4: column 'Start Time': '03/01/2024 10:00' is not an ISO 8601 timestamp" in msg
    assert "'0.1234567' has more than 6 decimal places" in msg
    assert "'US$' is not an ISO 4217 currency code" in msg
    assert f"{src}:9: 3 fields, the header has 20" in msg
    assert "nothing written" in msg
    assert out.read_bytes() == b"older"
    assert [p.name for p in tmp.iterdir() if p.name.startswith(".")] == []


def test_malformed_quoting_and_encoding_are_refused(tmp):
    src = tmp / "q.csv"
    src.write_bytes(("\r\n".join([",".join(TEAMS_COLUMNS),
                                  'a,"b"c' + "," * 18]) + "\r\n").encode())
    with pytest.raises(InputError, match=r"q.csv:2: malformed CSV"):
        import_teams([src], "t1", tmp / "o.parquet")
    latin = tmp / "l.csv"
    latin.write_bytes(",".join(TEAMS_COLUMNS).encode() + b"\r\n" + "Müller".encode("latin-1"))
    with pytest.raises(InputError, match=r"l.csv:2: not UTF-8 or UTF-16"):
        import_teams([latin], "t1", tmp / "o.parquet")
    with pytest.raises(InputError, match="cannot read"):
        import_teams([tmp / "nope.csv"], "t1", tmp / "o.parquet")
    (tmp / "empty.csv").write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        import_teams([tmp / "empty.csv"], "t1", tmp / "o.parquet")
    good = write_export(tmp / "g.csv", [teams_row()])
    with pytest.raises(InputError, match=r"name it \*\.parquet"):
        import_teams([good], "t1", tmp / "o.csv")
    with pytest.raises(InputError, match="tenant id is empty"):
        import_teams([good], " ", tmp / "o.parquet")


def test_unknown_call_types_are_kept_for_rate_to_reject(tmp):
    src = write_export(tmp / "x.csv", [teams_row(**{"Call Type": "dr_out"}),
                                       teams_row(**{"UsageId": "u2", "Call Type": ""})])
    summary = import_teams([src], "t1", tmp / "o.parquet")
    assert [r["call_type"] for r in read(tmp / "o.parquet")] == ["dr_out", ""]
    assert summary.unknown_call_types == {"dr_out": 1, "": 1}
    assert "dr_out ×1" in str(summary)


def test_cli_import_then_rate(tmp):
    """The two commands of a billing analyst: import-teams, then rate."""
    config = write_config(tmp, [deck_row("44", "0.0600")])
    src = write_export(tmp / "PSTN.calls.csv", [teams_row()])
    runner = CliRunner()
    res = runner.invoke(main, ["import-teams", str(src), "--tenant", "t1",
                               "--out", str(tmp / "cdrs" / "teams.parquet")])
    assert res.exit_code == 0, res.output
    assert "wrote 1 CDRs for tenant t1" in res.output
    res = runner.invoke(main, ["rate", "--config", str(config), "--cdrs", str(tmp / "cdrs"),
                               "--out", str(tmp / "out")])
    assert res.exit_code == 0, res.output
    bad = write_export(tmp / "bad.csv", [teams_row(Charge="abc")])
    res = runner.invoke(main, ["import-teams", str(bad), "--tenant", "t1",
                               "--out", str(tmp / "x.parquet")])
    assert res.exit_code == 2 and "column 'Charge'" in res.output


# ---- rate carries the reference columns into rated/ ------------------------------


def rated(out):
    return {r["usage_id"]: r for r in duckdb.sql(
        f"SELECT * FROM read_parquet('{out}/rated/**/*.parquet', hive_partitioning = true, "
        "union_by_name = true)").to_arrow_table().to_pylist()}


def test_rate_passes_reference_columns_through(tmp):
    """Imported and plain CDR files in one run: every rated file has the same
    schema, the reference columns null where the input had none."""
    config = write_config(tmp, [deck_row("44", "0.0600")])
    import_teams([write_export(tmp / "x.csv", [teams_row()])], "t1", tmp / "cdrs" / "a.parquet")
    write_cdrs(tmp / "cdrs" / "b.parquet", [cdr("plain", "+442079460000", 60)])
    rate(config, [tmp / "cdrs"], tmp / "out")
    files = sorted((tmp / "out" / "rated").rglob("*.parquet"))
    schemas = {str(pq.read_schema(f).remove_metadata()) for f in files}
    assert len(files) == 2 and len(schemas) == 1
    schema = pq.read_schema(files[0])
    names = schema.names
    assert names[: len(CDR_SCHEMA) + 3] == CDR_SCHEMA.names + REFERENCE_SCHEMA.names
    for f in REFERENCE_SCHEMA:
        assert schema.field(f.name).type == f.type
    rows = rated(tmp / "out")
    t = rows["0b3a1f0e-0000-4000-8000-000000000001"]
    assert (t["reference_charge"], t["reference_connection_fee"], t["reference_currency"]) \
        == (D("0.06"), D(0), "USD")
    assert t["charge"] == D("0.06") and t["status"] == "charged"
    p = rows["plain"]
    assert (p["reference_charge"], p["reference_connection_fee"], p["reference_currency"]) \
        == (None, None, None)


def test_rate_reads_reference_columns_from_csv_and_rejects_bad_ones(tmp):
    config = write_config(tmp, [deck_row("44", "0.0600")])
    head = ("usage_id,tenant_id,user_id,call_type,caller_number,callee_number,start_time,"
            "duration_seconds,reference_charge,reference_currency\n")
    line = "{},t1,u1@t1.example,user_out,+12065550100,+442079460000,2024-03-01T10:00:00Z,60,{},{}\n"
    (tmp / "cdrs").mkdir()
    (tmp / "cdrs" / "c.csv").write_text(head + "".join(line.format(*r) for r in [
        ("ok", "0.5", "usd"), ("blank", "", ""), ("bad-money", "1e3", "USD"),
        ("bad-cur", "1", "XYZ"), ("neg", "-0.25", "EUR")]))
    summary = rate(config, [tmp / "cdrs"], tmp / "out")
    rows = rated(tmp / "out")
    assert (rows["ok"]["reference_charge"], rows["ok"]["reference_currency"]) == (D("0.5"), "USD")
    assert (rows["blank"]["reference_charge"], rows["blank"]["reference_currency"]) == (None, None)
    assert rows["neg"]["reference_charge"] == D("-0.25")
    assert rows["ok"]["reference_connection_fee"] is None  # column absent from the file
    assert summary.reasons == {"bad_reference": 2}
    rej = {r["usage_id"]: r for r in duckdb.sql(
        f"SELECT * FROM read_parquet('{tmp}/out/rejects/**/*.parquet')")
        .to_arrow_table().to_pylist()}
    assert "'1e3' is not a decimal amount" in rej["bad-money"]["message"]
    assert "reference_charge" in rej["bad-money"]["message"]
    assert "'XYZ' is not an ISO 4217 currency code" in rej["bad-cur"]["message"]
    assert rej["bad-money"]["reference_charge"] == "1e3"  # the raw row keeps the text


def test_rate_refuses_float_reference_money(tmp):
    config = write_config(tmp, [deck_row("44", "0.0600")])
    t = pa.Table.from_pylist([{**cdr("f", "+442079460000", 60), "reference_charge": 0.1}])
    (tmp / "cdrs").mkdir()
    pq.write_table(t, tmp / "cdrs" / "f.parquet")
    with pytest.raises(InputError, match="reference_charge' holds double; money must be decimal"):
        rate(config, [tmp / "cdrs"], tmp / "out")
    # decimals that do not fit (18, 6) exactly are refused too, never rounded
    t = t.set_column(t.schema.get_field_index("reference_charge"), "reference_charge",
                     pa.array([D("0.1234567")], pa.decimal128(20, 7)))
    pq.write_table(t, tmp / "cdrs" / "f.parquet")
    with pytest.raises(InputError, match="do not fit decimal"):
        rate(config, [tmp / "cdrs"], tmp / "out")
