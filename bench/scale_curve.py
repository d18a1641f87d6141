#!/usr/bin/env python
"""Scale curve: the staff inbox, the case search and the overdue dashboard on PostgreSQL with
10,000, 100,000 and 1,000,000 cases, and how their latency grows with the number of cases.

Setup (untimed), per size: `dashboard.build` (fresh schema, bulk-generated people,
certificates, cases and three human tasks per case; see bench/dashboard.py), the same data
the dashboard benchmark measures.

Timed, each in a fresh session, through the code the pages run:

- the staff inbox (`engine.inbox.inbox`, as `/inbox` calls it: the page of rows, its total
  and the three tab counts, each counted up to 10,001) for `bench-reviewer-1` (a reviewer
  with a current commitment): tabs "available" (open reviewer steps nobody holds) and
  "assigned", page 1 and page 10;
- the case search as a manager (`engine.case_search`, as `/cases` calls it: the page of
  cases, the count up to 10,001, the open steps and certificates of the listed cases, the
  filter choices): by a person's family name, by a certificate number (whole, and its
  start), by scheme + status, and the unfiltered first page (also as the reviewer, whose
  list is limited to the cases they have a part in);
- the API's case list as the reviewer (`engine.case_search.visible_cases_page`, as
  `GET /api/v1/cases` calls it: page 1 and the exact total its contract promises);
- the manager's dashboard (`engine.dashboard.dashboard`, page 1, default filters);
- for reference, what the case list did before its search was made indexable: the name as a
  substring (`lower(name) LIKE '%word%'`) with the full count, and the process filter's
  choices from `SELECT DISTINCT process_id FROM cases`.

After `--warmup` untimed runs, `--runs` timed runs; median and p95 per size, and the ratio of
the largest size to the smallest. A query whose cost grows like log n takes at most
log(n_max)/log(n_min) times as long at the largest size (1.5 from 10,000 to 1,000,000); the
verdict compares the medians' ratio with that bound.

Usage:  .venv/bin/python bench/scale_curve.py [--sizes 10000,100000,1000000] [--runs 9]
            [--warmup 2] [--pg-url URL] [--write-results]
Target: inbox and dashboard < 200 ms p95 at 1,000,000 cases.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dashboard import (  # noqa: E402
    DEFAULT_PG_URL,
    NOW,
    build,
    check,
    machine,
    measure,
    pg_settings,
    shape,
    summary,
)
from engine_throughput import PostgresSchema, postgres_probe  # noqa: E402
from results_file import RESULTS_FILE, write_section  # noqa: E402
from sqlalchemy import func, or_, select  # noqa: E402

from engine import Engine  # noqa: E402
from engine import case_search as search  # noqa: E402
from engine import dashboard as board  # noqa: E402
from engine.counting import COUNT_LIMIT  # noqa: E402
from engine.inbox import inbox  # noqa: E402
from engine.models import Case, Person, User  # noqa: E402

SECTION_START = "<!-- bench:scale_curve:start -->"
SECTION_END = "<!-- bench:scale_curve:end -->"
TARGET_MS = 200
INBOX_USER = "bench-reviewer-1"
MANAGER = "manager"
DEEP_PAGE = 10
PER_PAGE = 25
# A person, and their certificate, that exist at every size (person 1,234 of the bench).
FAMILY_NAME = "Family0001234"
CERTIFICATE = "BENCH-00001234"
CERTIFICATE_START = "BENCH-0000123"
TARGETED = ("inbox", "dashboard")


def _user(session, username: str) -> User:
    return session.scalars(select(User).where(User.username == username)).one()


def case_list(session, username: str, filters: search.CaseFilters, page: int = 1) -> int:
    """The case list as `/cases` loads it; returns the count shown."""
    found = search.search_cases(session, _user(session, username), filters, page, PER_PAGE)
    search.case_extras(session, [r.id for r in found.rows])
    search.filter_choices(session)
    return found.total


def substring_search(session, word: str) -> int:
    """Reference: the name as a substring anywhere, with every match counted (what the case
    list did before); returns the count."""
    pattern = f"%{word.lower()}%"
    query = (
        select(Case.id, Person.given_name, Person.family_name)
        .outerjoin(Person, Person.id == Case.person_id)
        .where(
            or_(
                func.lower(Person.given_name).like(pattern),
                func.lower(Person.family_name).like(pattern),
                func.lower(Person.email).like(pattern),
            )
        )
    )
    session.execute(query.order_by(Case.id.desc()).limit(PER_PAGE)).all()
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def probes() -> dict[str, tuple[str, Callable[[Any], Any]]]:
    """What is timed: label -> (group, function of a session)."""

    def inbox_page(tab: str, page: int) -> Callable[[Any], Any]:
        return lambda s: inbox(
            s, _user(s, INBOX_USER), NOW, tab=tab, page=page, count_limit=COUNT_LIMIT
        )

    def cases(page: int = 1, username: str = MANAGER, **filters: str) -> Callable[[Any], Any]:
        return lambda s: case_list(s, username, search.CaseFilters(**filters), page)

    return {
        "inbox: available, page 1 (+ total and tab counts)": ("inbox", inbox_page("available", 1)),
        f"inbox: available, page {DEEP_PAGE}": ("inbox", inbox_page("available", DEEP_PAGE)),
        "inbox: assigned, page 1 (+ total and tab counts)": ("inbox", inbox_page("assigned", 1)),
        f"inbox: assigned, page {DEEP_PAGE}": ("inbox", inbox_page("assigned", DEEP_PAGE)),
        f"case search: family name `{FAMILY_NAME}`": ("search", cases(q=FAMILY_NAME)),
        f"case search: certificate `{CERTIFICATE}`": ("search", cases(certificate=CERTIFICATE)),
        f"case search: certificate starting `{CERTIFICATE_START}`": (
            "search",
            cases(certificate=CERTIFICATE_START),
        ),
        "case search: scheme DPO + status running": (
            "search",
            cases(scheme="DPO", status="running"),
        ),
        "case search: no filter, page 1": ("search", cases()),
        f"case search: no filter, page {DEEP_PAGE}": ("search", cases(page=DEEP_PAGE)),
        "case search: no filter, page 1, as the reviewer": (
            "search",
            cases(username=INBOX_USER),
        ),
        "API case list (`/api/v1/cases`): page 1 + exact total, as the reviewer": (
            "search",
            lambda s: search.visible_cases_page(
                s, _user(s, INBOX_USER), search.CaseFilters(), 1, 25
            ),
        ),
        "dashboard: whole page (page 1, default filters)": (
            "dashboard",
            lambda s: board.dashboard(s, NOW, board.DashboardQuery()),
        ),
        "reference (before): name as substring + full count": (
            "reference",
            lambda s: substring_search(s, FAMILY_NAME),
        ),
        "reference (before): process choices from DISTINCT cases.process_id": (
            "reference",
            lambda s: s.scalars(select(Case.process_id).distinct()).all(),
        ),
    }


def sizes_of_inbox(engine: Engine) -> dict[str, int]:
    """How many rows the timed inbox tabs and searches hold at this size (the inbox's
    counted exactly, untimed)."""
    with engine.sessions() as session:
        user = _user(session, INBOX_USER)
        available = inbox(session, user, NOW, tab="available")
        return {
            "available": available.total,
            "assigned": available.counts["assigned"].value,
            "completed": available.counts["completed"].value,
            "family": case_list(session, MANAGER, search.CaseFilters(q=FAMILY_NAME)),
            "scheme_status": case_list(
                session, MANAGER, search.CaseFilters(scheme="DPO", status="running")
            ),
        }


def run_size(url: str, cases: int, args) -> dict[str, Any]:
    with PostgresSchema(url) as sql:
        started = time.perf_counter()
        engine = build(sql, cases)
        setup_s = time.perf_counter() - started
        check(engine)
        data = shape(engine) | sizes_of_inbox(engine)
        print(
            f"\n{cases:,} cases: built in {setup_s:.0f} s: {data['tasks']:,} tasks, "
            f"{data['open']:,} open; {INBOX_USER}: {data['available']:,} available, "
            f"{data['assigned']:,} assigned, {data['completed']:,} completed",
            flush=True,
        )
        timings = {}
        for label, (_group, probe) in probes().items():
            timings[label] = summary(measure(engine, probe, args.runs, args.warmup))
            s = timings[label]
            print(f"  {label:70} median {s['median']:7.1f} ms  p95 {s['p95']:7.1f} ms", flush=True)
        engine.db.dispose()
    return {"cases": cases, "setup_s": setup_s, "shape": data, "timings": timings}


def growth(results: list[dict[str, Any]], label: str) -> tuple[float, float, str]:
    """Median and p95 ratio of the largest size to the smallest, and the verdict."""
    first, last = results[0], results[-1]
    median = last["timings"][label]["median"] / first["timings"][label]["median"]
    p95 = last["timings"][label]["p95"] / first["timings"][label]["p95"]
    bound = math.log(last["cases"]) / math.log(first["cases"])
    return median, p95, ("within log n" if median <= bound else "grows faster than log n")


def target_verdict(results: list[dict[str, Any]]) -> tuple[float, str]:
    groups = probes()
    worst = max(
        s["p95"] for label, s in results[-1]["timings"].items() if groups[label][0] in TARGETED
    )
    return worst, ("met" if worst < TARGET_MS else "missed")


def markdown(results: list[dict[str, Any]], args, pg_version: str, command: str, url: str) -> str:
    sizes = [r["cases"] for r in results]
    ratio_head = f"{sizes[-1] // 1000:,}k / {sizes[0] // 1000:,}k"
    rows = []
    for label in results[0]["timings"]:
        median, p95, verdict = growth(results, label)
        cells = " | ".join(
            f"{r['timings'][label]['median']:.1f} / {r['timings'][label]['p95']:.1f}"
            for r in results
        )
        rows.append(f"| {label} | {cells} | {median:.2f} / {p95:.2f} | {verdict} |")
    shapes = "\n".join(
        f"| {r['cases']:,} | {r['shape']['tasks']:,} | {r['shape']['open']:,} | "
        f"{r['shape']['available']:,} / {r['shape']['assigned']:,} / "
        f"{r['shape']['completed']:,} | {r['shape']['family']:,} | "
        f"{r['shape']['scheme_status']:,} | {r['setup_s']:.0f} s |"
        for r in results
    )
    bound = math.log(sizes[-1]) / math.log(sizes[0])
    worst, verdict = target_verdict(results)
    return f"""{SECTION_START}
