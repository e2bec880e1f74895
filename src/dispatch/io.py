"""Read cases and collectors from CSV or GeoJSON; write problems, plans and their outputs.

Input rows are numbered as a spreadsheet shows them: in a CSV file the
header is row 1 and the first record row 2; in a GeoJSON file the first
feature is row 1. Row 0 stands for the file as a whole (missing, unreadable).
Every bad value in a file is reported, not just the first: readers collect
one ``RowError`` per bad value and raise them together as ``InputError``.

Money is read as exact decimals in currency units (``1234.50``) and kept in
integer cents; an amount with a non-zero third decimal is rejected rather
than rounded, and so is a negative one.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from dispatch.errors import InputError, InvalidProblemError, RowError
from dispatch.model import (
    ALL_DAY,
    DAY_S,
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
    format_clock,
    parse_clock,
)

if TYPE_CHECKING:
    from dispatch.itinerary import Itinerary
    from dispatch.triage import TriageDecision

T = TypeVar("T")

CSV_SUFFIXES = (".csv",)
GEOJSON_SUFFIXES = (".geojson", ".json")

CASE_COLUMNS = (
    "case_id",
    "lat",
    "lon",
    "days_past_due",
    "amount",
    "value",
    "skills",
    "service_min",
    "windows",
    "preferred_collector",
    "flags",
    "address",
    "debtor_name",
    "phone",
    "national_id",
    "min_crew",
    "appointment",
    "appointment_tolerance_min",
    "load",
)
COLLECTOR_COLUMNS = (
    "collector_id",
    "name",
    "start_lat",
    "start_lon",
    "end_lat",
    "end_lon",
    "shift_start",
    "shift_end",
    "skills",
    "max_visits",
    "mode",
    "break_window",
    "break_min",
    "capacity",
)
CREW_COLUMNS = ("crew_id", "members")
STOP_COLUMNS = (
    "collector_id",
    "stop",
    "case_id",
    "address",
    "arrival",
    "start",
    "end",
    "wait_s",
    "travel_time_s",
    "distance_m",
    "windows",
    "members",
    "break_start",
    "break_end",
)
UNASSIGNED_COLUMNS = ("case_id", "reason", "detail", "address")
SKIPPED_COLUMNS = ("file", "row", "column", "reason")
TRIAGE_COLUMNS = (
    "case_id",
    "channel",
    "rule",
    "detail",
    "payment_probability",
    "expected_recovery",
)

DEFAULT_SERVICE_MIN = 15
DEFAULT_APPOINTMENT_TOLERANCE_MIN = 10
PROBLEM_FORMAT = "dispatch-problem"
PLAN_FORMAT = "dispatch-plan"
FORMAT_VERSION = 1

_WHOLE = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_NAME = re.compile(r"\w[\w-]*")
_NO_NAMES: frozenset[str] = frozenset()
_ALL_DAY_WINDOWS: tuple[TimeWindow, ...] = (ALL_DAY,)
# Any date serves to check that crew members can work together; the rules ignore it.
_ANY_DAY = dt.date(2000, 1, 1)


@dataclass(frozen=True)
class ReadResult(Generic[T]):
    """What a reader returns: the valid items in file order and the rows it skipped."""

    items: tuple[T, ...]
    skipped: tuple[RowError, ...] = ()


@dataclass(frozen=True)
class _Table:
    """How to read one kind of record: its columns and how to build an item from a row."""

    id_column: str
    required: tuple[str, ...]
    point_columns: tuple[str, str]
    build: Callable[[_Row], Any]


@dataclass
class _Row:
    """The text values of one record and the errors found in them so far."""

    file: str
    number: int
    values: Mapping[str, str]
    errors: list[RowError] = field(default_factory=list)

    def error(self, column: str, reason: str) -> None:
        self.errors.append(RowError(self.file, self.number, column, reason))

    def text(self, column: str) -> str:
        return self.values.get(column, "").strip()

    def parse(
        self,
        column: str,
        parser: Callable[[str], T],
        *,
        default: T | None = None,
        required: bool = False,
    ) -> T | None:
        """Parse one value; record the rule it breaks and return None if it is bad."""
        text = self.text(column)
        if not text:
            if required:
                self.error(column, "a value is required")
            return default
        try:
            return parser(text)
        except (ValueError, InvalidProblemError) as exc:
            self.error(column, str(exc))
            return None


# --- values -------------------------------------------------------------------------------


def _parse_whole(text: str) -> int:
    if not _WHOLE.fullmatch(text):
        raise ValueError(f"'{text}' is not a whole number")
    return int(text)


def _parse_days_past_due(text: str) -> int:
    days = _parse_whole(text)
    if days < 0:
        raise ValueError(f"days past due {days} is negative")
    return days


def _parse_max_visits(text: str) -> int:
    visits = _parse_whole(text)
    if visits < 0:
        raise ValueError(f"maximum visits {visits} is negative")
    return visits


def _count_parser(what: str) -> Callable[[str], int]:
    """Make a parser of a whole number of units, 0 or more (a load or a capacity)."""

    def parse(text: str) -> int:
        count = _parse_whole(text)
        if count < 0:
            raise ValueError(f"{what} {count} is negative")
        return count

    return parse


def _money_parser(what: str) -> Callable[[str], int]:
    """Make a parser of money in currency units (``1234.50``) into integer cents."""

    def parse(text: str) -> int:
        if not _DECIMAL.fullmatch(text):
            if _DECIMAL.fullmatch(text.replace(",", ".")):
                raise ValueError(f"'{text}' is not an amount: use a point as decimal separator")
            raise ValueError(f"'{text}' is not an amount in currency units (such as 1234.50)")
        amount = Decimal(text)
        if amount < 0:
            raise ValueError(f"{what} {text} is negative")
        cents = amount * 100
        if cents != cents.to_integral_value():
            raise ValueError(f"{what} {text} has more than 2 decimals")
        return int(cents)

    return parse


def _coordinate_parser(what: str, limit: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        if not _NUMBER.fullmatch(text):
            raise ValueError(f"'{text}' is not a number")
        value = float(text)
        if not math.isfinite(value) or not -limit <= value <= limit:
            raise ValueError(f"{what} {value} is outside -{limit:g}..{limit:g}")
        return value

    return parse


_parse_lat = _coordinate_parser("latitude", 90.0)
_parse_lon = _coordinate_parser("longitude", 180.0)


def _parse_names(text: str, what: str) -> frozenset[str]:
    """Parse ``;``-separated names (skills, flags); names are compared in lower case."""
    names = [part.strip() for part in text.split(";")]
    bad = [name for name in names if name and not _NAME.fullmatch(name)]
    if bad:
        raise ValueError(f"{what} must be ;-separated names: '{bad[0]}' is not a name")
    return frozenset(name.lower() for name in names if name)


def _parse_skills(text: str) -> frozenset[str]:
    return _parse_names(text, "skills")


def _parse_flags(text: str) -> frozenset[str]:
    return _parse_names(text, "flags")


def _parse_service_min(text: str) -> int:
    if not _DECIMAL.fullmatch(text):
        raise ValueError(f"'{text}' is not a number of minutes")
    seconds = int((Decimal(text) * 60).to_integral_value())
    if seconds <= 0:
        raise ValueError(f"service time {text} min must be positive")
    if seconds > DAY_S:
        raise ValueError(f"service time {text} min is longer than a day")
    return seconds


def _parse_min_crew(text: str) -> int:
    size = _parse_whole(text)
    if size < 1:
        raise ValueError(f"crew size {size} must be at least 1")
    return size


def _minutes_parser(what: str) -> Callable[[str], int]:
    """Make a parser of a span in minutes (``0`` or more, at most a day) into seconds."""

    def parse(text: str) -> int:
        if not _DECIMAL.fullmatch(text):
            raise ValueError(f"'{text}' is not a number of minutes")
        seconds = int((Decimal(text) * 60).to_integral_value())
        if seconds < 0:
            raise ValueError(f"{what} {text} min is negative")
        if seconds > DAY_S:
            raise ValueError(f"{what} {text} min is longer than a day")
        return seconds

    return parse


_parse_tolerance_min = _minutes_parser("appointment tolerance")
_parse_break_min = _minutes_parser("break")


def _parse_break_window(text: str) -> TimeWindow:
    windows = _parse_windows(text)
    if len(windows) != 1 or windows == _ALL_DAY_WINDOWS:
        raise ValueError(f"'{text}' is not one time window in HH:MM-HH:MM form")
    return windows[0]


def _parse_members(text: str) -> tuple[str, ...]:
    """Parse a crew's ``;``-separated collector ids, the first member first."""
    members = tuple(part.strip() for part in text.split(";") if part.strip())
    if len(members) < 2:
        raise ValueError(f"a crew needs at least two members, '{text}' names {len(members)}")
    repeated = sorted({m for m in members if members.count(m) > 1})
    if repeated:
        raise ValueError(f"members name {repeated[0]} more than once")
    return members


