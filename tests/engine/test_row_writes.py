"""The Core writes of the completion path behave as the ORM's flush would: new rows get their
ids and defaults and stay usable in the session; an update writes exactly the changed
columns, moves the optimistic lock on, and refuses a row someone else changed."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from engine import ConflictError
from engine.models import Case, HumanTask
from engine.row_writes import insert_new, update_changed
from tests.engine.helpers import lock_version, ready_task, start_application


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


def test_an_update_of_a_row_changed_meanwhile_is_refused(engine):
    case_id = start_application(engine)
    task = ready_task(engine, case_id, "submit_application")
    read = lock_version(engine, case_id)
    with engine.unit_of_work() as other:
        update_changed(other.session, other.session.get(Case, case_id), error_message="meanwhile")
    with pytest.raises(ConflictError), engine.unit_of_work() as uow:
        case = uow.session.get(Case, case_id)
        set_committed_value(case, "lock_version", read)  # as this unit of work first read it
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
