"""Errors for bad input: they name the file, line and column, and map to exit 2."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One bad cell or row: where it is and what is wrong with it."""

    file: str
    line: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
        if self.column:
            where += f": column '{self.column}'"
        return f"{where}: {self.message}"


class InputError(Exception):
    """Input that ratecore refuses; the CLI prints it and exits with code 2."""

    #: problems listed in full; the rest are counted
    SHOWN = 20

    def __init__(self, summary: str, problems: list[Problem] | None = None):
        self.summary = summary
        self.problems = list(problems or [])
        super().__init__(self._text())

    def _text(self) -> str:
        lines = [self.summary]
        lines += [f"  {p}" for p in self.problems[: self.SHOWN]]
        more = len(self.problems) - self.SHOWN
        if more > 0:
            lines.append(f"  … and {more} more")
        return "\n".join(lines)


class DeckError(InputError):
    """A rate deck that is refused whole (SPEC §2)."""


class ConfigError(InputError):
    """A tenants/licenses/funds/SKU/zone file that is refused."""


class CdrFileError(InputError):
    """A CDR file that cannot be read at all (unreadable, missing columns)."""
