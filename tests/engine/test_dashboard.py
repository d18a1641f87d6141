"""The manager's dashboard queries: overdue and soon-due steps, filters, sorting, counts,
overdue per week and expiring certificates, on a real engine and database."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

from engine import dashboard as board
from engine.models import Case, Certificate, HumanTask, ModelVersion, Scheme
from tests.conftest import START
from tests.engine.helpers import do, person_id, ready_task, start_application

DAY = timedelta(days=1)


def selection(engine, **filters) -> list[board.StepRow]:
    with engine.sessions() as session:
        return board.step_page(
            session, engine.clock.now(), board.StepFilters(**filters), per_page=100
        )


def counts(engine, **filters) -> board.StepCounts:
    with engine.sessions() as session:
        return board.step_counts(session, engine.clock.now(), board.StepFilters(**filters))


@pytest.fixture
def two_cases(engine, clock):
    """Alice's CWI case at the clerk's completeness check (due START + 5 days) and Bob's
    DPO case at his own application form (due START + 30 days)."""
    alice = start_application(engine, "alice", "CWI")
    do(engine, alice, "submit_application", "alice")
    bob = start_application(engine, "bob", "DPO")
    return alice, bob


def test_a_step_is_due_soon_then_overdue_as_the_clock_passes_its_due_time(engine, clock):
    case_id = start_application(engine, "alice", "CWI")
    task = ready_task(engine, case_id, "submit_application")
    assert task.due_at == START + 30 * DAY

    assert selection(engine) == []

    clock.set(START + 25 * DAY)
    [soon] = selection(engine)
    assert (soon.task_id, soon.overdue, soon.days_overdue) == (task.id, False, -5)
    assert selection(engine, window="overdue") == []
    assert [r.task_id for r in selection(engine, window="due_soon")] == [task.id]
    assert selection(engine, window="due_soon", soon_days=4) == []

    clock.set(START + 30 * DAY + timedelta(hours=1))
    [late] = selection(engine, window="overdue")
    assert (late.overdue, late.days_overdue) == (True, 0)
    assert selection(engine, window="due_soon") == []

    clock.set(START + 33 * DAY)
    with engine.sessions() as session:
        [step] = list(board.overdue_steps(session, clock.now()))
    assert step.days_overdue == 3
    assert step.as_report() == {
        "case_id": case_id,
        "process": "application",
        "task": "submit_application",
        "task_name": "Submit application",
        "assignee": None,
        "person": "Alice Applicant",
        "scheme": "CWI",
        "due_at": (START + 30 * DAY).isoformat(),
        "days_overdue": 3,
        "certificate": None,
        "certificate_expires_on": None,
    }


def test_completed_steps_are_never_listed(engine, clock):
    case_id = start_application(engine, "alice", "CWI")
    clock.set(START + 40 * DAY)
    assert len(selection(engine, window="overdue")) == 1
    do(engine, case_id, "submit_application", "alice")
    # The completeness check that followed is due in 5 days: due soon, not overdue.
    [row] = selection(engine)
    assert (row.task_spec_id, row.overdue, row.days_overdue) == ("check_completeness", False, -5)


def test_days_overdue_round_down_and_are_negative_while_not_yet_due():
    due = datetime(2026, 3, 10, 12, 0)
    assert board.days_overdue(due, due + timedelta(days=2, hours=23)) == 2
    assert board.days_overdue(due, due + timedelta(minutes=1)) == 0
    assert board.days_overdue(due, due - timedelta(hours=3)) == -1
    assert board.days_overdue(due, due - timedelta(days=6, hours=1)) == -7


def test_filters_narrow_the_selection(engine, clock, two_cases):
    alice, bob = two_cases
    clock.set(START + 31 * DAY)
    everything = selection(engine)
    assert [r.case_id for r in everything] == [alice, bob]
    assert [r.case_id for r in selection(engine, scheme="DPO")] == [bob]
    assert [r.case_id for r in selection(engine, task="check_completeness")] == [alice]
    assert [r.case_id for r in selection(engine, process="application")] == [alice, bob]
    assert selection(engine, process="surveillance") == []
    assert [r.case_id for r in selection(engine, assignee=board.UNASSIGNED)] == [alice, bob]
    assert selection(engine, assignee="clerk") == []

    engine.claim(ready_task(engine, alice, "check_completeness").id, "clerk")
    [claimed] = selection(engine, assignee="clerk")
    assert (claimed.case_id, claimed.assignee_username, claimed.assignee_name) == (
        alice,
        "clerk",
        "Clara Clerk",
    )
    assert [r.case_id for r in selection(engine, assignee=board.UNASSIGNED)] == [bob]


def test_most_overdue_comes_first_and_pages_do_not_overlap(engine, clock, two_cases):
    alice, bob = two_cases
    clock.set(START + 31 * DAY)
    now = clock.now()
    filters = board.StepFilters()
    with engine.sessions() as session:
        first = board.step_page(session, now, filters, per_page=1)
        second = board.step_page(session, now, filters, page=2, per_page=1)
        third = board.step_page(session, now, filters, page=3, per_page=1)
        latest_first = board.step_page(session, now, filters, sort="-overdue")
        by_person = board.step_page(session, now, filters, sort="person")
    assert [r.case_id for r in first + second] == [alice, bob]
    assert first[0].days_overdue == 26 and second[0].days_overdue == 1
    assert third == []
    assert [r.case_id for r in latest_first] == [bob, alice]
    # Applicant (Alice) before Builder (Bob).
    assert [r.case_id for r in by_person] == [alice, bob]


def test_counts_per_process_step_scheme_and_assignee(engine, clock, two_cases):
    alice, _bob = two_cases
    engine.claim(ready_task(engine, alice, "check_completeness").id, "clerk")
    clock.set(START + 25 * DAY)  # Alice's check is overdue, Bob's form due in 5 days
    found = counts(engine)
    assert (found.total, found.overdue, found.due_soon) == (2, 1, 1)
    assert [(t.key, t.total, t.overdue) for t in found.by_process] == [
        ("surveillance", 0, 0),
        ("recertification", 0, 0),
        ("application", 2, 1),
    ]
    assert {(t.key, t.label, t.overdue, t.due_soon) for t in found.by_step} == {
        ("check_completeness", "Check application completeness", 1, 0),
        ("submit_application", "Submit application", 0, 1),
    }
    assert [(t.key, t.total) for t in found.by_scheme] == [("CWI", 1), ("DPO", 1)]
    assert [(t.key, t.label, t.overdue) for t in found.by_assignee] == [
        (None, "Unassigned", 0),
        ("clerk", "Clara Clerk", 1),
    ]
    assert found.unassigned_overdue() == 0
    assert found.watched_overdue() == 0

    only_dpo = counts(engine, scheme="DPO")
    assert (only_dpo.total, [t.key for t in only_dpo.by_scheme]) == (1, ["DPO"])
    assert counts(engine, window="overdue").total == 1


def test_steps_of_surveillance_and_recertification_cases_are_watched(engine, clock):
    """Alice's certificate reaches its recertification window with a surveillance still to
    do: both cases' steps head the dashboard once overdue."""
    from engine.scheduler import run_jobs_until_idle
    from tests.engine.test_certificate_lifecycle import certify

    certify(engine, "alice", "CWI")
    clock.set(datetime(2028, 12, 3, 9, 0))
    run_jobs_until_idle(engine)
    clock.set(datetime(2029, 1, 3, 9, 0))
    # The jobs also opened the annual management review (none on record): its step is
    # overdue too, but not watched.
    everything = selection(engine, window="overdue")
    assert [(r.process, r.watched) for r in everything if r.process == "management_review"] == [
        ("management_review", False)
    ]
    rows = [r for r in everything if r.process != "management_review"]
    assert sorted((r.process, r.task_spec_id, r.watched) for r in rows) == [
        ("recertification", "submit_recertification_evidence", True),
        ("surveillance", "declare_continued_practice", True),
    ]
    found = counts(engine, window="overdue")
    assert [(t.key, t.overdue) for t in found.by_process] == [
        ("surveillance", 1),
        ("recertification", 1),
        ("management_review", 1),
    ]
    assert found.watched_overdue() == 2
    [recertification] = [r.case_id for r in rows if r.process == "recertification"]
    assert [r.case_id for r in selection(engine, process="recertification")] == [recertification]
    assert [r.certificate_number for r in rows] == [rows[0].certificate_number] * 2


