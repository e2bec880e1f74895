"""Persistence of cases, collectors, plans, plan jobs and API keys (SQLAlchemy 2).

One SQLite file by default (nothing to start), PostgreSQL by URL
(``postgresql+psycopg://...``). The schema is created and upgraded by the
Alembic migrations shipped in ``dispatch/migrations`` (``Store.migrate``);
the table classes below are what those migrations must produce.

The store speaks the domain's dataclasses (``Case``, ``Collector``, ``Plan``,
``VisitRecord``, ...) and a few records of its own (``Record``, ``Page``,
``JobRecord``); every write is one transaction, so a failed batch leaves
nothing behind. Upserts are idempotent by the caller's id: a row whose
content is unchanged is not written at all, so its ``updated_at`` stays.
Every write that changes what a plan would see bumps the data version, which
plan jobs use to tell identical requests apart from repeated ones.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    create_engine,
    event,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from dispatch.compliance import AuditEntry, AuditRecord, Outcome, VisitRecord
from dispatch.followup import CheckIn
from dispatch.model import (
    Case,
    Collector,
    Crew,
    Location,
    Plan,
    Problem,
    Reason,
    Route,
    Stop,
    TimeWindow,
    TravelMode,
    Unassigned,
)

if TYPE_CHECKING:
    from dispatch.itinerary import Itinerary

T = TypeVar("T")

DEFAULT_DATABASE_URL = "sqlite:///dispatch.db"
# Lists of ids in one ``IN (...)`` clause; SQLite allows 32,766 parameters, PostgreSQL 65,535.
_CHUNK = 500
_SEP = ";"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """An aware datetime kept in UTC; SQLite, which has no time zones, gets it back aware too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"datetime {value} has no time zone")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


# --- tables ---------------------------------------------------------------------------------


class Base(DeclarativeBase):
    """The tables; ``Base.metadata`` is the schema the migrations must produce."""

    # Named constraints, so that migrations can refer to them on SQLite and PostgreSQL alike.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class StateRow(Base):
    """One row: the data version, bumped by every write that changes planning input."""

    __tablename__ = "store_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    data_version: Mapped[int] = mapped_column(BigInteger)


class CaseRow(Base):
    """A case as the case-management system sent it last."""

    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    address: Mapped[str] = mapped_column(Text)
    days_past_due: Mapped[int] = mapped_column(Integer, index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    value_cents: Mapped[int] = mapped_column(BigInteger)
    # ``;``-joined names: filtering by one of them works alike on SQLite and PostgreSQL.
    skills: Mapped[str] = mapped_column(Text)
    service_s: Mapped[int] = mapped_column(Integer)
    windows: Mapped[list[list[int]]] = mapped_column(JSON)
    preferred_collector: Mapped[str | None] = mapped_column(String(100))
    flags: Mapped[str] = mapped_column(Text)
    debtor_name: Mapped[str] = mapped_column(Text)
    phone: Mapped[str] = mapped_column(Text)
    national_id: Mapped[str] = mapped_column(Text)
    min_crew: Mapped[int] = mapped_column(Integer)
    appointment_s: Mapped[int | None] = mapped_column(Integer)
    appointment_tolerance_s: Mapped[int] = mapped_column(Integer)
    load: Mapped[int] = mapped_column(Integer, server_default="0")
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class CollectorRow(Base):
    """A collector who may be on duty."""

    __tablename__ = "collectors"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    start_lat: Mapped[float] = mapped_column(Float)
    start_lon: Mapped[float] = mapped_column(Float)
    end_lat: Mapped[float] = mapped_column(Float)
    end_lon: Mapped[float] = mapped_column(Float)
    shift_start_s: Mapped[int] = mapped_column(Integer)
    shift_end_s: Mapped[int] = mapped_column(Integer)
    skills: Mapped[str] = mapped_column(Text)
    max_visits: Mapped[int | None] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(16), index=True)
    break_start_s: Mapped[int | None] = mapped_column(Integer)
    break_end_s: Mapped[int | None] = mapped_column(Integer)
    break_s: Mapped[int] = mapped_column(Integer)
    capacity: Mapped[int | None] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class CrewRow(Base):
    """Collectors who work together (members ``;``-joined, first member first)."""

    __tablename__ = "crews"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    member_ids: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class PolicyRow(Base):
    """A compliance policy document (YAML) under a name."""

    __tablename__ = "policies"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    document: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class OutcomeRow(Base):
    """A field visit's outcome (the visit history of later plans)."""

    __tablename__ = "outcomes"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    visited_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    outcome: Mapped[str] = mapped_column(String(32))
    promise_due: Mapped[dt.date | None] = mapped_column(Date)
    promise_amount_cents: Mapped[int | None] = mapped_column(BigInteger)
    collector_id: Mapped[str] = mapped_column(String(100))
    plan_id: Mapped[str | None] = mapped_column(String(32))
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    address: Mapped[str] = mapped_column(Text, server_default="")
    paid_cents: Mapped[int | None] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(Text, server_default="")
    checkin_lat: Mapped[float | None] = mapped_column(Float)
    checkin_lon: Mapped[float | None] = mapped_column(Float)
    checkin_accuracy_m: Mapped[float | None] = mapped_column(Float)
    checkin_distance_m: Mapped[float | None] = mapped_column(Float)
    far_from_address: Mapped[bool] = mapped_column(Boolean, server_default=false())


class JobRow(Base):
    """A request to plan a day, and how far the worker got with it."""

    __tablename__ = "plan_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    stage: Mapped[str] = mapped_column(Text)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    dedupe_key: Mapped[str] = mapped_column(String(64), index=True)
    # The dedupe key while the job is queued or running, NULL after: unique, so two
    # identical requests can never both be active, on SQLite and PostgreSQL alike.
    active_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    data_version: Mapped[int] = mapped_column(BigInteger)
    plan_id: Mapped[str | None] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class PlanRow(Base):
    """A solved day: the problem as planned (snapshot) and the plan's figures."""

    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("plan_jobs.id"), index=True)
    date: Mapped[dt.date] = mapped_column(Date, index=True)
    timezone: Mapped[str] = mapped_column(String(64))
    # Snapshots as planned: later upserts of cases and collectors do not change a plan.
    cases: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    collectors: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    crews: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    exposure: Mapped[dict[str, str]] = mapped_column(JSON)
    objective: Mapped[int] = mapped_column(BigInteger)
    solve_time_s: Mapped[float] = mapped_column(Float)
    stats: Mapped[dict[str, float]] = mapped_column(JSON)
    policy_name: Mapped[str | None] = mapped_column(String(200))
    policy_version: Mapped[str | None] = mapped_column(String(100))
    policy_hash: Mapped[str | None] = mapped_column(String(64))
    policy_sources: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class RouteRow(Base):
    """One route of a plan (a collector's or a crew's day)."""

    __tablename__ = "routes"

    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), primary_key=True)
    collector_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    member_ids: Mapped[str] = mapped_column(Text)
    start_s: Mapped[int] = mapped_column(Integer)
    end_s: Mapped[int] = mapped_column(Integer)
    travel_time_s: Mapped[int] = mapped_column(Integer)
    distance_m: Mapped[int] = mapped_column(Integer)
    return_travel_time_s: Mapped[int] = mapped_column(Integer)
    return_distance_m: Mapped[int] = mapped_column(Integer)
    break_start_s: Mapped[int | None] = mapped_column(Integer)
    break_end_s: Mapped[int | None] = mapped_column(Integer)
    # ``(lon, lat)`` road line from the last stop to the end, when the route has stops.
    return_coords: Mapped[list[list[float]] | None] = mapped_column(JSON)


