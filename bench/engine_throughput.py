#!/usr/bin/env python
"""Task-completion throughput: plain SpiffWorkflow in memory vs Certrail's persistent engine.

Both sides run the shipped models (application -> assessment -> decision) for the CWI scheme,
which has a practical exam, so every case is 10 user tasks on the happy path to a certificate:

    submit_application, check_completeness, review_eligibility, schedule_assessment,
    assign_examiner, administer_exam, score_written, score_practical, review_file,
    decide_certification

Variants
--------
raw          SpiffWorkflow 3.2 only. Specs parsed once with SpiffBpmnParser; per case a
             BpmnWorkflow with the start data Certrail gives (case_id, person, scheme); each
             completion = `task.data.update(form)`, `task.run()`, `do_engine_steps()`, then the
             whole workflow is serialized with the standard
             `BpmnWorkflowSerializer(configure(SPIFF_CONFIG)).serialize_json` (this document
             includes the specs) and restored with `deserialize_json`. Standard
             PythonScriptEngine; service tasks return a canned JSON result.
certrail     `Engine.complete(task_id, username, data)` on a fresh database: SQLite file in a
             temp dir (WAL, synchronous=FULL, as engine.db configures it) and PostgreSQL in a
             fresh schema. Each completion is one unit of work: load case + task, permission
             and SoD checks, JSON Schema validation, restore the workflow, run, advance, sync
             human tasks/timers, serialize the state, write audit events, commit.

What is timed
-------------
completion   (primary figure) only the completion calls: raw = run + engine steps + serialize
             + deserialize; certrail = `Engine.complete(...)`. Tasks/s = tasks / sum of these.
loop         the whole per-case loop: case start (raw: new workflow + first engine steps +
             serialize/deserialize; certrail: `start_case`), every ready-task listing
             (certrail: `ready_tasks` query), form data generation and the completions.
             Applicant registration (certrail) is outside both timers.
statements   SQL statements per completion, counted over three more cases on each database
             after the timed runs (on PostgreSQL each is a round trip; BEGIN and COMMIT
             come on top), and where those completions' wall time went: this process's
             CPU (user + system, from getrusage) and the rest, waiting for the server.

Every repeat uses a fresh database (and a fresh Engine), runs one untimed warm-up case
(`--warmup`) and then `--cases` timed cases; the figure per variant is the median of the
repeats' tasks/s (min/max shown). Each case is checked to end completed with a certificate.

Usage:  .venv/bin/python bench/engine_throughput.py [--cases 30] [--repeats 5]
            [--pg-url postgresql://postgres@127.0.0.1:5432/test] [--no-pg]
            [--profile 5] [--write-results]
SQLite files go to the temp dir (set TMPDIR to move them; its filesystem is printed).
The last line printed is `ratio=<certrail_sqlite_median / raw_median>` (completion figures).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import resource
import shlex
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from results_file import RESULTS_FILE, write_section  # noqa: E402
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine  # noqa: E402
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer  # noqa: E402
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow  # noqa: E402
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser  # noqa: E402
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG  # noqa: E402
from SpiffWorkflow.util.task import TaskState  # noqa: E402
from sqlalchemy import create_engine, event, select, text  # noqa: E402

from engine import Engine  # noqa: E402
from engine.catalog import BPMN_DIR  # noqa: E402
from engine.db import make_engine, normalise_url  # noqa: E402
from engine.demo import SCHEMES, load_demo  # noqa: E402
from engine.forms import FORMS_DIR, FormRegistry  # noqa: E402
from engine.models import Case, Certificate, HumanTask, Scheme  # noqa: E402
from engine.simulation import HAPPY_PATH, StaffRoster, valid_form_data  # noqa: E402

SCHEME_CODE = "CWI"
PROCESS_ID = "application"
TASKS_PER_CASE = 10
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
# The same server through its Unix socket: what a database on the application's host costs
# without loopback TCP.
DEFAULT_PG_SOCKET_URL = "postgresql://postgres@/test?host=/var/run/postgresql"

SECTION_START = "<!-- bench:engine_throughput:start -->"
SECTION_END = "<!-- bench:engine_throughput:end -->"


class GcClock:
    """Seconds this process has spent in Python's cyclic garbage collector so far."""

    seconds = 0.0
    _started = 0.0

    @classmethod
    def install(cls) -> None:
        gc.callbacks.append(cls._note)

    @classmethod
    def _note(cls, phase: str, _info: dict) -> None:
        if phase == "start":
            cls._started = time.perf_counter()
        else:
            cls.seconds += time.perf_counter() - cls._started


