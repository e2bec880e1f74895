"""Plan jobs: status, stage, result or error; cancel one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from api.deps import JobsReader, Limit, Offset, PlansWriter, StoreDep
from api.errors import ApiError, not_found, responses
from api.schemas import JobOut, PageOut, job_out
from dispatch.store import JobStatus

router = APIRouter(prefix="/jobs", tags=["jobs"])

JobIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="Job id.")]


@router.get("", response_model=PageOut[JobOut], responses=responses(401, 403, 422))
def list_jobs(
    store: StoreDep,
    _: JobsReader,
    status: JobStatus | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> PageOut[JobOut]:
    """Plan jobs, newest first."""
    page = store.list_jobs(status=status, limit=limit, offset=offset)
    items = [job_out(j) for j in page.items]
    return PageOut[JobOut](items=items, total=page.total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobOut, responses=responses(401, 403, 404, 422))
def read_job(job_id: JobIdPath, store: StoreDep, _: JobsReader) -> JobOut:
    """A plan job: status, stage, and its plan or why it failed."""
    job = store.get_job(job_id)
    if job is None:
        raise not_found("job", job_id)
    return job_out(job)


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    responses={202: {"model": JobOut, "description": "The worker will stop at the next stage"}}
    | responses(401, 403, 404, 409, 422),
)
def cancel_job(job_id: JobIdPath, store: StoreDep, _: PlansWriter, response: Response) -> JobOut:
    """Cancel a job: a queued one at once (200), a running one at its next stage (202)."""
    job = store.cancel_job(job_id)
    if job is None:
        raise not_found("job", job_id)
    if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLED):
        raise ApiError(409, "job_finished", f"job '{job_id}' has already {job.status.value}")
    if job.status == JobStatus.RUNNING:
        response.status_code = 202
    return job_out(job)
