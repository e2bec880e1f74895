"""Load on the HTTP service over loopback: collector itinerary reads and 1,000-case upserts.

Starts ``uvicorn api.main:app`` on 127.0.0.1 in a subprocess (SQLite in a
scratch folder unless ``--database-url`` names another database), stocks it
with the sample city, plans the day with the service's own worker, then runs
two bounded loads with a thread pool of HTTP clients:

- ``itinerary``: ``GET`` a collector's itinerary through their signed link;
- ``upsert``: ``POST /v1/cases`` with 1,000 cases, every one changed since
  the previous request (the costliest kind of batch).

Each load stops after its request count or its time budget, whichever comes
first; the server is stopped at the end. Writes ``bench/results/api.csv`` and,
with ``--readme``, the "Service load" section of ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "api.csv"
README = ROOT / "bench" / "README.md"
BEGIN, END = "<!-- api:begin -->", "<!-- api:end -->"
ADMIN_KEY = "bench-admin-key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
SEED = 7


@dataclass(frozen=True)
class Result:
    """One load: what was sent and how the service answered."""

    scenario: str
    backend: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies_ms: tuple[float, ...]

    @property
    def per_second(self) -> float:
        """Requests answered per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        """Latency at quantile ``q`` (0..1), in milliseconds."""
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(database_url: str, cache_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """Start the service on loopback and wait until it answers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
    env |= {
        "DISPATCH_DATABASE_URL": database_url,
        "DISPATCH_ADMIN_KEY": ADMIN_KEY,
        "DISPATCH_LINK_SECRET": "bench-link-secret",
        "DISPATCH_CACHE_DIR": str(cache_dir),
        "DISPATCH_WORKERS": "1",
        "DISPATCH_TIMEZONE": "Europe/Helsinki",
    }
    command = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the service did not start within 60 s")


def _sample_rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The sample city's cases and collectors as the API takes them."""
    from dispatch import io
    from dispatch.model import ALL_DAY, format_clock

    cases = [
        {
            "id": c.id,
            "lat": c.location.lat,
            "lon": c.location.lon,
            "address": c.address,
            "days_past_due": c.days_past_due,
            "amount_cents": c.amount_cents,
            "value_cents": c.value,
            "skills": sorted(c.skills),
            "service_s": c.service_s,
            "windows": [] if c.windows == (ALL_DAY,) else [str(w) for w in c.windows],
            "flags": sorted(c.flags),
            "debtor_name": c.debtor_name,
            "phone": c.phone,
        }
        for c in io.read_cases(ROOT / "sample_data" / "cases.csv").items
    ]
    collectors = [
        {
            "id": k.id,
            "name": k.name,
            "start_lat": k.start.lat,
            "start_lon": k.start.lon,
            "end_lat": k.end.lat,
            "end_lon": k.end.lon,
            "shift_start": format_clock(k.shift.start_s),
            "shift_end": format_clock(k.shift.end_s),
            "skills": sorted(k.skills),
            "max_visits": k.max_visits,
            "mode": k.mode.value,
        }
        for k in io.read_collectors(ROOT / "sample_data" / "collectors.csv").items
    ]
    return cases, collectors


def stock_and_plan(base: str) -> str:
    """Stock the sample city, plan the day; returns the itinerary URL (with link) to read."""
    cases, collectors = _sample_rows()
    with httpx.Client(base_url=base, headers=ADMIN, timeout=60) as client:
        client.post("/v1/cases", json={"cases": cases}).raise_for_status()
        client.post("/v1/collectors", json={"collectors": collectors}).raise_for_status()
        job = client.post("/v1/plans", json={"date": "2026-12-01", "time_limit_s": 5}).json()
        deadline = time.monotonic() + 120
        while job["status"] in ("queued", "running"):
            if time.monotonic() > deadline:
                raise RuntimeError("the plan job did not finish within 120 s")
            time.sleep(0.5)
            job = client.get(f"/v1/jobs/{job['id']}").json()
        if job["status"] != "succeeded":
            raise RuntimeError(f"the plan job ended {job['status']}: {job['error']}")
        plan_id = job["plan_id"]
        busiest = max(
            client.get(f"/v1/plans/{plan_id}/itineraries").json(), key=lambda i: i["visits"]
        )
        links = client.post(
            f"/v1/plans/{plan_id}/links", json={"collector_ids": [busiest["collector_id"]]}
        ).json()["links"]
        return str(links[0]["itinerary_url"]).removeprefix(base)


def case_batches(count: int) -> Callable[[int], dict[str, Any]]:
    """Batch ``i`` of ``count`` synthetic cases in central Helsinki, each changed since ``i-1``."""
    rng = random.Random(SEED)
    base = [
        {
            "id": f"B-{n:05d}",
            "lat": round(60.163 + rng.random() * 0.012, 6),
            "lon": round(24.930 + rng.random() * 0.030, 6),
            "address": f"Bench street {n}, Helsinki",
            "days_past_due": rng.randint(30, 720),
            "amount_cents": rng.randint(10_000, 5_000_000),
            "skills": rng.choice([[], ["legal"], ["swedish"]]),
            "windows": rng.choice([[], ["09:00-12:00"], ["09:00-12:00", "17:00-20:00"]]),
            "debtor_name": f"Debtor {n}",
            "phone": f"+358 40 {n:03d} {n % 10000:04d}",
        }
        for n in range(count)
    ]

    def batch(i: int) -> dict[str, Any]:
        return {"cases": [row | {"days_past_due": row["days_past_due"] + i} for row in base]}

    return batch


def run_load(
    scenario: str,
    base: str,
    send: Callable[[httpx.Client, int], httpx.Response],
    *,
    requests: int,
    concurrency: int,
    budget_s: float,
    backend: str,
) -> Result:
    """Send up to ``requests`` requests from ``concurrency`` clients, for at most ``budget_s``."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(requests))
    started = time.perf_counter()
    deadline = started + budget_s

    def client_loop() -> None:
        nonlocal errors
        with httpx.Client(base_url=base, timeout=60) as client:
            while time.perf_counter() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                sent = time.perf_counter()
                try:
                    ok = send(client, i).status_code == 200
                except httpx.HTTPError:
                    ok = False
                elapsed_ms = (time.perf_counter() - sent) * 1000
                with lock:
                    latencies.append(elapsed_ms)
                    errors += not ok

    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(client_loop) for _ in range(concurrency)]:
            future.result()
    seconds = time.perf_counter() - started
    return Result(scenario, backend, concurrency, len(latencies), errors, seconds, tuple(latencies))


def write_results(results: list[Result]) -> None:
    """Write ``bench/results/api.csv``."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                *("scenario", "backend", "concurrency", "requests", "errors", "seconds"),
                *("rps", "p50_ms", "p99_ms", "mean_ms"),
            ]
        )
        for r in results:
            writer.writerow(
                [
                    *(r.scenario, r.backend, r.concurrency, r.requests, r.errors),
                    f"{r.seconds:.2f}",
                    f"{r.per_second:.1f}",
                    f"{r.percentile_ms(0.5):.1f}",
                    f"{r.percentile_ms(0.99):.1f}",
                    f"{statistics.fmean(r.latencies_ms):.1f}",
                ]
            )


