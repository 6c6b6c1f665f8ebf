"""The config directory (SPEC §7): tenants and, through deck.py, rate decks.

Every file is validated whole; problems name file, line and column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ratecore import fields
from ratecore.deck import COUNTRIES, CURRENCIES, RateBook
from ratecore.errors import ConfigError

TENANT_COLUMNS = ("tenant_id", "name", "country", "currency", "deck")


@dataclass
class Tenants:
    """tenants.csv, validated, with each tenant's deck resolved in a RateBook."""

    table: pa.Table
    ids: pa.Array           # tenant_id, in file order
    deck_index: np.ndarray  # int16 RateBook.deck_index of each tenant

    def lookup(self, tenant_id: pa.Array) -> np.ndarray:
        """Row in `ids` of each tenant id; -1 where unknown."""
        return fields.by_value(tenant_id, lambda a: np.asarray(
            pc.index_in(a, self.ids).fill_null(-1)).astype(np.int64), np.int64(-1))


def load_tenants(path: Path, book: RateBook, *, by_currency: bool = False) -> Tenants:
    """Read tenants.csv and bind each tenant to its deck.

    With ``by_currency`` (a candidate deck given with ``--deck``), a tenant
    whose deck id is not in the book takes the book's only deck in the
    tenant's currency.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: missing (the config directory needs tenants.csv)")
    raw, is_csv = fields.read_text_table(path, ConfigError)
    missing = [c for c in TENANT_COLUMNS if c not in raw.column_names]
    if missing:
        raise ConfigError(f"{path}: missing required column(s) "
                          + ", ".join(f"'{c}'" for c in missing))
    ck = fields.CellChecker(path, raw, is_csv)
    ids = ck.col("tenant_id")
    ck.flag(fields.blank(ids), "tenant_id", lambda t: "tenant_id is empty")
    counts = pc.value_counts(ids)
    dup_ids = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    ck.flag(fields.to_mask(pc.is_in(ids, dup_ids)), "tenant_id",
            lambda t: f"tenant {t!r} is listed more than once")
    country = ck.col("country")
    ck.flag(~fields.to_mask(pc.is_in(country, pa.array(sorted(COUNTRIES)))), "country",
            lambda t: f"unknown country code {t!r}")
    currency = ck.col("currency")
    ck.flag(~fields.to_mask(pc.is_in(currency, pa.array(sorted(CURRENCIES)))), "currency",
            lambda t: f"unknown currency code {t!r}")
    deck = ck.col("deck")
    if by_currency:
        per_currency: dict[str, list[str]] = {}
        for info in book.decks.values():
            per_currency.setdefault(info.currency, []).append(info.deck)
        names = deck.to_pylist()
        cur = currency.to_pylist()
        for i, d in enumerate(names):
            if d not in book.deck_index and len(per_currency.get(cur[i], [])) == 1:
                names[i] = per_currency[cur[i]][0]
        deck = pa.array(names, pa.string())
    known = fields.to_mask(pc.is_in(deck, pa.array(sorted(book.deck_index))))
    ck.flag(~known, "deck", lambda t: f"unknown deck {t!r} (decks: {', '.join(sorted(book.deck_index))})")
    deck_currency = pa.array([book.decks[d].currency if d in book.decks else None
                              for d in deck.to_pylist()], pa.string())
    ck.flag(known & ~fields.to_mask(pc.equal(deck_currency, currency)), "currency",
            lambda t: f"currency {t!r} differs from the currency of the tenant's deck")
    if ck.problems:
        raise ConfigError(f"{path}: tenants refused", ck.problems)
    deck_index = np.array([book.deck_index[d] for d in deck.to_pylist()], dtype=np.int16)
    table = raw.set_column(raw.column_names.index("deck"), "deck", deck)
    return Tenants(table, ids, deck_index)
