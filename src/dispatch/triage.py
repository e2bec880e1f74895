"""Triage of the overdue portfolio: which cases get a field visit today, and what each is worth.

Every case gets a channel (``field``, ``phone_sms`` or ``none``) and the rule
that decided it. The first matching rule wins, in this order:

1. ``NOT_OVERDUE``: nothing is past due or nothing is owed -> none.
2. ``DISPUTED``: the latest visit recorded a dispute -> none (the case team
   must resolve it before any collection).
3. ``PAID_RECENTLY``: the latest visit collected a full payment within
   ``paid_quiet_days`` -> none.
4. ``PROMISE_RUNNING``: a promise to pay is not yet due plus grace days ->
   phone_sms (a reminder, not a visit).
5. ``ADDRESS_UNKNOWN``: the latest visit found the debtor moved or the address
   wrong -> phone_sms (trace the address first).
6. ``NOT_HOME_REPEATEDLY``: ``max_not_home_visits`` visits in a row found no
   one -> phone_sms.
7. ``BROKEN_PROMISE``: the latest promise passed its due date plus grace with
   no payment since, and the amount is at least ``field_min_amount_cents``
   -> field, however few days are past due.
8. ``EARLY_DELINQUENCY``: fewer than ``field_min_days_past_due`` days -> phone_sms.
9. ``SMALL_AMOUNT``: less than ``field_min_amount_cents`` owed -> phone_sms.
10. ``LOW_VALUE``: expected recovery below ``field_min_expected_recovery_cents``
    -> phone_sms.
11. ``FIELD_VISIT``: long and large enough -> field.

When ``max_field_cases`` is set, field cases beyond it (lowest expected
recovery first) go to phone_sms with ``FIELD_CAPACITY``.

The value of a case is its expected recovery: probability of payment times the
amount owed. The default probability (``estimate_payment_probability``) is a
simple, documented heuristic, not a calibrated model; a bank replaces it by
passing its own scores.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from dispatch.compliance import Outcome, VisitRecord
from dispatch.model import Case


class Channel(StrEnum):
    """How a case is worked today."""

    FIELD = "field"
    PHONE_SMS = "phone_sms"
    NONE = "none"


class TriageRule(StrEnum):
    """The rule that chose a case's channel (see the module docstring for the order)."""

    NOT_OVERDUE = "NOT_OVERDUE"
    DISPUTED = "DISPUTED"
    PAID_RECENTLY = "PAID_RECENTLY"
    PROMISE_RUNNING = "PROMISE_RUNNING"
    ADDRESS_UNKNOWN = "ADDRESS_UNKNOWN"
    NOT_HOME_REPEATEDLY = "NOT_HOME_REPEATEDLY"
    BROKEN_PROMISE = "BROKEN_PROMISE"
    EARLY_DELINQUENCY = "EARLY_DELINQUENCY"
    SMALL_AMOUNT = "SMALL_AMOUNT"
    LOW_VALUE = "LOW_VALUE"
    FIELD_VISIT = "FIELD_VISIT"
    FIELD_CAPACITY = "FIELD_CAPACITY"


# Default probability of payment by days past due: (up to this many days, probability).
# Illustrative roll-rate shape (older debt pays less often), not a calibrated curve.
DAYS_PAST_DUE_PROBABILITY: tuple[tuple[int, float], ...] = (
    (30, 0.60),
    (60, 0.45),
    (90, 0.35),
    (180, 0.25),
    (365, 0.15),
)
OLDEST_DEBT_PROBABILITY = 0.08

# Factor applied for the latest outcome of a visit within the look-back period.
OUTCOME_FACTOR: dict[Outcome, float] = {
    Outcome.PAID: 1.2,
    Outcome.PARTIAL_PAYMENT: 1.3,
    Outcome.PROMISE_TO_PAY: 1.2,
    Outcome.NOT_HOME: 1.0,
    Outcome.MOVED: 0.5,
    Outcome.WRONG_ADDRESS: 0.5,
    Outcome.REFUSED: 0.6,
    Outcome.DISPUTED: 0.3,
    Outcome.THIRD_PARTY: 0.9,
}
# Each visit in a row that found no one lowers the chance of payment by this factor.
NOT_HOME_FACTOR = 0.9
BROKEN_PROMISE_FACTOR = 0.7
MIN_PROBABILITY, MAX_PROBABILITY = 0.01, 0.95

_PAYMENTS = frozenset({Outcome.PAID, Outcome.PARTIAL_PAYMENT})


