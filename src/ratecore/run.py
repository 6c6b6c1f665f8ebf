"""One rating run (SPEC §8): read CDRs, price them, bill them per tenant,
publish rated records, rejects, ledger, notifications, pools and state.

A run continues from the state the previous run left in ``OUT/state/`` and
advances every tenant to the run's as-of time. A ``usage_id`` rated by an
earlier run, or by an earlier row of this one, is rejected as
``duplicate``. Everything is staged under ``OUT/.staging-*`` and published
through a journal (:mod:`ratecore.state`), so a failed, refused or killed
run leaves the previous outputs and state as they were.

Memory (SPEC §8): each batch's accepted CDRs are spilled to an Arrow file
under ``OUT/.spill-*`` with what billing needs of them as soon as they are
priced; the run is billed one stretch of start time at a time, gathered
from the memory-mapped spills; rejects are spilled as they come; earlier
runs' ids are read through one row group at a time, never held.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ratecore import billing, buffers, fields, ids, outputs, pricing
from ratecore._billing import month_of
from ratecore.cdrs import CdrBatch, cdr_files, raw_rows, read_cdrs
from ratecore.config import load_config
from ratecore.deck import RateBook
from ratecore.errors import InputError
from ratecore.state import (
    JOURNAL,
    MONTHS_DIR,
    SPILL,
    STATE_DIR,
    publish,
    read_state,
    read_state_dir,
    recover,
    write_state,
    writer_lock,
)


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
    as_of: int | None = None
    ledger: Counter = field(default_factory=Counter)         # entries per kind
    notifications: Counter = field(default_factory=Counter)  # per kind
    seconds: float = 0.0


#: What billing needs of each accepted CDR, spilled with it (see _Part).
#: What a run keeps of pricing (its rated charge comes from billing).
_PRICED = ("status", "service", "row", "billable")


@dataclass
class _Part:
    """The accepted CDRs of one batch, spilled to an Arrow file together
    with what billing needs of them (``_tenant``, ``_payer``, the pricing
    as ``_status`` … ``_charge``, and where each was read: ``_src_row``, and
    ``_src_file`` for a replay) and read back memory-mapped. Memory holds
    no column of them: pages of the spill are the file's, which the kernel
    can drop and read again (SPEC §8)."""

    spill: Path               # the Arrow IPC file
    file: str | None          # the file its CDRs were read from (None: per row, a replay)
    replay: bool = False      # read from rated/ (a re-rate), not an input of this run
    keep: np.ndarray | None = None   # rows of the spill still accepted (None: all)

    def table(self) -> pa.Table:
        return pa.ipc.open_file(pa.memory_map(str(self.spill))).read_all()

    def kept(self, table: pa.Table) -> np.ndarray:
        """Positions in the spill of the accepted rows."""
        return np.arange(table.num_rows) if self.keep is None else np.flatnonzero(self.keep)

    def ids(self) -> pa.ChunkedArray:
        """usage_id of the accepted rows."""
        t = self.table()
        col = t.column("usage_id")
        return col if self.keep is None else col.take(pa.array(self.kept(t)))

    def drop(self, mask: np.ndarray) -> None:
        """Drop accepted rows (`mask` over the accepted rows, in order)."""
        keep = ~mask
        self.keep = keep if self.keep is None else _set_where(self.keep, keep)


def _values(table: pa.Table, name: str, at: np.ndarray | None = None) -> np.ndarray:
    """A fixed-width column of a spill as numpy (a view of the mapped file
    unless taken at `at`)."""
    col = table.column(name)
    arr = np.asarray(col.chunk(0) if col.num_chunks == 1 else col.combine_chunks())
    return arr if at is None else arr[at]


def _starts(table: pa.Table) -> np.ndarray:
    """The start times of a spill, int64 µs (a view of the mapped file)."""
    return pricing.int64_values(table.column("start_time"))


def _cdrs(table: pa.Table, at: np.ndarray) -> pa.Table:
    """The CDR columns of a spill at positions `at`."""
    return table.select([c for c in table.column_names if not c.startswith("_")]).take(
        pa.array(at))


def _origin(part: _Part, table: pa.Table, at: np.ndarray):
    """(file, rows) the CDRs at `at` of a spill were read from."""
    file = part.file if part.file is not None else table.column("_src_file").take(pa.array(at))
    return file, _values(table, "_src_row", at)


def _set_where(keep: np.ndarray, sub: np.ndarray) -> np.ndarray:
    """`keep` with its True entries narrowed by `sub` (one entry per True)."""
    out = keep.copy()
    out[np.flatnonzero(keep)] = sub
    return out


def _spill(table: pa.Table, path: Path) -> Path:
    with pa.ipc.new_file(str(path), table.schema) as writer:
        writer.write_table(table)
    return path


def _price_batch(batch: CdrBatch, book: RateBook, tenants, threads: int):
    cdrs = batch.cdrs
    tenant_row = tenants.lookup(cdrs.column("tenant_id").combine_chunks())
    batch.reject(tenant_row < 0, "unknown_tenant",
                 lambda i: f"column 'tenant_id': unknown tenant {batch.raw.column('tenant_id')[i].as_py()!r}")
    ok = batch.reason == None
    deck = np.full(len(ok), -1, np.int16)     # unknown tenants' rows are not ok
    if len(tenants.deck_index):
        deck = np.where(ok, tenants.decks(tenant_row), deck)
    col = lambda name: cdrs.column(name).combine_chunks()
    priced = pricing.price(
        book, call_type=pricing.call_type_codes(col("call_type")),
        tollfree=pricing.tollfree_flags(col("number_type")), deck=deck,
        caller=col("caller_number"), callee=col("callee_number"), start=col("start_time"),
        duration=col("duration_seconds"), threads=threads, charge=False)
    for code, reason in pricing.KERNEL_REJECTS.items():
        hit = priced.status == code
        if hit.any():
            column = np.where(priced.service == pricing.SERVICES.index("tollfree_inbound"),
                              "caller_number", "callee_number")
            batch.reject(hit, reason, lambda i, column=column, code=code: f"column '{column[i]}': "
                         + ("missing number for a rated call" if code == -1 else
                            f"{batch.raw.column(column[i])[i].as_py()!r} is not an E.164 number"))
    return priced, tenant_row


def _rated_files(out_dir: Path) -> list[Path]:
    """Every rated/ file earlier runs published."""
    rated = out_dir / "rated"
    return sorted(rated.glob("month=*/*.parquet")) if rated.exists() else []


#: The hash index of rated/: for each rated file, ``ids.hashes`` of its
#: usage_ids in row order (a uint64 .npy), so that later runs test for
#: duplicates reading 8 bytes an id instead of the strings.
ID_INDEX = Path(STATE_DIR) / "ids"


def _index_of(rated_file: Path) -> Path:
    """Where the index of a rated/ file (relative to the out dir) is."""
    return ID_INDEX / rated_file.relative_to("rated").with_suffix(".npy")


def _save_index(staging: Path, rated_file: Path, hashes: np.ndarray) -> None:
    path = staging / _index_of(rated_file.relative_to(staging))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, hashes)


def _ids_of(out_dir: Path, files) -> Iterator:
    """The usage_ids of rated `files` for ids.present_in, one file (its
    hash index, the strings read only on a match) or, for a file without a
    sound index, one row group of strings at a time: a history is read
    through, never held (SPEC §8)."""
    for f in files:
        pf = pq.ParquetFile(f)
        try:
            hashes = np.load(out_dir / _index_of(f.relative_to(out_dir)))
        except (OSError, ValueError):
            hashes = None
        if hashes is not None and hashes.dtype == np.uint64 and \
                len(hashes) == pf.metadata.num_rows:
            yield hashes, lambda pf=pf: pf.read(columns=["usage_id"]).column("usage_id")
            continue
        for g in range(pf.num_row_groups):
            yield pf.read_row_group(g, columns=["usage_id"]).column("usage_id")


class _Rejects:
    """A run's rejects, spilled to Arrow files as they come (a run of
    duplicates rejects every row: memory does not hold them)."""

    def __init__(self, spill_dir: Path):
        self.dir, self.files, self.rows, self.reasons = spill_dir, [], 0, Counter()

    def add(self, table: pa.Table) -> None:
        if table.num_rows:
            self.files.append(_spill(table, self.dir / f"rejects-{len(self.files):05d}.arrow"))
            self.rows += table.num_rows
            self.reasons.update(_counts(table.column("reason")))

    def table(self) -> pa.Table:
        """Every reject, memory-mapped."""
        return pa.concat_tables([pa.ipc.open_file(pa.memory_map(str(f))).read_all()
                                 for f in self.files])


def _reject_duplicates(parts: list[_Part], masks: list[np.ndarray], rejects: _Rejects,
                       message: str) -> None:
    """Move the accepted rows `masks` marks (per part) to the rejects as
    ``duplicate``, each with its row as the file wrote it."""
    found = []
    for part, dup in zip(parts, masks):
        if dup.any():
            table = part.table()
            at = part.kept(table)[dup]
            file, rows = _origin(part, table, at)
            # a replay's rows (rated/ holds no raw text) as rated; a file's as read
            found.append((file, rows, None if isinstance(file, str) else
                          _raw_of_cdrs(_cdrs(table, at))))
            part.drop(dup)
    raws = iter(_raw_rows([(file, rows) for file, rows, raw in found if raw is None]))
    for file, rows, raw in found:
        n = len(rows)
        rejects.add(outputs.rejects_table(
            file, rows, next(raws) if raw is None else raw,
            np.full(n, "duplicate", dtype=object), np.full(n, message, dtype=object)))


def _raw_rows(wanted: list[tuple]) -> list[pa.Table]:
    """Raw text of each (file, rows) asked, each file read once."""
    by_file: dict[str, list[int]] = {}
    for k, (file, _) in enumerate(wanted):
        by_file.setdefault(file, []).append(k)
    out: list = [None] * len(wanted)
    for file, ks in by_file.items():
        rows = np.concatenate([wanted[k][1] for k in ks])
        order = np.argsort(rows, kind="stable")
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        table = raw_rows(file, rows[order]).take(pa.array(back))
        at = 0
        for k in ks:
            out[k] = table.slice(at, len(wanted[k][1]))
            at += len(wanted[k][1])
    return out


def _duplicates(out_dir: Path, parts: list[_Part], history, replayed,
                rejects: _Rejects) -> None:
    """Reject as ``duplicate`` the accepted rows whose usage_id earlier
    runs rated (`history`: their rated/ files), a re-rate replays
    (`replayed`: the files it replays, for rows of other files), or an
    earlier row of this run holds: the first valid row wins (SPEC §8)."""
    if history:
        _reject_duplicates(parts, ids.present_in([p.ids() for p in parts],
                                                   _ids_of(out_dir, history)),
                           rejects, "column 'usage_id': already rated by an earlier run")
    if replayed:
        fresh = [p for p in parts if not p.replay]
        _reject_duplicates(fresh, ids.present_in([p.ids() for p in fresh],
                                                   _ids_of(out_dir, replayed)),
                           rejects, "column 'usage_id': already rated (this re-rate replays "
                           "it from rated/)")
    _reject_duplicates(parts, ids.later_duplicates([p.ids() for p in parts]), rejects,
                       "column 'usage_id': already rated in this run")


def parse_as_of(text: str) -> int:
    """--as-of as UTC microseconds (ISO 8601; a bare date is 00:00 UTC)."""
    value, bad = fields.parse_timestamps(pa.array([text.strip()], pa.string()))
    if bad[0]:
        raise InputError(f"--as-of: {text!r} is not an ISO 8601 timestamp")
    return int(value[0])


def rate(config_dir, cdr_paths, out_dir, *, deck_file=None, strict: bool = False,
         as_of: int | None = None, threads: int = 2, progress=None) -> RunSummary:
    """Rate and bill CDR files against a config directory into `out_dir`.

    Parameters
    ----------
    config_dir : path
        The config directory of SPEC §7.
    cdr_paths : list of paths
        CDR files or directories of them.
    out_dir : path
        Receives rated/, rejects/, ledger/, notifications/, pools/ (by month),
        inputs/ and state/; a previous run's state there is continued.
    deck_file : path, optional
        A candidate deck used in place of the configured decks.
    strict : bool
        Refuse the run (InputError, nothing published) on any reject.
    as_of : int, optional
        UTC microseconds to advance every tenant to (default: the latest call
        start seen so far).
    threads : int
        Threads for pricing and billing.
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
    cfg = load_config(config_dir, deck_file)    # a refused config creates nothing
    with writer_lock(out_dir):
        recover(out_dir)
        state, runs = read_state(out_dir)
        return _run(cfg, state, runs, cdr_paths, out_dir, history=_rated_files(out_dir),
                    strict=strict, as_of=as_of, threads=threads, progress=progress, t0=t0)


