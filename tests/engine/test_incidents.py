"""A job that fails on one certificate records an incident and goes on with the others; the
job leaves that certificate alone until a manager retries, which runs it again at once. One
failure is one incident however many workers fail on it; a pass that lost a race to another
writer is run again."""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
from sqlalchemy import select, text

from engine import Engine
from engine.catalog import BPMN_DIR
from engine.demo import load_demo
from engine.errors import ConflictError, PermissionDenied
from engine.incidents import open_incidents, record_incident
from engine.lifecycle import start_due_surveillance
from engine.management_review import open_due_management_review
from engine.models import Base, Case, Incident
from engine.scheduler import JOBS, run_jobs_until_idle
from tests.engine.helpers import events, renew_commitments, start_application
from tests.engine.test_certificate_lifecycle import certify


@pytest.fixture
def engine_without_surveillance(database, clock, tmp_path):
    """The shipped models, except that no surveillance model has been published yet."""
    _kind, sql = database
    library = tmp_path / "bpmn"
    library.mkdir()
    for path in BPMN_DIR.iterdir():
        if path.name != "surveillance.bpmn":
            shutil.copy(path, library / path.name)
    engine = Engine(sql_engine=sql, clock=clock, bpmn_dir=library)
    Base.metadata.create_all(sql)
    engine.sync_models()
    with engine.unit_of_work() as uow:
        load_demo(uow)
    return engine


def surveillance_cases(engine) -> list[Case]:
    with engine.sessions() as session:
        return list(session.scalars(select(Case).where(Case.process_id == "surveillance")))


def test_a_failing_certificate_becomes_an_incident_and_a_retry_runs_it_again(
    engine_without_surveillance, clock
):
    engine = engine_without_surveillance
    alice = certify(engine, "alice", "CWI")
    bob = certify(engine, "bob", "DPO")
    clock.set(datetime(2027, 3, 3, 9, 0))
    renew_commitments(engine)

    done = run_jobs_until_idle(engine)
    assert done["start_due_surveillance"] == 2  # both tried, neither stopped the other
    with engine.sessions() as session:
        incidents = open_incidents(session)
    assert sorted(i.certificate_id for i in incidents) == sorted([alice.id, bob.id])
    assert all("surveillance" in i.message for i in incidents)
    assert events(engine, action="incident_opened")

    # While the incident is open the job does not hammer the same certificate.
    assert run_jobs_until_idle(engine)["start_due_surveillance"] == 0
    assert surveillance_cases(engine) == []

    with pytest.raises(PermissionDenied):
        engine.retry_incident(incidents[0].id, "clerk")

    # The process owner publishes the missing model; the manager retries one incident.
    shutil.copy(BPMN_DIR / "surveillance.bpmn", engine.catalog.bpmn_dir / "surveillance.bpmn")
    engine.sync_models()
    assert engine.retry_incident(incidents[0].id, "manager") == {"start_due_surveillance": 1}
    [started] = surveillance_cases(engine)
    assert started.certificate_id == incidents[0].certificate_id
    manager_id = engine.user("manager").id
    with engine.sessions() as session:
        retried = session.get(Incident, incidents[0].id)
        assert retried.status == "resolved"
        assert retried.resolved_by_id == manager_id
        assert [i.id for i in open_incidents(session)] == [incidents[1].id]
    with pytest.raises(ConflictError, match="already resolved"):
        engine.retry_incident(incidents[0].id, "manager")
    assert [e.action for e in events(engine, action="incident_retried")] == ["incident_retried"]


# -- one failure, one incident, however many workers ------------------------------------------