def _parse_windows(text: str) -> tuple[TimeWindow, ...]:
    windows = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        ends = part.split("-")
        if len(ends) != 2 or not ends[0].strip() or not ends[1].strip():
            raise ValueError(f"'{part}' is not a time window in HH:MM-HH:MM form")
        windows.append(TimeWindow(parse_clock(ends[0]), parse_clock(ends[1])))
    if not windows:
        return _ALL_DAY_WINDOWS
    windows.sort(key=lambda w: w.start_s)
    for before, after in itertools.pairwise(windows):
        if after.start_s < before.end_s:
            raise ValueError(f"time windows {before} and {after} overlap")
    return tuple(windows)


def _parse_mode(text: str) -> TravelMode:
    try:
        return TravelMode(text.lower())
    except ValueError:
        modes = ", ".join(m.value for m in TravelMode)
        raise ValueError(f"travel mode '{text}' is not one of {modes}") from None


def _model_error(
    row: _Row, exc: InvalidProblemError, columns: Sequence[tuple[str, str]], fallback: str
) -> None:
    """Record a model validation error under the column its message is about."""
    message = str(exc)
    # The model prefixes messages with their owner ("case C-7: ..."); the row already says it.
    owner, sep, rest = message.partition(": ")
    if sep and owner.split(" ")[0] in ("case", "collector", "crew"):
        message = rest
    column = next((col for fragment, col in columns if fragment in message), fallback)
    row.error(column, message)


def _location(row: _Row, lat_column: str, lon_column: str) -> Location | None:
    if any(e.column == "geometry" for e in row.errors):
        # The GeoJSON geometry that should give this point is already reported as bad.
        return None
    lat = row.parse(lat_column, _parse_lat, required=True)
    lon = row.parse(lon_column, _parse_lon, required=True)
    if lat is None or lon is None:
        return None
    try:
        return Location(lat, lon)
    except InvalidProblemError as exc:
        _model_error(row, exc, (("latitude", lat_column), ("longitude", lon_column)), lat_column)
        return None


# --- records --------------------------------------------------------------------------------

_CASE_MESSAGE_COLUMNS = (
    ("case id", "case_id"),
    ("days past due", "days_past_due"),
    ("amount", "amount"),
    ("value", "value"),
    ("service time", "service_min"),
    ("time window", "windows"),
    ("crew size", "min_crew"),
    ("appointment tolerance", "appointment_tolerance_min"),
    ("appointment", "appointment"),
    ("load", "load"),
)
_COLLECTOR_MESSAGE_COLUMNS = (
    ("collector id", "collector_id"),
    # Before "shift": a break message names the shift it must fit into.
    ("break", "break_window"),
    ("shift", "shift_end"),
    ("maximum visits", "max_visits"),
    ("travel mode", "mode"),
    ("capacity", "capacity"),
)


