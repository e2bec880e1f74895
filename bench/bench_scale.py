"""Scale benchmark: matrix methods, and large days split into territories solved in parallel.

Run with ``make bench`` (or ``python bench/bench_scale.py``; ``--quick`` for a
smoke run). Writes ``bench/results/scale.csv`` and prints the tables for
``bench/README.md``:

1. Matrices: 2,000 x 2,000 on a generated 100,000-node lattice city (drive)
   and the day's 1,120 points on the Helsinki extract (walk, bike, drive): the
   contraction hierarchy (cold, with the hierarchy built, and warm) against
   scipy's Dijkstra and a plain networkx loop on the same points. The slow
   methods on the lattice run on a subset of sources and are scaled up
   linearly (said in the table).
2. Days of 1,000 / 5,000 / 20,000 cases with 60 / 300 / 1,500 drivers on the
   lattice city, split into territories and solved one after another in one
   process, and on a local Dask cluster of two worker processes: wall time,
   peak memory, planned cases and checker violations. Each run is a fresh
   process, so that peak memory is its own.
3. Decomposed against single solve on the Helsinki 1,000-case day (walk, bike,
   drive): the cost both minimise (travel plus lost value) and the cases planned.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import networkx as nx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_plan import generated_problem, machine

from dispatch import matrix as matrix_module
from dispatch.cluster import (
    SplitParams,
    built_matrices,
    check_territories,
    plan_cost_cents,
    split_day,
)
from dispatch.explain import check_plan
from dispatch.matrix import (
    ContractionBackend,
    ScipyBackend,
    build_matrices,
    snap_to_graph,
)
from dispatch.model import Case, Collector, Location, Problem, TimeWindow, TravelMode
from dispatch.network import RoadNetwork, load_networks
from dispatch.parallel import DaskExecutor, LocalPool, SerialExecutor, solve_territories
from dispatch.solve import SolveParams, solve

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DAY = dt.date(2026, 12, 1)
HOUR = 3600
LAT0, LON0 = 60.05, 24.70
BLOCK_M = 85.0
M_PER_DEG = 111_195.0
# Drivers on duty for each day size (about 6-7.5 % of the cases).
COLLECTORS = {1000: 60, 5000: 300, 20000: 1500}
FIELDS = ["section", "city", "nodes", "cases", "collectors", "method", "measure", "value"]


def lattice_city(side: int, *, seed: int = 1) -> RoadNetwork:
    """A generated driving city: a ``side`` x ``side`` street grid with a road hierarchy.

    Blocks are 85-100 m; residential streets 30 km/h (30 % one-way), every
    8th street 50 km/h, every 32nd an arterial at 70 km/h; each segment runs at
    85-100 % of its limit (junctions, traffic). Coordinates sit near Helsinki.
    """
    rng = np.random.default_rng(seed)
    graph = nx.MultiDiGraph()
    dlat = BLOCK_M / M_PER_DEG
    dlon = BLOCK_M / (M_PER_DEG * math.cos(math.radians(LAT0)))
    graph.add_nodes_from(
        (r * side + c, {"x": LON0 + c * dlon, "y": LAT0 + r * dlat})
        for r in range(side)
        for c in range(side)
    )
    edges = []
    for horizontal in (True, False):
        for line in range(side):
            speed_kph = 70.0 if line % 32 == 0 else 50.0 if line % 8 == 0 else 30.0
            one_way = speed_kph == 30.0 and rng.random() < 0.3
            forward = rng.random() < 0.5
            steps = np.arange(side - 1)
            if horizontal:
                tails, heads = line * side + steps, line * side + steps + 1
            else:
                tails, heads = steps * side + line, (steps + 1) * side + line
            length_m = BLOCK_M * rng.uniform(1.0, 1.18, side - 1)
            time_s = length_m / (speed_kph * rng.uniform(0.85, 1.0, side - 1) / 3.6)
            for u, v, meters, seconds in zip(tails, heads, length_m, time_s, strict=True):
                data = {"length": float(meters), "travel_time": float(seconds)}
                if not one_way or forward:
                    edges.append((int(u), int(v), data))
                if not one_way or not forward:
                    edges.append((int(v), int(u), dict(data)))
    graph.add_edges_from(edges)
    return RoadNetwork(TravelMode.DRIVE, graph, f"lattice {side}x{side}", access_speed_kph=4.5)


def lattice_points(network: RoadNetwork, count: int, *, seed: int) -> list[Location]:
    """Addresses near random junctions of the city (within about 30 m)."""
    rng = np.random.default_rng(seed)
    side = math.isqrt(network.graph.number_of_nodes())
    nodes = rng.integers(0, side * side, count)
    nodes_data = network.graph.nodes
    jitter = rng.normal(0, 0.00015, (count, 2))
    return [
        Location(float(nodes_data[n]["y"] + j[0]), float(nodes_data[n]["x"] + j[1]))
        for n, j in zip(nodes, jitter, strict=True)
    ]


def lattice_day(network: RoadNetwork, n_cases: int, n_collectors: int, *, seed: int) -> Problem:
    """A day of cases and drivers spread over the lattice city (windows and skills mixed)."""
    rng = np.random.default_rng(seed)
    kinds = [
        (TimeWindow(8 * HOUR, 20 * HOUR),),
        (TimeWindow(8 * HOUR, 12 * HOUR),),
        (TimeWindow(12 * HOUR, 17 * HOUR),),
        (TimeWindow(17 * HOUR, 20 * HOUR),),
        (TimeWindow(8 * HOUR, 10 * HOUR), TimeWindow(17 * HOUR, 20 * HOUR)),
    ]
    cases = []
    for i, where in enumerate(lattice_points(network, n_cases, seed=seed)):
        amount = int(rng.lognormal(8.0, 1.0) * 100)
        cases.append(
            Case(
                id=f"L{i:05d}",
                location=where,
                days_past_due=int(rng.integers(60, 720)),
                amount_cents=amount,
                value_cents=int(amount * 0.3),
                skills=frozenset({"legal"}) if rng.random() < 0.1 else frozenset(),
                service_s=int(rng.choice([15, 20, 30])) * 60,
                windows=kinds[int(rng.integers(0, len(kinds)))],
            )
        )
    shifts = [TimeWindow(8 * HOUR, 16 * HOUR), TimeWindow(12 * HOUR, 20 * HOUR)]
    homes = lattice_points(network, n_collectors, seed=seed + 1)
    collectors = [
        Collector(
            id=f"D{k:04d}",
            name=f"Driver {k}",
            start=home,
            end=home,
            shift=shifts[k % 2],
            skills=frozenset({"legal"}) if k % 5 == 0 else frozenset(),
            max_visits=20,
            mode=TravelMode.DRIVE,
        )
        for k, home in enumerate(homes)
    ]
    return Problem(DAY, "Europe/Helsinki", tuple(cases), tuple(collectors))


def networkx_loop(network: RoadNetwork, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Travel times by one networkx Dijkstra per source (the method matrices must beat)."""
    result = np.full((len(sources), len(targets)), np.inf)
    for row, source in enumerate(sources):
        reached = nx.single_source_dijkstra_path_length(network.graph, source, weight="travel_time")
        result[row] = [reached.get(t, np.inf) for t in targets]
    return result


