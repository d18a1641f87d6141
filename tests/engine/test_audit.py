"""The hash-chained audit trail: what each step writes, and that tampering is detected."""

from __future__ import annotations

import json
from datetime import datetime
from itertools import pairwise

import pytest
from sqlalchemy import text

from engine import Engine, PermissionDenied
from engine.audit import EVENTS_PER_STATEMENT, _content, event_hash
from engine.db import make_engine
from tests.engine.helpers import (
    DEFAULT_PERFORMERS,
    do,
    drive_to_decision,
    events,
    form_data,
    ready_task,
    same_database_url,
    start_application,
    verify,
)
from tests.engine.test_row_writes import StatementLog


@pytest.fixture
def finished_case(engine):
    case_id = start_application(engine)
    drive_to_decision(engine, case_id)
    do(engine, case_id, "decide_certification")
    assert engine.case(case_id).status == "completed"
    return case_id


def execute(engine, sql: str, **params) -> int:
    with engine.db.begin() as conn:
        return conn.execute(text(sql), params).rowcount


def tamper_after(engine, seq: int, value: dict) -> None:
    cast = "CAST(:after AS JSON)" if engine.db.dialect.name == "postgresql" else ":after"
    assert (
        execute(
            engine,
            f"UPDATE audit_events SET after = {cast} WHERE seq = :seq",
            after=json.dumps(value),
            seq=seq,
        )
        == 1
    )


def test_audit_chain_of_a_finished_case_verifies(engine, finished_case):
    result = verify(engine)

    assert result.ok, result.reason
    assert result.first_bad_seq is None
    assert result.events_checked == len(events(engine))
    seqs = [e.seq for e in events(engine)]
    assert seqs == list(range(1, len(seqs) + 1))


def test_every_completion_records_task_completed_with_the_actor_and_data(engine, finished_case):
    completed = events(engine, case_id=finished_case, action="task_completed")

    steps = [e.after["task"] for e in completed]
    assert steps == [
        "submit_application",
        "check_completeness",
        "review_eligibility",
        "schedule_assessment",
        "assign_examiner",
        "administer_exam",
        "score_written",
        "score_practical",
        "review_file",
        "decide_certification",
    ]
    for event in completed:
        assert event.actor == DEFAULT_PERFORMERS[event.after["task"]]
        assert event.task_id is not None
        assert event.after["data"]
    decision = completed[-1]
    assert decision.actor == "decider"
    assert decision.after["data"]["certification_decision"] == "grant"


def test_case_lifecycle_events_are_recorded_in_order(engine, finished_case):
    actions = [e.action for e in events(engine, case_id=finished_case)]

    assert actions[0] == "case_started"
    assert actions[-1] == "case_completed"
    assert actions.index("certificate_issued") < actions.index("case_completed")
    assert actions.count("case_completed") == 1


def test_editing_an_event_message_is_detected_at_that_event(engine, finished_case):
    target = events(engine, case_id=finished_case, action="task_completed")[3]
    assert (
        execute(
            engine,
            "UPDATE audit_events SET message = :m WHERE seq = :seq",
            m="nothing happened here",
            seq=target.seq,
        )
        == 1
    )

    result = verify(engine)

    assert not result.ok
    assert result.first_bad_seq == target.seq
    assert "edited" in result.reason


def test_editing_an_event_payload_is_detected_at_that_event(engine, finished_case):
    decision = events(engine, case_id=finished_case, action="task_completed")[-1]
    forged = dict(decision.after)
    forged["data"] = {**forged["data"], "certification_decision": "refuse"}
    tamper_after(engine, decision.seq, forged)

    result = verify(engine)

    assert not result.ok
    assert result.first_bad_seq == decision.seq


def test_editing_the_actor_is_detected(engine, finished_case):
    target = events(engine, case_id=finished_case, action="task_completed")[0]
    assert (
        execute(engine, "UPDATE audit_events SET actor = 'bob' WHERE seq = :seq", seq=target.seq)
        == 1
    )

    result = verify(engine)
    assert not result.ok
    assert result.first_bad_seq == target.seq


def test_rewriting_an_event_with_a_recomputed_own_hash_breaks_the_next_link(engine, finished_case):
    target = events(engine, case_id=finished_case, action="task_completed")[2]
    target.message = "forged"
    new_hash = event_hash(target.prev_hash, _content(target))
    execute(
        engine,
        "UPDATE audit_events SET message = 'forged', hash = :h WHERE seq = :seq",
        h=new_hash,
        seq=target.seq,
    )

    result = verify(engine)

    assert not result.ok
    assert result.first_bad_seq == target.seq + 1


def test_deleting_the_last_event_is_detected(engine, finished_case):
    last = events(engine)[-1]
    assert execute(engine, "DELETE FROM audit_events WHERE seq = :seq", seq=last.seq) == 1

    result = verify(engine)

    assert not result.ok
    assert result.first_bad_seq == last.seq
    assert "deleted" in result.reason


def test_deleting_an_event_in_the_middle_is_detected_at_the_gap(engine, finished_case):
    middle = events(engine)[len(events(engine)) // 2]
    assert execute(engine, "DELETE FROM audit_events WHERE seq = :seq", seq=middle.seq) == 1

    result = verify(engine)

    assert not result.ok
    assert result.first_bad_seq == middle.seq + 1


def test_refused_actions_write_no_audit_events(engine):
    case_id = start_application(engine)
    task = ready_task(engine, case_id, "submit_application")
    before = len(events(engine))

    with pytest.raises(PermissionDenied):
        engine.complete(task.id, "bob", form_data(engine, "application"))

    assert len(events(engine)) == before
    assert verify(engine).ok


def test_audit_events_are_stored_with_the_clock_time(engine, clock):
    clock.set(datetime(2026, 5, 17, 8, 15, 30, 123456))
    case_id = start_application(engine)

    [started] = events(engine, case_id=case_id, action="case_started")
    assert started.at == datetime(2026, 5, 17, 8, 15, 30, 123456)
    assert verify(engine).ok


def test_a_unit_of_work_writing_more_events_than_one_statement_holds_chains_them_all(engine, clock):
    before = verify(engine).events_checked
    count = 2 * EVENTS_PER_STATEMENT + 3

    with engine.unit_of_work() as uow:
        for n in range(count):
            uow.audit.record(clock.now(), "admin", "bulk_note", f"note {n}", after={"n": n})

    result = verify(engine)
    assert result.ok, result.reason
    assert result.events_checked == before + count
    written = events(engine, action="bulk_note")
    assert [e.after["n"] for e in written] == list(range(count))


def test_events_with_awkward_content_are_stored_as_recorded_and_verify(engine, clock):
    afters = [
        {
            "text": 'quotes " and \\ backslashes',
            "signs": "✓ é 漢字",
            "z": {"b": 1, "a": [None, 1.5]},
        },
        {"empty": {}, "list": [], "big": 2**53},
        None,
    ]
    with engine.unit_of_work() as uow:
        for n, after in enumerate(afters):
            uow.audit.record(
                clock.now(), "admin", "odd_note", 'a "quoted" ✓\nline', before={"n": n}, after=after
            )

    result = verify(engine)
    assert result.ok, result.reason
    written = events(engine, action="odd_note")
    assert [e.after for e in written] == afters
    for event in written:
        assert event.hash == event_hash(event.prev_hash, _content(event))


def note(engine: Engine, text: str) -> None:
    with engine.unit_of_work() as uow:
        uow.audit.record(uow.now, "admin", "interleaved_note", text, after={"text": text})


def test_two_engines_appending_in_turn_chain_onto_each_others_events(database, engine, clock):
    """Each engine (a worker process) expects the head where it last left it; when the other
    moved it meanwhile, its events still follow the other's, and on PostgreSQL that costs
    one statement more than an append onto the expected head."""
    kind, sql = database
    other_sql = make_engine(same_database_url(kind, sql))
    writers = {"engine": engine, "other": Engine(sql_engine=other_sql, clock=clock)}
    logs = {"engine": StatementLog(sql), "other": StatementLog(other_sql)}
    order = ["engine", "engine", "engine", "other", "engine", "other", "other", "engine"]
    head_statements = []
    try:
        for n, writer in enumerate(order):
            log = logs[writer]
            log.statements.clear()
            log.recording = True
            note(writers[writer], f"{n} by {writer}")
            log.recording = False
            head_statements.append(len([s for s in log.statements if "audit_chain_head" in s]))
    finally:
        other_sql.dispose()

    result = verify(engine)
    assert result.ok, result.reason
    written = events(engine, action="interleaved_note")
    assert [e.message for e in written] == [f"{n} by {w}" for n, w in enumerate(order)]
    assert all(b.prev_hash == a.hash and b.seq == a.seq + 1 for a, b in pairwise(written))
    if kind == "postgresql":
        # Each engine's first append finds no head of its own and locks it first; then
        # engine appends onto its own head twice, other onto engine's (a miss), engine
        # onto other's (a miss), other onto engine's (a miss) and its own, engine onto other's.
        assert head_statements == [2, 1, 1, 2, 2, 2, 1, 2]


def test_identical_events_from_two_engines_onto_the_same_head_are_both_kept(
    database, engine, clock
):
    """Two workers record the same event at the same instant (say, the same job failing as
    of the same `--now`) onto the head one of them last left: chained onto that head, the
    second worker's events hash exactly like the first's, so finding the head at its own new
    head must not pass for having written it. Both events are kept, one after the other."""
    kind, sql = database
    other_sql = make_engine(same_database_url(kind, sql))
    other = Engine(sql_engine=other_sql, clock=clock)
    try:
        note(engine, "setup")  # engine now expects this head
        note(other, "the same event")  # chained onto engine's head by the other process
        note(engine, "the same event")  # chained onto the same head: the same hash
    finally:
        other_sql.dispose()

    result = verify(engine)
    assert result.ok, result.reason
    written = events(engine, action="interleaved_note")
    assert [e.message for e in written] == ["setup", "the same event", "the same event"]
    assert [e.seq - written[0].seq for e in written] == [0, 1, 2]


def test_an_append_after_the_trail_was_emptied_under_a_running_process_starts_a_new_chain(engine):
    """The head this process expects is gone (say, the database was emptied and restored
    from an empty backup while it ran): the append finds no head row and starts the chain."""
    note(engine, "before")  # this process now expects the head it moved
    execute(engine, "DELETE FROM audit_events")
    execute(engine, "DELETE FROM audit_chain_head")
    note(engine, "after")
    result = verify(engine)
    assert result.ok, result.reason
    assert [(e.seq, e.message) for e in events(engine)] == [(1, "after")]
