"""Case search: names and certificate numbers match from their start, the count stops at
its limit, the filter choices come from the scheme and model tables, and staff find exactly
the cases they may see."""

from __future__ import annotations

from sqlalchemy import select

from engine.case_search import (
    CaseFilters,
    case_query,
    count_visible,
    filter_choices,
    newest_cases,
    newest_visible_criteria,
    search_cases,
)
from engine.models import Case, HumanTask, User
from tests.engine.helpers import (
    certificates,
    do,
    drive_to_decision,
    person_id,
    ready_task,
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


# -- who finds what: staff outside the oversight roles see the cases they have a part in ----


def listed(engine, username: str, per_page: int = 2, **filters) -> tuple[list[int], int]:
    """Every case the search lists for `username`, page by page, and the count it shows."""
    with engine.sessions() as session:
        user = session.scalars(select(User).where(User.username == username)).one()
        pages = [search_cases(session, user, CaseFilters(**filters), 1, per_page)]
        while pages[-1].has_next:
            pages.append(
                search_cases(session, user, CaseFilters(**filters), len(pages) + 1, per_page)
            )
    return [r.id for found in pages for r in found.rows], pages[0].total


def by_the_rule(engine, username: str, **filters) -> list[int]:
    """The cases `visible_cases_criteria` lets `username` see (through `case_query`, the
    criteria form of the rule), newest first."""
    with engine.sessions() as session:
        user = session.scalars(select(User).where(User.username == username)).one()
        query = case_query(user, CaseFilters(**filters)).order_by(Case.id.desc())
        return [r.id for r in session.execute(query)]


def take_role(engine, username: str, role: str) -> None:
    with engine.unit_of_work() as uow:
        user = uow.session.scalars(select(User).where(User.username == username)).one()
        user.roles = [r for r in user.roles if r.role != role]


def test_staff_find_exactly_the_cases_they_have_a_part_in(engine):
    # Alice's application, reviewed by reviewer_panel (then a reviewer).
    application = start_application(engine, "alice")
    do(engine, application, "submit_application")
    do(engine, application, "check_completeness")
    review = do(engine, application, "review_eligibility", "reviewer_panel")
    # Chen's application, its review claimed by reviewer_panel.
    claimed = start_application(engine, "chen")
    do(engine, claimed, "submit_application", "chen")
    do(engine, claimed, "check_completeness")
    engine.claim(ready_task(engine, claimed, "review_eligibility").id, "reviewer_panel")
    # Bob's certification, decided (DPO: written exam only), and the complaints officer's
    # appeal against it; Alice's complaint about her application.
    decided = start_application(engine, "bob", "DPO")
    drive_to_decision(engine, decided, "bob", has_practical=False)
    do(engine, decided, "decide_certification")
    appeal = engine.start_case("appeal", actor="complaints", links={"appeals": decided}).case_id
    complaint = engine.start_case(
        "complaint",
        actor="alice",
        person_id=person_id(engine, "alice"),
        data={"complaint_text": "Nobody answered my e-mails about the exam date."},
        links={"concerns": application},
    ).case_id
    # reviewer_panel is no longer a reviewer: they keep the cases they worked on, the review
    # they did also when it names no assignee (as a record imported from elsewhere may not).
    take_role(engine, "reviewer_panel", "reviewer")
    with engine.unit_of_work() as uow:
        uow.session.get(HumanTask, review.id).assignee_id = None

    expected = {
        # Their role's tasks: eligibility reviews, whoever did them.
        "reviewer": [decided, claimed, application],
        # The review they claimed, the one they did; not Bob's, reviewed by someone else.
        "reviewer_panel": [claimed, application],
        # Their role's task (the complaint's relevance), the appeal they started; not the
        # application the complaint is about, nor the certification appealed against.
        "complaints": [complaint, appeal],
        # Their own cases (an applicant's list, as the portal shows them).
        "alice": [complaint, application],
        "bob": [appeal, decided],
        "manager": [complaint, appeal, decided, claimed, application],
    }
    for username, cases in expected.items():
        assert listed(engine, username) == (cases, len(cases)), username
        assert by_the_rule(engine, username) == cases, username


def cases_in_every_state(engine) -> list[str]:
    """Cases in every state the demo users have a part in; the demo usernames."""
    for applicant, scheme in (("alice", "CWI"), ("bob", "DPO"), ("chen", "CWI")):
        case_id = start_application(engine, applicant, scheme)
        drive_to_decision(engine, case_id, applicant, has_practical=scheme == "CWI")
        start_application(engine, applicant, "DPO" if scheme == "CWI" else "CWI")
    do(engine, case_id, "decide_certification")
    engine.start_case("appeal", actor="clerk", links={"appeals": case_id})
    with engine.sessions() as session:
        return list(session.scalars(select(User.username).order_by(User.username)))


API_FILTERS = [{}, {"status": "running"}, {"process": "application"}, {"scheme": "DPO"}]


def test_staff_search_and_the_visibility_rule_select_the_same_cases(engine):
    # Each demo user is compared, with each filter, page by page, with what
    # `visible_cases_criteria` selects.
    usernames = cases_in_every_state(engine)
    searches = [*API_FILTERS, {"q": "chen"}, {"q": "alice applicant"}, {"certificate": "CWI"}]
    for username in usernames:
        for filters in searches:
            ids, total = listed(engine, username, **filters)
            assert ids == by_the_rule(engine, username, **filters), (username, filters)
            assert total == len(ids), (username, filters)


def test_the_apis_exact_count_and_pages_select_the_same_cases_as_the_rule(engine):
    # `/api/v1/cases` counts exactly and pages through `newest_visible_criteria`.
    usernames = cases_in_every_state(engine)
    for username in usernames:
        for filters in API_FILTERS:
            expected = by_the_rule(engine, username, **filters)
            with engine.sessions() as session:
                user = session.scalars(select(User).where(User.username == username)).one()
                wanted = CaseFilters(**filters)
                counted = count_visible(session, user, wanted)
                paged = [
                    case_id
                    for end in range(2, len(expected) + 3, 2)
                    for case_id in session.scalars(
                        select(Case.id)
                        .where(*newest_visible_criteria(user, wanted, end))
                        .order_by(Case.id.desc())
                        .limit(2)
                        .offset(end - 2)
                    )
                ]
            assert (counted, paged) == (len(expected), expected), (username, filters)


def test_the_export_lists_the_newest_cases_the_rule_selects(engine):
    # `/cases.csv` reads the newest cases of each way, up to its limit.
    usernames = cases_in_every_state(engine)
    for username in usernames:
        for filters in [*API_FILTERS, {"q": "chen"}, {"certificate": "CWI"}]:
            expected = by_the_rule(engine, username, **filters)
            with engine.sessions() as session:
                user = session.scalars(select(User).where(User.username == username)).one()
                wanted = CaseFilters(**filters)
                for limit in (1, 3, len(expected) + 1):
                    exported = [r.id for r in session.execute(newest_cases(user, wanted, limit))]
                    assert exported == expected[:limit], (username, filters, limit)


def test_a_staff_members_count_stops_at_its_limit_too(engine):
    started = [start_application(engine, "alice") for _ in range(3)]
    for case_id in started:
        do(engine, case_id, "submit_application")
    with engine.sessions() as session:
        clerk = session.scalars(select(User).where(User.username == "clerk")).one()
        capped = search_cases(session, clerk, CaseFilters(), per_page=1, count_limit=2)
        exact = search_cases(session, clerk, CaseFilters(), page=3, per_page=1, count_limit=3)
    assert (capped.total, capped.more, capped.has_next) == (2, True, True)
    assert [r.id for r in capped.rows] == [max(started)]
    assert (exact.total, exact.more, exact.has_next) == (3, False, False)
    assert [r.id for r in exact.rows] == [min(started)]