@dataclass
class RepeatResult:
    tasks: int = 0
    completion_seconds: float = 0.0
    loop_seconds: float = 0.0
    gc_seconds: float = 0.0  # of completion_seconds
    state_bytes: list[int] = field(default_factory=list)

    @property
    def completion_rate(self) -> float:
        return self.tasks / self.completion_seconds if self.completion_seconds else 0.0

    @property
    def loop_rate(self) -> float:
        return self.tasks / self.loop_seconds if self.loop_seconds else 0.0


@dataclass
class VariantResult:
    name: str
    label: str
    repeats: list[RepeatResult] = field(default_factory=list)
    note: str = ""

    def rates(self, kind: str) -> list[float]:
        return [r.completion_rate if kind == "completion" else r.loop_rate for r in self.repeats]

    def median(self, kind: str = "completion") -> float:
        return statistics.median(self.rates(kind))

    def ms_per_task(self) -> float:
        return 1000.0 / self.median("completion")

    def gc_ms_per_task(self) -> float:
        return statistics.median(1000.0 * r.gc_seconds / r.tasks for r in self.repeats if r.tasks)

    def state_size(self) -> int:
        sizes = [s for r in self.repeats for s in r.state_bytes]
        return int(statistics.median(sizes)) if sizes else 0


def form_data(forms: FormRegistry, form: str | None, examiner: str = "examiner") -> dict[str, Any]:
    """The simulation's happy-path form data (engine.simulation._form_data, minus the roster)."""
    if not form:
        return {}
    overrides = dict(HAPPY_PATH.get(form, {}))
    if form == "examiner_assignment":
        overrides["examiner"] = examiner
    return valid_form_data(forms.get(form).schema, overrides)


def cwi_case_data() -> dict[str, Any]:
    spec = next(s for s in SCHEMES if s["code"] == SCHEME_CODE)
    return Scheme(**spec).as_case_data()


# -- (a) raw SpiffWorkflow ----------------------------------------------------------------


class RawScriptEngine(PythonScriptEngine):
    """Standard script engine; service tasks answer with a canned JSON document."""

    def call_service(self, task, operation_name=None, operation_params=None, **_kwargs):
        params = {k: v["value"] for k, v in (operation_params or {}).items()}
        case_id = task.data.get("case_id")
        if operation_name == "issue_certificate":
            result = {
                "number": f"{SCHEME_CODE}-2026-{case_id:06d}",
                "scheme": SCHEME_CODE,
                "scheme_version": "2026.1",
                "status": "active",
                "effective_on": "2026-03-02",
                "expires_on": "2029-03-02",
            }
        elif operation_name == "issue_refusal_letter":
            result = {"issued_on": "2026-03-02", "text": "refused", "appeal_rights": True}
        elif operation_name == "notify_applicant":
            result = {
                "sent_at": "2026-03-02T09:00:00",
                "subject": task.task_spec.bpmn_name,
                **params,
            }
        else:
            raise ValueError(f"unknown operation {operation_name}")
        return json.dumps(result)


