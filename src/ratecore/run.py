"""One rating run: read CDRs, price them, publish rated records and rejects.

The run stages everything under ``OUT/.staging-*`` and publishes at the end
by renaming, so a failed or refused run leaves the previous outputs as they
were. Within a run the first accepted row of a ``usage_id`` wins; later ones
are rejected as ``duplicate``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ratecore import outputs, pricing
from ratecore.cdrs import CDR_COLUMNS, CdrBatch, read_cdrs
from ratecore.config import load_tenants
from ratecore.deck import RateBook, load_rate_book
from ratecore.errors import InputError

OUTPUT_DIRS = ("rated", "rejects")


@dataclass
class RunSummary:
    """What a run did, for the CLI and the demo."""

    out_dir: Path
    read: int = 0
    rated: int = 0
    rejected: int = 0
    statuses: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    charge_micro: Counter = field(default_factory=Counter)  # per currency
    seconds: float = 0.0


@dataclass
class _Part:
    rated: pa.Table
    file: str
    rows: np.ndarray


def load_config(config_dir: Path, deck_file: Path | None = None):
    """(RateBook, Tenants) of a config directory, or with a candidate deck."""
    config_dir = Path(config_dir)
    book = load_rate_book(deck_file if deck_file else config_dir / "decks")
    tenants = load_tenants(config_dir / "tenants.csv", book, by_currency=deck_file is not None)
    return book, tenants


def _price_batch(batch: CdrBatch, book: RateBook, tenants, threads: int) -> pricing.Priced:
    cdrs = batch.cdrs
    tenant_row = tenants.lookup(cdrs.column("tenant_id").combine_chunks())
    batch.reject(tenant_row < 0, "unknown_tenant",
                 lambda i: f"column 'tenant_id': unknown tenant {batch.raw.column('tenant_id')[i].as_py()!r}")
    ok = batch.reason == None  # noqa: E711
    deck = np.where(ok, tenants.deck_index[np.where(tenant_row < 0, 0, tenant_row)], -1)
    col = lambda name: cdrs.column(name).combine_chunks()  # noqa: E731
    priced = pricing.price(
        book, call_type=pricing.call_type_codes(col("call_type")),
        tollfree=pricing.tollfree_flags(col("number_type")), deck=deck.astype(np.int16),
        caller=col("caller_number"), callee=col("callee_number"), start=col("start_time"),
        duration=col("duration_seconds"), threads=threads)
    for code, reason in pricing.KERNEL_REJECTS.items():
        hit = priced.status == code
        if hit.any():
            column = np.where(priced.service == pricing.SERVICES.index("tollfree_inbound"),
                              "caller_number", "callee_number")
            batch.reject(hit, reason, lambda i: f"column '{column[i]}': "
                         + ("missing number for a rated call" if code == -1 else
                            f"{batch.raw.column(column[i])[i].as_py()!r} is not an E.164 number"))
    return priced


def _duplicates(parts: list[_Part]) -> list[np.ndarray]:
    """Per part, the mask of rows whose usage_id an earlier row already has."""
    masks = [np.zeros(p.rated.num_rows, dtype=bool) for p in parts]
    if not parts:
        return masks
    uid = pa.chunked_array([p.rated.column("usage_id").combine_chunks() for p in parts],
                           pa.string())
    if pc.count_distinct(uid).as_py() == len(uid):
        return masks
    ids = pa.table({"u": uid, "i": pa.array(np.arange(len(uid), dtype=np.int64))})
    first = ids.group_by("u", use_threads=False).aggregate([("i", "min")])
    first_pos = np.zeros(len(uid), dtype=bool)
    first_pos[np.asarray(first.column("i_min"))] = True
    start = 0
    for k, p in enumerate(parts):
        masks[k] = ~first_pos[start: start + p.rated.num_rows]
        start += p.rated.num_rows
    return masks


def _raw_of_rated(rated: pa.Table) -> pa.Table:
    cols = {}
    for c in outputs.RAW_COLUMNS:
        if c in rated.column_names and c in CDR_COLUMNS:
            cols[c] = rated.column(c).cast(pa.string())
        else:
            cols[c] = pa.nulls(rated.num_rows, pa.string())
    return pa.table(cols)


def rate(config_dir, cdr_paths, out_dir, *, deck_file=None, strict: bool = False,
         threads: int = 2, progress=None) -> RunSummary:
    """Rate CDR files against a config directory and publish into `out_dir`.

    Parameters
    ----------
    config_dir : path
        Holds ``decks/`` and ``tenants.csv`` (SPEC §7).
    cdr_paths : list of paths
        CDR files or directories of them.
    out_dir : path
        Receives ``rated/`` and ``rejects/``, partitioned by month.
    deck_file : path, optional
        A candidate deck used in place of the configured decks.
    strict : bool
        Refuse the run (InputError, nothing published) on any reject.
    threads : int
        Threads for pricing.
    progress : callable, optional
        Called with the number of CDRs read after each batch.

    Raises
    ------
    InputError
        A bad deck, config or unreadable CDR file, or any reject with
        ``strict``; nothing is published.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    book, tenants = load_config(config_dir, deck_file)
    summary = RunSummary(out_dir)
    parts: list[_Part] = []
    rejects: list[pa.Table] = []
    for batch in read_cdrs(cdr_paths):
        priced = _price_batch(batch, book, tenants, threads)
        ok = batch.reason == None  # noqa: E711
        summary.read += len(ok)
        if not ok.all():
            bad = ~ok
            rejects.append(outputs.rejects_table(
                batch.file, batch.rows[bad], batch.raw.filter(pa.array(bad)),
                batch.reason[bad], batch.message[bad]))
        keep = pa.array(ok)
        idx = np.flatnonzero(ok)
        sub = pricing.Priced(priced.status[idx], priced.service[idx], priced.row[idx],
                             priced.billable[idx], priced.charge[idx])
        parts.append(_Part(outputs.rated_table(batch.cdrs.filter(keep), sub, book),
                           batch.file, batch.rows[idx]))
        if progress:
            progress(len(ok))

    for part, dup in zip(parts, _duplicates(parts)):
        if dup.any():
            n = int(dup.sum())
            rejects.append(outputs.rejects_table(
                part.file, part.rows[dup], _raw_of_rated(part.rated.filter(pa.array(dup))),
                np.array(["duplicate"] * n, dtype=object),
                np.array(["column 'usage_id': already rated in this run"] * n, dtype=object)))
            part.rated = part.rated.filter(pa.array(~dup))

    for r in rejects:
        summary.reasons.update(r.column("reason").to_pylist())
    summary.rejected = sum(r.num_rows for r in rejects)
    if strict and summary.rejected:
        first = pa.concat_tables(rejects).slice(0, 1).to_pylist()[0]
        raise InputError(
            f"--strict: {summary.rejected} CDR(s) rejected, nothing published; first: "
            f"{first['file']} row {first['row']}: {first['message']}")

    staging = out_dir / f".staging-{os.getpid()}-{time.time_ns()}"
    try:
        for k, part in enumerate(parts):
            if part.rated.num_rows:
                outputs.write_by_month(part.rated, outputs.month_of(part.rated.column("start_time")),
                                       staging / "rated", f"part-{k:05d}")
            summary.rated += part.rated.num_rows
            summary.statuses.update(
                dict(zip(*[c.to_pylist() for c in pc.value_counts(
                    part.rated.column("status").combine_chunks().dictionary_decode()).flatten()])))
            if part.rated.num_rows:
                by_cur = part.rated.group_by("currency").aggregate([("charge", "sum")])
                for cur, total in zip(by_cur.column("currency").to_pylist(),
                                      by_cur.column("charge_sum").to_pylist()):
                    if cur is not None:
                        summary.charge_micro[cur] += int(total.scaleb(6))
        if rejects:
            rej = pa.concat_tables(rejects)
            times = pc.cast(pc.if_else(pc.match_substring_regex(
                rej.column("start_time").fill_null(""), r"^\d{4}-\d{2}"),
                rej.column("start_time"), None), pa.string())
            months = pc.utf8_slice_codeunits(times, 0, 7)
            outputs.write_by_month(rej, months, staging / "rejects", "part-00000")
        _publish(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    summary.seconds = time.perf_counter() - t0
    return summary


def _publish(staging: Path, out_dir: Path) -> None:
    """Swap the staged outputs in; the old ones are removed only afterwards."""
    out_dir.mkdir(parents=True, exist_ok=True)
    old = out_dir / f".old-{staging.name}"
    old.mkdir()
    for name in OUTPUT_DIRS:
        if (out_dir / name).exists():
            os.replace(out_dir / name, old / name)
    for name in OUTPUT_DIRS:
        if (staging / name).exists():
            os.replace(staging / name, out_dir / name)
    shutil.rmtree(old, ignore_errors=True)
