"""From a plan job's request to a stored plan: policy, inputs, ``plan_day``, store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dispatch.compliance import Policy, PolicyError, case_timezone, load_policy, parse_policy
from dispatch.errors import DispatchError, InvalidProblemError
from dispatch.model import Location, Problem
from dispatch.store import JobRecord, Store

Stage = Callable[[str], AbstractContextManager[object]]


def resolve_policy(store: Store, name: str) -> Policy:
    """A stored policy by name, or presets joined by ``+``; never a file on the server.

    Raises
    ------
    PolicyError
        No stored policy has the name and it is not a combination of presets,
        or the stored document no longer parses.
    """
    stored = store.get_policy(name)
    if stored is not None:
        return parse_policy(stored.document, source=name)
    # load_policy also reads files by path; a request must only ever name presets.
    if "/" in name or name.endswith((".yaml", ".yml")):
        raise PolicyError(name, ["a policy is a stored policy's name or preset names"])
    return load_policy(name)


def plan_timezone(requested: str | None, default: str | None, first_start: Location) -> str:
    """The plan's time zone: as requested, the service default, or the first collector's."""
    zone = requested or default or case_timezone(first_start)
    if zone is None:
        raise InvalidProblemError("cannot tell the plan's time zone: give one in the request")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidProblemError(f"time zone '{zone}' is not known") from None
    return zone


def run_plan_job(
    store: Store,
    job: JobRecord,
    *,
    worker_id: str,
    network: str | None,
    cache_dir: Path | None,
    default_timezone: str | None,
    stage: Stage,
) -> str | None:
    """Plan a job's day from what is stored now, and store the plan with the job's success.

    Returns the plan id, or None when the worker no longer holds the job.

    Raises
    ------
    DispatchError
        The stored data or the request cannot be planned (the job fails).
    """
    from dispatch.compliance import ExposureProfile
    from dispatch.pipeline import plan_day
    from dispatch.solve import SolveParams

    request = job.request
    with stage("Reading cases, collectors and history"):
        cases, collectors, crews = store.load_day_input()
        if not collectors:
            raise InvalidProblemError("no collectors are stored: nobody can be sent")
        date = dt.date.fromisoformat(request["date"])
        zone = plan_timezone(request.get("timezone"), default_timezone, collectors[0].start)
        # Every visit up to the end of the plan day counts for caps, gaps and cool-offs.
        next_midnight = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(0), ZoneInfo(zone))
        history = store.load_history(before=next_midnight)
        policy = resolve_policy(store, request["policy"]) if request.get("policy") else None
        problem = Problem(date, zone, cases, collectors, crews)
    params = SolveParams(time_limit_s=float(request["time_limit_s"]), seed=int(request["seed"]))
    day = plan_day(
        problem,
        network=network,
        policy=policy,
        history=history,
        use_triage=bool(request.get("use_triage")),
        params=params,
        cache_dir=cache_dir,
        stage=stage,
    )
    exposure = policy.exposure if policy is not None else ExposureProfile()
    with stage("Storing the plan"):
        return store.save_plan(
            job.id,
            worker_id,
            problem=day.problem,
            plan=day.plan,
            itineraries=day.itineraries,
            exposure={name: level.value for name, level in exposure.levels},
            audit=day.screening.audit,
        )


def failure_code(error: Exception) -> str:
    """The stable code of why a plan job failed."""
    if isinstance(error, PolicyError):
        return "invalid_policy"
    if isinstance(error, InvalidProblemError):
        return "invalid_problem"
    if type(error).__name__ == "NetworkError":
        return "network_error"
    if isinstance(error, DispatchError | ValueError):
        return "planning_failed"
    return "internal_error"