class RawSpiff:
    def __init__(self) -> None:
        parser = SpiffBpmnParser()
        parser.add_bpmn_files(sorted(str(p) for p in BPMN_DIR.glob("*.bpmn")))
        self.spec = parser.get_spec(PROCESS_ID)
        self.subprocess_specs = parser.get_subprocess_specs(PROCESS_ID)
        self.serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))
        self.script_engine = RawScriptEngine()
        self.forms = FormRegistry(FORMS_DIR)
        self.scheme = cwi_case_data()

    def _roundtrip(self, workflow: BpmnWorkflow, sizes: list[int] | None = None) -> BpmnWorkflow:
        state = self.serializer.serialize_json(workflow)
        if sizes is not None:
            sizes.append(len(state))
        restored = self.serializer.deserialize_json(state)
        restored.script_engine = self.script_engine
        return restored

    def run_case(self, case_id: int, result: RepeatResult | None) -> BpmnWorkflow:
        clock = time.perf_counter
        loop_start = clock()
        workflow = BpmnWorkflow(self.spec, self.subprocess_specs, script_engine=self.script_engine)
        start_data = {
            "case_id": case_id,
            "person": {"id": case_id, "name": f"Simulated Candidate {case_id}"},
            "scheme": dict(self.scheme),
        }
        for task in workflow.get_tasks(state=TaskState.READY):
            task.data.update(start_data)
        workflow.do_engine_steps()
        workflow = self._roundtrip(workflow)
        completed = 0
        completion_seconds = gc_seconds = 0.0
        sizes: list[int] = []
        while True:
            ready = [t.id for t in workflow.get_tasks(state=TaskState.READY, manual=True)]
            if not ready:
                break
            for task_id in ready:
                task = workflow.get_task_from_id(task_id)
                data = form_data(
                    self.forms, task.task_spec.extensions.get("properties", {}).get("form")
                )
                gc0, t0 = GcClock.seconds, clock()
                task.data.update(data)
                task.run()
                workflow.do_engine_steps()
                workflow = self._roundtrip(workflow, sizes)
                completion_seconds += clock() - t0
                gc_seconds += GcClock.seconds - gc0
                completed += 1
        loop_seconds = clock() - loop_start
        if (
            not workflow.is_completed()
            or completed != TASKS_PER_CASE
            or "certificate" not in _last_data(workflow)
        ):
            raise AssertionError(
                f"raw case {case_id}: completed={workflow.is_completed()} tasks={completed}"
            )
        if result is not None:
            result.tasks += completed
            result.completion_seconds += completion_seconds
            result.loop_seconds += loop_seconds
            result.state_bytes.extend(sizes)
            result.gc_seconds += gc_seconds
        return workflow


def _last_data(workflow: BpmnWorkflow) -> dict[str, Any]:
    tasks = workflow.get_tasks()
    return dict(max(tasks, key=lambda t: t.last_state_change).data) if tasks else {}


def run_raw(cases: int, warmup: int) -> RepeatResult:
    raw = RawSpiff()
    for n in range(warmup):
        raw.run_case(1_000_000 + n, None)
    gc.collect()
    result = RepeatResult()
    for n in range(cases):
        raw.run_case(n + 1, result)
    return result


# -- (b) Certrail -------------------------------------------------------------------------


