"""The ratecore command line (SPEC §10). Exit codes: 0 done, 2 bad input, 1 internal error."""

from __future__ import annotations

import sys
import traceback
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table

from ratecore import __version__
from ratecore.errors import InputError

console = Console()
err_console = Console(stderr=True)


class _Command(click.Group):
    """Maps ratecore's errors to exit codes: InputError 2, anything else 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InputError as e:
            # plain text, never wrapped: file:line: column messages stay greppable
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except Exception:  # noqa: BLE001 - the last line of defence
            click.echo("internal error (please report):", err=True)
            traceback.print_exc()
            sys.exit(1)


@contextmanager
def progress_bar(description: str, total: int | None):
    """A rich progress bar on a terminal; nothing when stderr is piped."""
    if not err_console.is_terminal:
        yield None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=err_console,
                  transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def _count_rows(paths) -> int | None:
    """Rows in Parquet inputs from their footers; None if any CSV is among them."""
    import pyarrow.parquet as pq

    from ratecore.cdrs import cdr_files

    total = 0
    for f in cdr_files(paths):
        if f.suffix.lower() != ".parquet":
            return None
        total += pq.ParquetFile(f).metadata.num_rows
    return total


def _money(micro: int) -> str:
    return f"{Decimal(micro).scaleb(-6):,.4f}"


def print_summary(summary, title: str = "Rating run") -> None:
    """Counts per status and reject reason, and the total charge."""
    t = Table(title=title, show_header=True, header_style="bold")
    t.add_column("status")
    t.add_column("CDRs", justify="right")
    for status, n in sorted(summary.statuses.items(), key=lambda kv: -kv[1]):
        t.add_row(status, f"{n:,}")
    for reason, n in sorted(summary.reasons.items(), key=lambda kv: -kv[1]):
        t.add_row(f"[red]rejected: {reason}[/]", f"{n:,}")
    console.print(t)
    for cur, micro in sorted(summary.charge_micro.items()):
        console.print(f"charged {cur} {_money(micro)}")
    rate = summary.read / summary.seconds if summary.seconds else 0
    console.print(f"{summary.read:,} CDRs read, {summary.rated:,} rated, "
                  f"{summary.rejected:,} rejected in {summary.seconds:.2f} s "
                  f"({rate / 1e6:.1f} M CDR/s) → {summary.out_dir}")


@click.group(cls=_Command)
@click.version_option(__version__, prog_name="ratecore")
def main():
    """ratecore: rate call detail records and keep tenants' minute pools and credits."""


@main.command()
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Directory to write config/ and cdrs/ into.")
@click.option("--tenants", default=50, show_default=True, type=click.IntRange(1))
@click.option("--cdrs", default=100_000, show_default=True, type=click.IntRange(0))
@click.option("--days", default=30, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=1, show_default=True, type=int)
def generate(out_dir, tenants, cdrs, days, seed):
    """Write a realistic sample: decks, tenants, licenses, funds and CDRs."""
    from ratecore.generate import generate as gen

    with progress_bar("generating CDRs", cdrs) as bar:
        sample = gen(out_dir, tenants=tenants, cdrs=cdrs, days=days, seed=seed, progress=bar)
    console.print(f"wrote {sample.config_dir} and {sample.cdrs:,} CDRs in {sample.cdr_dir}")


@main.command()
@click.option("--config", "config_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--cdrs", "cdr_paths", multiple=True,
              type=click.Path(exists=True, path_type=Path),
              help="CDR file or directory; repeat for more.")
@click.argument("more_cdrs", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path))
@click.option("--as-of", "as_of", default=None, help="Advance tenants to this time (UTC).")
@click.option("--rerate", default=None, metavar="YYYY-MM",
              help="Re-rate this month and the later ones from the state saved at its "
                   "opening: the CDRs already rated, plus new ones in --cdrs.")
@click.option("--strict", is_flag=True, help="Fail (exit 2, publish nothing) on any reject.")
@click.option("--deck", "deck_file", default=None,
              type=click.Path(exists=True, path_type=Path),
              help="Rate with this candidate deck in place of the configured decks.")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 64))