def timed(function, *args):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def bench_matrices(
    city: str, network: RoadNetwork, points: list[Location], subset: int | None, rows: list
) -> None:
    """Time every method on the same snapped points; slow ones on a subset of sources."""
    nodes, _ = snap_to_graph(network, points)
    unique = np.unique(nodes)
    n_nodes = network.graph.number_of_nodes()
    common = {"city": city, "nodes": n_nodes, "cases": len(points), "collectors": ""}

    def add(method: str, measure: str, value: str) -> None:
        rows.append(
            {"section": "matrix", **common, "method": method, "measure": measure, "value": value}
        )

    matrix_module._HIERARCHIES.clear()
    index = matrix_module._graph_index(network.graph)
    hierarchy, build_s = timed(matrix_module._hierarchy_of, index, None)
    backend = ContractionBackend()
    (ch_s, ch_m), first_s = timed(backend.shortest_paths, network, unique, unique)
    (_, _), warm_s = timed(backend.shortest_paths, network, unique, unique)
    cold_s = build_s + first_s
    add("contraction hierarchy", "hierarchy build (s)", f"{build_s:.2f}")
    add("contraction hierarchy", "shortcut edges", str(hierarchy.shortcut_edges))
    add("contraction hierarchy", "matrix, cold incl. build (s)", f"{cold_s:.2f}")
    add("contraction hierarchy", "matrix, hierarchy reused (s)", f"{warm_s:.2f}")
    add("contraction hierarchy", "unique points", str(len(unique)))

    take = len(unique) if subset is None else min(subset, len(unique))
    scale = len(unique) / take
    (sp_s, sp_m), scipy_s = timed(ScipyBackend().shortest_paths, network, unique[:take], unique)
    note = "" if take == len(unique) else f", {take} sources x {scale:.0f}"
    add("scipy Dijkstra + tree lengths", f"matrix (s{note})", f"{scipy_s * scale:.2f}")
    finite = np.isfinite(sp_s)
    diff_s = np.abs(ch_s[:take][finite] - sp_s[finite]).max() if finite.any() else 0.0
    diff_m = np.abs(ch_m[:take][finite] - sp_m[finite]).max() if finite.any() else 0.0
    add("contraction hierarchy", "max |time - scipy| (s)", f"{diff_s:.2e}")
    add("contraction hierarchy", "max |length - scipy| (m)", f"{diff_m:.2e}")

    nx_take = max(1, take // 10) if subset is not None else len(unique)
    nx_scale = len(unique) / nx_take
    nx_s_matrix, nx_s = timed(networkx_loop, network, unique[:nx_take], unique)
    note = "" if nx_take == len(unique) else f", {nx_take} sources x {nx_scale:.0f}"
    add("networkx loop", f"matrix (s{note})", f"{nx_s * nx_scale:.2f}")
    agree = np.allclose(nx_s_matrix, ch_s[:nx_take], atol=1e-6, equal_nan=True)
    add("contraction hierarchy", "agrees with networkx", str(agree))
    add("contraction hierarchy", "speed-up vs networkx, warm", f"{nx_s * nx_scale / warm_s:.0f}")
    add("contraction hierarchy", "speed-up vs networkx, cold", f"{nx_s * nx_scale / cold_s:.0f}")
    print(
        f"  {city}: hierarchy {build_s:.1f} s, warm {warm_s:.2f} s, scipy "
        f"{scipy_s * scale:.1f} s, networkx {nx_s * nx_scale:.1f} s",
        flush=True,
    )


def run_day(
    size: int, collectors: int, executor_name: str, time_limit_s: float, cache_dir: Path
) -> dict:
    """Plan one lattice day end to end in this process; return its figures.

    The city's hierarchy comes from ``cache_dir`` (built there once, as a
    planner running every morning on the same roads would keep it).
    """
    started = time.perf_counter()
    network = lattice_city(316)
    problem = lattice_day(network, size, collectors, seed=size)
    networks = {TravelMode.DRIVE: network}
    setup_s = time.perf_counter() - started
    started = time.perf_counter()
    matrix_module._hierarchy_of(matrix_module._graph_index(network.graph), cache_dir)
    hierarchy_s = time.perf_counter() - started
    cluster = None
    if executor_name == "dask-2":
        from distributed import LocalCluster

        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        executor = DaskExecutor(cluster.scheduler_address)
    elif executor_name == "pool-2":
        # The product's default executor: a local process pool, one process per core.
        executor = LocalPool(workers=2)
    else:
        executor = SerialExecutor()
    source = built_matrices(networks)
    params = SolveParams(time_limit_s=time_limit_s)
    started = time.perf_counter()
    territories = split_day(problem, params=SplitParams(max_cases=300))
    plan = solve_territories(
        problem, source, executor=executor, params=params, territories=territories
    )
    plan_s = time.perf_counter() - started
    started = time.perf_counter()
    violations = check_territories(problem, plan, territories, source)
    check_s = time.perf_counter() - started
    workers_mib = 0.0
    if cluster is not None:
        usage = executor._client.run(
            lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        )
        workers_mib = max(usage.values())
        executor.close()
        cluster.close()
    elif isinstance(executor, LocalPool):
        executor.close()
    return {
        "setup (city and day) (s)": f"{setup_s:.1f}",
        "hierarchy, read from the cache (s)": f"{hierarchy_s:.1f}",
        "plan: split, matrices, solves, repair (s)": f"{plan_s:.1f}",
        "check, per territory (s)": f"{check_s:.1f}",
        "end to end: hierarchy read, plan (s)": f"{hierarchy_s + plan_s:.1f}",
        "territories": str(int(plan.stats["territories"])),
        "planned cases": str(len(plan.assigned_case_ids())),
        "repaired into neighbours": str(int(plan.stats["repaired_cases"])),
        "checker violations": str(len(violations)),
        "cost (travel + lost value, EUR)": f"{plan.objective / 100:.0f}",
        "peak memory, this process (MiB)": (
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
        ),
        "peak memory, largest worker (MiB)": f"{workers_mib:.0f}" if workers_mib else "",
    }


def compare_single(time_limit_s: float, rows: list) -> None:
    """Helsinki 1,000 cases, 60 collectors: one solve against territories on two processes."""
    problem = generated_problem(1000, 60)
    networks = load_networks(None, problem.modes())
    matrices = build_matrices(problem, networks)
    common = {
        "section": "compare",
        "city": "Helsinki",
        "nodes": "",
        "cases": 1000,
        "collectors": 60,
    }
    rate = SolveParams().travel_cost_cents_per_hour
    for method in ("single solve", "territories (300), local pool of 2"):
        started = time.perf_counter()
        if method == "single solve":
            plan = solve(problem, matrices, params=SolveParams(time_limit_s=time_limit_s))
        else:
            plan = solve_territories(
                problem,
                matrices,
                executor=LocalPool(workers=2),
                params=SolveParams(time_limit_s=time_limit_s / 4),
                split=SplitParams(max_cases=300),
            )
        wall_s = time.perf_counter() - started
        limit_s = time_limit_s if method == "single solve" else time_limit_s / 4
        cost = plan_cost_cents(problem, plan, travel_cost_cents_per_hour=rate)
        figures = {
            "search limit per solve (s)": f"{limit_s:g}",
            "wall (s)": f"{wall_s:.1f}",
            "planned cases": str(len(plan.assigned_case_ids())),
            "travel (h)": f"{sum(r.travel_time_s for r in plan.routes) / HOUR:.1f}",
            "cost (travel + lost value, EUR)": f"{cost / 100:.0f}",
            "checker violations (full matrices)": str(len(check_plan(problem, matrices, plan))),
        }
        for measure, value in figures.items():
            rows.append({**common, "method": method, "measure": measure, "value": value})
        print(f"  {method}: {figures}", flush=True)


def write_rows(path: Path, rows: list[dict]) -> None:
    """Write the rows so far (after each section, so that a long run keeps what it measured)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    """Run the benchmark sections and write the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--day",
        nargs=5,
        metavar=("CASES", "COLLECTORS", "EXECUTOR", "LIMIT", "CACHE"),
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument(
        "--executors",
        nargs="+",
        default=["serial", "pool-2", "dask-2"],
        choices=["serial", "pool-2", "dask-2"],
        help="single process, a local pool of 2 processes, Dask with 2 local workers",
    )
    parser.add_argument(
        "--serial-up-to",
        type=int,
        default=5000,
        help="run the single-process executor only on days up to this many cases",
    )
    parser.add_argument(
        "--time-limit", type=float, default=5.0, help="search seconds per territory (default 5)"
    )
    parser.add_argument("--skip", nargs="*", default=[], choices=["matrix", "days", "compare"])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.csv")
    args = parser.parse_args()

    if args.day:
        cases, collectors, executor, limit, cache = args.day
        figures = run_day(int(cases), int(collectors), executor, float(limit), Path(cache))
        print(json.dumps(figures))
        return

    rows: list[dict] = []
    began = time.perf_counter()
    side = 60 if args.quick else 316
    if "matrix" not in args.skip:
        print("matrices", flush=True)
        city = lattice_city(side)
        points = lattice_points(city, 300 if args.quick else 2000, seed=5)
        bench_matrices(f"lattice {side}x{side}", city, points, 100, rows)
        day = generated_problem(1000, 60)
        for mode, network in load_networks(None, list(TravelMode)).items():
            bench_matrices(f"Helsinki {mode}", network, list(day.points()), None, rows)
        write_rows(args.out, rows)
    if "days" not in args.skip:
        cache_dir = Path(tempfile.mkdtemp(prefix="dispatch-bench-"))
        print("building the lattice city's hierarchy once", flush=True)
        started = time.perf_counter()
        city = lattice_city(316)
        matrix_module._hierarchy_of(matrix_module._graph_index(city.graph), cache_dir)
        rows.append(
            {
                "section": "day",
                "city": "lattice 316x316",
                "nodes": 316 * 316,
                "cases": "",
                "collectors": "",
                "method": "",
                "measure": "city and hierarchy, built once (s)",
                "value": f"{time.perf_counter() - started:.1f}",
            }
        )
        del city
        sizes = [200, 400] if args.quick else args.sizes
        for size in sizes:
            collectors = COLLECTORS.get(size, max(1, round(size * 0.06)))
            for executor in args.executors:
                if executor == "serial" and size > args.serial_up_to:
                    continue
                print(f"day of {size} cases, {collectors} drivers, {executor}", flush=True)
                started = time.perf_counter()
                command = [
                    sys.executable,
                    __file__,
                    "--day",
                    str(size),
                    str(collectors),
                    executor,
                    str(args.time_limit),
                    str(cache_dir),
                ]
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                wall_s = time.perf_counter() - started
                common = {
                    "section": "day",
                    "city": "lattice 316x316",
                    "nodes": 316 * 316,
                    "cases": size,
                    "collectors": collectors,
                    "method": executor,
                }
                if done.returncode != 0:
                    print(done.stderr[-3000:], flush=True)
                    rows.append({**common, "measure": "failed", "value": done.returncode})
                    continue
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                figures["process wall, incl. start-up (s)"] = f"{wall_s:.1f}"
                for measure, value in figures.items():
                    rows.append({**common, "measure": measure, "value": value})
                print(f"  {figures}", flush=True)
                write_rows(args.out, rows)
        shutil.rmtree(cache_dir, ignore_errors=True)
    if "compare" not in args.skip:
        print("single solve against territories, Helsinki 1,000", flush=True)
        compare_single(20.0 if args.quick else 60.0, rows)

    write_rows(args.out, rows)
    print(f"machine: {machine()}")
    print(f"date: {dt.date.today().isoformat()}; took {time.perf_counter() - began:.0f} s")
    print("| section | city | cases | collectors | method | measure | value |")
    print("| --- | --- | ---: | ---: | --- | --- | ---: |")
    for row in rows:
        print(
            f"| {row['section']} | {row['city']} | {row['cases']} | {row['collectors']} "
            f"| {row['method']} | {row['measure']} | {row['value']} |"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
