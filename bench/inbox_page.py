#!/usr/bin/env python
"""Inbox page latency: GET /inbox?tab=available for a reviewer with 10,000 claimable tasks.

Setup (untimed): a fresh SQLite file (WAL, as engine.db configures it) with the schema, the
shipped models and the demo data; then, bulk-inserted with SQLAlchemy Core, `--tasks` people
with one running application case each (scheme CWI or DPO) and one READY `review_eligibility`
task per case (role reviewer, unassigned, due dates spread over ±30 days so some are overdue),
plus `--noise` tasks per claimable one for other roles and already completed work, so that
the status/role criteria have something to skip.

Timed: the whole request through the Flask test client (routing, login session, the engine's
inbox query with its three tab counts and filter choices, template rendering), signed in as
`reviewer`. After `--warmup` untimed requests, `--requests` requests of page 1 and the same
number of page 200 (`&page=200`, deep OFFSET); the figure is the median (min/max, p90).

Usage:  .venv/bin/python bench/inbox_page.py [--tasks 10000] [--requests 25] [--warmup 3]
            [--noise 1] [--write-results]
Target: median < 300 ms for both pages.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy  # noqa: E402
from results_file import RESULTS_FILE, write_section  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402

from engine import Engine  # noqa: E402
from engine.clock import FixedClock  # noqa: E402
from engine.demo import DEMO_PASSWORD, load_demo  # noqa: E402
from engine.models import Base, Case, HumanTask, ModelVersion, Person, Scheme  # noqa: E402
from web import create_app  # noqa: E402

SECTION_START = "<!-- bench:inbox_page:start -->"
SECTION_END = "<!-- bench:inbox_page:end -->"
NOW = datetime(2026, 3, 2, 9, 0, 0)
TARGET_MS = 300
BATCH = 5000

OTHER_TASKS = [
    ("check_completeness", "Check application completeness", "clerk", "application"),
    ("schedule_assessment", "Schedule assessment", "clerk", "application"),
    ("score_written", "Score written examination", "examiner", "assessment"),
    ("decide_certification", "Decide on certification", "decision_maker", "decision"),
]


def build(path: Path, tasks: int, noise: int) -> Engine:
    engine = Engine(f"sqlite:///{path}", clock=FixedClock(NOW))
    Base.metadata.create_all(engine.db)
    engine.sync_models()
    with engine.unit_of_work() as uow:
        load_demo(uow)
    with engine.db.begin() as conn:
        model_id = conn.scalar(
            select(ModelVersion.id).where(ModelVersion.process_id == "application")
        )
        schemes = list(conn.scalars(select(Scheme.id).order_by(Scheme.id)))
        first_person = (conn.scalar(select(sqlalchemy.func.max(Person.id))) or 0) + 1
        first_case = (conn.scalar(select(sqlalchemy.func.max(Case.id))) or 0) + 1
        for start in range(0, tasks, BATCH):
            stop = min(tasks, start + BATCH)
            conn.execute(
                insert(Person),
                [
                    {
                        "id": first_person + i,
                        "given_name": f"Given{i}",
                        "family_name": f"Family{i}",
                        "email": f"bench{i}@example.org",
                        "created_at": NOW - timedelta(days=40),
                    }
                    for i in range(start, stop)
                ],
            )
            conn.execute(
                insert(Case),
                [
                    {
                        "id": first_case + i,
                        "process_id": "application",
                        "model_version_id": model_id,
                        "subprocess_versions": {},
                        "person_id": first_person + i,
                        "scheme_id": schemes[i % len(schemes)],
                        "status": "running",
                        "state": "{}",
                        "lock_version": 1,
                        "started_at": NOW - timedelta(days=40, minutes=i),
                    }
                    for i in range(start, stop)
                ],
            )
            rows = []
            for i in range(start, stop):
                created = NOW - timedelta(days=20, minutes=i)
                rows.append(
                    _task(
                        first_case + i,
                        "review_eligibility",
                        "Review eligibility",
                        "reviewer",
                        "application",
                        created,
                        NOW + timedelta(hours=(i % 1440) - 720),
                    )
                )
                for n in range(noise):
                    spec, name, role, process = OTHER_TASKS[(i + n) % len(OTHER_TASKS)]
                    task = _task(first_case + i, spec, name, role, process, created, None)
                    if n % 2:
                        task.update(status="completed", completed_at=created)
                    rows.append(task)
            conn.execute(insert(HumanTask), rows)
    return engine


def _task(case_id, spec, name, role, process, created, due) -> dict:
    return {
        "case_id": case_id,
        "task_uuid": str(uuid.uuid4()),
        "task_spec_id": spec,
        "process_id": process,
        "name": name,
        "role": role,
        "form": None,
        "instructions": None,
        "status": "ready",
        "priority": 0,
        "assignee_id": None,
        "candidates": None,
        "created_at": created,
        "due_at": due,
    }


def measure(client, url: str, requests: int, warmup: int) -> tuple[list[float], str]:
    body = ""
    for _ in range(warmup):
        body = client.get(url).get_data(as_text=True)
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        body = response.get_data(as_text=True)
    return times, body


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "p90": ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))],
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        ram = f"{pages / 1024**3:.1f} GiB"
    except (ValueError, OSError):
        ram = "?"
    return (
        f"date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, host {platform.system()} "
        f"{platform.release()} ({platform.machine()}), cpu {cpu}, nproc {os.cpu_count()}, "
        f"ram {ram}, python {platform.python_version()}, Flask {_version('flask')}, "
        f"SQLAlchemy {sqlalchemy.__version__}, sqlite {sqlite3.sqlite_version}"
    )


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def write_results(section: str) -> None:
    write_section(section, SECTION_START, SECTION_END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="claimable tasks (10000)")
    parser.add_argument("--noise", type=int, default=1, help="other tasks per claimable one")
    parser.add_argument("--requests", type=int, default=25, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests per page")
    parser.add_argument("--write-results", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    if args.requests < 20:
        parser.error("--requests must be at least 20")

    with tempfile.TemporaryDirectory(prefix="certrail-inbox-") as tmp:
        path = Path(tmp) / "inbox.sqlite"
        started = time.perf_counter()
        engine = build(path, args.tasks, args.noise)
        setup_s = time.perf_counter() - started
        app = create_app({"ENGINE": engine, "TESTING": True, "WTF_CSRF_ENABLED": False})
        client = app.test_client()
        login = client.post("/login", data={"username": "reviewer", "password": DEMO_PASSWORD})
        assert login.status_code == 302, "login failed"

        results = {}
        for label, url in (
            ("page 1", "/inbox?tab=available"),
            ("page 200", "/inbox?tab=available&page=200"),
        ):
            times, body = measure(client, url, args.requests, args.warmup)
            count = re.search(r"Available to my roles\s*<span class=\"count\">(\d+)</span>", body)
            assert count and int(count.group(1)) == args.tasks, "unexpected available count"
            assert body.count('action="/tasks/') == 25, "expected a full page of 25 rows"
            results[label] = (url, summary(times))
        engine.db.dispose()

    command = ".venv/bin/python bench/inbox_page.py" + (
        " " + shlex.join(sys.argv[1:]) if sys.argv[1:] else ""
    )
    print(
        f"setup: {args.tasks} claimable tasks (+{args.tasks * args.noise} other) in {setup_s:.1f}s"
    )
    for label, (url, s) in results.items():
        print(
            f"{label:8} GET {url}: median {s['median']:.1f} ms "
            f"(min {s['min']:.1f}, p90 {s['p90']:.1f}, max {s['max']:.1f}) over {args.requests}"
        )
    worst = max(s["median"] for _u, s in results.values())
    print(f"target < {TARGET_MS} ms: {'met' if worst < TARGET_MS else 'MISSED'}")

    if args.write_results:
        rows = "\n".join(
            f"| {label} | `GET {url}` | {s['median']:.1f} | {s['min']:.1f}-{s['max']:.1f} | {s['p90']:.1f} |"
            for label, (url, s) in results.items()
        )
        section = f"""{SECTION_START}
## inbox_page: staff inbox with {args.tasks:,} claimable tasks (SQLite)

A reviewer's "Available to my roles" tab through the Flask test client (session, the
engine's inbox query with its three tab counts, filter choices, template): {args.tasks:,}
READY `review_eligibility` tasks, each on its own running case with a person and a scheme,
plus {args.tasks * args.noise:,} tasks of other roles or already completed, bulk-inserted into
a fresh SQLite file (WAL). {args.warmup} untimed requests, then {args.requests} timed requests
per page; page 200 is `OFFSET 4975`.

Command: `{command.replace(" --write-results", "")} --write-results`

Machine: {machine()}

| page | request | median ms | min-max ms | p90 ms |
|---|---|---|---|---|
{rows}

Target: median < {TARGET_MS} ms for both pages: **{"met" if worst < TARGET_MS else "missed"}**.
{SECTION_END}
"""
        write_results(section)
        print(f"results written to {RESULTS_FILE}")


if __name__ == "__main__":
    main()
