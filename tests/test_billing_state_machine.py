"""The billing kernel against the reference, as a hypothesis state machine.

Each step adds licenses (assigned and removed mid-month), fundings, card
updates or calls to a growing config and CDR list; a ``run`` step bills the
pending calls on both sides, run after run with the state they carried, and
compares every rated outcome, ledger entry, notification and pool. Tiny
pools (a custom skus.csv) and small amounts make exhaustion, either-cap,
overruns, expiry, recharges and back-off happen within a few steps.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from billing_harness import Both, card_update, fund, lic, tenant, write_config
from conftest import cdr, deck_row, write_csv
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from ratecore import billing

T0 = datetime(2024, 1, 20, tzinfo=timezone.utc)
TENANTS = ("t1", "t2", "t3")
USERS = ("u1", "u2", "u3")
SKUS_CSV = [  # the shipped plans, with minutes small enough to run out
    ("MCOPSTN1", "Domestic Calling Plan", "domestic", "US", 3),
    ("MCOPSTN1", "Domestic Calling Plan", "domestic", "", 2),
    ("MCOPSTN2", "Domestic and International Calling Plan", "domestic", "", 3),
    ("MCOPSTN2", "Domestic and International Calling Plan", "international", "", 2),
    ("MCOPSTN5", "Domestic Calling Plan (120 min)", "domestic", "", 1),
    ("MCOPSTN8", "Domestic Calling Plan (120 min, not pooled)", "user", "", 2),
    ("MCOMEETADD", "Audio Conferencing", "dialout", "", 2),
    ("MCOPSTNPP", "Communications Credits", "credits", "", 0),
]
SKUS = sorted({s[0] for s in SKUS_CSV})
#: (number, what it reaches): US, PR, CA (domestic for US users), GB, GB premium, FR
NUMBERS = ("+12065550123", "+17875550123", "+14165550123", "+442071234567", "+449091234567",
           "+33123456789", "+447012345678")
DECK = [deck_row("1", rate="0.0100", country="US"), deck_row("1787", rate="0.0200", country="PR"),
        deck_row("1416", rate="0.0150", country="CA", connect_fee="0.05"),
        deck_row("44", rate="0.1000", country="GB", initial_increment=60, next_increment=60),
        deck_row("4470", rate="0.1000", country="GB", blocked="true"),
        deck_row("449", rate="1.5000", country="GB", number_class="premium"),
        deck_row("33", rate="0.0700", country="FR", min_charge="0.10"),
        deck_row("1", rate="0.0300", country="US", service="conference_dialout"),
        deck_row("33", rate="0.0900", country="FR", service="conference_dialout"),
        deck_row("1800", rate="0.0400", country="US", service="tollfree_inbound")]
MONEY = st.sampled_from(["0.50", "1.00", "2.50", "7.25", "10.00"])


def when(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


class BillingMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="ratecore-sm-"))
        self.clock = 0.0           # hours after T0 that runs have reached
        self.licenses, self.funds, self.cards, self.pending = [], [], [], []
        self.n_calls = 0
        self.both = None

    def teardown(self):
        billing._MIN_ROOM = 1024
        shutil.rmtree(self.root, ignore_errors=True)

    def _write(self):
        config = write_config(self.root, DECK, self.tenants, self.licenses, self.funds,
                              self.cards)
        write_csv(config / "skus.csv", ["sku", "name", "pool", "country", "minutes"],
                  [dict(zip(["sku", "name", "pool", "country", "minutes"], r)) for r in SKUS_CSV])
        return config

    @initialize(settings=st.lists(st.tuples(
        st.booleans(), st.booleans(), st.sampled_from(["", "1.00", "3.00", "20.00"]),
        st.sampled_from(["1.00", "5.00"]),
        st.sampled_from(["", "2023-12", "2024-01", "2024-02", "2030-01"]),
        st.sampled_from(["US", "PR", "CA", "GB"]), st.lists(st.sampled_from(SKUS), max_size=3),
        st.sampled_from(["", "0.30", "2.00", "15.00"])), min_size=1, max_size=3),
        room=st.sampled_from([1, 1024]))
    def setup(self, settings, room):
        # room 1: the pass's buffers start with one entry, so it stops to grow
        # them and resumes all along; results must not change
        billing._MIN_ROOM = room
        self.tenants = []
        for tid, (credits, auto, trigger, recharge, card, country, plans, money) in zip(
                TENANTS, settings):
            self.tenants.append(tenant(tid, country=country, credits=credits or bool(money),
                                       auto=auto and trigger != "", trigger=trigger,
                                       recharge=recharge if auto and trigger else "", card=card))
            start = (T0 - timedelta(days=40)).isoformat()
            for k, user in enumerate(USERS[:2]):
                if k == 0 or credits:
                    self.licenses.append(lic(user, "MCOPSTNPP", country, start, tid=tid))
                for sku in set(plans) - {"MCOPSTNPP"}:
                    self.licenses.append(lic(user, sku, country, start, tid=tid))
            if money:
                self.funds.append(fund(T0.isoformat(), money, tid=tid, reference=f"EA-{tid}"))
        self.both = Both(self._write())

    def _tenant(self, data):
        return data.draw(st.sampled_from([t["tenant_id"] for t in self.tenants]))

    @rule(data=st.data(), user=st.sampled_from(USERS), sku=st.sampled_from(SKUS),
          location=st.sampled_from(["US", "PR", "CA", "GB"]),
          frm=st.floats(-48, 24 * 70), length=st.one_of(st.none(), st.floats(1, 24 * 40)))
    def assign(self, data, user, sku, location, frm, length):
        tid = self._tenant(data)
        start = when(self.clock + frm)
        end = None if length is None else start + timedelta(hours=length)
        mine = [x for x in self.licenses if (x["tenant_id"], x["user_id"], x["sku"]) == (tid, user, sku)]
        for x in mine:  # one window per (user, sku) at a time: skip overlaps
            xs = datetime.fromisoformat(x["assigned_from"])
            xe = datetime.fromisoformat(x["assigned_to"]) if x["assigned_to"] else None
            if (end is None or xs < end) and (xe is None or start < xe):
                return
        self.licenses.append(lic(user, sku, location, start.isoformat(),
                                 end.isoformat() if end else "", tid=tid))

    @rule(data=st.data(), hours=st.floats(-24, 24 * 60), amount=MONEY)
    def add_funds(self, data, hours, amount):
        self.funds.append(fund(when(self.clock + hours).isoformat(), amount, tid=self._tenant(data),
                               reference=f"PO-{len(self.funds)}"))

    @rule(data=st.data(), hours=st.floats(0, 24 * 60),
          expires=st.sampled_from(["2023-11", "2024-02", "2024-04", "2031-12"]))
    def update_card(self, data, hours, expires):
        self.cards.append(card_update(when(self.clock + hours).isoformat(), expires,
                                      tid=self._tenant(data)))

    @rule(data=st.data(), calls=st.lists(st.tuples(
        st.sampled_from(USERS), st.sampled_from(NUMBERS),
        st.sampled_from(["user_out", "user_out", "ucap_out", "conf_out", "user_in"]),
        st.integers(0, 400), st.one_of(st.floats(-30, 72), st.floats(-30, 24 * 45)),
        st.integers(0, 5)), min_size=1, max_size=16))
    def place_calls(self, data, calls):
        for user, number, call_type, duration, hours, tie in calls:
            tid = self._tenant(data)
            self.n_calls += 1
            start = when(self.clock + hours) + timedelta(microseconds=tie)
            caller, number_type = "+12065550100", "user"
            if call_type == "user_in" and tie % 2:
                caller, number_type = "+18005550100", "tollfree"
            self.pending.append(cdr(f"x{self.n_calls:05d}", number, duration,
                                    start=start.isoformat(), call_type=call_type, caller=caller,
                                    tenant=tid, number_type=number_type, user=user))

    @precondition(lambda self: self.both is not None)
    @rule(as_of=st.one_of(st.none(), st.floats(0, 24 * 400)), threads=st.sampled_from([1, 2]))
    def run(self, as_of, threads):
        self.both.reload(self._write())
        stop = None if as_of is None else when(self.clock + as_of)
        self.both.run(self.pending, stop, threads=threads)
        self.pending = []
        reached = self.both.state.as_of
        if reached > -2**63:
            from billing_harness import at
            self.clock = (at(reached) - T0) / timedelta(hours=1)

    @invariant()
    def balances_reconcile(self):
        """Every tenant's balance is the sum of its ledger amounts."""
        if self.both is None:
            return
        sums = {}
        for e in self.both.ledger_k:
            d = dict(e)
            sums[d["tenant_id"]] = sums.get(d["tenant_id"], 0) + d["amount"]
            assert d["balance_after"] == sums[d["tenant_id"]]
        for tid, total in sums.items():
            assert self.both.state.balance(tid) == int(total.scaleb(6))


BillingMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestBilling = BillingMachine.TestCase
