"""Solver quality on the Solomon VRPTW instances: dispatch side by side with PyVRP and VROOM.

Run with ``make bench-solomon`` (or ``python bench/solomon.py --help``). Each
solver gets the same instance as the same integer travel matrix and the same
time limit, one solver at a time. dispatch runs once per search backend
(``dispatch-ortools``, ``dispatch-pyvrp``, and ``dispatch-auto``, which lets
``solve`` choose), and the ``backend`` column says which backend produced
each figure. The suite then recomputes every solution's
total distance in floating point from its routes and checks it itself (every
customer served exactly once, time windows, capacity, fleet size). Writes
``bench/results/solomon.csv`` and prints a summary per family; ``--readme``
also writes the summary into ``bench/README.md``.

Conventions (as in the literature): Euclidean distances in floating point,
travel time equal to distance, service times as given, the instance's fleet
size, and the distance-only best-known solutions as the reference (the fleet
is free to use fewer vehicles, and only distance counts).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib.metadata
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dispatch.matrix import TravelMatrix
from dispatch.model import DAY_S, Case, Collector, Location, Problem, TimeWindow, TravelMode
from dispatch.solve import SolveParams, solve

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "bench" / "solomon"
DEFAULT_OUT = ROOT / "bench" / "results" / "solomon.csv"
README = ROOT / "bench" / "README.md"
SECTION = "## Solver quality: Solomon VRPTW"

# Two instances per family: the tightest windows (x01) and one with wider windows.
SUBSET = (
    "C101",
    "C105",
    "C201",
    "C205",
    "R101",
    "R109",
    "R201",
    "R209",
    "RC101",
    "RC105",
    "RC201",
    "RC205",
)
FAMILIES = ("C1", "C2", "R1", "R2", "RC1", "RC2")
# dispatch's runs: its search backend and how many searches run side by side.
DISPATCH_RUNS = {
    "dispatch-ortools": ("ortools", 1),
    "dispatch-pyvrp": ("pyvrp", 1),
    "dispatch-auto": ("auto", 1),
    # Two OR-Tools searches from two first-solution strategies, on two cores.
    "dispatch-ortools-x2": ("ortools", 2),
}
PEERS = ("pyvrp", "vroom")
SOLVER_NAMES = (*DISPATCH_RUNS, *PEERS)
DEFAULT_SOLVERS = ("dispatch-ortools", "dispatch-pyvrp", "dispatch-auto", *PEERS)
LABELS = {
    "dispatch-ortools": "dispatch OR-Tools",
    "dispatch-pyvrp": "dispatch PyVRP",
    "dispatch-auto": "dispatch auto",
    "dispatch-ortools-x2": "dispatch OR-Tools x2",
    "pyvrp": "PyVRP",
    "vroom": "VROOM",
}
# The run that stands for dispatch as shipped: its default backend, one search.
SHIPPED = f"dispatch-{SolveParams.backend}"

# Integer matrices hold distance x scale, rounded up: an order that keeps every window
# with the rounded-up times keeps it with the exact ones too. The scale is as fine as
# 1/1000 of a unit, but dispatch takes times of day within two days of seconds.
MAX_SCALE = 1000
MAX_TIME_S = 2 * DAY_S
# Dropping a case must never pay: its value dwarfs the travel price of any detour.
CASE_VALUE_CENTS = 10**9
# Slack for floating-point sums when windows are checked.
EPSILON = 1e-6

COLUMNS = (
    "instance",
    "family",
    "solver",
    "backend",
    "time_limit_s",
    "wall_s",
    "vehicles",
    "distance",
    "feasible",
    "served",
    "bks_distance",
    "gap_pct",
    "note",
)


@dataclass(frozen=True)
class Instance:
    """A Solomon instance; index 0 of every array is the depot, 1..n the customers."""

    name: str
    vehicles: int
    capacity: int
    x: np.ndarray
    y: np.ndarray
    demand: np.ndarray
    ready: np.ndarray
    due: np.ndarray
    service: np.ndarray

    @property
    def family(self) -> str:
        """``C1``, ``C2``, ``R1``, ``R2``, ``RC1`` or ``RC2``."""
        match = re.match(r"[A-Z]+\d", self.name)
        assert match is not None
        return match.group(0)

    @property
    def customers(self) -> int:
        """Number of customers (the depot not counted)."""
        return len(self.x) - 1

    def distances(self) -> np.ndarray:
        """Euclidean distances between all points, in floating point."""
        dx = self.x[:, None] - self.x[None, :]
        dy = self.y[:, None] - self.y[None, :]
        return np.hypot(dx, dy)

    def scale(self) -> int:
        """Integer units per distance unit, as fine as every solver's model allows."""
        return min(MAX_SCALE, MAX_TIME_S // math.ceil(self.due[0]))

    def travel(self, scale: int) -> np.ndarray:
        """Integer travel matrix (distance x scale, rounded up) shared by every solver."""
        # Round first so that a product like 5.000000001 is not pushed up to 6.
        return np.ceil(np.round(self.distances() * scale, 6)).astype(np.int64)


@dataclass(frozen=True)
class Outcome:
    """What a solver returned: routes of customer numbers (1..n), wall time, remarks."""

    routes: list[list[int]]
    wall_s: float
    notes: list[str] = field(default_factory=list)
    backend: str = ""
    """For dispatch: the backend whose search produced the routes."""


@dataclass(frozen=True)
class Check:
    """The suite's own verdict on a solution."""

    feasible: bool
    served: int
    vehicles: int
    distance: float
    problems: list[str]


def read_instance(path: Path) -> Instance:
    """Read a Solomon instance in its original text format."""
    lines = [line.split() for line in path.read_text().splitlines()]
    name = lines[0][0]
    numbers = [row for row in lines if row and all(_is_number(v) for v in row)]
    vehicles, capacity = (int(v) for v in numbers[0])
    rows = np.array([[float(v) for v in row] for row in numbers[1:]])
    if rows.shape[1] != 7 or not np.array_equal(rows[:, 0], np.arange(len(rows))):
        raise ValueError(f"{path}: customer lines are not numbered 0..n with 7 columns")
    return Instance(
        name=name,
        vehicles=vehicles,
        capacity=capacity,
        x=rows[:, 1],
        y=rows[:, 2],
        demand=rows[:, 3].astype(np.int64),
        ready=rows[:, 4],
        due=rows[:, 5],
        service=rows[:, 6],
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_bks(path: Path) -> dict[str, float]:
    """Best-known distances by instance name."""
    with path.open(newline="") as handle:
        return {row["instance"]: float(row["distance"]) for row in csv.DictReader(handle)}


def check_solution(instance: Instance, routes: Sequence[Sequence[int]]) -> Check:
    """Recompute the distance of ``routes`` and check them against the instance's rules.

    Every customer must be served exactly once, by at most the instance's
    number of vehicles, each visit must start by its due date (waiting for
    the ready time is allowed), each route must be back at the depot by its
    due date, and no route may carry more than the vehicle capacity.
    """
    dist = instance.distances()
    problems: list[str] = []
    used = [list(route) for route in routes if route]
    visits = [c for route in used for c in route]
    unknown = sorted({c for c in visits if not 1 <= c <= instance.customers})
    if unknown:
        problems.append(f"unknown customers {unknown[:5]}")
    served = {c for c in visits if 1 <= c <= instance.customers}
    repeated = len(visits) - len(set(visits))
    missing = instance.customers - len(served)
    if missing:
        problems.append(f"{missing} customer(s) not served")
    if repeated:
        problems.append(f"{repeated} repeated visit(s)")
    if len(used) > instance.vehicles:
        problems.append(f"{len(used)} routes for {instance.vehicles} vehicles")

    total = 0.0
    late = overloaded = 0
    max_load = 0
    for route in used:
        stops = [c for c in route if 1 <= c <= instance.customers]
        clock = float(instance.ready[0])
        previous = 0
        for customer in stops:
            clock += dist[previous, customer]
            if clock > instance.due[customer] + EPSILON:
                late += 1
            clock = max(clock, float(instance.ready[customer])) + float(instance.service[customer])
            total += dist[previous, customer]
            previous = customer
        total += dist[previous, 0]
        clock += dist[previous, 0]
        if clock > instance.due[0] + EPSILON:
            late += 1
        load = int(instance.demand[stops].sum())
        max_load = max(max_load, load)
        overloaded += load > instance.capacity
    if late:
        problems.append(f"{late} visit(s) or return(s) after the due date")
    if overloaded:
        problems.append(
            f"capacity exceeded on {overloaded} route(s) "
            f"(max load {max_load} > {instance.capacity})"
        )
    return Check(
        feasible=not problems,
        served=len(served),
        vehicles=len(used),
        distance=total,
        problems=problems,
    )


def solve_dispatch(
    instance: Instance,
    *,
    time_limit_s: float,
    seed: int,
    backend: str = SolveParams.backend,
    workers: int = 1,
    first_solution: str = SolveParams.first_solution,
    metaheuristic: str = SolveParams.metaheuristic,
) -> Outcome:
    """Map the instance onto dispatch's Problem and TravelMatrix and call ``solve``.

    Customers become cases (window, service time, demand as load) and
    vehicles become collectors who start and end at the depot within the
    depot's window, with the vehicle capacity.
    """
    scale = instance.scale()
    travel = instance.travel(scale)
    n, fleet = instance.customers, instance.vehicles
    depot = _nominal_location(instance, 0)
    shift = TimeWindow(int(instance.ready[0]) * scale, int(instance.due[0]) * scale)
    cases = tuple(
        Case(
            id=f"c{i}",
            location=_nominal_location(instance, i),
            value_cents=CASE_VALUE_CENTS,
            service_s=max(1, int(instance.service[i]) * scale),
            windows=(TimeWindow(int(instance.ready[i]) * scale, int(instance.due[i]) * scale),),
            load=int(instance.demand[i]),
        )
        for i in range(1, n + 1)
    )
    collectors = tuple(
        Collector(
            id=f"v{k}",
            name=f"vehicle {k}",
            start=depot,
            end=depot,
            shift=shift,
            capacity=instance.capacity,
        )
        for k in range(fleet)
    )
    problem = Problem(dt.date(2026, 1, 1), "UTC", cases, collectors)
    # Matrix order: the cases (customers 1..n), then each start, then each end (the depot).
    order = np.array(list(range(1, n + 1)) + [0] * (2 * fleet))
    points = travel[np.ix_(order, order)]
    matrix = TravelMatrix(
        mode=TravelMode.DRIVE,
        duration_s=points,
        distance_m=points,
        nodes=np.arange(len(order)),
        snap_m=np.zeros(len(order)),
    )
    started = time.perf_counter()
    plan = solve(
        problem,
        {TravelMode.DRIVE: matrix},
        params=SolveParams(
            time_limit_s=time_limit_s,
            seed=seed,
            first_solution=first_solution,
            metaheuristic=metaheuristic,
            backend=backend,
            workers=workers,
        ),
    )
    wall_s = time.perf_counter() - started
    routes = [[int(case_id[1:]) for case_id in route.case_ids] for route in plan.routes]
    searched = next(k.removeprefix("backend_") for k in plan.stats if k.startswith("backend_"))
    notes: list[str] = []
    unfit = [k.removeprefix("pyvrp_unfit_") for k in plan.stats if k.startswith("pyvrp_unfit_")]
    if unfit:
        notes.append(f"OR-Tools chosen: {', '.join(unfit)}")
    if plan.stats.get("portfolio_searches", 1) > 1:
        notes.append(
            f"{plan.stats['portfolio_searches']:.0f} searches side by side, "
            f"search {plan.stats['portfolio_winner']:.0f} kept"
        )
    if (first_solution, metaheuristic) != (SolveParams.first_solution, SolveParams.metaheuristic):
        notes.append(f"{first_solution} + {metaheuristic}")
    if plan.unassigned:
        notes.append(f"dispatch left {len(plan.unassigned)} customer(s) unassigned")
    if "search_objective_cents" not in plan.stats:
        notes.append("search found no solution; routes built by insertion")
    elif plan.stats.get("inserted_after_search"):
        notes.append(f"{plan.stats['inserted_after_search']:.0f} inserted after the search")
    return Outcome(routes, wall_s, notes, backend=searched)


def _nominal_location(instance: Instance, i: int) -> Location:
    """A valid WGS84 point for a Solomon coordinate; solve() reads only the matrix."""
    return Location(float(instance.y[i]) * 1e-3, float(instance.x[i]) * 1e-3)


def solve_pyvrp(instance: Instance, *, time_limit_s: float, seed: int) -> Outcome:
    """Build a PyVRP Model on the shared integer matrix and run it for ``time_limit_s``."""
    import pyvrp
    from pyvrp.stop import MaxRuntime

    scale = instance.scale()
    travel = instance.travel(scale)
    model = pyvrp.Model()
    locations = [
        model.add_location(float(x), float(y)) for x, y in zip(instance.x, instance.y, strict=True)
    ]
    depot = model.add_depot(
        locations[0], tw_early=int(instance.ready[0]) * scale, tw_late=int(instance.due[0]) * scale
    )
    for i in range(1, instance.customers + 1):
        model.add_client(
            locations[i],
            delivery=[int(instance.demand[i])],
            service_duration=int(instance.service[i]) * scale,
            tw_early=int(instance.ready[i]) * scale,
            tw_late=int(instance.due[i]) * scale,
        )
    model.add_vehicle_type(
        num_available=instance.vehicles,
        capacity=[instance.capacity],
        start_depot=depot,
        end_depot=depot,
        tw_early=int(instance.ready[0]) * scale,
        tw_late=int(instance.due[0]) * scale,
    )
    for i, frm in enumerate(locations):
        for j, to in enumerate(locations):
            model.add_edge(frm, to, distance=int(travel[i, j]), duration=int(travel[i, j]))
    started = time.perf_counter()
    result = model.solve(MaxRuntime(time_limit_s), seed=seed, display=False)
    wall_s = time.perf_counter() - started
    # Clients are numbered 0..n-1 in the order they were added: customers 1..n.
    routes = [
        [activity.idx + 1 for activity in route.schedule() if activity.is_client()]
        for route in result.best.routes()
    ]
    notes = [] if result.is_feasible() else ["PyVRP's best solution is infeasible"]
    return Outcome(routes, wall_s, notes)


def solve_vroom(instance: Instance, *, time_limit_s: float, seed: int) -> Outcome:
    """Give VROOM the shared integer matrix as durations and costs; one thread, top level."""
    import vroom

    del seed  # VROOM's search has no seed; one thread makes it repeatable.
    scale = instance.scale()
    travel = instance.travel(scale)
    problem = vroom.Input()
    problem.set_durations_matrix("car", travel)
    problem.set_costs_matrix("car", travel)
    problem.add_job(
        [
            vroom.Job(
                id=i,
                location=i,
                default_service=int(instance.service[i]) * scale,
                delivery=[int(instance.demand[i])],
                time_windows=[
                    vroom.TimeWindow(int(instance.ready[i]) * scale, int(instance.due[i]) * scale)
                ],
            )
            for i in range(1, instance.customers + 1)
        ]
    )
    shift = vroom.TimeWindow(int(instance.ready[0]) * scale, int(instance.due[0]) * scale)
    problem.add_vehicle(
        [
            vroom.Vehicle(id=k, start=0, end=0, capacity=[instance.capacity], time_window=shift)
            for k in range(instance.vehicles)
        ]
    )
    started = time.perf_counter()
    solution = problem.solve(
        exploration_level=5, nb_threads=1, timeout=dt.timedelta(seconds=time_limit_s)
    )
    wall_s = time.perf_counter() - started
    steps = solution.routes
    jobs = steps[steps["type"] == "job"]
    routes = [
        [int(job) for job in group["id"]] for _, group in jobs.groupby("vehicle_id", sort=True)
    ]
    notes = []
    if len(solution.unassigned):
        notes.append(f"VROOM left {len(solution.unassigned)} job(s) unassigned")
    return Outcome(routes, wall_s, notes)


SOLVERS: dict[str, Callable[..., Outcome]] = {
    **dict.fromkeys(DISPATCH_RUNS, solve_dispatch),
    "pyvrp": solve_pyvrp,
    "vroom": solve_vroom,
}


def run_one(
    instance: Instance,
    solver: str,
    *,
    time_limit_s: float,
    seed: int,
    bks: float,
    dispatch_options: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Solve one instance with one solver, check the result, and return its CSV row."""
    options: dict[str, str | int] = {}
    if solver in DISPATCH_RUNS:
        backend, workers = DISPATCH_RUNS[solver]
        options = {**(dispatch_options or {}), "backend": backend, "workers": workers}
    outcome = SOLVERS[solver](instance, time_limit_s=time_limit_s, seed=seed, **options)
    verdict = check_solution(instance, outcome.routes)
    gap = 100.0 * (verdict.distance - bks) / bks if verdict.feasible else None
    return {
        "instance": instance.name,
        "family": instance.family,
        "solver": solver,
        "backend": outcome.backend,
        "time_limit_s": f"{time_limit_s:g}",
        "wall_s": f"{outcome.wall_s:.2f}",
        "vehicles": str(verdict.vehicles),
        "distance": f"{verdict.distance:.2f}",
        "feasible": str(verdict.feasible).lower(),
        "served": str(verdict.served),
        "bks_distance": f"{bks:.2f}",
        "gap_pct": "" if gap is None else f"{gap:.2f}".replace("-0.00", "0.00"),
        "note": "; ".join(verdict.problems + outcome.notes),
    }


def summarise(rows: Sequence[dict[str, str]]) -> list[str]:
    """Markdown lines: mean gap per family, solver and limit, plain comparisons, each run."""
    solvers = [s for s in SOLVER_NAMES if any(r["solver"] == s for r in rows)]
    limits = sorted({float(r["time_limit_s"]) for r in rows})
    header = "| family | limit (s) | " + " | ".join(f"{LABELS[s]} gap %" for s in solvers) + " |"
    lines = [header, "|" + " --- |" * (2 + len(solvers))]
    verdicts: list[str] = []
    groups = [f for f in FAMILIES if any(r["family"] == f for r in rows)] + ["all"]
    for limit in limits:
        for family in groups:
            picked = [
                r
                for r in rows
                if float(r["time_limit_s"]) == limit and family in ("all", r["family"])
            ]
            if not picked:
                continue
            cells = [_gap_cell([r for r in picked if r["solver"] == s]) for s in solvers]
            name = f"**{family}**" if family == "all" else family
            lines.append(f"| {name} | {limit:g} | " + " | ".join(cells) + " |")
            verdicts += _compare(
                picked, "all families" if family == "all" else family, limit, solvers
            )
    lines += [
        "",
        "Cells: mean gap to the best-known distance over the feasible solutions "
        "(feasible / run). Lower is better; a negative gap beats the reference.",
    ]
    walls = [f"{LABELS[s]} {_mean_wall_s(rows, s):.1f} s" for s in solvers]
    lines += ["", "Mean wall time per run: " + ", ".join(walls) + "."]
    lines += ["", *verdicts] if verdicts else []
    lines += ["", *_per_instance(rows, solvers)]
    return lines


def _mean_wall_s(rows: Sequence[dict[str, str]], solver: str) -> float:
    return statistics.fmean(float(r["wall_s"]) for r in rows if r["solver"] == solver)


def _per_instance(rows: Sequence[dict[str, str]], solvers: Sequence[str]) -> list[str]:
    """Markdown table: each instance's distance and gap per solver (vehicles in brackets)."""
    by = {(r["instance"], r["time_limit_s"], r["solver"]): r for r in rows}
    runs = sorted(
        {(r["instance"], r["time_limit_s"]) for r in rows},
        key=lambda run: (float(run[1]), _family_rank(run[0]), run[0]),
    )
    lines = [
        "| instance | limit (s) | best known | " + " | ".join(LABELS[s] for s in solvers) + " |",
        "|" + " --- |" * (3 + len(solvers)),
    ]
    for instance, limit in runs:
        cells = []
        for solver in solvers:
            row = by.get((instance, limit, solver))
            if row is None:
                cells.append("")
            elif _ok(row):
                # A run that chooses its backend says which one produced the figure.
                auto = DISPATCH_RUNS.get(solver, ("",))[0] == "auto"
                chosen = f" ({row['backend']})" if auto else ""
                cells.append(f"{row['distance']} [{row['vehicles']}] {row['gap_pct']} %{chosen}")
            else:
                cells.append(f"infeasible: {row['note'].split('; ')[0]}")
        reference = next(r["bks_distance"] for r in rows if r["instance"] == instance)
        lines.append(f"| {instance} | {limit} | {reference} | " + " | ".join(cells) + " |")
    return lines


def _family_rank(instance: str) -> int:
    match = re.match(r"[A-Z]+\d", instance)
    return FAMILIES.index(match.group(0)) if match and match.group(0) in FAMILIES else 99


def _gap_cell(rows: Sequence[dict[str, str]]) -> str:
    gaps = [float(r["gap_pct"]) for r in rows if r["feasible"] == "true"]
    mean = f"{statistics.fmean(gaps):.2f}" if gaps else "n/a"
    return f"{mean} ({len(gaps)}/{len(rows)})"


def _compare(
    rows: Sequence[dict[str, str]], family: str, limit: float, solvers: Sequence[str]
) -> list[str]:
    """Sentences naming each peer that beats dispatch on a family, on the same instances.

    dispatch is the run of its default backend (``SHIPPED``) when it is in
    the results, else its first run.
    """
    runs = [s for s in solvers if s in DISPATCH_RUNS]
    if not runs:
        return []
    ours = SHIPPED if SHIPPED in runs else runs[0]
    name = LABELS[ours]
    by = {(r["instance"], r["solver"]): r for r in rows}
    instances = sorted({r["instance"] for r in rows})
    failed = [i for i in instances if (i, ours) in by and not _ok(by[i, ours])]
    out: list[str] = []
    # Families name the infeasible instances; the overall line only compares gaps.
    if family == "all families":
        failed = []
    if failed:
        out.append(
            f"- {family}, {limit:g} s: {name} has no feasible solution on "
            f"{', '.join(failed)}: {by[failed[0], ours]['note']}."
        )
    for peer in [s for s in solvers if s in PEERS]:
        rescued = [i for i in failed if (i, peer) in by and _ok(by[i, peer])]
        if rescued:
            out.append(
                f"- {family}, {limit:g} s: {LABELS[peer]} solves {', '.join(rescued)} "
                f"feasibly where {name} does not."
            )
        paired = [
            (float(by[i, ours]["gap_pct"]), float(by[i, peer]["gap_pct"]))
            for i in instances
            if _ok(by.get((i, ours))) and _ok(by.get((i, peer)))
        ]
        if not paired:
            continue
        mine = statistics.fmean(p[0] for p in paired)
        theirs = statistics.fmean(p[1] for p in paired)
        if theirs < mine - 0.005:
            out.append(
                f"- {family}, {limit:g} s: {LABELS[peer]} beats {name} by "
                f"{mine - theirs:.2f} points of gap ({theirs:.2f} % against {mine:.2f} % on "
                f"{len(paired)} instance(s) both solved)."
            )
    return out


def _ok(row: dict[str, str] | None) -> bool:
    return row is not None and row["feasible"] == "true"


def machine() -> str:
    """One line naming the machine the figures come from."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {os.cpu_count()} cores, {mem_gib:.0f} GiB RAM"


def versions() -> str:
    """Versions of the solvers compared."""
    names = {"dispatch": "dispatch", "ortools": "OR-Tools", "pyvrp": "PyVRP", "pyvroom": "pyvroom"}
    found = []
    for package, label in names.items():
        try:
            found.append(f"{label} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    found[0] += _revision()
    return ", ".join(found) + f", Python {sys.version.split()[0]}"


def _revision() -> str:
    """The repository commit dispatch ran from, and whether its source had changes on top."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src/dispatch"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
    return f" (commit {head}{' with uncommitted changes in src/dispatch' if changed else ''})"


def write_readme(path: Path, key: str, block: Sequence[str]) -> None:
    """Put ``block`` between this output's markers in the Solomon section of ``path``."""
    begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{SECTION}\n"
    if SECTION not in text:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n"
    fill = "\n".join([begin, *block, end])
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + fill + rest.split(end, 1)[1]
    else:
        # A new block goes at the end of the section: before the next "## " heading.
        start = text.index(SECTION) + len(SECTION)
        following = re.search(r"^## ", text[start:], flags=re.MULTILINE)
        cut = start + following.start() if following else len(text)
        text = text[:cut].rstrip("\n") + "\n\n" + fill + "\n\n" + text[cut:].lstrip("\n")
    path.write_text(text.rstrip("\n") + "\n")


def _shown(path: Path) -> str:
    """A path relative to the repository when it is inside it."""
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(resolved)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="folder of Solomon *.txt files; bks.csv and bks_distance_only.csv are read "
        "from its parent (default: ../shared/bench/solomon from the repository root)",
    )
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--all", action="store_true", help="all 56 instances")
    chosen.add_argument(
        "--instances", nargs="+", metavar="NAME", help=f"these instances (default: {SUBSET})"
    )
    parser.add_argument(
        "--time-limits",
        nargs="+",
        type=float,
        default=[10.0],
        metavar="S",
        help="time limit(s) per instance and solver, in seconds (default: 10)",
    )
    parser.add_argument(
        "--solvers",
        nargs="+",
        choices=SOLVER_NAMES,
        default=list(DEFAULT_SOLVERS),
        metavar="NAME",
        help=f"any of {', '.join(SOLVER_NAMES)} (default: {' '.join(DEFAULT_SOLVERS)})",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--first-solution",
        default=SolveParams.first_solution,
        help="dispatch's OR-Tools first solution strategy (default: SolveParams')",
    )
    parser.add_argument(
        "--metaheuristic",
        default=SolveParams.metaheuristic,
        help="dispatch's OR-Tools metaheuristic (default: SolveParams')",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results CSV")
    parser.add_argument(
        "--readme",
        action="store_true",
        help="also write the summary into bench/README.md (a block named after --out)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    data = args.data.resolve()
    if args.all:
        paths = sorted(data.glob("*.txt"))
    else:
        paths = [data / f"{name.upper()}.txt" for name in args.instances or SUBSET]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing or not paths:
        sys.exit(f"no Solomon instance at {', '.join(missing) or data}")
    bks = read_bks(data.parent / "bks_distance_only.csv")
    instances = [read_instance(p) for p in paths]

    rows: list[dict[str, str]] = []
    total = len(instances) * len(args.solvers) * len(args.time_limits)
    for limit in args.time_limits:
        for instance in instances:
            # Solvers run one after the other, never side by side, so that timings are fair.
            for solver in args.solvers:
                row = run_one(
                    instance,
                    solver,
                    time_limit_s=limit,
                    seed=args.seed,
                    bks=bks[instance.name],
                    dispatch_options={
                        "first_solution": args.first_solution,
                        "metaheuristic": args.metaheuristic,
                    },
                )
                rows.append(row)
                gap = f"{row['gap_pct']} %" if row["gap_pct"] else "not counted"
                print(
                    f"[{len(rows)}/{total}] {instance.name} {solver} {limit:g} s: "
                    f"{row['distance']} ({gap}), {row['vehicles']} vehicles, "
                    f"{row['wall_s']} s {row['note']}",
                    flush=True,
                )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)

    command = "python bench/solomon.py " + " ".join(argv if argv is not None else sys.argv[1:])
    block = [
        f"Run {dt.date.today().isoformat()} on {machine()}; {versions()}.",
        f"Command: `{command.strip()}` ({len(instances)} instances, "
        f"results in `{_shown(args.out)}`).",
        "",
        *summarise(rows),
    ]
    print("\n".join(block))
    if args.readme:
        write_readme(README, args.out.stem, block)


if __name__ == "__main__":
    main()
