"""The inbox's total and tab counts stop at their limit, the pages still reach every task,
and without a limit (the API's exact `total`) every task is counted."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select

from engine.counting import CappedCount
from engine.inbox import InboxFilters, inbox
from engine.models import User
from tests.engine.helpers import do, start_application


@pytest.fixture
def completeness_checks(engine) -> list[int]:
    """Three cases waiting for the clerk's completeness check (tab "available")."""
    cases = []
    for _ in range(3):
        case_id = start_application(engine, "bob", "DPO")
        do(engine, case_id, "submit_application", "bob")
        cases.append(case_id)
    return cases


def clerk_inbox(engine, **options):
    with engine.sessions() as session:
        clerk = session.scalars(select(User).where(User.username == "clerk")).one()
        return inbox(session, clerk, engine.clock.now(), tab="available", **options)


def test_the_total_and_tab_counts_stop_at_their_limit_and_the_pages_are_then_unknown(
    engine, completeness_checks
):
    capped = clerk_inbox(engine, per_page=1, count_limit=2)
    assert (capped.total, capped.more, capped.pages, capped.has_next) == (2, True, None, True)
    assert capped.counts["available"] == CappedCount(2, True)
    assert capped.counts["assigned"] == CappedCount(0, False)
    assert capped.counts["available"].label == "2+"

    exact = clerk_inbox(engine, page=3, per_page=1, count_limit=3)
    assert (exact.total, exact.more, exact.pages, exact.has_next) == (3, False, 3, False)
    assert exact.counts["available"] == CappedCount(3, False)
    assert exact.counts["available"].label == "3"


def test_a_filtered_total_stops_at_its_limit_too(engine, completeness_checks):
    filtered = clerk_inbox(
        engine, per_page=1, count_limit=1, filters=InboxFilters(scheme="DPO", process="application")
    )
    assert (filtered.total, filtered.more, filtered.has_next) == (1, True, True)
    elsewhere = clerk_inbox(engine, count_limit=1, filters=InboxFilters(scheme="CWI"))
    assert (elsewhere.total, elsewhere.more, elsewhere.rows) == (0, False, [])


def test_the_next_page_reaches_every_task_when_the_count_stopped(engine, completeness_checks):
    seen, page = [], 1
    while True:
        found = clerk_inbox(engine, page=page, per_page=1, count_limit=1)
        assert found.more
        seen += [row.case_id for row in found.rows]
        if not found.has_next:
            break
        page += 1
    assert page == 3 and sorted(seen) == sorted(completeness_checks)


def test_without_a_limit_every_task_is_counted(engine, completeness_checks):
    every = clerk_inbox(engine, per_page=1)
    assert (every.total, every.more, every.pages, every.has_next) == (3, False, 3, True)
    assert every.counts["available"] == CappedCount(3, False)


def test_the_count_limit_is_written_into_the_statement_not_bound(engine, completeness_checks):
    """A bound LIMIT lets PostgreSQL settle on a generic plan for a prepared count, which for a
    broad inbox at 1M cases was eight times slower (bench/scale_curve.py)."""
    statements = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):
        statements.append((statement, parameters))

    event.listen(engine.db, "before_cursor_execute", capture)
    try:
        clerk_inbox(engine, count_limit=2)
    finally:
        event.remove(engine.db, "before_cursor_execute", capture)
    counts = [(s, p) for s, p in statements if s.lstrip().upper().startswith("SELECT COUNT")]
    assert counts, "the inbox counted nothing"
    for statement, parameters in counts:
        assert "LIMIT 3" in statement
        assert 3 not in (parameters.values() if isinstance(parameters, dict) else parameters)
