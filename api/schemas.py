"""Request and response bodies of the API, and their mapping to the domain's dataclasses.

Pydantic lives here only: routes turn bodies into ``dispatch`` values with the
``to_*`` methods and build responses with the ``*_out`` functions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    WithJsonSchema,
)

from dispatch.compliance import (
    AuditRecord,
    ExposureProfile,
    Outcome,
    VisitRecord,
    redact_for_collector,
)
from dispatch.errors import InvalidProblemError
from dispatch.model import (
    ALL_DAY,
    Case,
    Collector,
    Crew,
    Location,
    Problem,
    Reason,
    Route,
    TimeWindow,
    TravelMode,
    format_clock,
    parse_clock,
)
from dispatch.progress import Progress, StopStatus
from dispatch.store import (
    ApiKeyRecord,
    CheckIn,
    JobRecord,
    PlanSummary,
    StoredItinerary,
    StoredOutcome,
    StoredPlan,
)

if TYPE_CHECKING:
    from dispatch.itinerary import Leg

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

# Ids travel in URL paths, so they keep to characters that need no escaping.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,99}$"
# Skill and flag names, as in the CSV files (compared in lower case).
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,49}$"
WINDOW_PATTERN = r"^[0-9]{2}:[0-9]{2}-[0-9]{2}:[0-9]{2}$"
CLOCK_PATTERN = r"^[0-9]{2}:[0-9]{2}$"
# Free text may hold anything but NUL, which PostgreSQL cannot store.
TEXT_PATTERN = r"^[^\x00]*$"
POLICY_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"
MAX_CENTS = 10**15
MAX_BATCH = 10_000

Id = Annotated[str, Field(pattern=ID_PATTERN, examples=["C-001"])]
Name = Annotated[str, Field(pattern=NAME_PATTERN, examples=["legal"])]
WindowText = Annotated[str, Field(pattern=WINDOW_PATTERN, examples=["09:00-12:00"])]
ClockText = Annotated[str, Field(pattern=CLOCK_PATTERN, examples=["08:00"])]
ShortText = Annotated[str, Field(max_length=500, pattern=TEXT_PATTERN)]
Cents = Annotated[int, Field(ge=0, le=MAX_CENTS)]


class _In(BaseModel):
    """Input bodies: unknown fields and non-finite numbers are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# --- errors ---------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    """What went wrong: a stable ``code``, a sentence for people, and the field at fault."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(examples=["not_found"])
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    """Every error answer of the API."""

    error: ErrorDetail


class RowErrorOut(BaseModel):
    """One bad value of a batch: the row's index (from 0), its id if readable, field, rule."""

    index: int
    id: str | None = None
    field: str | None
    reason: str


