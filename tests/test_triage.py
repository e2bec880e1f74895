"""Triage: every case gets a channel and the rule that chose it, and field cases a value."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from dispatch.compliance import Outcome, VisitRecord, read_history
from dispatch.io import read_cases
from dispatch.model import Case, Location
from dispatch.triage import (
    Channel,
    TriageRule,
    TriageRules,
    estimate_payment_probability,
    select_field_cases,
    triage,
)

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
TODAY = dt.date(2026, 12, 1)
HERE = Location(60.1699, 24.9384)


def case(case_id: str, *, days: int = 120, euros: int = 2_000) -> Case:
    return Case(case_id, HERE, days_past_due=days, amount_cents=euros * 100)


def visit(case_id: str, day: str, outcome: Outcome, due: str | None = None) -> VisitRecord:
    return VisitRecord(
        case_id,
        dt.datetime.fromisoformat(f"{day}T12:00:00+02:00"),
        outcome,
        promise_due=dt.date.fromisoformat(due) if due else None,
    )


def decide(cases, history=(), **kwargs):
    return {d.case_id: d for d in triage(cases, history=history, today=TODAY, **kwargs)}


def test_every_case_gets_a_channel_and_a_rule_in_input_order():
    cases = [case(f"C-{i}", days=10 * i, euros=100 * i) for i in range(1, 30)]
    decisions = triage(cases, history=(), today=TODAY)
    assert [d.case_id for d in decisions] == [c.id for c in cases]
    assert all(isinstance(d.channel, Channel) and d.rule and d.detail for d in decisions)


def test_long_and_large_debts_go_to_the_field_small_or_young_ones_to_phone():
    decisions = decide(
        [
            case("LONG-LARGE", days=120, euros=2_000),
            case("YOUNG", days=20, euros=2_000),
            case("SMALL", days=120, euros=300),
            case("CURRENT", days=0, euros=2_000),
        ]
    )
    summary = {k: (d.channel, d.rule) for k, d in decisions.items()}
    assert summary == {
        "LONG-LARGE": (Channel.FIELD, TriageRule.FIELD_VISIT),
        "YOUNG": (Channel.PHONE_SMS, TriageRule.EARLY_DELINQUENCY),
        "SMALL": (Channel.PHONE_SMS, TriageRule.SMALL_AMOUNT),
        "CURRENT": (Channel.NONE, TriageRule.NOT_OVERDUE),
    }


def test_the_value_is_probability_times_amount_with_the_documented_default_curve():
    decisions = decide([case("A", days=45, euros=1_000), case("B", days=400, euros=10_000)])
    assert decisions["A"].payment_probability == 0.45
    assert decisions["A"].expected_recovery_cents == 45_000
    assert decisions["B"].payment_probability == 0.08
    assert decisions["B"].expected_recovery_cents == 80_000


def test_a_low_expected_recovery_stays_with_calls_unless_the_bank_scores_it_higher():
    old = case("OLD", days=700, euros=1_000)  # 8 % of 1,000 = 80 < 100
    assert decide([old])["OLD"].rule == TriageRule.LOW_VALUE
    scored = decide([old], scores={"OLD": 0.5})["OLD"]
    assert (scored.channel, scored.rule) == (Channel.FIELD, TriageRule.FIELD_VISIT)
    assert scored.expected_recovery_cents == 50_000
    assert "bank score" in scored.detail
    with pytest.raises(ValueError, match="not a probability"):
        decide([old], scores={"OLD": 1.5})


def test_outcomes_of_earlier_visits_decide_the_channel():
    cases = [case(x) for x in ("DISP", "PAID", "PTP", "MOVED", "AWAY", "BROKEN", "KEPT")]
    history = [
        visit("DISP", "2026-11-10", Outcome.DISPUTED),
        visit("PAID", "2026-11-20", Outcome.PAID),
        visit("PTP", "2026-11-25", Outcome.PROMISE_TO_PAY, due="2026-11-30"),
        visit("MOVED", "2026-11-02", Outcome.MOVED),
        visit("AWAY", "2026-11-03", Outcome.NOT_HOME),
        visit("AWAY", "2026-11-10", Outcome.NOT_HOME),
        visit("AWAY", "2026-11-17", Outcome.NOT_HOME),
        visit("BROKEN", "2026-11-01", Outcome.PROMISE_TO_PAY, due="2026-11-15"),
        visit("KEPT", "2026-11-01", Outcome.PROMISE_TO_PAY, due="2026-11-15"),
        visit("KEPT", "2026-11-14", Outcome.PARTIAL_PAYMENT),
    ]
    decisions = decide(cases, history)
    summary = {k: (d.channel, d.rule) for k, d in decisions.items()}
    assert summary == {
        "DISP": (Channel.NONE, TriageRule.DISPUTED),
        "PAID": (Channel.NONE, TriageRule.PAID_RECENTLY),
        "PTP": (Channel.PHONE_SMS, TriageRule.PROMISE_RUNNING),
        "MOVED": (Channel.PHONE_SMS, TriageRule.ADDRESS_UNKNOWN),
        "AWAY": (Channel.PHONE_SMS, TriageRule.NOT_HOME_REPEATEDLY),
        "BROKEN": (Channel.FIELD, TriageRule.BROKEN_PROMISE),
        "KEPT": (Channel.FIELD, TriageRule.FIELD_VISIT),
    }
    # A broken promise lowers the chance of payment.
    assert decisions["BROKEN"].payment_probability == pytest.approx(0.25 * 1.2 * 0.7)


def test_a_broken_promise_brings_a_young_debt_to_the_field():
    young = case("YOUNG", days=30, euros=2_000)
    history = [visit("YOUNG", "2026-11-01", Outcome.PROMISE_TO_PAY, due="2026-11-20")]
    assert decide([young], history)["YOUNG"].rule == TriageRule.BROKEN_PROMISE
    assert decide([young])["YOUNG"].rule == TriageRule.EARLY_DELINQUENCY


def test_visits_older_than_the_look_back_or_after_today_do_not_count():
    cases = [case("OLD"), case("FUTURE")]
    history = [
        visit("OLD", "2026-08-01", Outcome.DISPUTED),
        visit("FUTURE", "2026-12-05", Outcome.DISPUTED),
    ]
    decisions = decide(cases, history)
    assert decisions["OLD"].rule == TriageRule.FIELD_VISIT
    assert decisions["FUTURE"].rule == TriageRule.FIELD_VISIT


def test_field_capacity_keeps_the_most_valuable_cases():
    cases = [case(f"C-{i}", days=120, euros=1_000 * i) for i in range(1, 6)]
    decisions = decide(cases, rules=TriageRules(max_field_cases=2))
    field = {k for k, d in decisions.items() if d.channel == Channel.FIELD}
    assert field == {"C-4", "C-5"}
    assert {d.rule for k, d in decisions.items() if k not in field} == {TriageRule.FIELD_CAPACITY}


def test_selected_field_cases_carry_their_expected_recovery_as_value():
    cases = [case("A", days=120, euros=2_000), case("B", days=10, euros=2_000)]
    decisions = triage(cases, history=(), today=TODAY)
    (selected,) = select_field_cases(cases, decisions)
    assert selected.id == "A"
    assert selected.value == 50_000  # 25 % of 2,000 euros


def test_rules_validate_their_thresholds():
    with pytest.raises(ValueError, match="field_min_amount_cents"):
        TriageRules(field_min_amount_cents=-1)
    with pytest.raises(ValueError, match="lookback_days"):
        TriageRules(lookback_days=0)


def test_the_default_probability_stays_between_one_and_ninety_five_percent():
    rules = TriageRules()
    away = [visit("X", f"2026-11-{d:02d}", Outcome.NOT_HOME) for d in range(1, 29)]
    low = estimate_payment_probability(case("X", days=700), away, today=TODAY, rules=rules)
    assert low == 0.01


def test_the_sample_portfolio_is_triaged_with_its_history():
    cases = read_cases(SAMPLE / "cases.csv").items
    history = read_history(SAMPLE / "visit_history.csv")
    decisions = decide(cases, history)
    assert len(decisions) == len(cases)
    assert decisions["C-012"].rule == TriageRule.BROKEN_PROMISE
    assert decisions["C-007"].rule == TriageRule.PROMISE_RUNNING
    assert decisions["C-010"].rule == TriageRule.NOT_HOME_REPEATEDLY
    assert decisions["C-045"].channel == Channel.NONE
    field = [d for d in decisions.values() if d.channel == Channel.FIELD]
    assert len(field) > len(cases) // 2
