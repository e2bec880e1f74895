"""Solve the territories of a large day in parallel: a local process pool or a Dask cluster.

``solve_territories`` splits a day (``cluster.split_day``), builds each
territory's matrices in this process, and hands each territory's solve to an
``Executor``: ``LocalPool`` (processes on this machine, the default),
``DaskExecutor`` (a Dask distributed cluster, given its scheduler address) or
``SerialExecutor`` (one after another, in this process). A territory whose
worker fails or is lost is solved again, on the executor and at last in this
process, so no case is ever lost. Then each territory's unassigned cases are
offered to the nearest other territory, whose routes keep their visits and
take those that fit.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from typing import Any, Protocol

from dispatch.cluster import (
    MatrixSource,
    SplitParams,
    Territory,
    combine_reasons,
    merge_plans,
    nearest_other_territory,
    plan_cost_cents,
    sliced_matrices,
    split_day,
    territory_problem,
)
from dispatch.errors import InvalidProblemError
from dispatch.matrix import TravelMatrix
from dispatch.model import Plan, Problem, Reason, TravelMode
from dispatch.solve import SolveParams, solve

# Reasons that hold for the whole day whatever the territory: nobody on duty has the
# skills or the crew (``split_day`` keeps a qualified team in every territory that
# needs one), so offering such a case to a neighbour cannot help.
_FINAL_REASONS = frozenset({Reason.NO_QUALIFIED_COLLECTOR, Reason.NO_CREW})
_DEFAULT_SOLVE = SolveParams()
# Seconds a pool worker gets to exit when the pool closes, before it is terminated.
_WORKER_EXIT_S = 10.0
_DEFAULT_SPLIT = SplitParams()


@dataclass(frozen=True)
class TerritoryTask:
    """One solve to run somewhere: a territory's problem, matrices and visits to keep."""

    territory_id: str
    problem: Problem
    matrices: Mapping[TravelMode, TravelMatrix]
    params: SolveParams
    keep: Mapping[str, Sequence[str]] | None = None


def solve_task(task: TerritoryTask) -> Plan:
    """Solve one territory (runs on a worker; module level so that it pickles by name)."""
    return solve(task.problem, task.matrices, params=task.params, keep=task.keep)


class Executor(Protocol):
    """Runs a function over items somewhere, and reports each outcome as it arrives."""

    def map_unordered(
        self, function: Callable[[Any], Any], items: Iterable[Any]
    ) -> Iterator[tuple[int, Any]]:
        """Call ``function(item)`` for every item; yield ``(position, outcome)`` as each ends.

        The outcome is the function's result, or the exception that stopped it
        (a failed call, a lost worker): it is yielded, never raised, so that
        the caller can retry that item. Items may be consumed while earlier
        ones already run.
        """
        ...

    def close(self) -> None:
        """Release workers and connections."""
        ...


class SerialExecutor:
    """Runs every item in this process, one after another."""

    def map_unordered(
        self, function: Callable[[Any], Any], items: Iterable[Any]
    ) -> Iterator[tuple[int, Any]]:
        """See `Executor.map_unordered`."""
        for position, item in enumerate(items):
            try:
                yield position, function(item)
            except Exception as error:  # handed to the caller, who retries
                yield position, error

    def close(self) -> None:
        """Nothing to release."""