class StopRow(Base):
    """A timed visit on a route, with the case as planned and the road line to it."""

    __tablename__ = "stops"
    __table_args__ = (
        ForeignKeyConstraint(
            ["plan_id", "collector_id"], ["routes.plan_id", "routes.collector_id"]
        ),
    )

    plan_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    collector_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str] = mapped_column(String(100), index=True)
    arrival_s: Mapped[int] = mapped_column(Integer)
    start_s: Mapped[int] = mapped_column(Integer)
    end_s: Mapped[int] = mapped_column(Integer)
    travel_time_s: Mapped[int] = mapped_column(Integer)
    distance_m: Mapped[int] = mapped_column(Integer)
    case: Mapped[dict[str, Any]] = mapped_column(JSON)
    coords: Mapped[list[list[float]] | None] = mapped_column(JSON)


class UnassignedRow(Base):
    """A case of a plan that is on no route, with its reason."""

    __tablename__ = "unassigned"

    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[str] = mapped_column(Text)


class AuditRow(Base):
    """The compliance policy's decision about one case of a plan."""

    __tablename__ = "audit_entries"

    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    included: Mapped[bool] = mapped_column(Boolean)
    rule: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text)
    local_timezone: Mapped[str | None] = mapped_column(String(64))
    windows: Mapped[list[str]] = mapped_column(JSON)
    min_crew: Mapped[int | None] = mapped_column(Integer)


class ApiKeyRow(Base):
    """An API key: only the SHA-256 of its secret is kept."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class RevokedLinkRow(Base):
    """A collector link that no longer opens anything, though its signature is good."""

    __tablename__ = "revoked_links"

    link_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    revoked_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


# --- records --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record(Generic[T]):
    """A stored item with the times it was first and last written."""

    item: T
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing: the items and how many match in all."""

    items: tuple[T, ...]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True, slots=True)
class UpsertResult:
    """What a bulk upsert did, by id: new rows, changed rows, and rows left as they were."""

    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    """A policy document kept under a name."""

    name: str
    document: str
    content_hash: str
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class OutcomeDetails:
    """What a collector adds to an outcome: money taken at the door, a note, a check-in."""

    paid_cents: int | None = None
    note: str = ""
    checkin: CheckIn | None = None


@dataclass(frozen=True, slots=True)
class StoredOutcome:
    """A recorded visit outcome with its id and the plan it was reported from, if any."""

    id: str
    visit: VisitRecord
    plan_id: str | None
    created_at: dt.datetime
    details: OutcomeDetails = OutcomeDetails()


class JobStatus(StrEnum):
    """Where a plan job stands; the last three are final."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A plan job: the request, its status and stage, and its plan or error."""

    id: str
    status: JobStatus
    stage: str
    request: Mapping[str, Any]
    dedupe_key: str
    data_version: int
    plan_id: str | None
    error_code: str | None
    error_message: str | None
    cancel_requested: bool
    worker_id: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    heartbeat_at: dt.datetime | None
    lease_expires_at: dt.datetime | None


@dataclass(frozen=True)
class PlanSummary:
    """A stored plan's identity and figures, without its routes."""

    id: str
    job_id: str
    date: dt.date
    timezone: str
    created_at: dt.datetime
    objective: int
    solve_time_s: float
    routes: int
    visits: int
    unassigned: int
    policy_name: str | None
    policy_hash: str | None


@dataclass(frozen=True)
class StoredPlan:
    """A stored plan with the problem it was made for and the exposure profile of its pages."""

    summary: PlanSummary
    problem: Problem
    plan: Plan
    exposure: Mapping[str, str]
    audit: AuditRecord | None = None


@dataclass(frozen=True)
class StoredItinerary:
    """One route of a stored plan laid out for its collector, with what its pages need."""

    plan_id: str
    problem: Problem
    itinerary: Itinerary
    exposure: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key's identity, scopes and state (never its secret)."""

    id: str
    name: str
    key_hash: str
    scopes: frozenset[str]
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None


class StoreConflictError(ValueError):
    """A write clashes with what is stored (for example an id reused with other content)."""


class _JobNotHeldError(Exception):
    """The worker saving a plan no longer holds its job."""


# --- conversions ----------------------------------------------------------------------------


def _join(names: Iterable[str]) -> str:
    return _SEP.join(sorted(names))


def _split(text: str) -> frozenset[str]:
    return frozenset(name for name in text.split(_SEP) if name)


