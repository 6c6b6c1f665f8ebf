"""Run state on disk (SPEC §8) and the journal that publishes a run atomically.

The state a run leaves for the next lives in ``OUT/state/`` as small Parquet
files (one per kind of record) plus ``meta.json``. Money in the state is
int64 micro-units (``*_micro`` columns); it is never read by reports.

Publishing: a run stages every new or replaced file under
``OUT/.staging-*``, then writes ``OUT/.journal.json`` (atomically, by
rename) listing the moves, then performs them. A run killed before the
journal exists leaves the previous outputs and state untouched (its staging
directory is removed by the next run); one killed after is completed by the
next run, or any ``ratecore`` command that opens the directory, before it
does anything else. Every move is an ``os.replace`` of one file, so readers
never see a half-written file.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ratecore.billing import TENANT_FIELDS, BillingState
from ratecore.errors import InputError

STATE_DIR = "state"
#: OUT/.lock: held (flock) by the one command writing OUT
LOCK = ".lock"
#: state/months/YYYY-MM/: the state at each month's opening, for --rerate
MONTHS_DIR = "months"
#: OUT/.spill-*: a run's accepted CDRs while it bills them (never published)
SPILL = ".spill-"
JOURNAL = ".journal.json"
FORMAT = 1


def _table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


SCHEMAS = {
    # currency: the tenant's, from tenants.csv, for reports over the outputs
    "tenants": pa.schema([("tenant_id", pa.string()), ("currency", pa.string())]
                         + [(f, pa.int64()) for f in TENANT_FIELDS]),
    "lots": pa.schema([("tenant_id", pa.string()), ("lot_id", pa.int64()),
                       ("funded_at", pa.int64()), ("expires_at", pa.int64()),
                       ("amount_micro", pa.int64()), ("remaining_micro", pa.int64())]),
    "pools": pa.schema([("tenant_id", pa.string()), ("pool", pa.string()), ("month", pa.int32()),
                        ("used_seconds", pa.int64()), ("size_seconds", pa.int64()),
                        ("flags", pa.int8())]),
    "caps": pa.schema([("tenant_id", pa.string()), ("sku", pa.string()), ("scope", pa.string()),
                       ("month", pa.int32())]),
    "applied_funds": pa.schema([("tenant_id", pa.string()), ("funded_at", pa.int64()),
                                ("amount_micro", pa.int64()), ("reference", pa.string()),
                                ("count", pa.int64())]),
    "applied_cards": pa.schema([("tenant_id", pa.string()), ("updated_at", pa.int64()),
                                ("card_valid_until", pa.int64()), ("count", pa.int64())]),
}


def state_tables(state: BillingState, currencies=None) -> dict[str, pa.Table]:
    """The state as one table per kind of record (`currencies`: of each
    tenant id, written alongside its state)."""
    currencies = currencies or {}
    return {
        "tenants": _table([{"tenant_id": t, "currency": currencies.get(t), **v}
                           for t, v in sorted(state.tenants.items())], SCHEMAS["tenants"]),
        "lots": _table([{"tenant_id": t, "lot_id": lot[0], "funded_at": lot[1],
                         "expires_at": lot[2], "amount_micro": lot[3], "remaining_micro": lot[4]}
                        for t, lots in sorted(state.lots.items()) for lot in lots],
                       SCHEMAS["lots"]),
        "pools": _table([{"tenant_id": t, "pool": p, "month": v[0], "used_seconds": v[1],
                          "size_seconds": v[2], "flags": v[3]}
                         for (t, p), v in sorted(state.pools.items())], SCHEMAS["pools"]),
        "caps": _table([{"tenant_id": k[0], "sku": k[1], "scope": k[2], "month": m}
                        for k, m in sorted(state.caps.items())], SCHEMAS["caps"]),
        "applied_funds": _table([{"tenant_id": k[0], "funded_at": k[1], "amount_micro": k[2],
                                  "reference": k[3], "count": n}
                                 for k, n in sorted(state.applied_funds.items())],
                                SCHEMAS["applied_funds"]),
        "applied_cards": _table([{"tenant_id": k[0], "updated_at": k[1],
                                  "card_valid_until": k[2], "count": n}
                                 for k, n in sorted(state.applied_cards.items())],
                                SCHEMAS["applied_cards"]),
    }


def write_state(state: BillingState, directory: Path, runs: int, currencies=None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, table in state_tables(state, currencies).items():
        pq.write_table(table, directory / f"{name}.parquet")
    (directory / "meta.json").write_text(json.dumps(
        {"format": FORMAT, "as_of": state.as_of, "runs": runs}, indent=1))


def read_state(out_dir: Path) -> tuple[BillingState, int]:
    """(state, number of runs so far) of an output directory; empty if none."""
    return read_state_dir(Path(out_dir) / STATE_DIR)


def read_state_dir(directory: Path) -> tuple[BillingState, int]:
    """(state, number of the run that wrote it) of a state directory."""
    meta_path = directory / "meta.json"
    if not meta_path.exists():
        return BillingState(), 0
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise RuntimeError(f"{meta_path}: state format {meta.get('format')} is not {FORMAT}")
    t = {name: pq.read_table(directory / f"{name}.parquet").to_pylist() for name in SCHEMAS}
    st = BillingState(as_of=meta["as_of"])
    st.tenants = {r.pop("tenant_id"): r for r in t["tenants"]}
    for r in st.tenants.values():
        r.pop("currency", None)
    for r in t["lots"]:
        st.lots.setdefault(r["tenant_id"], []).append(
            (r["lot_id"], r["funded_at"], r["expires_at"], r["amount_micro"], r["remaining_micro"]))
    st.pools = {(r["tenant_id"], r["pool"]): (r["month"], r["used_seconds"], r["size_seconds"],
                                              r["flags"]) for r in t["pools"]}
    st.caps = {(r["tenant_id"], r["sku"], r["scope"]): r["month"] for r in t["caps"]}
    st.applied_funds = Counter({(r["tenant_id"], r["funded_at"], r["amount_micro"],
                                 r["reference"]): r["count"] for r in t["applied_funds"]})
    st.applied_cards = Counter({(r["tenant_id"], r["updated_at"], r["card_valid_until"]):
                                r["count"] for r in t["applied_cards"]})
    return st, meta.get("runs", 0)


# ---- the journal ---------------------------------------------------------------


@contextmanager
def writer_lock(out_dir: Path):
    """Hold OUT for one writing command (a run or a re-rate). A second one
    on the same directory is refused at once rather than interleaving its
    publish with the first's; the lock goes with the process, so a killed
    run never leaves it held."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fh = open(out_dir / LOCK, "a+")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"{out_dir}: another ratecore run is writing here ({LOCK} is "
                             "locked); wait for it to finish") from None
        yield
    finally:
        fh.close()


