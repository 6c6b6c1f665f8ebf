"""Deck loading, validation (SPEC §2) and compilation."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import DECK_HEADER, deck_row, write_csv, write_deck

from ratecore import _lookup
from ratecore.deck import SPACE, load_decks, load_rate_book
from ratecore.errors import DeckError


def refused(tmp, rows, name="deck.csv"):
    with pytest.raises(DeckError) as e:
        load_rate_book(write_deck(tmp / name, rows))
    return e.value


@pytest.mark.parametrize("bad, column, words", [
    ({"prefix": "44a"}, "prefix", "not a prefix of 1 to 15 digits"),
    ({"prefix": ""}, "prefix", "not a prefix"),
    ({"prefix": "1234567890123456"}, "prefix", "not a prefix"),
    ({"country": "QQ"}, "country", "unknown country code 'QQ'"),
    ({"currency": "XYZ"}, "currency", "unknown currency code"),
    ({"service": "inbound"}, "service", "is not one of"),
    ({"rate": "-0.01"}, "rate", "negative price"),
    ({"rate": "0.0000001"}, "rate", "more than 6 decimal places"),
    ({"rate": "abc"}, "rate", "not a decimal amount"),
    ({"rate": ""}, "rate", "not a decimal amount"),
    ({"connect_fee": "-1"}, "connect_fee", "negative price"),
    ({"min_charge": "1000000"}, "min_charge", "above the largest accepted price"),
    ({"initial_increment": "0"}, "initial_increment", "from 1 to"),
    ({"next_increment": "1.5"}, "next_increment", "whole number"),
    ({"effective_to": "2023-12-31"}, "effective_to", "not after effective_from"),
    ({"effective_to": "2024-01-01"}, "effective_to", "not after effective_from"),
    ({"effective_from": "2024-02-30"}, "effective_from", "not a date"),
    ({"effective_from": ""}, "effective_from", "not a date"),
    ({"blocked": "maybe"}, "blocked", "not a boolean"),
    ({"number_class": "satellite"}, "number_class", "is not one of"),
    ({"rounding": "bankers"}, "rounding", "is not one of"),
    ({"decimals": "7"}, "decimals", "0 to 6"),
    ({"destination": ""}, "destination", "empty"),
])
def test_bad_cell_names_file_line_column(tmp, bad, column, words):
    e = refused(tmp, [deck_row("44"), {**deck_row("33"), **bad}])
    assert len(e.problems) == 1
    p = e.problems[0]
    assert (p.file, p.line, p.column) == (str(tmp / "deck.csv"), 3, column)
    assert words in p.message
    assert f"deck.csv:3: column '{column}'" in str(e)


def test_every_bad_cell_is_reported(tmp):
    e = refused(tmp, [deck_row("4x"), deck_row("33", rate="-1"), deck_row("34", country="ZZ")])
    assert sorted((p.line, p.column) for p in e.problems) == [
        (2, "prefix"), (3, "rate"), (4, "country")]


def test_mixed_currencies_refused(tmp):
    e = refused(tmp, [deck_row("44"), deck_row("33", currency="EUR")])
    assert e.problems[0].column == "currency" and "mixed currencies" in e.problems[0].message
    assert e.problems[0].line == 3


def test_mixed_rounding_refused(tmp):
    e = refused(tmp, [deck_row("44", rounding="up"), deck_row("33", rounding="down")])
    assert "mixed rounding" in str(e)


def test_overlapping_versions_name_both_rows(tmp):
    e = refused(tmp, [deck_row("44", effective_to="2024-06-01"), deck_row("33"),
                      deck_row("44", effective_from="2024-05-31")])
    p = e.problems[0]
    assert p.line == 4 and "overlaps the one at" in p.message and "deck.csv:2" in p.message


def test_same_prefix_twice_open_ended_overlaps(tmp):
    refused(tmp, [deck_row("44"), deck_row("44", effective_from="2025-01-01")])


def test_same_prefix_in_other_service_or_deck_is_fine(tmp):
    book = load_rate_book(write_deck(tmp / "d.csv", [
        deck_row("44"), deck_row("44", service="conference_dialout"),
        deck_row("44", deck="d2", currency="EUR")]))
    assert set(book.decks) == {"d1", "d2"}
    assert book.decks["d2"].currency == "EUR"


def test_adjacent_versions_are_fine(tmp):
    load_rate_book(write_deck(tmp / "d.csv", [
        deck_row("44", effective_to="2024-06-01"), deck_row("44", effective_from="2024-06-01")]))


def test_missing_column_named(tmp):
    path = tmp / "d.csv"
    path.write_text("deck,currency,service,prefix,country,destination,effective_from\n"
                    "d1,USD,outbound,44,GB,UK,2024-01-01\n")
    with pytest.raises(DeckError, match="missing required column.*'rate'"):
        load_rate_book(path)


def test_unreadable_and_empty(tmp):
    with pytest.raises(DeckError, match="no such deck file"):
        load_rate_book(tmp / "nope.csv")
    (tmp / "empty").mkdir()
    with pytest.raises(DeckError, match="no deck files"):
        load_rate_book(tmp / "empty")
    write_csv(tmp / "hdr.csv", DECK_HEADER, [])
    with pytest.raises(DeckError, match="no deck rows"):
        load_rate_book(tmp / "hdr.csv")


def test_parquet_deck_and_directory_of_decks(tmp):
    rows = [deck_row("44", "0.01"), deck_row("447", "0.1")]
    pq.write_table(pa.Table.from_pylist(rows), tmp / "a.parquet")
    write_deck(tmp / "b.csv", [deck_row("33", "0.02", deck="d2")])
    book = load_rate_book(tmp)
    assert book.n_rows == 3 and set(book.decks) == {"d1", "d2"}
    bad = [deck_row("44", rate="x")]
    pq.write_table(pa.Table.from_pylist(bad), tmp / "bad.parquet")
    with pytest.raises(DeckError) as e:
        load_decks(tmp / "bad.parquet")
    assert e.value.problems[0].line == 1  # Parquet: 1-based row


def test_bom_and_spaces_in_header(tmp):
    path = tmp / "d.csv"
    path.write_bytes(b"\xef\xbb\xbfdeck, currency,service,prefix,country,destination,rate,"
                     b"effective_from\nd1,USD,outbound,44,GB,UK,0.01,2024-01-01\n")
    assert load_rate_book(path).n_rows == 1


def test_timestamps_with_offsets(tmp):
    book = load_rate_book(write_deck(tmp / "d.csv", [
        deck_row("44", effective_from="2024-01-01T02:00:00+02:00")]))
    assert book.versions["eff_from"][0] == 1704067200 * 10**6


# --- flattening -------------------------------------------------------------

def intervals(prefixes):
    ps = sorted(prefixes, key=lambda p: (int(p) * 10 ** (15 - len(p)), len(p)))
    lo = np.array([int(p) * 10 ** (15 - len(p)) for p in ps], dtype=np.int64)
    hi = np.array([(int(p) + 1) * 10 ** (15 - len(p)) for p in ps], dtype=np.int64)
    return ps, lo, hi


def test_flatten_labels_innermost_prefix():
    ps, lo, hi = intervals(["1", "12", "123", "13", "9"])
    starts, labels, parent = _lookup.flatten(lo, hi)
    got = [(int(s), ps[lab] if lab >= 0 else None) for s, lab in zip(starts, labels)]
    e = 10**12
    assert got == [(0, None), (100 * e, "1"), (120 * e, "12"), (123 * e, "123"),
                   (124 * e, "12"), (130 * e, "13"), (140 * e, "1"), (200 * e, None),
                   (900 * e, "9")]
    assert [ps[p] if p >= 0 else None for p in parent] == [None, "1", "12", "1", None]


def test_flatten_empty_and_full():
    starts, labels, parent = _lookup.flatten(np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert starts.tolist() == [0] and labels.tolist() == [-1]
    ps, lo, hi = intervals([str(d) for d in range(10)])
    starts, labels, _ = _lookup.flatten(lo, hi)
    assert len(starts) == 10 and -1 not in labels.tolist()


def test_compiled_tables_cover_number_space(tmp):
    rng = np.random.default_rng(7)
    prefixes = sorted({str(rng.integers(1, 10**rng.integers(1, 9))) for _ in range(3000)})
    book = load_rate_book(write_deck(tmp / "d.csv", [deck_row(p) for p in prefixes]))
    rs = book.range_start[: np.searchsorted(book.range_start[1:], 0) + 1]
    assert rs[0] == 0 and np.all(np.diff(rs) > 0) and rs[-1] < SPACE
    # every range's label is a prefix of every number in it, and the longest
    numbers = rng.integers(0, SPACE, 20000)
    table = np.zeros(len(numbers), np.int16)
    rows = _lookup.lookup(book, table, numbers, np.full(len(numbers), 15, np.int8),
                          np.full(len(numbers), 1735689600 * 10**6, np.int64))
    prefix_set = set(prefixes)
    for num, row in zip(numbers.tolist(), rows.tolist()):
        digits = f"{num:015d}"
        best = max((digits[:k] for k in range(1, 16) if digits[:k] in prefix_set),
                   key=len, default=None)
        got = book.rows.column("prefix")[row].as_py() if row >= 0 else None
        assert got == best, digits


def test_struct_layout_matches_numpy_dtypes():
    """The kernels read nodes, versions and row terms as C structs."""
    from ratecore.deck import NODE_DTYPE, ROW_DTYPE, VERSION_DTYPE
    assert _lookup.STRUCT_SIZES == {"Node": NODE_DTYPE.itemsize,
                                    "Version": VERSION_DTYPE.itemsize,
                                    "RowTerms": ROW_DTYPE.itemsize}


def test_nodes_and_priced_terms_each_sit_in_one_cache_line(tmp):
    """The pricing kernel prefetches one line per node and per deck row: the
    arrays start on a line, no node crosses one, and a row's first 16 bytes
    (increments, blocked: all pricing reads) never do."""
    book = load_rate_book(write_deck(tmp / "d.csv", [deck_row(str(p)) for p in range(10, 99)]))
    for arr, read in ((book.nodes, book.nodes.dtype.itemsize), (book.row_terms, 16)):
        assert arr.ctypes.data % 64 == 0
        start = np.arange(len(arr)) * arr.dtype.itemsize
        assert (start // 64 == (start + read - 1) // 64).all()
    assert book.row_terms.dtype.fields["blocked"][1] < 16
