"""Certrail's engine: the public facade the web app, the CLI, workers and tests use.

`Engine` owns the database sessions, the process library, the forms and the clock. Every
method is one unit of work: it loads what it needs, runs the workflow, and persists the case
state, human tasks, timers and audit events in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine as SqlEngine
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from . import cases
from .catalog import BPMN_DIR, ModelCatalog
from .clock import Clock
from .db import make_engine, make_session_factory
from .errors import (
    CertrailError,
    ConflictError,
    Finding,
    ModelError,
    NotFoundError,
    PermissionDenied,
    ScriptError,
    ValidationError,
)
from .forms import FORMS_DIR, Form, FormRegistry
from .models import Case, HumanTask, ModelVersion, Person, Scheme, User
from .runtime.runner import LiveWorkflows
from .runtime.sandbox import RestrictedEnvironment
from .runtime.serializer import StateSerializer
from .settings import Settings
from .unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from .case_migration import CaseOnVersion, MigrationPreview
    from .model_diff import ModelDiff
    from .model_lifecycle import ProcessModelSummary, SavedDraft, UploadedModel

__all__ = [
    "CaseStarted",
    "CertrailError",
    "ConflictError",
    "Engine",
    "ModelError",
    "NotFoundError",
    "PermissionDenied",
    "ScriptError",
    "ValidationError",
]


@dataclass(frozen=True)
class CaseStarted:
    case_id: int
    status: str
    ready_task_ids: list[int]


class Engine:
    def __init__(
        self,
        database_url: str | None = None,
        *,
        clock: Clock | None = None,
        bpmn_dir: Path = BPMN_DIR,
        forms_dir: Path = FORMS_DIR,
        sql_engine: SqlEngine | None = None,
        live_workflow_capacity: int = 2000,
        settings: Settings | None = None,
    ):
        self.db = sql_engine or make_engine(database_url)
        self.sessions: sessionmaker[Session] = make_session_factory(self.db)
        self.clock = clock or Clock()
        self.settings = settings or Settings.from_env()
        self.serializer = StateSerializer()
        self.catalog = ModelCatalog(self.serializer, bpmn_dir)
        self.forms = FormRegistry(forms_dir)
        self.script_environment = RestrictedEnvironment()
        # Workflows kept in memory between a case's units of work (0 turns the reuse off).
        self.live_workflows = LiveWorkflows(live_workflow_capacity)

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.sessions, self.clock.now())

    def create_schema(self) -> None:
        """Create every table directly (tests); deployments use `certrail db upgrade`."""
        from .models import Base

        Base.metadata.create_all(self.db)

    # -- process library ---------------------------------------------------------------

    def sync_models(self) -> list[ModelVersion]:
        """Publish shipped models whose content is new; returns the versions created."""
        with self.unit_of_work() as uow:
            return self.catalog.sync_shipped_models(uow.session, uow.now, uow.audit)

    # -- document control of model versions (engine/model_lifecycle.py) ----------------------

    def validate_model(
        self, bpmn_xml: bytes | str, forms: dict[str, dict] | None = None
    ) -> list[Finding]:
        """Every finding for a model (and the forms edited with it); stores nothing."""
        from . import model_lifecycle

        with self.sessions() as session:
            return model_lifecycle.validate(self, session, bpmn_xml, forms).findings

    def save_model_draft(
        self,
        username: str,
        bpmn_xml: bytes | str,
        *,
        change_summary: str | None = None,
        forms: dict[str, dict] | None = None,
    ) -> SavedDraft:
        from . import model_lifecycle

        with self.unit_of_work() as uow:
            return model_lifecycle.save_draft(
                self, uow, cases.find_user(uow, username), bpmn_xml, change_summary, forms
            )

    def upload_model(
        self, username: str, source: bytes, change_summary: str | None = None
    ) -> UploadedModel:
        """An uploaded .bpmn file (Camunda attributes mapped) saved as the open draft."""
        from . import model_lifecycle

        with self.unit_of_work() as uow:
            return model_lifecycle.save_upload(
                self, uow, cases.find_user(uow, username), source, change_summary
            )

    def submit_model_for_review(
        self, version_id: int, username: str, change_summary: str | None = None
    ) -> ModelVersion:
        from . import model_lifecycle

        with self.unit_of_work() as uow:
            return model_lifecycle.submit_for_review(
                self, uow, version_id, cases.find_user(uow, username), change_summary
            )

    def approve_model_version(self, version_id: int, username: str) -> ModelVersion:
        from . import model_lifecycle

        try:
            with self.unit_of_work() as uow:
                return model_lifecycle.approve(uow, version_id, cases.find_user(uow, username))
        except model_lifecycle.FourEyesRefusal as refused:
            with self.unit_of_work() as uow:
                model_lifecycle.record_refusal(uow, refused)
            raise

    def return_model_to_draft(self, version_id: int, username: str, comment: str) -> ModelVersion:
        from . import model_lifecycle

        with self.unit_of_work() as uow:
            return model_lifecycle.return_to_draft(
                uow, version_id, cases.find_user(uow, username), comment
            )

    def publish_model_version(
        self, version_id: int, username: str, review_due_on: date | None = None
    ) -> ModelVersion:
        from . import model_lifecycle

        with self.unit_of_work() as uow:
            return model_lifecycle.publish(
                self, uow, version_id, cases.find_user(uow, username), review_due_on
            )

    def retire_model_version(self, version_id: int, username: str) -> ModelVersion:
        from . import model_lifecycle

        with self.unit_of_work() as uow:
            return model_lifecycle.retire(uow, version_id, cases.find_user(uow, username))

    def model_library(self) -> list[ProcessModelSummary]:
        from . import model_lifecycle

        with self.sessions() as session:
            return model_lifecycle.library(session)

    def model_history(self, process_id: str) -> list[ModelVersion]:
        """Every version of a process, newest first."""
        from . import model_lifecycle

        with self.sessions() as session:
            return model_lifecycle.history(session, process_id)

    def model_version(self, version_id: int) -> ModelVersion:
        with self.sessions() as session:
            version = session.get(ModelVersion, version_id)
            if version is None:
                raise NotFoundError(f"model version {version_id} does not exist")
            return version

    def version_forms(self, version_id: int) -> dict[str, dict]:
        """The forms edited with a model version (name -> JSON Schema)."""
        return dict(self.model_version(version_id).forms_json or {})

    def diff_model_versions(self, from_version_id: int, to_version_id: int) -> ModelDiff:
        from .model_diff import diff_models

        before = self.model_version(from_version_id)
        after = self.model_version(to_version_id)
        if before.process_id != after.process_id:
            raise ValidationError(
                f"versions of different processes ({before.process_id}, {after.process_id}) "
                "cannot be compared",
                {"to_version_id": [f"is a version of {after.process_id}"]},
            )
        return diff_models(before.bpmn_xml, after.bpmn_xml)

    def running_cases(self, process_id: str) -> list[CaseOnVersion]:
        """The open cases of a process, with the version each runs on."""
        from .case_migration import running_cases

        with self.sessions() as session:
            return running_cases(session, process_id)

    def preview_migration(
        self, case_ids: list[int], target_version_id: int
    ) -> list[MigrationPreview]:
        """What moving each case to the target version would change, or why it cannot."""
        from . import case_migration

        with self.unit_of_work() as uow:
            return case_migration.preview(self, uow, list(case_ids), target_version_id)

    def migrate_cases(
        self, case_ids: list[int], target_version_id: int, username: str
    ) -> list[MigrationPreview]:
        """Move each case that can move to the target version (one unit of work each, the
        case locked); the others are refused with their reason and left unchanged."""
        from . import case_migration
        from .model_lifecycle import APPROVER_ROLE

        user = self.user(username)
        if APPROVER_ROLE not in user.role_names:
            raise PermissionDenied("only a quality manager may move cases to another version")
        results = []
        for case_id in case_ids:
            try:
                with self.unit_of_work() as uow:
                    results.append(
                        case_migration.migrate_case(
                            self, uow, case_id, target_version_id, user.username
                        )
                    )
            except ConflictError as conflict:
                results.append(
                    case_migration.MigrationPreview(
                        case_id, None, None, False, conflict.message, []
                    )
                )
        return results

    def task_form(self, task: HumanTask, session: Session | None = None) -> Form | None:
        """The form a task shows and validates: the one edited with the model version the
        task runs on (its case's version, or the called process's pinned version), else the
        one in forms/. None when the task has no form or its form does not exist."""
        if not task.form:
            return None
        if session is None:
            with self.sessions() as own:
                return self.task_form(task, own)
        row = (
            _versions_of_loaded_case(session, task.case_id)
            or session.execute(
                select(Case.process_id, Case.model_version_id, Case.subprocess_versions).where(
                    Case.id == task.case_id
                )
            ).one_or_none()
        )
        if row is None:
            forms = self.forms.of_version(0, dict)
        else:
            process_id, version_id, subprocess_versions = row
            if task.process_id != process_id:
                version_id = (subprocess_versions or {}).get(task.process_id, version_id)
            forms = self.forms.of_version(
                int(version_id),
                lambda: session.scalar(
                    select(ModelVersion.forms_json).where(ModelVersion.id == version_id)
                ),
            )
        return forms.get(task.form) if task.form in forms else None

    # -- cases and tasks ------------------------------------------------------------------

    def start_case(
        self,
        process_id: str,
        *,
        actor: str | None = None,
        person_id: int | None = None,
        scheme_code: str | None = None,
        data: dict[str, Any] | None = None,
        links: dict[str, int] | None = None,
    ) -> CaseStarted:
        with self.unit_of_work() as uow:
            user = cases.find_user(uow, actor) if actor else None
            if user is not None:
                cases.check_may_start(user, process_id, person_id, links, uow.session)
            subject = cases.check_subject(uow.session, process_id, links)
            if subject is not None and process_id == "appeal" and person_id is None:
                # The appellant is the person the appealed decision is about. (A complaint may
                # come from a third party: its complainant is never assumed.)
                person_id = subject.person_id
            person = uow.session.get(Person, person_id) if person_id is not None else None
            if person_id is not None and person is None:
                raise NotFoundError(f"person {person_id} does not exist")
            scheme = self._current_scheme(uow.session, scheme_code) if scheme_code else None
            if scheme is None and subject is not None and subject.scheme_id is not None:
                scheme = uow.session.get(Scheme, subject.scheme_id)
            case, run = cases.start_case(self, uow, process_id, user, person, scheme, data, links)
            ready = list(
                run.session.scalars(
                    select(HumanTask.id).where(
                        HumanTask.case_id == case.id, HumanTask.status == "ready"
                    )
                )
            )
            return CaseStarted(case.id, case.status, ready)

    def apply_for_certification(self, username: str, scheme_code: str) -> CaseStarted:
        """An applicant applies for a scheme: an `application` case for their own person
        (refused while they have an open application for the same scheme)."""
        from .portal import apply_for_certification

        with self.unit_of_work() as uow:
            user = cases.find_user(uow, username)
            case = apply_for_certification(self, uow, user, scheme_code)
            ready = list(
                uow.session.scalars(
                    select(HumanTask.id).where(
                        HumanTask.case_id == case.id, HumanTask.status == "ready"
                    )
                )
            )
            return CaseStarted(case.id, case.status, ready)

    def claim(self, task_id: int, username: str) -> HumanTask:
        with self._recording_refusals():
            with self.unit_of_work() as uow:
                return cases.claim_task(uow, task_id, cases.find_user(uow, username))

    def assign(self, task_id: int, manager: str, assignee: str) -> HumanTask:
        with self._recording_refusals():
            with self.unit_of_work() as uow:
                return cases.assign_task(
                    uow,
                    task_id,
                    cases.find_user(uow, manager),
                    cases.find_user(uow, assignee),
                    self.settings.base_url,
                )

    @contextmanager
    def _recording_refusals(self) -> Iterator[None]:
        """A refused impartiality check is recorded even though its unit of work rolled back."""
        try:
            yield
        except cases.Refused as refused:
            if refused.impartiality_rules:
                with self.unit_of_work() as uow:
                    cases.record_refusal(uow, refused)
            raise

    def unclaim(self, task_id: int, username: str) -> HumanTask:
        with self.unit_of_work() as uow:
            return cases.unclaim_task(uow, task_id, cases.find_user(uow, username))

    def complete(self, task_id: int, username: str, data: dict[str, Any]) -> HumanTask:
        with self._recording_refusals():
            with self.unit_of_work() as uow:
                return cases.complete_task_as(self, uow, task_id, username, data)

    def retry_case(self, case_id: int, username: str) -> Case:
        with self.unit_of_work() as uow:
            return cases.retry_case(self, uow, case_id, cases.find_user(uow, username))

    # -- certificates and background work ---------------------------------------------------

    def request_suspension(self, certificate_number: str, username: str, reasons: str) -> int:
        """Open a suspension case (decision on suspend / reduce scope / withdraw); its id."""
        from .lifecycle import request_suspension

        with self.unit_of_work() as uow:
            user = cases.find_user(uow, username)
            return request_suspension(self, uow, user, certificate_number, reasons).id

    def raise_corrective_action(
        self, username: str, source: str, reference: Any, description: str
    ) -> int:
        """Open a corrective action for a nonconformity found through `source` (internal
        audit, complaint, appeal, incident, other); returns its case id."""
        from .corrective_actions import raise_corrective_action

        with self.unit_of_work() as uow:
            user = cases.find_user(uow, username)
            return raise_corrective_action(self, uow, user, source, reference, description).id

    def retry_incident(self, incident_id: int, username: str) -> dict[str, int]:
        """Resolve a job's incident and run the job again now."""
        from .incidents import retry

        return retry(self, incident_id, username)

    def count_request(self, key: str, limit: int, window_seconds: float = 60.0):
        """Count a rate-limited request (shared by every process); see engine.rate_limits."""
        from datetime import timedelta

        from .rate_limits import count_request

        with self.sessions() as session, session.begin():
            return count_request(
                session, key, self.clock.now(), limit, timedelta(seconds=window_seconds)
            )

    # -- queries --------------------------------------------------------------------------

    def ready_tasks(self, case_id: int) -> list[HumanTask]:
        with self.sessions() as session:
            return list(
                session.scalars(
                    select(HumanTask)
                    .where(HumanTask.case_id == case_id, HumanTask.status == "ready")
                    .order_by(HumanTask.id)
                )
            )

    def case(self, case_id: int) -> Case:
        with self.sessions() as session:
            case = session.get(Case, case_id)
            if case is None:
                raise NotFoundError(f"case {case_id} does not exist")
            return case

    def case_data(self, case_id: int) -> dict[str, Any]:
        """The case's current data (what its forms and steps have produced so far)."""
        with self.unit_of_work() as uow:
            case = uow.session.get(Case, case_id)
            if case is None:
                raise NotFoundError(f"case {case_id} does not exist")
            run = cases.load_run(self, uow, case, "system", for_change=False)
            uow.session.rollback()
            tasks = run.workflow.get_tasks()
            latest = max(tasks, key=lambda t: t.last_state_change) if tasks else None
            return dict(latest.data) if latest is not None else {}

    @staticmethod
    def _current_scheme(session: Session, code: str) -> Scheme:
        scheme = session.scalars(
            select(Scheme)
            .where(Scheme.code == code, Scheme.active.is_(True))
            .order_by(Scheme.id.desc())
        ).first()
        if scheme is None:
            raise NotFoundError(f"scheme '{code}' does not exist")
        return scheme

    def user(self, username: str) -> User:
        with self.sessions() as session:
            user = session.scalars(select(User).where(User.username == username)).first()
            if user is None:
                raise NotFoundError(f"user '{username}' does not exist")
            return user

    def login(self, username: str, password: str) -> User:
        """The user with these credentials, or LoginRefused (failed attempts are counted)."""
        from .accounts import LoginRefused, authenticate

        with self.unit_of_work() as uow:
            user, refusal = authenticate(uow, username, password)
        if user is None:
            raise LoginRefused(refusal or "the username or password is wrong")
        return user

    def register_applicant(
        self,
        given_name: str,
        family_name: str,
        email: str,
        password: str | None,
        username: str | None = None,
    ) -> User:
        from .people import register_applicant

        with self.unit_of_work() as uow:
            return register_applicant(uow, given_name, family_name, email, password, username)


def _versions_of_loaded_case(session: Session, case_id: int) -> tuple | None:
    """The case's process and pinned versions when this session holds the case already."""
    case = session.identity_map.get(Session.identity_key(Case, case_id))
    if case is None:
        return None
    return case.process_id, case.model_version_id, case.subprocess_versions
