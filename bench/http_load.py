#!/usr/bin/env python
"""HTTP under load: task completion through the REST API against `certrail serve-prod`
(gunicorn web workers + a job worker) on PostgreSQL, driven by locust (headless) with 1, 8
and 32 concurrent clients; then 1,000 double-completion races.

Setup: a fresh PostgreSQL schema that serve-prod migrates; demo staff; for each load level
its own batch of application cases, each waiting at `check_completeness` (clerk). Every
request completes a different task with valid form data (the engine then advances the case
to its next step in the same request). Locust reports requests/s and latency percentiles
(its percentiles are rounded to two significant figures).

Race: for each of `--races` more tasks, two clients (two API tokens of the clerk) send the
completion at the same instant (a thread barrier). Exactly one must get 200 and the other
409; afterwards each task has exactly one `task_completed` audit event, the audit chain
verifies and `certrail check` finds every case consistent.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/http_load.py [--clients 1,8,32] [--seconds 20] [--web-workers 4]
        [--races 1000] [--write-results]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_throughput import PostgresSchema, machine_info, postgres_probe  # noqa: E402
from results_file import write_section  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from engine import Engine  # noqa: E402
from engine.accounts import issue_api_token  # noqa: E402
from engine.audit import verify_chain  # noqa: E402
from engine.consistency import check  # noqa: E402
from engine.demo import load_demo  # noqa: E402
from engine.models import AuditEvent  # noqa: E402
from tests.engine.helpers import cases_waiting_for_completeness_check  # noqa: E402

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
MARKERS = ("<!-- bench:http_load:start -->", "<!-- bench:http_load:end -->")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(url: str, port: int, web_workers: int, log: Path) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "--database", url, "serve-prod"]
        + ["--port", str(port), "--web-workers", str(web_workers), "--job-workers", "1"],
        cwd=ROOT,
        env=dict(os.environ, CERTRAIL_SECRET_KEY="http-load-bench"),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return server
        except OSError:
            if server.poll() is not None:
                raise SystemExit(f"serve-prod exited; see {log}") from None
            time.sleep(0.3)
    raise SystemExit("serve-prod did not answer within 120 s")


def run_locust(base: str, token: str, tasks: list[dict], clients: int, seconds: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tasks_file = Path(tmp) / "tasks.json"
        tasks_file.write_text(json.dumps(tasks))
        prefix = Path(tmp) / "stats"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(Path(__file__).parent / "locust_complete.py"),
            ]
            + ["--headless", "--users", str(clients), "--spawn-rate", str(clients)]
            + ["--run-time", f"{seconds}s", "--host", base, "--csv", str(prefix)]
            + ["--only-summary", "--loglevel", "WARNING", "--stop-timeout", "10"],
            env=dict(os.environ, CERTRAIL_LOAD_TASKS=str(tasks_file), CERTRAIL_LOAD_TOKEN=token),
            check=False,
            capture_output=True,
        )
        with open(f"{prefix}_stats.csv") as fh:
            row = next(r for r in csv.DictReader(fh) if r["Name"] != "Aggregated")
    return {
        "clients": clients,
        "requests": int(row["Request Count"]),
        "failures": int(row["Failure Count"]),
        "rps": float(row["Requests/s"]),
        "p50": float(row["50%"]),
        "p95": float(row["95%"]),
        "p99": float(row["99%"]),
    }


def race(base: str, tokens: list[str], tasks: list[dict]) -> dict:
    outcomes: dict[tuple[int, ...], int] = {}

    def post(task: dict, token: str, barrier: threading.Barrier, statuses: list) -> None:
        request = urllib.request.Request(
            f"{base}/api/v1/tasks/{task['id']}/complete",
            data=json.dumps({"data": task["data"]}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        barrier.wait()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                statuses.append(response.status)
        except urllib.error.HTTPError as refused:
            statuses.append(refused.code)

    for task in tasks:
        barrier = threading.Barrier(2)
        statuses: list[int] = []
        pair = [
            threading.Thread(target=post, args=(task, token, barrier, statuses)) for token in tokens
        ]
        for thread in pair:
            thread.start()
        for thread in pair:
            thread.join()
        key = tuple(sorted(statuses))
        outcomes[key] = outcomes.get(key, 0) + 1
    return {"outcomes": {"+".join(map(str, k)): v for k, v in outcomes.items()}}


def completed_events(engine: Engine, task_ids: list[int]) -> dict[int, int]:
    with engine.sessions() as session:
        rows = session.execute(
            select(AuditEvent.task_id, func.count())
            .where(AuditEvent.action == "task_completed", AuditEvent.task_id.in_(task_ids))
            .group_by(AuditEvent.task_id)
        ).all()
    return dict(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--tasks-per-level", type=int, default=1500)
    parser.add_argument("--web-workers", type=int, default=4)
    parser.add_argument("--races", type=int, default=1000)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    pg_version = postgres_probe(PG_URL)
    if pg_version is None:
        raise SystemExit(f"PostgreSQL is not reachable at {PG_URL}")
    levels = [int(n) for n in args.clients.split(",")]

    schema = PostgresSchema(PG_URL)
    with schema as sql, tempfile.TemporaryDirectory() as tmp:
        url = f"{schema.url}?options=" + quote(f"-csearch_path={schema.schema}")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(url, port, args.web_workers, Path(tmp) / "serve.log")
        try:
            engine = Engine(sql_engine=sql)
            with engine.unit_of_work() as uow:
                load_demo(uow)
                tokens = [issue_api_token(uow, "clerk", f"load {n}") for n in range(2)]
            results = []
            for clients in levels:
                batch = cases_waiting_for_completeness_check(
                    engine, args.tasks_per_level, f"c{clients}"
                )
                result = run_locust(base, tokens[0], batch, clients, args.seconds)
                print(
                    f"{clients:>3} clients: {result['requests']} requests, {result['rps']:.1f}/s, "
                    f"p50 {result['p50']:.0f} ms, p95 {result['p95']:.0f} ms, "
                    f"p99 {result['p99']:.0f} ms, failures {result['failures']}",
                    flush=True,
                )
                results.append(result)
            race_tasks = cases_waiting_for_completeness_check(engine, args.races, "race")
            raced = race(base, tokens, race_tasks)
            events = completed_events(engine, [t["id"] for t in race_tasks])
            with engine.sessions() as session:
                chain = verify_chain(session)
            consistency = check(engine, engine.clock.now())
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    exactly_once = sum(1 for t in race_tasks if events.get(t["id"]) == 1)
    print(
        f"races: {raced['outcomes']}; tasks with exactly one completion event: "
        f"{exactly_once}/{len(race_tasks)}; audit chain ok: {chain.ok}; "
        f"consistent: {consistency.consistent}"
    )
    section = report(
        args,
        levels,
        results,
        raced,
        exactly_once,
        len(race_tasks),
        chain.ok,
        consistency.consistent,
        pg_version,
    )
    print(section)
    if args.write_results:
        write_section(section, *MARKERS)
    return 0


def report(args, levels, results, raced, exactly_once, races, chain_ok, consistent, pg_version):
    eight = next((r for r in results if r["clients"] == 8), None)
    lines = [
        MARKERS[0],
        "## http_load: task completion through the API against `make serve-prod` (PostgreSQL)",
        "",
        f"`certrail serve-prod` with {args.web_workers} gunicorn workers × 4 threads and one job",
        "worker on a fresh PostgreSQL schema; locust (headless, no think time) on the same",
        "2-core machine; each request completes a different `check_completeness` task with valid",
        f"form data (and the engine advances the case). {args.seconds} s per level.",
        "",
        f"Command: `{shlex.join(['.venv/bin/python', 'bench/http_load.py', *sys.argv[1:]])}`",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in machine_info(pg_version).items()),
        "",
        "| clients | requests | requests/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['clients']} | {r['requests']} | {r['rps']:.1f} | {r['p50']:.0f} | "
            f"{r['p95']:.0f} | {r['p99']:.0f} | {r['failures']} |"
        )
    if eight:
        met = eight["p95"] < 100 and eight["failures"] == 0
        lines += [
            "",
            f"Target p95 < 100 ms at 8 clients, no errors: **{'met' if met else 'not met'}**.",
        ]
    lines += [
        "",
        f"Double-completion races ({races}, two clients at the same instant): status pairs "
        + ", ".join(f"{k} × {v}" for k, v in raced["outcomes"].items())
        + f"; tasks with exactly one `task_completed` event: {exactly_once}/{races}; "
        f"audit chain intact: {chain_ok}; `certrail check` consistent: {consistent}.",
        MARKERS[1],
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
