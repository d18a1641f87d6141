#!/usr/bin/env python
"""Eligibility latency: `engine.impartiality.candidates.candidates_for` for one open
certification decision, with `--staff` decision makers and `--declarations` conflict
declarations in the register, on SQLite and PostgreSQL.

Setup (untimed, bulk-inserted with SQLAlchemy Core after the schema, the shipped models and
the demo data): `--people` people; `--staff` active staff holding `decision_maker`, each with
a current signed commitment (a few dozen expired, so SOD-COMMIT has something to find); one
running case of the first bench person waiting at `decide_certification` (READY,
unassigned), whose exam was scored by a dozen of those staff (completed `score_written`
tasks: SOD-DECIDE) and invigilated by a few more; `--open` READY tasks on other cases
assigned round-robin to the staff (the open-task counts); and `--declarations` conflict
declarations spread over the people and staff, of which 1 in 200 are on the case's person
(mixed: active, ended, expired, not yet valid).

Timed: a fresh session, then `candidates_for(session, task, case, now)` (the role holders,
their open-task counts, and every bar: commitments, own case, declared conflicts, external
staff, earlier steps), as the manager's panel and auto-assignment call it. After `--warmup`
untimed runs, `--runs` timed runs; the figure is the median (min/max, p90). The result is
checked: everyone barred by the data above is barred, everyone else eligible.

Usage:  .venv/bin/python bench/eligibility.py [--staff 500] [--declarations 10000]
            [--people 2000] [--open 2000] [--runs 30] [--warmup 5] [--no-pg]
            [--pg-url URL] [--write-results]
Target: median < 20 ms on each database.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy  # noqa: E402
from engine_throughput import PostgresSchema, postgres_probe  # noqa: E402
from results_file import RESULTS_FILE, write_section  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from engine import Engine  # noqa: E402
from engine.clock import FixedClock  # noqa: E402
from engine.demo import load_demo  # noqa: E402
from engine.impartiality.candidates import candidates_for  # noqa: E402
from engine.models import (  # noqa: E402
    Base,
    Case,
    Commitment,
    ConflictOfInterest,
    HumanTask,
    ModelVersion,
    Person,
    Scheme,
    User,
    UserRole,
)

SECTION_START = "<!-- bench:eligibility:start -->"
SECTION_END = "<!-- bench:eligibility:end -->"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
NOW = datetime(2026, 3, 2, 9, 0, 0)
TODAY = NOW.date()
TARGET_MS = 20
BATCH = 5000
ROLE = "decision_maker"
RELATIONSHIPS = ("trained", "employer", "colleague", "relative", "other")


def _task(case_id: int, spec: str, name: str, role: str, process: str, **extra) -> dict:
    row = {
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
        "created_at": NOW - timedelta(days=3),
        "due_at": NOW + timedelta(days=7),
        "completed_by_id": None,
        "completed_at": None,
    }
    row.update(extra)
    return row


def _insert(conn, table, rows: list[dict]) -> None:
    for start in range(0, len(rows), BATCH):
        conn.execute(insert(table), rows[start : start + BATCH])


def build(sql, args) -> tuple[Engine, int, dict[str, set[int]]]:
    """The database for one run; returns the engine, the decision task id and who is barred."""
    engine = Engine(sql_engine=sql, clock=FixedClock(NOW))
    Base.metadata.create_all(sql)
    engine.sync_models()
    with engine.unit_of_work() as uow:
        load_demo(uow)
    expected: dict[str, set[int]] = {
        "SOD-COMMIT": set(),
        "SOD-DECIDE": set(),
        "SOD-COI": set(),
        "SOD-INTERNAL": set(),
    }
    with engine.db.begin() as conn:
        model_id = conn.scalar(select(ModelVersion.id).where(ModelVersion.process_id == "decision"))
        scheme_id = conn.scalar(select(Scheme.id).order_by(Scheme.id).limit(1))
        admin_id = conn.scalar(select(User.id).where(User.username == "admin"))
        first_person = (conn.scalar(select(func.max(Person.id))) or 0) + 1
        first_user = (conn.scalar(select(func.max(User.id))) or 0) + 1
        first_case = (conn.scalar(select(func.max(Case.id))) or 0) + 1
        people = [first_person + i for i in range(args.people)]
        staff = [first_user + i for i in range(args.staff)]
        _insert(
            conn,
            Person,
            [
                {
                    "id": pid,
                    "given_name": f"Given{i}",
                    "family_name": f"Family{i}",
                    "email": f"bench-person{i}@example.org",
                    "created_at": NOW - timedelta(days=90),
                }
                for i, pid in enumerate(people)
            ],
        )
        _insert(
            conn,
            User,
            [
                {
                    "id": uid,
                    "username": f"bench_decider{i}",
                    "display_name": f"Bench Decider {i}",
                    "email": f"bench_decider{i}@certrail.example",
                    "is_external": i % 97 == 5,
                    "active": True,
                    "created_at": NOW - timedelta(days=400),
                    "failed_logins": 0,
                }
                for i, uid in enumerate(staff)
            ],
        )
        _insert(conn, UserRole, [{"user_id": uid, "role": ROLE} for uid in staff])
        commitments = []
        for i, uid in enumerate(staff):
            expired = i % 50 == 7
            signed = TODAY - timedelta(days=400 if expired else 30 + i % 200)
            if i % 3 == 0:  # an older, expired commitment too: the latest one counts
                commitments.append(_commitment(uid, TODAY - timedelta(days=700), admin_id))
            commitments.append(_commitment(uid, signed, admin_id))
            if expired:
                expected["SOD-COMMIT"].add(uid)
            if i % 97 == 5:
                expected["SOD-INTERNAL"].add(uid)
        _insert(conn, Commitment, commitments)

        # The case: the first bench person, waiting at the certification decision.
        target = people[0]
        cases = [
            {
                "id": first_case + i,
                "process_id": "decision",
                "model_version_id": model_id,
                "subprocess_versions": {},
                "person_id": people[i % len(people)],
                "scheme_id": scheme_id,
                "status": "running",
                "state": "{}",
                "lock_version": 1,
                "started_at": NOW - timedelta(days=30),
            }
            for i in range(max(1, args.open // 4))
        ]
        _insert(conn, Case, cases)
        case_id = first_case
        tasks = [
            _task(case_id, "decide_certification", "Decide on certification", ROLE, "decision")
        ]
        for n, uid in enumerate(staff[10:22]):
            spec = "score_written" if n % 2 else "score_practical"
            tasks.append(
                _task(
                    case_id,
                    spec,
                    "Score examination",
                    "examiner",
                    "assessment",
                    status="completed",
                    completed_by_id=uid,
                    completed_at=NOW - timedelta(days=5, minutes=n),
                )
            )
            expected["SOD-DECIDE"].add(uid)
        for n, uid in enumerate(staff[30:34]):
            tasks.append(
                _task(
                    case_id,
                    "administer_exam",
                    "Administer examination",
                    "invigilator",
                    "assessment",
                    status="completed",
                    completed_by_id=uid,
                    completed_at=NOW - timedelta(days=6, minutes=n),
                )
            )
            expected["SOD-DECIDE"].add(uid)
        for n in range(args.open):
            tasks.append(
                _task(
                    first_case + 1 + n % max(1, len(cases) - 1),
                    "decide_certification",
                    "Decide on certification",
                    ROLE,
                    "decision",
                    assignee_id=staff[(n * 7) % len(staff)],
                )
            )
        _insert(conn, HumanTask, tasks)
        decision_task_id = conn.scalar(
            select(HumanTask.id).where(
                HumanTask.case_id == case_id, HumanTask.task_spec_id == "decide_certification"
            )
        )

        declarations = []
        for n in range(args.declarations):
            uid = staff[(n * 13) % len(staff)]
            on_target = n % 200 == 0
            pid = target if on_target else people[1 + (n * 31) % (len(people) - 1)]
            kind = (n // 200) % 4 if on_target else n % 4
            row = {
                "staff_user_id": uid,
                "person_id": pid,
                "relationship": RELATIONSHIPS[n % len(RELATIONSHIPS)],
                "valid_from": TODAY - timedelta(days=100 + n % 300),
                "valid_until": None,
                "note": "",
                "declared_by_id": uid,
                "declared_at": NOW - timedelta(days=100),
                "ended_at": None,
                "ended_by_id": None,
            }
            if kind == 1:  # ended
                row.update(ended_at=NOW - timedelta(days=10), ended_by_id=uid)
            elif kind == 2:  # expired
                row.update(valid_until=TODAY - timedelta(days=5))
            elif kind == 3:  # not yet valid
                row.update(valid_from=TODAY + timedelta(days=10))
            elif on_target:
                expected["SOD-COI"].add(uid)
            declarations.append(row)
        _insert(conn, ConflictOfInterest, declarations)
    return engine, decision_task_id, expected


def _commitment(user_id: int, signed: date, admin_id: int) -> dict:
    return {
        "user_id": user_id,
        "text_version": "2026-1",
        "signed_on": signed,
        "expires_on": signed + timedelta(days=365),
        "recorded_by_id": admin_id,
        "recorded_at": datetime.combine(signed, datetime.min.time()),
    }


def eligibility(engine: Engine, task_id: int):
    with engine.sessions() as session:
        task = session.get(HumanTask, task_id)
        case = session.get(Case, task.case_id)
        return candidates_for(session, task, case, NOW)


def check(found, staff_count: int, expected: dict[str, set[int]]) -> dict[str, int]:
    bench = [c for c in found if c.user.username.startswith("bench_decider")]
    assert len(bench) == staff_count, (len(bench), staff_count)
    for rule, ids in expected.items():
        barred = {c.user.id for c in bench if rule in {b.rule for b in c.bars}}
        assert barred == ids, (rule, sorted(barred ^ ids)[:10])
    all_barred = set().union(*expected.values())
    assert {c.user.id for c in bench if not c.eligible} == all_barred
    assert any(c.open_tasks for c in bench)
    return {
        "holders": len(found),
        "eligible": sum(c.eligible for c in found),
        "barred": sum(not c.eligible for c in found),
        **{rule: len(ids) for rule, ids in expected.items()},
    }


def measure(engine: Engine, task_id: int, runs: int, warmup: int) -> tuple[list[float], list]:
    found = []
    for _ in range(warmup):
        found = eligibility(engine, task_id)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        found = eligibility(engine, task_id)
        times.append((time.perf_counter() - started) * 1000)
    return times, found


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "p90": ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))],
    }


def run(label: str, sql, args) -> dict:
    started = time.perf_counter()
    engine, task_id, expected = build(sql, args)
    setup_s = time.perf_counter() - started
    times, found = measure(engine, task_id, args.runs, args.warmup)
    counts = check(found, args.staff, expected)
    return {"label": label, "setup_s": setup_s, "summary": summary(times), "counts": counts}


def machine(pg_version: str | None) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        ram = f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 1024**3:.1f} GiB"
    except (ValueError, OSError):
        ram = "?"
    from importlib.metadata import version

    return (
        f"date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, host {platform.system()} "
        f"{platform.release()} ({platform.machine()}), cpu {cpu}, nproc {os.cpu_count()}, "
        f"ram {ram}, python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, "
        f"sqlite {sqlite3.sqlite_version}, psycopg {version('psycopg')}, "
        f"PostgreSQL server {pg_version or 'not reachable'}"
    )


def write_results(section: str) -> None:
    write_section(section, SECTION_START, SECTION_END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--staff", type=int, default=500, help="decision makers (500)")
    parser.add_argument("--declarations", type=int, default=10_000, help="declarations (10000)")
    parser.add_argument("--people", type=int, default=2000, help="people (2000)")
    parser.add_argument("--open", type=int, default=2000, help="open tasks assigned to staff")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per database (30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs per database (5)")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--write-results", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    if args.runs < 20:
        parser.error("--runs must be at least 20")
    if args.staff < 40 or args.people < 2:
        parser.error("--staff must be at least 40 and --people at least 2")

    results = []
    with tempfile.TemporaryDirectory(prefix="certrail-eligibility-") as tmp:
        from engine.db import make_engine

        sql = make_engine(f"sqlite:///{Path(tmp) / 'eligibility.sqlite'}")
        try:
            results.append(run("SQLite file (WAL)", sql, args))
        finally:
            sql.dispose()
    pg_version = None if args.no_pg else postgres_probe(args.pg_url)
    if pg_version is not None:
        with PostgresSchema(args.pg_url) as sql:
            results.append(run(f"PostgreSQL {pg_version}", sql, args))
    elif not args.no_pg:
        print(f"PostgreSQL not reachable at {args.pg_url}: skipped")

    command = ".venv/bin/python bench/eligibility.py" + (
        " " + shlex.join(sys.argv[1:]) if sys.argv[1:] else ""
    )
    for r in results:
        s, c = r["summary"], r["counts"]
        print(
            f"{r['label']:28} candidates_for: median {s['median']:.2f} ms (min {s['min']:.2f}, "
            f"p90 {s['p90']:.2f}, max {s['max']:.2f}) over {args.runs}; "
            f"{c['holders']} holders, {c['eligible']} eligible, {c['barred']} barred; "
            f"setup {r['setup_s']:.1f}s"
        )
    worst = max(r["summary"]["median"] for r in results)
    met = worst < TARGET_MS
    print(f"target < {TARGET_MS} ms: {'met' if met else 'MISSED'}")

    if args.write_results:
        c = results[0]["counts"]
        rows = "\n".join(
            f"| {r['label']} | {r['summary']['median']:.2f} | {r['summary']['min']:.2f}-"
            f"{r['summary']['max']:.2f} | {r['summary']['p90']:.2f} | "
            f"{r['counts']['eligible']} / {r['counts']['barred']} |"
            for r in results
        )
        section = f"""{SECTION_START}
