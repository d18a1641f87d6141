"""Case search: names and certificate numbers match from their start, the count stops at
its limit, and the filter choices come from the scheme and model tables."""

from __future__ import annotations

from sqlalchemy import select

from engine.case_search import CaseFilters, filter_choices, search_cases
from engine.models import User
from tests.engine.helpers import (
    certificates,
    do,
    drive_to_decision,
    start_application,
)


def found_ids(engine, username: str = "manager", **filters) -> list[int]:
    with engine.sessions() as session:
        user = session.scalars(select(User).where(User.username == username)).one()
        return [r.id for r in search_cases(session, user, CaseFilters(**filters)).rows]


def test_a_name_or_e_mail_matches_from_its_start_only(engine):
    alices = start_application(engine, "alice")
    bobs = start_application(engine, "bob", "DPO")
    assert found_ids(engine, q="ALI") == [alices]
    assert found_ids(engine, q="applic") == [alices]
    assert found_ids(engine, q="bob@exa") == [bobs]
    assert found_ids(engine, q="bob builder") == [bobs]
    assert found_ids(engine, q="lice") == []
    assert found_ids(engine, q="example.org") == []
    assert found_ids(engine, q="_ob") == []


def test_a_certificate_number_matches_whole_or_from_its_start(engine):
    case_id = start_application(engine)
    drive_to_decision(engine, case_id)
    do(engine, case_id, "decide_certification")
    number = certificates(engine, case_id)[0].number
    assert found_ids(engine, certificate=number.lower()) == [case_id]
    assert found_ids(engine, certificate=number[:-1]) == [case_id]
    assert found_ids(engine, certificate=number[1:]) == []


def test_the_count_stops_at_its_limit_and_the_pages_are_then_unknown(engine):
    started = [start_application(engine, "alice") for _ in range(3)]
    with engine.sessions() as session:
        manager = session.scalars(select(User).where(User.username == "manager")).one()
        capped = search_cases(session, manager, CaseFilters(), per_page=1, count_limit=2)
        exact = search_cases(session, manager, CaseFilters(), page=3, per_page=1, count_limit=3)
    assert (capped.total, capped.more, capped.pages, capped.has_next) == (2, True, None, True)
    assert [r.id for r in capped.rows] == [max(started)]
    assert (exact.total, exact.more, exact.pages, exact.has_next) == (3, False, 3, False)
    assert [r.id for r in exact.rows] == [min(started)]


def test_the_filter_choices_list_the_schemes_and_the_models_processes(engine):
    with engine.sessions() as session:
        schemes, processes = filter_choices(session)
    assert {"CWI", "DPO"} <= set(schemes)
    assert "application" in processes and processes == sorted(processes)