def test_overdue_per_week_counts_late_completions_and_open_steps_by_due_week(
    engine, clock, two_cases
):
    alice, bob = two_cases
    # Alice's check (due Sat 7 March, ISO week 10) is completed three days late; the
    # eligibility review that follows (due 10 days later, 20 March, week 12) stays open.
    clock.set(START + 8 * DAY)
    do(engine, alice, "check_completeness")
    review = ready_task(engine, alice, "review_eligibility")
    assert review.due_at == START + 18 * DAY
    # Bob's own form (due Wed 1 April, week 14) is still open on Thursday 2 April.
    clock.set(START + 31 * DAY)
    with engine.sessions() as session:
        weeks = board.overdue_per_week(session, clock.now())
        dpo_weeks = board.overdue_per_week(session, clock.now(), board.StepFilters(scheme="DPO"))
    assert len(weeks) == 12
    assert (weeks[0].label, weeks[-1].label) == ("2026-W03", "2026-W14")
    assert weeks[-1].starts_on == date(2026, 3, 30)
    assert {w.label: w.overdue for w in weeks if w.overdue} == {
        "2026-W10": 1,
        "2026-W12": 1,
        "2026-W14": 1,
    }
    assert {w.label: w.overdue for w in dpo_weeks if w.overdue} == {"2026-W14": 1}


