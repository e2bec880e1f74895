"""Compliance policies: the YAML schema, its validation, the shipped presets and combining them.

A policy says when, where and how often a case may be visited and what a
collector may see. Presets are the YAML files beside this module; each cites
its sources and marks company-policy defaults. ``dispatch.compliance``
enforces a policy on a plan day.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

import holidays
import yaml

from dispatch.errors import DispatchError
from dispatch.model import DAY_S, TimeWindow, parse_clock

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_NAMES: tuple[str, ...] = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
)

# Case flags a policy may block visits for; a typo in a policy must not silently
# leave a disputed or vulnerable debtor visitable, so unknown names are errors.
KNOWN_FLAGS: frozenset[str] = frozenset(
    {
        "dispute",
        "cease_contact",
        "attorney",
        "bankruptcy",
        "deceased",
        "vulnerable",
        "bereavement",
        "calamity",
        "wedding",
        "religious_festival",
    }
)

# Kinds of place a visit may happen at; "agreed_place" is a place the debtor chose
# or asked for (which is how a requested workplace visit is recorded).
PLACES: tuple[str, ...] = ("residence", "workplace", "agreed_place", "other")

CONFIDENCE_LEVELS: tuple[str, ...] = ("H", "M", "L", "UNCONFIRMED")
STATUSES: tuple[str, ...] = ("in_force", "draft", "company_policy")

RULE_KEYS: tuple[str, ...] = (
    "visit_windows",
    "blocked_weekdays",
    "holiday_calendars",
    "blocked_flags",
    "visit_caps",
    "min_gap_hours",
    "promise_cool_off",
    "min_crew",
    "visit_places",
    "data_exposure",
)
_HEADER_KEYS: tuple[str, ...] = (
    "name",
    "version",
    "title",
    "status",
    "jurisdiction",
    "sources",
    "basis",
)


class PolicyError(DispatchError, ValueError):
    """A policy file is missing, unreadable or breaks the schema; ``problems`` lists each fault."""

    def __init__(self, source: str, problems: Sequence[str]):
        self.source = source
        self.problems = list(problems)
        super().__init__("\n".join(f"policy {source}: {p}" for p in self.problems))


class Exposure(StrEnum):
    """How much of a field a collector may see, from most to least revealing."""

    FULL = "full"
    MASKED = "masked"
    HIDDEN = "hidden"


_EXPOSURE_RANK = {Exposure.FULL: 0, Exposure.MASKED: 1, Exposure.HIDDEN: 2}

# Fields of collector-facing output, the levels each may take, and the default.
# The national id has a single allowed level: collectors never see it.
EXPOSURE_FIELDS: dict[str, tuple[tuple[Exposure, ...], Exposure]] = {
    "case_id": ((Exposure.FULL,), Exposure.FULL),
    "name": ((Exposure.FULL, Exposure.MASKED, Exposure.HIDDEN), Exposure.FULL),
    "address": ((Exposure.FULL, Exposure.HIDDEN), Exposure.FULL),
    "phone": ((Exposure.FULL, Exposure.MASKED, Exposure.HIDDEN), Exposure.MASKED),
    "email": ((Exposure.FULL, Exposure.MASKED, Exposure.HIDDEN), Exposure.MASKED),
    "national_id": ((Exposure.HIDDEN,), Exposure.HIDDEN),
    "amount_cents": ((Exposure.FULL, Exposure.HIDDEN), Exposure.FULL),
    "days_past_due": ((Exposure.FULL, Exposure.HIDDEN), Exposure.FULL),
    "contacts": ((Exposure.FULL, Exposure.HIDDEN), Exposure.HIDDEN),
    "location_history": ((Exposure.FULL, Exposure.HIDDEN), Exposure.HIDDEN),
    "notes": ((Exposure.FULL, Exposure.HIDDEN), Exposure.HIDDEN),
}


# ---------------------------------------------------------------------------
# Policy values
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    """A document a policy rests on, with how surely its content was confirmed.

    ``confidence`` follows the research note: ``H`` primary text seen, ``M``
    reliable secondary source, ``L`` summary only, ``UNCONFIRMED`` not found.
    """

    id: str
    ref: str
    url: str = ""
    confidence: str = "UNCONFIRMED"
    policy: str = ""

    def __post_init__(self) -> None:
        if self.confidence not in CONFIDENCE_LEVELS:
            raise ValueError(
                f"source {self.id}: confidence '{self.confidence}' is not one of "
                + ", ".join(CONFIDENCE_LEVELS)
            )


@dataclass(frozen=True, slots=True)
class Basis:
    """Why a rule of a policy has its value: cited sources, or a company-policy default."""

    rule: str
    sources: tuple[str, ...] = ()
    confidence: str | None = None
    company_policy: bool = False
    note: str = ""
    policy: str = ""

    def __post_init__(self) -> None:
        if self.rule not in RULE_KEYS:
            raise ValueError(f"basis names unknown rule '{self.rule}'")
        if not self.company_policy and not self.sources:
            raise ValueError(f"basis of {self.rule}: cite a source or mark it company_policy")
        if self.confidence is not None and self.confidence not in CONFIDENCE_LEVELS:
            raise ValueError(f"basis of {self.rule}: confidence '{self.confidence}' is unknown")


@dataclass(frozen=True, slots=True)
class VisitCap:
    """At most ``max_visits`` visits per case in any ``period_days`` consecutive days.

    ``counts`` is ``contacted`` (only visits where someone was spoken to count,
    as in Massachusetts) or ``attempted`` (every visit counts).
    """

    max_visits: int
    period_days: int
    counts: str = "attempted"

    def __post_init__(self) -> None:
        if self.max_visits < 0:
            raise ValueError(f"visit cap {self.max_visits} is negative")
        if self.period_days < 1:
            raise ValueError(f"visit cap period {self.period_days} days is shorter than a day")
        if self.counts not in ("contacted", "attempted"):
            raise ValueError(f"visit cap counts '{self.counts}': use contacted or attempted")

    def __str__(self) -> str:
        kind = "visit(s) with contact" if self.counts == "contacted" else "visit(s)"
        return f"at most {self.max_visits} {kind} per {self.period_days} days"

    def dominates(self, other: VisitCap) -> bool:
        """Whether obeying this cap always obeys ``other`` too."""
        counts_ok = self.counts == "attempted" or other.counts == "contacted"
        return (
            self.max_visits <= other.max_visits
            and self.period_days >= other.period_days
            and counts_ok
        )


@dataclass(frozen=True)
class ExposureProfile:
    """Which fields of a case a collector may see, and how (full, masked or hidden).

    Fields the profile does not state take the defaults of ``EXPOSURE_FIELDS``;
    fields not in ``EXPOSURE_FIELDS`` are never shown.
    """

    levels: tuple[tuple[str, Exposure], ...] = ()

    def __post_init__(self) -> None:
        stated = dict(self.levels)
        full: dict[str, Exposure] = {}
        for name, (allowed, default) in EXPOSURE_FIELDS.items():
            level = Exposure(stated.pop(name, default))
            if level not in allowed:
                raise ValueError(
                    f"data exposure of {name}: '{level}' is not allowed "
                    f"(allowed: {', '.join(allowed)})"
                )
            full[name] = level
        if stated:
            raise ValueError(f"data exposure names unknown field(s): {', '.join(sorted(stated))}")
        object.__setattr__(self, "levels", tuple(sorted(full.items())))

    def level(self, name: str) -> Exposure:
        """Return the exposure of a field; unknown fields are hidden."""
        return dict(self.levels).get(name, Exposure.HIDDEN)

    def strictest(self, other: ExposureProfile) -> ExposureProfile:
        """Return the field-by-field most restrictive of two profiles."""
        mine, theirs = dict(self.levels), dict(other.levels)
        return ExposureProfile(
            tuple(
                (name, max(mine[name], theirs[name], key=_EXPOSURE_RANK.__getitem__))
                for name in mine
            )
        )


_EVERY_HOUR: tuple[tuple[TimeWindow, ...], ...] = tuple((TimeWindow(0, DAY_S),) for _ in WEEKDAYS)


@dataclass(frozen=True)
class Policy:
    """A compliance policy: when, where and how often a case may be visited.

    Parameters
    ----------
    name, version, title, status, jurisdiction
        Identity for the audit; ``status`` is ``in_force``, ``draft`` or
        ``company_policy`` (joined with ``+`` for combined policies).
    visit_windows
        Seven tuples of windows (Monday first) in the debtor's local wall-clock
        seconds from midnight; the whole visit, not only its start, must fit.
    blocked_weekdays
        Local weekdays (0 = Monday) with no visits.
    holiday_calendars
        ``holidays`` package calendars (``FI``, ``US-MA``) whose days have no visits.
    blocked_flags
        Case flags that block visits.
    visit_caps
        Caps on visits per case over rolling periods.
    min_gap_s
        Minimum time between two visits to a case, in seconds.
    promise_grace_days
        After a promise to pay, no visit until its due date plus this many
        days; ``None`` when promises do not block visits.
    min_crew
        Collectors who must go together on every visit.
    visit_places
        Kinds of place (``PLACES``) a visit may happen at.
    exposure
        What collector-facing output may show.
    sources, basis
        Documents the policy rests on and, per rule, its source or a
        company-policy mark.
    """

    name: str
    version: str
    title: str = ""
    status: str = "company_policy"
    jurisdiction: str = ""
    visit_windows: tuple[tuple[TimeWindow, ...], ...] = _EVERY_HOUR
    blocked_weekdays: frozenset[int] = frozenset()
    holiday_calendars: tuple[str, ...] = ()
    blocked_flags: frozenset[str] = frozenset()
    visit_caps: tuple[VisitCap, ...] = ()
    min_gap_s: int = 0
    promise_grace_days: int | None = None
    min_crew: int = 1
    visit_places: frozenset[str] = frozenset(PLACES)
    exposure: ExposureProfile = field(default_factory=ExposureProfile)
    sources: tuple[Source, ...] = ()
    basis: tuple[Basis, ...] = ()

    def __post_init__(self) -> None:
        owner = f"policy {self.name}"
        if len(self.visit_windows) != 7:
            raise ValueError(f"{owner}: visit windows must list 7 weekdays")
        for day, windows in zip(WEEKDAYS, self.visit_windows, strict=True):
            ordered = sorted(windows, key=lambda w: w.start_s)
            for before, after in itertools.pairwise(ordered):
                if after.start_s < before.end_s:
                    raise ValueError(f"{owner}: {day} windows {before} and {after} overlap")
            if any(w.end_s > DAY_S for w in windows):
                raise ValueError(f"{owner}: {day} windows end after 24:00")
        object.__setattr__(
            self,
            "visit_windows",
            tuple(tuple(sorted(ws, key=lambda w: w.start_s)) for ws in self.visit_windows),
        )
        if not set(self.blocked_weekdays) <= set(range(7)):
            raise ValueError(f"{owner}: blocked weekdays must be 0 (Monday) to 6 (Sunday)")
        unknown = set(self.blocked_flags) - KNOWN_FLAGS
        if unknown:
            raise ValueError(f"{owner}: unknown flag(s) {', '.join(sorted(unknown))}")
        if not set(self.visit_places) <= set(PLACES):
            raise ValueError(f"{owner}: visit places must be among {', '.join(PLACES)}")
        if self.min_gap_s < 0:
            raise ValueError(f"{owner}: minimum gap {self.min_gap_s} s is negative")
        if self.promise_grace_days is not None and self.promise_grace_days < 0:
            raise ValueError(f"{owner}: promise grace {self.promise_grace_days} days is negative")
        if self.min_crew < 1:
            raise ValueError(f"{owner}: minimum crew {self.min_crew} is below 1")
        object.__setattr__(self, "blocked_weekdays", frozenset(self.blocked_weekdays))
        object.__setattr__(self, "blocked_flags", frozenset(self.blocked_flags))
        object.__setattr__(self, "visit_places", frozenset(self.visit_places))
        object.__setattr__(self, "holiday_calendars", tuple(self.holiday_calendars))
        object.__setattr__(self, "visit_caps", tuple(self.visit_caps))

    def windows_on(self, day: dt.date) -> tuple[TimeWindow, ...]:
        """Legal windows of a local date, ignoring blocked days and holidays."""
        return self.visit_windows[day.weekday()]

    def basis_of(self, rule: str) -> tuple[Basis, ...]:
        """Return the basis entries stated for a rule."""
        return tuple(b for b in self.basis if b.rule == rule)

    def to_dict(self) -> dict[str, Any]:
        """Canonical content as plain JSON-ready values (the input of ``content_hash``)."""
        gap_h = self.min_gap_s / 3600
        return {
            "name": self.name,
            "version": self.version,
            "title": self.title,
            "status": self.status,
            "jurisdiction": self.jurisdiction,
            "visit_windows": {
                day: [str(w) for w in windows]
                for day, windows in zip(WEEKDAYS, self.visit_windows, strict=True)
            },
            "blocked_weekdays": [WEEKDAYS[d] for d in sorted(self.blocked_weekdays)],
            "holiday_calendars": list(self.holiday_calendars),
            "blocked_flags": sorted(self.blocked_flags),
            "visit_caps": [
                {"max_visits": c.max_visits, "period_days": c.period_days, "counts": c.counts}
                for c in sorted(self.visit_caps, key=lambda c: (c.period_days, c.max_visits))
            ],
            "min_gap_hours": int(gap_h) if gap_h.is_integer() else gap_h,
            "promise_cool_off": (
                None
                if self.promise_grace_days is None
                else {"grace_days": self.promise_grace_days}
            ),
            "min_crew": self.min_crew,
            "visit_places": [p for p in PLACES if p in self.visit_places],
            "data_exposure": {name: str(level) for name, level in self.exposure.levels},
            "sources": [
                {"id": s.id, "policy": s.policy, "ref": s.ref, "url": s.url,
                 "confidence": s.confidence}
                for s in self.sources
            ],
            "basis": [
                {"rule": b.rule, "policy": b.policy, "sources": list(b.sources),
                 "confidence": b.confidence, "company_policy": b.company_policy,
                 "note": b.note}
                for b in self.basis
            ],
        }  # fmt: skip

    @functools.cached_property
    def content_hash(self) -> str:
        """SHA-256 (hex) of the canonical content: equal rules give equal hashes."""
        text = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------
# Loading and validating policy files
# ---------------------------------------------------------------------------


def preset_names() -> tuple[str, ...]:
    """Names of the shipped presets (``load_policy`` also takes ``a+b`` to combine them)."""
    folder = resources.files(__name__)
    return tuple(
        sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))
    )


def load_policy(source: str | Path) -> Policy:
    """Load a policy from a YAML file or by preset name.

    Parameters
    ----------
    source
        A path to a ``.yaml``/``.yml`` file, a preset name (see
        ``preset_names``), or preset names joined by ``+`` (``us-federal+us-ma``),
        which are combined with ``combine_policies``.

    Raises
    ------
    PolicyError
        The file is missing or not valid YAML, the preset is unknown, or a
        value breaks the schema; every problem names its key path.
    """
    text = str(source)
    if isinstance(source, Path) or text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(source)
        if not path.is_file():
            raise PolicyError(path.name, [f"file {path} does not exist"])
        return parse_policy(path.read_text(encoding="utf-8"), source=path.name)
    names = [part.strip() for part in text.split("+")]
    known = preset_names()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise PolicyError(
            text,
            [f"unknown policy preset '{n}'; presets: {', '.join(known)}" for n in unknown],
        )
    policies = [_load_preset(n) for n in names]
    return policies[0] if len(policies) == 1 else combine_policies(*policies)


@functools.cache
def _load_preset(name: str) -> Policy:
    resource = resources.files(__name__).joinpath(f"{name}.yaml")
    return parse_policy(resource.read_text(encoding="utf-8"), source=f"{name}.yaml")


def parse_policy(text: str, *, source: str = "<text>") -> Policy:
    """Parse and validate policy YAML; ``source`` names the file in error messages."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(source, [f"not valid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        raise PolicyError(source, ["the file must hold a mapping of policy keys"])
    reader = _PolicyReader()
    policy = reader.read(data)
    if reader.problems or policy is None:
        raise PolicyError(source, reader.problems)
    return policy


