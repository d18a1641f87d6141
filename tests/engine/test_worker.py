"""`certrail worker` and `certrail jobs run-once` as real processes: timers fire when due, exactly
once however many workers race, and a worker killed half-way loses and doubles nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from engine import Engine
from engine.clock import FixedClock
from engine.models import AuditEvent, Base, Case, HumanTask, Incident, Timer
from engine.scheduler import JOBS
from tests.conftest import START
from tests.engine.helpers import same_database_url, verify
from tests.engine.test_timers import WAITING_MODEL

pytestmark = pytest.mark.serial

ROOT = Path(__file__).resolve().parents[2]
UUID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
LONG_AGO = datetime(2001, 1, 1, 9, 0)  # timers due long before the wall clock: a worker fires them


def certrail_cmd(url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "engine.cli", "--database", url, *args]


def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        certrail_cmd(url, *args), cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def waiting_cases(database, tmp_path, count: int, started: datetime) -> tuple[Engine, list[int]]:
    _kind, sql = database
    bpmn = tmp_path / "bpmn"
    bpmn.mkdir()
    (bpmn / "waiting.bpmn").write_text(WAITING_MODEL)
    engine = Engine(sql_engine=sql, clock=FixedClock(started), bpmn_dir=bpmn)
    Base.metadata.create_all(sql)
    engine.sync_models()
    return engine, [engine.start_case("waiting").case_id for _ in range(count)]


def counts(engine: Engine) -> tuple[dict[str, int], dict[int, int]]:
    """Timers by status, and the number of `after_wait` tasks per case."""
    with engine.sessions() as session:
        statuses = dict(
            session.execute(select(Timer.status, func.count()).group_by(Timer.status)).all()
        )
        tasks = dict(
            session.execute(
                select(HumanTask.case_id, func.count())
                .where(HumanTask.task_spec_id == "after_wait")
                .group_by(HumanTask.case_id)
            ).all()
        )
    return statuses, tasks


def fired_so_far(kind: str, sql) -> int:
    """Poll without queueing for the write lock (the engine's SQLite sessions begin with
    BEGIN IMMEDIATE, which would slow the worker being watched)."""
    if kind == "sqlite":
        with sqlite3.connect(f"file:{sql.url.database}?mode=ro", uri=True) as conn:
            return conn.execute("select count(*) from timers where status = 'fired'").fetchone()[0]
    with sql.connect() as conn:
        return conn.execute(text("select count(*) from timers where status = 'fired'")).scalar()


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_run_once_fires_a_30_day_timer_only_when_now_is_past_it(database, tmp_path):
    kind, sql = database
    engine, [case_id] = waiting_cases(database, tmp_path, 1, START)
    url = same_database_url(kind, sql)

    early = run(url, "jobs", "run-once", "--now", (START + timedelta(days=29)).isoformat())
    assert early.returncode == 0, early.stderr
    assert early.stdout.startswith("fire_due_timers: 0 as of 2026-03-31T09:00:00")
    assert "start_due_surveillance: 0" in early.stdout
    assert counts(engine) == ({"waiting": 1}, {})

    late = run(url, "jobs", "run-once", "--json", "--now", f"{START + timedelta(days=31)}Z")
    assert late.returncode == 0, late.stderr
    report = json.loads(late.stdout)
    assert report["now"] == "2026-04-02T09:00:00"
    assert report["jobs"]["fire_due_timers"] == 1
    assert set(report["jobs"]) == set(JOBS)
    assert counts(engine) == ({"fired": 1}, {case_id: 1})
    [task] = engine.ready_tasks(case_id)
    assert task.task_spec_id == "after_wait"

    again = run(
        url, "jobs", "run-once", "--json", "--now", (START + timedelta(days=40)).isoformat()
    )
    assert json.loads(again.stdout)["jobs"]["fire_due_timers"] == 0
    assert counts(engine) == ({"fired": 1}, {case_id: 1})


def race_run_once(url: str, now: str, tmp_path: Path, workers: int = 4) -> list[dict[str, int]]:
    """`certrail jobs run-once --now NOW` in `workers` processes started together; what each
    reports it did. Each logs every item it handles: to a file, so none waits on a full pipe."""
    logs = [tmp_path / f"worker-{n}.log" for n in range(workers)]
    running = [
        subprocess.Popen(
            certrail_cmd(url, "jobs", "run-once", "--json", "--now", now),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
        )
        for log in logs
    ]
    reports = []
    for worker, log in zip(running, logs, strict=True):
        out, _ = worker.communicate(timeout=600)
        assert worker.returncode == 0, log.read_text()[-2000:]
        reports.append(json.loads(out)["jobs"])
    return reports


def clone_waiting_cases(engine: Engine, case_id: int, copies: int) -> list[int]:
    """`copies` more cases in the state of `case_id` (a real case waiting at its timer), each
    with fresh task ids: thousands of due timers in seconds instead of minutes."""
    with engine.sessions() as session, session.begin():
        case = session.get(Case, case_id)
        timer = session.scalars(select(Timer).where(Timer.case_id == case_id)).one()
        ids = sorted(set(UUID_PATTERN.findall(case.state)))
        clones = []
        for _ in range(copies):
            fresh = {old: str(uuid.uuid4()) for old in ids}
            state = UUID_PATTERN.sub(lambda m, fresh=fresh: fresh[m.group(0)], case.state)
            clone = Case(
                process_id=case.process_id,
                model_version_id=case.model_version_id,
                subprocess_versions=case.subprocess_versions,
                status="running",
                state=state,
                started_at=case.started_at,
            )
            session.add(clone)
            clones.append((clone, fresh[timer.task_uuid]))
        session.flush()
        session.add_all(
            Timer(
                case_id=clone.id,
                task_uuid=task_uuid,
                task_spec_id=timer.task_spec_id,
                fire_at=timer.fire_at,
                status="waiting",
            )
            for clone, task_uuid in clones
        )
        return [clone.id for clone, _ in clones]


@pytest.mark.postgresql
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_four_racing_worker_processes_fire_5000_timers_each_exactly_once(database, tmp_path):
    kind, sql = database
    total = 5000
    engine, [seed] = waiting_cases(database, tmp_path, 1, START)
    case_ids = [seed, *clone_waiting_cases(engine, seed, total - 1)]
    url = same_database_url(kind, sql)
    now = (START + timedelta(days=31)).isoformat()

    fired_by = [jobs["fire_due_timers"] for jobs in race_run_once(url, now, tmp_path)]

    assert sum(fired_by) == total, fired_by  # no worker counted a timer another one fired
    assert all(fired_by), fired_by  # all four took part
    statuses, tasks = counts(engine)
    assert statuses == {"fired": total}
    assert tasks == dict.fromkeys(case_ids, 1)  # every timer fired exactly once
    with engine.sessions() as session:
        fired_events = session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "task_ready")
        )
    assert fired_events == total
    with engine.sessions() as session:
        review_failures = session.scalar(
            select(func.count()).where(Incident.job == "open_due_management_review")
        )
    # These tests publish no review model: the review job fails once for all four workers.
    assert review_failures == 1
    result = verify(engine)
    assert result.ok, result.reason


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)
def test_worker_killed_mid_batch_loses_nothing_and_fires_nothing_twice(database, tmp_path):
    kind, sql = database
    total = 300
    engine, [seed] = waiting_cases(database, tmp_path, 1, LONG_AGO)
    case_ids = [seed, *clone_waiting_cases(engine, seed, total - 1)]
    url = same_database_url(kind, sql)

    worker = subprocess.Popen(
        certrail_cmd(url, "worker", "--interval", "60"),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if fired_so_far(kind, sql) >= 5:
                break
            time.sleep(0.02)
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.wait(timeout=10)
    statuses, tasks = counts(engine)
    assert 5 <= statuses.get("fired", 0) < total, statuses  # killed in the middle
    assert statuses.get("fired", 0) == len(tasks)  # nothing half-done
    assert set(tasks.values()) == {1}

    catch_up = run(url, "jobs", "run-once", "--json")
    assert catch_up.returncode == 0, catch_up.stderr
    assert json.loads(catch_up.stdout)["jobs"]["fire_due_timers"] == total - statuses["fired"]
    assert counts(engine) == ({"fired": total}, dict.fromkeys(case_ids, 1))


def test_worker_stops_cleanly_on_sigterm(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    assert run(url, "db", "upgrade").returncode == 0
    worker = subprocess.Popen(
        certrail_cmd(url, "worker", "--interval", "0.2"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = worker.stderr.readline()
        assert "worker started" in line, line
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=15)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err
    assert "worker stopped" in err
    assert out.strip().startswith("fire_due_timers: 0, ")


@pytest.mark.postgresql
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_a_worker_skips_a_case_someone_else_holds_instead_of_waiting(database, tmp_path):
    from engine import cases
    from engine.timers import fire_due_timers

    engine, [case_id] = waiting_cases(database, tmp_path, 1, START)
    engine.clock.set(START + timedelta(days=31))

    with engine.unit_of_work() as uow:
        cases.lock_case(uow, case_id)  # e.g. a user completing a task of this case
        assert fire_due_timers(engine) == 0
    assert fire_due_timers(engine) == 1
    assert fire_due_timers(engine) == 0
    assert counts(engine) == ({"fired": 1}, {case_id: 1})


@pytest.mark.postgresql
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_racing_workers_start_each_due_surveillance_exactly_once(database, tmp_path):
    from datetime import date

    from engine.demo import load_demo
    from engine.models import Certificate, Person, Scheme

    kind, sql = database
    engine = Engine(sql_engine=sql, clock=FixedClock(START))
    Base.metadata.create_all(sql)
    engine.sync_models()
    with engine.unit_of_work() as uow:
        load_demo(uow)
        scheme = uow.session.scalars(select(Scheme).where(Scheme.code == "DPO")).one()
        for n in range(60):
            person = Person(
                given_name="Holder",
                family_name=f"No{n}",
                email=f"holder{n}@example.org",
                created_at=START,
            )
            uow.session.add(person)
            uow.session.flush()
            uow.session.add(
                Certificate(
                    number=f"DPO-2025-{n:06d}",
                    person_id=person.id,
                    scheme_id=scheme.id,
                    scheme_code="DPO",
                    scheme_version=scheme.version,
                    scope=scheme.scope,
                    issued_at=datetime(2025, 3, 1, 9, 0),
                    effective_on=date(2025, 3, 1),
                    expires_on=date(2027, 3, 1),
                    status="active",
                    next_surveillance_on=date(2026, 3, 1),
                    recertification_opens_on=date(2026, 12, 1),
                )
            )
    url = same_database_url(kind, sql)
    started_by = [
        jobs["start_due_surveillance"] for jobs in race_run_once(url, START.isoformat(), tmp_path)
    ]

    assert sum(started_by) == 60, started_by
    with engine.sessions() as session:
        per_certificate = dict(
            session.execute(
                select(Case.certificate_id, func.count())
                .where(Case.process_id == "surveillance")
                .group_by(Case.certificate_id)
            ).all()
        )
        moved = session.scalars(select(Certificate.next_surveillance_on)).all()
    assert len(per_certificate) == 60 and set(per_certificate.values()) == {1}
    assert set(moved) == {None}  # the only surveillance of a 24-month cycle has started
