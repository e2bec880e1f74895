"""Compliance: policy files and presets, local legal windows, exclusions, plan checks, redaction."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dispatch.compliance import (
    AuditRecord,
    Outcome,
    PolicyError,
    Rule,
    VisitRecord,
    apply_policy,
    check_compliance,
    combine_policies,
    legal_windows,
    load_policy,
    parse_policy,
    preset_names,
    read_history,
    redact_for_collector,
)
from dispatch.errors import InputError, RowError
from dispatch.io import read_cases, read_collectors
from dispatch.model import (
    Case,
    Collector,
    Location,
    Plan,
    Problem,
    Route,
    Stop,
    TimeWindow,
    parse_clock,
)
from dispatch.policies import RULE_KEYS, Exposure, ExposureProfile

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"

HELSINKI = Location(60.1699, 24.9384)
NEW_YORK = Location(40.7128, -74.0060)
BOSTON = Location(42.3601, -71.0589)
CHICAGO = Location(41.8781, -87.6298)
AMSTERDAM = Location(52.3676, 4.9041)
SHANGHAI = Location(31.2304, 121.4737)

H = 3600


def hhmm(text: str) -> int:
    return parse_clock(text)


def make_problem(
    cases: list[Case], *, date: dt.date, timezone: str, depot: Location = HELSINKI
) -> Problem:
    collector = Collector("K-1", "K-1", depot, depot, TimeWindow(0, 24 * H))
    return Problem(date, timezone, tuple(cases), (collector,))


def make_case(case_id: str, location: Location, **kwargs) -> Case:
    kwargs.setdefault("service_s", 15 * 60)
    return Case(case_id, location, days_past_due=90, amount_cents=100_000, **kwargs)


def visit(case_id: str, when: str, outcome: Outcome = Outcome.REFUSED, due: str | None = None):
    return VisitRecord(
        case_id,
        dt.datetime.fromisoformat(when),
        outcome,
        promise_due=dt.date.fromisoformat(due) if due else None,
    )


def plan_of(*stops: tuple[str, int, int]) -> Plan:
    built = tuple(Stop(case_id, start, start, end, 0, 0) for case_id, start, end in stops)
    route = Route("K-1", 0, 24 * H, built, 0, 0)
    return Plan((route,), ())


POLICY_HEAD = """
name: test
version: "1"
"""


def policy(text: str):
    return parse_policy(POLICY_HEAD + text, source="test.yaml")


# ---------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------


def test_every_jurisdiction_has_a_preset():
    assert set(preset_names()) == {"cn", "us-federal", "us-ma", "in", "uk", "nl"}


@pytest.mark.parametrize("name", ["cn", "us-federal", "us-ma", "in", "uk", "nl"])
def test_preset_cites_a_source_or_company_policy_for_every_rule_it_sets(name):
    preset = load_policy(name)
    assert preset.sources, f"{name} cites no source"
    for source in preset.sources:
        assert source.ref and source.confidence in ("H", "M", "L", "UNCONFIRMED")
    defaults = parse_policy(f"name: {name}\nversion: x\n")
    for rule in RULE_KEYS:
        differs = preset.to_dict()[rule] != defaults.to_dict()[rule]
        if differs:
            assert preset.basis_of(rule), f"{name}: rule {rule} has no basis"
    source_ids = {s.id for s in preset.sources}
    for basis in preset.basis:
        assert set(basis.sources) <= source_ids
        assert basis.company_policy or basis.confidence is not None


def test_presets_do_not_claim_more_certainty_than_the_research_shows():
    cn = load_policy("cn")
    assert cn.min_crew == 2
    assert [b.confidence for b in cn.basis_of("min_crew")] == ["M"]
    assert [b.confidence for b in cn.basis_of("visit_windows")] == ["M"]
    us = load_policy("us-federal")
    assert [b.confidence for b in us.basis_of("visit_windows")] == ["H"]
    # The UK has no statutory hours: the window is a company default of unconfirmed value.
    (uk_window,) = load_policy("uk").basis_of("visit_windows")
    assert uk_window.company_policy and uk_window.confidence == "UNCONFIRMED"
    # India's visit window and two flags rest on a draft.
    india = load_policy("in")
    assert india.status == "draft"
    # No preset cites a legal source for the promise cool-off: none was found.
    for name in preset_names():
        for basis in load_policy(name).basis_of("promise_cool_off"):
            assert basis.company_policy and not basis.sources


def test_preset_values_follow_the_research_note():
    windows = {
        name: [str(w) for w in load_policy(name).visit_windows[1]] for name in preset_names()
    }
    assert windows == {
        "cn": ["08:00-22:00"],
        "us-federal": ["08:00-21:00"],
        "us-ma": ["08:00-21:00"],
        "in": ["08:00-19:00"],
        "uk": ["08:00-20:00"],
        "nl": ["07:00-20:00"],
    }
    nl = load_policy("nl")
    assert nl.blocked_weekdays == {6} and nl.holiday_calendars == ("NL",)
    ma = load_policy("us-ma")
    assert [(c.max_visits, c.period_days, c.counts) for c in ma.visit_caps] == [
        (1, 30, "contacted")
    ]
    assert "workplace" not in ma.visit_places
    assert load_policy("us-federal").blocked_flags == {
        "dispute",
        "cease_contact",
        "attorney",
        "bankruptcy",
        "deceased",
    }
    assert load_policy("uk").blocked_flags == {"vulnerable"}
    assert {"bereavement", "calamity"} <= load_policy("in").blocked_flags


# ---------------------------------------------------------------------------
# Policy files: validation
# ---------------------------------------------------------------------------


def test_a_bad_time_names_the_file_the_key_and_the_problem(tmp_path):
    path = tmp_path / "cn.yaml"
    path.write_text(POLICY_HEAD + "visit_windows:\n  mon: ['25:00-26:00']\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert str(info.value).splitlines()[0] == (
        "policy cn.yaml: visit_windows.mon[0]: '25:00' is not a time of day"
    )


def test_every_problem_of_a_policy_file_is_reported_at_once():
    text = """
