"""`certrail check`: does every case's stored workflow agree with the tables derived from it?

The serialized SpiffWorkflow state is the truth of a case; human tasks and timers are query
tables written from it in the same transaction, and certificates carry a status history.
A crash, a bad restore or a hand edit can break that agreement; this finds where, read-only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import Case, Certificate, CertificateStatusChange, HumanTask, Timer
from .runtime.runner import CaseRun

CASE_BATCH = 500


@dataclass(frozen=True)
class Mismatch:
    kind: str
    message: str
    case_id: int | None = None
    certificate: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ConsistencyReport:
    cases: int = 0
    certificates: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return not self.mismatches

    def as_dict(self) -> dict:
        return {
            "consistent": self.consistent,
            "cases": self.cases,
            "certificates": self.certificates,
            "mismatches": [m.as_dict() for m in self.mismatches],
        }


def check(engine, now: datetime) -> ConsistencyReport:
    report = ConsistencyReport()
    with engine.sessions() as session:
        last_id = 0
        while True:
            cases = session.scalars(
                select(Case).where(Case.id > last_id).order_by(Case.id).limit(CASE_BATCH)
            ).all()
            if not cases:
                break
            for case in cases:
                report.cases += 1
                report.mismatches.extend(_check_case(engine, session, case))
            last_id = cases[-1].id
            session.expunge_all()
        _check_certificates(session, now, report)
    return report


def _check_case(engine, session: Session, case: Case) -> list[Mismatch]:
    def mismatch(kind: str, message: str) -> Mismatch:
        return Mismatch(kind, message, case_id=case.id)

    try:
        versions = {case.process_id: case.model_version_id, **case.subprocess_versions}
        bundle = engine.catalog.bundle(session, case.process_id, versions)
        workflow = engine.serializer.load_workflow(
            case.state,
            bundle.spec,
            bundle.subprocess_specs,
            CaseRun.script_engine(engine.script_environment, {}),
        )
    except Exception as exc:  # noqa: BLE001 - any failure to restore is the finding itself
        return [mismatch("state_unreadable", f"the stored workflow cannot be restored: {exc}")]

    found: list[Mismatch] = []
    open_rows = {
        row.task_uuid: row
        for row in session.scalars(
            select(HumanTask).where(HumanTask.case_id == case.id, HumanTask.status == "ready")
        )
    }
    waiting_rows = {
        row.task_uuid: row
        for row in session.scalars(
            select(Timer).where(Timer.case_id == case.id, Timer.status == "waiting")
        )
    }
    if case.status == "errored":
        return found  # an errored case stopped mid-step; its tables hold the last good state
    if case.status in ("completed", "cancelled"):
        if case.status == "completed" and not workflow.is_completed():
            found.append(
                mismatch(
                    "completed_case_unfinished",
                    "the case is marked completed but its workflow has not reached an end",
                )
            )
        for row in open_rows.values():
            found.append(
                mismatch(
                    "open_task_on_closed_case",
                    f"task {row.id} ({row.name}) is open on a {case.status} case",
                )
            )
        for row in waiting_rows.values():
            found.append(
                mismatch(
                    "timer_on_closed_case",
                    f"timer {row.task_spec_id} waits on a {case.status} case",
                )
            )
        return found

    if workflow.is_completed():
        found.append(
            mismatch(
                "finished_workflow_running_case",
                "the workflow reached its end but the case is still running",
            )
        )
    ready = {str(t.id): t for t in workflow.get_tasks(state=TaskState.READY, manual=True)}
    for task_uuid, task in ready.items():
        if task_uuid not in open_rows:
            found.append(
                mismatch(
                    "ready_task_without_row",
                    f"{task.task_spec.bpmn_name or task.task_spec.name} is ready "
                    "in the workflow but no open human task shows it",
                )
            )
    for task_uuid, row in open_rows.items():
        if task_uuid not in ready:
            found.append(
                mismatch(
                    "row_without_ready_task",
                    f"human task {row.id} ({row.name}) is open but the workflow "
                    "has no such ready task",
                )
            )
    waiting = _waiting_timers(workflow)
    for task_uuid, (spec_id, fire_at) in waiting.items():
        row = waiting_rows.get(task_uuid)
        if row is None:
            found.append(
                mismatch(
                    "timer_without_row",
                    f"timer {spec_id} waits in the workflow but has no timer row",
                )
            )
        elif row.fire_at != fire_at:
            found.append(
                mismatch(
                    "timer_time_differs",
                    f"timer {spec_id} fires at {fire_at.isoformat()} in the "
                    f"workflow but at {row.fire_at.isoformat()} in its row",
                )
            )
    for task_uuid, row in waiting_rows.items():
        if task_uuid not in waiting:
            found.append(
                mismatch(
                    "row_without_waiting_timer",
                    f"timer row {row.id} ({row.task_spec_id}) waits but the "
                    "workflow has no such waiting timer",
                )
            )
    return found


def _waiting_timers(workflow) -> dict[str, tuple[str, datetime]]:
    waiting = {}
    for task in workflow.get_tasks(state=TaskState.WAITING):
        definition = getattr(task.task_spec, "event_definition", None)
        if not isinstance(definition, TimerEventDefinition):
            continue
        value = task._get_internal_data("event_value")
        if isinstance(value, dict):
            value = value.get("next")
        if value:
            fire_at = TimerEventDefinition.get_datetime(value).replace(tzinfo=None)
            waiting[str(task.id)] = (task.task_spec.bpmn_id or task.task_spec.name, fire_at)
    return waiting


def _check_certificates(session: Session, now: datetime, report: ConsistencyReport) -> None:
    latest = (
        select(
            CertificateStatusChange.certificate_id,
            func.max(CertificateStatusChange.id).label("last_id"),
        )
        .group_by(CertificateStatusChange.certificate_id)
        .subquery()
    )
    rows = session.execute(
        select(Certificate, CertificateStatusChange.to_status)
        .outerjoin(latest, latest.c.certificate_id == Certificate.id)
        .outerjoin(CertificateStatusChange, CertificateStatusChange.id == latest.c.last_id)
        .order_by(Certificate.id)
    )
    for certificate, last_status in rows:
        report.certificates += 1

        def mismatch(kind: str, message: str, number=certificate.number) -> Mismatch:
            return Mismatch(kind, message, certificate=number)

        if last_status is None:
            report.mismatches.append(
                mismatch("certificate_without_history", "the certificate has no status history")
            )
        elif last_status != certificate.status:
            report.mismatches.append(
                mismatch(
                    "status_differs_from_history",
                    f"the certificate is {certificate.status} but its last recorded change "
                    f"made it {last_status}",
                )
            )
        # The expiry job runs every few seconds; a day of grace keeps midnight from alarming.
        overdue_expiry = certificate.expires_on < now.date() - timedelta(days=1)
        if certificate.status in ("active", "reduced") and overdue_expiry:
            report.mismatches.append(
                mismatch(
                    "valid_after_expiry",
                    f"the certificate is {certificate.status} but expired on "
                    f"{certificate.expires_on.isoformat()} (is the expiry job running?)",
                )
            )
