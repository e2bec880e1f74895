"""Frozen, self-validating domain values: cases, collectors, problems and plans.

Times of day are integer seconds from midnight of the plan day in the plan's
time zone (``Problem.timezone``); ``Problem.to_datetime`` turns them into
timezone-aware datetimes for output. Money is in integer cents.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dispatch.errors import InvalidProblemError

DAY_S = 24 * 3600


class TravelMode(StrEnum):
    """How a collector moves between visits; each mode has its own road network."""

    WALK = "walk"
    BIKE = "bike"
    DRIVE = "drive"


class Reason(StrEnum):
    """Why a case is not on any route (most specific first)."""

    OFF_NETWORK = "OFF_NETWORK"
    """The address is farther than the snap limit from any road of every usable mode."""
    NO_QUALIFIED_COLLECTOR = "NO_QUALIFIED_COLLECTOR"
    """No collector holds all the skills the case requires."""
    NO_CREW = "NO_CREW"
    """The case needs a crew of several collectors and no crew that large holds its skills."""
    UNREACHABLE = "UNREACHABLE"
    """No qualified collector can reach the address and get back to their end point."""
    NO_FEASIBLE_TIME = "NO_FEASIBLE_TIME"
    """No qualified collector can arrive inside a window and still end the shift on time."""
    APPOINTMENT_IMPOSSIBLE = "APPOINTMENT_IMPOSSIBLE"
    """No qualified team can start the visit within the appointment's tolerance, alone or
    on today's routes (an appointment is kept whenever it fits, whatever its value)."""
    CAPACITY_EXHAUSTED = "CAPACITY_EXHAUSTED"
    """Feasible alone, but no route had room left for it (time, break, visit cap or load)."""
    NOT_WORTH_TRAVEL = "NOT_WORTH_TRAVEL"
    """It fits into a route, but the extra travel costs more than the case's value."""
    POLICY_EXCLUDED = "POLICY_EXCLUDED"
    """The compliance policy forbids a visit today (the detail names the rule)."""
    NOT_FOR_FIELD = "NOT_FOR_FIELD"
    """Triage keeps the case with calls and messages today (the detail names the rule)."""
    CASE_CLOSED = "CASE_CLOSED"
    """A field visit collected the debt in full; the case needs no more visits."""
    ADDRESS_UNVERIFIED = "ADDRESS_UNVERIFIED"
    """The last visit found the debtor moved or the address wrong, and the address has not
    changed since (the detail names the visit)."""


# Reasons given before the solve: the case never reached the solver today.
SCREENED_OUT: frozenset[Reason] = frozenset(
    {Reason.POLICY_EXCLUDED, Reason.NOT_FOR_FIELD, Reason.CASE_CLOSED, Reason.ADDRESS_UNVERIFIED}
)