def _digest(values: Mapping[str, Any]) -> str:
    text = json.dumps(values, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def case_values(case: Case) -> dict[str, Any]:
    """A case as plain values (the columns of ``cases``; also the plan snapshot format)."""
    return {
        "id": case.id,
        "lat": case.location.lat,
        "lon": case.location.lon,
        "address": case.address,
        "days_past_due": case.days_past_due,
        "amount_cents": case.amount_cents,
        "value_cents": case.value,
        "skills": _join(case.skills),
        "service_s": case.service_s,
        "windows": [[w.start_s, w.end_s] for w in case.windows],
        "preferred_collector": case.preferred_collector,
        "flags": _join(case.flags),
        "debtor_name": case.debtor_name,
        "phone": case.phone,
        "national_id": case.national_id,
        "min_crew": case.min_crew,
        "appointment_s": case.appointment_s,
        "appointment_tolerance_s": case.appointment_tolerance_s,
        "load": case.load,
    }


def case_from_values(values: Mapping[str, Any]) -> Case:
    """Rebuild a case from ``case_values``."""
    return Case(
        id=values["id"],
        location=Location(values["lat"], values["lon"]),
        address=values["address"],
        days_past_due=values["days_past_due"],
        amount_cents=values["amount_cents"],
        value_cents=values["value_cents"],
        skills=_split(values["skills"]),
        service_s=values["service_s"],
        windows=tuple(TimeWindow(s, e) for s, e in values["windows"]),
        preferred_collector=values["preferred_collector"],
        flags=_split(values["flags"]),
        debtor_name=values["debtor_name"],
        phone=values["phone"],
        national_id=values["national_id"],
        min_crew=values["min_crew"],
        appointment_s=values["appointment_s"],
        appointment_tolerance_s=values["appointment_tolerance_s"],
        # Plans stored before loads existed have none.
        load=values.get("load", 0),
    )


def collector_values(collector: Collector) -> dict[str, Any]:
    """A collector as plain values (the columns of ``collectors``)."""
    window = collector.break_window
    return {
        "id": collector.id,
        "name": collector.name,
        "start_lat": collector.start.lat,
        "start_lon": collector.start.lon,
        "end_lat": collector.end.lat,
        "end_lon": collector.end.lon,
        "shift_start_s": collector.shift.start_s,
        "shift_end_s": collector.shift.end_s,
        "skills": _join(collector.skills),
        "max_visits": collector.max_visits,
        "mode": collector.mode.value,
        "break_start_s": None if window is None else window.start_s,
        "break_end_s": None if window is None else window.end_s,
        "break_s": collector.break_s,
        "capacity": collector.capacity,
    }


def collector_from_values(values: Mapping[str, Any]) -> Collector:
    """Rebuild a collector from ``collector_values``."""
    has_break = values["break_start_s"] is not None
    return Collector(
        id=values["id"],
        name=values["name"],
        start=Location(values["start_lat"], values["start_lon"]),
        end=Location(values["end_lat"], values["end_lon"]),
        shift=TimeWindow(values["shift_start_s"], values["shift_end_s"]),
        skills=_split(values["skills"]),
        max_visits=values["max_visits"],
        mode=TravelMode(values["mode"]),
        break_window=(
            TimeWindow(values["break_start_s"], values["break_end_s"]) if has_break else None
        ),
        break_s=values["break_s"],
        capacity=values.get("capacity"),
    )


def _crew_values(crew: Crew) -> dict[str, Any]:
    return {"id": crew.id, "member_ids": _SEP.join(crew.member_ids)}


def _crew_from_values(values: Mapping[str, Any]) -> Crew:
    return Crew(values["id"], tuple(values["member_ids"].split(_SEP)))


def _columns(row: Base, names: Iterable[str]) -> dict[str, Any]:
    return {name: getattr(row, name) for name in names}


_CASE_FIELDS = tuple(case_values(Case("x", Location(0, 0))))
_COLLECTOR_FIELDS = tuple(
    collector_values(Collector("x", "", Location(0, 0), Location(0, 0), TimeWindow(0, 1)))
)


def _job_record(row: JobRow) -> JobRecord:
    return JobRecord(
        id=row.id,
        status=JobStatus(row.status),
        stage=row.stage,
        request=dict(row.request),
        dedupe_key=row.dedupe_key,
        data_version=row.data_version,
        plan_id=row.plan_id,
        error_code=row.error_code,
        error_message=row.error_message,
        cancel_requested=row.cancel_requested,
        worker_id=row.worker_id,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        heartbeat_at=row.heartbeat_at,
        lease_expires_at=row.lease_expires_at,
    )


def _key_record(row: ApiKeyRow) -> ApiKeyRecord:
    return ApiKeyRecord(
        row.id, row.name, row.key_hash, _split(row.scopes), row.created_at, row.revoked_at
    )


def _outcome_record(row: OutcomeRow) -> StoredOutcome:
    visit = VisitRecord(
        case_id=row.case_id,
        visited_at=row.visited_at,
        outcome=Outcome(row.outcome),
        promise_due=row.promise_due,
        promise_amount_cents=row.promise_amount_cents,
        collector_id=row.collector_id,
        address=row.address,
    )
    checkin = None
    if row.checkin_lat is not None and row.checkin_lon is not None:
        checkin = CheckIn(
            Location(row.checkin_lat, row.checkin_lon),
            row.checkin_accuracy_m,
            row.checkin_distance_m or 0.0,
            row.far_from_address,
        )
    details = OutcomeDetails(row.paid_cents, row.note, checkin)
    return StoredOutcome(row.id, visit, row.plan_id, row.created_at, details)


def _details_values(details: OutcomeDetails) -> dict[str, Any]:
    checkin = details.checkin
    return {
        "paid_cents": details.paid_cents,
        "note": details.note,
        "checkin_lat": None if checkin is None else checkin.location.lat,
        "checkin_lon": None if checkin is None else checkin.location.lon,
        "checkin_accuracy_m": None if checkin is None else checkin.accuracy_m,
        "checkin_distance_m": None if checkin is None else checkin.distance_m,
        "far_from_address": False if checkin is None else checkin.far_from_address,
    }


def _outcome_values(visit: VisitRecord) -> dict[str, Any]:
    return {
        "case_id": visit.case_id,
        "visited_at": visit.visited_at.astimezone(dt.UTC).isoformat(),
        "outcome": visit.outcome.value,
        "promise_due": None if visit.promise_due is None else visit.promise_due.isoformat(),
        "promise_amount_cents": visit.promise_amount_cents,
        "collector_id": visit.collector_id,
        "address": visit.address,
    }


def _coords(line: Sequence[tuple[float, float]]) -> list[list[float]]:
    return [[lon, lat] for lon, lat in line]


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- engine ---------------------------------------------------------------------------------


def _sqlite_engine(url: str) -> Engine:
    """An SQLite engine whose transactions really begin when SQLAlchemy says so.

    The sqlite3 module starts transactions lazily, at the first write, which
    lets two writers deadlock on the upgrade from a read lock. Here every
    transaction issues its own BEGIN, and write transactions ``BEGIN
    IMMEDIATE`` (take the write lock up front, waiting up to the busy timeout),
    so concurrent writers queue instead of failing.
    """
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Readers do not block the writer (and the other way round) in write-ahead-log mode.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        write = connection.get_execution_options().get("dispatch_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def create_store_engine(url: str) -> Engine:
    """An engine for a database URL, with the SQLite transaction fix where it applies."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True)


# --- the store ------------------------------------------------------------------------------


class Store:
    """The service's database: one engine, short transactions, dataclasses in and out.

    Parameters
    ----------
    url
        SQLAlchemy database URL; default ``sqlite:///dispatch.db`` (a file in
        the working directory).
    """

    def __init__(self, url: str = DEFAULT_DATABASE_URL):
        self.url = url
        self._engine = create_store_engine(url)
        self._writer = self._engine.execution_options(dispatch_write=True)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine."""
        return self._engine

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision`` with the packaged Alembic migrations."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", "dispatch:migrations")
        with self._engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self._engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    def _retrying(self, write: Callable[[], T]) -> T:
        """Run a write; once more if a concurrent writer inserted the same key first."""
        try:
            return write()
        except IntegrityError:
            return write()

    # --- data version -----------------------------------------------------------------------

    def data_version(self) -> int:
        """A number that changes whenever cases, collectors, crews, policies or outcomes do."""
        with self._read() as session:
            return _data_version(session)

    # --- cases, collectors, crews -----------------------------------------------------------

    def upsert_cases(self, cases: Sequence[Case]) -> UpsertResult:
        """Insert new cases and update changed ones by id, all in one transaction."""
        return self._upsert(CaseRow, [case_values(c) for c in cases])

    def upsert_collectors(self, collectors: Sequence[Collector]) -> UpsertResult:
        """Insert new collectors and update changed ones by id, all in one transaction."""
        return self._upsert(CollectorRow, [collector_values(k) for k in collectors])

    def upsert_crews(self, crews: Sequence[Crew]) -> UpsertResult:
        """Insert new crews and update changed ones by id, all in one transaction."""
        return self._upsert(CrewRow, [_crew_values(w) for w in crews])

    def _upsert(self, table: type[Any], batch: list[dict[str, Any]]) -> UpsertResult:
        ids = [values["id"] for values in batch]
        if len(set(ids)) != len(ids):
            raise ValueError("a batch names an id more than once")
        return self._retrying(lambda: self._upsert_once(table, batch, ids))

    def _upsert_once(
        self, table: type[Any], batch: list[dict[str, Any]], ids: list[str]
    ) -> UpsertResult:
        now = _now()
        with self._write() as session:
            stored: dict[str, str] = {}
            for chunk in _chunks(ids):
                query = select(table.id, table.content_hash).where(table.id.in_(chunk))
                stored.update((row_id, digest) for row_id, digest in session.execute(query))
            inserts, updates, unchanged = [], [], []
            for values in batch:
                digest = _digest(values)
                known = stored.get(values["id"])
                if known is None:
                    inserts.append(
                        {**values, "content_hash": digest, "created_at": now, "updated_at": now}
                    )
                elif known != digest:
                    updates.append({**values, "content_hash": digest, "updated_at": now})
                else:
                    unchanged.append(values["id"])
            if inserts:
                session.execute(insert(table), inserts)
            if updates:
                session.execute(update(table), updates)
            if inserts or updates:
                _bump_version(session)
        return UpsertResult(
            tuple(v["id"] for v in inserts), tuple(v["id"] for v in updates), tuple(unchanged)
        )

    def get_case(self, case_id: str) -> Record[Case] | None:
        """The case with this id, or None."""
        with self._read() as session:
            row = session.get(CaseRow, case_id)
            return None if row is None else _case_record(row)

    def list_cases(
        self,
        *,
        skill: str | None = None,
        min_days_past_due: int | None = None,
        max_days_past_due: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[Record[Case]]:
        """Cases by id, filtered by a required skill and a days-past-due range (inclusive)."""
        query = select(CaseRow)
        if skill is not None:
            query = query.where(_has_name(CaseRow.skills, skill))
        if min_days_past_due is not None:
            query = query.where(CaseRow.days_past_due >= min_days_past_due)
        if max_days_past_due is not None:
            query = query.where(CaseRow.days_past_due <= max_days_past_due)
        with self._read() as session:
            return _page(session, query, CaseRow.id, limit, offset, _case_record)

    def get_collector(self, collector_id: str) -> Record[Collector] | None:
        """The collector with this id, or None."""
        with self._read() as session:
            row = session.get(CollectorRow, collector_id)
            return None if row is None else _collector_record(row)

    def list_collectors(
        self,
        *,
        skill: str | None = None,
        mode: TravelMode | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[Record[Collector]]:
        """Collectors by id, filtered by a held skill and a travel mode."""
        query = select(CollectorRow)
        if skill is not None:
            query = query.where(_has_name(CollectorRow.skills, skill))
        if mode is not None:
            query = query.where(CollectorRow.mode == TravelMode(mode).value)
        with self._read() as session:
            return _page(session, query, CollectorRow.id, limit, offset, _collector_record)

    def list_crews(self, *, limit: int = 100, offset: int = 0) -> Page[Record[Crew]]:
        """Crews by id."""
        with self._read() as session:
            return _page(session, select(CrewRow), CrewRow.id, limit, offset, _crew_record)

    def load_day_input(self) -> tuple[tuple[Case, ...], tuple[Collector, ...], tuple[Crew, ...]]:
        """Every stored case, collector and crew, by id, from one consistent read."""
        with self._read() as session:
            cases = session.scalars(select(CaseRow).order_by(CaseRow.id))
            collectors = session.scalars(select(CollectorRow).order_by(CollectorRow.id))
            crews = session.scalars(select(CrewRow).order_by(CrewRow.id))
            return (
                tuple(case_from_values(_columns(r, _CASE_FIELDS)) for r in cases),
                tuple(collector_from_values(_columns(r, _COLLECTOR_FIELDS)) for r in collectors),
                tuple(_crew_from_values(_columns(r, ("id", "member_ids"))) for r in crews),
            )

    # --- policies ---------------------------------------------------------------------------

    def put_policy(self, name: str, document: str, content_hash: str) -> tuple[StoredPolicy, bool]:
        """Store a policy document under a name; returns it and whether it was new."""
        return self._retrying(lambda: self._put_policy(name, document, content_hash))

    def _put_policy(self, name: str, document: str, content_hash: str) -> tuple[StoredPolicy, bool]:
        now = _now()
        with self._write() as session:
            row = session.get(PolicyRow, name)
            created = row is None
            if row is None:
                row = PolicyRow(
                    name=name,
                    document=document,
                    content_hash=content_hash,
                    created_at=now,
                    updated_at=now,
                )
                session.add(row)
                _bump_version(session)
            elif row.document != document:
                row.document, row.content_hash, row.updated_at = document, content_hash, now
                _bump_version(session)
            session.flush()
            return _policy_record(row), created

    def get_policy(self, name: str) -> StoredPolicy | None:
        """The policy stored under this name, or None."""
        with self._read() as session:
            row = session.get(PolicyRow, name)
            return None if row is None else _policy_record(row)

    def list_policies(self, *, limit: int = 100, offset: int = 0) -> Page[StoredPolicy]:
        """Stored policies by name."""
        with self._read() as session:
            return _page(session, select(PolicyRow), PolicyRow.name, limit, offset, _policy_record)

    # --- outcomes ---------------------------------------------------------------------------

    def add_outcome(
        self,
        visit: VisitRecord,
        *,
        outcome_id: str | None = None,
        plan_id: str | None = None,
        details: OutcomeDetails | None = None,
        content: Mapping[str, Any] | None = None,
    ) -> tuple[StoredOutcome, bool]:
        """Record a visit outcome; returns it and whether it was new.

        Sending the same outcome again under the same id changes nothing (a
        phone that retries does not double a visit). ``content`` is what
        makes two reports the same (default: the visit, plan and details);
        give the report as sent, so that defaults filled in later (such as
        the time) do not make a retry look different. A visit without its
        address is recorded at the case's current address.

        Raises
        ------
        KeyError
            The case is not stored.
        StoreConflictError
            The id is taken by a different outcome.
        """
        details = details or OutcomeDetails()
        if content is None:
            content = {**_outcome_values(visit), **_details_values(details), "plan_id": plan_id}
        digest = _digest(content)
        return self._retrying(
            lambda: self._add_outcome(visit, outcome_id, plan_id, details, digest)
        )

    def _add_outcome(
        self,
        visit: VisitRecord,
        outcome_id: str | None,
        plan_id: str | None,
        details: OutcomeDetails,
        digest: str,
    ) -> tuple[StoredOutcome, bool]:
        with self._write() as session:
            case = session.get(CaseRow, visit.case_id)
            if case is None:
                raise KeyError(visit.case_id)
            if outcome_id is not None:
                row = session.get(OutcomeRow, outcome_id)
                if row is not None:
                    if row.content_hash != digest:
                        raise StoreConflictError(
                            f"outcome {outcome_id} is already recorded with other content"
                        )
                    return _outcome_record(row), False
            row = OutcomeRow(
                id=outcome_id or uuid.uuid4().hex,
                case_id=visit.case_id,
                visited_at=visit.visited_at.astimezone(dt.UTC),
                outcome=visit.outcome.value,
                promise_due=visit.promise_due,
                promise_amount_cents=visit.promise_amount_cents,
                collector_id=visit.collector_id,
                plan_id=plan_id,
                content_hash=digest,
                created_at=_now(),
                address=visit.address or case.address,
                **_details_values(details),
            )
            session.add(row)
            _bump_version(session)
            session.flush()
            return _outcome_record(row), True

    def list_outcomes(
        self,
        *,
        case_id: str | None = None,
        plan_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[StoredOutcome]:
        """Recorded outcomes, oldest visit first, of one case or one plan if asked."""
        query = select(OutcomeRow)
        if case_id is not None:
            query = query.where(OutcomeRow.case_id == case_id)
        if plan_id is not None:
            query = query.where(OutcomeRow.plan_id == plan_id)
        order = (OutcomeRow.visited_at, OutcomeRow.id)
        with self._read() as session:
            return _page(session, query, order, limit, offset, _outcome_record)

    def outcomes_of_day(
        self, plan_id: str, problem: Problem, case_ids: Iterable[str]
    ) -> tuple[StoredOutcome, ...]:
        """Outcomes of a plan's cases reported on the plan, or without a plan on its day.

        Oldest visit first: what the day's progress is judged from.
        """
        start = problem.to_datetime(0)
        following = problem.date + dt.timedelta(days=1)
        end = dt.datetime.combine(following, dt.time(0), problem.tz)
        found: list[StoredOutcome] = []
        with self._read() as session:
            for chunk in _chunks(sorted(set(case_ids))):
                query = select(OutcomeRow).where(
                    OutcomeRow.case_id.in_(chunk),
                    or_(
                        OutcomeRow.plan_id == plan_id,
                        (OutcomeRow.plan_id.is_(None))
                        & (OutcomeRow.visited_at >= start.astimezone(dt.UTC))
                        & (OutcomeRow.visited_at < end.astimezone(dt.UTC)),
                    ),
                )
                found.extend(_outcome_record(row) for row in session.scalars(query))
        return tuple(sorted(found, key=lambda o: (o.visit.visited_at, o.id)))

    def load_history(self, *, before: dt.datetime) -> tuple[VisitRecord, ...]:
        """Every recorded visit before an instant, oldest first: a plan's visit history."""
        query = (
            select(OutcomeRow)
            .where(OutcomeRow.visited_at < before)
            .order_by(OutcomeRow.visited_at, OutcomeRow.id)
        )
        with self._read() as session:
            return tuple(_outcome_record(row).visit for row in session.scalars(query))

    # --- plan jobs --------------------------------------------------------------------------

    def submit_job(self, request: Mapping[str, Any]) -> tuple[JobRecord, bool]:
        """Queue a plan job, unless an identical one is queued or running on the same data.

        Two requests are identical when their JSON is equal and the data
        version has not changed between them. Returns the job and whether it
        is new (False: the active identical job).
        """
        try:
            return self._submit_job(request)
        except IntegrityError:
            # A concurrent identical request won the race; it is the active job now.
            return self._submit_job(request)

    def _submit_job(self, request: Mapping[str, Any]) -> tuple[JobRecord, bool]:
        with self._write() as session:
            version = _data_version(session)
            key = _digest({"request": dict(request), "data_version": version})
            active = session.scalar(select(JobRow).where(JobRow.active_key == key))
            if active is not None:
                return _job_record(active), False
            row = JobRow(
                id=uuid.uuid4().hex,
                status=JobStatus.QUEUED.value,
                stage="Queued",
                request=dict(request),
                dedupe_key=key,
                active_key=key,
                data_version=version,
                cancel_requested=False,
                created_at=_now(),
            )
            session.add(row)
            session.flush()
            return _job_record(row), True

    def get_job(self, job_id: str) -> JobRecord | None:
        """The plan job with this id, or None."""
        with self._read() as session:
            row = session.get(JobRow, job_id)
            return None if row is None else _job_record(row)

    def list_jobs(
        self, *, status: JobStatus | None = None, limit: int = 100, offset: int = 0
    ) -> Page[JobRecord]:
        """Plan jobs, newest first, of one status if asked."""
        query = select(JobRow)
        if status is not None:
            query = query.where(JobRow.status == JobStatus(status).value)
        order = (JobRow.created_at.desc(), JobRow.id)
        with self._read() as session:
            return _page(session, query, order, limit, offset, _job_record)

    def claim_job(self, worker_id: str, *, lease_s: float) -> JobRecord | None:
        """Take the oldest queued job for a worker, leased for ``lease_s`` seconds."""
        with self._write() as session:
            job_id = session.scalar(
                select(JobRow.id)
                .where(JobRow.status == JobStatus.QUEUED.value)
                .order_by(JobRow.created_at, JobRow.id)
                .limit(1)
            )
            if job_id is None:
                return None
            now = _now()
            # Conditional on still being queued: two workers never both take a job.
            taken = session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status == JobStatus.QUEUED.value)
                .values(
                    status=JobStatus.RUNNING.value,
                    stage="Starting",
                    worker_id=worker_id,
                    started_at=now,
                    heartbeat_at=now,
                    lease_expires_at=now + dt.timedelta(seconds=lease_s),
                )
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                return None
            return _job_record(session.get_one(JobRow, job_id))

    def renew_lease(
        self, job_id: str, worker_id: str, *, lease_s: float, stage: str | None = None
    ) -> JobRecord | None:
        """Extend a running job's lease (and set its stage); None if the worker lost the job."""
        now = _now()
        values: dict[str, Any] = {
            "heartbeat_at": now,
            "lease_expires_at": now + dt.timedelta(seconds=lease_s),
        }
        if stage is not None:
            values["stage"] = stage
        with self._write() as session:
            renewed = session.execute(
                update(JobRow).where(*_held(job_id, worker_id)).values(**values)
            )
            if renewed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            return _job_record(session.get_one(JobRow, job_id))

    def cancel_job(self, job_id: str) -> JobRecord | None:
        """Cancel a queued job at once, or ask the worker of a running one to stop.

        A finished job is returned as it is. None when there is no such job.
        """
        now = _now()
        with self._write() as session:
            row = session.get(JobRow, job_id)
            if row is None:
                return None
            if row.status == JobStatus.QUEUED.value:
                row.status, row.stage = JobStatus.CANCELLED.value, "Cancelled before it started"
                row.finished_at, row.active_key = now, None
            elif row.status == JobStatus.RUNNING.value:
                row.cancel_requested = True
            session.flush()
            return _job_record(row)

    def finish_job(
        self,
        job_id: str,
        worker_id: str,
        status: JobStatus,
        *,
        stage: str,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> bool:
        """End a running job without a plan (failed or cancelled); False if it was not held."""
        with self._write() as session:
            ended = session.execute(
                update(JobRow)
                .where(*_held(job_id, worker_id))
                .values(**_final(status, stage, error_code, error_message))
            )
            return ended.rowcount == 1  # type: ignore[attr-defined]

    def fail_jobs_of_worker(self, worker_id: str, *, code: str, message: str) -> int:
        """Fail every job a worker was running (it exited); returns how many."""
        with self._write() as session:
            failed = session.execute(
                update(JobRow)
                .where(JobRow.worker_id == worker_id, JobRow.status == JobStatus.RUNNING.value)
                .values(**_final(JobStatus.FAILED, "Failed", code, message))
            )
            return int(failed.rowcount)  # type: ignore[attr-defined]

    def expire_leases(self, *, now: dt.datetime | None = None) -> int:
        """Fail every running job whose worker stopped renewing its lease; returns how many."""
        now = _now() if now is None else now
        message = "the worker stopped reporting (no heartbeat before its lease ran out)"
        expired = (JobRow.status == JobStatus.RUNNING.value, JobRow.lease_expires_at < now)
        # Looked for first without the write lock: this runs every poll and rarely finds any.
        with self._read() as session:
            if session.scalar(select(func.count()).where(*expired)) == 0:
                return 0
        with self._write() as session:
            failed = session.execute(
                update(JobRow)
                .where(*expired)
                .values(**_final(JobStatus.FAILED, "Failed", "worker_lost", message))
            )
            return int(failed.rowcount)  # type: ignore[attr-defined]

    def requeue_jobs_of_worker(self, worker_id: str) -> int:
        """Put a stopped worker's running jobs back in the queue (cancelled if asked to stop)."""
        with self._write() as session:
            cancelled = session.execute(
                update(JobRow)
                .where(
                    JobRow.worker_id == worker_id,
                    JobRow.status == JobStatus.RUNNING.value,
                    JobRow.cancel_requested.is_(True),
                )
                .values(**_final(JobStatus.CANCELLED, "Cancelled", None, None))
            )
            requeued = session.execute(
                update(JobRow)
                .where(JobRow.worker_id == worker_id, JobRow.status == JobStatus.RUNNING.value)
                .values(
                    status=JobStatus.QUEUED.value,
                    stage="Queued again: the service stopped while it ran",
                    worker_id=None,
                    started_at=None,
                    heartbeat_at=None,
                    lease_expires_at=None,
                )
            )
            return int(cancelled.rowcount) + int(requeued.rowcount)  # type: ignore[attr-defined]

    # --- plans ------------------------------------------------------------------------------

    def save_plan(
        self,
        job_id: str,
        worker_id: str,
        *,
        problem: Problem,
        plan: Plan,
        itineraries: Sequence[Itinerary],
        exposure: Mapping[str, str],
        audit: AuditRecord | None = None,
    ) -> str | None:
        """Store a job's plan and mark the job succeeded, in one transaction.

        ``problem`` holds every case given to the planner; each itinerary
        carries its cases as planned (windows cut to the legal ones). Returns
        the plan id, or None (and stores nothing) when the worker no longer
        holds the job: it was cancelled, or its lease ran out and it failed.
        """
        plan_id = uuid.uuid4().hex
        try:
            return self._save_plan(
                plan_id, job_id, worker_id, problem, plan, itineraries, exposure, audit
            )
        except _JobNotHeldError:
            return None

    def _save_plan(
        self,
        plan_id: str,
        job_id: str,
        worker_id: str,
        problem: Problem,
        plan: Plan,
        itineraries: Sequence[Itinerary],
        exposure: Mapping[str, str],
        audit: AuditRecord | None,
    ) -> str:
        with self._write() as session:
            session.add(_plan_row(plan_id, job_id, problem, plan, exposure, audit))
            session.flush()
            route_rows = _route_rows(plan_id, problem, plan, itineraries)
            if route_rows:
                session.execute(insert(RouteRow), route_rows)
            stop_rows = _stop_rows(plan_id, plan, itineraries)
            if stop_rows:
                session.execute(insert(StopRow), stop_rows)
            unassigned = [
                {
                    "plan_id": plan_id,
                    "case_id": u.case_id,
                    "position": i,
                    "reason": u.reason.value,
                    "detail": u.detail,
                }
                for i, u in enumerate(plan.unassigned)
            ]
            if unassigned:
                session.execute(insert(UnassignedRow), unassigned)
            if audit is not None and audit.entries:
                session.execute(insert(AuditRow), _audit_rows(plan_id, audit))
            done = session.execute(
                update(JobRow)
                .where(*_held(job_id, worker_id))
                .values(**_final(JobStatus.SUCCEEDED, "Done", None, None), plan_id=plan_id)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                # Leaving the block by an exception rolls back everything written above.
                raise _JobNotHeldError(job_id)
        return plan_id

    def list_plans(
        self, *, date: dt.date | None = None, limit: int = 100, offset: int = 0
    ) -> Page[PlanSummary]:
        """Plan summaries, newest first, of one plan day if asked."""
        query = select(*_SUMMARY_COLUMNS)
        if date is not None:
            query = query.where(PlanRow.date == date)
        with self._read() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.execute(
                query.order_by(PlanRow.created_at.desc(), PlanRow.id).limit(limit).offset(offset)
            ).all()
            return Page(_summaries(session, rows), total, limit, offset)

    def get_plan_summary(self, plan_id: str) -> PlanSummary | None:
        """A plan's identity and figures, or None."""
        with self._read() as session:
            row = session.execute(select(*_SUMMARY_COLUMNS).where(PlanRow.id == plan_id)).first()
            return None if row is None else _summaries(session, [row])[0]

    def get_plan(self, plan_id: str) -> StoredPlan | None:
        """A stored plan in full, with its problem and audit, or None."""
        with self._read() as session:
            row = session.get(PlanRow, plan_id)
            if row is None:
                return None
            routes = session.scalars(
                select(RouteRow).where(RouteRow.plan_id == plan_id).order_by(RouteRow.position)
            ).all()
            stops = session.scalars(
                select(StopRow)
                .where(StopRow.plan_id == plan_id)
                .order_by(StopRow.collector_id, StopRow.number)
            ).all()
            unassigned = session.scalars(
                select(UnassignedRow)
                .where(UnassignedRow.plan_id == plan_id)
                .order_by(UnassignedRow.position)
            ).all()
            audit_rows = session.scalars(
                select(AuditRow).where(AuditRow.plan_id == plan_id).order_by(AuditRow.position)
            ).all()
            summary = _summaries(session, [_summary_tuple(row)])[0]
            problem = _problem_of(row, [case_from_values(c) for c in row.cases])
            by_route: dict[str, list[StopRow]] = {}
            for stop in stops:
                by_route.setdefault(stop.collector_id, []).append(stop)
            plan = Plan(
                routes=tuple(_route(r, by_route.get(r.collector_id, [])) for r in routes),
                unassigned=tuple(
                    Unassigned(u.case_id, Reason(u.reason), u.detail) for u in unassigned
                ),
                objective=row.objective,
                solve_time_s=row.solve_time_s,
                stats=dict(row.stats),
            )
            return StoredPlan(summary, problem, plan, dict(row.exposure), _audit(row, audit_rows))

    def get_itinerary(self, plan_id: str, collector_id: str) -> StoredItinerary | None:
        """One collector's itinerary of a stored plan, without loading the whole plan.

        A crew member gets the crew's route, as ``build_itineraries`` gives
        it. None when the plan does not exist or gives this collector no
        stops. ``problem`` holds the plan's collectors and crews and this
        route's cases only.
        """
        from dispatch.itinerary import Itinerary, ItineraryStop, Leg

        with self._read() as session:
            head = session.execute(
                select(
                    PlanRow.date,
                    PlanRow.timezone,
                    PlanRow.collectors,
                    PlanRow.crews,
                    PlanRow.exposure,
                ).where(PlanRow.id == plan_id)
            ).first()
            route_row = session.scalar(_route_of(plan_id, collector_id))
            if head is None or route_row is None or route_row.return_coords is None:
                return None
            stop_rows = session.scalars(
                select(StopRow)
                .where(StopRow.plan_id == plan_id, StopRow.collector_id == route_row.collector_id)
                .order_by(StopRow.number)
            ).all()
        cases = [case_from_values(s.case) for s in stop_rows]
        problem = Problem(
            head.date,
            head.timezone,
            tuple(cases),
            tuple(collector_from_values(k) for k in head.collectors),
            tuple(_crew_from_values(w) for w in head.crews),
        )
        route = _route(route_row, stop_rows)
        stops = tuple(
            ItineraryStop(
                s.number, case, stop, Leg(stop.travel_time_s, stop.distance_m, _line(s.coords))
            )
            for s, case, stop in zip(stop_rows, cases, route.stops, strict=True)
        )
        return_leg = Leg(
            route.return_travel_time_s, route.return_distance_m, _line(route_row.return_coords)
        )
        itinerary = Itinerary(problem.collector(route.collector_id), route, stops, return_leg)
        if route.member_ids:
            # A crew member's itinerary, as build_itineraries lays it out.
            crew = problem.crew_of(route.collector_id)
            itinerary = replace(
                itinerary,
                collector=problem.collector(collector_id),
                members=tuple(problem.collector(m) for m in route.members),
                crew_id=None if crew is None else crew.id,
            )
        return StoredItinerary(plan_id, problem, itinerary, dict(head.exposure))

    def list_itineraries(self, plan_id: str) -> tuple[StoredItinerary, ...]:
        """Every collector's itinerary of a plan, in the plan's collector order."""
        with self._read() as session:
            head = session.execute(select(PlanRow.collectors).where(PlanRow.id == plan_id)).first()
            routes = session.execute(
                select(RouteRow.collector_id, RouteRow.member_ids).where(
                    RouteRow.plan_id == plan_id, RouteRow.return_coords.is_not(None)
                )
            ).all()
        if head is None:
            return ()
        working = {m for first, members in routes for m in (first, *_members(members))}
        found = (
            self.get_itinerary(plan_id, k["id"]) for k in head.collectors if k["id"] in working
        )
        return tuple(item for item in found if item is not None)

    def route_case_ids(self, plan_id: str, collector_id: str) -> tuple[str, ...]:
        """Ids of the cases on a collector's route in a plan (alone or in a crew), in order."""
        with self._read() as session:
            route = session.scalar(_route_of(plan_id, collector_id))
            if route is None:
                return ()
            return tuple(
                session.scalars(
                    select(StopRow.case_id)
                    .where(StopRow.plan_id == plan_id, StopRow.collector_id == route.collector_id)
                    .order_by(StopRow.number)
                ).all()
            )

    def list_unassigned(
        self,
        plan_id: str,
        *,
        reason: Reason | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[Unassigned]:
        """A plan's unassigned cases in the plan's order, of one reason if asked."""
        query = select(UnassignedRow).where(UnassignedRow.plan_id == plan_id)
        if reason is not None:
            query = query.where(UnassignedRow.reason == Reason(reason).value)
        with self._read() as session:
            return _page(
                session,
                query,
                UnassignedRow.position,
                limit,
                offset,
                lambda u: Unassigned(u.case_id, Reason(u.reason), u.detail),
            )

    # --- API keys and links -----------------------------------------------------------------

    def add_api_key(
        self, key_id: str, *, name: str, key_hash: str, scopes: Iterable[str]
    ) -> ApiKeyRecord:
        """Store a new API key by the hash of its secret."""
        row = ApiKeyRow(
            id=key_id, name=name, key_hash=key_hash, scopes=_join(scopes), created_at=_now()
        )
        with self._write() as session:
            session.add(row)
            session.flush()
            return _key_record(row)

    def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        """The API key with this id, or None."""
        with self._read() as session:
            row = session.get(ApiKeyRow, key_id)
            return None if row is None else _key_record(row)

    def list_api_keys(self, *, limit: int = 100, offset: int = 0) -> Page[ApiKeyRecord]:
        """API keys, oldest first."""
        order = (ApiKeyRow.created_at, ApiKeyRow.id)
        with self._read() as session:
            return _page(session, select(ApiKeyRow), order, limit, offset, _key_record)

    def revoke_api_key(self, key_id: str) -> ApiKeyRecord | None:
        """Revoke an API key (once; a second call keeps the first time); None if unknown."""
        with self._write() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = _now()
            session.flush()
            return _key_record(row)

    def revoke_link(self, link_id: str) -> bool:
        """Revoke a collector link by its id; False if it was revoked already."""
        with self._write() as session:
            if session.get(RevokedLinkRow, link_id) is not None:
                return False
            session.add(RevokedLinkRow(link_id=link_id, revoked_at=_now()))
            return True

    def is_link_revoked(self, link_id: str) -> bool:
        """Whether a collector link was revoked."""
        with self._read() as session:
            return session.get(RevokedLinkRow, link_id) is not None


# --- helpers of the store -------------------------------------------------------------------


def _data_version(session: Session) -> int:
    return session.scalar(select(StateRow.data_version).where(StateRow.id == 1)) or 0


def _bump_version(session: Session) -> None:
    session.execute(
        update(StateRow).where(StateRow.id == 1).values(data_version=StateRow.data_version + 1)
    )


def _members(joined: str) -> tuple[str, ...]:
    return tuple(m for m in joined.split(_SEP) if m)


def _line(points: Sequence[Sequence[float]] | None) -> tuple[tuple[float, float], ...]:
    return tuple((p[0], p[1]) for p in points or ())


def _route_of(plan_id: str, collector_id: str) -> Any:
    """The route a collector works in a plan: their own, or their crew's."""
    as_member = (literal(_SEP) + RouteRow.member_ids + literal(_SEP)).like(
        f"%{_SEP}{_escape_like(collector_id)}{_SEP}%", escape="\\"
    )
    return select(RouteRow).where(
        RouteRow.plan_id == plan_id, or_(RouteRow.collector_id == collector_id, as_member)
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _has_name(column: Any, name: str) -> Any:
    """Whether a ``;``-joined column holds a name (matched whole, LIKE wildcards escaped)."""
    escaped = _escape_like(name.lower())
    return (literal(_SEP) + column + literal(_SEP)).like(f"%{_SEP}{escaped}{_SEP}%", escape="\\")


def _page(
    session: Session,
    query: Any,
    order: Any,
    limit: int,
    offset: int,
    convert: Callable[[Any], T],
) -> Page[T]:
    if limit < 1 or offset < 0:
        raise ValueError(f"limit {limit} must be 1 or more and offset {offset} 0 or more")
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    ordering = order if isinstance(order, tuple) else (order,)
    rows = session.scalars(query.order_by(*ordering).limit(limit).offset(offset)).all()
    return Page(tuple(convert(row) for row in rows), total, limit, offset)


def _case_record(row: CaseRow) -> Record[Case]:
    case = case_from_values(_columns(row, _CASE_FIELDS))
    return Record(case, row.created_at, row.updated_at)


def _collector_record(row: CollectorRow) -> Record[Collector]:
    collector = collector_from_values(_columns(row, _COLLECTOR_FIELDS))
    return Record(collector, row.created_at, row.updated_at)


def _crew_record(row: CrewRow) -> Record[Crew]:
    crew = _crew_from_values(_columns(row, ("id", "member_ids")))
    return Record(crew, row.created_at, row.updated_at)


def _policy_record(row: PolicyRow) -> StoredPolicy:
    return StoredPolicy(row.name, row.document, row.content_hash, row.created_at, row.updated_at)


def _held(job_id: str, worker_id: str) -> tuple[Any, ...]:
    """Conditions under which a worker still holds a job."""
    return (
        JobRow.id == job_id,
        JobRow.worker_id == worker_id,
        JobRow.status == JobStatus.RUNNING.value,
    )


def _final(
    status: JobStatus, stage: str, error_code: str | None, error_message: str | None
) -> dict[str, Any]:
    """Column values of a job that has ended; it no longer blocks identical requests."""
    return {
        "status": JobStatus(status).value,
        "stage": stage,
        "error_code": error_code,
        "error_message": error_message,
        "finished_at": _now(),
        "active_key": None,
        "lease_expires_at": None,
    }


def _problem_of(row: PlanRow, cases: Sequence[Case]) -> Problem:
    return Problem(
        row.date,
        row.timezone,
        tuple(cases),
        tuple(collector_from_values(k) for k in row.collectors),
        tuple(_crew_from_values(w) for w in row.crews),
    )


def _plan_row(
    plan_id: str,
    job_id: str,
    problem: Problem,
    plan: Plan,
    exposure: Mapping[str, str],
    audit: AuditRecord | None,
) -> PlanRow:
    return PlanRow(
        id=plan_id,
        job_id=job_id,
        date=problem.date,
        timezone=problem.timezone,
        cases=[case_values(c) for c in problem.cases],
        collectors=[collector_values(k) for k in problem.collectors],
        crews=[_crew_values(w) for w in problem.crews],
        exposure=dict(exposure),
        objective=int(plan.objective),
        solve_time_s=float(plan.solve_time_s),
        stats={k: float(v) for k, v in plan.stats.items()},
        policy_name=None if audit is None else audit.policy_name,
        policy_version=None if audit is None else audit.policy_version,
        policy_hash=None if audit is None else audit.policy_hash,
        policy_sources=[] if audit is None else list(audit.sources),
        created_at=_now(),
    )


def _route_rows(
    plan_id: str, problem: Problem, plan: Plan, itineraries: Sequence[Itinerary]
) -> list[dict[str, Any]]:
    returns = {it.collector.id: _coords(it.return_leg.coords) for it in itineraries}
    positions = {k.id: i for i, k in enumerate(problem.collectors)}
    return [
        {
            "plan_id": plan_id,
            "collector_id": r.collector_id,
            "position": positions.get(r.collector_id, len(positions) + i),
            "member_ids": _SEP.join(r.member_ids),
            "start_s": r.start_s,
            "end_s": r.end_s,
            "travel_time_s": r.travel_time_s,
            "distance_m": r.distance_m,
            "return_travel_time_s": r.return_travel_time_s,
            "return_distance_m": r.return_distance_m,
            "break_start_s": r.break_start_s,
            "break_end_s": r.break_end_s,
            "return_coords": returns.get(r.collector_id),
        }
        for i, r in enumerate(plan.routes)
    ]


def _stop_rows(plan_id: str, plan: Plan, itineraries: Sequence[Itinerary]) -> list[dict[str, Any]]:
    laid_out = {it.collector.id: it for it in itineraries}
    rows = []
    for route in plan.routes:
        itinerary = laid_out.get(route.collector_id)
        if route.stops and itinerary is None:
            raise ValueError(f"the route of {route.collector_id} has stops but no itinerary")
        for number, stop in enumerate(route.stops, start=1):
            assert itinerary is not None
            item = itinerary.stops[number - 1]
            rows.append(
                {
                    "plan_id": plan_id,
                    "collector_id": route.collector_id,
                    "number": number,
                    "case_id": stop.case_id,
                    "arrival_s": stop.arrival_s,
                    "start_s": stop.start_s,
                    "end_s": stop.end_s,
                    "travel_time_s": stop.travel_time_s,
                    "distance_m": stop.distance_m,
                    "case": case_values(item.case),
                    "coords": _coords(item.leg.coords),
                }
            )
    return rows


def _audit_rows(plan_id: str, audit: AuditRecord) -> list[dict[str, Any]]:
    return [
        {
            "plan_id": plan_id,
            "case_id": e.case_id,
            "position": i,
            "included": e.included,
            "rule": e.rule,
            "detail": e.detail,
            "local_timezone": e.local_timezone,
            "windows": list(e.windows),
            "min_crew": e.min_crew,
        }
        for i, e in enumerate(audit.entries)
    ]


def _route(row: RouteRow, stops: Sequence[StopRow]) -> Route:
    return Route(
        collector_id=row.collector_id,
        start_s=row.start_s,
        end_s=row.end_s,
        stops=tuple(
            Stop(s.case_id, s.arrival_s, s.start_s, s.end_s, s.travel_time_s, s.distance_m)
            for s in stops
        ),
        travel_time_s=row.travel_time_s,
        distance_m=row.distance_m,
        return_travel_time_s=row.return_travel_time_s,
        return_distance_m=row.return_distance_m,
        member_ids=_members(row.member_ids),
        break_start_s=row.break_start_s,
        break_end_s=row.break_end_s,
    )


def _audit(row: PlanRow, entries: Sequence[AuditRow]) -> AuditRecord | None:
    if row.policy_name is None:
        return None
    return AuditRecord(
        policy_name=row.policy_name,
        policy_version=row.policy_version or "",
        policy_hash=row.policy_hash or "",
        plan_date=row.date,
        plan_timezone=row.timezone,
        entries=tuple(
            AuditEntry(
                e.case_id,
                e.included,
                e.rule,
                e.detail,
                e.local_timezone,
                tuple(e.windows),
                e.min_crew,
            )
            for e in entries
        ),
        sources=tuple(row.policy_sources),
    )


_SUMMARY_COLUMNS = (
    PlanRow.id,
    PlanRow.job_id,
    PlanRow.date,
    PlanRow.timezone,
    PlanRow.created_at,
    PlanRow.objective,
    PlanRow.solve_time_s,
    PlanRow.policy_name,
    PlanRow.policy_hash,
)


def _summary_tuple(row: PlanRow) -> tuple[Any, ...]:
    return tuple(getattr(row, column.key) for column in _SUMMARY_COLUMNS)


def _summaries(session: Session, rows: Sequence[Any]) -> tuple[PlanSummary, ...]:
    """Plan summaries with their counts of routes, visits and unassigned cases."""
    ids = [row[0] for row in rows]
    counts: dict[tuple[str, str], int] = {}
    for table, column in (
        (RouteRow, RouteRow.plan_id),
        (StopRow, StopRow.plan_id),
        (UnassignedRow, UnassignedRow.plan_id),
    ):
        for chunk in _chunks(ids):
            query = select(column, func.count()).where(column.in_(chunk)).group_by(column)
            for plan_id, count in session.execute(query):
                counts[(table.__tablename__, plan_id)] = count
    return tuple(
        PlanSummary(
            id=row[0],
            job_id=row[1],
            date=row[2],
            timezone=row[3],
            created_at=row[4],
            objective=row[5],
            solve_time_s=row[6],
            routes=counts.get(("routes", row[0]), 0),
            visits=counts.get(("stops", row[0]), 0),
            unassigned=counts.get(("unassigned", row[0]), 0),
            policy_name=row[7],
            policy_hash=row[8],
        )
        for row in rows
    )


__all__ = [
    "DEFAULT_DATABASE_URL",
    "ApiKeyRecord",
    "Base",
    "JobRecord",
    "JobStatus",
    "Page",
    "PlanSummary",
    "Record",
    "Store",
    "StoreConflictError",
    "StoredItinerary",
    "StoredOutcome",
    "StoredPlan",
    "StoredPolicy",
    "UpsertResult",
    "case_from_values",
    "case_values",
    "collector_from_values",
    "collector_values",
    "create_store_engine",
]