def rerate(config_dir, out_dir, month: str, cdr_paths=(), *, deck_file=None,
           strict: bool = False, as_of: int | None = None, threads: int = 2,
           progress=None) -> RunSummary:
    """Re-rate one month (SPEC §8): replay every CDR rated in `month` and
    the months after it, in time order, from the state saved at the
    month's opening, and replace those months' rated records, ledger,
    notifications and pools (rejects stay; new ones are added).

    The CDRs are the input columns kept in ``rated/``; the config (decks,
    licenses, funds …) is read afresh, so a corrected config takes effect.
    CDR files given too join the replay with the rows not rated yet (CDRs
    that arrived late; one starting before `month` is billed as ``late`` at
    the month's opening); their rows already rated are the ones replayed
    from ``rated/``, and are ``duplicate`` rejects. Replayed CDRs keep the
    file and row they were first read from. Tenants end at the as-of time
    the last run reached, or `as_of` if later.

    Raises
    ------
    InputError
        `month` is not YYYY-MM, no run saved the state at its opening, or a
        later run billed late CDRs of an earlier month after that opening
        (their month must be re-rated instead, else they would be billed twice).
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month or ""):
        raise InputError(f"--rerate: {month!r} is not a month (YYYY-MM)")
    cfg = load_config(config_dir, deck_file)
    if not (out_dir / STATE_DIR).is_dir():
        raise InputError(f"--rerate {month}: {out_dir} holds no run to re-rate")
    with writer_lock(out_dir):
        return _rerate(cfg, out_dir, month, cdr_paths, strict=strict, as_of=as_of,
                       threads=threads, progress=progress, t0=t0)


def _rerate(cfg, out_dir: Path, month: str, cdr_paths, *, strict, as_of, threads, progress,
            t0) -> RunSummary:
    recover(out_dir)
    state, runs = read_state(out_dir)
    snap_dir = out_dir / STATE_DIR / MONTHS_DIR / month
    if not (snap_dir / "meta.json").exists():
        raise InputError(f"--rerate {month}: {out_dir} holds no state saved at the opening of "
                         f"{month} (only months whose opening a run passed can be re-rated)")
    snapshot, snap_run = read_state_dir(snap_dir)
    later, earlier = [], []
    rated = out_dir / "rated"
    for part in sorted(rated.glob("month=*")) if rated.exists() else []:
        (later if part.name[len("month="):] >= month else earlier).extend(
            sorted(part.glob("*.parquet")))
    billed_later = [f for f in earlier if _run_of(f) > snap_run]
    if billed_later:
        raise InputError(
            f"--rerate {month}: {billed_later[0]} holds CDRs of an earlier month rated by a "
            f"run after {month} opened (late CDRs); re-rate from "
            f"{billed_later[0].parent.name[len('month='):]} instead")
    removes = [str(p) for f in later for p in (f.relative_to(out_dir),
                                               _index_of(f.relative_to(out_dir)))]
    for name in ("ledger", "notifications", "pools"):
        for part in sorted((out_dir / name).glob("month=*")):
            if part.name[len("month="):] >= month:
                removes += [str(f.relative_to(out_dir)) for f in sorted(part.glob("*.parquet"))]
    for part in sorted((out_dir / STATE_DIR / MONTHS_DIR).glob("*")):
        if part.name > month:
            removes += [str(f.relative_to(out_dir)) for f in sorted(part.glob("*"))]
    new = cdr_files(cdr_paths) if cdr_paths else []
    return _run(cfg, snapshot, runs, later + new, out_dir, history=earlier, strict=strict,
                as_of=max(state.as_of, as_of) if as_of is not None else state.as_of,
                threads=threads, progress=progress, t0=t0, removes=removes,
                replace_from=month, replay=frozenset(map(str, later)),
                replayed=later if new else ())


def _run_of(path: Path) -> int:
    """The run number in a rated file's name (``rNNNNNN-…``); 0 if none."""
    m = re.match(r"r(\d+)", path.name)
    return int(m.group(1)) if m else 0


def _run(cfg, state, runs: int, cdr_paths, out_dir: Path, *, history, strict, as_of, threads,
         progress, t0, removes=(), replace_from=None, replay=(), replayed=()) -> RunSummary:
    """Price and bill `cdr_paths` from `state`, stage every output and publish.

    `history` are the rated/ files of earlier runs: rows with their
    usage_ids are ``duplicate`` rejects. `replay` are rated/ files among
    `cdr_paths` (a re-rate): their CDRs keep the file and row they were
    first read from, and are not input rows of this run. `replayed` are
    rated/ files replayed: other files' rows with their usage_ids are
    ``duplicate`` rejects too."""
    book, tenants = cfg.book, cfg.tenants
    summary = RunSummary(out_dir)
    plan = billing.compile_plan(cfg)
    parts: list[_Part] = []
    with tempfile.TemporaryDirectory(prefix=SPILL, dir=out_dir) as spill:
        spill_dir = Path(spill)
        rejects = _Rejects(spill_dir)
        read: dict[str, int] = {}
        for batch in read_cdrs(cdr_paths):
            file, rows = batch.file, batch.rows
            if batch.file in replay:
                if batch.origin is not None:
                    file = batch.origin.column("file").combine_chunks()
                    rows = np.asarray(batch.origin.column("row").combine_chunks(), np.int64)
            else:
                read[batch.file] = read.get(batch.file, 0) + len(rows)
            priced, tenant_row = _price_batch(batch, book, tenants, threads)
            ok = batch.reason == None
            summary.read += len(ok)
            if not ok.all():
                bad = ~ok
                rejects.add(outputs.rejects_table(
                    file if isinstance(file, str) else file.filter(pa.array(bad)), rows[bad],
                    batch.raw.filter(pa.array(bad)), batch.reason[bad], batch.message[bad]))
            idx = np.flatnonzero(ok)
            accepted = batch.cdrs.filter(pa.array(ok))
            tenant = tenant_row[idx]
            spilled = {"_tenant": tenant, "_payer": plan.payers(tenant, accepted.column("user_id")),
                       **{f"_{k}": getattr(priced, k)[idx] for k in _PRICED},
                       "_src_row": rows[idx]}
            if not isinstance(file, str):
                spilled["_src_file"] = file.take(pa.array(idx))
            for name, values in spilled.items():
                accepted = accepted.append_column(name, pa.array(values) if isinstance(
                    values, np.ndarray) else values)
            parts.append(_Part(_spill(accepted, spill_dir / f"{len(parts):05d}.arrow"),
                               file if isinstance(file, str) else None, batch.file in replay))
            del batch, accepted, spilled
            if progress:
                progress(len(ok))

        _duplicates(out_dir, parts, history, replayed, rejects)
        summary.reasons.update(rejects.reasons)
        summary.rejected = rejects.rows
        if strict and summary.rejected:
            first = rejects.table().slice(0, 1).to_pylist()[0]
            raise InputError(
                f"--strict: {summary.rejected} CDR(s) rejected, nothing published; first: "
                f"{first['file']} row {first['row']}: {first['message']}")

        runs += 1
        staging = out_dir / f".staging-{os.getpid()}-{time.time_ns()}"
        tag = f"r{runs:06d}"
        try:
            snapshots, pools = {}, []
            for k, (lo, hi, opening) in enumerate(_windows(parts, state, as_of)):
                billed = _bill_window(cfg, plan, state, parts, lo, hi, book, summary, staging,
                                      f"{tag}-{k:04d}", as_of=as_of if hi is None else hi - 1,
                                      threads=threads)
                if opening:
                    snapshots[month_of(hi)] = state.copy()
                pools.append(billed.pools)
                summary.as_of = billed.as_of
                del billed      # its records' memory goes to the next stretch (buffers)
            if rejects.rows:
                rej = rejects.table()
                times = pc.cast(pc.if_else(pc.match_substring_regex(
                    rej.column("start_time").fill_null(""), r"^\d{4}-\d{2}"),
                    rej.column("start_time"), None), pa.string())
                outputs.write_by_month(rej, pc.utf8_slice_codeunits(times, 0, 7),
                                       staging / "rejects", tag)
            if read:
                (staging / outputs.INPUTS_DIR).mkdir(parents=True)
                outputs.write_parquet(outputs.inputs_table(runs, read),
                                      staging / outputs.INPUTS_DIR / f"{tag}.parquet")
            _stage_pools(billing.merge_pools(pools), out_dir, staging, replace_from)
            currencies = dict(zip(tenants.ids.to_pylist(),
                                  tenants.table.column("currency").to_pylist()))
            write_state(state, staging / STATE_DIR, runs, currencies)
            for m, snap in snapshots.items():
                write_state(snap, staging / STATE_DIR / MONTHS_DIR / billing.month_text(m), runs,
                            currencies)
            publish(staging, out_dir, removes=removes)
        finally:
            # once the journal names the staging directory, only recover() may remove it
            if not (out_dir / JOURNAL).exists():
                shutil.rmtree(staging, ignore_errors=True)
            buffers.release()     # the stretches' memory, kept from one to the next
        summary.seconds = time.perf_counter() - t0
        return summary


#: About how many calls a run bills at a time. A run's calls are billed in
#: stretches of start time (cut at month openings too, where the state is
#: kept for --rerate), each written out before the next is gathered, so the
#: billing pass's memory does not grow with the run (SPEC §8). Cutting
#: changes no output: between two stretches every tenant is only advanced
#: to the instant before the cut, as between two runs.
WINDOW_CALLS = 4_000_000
#: Resolution of the start-time histogram the cuts are chosen from.
_WINDOW_BINS = 4096


def _windows(parts: list[_Part], state, as_of) -> list[tuple]:
    """The stretches a run bills one at a time: (from, to, to is a month
    opening), instants in µs, `to` exclusive (None: the run's end)."""
    def starts(p: _Part) -> np.ndarray:
        start = _starts(p.table())
        return start if p.keep is None else start[p.keep]

    lo = hi = None
    for p in parts:
        start = starts(p)
        if len(start):
            lo = int(start.min()) if lo is None else min(lo, int(start.min()))
            hi = int(start.max()) if hi is None else max(hi, int(start.max()))
    openings = billing.run_openings(state, lo, hi, as_of)
    cuts = set(openings)
    if lo is not None:
        width = (hi - lo) // _WINDOW_BINS + 1
        counts = np.zeros(_WINDOW_BINS + 1, np.int64)
        for p in parts:
            counts += np.bincount((starts(p) - lo) // width, minlength=_WINDOW_BINS + 1)
        if counts.sum() > WINDOW_CALLS:
            acc = 0
            for b, c in enumerate(counts.tolist()):
                if acc and acc + c > WINDOW_CALLS:
                    cuts.add(lo + b * width)
                    acc = 0
                acc += c
    bounds = sorted(cuts)
    return [(a, b, b in openings) for a, b in zip([None] + bounds, bounds + [None])]


#: The spill columns a stretch's calls are taken from, in CallGroups.add's order.
_CALL_COLUMNS = ("_tenant", "start_time", "_payer", "_row", "_billable", "_service", "_status")


def _bill_window(cfg, plan, state, parts, lo, hi, book, summary, staging: Path, tag: str, *,
                 as_of, threads) -> billing.Billed:
    """Bill the calls starting in [lo, hi) (None: unbounded) and stage their
    rated records, ledger entries and notifications as files named `tag`."""
    tables, picks, usage = [], [], []
    first = last = None
    for p in parts:
        t = p.table()          # memory-mapped: its pages are the spill file's
        tables.append(t)
        at = p.kept(t)
        start = _starts(t)[at]
        inside = np.ones(len(at), bool)
        if lo is not None:
            inside &= start >= lo
        if hi is not None:
            inside &= start < hi
        at = at[inside]
        picks.append(at)
        if inside.any():
            lo_s, hi_s = int(start[inside].min()), int(start[inside].max())
            first = lo_s if first is None else min(first, lo_s)
            last = hi_s if last is None else max(last, hi_s)
        usage.extend(t.column("usage_id").take(pa.array(at)).chunks)
    # calls per tenant and time bucket: big tenants' calls go to cells that
    # are each sorted in cache
    counts = billing.TimeCounts(len(plan.tenant_ids), first or 0, last or 0)
    for t, at in zip(tables, picks):
        counts.add(_values(t, "_tenant", at), _starts(t)[at])
    # each part's calls go straight to their tenants' records: the window's
    # columns are never concatenated (the spilled ones have the kernel's
    # types). Tenant and start are taken from the mapped spill again rather
    # than kept from the loop above: holding them would cost 12 bytes a call.
    calls = billing.CallGroups(counts)
    for t, at in zip(tables, picks):
        calls.add(*(_starts(t)[at] if k == "start_time" else _values(t, k, at)
                    for k in _CALL_COLUMNS))
    calls.usage_id = pa.chunked_array(usage, pa.string()).combine_chunks()
    del usage
    billed = billing.bill(cfg, plan, state, calls, as_of=as_of, threads=threads)
    del calls
    done = 0
    for j, (p, t, at) in enumerate(zip(parts, tables, picks)):
        if not len(at):
            continue
        priced = pricing.Priced(*(_values(t, f"_{k}", at) for k in _PRICED))
        rated = outputs.rated_table(_cdrs(t, at), priced, book,
                                    billed.slice(done, done + len(at)), plan,
                                    origin=_origin(p, t, at))
        done += len(at)
        hashes = ids.hashes(rated.column("usage_id"))
        outputs.write_by_month(rated, outputs.month_of(rated.column("start_time")),
                               staging / "rated", f"{tag}-{j:05d}",
                               each=lambda path, rows, h=hashes: _save_index(staging, path,
                                                                             h[rows]))
        _count(summary, rated)
    for name, table in (("ledger", billed.ledger), ("notifications", billed.notifications)):
        if table.num_rows:
            outputs.write_by_month(table, outputs.month_of(table.column("time")),
                                   staging / name, tag)
    summary.ledger.update(_counts(billed.ledger.column("kind")))
    summary.notifications.update(_counts(billed.notifications.column("kind")))
    return billed


def _counts(col) -> dict:
    """{value: rows} of a column, counted by Arrow (a ledger has millions)."""
    return {r["values"]: r["counts"] for r in pc.value_counts(col).to_pylist()}


def _raw_of_cdrs(cdrs: pa.Table) -> pa.Table:
    cols = {}
    for c in outputs.RAW_COLUMNS:
        if c in cdrs.column_names:
            cols[c] = cdrs.column(c).cast(pa.string())
        else:
            cols[c] = pa.nulls(cdrs.num_rows, pa.string())
    return pa.table(cols)


def _count(summary: RunSummary, rated: pa.Table) -> None:
    summary.rated += rated.num_rows
    if not rated.num_rows:
        return
    summary.statuses.update(_counts(rated.column("status")))
    by_cur = rated.group_by("currency").aggregate([("charge", "sum")])
    for cur, total in zip(by_cur.column("currency").to_pylist(),
                          by_cur.column("charge_sum").to_pylist()):
        if cur is not None:
            summary.charge_micro[cur] += int(total.scaleb(6))


def _stage_pools(pools: pa.Table, out_dir: Path, staging: Path, replace_from=None) -> None:
    """pools/month=M/pools.parquet for each month the run touched: the
    published rows of that month updated with this run's (replaced by them
    from month `replace_from` on, for a re-rate)."""
    months = pools.column("month")
    for month in sorted(set(months.to_pylist())):
        new = pools.filter(pc.equal(months, month))
        path = Path("pools") / f"month={month}" / "pools.parquet"
        old_path = out_dir / path
        if old_path.exists() and not (replace_from and month >= replace_from):
            old = pq.read_table(old_path, schema=billing.POOL_SCHEMA)
            key = lambda t: pc.binary_join_element_wise(
                t.column("tenant_id"), t.column("pool"), "\x1f")
            old = old.filter(pc.invert(pc.is_in(key(old), key(new))))
            new = pa.concat_tables([old, new]).sort_by([("tenant_id", "ascending"),
                                                        ("pool", "ascending")])
        (staging / path).parent.mkdir(parents=True, exist_ok=True)
        outputs.write_parquet(new, staging / path)