class CertrailDriver:
    def __init__(self, sql_engine, live_workflow_capacity: int = 2000) -> None:
        self.engine = Engine(sql_engine=sql_engine, live_workflow_capacity=live_workflow_capacity)
        self.engine.create_schema()
        self.engine.sync_models()
        with self.engine.unit_of_work() as uow:
            load_demo(uow)
        self.roster = StaffRoster(self.engine)
        self.tag = uuid.uuid4().hex[:8]
        self.n = 0

    def run_case(
        self, result: RepeatResult | None, profiler: cProfile.Profile | None = None
    ) -> int:
        eng = self.engine
        clock = time.perf_counter
        self.n += 1
        applicant = eng.register_applicant(
            "Bench", f"Candidate {self.n}", f"bench-{self.tag}-{self.n}@bench.invalid", None
        )
        loop_start = clock()
        case_id = eng.start_case(
            PROCESS_ID,
            actor=applicant.username,
            person_id=applicant.person_id,
            scheme_code=SCHEME_CODE,
        ).case_id
        by_role: dict[str, str] = {"applicant": applicant.username}
        completed = 0
        completion_seconds = gc_seconds = 0.0
        while True:
            ready = eng.ready_tasks(case_id)
            if not ready:
                break
            for task in ready:  # the same choice of performers as engine.simulation._drive_case
                if task.candidates:
                    username = task.candidates[0]
                elif task.role in by_role:
                    username = by_role[task.role]
                else:
                    username = self.roster.pick(task.role, set(by_role.values()))
                by_role.setdefault(task.role, username)
                examiner = "examiner"
                if task.form == "examiner_assignment":
                    examiner = self.roster.pick("examiner", set(by_role.values()))
                    by_role["examiner"] = examiner
                data = form_data(eng.forms, task.form, examiner)
                if profiler is not None:
                    profiler.enable()
                gc0, t0 = GcClock.seconds, clock()
                eng.complete(task.id, username, data)
                completion_seconds += clock() - t0
                gc_seconds += GcClock.seconds - gc0
                if profiler is not None:
                    profiler.disable()
                completed += 1
        loop_seconds = clock() - loop_start
        self._check(case_id, completed)
        if result is not None:
            result.tasks += completed
            result.completion_seconds += completion_seconds
            result.loop_seconds += loop_seconds
            result.state_bytes.append(len(eng.case(case_id).state))
            result.gc_seconds += gc_seconds
        return case_id

    def _check(self, case_id: int, completed: int) -> None:
        with self.engine.sessions() as session:
            status = session.scalar(select(Case.status).where(Case.id == case_id))
            number = session.scalar(
                select(Certificate.number).where(Certificate.case_id == case_id)
            )
            done = session.scalar(
                select(HumanTask.id)
                .where(HumanTask.case_id == case_id, HumanTask.status != "completed")
                .limit(1)
            )
        if (
            status != "completed"
            or number is None
            or completed != TASKS_PER_CASE
            or done is not None
        ):
            raise AssertionError(
                f"certrail case {case_id}: status={status} certificate={number} tasks={completed}"
            )


def sqlite_engine(tmpdir: str):
    return make_engine(f"sqlite:///{Path(tmpdir) / 'certrail.sqlite'}")


def run_certrail_sqlite(
    cases: int, warmup: int, live_workflow_capacity: int = 2000
) -> RepeatResult:
    with tempfile.TemporaryDirectory(prefix="certrail-bench-") as tmpdir:
        sql = sqlite_engine(tmpdir)
        try:
            return _run_certrail(sql, cases, warmup, live_workflow_capacity)
        finally:
            sql.dispose()


