"""Compliance enforcement: legal hours, blocked days, caps and cool-offs as hard constraints.

A policy (a YAML file or a shipped preset) says when and how a case may be
visited. ``apply_policy`` turns it into hard time windows on the plan's cases
(in plan-time seconds) and excludes, with a named rule, every case that may not
be visited today; ``check_compliance`` verifies a solved plan against the
policy from scratch. Visiting hours are always judged in the debtor's local
time, taken from the visit location, never from the server clock.

Solver times are seconds elapsed since midnight of the plan day in the plan's
time zone, the same convention as ``Problem.to_datetime``.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from timezonefinder import TimezoneFinder

from dispatch.errors import InputError, RowError
from dispatch.model import DAY_S, Case, Location, Plan, Problem, TimeWindow, format_clock
from dispatch.policies import (
    PLACES,
    WEEKDAY_NAMES,
    Exposure,
    ExposureProfile,
    Policy,
    PolicyError,
    combine_policies,
    holiday_name,
    load_policy,
    parse_policy,
    preset_names,
)

__all__ = [
    "AuditEntry",
    "AuditRecord",
    "ComplianceResult",
    "ComplianceViolation",
    "Exclusion",
    "Exposure",
    "ExposureProfile",
    "Outcome",
    "Policy",
    "PolicyError",
    "Rule",
    "VisitRecord",
    "apply_policy",
    "case_timezone",
    "check_compliance",
    "combine_policies",
    "legal_windows",
    "load_policy",
    "parse_policy",
    "preset_names",
    "read_history",
    "redact_for_collector",
]


class Rule(StrEnum):
    """The rule that keeps a case from being visited (or that a planned visit breaks)."""

    FLAG = "FLAG"
    """The case carries a flag the policy blocks visits for (the flag is in the detail)."""
    PLACE_NOT_ALLOWED = "PLACE_NOT_ALLOWED"
    """The kind of place of the visit is not among the policy's allowed places."""
    NO_TIMEZONE = "NO_TIMEZONE"
    """The local time zone of the visit location is unknown; visiting hours cannot be judged."""
    BLOCKED_DAY = "BLOCKED_DAY"
    """The debtor's local weekday is blocked."""
    HOLIDAY = "HOLIDAY"
    """The debtor's local date is a public holiday of one of the policy's calendars."""
    PROMISE_COOL_OFF = "PROMISE_COOL_OFF"
    """A promise to pay is running (until its due date plus the grace days)."""
    VISIT_CAP = "VISIT_CAP"
    """Another visit would exceed a cap on visits per case over a rolling period."""
    MIN_GAP = "MIN_GAP"
    """The previous visit was less than the minimum gap ago."""
    NO_LEGAL_WINDOW = "NO_LEGAL_WINDOW"
    """No time of the plan day is both legal and inside the case's own windows."""
    OUTSIDE_LEGAL_WINDOW = "OUTSIDE_LEGAL_WINDOW"
    """A planned visit starts or ends outside the legal window (plan checks only)."""


# ---------------------------------------------------------------------------
# Visit history
# ---------------------------------------------------------------------------


class Outcome(StrEnum):
    """What happened at a field visit."""

    PAID = "paid"
    PARTIAL_PAYMENT = "partial_payment"
    PROMISE_TO_PAY = "promise_to_pay"
    NOT_HOME = "not_home"
    MOVED = "moved"
    WRONG_ADDRESS = "wrong_address"
    REFUSED = "refused"
    DISPUTED = "disputed"
    THIRD_PARTY = "third_party"


# Outcomes where someone at the address was spoken to; caps that count only
# "contacted" visits (Massachusetts) count these. A third party counts: it may
# be a household member, and counting it is the stricter reading.
CONTACT_OUTCOMES: frozenset[Outcome] = frozenset(
    {
        Outcome.PAID,
        Outcome.PARTIAL_PAYMENT,
        Outcome.PROMISE_TO_PAY,
        Outcome.REFUSED,
        Outcome.DISPUTED,
        Outcome.THIRD_PARTY,
    }
)