@dataclass(frozen=True, slots=True)
class TriageRules:
    """Thresholds of the triage rules; money in cents, periods in days."""

    field_min_days_past_due: int = 60
    field_min_amount_cents: int = 50_000
    field_min_expected_recovery_cents: int = 10_000
    max_not_home_visits: int = 3
    lookback_days: int = 90
    promise_grace_days: int = 2
    paid_quiet_days: int = 30
    max_field_cases: int | None = None

    def __post_init__(self) -> None:
        for name in (
            "field_min_days_past_due",
            "field_min_amount_cents",
            "field_min_expected_recovery_cents",
            "promise_grace_days",
            "paid_quiet_days",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"triage rule {name} = {getattr(self, name)} is negative")
        if self.max_not_home_visits < 1:
            raise ValueError(f"triage rule max_not_home_visits = {self.max_not_home_visits} < 1")
        if self.lookback_days < 1:
            raise ValueError(f"triage rule lookback_days = {self.lookback_days} < 1")
        if self.max_field_cases is not None and self.max_field_cases < 0:
            raise ValueError(f"triage rule max_field_cases = {self.max_field_cases} is negative")


@dataclass(frozen=True, slots=True)
class TriageDecision:
    """The channel of one case today, the rule that chose it, and the case's value."""

    case_id: str
    channel: Channel
    rule: TriageRule
    detail: str
    payment_probability: float
    expected_recovery_cents: int


def triage(
    cases: Iterable[Case],
    *,
    history: Iterable[VisitRecord],
    today: dt.date,
    rules: TriageRules = TriageRules(),
    scores: Mapping[str, float] | None = None,
) -> tuple[TriageDecision, ...]:
    """Decide the channel of every case in the portfolio, in input order.

    Parameters
    ----------
    cases
        The whole overdue portfolio.
    history
        Past field visits (any order); only visits on or before ``today`` count.
    today
        The day being planned (passed in: triage never reads the clock).
    rules
        Thresholds of the rules.
    scores
        A bank's own probability of payment per case id (0..1); cases without a
        score use ``estimate_payment_probability``.
    """
    by_case: dict[str, list[VisitRecord]] = {}
    for record in history:
        if record.visited_at.date() <= today:
            by_case.setdefault(record.case_id, []).append(record)
    for records in by_case.values():
        records.sort(key=lambda r: r.visited_at)
    scores = dict(scores or {})
    for case_id, score in scores.items():
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"case {case_id}: score {score} is not a probability in 0..1")
    decisions = [
        _decide(case, by_case.get(case.id, []), today=today, rules=rules, score=scores.get(case.id))
        for case in cases
    ]
    return _cap_field(decisions, rules.max_field_cases)


def estimate_payment_probability(
    case: Case, records: Sequence[VisitRecord], *, today: dt.date, rules: TriageRules
) -> float:
    """Default probability that a case pays (0.01..0.95).

    Start from ``DAYS_PAST_DUE_PROBABILITY`` for the case's days past due; if
    a visit in the last ``lookback_days`` exists, multiply by
    ``OUTCOME_FACTOR`` of the latest one, by ``NOT_HOME_FACTOR`` for each
    visit in a row that found no one, and by ``BROKEN_PROMISE_FACTOR`` when
    the latest promise was broken.
    """
    probability = OLDEST_DEBT_PROBABILITY
    for days, value in DAYS_PAST_DUE_PROBABILITY:
        if case.days_past_due <= days:
            probability = value
            break
    recent = _recent(records, today, rules.lookback_days)
    if recent:
        probability *= OUTCOME_FACTOR[recent[-1].outcome]
        probability *= NOT_HOME_FACTOR ** _not_home_streak(recent)
        if _broken_promise(recent, today, rules.promise_grace_days) is not None:
            probability *= BROKEN_PROMISE_FACTOR
    return round(min(max(probability, MIN_PROBABILITY), MAX_PROBABILITY), 4)


def select_field_cases(
    cases: Iterable[Case], decisions: Iterable[TriageDecision]
) -> tuple[Case, ...]:
    """Return the cases triaged to a field visit, each valued at its expected recovery."""
    field = {d.case_id: d for d in decisions if d.channel == Channel.FIELD}
    return tuple(
        replace(case, value_cents=field[case.id].expected_recovery_cents)
        for case in cases
        if case.id in field
    )