class PostgresSchema:
    """A fresh schema on the server, used through `search_path`, dropped on exit."""

    def __init__(self, url: str):
        self.url = normalise_url(url)
        self.schema = "bench_" + uuid.uuid4().hex[:12]
        self.admin = create_engine(
            self.url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
        )

    def __enter__(self):
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
        self.sql = make_engine(self.url)
        schema = self.schema

        @event.listens_for(self.sql, "connect")
        def _search_path(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute(f'SET search_path TO "{schema}"')
            cursor.close()
            dbapi_connection.commit()

        return self.sql

    def __exit__(self, *exc):
        self.sql.dispose()
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{self.schema}" CASCADE'))
        self.admin.dispose()
        return False


def postgres_probe(url: str) -> str | None:
    """The server version, or None when the server is not reachable."""
    try:
        probe = create_engine(normalise_url(url), connect_args={"connect_timeout": 3})
        with probe.connect() as conn:
            version = conn.execute(text("show server_version")).scalar()
        probe.dispose()
        return str(version)
    except Exception:  # noqa: BLE001 - any failure means "not available here"
        return None


def run_certrail_pg(url: str, cases: int, warmup: int) -> RepeatResult:
    with PostgresSchema(url) as sql:
        return _run_certrail(sql, cases, warmup)


def _run_certrail(sql, cases: int, warmup: int, live_workflow_capacity: int = 2000) -> RepeatResult:
    driver = CertrailDriver(sql, live_workflow_capacity)
    for _ in range(warmup):
        driver.run_case(None)
    gc.collect()
    result = RepeatResult()
    for _ in range(cases):
        driver.run_case(result)
    return result


# Statements per Engine.complete before the round-trip work, before the deferred writes and
# the leaner certificate, notification and assignment paths, and before the audit append onto
# the expected head and the impartiality facts read with the case, counted the same way.
STATEMENTS_BEFORE = "SQLite 19.3, PostgreSQL 15.5 + 1.0 pool ping"
STATEMENTS_BEFORE_DEFERRED = "SQLite 14.3, PostgreSQL 12.0"
STATEMENTS_BEFORE_EXPECTED_HEAD = "SQLite 12.5, PostgreSQL 8.5"


@dataclass
class StatementCount:
    """SQL statements the driver sent per completion (each one a round trip on PostgreSQL;
    BEGIN and COMMIT come on top), counted over SPLIT_CASES cases after a warm-up case, and
    where the time of those completions went: this process's CPU (user + system) and the
    rest of the wall time, spent waiting for the database server."""

    per_completion: float
    pings: float
    wall_ms: float = 0.0
    cpu_ms: float = 0.0

    @property
    def waiting_ms(self) -> float:
        return max(self.wall_ms - self.cpu_ms, 0.0)


SPLIT_CASES = 3


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def count_statements(sql) -> StatementCount:
    driver = CertrailDriver(sql)
    driver.run_case(None)
    counting = {"on": False, "statements": 0, "pings": 0, "wall": 0.0, "cpu": 0.0}
    ping = sql.dialect.do_ping

    def counted_ping(dbapi_connection):
        counting["pings"] += counting["on"]
        return ping(dbapi_connection)

    sql.dialect.do_ping = counted_ping

    @event.listens_for(sql, "before_cursor_execute")
    def _count(*_args):
        counting["statements"] += counting["on"]

    class Counting:
        def enable(self):
            counting["on"] = True
            counting["started"] = (time.perf_counter(), _cpu_seconds())

        def disable(self):
            wall, cpu = counting["started"]
            counting["wall"] += time.perf_counter() - wall
            counting["cpu"] += _cpu_seconds() - cpu
            counting["on"] = False

    result = RepeatResult()
    gc.collect()
    for _ in range(SPLIT_CASES):
        driver.run_case(result, Counting())
    n = result.tasks or 1
    return StatementCount(
        counting["statements"] / n,
        counting["pings"] / n,
        1000 * counting["wall"] / n,
        1000 * counting["cpu"] / n,
    )


def count_statements_sqlite() -> StatementCount:
    with tempfile.TemporaryDirectory(prefix="certrail-bench-") as tmpdir:
        sql = sqlite_engine(tmpdir)
        try:
            return count_statements(sql)
        finally:
            sql.dispose()


def count_statements_pg(url: str) -> StatementCount:
    with PostgresSchema(url) as sql:
        return count_statements(sql)


def statements_line(sqlite: StatementCount, pg: StatementCount | None) -> str:
    def show(count: StatementCount) -> str:
        return f"{count.per_completion:.1f}" + (
            f" + {count.pings:.1f} pool ping" if count.pings else ""
        )

    def split(name: str, count: StatementCount) -> str:
        return (
            f"{name} {count.wall_ms:.2f} ms = {count.cpu_ms:.2f} CPU + "
            f"{count.waiting_ms:.2f} waiting"
        )

    now = f"SQLite {show(sqlite)}" + (f", PostgreSQL {show(pg)}" if pg is not None else "")
    splits = [split("SQLite", sqlite)] + ([split("PostgreSQL", pg)] if pg is not None else [])
    return (
        f"- SQL statements per completion ({SPLIT_CASES} cases, counted after the timed runs): "
        f"{now}; before the append onto the expected head: {STATEMENTS_BEFORE_EXPECTED_HEAD}; "
        f"before the deferred writes: {STATEMENTS_BEFORE_DEFERRED}; before the round-trip "
        f"work: {STATEMENTS_BEFORE}.\n"
        f"- Where a completion's time went in those cases (wall = this process's CPU, user + "
        f"system, + waiting for the database server; raw is all CPU): {'; '.join(splits)}."
    )


def round_trip_line(urls: dict[str, str]) -> str:
    """What one statement costs on this machine apart from Certrail: the median of 500 bare
    `SELECT 1` and of 500 one-row INSERT + COMMIT (a WAL flush each) per connection kind."""
    import psycopg

    shown = []
    for kind, url in urls.items():
        plain = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain) as conn:
            conn.execute("CREATE TEMP TABLE round_trip (n int)")
            conn.commit()

            def median_ms(action) -> float:
                times = []
                for _ in range(500):
                    start = time.perf_counter()
                    action()
                    times.append(time.perf_counter() - start)
                return 1000 * statistics.median(times)

            select_ms = median_ms(lambda: conn.execute("SELECT 1").fetchall())

            def insert_commit() -> None:
                conn.execute("INSERT INTO round_trip VALUES (1)")
                conn.commit()

            commit_ms = median_ms(insert_commit)
        shown.append(f"{kind} `SELECT 1` {select_ms:.3f} ms, INSERT + COMMIT {commit_ms:.3f} ms")
    return "- One statement outside Certrail (median of 500): " + "; ".join(shown) + "."


