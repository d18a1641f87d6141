"""The Core writes of the completion path behave as the ORM's flush would: new rows get their
ids and defaults and stay usable in the session; an update writes exactly the changed
columns, moves the optimistic lock on, and refuses a row someone else changed."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from engine import ConflictError
from engine.models import Case, HumanTask, Person, User
from engine.row_writes import insert_new, update_changed
from tests.engine.helpers import do, lock_version, ready_task, start_application, task_row


def new_task(case: Case, uuid: str, name: str) -> HumanTask:
    return HumanTask(
        case_id=case.id,
        task_uuid=uuid,
        task_spec_id="extra_step",
        process_id=case.process_id,
        name=name,
        role="clerk",
        created_at=case.started_at,
    )


def test_inserted_rows_get_ids_and_defaults_and_stay_clean_in_the_session(engine):
    case_id = start_application(engine)
    with engine.unit_of_work() as uow:
        case = uow.session.get(Case, case_id)
        rows = [
            new_task(case, "00000000-0000-0000-0000-00000000000a", "First extra"),
            new_task(case, "00000000-0000-0000-0000-00000000000b", "Second extra"),
        ]
        insert_new(uow.session, rows)
        assert all(row.id is not None for row in rows)
        assert rows[0].id != rows[1].id
        assert not uow.session.dirty and not uow.session.new
        assert uow.session.get(HumanTask, rows[0].id) is rows[0]
        assert rows[0].status == "ready" and rows[0].priority == 0
        rows[1].priority = 5  # an ordinary ORM change afterwards is flushed as usual
        ids = [row.id for row in rows]
    with engine.sessions() as session:
        stored = {t.id: t for t in session.scalars(select(HumanTask).where(HumanTask.id.in_(ids)))}
    assert stored[ids[0]].name == "First extra" and stored[ids[0]].status == "ready"
    assert stored[ids[0]].candidates is None and stored[ids[0]].assignee_id is None
    assert stored[ids[1]].priority == 5


def test_update_writes_the_changed_columns_and_moves_the_version_on(engine):
    case_id = start_application(engine)
    before = lock_version(engine, case_id)
    with engine.unit_of_work() as uow:
        case = uow.session.get(Case, case_id)
        case.error_message = "noted"
        update_changed(uow.session, case, state=case.state)
        assert case.lock_version == before + 1
        assert not uow.session.is_modified(case)  # the commit writes nothing more
    assert lock_version(engine, case_id) == before + 1
    with engine.sessions() as session:
        assert session.get(Case, case_id).error_message == "noted"


def changed_meanwhile(engine, case_id: int) -> int:
    """Another unit of work changes the case; the version it had before."""
    read = lock_version(engine, case_id)
    with engine.unit_of_work() as other:
        update_changed(other.session, other.session.get(Case, case_id), error_message="meanwhile")
    return read


def as_first_read(uow, case_id: int, read: int) -> Case:
    case = uow.session.get(Case, case_id)
    set_committed_value(case, "lock_version", read)
    return case


def test_an_update_of_a_row_changed_meanwhile_is_refused(engine):
    case_id = start_application(engine)
    task = ready_task(engine, case_id, "submit_application")
    read = changed_meanwhile(engine, case_id)
    with pytest.raises(ConflictError), engine.unit_of_work() as uow:
        case = as_first_read(uow, case_id, read)
        with pytest.raises(StaleDataError):
            update_changed(uow.session, case, error_message="too late")
        raise StaleDataError("the unit of work ends a stale write in a conflict")
    with engine.sessions() as session:
        assert session.get(Case, case_id).error_message == "meanwhile"
        assert session.get(Case, case_id).lock_version == read + 1
        assert session.get(HumanTask, task.id).status == "ready"


def test_a_row_whose_default_only_the_orm_or_server_computes_must_be_given_it(engine):
    case_id = start_application(engine)
    with engine.unit_of_work() as uow:
        model = uow.session.get(Case, case_id)
        unfinished = Case(
            process_id=model.process_id,
            model_version_id=model.model_version_id,
            state=model.state,
            started_at=model.started_at,
        )
        with pytest.raises(ValueError, match="subprocess_versions has a computed default"):
            insert_new(uow.session, [unfinished])


# -- deferred updates (PostgreSQL: sent inside the statement that locks the audit chain) ----


class StatementLog:
    """The statements the driver was sent while `recording`."""

    def __init__(self, sql):
        self.statements: list[str] = []
        self.recording = False
        event.listen(sql, "before_cursor_execute", self._note)

    def _note(self, _conn, _cursor, statement, *_args):
        if self.recording:
            self.statements.append(" ".join(statement.split()))


def error_message(engine, case_id: int) -> str | None:
    with engine.sessions() as session:
        return session.scalar(select(Case.error_message).where(Case.id == case_id))


@pytest.mark.parametrize(
    ("reader", "reads_the_row"),
    [
        (lambda case_id: select(Person.id).limit(1), False),
        (lambda case_id: select(User).where(User.username == "clerk"), False),
        (lambda case_id: select(Case.error_message).where(Case.id == case_id), True),
        (lambda case_id: select(Person.id).where(Person.id.in_(select(Case.person_id))), True),
        (lambda case_id: text("SELECT 1"), True),
        (lambda case_id: select(User).options(joinedload(User.roles)).limit(1), True),
    ],
    ids=["other table", "other table (ORM)", "its table", "subquery", "SQL text", "loader option"],
)
def test_a_statement_that_may_read_a_deferred_row_sends_it_first(engine, reader, reads_the_row):
    """Only a SELECT or INSERT known to name none of the deferred rows' tables goes ahead of
    them; SQL text and loader options (which may join tables in) count as reading them."""
    case_id = start_application(engine)
    log = StatementLog(engine.db)
    with engine.unit_of_work() as uow:
        case = uow.session.get(Case, case_id, with_for_update=True)
        log.recording = True
        update_changed(uow.session, case, deferred=True, error_message="noted")
        sent_by_the_update = list(log.statements)
        uow.session.execute(reader(case_id)).unique().all()
        log.recording = False
        seen = uow.session.scalar(select(Case.error_message).where(Case.id == case_id))
    assert seen == "noted"  # the update was sent before the statement that reads it
    sent_first = log.statements[0].startswith("UPDATE cases")
    if engine.db.dialect.name == "postgresql":
        assert sent_by_the_update == []  # it waited for a statement that might read it
        assert sent_first == reads_the_row
    else:
        assert sent_first  # SQLite writes at once
    assert error_message(engine, case_id) == "noted"


def test_a_completion_sends_its_task_and_case_updates_with_the_chain_head_lock(engine):
    case_id = start_application(engine)
    task = ready_task(engine, case_id, "submit_application")
    before = lock_version(engine, case_id)
    log = StatementLog(engine.db)
    log.recording = True
    do(engine, case_id, "submit_application")
    log.recording = False
    updates = [s for s in log.statements if s.startswith(("UPDATE", "WITH"))]
    if engine.db.dialect.name == "postgresql":
        # The head is where this process left it: one statement moves it, writes the
        # events and carries the deferred updates.
        [carrier] = [s for s in log.statements if "audit_chain_head" in s]
        assert carrier.startswith("WITH found_head AS (SELECT last_seq, last_hash FROM audit_")
        assert "moved_head AS (UPDATE audit_chain_head" in carrier
        assert "INSERT INTO audit_events" in carrier
        assert "deferred_write_0 AS (UPDATE human_tasks" in carrier
        assert "deferred_write_1 AS (UPDATE cases" in carrier
        assert not [s for s in log.statements if s.startswith(("UPDATE", "INSERT INTO audit"))]
        assert len(log.statements) <= 6
    else:
        assert [s.split()[1] for s in updates[:2]] == ["human_tasks", "cases"]
    assert task_row(engine, task.id).status == "completed"
    assert lock_version(engine, case_id) == before + 1


def test_a_stale_deferred_update_is_refused_at_the_latest_at_the_commit(engine):
    case_id = start_application(engine)
    read = changed_meanwhile(engine, case_id)
    with pytest.raises(ConflictError), engine.unit_of_work() as uow:
        case = as_first_read(uow, case_id, read)
        update_changed(uow.session, case, deferred=True, error_message="too late")
    assert error_message(engine, case_id) == "meanwhile"
    assert lock_version(engine, case_id) == read + 1


def test_a_rolled_back_unit_of_work_leaves_no_deferred_update_behind(engine):
    case_id = start_application(engine)
    read = lock_version(engine, case_id)
    with pytest.raises(RuntimeError), engine.unit_of_work() as uow:
        case = uow.session.get(Case, case_id, with_for_update=True)
        update_changed(uow.session, case, deferred=True, error_message="abandoned")
        raise RuntimeError("the unit of work fails")
    for _ in range(3):  # later units of work, whichever pooled connection they get
        with engine.unit_of_work() as uow:
            uow.audit.record(uow.now, "system", "probe", "a write of its own", case_id=case_id)
    assert error_message(engine, case_id) is None
    assert lock_version(engine, case_id) == read


def test_a_savepoint_rolled_back_takes_its_deferred_updates_with_it(engine):
    case_id = start_application(engine)
    task = ready_task(engine, case_id, "submit_application")
    with engine.unit_of_work() as uow:
        case = uow.session.get(Case, case_id, with_for_update=True)
        update_changed(uow.session, case, deferred=True, error_message="before the savepoint")
        savepoint = uow.session.begin_nested()
        row = uow.session.get(HumanTask, task.id)
        row.priority = 9
        update_changed(uow.session, row, deferred=True)
        savepoint.rollback()
    assert error_message(engine, case_id) == "before the savepoint"
    assert task_row(engine, task.id).priority == 0


def test_two_deferred_updates_of_one_row_both_apply(engine):
    case_id = start_application(engine)
    read = lock_version(engine, case_id)
    with engine.unit_of_work() as uow:
        case = uow.session.get(Case, case_id, with_for_update=True)
        update_changed(uow.session, case, deferred=True, error_message="first")
        update_changed(uow.session, case, deferred=True, error_element="second")
    with engine.sessions() as session:
        stored = session.get(Case, case_id)
        assert (stored.error_message, stored.error_element) == ("first", "second")
    assert lock_version(engine, case_id) == read + 2