## scale_curve: inbox, case search and dashboard on PostgreSQL, {sizes[0]:,} to {sizes[-1]:,} cases

The data of `bench/dashboard.py` (`build`: bulk-generated people, certificates, cases and
three human tasks per case, fresh schema per size, then `VACUUM (ANALYZE)`). Timed through
the code the pages run, fresh session per run, {args.warmup} untimed then {args.runs} timed
runs, median / p95 in ms:

- inbox: `engine.inbox.inbox` as `/inbox` runs it for `{INBOX_USER}` (rows, total and the
  three tab counts, each counted up to 10,001: beyond 10,000 the page shows "10,000+");
- case search: `engine.case_search` as `/cases` runs it for the demo `{MANAGER}` (page,
  count up to 10,001, open steps and certificates of the listed cases, filter choices).
  Names and e-mail addresses match from their start, certificate numbers from their start,
  each through an index on `lower(...)`/`upper(...)` (`text_pattern_ops`); a search with
  more than 10,000 matches shows "more than 10,000";
- API case list: `engine.case_search.visible_cases_page` as `GET /api/v1/cases` runs it for
  `{INBOX_USER}`: page 1 and the exact total (the API's contract has no "more than"), the ids
  of each way a case becomes visible to them counted once each (before: 2.1 s at 1,000,000
  cases, with the visibility rule tested case by case). An exact count reads the id of every
  case it counts, so it grows with them: the reviewer sees 95 % of the cases;
- dashboard: `engine.dashboard.dashboard` (see the dashboard section for each query alone);
- reference rows: the case list's former substring name search with its full count, and
  its former process choices (`DISTINCT` over all cases), kept to show why they changed.

The ratio column is largest / smallest size (median / p95). Cost growing like log n allows
a median ratio of log({sizes[-1]:,}) / log({sizes[0]:,}) = {bound:.2f}.

Command: `{command}`

Machine: {machine(pg_version)}; server settings {pg_settings(url)}

| cases | human tasks | open | {INBOX_USER}: available / assigned / completed | family-name matches | DPO running | setup |
|---|---|---|---|---|---|---|
{shapes}

| query | {" | ".join(f"{n:,} cases" for n in sizes)} | {ratio_head} | growth |
|---|{"---|" * len(sizes)}---|---|
{chr(10).join(rows)}

Target: inbox and dashboard < {TARGET_MS} ms p95 at {sizes[-1]:,} cases: slowest p95
{worst:.1f} ms, **{verdict}**.
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
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.runs < 5:
        parser.error("--runs must be at least 5")
    sizes = [int(s) for s in args.sizes.split(",")]
    pg_version = postgres_probe(args.pg_url)
    if pg_version is None:
        sys.exit(f"PostgreSQL is not reachable at {args.pg_url}")
    results = [run_size(args.pg_url, n, args) for n in sizes]
    if len(results) > 1:
        print(f"\n{'query':70} ratio {sizes[-1]:,}/{sizes[0]:,} (median / p95)")
        for label in results[0]["timings"]:
            median, p95, verdict = growth(results, label)
            print(f"  {label:70} {median:5.2f} / {p95:5.2f}  {verdict}")
    worst, verdict = target_verdict(results)
    print(f"inbox and dashboard at {sizes[-1]:,} cases: slowest p95 {worst:.1f} ms: {verdict}")
    if args.write_results:
        argv = [a for a in sys.argv[1:] if a != "--write-results"]
        command = shlex.join([".venv/bin/python", "bench/scale_curve.py", *argv, "--write-results"])
        write_section(
            markdown(results, args, pg_version, command, args.pg_url), SECTION_START, SECTION_END
        )
        print(f"results written to {RESULTS_FILE}")


if __name__ == "__main__":
    main()