def _decide(
    case: Case,
    records: Sequence[VisitRecord],
    *,
    today: dt.date,
    rules: TriageRules,
    score: float | None,
) -> TriageDecision:
    if score is None:
        probability = estimate_payment_probability(case, records, today=today, rules=rules)
        source = "default model"
    else:
        probability, source = score, "bank score"
    value = round(probability * case.amount_cents)

    def decide(channel: Channel, rule: TriageRule, detail: str) -> TriageDecision:
        return TriageDecision(
            case.id,
            channel,
            rule,
            f"{detail}; expected recovery {_money(value)} "
            f"({probability:.0%} x {_money(case.amount_cents)}, {source})",
            probability,
            value,
        )

    if case.days_past_due == 0 or case.amount_cents == 0:
        return decide(Channel.NONE, TriageRule.NOT_OVERDUE, "nothing is past due")
    recent = _recent(records, today, rules.lookback_days)
    latest = recent[-1] if recent else None
    if latest is not None and latest.outcome == Outcome.DISPUTED:
        return decide(
            Channel.NONE,
            TriageRule.DISPUTED,
            f"debt disputed at the visit on {latest.visited_at.date()}",
        )
    if (
        latest is not None
        and latest.outcome == Outcome.PAID
        and (today - latest.visited_at.date()).days < rules.paid_quiet_days
    ):
        return decide(
            Channel.NONE,
            TriageRule.PAID_RECENTLY,
            f"paid at the visit on {latest.visited_at.date()}",
        )
    promise = _latest_promise(recent)
    if promise is not None and promise.promise_due is not None:
        until = promise.promise_due + dt.timedelta(days=rules.promise_grace_days)
        if today <= until:
            return decide(
                Channel.PHONE_SMS,
                TriageRule.PROMISE_RUNNING,
                f"promise to pay due {promise.promise_due} (grace until {until}): "
                "remind, do not visit",
            )
    if latest is not None and latest.outcome in (Outcome.MOVED, Outcome.WRONG_ADDRESS):
        return decide(
            Channel.PHONE_SMS,
            TriageRule.ADDRESS_UNKNOWN,
            f"visit on {latest.visited_at.date()} found '{latest.outcome}': "
            "trace the address first",
        )
    streak = _not_home_streak(recent)
    if streak >= rules.max_not_home_visits:
        return decide(
            Channel.PHONE_SMS,
            TriageRule.NOT_HOME_REPEATEDLY,
            f"{streak} visits in a row found no one (limit {rules.max_not_home_visits})",
        )
    broken = _broken_promise(recent, today, rules.promise_grace_days)
    if broken is not None and case.amount_cents >= rules.field_min_amount_cents:
        return decide(
            Channel.FIELD,
            TriageRule.BROKEN_PROMISE,
            f"promise to pay due {broken.promise_due} was not kept",
        )
    if case.days_past_due < rules.field_min_days_past_due:
        return decide(
            Channel.PHONE_SMS,
            TriageRule.EARLY_DELINQUENCY,
            f"{case.days_past_due} days past due, field visits from "
            f"{rules.field_min_days_past_due}",
        )
    if case.amount_cents < rules.field_min_amount_cents:
        return decide(
            Channel.PHONE_SMS,
            TriageRule.SMALL_AMOUNT,
            f"{_money(case.amount_cents)} owed, field visits from "
            f"{_money(rules.field_min_amount_cents)}",
        )
    if value < rules.field_min_expected_recovery_cents:
        return decide(
            Channel.PHONE_SMS,
            TriageRule.LOW_VALUE,
            f"expected recovery below {_money(rules.field_min_expected_recovery_cents)}",
        )
    return decide(
        Channel.FIELD,
        TriageRule.FIELD_VISIT,
        f"{case.days_past_due} days past due and {_money(case.amount_cents)} owed",
    )


def _cap_field(
    decisions: list[TriageDecision], max_field_cases: int | None
) -> tuple[TriageDecision, ...]:
    if max_field_cases is None:
        return tuple(decisions)
    field = sorted(
        (d for d in decisions if d.channel == Channel.FIELD),
        key=lambda d: (-d.expected_recovery_cents, d.case_id),
    )
    overflow = {d.case_id for d in field[max_field_cases:]}
    return tuple(
        replace(
            d,
            channel=Channel.PHONE_SMS,
            rule=TriageRule.FIELD_CAPACITY,
            detail=f"{d.detail}; below the top {max_field_cases} field cases by expected recovery",
        )
        if d.case_id in overflow
        else d
        for d in decisions
    )


def _recent(
    records: Sequence[VisitRecord], today: dt.date, lookback_days: int
) -> list[VisitRecord]:
    first = today - dt.timedelta(days=lookback_days)
    return [r for r in records if first <= r.visited_at.date() <= today]


def _not_home_streak(records: Sequence[VisitRecord]) -> int:
    streak = 0
    for record in reversed(records):
        if record.outcome != Outcome.NOT_HOME:
            break
        streak += 1
    return streak


def _latest_promise(records: Sequence[VisitRecord]) -> VisitRecord | None:
    promises = [r for r in records if r.outcome == Outcome.PROMISE_TO_PAY]
    return promises[-1] if promises else None


def _broken_promise(
    records: Sequence[VisitRecord], today: dt.date, grace_days: int
) -> VisitRecord | None:
    """Return the latest promise if it is past due plus grace with no payment since."""
    promise = _latest_promise(records)
    if promise is None or promise.promise_due is None:
        return None
    if today <= promise.promise_due + dt.timedelta(days=grace_days):
        return None
    paid_since = any(r.visited_at > promise.visited_at and r.outcome in _PAYMENTS for r in records)
    return None if paid_since else promise


def _money(cents: int) -> str:
    return f"{cents / 100:,.2f}"