def test_a_step_completed_on_time_is_not_counted_as_overdue(engine, clock):
    case_id = start_application(engine, "alice", "CWI")
    clock.set(START + 29 * DAY)
    do(engine, case_id, "submit_application", "alice")
    clock.set(START + 31 * DAY)
    with engine.sessions() as session:
        weeks = board.overdue_per_week(session, clock.now())
    assert sum(w.overdue for w in weeks) == 0


def _certificate(session, person: int, number: str, expires_on: date, status: str = "active"):
    scheme = session.scalars(select(Scheme).where(Scheme.code == "CWI")).first()
    certificate = Certificate(
        number=number,
        person_id=person,
        scheme_id=scheme.id,
        scheme_code="CWI",
        scheme_version=scheme.version,
        scope=scheme.scope,
        issued_at=START,
        effective_on=START.date(),
        expires_on=expires_on,
        status=status,
    )
    session.add(certificate)
    session.flush()
    return certificate


def _case_about(session, certificate: Certificate, process: str, status: str) -> Case:
    model = session.scalars(select(ModelVersion).order_by(ModelVersion.id)).first()
    case = Case(
        process_id=process,
        model_version_id=model.id,
        subprocess_versions={},
        person_id=certificate.person_id,
        scheme_id=certificate.scheme_id,
        certificate_id=certificate.id,
        status=status,
        state="{}",
        started_at=START,
    )
    session.add(case)
    session.flush()
    return case


def test_expiring_certificates_within_30_60_and_90_days(engine):
    today = START.date()
    alice, bob, chen = (person_id(engine, u) for u in ("alice", "bob", "chen"))
    with engine.unit_of_work() as uow:
        s = uow.session
        soon = _certificate(s, alice, "CWI-T-1", today + 20 * DAY)
        _certificate(s, bob, "CWI-T-2", today + 45 * DAY, status="suspended")
        later = _certificate(s, chen, "CWI-T-3", today + 80 * DAY, status="reduced")
        _certificate(s, chen, "CWI-T-4", today + 120 * DAY)
        _certificate(s, bob, "CWI-T-5", today + 10 * DAY, status="withdrawn")
        _certificate(s, alice, "CWI-T-6", today - 1 * DAY, status="active")
        recertification = _case_about(s, later, "recertification", "running")
        _case_about(s, soon, "recertification", "completed")
        _case_about(s, soon, "surveillance", "running")
    with engine.sessions() as session:
        within_30 = board.expiring_certificates(session, today, 30)
        within_90 = board.expiring_certificates(session, today, 90)
        dpo_only = board.expiring_certificates(session, today, 90, scheme="DPO")
    assert [(c.days, c.total, c.without_recertification) for c in within_30.counts] == [
        (30, 1, 1),
        (60, 2, 2),
        (90, 3, 2),
    ]
    [first] = within_30.rows
    assert (first.number, first.holder, first.days_left, first.recertification_open) == (
        "CWI-T-1",
        "Alice Applicant",
        20,
        False,
    )
    assert [(c.number, c.status, c.recertification_case_id) for c in within_90.rows] == [
        ("CWI-T-1", "active", None),
        ("CWI-T-2", "suspended", None),
        ("CWI-T-3", "reduced", recertification.id),
    ]
    assert within_90.shown_total == 3
    assert dpo_only.rows == [] and dpo_only.shown_total == 0


