#!/usr/bin/env python
"""Manager dashboard latency: the queries of `engine.dashboard` on PostgreSQL with 10,000,
100,000 and 1,000,000 cases.

Setup (untimed), per size, in a fresh PostgreSQL schema (dropped afterwards): the schema from
the models, the shipped models and the demo data, then bulk-generated with
`INSERT ... SELECT generate_series` (no Python loop over rows):

- 120 staff users, 20 per staff role that the generated steps need;
- each staff user with a current impartiality commitment;
- one person per two cases (family names 'Family0000000' on, each its own), one certificate
  per person, issued by the person's second case (85 % active, 5 % suspended, 3 %
  reduced, 4 % withdrawn, 3 % expired; expiry spread from one year ago to three years ahead,
  so about 6 % of the held certificates expire within 90 days);
- the cases: 45 % application, 35 % surveillance, 15 % recertification, 3 % appeal, 2 %
  complaint; 12 % running (started within the last 120 days), 1 % cancelled, the rest
  completed (started up to four years before that); surveillance and recertification cases
  point at a certificate, running recertification cases at one expiring within 90 days;
- three human tasks per case, carrying their case's process (`case_process_id`) and scheme
  (`scheme_id`) as the runner copies them, so every process has steps, surveillance and
  recertification included: every task of an ended case and the first two of a running
  one completed (due 10 days after it became ready, about 15 % completed late), the third
  task of a running case READY: a quarter of those overdue (up to 20 days), about 9 % due
  within 7 days, the rest due later; three quarters of the staff tasks assigned to a holder
  of the role, applicant tasks never;

then `VACUUM (ANALYZE)` (what autovacuum keeps up with in production). The indexes are the
models' own (`Base.metadata.create_all`), dashboard ones included (DASHBOARD_INDEXES); the
setup checks they exist and that every task's process and scheme are its case's.

Timed, each in a fresh session: the dashboard as the page loads it (`dashboard()`: the
filters' check, page 1 of the steps, the counts, the weekly chart, the expiring
certificates), and each of its queries on its own, plus the surveillance filter, a sort
that cannot use the index, and the full `certrail overdue` listing (every overdue row; not
part of the dashboard). After `--warmup` untimed runs, `--runs` timed runs; figures are the
median and the p95.

Usage:  .venv/bin/python bench/dashboard.py [--sizes 10000,100000,1000000] [--runs 9]
            [--warmup 2] [--pg-url URL] [--write-results]
Target: < 200 ms median for the whole dashboard at 1,000,000 cases.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import signal
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy  # noqa: E402
from engine_throughput import PostgresSchema, postgres_probe  # noqa: E402
from results_file import RESULTS_FILE, write_section  # noqa: E402
from sqlalchemy import text  # noqa: E402

from engine import Engine  # noqa: E402
from engine import dashboard as board  # noqa: E402
from engine.clock import FixedClock  # noqa: E402
from engine.demo import load_demo  # noqa: E402
from engine.models import Base  # noqa: E402

SECTION_START = "<!-- bench:dashboard:start -->"
SECTION_END = "<!-- bench:dashboard:end -->"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
NOW = datetime(2026, 3, 2, 9, 0, 0)
TARGET_MS = 200
STAFF_PER_ROLE = 20
WHOLE = "whole dashboard (page 1, default filters)"

# (process, position, step id, step name, role): the steps the generated cases go through.
STEPS = [
    ("application", 1, "check_completeness", "Check application completeness", "clerk"),
    ("application", 2, "review_eligibility", "Review eligibility", "reviewer"),
    ("application", 3, "schedule_assessment", "Schedule assessment", "clerk"),
    ("application", 4, "decide_certification", "Decide on certification", "decision_maker"),
    ("surveillance", 1, "declare_continued_practice", "Declare continued practice", "applicant"),
    ("surveillance", 2, "review_surveillance", "Review surveillance declaration", "reviewer"),
    ("surveillance", 3, "declare_continued_practice", "Declare continued practice", "applicant"),
    ("surveillance", 4, "review_surveillance", "Review surveillance declaration", "reviewer"),
    (
        "recertification",
        1,
        "submit_recertification",
        "Submit recertification evidence",
        "applicant",
    ),
    ("recertification", 2, "review_recertification", "Review recertification evidence", "reviewer"),
    ("recertification", 3, "review_recertification", "Review recertification evidence", "reviewer"),
    ("recertification", 4, "decide_recertification", "Decide on recertification", "decision_maker"),
    ("appeal", 1, "acknowledge_appeal", "Acknowledge appeal", "clerk"),
    ("appeal", 2, "validate_appeal", "Validate appeal", "appeals_panel"),
    ("appeal", 3, "investigate_appeal", "Investigate appeal", "appeals_panel"),
    ("appeal", 4, "decide_appeal", "Decide appeal", "appeals_panel"),
    ("complaint", 1, "confirm_relevance", "Confirm relevance", "complaints_officer"),
    ("complaint", 2, "acknowledge_complaint", "Acknowledge complaint", "complaints_officer"),
    ("complaint", 3, "investigate_complaint", "Investigate complaint", "complaints_officer"),
    ("complaint", 4, "approve_response", "Approve complaint response", "quality_manager"),
]
STAFF_ROLES = sorted({role for *_, role in STEPS} - {"applicant"})

# The models' indexes the dashboard's scans rely on (checked to exist after the setup).
DASHBOARD_INDEXES = (
    "ix_human_tasks_open_due",
    "ix_human_tasks_late_due",
    "ix_certificates_held_expiry",
    "ix_cases_open_recertification",
)
BULK_TABLES = ("people", "certificates", "cases", "human_tasks")


def _values(rows: list[tuple[Any, ...]]) -> str:
    def literal(value: Any) -> str:
        return str(value) if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"

    return ", ".join("(" + ", ".join(literal(v) for v in row) + ")" for row in rows)


def build(sql, cases: int) -> Engine:
    """The bench database: demo data, then `cases` cases and everything around them."""
    engine = Engine(sql_engine=sql, clock=FixedClock(NOW))
    Base.metadata.create_all(sql)
    engine.sync_models()
    with engine.unit_of_work() as uow:
        load_demo(uow)
    people = max(1, cases // 2)
    now = f"TIMESTAMP '{NOW.isoformat(sep=' ')}'"
    today = f"DATE '{NOW.date().isoformat()}'"
    role_values = _values([(i, role) for i, role in enumerate(STAFF_ROLES)])
    steps = _values([step[:5] for step in STEPS])
    statements = [
        "SELECT setseed(0.17)",
        # Staff: STAFF_PER_ROLE holders of each role the steps need.
        f"""CREATE TEMP TABLE bench_staff AS
            SELECT r.role, g - 1 AS n, 'bench-' || r.role || '-' || g AS username,
                   NULL::int AS user_id
            FROM (VALUES {role_values}) AS r(i, role), generate_series(1, {STAFF_PER_ROLE}) g""",
        f"""INSERT INTO users (username, display_name, email, is_external, active, created_at,
                failed_logins)
            SELECT username, 'Bench ' || role || ' ' || (n + 1), username || '@example.org',
                   false, true, {now}, 0
            FROM bench_staff""",
        """UPDATE bench_staff s SET user_id = u.id FROM users u WHERE u.username = s.username""",
        """INSERT INTO user_roles (user_id, role) SELECT user_id, role FROM bench_staff""",
        # Each has signed the impartiality commitment (SOD-COMMIT), so may take steps.
        f"""INSERT INTO commitments (user_id, text_version, signed_on, expires_on,
                recorded_by_id, recorded_at)
            SELECT user_id, '1', {today} - 30, {today} + 335, user_id, {now} FROM bench_staff""",
        """CREATE TEMP TABLE bench_steps (process text, position int, spec text, name text,
                role text)""",
        f"INSERT INTO bench_steps VALUES {steps}",
        # People and their certificates (certificate k belongs to person k of the bench).
        """CREATE TEMP TABLE bench_base AS
            SELECT (SELECT coalesce(max(id), 0) FROM people) AS person0,
                   (SELECT coalesce(max(id), 0) FROM certificates) AS cert0,
                   (SELECT coalesce(max(id), 0) FROM cases) AS case0,
                   (SELECT id FROM model_versions WHERE process_id = 'application'
                    ORDER BY id LIMIT 1) AS model_id,
                   (SELECT min(id) FROM schemes WHERE code = 'CWI') AS cwi,
                   (SELECT min(id) FROM schemes WHERE code = 'DPO') AS dpo""",
        f"""INSERT INTO people (id, given_name, family_name, email, created_at)
            SELECT b.person0 + g, 'Given' || g,
                   'Family' || lpad((g::bigint * 7919 % {people})::text, 7, '0'),
                   'bench-person' || g || '@example.org', {now} - interval '5 years'
            FROM bench_base b, generate_series(1, {people}) g""",
        f"""INSERT INTO certificates (id, number, person_id, scheme_id, scheme_code,
                scheme_version, scope, case_id, issued_at, effective_on, expires_on, status,
                renewed_count)
            SELECT b.cert0 + g, 'BENCH-' || lpad(g::text, 8, '0'), b.person0 + g,
                   CASE WHEN g % 3 = 0 THEN b.dpo ELSE b.cwi END,
                   CASE WHEN g % 3 = 0 THEN 'DPO' ELSE 'CWI' END, '1', 'bench scope',
                   b.case0 + {people} + g - 1,
                   {now} - interval '2 years', {today} - 730, {today} + x.days,
                   CASE WHEN x.r < 0.85 THEN 'active' WHEN x.r < 0.90 THEN 'suspended'
                        WHEN x.r < 0.93 THEN 'reduced' WHEN x.r < 0.97 THEN 'withdrawn'
                        ELSE 'expired' END, 0
            FROM bench_base b, generate_series(1, {people}) g,
                 LATERAL (SELECT random() AS r, floor(random() * 1460)::int - 365 + g * 0 AS days) x""",
        # Cases: process, status and dates drawn per case.
        f"""INSERT INTO cases (id, process_id, model_version_id, subprocess_versions, person_id,
                scheme_id, certificate_id, status, state, lock_version, started_at, ended_at)
            SELECT b.case0 + g, x.process, b.model_id, '{{}}', b.person0 + 1 + (g % {people}),
                   CASE WHEN (1 + g % {people}) % 3 = 0 THEN b.dpo ELSE b.cwi END,
                   CASE WHEN x.process IN ('surveillance', 'recertification')
                        THEN b.cert0 + 1 + (g % {people}) END,
                   x.status, '{{}}', 1,
                   CASE WHEN x.status = 'running' THEN {now} - x.age * interval '120 days'
                        ELSE {now} - interval '120 days' - x.age * interval '1460 days' END,
                   CASE WHEN x.status <> 'running' THEN {now} - interval '60 days'
                        - x.age * interval '1400 days' END
            FROM bench_base b, generate_series(1, {cases}) g,
                 LATERAL (SELECT
                    CASE WHEN p < 0.45 THEN 'application' WHEN p < 0.80 THEN 'surveillance'
                         WHEN p < 0.95 THEN 'recertification' WHEN p < 0.98 THEN 'appeal'
                         ELSE 'complaint' END AS process,
                    CASE WHEN s < 0.12 THEN 'running' WHEN s < 0.13 THEN 'cancelled'
                         ELSE 'completed' END AS status,
                    a AS age
                    FROM (SELECT random() + g * 0 AS p, random() AS s, random() AS a) r) x""",
        # Running recertification cases are about certificates expiring within 90 days.
        f"""WITH expiring AS (
                SELECT id, row_number() OVER (ORDER BY id) AS n, count(*) OVER () AS total
                FROM certificates
                WHERE status IN ('active', 'reduced', 'suspended')
                  AND expires_on BETWEEN {today} AND {today} + 90 AND number LIKE 'BENCH-%'),
            recert AS (
                SELECT id, row_number() OVER (ORDER BY id) AS n FROM cases
                WHERE process_id = 'recertification' AND status = 'running')
            UPDATE cases c SET certificate_id = e.id
            FROM recert r JOIN expiring e ON e.n = 1 + (r.n * 7) % e.total
            WHERE c.id = r.id""",
        # Three tasks per case: the third of a running case is open, the rest completed.
        # The case's process and scheme are copied onto each task, as the runner does.
        f"""INSERT INTO human_tasks (case_id, task_uuid, task_spec_id, process_id,
                case_process_id, scheme_id, name, role, status, priority, assignee_id,
                created_at, due_at, claimed_at, completed_by_id, completed_at)
            SELECT c.id, md5(c.id || '-' || j), s.spec, c.process_id, c.process_id,
                   c.scheme_id, s.name, s.role,
                   t.status, 0, t.assignee, t.created, t.created + interval '10 days',
                   CASE WHEN t.assignee IS NOT NULL THEN t.created END,
                   CASE WHEN t.status = 'completed' THEN t.assignee END,
                   CASE WHEN t.status = 'completed'
                        THEN t.created + u.r * u.r * interval '14 days' END
            FROM cases c
            CROSS JOIN generate_series(1, 3) j
            JOIN bench_steps s ON s.process = c.process_id
                 AND s.position = CASE WHEN j < 3 THEN j ELSE 3 + c.id % 2 END
            LEFT JOIN bench_staff st ON st.role = s.role AND st.n = c.id % {STAFF_PER_ROLE}
            CROSS JOIN LATERAL (SELECT random() + (c.id + j) * 0 AS r, random() AS a) u
            CROSS JOIN LATERAL (
                SELECT CASE WHEN c.status = 'running' AND j = 3 THEN 'ready'
                            WHEN c.status = 'cancelled' AND j = 3 THEN 'cancelled'
                            ELSE 'completed' END AS status,
                       CASE WHEN c.status = 'running' AND j = 3
                            THEN {now} - interval '30 days' + u.r * interval '80 days'
                            ELSE c.started_at + (j - 1) * interval '12 days' END AS created,
                       CASE WHEN u.a < 0.75 THEN st.user_id END AS assignee) t""",
    ]
    with sql.begin() as conn:
        # Bulk load: no foreign-key triggers, and the secondary indexes built once at the end.
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        indexes = list(
            conn.execute(
                text(
                    """SELECT i.indexname, i.indexdef FROM pg_indexes i
                       WHERE i.schemaname = current_schema() AND i.tablename = ANY(:tables)
                         AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                                         WHERE c.conname = i.indexname)"""
                ),
                {"tables": list(BULK_TABLES)},
            )
        )
        for name, _ddl in indexes:
            conn.execute(text(f'DROP INDEX "{name}"'))
        for statement in statements:
            conn.execute(text(statement))
        for _name, ddl in indexes:
            conn.execute(text(ddl))
    with sql.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE)"))
    return engine


def check(engine: Engine) -> None:
    """The setup is what the dashboard expects: its indexes exist, and every task carries
    its case's process and scheme. Raises RuntimeError otherwise."""
    with engine.db.connect() as conn:
        found = set(
            conn.execute(
                text(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                    "AND indexname = ANY(:names)"
                ),
                {"names": list(DASHBOARD_INDEXES)},
            ).scalars()
        )
        inconsistent = conn.execute(
            text(
                """SELECT count(*) FROM human_tasks t JOIN cases c ON c.id = t.case_id
                   WHERE t.case_process_id IS DISTINCT FROM c.process_id
                      OR t.scheme_id IS DISTINCT FROM c.scheme_id"""
            )
        ).scalar_one()
    missing = [name for name in DASHBOARD_INDEXES if name not in found]
    if missing:
        raise RuntimeError(f"the models did not create the indexes {', '.join(missing)}")
    if inconsistent:
        raise RuntimeError(f"{inconsistent} tasks do not carry their case's process and scheme")