class RowProblemError(ValueError):
    """A row that cannot become a domain value, and the field at fault."""

    def __init__(self, field: str | None, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason


# --- pages ----------------------------------------------------------------------------------


class PageOut(BaseModel, Generic[T]):
    """One page of a listing and how many items match in all."""

    items: list[T]
    total: int
    limit: int
    offset: int


# --- cases ----------------------------------------------------------------------------------


def _windows(texts: Sequence[str], field: str) -> tuple[TimeWindow, ...]:
    windows = []
    for i, text in enumerate(texts):
        start, _, end = text.partition("-")
        try:
            windows.append(TimeWindow(parse_clock(start), parse_clock(end)))
        except (ValueError, InvalidProblemError) as exc:
            raise RowProblemError(f"{field}.{i}", str(exc)) from None
    return tuple(windows)


def _window_texts(windows: Sequence[TimeWindow]) -> list[str]:
    if tuple(windows) == (ALL_DAY,):
        return []
    return [f"{format_clock(w.start_s)}-{format_clock(w.end_s)}" for w in windows]


def _model_value(build: Callable[[], T], field: str | None = None) -> T:
    """Build a domain value; its own checks become a row problem."""
    try:
        return build()
    except (ValueError, InvalidProblemError) as exc:
        raise RowProblemError(field, str(exc)) from None


class CaseIn(_In):
    """A case from the case-management system (``id`` is its own id; upserts key on it)."""

    id: Id
    lat: float = Field(ge=-90, le=90, description="Geocoded address, WGS84 degrees.")
    lon: float = Field(ge=-180, le=180)
    address: ShortText = ""
    days_past_due: int = Field(ge=0, le=100_000)
    amount_cents: Cents
    value_cents: Cents | None = Field(None, description="Worth of a visit; default: the amount.")
    skills: list[Name] = Field(default_factory=list, max_length=50)
    service_s: int = Field(900, gt=0, le=24 * 3600, description="Time at the door, seconds.")
    windows: list[WindowText] = Field(
        default_factory=list,
        max_length=24,
        description="Local HH:MM-HH:MM windows in which the visit may start; empty: any time.",
    )
    preferred_collector: Id | None = None
    flags: list[Name] = Field(default_factory=list, max_length=50)
    debtor_name: ShortText = ""
    phone: ShortText = ""
    national_id: ShortText = ""
    min_crew: int = Field(1, ge=1, le=20)
    appointment_s: int | None = Field(None, ge=0, le=2 * 24 * 3600)
    appointment_tolerance_s: int = Field(600, ge=0, le=24 * 3600)
    load: int = Field(0, ge=0, le=1_000_000, description="Units of a collector's capacity used.")

    def to_case(self) -> Case:
        """The domain case; raises ``RowProblemError`` naming the field at fault."""
        windows = _windows(self.windows, "windows") or (ALL_DAY,)
        return _model_value(
            lambda: Case(
                id=self.id,
                location=Location(self.lat, self.lon),
                address=self.address,
                days_past_due=self.days_past_due,
                amount_cents=self.amount_cents,
                value_cents=self.value_cents,
                skills=frozenset(s.lower() for s in self.skills),
                service_s=self.service_s,
                windows=windows,
                preferred_collector=self.preferred_collector,
                flags=frozenset(f.lower() for f in self.flags),
                debtor_name=self.debtor_name,
                phone=self.phone,
                national_id=self.national_id,
                min_crew=self.min_crew,
                appointment_s=self.appointment_s,
                appointment_tolerance_s=self.appointment_tolerance_s,
                load=self.load,
            ),
            "windows",
        )


class CaseOut(BaseModel):
    """A stored case."""

    id: str
    lat: float
    lon: float
    address: str
    days_past_due: int
    amount_cents: int
    value_cents: int
    skills: list[str]
    service_s: int
    windows: list[str]
    preferred_collector: str | None
    flags: list[str]
    debtor_name: str
    phone: str
    national_id: str
    min_crew: int
    appointment_s: int | None
    appointment_tolerance_s: int
    load: int
    created_at: dt.datetime
    updated_at: dt.datetime


def case_out(case: Case, created_at: dt.datetime, updated_at: dt.datetime) -> CaseOut:
    """The response body of a stored case."""
    return CaseOut(
        id=case.id,
        lat=case.location.lat,
        lon=case.location.lon,
        address=case.address,
        days_past_due=case.days_past_due,
        amount_cents=case.amount_cents,
        value_cents=case.value,
        skills=sorted(case.skills),
        service_s=case.service_s,
        windows=_window_texts(case.windows),
        preferred_collector=case.preferred_collector,
        flags=sorted(case.flags),
        debtor_name=case.debtor_name,
        phone=case.phone,
        national_id=case.national_id,
        min_crew=case.min_crew,
        appointment_s=case.appointment_s,
        appointment_tolerance_s=case.appointment_tolerance_s,
        load=case.load,
        created_at=created_at,
        updated_at=updated_at,
    )


def _row_schema(model: type[BaseModel]) -> WithJsonSchema:
    """Document batch rows as ``model`` while each row is still validated on its own."""
    return WithJsonSchema(model.model_json_schema())


class CaseBatchIn(BaseModel):
    """Cases to insert or update by id."""

    cases: list[Annotated[JsonValue, _row_schema(CaseIn)]] = Field(max_length=MAX_BATCH)


class UpsertOut(BaseModel):
    """What a batch did: rows created, updated and left as they were; rejected rows, if any."""

    created: int
    updated: int
    unchanged: int
    rejected: list[RowErrorOut] = Field(default_factory=list)


# --- collectors and crews -------------------------------------------------------------------


class CollectorIn(_In):
    """A collector who may be put on duty (``id`` is the caller's; upserts key on it)."""

    id: Id
    name: ShortText = ""
    start_lat: float = Field(ge=-90, le=90)
    start_lon: float = Field(ge=-180, le=180)
    end_lat: float | None = Field(None, ge=-90, le=90, description="Default: the start.")
    end_lon: float | None = Field(None, ge=-180, le=180)
    shift_start: ClockText
    shift_end: ClockText
    skills: list[Name] = Field(default_factory=list, max_length=50)
    max_visits: int | None = Field(None, ge=0, le=10_000)
    mode: TravelMode
    break_window: WindowText | None = Field(None, description="Where a break of break_s lies.")
    break_s: int = Field(0, ge=0, le=12 * 3600)
    capacity: int | None = Field(
        None, ge=0, le=1_000_000, description="Most load a route carries; none: no limit."
    )

    def to_collector(self) -> Collector:
        """The domain collector; raises ``RowProblemError`` naming the field at fault."""
        if (self.end_lat is None) != (self.end_lon is None):
            raise RowProblemError("end_lat", "give both end_lat and end_lon, or neither")
        shift_start = _model_value(lambda: parse_clock(self.shift_start), "shift_start")
        shift_end = _model_value(lambda: parse_clock(self.shift_end), "shift_end")
        shift = _model_value(lambda: TimeWindow(shift_start, shift_end), "shift_end")
        window = None
        if self.break_window is not None:
            window = _windows([self.break_window], "break_window")[0]
        start = Location(self.start_lat, self.start_lon)
        end = start
        if self.end_lat is not None and self.end_lon is not None:
            end = Location(self.end_lat, self.end_lon)
        return _model_value(
            lambda: Collector(
                id=self.id,
                name=self.name,
                start=start,
                end=end,
                shift=shift,
                skills=frozenset(s.lower() for s in self.skills),
                max_visits=self.max_visits,
                mode=self.mode,
                break_window=window,
                break_s=self.break_s,
                capacity=self.capacity,
            ),
            "break_window" if self.break_s else "shift_end",
        )


class CollectorOut(BaseModel):
    """A stored collector."""

    id: str
    name: str
    start_lat: float
    start_lon: float
    end_lat: float
    end_lon: float
    shift_start: str
    shift_end: str
    skills: list[str]
    max_visits: int | None
    mode: TravelMode
    break_window: str | None
    break_s: int
    capacity: int | None
    created_at: dt.datetime
    updated_at: dt.datetime


def collector_out(
    collector: Collector, created_at: dt.datetime, updated_at: dt.datetime
) -> CollectorOut:
    """The response body of a stored collector."""
    window = collector.break_window
    return CollectorOut(
        id=collector.id,
        name=collector.name,
        start_lat=collector.start.lat,
        start_lon=collector.start.lon,
        end_lat=collector.end.lat,
        end_lon=collector.end.lon,
        shift_start=format_clock(collector.shift.start_s),
        shift_end=format_clock(collector.shift.end_s),
        skills=sorted(collector.skills),
        max_visits=collector.max_visits,
        mode=collector.mode,
        break_window=None if window is None else _window_texts([window])[0],
        break_s=collector.break_s,
        capacity=collector.capacity,
        created_at=created_at,
        updated_at=updated_at,
    )


class CollectorBatchIn(BaseModel):
    """Collectors to insert or update by id."""

    collectors: list[Annotated[JsonValue, _row_schema(CollectorIn)]] = Field(max_length=MAX_BATCH)


class CrewIn(_In):
    """Collectors who work a day together; the first member's start and end are the crew's."""

    id: Id
    member_ids: list[Id] = Field(min_length=2, max_length=10)

    def to_crew(self) -> Crew:
        """The domain crew; raises ``RowProblemError`` naming the field at fault."""
        return _model_value(lambda: Crew(self.id, tuple(self.member_ids)), "member_ids")


class CrewOut(BaseModel):
    """A stored crew."""

    id: str
    member_ids: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime


class CrewBatchIn(BaseModel):
    """Crews to insert or update by id."""

    crews: list[Annotated[JsonValue, _row_schema(CrewIn)]] = Field(max_length=MAX_BATCH)


def read_rows(
    rows: Sequence[Any], model: type[M], convert: Callable[[M], T]
) -> tuple[list[T], list[RowErrorOut]]:
    """Validate batch rows one by one: the good ones, and every problem of the bad ones.

    A row whose id repeats an earlier row's is bad too.
    """
    items: list[T] = []
    problems: list[RowErrorOut] = []
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        row_id = row.get("id") if isinstance(row, Mapping) else None
        row_id = row_id if isinstance(row_id, str) else None
        try:
            parsed = model.model_validate(row)
            item = convert(parsed)
        except ValidationError as exc:
            for error in exc.errors():
                field = ".".join(str(p) for p in error["loc"]) or None
                problems.append(
                    RowErrorOut(index=index, id=row_id, field=field, reason=error["msg"])
                )
            continue
        except RowProblemError as exc:
            problems.append(RowErrorOut(index=index, id=row_id, field=exc.field, reason=exc.reason))
            continue
        item_id = getattr(item, "id", None)
        if item_id in seen:
            reason = f"id '{item_id}' also appears in row {seen[item_id]}"
            problems.append(RowErrorOut(index=index, id=item_id, field="id", reason=reason))
            continue
        seen[item_id] = index
        items.append(item)
    return items, problems


# --- policies -------------------------------------------------------------------------------


class PolicyIn(_In):
    """A compliance policy document: YAML as for ``dispatch plan --policy``."""

    document: str = Field(max_length=200_000, pattern=TEXT_PATTERN)


class PolicyOut(BaseModel):
    """A stored policy."""

    name: str
    version: str
    title: str
    content_hash: str
    document: str
    created_at: dt.datetime
    updated_at: dt.datetime


# --- outcomes -------------------------------------------------------------------------------


EARLIEST_VISIT = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


class CheckInIn(_In):
    """Where the phone was when the outcome was recorded (the browser's position)."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    accuracy_m: float | None = Field(None, ge=0, le=100_000, description="The fix's radius.")


class OutcomeIn(_In):
    """What happened at a visit (``id``, if given, makes a retried report harmless)."""

    id: Id | None = None
    case_id: Id
    outcome: Outcome
    visited_at: AwareDatetime | None = Field(None, description="Default: now.")
    promise_due: dt.date | None = Field(None, description="Required for promise_to_pay.")
    promise_amount_cents: Cents | None = None
    paid_cents: Cents | None = Field(
        None, description="Money taken at the visit: required for partial_payment."
    )
    note: str = Field("", max_length=2000, pattern=TEXT_PATTERN)
    checkin: CheckInIn | None = Field(None, description="Location check-in from the phone.")
    collector_id: Id | None = Field(None, description="Set from the link on collector links.")
    plan_id: str | None = Field(None, pattern=r"^[0-9a-f]{32}$")

    def check_payment(self) -> None:
        """Raise ``RowProblemError`` when the money given does not fit the outcome."""
        if self.outcome is Outcome.PARTIAL_PAYMENT and not self.paid_cents:
            raise RowProblemError("paid_cents", "a partial payment needs the amount paid")
        if self.paid_cents is not None and self.outcome not in (
            Outcome.PAID,
            Outcome.PARTIAL_PAYMENT,
        ):
            raise RowProblemError(
                "paid_cents", f"is only for paid and partial_payment, not {self.outcome}"
            )

    def to_visit(self, *, now: dt.datetime, collector_id: str | None = None) -> VisitRecord:
        """The domain visit record; raises ``RowProblemError`` naming the field at fault."""
        visited_at = self.visited_at or now
        if not EARLIEST_VISIT <= visited_at <= now + dt.timedelta(hours=1):
            raise RowProblemError(
                "visited_at", f"{visited_at.isoformat()} is not between 2000 and now"
            )
        if self.promise_due is not None and not 2000 <= self.promise_due.year <= 2200:
            raise RowProblemError("promise_due", f"{self.promise_due} is not a plausible date")
        return _model_value(
            lambda: VisitRecord(
                case_id=self.case_id,
                visited_at=visited_at,
                outcome=self.outcome,
                promise_due=self.promise_due,
                promise_amount_cents=self.promise_amount_cents,
                collector_id=collector_id or self.collector_id or "",
            ),
            "promise_due",
        )


class CheckInOut(BaseModel):
    """A check-in and how far it was from the case's address."""

    lat: float
    lon: float
    accuracy_m: float | None
    distance_m: float = Field(description="Metres from the case's geocoded address.")
    far_from_address: bool = Field(
        description="Farther than the service's check-in radius plus the fix's accuracy."
    )


class OutcomeOut(BaseModel):
    """A recorded outcome."""

    id: str
    case_id: str
    outcome: Outcome
    visited_at: dt.datetime
    promise_due: dt.date | None
    promise_amount_cents: int | None
    collector_id: str
    plan_id: str | None
    created_at: dt.datetime
    address: str = Field(description="The address visited, as the case had it then.")
    paid_cents: int | None
    note: str
    checkin: CheckInOut | None


# --- plan jobs ------------------------------------------------------------------------------


class PlanRequestIn(_In):
    """Plan a day with every stored case, collector and crew; answered by a plan job."""

    date: dt.date = Field(description="Plan day (YYYY-MM-DD).")
    policy: str | None = Field(
        None,
        max_length=200,
        pattern=r"^[a-z0-9][a-z0-9._+-]*$",
        description="A stored policy's name, or presets joined by '+' (us-federal+us-ma).",
    )
    use_triage: bool = Field(False, description="Pick today's field cases; value by recovery.")
    time_limit_s: float = Field(10.0, gt=0, le=3600, description="Solver time limit, seconds.")
    seed: int = Field(0, ge=0, lt=2**31)
    timezone: str | None = Field(
        None,
        max_length=64,
        pattern=r"^[A-Za-z][A-Za-z0-9_+/-]*$",
        description="IANA zone; default: the service's, or the first collector's location.",
    )


class JobErrorOut(BaseModel):
    """Why a job failed."""

    code: str
    message: str


class JobOut(BaseModel):
    """A plan job: queued, running, succeeded (see ``plan_id``), failed or cancelled."""

    id: str
    status: str = Field(examples=["running"])
    stage: str = Field(description="What the worker is doing, for people.")
    request: dict[str, Any]
    data_version: int
    plan_id: str | None
    error: JobErrorOut | None
    cancel_requested: bool
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    heartbeat_at: dt.datetime | None


# --- plans ----------------------------------------------------------------------------------


class StopOut(BaseModel):
    """A timed visit of a route (times in the plan's time zone)."""

    number: int
    case_id: str
    arrival: dt.datetime
    start: dt.datetime
    end: dt.datetime
    wait_s: int
    travel_time_s: int
    distance_m: int


class RouteOut(BaseModel):
    """One route: a collector's (or crew's) day."""

    collector_id: str
    member_ids: list[str]
    start: dt.datetime
    end: dt.datetime
    travel_time_s: int
    distance_m: int
    return_travel_time_s: int
    return_distance_m: int
    break_start: dt.datetime | None
    break_end: dt.datetime | None
    stops: list[StopOut]


class PlanSummaryOut(BaseModel):
    """A stored plan's figures."""

    id: str
    job_id: str
    date: dt.date
    timezone: str
    created_at: dt.datetime
    objective: int
    solve_time_s: float
    route_count: int
    visit_count: int
    unassigned_count: int
    policy_name: str | None
    policy_hash: str | None


class PlanOut(PlanSummaryOut):
    """A stored plan with its routes (unassigned cases: see ``/unassigned``)."""

    routes: list[RouteOut]


class StopProgressOut(BaseModel):
    """A planned stop's status: planned, done (with the latest outcome) or missed."""

    route_id: str = Field(description="The route's collector id (a crew's first member).")
    number: int
    case_id: str
    planned_start: dt.datetime
    status: StopStatus
    outcome: Outcome | None
    reported_at: dt.datetime | None = Field(description="When the visit was, as reported.")
    far_from_address: bool


class RouteProgressOut(BaseModel):
    """How far a route has got."""

    route_id: str
    member_ids: list[str]
    stops: int
    done: int
    missed: int
    planned: int
    next_case_id: str | None = Field(description="The first stop still planned.")


class ProgressOut(BaseModel):
    """The plan's progress as of an instant."""

    as_of: dt.datetime
    routes: list[RouteProgressOut]
    stops: list[StopProgressOut]


def progress_out(progress: Progress) -> ProgressOut:
    """The response body of a plan's progress."""
    return ProgressOut(
        as_of=progress.as_of,
        routes=[
            RouteProgressOut(
                route_id=r.route_id,
                member_ids=list(r.member_ids),
                stops=r.stops,
                done=r.done,
                missed=r.missed,
                planned=r.planned,
                next_case_id=r.next_case_id,
            )
            for r in progress.routes
        ],
        stops=[
            StopProgressOut(
                route_id=s.route_id,
                number=s.number,
                case_id=s.case_id,
                planned_start=s.planned_start,
                status=s.status,
                outcome=s.outcome,
                reported_at=s.reported_at,
                far_from_address=s.far_from_address,
            )
            for s in progress.stops
        ],
    )


class UnassignedOut(BaseModel):
    """A case on no route, with the reason code and a sentence for people."""

    case_id: str
    reason: Reason
    detail: str


class AuditEntryOut(BaseModel):
    """The policy's decision about one case."""

    case_id: str
    included: bool
    rule: str
    detail: str
    local_timezone: str | None
    windows: list[str]
    min_crew: int | None


class AuditOut(BaseModel):
    """Which policy a plan was made under and what it decided for every case."""

    policy_name: str
    policy_version: str
    policy_hash: str
    plan_date: dt.date
    plan_timezone: str
    sources: list[str]
    entries: list[AuditEntryOut]


class ItinerarySummaryOut(BaseModel):
    """One collector's day in a plan, in brief."""

    collector_id: str
    member_ids: list[str]
    visits: int
    start: dt.datetime
    end: dt.datetime
    travel_time_s: int
    distance_m: int


class LegOut(BaseModel):
    """The way to a point along the roads: ``coords`` are ``[lon, lat]`` pairs."""

    travel_time_s: int
    distance_m: int
    coords: list[tuple[float, float]]


class VisitDetailsOut(BaseModel):
    """What the policy lets a collector see of a case; hidden fields are null."""

    name: str | None = None
    address: str | None = None
    phone: str | None = None
    amount_cents: int | None = None
    days_past_due: int | None = None


class ItineraryStopOut(BaseModel):
    """A stop as the collector sees it (``break_s``: the break taken at this door, if any)."""

    number: int
    case_id: str
    eta: dt.datetime
    start: dt.datetime
    end: dt.datetime
    wait_s: int
    break_s: int
    service_s: int
    windows: list[str]
    required_skills: list[str]
    lat: float
    lon: float
    navigation: dict[str, str]
    details: VisitDetailsOut
    leg: LegOut


class ItineraryOut(BaseModel):
    """A collector's day: ordered stops with ETAs, roads and navigation links."""

    plan_id: str
    date: dt.date
    timezone: str
    collector_id: str
    collector_name: str
    mode: TravelMode
    crew_id: str | None
    member_ids: list[str]
    start: dt.datetime
    finish: dt.datetime
    break_start: dt.datetime | None
    break_end: dt.datetime | None
    travel_time_s: int
    distance_m: int
    stops: list[ItineraryStopOut]
    return_leg: LegOut


# --- links and keys -------------------------------------------------------------------------


class OverviewLinkIn(_In):
    """How long a dispatcher's link lasts."""

    ttl_s: int | None = Field(None, gt=0, le=31 * 24 * 3600, description="Default: settings.")


class LinksIn(OverviewLinkIn):
    """Which collectors of a plan get a link (default: every one with stops), and for how long."""

    collector_ids: list[Id] | None = Field(None, max_length=1000)


class LinkOut(BaseModel):
    """A signed link to a collector's itinerary in one plan; it expires and can be revoked."""

    link_id: str
    plan_id: str
    collector_id: str
    expires_at: dt.datetime
    token: str
    itinerary_url: str
    page_url: str


class OverviewLinkOut(BaseModel):
    """A signed link to a plan's map and progress for the dispatcher; it expires, can be revoked."""

    link_id: str
    plan_id: str
    expires_at: dt.datetime
    token: str
    map_url: str
    progress_url: str


class LinksOut(BaseModel):
    """The links given out."""

    links: list[LinkOut]


class KeyIn(_In):
    """A new API key: a name for people and its scopes."""

    name: str = Field(min_length=1, max_length=200, pattern=TEXT_PATTERN)
    scopes: list[str] = Field(
        min_length=1,
        max_length=4,
        description="Any of cases:write, plans:write, plans:read, admin.",
        examples=[["plans:read"]],
    )


class KeyOut(BaseModel):
    """An API key (never its secret)."""

    id: str
    name: str
    scopes: list[str]
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class KeyCreatedOut(KeyOut):
    """A new API key with its secret, shown this once only."""

    key: str


# --- responses from stored records ----------------------------------------------------------


def job_out(job: JobRecord) -> JobOut:
    """The response body of a plan job."""
    error = None
    if job.error_code is not None:
        error = JobErrorOut(code=job.error_code, message=job.error_message or "")
    return JobOut(
        id=job.id,
        status=job.status.value,
        stage=job.stage,
        request=dict(job.request),
        data_version=job.data_version,
        plan_id=job.plan_id,
        error=error,
        cancel_requested=job.cancel_requested,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        heartbeat_at=job.heartbeat_at,
    )


def plan_summary_out(summary: PlanSummary) -> PlanSummaryOut:
    """The response body of a plan's figures."""
    return PlanSummaryOut(
        id=summary.id,
        job_id=summary.job_id,
        date=summary.date,
        timezone=summary.timezone,
        created_at=summary.created_at,
        objective=summary.objective,
        solve_time_s=summary.solve_time_s,
        route_count=summary.routes,
        visit_count=summary.visits,
        unassigned_count=summary.unassigned,
        policy_name=summary.policy_name,
        policy_hash=summary.policy_hash,
    )


def _when(problem: Problem, seconds: int | None) -> dt.datetime | None:
    return None if seconds is None else problem.to_datetime(seconds)


def route_out(problem: Problem, route: Route) -> RouteOut:
    """The response body of a route, its times in the plan's time zone."""
    return RouteOut(
        collector_id=route.collector_id,
        member_ids=list(route.members),
        start=problem.to_datetime(route.start_s),
        end=problem.to_datetime(route.end_s),
        travel_time_s=route.travel_time_s,
        distance_m=route.distance_m,
        return_travel_time_s=route.return_travel_time_s,
        return_distance_m=route.return_distance_m,
        break_start=_when(problem, route.break_start_s),
        break_end=_when(problem, route.break_end_s),
        stops=[
            StopOut(
                number=number,
                case_id=stop.case_id,
                arrival=problem.to_datetime(stop.arrival_s),
                start=problem.to_datetime(stop.start_s),
                end=problem.to_datetime(stop.end_s),
                wait_s=stop.wait_s,
                travel_time_s=stop.travel_time_s,
                distance_m=stop.distance_m,
            )
            for number, stop in enumerate(route.stops, start=1)
        ],
    )


def plan_out(stored: StoredPlan) -> PlanOut:
    """The response body of a plan with its routes."""
    summary = plan_summary_out(stored.summary)
    routes = [route_out(stored.problem, r) for r in stored.plan.routes]
    return PlanOut(**summary.model_dump(), routes=routes)


def audit_out(audit: AuditRecord) -> AuditOut:
    """The response body of a plan's audit."""
    return AuditOut(
        policy_name=audit.policy_name,
        policy_version=audit.policy_version,
        policy_hash=audit.policy_hash,
        plan_date=audit.plan_date,
        plan_timezone=audit.plan_timezone,
        sources=list(audit.sources),
        entries=[
            AuditEntryOut(
                case_id=e.case_id,
                included=e.included,
                rule=e.rule,
                detail=e.detail,
                local_timezone=e.local_timezone,
                windows=list(e.windows),
                min_crew=e.min_crew,
            )
            for e in audit.entries
        ],
    )


def _leg_out(leg: Leg) -> LegOut:
    return LegOut(travel_time_s=leg.travel_time_s, distance_m=leg.distance_m, coords=leg.coords)


def itinerary_out(
    stored: StoredItinerary, *, navigation: Sequence[str] = ("osm", "google", "apple")
) -> ItineraryOut:
    """A collector's itinerary as they may see it: case data redacted by the plan's policy."""
    from dispatch.itinerary import navigation_links

    problem, itinerary = stored.problem, stored.itinerary
    profile = ExposureProfile(tuple(stored.exposure.items()))  # type: ignore[arg-type]
    stops = []
    for item in itinerary.stops:
        case, stop = item.case, item.stop
        shown = redact_for_collector(
            {
                "case_id": case.id,
                "name": case.debtor_name,
                "address": case.address,
                "phone": case.phone,
                "national_id": case.national_id,
                "amount_cents": case.amount_cents,
                "days_past_due": case.days_past_due,
            },
            profile,
        )
        stops.append(
            ItineraryStopOut(
                number=item.number,
                case_id=case.id,
                eta=problem.to_datetime(stop.arrival_s),
                start=problem.to_datetime(stop.start_s),
                end=problem.to_datetime(stop.end_s),
                wait_s=item.wait_s,
                break_s=item.break_s,
                service_s=case.service_s,
                windows=_window_texts(case.windows),
                required_skills=sorted(case.skills),
                lat=case.location.lat,
                lon=case.location.lon,
                navigation=navigation_links(case.location, mode=itinerary.mode, apps=navigation),
                details=VisitDetailsOut.model_validate(
                    {k: v for k, v in shown.items() if k != "case_id"}
                ),
                leg=_leg_out(item.leg),
            )
        )
    collector, rest = itinerary.collector, itinerary.rest_break
    return ItineraryOut(
        plan_id=stored.plan_id,
        date=problem.date,
        timezone=problem.timezone,
        collector_id=collector.id,
        collector_name=collector.name,
        mode=collector.mode,
        crew_id=itinerary.crew_id,
        member_ids=list(itinerary.route.members),
        start=problem.to_datetime(itinerary.start_s),
        finish=problem.to_datetime(itinerary.finish_s),
        break_start=None if rest is None else problem.to_datetime(rest.start_s),
        break_end=None if rest is None else problem.to_datetime(rest.end_s),
        travel_time_s=itinerary.travel_time_s,
        distance_m=itinerary.distance_m,
        stops=stops,
        return_leg=_leg_out(itinerary.return_leg),
    )


def outcome_out(stored: StoredOutcome) -> OutcomeOut:
    """The response body of a recorded outcome."""
    visit, checkin = stored.visit, stored.details.checkin
    return OutcomeOut(
        id=stored.id,
        case_id=visit.case_id,
        outcome=visit.outcome,
        visited_at=visit.visited_at,
        promise_due=visit.promise_due,
        promise_amount_cents=visit.promise_amount_cents,
        collector_id=visit.collector_id,
        plan_id=stored.plan_id,
        created_at=stored.created_at,
        address=visit.address,
        paid_cents=stored.details.paid_cents,
        note=stored.details.note,
        checkin=None if checkin is None else checkin_out(checkin),
    )


def checkin_out(checkin: CheckIn) -> CheckInOut:
    """The response form of a check-in."""
    return CheckInOut(
        lat=checkin.location.lat,
        lon=checkin.location.lon,
        accuracy_m=checkin.accuracy_m,
        distance_m=round(checkin.distance_m, 1),
        far_from_address=checkin.far_from_address,
    )


def key_out(key: ApiKeyRecord) -> KeyOut:
    """The response body of an API key (never its secret)."""
    return KeyOut(
        id=key.id,
        name=key.name,
        scopes=sorted(key.scopes),
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )
