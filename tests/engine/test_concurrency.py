"""Races between users acting on the same case at the same moment (real threads, real DB).

On SQLite the engine's BEGIN IMMEDIATE serialises writers, so the loser sees the task
already completed; on PostgreSQL the loser trips the optimistic lock. Either way exactly one
wins, the other gets ConflictError, and the audit chain stays intact.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from engine import ConflictError, PermissionDenied
from engine.cases import claim_task
from engine.models import CertificateSequence, HumanTask, User
from tests.engine.helpers import (
    certificates,
    do,
    drive_to_decision,
    drive_to_scoring,
    events,
    form_data,
    ready_spec_ids,
    ready_task,
    renew_commitments,
    start_application,
    task_row,
    verify,
)

pytestmark = pytest.mark.serial


def race(*actions: Callable[[], Any]) -> list[Any]:
    """Run `actions` in threads released together; each result is a value or the exception."""
    barrier = threading.Barrier(len(actions))
    results: list[Any] = [None] * len(actions)

    def run(index: int, action: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[index] = action()
        except BaseException as exc:  # noqa: BLE001 - the test inspects whatever happened
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a racing thread hung"
    return results


def describe(results: list[Any]) -> str:
    """The racing results, with the traceback of any unexpected error (for the failure message)."""
    lines = []
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, ConflictError):
            lines.append("".join(traceback.format_exception(result)))
        else:
            lines.append(repr(result))
    return "\n".join(lines)


def winners_and_losers(results: list[Any]) -> tuple[list[Any], list[BaseException]]:
    winners = [r for r in results if isinstance(r, HumanTask)]
    losers = [r for r in results if isinstance(r, BaseException)]
    return winners, losers


def race_to_complete_check(engine, applicant: str = "alice") -> tuple[int, HumanTask, list[Any]]:
    case_id = start_application(engine, applicant)
    do(engine, case_id, "submit_application", applicant)
    task = ready_task(engine, case_id, "check_completeness")
    data = form_data(engine, "completeness_check")
    results = race(
        lambda: engine.complete(task.id, "clerk", data),
        lambda: engine.complete(task.id, "clerk", data),
    )
    return case_id, task, results


def assert_exactly_one_completion(
    engine, case_id: int, task: HumanTask, results: list[Any]
) -> None:
    winners, losers = winners_and_losers(results)
    assert len(winners) == 1, results
    assert len(losers) == 1, results
    assert isinstance(losers[0], ConflictError), describe(results)
    completed = events(engine, action="task_completed", task_id=task.id)
    assert len(completed) == 1
    assert task_row(engine, task.id).status == "completed"
    assert ready_spec_ids(engine, case_id) == ["review_eligibility"]


def test_two_simultaneous_completions_of_one_task_let_exactly_one_win(engine):
    case_id, task, results = race_to_complete_check(engine)

    assert_exactly_one_completion(engine, case_id, task, results)
    assert verify(engine).ok


def test_simultaneous_completion_race_is_decided_cleanly_every_time(engine):
    for _ in range(20):
        case_id, task, results = race_to_complete_check(engine)
        assert_exactly_one_completion(engine, case_id, task, results)

    result = verify(engine)
    assert result.ok, result.reason
    assert len(events(engine, action="task_completed")) == 40  # 20 submits + 20 checks


def test_two_users_racing_on_a_decision_issue_one_certificate(engine):
    case_id = start_application(engine)
    drive_to_decision(engine, case_id)
    task = ready_task(engine, case_id, "decide_certification")
    data = form_data(engine, "certification_decision")

    results = race(
        lambda: engine.complete(task.id, "decider", data),
        lambda: engine.complete(task.id, "decider2", data),
    )

    winners, losers = winners_and_losers(results)
    assert len(winners) == 1 and len(losers) == 1, results
    assert isinstance(losers[0], ConflictError), describe(results)
    assert [c.number for c in certificates(engine, case_id)] == ["CWI-2026-000001"]
    assert len(events(engine, case_id=case_id, action="certificate_issued")) == 1
    assert engine.case(case_id).status == "completed"
    assert verify(engine).ok


def test_racing_the_two_parallel_score_tasks_never_loses_a_branch(engine):
    """Each examiner's submission either lands or gets ConflictError and is resubmitted (never
    a raw database error); the join must see both scores. Repeated to catch both orders."""

    def submit_with_retry(task: HumanTask) -> HumanTask:
        for _ in range(5):
            try:
                return engine.complete(task.id, "examiner", form_data(engine, task.form))
            except ConflictError:
                continue
        raise AssertionError(f"{task.task_spec_id} never got through")

    for _ in range(10):
        case_id = start_application(engine)
        drive_to_scoring(engine, case_id)
        written = ready_task(engine, case_id, "score_written")
        practical = ready_task(engine, case_id, "score_practical")

        results = race(partial(submit_with_retry, written), partial(submit_with_retry, practical))

        assert all(isinstance(r, HumanTask) for r in results), describe(results)
        assert ready_spec_ids(engine, case_id) == ["review_file"]
        data = engine.case_data(case_id)
        assert data["written_score"] == 85 and data["practical_score"] == 80
        assert data["exam_passed"] is True
        assert len(events(engine, case_id=case_id, action="task_completed")) == 8
    assert verify(engine).ok


def test_parallel_scores_queue_on_the_case_lock_and_both_land(engine):
    """Deterministic interleaving of the race above: while another transaction holds the
    case row, both score submissions wait for it; released, they run one after the other,
    each on the state the previous one committed, so both land without a conflict and
    without a unique-constraint error from re-creating the other branch's task row."""
    case_id = start_application(engine)
    drive_to_scoring(engine, case_id)
    written = ready_task(engine, case_id, "score_written")
    practical = ready_task(engine, case_id, "score_practical")

    outcome: list[Any] = []
    with engine.db.connect() as blocker:
        blocker.begin()
        if engine.db.dialect.name == "postgresql":
            blocker.execute(text("SELECT id FROM cases WHERE id = :id FOR UPDATE"), {"id": case_id})
        else:
            blocker.execute(text("UPDATE cases SET id = id WHERE id = :id"), {"id": case_id})
        racer = threading.Thread(
            target=lambda: outcome.extend(
                race(
                    lambda: engine.complete(
                        written.id, "examiner", form_data(engine, "written_score")
                    ),
                    lambda: engine.complete(
                        practical.id, "examiner", form_data(engine, "practical_score")
                    ),
                )
            )
        )
        racer.start()
        try:
            _wait_until_waiting_for_locks(engine, waiters=2)
        finally:
            blocker.rollback()
        racer.join(timeout=60)
    assert not racer.is_alive()

    assert all(isinstance(r, HumanTask) for r in outcome), describe(outcome)
    assert ready_spec_ids(engine, case_id) == ["review_file"]
    assert engine.case_data(case_id)["exam_passed"] is True
    assert verify(engine).ok


def test_two_simultaneous_claims_give_the_task_to_exactly_one_user(engine):
    case_id = start_application(engine)
    do(engine, case_id, "submit_application")
    do(engine, case_id, "check_completeness")
    task = ready_task(engine, case_id, "review_eligibility")

    results = race(
        lambda: engine.claim(task.id, "reviewer"), lambda: engine.claim(task.id, "reviewer_panel")
    )

    winners, losers = winners_and_losers(results)
    assert len(winners) == 1 and len(losers) == 1, results
    assert isinstance(losers[0], ConflictError), describe(results)
    assert task_row(engine, task.id).assignee_id == winners[0].assignee_id
    assert len(events(engine, action="task_claimed", task_id=task.id)) == 1
    assert verify(engine).ok


def cases_at_decision(engine, *applicants: str) -> list[HumanTask]:
    tasks = []
    for applicant in applicants:
        case_id = start_application(engine, applicant)
        drive_to_decision(engine, case_id, applicant)
        tasks.append(ready_task(engine, case_id, "decide_certification"))
    return tasks


def test_grants_racing_in_two_cases_both_issue_distinct_certificate_numbers(engine):
    [first] = cases_at_decision(engine, "chen")
    engine.complete(first.id, "decider", form_data(engine, "certification_decision"))
    alice_task, bob_task = cases_at_decision(engine, "alice", "bob")
    data = form_data(engine, "certification_decision")

    results = race(
        lambda: engine.complete(alice_task.id, "decider", data),
        lambda: engine.complete(bob_task.id, "decider2", data),
    )

    assert all(isinstance(r, HumanTask) for r in results), describe(results)
    numbers = sorted(
        c.number for t in (alice_task, bob_task) for c in certificates(engine, t.case_id)
    )
    assert numbers == ["CWI-2026-000002", "CWI-2026-000003"]
    assert verify(engine).ok


def _wait_until_waiting_for_locks(engine, waiters: int) -> None:
    """Wait until `waiters` sessions wait for a lock (PostgreSQL); SQLite queues writers on
    BEGIN IMMEDIATE, so a short pause is enough there."""
    if engine.db.dialect.name != "postgresql":
        time.sleep(0.5)
        return
    deadline = time.monotonic() + 10
    with engine.db.connect() as probe:
        while time.monotonic() < deadline:
            waiting = probe.execute(
                text("SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted")
            ).scalar_one()
            probe.rollback()
            if waiting >= waiters:
                return
            time.sleep(0.02)
    raise AssertionError(f"fewer than {waiters} sessions ever waited for the case lock")