def profile_certrail_sqlite(cases: int, top: int) -> str:
    """cProfile of `Engine.complete` only (profiler enabled around each call), SQLite."""
    with tempfile.TemporaryDirectory(prefix="certrail-bench-") as tmpdir:
        sql = sqlite_engine(tmpdir)
        try:
            driver = CertrailDriver(sql)
            driver.run_case(None)  # warm-up, not profiled
            statements: Counter[str] = Counter()

            class CountingProfile(cProfile.Profile):
                counting = False

                def enable(self, *a, **k):
                    CountingProfile.counting = True
                    super().enable(*a, **k)

                def disable(self):
                    super().disable()
                    CountingProfile.counting = False

            @event.listens_for(sql, "before_cursor_execute")
            def _count(_conn, _cursor, statement, _params, _context, _many):
                if CountingProfile.counting:
                    words = statement.split()
                    verb = words[0].upper()
                    table = (
                        next((w for w in words[1:] if w.upper() not in ("INTO", "FROM")), "")
                        if verb != "SELECT"
                        else (words[words.index("FROM") + 1] if "FROM" in words else "")
                    )
                    statements[f"{verb} {table}".strip()] += 1

            profiler = CountingProfile()
            result = RepeatResult()
            for _ in range(cases):
                driver.run_case(result, profiler)
        finally:
            sql.dispose()
    out = io.StringIO()
    out.write(f"cProfile of Engine.complete on SQLite: {cases} cases, {result.tasks} completions\n")
    n = result.tasks or 1
    out.write(f"SQL statements per completion: {sum(statements.values()) / n:.1f} (")
    out.write(", ".join(f"{k} {v / n:.1f}" for k, v in statements.most_common()) + ")\n")
    for key in ("cumulative", "tottime"):
        out.write(f"\n--- sorted by {key}, top {top} ---\n")
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats(key).print_stats(top)
    return out.getvalue()


# -- reporting ----------------------------------------------------------------------------


def machine_info(pg_version: str | None) -> dict[str, str]:
    mem_kb = 0
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem_kb = int(line.split()[1])
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "date": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "host": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "cpu": cpu,
        "nproc": str(os.cpu_count()),
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "SpiffWorkflow": metadata.version("SpiffWorkflow"),
        "SQLAlchemy": metadata.version("SQLAlchemy"),
        "sqlite": sqlite3.sqlite_version,
        "psycopg": metadata.version("psycopg"),
        "PostgreSQL server": pg_version or "not reachable",
        "SQLite temp dir": f"{tempfile.gettempdir()} ({_fs_type(tempfile.gettempdir())})",
    }


def _fs_type(path: str) -> str:
    """The filesystem type holding `path` (fsync cost depends on it), from /proc/mounts."""
    best, kind = "", "unknown"
    try:
        real = os.path.realpath(path)
        with open("/proc/mounts") as fh:
            for line in fh:
                parts = line.split()
                mount, fstype = parts[1], parts[2]
                if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(
                    mount
                ) >= len(best):
                    best, kind = mount, fstype
    except OSError:
        pass
    return kind


