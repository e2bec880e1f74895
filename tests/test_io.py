"""Reading cases and collectors, writing problems, plans and their output files."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pytest

from dispatch import io
from dispatch.errors import InputError, RowError
from dispatch.itinerary import Itinerary, ItineraryStop, Leg
from dispatch.model import (
    ALL_DAY,
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

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"

CASE_ROW = {
    "case_id": "C-1",
    "lat": "60.1699",
    "lon": "24.9384",
    "days_past_due": "120",
    "amount": "1234.50",
    "value": "400.00",
    "skills": "legal;swedish",
    "service_min": "20",
    "windows": "09:00-12:00;17:00-20:00",
    "preferred_collector": "K-1",
    "address": "Annankatu 25 B 14, 00100 Helsinki",
}
COLLECTOR_ROW = {
    "collector_id": "K-1",
    "name": "Aino Virtanen",
    "start_lat": "60.1699",
    "start_lon": "24.9384",
    "end_lat": "60.1642",
    "end_lon": "24.9423",
    "shift_start": "08:00",
    "shift_end": "16:00",
    "skills": "legal",
    "max_visits": "12",
    "mode": "walk",
}


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    columns = columns or list(rows[0])
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def only_error(excinfo: pytest.ExceptionInfo[InputError]) -> RowError:
    assert len(excinfo.value.errors) == 1, excinfo.value.errors
    return excinfo.value.errors[0]


# --- reading ------------------------------------------------------------------------------


def test_a_good_case_row_reads_into_exact_values(tmp_path):
    result = io.read_cases(write_csv(tmp_path / "cases.csv", [CASE_ROW]))
    assert result.skipped == ()
    assert result.items == (
        Case(
            id="C-1",
            location=Location(60.1699, 24.9384),
            address="Annankatu 25 B 14, 00100 Helsinki",
            days_past_due=120,
            amount_cents=123450,
            value_cents=40000,
            skills=frozenset({"legal", "swedish"}),
            service_s=20 * 60,
            windows=(TimeWindow(9 * 3600, 12 * 3600), TimeWindow(17 * 3600, 20 * 3600)),
            preferred_collector="K-1",
        ),
    )


def test_optional_case_columns_take_their_defaults(tmp_path):
    row = {k: CASE_ROW[k] for k in ("case_id", "lat", "lon", "days_past_due", "amount")}
    (case,) = io.read_cases(write_csv(tmp_path / "cases.csv", [row])).items
    assert case.value_cents == case.amount_cents == 123450
    assert case.windows == (ALL_DAY,)
    assert case.service_s == io.DEFAULT_SERVICE_MIN * 60
    assert case.skills == frozenset()
    assert case.preferred_collector is None
    assert case.load == 0


def test_load_and_capacity_columns_read_into_the_case_and_collector(tmp_path):
    (case,) = io.read_cases(write_csv(tmp_path / "cases.csv", [CASE_ROW | {"load": "3"}])).items
    assert case.load == 3
    rows = [COLLECTOR_ROW | {"capacity": "40"}, COLLECTOR_ROW | {"collector_id": "K-2"}]
    first, second = io.read_collectors(write_csv(tmp_path / "collectors.csv", rows)).items
    assert (first.capacity, second.capacity) == (40, None)


@pytest.mark.parametrize(
    ("read", "row", "column", "value", "reason"),
    [
        (io.read_cases, CASE_ROW, "load", "-2", "load -2 is negative"),
        (io.read_cases, CASE_ROW, "load", "1.5", "'1.5' is not a whole number"),
        (io.read_collectors, COLLECTOR_ROW, "capacity", "-1", "capacity -1 is negative"),
        (io.read_collectors, COLLECTOR_ROW, "capacity", "lots", "'lots' is not a whole number"),
    ],
)
def test_bad_loads_and_capacities_name_file_row_column_and_rule(
    tmp_path, read, row, column, value, reason
):
    bad = row | {column: value, row_id(row): "X"}
    path = write_csv(tmp_path / "rows.csv", [row, bad], columns=list(bad))
    with pytest.raises(InputError) as excinfo:
        read(path)
    error = only_error(excinfo)
    assert (error.file, error.row, error.column, error.reason) == (str(path), 3, column, reason)


def row_id(row: dict[str, str]) -> str:
    return "case_id" if "case_id" in row else "collector_id"


def test_skills_and_flags_are_lower_case_names(tmp_path):
    row = CASE_ROW | {"skills": " Legal ; SWEDISH;", "flags": "dispute;Bankruptcy"}
    (case,) = io.read_cases(write_csv(tmp_path / "cases.csv", [row])).items
    assert case.skills == frozenset({"legal", "swedish"})
    assert case.flags == frozenset({"dispute", "bankruptcy"})


@pytest.mark.parametrize(
    ("text", "cents"),
    [("0.1", 10), ("1234.5", 123450), ("1234.500", 123450), ("19.99", 1999), ("7", 700)],
)
def test_money_becomes_exact_cents(tmp_path, text, cents):
    path = write_csv(tmp_path / "cases.csv", [CASE_ROW | {"amount": text}])
    (case,) = io.read_cases(path).items
    assert case.amount_cents == cents


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("case_id", "", "a value is required"),
        ("lat", "95.0", "latitude 95.0 is outside -90..90"),
        ("lon", "-181", "longitude -181.0 is outside -180..180"),
        ("lat", "north", "'north' is not a number"),
        ("days_past_due", "abc", "'abc' is not a whole number"),
        ("days_past_due", "12.5", "'12.5' is not a whole number"),
        ("days_past_due", "-3", "days past due -3 is negative"),
        ("amount", "", "a value is required"),
        ("amount", "1234,50", "use a point as decimal separator"),
        ("amount", "€100", "'€100' is not an amount"),
        ("amount", "-5", "amount -5 is negative"),
        ("amount", "10.005", "amount 10.005 has more than 2 decimals"),
        ("value", "lots", "'lots' is not an amount"),
        ("skills", "legal,swedish", "skills must be ;-separated names"),
        ("skills", "senior collector", "skills must be ;-separated names"),
        ("service_min", "0", "service time 0 min must be positive"),
        ("service_min", "quick", "'quick' is not a number of minutes"),
        ("windows", "18:00-09:00", "time window 18:00-09:00 ends before it starts"),
        ("windows", "9-12", "'9' is not a time of day in HH:MM form"),
        ("windows", "09:00", "'09:00' is not a time window in HH:MM-HH:MM form"),
        ("windows", "09:00-12:00;11:00-13:00", "time windows 09:00-12:00 and 11:00-13:00 overlap"),
    ],
)
def test_each_bad_case_value_names_file_row_column_and_rule(tmp_path, column, value, reason):
    path = write_csv(
        tmp_path / "cases.csv", [CASE_ROW, CASE_ROW | {"case_id": "C-2", column: value}]
    )
    with pytest.raises(InputError) as excinfo:
        io.read_cases(path)
    error = only_error(excinfo)
    assert (error.file, error.row, error.column) == (str(path), 3, column)
    assert reason in error.reason
    assert f"row 3, column '{column}'" in str(excinfo.value)


@pytest.mark.parametrize(
    ("changes", "column", "reason"),
    [
        ({"mode": "car"}, "mode", "travel mode 'car' is not one of walk, bike, drive"),
        ({"shift_end": "07:00"}, "shift_end", "shift 08:00-07:00 ends before it starts"),
        ({"shift_end": "08:00"}, "shift_end", "shift 08:00-08:00 has no length"),
        ({"shift_start": "25:00"}, "shift_start", "is not a time of day between 00:00 and 24:00"),
        ({"shift_start": ""}, "shift_start", "a value is required"),
        ({"max_visits": "-1"}, "max_visits", "maximum visits -1 is negative"),
        ({"max_visits": "many"}, "max_visits", "'many' is not a whole number"),
        ({"start_lat": "-91"}, "start_lat", "latitude -91.0 is outside -90..90"),
        ({"end_lon": ""}, "end_lon", "end_lon is empty but end_lat is given"),
        ({"skills": "legal;;senior collector"}, "skills", "skills must be ;-separated names"),
    ],
)
def test_each_bad_collector_value_names_file_row_column_and_rule(tmp_path, changes, column, reason):
    path = write_csv(tmp_path / "collectors.csv", [COLLECTOR_ROW | changes])
    with pytest.raises(InputError) as excinfo:
        io.read_collectors(path)
    error = only_error(excinfo)
    assert (error.file, error.row, error.column) == (str(path), 2, column)
    assert reason in error.reason


def test_crew_size_and_appointment_columns_read_into_the_case(tmp_path):
    rows = [
        CASE_ROW | {"min_crew": "2", "appointment": "10:30", "appointment_tolerance_min": "15"},
        CASE_ROW | {"case_id": "C-2", "windows": "", "appointment": "14:00"},
        CASE_ROW | {"case_id": "C-3"},
    ]
    first, second, third = io.read_cases(write_csv(tmp_path / "cases.csv", rows)).items
    assert (first.min_crew, first.appointment_s, first.appointment_tolerance_s) == (
        2,
        10 * 3600 + 1800,
        15 * 60,
    )
    assert first.start_windows == (TimeWindow(10 * 3600 + 900, 10 * 3600 + 2700),)
    # The tolerance defaults to ten minutes either side.
    assert (second.appointment_s, second.appointment_tolerance_s) == (14 * 3600, 600)
    assert (third.min_crew, third.appointment_s) == (1, None)


@pytest.mark.parametrize(
    ("changes", "column", "reason"),
    [
        ({"min_crew": "0"}, "min_crew", "crew size 0 must be at least 1"),
        ({"min_crew": "two"}, "min_crew", "'two' is not a whole number"),
        ({"appointment": "half past ten"}, "appointment", "is not a time of day in HH:MM form"),
        (
            {"appointment": "13:00", "appointment_tolerance_min": "30"},
            "appointment",
            "appointment 13:00 ± 30 min lies outside every window 09:00-12:00;17:00-20:00",
        ),
        (
            {"appointment": "10:00", "appointment_tolerance_min": "-5"},
            "appointment_tolerance_min",
            "appointment tolerance -5 min is negative",
        ),
        (
            {"appointment": "10:00", "appointment_tolerance_min": "soon"},
            "appointment_tolerance_min",
            "'soon' is not a number of minutes",
        ),
    ],
)
def test_bad_crew_sizes_and_appointments_name_the_column_and_rule(
    tmp_path, changes, column, reason
):
    path = write_csv(tmp_path / "cases.csv", [CASE_ROW | changes])
    with pytest.raises(InputError) as excinfo:
        io.read_cases(path)
    error = only_error(excinfo)
    assert (error.file, error.row, error.column) == (str(path), 2, column)
    assert reason in error.reason


def test_a_collectors_break_reads_into_window_and_length(tmp_path):
    rows = [
        COLLECTOR_ROW | {"break_window": "11:00-13:30", "break_min": "30"},
        COLLECTOR_ROW | {"collector_id": "K-2", "break_window": "", "break_min": ""},
        COLLECTOR_ROW | {"collector_id": "K-3", "break_window": "11:00-13:30", "break_min": "0"},
    ]
    lunch, none, zero = io.read_collectors(write_csv(tmp_path / "collectors.csv", rows)).items
    assert (lunch.break_window, lunch.break_s) == (TimeWindow(11 * 3600, 13 * 3600 + 1800), 1800)
    assert (none.break_window, none.break_s) == (None, 0)
    assert (zero.break_window, zero.break_s) == (None, 0)


@pytest.mark.parametrize(
    ("changes", "column", "reason"),
    [
        ({"break_window": "11:00-13:30"}, "break_min", "break_min is empty but break_window"),
        ({"break_min": "30"}, "break_window", "a break of 30 min needs a break_window"),
        (
            {"break_window": "11:00-12:00;13:00-14:00", "break_min": "30"},
            "break_window",
            "is not one time window",
        ),
        ({"break_window": "13:00-11:00", "break_min": "30"}, "break_window", "ends before"),
        ({"break_window": "11:00-13:00", "break_min": "-30"}, "break_min", "break -30 min"),
        (
            {"break_window": "15:30-17:30", "break_min": "45"},
            "break_window",
            "a break of 45 min does not fit into break window 15:30-17:30 within shift 08:00-16:00",
        ),
    ],
)
def test_bad_breaks_name_the_column_and_rule(tmp_path, changes, column, reason):
    path = write_csv(tmp_path / "collectors.csv", [COLLECTOR_ROW | changes])
    with pytest.raises(InputError) as excinfo:
        io.read_collectors(path)
    error = only_error(excinfo)
    assert (error.file, error.row, error.column) == (str(path), 2, column)
    assert reason in error.reason


def team_of_four(tmp_path: Path) -> tuple[Collector, ...]:
    rows = [COLLECTOR_ROW | {"collector_id": f"K-{n}"} for n in range(1, 5)]
    rows[3] |= {"mode": "drive"}
    return io.read_collectors(write_csv(tmp_path / "collectors.csv", rows)).items


def test_crews_read_with_their_first_member_first(tmp_path):
    collectors = team_of_four(tmp_path)
    path = write_csv(
        tmp_path / "crews.csv",
        [{"crew_id": "W-1", "members": "K-2; K-1"}, {"crew_id": "W-2", "members": "K-3;K-4"}],
    )
    with pytest.raises(InputError) as excinfo:
        io.read_crews(path, collectors=collectors)
    # K-4 drives and K-3 walks: they cannot work as one crew.
    error = only_error(excinfo)
    assert (error.row, error.column) == (3, "members")
    assert "members travel in different modes: K-3 (walk), K-4 (drive)" in error.reason
    result = io.read_crews(path, collectors=collectors, skip_invalid=True)
    assert result.items == (Crew("W-1", ("K-2", "K-1")),)
    problem = Problem(dt.date(2026, 12, 1), "Europe/Helsinki", (), collectors, result.items)
    assert problem.team("K-1").id == "K-2"
    # Without the collectors only the file's own rules apply.
    assert len(io.read_crews(path).items) == 2


@pytest.mark.parametrize(
    ("rows", "row", "column", "reason"),
    [
        ([{"crew_id": "W-1", "members": "K-1"}], 2, "members", "a crew needs at least two members"),
        ([{"crew_id": "W-1", "members": "K-1;K-1"}], 2, "members", "name K-1 more than once"),
        ([{"crew_id": "W-1", "members": "K-1;K-9"}], 2, "members", "collector 'K-9' is not in"),
        ([{"crew_id": "", "members": "K-1;K-2"}], 2, "crew_id", "a value is required"),
        ([{"crew_id": "K-3", "members": "K-1;K-2"}], 2, "crew_id", "is also a collector's id"),
        (
            [{"crew_id": "W-1", "members": "K-1;K-2"}, {"crew_id": "W-2", "members": "K-3;K-2"}],
            3,
            "members",
            "collector K-2 is already in crew W-1 (row 2)",
        ),
        (
            [{"crew_id": "W-1", "members": "K-1;K-2"}, {"crew_id": "W-1", "members": "K-3;K-4"}],
            3,
            "crew_id",
            "duplicate crew_id 'W-1' (first seen on row 2)",
        ),
    ],
)
def test_each_bad_crew_names_file_row_column_and_rule(tmp_path, rows, row, column, reason):
    collectors = team_of_four(tmp_path)
    path = write_csv(tmp_path / "crews.csv", rows, ["crew_id", "members"])
    with pytest.raises(InputError) as excinfo:
        io.read_crews(path, collectors=collectors)
    errors = [e for e in excinfo.value.errors if e.row == row]
    assert [(e.file, e.column) for e in errors] == [(str(path), column)]
    assert reason in errors[0].reason


def test_crews_come_from_csv_only_and_need_both_columns(tmp_path):
    with pytest.raises(InputError, match=r"crews are read from \.csv"):
        io.read_crews(tmp_path / "crews.geojson")
    path = write_csv(tmp_path / "crews.csv", [{"crew_id": "W-1"}])
    with pytest.raises(InputError) as excinfo:
        io.read_crews(path)
    assert only_error(excinfo).reason == "required column 'members' is missing"


def test_a_collector_without_an_end_point_ends_where_it_starts(tmp_path):
    row = COLLECTOR_ROW | {"end_lat": "", "end_lon": "", "max_visits": "", "name": ""}
    (collector,) = io.read_collectors(write_csv(tmp_path / "collectors.csv", [row])).items
    assert collector.end == collector.start == Location(60.1699, 24.9384)
    assert collector.max_visits is None
    assert collector.name == "K-1"
    assert collector.mode is TravelMode.WALK


def test_every_bad_value_in_a_file_is_reported_together(tmp_path):
    rows = [
        CASE_ROW | {"case_id": "C-1", "lat": "95.0"},
        CASE_ROW | {"case_id": "C-2"},
        CASE_ROW | {"case_id": "C-3", "windows": "18:00-09:00", "amount": "-1"},
        CASE_ROW | {"case_id": "C-4"},
        CASE_ROW | {"case_id": "C-5", "days_past_due": "many"},
    ]
    path = write_csv(tmp_path / "cases.csv", rows)
    with pytest.raises(InputError) as excinfo:
        io.read_cases(path)
    found = [(e.row, e.column) for e in excinfo.value.errors]
    assert found == [(2, "lat"), (4, "amount"), (4, "windows"), (6, "days_past_due")]
    assert "4 invalid value(s)" in str(excinfo.value)


def test_duplicate_ids_name_both_rows_and_the_first_one_is_kept(tmp_path):
    rows = [
        CASE_ROW | {"case_id": "C-7"},
        CASE_ROW | {"case_id": "C-8"},
        CASE_ROW | {"case_id": "C-7", "amount": "99.00"},
    ]
    path = write_csv(tmp_path / "cases.csv", rows)
    with pytest.raises(InputError) as excinfo:
        io.read_cases(path)
    error = only_error(excinfo)
    assert (error.row, error.column) == (4, "case_id")
    assert error.reason == "duplicate case_id 'C-7' (first seen on row 2)"
    result = io.read_cases(path, skip_invalid=True)
    assert [(c.id, c.amount_cents) for c in result.items] == [("C-7", 123450), ("C-8", 123450)]


def test_duplicate_collector_ids_are_errors(tmp_path):
    path = write_csv(tmp_path / "collectors.csv", [COLLECTOR_ROW, COLLECTOR_ROW])
    with pytest.raises(InputError) as excinfo:
        io.read_collectors(path)
    assert only_error(excinfo).reason == "duplicate collector_id 'K-1' (first seen on row 2)"


def test_skip_invalid_returns_the_good_rows_and_lists_the_skipped_ones(tmp_path):
    rows = [
        CASE_ROW | {"case_id": "C-1"},
        CASE_ROW | {"case_id": "C-2", "amount": "-5", "lat": "x"},
        CASE_ROW | {"case_id": "C-3"},
        CASE_ROW | {"case_id": "C-4", "windows": "late"},
    ]
    path = write_csv(tmp_path / "cases.csv", rows)
    result = io.read_cases(path, skip_invalid=True)
    assert [c.id for c in result.items] == ["C-1", "C-3"]
    assert [(e.row, e.column) for e in result.skipped] == [
        (3, "lat"),
        (3, "amount"),
        (5, "windows"),
    ]
    assert all(e.file == str(path) for e in result.skipped)


def test_a_missing_required_column_fails_even_when_skipping(tmp_path):
    columns = [c for c in CASE_ROW if c != "lat"]
    path = write_csv(tmp_path / "cases.csv", [CASE_ROW], columns)
    with pytest.raises(InputError) as excinfo:
        io.read_cases(path, skip_invalid=True)
    error = only_error(excinfo)
    assert (error.row, error.column, error.reason) == (1, "lat", "required column 'lat' is missing")


def test_a_wrongly_cased_or_semicolon_separated_header_gets_a_hint(tmp_path):
    columns = ["Case_id" if c == "case_id" else c for c in CASE_ROW]
    path = write_csv(tmp_path / "cases.csv", [{**CASE_ROW, "Case_id": "C-1"}], columns)
    with pytest.raises(InputError) as excinfo:
        io.read_cases(path)
    assert "found 'Case_id'; names are case-sensitive" in only_error(excinfo).reason
    path.write_text(";".join(CASE_ROW) + "\n" + ";".join(CASE_ROW.values()) + "\n")
    with pytest.raises(InputError) as excinfo:
        io.read_cases(path)
    assert all("separate columns with ';'" in e.reason for e in excinfo.value.errors)


def test_rows_are_numbered_as_a_spreadsheet_shows_them(tmp_path):
    header = ",".join(CASE_ROW)
    good = ",".join(f'"{v}"' for v in CASE_ROW.values())
    bad = good.replace('"120"', '"x"').replace('"C-1"', '"C-2"')
    path = tmp_path / "cases.csv"
    # A BOM from a spreadsheet export, a blank line and a line break inside a quoted address.
    multiline = good.replace("Annankatu 25 B 14", "Annankatu 25\nB 14").replace("C-1", "C-3")
    path.write_text("\ufeff" + "\n".join([header, good, "", multiline, bad]) + "\n")
    with pytest.raises(InputError) as excinfo:
        io.read_cases(path)
    assert [(e.row, e.column) for e in excinfo.value.errors] == [(5, "days_past_due")]


def test_extra_columns_are_ignored_but_extra_values_are_not(tmp_path):
    path = write_csv(tmp_path / "cases.csv", [CASE_ROW | {"note": "call first"}])
    assert len(io.read_cases(path).items) == 1
    path.write_text(path.read_text().rstrip("\n") + ",surprise\n")
    with pytest.raises(InputError) as excinfo:
        io.read_cases(path)
    assert "13 values but the header names 12 columns" in only_error(excinfo).reason


def test_a_missing_file_is_an_error_naming_its_path(tmp_path):
    path = tmp_path / "nowhere" / "cases.csv"
    with pytest.raises(InputError) as excinfo:
        io.read_cases(path)
    assert str(path) in str(excinfo.value)
    assert "file not found" in str(excinfo.value)


def test_an_unknown_file_type_is_an_error(tmp_path):
    path = tmp_path / "cases.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(InputError, match=r"unknown file type '\.xlsx'"):
        io.read_cases(path)


@pytest.mark.parametrize(
    "content",
    ["", ",".join(CASE_ROW) + "\n", '{"type": "FeatureCollection", "features": []}'],
    ids=["empty", "header only", "no features"],
)
def test_a_file_without_records_gives_no_items_and_no_error(tmp_path, content):
    suffix = ".geojson" if content.startswith("{") else ".csv"
    path = tmp_path / f"cases{suffix}"
    path.write_text(content)
    assert io.read_cases(path) == io.ReadResult((), ())


def feature(geometry: dict | None, **properties: object) -> dict:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def point(lon: float, lat: float) -> dict:
    return {"type": "Point", "coordinates": [lon, lat]}


def write_geojson(path: Path, features: list[dict]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def test_geojson_features_are_read_with_exact_numbers(tmp_path):
    path = write_geojson(
        tmp_path / "cases.geojson",
        [
            feature(
                point(24.9384, 60.1699),
                case_id="C-1",
                days_past_due=120,
                amount=1234.56,
                skills=["legal", "swedish"],
                windows="09:00-12:00",
                service_min=None,
            ),
            # Mixed types in one column are each read as they are written.
            feature(point(24.94, 60.17), case_id="C-2", days_past_due="7", amount="0.10"),
        ],
    )
    first, second = io.read_cases(path).items
    assert first.location == Location(60.1699, 24.9384)
    assert (first.amount_cents, first.skills) == (123456, frozenset({"legal", "swedish"}))
    assert first.windows == (TimeWindow(9 * 3600, 12 * 3600),)
    assert first.service_s == io.DEFAULT_SERVICE_MIN * 60
    assert (second.days_past_due, second.amount_cents) == (7, 10)


def test_bad_geojson_features_are_numbered_from_one(tmp_path):
    square = {
        "type": "Polygon",
        "coordinates": [[[24.9, 60.1], [25, 60.1], [25, 60.2], [24.9, 60.1]]],
    }
    path = write_geojson(
        tmp_path / "cases.geojson",
        [
            feature(point(24.94, 60.17), case_id="C-1", days_past_due=1, amount=1),
            feature(square, case_id="C-2", days_past_due=1, amount=1),
            feature(None, case_id="C-3", days_past_due=1.5, amount=1),
            feature(point(24.94, 60.17), case_id="C-4", days_past_due=1),
        ],
    )
    with pytest.raises(InputError) as excinfo:
        io.read_cases(path)
    found = [(e.row, e.column, e.reason) for e in excinfo.value.errors]
    assert found == [
        (2, "geometry", "geometry is a Polygon, expected a Point"),
        (3, "geometry", "geometry is missing"),
        (3, "days_past_due", "'1.5' is not a whole number"),
        (4, "amount", "a value is required"),
    ]


def test_a_geojson_file_that_is_not_a_feature_collection_is_an_error(tmp_path):
    path = tmp_path / "cases.geojson"
    path.write_text('{"type": "Point", "coordinates": [1, 2]}')
    with pytest.raises(InputError, match="not a GeoJSON FeatureCollection"):
        io.read_cases(path)
    path.write_text("{not json")
    with pytest.raises(InputError, match="not JSON"):
        io.read_cases(path)


def test_csv_and_geojson_collectors_read_the_same(tmp_path):
    rows = [COLLECTOR_ROW, COLLECTOR_ROW | {"collector_id": "K-2", "end_lat": "", "end_lon": ""}]
    from_csv = io.read_collectors(write_csv(tmp_path / "collectors.csv", rows))
    features = [
        feature(
            point(float(r["start_lon"]), float(r["start_lat"])),
            **{k: v or None for k, v in r.items() if k not in ("start_lat", "start_lon")},
        )
        for r in rows
    ]
    from_geojson = io.read_collectors(write_geojson(tmp_path / "collectors.geojson", features))
    assert from_geojson == from_csv
    assert len(from_csv.items) == 2


# --- the sample city ------------------------------------------------------------------------


def test_the_sample_city_loads_without_errors():
    cases = io.read_cases(SAMPLE / "cases.csv")
    collectors = io.read_collectors(SAMPLE / "collectors.csv")
    assert (len(cases.items), len(collectors.items)) == (120, 10)
    assert cases.skipped == collectors.skipped == ()
    assert io.read_cases(SAMPLE / "cases.geojson") == cases
    assert {k.mode for k in collectors.items} == set(TravelMode)
    # Only the deliberate cases lack a collector holding their skills.
    unskilled = [c.id for c in cases.items if not any(k.can_serve(c) for k in collectors.items)]
    assert unskilled == ["C-118"]
    late = max(k.shift.end_s for k in collectors.items)
    assert [c.id for c in cases.items if c.windows[0].start_s >= late] == ["C-119"]
    # Two crews in two modes, a break for everyone, a few two-person visits and appointments.
    crews = io.read_crews(SAMPLE / "crews.csv", collectors=collectors.items)
    assert [(w.id, w.member_ids) for w in crews.items] == [
        ("W-1", ("K-01", "K-03")),
        ("W-2", ("K-05", "K-06")),
    ]
    day = Problem(
        dt.date(2026, 12, 1), "Europe/Helsinki", cases.items, collectors.items, crews.items
    )
    assert {t.mode for t in day.teams() if t.crew_id} == {TravelMode.DRIVE, TravelMode.WALK}
    lunch = TimeWindow(11 * 3600, 13 * 3600 + 1800)
    assert sum(k.break_window == lunch and k.break_s == 1800 for k in collectors.items) == 7
    assert all(k.break_s == 1800 for k in collectors.items)
    assert {c.id: c.min_crew for c in cases.items if c.min_crew > 1} == {
        "C-002": 2,
        "C-083": 2,
        "C-117": 2,
        "C-118": 3,
    }
    appointments = [c for c in cases.items if c.appointment_s is not None]
    assert len(appointments) == 5
    assert all(c.start_windows for c in appointments)


def test_regenerating_the_sample_reproduces_the_committed_files(tmp_path):
    subprocess.run(
        [sys.executable, str(SAMPLE / "make_sample.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for name in ("cases.csv", "cases.geojson", "collectors.csv", "crews.csv"):
        assert (tmp_path / name).read_bytes() == (SAMPLE / name).read_bytes(), name


# --- problem.json, plan.json and the output folder ------------------------------------------


@pytest.fixture
def problem() -> Problem:
    cases = (
        Case("C-1", Location(60.1699, 24.9384), address="Annankatu 25, 00100 Helsinki"),
        Case(
            "C-2",
            Location(60.1710, 24.9450),
            address="Vuorikatu 17 B 3, 00100 Helsinki",
            days_past_due=400,
            amount_cents=2_500_000,
            value_cents=400_000,
            skills=frozenset({"legal", "senior"}),
            service_s=40 * 60,
            windows=(TimeWindow(9 * 3600, 10 * 3600), TimeWindow(17 * 3600, 20 * 3600)),
            preferred_collector="K-1",
            flags=frozenset({"dispute"}),
        ),
        Case("C-3", Location(60.1650, 24.9500), windows=(TimeWindow(20 * 3600, 21 * 3600),)),
    )
    collectors = (
        Collector(
            "K-1",
            "Aino Virtanen",
            start=Location(60.1700, 24.9400),
            end=Location(60.1642, 24.9423),
            shift=TimeWindow(8 * 3600, 16 * 3600),
            skills=frozenset({"legal", "senior"}),
            max_visits=10,
            mode=TravelMode.DRIVE,
        ),
        Collector(
            "K-2",
            "Mikko Korhonen",
            start=Location(60.1700, 24.9400),
            end=Location(60.1700, 24.9400),
            shift=TimeWindow(12 * 3600, 20 * 3600),
            mode=TravelMode.WALK,
        ),
    )
    return Problem(dt.date(2026, 12, 1), "Europe/Helsinki", cases, collectors)


@pytest.fixture
def plan() -> Plan:
    stops = (
        Stop(
            "C-1", arrival_s=32_000, start_s=32_000, end_s=32_900, travel_time_s=200, distance_m=900
        ),
        Stop(
            "C-2", arrival_s=33_000, start_s=33_100, end_s=35_500, travel_time_s=100, distance_m=450
        ),
    )
    route = Route(
        "K-1",
        start_s=31_800,
        end_s=35_800,
        stops=stops,
        travel_time_s=600,
        distance_m=2_400,
        return_travel_time_s=300,
        return_distance_m=1_050,
    )
    return Plan(
        routes=(route,),
        unassigned=(Unassigned("C-3", Reason.NO_FEASIBLE_TIME, "window 20:00-21:00 after shifts"),),
        objective=123_456,
        solve_time_s=1.25,
        stats={"dropped": 1.0, "vehicles_used": 1},
    )


@pytest.fixture
def itineraries(problem: Problem, plan: Plan) -> tuple[Itinerary, ...]:
    route = plan.routes[0]
    legs = [
        Leg(200, 900, ((24.9400, 60.1700), (24.9390, 60.1702), (24.9384, 60.1699))),
        Leg(100, 450, ((24.9384, 60.1699), (24.9420, 60.1705), (24.9450, 60.1710))),
    ]
    stops = tuple(
        ItineraryStop(n, problem.case(s.case_id), s, leg)
        for n, (s, leg) in enumerate(zip(route.stops, legs, strict=True), start=1)
    )
    back = Leg(300, 1_050, ((24.9450, 60.1710), (24.9430, 60.1660), (24.9423, 60.1642)))
    return (Itinerary(problem.collector("K-1"), route, stops, back),)


def test_problem_json_round_trips_exactly(tmp_path, problem):
    path = io.write_problem(problem, tmp_path / "problem.json", network_source="city.osm.pbf")
    assert io.read_problem(path) == (problem, "city.osm.pbf")
    io.write_problem(problem, path, network_source=None)
    assert io.read_problem(path) == (problem, None)


def test_the_sample_problem_round_trips_exactly(tmp_path):
    sample = Problem(
        dt.date(2026, 12, 1),
        "Europe/Helsinki",
        io.read_cases(SAMPLE / "cases.csv").items,
        io.read_collectors(SAMPLE / "collectors.csv").items,
    )
    path = io.write_problem(sample, tmp_path / "problem.json", network_source=None)
    assert io.read_problem(path) == (sample, None)


@pytest.fixture
def crew_problem(problem: Problem) -> Problem:
    """The problem with a crew, breaks, an appointment and a visit that needs two."""
    lunch = TimeWindow(11 * 3600, 13 * 3600 + 1800)
    first, second = (
        dataclasses.replace(k, mode=TravelMode.WALK, break_window=lunch, break_s=1800)
        for k in problem.collectors
    )
    cases = (
        problem.cases[0],
        dataclasses.replace(problem.cases[1], min_crew=2),
        dataclasses.replace(
            problem.cases[2], appointment_s=20 * 3600 + 900, appointment_tolerance_s=300
        ),
    )
    return dataclasses.replace(
        problem, cases=cases, collectors=(first, second), crews=(Crew("W-1", ("K-1", "K-2")),)
    )


@pytest.fixture
def crew_plan(plan: Plan) -> Plan:
    route = dataclasses.replace(
        plan.routes[0], member_ids=("K-1", "K-2"), break_start_s=39_600, break_end_s=41_400
    )
    return dataclasses.replace(plan, routes=(route,))


def test_crews_appointments_and_breaks_round_trip_through_problem_json(tmp_path, crew_problem):
    path = io.write_problem(crew_problem, tmp_path / "problem.json", network_source=None)
    read, _ = io.read_problem(path)
    assert read == crew_problem
    assert read.crews == (Crew("W-1", ("K-1", "K-2")),)
    assert read.team("K-2").member_ids == ("K-1", "K-2")
    assert read.case("C-2").min_crew == 2
    assert (read.case("C-3").appointment_s, read.case("C-3").appointment_tolerance_s) == (
        72_900,
        300,
    )
    assert read.collector("K-2").break_s == 1800


def test_loads_and_capacities_round_trip_through_problem_json(tmp_path, problem):
    loaded = dataclasses.replace(
        problem,
        cases=tuple(dataclasses.replace(c, load=i + 1) for i, c in enumerate(problem.cases)),
        collectors=tuple(dataclasses.replace(k, capacity=9) for k in problem.collectors),
    )
    path = io.write_problem(loaded, tmp_path / "problem.json", network_source=None)
    read, _ = io.read_problem(path)
    assert read == loaded
    assert [c.load for c in read.cases] == list(range(1, len(read.cases) + 1))


def test_a_problem_json_without_the_new_fields_reads_with_their_defaults(tmp_path, problem):
    path = io.write_problem(problem, tmp_path / "problem.json", network_source=None)
    data = json.loads(path.read_text())
    del data["crews"]
    for case in data["cases"]:
        for name in ("min_crew", "appointment_s", "appointment_tolerance_s", "load"):
            del case[name]
    for collector in data["collectors"]:
        del collector["break_window"], collector["break_s"], collector["capacity"]
    path.write_text(json.dumps(data))
    assert io.read_problem(path) == (problem, None)


def test_a_crew_route_and_its_break_round_trip_through_plan_json(tmp_path, crew_plan):
    path = io.write_plan(crew_plan, tmp_path / "plan.json")
    assert io.read_plan(path) == crew_plan
    route = json.loads(path.read_text())["routes"][0]
    assert (route["member_ids"], route["break_start_s"], route["break_end_s"]) == (
        ["K-1", "K-2"],
        39_600,
        41_400,
    )


def test_a_solved_crew_plan_read_back_from_json_passes_the_checker(tmp_path):
    from synthetic_days import QUICK, make_matrices, rules_day

    from dispatch.explain import check_plan
    from dispatch.solve import solve

    day = rules_day(14, 4, seed=3, crews=1, crew_cases=0.3)
    matrices = make_matrices(day)
    solved = solve(day, matrices, params=QUICK)
    crew_route = next(r for r in solved.routes if r.member_ids)
    assert crew_route.break_start_s is not None
    assert any(day.case(c).min_crew == 2 for c in crew_route.case_ids)
    io.write_problem(day, tmp_path / "problem.json", network_source=None)
    io.write_plan(solved, tmp_path / "plan.json")
    problem, _ = io.read_problem(tmp_path / "problem.json")
    plan = io.read_plan(tmp_path / "plan.json")
    assert plan == solved
    assert check_plan(problem, matrices, plan) == []
    # Dropping the crew's members from the file is caught, not silently trusted.
    data = json.loads((tmp_path / "plan.json").read_text())
    for route in data["routes"]:
        route.pop("member_ids")
    (tmp_path / "plan.json").write_text(json.dumps(data))
    codes = {v.code for v in check_plan(problem, matrices, io.read_plan(tmp_path / "plan.json"))}
    assert "CREW_MEMBERS" in codes


def test_every_stop_is_kept_unless_some_are_marked(tmp_path, plan):
    path = io.write_plan(plan, tmp_path / "plan.json")
    assert io.read_kept_visits(path) == {"K-1": ("C-1", "C-2")}
    data = json.loads(path.read_text())
    data["routes"][0]["stops"][1]["keep"] = True
    path.write_text(json.dumps(data))
    assert io.read_kept_visits(path) == {"K-1": ("C-2",)}
    data["routes"][0]["stops"][1]["keep"] = False
    path.write_text(json.dumps(data))
    assert io.read_kept_visits(path) == {}
    data["routes"][0]["stops"][1]["keep"] = "yes"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="'keep' of the stop at C-2 is 'yes'"):
        io.read_kept_visits(path)


def test_stops_csv_and_geojson_name_a_crew_and_its_break(
    tmp_path, crew_problem, crew_plan, itineraries
):
    out = tmp_path / "out"
    io.write_outputs(out, crew_problem, crew_plan, itineraries)
    stops = read_csv_rows(out / "stops.csv")
    assert {(r["members"], r["break_start"], r["break_end"]) for r in stops} == {
        ("K-1;K-2", "11:00", "11:30")
    }
    with (out / "plan.geojson").open(encoding="utf-8") as handle:
        route = json.load(handle)["features"][0]["properties"]
    assert (route["members"], route["crew_id"]) == ("K-1;K-2", "W-1")
    assert (route["break_start_hhmm"], route["break_end_hhmm"]) == ("11:00", "11:30")
    assert route["break_start"] == "2026-12-01T11:00:00+02:00"


def test_plan_json_round_trips_exactly(tmp_path, plan):
    path = io.write_plan(plan, tmp_path / "plan.json")
    assert io.read_plan(path) == plan
    empty = Plan(routes=(), unassigned=())
    assert io.read_plan(io.write_plan(empty, tmp_path / "empty.json")) == empty


def test_reading_the_wrong_json_file_says_what_it_is(tmp_path, problem, plan):
    plan_path = io.write_plan(plan, tmp_path / "plan.json")
    with pytest.raises(InputError, match="not a dispatch-problem file"):
        io.read_problem(plan_path)
    broken = json.loads(plan_path.read_text())
    del broken["routes"][0]["stops"][0]["start_s"]
    plan_path.write_text(json.dumps(broken))
    with pytest.raises(InputError, match="lacks the field 'start_s'"):
        io.read_plan(plan_path)


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_write_outputs_writes_every_file(tmp_path, problem, plan, itineraries):
    out = tmp_path / "out"
    skipped = [RowError("cases.csv", 7, "amount", "amount -5 is negative")]
    written = io.write_outputs(
        out, problem, plan, itineraries, skipped=skipped, network_source="city.osm.pbf"
    )
    names = ["problem.json", "plan.json", "plan.geojson", "stops.csv", "unassigned.csv"]
    assert written == [out / n for n in [*names, "skipped.csv"]]
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, "skipped.csv"])
    assert io.read_problem(out / "problem.json") == (problem, "city.osm.pbf")
    assert io.read_plan(out / "plan.json") == plan

    stops = read_csv_rows(out / "stops.csv")
    assert [(r["collector_id"], r["stop"], r["case_id"]) for r in stops] == [
        ("K-1", "1", "C-1"),
        ("K-1", "2", "C-2"),
    ]
    assert stops[1] | {"address": ""} == {
        "collector_id": "K-1",
        "stop": "2",
        "case_id": "C-2",
        "address": "",
        "arrival": "09:10",
        "start": "09:11",
        "end": "09:51",
        "wait_s": "100",
        "travel_time_s": "100",
        "distance_m": "450",
        "windows": "09:00-10:00;17:00-20:00",
        "members": "K-1",
        "break_start": "",
        "break_end": "",
    }
    assert read_csv_rows(out / "unassigned.csv") == [
        {
            "case_id": "C-3",
            "reason": "NO_FEASIBLE_TIME",
            "detail": "window 20:00-21:00 after shifts",
            "address": "",
        }
    ]
    assert read_csv_rows(out / "skipped.csv") == [
        {"file": "cases.csv", "row": "7", "column": "amount", "reason": "amount -5 is negative"}
    ]


def test_plan_geojson_holds_routes_stops_and_unassigned_cases(tmp_path, problem, plan, itineraries):
    out = tmp_path / "out"
    io.write_outputs(out, problem, plan, itineraries)
    frame = gpd.read_file(out / "plan.geojson")
    assert frame.crs.to_epsg() == 4326
    kinds = dict(zip(frame["kind"], frame.geometry.geom_type, strict=False))
    assert list(frame["kind"]) == ["route", "stop", "stop", "unassigned"]
    assert kinds == {"route": "LineString", "stop": "Point", "unassigned": "Point"}

    route = frame[frame["kind"] == "route"].iloc[0]
    assert (route["collector_id"], route["name"], route["mode"]) == (
        "K-1",
        "Aino Virtanen",
        "drive",
    )
    assert (route["visits"], route["travel_time_s"], route["distance_m"]) == (2, 600, 2_400)
    # The line follows the legs on the roads, joined without repeating shared ends.
    assert list(route.geometry.coords) == [
        (24.9400, 60.1700),
        (24.9390, 60.1702),
        (24.9384, 60.1699),
        (24.9420, 60.1705),
        (24.9450, 60.1710),
        (24.9430, 60.1660),
        (24.9423, 60.1642),
    ]

    second = frame[(frame["kind"] == "stop") & (frame["stop"] == 2)].iloc[0]
    assert (second["case_id"], second["collector_id"]) == ("C-2", "K-1")
    assert (second.geometry.x, second.geometry.y) == (24.9450, 60.1710)
    # GDAL reads HH:MM text as times of day.
    assert (second["arrival_hhmm"], second["start_hhmm"], second["end_hhmm"]) == (
        dt.time(9, 10),
        dt.time(9, 11),
        dt.time(9, 51),
    )
    with (out / "plan.geojson").open(encoding="utf-8") as handle:
        raw = json.load(handle)["features"]
    assert raw[2]["properties"]["start"] == "2026-12-01T09:11:40+02:00"
    assert raw[2]["properties"]["windows"] == "09:00-10:00;17:00-20:00"

    dropped = frame[frame["kind"] == "unassigned"].iloc[0]
    assert (dropped["case_id"], dropped["reason"]) == ("C-3", "NO_FEASIBLE_TIME")
    assert dropped["detail"] == "window 20:00-21:00 after shifts"


def test_a_route_without_an_itinerary_is_drawn_straight(tmp_path, problem, plan):
    out = tmp_path / "out"
    io.write_outputs(out, problem, plan, ())
    frame = gpd.read_file(out / "plan.geojson")
    line = frame[frame["kind"] == "route"].geometry.iloc[0]
    assert list(line.coords) == [
        (24.9400, 60.1700),
        (24.9384, 60.1699),
        (24.9450, 60.1710),
        (24.9423, 60.1642),
    ]


def test_rewriting_an_output_folder_keeps_other_files_and_drops_a_stale_skipped_csv(
    tmp_path, problem, plan, itineraries
):
    out = tmp_path / "out"
    out.mkdir()
    (out / "overview.html").write_text("<html></html>")
    skipped = [RowError("cases.csv", 2, "lat", "'x' is not a number")]
    io.write_outputs(out, problem, plan, itineraries, skipped=skipped)
    assert (out / "skipped.csv").is_file()
    io.write_outputs(out, problem, plan, itineraries)
    assert not (out / "skipped.csv").exists()
    assert (out / "overview.html").read_text() == "<html></html>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failure_while_writing_leaves_no_partial_output(
    tmp_path, monkeypatch, problem, plan, itineraries
):
    def fail(*args: object) -> None:
        raise OSError("disk full")

    # Simulates the disk filling up after problem.json, plan.json and plan.geojson are written.
    monkeypatch.setattr(io, "_write_stops_csv", fail)
    fresh = tmp_path / "fresh"
    with pytest.raises(OSError, match="disk full"):
        io.write_outputs(fresh, problem, plan, itineraries)
    assert not fresh.exists()

    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "plan.json").write_text("yesterday")
    with pytest.raises(OSError, match="disk full"):
        io.write_outputs(existing, problem, plan, itineraries)
    assert [p.name for p in existing.iterdir()] == ["plan.json"]
    assert (existing / "plan.json").read_text() == "yesterday"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]
