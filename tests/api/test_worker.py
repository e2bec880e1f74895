"""The plan worker, run in this process: plan and store, honour a cancel, fail with a reason."""

from __future__ import annotations

from api_support import ADMIN, SAMPLE, make_settings, sample_cases, sample_collectors

from api.worker import run_job
from dispatch.store import JobStatus

REQUEST = {
    "date": "2026-12-01",
    "policy": None,
    "use_triage": False,
    "time_limit_s": 1.0,
    "seed": 0,
    "timezone": None,
}


def _stock(client, *, cases=12, collectors=2, crews=()):
    client.post("/v1/cases", json={"cases": sample_cases(cases)}, headers=ADMIN)
    client.post("/v1/collectors", json={"collectors": sample_collectors(collectors)}, headers=ADMIN)
    if crews:
        client.post("/v1/crews", json={"crews": list(crews)}, headers=ADMIN)


def _run(client, request, cache_dir, *, cancel=False):
    store = client.app.state.store
    queued, _ = store.submit_job(request)
    job = store.claim_job("test-worker", lease_s=30)
    assert job is not None and job.id == queued.id
    if cancel:
        store.cancel_job(job.id)
        job = store.get_job(job.id)
    settings = make_settings(store.url, cache_dir)
    run_job(store, job, settings, "test-worker")
    return store.get_job(job.id)


def test_a_job_is_planned_and_its_plan_stored(client, cache_dir):
    _stock(client)

    job = _run(client, REQUEST, cache_dir)

    assert (job.status, job.stage, job.error_code) == (JobStatus.SUCCEEDED, "Done", None)
    plan = client.get(f"/v1/plans/{job.plan_id}", headers=ADMIN).json()
    planned = {s["case_id"] for r in plan["routes"] for s in r["stops"]}
    unassigned = client.get(f"/v1/plans/{job.plan_id}/unassigned", headers=ADMIN).json()
    assert planned | {u["case_id"] for u in unassigned["items"]} == {
        c["id"] for c in sample_cases(12)
    }
    assert plan["timezone"] == "Europe/Helsinki"
    no_audit = client.get(f"/v1/plans/{job.plan_id}/audit", headers=ADMIN)
    assert no_audit.status_code == 404
    assert no_audit.json()["error"]["code"] == "no_audit"


def test_a_cancel_request_stops_the_job_before_its_next_stage(client, cache_dir):
    _stock(client)

    job = _run(client, REQUEST, cache_dir, cancel=True)

    assert (job.status, job.plan_id) == (JobStatus.CANCELLED, None)
    assert client.get("/v1/plans", headers=ADMIN).json()["total"] == 0


def test_a_day_that_cannot_be_planned_fails_the_job_with_the_reason(client, cache_dir):
    _stock(client, crews=[{"id": "W-1", "member_ids": ["K-01", "K-09"]}])

    job = _run(client, REQUEST, cache_dir)

    assert (job.status, job.error_code) == (JobStatus.FAILED, "invalid_problem")
    assert "K-09" in job.error_message


def test_a_stored_policy_that_a_day_breaks_fails_nothing_and_is_audited(client, cache_dir):
    _stock(client)
    document = (SAMPLE / "policy.yaml").read_text(encoding="utf-8")
    client.put("/v1/policies/fi-company", json={"document": document}, headers=ADMIN)

    # 2026-12-06 is a Sunday: the policy blocks every visit.
    job = _run(client, REQUEST | {"date": "2026-12-06", "policy": "fi-company"}, cache_dir)

    assert job.status == JobStatus.SUCCEEDED
    audit = client.get(f"/v1/plans/{job.plan_id}/audit", headers=ADMIN).json()
    assert {e["rule"] for e in audit["entries"]} == {"BLOCKED_DAY"}
    unassigned = client.get(f"/v1/plans/{job.plan_id}/unassigned", headers=ADMIN).json()
    assert unassigned["total"] == 12
    assert {u["reason"] for u in unassigned["items"]} == {"POLICY_EXCLUDED"}


def test_a_worker_that_lost_its_job_stores_nothing(client, cache_dir):
    _stock(client)
    store = client.app.state.store
    store.submit_job(REQUEST)
    job = store.claim_job("slow-worker", lease_s=30)
    # Meanwhile the service decided the worker was gone.
    store.fail_jobs_of_worker("slow-worker", code="worker_lost", message="gone")

    run_job(store, job, make_settings(store.url, cache_dir), "slow-worker")

    after = store.get_job(job.id)
    assert (after.status, after.error_code, after.plan_id) == (
        JobStatus.FAILED,
        "worker_lost",
        None,
    )
    assert client.get("/v1/plans", headers=ADMIN).json()["total"] == 0
