"""The plan worker: a process that takes queued plan jobs from the store and plans them.

Run by the service (``DISPATCH_WORKERS``), or on its own, on any machine that
reaches the database: ``python -m api.worker``. While it plans, a heartbeat
thread renews the job's lease; if the process dies, the service that started
it fails the job at once, and any service fails it when the lease runs out.
A cancel request is honoured between stages (the solve itself is bounded by
its time limit).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from api.planning import failure_code, run_plan_job
from api.settings import Settings
from dispatch.store import JobRecord, JobStatus, Store

logger = logging.getLogger("dispatch.worker")


class _Stopped(Exception):
    """The job is to stop: cancelled (``cancelled``), or no longer held by this worker."""

    def __init__(self, *, cancelled: bool):
        super().__init__("cancelled" if cancelled else "lost")
        self.cancelled = cancelled


class _Heartbeat:
    """Renews a running job's lease every third of it and notes a cancel request or a loss."""

    def __init__(self, store: Store, job: JobRecord, worker_id: str, lease_s: float):
        self._store, self._job_id, self._worker_id = store, job.id, worker_id
        self._lease_s = lease_s
        self._done = threading.Event()
        self.cancelled = job.cancel_requested
        self.lost = False
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(self._lease_s / 3):
            self.beat()

    def beat(self, stage: str | None = None) -> None:
        """Renew the lease now (and record the stage); raise ``_Stopped`` if the job must stop."""
        job = self._store.renew_lease(
            self._job_id, self._worker_id, lease_s=self._lease_s, stage=stage
        )
        if job is None:
            self.lost = True
        elif job.cancel_requested:
            self.cancelled = True
        if stage is not None and (self.lost or self.cancelled):
            raise _Stopped(cancelled=not self.lost)


def run_job(store: Store, job: JobRecord, settings: Settings, worker_id: str) -> None:
    """Plan one claimed job and record how it ended."""
    with _Heartbeat(store, job, worker_id, settings.lease_s) as heart:

        @contextmanager
        def stage(label: str) -> Iterator[None]:
            heart.beat(label)
            yield

        try:
            plan_id = run_plan_job(
                store,
                job,
                worker_id=worker_id,
                network=settings.network,
                cache_dir=settings.cache_dir,
                default_timezone=settings.timezone,
                stage=stage,
            )
        except _Stopped as stop:
            if stop.cancelled:
                store.finish_job(job.id, worker_id, JobStatus.CANCELLED, stage="Cancelled")
            logger.info("job %s stopped (%s)", job.id, stop)
            return
        except Exception as error:
            code = failure_code(error)
            if code == "internal_error":
                logger.exception("job %s failed", job.id)
                message = "the planner failed unexpectedly; the error is in the worker's log"
            else:
                message = str(error)
            store.finish_job(
                job.id,
                worker_id,
                JobStatus.FAILED,
                stage="Failed",
                error_code=code,
                error_message=message,
            )
            return
    logger.info("job %s %s", job.id, f"planned: {plan_id}" if plan_id else "was lost")


def run_worker(
    settings: Settings,
    *,
    worker_id: str,
    parent_pid: int | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Take and plan jobs until ``stop`` is set or the parent process is gone."""
    store = Store(settings.database_url)
    stop = stop or threading.Event()
    try:
        while not stop.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                logger.info("the service that started worker %s is gone; stopping", worker_id)
                return
            job = store.claim_job(worker_id, lease_s=settings.lease_s)
            if job is None:
                stop.wait(settings.poll_s)
                continue
            logger.info("worker %s took job %s", worker_id, job.id)
            run_job(store, job, settings, worker_id)
    finally:
        store.close()


def new_worker_id() -> str:
    """A worker id that names the host and process, unique across restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def main(argv: list[str] | None = None) -> None:
    """Run a worker with settings from the ``DISPATCH_*`` environment."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker-id", default=None, help="Id recorded on the jobs it runs.")
    parser.add_argument("--parent-pid", type=int, default=None, help="Stop when it exits.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    worker_id = args.worker_id or new_worker_id()
    logger.info("worker %s ready", worker_id)
    run_worker(Settings(), worker_id=worker_id, parent_pid=args.parent_pid)


if __name__ == "__main__":
    main()