def test_an_issued_certificate_shows_on_the_steps_of_its_cases(engine, clock):
    """A surveillance step carries the certificate's number and expiry."""
    alice = start_application(engine, "alice", "CWI")
    with engine.unit_of_work() as uow:
        certificate = _certificate(
            uow.session, person_id(engine, "alice"), "CWI-T-9", date(2029, 3, 1)
        )
        case = uow.session.get(Case, alice)
        case.process_id = "surveillance"
        case.certificate_id = certificate.id
    clock.set(START + 31 * DAY)
    [row] = selection(engine)
    assert (row.certificate_number, row.certificate_expires_on) == ("CWI-T-9", date(2029, 3, 1))


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"window": "late"}, "window"),
        ({"days": "0"}, "days"),
        ({"days": "91"}, "days"),
        ({"days": "seven"}, "days"),
        ({"page": "-1"}, "page"),
        ({"page": "abc"}, "page"),
        ({"page": "²"}, "page"),
        ({"per_page": "500"}, "per_page"),
        ({"sort": "random"}, "sort"),
        ({"horizon": "45"}, "horizon"),
        ({"task": "../etc"}, "task"),
        ({"process": "<script>"}, "process"),
        ({"assignee": "two words"}, "assignee"),
        ({"assignee": "x" * 201}, "assignee"),
        ({"scheme": "x" * 300}, "scheme"),
    ],
)
def test_a_filter_value_that_cannot_be_right_is_refused_naming_the_parameter(params, parameter):
    with pytest.raises(board.InvalidFilter) as refused:
        board.parse_query(params)
    assert refused.value.parameter == parameter
    assert f"'{parameter}'" in refused.value.message


def test_parse_query_reads_every_parameter():
    query = board.parse_query(
        {
            "process": "surveillance",
            "scheme": "CWI",
            "assignee": "unassigned",
            "task": "review_eligibility",
            "window": "overdue",
            "days": "14",
            "sort": "expiry",
            "page": "3",
            "per_page": "50",
            "horizon": "60",
        }
    )
    assert query == board.DashboardQuery(
        filters=board.StepFilters(
            process="surveillance",
            scheme="CWI",
            assignee="unassigned",
            task="review_eligibility",
            window="overdue",
            soon_days=14,
        ),
        sort="expiry",
        page=3,
        per_page=50,
        horizon=60,
    )
    assert board.parse_query({}) == board.DashboardQuery()


@pytest.mark.parametrize(
    ("filters", "parameter"),
    [
        (board.StepFilters(scheme="NOPE"), "scheme"),
        (board.StepFilters(process="no_such_process"), "process"),
        (board.StepFilters(assignee="nobody_here"), "assignee"),
    ],
)
def test_filters_naming_nothing_in_the_database_are_refused(engine, filters, parameter):
    with engine.sessions() as session:
        with pytest.raises(board.InvalidFilter) as refused:
            board.check_filters(session, filters)
    assert refused.value.parameter == parameter


def test_the_whole_dashboard_in_one_call(engine, clock, two_cases):
    clock.set(START + 31 * DAY)
    with engine.sessions() as session:
        found = board.dashboard(session, clock.now(), board.DashboardQuery(per_page=1))
        processes = board.process_choices(session)
    assert found.counts.total == 2 and found.pages == 2 and len(found.rows) == 1
    assert len(found.weeks) == board.CHART_WEEKS
    assert found.expiring.horizon == 30
    assert processes[:2] == ["surveillance", "recertification"]
    assert "application" in processes


def test_steps_of_errored_cases_stay_and_done_or_cancelled_steps_go(engine, clock):
    case_id = start_application(engine, "alice", "CWI")
    clock.set(START + 31 * DAY)
    assert len(selection(engine)) == 1
    with engine.unit_of_work() as uow:
        uow.session.get(Case, case_id).status = "errored"  # waiting for a retry
    assert len(selection(engine)) == 1
    with engine.unit_of_work() as uow:
        uow.session.get(Case, case_id).status = "running"
    do(engine, case_id, "submit_application", "alice")
    assert [r.task_spec_id for r in selection(engine, window="overdue")] == []
    with engine.unit_of_work() as uow:
        for task in uow.session.scalars(select(HumanTask).where(HumanTask.case_id == case_id)):
            if task.status == "ready":
                task.status = "cancelled"
    assert selection(engine) == []