## eligibility: who may take an open decision, {args.staff:,} role holders, {args.declarations:,} declarations

`engine.impartiality.candidates.candidates_for` for one READY `decide_certification` task
(fresh session per run; what the manager's panel and auto-assignment call): {args.staff:,}
active `decision_maker` staff (plus the demo's 3), each with a signed commitment
({c["SOD-COMMIT"]} expired), {c["SOD-INTERNAL"]} external; {args.declarations:,} conflict
declarations over {args.people:,} people, 1 in 200 on the case's person (a quarter of those
active: {c["SOD-COI"]} staff barred, the rest ended, expired or not yet valid);
{c["SOD-DECIDE"]} staff who scored or invigilated the case's exam; {args.open:,} open tasks
assigned round-robin (open-task counts). Bulk-inserted into a fresh SQLite file (WAL) and a
fresh PostgreSQL schema. {args.warmup} untimed runs, then {args.runs} timed runs each; the
result is checked against the data (every expected bar found, nobody else barred).

Command: `{command.replace(" --write-results", "")} --write-results`

Machine: {machine(pg_version)}

| database | median ms | min-max ms | p90 ms | eligible / barred |
|---|---|---|---|---|
{rows}

Target: median < {TARGET_MS} ms on each database: **{"met" if met else "missed"}**.
{SECTION_END}
"""
        write_results(section)
        print(f"results written to {RESULTS_FILE}")


if __name__ == "__main__":
    main()