def variant_rows(variants: list[VariantResult]) -> list[str]:
    raw = variants[0]
    rows = [
        "| variant | completion tasks/s median (min-max) | ms/task "
        "| whole loop tasks/s median (min-max) | vs raw | state JSON / case |",
        "|---|---|---|---|---|---|",
    ]
    for v in variants:
        if not v.repeats:
            rows.append(f"| {v.label} | skipped: {v.note} | | | | |")
            continue
        c, lp = v.rates("completion"), v.rates("loop")
        rows.append(
            f"| {v.label} | {v.median():.1f} ({min(c):.1f}-{max(c):.1f}) | {v.ms_per_task():.2f} "
            f"| {v.median('loop'):.1f} ({min(lp):.1f}-{max(lp):.1f}) "
            f"| {v.median() / raw.median():.3f} | {v.state_size() / 1024:.0f} KiB |"
        )
    return rows


def markdown_section(
    command: str,
    info: dict[str, str],
    args,
    variants: list[VariantResult],
    ratio: float,
    pg_ratio: float | None,
    statements: str,
    round_trips: str,
) -> str:
    lines = [
        SECTION_START,
        "## engine_throughput: raw SpiffWorkflow vs Certrail task completion",
        "",
        "Same shipped BPMN (application → assessment → decision), scheme CWI, happy path: 10 user",
        "tasks per case, each case ends with a certificate. *Completion* times only the completion",
        "calls (raw: `task.run()` + `do_engine_steps()` + full",
        "`serialize_json`/`deserialize_json`; Certrail: `Engine.complete()`, one committed unit of",
        "work each). *Whole loop* adds the case start, the ready-task listing per step and",
        "form data generation. Fresh database per repeat,",
        f"{args.warmup} untimed warm-up case per repeat; figures are the median of the repeats.",
        "",
        f"Command: `{command}`",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
        f"{args.cases} cases × {TASKS_PER_CASE} tasks, {args.repeats} repeats:",
        "",
        *variant_rows(variants),
        "",
        f"- Certrail SQLite / raw (completion medians): **ratio={ratio:.3f}**",
        (
            f"- Certrail PostgreSQL / raw: **pg_ratio={pg_ratio:.3f}**"
            if pg_ratio is not None
            else "- PostgreSQL: skipped (not reachable or `--no-pg`)"
        ),
        statements,
        *([round_trips] if round_trips else []),
        gc_line(variants),
        "- State JSON: raw serializes the whole workflow including its specs; Certrail's",
        "  `StateSerializer` stores the task tree and data only (specs are per model version).",
        "- Certrail writes the case state to the database at every step. It reads it back only",
        "  when the copy kept in memory from the case's previous step is stale (another process",
        "  changed the case, or the step rolled back); the *no in-memory reuse* row restores it",
        "  from the database at every step, as a second worker process would.",
        SECTION_END,
    ]
    return "\n".join(lines) + "\n"


def gc_line(variants: list[VariantResult]) -> str:
    """How much of each variant's completion time went to Python's cyclic garbage
    collector: raw restores the whole workflow at every step, and the objects it allocates
    set off collections that walk everything the process holds."""
    shares = [
        f"{v.name} {v.gc_ms_per_task():.2f} ms/task "
        f"({100 * v.gc_ms_per_task() / v.ms_per_task():.0f} %)"
        for v in variants
        if v.repeats
    ]
    return (
        "- Python's cyclic garbage collector during the timed completions (median of the "
        "repeats; all variants run in one process, so a collection also walks the objects "
        "the other variants left, imported modules included): " + ", ".join(shares) + "."
    )