visit_windows:
  daily: ['20:00-08:00']
  funday: ['08:00-09:00']
blocked_weekdays: [sunday]
holiday_calendars: [XX]
blocked_flags: [disput]
visit_caps:
  - {max_visits: -1, period_days: 30}
min_crew: 0
data_exposure:
  national_id: full
  phnoe: masked
basis:
  min_crew: {sources: [nowhere], confidence: H}
colour: blue
"""
    with pytest.raises(PolicyError) as info:
        policy(text)
    problems = info.value.problems
    expected_starts = [
        "colour: unknown key",
        "visit_windows.daily[0]: '20:00-08:00' ends before it starts",
        "visit_windows.funday: unknown day",
        "blocked_weekdays[0]: 'sunday' is not one of mon",
        "holiday_calendars[0]: 'XX' is not a country or subdivision",
        "blocked_flags[0]: 'disput' is not a known flag",
        "visit_caps[0].max_visits: -1 is below the minimum of 0",
        "min_crew: 0 is below the minimum of 1",
        "data_exposure.national_id: 'full' is not allowed (collectors never see it)",
        "data_exposure.phnoe: unknown field",
        "basis.min_crew.sources: 'nowhere' is not the id of a listed source",
    ]
    for start in expected_starts:
        assert any(p.startswith(start) for p in problems), (start, problems)
    assert str(info.value).startswith("policy test.yaml: ")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("version: 1\n", "name: is required"),
        (
            "name: x\nversion: 1\nvisit_windows: [08:00-20:00]\n",
            "visit_windows: expected a mapping",
        ),
        ("name: x\nversion: 1\nmin_gap_hours: soon\n", "min_gap_hours: 'soon' is not a number"),
        ("name: x\nversion: 1\nvisit_places: [pub]\n", "visit_places[0]: 'pub' is not one of"),
        ("name: x\nversion: 1\nbasis:\n  min_crew: {note: hi}\n", "basis.min_crew: cite"),
        (
            "name: x\nversion: 1\nvisit_windows:\n  mon: ['08:00-12:00', '11:00-14:00']\n",
            "visit_windows.mon: windows 08:00-12:00 and 11:00-14:00 overlap",
        ),
        ("name: x\nversion: 1\nvisit_windows:\n  mon: [8]\n", "visit_windows.mon[0]: 8 is not"),
        ("name: x\nversion: 1\npromise_cool_off: 3\n", "promise_cool_off: expected"),
    ],
)
def test_schema_errors_name_the_key(text, problem):
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="p.yaml")
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


def test_missing_file_unknown_preset_and_broken_yaml_are_policy_errors(tmp_path):
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "nope.yaml")
    with pytest.raises(PolicyError, match="unknown policy preset 'fr'; presets: cn, in"):
        load_policy("fr")
    with pytest.raises(PolicyError, match="not valid YAML"):
        parse_policy("name: [unclosed\n", source="x.yaml")


def test_content_hash_follows_content_not_formatting():
    a = policy("visit_windows: {daily: ['08:00-20:00']}\nmin_crew: 2\n")
    b = policy(
        "# same rules, spelled out\nmin_crew: 2\nvisit_windows:\n"
        + "".join(f"  {d}: ['08:00-20:00']\n" for d in ("mon", "tue", "wed", "thu", "fri"))
        + "  sat: ['08:00-20:00']\n  sun: ['08:00-20:00']\n"
    )
    c = policy("visit_windows: {daily: ['08:00-20:00']}\nmin_crew: 3\n")
    assert a.content_hash == b.content_hash
    assert a.content_hash != c.content_hash
    assert len(a.content_hash) == 64


# ---------------------------------------------------------------------------
# Combining presets
# ---------------------------------------------------------------------------


def test_combining_cn_and_us_takes_the_strictest_value_of_each_rule():
    combined = combine_policies(load_policy("cn"), load_policy("us-federal"))
    assert [str(w) for w in combined.visit_windows[0]] == ["08:00-21:00"]
    assert combined.min_crew == 2
    assert combined.blocked_flags == load_policy("cn").blocked_flags | {
        "dispute",
        "attorney",
        "bankruptcy",
    }
    assert combined.name == "cn+us-federal"
    assert {s.policy for s in combined.sources} == {"cn", "us-federal"}


def test_combining_nl_uk_and_ma_unites_days_and_keeps_caps_and_places_strict():
    combined = load_policy("nl+uk+us-ma")
    assert [str(w) for w in combined.visit_windows[2]] == ["08:00-20:00"]
    assert combined.blocked_weekdays == {6}
    assert combined.holiday_calendars == ("NL",)
    assert "vulnerable" in combined.blocked_flags and "dispute" in combined.blocked_flags
    assert [(c.max_visits, c.period_days) for c in combined.visit_caps] == [(1, 30)]
    assert combined.visit_places == {"residence", "agreed_place"}
    assert combined.content_hash == load_policy("nl+uk+us-ma").content_hash


def test_combining_numbers_takes_min_caps_and_max_gaps_cool_offs_and_crew():
    a = policy(
        "visit_windows: {mon: ['08:00-12:00', '14:00-20:00']}\n"
        "holiday_calendars: [FI]\nvisit_caps: [{max_visits: 3, period_days: 30}]\n"
        "min_gap_hours: 24\npromise_cool_off: {grace_days: 2}\nmin_crew: 1\n"
        "data_exposure: {phone: full, amount_cents: hidden}\n"
    )
    b = policy(
        "visit_windows: {mon: ['10:00-16:00']}\nblocked_weekdays: [sat]\n"
        "holiday_calendars: [GB-ENG]\nvisit_caps: [{max_visits: 2, period_days: 30}, "
        "{max_visits: 1, period_days: 7}]\n"
        "min_gap_hours: 72\npromise_cool_off: {grace_days: 5}\nmin_crew: 2\n"
        "data_exposure: {phone: masked, name: masked}\n"
    )
    combined = combine_policies(a, b)
    assert [str(w) for w in combined.visit_windows[0]] == ["10:00-12:00", "14:00-16:00"]
    assert [str(w) for w in combined.visit_windows[1]] == ["00:00-24:00"]
    assert combined.blocked_weekdays == {5}
    assert combined.holiday_calendars == ("FI", "GB-ENG")
    assert sorted((c.max_visits, c.period_days) for c in combined.visit_caps) == [(1, 7), (2, 30)]
    assert combined.min_gap_s == 72 * H
    assert combined.promise_grace_days == 5
    assert combined.min_crew == 2
    exposure = combined.exposure
    assert exposure.level("phone") == Exposure.MASKED
    assert exposure.level("name") == Exposure.MASKED
    assert exposure.level("amount_cents") == Exposure.HIDDEN
    assert exposure.level("national_id") == Exposure.HIDDEN


# ---------------------------------------------------------------------------
# Legal windows in the debtor's local time
# ---------------------------------------------------------------------------


def test_a_case_in_the_plan_zone_gets_the_local_window_less_the_visit_length():
    fi = load_policy(SAMPLE / "policy.yaml")
    case = make_case("C-1", HELSINKI, service_s=30 * 60)
    problem = make_problem([case], date=dt.date(2026, 12, 1), timezone="Europe/Helsinki")
    result = apply_policy(problem, fi)
    (kept,) = result.problem.cases
    assert kept.windows == (TimeWindow(hhmm("08:00"), hhmm("19:30")),)
    assert result.local_timezones == {"C-1": "Europe/Helsinki"}


def test_an_east_coast_case_in_a_central_time_plan_keeps_its_own_local_hours():
    case = make_case("NY-1", NEW_YORK)
    problem = make_problem(
        [case], date=dt.date(2026, 6, 10), timezone="America/Chicago", depot=CHICAGO
    )
    (kept,) = apply_policy(problem, load_policy("us-federal")).problem.cases
    # 08:00-21:00 in New York is 07:00-20:00 in Chicago; the 15-minute visit must end by 21:00.
    assert kept.windows == (TimeWindow(hhmm("07:00"), hhmm("19:45")),)
    new_york = ZoneInfo("America/New_York")
    first = problem.to_datetime(kept.windows[0].start_s).astimezone(new_york)
    last_end = problem.to_datetime(kept.windows[0].end_s + case.service_s).astimezone(new_york)
    assert (first.hour, first.minute) == (8, 0)
    assert (last_end.hour, last_end.minute) == (21, 0)


def test_windows_are_right_on_the_day_daylight_saving_time_starts():
    # 2026-03-08: US clocks go forward at 02:00; the plan day in Chicago has 23 hours.
    case = make_case("NY-1", NEW_YORK, service_s=60 * 60)
    problem = make_problem(
        [case], date=dt.date(2026, 3, 8), timezone="America/Chicago", depot=CHICAGO
    )
    (kept,) = apply_policy(problem, load_policy("us-federal")).problem.cases
    # Midnight CST is 06:00 UTC; 08:00 EDT is 12:00 UTC (6 h later); 21:00 EDT is 19 h later.
    assert kept.windows == (TimeWindow(6 * H, 18 * H),)
    new_york = ZoneInfo("America/New_York")
    start = problem.to_datetime(kept.windows[0].start_s).astimezone(new_york)
    end = problem.to_datetime(kept.windows[0].end_s + case.service_s).astimezone(new_york)
    assert start.strftime("%H:%M %Z") == "08:00 EDT"
    assert end.strftime("%H:%M %Z") == "21:00 EDT"


def test_a_window_crossing_the_plan_days_midnight_is_split_by_local_date():
    # 2026-03-10: New York is on summer time, Helsinki not yet (UTC-4 vs UTC+2: 6 hours).
    case = make_case("NY-1", NEW_YORK, service_s=30 * 60)
    problem = make_problem([case], date=dt.date(2026, 3, 10), timezone="Europe/Helsinki")
    windows = legal_windows(problem, load_policy("us-federal"), NEW_YORK, service_s=30 * 60)
    # Monday's 08:00-21:00 in New York ends at 03:00 Helsinki time; Tuesday's starts at 14:00
    # and runs past the end of the plan day.
    assert windows == (TimeWindow(0, hhmm("02:30")), TimeWindow(hhmm("14:00"), 24 * H))


def test_blocked_weekdays_are_judged_on_the_debtors_local_date():
    sunday_off = policy("visit_windows: {daily: ['08:00-21:00']}\nblocked_weekdays: [sun]\n")
    # Monday 2026-12-07 in Helsinki starts while it is still Sunday in New York.
    case = make_case("NY-1", NEW_YORK)
    problem = make_problem([case], date=dt.date(2026, 12, 7), timezone="Europe/Helsinki")
    (kept,) = apply_policy(problem, sunday_off).problem.cases
    # Sunday 08:00-21:00 New York (15:00-04:00 Helsinki) is dropped; Monday's starts at 15:00.
    assert kept.windows == (TimeWindow(hhmm("15:00"), 24 * H),)


# ---------------------------------------------------------------------------
# Exclusions before solving
# ---------------------------------------------------------------------------

TUESDAY = dt.date(2026, 12, 1)


def excluded_rules(result) -> dict[str, Rule]:
    return {e.case_id: e.rule for e in result.excluded}


def test_sunday_and_public_holidays_exclude_dutch_cases():
    nl = load_policy("nl")
    case = make_case("A-1", AMSTERDAM)
    sunday = apply_policy(
        make_problem([case], date=dt.date(2026, 12, 6), timezone="Europe/Amsterdam"), nl
    )
    kings_day = apply_policy(
        make_problem([case], date=dt.date(2026, 4, 27), timezone="Europe/Amsterdam"), nl
    )
    monday = apply_policy(
        make_problem([case], date=dt.date(2026, 12, 7), timezone="Europe/Amsterdam"), nl
    )
    assert excluded_rules(sunday) == {"A-1": Rule.BLOCKED_DAY}
    assert excluded_rules(kings_day) == {"A-1": Rule.HOLIDAY}
    assert "King's Day" in kings_day.excluded[0].detail
    assert not monday.excluded and len(monday.problem.cases) == 1


def test_blocked_flags_exclude_cases_and_name_the_flag():
    cases = [
        make_case("D-1", NEW_YORK, flags=frozenset({"dispute"})),
        make_case("V-1", NEW_YORK, flags=frozenset({"vulnerable"})),
        make_case("B-1", NEW_YORK, flags=frozenset({"bankruptcy", "attorney"})),
    ]
    problem = make_problem(cases, date=TUESDAY, timezone="America/New_York", depot=NEW_YORK)
    result = apply_policy(problem, load_policy("us-federal"))
    assert excluded_rules(result) == {"D-1": Rule.FLAG, "B-1": Rule.FLAG}
    details = {e.case_id: e.detail for e in result.excluded}
    assert "dispute" in details["D-1"]
    assert "attorney, bankruptcy" in details["B-1"]
    # "vulnerable" blocks visits in the UK, not under the US federal preset.
    assert [c.id for c in result.problem.cases] == ["V-1"]
    uk = apply_policy(
        make_problem(cases[1:2], date=TUESDAY, timezone="Europe/London"), load_policy("uk")
    )
    assert excluded_rules(uk) == {"V-1": Rule.FLAG}


def test_massachusetts_caps_visits_with_contact_at_one_per_thirty_days():
    ma = load_policy("us-federal+us-ma")
    cases = [make_case(f"M-{i}", BOSTON) for i in range(1, 5)]
    history = [
        visit("M-1", "2026-11-02T10:00:00-05:00", Outcome.REFUSED),  # day 30 of 30: counts
        visit("M-2", "2026-11-01T10:00:00-04:00", Outcome.REFUSED),  # 31 days ago: expired
        visit("M-3", "2026-11-26T10:00:00-05:00", Outcome.NOT_HOME),  # nobody contacted
        visit("M-4", "2026-11-30T10:00:00-05:00", Outcome.THIRD_PARTY),
    ]
    problem = make_problem(cases, date=TUESDAY, timezone="America/New_York", depot=BOSTON)
    result = apply_policy(problem, ma, history=history)
    assert excluded_rules(result) == {"M-1": Rule.VISIT_CAP, "M-4": Rule.VISIT_CAP}
    assert "at most 1 visit(s) with contact per 30 days" in result.excluded[0].detail


def test_a_running_promise_to_pay_blocks_visits_until_due_date_plus_grace():
    fi = load_policy(SAMPLE / "policy.yaml")  # grace 3 days
    cases = [make_case(f"P-{i}", HELSINKI) for i in range(1, 4)]
    history = [
        visit("P-1", "2026-10-20T10:00:00+03:00", Outcome.PROMISE_TO_PAY, due="2026-11-28"),
        visit("P-2", "2026-10-20T10:00:00+03:00", Outcome.PROMISE_TO_PAY, due="2026-11-27"),
        visit("P-3", "2026-10-20T10:00:00+03:00", Outcome.PROMISE_TO_PAY, due="2026-12-20"),
    ]
    problem = make_problem(cases, date=TUESDAY, timezone="Europe/Helsinki")
    result = apply_policy(problem, fi, history=history)
    # P-1: due 28 Nov + 3 days = 1 Dec, still running; P-2 broke its promise: open again.
    assert excluded_rules(result) == {"P-1": Rule.PROMISE_COOL_OFF, "P-3": Rule.PROMISE_COOL_OFF}
    assert "no visit until after 2026-12-01" in result.excluded[0].detail


def test_the_minimum_gap_trims_or_removes_the_day():
    gap = policy("visit_windows: {daily: ['08:00-20:00']}\nmin_gap_hours: 48\n")
    cases = [make_case("G-1", HELSINKI), make_case("G-2", HELSINKI)]
    history = [
        visit("G-1", "2026-11-30T18:00:00+02:00", Outcome.NOT_HOME),
        visit("G-2", "2026-11-29T12:30:00+02:00", Outcome.NOT_HOME),
    ]
    problem = make_problem(cases, date=TUESDAY, timezone="Europe/Helsinki")
    result = apply_policy(problem, gap, history=history)
    assert excluded_rules(result) == {"G-1": Rule.MIN_GAP}
    (kept,) = result.problem.cases
    assert kept.windows == (TimeWindow(hhmm("12:30"), hhmm("19:45")),)


def test_a_case_whose_own_windows_miss_the_legal_hours_has_no_legal_window():
    cases = [
        make_case("L-1", NEW_YORK, windows=(TimeWindow(hhmm("21:30"), hhmm("22:00")),)),
        make_case("L-2", NEW_YORK, windows=(TimeWindow(hhmm("06:00"), hhmm("09:00")),)),
    ]
    problem = make_problem(cases, date=TUESDAY, timezone="America/New_York", depot=NEW_YORK)
    result = apply_policy(problem, load_policy("us-federal"))
    assert excluded_rules(result) == {"L-1": Rule.NO_LEGAL_WINDOW}
    assert result.problem.case("L-2").windows == (TimeWindow(hhmm("08:00"), hhmm("09:00")),)


def test_a_workplace_visit_is_excluded_where_only_homes_and_agreed_places_are_allowed():
    cases = [make_case("W-1", BOSTON), make_case("W-2", BOSTON)]
    problem = make_problem(cases, date=TUESDAY, timezone="America/New_York", depot=BOSTON)
    result = apply_policy(
        problem, load_policy("us-ma"), places={"W-1": "workplace", "W-2": "agreed_place"}
    )
    assert excluded_rules(result) == {"W-1": Rule.PLACE_NOT_ALLOWED}


def test_every_case_is_either_kept_or_excluded_with_a_rule_and_audited():
    cases = [
        make_case("S-1", SHANGHAI),
        make_case("S-2", SHANGHAI, flags=frozenset({"cease_contact"})),
        make_case("S-3", SHANGHAI, windows=(TimeWindow(hhmm("22:30"), hhmm("23:00")),)),
    ]
    problem = make_problem(cases, date=TUESDAY, timezone="Asia/Shanghai", depot=SHANGHAI)
    cn = load_policy("cn")
    result = apply_policy(problem, cn)
    kept = {c.id for c in result.problem.cases}
    assert kept == {"S-1"}
    assert excluded_rules(result) == {"S-2": Rule.FLAG, "S-3": Rule.NO_LEGAL_WINDOW}
    assert result.min_crew == {"S-1": 2}
    audit = result.audit
    assert (audit.policy_name, audit.policy_hash) == ("cn", cn.content_hash)
    assert [e.case_id for e in audit.entries] == ["S-1", "S-2", "S-3"]
    assert audit.entry("S-1").included and audit.entry("S-1").windows == ("08:00-21:45",)
    assert audit.entry("S-2").rule == "FLAG" and not audit.entry("S-2").included
    restored = AuditRecord.from_dict(json.loads(json.dumps(audit.to_dict())))
    assert restored == audit


def test_history_after_the_planning_day_is_rejected():
    problem = make_problem([make_case("C-1", HELSINKI)], date=TUESDAY, timezone="Europe/Helsinki")
    fi = load_policy(SAMPLE / "policy.yaml")
    with pytest.raises(ValueError, match="after 2026-11-30, the day the plan is made"):
        apply_policy(
            problem,
            fi,
            history=[visit("C-1", "2026-12-01T09:00:00+02:00")],
            today=dt.date(2026, 11, 30),
        )
    with pytest.raises(ValueError, match="after the plan date"):
        apply_policy(problem, fi, today=dt.date(2026, 12, 2))


def test_every_start_inside_the_applied_windows_passes_the_plan_check():
    policy_ = load_policy("us-federal+us-ma")
    cases = [
        make_case("E-1", NEW_YORK, service_s=45 * 60),
        make_case("E-2", CHICAGO, windows=(TimeWindow(hhmm("07:00"), hhmm("10:00")),)),
        make_case("E-3", BOSTON, service_s=20 * 60),
    ]
    for date in (dt.date(2026, 3, 8), dt.date(2026, 11, 1), TUESDAY):
        problem = make_problem(cases, date=date, timezone="America/Chicago", depot=CHICAGO)
        applied = apply_policy(problem, policy_).problem
        assert {c.id for c in applied.cases} == {"E-1", "E-2", "E-3"}
        for case in applied.cases:
            for window in case.windows:
                for start in (window.start_s, window.end_s):
                    plan = plan_of((case.id, start, start + case.service_s))
                    assert check_compliance(problem, policy_, plan) == [], (date, case.id, start)
            # Where only the law limits the day, a minute after the last start is too late.
            if problem.case(case.id).windows == (TimeWindow(0, 24 * H),):
                late = case.windows[-1].end_s + 60
                plan = plan_of((case.id, late, late + case.service_s))
                assert codes(check_compliance(problem, policy_, plan)) == ["OUTSIDE_LEGAL_WINDOW"]


# ---------------------------------------------------------------------------
# Checking a solved plan
# ---------------------------------------------------------------------------


def codes(violations) -> list[str]:
    return [v.code for v in violations]


def test_a_compliant_plan_has_no_violation():
    problem = make_problem(
        [make_case("C-1", NEW_YORK)], date=TUESDAY, timezone="America/New_York", depot=NEW_YORK
    )
    plan = plan_of(("C-1", hhmm("08:00"), hhmm("08:15")))
    assert check_compliance(problem, load_policy("us-federal"), plan) == []


def test_visits_starting_early_or_ending_late_break_the_local_window():
    problem = make_problem(
        [make_case("C-1", NEW_YORK), make_case("C-2", NEW_YORK)],
        date=TUESDAY,
        timezone="America/New_York",
        depot=NEW_YORK,
    )
    plan = plan_of(("C-1", hhmm("07:50"), hhmm("08:05")), ("C-2", hhmm("20:50"), hhmm("21:05")))
    violations = check_compliance(problem, load_policy("us-federal"), plan)
    assert [(v.code, v.case_id, v.collector_id) for v in violations] == [
        ("OUTSIDE_LEGAL_WINDOW", "C-1", "K-1"),
        ("OUTSIDE_LEGAL_WINDOW", "C-2", "K-1"),
    ]
    assert "20:50-21:05 America/New_York" in violations[1].message


def test_the_plan_check_uses_the_debtors_time_zone_not_the_plans():
    cases = [make_case("NY-1", NEW_YORK), make_case("CH-1", CHICAGO)]
    problem = make_problem(cases, date=TUESDAY, timezone="America/Chicago", depot=CHICAGO)
    us = load_policy("us-federal")
    # 07:30 in Chicago is 08:30 in New York: legal there, too early in Chicago.
    assert check_compliance(problem, us, plan_of(("NY-1", hhmm("07:30"), hhmm("07:45")))) == []
    early = check_compliance(problem, us, plan_of(("CH-1", hhmm("07:30"), hhmm("07:45"))))
    assert codes(early) == ["OUTSIDE_LEGAL_WINDOW"]
    # 20:30 in Chicago is 21:30 in New York: too late there.
    late = check_compliance(problem, us, plan_of(("NY-1", hhmm("20:30"), hhmm("20:45"))))
    assert codes(late) == ["OUTSIDE_LEGAL_WINDOW"]


def test_visits_on_a_blocked_day_or_holiday_are_violations():
    nl = load_policy("nl")
    case = make_case("A-1", AMSTERDAM)
    noon = ("A-1", hhmm("12:00"), hhmm("12:15"))
    sunday = make_problem([case], date=dt.date(2026, 12, 6), timezone="Europe/Amsterdam")
    christmas = make_problem([case], date=dt.date(2026, 12, 25), timezone="Europe/Amsterdam")
    assert codes(check_compliance(sunday, nl, plan_of(noon))) == ["BLOCKED_DAY"]
    assert codes(check_compliance(christmas, nl, plan_of(noon))) == ["HOLIDAY"]


def test_a_visit_to_a_flagged_case_is_a_violation():
    case = make_case("D-1", NEW_YORK, flags=frozenset({"cease_contact"}))
    problem = make_problem([case], date=TUESDAY, timezone="America/New_York", depot=NEW_YORK)
    violations = check_compliance(
        problem, load_policy("us-federal"), plan_of(("D-1", hhmm("10:00"), hhmm("10:15")))
    )
    assert codes(violations) == ["FLAG"]
    assert "cease_contact" in violations[0].message


def test_visits_above_a_cap_count_history_and_the_plan_itself():
    ma = load_policy("us-ma")
    cases = [make_case("M-1", BOSTON), make_case("M-2", BOSTON)]
    problem = make_problem(cases, date=TUESDAY, timezone="America/New_York", depot=BOSTON)
    history = [visit("M-1", "2026-11-20T11:00:00-05:00", Outcome.PROMISE_TO_PAY, due="2026-11-25")]
    plan = plan_of(
        ("M-1", hhmm("10:00"), hhmm("10:15")),
        ("M-2", hhmm("09:00"), hhmm("09:15")),
        ("M-2", hhmm("15:00"), hhmm("15:15")),
    )
    violations = check_compliance(problem, ma, plan, history=history)
    assert [(v.code, v.case_id) for v in violations] == [
        ("VISIT_CAP", "M-1"),
        ("VISIT_CAP", "M-2"),
    ]
    # The first visit to M-2 is fine; the second, the same day, breaks the cap.
    assert "1 earlier counted visit(s)" in violations[1].message


def test_a_visit_inside_a_promise_cool_off_is_a_violation():
    fi = load_policy(SAMPLE / "policy.yaml")
    problem = make_problem([make_case("P-1", HELSINKI)], date=TUESDAY, timezone="Europe/Helsinki")
    history = [visit("P-1", "2026-10-20T10:00:00+03:00", Outcome.PROMISE_TO_PAY, due="2026-11-30")]
    violations = check_compliance(
        problem, fi, plan_of(("P-1", hhmm("10:00"), hhmm("10:15"))), history=history
    )
    assert codes(violations) == ["PROMISE_COOL_OFF"]


def test_a_visit_too_soon_after_the_previous_one_is_a_violation():
    gap = policy("min_gap_hours: 48\n")
    problem = make_problem([make_case("G-1", HELSINKI)], date=TUESDAY, timezone="Europe/Helsinki")
    history = [visit("G-1", "2026-11-29T12:30:00+02:00", Outcome.NOT_HOME)]
    too_soon = plan_of(("G-1", hhmm("12:00"), hhmm("12:15")))
    in_time = plan_of(("G-1", hhmm("12:30"), hhmm("12:45")))
    assert codes(check_compliance(problem, gap, too_soon, history=history)) == ["MIN_GAP"]
    assert check_compliance(problem, gap, in_time, history=history) == []


# ---------------------------------------------------------------------------
# Visit history files
# ---------------------------------------------------------------------------


def test_the_sample_history_reads_into_records_oldest_first():
    records = read_history(SAMPLE / "visit_history.csv")
    assert len(records) >= 12
    assert [r.visited_at for r in records] == sorted(r.visited_at for r in records)
    promise = next(r for r in records if r.case_id == "C-007")
    assert promise.outcome == Outcome.PROMISE_TO_PAY
    assert promise.promise_due == dt.date(2026, 12, 4)
    assert promise.promise_amount_cents == 50_000
    case_ids = {c.id for c in read_cases(SAMPLE / "cases.csv").items}
    assert {r.case_id for r in records} <= case_ids


def test_a_history_row_keeps_the_address_visited(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(
        "case_id,visited_at,outcome,address\n"
        'C-1,2026-11-20T10:00:00+02:00,moved,"Aleksanterinkatu 5 A 7, Helsinki"\n'
        "C-2,2026-11-21T10:00:00+02:00,not_home,\n",
        encoding="utf-8",
    )
    moved, away = read_history(path)
    assert moved.address == "Aleksanterinkatu 5 A 7, Helsinki"
    assert away.address == ""


def test_bad_history_rows_are_all_reported_with_row_and_column(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(
        "case_id,visited_at,outcome,promise_due,promise_amount\n"
        "C-1,2026-11-20T10:00:00+02:00,not_home,,\n"
        "C-2,2026-11-20 10:00,not_home,,\n"
        "C-3,2026-11-20T10:00:00+02:00,sold,,\n"
        "C-4,2026-11-20T10:00:00+02:00,promise_to_pay,,\n"
        "C-5,2026-11-20T10:00:00+02:00,promise_to_pay,2026-11-01,12.345\n"
        ",2026-11-20T10:00:00+02:00,refused,2026-12-01,\n"
    )
    with pytest.raises(InputError) as info:
        read_history(path)
    where = [(e.row, e.column) for e in info.value.errors]
    assert where == [
        (3, "visited_at"),
        (4, "outcome"),
        (5, "promise_due"),
        (6, "promise_amount"),
        (7, "case_id"),
        (7, "promise_due"),
    ]
    assert info.value.errors[0] == RowError(
        "history.csv",
        3,
        "visited_at",
        "'2026-11-20 10:00' has no UTC offset (write it like 2026-11-20T10:15:00+02:00)",
    )


def test_a_promise_due_before_the_visit_is_a_row_error(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(
        "case_id,visited_at,outcome,promise_due\n"
        "C-1,2026-11-20T10:00:00+02:00,promise_to_pay,2026-11-01\n"
    )
    with pytest.raises(InputError) as info:
        read_history(path)
    (error,) = info.value.errors
    assert (error.row, error.column) == (2, "promise_due")
    assert "before the visit" in error.reason


def test_a_history_file_without_required_columns_is_rejected(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("case_id,when\nC-1,2026-11-20\n")
    with pytest.raises(InputError) as info:
        read_history(path)
    assert [(e.row, e.column) for e in info.value.errors] == [(1, "visited_at"), (1, "outcome")]


# ---------------------------------------------------------------------------
# The sample day
# ---------------------------------------------------------------------------


def test_the_sample_day_shows_a_cap_a_cool_off_and_a_gap():
    cases = read_cases(SAMPLE / "cases.csv").items
    collectors = read_collectors(SAMPLE / "collectors.csv").items
    problem = Problem(dt.date(2026, 12, 1), "Europe/Helsinki", cases, collectors)
    fi = load_policy(SAMPLE / "policy.yaml")
    assert fi.status == "company_policy" and fi.holiday_calendars == ("FI",)
    result = apply_policy(problem, fi, history=read_history(SAMPLE / "visit_history.csv"))
    rules = excluded_rules(result)
    assert rules["C-004"] == Rule.VISIT_CAP
    assert rules["C-010"] == Rule.VISIT_CAP  # three attempts in 30 days
    assert rules["C-007"] == Rule.PROMISE_COOL_OFF
    assert rules["C-015"] == Rule.MIN_GAP
    assert "C-012" not in rules  # its promise was broken: the case is open again
    assert len(result.problem.cases) + len(result.excluded) == len(cases)
    # Every kept window ends early enough for the whole visit to end by 20:00.
    for case in result.problem.cases:
        assert all(w.end_s + case.service_s <= hhmm("20:00") for w in case.windows)


def test_the_sample_policy_blocks_finnish_holidays():
    fi = load_policy(SAMPLE / "policy.yaml")
    case = make_case("C-1", HELSINKI)
    christmas_eve = make_problem([case], date=dt.date(2026, 12, 24), timezone="Europe/Helsinki")
    result = apply_policy(christmas_eve, fi)
    assert excluded_rules(result) == {"C-1": Rule.HOLIDAY}
    assert "Christmas Eve" in result.excluded[0].detail


# ---------------------------------------------------------------------------
# Redaction for collectors
# ---------------------------------------------------------------------------


def test_redaction_masks_the_phone_and_never_shows_the_national_id():
    fields = {
        "case_id": "C-001",
        "name": "Matti Virtanen",
        "address": "Unioninkatu 29 C 11, 00170 Helsinki",
        "phone": "+358 40 123 4567",
        "email": "matti.virtanen@example.fi",
        "national_id": "010190-123A",
        "amount_cents": 201_873,
        "notes": "prefers mornings",
        "employer": "Acme Oy",
    }
    shown = redact_for_collector(fields, load_policy("cn").exposure)
    assert shown == {
        "case_id": "C-001",
        "name": "Matti Virtanen",
        "address": "Unioninkatu 29 C 11, 00170 Helsinki",
        "phone": "+358 40 *** **67",
        "email": "m***@example.fi",
        "amount_cents": 201_873,
    }
    strict = ExposureProfile((("name", Exposure.MASKED), ("amount_cents", Exposure.HIDDEN)))
    shown = redact_for_collector(fields, strict)
    assert shown["name"] == "M. V."
    assert "amount_cents" not in shown and "national_id" not in shown


def test_a_profile_cannot_reveal_the_national_id():
    with pytest.raises(ValueError, match="national_id"):
        ExposureProfile((("national_id", Exposure.FULL),))


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("+358 40 123 4567", "+358 40 *** **67"),
        ("+358401234567", "+358*******67"),
        ("040 123 4567", "*** *** **67"),
        ("12345", "***45"),
    ],
)
def test_phone_masks_keep_the_prefix_and_the_last_two_digits(phone, masked):
    profile = ExposureProfile((("phone", Exposure.MASKED),))
    assert redact_for_collector({"phone": phone}, profile) == {"phone": masked}