@dataclass(frozen=True, slots=True)
class VisitRecord:
    """A past field visit to a case and its outcome.

    ``promise_due`` (and optionally ``promise_amount_cents``) is set for a
    promise to pay and only then. ``address`` is the address visited, as the
    case had it then (empty when not recorded); a "moved" or "wrong address"
    outcome holds the case until its address differs from it.
    """

    case_id: str
    visited_at: dt.datetime
    outcome: Outcome
    promise_due: dt.date | None = None
    promise_amount_cents: int | None = None
    collector_id: str = ""
    address: str = ""

    def __post_init__(self) -> None:
        owner = f"visit to case {self.case_id}"
        if not self.case_id.strip():
            raise ValueError("visit record has no case id")
        if self.visited_at.tzinfo is None or self.visited_at.utcoffset() is None:
            raise ValueError(f"{owner}: visited_at {self.visited_at} has no time zone")
        object.__setattr__(self, "outcome", Outcome(self.outcome))
        if self.outcome == Outcome.PROMISE_TO_PAY:
            if self.promise_due is None:
                raise ValueError(f"{owner}: a promise to pay needs its due date")
            if self.promise_due < self.visited_at.date():
                raise ValueError(
                    f"{owner}: promise due {self.promise_due} is before the visit "
                    f"{self.visited_at.date()}"
                )
        elif self.promise_due is not None or self.promise_amount_cents is not None:
            raise ValueError(f"{owner}: promise details given for outcome {self.outcome}")
        if self.promise_amount_cents is not None and self.promise_amount_cents < 0:
            raise ValueError(f"{owner}: promised amount is negative")

    @property
    def contacted(self) -> bool:
        """Whether someone was spoken to at the visit."""
        return self.outcome in CONTACT_OUTCOMES


HISTORY_COLUMNS: tuple[str, ...] = (
    "case_id",
    "visited_at",
    "outcome",
    "promise_due",
    "promise_amount",
    "collector_id",
    "address",
)


def read_history(path: str | Path) -> tuple[VisitRecord, ...]:
    """Read past visits from CSV, oldest first.

    Columns: ``case_id``, ``visited_at`` (ISO 8601 with a UTC offset, e.g.
    ``2026-11-20T10:15:00+02:00``), ``outcome`` (an ``Outcome`` value),
    ``promise_due`` (``YYYY-MM-DD``, required for ``promise_to_pay``),
    ``promise_amount`` (decimal currency units, optional), ``collector_id``
    (optional) and ``address`` (the address visited, optional). Unknown
    columns are ignored.

    Every bad value is collected and raised together; unlike case files there
    is no skipping, because a dropped visit would let a cap or cool-off pass.

    Raises
    ------
    InputError
        With one ``RowError`` (file, row, column, reason) per bad value.
    """
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise InputError([RowError(name, 0, "", f"file {path} does not exist")])
    records: list[VisitRecord] = []
    errors: list[RowError] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in ("case_id", "visited_at", "outcome") if c not in header]
        if missing:
            raise InputError([RowError(name, 1, c, "required column is missing") for c in missing])
        for row_number, raw in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
            record, row_errors = _read_history_row(row, name, row_number)
            errors.extend(row_errors)
            if record is not None:
                records.append(record)
    if errors:
        raise InputError(errors)
    return tuple(sorted(records, key=lambda r: r.visited_at))


