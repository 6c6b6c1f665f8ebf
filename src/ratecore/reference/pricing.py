"""Reference pricing: SPEC §1 (numbers), §2 (row selection), §3 (charging)
and §4 (classification), for one CDR at a time."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal, localcontext

OUTBOUND_TYPES = {"user_out", "user_out_conf", "user_out_transfer", "user_out_forwarding",
                  "ucap_out", "conf_out"}
INBOUND_TYPES = {"user_in", "conf_in", "ucap_in"}
ALL_TYPES = OUTBOUND_TYPES | INBOUND_TYPES | {"unassigned_in", "emergency_out"}
EMERGENCY = ("911", "112", "999", "000", "110", "119", "118")
ROUNDING = {"half_up": ROUND_HALF_UP, "up": ROUND_UP, "half_even": ROUND_HALF_EVEN,
            "down": ROUND_DOWN}


@dataclass(frozen=True)
class DeckRow:
    """One validated rate deck row (SPEC §2)."""

    deck: str
    currency: str
    service: str
    prefix: str
    country: str
    destination: str
    number_class: str
    rate: Decimal
    connect_fee: Decimal
    initial_increment: int
    next_increment: int
    min_charge: Decimal
    blocked: bool
    effective_from: datetime
    effective_to: datetime | None
    rounding: str = "half_up"
    decimals: int = 4

    def effective_at(self, t: datetime) -> bool:
        return self.effective_from <= t and (self.effective_to is None or t < self.effective_to)


class NumberProblem(ValueError):
    """A rated number that is missing or not E.164."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason  # "missing_number" or "bad_number"


def parse_number(text: str | None) -> tuple[str, int]:
    """(known leading digits, count of masked trailing digits) of a number.

    Spaces and dashes are dropped, then one leading ``+``; what is left is
    digits followed by zero or more ``*``, at most 15 in all, at least one
    digit.
    """
    if text is None:
        raise NumberProblem("missing_number")
    s = text.replace(" ", "").replace("-", "")
    if s == "":
        raise NumberProblem("missing_number")
    if s.startswith("+"):
        s = s[1:]
    m = re.fullmatch(r"([0-9]+)(\**)", s)
    if not m or len(s) > 15:
        raise NumberProblem("bad_number")
    return m.group(1), len(m.group(2))


def find_row(rows: list[DeckRow], deck: str, service: str, digits: str,
             at: datetime) -> DeckRow | None:
    """Longest prefix of `digits` with a version effective at `at`, falling
    back to shorter prefixes; conference dial-out falls back to outbound."""
    candidates = [r for r in rows if r.deck == deck and r.service == service
                  and digits.startswith(r.prefix)]
    for length in sorted({len(r.prefix) for r in candidates}, reverse=True):
        for r in candidates:
            if len(r.prefix) == length and r.effective_at(at):
                return r
    if service == "conference_dialout":
        return find_row(rows, deck, "outbound", digits, at)
    return None


def billable_seconds(d: int, i1: int, i2: int) -> int:
    if d == 0:
        return 0
    if d <= i1:
        return i1
    blocks = -(-(d - i1) // i2)  # ceiling division
    return i1 + blocks * i2


def charge(row: DeckRow, c: int) -> Decimal:
    """connect_fee + rate · c / 60, at least min_charge, rounded once."""
    if c == 0:
        return Decimal(0)
    with localcontext() as ctx:
        ctx.prec = 60  # far more than any amount needs: the division is exact enough
        amount = row.connect_fee + row.rate * c / Decimal(60)
        amount = max(amount, row.min_charge)
        return amount.quantize(Decimal(1).scaleb(-row.decimals), rounding=ROUNDING[row.rounding])


@dataclass(frozen=True)
class Priced:
    status: str                  # a status of SPEC §7, or "reject"
    service: str | None
    row: DeckRow | None
    billable_seconds: int
    charge: Decimal
    reason: str | None = None    # for rejects


def classify(call_type: str, number_type: str | None, caller: str | None,
             callee: str | None, emergency=EMERGENCY) -> tuple[str | None, str | None]:
    """(service, rated number) of a call; (None, None) for a free call.

    Raises NumberProblem for a rated call without a usable number.
    """
    if call_type in OUTBOUND_TYPES:
        digits, masked = parse_number(callee)
        if masked == 0 and digits in emergency:
            return None, None
        return ("conference_dialout" if call_type == "conf_out" else "outbound"), callee
    if call_type in INBOUND_TYPES and (number_type or "").strip().lower() == "tollfree":
        parse_number(caller)
        return "tollfree_inbound", caller
    return None, None


def price_cdr(rows: list[DeckRow], deck: str, *, call_type: str, number_type: str | None,
              caller: str | None, callee: str | None, start: datetime, duration: int,
              emergency=EMERGENCY) -> Priced:
    """Status, deck row, billable seconds and full charge of one CDR."""
    try:
        service, number = classify(call_type, number_type, caller, callee, emergency)
    except NumberProblem as e:
        return Priced("reject", None, None, 0, Decimal(0), e.reason)
    if service is None:
        return Priced("free", None, None, 0, Decimal(0))
    digits, _ = parse_number(number)
    row = find_row(rows, deck, service, digits, start)
    if duration == 0:
        return Priced("zero_duration", service, row, 0, Decimal(0))
    if row is None:
        return Priced("no_rate", service, None, 0, Decimal(0))
    if row.blocked:
        return Priced("blocked_destination", service, row, 0, Decimal(0))
    b = billable_seconds(duration, row.initial_increment, row.next_increment)
    return Priced("charged", service, row, b, charge(row, b))
