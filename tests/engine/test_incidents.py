"""A job that fails on one certificate records an incident and goes on with the others; the
job leaves that certificate alone until a manager retries, which runs it again at once."""

from __future__ import annotations

import shutil
from datetime import datetime

import pytest
from sqlalchemy import select

from engine import Engine
from engine.catalog import BPMN_DIR
from engine.demo import load_demo
from engine.errors import ConflictError, PermissionDenied
from engine.incidents import open_incidents
from engine.models import Base, Case, Incident
from engine.scheduler import run_jobs_until_idle
from tests.engine.helpers import events, renew_commitments
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