def _read_history_row(
    row: dict[str, str], name: str, row_number: int
) -> tuple[VisitRecord | None, list[RowError]]:
    errors: list[RowError] = []

    def fail(column: str, reason: str) -> None:
        errors.append(RowError(name, row_number, column, reason))

    case_id = row.get("case_id", "")
    if not case_id:
        fail("case_id", "is empty")
    visited_at: dt.datetime | None = None
    text = row.get("visited_at", "")
    try:
        visited_at = dt.datetime.fromisoformat(text)
    except ValueError:
        fail("visited_at", f"'{text}' is not a date and time like 2026-11-20T10:15:00+02:00")
    if visited_at is not None and visited_at.tzinfo is None:
        fail("visited_at", f"'{text}' has no UTC offset (write it like 2026-11-20T10:15:00+02:00)")
        visited_at = None
    outcome: Outcome | None = None
    try:
        outcome = Outcome(row.get("outcome", ""))
    except ValueError:
        fail(
            "outcome",
            f"'{row.get('outcome', '')}' is not one of {', '.join(o.value for o in Outcome)}",
        )
    due: dt.date | None = None
    if row.get("promise_due"):
        try:
            due = dt.date.fromisoformat(row["promise_due"])
        except ValueError:
            fail("promise_due", f"'{row['promise_due']}' is not a date like 2026-12-15")
    amount: int | None = None
    if row.get("promise_amount"):
        amount = _parse_cents(row["promise_amount"])
        if amount is None:
            fail("promise_amount", f"'{row['promise_amount']}' is not an amount like 150.00")
    if outcome == Outcome.PROMISE_TO_PAY and due is None and not row.get("promise_due"):
        fail("promise_due", "is required for a promise to pay")
    elif outcome is not None and outcome != Outcome.PROMISE_TO_PAY:
        for column in ("promise_due", "promise_amount"):
            if row.get(column):
                fail(column, f"is only for promise_to_pay, not {outcome}")
    if errors or visited_at is None or outcome is None:
        return None, errors
    try:
        record = VisitRecord(
            case_id,
            visited_at,
            outcome,
            due,
            amount,
            row.get("collector_id", ""),
            row.get("address", ""),
        )
    except ValueError as exc:
        fail("promise_due", str(exc))
        return None, errors
    return record, errors


def _parse_cents(text: str) -> int | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.01")):
        return None
    return int(value * 100)


# ---------------------------------------------------------------------------
# Local time
# ---------------------------------------------------------------------------


@functools.cache
def _timezone_finder() -> TimezoneFinder:
    return TimezoneFinder()


@functools.lru_cache(maxsize=65536)
def case_timezone(location: Location) -> str | None:
    """Find the IANA time zone of a location from its coordinates (``None`` if unknown)."""
    return _timezone_finder().timezone_at(lng=location.lon, lat=location.lat)


