"""Running one case for one unit of work: restore, step, and reflect the state into tables.

`CaseRun` is the only code that touches a live SpiffWorkflow object. After every change it
brings the query tables (human tasks, timers, case status) in line with the workflow and
serializes the state once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Date, Integer, bindparam, inspect, select
from sqlalchemy.orm import Session, joinedload

from .. import assignment, impartiality
from ..audit import AuditLog
from ..catalog import SpecBundle
from ..feedback import invite_after_completion
from ..impartiality.candidates import auto_assign
from ..models import Case, HumanTask, Person, Timer, User
from ..notifications import notify_assigned, person_with_account
from ..row_writes import INDEPENDENT_OF_DEFERRED, insert_new, update_changed
from ..service_levels import task_deadlines
from ..settings import Settings
from .sandbox import CertrailScriptEngine, RestrictedEnvironment, SandboxViolation
from .serializer import StateSerializer
from .timer_clock import timers_as_of

SystemAction = Callable[[Task, dict[str, Any]], dict[str, Any]]


class CaseRun:
    def __init__(
        self,
        session: Session,
        case: Case,
        bundle: SpecBundle,
        workflow: BpmnWorkflow,
        serializer: StateSerializer,
        audit: AuditLog,
        now: datetime,
        actor: str,
        settings: Settings | None = None,
        open_tasks: list[HumanTask] | None = None,
    ):
        """`open_tasks`: the case's ready human tasks as read under the case lock in this
        unit of work (None: read them when syncing)."""
        self.settings = settings or Settings()
        self.open_tasks = open_tasks
        self.session = session
        self.case = case
        self.bundle = bundle
        self.workflow = workflow
        self.serializer = serializer
        self.audit = audit
        self.now = now
        self.actor = actor
        self._person: Person | None = None

    def person(self) -> Person | None:
        """The case's person, read once for this unit of work (several steps of its end
        need the person: the certificate, its letter, the feedback invitation)."""
        if self._person is None and self.case.person_id is not None:
            self._person = person_with_account(self.session, self.case.person_id)
        return self._person

    # -- construction ------------------------------------------------------------------

    @staticmethod
    def script_engine(
        environment: RestrictedEnvironment, actions: dict[str, SystemAction]
    ) -> CertrailScriptEngine:
        engine = CertrailScriptEngine(environment)
        engine.system_actions = actions
        return engine

    @classmethod
    def new_workflow(
        cls, bundle: SpecBundle, script_engine: CertrailScriptEngine, data: dict[str, Any]
    ) -> BpmnWorkflow:
        workflow = BpmnWorkflow(bundle.spec, bundle.subprocess_specs, script_engine=script_engine)
        for task in workflow.get_tasks(state=TaskState.READY):
            task.data.update(data)
        return workflow

    # -- stepping ------------------------------------------------------------------------

    def advance(self) -> bool:
        """Run automatic steps until the case waits for people or timers.

        Returns False when a script or system step failed: the case is then marked errored
        with the element id, its state (up to the failed step) is kept for a retry.
        """
        try:
            with timers_as_of(self.now):
                self.workflow.refresh_timers()
                self.workflow.do_engine_steps()
                # do_engine_steps ends by refreshing timers; one that is already due leaves
                # automatic work ready, which belongs to this unit of work too.
                while self._automatic_work_ready():
                    self.workflow.do_engine_steps()
        except (SpiffWorkflowException, SandboxViolation, SyntaxError) as exc:
            self._mark_errored(exc)
            return False
        return True

    def _automatic_work_ready(self) -> bool:
        return any(not t.task_spec.manual for t in self.workflow.get_tasks(state=TaskState.READY))

    def task(self, task_uuid: str) -> Task | None:
        return self.workflow.get_task_from_id(UUID(task_uuid))

    def _mark_errored(self, exc: Exception) -> None:
        task = getattr(exc, "task", None)
        element = None
        if task is not None:
            element = task.task_spec.bpmn_id or task.task_spec.name
        else:
            errored = self.workflow.get_tasks(state=TaskState.ERROR)
            element = errored[0].task_spec.bpmn_id if errored else None
        message = _describe(exc)
        self.case.status = "errored"
        self.case.error_element = element
        self.case.error_message = message
        self.audit.record(
            self.now,
            self.actor,
            "case_errored",
            f"step {element} failed: {message}",
            case_id=self.case.id,
            after={"element_id": element, "error": message},
        )

    # -- reflecting state into the tables ------------------------------------------------------

    def persist(self) -> list[HumanTask]:
        """Sync human tasks, timers and status, and store the serialized state.

        Returns the human tasks that became ready in this unit of work.
        """
        created = self._sync_human_tasks()
        self._sync_timers()
        completed = self.case.status != "errored" and self.workflow.is_completed()
        if completed:
            invite_after_completion(
                self.session, self.now, self.audit, self.case, self.person(), self.settings.base_url
            )
            self.audit.record(
                self.now,
                self.actor,
                "case_completed",
                "the case reached its end",
                case_id=self.case.id,
            )
        state = self.serializer.dump_workflow(self.workflow)
        persistent = inspect(self.case).persistent
        if persistent:
            # The rows added so far (notifications, bars, timers) are written now, so that
            # the case's one update, its end included, can wait for the audit events.
            self.session.flush()
        if completed:
            self.case.status = "completed"
            self.case.ended_at = self.now
        if persistent:
            update_changed(self.session, self.case, deferred=True, state=state)
        else:
            self.case.state = state
        return created

    def _ready_user_tasks(self) -> dict[str, Task]:
        return {str(t.id): t for t in self.workflow.get_tasks(state=TaskState.READY, manual=True)}

    def _sync_human_tasks(self) -> list[HumanTask]:
        ready = self._ready_user_tasks()
        existing = {row.task_uuid: row for row in self._open_task_rows()}
        for task_uuid, row in existing.items():
            if task_uuid not in ready:
                row.status = "cancelled"
                self.audit.record(
                    self.now,
                    self.actor,
                    "task_cancelled",
                    f"{row.name} is no longer needed",
                    case_id=self.case.id,
                    task_id=row.id,
                )
        created: list[tuple[HumanTask, Any, Task]] = []
        for task_uuid, task in ready.items():
            if task_uuid in existing:
                continue
            props = self.bundle.task_properties(task.task_spec)
            deadlines = task_deadlines(self.now, props, self.settings)
            row = HumanTask(
                case_id=self.case.id,
                task_uuid=task_uuid,
                task_spec_id=props.spec_id,
                process_id=task.workflow.spec.name,
                case_process_id=self.case.process_id,
                scheme_id=self.case.scheme_id,
                name=props.name,
                role=props.role or "",
                form=props.form,
                instructions=props.instructions,
                status="ready",
                created_at=self.now,
                due_at=deadlines.due_at,
                remind_at=deadlines.remind_at,
                escalate_at=deadlines.escalate_at,
                assignee_id=None,
                candidates=None,
                sod_rules=",".join(props.sod) or None,
                excluded_performers_of=",".join(props.exclude_performers_of) or None,
            )
            created.append((row, props, task))
        if not created:
            return []
        # A user named by an earlier step is read, checked and set on the row before the
        # row is written, so the INSERT carries the assignment.
        named: dict[str, tuple[User | None, impartiality.UserFacts | None]] = {}
        named_assignments = {
            id(row): self._named_assignment(row, task.data.get(props.assignee_from), named)
            for row, props, task in created
            if props.assignee_from
        }
        insert_new(self.session, [row for row, _props, _task in created])
        for row, props, _task in created:
            self.audit.record(
                self.now,
                self.actor,
                "task_ready",
                f"{row.name} is waiting for the {row.role} role",
                case_id=self.case.id,
                task_id=row.id,
                after={"task": row.task_spec_id, "role": row.role, "due_at": _iso(row.due_at)},
            )
            for bar in impartiality.store_bars(self.session, row, self.case):
                self.audit.record(
                    self.now,
                    self.actor,
                    "sod_bar_recorded",
                    bar.reason,
                    case_id=self.case.id,
                    task_id=row.id,
                    after={"rule": bar.rule, "user_id": bar.user_id, "facts": bar.facts},
                )
            if props.assignee_from:
                self._record_named_assignment(row, *named_assignments[id(row)])
            elif props.auto_assign:
                chosen = auto_assign(self.session, row, self.case, self.now, self.audit, self.actor)
                if chosen is not None:
                    notify_assigned(self.session, self.now, row, chosen, self.settings.base_url)
        return [row for row, _props, _task in created]

    def _open_task_rows(self) -> list[HumanTask]:
        if self.open_tasks is not None:
            return [row for row in self.open_tasks if row.status == "ready"]
        return list(
            self.session.scalars(
                select(HumanTask).where(
                    HumanTask.case_id == self.case.id, HumanTask.status == "ready"
                )
            )
        )

    def _named_assignment(
        self,
        row: HumanTask,
        username: Any,
        named: dict[str, tuple[User | None, impartiality.UserFacts | None]],
    ) -> tuple[Any, User | None, list[assignment.Refusal]]:
        """Give the new task to the user a previous step named (e.g. the assigned examiner),
        unless that user may not take it; then it stays open to every holder of the role.
        `named`: the users already read in this step, by username."""
        if not isinstance(username, str):
            return username, None, [assignment.Refusal("UNKNOWN", "no such user")]
        if username not in named:
            found = (
                self.session.execute(
                    _NAMED_USER,
                    {
                        "username": username,
                        "person_id": self.case.person_id,
                        "today": self.now.date(),
                    },
                )
                .unique()
                .first()
            )
            named[username] = (
                (found[0], impartiality.user_facts(*found[1:])) if found else (None, None)
            )
        user, facts = named[username]
        if user is None:
            return username, None, [assignment.Refusal("UNKNOWN", "no such user")]
        refused = assignment.refusals(
            user, row, self.case, session=self.session, now=self.now, known=facts
        )
        if not refused:
            row.candidates = [user.username]
            row.assignee_id = user.id
            row.claimed_at = self.now
        return username, user, refused

    def _record_named_assignment(
        self, row: HumanTask, username: Any, user: User | None, refused: list[assignment.Refusal]
    ) -> None:
        if refused or user is None:
            self.audit.record(
                self.now,
                self.actor,
                "assignment_refused",
                f"{username!r} cannot take {row.name} ({'; '.join(r.reason for r in refused)}); "
                f"the task is open to every eligible {row.role}",
                case_id=self.case.id,
                task_id=row.id,
                after={"user": username, "rules": [r.rule for r in refused]},
            )
            return
        self.audit.record(
            self.now,
            self.actor,
            "task_assigned",
            f"{row.name} assigned to {user.username}",
            case_id=self.case.id,
            task_id=row.id,
            after={"assignee": user.username},
        )
        notify_assigned(self.session, self.now, row, user, self.settings.base_url)

    def _sync_timers(self) -> None:
        if not self.bundle.has_timers:
            return
        waiting = {}
        for task in self.workflow.get_tasks(state=TaskState.WAITING):
            definition = getattr(task.task_spec, "event_definition", None)
            if isinstance(definition, TimerEventDefinition):
                value = task._get_internal_data("event_value")
                if isinstance(value, dict):
                    value = value.get("next")
                if value:
                    fire_at = TimerEventDefinition.get_datetime(value).replace(tzinfo=None)
                    waiting[str(task.id)] = (task, fire_at)
        rows = {
            row.task_uuid: row
            for row in self.session.scalars(
                select(Timer).where(Timer.case_id == self.case.id, Timer.status == "waiting")
            )
        }
        for task_uuid, row in rows.items():
            if task_uuid not in waiting:
                row.status = "fired" if self._timer_fired(task_uuid) else "cancelled"
                row.fired_at = self.now
            elif row.fire_at != waiting[task_uuid][1]:
                row.fire_at = waiting[task_uuid][1]
        for task_uuid, (task, fire_at) in waiting.items():
            if task_uuid not in rows:
                self.session.add(
                    Timer(
                        case_id=self.case.id,
                        task_uuid=task_uuid,
                        task_spec_id=task.task_spec.bpmn_id or task.task_spec.name,
                        fire_at=fire_at,
                        status="waiting",
                    )
                )

    def _timer_fired(self, task_uuid: str) -> bool:
        task = self.workflow.get_task_from_id(UUID(task_uuid))
        return task is not None and task.state == TaskState.COMPLETED


# A named assignee with roles and impartiality facts for the case's person. It reads no row
# a deferred write changes, so it may go ahead of them.
_NAMED_USER = (
    select(
        User,
        *impartiality.user_facts_columns(
            User.id, bindparam("person_id", type_=Integer), bindparam("today", type_=Date)
        ),
    )
    .options(joinedload(User.roles))
    .where(User.username == bindparam("username"))
    .execution_options(**{INDEPENDENT_OF_DEFERRED: True})
)


class LiveWorkflows:
    """Workflows kept in memory between units of work, keyed by case and lock version.

    A unit of work *takes* its case's workflow (so no two share one) and puts it back only
    after its commit, under the new lock version; a rollback simply loses it. Another process
    changing the case bumps the version, so a stale entry is never used.
    """

    def __init__(self, capacity: int = 2000):
        self.capacity = capacity
        self._entries: OrderedDict[int, tuple[int, BpmnWorkflow]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, case_id: int, lock_version: int) -> BpmnWorkflow | None:
        with self._lock:
            entry = self._entries.pop(case_id, None)
        if entry is None or entry[0] != lock_version:
            return None
        return entry[1]

    def put(self, case_id: int, lock_version: int, workflow: BpmnWorkflow) -> None:
        with self._lock:
            self._entries[case_id] = (lock_version, workflow)
            self._entries.move_to_end(case_id)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)


def _describe(exc: Exception) -> str:
    """One line saying what failed, including the sandbox's or Python's own reason."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    inner = exc.__cause__ or exc.__context__
    if inner is not None and str(inner) and str(inner) not in text:
        text = f"{text.rstrip('. ')}: {type(inner).__name__}: {inner}"
    return text


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
