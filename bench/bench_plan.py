"""Time network load, matrix build and solve for the sample day and two generated days.

Each day is solved twice on the same matrices: with the collection rules off
(no crews, breaks, appointments or crew sizes; travel objective; continuity
not priced) and on (crews, breaks, appointments, two-person visits,
continuity priced, balanced objective). Run with ``make bench``. Writes
``bench/results/plan.csv`` (one row per stage, day and rules setting) and
prints a Markdown table to paste into ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from dispatch import io
from dispatch.explain import check_plan
from dispatch.matrix import TravelMatrix, build_matrices
from dispatch.model import Case, Collector, Location, Problem, TimeWindow, TravelMode
from dispatch.network import load_networks
from dispatch.solve import SolveParams, pair_collectors, solve

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DAY = dt.date(2026, 12, 1)
HOUR = 3600


def machine() -> str:
    """One line naming the machine the figures come from."""
    cpu = platform.processor() or platform.machine()
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    python = sys.version.split()[0]
    return f"{model or cpu}, {os.cpu_count()} cores, {mem_gib:.0f} GiB, Python {python}"


def sample_problem() -> Problem:
    """The sample day shipped in sample_data/, with its crews, breaks and appointments."""
    cases = io.read_cases(ROOT / "sample_data" / "cases.csv").items
    collectors = io.read_collectors(ROOT / "sample_data" / "collectors.csv").items
    crews = io.read_crews(ROOT / "sample_data" / "crews.csv", collectors=collectors).items
    return Problem(DAY, "Europe/Helsinki", cases, collectors, crews)


def without_rules(problem: Problem) -> Problem:
    """The same day without crews, breaks, appointments or crew sizes (same points)."""
    return dataclasses.replace(
        problem,
        cases=tuple(dataclasses.replace(c, min_crew=1, appointment_s=None) for c in problem.cases),
        collectors=tuple(
            dataclasses.replace(k, break_window=None, break_s=0) for k in problem.collectors
        ),
        crews=(),
    )


def with_rules(
    problem: Problem, matrices: Mapping[TravelMode, TravelMatrix], *, seed: int = 11
) -> Problem:
    """A generated day with the rules on: breaks, crews, crew sizes, appointments, preferences.

    Day shifts get a 30-minute lunch in 11:00-13:30, later shifts a 30-minute
    break in 16:30-18:30; a tenth of the collectors are paired into crews
    (``pair_collectors``); 3 % of the cases need two collectors, 5 % have an
    appointment (inside their first window, 15 minutes' tolerance) and 10 %
    name a preferred collector.
    """
    rng = np.random.default_rng(seed)
    collectors = []
    for k in problem.collectors:
        lunch = k.shift.start_s < 12 * HOUR
        window = (
            TimeWindow(11 * HOUR, 13 * HOUR + 1800)
            if lunch
            else TimeWindow(16 * HOUR + 1800, 18 * HOUR + 1800)
        )
        collectors.append(dataclasses.replace(k, break_window=window, break_s=1800))
    ids = [k.id for k in problem.collectors]
    cases = []
    for case in problem.cases:
        draw = rng.random()
        changes: dict[str, object] = {}
        if draw < 0.03:
            changes["min_crew"] = 2
        elif draw < 0.08:
            first = case.windows[0]
            slots = max(1, (first.end_s - first.start_s - 1800) // 900)
            changes["appointment_s"] = first.start_s + 900 * int(rng.integers(0, slots))
            changes["appointment_tolerance_s"] = 900
        if rng.random() < 0.10:
            changes["preferred_collector"] = ids[int(rng.integers(0, len(ids)))]
        cases.append(dataclasses.replace(case, **changes))  # type: ignore[arg-type]
    day = dataclasses.replace(problem, cases=tuple(cases), collectors=tuple(collectors))
    crews = pair_collectors(day, matrices, max_crews=max(1, len(collectors) // 20))
    return dataclasses.replace(day, crews=crews)


def generated_problem(n_cases: int, n_collectors: int, *, seed: int = 7) -> Problem:
    """A larger day in the same city: random addresses near walkable junctions."""
    rng = np.random.default_rng(seed)
    walk = load_networks(None, [TravelMode.WALK])[TravelMode.WALK].graph
    xy = np.array([(d["y"], d["x"]) for _, d in walk.nodes(data=True)])
    picks = xy[rng.integers(0, len(xy), n_cases)] + rng.normal(0, 0.0002, (n_cases, 2))
    kinds = [
        (TimeWindow(8 * HOUR, 20 * HOUR),),
        (TimeWindow(8 * HOUR, 12 * HOUR),),
        (TimeWindow(12 * HOUR, 17 * HOUR),),
        (TimeWindow(17 * HOUR, 20 * HOUR),),
        (TimeWindow(8 * HOUR, 10 * HOUR), TimeWindow(17 * HOUR, 20 * HOUR)),
    ]
    cases = []
    for i, (lat, lon) in enumerate(picks):
        amount = int(rng.lognormal(8.0, 1.0) * 100)
        skills = frozenset({"legal"}) if rng.random() < 0.1 else frozenset()
        cases.append(
            Case(
                id=f"G{i:05d}",
                location=Location(float(lat), float(lon)),
                days_past_due=int(rng.integers(60, 720)),
                amount_cents=amount,
                value_cents=int(amount * 0.3),
                skills=skills,
                service_s=int(rng.choice([15, 20, 30])) * 60,
                windows=kinds[int(rng.integers(0, len(kinds)))],
            )
        )
    modes = [TravelMode.WALK, TravelMode.BIKE, TravelMode.DRIVE]
    shifts = [TimeWindow(8 * HOUR, 16 * HOUR), TimeWindow(12 * HOUR, 20 * HOUR)]
    collectors = []
    for k in range(n_collectors):
        lat, lon = xy[rng.integers(0, len(xy))]
        home = Location(float(lat), float(lon))
        collectors.append(
            Collector(
                id=f"K{k:03d}",
                name=f"Collector {k}",
                start=home,
                end=home,
                shift=shifts[k % 2],
                skills=frozenset({"legal"}) if k % 5 == 0 else frozenset(),
                max_visits=20,
                mode=modes[k % 3],
            )
        )
    return Problem(DAY, "Europe/Helsinki", tuple(cases), tuple(collectors))


RULES_OFF = SolveParams(continuity_cost_cents=0)
RULES_ON = SolveParams(objective="balanced")


def run_day(
    name: str,
    problem: Problem,
    time_limit_s: float,
    rows: list[dict],
    *,
    add_rules: Callable[[Problem, Mapping[TravelMode, TravelMatrix]], Problem] | None = None,
) -> None:
    """Time every stage of one day, solve it with the rules off and on, append the figures.

    The rules-on day is ``problem`` as given, or what ``add_rules`` makes of
    it on its matrices; the rules-off day strips the rules from the same
    cases and collectors, so that both solve on the same matrices.
    """
    with tempfile.TemporaryDirectory() as cache:
        cache_dir = Path(cache)
        started = time.perf_counter()
        networks = load_networks(None, problem.modes(), cache_dir=cache_dir)
        load_cold_s = time.perf_counter() - started
        started = time.perf_counter()
        networks = load_networks(None, problem.modes(), cache_dir=cache_dir)
        load_warm_s = time.perf_counter() - started
        started = time.perf_counter()
        matrices = build_matrices(problem, networks)
        matrix_s = time.perf_counter() - started
    common = {
        "day": name,
        "cases": len(problem.cases),
        "collectors": len(problem.collectors),
        "points": len(problem.points()),
    }
    for stage, seconds in (
        ("network load, cold (s)", load_cold_s),
        ("network load, cached (s)", load_warm_s),
        ("matrices (s)", matrix_s),
    ):
        rows.append({**common, "rules": "", "stage": stage, "value": f"{seconds:.2f}"})
    day_on = problem if add_rules is None else add_rules(problem, matrices)
    for rules, day, base in (
        ("off", without_rules(problem), RULES_OFF),
        ("on", day_on, RULES_ON),
    ):
        params = dataclasses.replace(base, time_limit_s=time_limit_s)
        started = time.perf_counter()
        plan = solve(day, matrices, params=params)
        solve_s = time.perf_counter() - started
        stats = plan.stats
        working = [r for r in plan.routes if r.stops]
        travel_s = sum(r.travel_time_s for r in plan.routes)
        dropped = stats["value_dropped_cents"]
        figures = {
            "search time limit (s)": f"{time_limit_s:g}",
            "solve (s)": f"{solve_s:.2f}",
            "search (s)": f"{stats.get('search_time_s', 0.0):.2f}",
            "solutions found": f"{stats.get('solutions_found', 0.0):.0f}",
            "inserted after the search": f"{stats.get('inserted_after_search', 0.0):.0f}",
            "objective": f"{plan.objective / 100:.2f}",
            # Travel at the default price plus lost value: the part both settings share.
            "travel cost + value dropped": f"{(travel_s * 3000 / HOUR + dropped) / 100:.2f}",
            "routes (crews)": f"{len(working)} ({len(day.crews)})",
            "planned cases": str(len(plan.assigned_case_ids())),
            "value planned": f"{stats['value_planned_cents'] / 100:.2f}",
            "value dropped": f"{stats['value_dropped_cents'] / 100:.2f}",
            "visits spread (most - fewest)": f"{stats['visits_spread']:.0f}",
            "work spread (h)": f"{stats['work_spread_s'] / HOUR:.2f}",
            "total travel (h)": f"{travel_s / HOUR:.2f}",
            "appointments kept": (
                f"{stats['appointments_kept']:.0f} of {stats['appointments_named']:.0f}"
            ),
            "preferences kept": (
                f"{stats['preferences_kept']:.0f} of {stats['preferences_named']:.0f}"
            ),
            "breaks planned": f"{stats['breaks_planned']:.0f}",
            "checker violations": str(len(check_plan(day, matrices, plan))),
        }
        for stage, value in figures.items():
            rows.append({**common, "rules": rules, "stage": stage, "value": value})


def main() -> None:
    """Run the benchmark days and write the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mid-cases", type=int, default=300)
    parser.add_argument("--mid-collectors", type=int, default=20)
    parser.add_argument("--mid-time-limit", type=float, default=30.0)
    parser.add_argument("--large-cases", type=int, default=1000)
    parser.add_argument("--large-collectors", type=int, default=60)
    parser.add_argument("--large-time-limit", type=float, default=60.0)
    parser.add_argument("--sample-time-limit", type=float, default=10.0)
    args = parser.parse_args()

    rows: list[dict] = []
    run_day("sample", sample_problem(), args.sample_time_limit, rows)
    # A mid-sized day where the search itself still finds solutions within its limit.
    mid = generated_problem(args.mid_cases, args.mid_collectors)
    run_day(f"generated {args.mid_cases}", mid, args.mid_time_limit, rows, add_rules=with_rules)
    large = generated_problem(args.large_cases, args.large_collectors)
    run_day(
        f"generated {args.large_cases}",
        large,
        args.large_time_limit,
        rows,
        add_rules=with_rules,
    )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append({"day": "all", "stage": "peak memory (MiB)", "value": f"{peak_mib:.0f}"})

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "plan.csv"
    fields = ["day", "cases", "collectors", "points", "rules", "stage", "value"]
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    print(f"machine: {machine()}")
    print(f"date: {dt.date.today().isoformat()}")
    print_tables(rows)
    print(f"wrote {out.relative_to(ROOT)}")


def print_tables(rows: list[dict]) -> None:
    """Print the stage timings, then the solves side by side, rules off and on per day."""
    print("| day | cases | collectors | stage | value |")
    print("| --- | ---: | ---: | --- | ---: |")
    for row in rows:
        if not row.get("rules"):
            print(
                f"| {row['day']} | {row.get('cases', '')} | {row.get('collectors', '')} "
                f"| {row['stage']} | {row['value']} |"
            )
    print()
    solves = [r for r in rows if r.get("rules")]
    columns = list(dict.fromkeys((r["day"], r["rules"]) for r in solves))
    stages = list(dict.fromkeys(r["stage"] for r in solves))
    value = {(r["day"], r["rules"], r["stage"]): r["value"] for r in solves}
    print("| | " + " | ".join(f"{day}, rules {rules}" for day, rules in columns) + " |")
    print("| --- |" + " ---: |" * len(columns))
    for stage in stages:
        cells = " | ".join(value.get((day, rules, stage), "") for day, rules in columns)
        print(f"| {stage} | {cells} |")


if __name__ == "__main__":
    main()
