"""Plan jobs over HTTP without a worker: accepted at once, deduplicated, cancelled, expired."""

from __future__ import annotations

import pytest
from api_support import ADMIN, make_settings, running_service, sample_cases, wait_for

from dispatch.store import JobStatus

REQUEST = {"date": "2026-12-01", "time_limit_s": 1}


def _submit(client, body=REQUEST, headers=ADMIN):
    return client.post("/v1/plans", json=body, headers=headers)


def test_a_plan_request_is_answered_at_once_with_a_queued_job(client):
    response = _submit(client)

    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert (job["status"], job["stage"], job["plan_id"], job["error"]) == (
        "queued",
        "Queued",
        None,
        None,
    )
    assert job["request"] == {
        "date": "2026-12-01",
        "policy": None,
        "use_triage": False,
        "time_limit_s": 1.0,
        "seed": 0,
        "timezone": None,
    }
    assert client.get(f"/v1/jobs/{job['id']}", headers=ADMIN).json() == job


def test_an_identical_request_returns_the_active_job_until_the_data_changes(client):
    first = _submit(client).json()
    same = _submit(client).json()
    other_seed = _submit(client, REQUEST | {"seed": 7}).json()
    client.post("/v1/cases", json={"cases": sample_cases(1)}, headers=ADMIN)
    after_change = _submit(client).json()

    assert same["id"] == first["id"]
    assert other_seed["id"] != first["id"]
    assert after_change["id"] != first["id"]
    assert after_change["data_version"] == first["data_version"] + 1


def test_a_queued_job_is_cancelled_at_once_and_then_no_longer_blocks(client):
    job = _submit(client).json()

    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel", headers=ADMIN)
    again = client.post(f"/v1/jobs/{job['id']}/cancel", headers=ADMIN)
    resubmitted = _submit(client).json()

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    assert again.status_code == 200
    assert resubmitted["id"] != job["id"]


def test_cancelling_a_running_job_asks_its_worker_and_a_finished_one_is_409(client):
    store = client.app.state.store
    running = _submit(client).json()
    store.claim_job("elsewhere", lease_s=60)

    asked = client.post(f"/v1/jobs/{running['id']}/cancel", headers=ADMIN)

    assert asked.status_code == 202
    assert (asked.json()["status"], asked.json()["cancel_requested"]) == ("running", True)
    store.finish_job(running["id"], "elsewhere", JobStatus.FAILED, stage="Failed")
    finished = client.post(f"/v1/jobs/{running['id']}/cancel", headers=ADMIN)
    assert finished.status_code == 409
    assert finished.json()["error"]["code"] == "job_finished"


def test_a_running_job_whose_worker_goes_silent_fails_when_its_lease_runs_out(client):
    job = _submit(client).json()
    claimed = client.app.state.store.claim_job("silent-worker", lease_s=0.3)
    assert claimed is not None and claimed.id == job["id"]

    failed = wait_for(
        lambda: (
            (j := client.get(f"/v1/jobs/{job['id']}", headers=ADMIN).json())["status"] == "failed"
            and j
        ),
        timeout_s=10,
    )

    assert failed["error"]["code"] == "worker_lost"
    assert "lease" in failed["error"]["message"]
    # The failed job no longer blocks an identical request.
    assert _submit(client).json()["id"] != job["id"]


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"date": "1999-12-31"}, "date", "invalid_request"),
        ({"date": "2026-02-30"}, "date", "invalid_request"),
        ({"time_limit_s": 700}, "time_limit_s", "invalid_request"),
        ({"time_limit_s": 0}, "time_limit_s", "invalid_request"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "invalid_request"),
        ({"policy": "no-such-policy"}, "policy", "unknown_policy"),
        ({"policy": "../../etc/passwd"}, "policy", "invalid_request"),
        ({"policy": "policy.yaml"}, "policy", "unknown_policy"),
        ({"surprise": True}, "surprise", "invalid_request"),
    ],
)
def test_a_plan_request_that_cannot_be_planned_is_refused_up_front(client, change, field, code):
    response = _submit(client, REQUEST | change)

    assert response.status_code == 422
    assert (response.json()["error"]["field"], response.json()["error"]["code"]) == (field, code)
    assert client.get("/v1/jobs", headers=ADMIN).json()["total"] == 0


def test_presets_are_accepted_as_policies(client):
    response = _submit(client, REQUEST | {"policy": "us-federal+us-ma"})

    assert response.status_code == 202


def test_jobs_are_listed_newest_first_and_filtered_by_status(client):
    first = _submit(client).json()
    second = _submit(client, REQUEST | {"seed": 1}).json()
    client.post(f"/v1/jobs/{first['id']}/cancel", headers=ADMIN)

    everything = client.get("/v1/jobs", headers=ADMIN).json()
    queued = client.get("/v1/jobs", params={"status": "queued"}, headers=ADMIN).json()

    assert [j["id"] for j in everything["items"]] == [second["id"], first["id"]]
    assert [j["id"] for j in queued["items"]] == [second["id"]]
    assert client.get(f"/v1/jobs/{'0' * 32}", headers=ADMIN).status_code == 404
    assert client.post(f"/v1/jobs/{'0' * 32}/cancel", headers=ADMIN).status_code == 404


def test_a_service_started_on_an_empty_database_migrates_it(tmp_path, cache_dir):
    url = f"sqlite:///{tmp_path / 'new.db'}"

    with running_service(make_settings(url, cache_dir, migrate=True)) as client:
        response = _submit(client)

    assert response.status_code == 202
