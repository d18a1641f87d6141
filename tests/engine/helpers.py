"""Helpers for driving real cases through the Engine facade in tests.

Nothing here is mocked: every helper calls the public Engine API (or reads the real tables),
so a test that uses them exercises the same paths as the web app and the CLI.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import func, select, text

from engine import Engine
from engine.audit import VerifyResult, verify_chain
from engine.models import AuditEvent, Case, Certificate, HumanTask
from engine.simulation import HAPPY_PATH, valid_form_data

T = TypeVar("T")

# Who does each step in the helpers' default story.
DEFAULT_PERFORMERS: dict[str, str] = {
    "submit_application": "alice",
    "complete_application": "alice",
    "provide_evidence": "alice",
    "check_completeness": "clerk",
    "review_eligibility": "reviewer",
    "schedule_assessment": "clerk",
    "assign_examiner": "clerk",
    "administer_exam": "invigilator",
    "score_written": "examiner",
    "score_practical": "examiner",
    "review_file": "reviewer",
    "decide_certification": "decider",
}


def form_data(engine: Engine, form: str, **overrides: Any) -> dict[str, Any]:
    """Valid data for `form` on the happy path, with `overrides` applied."""
    values = dict(HAPPY_PATH.get(form, {}))
    values.update(overrides)
    return valid_form_data(engine.forms.get(form).schema, values)


def ready_spec_ids(engine: Engine, case_id: int) -> list[str]:
    return sorted(t.task_spec_id for t in engine.ready_tasks(case_id))


def ready_task(engine: Engine, case_id: int, spec_id: str) -> HumanTask:
    """The single ready task of `case_id` for BPMN element `spec_id`."""
    found = [t for t in engine.ready_tasks(case_id) if t.task_spec_id == spec_id]
    assert len(found) == 1, (
        f"expected one ready {spec_id!r} task, ready tasks are {ready_spec_ids(engine, case_id)}"
    )
    return found[0]


def do(
    engine: Engine, case_id: int, spec_id: str, username: str | None = None, **overrides: Any
) -> HumanTask:
    """Complete the ready `spec_id` task of the case with valid (happy-path) form data."""
    task = ready_task(engine, case_id, spec_id)
    data = form_data(engine, task.form, **overrides) if task.form else {}
    return engine.complete(task.id, username or DEFAULT_PERFORMERS[spec_id], data)


def person_id(engine: Engine, username: str) -> int:
    pid = engine.user(username).person_id
    assert pid is not None, f"{username} has no person record"
    return pid


def start_application(engine: Engine, applicant: str = "alice", scheme: str = "CWI") -> int:
    started = engine.start_case(
        "application", actor=applicant, person_id=person_id(engine, applicant), scheme_code=scheme
    )
    assert started.status == "running"
    return started.case_id


def drive_to_scheduling(engine: Engine, case_id: int, applicant: str = "alice") -> None:
    """submit -> complete -> eligible: stops with schedule_assessment ready."""
    do(engine, case_id, "submit_application", applicant)
    do(engine, case_id, "check_completeness")
    do(engine, case_id, "review_eligibility")


def drive_to_scoring(
    engine: Engine, case_id: int, applicant: str = "alice", examiner: str = "examiner"
) -> None:
    """... -> scheduled -> examiner assigned -> exam administered: score tasks ready."""
    drive_to_scheduling(engine, case_id, applicant)
    do(engine, case_id, "schedule_assessment")
    do(engine, case_id, "assign_examiner", examiner=examiner)
    do(engine, case_id, "administer_exam")


def drive_to_decision(
    engine: Engine,
    case_id: int,
    applicant: str = "alice",
    examiner: str = "examiner",
    has_practical: bool = True,
) -> None:
    """... -> scored (passing) -> file reviewed: decide_certification ready."""
    drive_to_scoring(engine, case_id, applicant, examiner)
    do(engine, case_id, "score_written", examiner)
    if has_practical:
        do(engine, case_id, "score_practical", examiner)
    do(engine, case_id, "review_file")


def events(
    engine: Engine,
    *,
    case_id: int | None = None,
    action: str | None = None,
    task_id: int | None = None,
) -> list[AuditEvent]:
    with engine.sessions() as session:
        query = select(AuditEvent).order_by(AuditEvent.seq)
        if case_id is not None:
            query = query.where(AuditEvent.case_id == case_id)
        if action is not None:
            query = query.where(AuditEvent.action == action)
        if task_id is not None:
            query = query.where(AuditEvent.task_id == task_id)
        return list(session.scalars(query))


def event_count(engine: Engine) -> int:
    with engine.sessions() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def verify(engine: Engine) -> VerifyResult:
    with engine.sessions() as session:
        return verify_chain(session)


def certificates(engine: Engine, case_id: int) -> list[Certificate]:
    with engine.sessions() as session:
        return list(session.scalars(select(Certificate).where(Certificate.case_id == case_id)))


def lock_version(engine: Engine, case_id: int) -> int:
    with engine.sessions() as session:
        return session.scalar(select(Case.lock_version).where(Case.id == case_id))


def task_row(engine: Engine, task_id: int) -> HumanTask:
    with engine.sessions() as session:
        row = session.get(HumanTask, task_id)
        assert row is not None
        return row


def task_rows(engine: Engine, case_id: int, spec_id: str) -> list[HumanTask]:
    with engine.sessions() as session:
        return list(
            session.scalars(
                select(HumanTask)
                .where(HumanTask.case_id == case_id, HumanTask.task_spec_id == spec_id)
                .order_by(HumanTask.id)
            )
        )


def renew_commitments(engine) -> None:
    """Every staff member signs the commitment again as of the engine clock (after moving it
    past the commitments' expiry)."""
    from engine.demo import STAFF
    from engine.impartiality.register import sign_commitment
    from engine.models import User as UserModel

    with engine.unit_of_work() as uow:
        admin = uow.session.scalars(select(UserModel).where(UserModel.username == "admin")).one()
        for username, *_ in STAFF:
            staff = uow.session.scalars(
                select(UserModel).where(UserModel.username == username)
            ).one()
            sign_commitment(uow, admin, staff)


def cases_waiting_for_completeness_check(engine: Engine, count: int, tag: str) -> list[dict]:
    """`count` new applicants' cases, each waiting for the clerk's completeness check: the
    task id and valid form data for each (load tests complete them through the API)."""
    ready = []
    for n in range(count):
        applicant = engine.register_applicant(
            "Load", f"Candidate {tag}-{n}", f"load-{tag}-{n}@example.invalid", None
        )
        case_id = engine.start_case(
            "application",
            actor=applicant.username,
            person_id=applicant.person_id,
            scheme_code="CWI",
        ).case_id
        [submit] = engine.ready_tasks(case_id)
        engine.complete(submit.id, applicant.username, form_data(engine, submit.form))
        [check] = engine.ready_tasks(case_id)
        ready.append({"id": check.id, "data": form_data(engine, check.form)})
    return ready


def same_database_url(kind: str, sql) -> str:
    """The URL another process or engine uses to reach the same database (the PostgreSQL
    test schema travels as the connection's search_path)."""
    from tests.conftest import PG_URL

    if kind == "sqlite":
        return sql.url.render_as_string(hide_password=False)
    with sql.connect() as conn:
        schema = conn.execute(text("select current_schema()")).scalar_one()
    return f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"


def cpu_seconds_of(call: Callable[[], T]) -> tuple[T, float]:
    """`call()`'s result and the CPU seconds this process spent on it.

    CPU time, not wall time: CI shares two cores among test workers, a browser and the
    database, and a stalled process is not a slow function. The cyclic collector is paused
    for the call so that garbage other tests left behind is not charged to it.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        started = time.process_time()
        result = call()
        return result, time.process_time() - started
    finally:
        if collecting:
            gc.enable()
