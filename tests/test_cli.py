"""End to end: `dispatch plan` on the sample city, then `dispatch check` on what it wrote."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dispatch import io
from dispatch.cli import app
from dispatch.model import Reason

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"
runner = CliRunner()


def run_plan(out: Path, cache: Path, *extra: str, cases: Path | None = None):
    return runner.invoke(
        app,
        [
            "plan",
            "--cases",
            str(cases or SAMPLE / "cases.csv"),
            "--collectors",
            str(SAMPLE / "collectors.csv"),
            "--crews",
            str(SAMPLE / "crews.csv"),
            "--date",
            "2026-12-01",
            "--out",
            str(out),
            "--time-limit",
            "3",
            "--cache-dir",
            str(cache),
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("sample")
    out, cache = base / "out", base / "cache"
    result = run_plan(out, cache)
    assert result.exit_code == 0, result.output
    return out, cache, result.output


def test_plan_writes_every_output_and_a_summary(sample_run):
    out, _, output = sample_run
    for name in ("plan.json", "problem.json", "plan.geojson", "stops.csv", "unassigned.csv"):
        assert (out / name).is_file(), name
    assert (out / "overview.html").is_file()
    collector_ids = [c.id for c in io.read_collectors(SAMPLE / "collectors.csv").items]
    plan = io.read_plan(out / "plan.json")
    for route in plan.routes:
        if route.stops:
            assert (out / "collectors" / f"{route.collector_id}.html").is_file()
    # The summary names every collector and counts the unassigned cases by reason.
    for collector_id in collector_ids:
        assert collector_id in output
    assert "cases planned" in output
    for reason in {u.reason.value for u in plan.unassigned}:
        assert reason in output


def test_the_sample_day_plans_its_crews_breaks_and_appointments(sample_run):
    out, _, output = sample_run
    problem, _ = io.read_problem(out / "problem.json")
    plan = io.read_plan(out / "plan.json")
    assert [(w.id, w.member_ids) for w in problem.crews] == [
        ("W-1", ("K-01", "K-03")),
        ("W-2", ("K-05", "K-06")),
    ]
    crew_routes = {r.collector_id: r.member_ids for r in plan.routes if r.member_ids}
    assert crew_routes == {"K-01": ("K-01", "K-03"), "K-05": ("K-05", "K-06")}
    # Each crew member has a page; the crew's second member works on no route of their own.
    for member in ("K-01", "K-03", "K-05", "K-06"):
        assert (out / "collectors" / f"{member}.html").is_file()
    assert plan.route_of("K-03") is None
    assert all(r.break_start_s is not None for r in plan.routes if r.stops)
    # The two-person visits are made by a crew; every appointment is kept.
    visitors = {s.case_id: r.members for r in plan.routes for s in r.stops}
    for case in problem.cases:
        if case.min_crew == 2 and case.id in visitors:
            assert len(visitors[case.id]) >= 2
        if case.appointment_s is not None:
            assert case.id in visitors
    text = " ".join(output.split())
    assert "crews: W-1 (K-01 + K-03), W-2 (K-05 + K-06)" in text
    routes = sum(1 for r in plan.routes if r.stops)
    assert f"breaks: {routes} of {routes} routes due a break take it" in text
    assert "appointments: 5 of 5 kept" in text
    assert re.search(r"continuity: \d of 6 cases visited by their preferred collector", text)
    assert re.search(rf"spread over {routes} routes: \d+-\d+ visits \(\d+ apart\)", text)
    assert re.search(r"value: [\d,]+\.\d\d planned, [\d,]+\.\d\d dropped", text)
    explained = runner.invoke(app, ["explain", "C-002", "--plan-dir", str(out)])
    assert "needs a crew of 2 at the door" in explained.output
    if "C-002" in visitors:
        assert "crew W-1 (K-01 + K-03)" in " ".join(explained.output.split())


def test_every_sample_case_is_planned_or_unassigned_once(sample_run):
    out, _, _ = sample_run
    problem, _ = io.read_problem(out / "problem.json")
    plan = io.read_plan(out / "plan.json")
    routed = [s.case_id for r in plan.routes for s in r.stops]
    dropped = [u.case_id for u in plan.unassigned]
    assert len(routed) == len(set(routed))
    assert sorted(routed + dropped) == sorted(c.id for c in problem.cases)
    # The sample city plans most of its cases; the few it cannot are explained.
    assert len(routed) >= 0.8 * len(problem.cases)
    for unassigned in plan.unassigned:
        assert unassigned.detail
        case = problem.case(unassigned.case_id)
        if unassigned.reason is Reason.NO_QUALIFIED_COLLECTOR:
            assert not any(k.can_serve(case) for k in problem.collectors)
        if unassigned.reason is Reason.NO_CREW:
            assert not any(t.can_serve(case) for t in problem.teams())


def test_stops_csv_matches_the_plan(sample_run):
    out, _, _ = sample_run
    plan = io.read_plan(out / "plan.json")
    with (out / "stops.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == sum(len(r.stops) for r in plan.routes)
    with (out / "unassigned.csv").open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(plan.unassigned)


def test_check_finds_no_violation_in_the_solver_plan(sample_run):
    out, cache, _ = sample_run
    # Through the installed console script, as a dispatcher would run it.
    script = Path(sys.executable).with_name("dispatch")
    completed = subprocess.run(
        [
            str(script),
            "check",
            str(out / "problem.json"),
            str(out / "plan.json"),
            "--cache-dir",
            str(cache),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "no violations" in completed.stdout


def test_check_reports_a_hand_edit_that_breaks_the_plan(sample_run, tmp_path):
    out, cache, _ = sample_run
    plan = io.read_plan(out / "plan.json")
    route = next(r for r in plan.routes if len(r.stops) >= 2)
    # The dispatcher moves the last visit of a route to before its first one without re-timing.
    stops = (route.stops[-1], *route.stops[:-1])
    edited = dataclasses.replace(
        plan,
        routes=tuple(dataclasses.replace(r, stops=stops) if r is route else r for r in plan.routes),
    )
    io.write_plan(edited, tmp_path / "edited.json")
    result = runner.invoke(
        app,
        [
            "check",
            str(out / "problem.json"),
            str(tmp_path / "edited.json"),
            "--cache-dir",
            str(cache),
        ],
    )
    assert result.exit_code == 1
    # The checker names the route's collector, or its crew.
    problem, _ = io.read_problem(out / "problem.json")
    crew = problem.crew_of(route.collector_id)
    assert (crew.id if crew else route.collector_id) in result.output


def test_bad_rows_are_all_reported_and_nothing_is_written(sample_run, tmp_path):
    _, cache, _ = sample_run
    bad = tmp_path / "cases.csv"
    with (SAMPLE / "cases.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    fields = list(rows[0])
    rows[0]["lat"] = "95.0"
    rows[2]["windows"] = "18:00-09:00"
    rows[4]["days_past_due"] = "many"
    with bad.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "out"
    result = run_plan(out, cache, cases=bad)
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    for row, column in ((2, "lat"), (4, "windows"), (6, "days_past_due")):
        assert f"row {row}, column '{column}'" in text
    assert "cases.csv" in text
    assert not out.exists() or not any(out.iterdir())


def test_skip_invalid_plans_the_rest_and_lists_what_was_skipped(sample_run, tmp_path):
    _, cache, _ = sample_run
    bad = tmp_path / "cases.csv"
    shutil.copy(SAMPLE / "cases.csv", bad)
    lines = bad.read_text().splitlines()
    header = lines[0].split(",")
    broken = lines[1].split(",")
    broken[header.index("amount")] = "-5"
    lines[1] = ",".join(broken)
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    result = run_plan(out, cache, "--skip-invalid", cases=bad)
    assert result.exit_code == 0, result.output
    with (out / "skipped.csv").open(newline="") as handle:
        skipped = list(csv.DictReader(handle))
    assert [(s["row"], s["column"]) for s in skipped] == [("2", "amount")]
    plan = io.read_plan(out / "plan.json")
    problem, _ = io.read_problem(out / "problem.json")
    assert len(problem.cases) == len(lines) - 2
    accounted = plan.assigned_case_ids() | {u.case_id for u in plan.unassigned}
    assert accounted == {c.id for c in problem.cases}


@pytest.fixture(scope="module")
def policy_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("policy")
    out, cache = base / "out", base / "cache"
    policy_args = ["--policy", str(SAMPLE / "policy.yaml")]
    history_args = ["--history", str(SAMPLE / "visit_history.csv")]
    result = run_plan(out, cache, *policy_args, *history_args)
    assert result.exit_code == 0, result.output
    return out, cache


def test_policy_keeps_flagged_and_capped_cases_off_the_road(policy_run):
    out, _ = policy_run
    plan = io.read_plan(out / "plan.json")
    problem, _ = io.read_problem(out / "problem.json")
    reasons = {u.case_id: u for u in plan.unassigned}
    flagged = [c.id for c in problem.cases if c.flags]
    assert flagged, "the sample city ships flagged cases"
    for case_id in flagged:
        assert case_id not in plan.assigned_case_ids()
        assert reasons[case_id].reason is Reason.POLICY_EXCLUDED
        assert reasons[case_id].detail.startswith("FLAG")
    # C-004 had a visit with contact within 30 days (sample_data/visit_history.csv).
    assert reasons["C-004"].reason is Reason.POLICY_EXCLUDED
    assert "VISIT_CAP" in reasons["C-004"].detail
    accounted = plan.assigned_case_ids() | set(reasons)
    assert accounted == {c.id for c in problem.cases}


def test_audit_records_the_policy_and_a_rule_for_every_case(policy_run):
    from dispatch.compliance import AuditRecord, load_policy

    out, _ = policy_run
    audit = AuditRecord.from_dict(json.loads((out / "audit.json").read_text()))
    policy = load_policy(SAMPLE / "policy.yaml")
    assert (audit.policy_name, audit.policy_hash) == (policy.name, policy.content_hash)
    problem, _ = io.read_problem(out / "problem.json")
    assert {e.case_id for e in audit.entries} == {c.id for c in problem.cases}
    plan = io.read_plan(out / "plan.json")
    # The audit also answers for the cases that earlier outcomes closed or held.
    screened = {Reason.POLICY_EXCLUDED, Reason.CASE_CLOSED, Reason.ADDRESS_UNVERIFIED}
    excluded = {u.case_id for u in plan.unassigned if u.reason in screened}
    assert {e.case_id for e in audit.entries if not e.included} == excluded


def test_check_verifies_the_policy_and_explain_names_the_rule(policy_run):
    out, cache = policy_run
    result = runner.invoke(
        app,
        ["check", str(out / "problem.json"), str(out / "plan.json"), "--cache-dir", str(cache)]
        + ["--policy", str(SAMPLE / "policy.yaml")]
        + ["--history", str(SAMPLE / "visit_history.csv")],
    )
    assert result.exit_code == 0, result.output
    assert "no violations" in result.output
    result = runner.invoke(app, ["explain", "C-004", "--plan-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert "excluded by rule VISIT_CAP" in " ".join(result.output.split())


def test_triage_lists_every_case_with_its_channel_and_rule(sample_run, tmp_path):
    _, cache, _ = sample_run
    out = tmp_path / "out"
    result = run_plan(out, cache, "--triage", "--history", str(SAMPLE / "visit_history.csv"))
    assert result.exit_code == 0, result.output
    with (out / "triage.csv").open(newline="") as handle:
        rows = {row["case_id"]: row for row in csv.DictReader(handle)}
    problem, _ = io.read_problem(out / "problem.json")
    assert set(rows) == {c.id for c in problem.cases}
    assert all(row["channel"] and row["rule"] for row in rows.values())
    plan = io.read_plan(out / "plan.json")
    # Triage keeps cases off the road, and so do the outcomes that closed or held a case.
    screened = {Reason.NOT_FOR_FIELD, Reason.CASE_CLOSED, Reason.ADDRESS_UNVERIFIED}
    kept_off = {u.case_id for u in plan.unassigned if u.reason in screened}
    assert kept_off == {cid for cid, row in rows.items() if row["channel"] != "field"}
    assert not kept_off & plan.assigned_case_ids()


def test_pair_crews_and_balanced_prices_reach_the_solver(sample_run, tmp_path):
    _, cache, _ = sample_run
    out = tmp_path / "out"
    collectors = tmp_path / "collectors.csv"
    shutil.copy(SAMPLE / "collectors.csv", collectors)
    result = runner.invoke(
        app,
        [
            "plan",
            "--cases",
            str(SAMPLE / "cases.csv"),
            "--collectors",
            str(collectors),
            "--date",
            "2026-12-01",
            "--out",
            str(out),
            "--time-limit",
            "2",
            "--cache-dir",
            str(cache),
            "--pair-crews",
            "1",
            "--objective",
            "balanced",
            "--continuity-cost",
            "25.50",
        ],
    )
    assert result.exit_code == 0, result.output
    problem, _ = io.read_problem(out / "problem.json")
    plan = io.read_plan(out / "plan.json")
    (crew,) = problem.crews
    assert f"crews: {crew.id} ({' + '.join(crew.member_ids)}, paired today)" in " ".join(
        result.output.split()
    )
    assert plan.route_of(crew.member_ids[0]).member_ids == crew.member_ids
    # The objective is the travel price, the lost value, 25.50 per preference not kept and
    # the balance price of the busiest route's work, all at their default rates but one.
    visitors = {s.case_id: r.members for r in plan.routes for s in r.stops}
    lost = sum(
        c.preferred_collector is not None and c.preferred_collector not in visitors.get(c.id, ())
        for c in problem.cases
    )
    busiest_s = max(
        r.travel_time_s + sum(problem.case(c).service_s for c in r.case_ids) for r in plan.routes
    )
    travel_s = sum(r.travel_time_s for r in plan.routes)
    expected = (
        round((travel_s * 3000 + busiest_s * 6000) / 3600)
        + sum(problem.case(u.case_id).value for u in plan.unassigned)
        + lost * 2550
    )
    assert plan.objective == expected


def test_bad_prices_and_crews_are_reported_and_nothing_is_written(sample_run, tmp_path):
    _, cache, _ = sample_run
    out = tmp_path / "out"
    result = run_plan(out, cache, "--continuity-cost", "1,5")
    assert result.exit_code == 1
    assert "--continuity-cost '1,5' is not an amount" in " ".join(result.output.split())
    crews = tmp_path / "crews.csv"
    crews.write_text("crew_id,members\nW-1,K-01;K-03\nW-2,K-03;K-02\nW-3,K-07\n")
    result = runner.invoke(
        app,
        [
            "plan",
            "--cases",
            str(SAMPLE / "cases.csv"),
            "--collectors",
            str(SAMPLE / "collectors.csv"),
            "--crews",
            str(crews),
            "--date",
            "2026-12-01",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "row 3, column 'members': collector K-03 is already in crew W-1 (row 2)" in text
    assert "row 4, column 'members': a crew needs at least two members" in text
    assert not out.exists()


def test_keep_replans_around_the_marked_visits(sample_run, tmp_path):
    out, cache, _ = sample_run
    plan = json.loads((out / "plan.json").read_text())
    route = next(r for r in plan["routes"] if not r["member_ids"] and len(r["stops"]) >= 4)
    # The dispatcher keeps the route's last two visits, swapped, with this collector.
    last, before = route["stops"][-1], route["stops"][-2]
    route["stops"][-2:] = [dict(last, keep=True), dict(before, keep=True)]
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(plan))
    again = tmp_path / "again"
    result = run_plan(again, cache, "--time-limit", "1", "--keep", str(edited))
    assert result.exit_code == 0, result.output
    replanned = io.read_plan(again / "plan.json")
    order = replanned.route_of(route["collector_id"]).case_ids
    kept = [c for c in order if c in (last["case_id"], before["case_id"])]
    assert kept == [last["case_id"], before["case_id"]]
    assert "kept 2 visit(s)" in result.output


def test_territories_plan_every_case_and_pass_the_checker(sample_run, tmp_path):
    _, cache, _ = sample_run
    out = tmp_path / "out"
    result = run_plan(out, cache, "--territory-size", "40")
    assert result.exit_code == 0, result.output
    assert "territories of at most 40 cases" in result.output
    # No whole-day matrix: the territories, then the itineraries, build their own.
    assert "Building travel matrices" not in result.output
    problem, _ = io.read_problem(out / "problem.json")
    plan = io.read_plan(out / "plan.json")
    routed = [s.case_id for r in plan.routes for s in r.stops]
    dropped = [u.case_id for u in plan.unassigned]
    assert sorted(routed + dropped) == sorted(c.id for c in problem.cases)
    working = {m for r in plan.routes if r.stops for m in r.members}
    pages = {p.stem for p in (out / "collectors").glob("*.html")}
    assert pages == working
    checked = runner.invoke(
        app, ["check", str(out / "problem.json"), str(out / "plan.json"), "--cache-dir", str(cache)]
    )
    assert checked.exit_code == 0, checked.output


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="two searches need two cores")
def test_backend_and_workers_reach_the_solver(sample_run, tmp_path):
    _, cache, _ = sample_run
    out = tmp_path / "out"
    result = run_plan(out, cache, "--time-limit", "1", "--backend", "ortools", "--workers", "2")
    assert result.exit_code == 0, result.output
    stats = json.loads((out / "plan.json").read_text())["stats"]
    assert stats["portfolio_searches"] == 2
    assert stats["backend_ortools"] == 1


def test_a_backend_that_cannot_plan_the_day_is_refused(sample_run, tmp_path):
    _, cache, _ = sample_run
    out = tmp_path / "out"
    # The sample collectors take lunch breaks, which PyVRP cannot plan.
    result = run_plan(out, cache, "--backend", "pyvrp")
    assert result.exit_code == 1
    assert "the pyvrp backend cannot plan this day" in " ".join(result.output.split())
    assert not (out / "plan.json").exists()
    result = run_plan(out, cache, "--workers", "0")
    assert result.exit_code == 2
    assert "--workers" in result.output


def test_navigation_apps_of_the_collector_pages_are_chosen_on_the_command_line(
    sample_run, tmp_path
):
    _, cache, _ = sample_run
    out = tmp_path / "out"
    history = str(SAMPLE / "visit_history.csv")
    result = run_plan(out, cache, "--navigation", "amap,geo", "--history", history)
    assert result.exit_code == 0, result.output
    page = next((out / "collectors").glob("*.html")).read_text(encoding="utf-8")
    apps = re.findall(r'data-app="([a-z]+)"', page)
    assert apps and set(apps) == {"amap", "geo"}
    assert apps[:2] == ["amap", "geo"]
    # C-010 was not home three afternoons in a row: it avoids the afternoon.
    said = " ".join(result.output.split())
    assert "avoid time bands where nobody was home" in said
    assert "C-010" in said

    bad = run_plan(tmp_path / "bad", cache, "--navigation", "osm,tomtom")
    assert bad.exit_code == 1
    assert "--navigation" in bad.output and "tomtom" in bad.output