def format_clock(seconds: int) -> str:
    """Format seconds from midnight as ``HH:MM`` (``24:00`` and beyond stay as hours)."""
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours:02d}:{rest // 60:02d}"


def parse_clock(text: str) -> int:
    """Parse ``HH:MM`` (or ``HH:MM:SS``) into seconds from midnight; ``24:00`` is allowed."""
    parts = text.strip().split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
        raise ValueError(f"'{text}' is not a time of day in HH:MM form")
    hours, minutes = int(parts[0]), int(parts[1])
    seconds = int(parts[2]) if len(parts) == 3 else 0
    if minutes > 59 or seconds > 59 or hours * 3600 + minutes * 60 + seconds > DAY_S:
        raise ValueError(f"'{text}' is not a time of day between 00:00 and 24:00")
    return hours * 3600 + minutes * 60 + seconds


@dataclass(frozen=True, slots=True)
class Location:
    """A WGS84 point: latitude and longitude in degrees."""

    lat: float
    lon: float

    def __post_init__(self) -> None:
        if not -90.0 <= self.lat <= 90.0:
            raise InvalidProblemError(f"latitude {self.lat} is outside -90..90")
        if not -180.0 <= self.lon <= 180.0:
            raise InvalidProblemError(f"longitude {self.lon} is outside -180..180")


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A span of the plan day, in seconds from midnight; ``start_s <= end_s``."""

    start_s: int
    end_s: int

    def __post_init__(self) -> None:
        if self.start_s < 0 or self.end_s > 2 * DAY_S:
            raise InvalidProblemError(
                f"time window {format_clock(self.start_s)}-{format_clock(self.end_s)} "
                "lies outside the plan day"
            )
        if self.end_s < self.start_s:
            raise InvalidProblemError(
                f"time window {format_clock(self.start_s)}-{format_clock(self.end_s)} "
                "ends before it starts"
            )

    @property
    def duration_s(self) -> int:
        """Length of the window in seconds."""
        return self.end_s - self.start_s

    def __str__(self) -> str:
        return f"{format_clock(self.start_s)}-{format_clock(self.end_s)}"


ALL_DAY = TimeWindow(0, DAY_S)


def _check_windows(windows: tuple[TimeWindow, ...], owner: str) -> None:
    if not windows:
        raise InvalidProblemError(f"{owner} has no time window")
    ordered = sorted(windows, key=lambda w: w.start_s)
    for before, after in itertools.pairwise(ordered):
        if after.start_s < before.end_s:
            raise InvalidProblemError(f"{owner}: time windows {before} and {after} overlap")


@dataclass(frozen=True, slots=True)
class Case:
    """An overdue account that may get a field visit today.

    Parameters
    ----------
    id
        The case-management system's id; unique within a problem.
    location
        Where the visit happens (geocoded address).
    address
        Postal address as shown to the collector.
    days_past_due
        Days since the oldest unpaid instalment fell due (>= 0).
    amount_cents
        Amount owed, in cents (>= 0).
    value_cents
        What visiting today is worth (for example expected recovery), in cents.
        Dropping the case costs this much in the objective. Default: the amount.
    skills
        Skills the visiting collector must all hold (for example ``legal``).
    service_s
        Time at the door in seconds (> 0).
    windows
        One or more non-overlapping windows in which the visit may start.
    preferred_collector
        Id of the collector who should preferably visit (continuity), if any.
    flags
        Case flags from the case-management system (for example ``dispute``);
        a compliance policy may block visits for some of them.
    debtor_name, phone, national_id
        Personal data from the case system. Collector-facing output shows
        them only as the policy's data-exposure profile allows.
    min_crew
        How many collectors must make the visit together (>= 1); a case with
        2 or more may only be visited by a crew at least that large.
    appointment_s
        Agreed visit time, in seconds from midnight, or None. The visit then
        starts within ``appointment_tolerance_s`` of it (and inside a window)
        or not at all.
    appointment_tolerance_s
        How far the visit may start before or after the appointment (>= 0).
    load
        Units of a collector's ``capacity`` the visit uses up (>= 0), for
        example documents to hand over or equipment to leave. Default 0: the
        visit uses none, and a capacity does not bind.
    """

    id: str
    location: Location
    address: str = ""
    days_past_due: int = 0
    amount_cents: int = 0
    value_cents: int | None = None
    skills: frozenset[str] = frozenset()
    service_s: int = 15 * 60
    windows: tuple[TimeWindow, ...] = (ALL_DAY,)
    preferred_collector: str | None = None
    flags: frozenset[str] = frozenset()
    debtor_name: str = ""
    phone: str = ""
    national_id: str = ""
    min_crew: int = 1
    appointment_s: int | None = None
    appointment_tolerance_s: int = 600
    load: int = 0

    def __post_init__(self) -> None:
        if not self.id or not self.id.strip():
            raise InvalidProblemError("case id is empty")
        owner = f"case {self.id}"
        if self.days_past_due < 0:
            raise InvalidProblemError(f"{owner}: days past due {self.days_past_due} is negative")
        if self.amount_cents < 0:
            raise InvalidProblemError(f"{owner}: amount {self.amount_cents} cents is negative")
        if self.value_cents is None:
            object.__setattr__(self, "value_cents", self.amount_cents)
        elif self.value_cents < 0:
            raise InvalidProblemError(f"{owner}: value {self.value_cents} cents is negative")
        if self.service_s <= 0:
            raise InvalidProblemError(f"{owner}: service time {self.service_s} s must be positive")
        object.__setattr__(self, "skills", frozenset(self.skills))
        object.__setattr__(self, "flags", frozenset(self.flags))
        object.__setattr__(self, "windows", tuple(sorted(self.windows, key=lambda w: w.start_s)))
        _check_windows(self.windows, owner)
        if self.min_crew < 1:
            raise InvalidProblemError(f"{owner}: crew size {self.min_crew} must be at least 1")
        if self.appointment_s is not None and not 0 <= self.appointment_s <= 2 * DAY_S:
            raise InvalidProblemError(
                f"{owner}: appointment {format_clock(self.appointment_s)} lies outside the plan day"
            )
        if self.appointment_tolerance_s < 0:
            raise InvalidProblemError(
                f"{owner}: appointment tolerance {self.appointment_tolerance_s} s is negative"
            )
        if self.load < 0:
            raise InvalidProblemError(f"{owner}: load {self.load} is negative")

    @property
    def start_windows(self) -> tuple[TimeWindow, ...]:
        """Spans in which the visit may start: the windows, cut to the appointment's tolerance.

        Empty when an appointment lies outside every window.
        """
        if self.appointment_s is None:
            return self.windows
        earliest_s = max(0, self.appointment_s - self.appointment_tolerance_s)
        latest_s = min(2 * DAY_S, self.appointment_s + self.appointment_tolerance_s)
        return tuple(
            TimeWindow(max(w.start_s, earliest_s), min(w.end_s, latest_s))
            for w in self.windows
            if w.start_s <= latest_s and earliest_s <= w.end_s
        )

    @property
    def value(self) -> int:
        """Value in cents (never None after validation)."""
        assert self.value_cents is not None
        return self.value_cents


@dataclass(frozen=True, slots=True)
class Collector:
    """A field collector with a shift, skills, a travel mode and a start and end point.

    ``break_s`` > 0 asks for a break of that many seconds (lunch), taken in
    one piece inside ``break_window`` and inside the shift, at a door or on
    the way between visits, never during one. The part of the window inside
    the shift must be at least ``break_s`` long.

    ``capacity`` bounds the total ``Case.load`` of the day's visits (>= 0);
    None (the default) sets no bound.
    """

    id: str
    name: str
    start: Location
    end: Location
    shift: TimeWindow
    skills: frozenset[str] = frozenset()
    max_visits: int | None = None
    mode: TravelMode = TravelMode.DRIVE
    break_window: TimeWindow | None = None
    break_s: int = 0
    capacity: int | None = None

    def __post_init__(self) -> None:
        if not self.id or not self.id.strip():
            raise InvalidProblemError("collector id is empty")
        owner = f"collector {self.id}"
        if self.shift.duration_s <= 0:
            raise InvalidProblemError(f"{owner}: shift {self.shift} has no length")
        if self.max_visits is not None and self.max_visits < 0:
            raise InvalidProblemError(f"{owner}: maximum visits {self.max_visits} is negative")
        if self.capacity is not None and self.capacity < 0:
            raise InvalidProblemError(f"{owner}: capacity {self.capacity} is negative")
        try:
            object.__setattr__(self, "mode", TravelMode(self.mode))
        except ValueError:
            modes = ", ".join(m.value for m in TravelMode)
            raise InvalidProblemError(
                f"{owner}: travel mode '{self.mode}' is not one of {modes}"
            ) from None
        object.__setattr__(self, "skills", frozenset(self.skills))
        if self.break_s < 0:
            raise InvalidProblemError(f"{owner}: break of {self.break_s} s is negative")
        if self.break_s > 0:
            if self.break_window is None:
                raise InvalidProblemError(f"{owner}: a break of {self.break_s} s needs a window")
            if _break_span(self.break_window, self.shift, self.break_s) is None:
                raise InvalidProblemError(
                    f"{owner}: a break of {self.break_s // 60} min does not fit into break "
                    f"window {self.break_window} within shift {self.shift}"
                )

    def can_serve(self, case: Case) -> bool:
        """Whether this collector holds every skill the case requires."""
        return case.skills <= self.skills


def _break_span(window: TimeWindow, shift: TimeWindow, break_s: int) -> TimeWindow | None:
    """The part of a break window inside a shift, or None when the break does not fit in it."""
    start_s, end_s = max(window.start_s, shift.start_s), min(window.end_s, shift.end_s)
    if end_s - start_s < break_s:
        return None
    return TimeWindow(start_s, end_s)


@dataclass(frozen=True, slots=True)
class Crew:
    """Collectors who work the day together: one route, every member at every visit.

    A crew meets at its first member's start, travels in the mode all its
    members share, and ends at its first member's end. Its shift is the
    overlap of its members' shifts, its skills the union of theirs, its visit
    cap the smallest of theirs, and its break (if any member has one) the
    longest of their breaks, inside the overlap of their break windows.
    """

    id: str
    member_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.id or not self.id.strip():
            raise InvalidProblemError("crew id is empty")
        object.__setattr__(self, "member_ids", tuple(self.member_ids))
        if len(self.member_ids) < 2:
            raise InvalidProblemError(f"crew {self.id} has fewer than two members")
        if len(set(self.member_ids)) != len(self.member_ids):
            raise InvalidProblemError(f"crew {self.id} names a member more than once")


@dataclass(frozen=True, slots=True)
class Team:
    """Who works one route: a collector alone, or a crew (see ``Crew``).

    ``id`` is the id a route of this team carries as ``Route.collector_id``:
    the collector's own, or for a crew its first member's. ``position`` is
    that collector's position in ``Problem.collectors`` (the team starts and
    ends at that collector's points). ``break_window`` is where the break must
    lie (already cut to the shift); it is None when no break is due.
    ``capacity`` bounds the total load of the team's visits (None: no bound).
    """

    id: str
    crew_id: str | None
    members: tuple[Collector, ...]
    position: int
    mode: TravelMode
    shift: TimeWindow
    skills: frozenset[str]
    max_visits: int | None
    break_window: TimeWindow | None
    break_s: int
    capacity: int | None = None

    @property
    def member_ids(self) -> tuple[str, ...]:
        """Ids of the collectors on this team, the first member first."""
        return tuple(k.id for k in self.members)

    @property
    def size(self) -> int:
        """Number of collectors on this team."""
        return len(self.members)

    def can_serve(self, case: Case) -> bool:
        """Whether the team holds every skill the case requires and is large enough."""
        return case.skills <= self.skills and self.size >= case.min_crew


def _team(members: tuple[Collector, ...], position: int, crew_id: str | None) -> Team:
    """Combine collectors into a team; raise when they cannot work together."""
    owner = f"crew {crew_id}"
    modes = {k.mode for k in members}
    if len(modes) > 1:
        listed = ", ".join(f"{k.id} ({k.mode})" for k in members)
        raise InvalidProblemError(f"{owner}: members travel in different modes: {listed}")
    shift_start_s = max(k.shift.start_s for k in members)
    shift_end_s = min(k.shift.end_s for k in members)
    if shift_end_s <= shift_start_s:
        raise InvalidProblemError(f"{owner}: the members' shifts do not overlap")
    shift = TimeWindow(shift_start_s, shift_end_s)
    caps = [k.max_visits for k in members if k.max_visits is not None]
    capacities = [k.capacity for k in members if k.capacity is not None]
    breaking = [k for k in members if k.break_s > 0]
    break_s = max((k.break_s for k in breaking), default=0)
    break_window = None
    if breaking:
        windows = [k.break_window for k in breaking if k.break_window is not None]
        start_s = max(w.start_s for w in windows)
        end_s = min(w.end_s for w in windows)
        if end_s >= start_s:
            break_window = _break_span(TimeWindow(start_s, end_s), shift, break_s)
        if break_window is None:
            raise InvalidProblemError(
                f"{owner}: a break of {break_s // 60} min fits into no span shared by the "
                f"members' break windows within their common shift {shift}"
            )
    return Team(
        id=members[0].id,
        crew_id=crew_id,
        members=members,
        position=position,
        mode=members[0].mode,
        shift=shift,
        skills=frozenset().union(*(k.skills for k in members)),
        max_visits=min(caps) if caps else None,
        break_window=break_window,
        break_s=break_s,
        capacity=min(capacities) if capacities else None,
    )


@dataclass(frozen=True)
class Problem:
    """One plan day: the cases to consider and the collectors on duty.

    Travel matrices index points in a fixed order: every case (in ``cases``
    order), then every collector's start, then every collector's end
    (see ``points``, ``start_index`` and ``end_index``).
    """

    date: dt.date
    timezone: str
    cases: tuple[Case, ...]
    collectors: tuple[Collector, ...]
    crews: tuple[Crew, ...] = ()
    _positions: dict[str, int] = field(init=False, repr=False, compare=False)
    _teams: tuple[Team, ...] = field(init=False, repr=False, compare=False)
    _team_of: dict[str, Team] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cases", tuple(self.cases))
        object.__setattr__(self, "collectors", tuple(self.collectors))
        object.__setattr__(self, "crews", tuple(self.crews))
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidProblemError(f"time zone '{self.timezone}' is not known") from None
        _check_unique((c.id for c in self.cases), "case")
        _check_unique((c.id for c in self.collectors), "collector")
        object.__setattr__(self, "_positions", {c.id: i for i, c in enumerate(self.cases)})
        self._form_teams()

    def _form_teams(self) -> None:
        """Check the crews and group every collector into exactly one team."""
        _check_unique((w.id for w in self.crews), "crew")
        by_id = {k.id: (p, k) for p, k in enumerate(self.collectors)}
        crew_of: dict[str, Crew] = {}
        for crew in self.crews:
            if crew.id in by_id:
                raise InvalidProblemError(f"crew id '{crew.id}' is also a collector's id")
            for member in crew.member_ids:
                if member not in by_id:
                    raise InvalidProblemError(
                        f"crew {crew.id}: collector '{member}' is not on duty"
                    )
                if member in crew_of:
                    raise InvalidProblemError(
                        f"collector {member} is in crews {crew_of[member].id} and {crew.id}"
                    )
                crew_of[member] = crew
        teams: list[Team] = []
        team_of: dict[str, Team] = {}
        for position, collector in enumerate(self.collectors):
            joined = crew_of.get(collector.id)
            if joined is None:
                team = _team((collector,), position, None)
            elif joined.member_ids[0] == collector.id:
                members = tuple(by_id[m][1] for m in joined.member_ids)
                team = _team(members, position, joined.id)
                team_of[joined.id] = team
            else:
                continue
            teams.append(team)
            for worker in team.members:
                team_of[worker.id] = team
        object.__setattr__(self, "_teams", tuple(teams))
        object.__setattr__(self, "_team_of", team_of)

    @property
    def tz(self) -> ZoneInfo:
        """The plan's time zone."""
        return ZoneInfo(self.timezone)

    def to_datetime(self, seconds: int) -> dt.datetime:
        """Turn seconds from the plan day's midnight into an aware datetime."""
        midnight = dt.datetime.combine(self.date, dt.time(0), tzinfo=self.tz)
        # Add in UTC so that a daylight-saving change during the day is counted right.
        utc = midnight.astimezone(dt.UTC) + dt.timedelta(seconds=int(seconds))
        return utc.astimezone(self.tz)

    def points(self) -> tuple[Location, ...]:
        """All locations in matrix order: cases, collector starts, collector ends."""
        return (
            tuple(c.location for c in self.cases)
            + tuple(k.start for k in self.collectors)
            + tuple(k.end for k in self.collectors)
        )

    def case_index(self, case_id: str) -> int:
        """Matrix index of a case."""
        return self._positions[case_id]

    def start_index(self, collector_position: int) -> int:
        """Matrix index of the start of the collector at this position in ``collectors``."""
        return len(self.cases) + collector_position

    def end_index(self, collector_position: int) -> int:
        """Matrix index of the end of the collector at this position in ``collectors``."""
        return len(self.cases) + len(self.collectors) + collector_position

    def case(self, case_id: str) -> Case:
        """The case with this id."""
        return self.cases[self._positions[case_id]]

    def collector(self, collector_id: str) -> Collector:
        """The collector with this id."""
        for collector in self.collectors:
            if collector.id == collector_id:
                return collector
        raise KeyError(collector_id)

    def collector_position(self, collector_id: str) -> int:
        """Position of the collector in ``collectors``."""
        for position, collector in enumerate(self.collectors):
            if collector.id == collector_id:
                return position
        raise KeyError(collector_id)

    def teams(self) -> tuple[Team, ...]:
        """Who works a route today: each crew once and every collector not in a crew.

        In ``collectors`` order of each team's first member.
        """
        return self._teams

    def team(self, some_id: str) -> Team:
        """The team of a route id, a crew id, or any collector's id."""
        return self._team_of[some_id]

    def crew_of(self, collector_id: str) -> Crew | None:
        """The crew this collector works in today, if any."""
        crew_id = self._team_of[collector_id].crew_id
        if crew_id is None:
            return None
        return next(w for w in self.crews if w.id == crew_id)

    def modes(self) -> tuple[TravelMode, ...]:
        """Travel modes used by at least one collector, in a stable order."""
        used = {k.mode for k in self.collectors}
        return tuple(m for m in TravelMode if m in used)


def _check_unique(ids: Iterable[str], kind: str) -> None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            raise InvalidProblemError(f"{kind} id '{item}' appears more than once")
        seen.add(item)


@dataclass(frozen=True, slots=True)
class Stop:
    """A timed visit on a route.

    ``arrival_s`` is when the collector reaches the door, ``start_s`` when the
    visit starts (after waiting ``wait_s`` for the window to open) and
    ``end_s`` when it ends. ``travel_time_s`` and ``distance_m`` describe the
    leg that leads to this stop.
    """

    case_id: str
    arrival_s: int
    start_s: int
    end_s: int
    travel_time_s: int
    distance_m: int

    @property
    def wait_s(self) -> int:
        """Seconds waited at the door before the window opens."""
        return self.start_s - self.arrival_s


@dataclass(frozen=True, slots=True)
class Route:
    """One collector's day: leave the start, visit stops in order, reach the end.

    A crew's route carries its first member's id as ``collector_id`` and all
    members (first member first) in ``member_ids``; a lone collector's route
    leaves ``member_ids`` empty. ``break_start_s`` and ``break_end_s`` say
    when the break is taken, if one is due: before leaving, at a door, on the
    way between two points, or after reaching the end, never during a visit.
    """

    collector_id: str
    start_s: int
    end_s: int
    stops: tuple[Stop, ...]
    travel_time_s: int
    distance_m: int
    return_travel_time_s: int = 0
    return_distance_m: int = 0
    member_ids: tuple[str, ...] = ()
    break_start_s: int | None = None
    break_end_s: int | None = None

    @property
    def case_ids(self) -> tuple[str, ...]:
        """Visited case ids in order."""
        return tuple(s.case_id for s in self.stops)

    @property
    def members(self) -> tuple[str, ...]:
        """Ids of every collector on this route (``member_ids``, or just ``collector_id``)."""
        return self.member_ids or (self.collector_id,)


@dataclass(frozen=True, slots=True)
class Unassigned:
    """A case not on any route, with the reason code and a sentence for people."""

    case_id: str
    reason: Reason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    """The day's routes and every case that is not on one."""

    routes: tuple[Route, ...]
    unassigned: tuple[Unassigned, ...]
    objective: int = 0
    solve_time_s: float = 0.0
    stats: dict[str, float] = field(default_factory=dict)

    def route_of(self, collector_id: str) -> Route | None:
        """The route of a collector, if any."""
        for route in self.routes:
            if route.collector_id == collector_id:
                return route
        return None

    def routes_of_member(self, collector_id: str) -> tuple[Route, ...]:
        """Every route this collector works on, alone or as a crew member."""
        return tuple(r for r in self.routes if collector_id in r.members)

    def assigned_case_ids(self) -> set[str]:
        """Ids of the cases on some route."""
        return {s.case_id for r in self.routes for s in r.stops}