def write_results(section: str) -> None:
    write_section(section, SECTION_START, SECTION_END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=30, help="timed cases per repeat (default 30)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats per variant (default 5)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed warm-up cases per repeat (default 1)"
    )
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL))
    parser.add_argument(
        "--pg-socket-url",
        default=os.environ.get("BENCH_PG_SOCKET_URL", DEFAULT_PG_SOCKET_URL),
        help="the same server through a Unix socket (skipped when not reachable)",
    )
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="CASES",
        help="also cProfile Engine.complete on SQLite for CASES cases and print the top functions",
    )
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument(
        "--write-results",
        action="store_true",
        help=f"replace this benchmark's section in {RESULTS_FILE.name}",
    )
    args = parser.parse_args()

    pg_version = None if args.no_pg else postgres_probe(args.pg_url)
    pg_socket = None if args.no_pg else postgres_probe(args.pg_socket_url)
    info = machine_info(pg_version)
    print("engine_throughput: raw SpiffWorkflow vs Certrail (scheme CWI, 10 user tasks per case)")
    for key, value in info.items():
        print(f"  {key:18} {value}")
    print(f"  cases={args.cases} repeats={args.repeats} warmup={args.warmup}/repeat")
    print(
        "  timed: completion = completion calls only; "
        "loop = case start + ready-task listing + form data + completions"
    )
    print()

    variants = [
        VariantResult("raw", "raw SpiffWorkflow (in memory, JSON round-trip per step)"),
        VariantResult("sqlite", "Certrail, SQLite file (WAL, synchronous=FULL)"),
        VariantResult("pg", "Certrail, PostgreSQL"),
        VariantResult(
            "sqlite-cold",
            "Certrail, SQLite, state restored from the database at every step (no in-memory reuse)",
        ),
        VariantResult(
            "pg-socket", "Certrail, PostgreSQL through its Unix socket (no loopback TCP)"
        ),
    ]
    runners = {
        "raw": lambda: run_raw(args.cases, args.warmup),
        "sqlite": lambda: run_certrail_sqlite(args.cases, args.warmup),
        "pg": lambda: run_certrail_pg(args.pg_url, args.cases, args.warmup),
        "sqlite-cold": lambda: run_certrail_sqlite(args.cases, args.warmup, 0),
        "pg-socket": lambda: run_certrail_pg(args.pg_socket_url, args.cases, args.warmup),
    }
    if pg_version is None:
        variants[2].note = "--no-pg" if args.no_pg else f"PostgreSQL not reachable at {args.pg_url}"
        print(f"note: PostgreSQL variant skipped ({variants[2].note})")
    if pg_socket is None:
        variants[4].note = "--no-pg" if args.no_pg else f"not reachable at {args.pg_socket_url}"

    GcClock.install()
    # Interleave the variants (raw, sqlite, pg, raw, ...) so drift on the machine hits all alike.
    for rep in range(args.repeats):
        for v in variants:
            if (v.name == "pg" and pg_version is None) or (v.name == "pg-socket" and not pg_socket):
                continue
            r = runners[v.name]()
            v.repeats.append(r)
            print(
                f"  repeat {rep + 1}/{args.repeats} {v.name:6} {r.tasks} tasks: "
                f"completion {r.completion_seconds:7.3f}s = {r.completion_rate:8.1f} tasks/s, "
                f"loop {r.loop_seconds:7.3f}s = {r.loop_rate:8.1f} tasks/s",
                flush=True,
            )

    print()
    for row in variant_rows(variants):
        print(row)
    print()

    if args.profile:
        print(profile_certrail_sqlite(args.profile, args.profile_top))

    statements = statements_line(
        count_statements_sqlite(), count_statements_pg(args.pg_url) if pg_version else None
    )
    round_trips = (
        round_trip_line(
            {"TCP": args.pg_url, **({"Unix socket": args.pg_socket_url} if pg_socket else {})}
        )
        if pg_version
        else ""
    )
    print(statements)
    print(round_trips)
    print(gc_line(variants))

    raw, sqlite_v, pg, _cold, _socket = variants
    ratio = sqlite_v.median() / raw.median()
    pg_ratio = pg.median() / raw.median() if pg.repeats else None
    if args.write_results:
        command = ".venv/bin/python bench/engine_throughput.py " + " ".join(
            shlex.quote(a) for a in sys.argv[1:]
        )
        write_results(
            markdown_section(
                command.strip(), info, args, variants, ratio, pg_ratio, statements, round_trips
            )
        )
        print(f"results written to {RESULTS_FILE.relative_to(ROOT)}")
    print(
        f"pg_ratio={pg_ratio:.3f}"
        if pg_ratio is not None
        else "pg_ratio=skipped (PostgreSQL not reachable)"
    )
    print(f"ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