class LocalPool:
    """A pool of worker processes on this machine (started fresh, not forked).

    A worker that dies breaks the whole pool in ``concurrent.futures``: every
    item still running or waiting is then reported as failed (with
    ``BrokenProcessPool``), and the next call starts a new pool.

    Parameters
    ----------
    workers
        Number of processes; default one per core.
    """

    def __init__(self, *, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None

    def _ready_pool(self) -> ProcessPoolExecutor:
        if self._pool is None or getattr(self._pool, "_broken", False):
            self._stop()
            # Spawned workers import dispatch afresh: forking a process that runs
            # threads (numba, OR-Tools) may copy a held lock and hang.
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
            )
        return self._pool

    def _stop(self) -> None:
        """Shut the pool down without waiting on a worker that can no longer answer.

        A worker killed while it held the pool's queue lock leaves the others
        blocked for good, so waiting for them could hang: they get a while to
        finish, then are terminated.
        """
        if self._pool is None:
            return
        processes = list((self._pool._processes or {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None
        for process in processes:
            process.join(timeout=_WORKER_EXIT_S)
            if process.is_alive():
                process.terminate()
                process.join(timeout=_WORKER_EXIT_S)

    def worker_pids(self) -> list[int]:
        """Process ids of the pool's current workers (empty before the first use)."""
        if self._pool is None:
            return []
        return [p.pid for p in (self._pool._processes or {}).values() if p.pid is not None]

    def map_unordered(
        self, function: Callable[[Any], Any], items: Iterable[Any]
    ) -> Iterator[tuple[int, Any]]:
        """See `Executor.map_unordered`."""
        pool = self._ready_pool()
        pending: dict[Future[Any], int] = {}
        source = iter(enumerate(items))
        exhausted = False
        while pending or not exhausted:
            # Keep a few items queued per worker; build the rest while those run.
            while not exhausted and len(pending) < 2 * self.workers:
                try:
                    position, item = next(source)
                except StopIteration:
                    exhausted = True
                    break
                try:
                    pending[pool.submit(function, item)] = position
                except BrokenProcessPool as error:
                    yield position, error
            if not pending:
                continue
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                position = pending.pop(future)
                failure = future.exception()
                yield position, failure if failure is not None else future.result()

    def close(self) -> None:
        """Stop the worker processes."""
        self._stop()


class DaskExecutor:
    """Items run as tasks on a Dask distributed cluster.

    When a worker dies or leaves, the scheduler moves its tasks to the
    remaining workers by itself; a task that keeps killing workers ends with
    ``KilledWorker``, which is reported like any failure.

    Parameters
    ----------
    address
        The scheduler, for example ``tcp://10.0.0.5:8786``.
    timeout_s
        How long to wait for the scheduler when connecting, in seconds.
    """

    def __init__(self, address: str, *, timeout_s: float = 30.0) -> None:
        from distributed import Client

        self.address = address
        self._client = Client(address, timeout=timeout_s, set_as_default=False)

    def map_unordered(
        self, function: Callable[[Any], Any], items: Iterable[Any]
    ) -> Iterator[tuple[int, Any]]:
        """See `Executor.map_unordered`."""
        from distributed import as_completed

        position_of = {}
        for position, item in enumerate(items):
            # pure=False: a retried item is a new task even with the same input.
            future = self._client.submit(function, item, pure=False)
            position_of[future] = position
        for future in as_completed(list(position_of), loop=self._client.loop):
            try:
                yield position_of[future], future.result()
            except Exception as error:  # handed to the caller, who retries
                yield position_of[future], error
            finally:
                future.release()

    def close(self) -> None:
        """Disconnect from the scheduler (the cluster keeps running)."""
        self._client.close()


def solve_territories(
    problem: Problem,
    matrices: Mapping[TravelMode, TravelMatrix] | MatrixSource,
    *,
    executor: Executor | None = None,
    params: SolveParams = _DEFAULT_SOLVE,
    territories: Sequence[Territory] | None = None,
    split: SplitParams = _DEFAULT_SPLIT,
    repair: bool = True,
    repair_time_limit_s: float | None = None,
    retries: int = 2,
    on_progress: Callable[[str], None] | None = None,
) -> Plan:
    """Plan a large day territory by territory, in parallel, and repair across borders.

    Parameters
    ----------
    problem
        The whole day.
    matrices
        The day's matrices by mode (in ``problem.points()`` order), cut per
        territory; or a ``cluster.MatrixSource`` such as
        ``cluster.built_matrices(networks, cache_dir=...)`` for days too large
        for one matrix.
    executor
        Where the solves run; default a ``LocalPool`` with one process per
        core, closed again at the end (an executor given is left open).
    params
        Settings of every territory's solve.
    territories
        A split to use; default ``split_day(problem, params=split)``.
    split
        How to split when ``territories`` is not given.
    repair
        Offer each territory's unassigned cases to the nearest other territory
        (default True): that territory solves again keeping all its planned
        visits in order (``solve(keep=...)``) and takes the cases that fit and
        pay. A case still left out gets the reason that holds for both
        territories (``cluster.combine_reasons``).
    repair_time_limit_s
        Search time of each repair solve; default a quarter of
        ``params.time_limit_s`` (at least 1 s).
    retries
        Times a failed or lost territory goes back to the executor before it is
        solved in this process.
    on_progress
        Called with short progress sentences.

    Returns
    -------
    Plan
        Every case of ``problem`` on a route or unassigned with a reason.
        ``objective`` is ``cluster.plan_cost_cents`` (travel plus lost value);
        ``stats`` adds up the territories' figures and counts ``territories``,
        ``repaired_cases`` (taken in by a neighbour), ``failed_tasks`` (solves
        that failed on the executor and went again) and ``local_solves``
        (solved in this process after all retries failed).
    """
    report = on_progress or _silent
    began = time.perf_counter()
    source = matrices if callable(matrices) else sliced_matrices(problem, matrices)
    parts = tuple(territories) if territories is not None else split_day(problem, params=split)
    report(f"split {len(problem.cases)} cases into {len(parts)} territories")
    own = executor is None
    runner: Executor = LocalPool() if executor is None else executor
    counts = {"failed_tasks": 0.0, "local_solves": 0.0}
    try:

        def tasks() -> Iterator[TerritoryTask]:
            for territory in parts:
                part = territory_problem(problem, territory)
                yield TerritoryTask(territory.id, part, source(part), params)

        plans = _run_all(runner, tasks(), retries, counts, report)
        by_territory = {parts[i].id: plan for i, plan in plans.items()}
        plan = merge_plans(problem, [by_territory[t.id] for t in parts])
        repaired = 0
        if repair and len(parts) > 1:
            limit_s = repair_time_limit_s or max(1.0, params.time_limit_s / 4)
            plan, repaired = _repair(
                problem, plan, parts, source, replace(params, time_limit_s=limit_s), runner,
                retries, counts, report,
            )  # fmt: skip
    finally:
        if own:
            runner.close()
    stats = {
        **plan.stats,
        **counts,
        "territories": float(len(parts)),
        "repaired_cases": float(repaired),
    }
    cost = plan_cost_cents(
        problem, plan, travel_cost_cents_per_hour=params.travel_cost_cents_per_hour
    )
    report(
        f"planned {len(plan.assigned_case_ids())} of {len(problem.cases)} cases on "
        f"{len(plan.routes)} routes in {len(parts)} territories"
    )
    return replace(plan, objective=cost, solve_time_s=time.perf_counter() - began, stats=stats)


def _run_all(
    runner: Executor,
    tasks: Iterable[TerritoryTask],
    retries: int,
    counts: dict[str, float],
    report: Callable[[str], None],
) -> dict[int, Plan]:
    """Run every task; resubmit failures, and solve here what fails ``retries`` times."""
    given: list[TerritoryTask] = []

    def remember(items: Iterable[TerritoryTask]) -> Iterator[TerritoryTask]:
        for item in items:
            given.append(item)
            yield item

    results: dict[int, Plan] = {}
    outcomes = runner.map_unordered(solve_task, remember(tasks))
    failed = _collect(outcomes, None, results, report)
    for _ in range(retries):
        if not failed:
            break
        counts["failed_tasks"] += len(failed)
        outcomes = runner.map_unordered(solve_task, [given[i] for i in failed])
        failed = _collect(outcomes, failed, results, report)
    counts["failed_tasks"] += len(failed)
    for position in failed:
        report(f"territory {given[position].territory_id} failed on every try; solving it here")
        counts["local_solves"] += 1
        results[position] = solve_task(given[position])
    return results


def _collect(
    outcomes: Iterator[tuple[int, Any]],
    positions: Sequence[int] | None,
    results: dict[int, Plan],
    report: Callable[[str], None],
) -> list[int]:
    """Store each plan under its task's position; return the positions that failed."""
    failed = []
    for index, outcome in outcomes:
        position = index if positions is None else positions[index]
        if isinstance(outcome, Plan):
            results[position] = outcome
        else:
            report(f"a territory solve failed ({type(outcome).__name__}: {outcome}); retrying")
            failed.append(position)
    return sorted(failed)


def _repair(
    problem: Problem,
    plan: Plan,
    territories: Sequence[Territory],
    source: MatrixSource,
    params: SolveParams,
    runner: Executor,
    retries: int,
    counts: dict[str, float],
    report: Callable[[str], None],
) -> tuple[Plan, int]:
    """Offer unassigned cases to the nearest other territory; keep what it takes."""
    open_cases = [u.case_id for u in plan.unassigned if u.reason not in _FINAL_REASONS]
    target = nearest_other_territory(problem, territories, open_cases)
    by_id = {t.id: t for t in territories}
    offered: dict[str, list[str]] = {}
    for case_id, territory_id in target.items():
        offered.setdefault(territory_id, []).append(case_id)
    if not offered:
        return plan, 0
    report(f"offering {len(target)} unassigned cases to neighbouring territories")
    routes = {r.collector_id: r for r in plan.routes}
    tasks = []
    for territory_id, case_ids in offered.items():
        territory = by_id[territory_id]
        members = set(territory.collector_ids)
        keep = {r.collector_id: r.case_ids for r in plan.routes if r.collector_id in members}
        routed = {c for order in keep.values() for c in order}
        wanted = routed | set(case_ids)
        part = replace(
            territory_problem(problem, territory),
            cases=tuple(c for c in problem.cases if c.id in wanted),
        )
        tasks.append(TerritoryTask(territory_id, part, source(part), params, keep))
    outcomes = _run_repairs(runner, tasks, retries, counts, report)
    unassigned = {u.case_id: u for u in plan.unassigned}
    taken = 0
    for task in tasks:
        result = outcomes.get(task.territory_id)
        if result is None:
            continue
        for route in result.routes:
            routes[route.collector_id] = route
        elsewhere = {u.case_id: u for u in result.unassigned}
        for case_id in offered[task.territory_id]:
            if case_id in elsewhere:
                unassigned[case_id] = combine_reasons(
                    unassigned[case_id], elsewhere[case_id], task.territory_id
                )
            else:
                del unassigned[case_id]
                taken += 1
    merged = Plan(
        routes=tuple(routes[t.id] for t in problem.teams() if t.id in routes),
        unassigned=tuple(unassigned[c.id] for c in problem.cases if c.id in unassigned),
        objective=plan.objective,
        solve_time_s=plan.solve_time_s,
        stats=plan.stats,
    )
    report(f"neighbouring territories took {taken} of {len(target)} offered cases")
    return merged, taken


def _run_repairs(
    runner: Executor,
    tasks: Sequence[TerritoryTask],
    retries: int,
    counts: dict[str, float],
    report: Callable[[str], None],
) -> dict[str, Plan]:
    """Run repair solves; one that fails every time (or cannot keep its routes) is skipped.

    Skipping loses nothing: its offered cases stay unassigned with their reasons
    from their own territory, and its routes stay as they were.
    """
    done: dict[str, Plan] = {}
    waiting = list(tasks)
    for attempt in range(retries + 1):
        failed = []
        for position, outcome in runner.map_unordered(solve_task, waiting):
            if isinstance(outcome, Plan):
                done[waiting[position].territory_id] = outcome
            elif isinstance(outcome, InvalidProblemError):
                report(f"territory {waiting[position].territory_id} cannot keep its routes")
            else:
                failed.append(waiting[position])
        if not failed:
            break
        counts["failed_tasks"] += len(failed)
        if attempt < retries:
            report(f"{len(failed)} repair solve(s) failed; retrying")
        waiting = failed
    return done


def _silent(_message: str) -> None:
    """Ignore a progress message."""