def rate(config_dir, cdr_paths, more_cdrs, out_dir, as_of, rerate, strict, deck_file, threads):
    """Rate CDRs against a config directory into OUT (rated/, rejects/)."""
    from ratecore import run

    paths = list(cdr_paths) + list(more_cdrs)
    stop = run.parse_as_of(as_of) if as_of else None
    if rerate:
        with progress_bar(f"re-rating {rerate}", None) as bar:
            summary = run.rerate(config_dir, out_dir, rerate, paths, deck_file=deck_file,
                                 strict=strict, as_of=stop, threads=threads, progress=bar)
        print_summary(summary, title=f"Re-rate of {rerate} and later months")
        return
    if not paths:
        raise click.UsageError("Missing option '--cdrs' (or --rerate YYYY-MM).")
    with progress_bar("rating", _count_rows(paths)) as bar:
        summary = run.rate(config_dir, paths, out_dir, deck_file=deck_file, strict=strict,
                           as_of=stop, threads=threads, progress=bar)
    print_summary(summary)


@main.command()
@click.option("--dir", "work_dir", default="ratecore-demo", show_default=True,
              type=click.Path(path_type=Path), help="Where the sample and outputs go.")
@click.option("--cdrs", default=200_000, show_default=True, type=click.IntRange(1))
def demo(work_dir, cdrs):
    """Generate a realistic sample, rate it, and print what happened."""
    from ratecore import demo as demo_mod

    demo_mod.run_demo(work_dir, cdrs, console=console, progress_bar=progress_bar,
                      print_summary=print_summary)


#: Exit code of ``report --check`` when a row fails (1 is an internal error, 2 bad input).
CHECK_FAILED = 3


@main.command()
@click.argument("name", metavar="NAME")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
              help="The --out directory of `ratecore rate`.")
@click.option("--month", default=None, metavar="YYYY-MM", help="Only this month (UTC).")
@click.option("--tenant", default=None, metavar="ID", help="Only this tenant.")
@click.option("--format", "fmt", default="table", show_default=True,
              type=click.Choice(["table", "csv", "tsv", "json", "parquet", "xlsx"]))
@click.option("--output", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (required for parquet and xlsx; default: stdout).")
@click.option("--date", default=None, metavar="YYYY-MM-DD",
              help="expiry: first day of the window (default: the outputs' as-of date).")
@click.option("--days", default=None, type=click.IntRange(0), metavar="N",
              help="expiry: length of the window in days (default 30).")
@click.option("--candidate", "candidate_dir", default=None, type=click.Path(path_type=Path),
              help="impact: the --out directory of the same CDRs rated with `rate --deck`.")
@click.option("--check", is_flag=True,
              help=f"Exit {CHECK_FAILED} if any row has passed = false (reconcile).")
def report(name, data_dir, month, tenant, fmt, output, date, days, candidate_dir, check):
    """Run report NAME over rating outputs: usage, pools, billing, expiry,
    reconcile, impact, audit (every queries/*.sql shipped)."""
    from ratecore import reports

    if fmt in ("parquet", "csv") and output is not None and not check:
        # streamed from DuckDB to the file: a month of calls never sits in memory
        rows = reports.write_report(name, data_dir, fmt, output, month=month, tenant=tenant,
                                    date=date, days=days, candidate_dir=candidate_dir)
        err_console.print(f"{name}: {rows:,} rows → {output}")
        return
    table = reports.run_report(name, data_dir, month=month, tenant=tenant, date=date,
                               days=days, candidate_dir=candidate_dir)
    if check and "passed" not in table.column_names:
        raise InputError(f"--check: report {name} has no passed column (use it with reconcile)")
    reports.export(table, fmt, output, console=console, name=name)
    if output is not None:
        err_console.print(f"{name}: {table.num_rows:,} rows → {output}")
    if check:
        failed = [r["invariant"] if "invariant" in r else str(i)
                  for i, r in enumerate(table.to_pylist()) if r["passed"] is not True]
        if failed:
            click.echo(f"{name}: {len(failed)} failed: {', '.join(failed)}", err=True)
            sys.exit(CHECK_FAILED)


@main.command("import-teams")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--tenant", "tenant_id", required=True, metavar="ID",
              help="The ratecore tenant the calls belong to.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The CDR Parquet file to write.")
def import_teams(files, tenant_id, out_path):
    """Convert Teams admin center (or Skype for Business) PSTN usage exports
    into a CDR file for `ratecore rate`, keeping Microsoft's charges for audit."""
    from ratecore.teams import import_teams as convert

    summary = convert(list(files), tenant_id, out_path)
    console.print(str(summary) if summary is not None else f"wrote {out_path}")


if __name__ == "__main__":  # pragma: no cover
    main()
