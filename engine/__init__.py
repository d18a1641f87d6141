"""Certrail's engine: the public facade the web app, the CLI, workers and tests use.

`Engine` owns the database sessions, the process library, the forms and the clock. Every
method is one unit of work: it loads what it needs, runs the workflow, and persists the case
state, human tasks, timers and audit events in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    ModelError,
    NotFoundError,
    PermissionDenied,
    ScriptError,
    ValidationError,
)
from .forms import FORMS_DIR, FormRegistry
from .models import Case, HumanTask, ModelVersion, Person, Scheme, User
from .runtime.runner import LiveWorkflows
from .runtime.sandbox import RestrictedEnvironment
from .runtime.serializer import StateSerializer
from .settings import Settings
from .unit_of_work import UnitOfWork

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

    def submit_model_for_review(self, version_id: int, username: str) -> ModelVersion:
        from . import model_lifecycle

        with self.unit_of_work() as uow:
            return model_lifecycle.submit_for_review(
                uow, version_id, cases.find_user(uow, username)
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
                return cases.complete_task(self, uow, task_id, cases.find_user(uow, username), data)

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

    def retry_incident(self, incident_id: int, username: str) -> dict[str, int]:
        """Resolve a job's incident and run the job again now."""
        from .incidents import retry

        return retry(self, incident_id, username)

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