def staged_files(staging: Path) -> list[str]:
    """Every file under `staging`, relative, sorted (state files last)."""
    files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
    return sorted(files, key=lambda f: f.startswith(STATE_DIR + os.sep))


def publish(staging: Path, out_dir: Path, removes=()) -> None:
    """Move everything staged into `out_dir` and delete the published files
    `removes` (relative paths) it replaces, all or (after a crash) later."""
    moves = staged_files(staging)
    moved = set(moves)
    journal = out_dir / JOURNAL
    tmp = out_dir / (JOURNAL + ".tmp")
    with open(tmp, "w") as fh:
        json.dump({"staging": staging.name, "moves": moves,
                   "removes": [r for r in removes if r not in moved]}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, journal)
    recover(out_dir)


def recover(out_dir: Path) -> None:
    """Finish a publish a killed run committed to; drop uncommitted staging."""
    out_dir = Path(out_dir)
    journal = out_dir / JOURNAL
    if journal.exists():
        plan = json.loads(journal.read_text())
        staging = out_dir / plan["staging"]
        for rel in plan.get("removes", []):
            (out_dir / rel).unlink(missing_ok=True)
        for rel in plan["moves"]:
            src, dst = staging / rel, out_dir / rel
            if src.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
        journal.unlink()
    if out_dir.exists():
        for pattern in (".staging-*", SPILL + "*"):
            for p in out_dir.glob(pattern):
                shutil.rmtree(p, ignore_errors=True)
        tmp = out_dir / (JOURNAL + ".tmp")
        if tmp.exists():
            tmp.unlink()