_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_WINDOW_RE = re.compile(r"^\s*([^-\s]+)\s*-\s*([^-\s]+)\s*$")


class _PolicyReader:
    """Collects every schema problem of one policy document, each with its key path."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, problem: str) -> None:
        self.problems.append(f"{path}: {problem}")

    def read(self, data: dict[Any, Any]) -> Policy | None:
        for key in data:
            if key not in _HEADER_KEYS and key not in RULE_KEYS:
                self.fail(
                    str(key), "unknown key; known keys: " + ", ".join(_HEADER_KEYS + RULE_KEYS)
                )
        name = self.text(data, "name", required=True)
        if name and not _NAME_RE.match(name):
            self.fail("name", f"'{name}' must be lower-case letters, digits, '.', '_' or '-'")
        version = self.text(data, "version", required=True)
        status = self.text(data, "status") or "company_policy"
        if status not in STATUSES:
            self.fail("status", f"'{status}' is not one of {', '.join(STATUSES)}")
        sources = self.sources(data.get("sources"), name or "")
        values: dict[str, Any] = {
            "visit_windows": self.windows(data.get("visit_windows")),
            "blocked_weekdays": self.weekdays(data.get("blocked_weekdays")),
            "holiday_calendars": self.calendars(data.get("holiday_calendars")),
            "blocked_flags": self.flags(data.get("blocked_flags")),
            "visit_caps": self.caps(data.get("visit_caps")),
            "min_gap_s": self.gap(data.get("min_gap_hours")),
            "promise_grace_days": self.cool_off(data.get("promise_cool_off")),
            "min_crew": self.crew(data.get("min_crew")),
            "visit_places": self.places(data.get("visit_places")),
            "exposure": self.exposure(data.get("data_exposure")),
        }
        basis = self.basis(data.get("basis"), {s.id for s in sources}, name or "")
        if self.problems:
            return None
        return Policy(
            name=name or "",
            version=version or "",
            title=self.text(data, "title") or "",
            status=status,
            jurisdiction=self.text(data, "jurisdiction") or "",
            sources=sources,
            basis=basis,
            **values,
        )

    def text(self, data: dict[Any, Any], key: str, *, required: bool = False) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                self.fail(key, "is required")
            return None
        if isinstance(value, dt.date):
            return value.isoformat()
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            self.fail(key, f"expected text, got {value!r}")
            return None
        return str(value).strip()

    def listed(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(path, f"expected a list, got {value!r}")
            return []
        return value

    def windows(self, value: Any) -> tuple[tuple[TimeWindow, ...], ...]:
        if value is None:
            return _EVERY_HOUR
        if not isinstance(value, dict):
            self.fail(
                "visit_windows", "expected a mapping of weekday (mon..sun or daily) to windows"
            )
            return _EVERY_HOUR
        parsed: dict[str, tuple[TimeWindow, ...]] = {}
        for key, items in value.items():
            path = f"visit_windows.{key}"
            if key != "daily" and key not in WEEKDAYS:
                self.fail(path, "unknown day; use daily or mon, tue, wed, thu, fri, sat, sun")
                continue
            windows = [
                w
                for i, item in enumerate(self.listed(items, path))
                if (w := self.window(item, f"{path}[{i}]")) is not None
            ]
            ordered = sorted(windows, key=lambda w: w.start_s)
            for before, after in itertools.pairwise(ordered):
                if after.start_s < before.end_s:
                    self.fail(path, f"windows {before} and {after} overlap")
            parsed[str(key)] = tuple(ordered)
        default = parsed.get("daily", (TimeWindow(0, DAY_S),))
        return tuple(parsed.get(day, default) for day in WEEKDAYS)

    def window(self, item: Any, path: str) -> TimeWindow | None:
        match = _WINDOW_RE.match(item) if isinstance(item, str) else None
        if match is None:
            self.fail(path, f"{item!r} is not a window like '08:00-20:00'")
            return None
        bounds = []
        for part in match.groups():
            try:
                bounds.append(parse_clock(part))
            except ValueError:
                self.fail(path, f"'{part}' is not a time of day")
        if len(bounds) != 2:
            return None
        start_s, end_s = bounds
        if end_s <= start_s:
            self.fail(
                path,
                f"'{item}' ends before it starts; windows may not cross midnight "
                "(split it at 24:00 over two days)",
            )
            return None
        return TimeWindow(start_s, end_s)

    def weekdays(self, value: Any) -> frozenset[int]:
        days: set[int] = set()
        for i, item in enumerate(self.listed(value, "blocked_weekdays")):
            if item in WEEKDAYS:
                days.add(WEEKDAYS.index(item))
            else:
                self.fail(f"blocked_weekdays[{i}]", f"{item!r} is not one of {', '.join(WEEKDAYS)}")
        return frozenset(days)

    def calendars(self, value: Any) -> tuple[str, ...]:
        codes: list[str] = []
        for i, item in enumerate(self.listed(value, "holiday_calendars")):
            path = f"holiday_calendars[{i}]"
            if not isinstance(item, str) or not item.strip():
                self.fail(path, f"{item!r} is not a calendar code like 'FI' or 'US-MA'")
                continue
            code = item.strip().upper()
            try:
                _holiday_calendar(code, 2026)
            except NotImplementedError:
                self.fail(
                    path, f"'{item}' is not a country or subdivision the holidays package knows"
                )
                continue
            if code not in codes:
                codes.append(code)
        return tuple(codes)

    def flags(self, value: Any) -> frozenset[str]:
        flags: set[str] = set()
        for i, item in enumerate(self.listed(value, "blocked_flags")):
            if item in KNOWN_FLAGS:
                flags.add(item)
            else:
                self.fail(
                    f"blocked_flags[{i}]",
                    f"{item!r} is not a known flag ({', '.join(sorted(KNOWN_FLAGS))})",
                )
        return frozenset(flags)

    def integer(self, value: Any, path: str, *, minimum: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"{value!r} is not a whole number")
            return None
        if value < minimum:
            self.fail(path, f"{value} is below the minimum of {minimum}")
            return None
        return value

    def caps(self, value: Any) -> tuple[VisitCap, ...]:
        caps: list[VisitCap] = []
        for i, item in enumerate(self.listed(value, "visit_caps")):
            path = f"visit_caps[{i}]"
            if not isinstance(item, dict):
                self.fail(path, "expected {max_visits: N, period_days: D, counts: ...}")
                continue
            extra = set(item) - {"max_visits", "period_days", "counts"}
            if extra:
                self.fail(path, f"unknown key(s) {', '.join(map(str, sorted(extra)))}")
            top = self.integer(item.get("max_visits"), f"{path}.max_visits", minimum=0)
            days = self.integer(item.get("period_days"), f"{path}.period_days", minimum=1)
            counts = item.get("counts", "attempted")
            if counts not in ("contacted", "attempted"):
                self.fail(f"{path}.counts", f"{counts!r} is not 'contacted' or 'attempted'")
                continue
            if top is not None and days is not None:
                caps.append(VisitCap(top, days, counts))
        return tuple(caps)

    def gap(self, value: Any) -> int:
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            self.fail("min_gap_hours", f"{value!r} is not a number of hours >= 0")
            return 0
        return round(value * 3600)

    def cool_off(self, value: Any) -> int | None:
        if value is None:
            return None
        if not isinstance(value, dict) or set(value) - {"grace_days"}:
            self.fail("promise_cool_off", "expected {grace_days: N} or null")
            return None
        return self.integer(value.get("grace_days", 0), "promise_cool_off.grace_days", minimum=0)

    def crew(self, value: Any) -> int:
        if value is None:
            return 1
        return self.integer(value, "min_crew", minimum=1) or 1

    def places(self, value: Any) -> frozenset[str]:
        if value is None:
            return frozenset(PLACES)
        places: set[str] = set()
        for i, item in enumerate(self.listed(value, "visit_places")):
            if item in PLACES:
                places.add(item)
            else:
                self.fail(f"visit_places[{i}]", f"{item!r} is not one of {', '.join(PLACES)}")
        return frozenset(places)

    def exposure(self, value: Any) -> ExposureProfile:
        if value is None:
            return ExposureProfile()
        if not isinstance(value, dict):
            self.fail("data_exposure", "expected a mapping of field to full, masked or hidden")
            return ExposureProfile()
        levels: list[tuple[str, Exposure]] = []
        for key, level in value.items():
            path = f"data_exposure.{key}"
            if key not in EXPOSURE_FIELDS:
                self.fail(path, f"unknown field; fields: {', '.join(EXPOSURE_FIELDS)}")
                continue
            allowed = EXPOSURE_FIELDS[key][0]
            if level not in allowed:
                reason = " (collectors never see it)" if key == "national_id" else ""
                self.fail(path, f"{level!r} is not allowed{reason}; allowed: {', '.join(allowed)}")
                continue
            levels.append((key, Exposure(level)))
        return ExposureProfile(tuple(levels))

    def sources(self, value: Any, policy: str) -> tuple[Source, ...]:
        sources: list[Source] = []
        for i, item in enumerate(self.listed(value, "sources")):
            path = f"sources[{i}]"
            if not isinstance(item, dict) or not item.get("id") or not item.get("ref"):
                self.fail(path, "expected {id, ref, url, confidence}")
                continue
            extra = set(item) - {"id", "ref", "url", "confidence"}
            if extra:
                self.fail(path, f"unknown key(s) {', '.join(map(str, sorted(extra)))}")
            confidence = str(item.get("confidence", ""))
            if confidence not in CONFIDENCE_LEVELS:
                self.fail(
                    f"{path}.confidence",
                    f"{confidence!r} is not one of {', '.join(CONFIDENCE_LEVELS)}",
                )
                continue
            if any(s.id == str(item["id"]) for s in sources):
                self.fail(f"{path}.id", f"'{item['id']}' is used by an earlier source")
                continue
            sources.append(
                Source(str(item["id"]), str(item["ref"]), str(item.get("url", "")), confidence,
                       policy)
            )  # fmt: skip
        return tuple(sources)

    def basis(self, value: Any, source_ids: set[str], policy: str) -> tuple[Basis, ...]:
        if value is None:
            return ()
        if not isinstance(value, dict):
            self.fail("basis", "expected a mapping of rule key to {sources, confidence, note}")
            return ()
        entries: list[Basis] = []
        for rule, item in value.items():
            path = f"basis.{rule}"
            if rule not in RULE_KEYS:
                self.fail(path, f"unknown rule; rules: {', '.join(RULE_KEYS)}")
                continue
            if not isinstance(item, dict) or set(item) - {
                "sources",
                "confidence",
                "company_policy",
                "note",
            }:
                self.fail(path, "expected {sources, confidence, company_policy, note}")
                continue
            cited = [str(s) for s in self.listed(item.get("sources"), f"{path}.sources")]
            for ref in cited:
                if ref not in source_ids:
                    self.fail(f"{path}.sources", f"'{ref}' is not the id of a listed source")
            company = item.get("company_policy", False) is True
            confidence = item.get("confidence")
            if not company and not cited:
                self.fail(path, "cite at least one source or set company_policy: true")
                continue
            if not company and confidence is None:
                self.fail(f"{path}.confidence", "is required when sources are cited")
                continue
            if confidence is not None and confidence not in CONFIDENCE_LEVELS:
                self.fail(
                    f"{path}.confidence",
                    f"{confidence!r} is not one of {', '.join(CONFIDENCE_LEVELS)}",
                )
                continue
            entries.append(
                Basis(rule, tuple(cited), confidence, company, str(item.get("note", "")), policy)
            )
        return tuple(entries)


# ---------------------------------------------------------------------------
# Combining policies: strictest value of each rule
# ---------------------------------------------------------------------------


def combine_policies(*policies: Policy) -> Policy:
    """Combine policies by taking the strictest value of every rule.

    Windows intersect per weekday; blocked weekdays, holiday calendars and
    blocked flags are united; caps are all kept (dropping caps another one
    implies); the gap, promise grace and crew size take the maximum; visit
    places intersect; each exposure field takes its most restrictive level.
    """
    if not policies:
        raise ValueError("combine_policies needs at least one policy")
    if len(policies) == 1:
        return policies[0]
    caps: list[VisitCap] = []
    for cap in (c for p in policies for c in p.visit_caps):
        if not any(other.dominates(cap) for other in caps):
            caps = [other for other in caps if not cap.dominates(other)] + [cap]
    graces = [p.promise_grace_days for p in policies if p.promise_grace_days is not None]
    exposure = policies[0].exposure
    for p in policies[1:]:
        exposure = exposure.strictest(p.exposure)
    windows = policies[0].visit_windows
    for p in policies[1:]:
        windows = tuple(
            _intersect_windows(mine, theirs)
            for mine, theirs in zip(windows, p.visit_windows, strict=True)
        )
    calendars: list[str] = []
    for code in (c for p in policies for c in p.holiday_calendars):
        if code not in calendars:
            calendars.append(code)
    return Policy(
        name="+".join(p.name for p in policies),
        version="+".join(f"{p.name}@{p.version}" for p in policies),
        title=" + ".join(p.title or p.name for p in policies),
        status="+".join(dict.fromkeys(p.status for p in policies)),
        jurisdiction="+".join(dict.fromkeys(p.jurisdiction for p in policies if p.jurisdiction)),
        visit_windows=windows,
        blocked_weekdays=frozenset().union(*(p.blocked_weekdays for p in policies)),
        holiday_calendars=tuple(calendars),
        blocked_flags=frozenset().union(*(p.blocked_flags for p in policies)),
        visit_caps=tuple(caps),
        min_gap_s=max(p.min_gap_s for p in policies),
        promise_grace_days=max(graces) if graces else None,
        min_crew=max(p.min_crew for p in policies),
        visit_places=frozenset.intersection(*(p.visit_places for p in policies)),
        exposure=exposure,
        sources=tuple(s for p in policies for s in p.sources),
        basis=tuple(b for p in policies for b in p.basis),
    )


def _intersect_windows(a: Sequence[TimeWindow], b: Sequence[TimeWindow]) -> tuple[TimeWindow, ...]:
    # A day's windows never overlap, so the pairwise overlaps do not either.
    overlaps = [
        TimeWindow(max(x.start_s, y.start_s), min(x.end_s, y.end_s))
        for x in a
        for y in b
        if max(x.start_s, y.start_s) < min(x.end_s, y.end_s)
    ]
    return tuple(sorted(overlaps, key=lambda w: w.start_s))


@functools.lru_cache(maxsize=1024)
def _holiday_calendar(code: str, year: int) -> holidays.HolidayBase:
    country, _, subdivision = code.partition("-")
    return holidays.country_holidays(country, subdiv=subdivision or None, years=year)


def holiday_name(policy: Policy, day: dt.date) -> str | None:
    """Name the holiday (``"FI: Independence Day"``) that blocks a local date, if any."""
    for code in policy.holiday_calendars:
        name = _holiday_calendar(code, day.year).get(day)
        if name:
            return f"{code}: {name}"
    return None
