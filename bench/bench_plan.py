"""Time network load, matrix build and solve for the sample day and a generated large day.

Run with ``make bench``. Writes ``bench/results/plan.csv`` (one row per stage
and day) and prints a Markdown table to paste into ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dispatch import io
from dispatch.explain import check_plan
from dispatch.matrix import build_matrices
from dispatch.model import Case, Collector, Location, Problem, TimeWindow, TravelMode
from dispatch.network import load_networks
from dispatch.solve import SolveParams, solve

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
    """The sample day shipped in sample_data/."""
    cases = io.read_cases(ROOT / "sample_data" / "cases.csv").items
    collectors = io.read_collectors(ROOT / "sample_data" / "collectors.csv").items
    return Problem(DAY, "Europe/Helsinki", cases, collectors)


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


def run_day(name: str, problem: Problem, time_limit_s: float, rows: list[dict]) -> None:
    """Time every stage of one day and append the figures to rows."""
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
    started = time.perf_counter()
    plan = solve(problem, matrices, params=SolveParams(time_limit_s=time_limit_s))
    solve_s = time.perf_counter() - started
    violations = check_plan(problem, matrices, plan)
    planned = len(plan.assigned_case_ids())
    common = {
        "day": name,
        "cases": len(problem.cases),
        "collectors": len(problem.collectors),
        "points": len(problem.points()),
    }
    figures = {
        "network load, cold (s)": load_cold_s,
        "network load, cached (s)": load_warm_s,
        "matrices (s)": matrix_s,
        f"solve, limit {time_limit_s:g} s (s)": solve_s,
    }
    for stage, seconds in figures.items():
        rows.append({**common, "stage": stage, "value": f"{seconds:.2f}"})
    rows.append({**common, "stage": "planned cases", "value": str(planned)})
    rows.append({**common, "stage": "checker violations", "value": str(len(violations))})
    travel_h = sum(r.travel_time_s for r in plan.routes) / HOUR
    rows.append({**common, "stage": "total travel (h)", "value": f"{travel_h:.2f}"})


def main() -> None:
    """Run the benchmark days and write the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--large-cases", type=int, default=1000)
    parser.add_argument("--large-collectors", type=int, default=60)
    parser.add_argument("--large-time-limit", type=float, default=60.0)
    parser.add_argument("--sample-time-limit", type=float, default=10.0)
    args = parser.parse_args()

    rows: list[dict] = []
    run_day("sample", sample_problem(), args.sample_time_limit, rows)
    large = generated_problem(args.large_cases, args.large_collectors)
    run_day(f"generated {args.large_cases}", large, args.large_time_limit, rows)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append({"day": "all", "stage": "peak memory (MiB)", "value": f"{peak_mib:.0f}"})

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "plan.csv"
    fields = ["day", "cases", "collectors", "points", "stage", "value"]
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    print(f"machine: {machine()}")
    print(f"date: {dt.date.today().isoformat()}")
    print("| day | cases | collectors | stage | value |")
    print("| --- | ---: | ---: | --- | ---: |")
    for row in rows:
        print(
            f"| {row['day']} | {row.get('cases', '')} | {row.get('collectors', '')} "
            f"| {row['stage']} | {row['value']} |"
        )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