def shape(engine: Engine) -> dict[str, int]:
    """What the generated data looks like, as of NOW."""
    with engine.db.connect() as conn:
        row = conn.execute(
            text(
                """SELECT (SELECT count(*) FROM cases), t.*, (SELECT count(*) FROM certificates),
                          (SELECT pg_total_relation_size('human_tasks') / 1048576)
                   FROM (SELECT count(*),
                                count(*) FILTER (WHERE status = 'ready'),
                                count(*) FILTER (WHERE status = 'ready' AND due_at < :now),
                                count(*) FILTER (WHERE status = 'ready' AND due_at >= :now
                                                 AND due_at < :now + interval '7 days'),
                                count(*) FILTER (WHERE status = 'ready'
                                                 AND case_process_id = 'surveillance'),
                                count(*) FILTER (WHERE status = 'ready'
                                                 AND case_process_id = 'recertification')
                         FROM human_tasks) t"""
            ),
            {"now": NOW},
        ).one()
    keys = (
        "cases",
        "tasks",
        "open",
        "overdue",
        "due_soon",
        "open_surveillance",
        "open_recertification",
        "certificates",
        "tasks_mib",
    )
    return dict(zip(keys, row, strict=True))


def probes(engine: Engine) -> dict[str, Callable[[Any], Any]]:
    """What is timed: label -> function of a session."""
    default = board.DashboardQuery()
    surveillance = board.StepFilters(process="surveillance")
    return {
        WHOLE: lambda s: board.dashboard(s, NOW, default),
        "steps page 1 (most overdue first)": lambda s: board.step_page(s, NOW, default.filters),
        "step counts (process, step, scheme, assignee)": lambda s: board.step_counts(
            s, NOW, default.filters
        ),
        "overdue per week (12 weeks)": lambda s: board.overdue_per_week(s, NOW, default.filters),
        "expiring certificates (90-day list + counts)": lambda s: board.expiring_certificates(
            s, NOW.date(), 90
        ),
        "whole dashboard, process=surveillance": lambda s: board.dashboard(
            s, NOW, board.DashboardQuery(filters=surveillance)
        ),
        "steps page 1 sorted by person": lambda s: board.step_page(
            s, NOW, default.filters, sort="person"
        ),
        "steps page 100 (most overdue first)": lambda s: board.step_page(
            s, NOW, default.filters, page=100
        ),
        "certrail overdue: full listing of every overdue step (not the dashboard)": lambda s: sum(
            1 for _ in board.overdue_steps(s, NOW)
        ),
    }