def _case_from_row(row: _Row) -> Case | None:
    case_id = row.parse("case_id", str, required=True)
    location = _location(row, "lat", "lon")
    days = row.parse("days_past_due", _parse_days_past_due, required=True)
    amount_cents = row.parse("amount", _money_parser("amount"), required=True)
    value_cents = row.parse("value", _money_parser("value"))
    skills = row.parse("skills", _parse_skills, default=_NO_NAMES)
    service_s = row.parse("service_min", _parse_service_min, default=DEFAULT_SERVICE_MIN * 60)
    windows = row.parse("windows", _parse_windows, default=_ALL_DAY_WINDOWS)
    flags = row.parse("flags", _parse_flags, default=_NO_NAMES)
    min_crew = row.parse("min_crew", _parse_min_crew, default=1)
    appointment_s = row.parse("appointment", parse_clock)
    tolerance_s = row.parse(
        "appointment_tolerance_min",
        _parse_tolerance_min,
        default=DEFAULT_APPOINTMENT_TOLERANCE_MIN * 60,
    )
    load = row.parse("load", _count_parser("load"), default=0)
    if (
        row.errors
        or case_id is None
        or location is None
        or days is None
        or amount_cents is None
        or skills is None
        or service_s is None
        or windows is None
        or flags is None
        or min_crew is None
        or tolerance_s is None
        or load is None
    ):
        return None
    try:
        case = Case(
            id=case_id,
            location=location,
            address=row.text("address"),
            days_past_due=days,
            amount_cents=amount_cents,
            value_cents=value_cents,
            skills=skills,
            service_s=service_s,
            windows=windows,
            preferred_collector=row.text("preferred_collector") or None,
            flags=flags,
            debtor_name=row.text("debtor_name"),
            phone=row.text("phone"),
            national_id=row.text("national_id"),
            min_crew=min_crew,
            appointment_s=appointment_s,
            appointment_tolerance_s=tolerance_s,
            load=load,
        )
    except InvalidProblemError as exc:
        _model_error(row, exc, _CASE_MESSAGE_COLUMNS, "case_id")
        return None
    if case.appointment_s is not None and not case.start_windows:
        # The row contradicts itself: no visit could ever keep this appointment.
        row.error(
            "appointment",
            f"appointment {format_clock(case.appointment_s)} ± "
            f"{_minutes_text(case.appointment_tolerance_s)} lies outside every window "
            f"{_windows_text(case.windows)}",
        )
        return None
    return case


def _minutes_text(seconds: int) -> str:
    return f"{Decimal(seconds) / 60:g} min"


def _collector_from_row(row: _Row) -> Collector | None:
    collector_id = row.parse("collector_id", str, required=True)
    start = _location(row, "start_lat", "start_lon")
    end: Location | None = start
    given = [c for c in ("end_lat", "end_lon") if row.text(c)]
    if len(given) == 2:
        end = _location(row, "end_lat", "end_lon")
    elif given:
        missing = "end_lon" if given == ["end_lat"] else "end_lat"
        row.error(missing, f"{missing} is empty but {given[0]} is given: give both or neither")
    shift_start = row.parse("shift_start", parse_clock, required=True)
    shift_end = row.parse("shift_end", parse_clock, required=True)
    shift = None
    if shift_start is not None and shift_end is not None:
        span = f"{format_clock(shift_start)}-{format_clock(shift_end)}"
        if shift_end < shift_start:
            row.error("shift_end", f"shift {span} ends before it starts")
        elif shift_end == shift_start:
            row.error("shift_end", f"shift {span} has no length")
        else:
            shift = TimeWindow(shift_start, shift_end)
    skills = row.parse("skills", _parse_skills, default=_NO_NAMES)
    max_visits = row.parse("max_visits", _parse_max_visits)
    capacity = row.parse("capacity", _count_parser("capacity"))
    mode = row.parse("mode", _parse_mode, required=True)
    break_window = row.parse("break_window", _parse_break_window)
    break_s = row.parse("break_min", _parse_break_min, default=0)
    if row.text("break_window") and not row.text("break_min"):
        row.error("break_min", "break_min is empty but break_window is given: give both or neither")
    elif break_s and not row.text("break_window"):
        row.error(
            "break_window",
            f"a break of {_minutes_text(break_s)} needs a break_window (HH:MM-HH:MM)",
        )
    if (
        row.errors
        or collector_id is None
        or start is None
        or end is None
        or shift is None
        or skills is None
        or mode is None
        or break_s is None
    ):
        return None
    try:
        return Collector(
            id=collector_id,
            name=row.text("name") or collector_id,
            start=start,
            end=end,
            shift=shift,
            skills=skills,
            max_visits=max_visits,
            mode=mode,
            break_window=break_window if break_s else None,
            break_s=break_s,
            capacity=capacity,
        )
    except InvalidProblemError as exc:
        _model_error(row, exc, _COLLECTOR_MESSAGE_COLUMNS, "collector_id")
        return None


_CASES = _Table(
    id_column="case_id",
    required=("case_id", "lat", "lon", "days_past_due", "amount"),
    point_columns=("lat", "lon"),
    build=_case_from_row,
)
_COLLECTORS = _Table(
    id_column="collector_id",
    required=("collector_id", "start_lat", "start_lon", "shift_start", "shift_end", "mode"),
    point_columns=("start_lat", "start_lon"),
    build=_collector_from_row,
)


# --- files ----------------------------------------------------------------------------------


def _file_error(path: str | Path, reason: str) -> InputError:
    return InputError([RowError(str(path), 0, "", reason)])