def blocked_by(monitor, pid: int) -> list[int]:
    """The backends waiting for a lock that backend `pid` holds."""
    query = text("SELECT pid FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    return list(monitor.execute(query, {"pid": pid}).scalars())


def wait_for(found, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (result := found()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return result


def run_while_a_second_worker_records_the_failure(engine, job, **item) -> int:
    """Run `job` while a second worker fails on the same item and records it first.

    The test holds the process models locked, so the job's attempt stops reading them while
    it holds its claim; the second worker then queues for the incidents table behind the
    claim. The models are released: the attempt fails and rolls back, which gives up the
    claim, and the second worker records its incident and commits before the first worker
    can claim the item again. What the job returns."""

    def second_worker_records_the_failure():
        with engine.unit_of_work() as uow:
            uow.session.execute(text("LOCK TABLE incidents IN ACCESS EXCLUSIVE MODE"))
            record_incident(uow, job.__name__, RuntimeError("failed in the second worker"), **item)

    autocommit = engine.db.connect().execution_options(isolation_level="AUTOCOMMIT")
    with engine.db.connect() as models_held, autocommit as monitor, ThreadPoolExecutor(2) as pool:
        holding = models_held.begin()
        models_held.execute(text("LOCK TABLE model_versions IN ACCESS EXCLUSIVE MODE"))
        holder = models_held.execute(text("SELECT pg_backend_pid()")).scalar_one()
        first = pool.submit(job, engine)
        [first_worker] = wait_for(lambda: blocked_by(monitor, holder))
        second = pool.submit(second_worker_records_the_failure)
        wait_for(lambda: blocked_by(monitor, first_worker))  # queued behind the claim
        holding.rollback()
        second.result(timeout=60)
        return first.result(timeout=60)


@pytest.mark.parametrize(
    "database", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)
def test_a_certificate_whose_failure_another_worker_recorded_meanwhile_gets_no_second_incident(
    engine_without_surveillance, clock
):
    engine = engine_without_surveillance
    alice = certify(engine, "alice", "CWI")
    clock.set(datetime(2027, 3, 3, 9, 0))
    renew_commitments(engine)

    handled = run_while_a_second_worker_records_the_failure(
        engine, start_due_surveillance, certificate_id=alice.id
    )

    assert handled == 0
    with engine.sessions() as session:
        [incident] = open_incidents(session)
    assert incident.message == "RuntimeError: failed in the second worker"
    assert len(events(engine, action="incident_opened")) == 1


@pytest.mark.parametrize(
    "database", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)
def test_a_management_review_whose_failure_another_worker_recorded_meanwhile_gets_no_second_incident(
    engine,
):
    with engine.db.begin() as conn:  # the review model was retired: opening one fails
        conn.execute(
            text("UPDATE model_versions SET status = 'retired' WHERE process_id = :process"),
            {"process": "management_review"},
        )

    assert run_while_a_second_worker_records_the_failure(engine, open_due_management_review) == 0

    with engine.sessions() as session:
        [incident] = open_incidents(session)
    assert incident.job == "open_due_management_review"
    assert incident.message == "RuntimeError: failed in the second worker"
    assert open_due_management_review(engine) == 0  # and the job waits for a retry


@pytest.mark.parametrize(
    "database", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)
def test_a_job_pass_that_lost_a_race_runs_again_and_the_worker_goes_on(engine, caplog):
    """A pass whose unit of work lost a race rolled back whole: the runner runs it again
    (the next pass sees the other writer's change) instead of ending the worker."""
    case_id = start_application(engine)
    passes = []

    def notes_the_case(engine) -> int:
        passes.append(len(passes) + 1)
        with engine.unit_of_work() as uow:
            case = uow.session.get(Case, case_id)
            if case.error_message == "noted":
                return 0
            if len(passes) == 1:
                with engine.unit_of_work() as other:  # another writer, after this pass read
                    other.session.get(Case, case_id).error_message = "meanwhile"
            case.error_message = "noted"
        return 1

    done = run_jobs_until_idle(engine, jobs={"notes_the_case": notes_the_case, **JOBS})

    assert passes == [1, 2, 3]  # lost the race, noted the case, found nothing more to do
    assert done["notes_the_case"] == 1
    assert "notes_the_case lost a race with another writer" in caplog.text
    with engine.sessions() as session:
        assert session.get(Case, case_id).error_message == "noted"
