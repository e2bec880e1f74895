"""The service's plan workers: start them, restart them, and fail the jobs of dead ones.

Each worker is a separate process (``python -m api.worker``) that reads the
jobs table, so a solve never runs in a request thread, a crash in the
solver's native code takes down only that worker, and queued jobs outlive a
restart of the service. A watcher thread checks every poll interval that each
worker is alive: when one exits, the job it was running fails at once
(``worker_lost``) and a new worker takes its place. It also fails any running
job whose lease has run out, which covers workers on other machines.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass

from api.settings import Settings
from api.worker import new_worker_id
from dispatch.store import Store

logger = logging.getLogger("dispatch.api")

# How long a stopping worker may take before it is killed, in seconds.
_STOP_GRACE_S = 5.0


@dataclass
class _Slot:
    worker_id: str
    process: subprocess.Popen[bytes]


class WorkerPool:
    """Worker processes of one service and the thread that watches them and the leases."""

    def __init__(self, settings: Settings, store: Store):
        self._settings = settings
        self._store = store
        self._slots: list[_Slot] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="worker-watch", daemon=True)

    def start(self) -> None:
        """Start the workers and the watcher."""
        with self._lock:
            self._slots = [self._spawn() for _ in range(self._settings.workers)]
        self._thread.start()

    def pids(self) -> dict[str, int]:
        """Process id of each live worker, by worker id."""
        with self._lock:
            return {s.worker_id: s.process.pid for s in self._slots}

    def stop(self) -> None:
        """Stop the workers; the jobs they were running go back to the queue."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        with self._lock:
            slots, self._slots = self._slots, []
        for slot in slots:
            slot.process.terminate()
        for slot in slots:
            try:
                slot.process.wait(_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                slot.process.kill()
                slot.process.wait()
            self._store.requeue_jobs_of_worker(slot.worker_id)

    def _spawn(self) -> _Slot:
        worker_id = new_worker_id()
        command = [
            sys.executable,
            "-m",
            "api.worker",
            "--worker-id",
            worker_id,
            "--parent-pid",
            str(os.getpid()),
        ]
        process = subprocess.Popen(command, env=self._worker_env())
        logger.info("started plan worker %s (pid %d)", worker_id, process.pid)
        return _Slot(worker_id, process)

    def _worker_env(self) -> dict[str, str]:
        """The environment of a worker: this service's settings, none of its secrets."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
        settings = self._settings
        env["DISPATCH_DATABASE_URL"] = settings.database_url
        env["DISPATCH_CACHE_DIR"] = str(settings.cache_dir)
        env["DISPATCH_LEASE_S"] = str(settings.lease_s)
        env["DISPATCH_POLL_S"] = str(settings.poll_s)
        if settings.network is not None:
            env["DISPATCH_NETWORK"] = settings.network
        if settings.timezone is not None:
            env["DISPATCH_TIMEZONE"] = settings.timezone
        return env

    def _watch(self) -> None:
        while not self._stop.wait(self._settings.poll_s):
            try:
                self._check()
            except Exception:
                # A database hiccup must not end the watching for good.
                logger.exception("checking the plan workers failed")

    def _check(self) -> None:
        with self._lock:
            for index, slot in enumerate(self._slots):
                code = slot.process.poll()
                if code is None or self._stop.is_set():
                    continue
                failed = self._store.fail_jobs_of_worker(
                    slot.worker_id,
                    code="worker_lost",
                    message=f"the worker process exited (code {code}) while planning",
                )
                logger.warning(
                    "plan worker %s exited with code %s; %d job(s) failed; restarting",
                    slot.worker_id,
                    code,
                    failed,
                )
                self._slots[index] = self._spawn()
        expired = self._store.expire_leases()
        if expired:
            logger.warning("%d plan job(s) failed: their worker's lease ran out", expired)
