"""The store on SQLite and PostgreSQL: migrations, idempotent upserts, jobs, plans round trip."""

from __future__ import annotations

import datetime as dt
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, make_url, text

from dispatch import io
from dispatch.compliance import Outcome, VisitRecord, load_policy
from dispatch.model import Crew, Location, Problem, TimeWindow
from dispatch.store import Base, CheckIn, JobStatus, OutcomeDetails, Store, StoreConflictError

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"
CASES = io.read_cases(SAMPLE / "cases.csv").items
COLLECTORS = io.read_collectors(SAMPLE / "collectors.csv").items


def _postgres_base() -> str:
    base = os.environ.get("DISPATCH_TEST_DATABASE_URL", "")
    if not base:
        message = "POSTGRESQL TESTS NOT RUN: set DISPATCH_TEST_DATABASE_URL (see .ci/run)"
        if os.environ.get("DISPATCH_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{message} (DISPATCH_REQUIRE_POSTGRES=1)", pytrace=False)
        pytest.skip(message)
    return base


@contextmanager
def _postgres_schema() -> Iterator[str]:
    """A URL whose connections work in a new schema of the PostgreSQL test server."""
    base = _postgres_base()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a new SQLite file, or a new schema on the PostgreSQL test server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    with _postgres_schema() as url:
        yield url