def measure(engine: Engine, probe: Callable[[Any], Any], runs: int, warmup: int) -> list[float]:
    times = []
    for i in range(warmup + runs):
        with engine.sessions() as session:
            started = time.perf_counter()
            probe(session)
            elapsed = (time.perf_counter() - started) * 1000
        if i >= warmup:
            times.append(elapsed)
    return times


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "min": ordered[0],
        "max": ordered[-1],
    }


def run_size(url: str, cases: int, args) -> dict[str, Any]:
    with PostgresSchema(url) as sql:
        started = time.perf_counter()
        engine = build(sql, cases)
        setup_s = time.perf_counter() - started
        check(engine)
        data = shape(engine)
        print(
            f"\n{cases:,} cases: built in {setup_s:.0f} s: {data['tasks']:,} tasks "
            f"({data['tasks_mib']} MiB), {data['open']:,} open ({data['open_surveillance']:,} "
            f"surveillance, {data['open_recertification']:,} recertification), "
            f"{data['overdue']:,} overdue, {data['due_soon']:,} due within 7 days, "
            f"{data['certificates']:,} certificates",
            flush=True,
        )
        timings = {}
        for label, probe in probes(engine).items():
            timings[label] = summary(measure(engine, probe, args.runs, args.warmup))
            _print(label, timings[label])
        engine.db.dispose()
    return {"cases": cases, "setup_s": setup_s, "shape": data, "timings": timings}