def _wait_until_blocked_behind(engine, blocker, waiters: int) -> None:
    """Wait until `waiters` other transactions wait on `blocker`'s transaction (PostgreSQL);
    on SQLite, BEGIN IMMEDIATE queues them, so a short pause is enough."""
    if engine.db.dialect.name != "postgresql":
        time.sleep(0.3)
        return
    xid = blocker.execute(
        text(
            "SELECT transactionid::text FROM pg_locks WHERE pid = pg_backend_pid() "
            "AND locktype = 'transactionid' AND granted"
        )
    ).scalar_one()
    deadline = time.monotonic() + 10
    with engine.db.connect() as probe:
        while time.monotonic() < deadline:
            waiting = probe.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted "
                    "AND locktype = 'transactionid' AND transactionid::text = :xid"
                ),
                {"xid": xid},
            ).scalar_one()
            probe.rollback()
            if waiting >= waiters:
                time.sleep(0.2)  # let the other grant reach its own blocking point too
                return
            time.sleep(0.02)
    raise AssertionError("the racing grants never reached the certificate serial")


def test_a_completion_queued_behind_a_claim_of_its_task_leaves_the_task_to_the_claimer(engine):
    """One decision maker's claim holds the case's lock, the task already theirs, when another
    decision maker's completion of that task asks for the lock. A claim changes the task but
    not the case (its version stays), so only a read of the task made after the lock was
    granted sees it: the completion must not complete the task as if nobody held it. It is
    refused or told to reload, and the claim stands."""
    [task] = cases_at_decision(engine, "alice")
    data = form_data(engine, "certification_decision")
    claimed, release = threading.Event(), threading.Event()

    def claim_and_hold() -> None:
        with engine.unit_of_work() as uow:
            decider = uow.session.scalars(select(User).where(User.username == "decider")).one()
            claim_task(uow, task.id, decider)
            claimed.set()
            release.wait(timeout=30)

    claimer = threading.Thread(target=claim_and_hold)
    claimer.start()
    outcome: list[Any] = []
    try:
        assert claimed.wait(timeout=30)
        completer = threading.Thread(
            target=lambda: outcome.extend(race(lambda: engine.complete(task.id, "decider2", data)))
        )
        completer.start()
        _wait_until_waiting_for_locks(engine, waiters=1)
    finally:
        release.set()
        claimer.join(timeout=30)
    completer.join(timeout=30)

    [result] = outcome
    assert isinstance(result, (ConflictError, PermissionDenied)), describe(outcome)
    row = task_row(engine, task.id)
    assert row.status == "ready" and row.assignee_id == engine.user("decider").id
    assert verify(engine).ok


def test_first_certificate_of_a_year_is_issued_even_when_two_grants_reach_it_together(
    engine, clock
):
    """Two grants in different cases both draw the first serial of a new year while a third
    grant holding that serial row is still in flight (and then rolls back). Each must end
    with a certificate, or at worst ConflictError - never a raw database error."""
    clock.set(datetime(2031, 1, 5, 9, 0))
    renew_commitments(engine)
    alice_task, bob_task = cases_at_decision(engine, "alice", "bob")
    data = form_data(engine, "certification_decision")

    with engine.db.connect() as blocker:
        blocker.begin()
        blocker.execute(
            insert(CertificateSequence).values(scheme_code="CWI", year=2031, next_serial=1)
        )
        outcome: list[Any] = []
        racer = threading.Thread(
            target=lambda: outcome.extend(
                race(
                    lambda: engine.complete(alice_task.id, "decider", data),
                    lambda: engine.complete(bob_task.id, "decider2", data),
                )
            )
        )
        racer.start()
        try:
            _wait_until_blocked_behind(engine, blocker, waiters=1)
        finally:
            blocker.rollback()
            racer.join(timeout=60)
    assert not racer.is_alive()

    for result in outcome:
        assert isinstance(result, (HumanTask, ConflictError)), describe(outcome)
    numbers = [c.number for t in (alice_task, bob_task) for c in certificates(engine, t.case_id)]
    assert len(numbers) == len(set(numbers))
    assert "CWI-2031-000001" in numbers
    assert all(isinstance(r, HumanTask) for r in outcome), outcome
    assert sorted(numbers) == ["CWI-2031-000001", "CWI-2031-000002"]
    assert verify(engine).ok


def test_completing_a_task_again_says_who_already_completed_it(engine):
    case_id = start_application(engine)
    do(engine, case_id, "submit_application")
    task = ready_task(engine, case_id, "check_completeness")
    engine.complete(task.id, "clerk", form_data(engine, "completeness_check"))

    with pytest.raises(ConflictError, match="already completed by Clara Clerk") as caught:
        engine.complete(task.id, "clerk", form_data(engine, "completeness_check"))

    assert "02 Mar 2026 09:00" in caught.value.message
    assert len(events(engine, action="task_completed", task_id=task.id)) == 1


def test_claiming_a_completed_task_is_a_conflict(engine):
    case_id = start_application(engine)
    task = ready_task(engine, case_id, "submit_application")
    engine.complete(task.id, "alice", form_data(engine, "application"))

    with pytest.raises(ConflictError, match="already completed by Alice Applicant"):
        engine.claim(task.id, "alice")