@pytest.fixture(scope="module")
def postgres_migrated() -> Iterator[str]:
    """One migrated PostgreSQL schema for the module; each test empties it first."""
    with _postgres_schema() as url:
        store = Store(url)
        store.migrate()
        store.close()
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store on a migrated, empty database."""
    if request.param == "sqlite":
        store = Store(f"sqlite:///{tmp_path / 'store.db'}")
        store.migrate()
    else:
        store = Store(request.getfixturevalue("postgres_migrated"))
        with store.engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())
            connection.execute(text("INSERT INTO store_state (id, data_version) VALUES (1, 0)"))
    yield store
    store.close()


def test_migrating_an_empty_database_gives_the_schema_the_tables_declare(empty_url):
    store = Store(empty_url)
    store.migrate()

    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        tables = set(inspect(connection).get_table_names())
    version = store.data_version()
    store.close()

    assert differences == []
    assert tables == {t.name for t in Base.metadata.sorted_tables} | {"alembic_version"}
    assert version == 0


def test_an_unchanged_batch_writes_nothing_and_keeps_the_data_version(store):
    first = store.upsert_cases(CASES[:10])
    version = store.data_version()
    stamped = store.get_case("C-001")

    again = store.upsert_cases(CASES[:10])

    assert len(first.created) == 10
    assert (again.created, again.updated, len(again.unchanged)) == ((), (), 10)
    assert store.data_version() == version
    assert store.get_case("C-001") == stamped


def test_a_changed_case_is_updated_and_bumps_the_data_version(store):
    store.upsert_cases(CASES[:3])
    version = store.data_version()
    changed = replace(CASES[1], windows=(TimeWindow(9 * 3600, 12 * 3600),))

    result = store.upsert_cases([CASES[0], changed])

    assert (result.created, result.updated, result.unchanged) == ((), ("C-002",), ("C-001",))
    assert store.get_case("C-002").item == changed
    assert store.data_version() == version + 1


def test_a_batch_naming_an_id_twice_is_refused(store):
    with pytest.raises(ValueError, match="more than once"):
        store.upsert_cases([CASES[0], CASES[0]])


def test_concurrent_batches_of_the_same_new_cases_both_succeed(store):
    results, errors = [], []

    def write() -> None:
        try:
            results.append(store.upsert_cases(CASES[:50]))
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(len(r.created) for r in results) == [0, 50]
    assert store.list_cases(limit=1000).total == 50


def test_everything_reads_back_as_the_domain_values_it_was(store):
    # Loads and capacities too, which the sample files leave at their defaults.
    cases_sent = (replace(CASES[0], load=4), *CASES[1:])
    collectors_sent = (replace(COLLECTORS[0], capacity=20), *COLLECTORS[1:])
    store.upsert_cases(cases_sent)
    store.upsert_collectors(collectors_sent)
    store.upsert_crews([Crew("W-1", ("K-01", "K-02"))])

    cases, collectors, crews = store.load_day_input()

    assert cases == tuple(sorted(cases_sent, key=lambda c: c.id))
    assert collectors == tuple(sorted(collectors_sent, key=lambda k: k.id))
    assert crews == (Crew("W-1", ("K-01", "K-02")),)


def test_outcomes_keep_their_id_and_build_the_history(store):
    store.upsert_cases(CASES[:2])
    visit = VisitRecord("C-001", dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC), Outcome.NOT_HOME)
    later = replace(visit, visited_at=dt.datetime(2026, 12, 3, tzinfo=dt.UTC))

    stored, created = store.add_outcome(visit, outcome_id="v-1")
    again, created_again = store.add_outcome(visit, outcome_id="v-1")
    store.add_outcome(later)

    assert (created, created_again) == (True, False)
    assert again == stored
    with pytest.raises(StoreConflictError):
        store.add_outcome(replace(visit, outcome=Outcome.PAID), outcome_id="v-1")
    with pytest.raises(KeyError):
        store.add_outcome(replace(visit, case_id="C-404"))
    history = store.load_history(before=dt.datetime(2026, 12, 2, tzinfo=dt.UTC))
    # The visit is remembered at the address the case had then.
    assert history == (replace(visit, address=CASES[0].address),)
    assert CASES[0].address


def test_an_outcome_keeps_the_money_note_and_check_in_the_collector_gave(store):
    store.upsert_cases(CASES[:1])
    visit = VisitRecord(
        "C-001", dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC), Outcome.PARTIAL_PAYMENT
    )
    checkin = CheckIn(Location(60.17, 24.94), 12.5, 840.0, far_from_address=True)
    details = OutcomeDetails(paid_cents=12_000, note="paid cash, receipt 17", checkin=checkin)

    stored, _ = store.add_outcome(visit, outcome_id="v-2", details=details)

    (listed,) = store.list_outcomes(case_id="C-001").items
    assert listed == stored
    assert listed.details == details


def test_only_one_worker_claims_a_job_and_identical_requests_share_it(store):
    job, created = store.submit_job({"date": "2026-12-01"})
    same, created_again = store.submit_job({"date": "2026-12-01"})

    first = store.claim_job("w1", lease_s=30)
    second = store.claim_job("w2", lease_s=30)

    assert (created, created_again, same.id) == (True, False, job.id)
    assert first is not None and first.id == job.id and first.worker_id == "w1"
    assert second is None
    assert store.renew_lease(job.id, "w2", lease_s=30) is None
    assert store.renew_lease(job.id, "w1", lease_s=30, stage="Solving").stage == "Solving"


def test_leases_expire_and_stopped_workers_jobs_go_back_to_the_queue(store):
    expiring, _ = store.submit_job({"n": 1})
    requeued, _ = store.submit_job({"n": 2})
    store.claim_job("gone", lease_s=0.01)
    store.claim_job("stopping", lease_s=60)

    expired = store.expire_leases(now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    back = store.requeue_jobs_of_worker("stopping")

    assert (expired, back) == (1, 1)
    failed = store.get_job(expiring.id)
    assert (failed.status, failed.error_code) == (JobStatus.FAILED, "worker_lost")
    again = store.get_job(requeued.id)
    assert (again.status, again.worker_id) == (JobStatus.QUEUED, None)
    assert store.claim_job("fresh", lease_s=60).id == requeued.id


@pytest.fixture(scope="module")
def day_plan(tmp_path_factory):
    """A small real day planned under the sample policy."""
    from dispatch.pipeline import plan_day
    from dispatch.solve import SolveParams

    problem = Problem(dt.date(2026, 12, 1), "Europe/Helsinki", CASES[:30], COLLECTORS[:3])
    return plan_day(
        problem,
        policy=load_policy(SAMPLE / "policy.yaml"),
        params=SolveParams(time_limit_s=1),
        cache_dir=tmp_path_factory.mktemp("cache"),
    )


def test_a_plan_reads_back_exactly_with_its_itineraries_and_audit(store, day_plan):
    job, _ = store.submit_job({"date": "2026-12-01"})
    store.claim_job("w1", lease_s=30)

    plan_id = store.save_plan(
        job.id,
        "w1",
        problem=day_plan.problem,
        plan=day_plan.plan,
        itineraries=day_plan.itineraries,
        exposure={"phone": "masked"},
        audit=day_plan.screening.audit,
    )

    stored = store.get_plan(plan_id)
    assert stored.problem == day_plan.problem
    assert stored.plan.routes == day_plan.plan.routes
    assert stored.plan.unassigned == day_plan.plan.unassigned
    assert stored.audit == day_plan.screening.audit
    for itinerary in day_plan.itineraries:
        assert store.get_itinerary(plan_id, itinerary.collector.id).itinerary == itinerary
    assert store.get_job(job.id).plan_id == plan_id
    summary = store.list_plans().items[0]
    assert (summary.id, summary.visits) == (plan_id, len(day_plan.plan.assigned_case_ids()))


def test_crew_members_each_read_back_their_crews_itinerary(store, tmp_path):
    from dispatch.pipeline import plan_day
    from dispatch.solve import SolveParams

    crew = Crew("W-1", ("K-01", "K-03"))
    problem = Problem(
        dt.date(2026, 12, 1), "Europe/Helsinki", CASES[:20], COLLECTORS[:3], crews=(crew,)
    )
    day = plan_day(problem, params=SolveParams(time_limit_s=1), cache_dir=tmp_path)
    job, _ = store.submit_job({"date": "2026-12-01"})
    store.claim_job("w1", lease_s=30)

    plan_id = store.save_plan(
        job.id, "w1", problem=day.problem, plan=day.plan, itineraries=day.itineraries, exposure={}
    )

    assert {it.collector.id for it in day.itineraries if it.crew_id} == {"K-01", "K-03"}
    assert tuple(s.itinerary for s in store.list_itineraries(plan_id)) == day.itineraries
    assert store.route_case_ids(plan_id, "K-03") == store.route_case_ids(plan_id, "K-01")


def test_a_plan_of_a_job_the_worker_no_longer_holds_is_not_stored(store, day_plan):
    job, _ = store.submit_job({"date": "2026-12-01"})
    store.claim_job("w1", lease_s=30)
    store.cancel_job(job.id)
    store.finish_job(job.id, "w1", JobStatus.CANCELLED, stage="Cancelled")

    plan_id = store.save_plan(
        job.id,
        "w1",
        problem=day_plan.problem,
        plan=day_plan.plan,
        itineraries=day_plan.itineraries,
        exposure={},
    )

    assert plan_id is None
    assert store.list_plans().total == 0