@dataclass(frozen=True, slots=True)
class _PlanDay:
    """The plan day as an instant range: plan seconds are seconds after ``start``."""

    start: dt.datetime
    length_s: int

    @classmethod
    def of(cls, problem: Problem) -> _PlanDay:
        tz = problem.tz
        start = dt.datetime.combine(problem.date, dt.time(0), tzinfo=tz).astimezone(dt.UTC)
        following = problem.date + dt.timedelta(days=1)
        end = dt.datetime.combine(following, dt.time(0), tzinfo=tz).astimezone(dt.UTC)
        return cls(start, int((end - start).total_seconds()))

    def seconds(self, moment: dt.datetime) -> int:
        """Plan seconds of an aware instant (may fall outside 0..length)."""
        return int((moment - self.start).total_seconds())

    def local_dates(self, tz: ZoneInfo) -> tuple[dt.date, ...]:
        """Local dates that share at least one instant with the plan day."""
        first = self.start.astimezone(tz).date()
        last = (self.start + dt.timedelta(seconds=self.length_s - 1)).astimezone(tz).date()
        return tuple(first + dt.timedelta(days=i) for i in range((last - first).days + 1))

    def main_local_date(self, tz: ZoneInfo) -> dt.date:
        """Return the local date at the middle of the plan day."""
        return (self.start + dt.timedelta(seconds=self.length_s // 2)).astimezone(tz).date()


def local_instant(day: dt.date, seconds: int, tz: ZoneInfo) -> dt.datetime:
    """Return the instant of a local wall-clock time (seconds from midnight, 24:00 allowed)."""
    whole_days, rest = divmod(seconds, DAY_S)
    wall = dt.datetime.combine(day + dt.timedelta(days=whole_days), dt.time(0), tzinfo=tz)
    # Wall-clock arithmetic: aware + timedelta keeps the zone, so 08:00 stays 08:00 on DST days.
    return wall + dt.timedelta(seconds=rest)


def legal_windows(
    problem: Problem,
    policy: Policy,
    location: Location,
    *,
    service_s: int = 0,
) -> tuple[TimeWindow, ...]:
    """Return the windows of the plan day (plan seconds) in which a visit may start.

    Only visiting hours, blocked weekdays and holidays of the debtor's local
    dates are applied (not flags, history or the case's own windows); a visit
    of ``service_s`` seconds that starts inside a returned window also ends
    inside the local legal window. Empty when the time zone is unknown.
    """
    name = case_timezone(location)
    if name is None:
        return ()
    tz = ZoneInfo(name)
    day = _PlanDay.of(problem)
    spans: list[tuple[int, int]] = []
    for local_date in day.local_dates(tz):
        if _calendar_block(policy, local_date) is None:
            spans.extend(_date_spans(day, policy, local_date, tz, service_s))
    return tuple(TimeWindow(s, e) for s, e in _merge(spans))


def _date_spans(
    day: _PlanDay, policy: Policy, local_date: dt.date, tz: ZoneInfo, service_s: int
) -> list[tuple[int, int]]:
    spans = []
    for window in policy.windows_on(local_date):
        start = day.seconds(local_instant(local_date, window.start_s, tz))
        last_start = day.seconds(local_instant(local_date, window.end_s, tz)) - service_s
        start, last_start = max(start, 0), min(last_start, day.length_s)
        if start <= last_start:
            spans.append((start, last_start))
    return spans


def _calendar_block(policy: Policy, local_date: dt.date) -> tuple[Rule, str] | None:
    weekday = local_date.weekday()
    if weekday in policy.blocked_weekdays:
        return Rule.BLOCKED_DAY, f"{WEEKDAY_NAMES[weekday]} {local_date} is a blocked weekday"
    holiday = holiday_name(policy, local_date)
    if holiday:
        return Rule.HOLIDAY, f"{local_date} is a public holiday ({holiday})"
    return None


def _spans(windows: Iterable[TimeWindow]) -> list[tuple[int, int]]:
    return [(w.start_s, w.end_s) for w in windows]


def _merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _intersect(a: Iterable[tuple[int, int]], b: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Intersection of two sets of closed intervals (touching intervals share one instant)."""
    left, right = _merge(a), _merge(b)
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(left) and j < len(right):
        start, end = max(left[i][0], right[j][0]), min(left[i][1], right[j][1])
        if start <= end:
            out.append((start, end))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return out


# ---------------------------------------------------------------------------
# History rules
# ---------------------------------------------------------------------------


def _history_by_case(history: Iterable[VisitRecord]) -> dict[str, list[VisitRecord]]:
    by_case: dict[str, list[VisitRecord]] = {}
    for record in history:
        by_case.setdefault(record.case_id, []).append(record)
    for records in by_case.values():
        records.sort(key=lambda r: r.visited_at)
    return by_case


def _cool_off_block(
    policy: Policy, records: Sequence[VisitRecord], moment: dt.datetime, local_date: dt.date
) -> tuple[Rule, str] | None:
    """Find a promise to pay still running at a moment (on the debtor's local date)."""
    if policy.promise_grace_days is None:
        return None
    # The latest promise replaces earlier ones; once it is overdue by more than the
    # grace days it counts as broken and the case is open again.
    promises = [
        r for r in records if r.outcome == Outcome.PROMISE_TO_PAY and r.visited_at <= moment
    ]
    if not promises:
        return None
    latest = promises[-1]
    assert latest.promise_due is not None
    until = latest.promise_due + dt.timedelta(days=policy.promise_grace_days)
    if local_date > until:
        return None
    return Rule.PROMISE_COOL_OFF, (
        f"promise to pay made {latest.visited_at.date()} is due {latest.promise_due}; "
        f"with {policy.promise_grace_days} grace day(s) no visit until after {until}"
    )


def _cap_block(
    policy: Policy,
    visit_dates: Sequence[tuple[dt.date, bool]],
    local_date: dt.date,
    *,
    planned: int,
) -> tuple[Rule, str] | None:
    """Find a cap that ``planned`` more visits on ``local_date`` would exceed.

    ``visit_dates`` holds the local date of each earlier visit and whether
    someone was contacted.
    """
    for cap in policy.visit_caps:
        first = local_date - dt.timedelta(days=cap.period_days - 1)
        done = sum(
            1
            for day, contacted in visit_dates
            if first <= day <= local_date and (contacted or cap.counts == "attempted")
        )
        if done + planned > cap.max_visits:
            return Rule.VISIT_CAP, (
                f"{done} earlier counted visit(s) from {first} to {local_date}; the cap is {cap}"
            )
    return None


# ---------------------------------------------------------------------------
# Enforcement before solving
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A case that may not be visited on the plan day, and the rule that says so."""

    case_id: str
    rule: Rule
    detail: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One case's compliance decision: included with its windows, or excluded by a rule."""

    case_id: str
    included: bool
    rule: str
    detail: str
    local_timezone: str | None = None
    windows: tuple[str, ...] = ()
    min_crew: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {
            "case_id": self.case_id,
            "included": self.included,
            "rule": self.rule,
            "detail": self.detail,
            "local_timezone": self.local_timezone,
            "windows": list(self.windows),
            "min_crew": self.min_crew,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditEntry:
        """Rebuild from ``to_dict`` output."""
        return cls(
            case_id=str(data["case_id"]),
            included=bool(data["included"]),
            rule=str(data["rule"]),
            detail=str(data["detail"]),
            local_timezone=data.get("local_timezone"),
            windows=tuple(data.get("windows", ())),
            min_crew=data.get("min_crew"),
        )


# Rule name of an included case in the audit.
ALLOWED = "ALLOWED"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """Which policy was applied to a plan day and what it decided for every case."""

    policy_name: str
    policy_version: str
    policy_hash: str
    plan_date: dt.date
    plan_timezone: str
    entries: tuple[AuditEntry, ...]
    sources: tuple[str, ...] = ()

    def entry(self, case_id: str) -> AuditEntry:
        """Return the decision about one case."""
        for entry in self.entries:
            if entry.case_id == case_id:
                return entry
        raise KeyError(case_id)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (``json.dumps`` works on the result)."""
        return {
            "policy_name": self.policy_name,
            "policy_version": self.policy_version,
            "policy_hash": self.policy_hash,
            "plan_date": self.plan_date.isoformat(),
            "plan_timezone": self.plan_timezone,
            "sources": list(self.sources),
            "entries": [e.to_dict() for e in self.entries],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditRecord:
        """Rebuild from ``to_dict`` output."""
        return cls(
            policy_name=str(data["policy_name"]),
            policy_version=str(data["policy_version"]),
            policy_hash=str(data["policy_hash"]),
            plan_date=dt.date.fromisoformat(data["plan_date"]),
            plan_timezone=str(data["plan_timezone"]),
            entries=tuple(AuditEntry.from_dict(e) for e in data["entries"]),
            sources=tuple(data.get("sources", ())),
        )


@dataclass(frozen=True)
class ComplianceResult:
    """A problem restricted to legal visits, with every exclusion and the audit.

    ``problem`` holds only the visitable cases, each with its windows narrowed
    to the legal ones (plan seconds). ``min_crew`` maps each visitable case to
    the number of collectors who must go together; ``local_timezones`` maps
    every case whose zone is known to it.
    """

    problem: Problem
    excluded: tuple[Exclusion, ...]
    min_crew: Mapping[str, int]
    local_timezones: Mapping[str, str]
    audit: AuditRecord


def apply_policy(
    problem: Problem,
    policy: Policy,
    *,
    history: Iterable[VisitRecord] = (),
    today: dt.date | None = None,
    places: Mapping[str, str] | None = None,
) -> ComplianceResult:
    """Turn a policy into hard constraints on a plan day, before solving.

    Each case keeps the part of its own windows that is legal on the plan day
    in the debtor's local time (converted to plan seconds, leaving room for
    the whole visit of ``service_s``); a case with no such time is excluded
    with the first rule that forbids it, in this order: flag, place, unknown
    time zone, blocked weekday or holiday, promise cool-off, visit cap (these
    are judged per local date), no legal window, minimum gap.

    Parameters
    ----------
    problem
        The plan day; ``problem.date`` and ``problem.timezone`` fix the times.
    policy
        The policy (possibly combined) to enforce.
    history
        Past visits; they drive caps, gaps and promise cool-offs.
    today
        The date the plan is made on (default: the plan date). A visit in the
        history after it is a data error.
    places
        Kind of place of each case's visit (``PLACES``); cases not listed are
        visited at the residence.

    Raises
    ------
    ValueError
        ``today`` is after the plan date, a visit lies in the future, or a
        place is not one of ``PLACES``.
    """
    today = problem.date if today is None else today
    if today > problem.date:
        raise ValueError(f"the plan is made on {today}, after the plan date {problem.date}")
    records = list(history)
    late = [r for r in records if r.visited_at.astimezone(problem.tz).date() > today]
    if late:
        raise ValueError(
            f"visit to case {late[0].case_id} at {late[0].visited_at.isoformat()} "
            f"is after {today}, the day the plan is made"
        )
    places = dict(places or {})
    for case_id, place in places.items():
        if place not in PLACES:
            raise ValueError(f"case {case_id}: place '{place}' is not one of {', '.join(PLACES)}")
    by_case = _history_by_case(records)
    day = _PlanDay.of(problem)
    kept: list[Case] = []
    excluded: list[Exclusion] = []
    entries: list[AuditEntry] = []
    crew: dict[str, int] = {}
    zones: dict[str, str] = {}
    for case in problem.cases:
        zone = case_timezone(case.location)
        if zone is not None:
            zones[case.id] = zone
        outcome = _case_decision(
            case, policy, day, zone, by_case.get(case.id, []), places.get(case.id, "residence")
        )
        if isinstance(outcome, Exclusion):
            excluded.append(outcome)
            entries.append(AuditEntry(case.id, False, str(outcome.rule), outcome.detail, zone))
            continue
        windows = tuple(TimeWindow(s, e) for s, e in outcome)
        kept.append(replace(case, windows=windows))
        crew[case.id] = policy.min_crew
        entries.append(
            AuditEntry(
                case.id,
                True,
                ALLOWED,
                f"legal in {zone}; visit may start {', '.join(map(str, windows))} "
                f"({problem.timezone})",
                zone,
                tuple(map(str, windows)),
                policy.min_crew,
            )
        )
    audit = AuditRecord(
        policy_name=policy.name,
        policy_version=policy.version,
        policy_hash=policy.content_hash,
        plan_date=problem.date,
        plan_timezone=problem.timezone,
        entries=tuple(entries),
        sources=tuple(f"{s.ref} ({s.confidence})" for s in policy.sources),
    )
    return ComplianceResult(
        problem=replace(problem, cases=tuple(kept)),
        excluded=tuple(excluded),
        min_crew=crew,
        local_timezones=zones,
        audit=audit,
    )


def _case_decision(
    case: Case,
    policy: Policy,
    day: _PlanDay,
    zone: str | None,
    records: Sequence[VisitRecord],
    place: str,
) -> list[tuple[int, int]] | Exclusion:
    """Windows (plan seconds) in which the case may be visited, or why it may not be."""
    blocking = sorted(case.flags & policy.blocked_flags)
    if blocking:
        return Exclusion(
            case.id,
            Rule.FLAG,
            f"flag(s) {', '.join(blocking)} block visits under policy {policy.name}",
        )
    if place not in policy.visit_places:
        return Exclusion(
            case.id,
            Rule.PLACE_NOT_ALLOWED,
            f"visits at a {place} are not allowed "
            f"(allowed: {', '.join(sorted(policy.visit_places))})",
        )
    if zone is None:
        return Exclusion(
            case.id,
            Rule.NO_TIMEZONE,
            f"no time zone is known at {case.location.lat}, {case.location.lon}; "
            "local visiting hours cannot be judged",
        )
    tz = ZoneInfo(zone)
    visit_dates = [(r.visited_at.astimezone(tz).date(), r.contacted) for r in records]
    spans: list[tuple[int, int]] = []
    blocks: dict[dt.date, tuple[Rule, str]] = {}
    for local_date in day.local_dates(tz):
        # The moment a visit on this local date could start at the latest (its end).
        date_end = local_instant(local_date, DAY_S, tz)
        block = (
            _calendar_block(policy, local_date)
            or _cool_off_block(policy, records, date_end, local_date)
            or _cap_block(policy, visit_dates, local_date, planned=1)
        )
        if block is not None:
            blocks[local_date] = block
            continue
        spans.extend(_date_spans(day, policy, local_date, tz, case.service_s))
    legal = _merge(spans)
    if not legal:
        if blocks:
            main = day.main_local_date(tz)
            rule, detail = blocks.get(main) or next(iter(blocks.values()))
            return Exclusion(case.id, rule, f"{detail} ({zone})")
        return Exclusion(
            case.id,
            Rule.NO_LEGAL_WINDOW,
            f"no legal visiting hours in {zone} leave room for a "
            f"{case.service_s // 60} min visit on the plan day",
        )
    allowed = _intersect(_spans(case.windows), legal)
    if not allowed:
        legal_text = ", ".join(f"{format_clock(s)}-{format_clock(e)}" for s, e in legal)
        own = ", ".join(map(str, case.windows))
        return Exclusion(
            case.id,
            Rule.NO_LEGAL_WINDOW,
            f"the case's windows {own} miss the legal start times {legal_text} "
            f"(plan time; {zone} local hours)",
        )
    if policy.min_gap_s and records:
        last = records[-1].visited_at
        gap_end = day.seconds(last) + policy.min_gap_s
        trimmed = [(max(s, gap_end), e) for s, e in allowed if e >= gap_end]
        if not trimmed:
            until = (last + dt.timedelta(seconds=policy.min_gap_s)).astimezone(tz)
            return Exclusion(
                case.id,
                Rule.MIN_GAP,
                f"last visit {last.astimezone(tz):%Y-%m-%d %H:%M}; the minimum gap of "
                f"{policy.min_gap_s / 3600:g} h runs until {until:%Y-%m-%d %H:%M} ({zone})",
            )
        allowed = trimmed
    return allowed


# ---------------------------------------------------------------------------
# Checking a solved plan
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ComplianceViolation:
    """A planned visit that breaks a rule of the policy (fields as in ``explain.Violation``)."""

    code: str
    message: str
    collector_id: str | None
    case_id: str | None


def check_compliance(
    problem: Problem,
    policy: Policy,
    plan: Plan,
    *,
    history: Iterable[VisitRecord] = (),
    places: Mapping[str, str] | None = None,
) -> list[ComplianceViolation]:
    """Every rule of the policy that a solved plan breaks, one violation per rule and stop.

    Recomputed from the policy alone (not from ``apply_policy``'s windows): for
    each stop the debtor's local start and end times must lie in one legal
    window of the local date, the date must be neither blocked nor a holiday,
    the case must carry no blocking flag, no promise to pay may be running,
    caps must hold counting the history and the plan's own visits, and the
    previous visit must be at least the minimum gap earlier. Stops of cases
    that the problem does not hold are left to ``explain.check_plan``.
    """
    by_case = _history_by_case(history)
    places = dict(places or {})
    planned: dict[str, list[dt.datetime]] = {}
    for route in plan.routes:
        for stop in route.stops:
            planned.setdefault(stop.case_id, []).append(problem.to_datetime(stop.start_s))
    known = {c.id for c in problem.cases}
    violations: list[ComplianceViolation] = []
    for route in plan.routes:
        for stop in route.stops:
            if stop.case_id not in known:
                continue
            case = problem.case(stop.case_id)
            for rule, message in _stop_faults(
                problem,
                policy,
                case,
                problem.to_datetime(stop.start_s),
                problem.to_datetime(stop.end_s),
                by_case.get(case.id, []),
                planned[case.id],
                places.get(case.id, "residence"),
            ):
                violations.append(
                    ComplianceViolation(
                        str(rule), f"case {case.id}: {message}", route.collector_id, case.id
                    )
                )
    return violations


def _stop_faults(
    problem: Problem,
    policy: Policy,
    case: Case,
    start: dt.datetime,
    end: dt.datetime,
    records: Sequence[VisitRecord],
    planned_starts: Sequence[dt.datetime],
    place: str,
) -> list[tuple[Rule, str]]:
    faults: list[tuple[Rule, str]] = []
    blocking = sorted(case.flags & policy.blocked_flags)
    if blocking:
        faults.append((Rule.FLAG, f"flag(s) {', '.join(blocking)} block visits"))
    if place not in policy.visit_places:
        faults.append((Rule.PLACE_NOT_ALLOWED, f"visits at a {place} are not allowed"))
    zone = case_timezone(case.location)
    if zone is None:
        faults.append((Rule.NO_TIMEZONE, "the local time zone of the address is unknown"))
        return faults
    tz = ZoneInfo(zone)
    local_start, local_end = start.astimezone(tz), end.astimezone(tz)
    local_date = local_start.date()
    for day in sorted({local_date, local_end.date()}):
        block = _calendar_block(policy, day)
        if block is not None:
            faults.append(block)
    start_wall = _wall_seconds(local_start, local_date)
    end_wall = _wall_seconds(local_end, local_date)
    if not any(
        w.start_s <= start_wall and end_wall <= w.end_s for w in policy.windows_on(local_date)
    ):
        legal = ", ".join(map(str, policy.windows_on(local_date))) or "none"
        faults.append(
            (
                Rule.OUTSIDE_LEGAL_WINDOW,
                f"visit {local_start:%H:%M}-{local_end:%H:%M} {zone} on {local_date} is not "
                f"inside a legal window ({legal})",
            )
        )
    cool_off = _cool_off_block(policy, records, start, local_date)
    if cool_off is not None:
        faults.append(cool_off)
    # Caps and gaps count the history plus the plan's visits to the case up to this one.
    earlier_planned = [t for t in planned_starts if t < start]
    visit_dates = [(r.visited_at.astimezone(tz).date(), r.contacted) for r in records]
    visit_dates += [(t.astimezone(tz).date(), True) for t in earlier_planned]
    cap = _cap_block(policy, visit_dates, local_date, planned=1)
    if cap is not None:
        faults.append(cap)
    previous = [r.visited_at for r in records if r.visited_at <= start] + earlier_planned
    if policy.min_gap_s and previous:
        last = max(previous)
        gap_s = (start - last).total_seconds()
        if gap_s < policy.min_gap_s:
            faults.append(
                (
                    Rule.MIN_GAP,
                    f"previous visit {last.astimezone(tz):%Y-%m-%d %H:%M} is only "
                    f"{gap_s / 3600:.1f} h earlier; the minimum gap is "
                    f"{policy.min_gap_s / 3600:g} h",
                )
            )
    return faults


def _wall_seconds(moment: dt.datetime, day: dt.date) -> int:
    """Local wall-clock seconds of ``moment`` counted from midnight of ``day``."""
    days = (moment.date() - day).days
    return days * DAY_S + moment.hour * 3600 + moment.minute * 60 + moment.second


# ---------------------------------------------------------------------------
# Redaction for collector-facing output
# ---------------------------------------------------------------------------


def redact_for_collector(
    fields: Mapping[str, object], profile: ExposureProfile
) -> dict[str, object]:
    """Keep only what the data-exposure profile lets a collector see.

    Fields the profile hides, and fields it does not know, are left out;
    masked fields are shortened (``+358 40 *** **67``, ``M. V.``,
    ``m***@example.fi``). The national id is never returned.
    """
    shown: dict[str, object] = {}
    for name, value in fields.items():
        level = profile.level(name)
        if name == "national_id" or level == Exposure.HIDDEN:
            continue
        if level == Exposure.MASKED and value is not None:
            value = _MASKS[name](str(value))
        shown[name] = value
    return shown


def mask_phone(phone: str) -> str:
    """Mask a phone number, keeping its country and area prefix and last two digits.

    ``+358 40 123 4567`` becomes ``+358 40 *** **67``; a number without
    spaces keeps its first four characters (``+358*******67``).
    """
    text = " ".join(phone.split())
    groups = text.split(" ")
    if len(groups) >= 3:
        prefix = f"{groups[0]} {groups[1]}"
    else:
        prefix = text[:4] if text.startswith("+") else text[:3]
    digits = sum(ch.isdigit() for ch in text)
    # Never show so much that fewer than four digits stay hidden.
    if digits - sum(ch.isdigit() for ch in prefix) - 2 < 4:
        prefix = ""
    rest = text[len(prefix) :]
    to_hide = sum(ch.isdigit() for ch in rest) - 2
    masked = []
    for ch in rest:
        if ch.isdigit() and to_hide > 0:
            masked.append("*")
            to_hide -= 1
        else:
            masked.append(ch)
    return prefix + "".join(masked)


def mask_name(name: str) -> str:
    """Keep initials only: ``Matti Virtanen`` becomes ``M. V.``."""
    return " ".join(f"{part[0]}." for part in name.split() if part)


def mask_email(email: str) -> str:
    """First letter and domain only: ``matti.virtanen@example.fi`` becomes ``m***@example.fi``."""
    local, at, domain = email.partition("@")
    return f"{local[:1]}***{at}{domain}" if at else "***"


_MASKS = {"phone": mask_phone, "name": mask_name, "email": mask_email}