def _read_csv(file: str, path: Path) -> tuple[list[str], list[_Row]]:
    """Read the header and the records of a CSV file, each with its spreadsheet row number."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _file_error(file, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    reader = csv.reader(text.splitlines(keepends=True), strict=True)
    try:
        records = list(reader)
    except csv.Error as exc:
        raise InputError([RowError(file, reader.line_num, "", f"not CSV: {exc}")]) from None
    if not records:
        return [], []
    header = [name.strip() for name in records[0]]
    rows = []
    for number, record in enumerate(records[1:], start=2):
        # A blank line is a row a spreadsheet shows empty: counted, not read.
        if not any(value.strip() for value in record):
            continue
        row = _Row(file, number, dict(zip(header, record, strict=False)))
        if any(value.strip() for value in record[len(header) :]):
            row.error("", f"{len(record)} values but the header names {len(header)} columns")
        rows.append(row)
    return header, rows


def _json_text(value: object) -> str:
    """Turn a GeoJSON property value into the text a CSV cell would hold."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return str(int(value)) if value == value.to_integral_value() else format(value, "f")
    if isinstance(value, list):
        return ";".join(_json_text(item) for item in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _feature_row(file: str, number: int, feature: object, table: _Table) -> _Row:
    """Turn a GeoJSON feature into a row, its Point put into the location columns."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        row = _Row(file, number, {})
        row.error("", "not a GeoJSON Feature")
        return row
    properties = feature.get("properties") or {}
    values = {str(name): _json_text(value) for name, value in properties.items()}
    lat_column, lon_column = table.point_columns
    values[lat_column] = values[lon_column] = ""
    geometry = feature.get("geometry")
    coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
    row = _Row(file, number, values)
    if not isinstance(geometry, dict) or not coords:
        row.error("geometry", "geometry is missing")
    elif geometry.get("type") != "Point":
        row.error("geometry", f"geometry is a {geometry.get('type')}, expected a Point")
    elif not isinstance(coords, list) or len(coords) < 2:
        row.error("geometry", "Point coordinates are not [longitude, latitude]")
    else:
        values[lon_column], values[lat_column] = _json_text(coords[0]), _json_text(coords[1])
    return row


def _read_geojson(file: str, path: Path, table: _Table) -> tuple[list[str], list[_Row]]:
    """Read the property names and the features of a GeoJSON FeatureCollection, as rows."""
    # Parsed with the json module rather than GDAL: GDAL re-types mixed columns (1234.56
    # becomes '1234.5599999999999') and reads '08:00' as a time, which would bend money and
    # clock values; here numbers stay exact decimals and every feature keeps its place.
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"), parse_float=Decimal)
    except UnicodeDecodeError as exc:
        raise _file_error(file, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise _file_error(file, f"not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise _file_error(file, "not a GeoJSON FeatureCollection")
    crs = json.dumps(document.get("crs"), default=str).upper()
    if crs != "NULL" and "CRS84" not in crs and "4326" not in crs:
        raise _file_error(file, "coordinates must be WGS84 longitude, latitude (RFC 7946)")
    features = document.get("features")
    if not isinstance(features, list):
        raise _file_error(file, "'features' is not a list")
    rows = [_feature_row(file, n, f, table) for n, f in enumerate(features, start=1)]
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row.values))
    return list(names), rows


def _read_items(path: str | Path, table: _Table, *, skip_invalid: bool) -> ReadResult[Any]:
    file = str(path)
    path = Path(path)
    if not path.is_file():
        raise _file_error(file, "file not found" if not path.exists() else "not a file")
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        header, rows = _read_csv(file, path)
    elif suffix in GEOJSON_SUFFIXES:
        header, rows = _read_geojson(file, path, table)
    else:
        known = ", ".join(CSV_SUFFIXES + GEOJSON_SUFFIXES)
        raise _file_error(file, f"unknown file type '{path.suffix}': use one of {known}")
    # A feature collection has no header: a column is only missing if a feature lacks it.
    if header and (rows or suffix in CSV_SUFFIXES):
        header_errors = _check_header(file, header, table)
        if header_errors:
            # Without its required columns no row can be read; skipping would drop them all.
            raise InputError(header_errors)

    items = []
    errors: list[RowError] = []
    first_seen: dict[str, int] = {}
    for row in rows:
        item_id = row.text(table.id_column)
        if item_id in first_seen:
            first = first_seen[item_id]
            row.error(
                table.id_column,
                f"duplicate {table.id_column} '{item_id}' (first seen on row {first})",
            )
        elif item_id:
            first_seen[item_id] = row.number
        item = table.build(row)
        if row.errors:
            errors.extend(row.errors)
        elif item is not None:
            items.append(item)
    if errors and not skip_invalid:
        raise InputError(errors)
    return ReadResult(tuple(items), tuple(errors))


def _check_header(file: str, header: Sequence[str], table: _Table) -> list[RowError]:
    errors = []
    seen: set[str] = set()
    for name in header:
        if name and name in seen:
            errors.append(RowError(file, 1, name, f"column '{name}' appears more than once"))
        seen.add(name)
    lowered = {name.lower(): name for name in header}
    for column in table.required:
        if column in seen:
            continue
        reason = f"required column '{column}' is missing"
        if column in lowered:
            reason += f" (found '{lowered[column]}'; names are case-sensitive)"
        elif len(header) == 1 and ";" in header[0]:
            reason += " (the file seems to separate columns with ';': use ',')"
        errors.append(RowError(file, 1, column, reason))
    return errors


def read_cases(path: str | Path, *, skip_invalid: bool = False) -> ReadResult[Case]:
    """Read cases from a CSV or GeoJSON file.

    Parameters
    ----------
    path
        A ``.csv`` file with columns ``case_id``, ``lat``, ``lon``,
        ``days_past_due``, ``amount`` (required) and ``value``, ``skills``,
        ``service_min``, ``windows``, ``preferred_collector``, ``flags``,
        ``address``, ``min_crew`` (collectors needed at the door, default
        1), ``appointment`` (``HH:MM``), ``appointment_tolerance_min``
        (default 10; the visit starts within this many minutes of the
        appointment, which must meet a window) and ``load`` (units of the
        collector's capacity the visit uses, a whole number >= 0, default 0)
        (optional; other columns are ignored), or a ``.geojson`` FeatureCollection whose Point
        geometries give the locations and whose properties hold the other
        columns.
    skip_invalid
        Skip rows with bad values and list their errors in the result
        instead of raising.

    Returns
    -------
    ReadResult[Case]
        The valid cases in file order and the errors of the skipped rows.

    Raises
    ------
    InputError
        With every bad value in the file (unless ``skip_invalid``), a
        missing required column, or a file that is missing or unreadable.
    """
    return _read_items(path, _CASES, skip_invalid=skip_invalid)


def read_collectors(path: str | Path, *, skip_invalid: bool = False) -> ReadResult[Collector]:
    """Read collectors from a CSV or GeoJSON file.

    Parameters
    ----------
    path
        A ``.csv`` file with columns ``collector_id``, ``start_lat``,
        ``start_lon``, ``shift_start``, ``shift_end``, ``mode`` (required) and
        ``name``, ``end_lat``, ``end_lon``, ``skills``, ``max_visits``,
        ``break_window`` (``HH:MM-HH:MM``), ``break_min`` (a break of that
        many minutes taken in one piece inside the window; give both or
        neither) and ``capacity`` (the most load the day's visits may add
        up to, a whole number >= 0; empty for no limit) (optional), or a
        ``.geojson`` FeatureCollection whose Point geometries give the start
        points.
    skip_invalid
        Skip rows with bad values and list their errors in the result
        instead of raising.

    Returns
    -------
    ReadResult[Collector]
        The valid collectors in file order and the errors of the skipped rows.

    Raises
    ------
    InputError
        With every bad value in the file (unless ``skip_invalid``), a
        missing required column, or a file that is missing or unreadable.
    """
    return _read_items(path, _COLLECTORS, skip_invalid=skip_invalid)


def _crew_table(collectors: Iterable[Collector] | None) -> _Table:
    """How to read crews.csv; with the collectors known, members must be on duty together."""
    by_id = None if collectors is None else {k.id: k for k in collectors}
    taken: dict[str, tuple[str, int]] = {}

    def build(row: _Row) -> Crew | None:
        crew_id = row.parse("crew_id", str, required=True)
        members = row.parse("members", _parse_members, required=True)
        if members is not None:
            if by_id is not None:
                for member in members:
                    if member not in by_id:
                        row.error("members", f"collector '{member}' is not in the collectors file")
            for member in members:
                if member in taken:
                    other, number = taken[member]
                    row.error(
                        "members", f"collector {member} is already in crew {other} (row {number})"
                    )
        if by_id is not None and crew_id in by_id:
            row.error("crew_id", f"crew id '{crew_id}' is also a collector's id")
        if row.errors or crew_id is None or members is None:
            return None
        try:
            crew = Crew(crew_id, members)
            if by_id is not None:
                # Whether the members can work together (one mode, shifts and breaks that
                # overlap) is the model's rule; a day of just this crew applies it.
                Problem(_ANY_DAY, "UTC", (), tuple(by_id[m] for m in members), (crew,))
        except InvalidProblemError as exc:
            _model_error(row, exc, (("crew id", "crew_id"),), "members")
            return None
        taken.update(dict.fromkeys(members, (crew_id, row.number)))
        return crew

    return _Table(
        id_column="crew_id",
        required=CREW_COLUMNS,
        point_columns=("", ""),
        build=build,
    )


def read_crews(
    path: str | Path,
    *,
    collectors: Iterable[Collector] | None = None,
    skip_invalid: bool = False,
) -> ReadResult[Crew]:
    """Read crews (collectors who work the day together) from a CSV file.

    Parameters
    ----------
    path
        A ``.csv`` file with columns ``crew_id`` and ``members`` (the
        collector ids, ``;``-separated, the first member first: the crew
        starts and ends at that member's points and its routes carry that
        member's id).
    collectors
        The collectors on duty. When given, every member must be one of
        them, and the members must be able to work together (one travel
        mode, overlapping shifts, breaks that fit one shared span).
    skip_invalid
        Skip rows with bad values and list their errors in the result
        instead of raising.

    Returns
    -------
    ReadResult[Crew]
        The valid crews in file order and the errors of the skipped rows.

    Raises
    ------
    InputError
        With every bad value in the file (unless ``skip_invalid``): a crew
        of fewer than two, a member named twice, an unknown member, a
        collector in two crews (naming the first crew's row), members who
        cannot work together, a duplicate crew id; or a missing required
        column, or a file that is missing or unreadable.
    """
    suffix = Path(path).suffix
    if suffix.lower() not in CSV_SUFFIXES:
        raise _file_error(path, f"unknown file type '{suffix}': crews are read from .csv")
    return _read_items(path, _crew_table(collectors), skip_invalid=skip_invalid)


# --- problem.json and plan.json -------------------------------------------------------------


def _window_json(window: TimeWindow) -> dict[str, int]:
    return {"start_s": window.start_s, "end_s": window.end_s}


def _location_json(location: Location) -> dict[str, float]:
    return {"lat": location.lat, "lon": location.lon}


def _case_json(case: Case) -> dict[str, Any]:
    return {
        "id": case.id,
        "location": _location_json(case.location),
        "address": case.address,
        "days_past_due": case.days_past_due,
        "amount_cents": case.amount_cents,
        "value_cents": case.value_cents,
        "skills": sorted(case.skills),
        "service_s": case.service_s,
        "windows": [_window_json(w) for w in case.windows],
        "preferred_collector": case.preferred_collector,
        "flags": sorted(case.flags),
        "debtor_name": case.debtor_name,
        "phone": case.phone,
        "national_id": case.national_id,
        "min_crew": case.min_crew,
        "appointment_s": case.appointment_s,
        "appointment_tolerance_s": case.appointment_tolerance_s,
        "load": case.load,
    }


def _collector_json(collector: Collector) -> dict[str, Any]:
    return {
        "id": collector.id,
        "name": collector.name,
        "start": _location_json(collector.start),
        "end": _location_json(collector.end),
        "shift": _window_json(collector.shift),
        "skills": sorted(collector.skills),
        "max_visits": collector.max_visits,
        "mode": collector.mode.value,
        "break_window": None
        if collector.break_window is None
        else _window_json(collector.break_window),
        "break_s": collector.break_s,
        "capacity": collector.capacity,
    }


def _crew_json(crew: Crew) -> dict[str, Any]:
    return {"id": crew.id, "member_ids": list(crew.member_ids)}


def _write_json(data: object, path: Path) -> None:
    """Write JSON through a temporary file so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}-", delete=False
    ) as handle:
        partial = Path(handle.name)
        try:
            json.dump(data, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        except BaseException:
            handle.close()
            partial.unlink(missing_ok=True)
            raise
    os.replace(partial, path)


def _load_json(path: str | Path, expected_format: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise _file_error(path, "file not found" if not path.exists() else "not a file")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _file_error(path, f"not JSON: {exc}") from None
    found = document.get("format") if isinstance(document, dict) else None
    if found != expected_format:
        raise _file_error(path, f"not a {expected_format} file (format is {found!r})")
    if document.get("version") != FORMAT_VERSION:
        raise _file_error(path, f"format version {document.get('version')!r} is not supported")
    return document


@contextmanager
def _decoding(path: str | Path) -> Iterator[None]:
    """Turn a malformed entry of a JSON file into an ``InputError`` naming the file."""
    try:
        yield
    except InputError:
        raise
    except KeyError as exc:
        raise _file_error(path, f"an entry lacks the field {exc}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise _file_error(path, f"malformed entry: {exc}") from exc


def _window_from_json(data: Mapping[str, Any]) -> TimeWindow:
    return TimeWindow(int(data["start_s"]), int(data["end_s"]))


def _location_from_json(data: Mapping[str, Any]) -> Location:
    return Location(float(data["lat"]), float(data["lon"]))


def write_problem(problem: Problem, path: str | Path, *, network_source: str | None) -> Path:
    """Write a problem (day, time zone, cases, collectors, road network) as JSON.

    ``network_source`` is the road network the plan was made on, as given to
    ``load_network`` (None for the embedded default), so a later check can
    load the same one.
    """
    path = Path(path)
    data = {
        "format": PROBLEM_FORMAT,
        "version": FORMAT_VERSION,
        "date": problem.date.isoformat(),
        "timezone": problem.timezone,
        "network_source": network_source,
        "cases": [_case_json(c) for c in problem.cases],
        "collectors": [_collector_json(k) for k in problem.collectors],
        "crews": [_crew_json(w) for w in problem.crews],
    }
    _write_json(data, path)
    return path


def read_problem(path: str | Path) -> tuple[Problem, str | None]:
    """Read a problem written by ``write_problem``; returns it and its network source."""
    data = _load_json(path, PROBLEM_FORMAT)
    with _decoding(path):
        cases = tuple(
            Case(
                id=c["id"],
                location=_location_from_json(c["location"]),
                address=c["address"],
                days_past_due=int(c["days_past_due"]),
                amount_cents=int(c["amount_cents"]),
                value_cents=None if c["value_cents"] is None else int(c["value_cents"]),
                skills=frozenset(c["skills"]),
                service_s=int(c["service_s"]),
                windows=tuple(_window_from_json(w) for w in c["windows"]),
                preferred_collector=c["preferred_collector"],
                flags=frozenset(c.get("flags", ())),
                debtor_name=c.get("debtor_name", ""),
                phone=c.get("phone", ""),
                national_id=c.get("national_id", ""),
                min_crew=int(c.get("min_crew", 1)),
                appointment_s=_optional_int(c.get("appointment_s")),
                appointment_tolerance_s=int(
                    c.get("appointment_tolerance_s", DEFAULT_APPOINTMENT_TOLERANCE_MIN * 60)
                ),
                load=int(c.get("load", 0)),
            )
            for c in data["cases"]
        )
        collectors = tuple(
            Collector(
                id=k["id"],
                name=k["name"],
                start=_location_from_json(k["start"]),
                end=_location_from_json(k["end"]),
                shift=_window_from_json(k["shift"]),
                skills=frozenset(k["skills"]),
                max_visits=None if k["max_visits"] is None else int(k["max_visits"]),
                mode=TravelMode(k["mode"]),
                break_window=None
                if k.get("break_window") is None
                else _window_from_json(k["break_window"]),
                break_s=int(k.get("break_s", 0)),
                capacity=_optional_int(k.get("capacity")),
            )
            for k in data["collectors"]
        )
        crews = tuple(Crew(w["id"], tuple(w["member_ids"])) for w in data.get("crews", ()))
        problem = Problem(
            date=dt.date.fromisoformat(data["date"]),
            timezone=data["timezone"],
            cases=cases,
            collectors=collectors,
            crews=crews,
        )
        return problem, data["network_source"]


def _optional_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def _stop_json(stop: Stop) -> dict[str, Any]:
    return {
        "case_id": stop.case_id,
        "arrival_s": stop.arrival_s,
        "start_s": stop.start_s,
        "end_s": stop.end_s,
        "travel_time_s": stop.travel_time_s,
        "distance_m": stop.distance_m,
    }


def _route_json(route: Route) -> dict[str, Any]:
    return {
        "collector_id": route.collector_id,
        "start_s": route.start_s,
        "end_s": route.end_s,
        "travel_time_s": route.travel_time_s,
        "distance_m": route.distance_m,
        "return_travel_time_s": route.return_travel_time_s,
        "return_distance_m": route.return_distance_m,
        "member_ids": list(route.member_ids),
        "break_start_s": route.break_start_s,
        "break_end_s": route.break_end_s,
        "stops": [_stop_json(s) for s in route.stops],
    }


def write_plan(plan: Plan, path: str | Path) -> Path:
    """Write a plan (routes with timed stops, unassigned cases with reasons) as JSON."""
    path = Path(path)
    data = {
        "format": PLAN_FORMAT,
        "version": FORMAT_VERSION,
        "objective": plan.objective,
        "solve_time_s": plan.solve_time_s,
        "stats": plan.stats,
        "routes": [_route_json(r) for r in plan.routes],
        "unassigned": [
            {"case_id": u.case_id, "reason": u.reason.value, "detail": u.detail}
            for u in plan.unassigned
        ],
    }
    _write_json(data, path)
    return path


def read_plan(path: str | Path) -> Plan:
    """Read a plan written by ``write_plan`` (or edited by hand in the same form)."""
    data = _load_json(path, PLAN_FORMAT)
    with _decoding(path):
        routes = tuple(
            Route(
                collector_id=r["collector_id"],
                start_s=int(r["start_s"]),
                end_s=int(r["end_s"]),
                stops=tuple(
                    Stop(
                        case_id=s["case_id"],
                        arrival_s=int(s["arrival_s"]),
                        start_s=int(s["start_s"]),
                        end_s=int(s["end_s"]),
                        travel_time_s=int(s["travel_time_s"]),
                        distance_m=int(s["distance_m"]),
                    )
                    for s in r["stops"]
                ),
                travel_time_s=int(r["travel_time_s"]),
                distance_m=int(r["distance_m"]),
                return_travel_time_s=int(r.get("return_travel_time_s", 0)),
                return_distance_m=int(r.get("return_distance_m", 0)),
                member_ids=tuple(r.get("member_ids", ())),
                break_start_s=_optional_int(r.get("break_start_s")),
                break_end_s=_optional_int(r.get("break_end_s")),
            )
            for r in data["routes"]
        )
        unassigned = tuple(
            Unassigned(u["case_id"], Reason(u["reason"]), u.get("detail", ""))
            for u in data["unassigned"]
        )
        return Plan(
            routes=routes,
            unassigned=unassigned,
            objective=data.get("objective", 0),
            solve_time_s=data.get("solve_time_s", 0.0),
            stats=dict(data.get("stats", {})),
        )


def read_kept_visits(path: str | Path) -> dict[str, tuple[str, ...]]:
    """Read the visits of a plan.json to keep when the day is planned again.

    A dispatcher marks a stop to keep by adding ``"keep": true`` to it in
    plan.json (for example the visits already made, or promised to the
    debtor). When no stop of the file carries a ``keep`` field, every stop is
    kept. Kept visits stay with their route's collector (or crew) in their
    order; ``solve(..., keep=...)`` fits the other cases around them.

    Returns
    -------
    dict[str, tuple[str, ...]]
        Route id (``collector_id``) -> kept case ids in visiting order;
        routes with nothing kept are left out.
    """
    data = _load_json(path, PLAN_FORMAT)
    with _decoding(path):
        marked = any("keep" in s for r in data["routes"] for s in r["stops"])
        kept: dict[str, tuple[str, ...]] = {}
        seen: set[str] = set()
        for route in data["routes"]:
            route_id = str(route["collector_id"])
            if route_id in seen:
                raise ValueError(f"two routes carry collector_id {route_id}")
            seen.add(route_id)
            order = []
            for stop in route["stops"]:
                flag = stop.get("keep", not marked)
                if not isinstance(flag, bool):
                    raise ValueError(
                        f"'keep' of the stop at {stop['case_id']} is {flag!r}, not true or false"
                    )
                if flag:
                    order.append(str(stop["case_id"]))
            if order:
                kept[route_id] = tuple(order)
        return kept


# --- plan outputs ---------------------------------------------------------------------------


def _windows_text(windows: Iterable[TimeWindow]) -> str:
    return ";".join(str(w) for w in windows)


def _point(location: Location) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [location.lon, location.lat]}


def _route_coords(problem: Problem, route: Route, itinerary: Itinerary | None) -> list[list[float]]:
    """Trace a route along the roads of its itinerary, else straight between its points."""
    collector = problem.collector(route.collector_id)
    if itinerary is not None:
        legs = [s.leg.coords for s in itinerary.stops] + [itinerary.return_leg.coords]
        points = [point for leg in legs for point in leg]
    else:
        locations = [
            collector.start,
            *(problem.case(s.case_id).location for s in route.stops),
            collector.end,
        ]
        points = [(loc.lon, loc.lat) for loc in locations]
    line: list[list[float]] = []
    for lon, lat in points:
        if not line or line[-1] != [lon, lat]:
            line.append([lon, lat])
    # A LineString needs two positions even when the collector never leaves the start.
    return line if len(line) >= 2 else line * 2


def _plan_features(
    problem: Problem, plan: Plan, itineraries: Sequence[Itinerary]
) -> list[dict[str, Any]]:
    by_collector = {it.collector.id: it for it in itineraries}
    routes, stops, unassigned = [], [], []
    for route in plan.routes:
        collector = problem.collector(route.collector_id)
        routes.append(
            {
                "type": "Feature",
                "geometry": {
                    "type": "LineString",
                    "coordinates": _route_coords(
                        problem, route, by_collector.get(route.collector_id)
                    ),
                },
                "properties": {
                    "kind": "route",
                    "collector_id": collector.id,
                    "name": collector.name,
                    "mode": collector.mode.value,
                    "visits": len(route.stops),
                    "travel_time_s": route.travel_time_s,
                    "distance_m": route.distance_m,
                    "start": problem.to_datetime(route.start_s).isoformat(),
                    "end": problem.to_datetime(route.end_s).isoformat(),
                    "start_hhmm": format_clock(route.start_s),
                    "end_hhmm": format_clock(route.end_s),
                    "members": ";".join(route.members),
                    "crew_id": _crew_id(problem, route),
                    **_break_properties(problem, route),
                },
            }
        )
        for number, stop in enumerate(route.stops, start=1):
            case = problem.case(stop.case_id)
            properties: dict[str, Any] = {
                "kind": "stop",
                "case_id": case.id,
                "collector_id": collector.id,
                "stop": number,
                "address": case.address,
            }
            times = (("arrival", stop.arrival_s), ("start", stop.start_s), ("end", stop.end_s))
            for name, seconds in times:
                properties[name] = problem.to_datetime(seconds).isoformat()
                properties[f"{name}_hhmm"] = format_clock(seconds)
            properties |= {
                "wait_s": stop.wait_s,
                "travel_time_s": stop.travel_time_s,
                "distance_m": stop.distance_m,
                "windows": _windows_text(case.windows),
            }
            stops.append(
                {"type": "Feature", "geometry": _point(case.location), "properties": properties}
            )
    for item in plan.unassigned:
        case = problem.case(item.case_id)
        unassigned.append(
            {
                "type": "Feature",
                "geometry": _point(case.location),
                "properties": {
                    "kind": "unassigned",
                    "case_id": case.id,
                    "reason": item.reason.value,
                    "detail": item.detail,
                    "address": case.address,
                    "windows": _windows_text(case.windows),
                    "skills": ";".join(sorted(case.skills)),
                },
            }
        )
    return routes + stops + unassigned


def _crew_id(problem: Problem, route: Route) -> str | None:
    if not route.member_ids:
        return None
    crew = problem.crew_of(route.collector_id)
    return None if crew is None else crew.id


def _break_properties(problem: Problem, route: Route) -> dict[str, str | None]:
    """The route's break as GeoJSON properties (null when it takes none)."""
    properties: dict[str, str | None] = {}
    for name, seconds in (("break_start", route.break_start_s), ("break_end", route.break_end_s)):
        if seconds is None:
            properties[name] = properties[f"{name}_hhmm"] = None
        else:
            properties[name] = problem.to_datetime(seconds).isoformat()
            properties[f"{name}_hhmm"] = format_clock(seconds)
    return properties


def _write_csv(path: Path, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)


def _write_plan_geojson(
    path: Path, problem: Problem, plan: Plan, itineraries: Sequence[Itinerary]
) -> None:
    collection = {
        "type": "FeatureCollection",
        "features": _plan_features(problem, plan, itineraries),
    }
    with path.open("w", encoding="utf-8") as handle:
        json.dump(collection, handle, ensure_ascii=False)
        handle.write("\n")


def _clock_or_empty(seconds: int | None) -> str:
    return "" if seconds is None else format_clock(seconds)


def _write_stops_csv(path: Path, problem: Problem, plan: Plan) -> None:
    rows = []
    for route in plan.routes:
        # Each row repeats its route's people and break, so that a filtered sheet keeps them.
        members = ";".join(route.members)
        rest = (_clock_or_empty(route.break_start_s), _clock_or_empty(route.break_end_s))
        for number, stop in enumerate(route.stops, start=1):
            case = problem.case(stop.case_id)
            rows.append(
                (
                    route.collector_id,
                    number,
                    case.id,
                    case.address,
                    format_clock(stop.arrival_s),
                    format_clock(stop.start_s),
                    format_clock(stop.end_s),
                    stop.wait_s,
                    stop.travel_time_s,
                    stop.distance_m,
                    _windows_text(case.windows),
                    members,
                    *rest,
                )
            )
    _write_csv(path, STOP_COLUMNS, rows)


def _write_unassigned_csv(path: Path, problem: Problem, plan: Plan) -> None:
    rows = [
        (u.case_id, u.reason.value, u.detail, problem.case(u.case_id).address)
        for u in plan.unassigned
    ]
    _write_csv(path, UNASSIGNED_COLUMNS, rows)


def _write_skipped_csv(path: Path, skipped: Sequence[RowError]) -> None:
    _write_csv(path, SKIPPED_COLUMNS, ((e.file, e.row, e.column, e.reason) for e in skipped))


def write_outputs(
    out_dir: str | Path,
    problem: Problem,
    plan: Plan,
    itineraries: Sequence[Itinerary],
    *,
    skipped: Sequence[RowError] = (),
    network_source: str | None = None,
    audit: Mapping[str, Any] | None = None,
    triage: Sequence[TriageDecision] = (),
) -> list[Path]:
    """Write a plan's files into a folder, all of them or none.

    Writes ``problem.json``, ``plan.json``, ``plan.geojson`` (a LineString per
    route along the roads of its itinerary, a Point per stop and per
    unassigned case), ``stops.csv`` (a row per visit, with the route's
    members and break), ``unassigned.csv`` and, when given,
    ``skipped.csv`` (rows skipped), ``audit.json`` (the compliance audit
    record) and ``triage.csv`` (the channel decided for every case). Files
    are written into a temporary folder beside ``out_dir`` and moved into
    place only when all of them are complete;
    other files already in ``out_dir`` (such as maps) are left alone.

    Returns
    -------
    list[Path]
        The written files, in the order above.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        write_problem(problem, staging / "problem.json", network_source=network_source)
        write_plan(plan, staging / "plan.json")
        _write_plan_geojson(staging / "plan.geojson", problem, plan, itineraries)
        _write_stops_csv(staging / "stops.csv", problem, plan)
        _write_unassigned_csv(staging / "unassigned.csv", problem, plan)
        names = ["problem.json", "plan.json", "plan.geojson", "stops.csv", "unassigned.csv"]
        if skipped:
            _write_skipped_csv(staging / "skipped.csv", skipped)
            names.append("skipped.csv")
        if audit is not None:
            _write_json(dict(audit), staging / "audit.json")
            names.append("audit.json")
        if triage:
            _write_triage_csv(staging / "triage.csv", triage)
            names.append("triage.csv")
        if not out_dir.exists():
            staging.rename(out_dir)
        else:
            for name in names:
                os.replace(staging / name, out_dir / name)
            # Files left from an earlier run would describe other inputs or another policy.
            for optional in ("skipped.csv", "audit.json", "triage.csv"):
                if optional not in names:
                    (out_dir / optional).unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out_dir / name for name in names]


def _write_triage_csv(path: Path, decisions: Sequence[TriageDecision]) -> None:
    rows = (
        (
            d.case_id,
            d.channel.value,
            d.rule.value,
            d.detail,
            f"{d.payment_probability:.3f}",
            f"{d.expected_recovery_cents / 100:.2f}",
        )
        for d in decisions
    )
    _write_csv(path, TRIAGE_COLUMNS, rows)