def table(results: list[Result]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| scenario | database | clients | requests | errors | req/s | p50 ms | p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r.scenario} | {r.backend} | {r.concurrency} | {r.requests} | {r.errors} | "
            f"{r.per_second:.1f} | {r.percentile_ms(0.5):.1f} | {r.percentile_ms(0.99):.1f} |"
        )
    return "\n".join(lines)


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def write_readme(results: list[Result], command: str) -> None:
    """Replace (or append) the "Service load" section of ``bench/README.md``."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    body = "\n".join(
        [
            BEGIN,
            f"Run {dt.date.today()} on {_cpu_name()}, "
            f"{os.cpu_count()} cores shared with other work (figures are indicative); "
            f"commit {commit}, Python {platform.python_version()}.",
            f"Command: `{command}`; results in `bench/results/api.csv`.",
            "",
            table(results),
            "",
            "`itinerary`: the busiest collector's itinerary read through their signed link "
            "(JSON with road lines, about 16 stops and 24 KB; link check, three queries, "
            "redaction). `upsert 1000`: one `POST /v1/cases` of 1,000 cases, each changed "
            "since the previous request, validated row by row and written in one transaction "
            "(so 4 requests per second are 4,000 cases per second). The server is one "
            "uvicorn process; the clients run on the same two cores.",
            END,
        ]
    )
    text = README.read_text(encoding="utf-8")
    if BEGIN in text:
        head, rest = text.split(BEGIN, 1)
        text = head + body + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## Service load\n\n" + body + "\n"
    README.write_text(text, encoding="utf-8")


def run_on(database_url: str | None, args: argparse.Namespace) -> list[Result]:
    """Start a service on a database, stock it, run both loads, stop it."""
    with tempfile.TemporaryDirectory(prefix="dispatch-bench-") as scratch:
        url = database_url or f"sqlite:///{Path(scratch) / 'dispatch.db'}"
        backend = url.split(":", 1)[0].split("+", 1)[0]
        port = _free_port()
        server = start_server(url, Path(scratch) / "cache", port)
        base = f"http://127.0.0.1:{port}"
        try:
            itinerary = stock_and_plan(base)
            batch = case_batches(1000)
            return [
                run_load(
                    "itinerary",
                    base,
                    lambda client, i: client.get(itinerary),
                    requests=args.reads,
                    concurrency=args.clients,
                    budget_s=args.budget_s,
                    backend=backend,
                ),
                run_load(
                    "upsert 1000",
                    base,
                    lambda client, i: client.post("/v1/cases", json=batch(i), headers=ADMIN),
                    requests=args.upserts,
                    concurrency=2,
                    budget_s=args.budget_s,
                    backend=backend,
                ),
            ]
        finally:
            server.terminate()
            server.wait(30)


def _without_password(arg: str) -> str:
    if "://" not in arg:
        return arg
    from sqlalchemy import make_url

    return make_url(arg).render_as_string(hide_password=True)


def main(argv: list[str] | None = None) -> None:
    """Run the loads and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        action="append",
        default=None,
        help="Database URL to run on, or 'sqlite' for a new SQLite file (the default); repeat "
        "for several.",
    )
    parser.add_argument("--reads", type=int, default=2000, help="Itinerary reads (at most).")
    parser.add_argument("--upserts", type=int, default=40, help="1,000-case batches (at most).")
    parser.add_argument("--clients", type=int, default=8, help="Concurrent clients for reads.")
    parser.add_argument("--budget-s", type=float, default=60.0, help="Time limit of each load.")
    parser.add_argument("--readme", action="store_true", help="Update bench/README.md.")
    args = parser.parse_args(argv)
    results: list[Result] = []
    for url in args.database_url or ["sqlite"]:
        results += run_on(None if url == "sqlite" else url, args)
    write_results(results)
    print(table(results))
    if args.readme:
        shown = [_without_password(a) for a in (argv or sys.argv[1:])]
        write_readme(results, "python bench/bench_api.py " + " ".join(shown))


if __name__ == "__main__":
    main()