def _print(label: str, s: dict[str, float]) -> None:
    print(
        f"  {label:72} median {s['median']:7.1f} ms  p95 {s['p95']:7.1f} ms  "
        f"(min {s['min']:.1f}, max {s['max']:.1f})",
        flush=True,
    )


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
        f"psycopg {version('psycopg')}, PostgreSQL server {pg_version}, "
        f"load average when done {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )


def pg_settings(url: str) -> str:
    from sqlalchemy import create_engine

    from engine.db import normalise_url

    probe = create_engine(normalise_url(url))
    with probe.connect() as conn:
        values = [
            f"{name}={conn.execute(text(f'SHOW {name}')).scalar()}"
            for name in ("shared_buffers", "work_mem", "effective_cache_size", "jit")
        ]
    probe.dispose()
    return ", ".join(values)


def markdown(results: list[dict[str, Any]], args, pg_version: str, command: str, url: str) -> str:
    labels = list(results[0]["timings"])
    sizes = [r["cases"] for r in results]
    rows = "\n".join(
        f"| {label} | "
        + " | ".join(
            f"{r['timings'][label]['median']:.1f} / {r['timings'][label]['p95']:.1f}"
            for r in results
        )
        + " |"
        for label in labels
    )
    shapes = "\n".join(
        f"| {r['cases']:,} | {r['shape']['tasks']:,} ({r['shape']['tasks_mib']} MiB) | "
        f"{r['shape']['open']:,} | {r['shape']['open_surveillance']:,} / "
        f"{r['shape']['open_recertification']:,} | {r['shape']['overdue']:,} | "
        f"{r['shape']['due_soon']:,} | {r['shape']['certificates']:,} | {r['setup_s']:.0f} s |"
        for r in results
    )
    median = results[-1]["timings"][WHOLE]["median"]
    verdict = "met" if median < TARGET_MS else "missed"
    indexes = ", ".join(f"`{name}`" for name in DASHBOARD_INDEXES)
    return f"""{SECTION_START}
## dashboard: the manager's dashboard queries on PostgreSQL, up to {sizes[-1]:,} cases

`engine.dashboard` as `/dashboard` calls it (`dashboard()`: filter check, page 1 of the
overdue and soon-due steps, the counts per process/step/scheme/assignee, overdue per ISO
week over 12 weeks, certificates expiring within 30/60/90 days), and each query alone.
Data bulk-generated per size with `INSERT ... SELECT generate_series` in a fresh schema
(see the script's docstring for the mix; each task carries its case's process and scheme),
then `VACUUM (ANALYZE)`; fresh session per run, {args.warmup} untimed then {args.runs} timed
runs; median and p95 in ms. Indexes: the models' own, as `create_all` makes them (the
dashboard's: {indexes}). The last row is the full `certrail overdue` listing, every overdue
row fetched; it is not part of the dashboard.

Command: `{command}`

Machine: {machine(pg_version)}; server settings {pg_settings(url)}

| cases | human tasks | open | open surveillance / recertification | overdue | due within 7 days | certificates | setup |
|---|---|---|---|---|---|---|---|
{shapes}

**model indexes** (median / p95 ms):

| query | {" | ".join(f"{n:,} cases" for n in sizes)} |
|---|{"---|" * len(sizes)}
{rows}

Target: whole dashboard < {TARGET_MS} ms (median) at {sizes[-1]:,} cases: {median:.1f} ms, **{verdict}**.
{SECTION_END}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="case counts")
    parser.add_argument("--runs", type=int, default=9, help="timed runs per query (>= 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per query")
    parser.add_argument("--pg-url", default=os.environ.get("TEST_DATABASE_URL", DEFAULT_PG_URL))
    parser.add_argument("--write-results", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    # A stopped run still drops its schema (the context managers run on SystemExit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.runs < 5:
        parser.error("--runs must be at least 5")
    sizes = [int(s) for s in args.sizes.split(",")]
    pg_version = postgres_probe(args.pg_url)
    if pg_version is None:
        sys.exit(f"PostgreSQL is not reachable at {args.pg_url}")
    results = [run_size(args.pg_url, n, args) for n in sizes]
    median = results[-1]["timings"][WHOLE]["median"]
    verdict = "met" if median < TARGET_MS else "MISSED"
    print(f"whole dashboard at {sizes[-1]:,} cases: {median:.1f} ms median: {verdict}")
    if args.write_results:
        argv = [a for a in sys.argv[1:] if a != "--write-results"]
        command = shlex.join([".venv/bin/python", "bench/dashboard.py", *argv, "--write-results"])
        write_section(
            markdown(results, args, pg_version, command, args.pg_url), SECTION_START, SECTION_END
        )
        print(f"results written to {RESULTS_FILE}")


if __name__ == "__main__":
    main()
