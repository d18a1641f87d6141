"""Operations on cases and their human tasks: start, claim, unclaim, complete, retry.

Each function runs inside a UnitOfWork and is the only code that changes a case or task.
Every change writes its audit event; refusals raise errors that say why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Date, bindparam, or_, select, update
from sqlalchemy.orm import Session, defer, joinedload

from . import assignment, impartiality
from .errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from .models import Case, CaseLink, HumanTask, Person, Scheme, User
from .notifications import notify_assigned
from .row_writes import update_changed
from .runtime.runner import CaseRun
from .runtime.timer_clock import timers_as_of
from .system_actions import system_actions_for
from .unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from . import Engine


# Who may start a case. Applicants: their own application, an appeal against the decision in
# one of their own closed cases, a complaint about one of their own cases (or about nothing in
# particular). Staff: STARTER_ROLES any process, and these further roles the processes named.
APPLICANT_STARTABLE = frozenset({"application", "appeal", "complaint"})
STARTER_ROLES = frozenset({"clerk", "admin"})
EXTRA_STARTER_ROLES = {
    "appeal": frozenset({"complaints_officer"}),
    "complaint": frozenset({"complaints_officer"}),
    "internal_audit": frozenset({"quality_manager"}),
    "corrective_action": frozenset({"quality_manager"}),
    "management_review": frozenset({"quality_manager", "manager"}),
}
# The link each kind of case may (complaint) or must (appeal) carry to the case it is about.
SUBJECT_LINKS = {"appeal": "appeals", "complaint": "concerns"}


def starter_roles(process_id: str) -> frozenset[str]:
    return STARTER_ROLES | EXTRA_STARTER_ROLES.get(process_id, frozenset())


def check_may_start(
    actor: User,
    process_id: str,
    person_id: int | None,
    links: dict[str, int] | None = None,
    session: Session | None = None,
) -> None:
    """Raise PermissionDenied unless `actor` may start `process_id` for person `person_id`
    (checked before the person is looked up, so a refusal reveals nothing about ids).

    An applicant's appeal or complaint must be about their own case: a linked case that is
    not theirs reads as "not found" whether or not it exists."""
    roles = starter_roles(process_id)
    if actor.role_names & roles:
        return
    if process_id not in APPLICANT_STARTABLE:
        raise PermissionDenied(
            f"only staff with the {' or '.join(sorted(roles))} role can start {process_id} cases"
        )
    if actor.person_id is None or person_id != actor.person_id:
        raise PermissionDenied(
            f"applicants can start {process_id} cases for themselves only; "
            f"staff with the {' or '.join(sorted(roles))} role can start one for another person"
        )
    links = dict(links or {})
    kind = SUBJECT_LINKS.get(process_id)
    if set(links) - {kind}:
        allowed = f"only a '{kind}' link" if kind else "no links"
        raise PermissionDenied(f"an applicant's {process_id} case can carry {allowed}")
    if kind is None or kind not in links:
        return
    if session is None:
        raise PermissionDenied("the case this is about cannot be checked")
    subject = session.get(Case, links[kind])
    if subject is None or subject.person_id != actor.person_id:
        raise NotFoundError(f"case {links[kind]} does not exist or is not yours")


def check_subject(session: Session, process_id: str, links: dict[str, int] | None) -> Case | None:
    """The case an appeal or complaint is about, checked for every starter: an appeal needs
    an `appeals` link to a closed case (its decision taken) and no other open appeal of it.
    The subject case's row is locked, so two appeals lodged at once cannot both pass."""
    kind = SUBJECT_LINKS.get(process_id)
    target = (links or {}).get(kind) if kind else None
    if target is None:
        if process_id == "appeal":
            raise ValidationError(
                "an appeal is against the decision taken in a case",
                {"links": ["link the appealed case as 'appeals'"]},
            )
        return None
    subject = session.get(Case, target, with_for_update=True)
    if subject is None:
        raise NotFoundError(f"case {target} does not exist")
    if process_id != "appeal":
        return subject
    if subject.status != "completed":
        raise ConflictError("an appeal can be lodged once a decision has been made in the case")
    open_appeal = session.scalars(
        select(Case.id)
        .join(CaseLink, CaseLink.from_case_id == Case.id)
        .where(
            CaseLink.to_case_id == subject.id,
            CaseLink.kind == "appeals",
            Case.process_id == "appeal",
            Case.status.in_(("running", "errored")),
        )
    ).first()
    if open_appeal is not None:
        raise ConflictError(
            f"the decision in case {subject.id} is already under appeal (case {open_appeal})"
        )
    return subject


def start_case(
    engine: Engine,
    uow: UnitOfWork,
    process_id: str,
    actor: User | None,
    person: Person | None,
    scheme: Scheme | None,
    data: dict[str, Any] | None = None,
    links: dict[str, int] | None = None,
    certificate_id: int | None = None,
) -> tuple[Case, CaseRun]:
    """Start a case; `links` ({kind: case id}, e.g. {"appeals": 12}) exist before its first
    step, so impartiality rules reaching linked cases apply from the first task on."""
    session = uow.session
    versions = engine.catalog.pin_versions(session, process_id)
    bundle = engine.catalog.bundle(session, process_id, versions)
    actor_name = actor.username if actor else "system"
    case = Case(
        process_id=process_id,
        model_version_id=versions[process_id],
        subprocess_versions={k: v for k, v in versions.items() if k != process_id},
        person_id=person.id if person else None,
        scheme_id=scheme.id if scheme else None,
        certificate_id=certificate_id,
        status="running",
        state="{}",
        started_by_id=actor.id if actor else None,
        started_at=uow.now,
    )
    session.add(case)
    session.flush()
    for kind, target in (links or {}).items():
        if session.get(Case, target) is None:
            raise NotFoundError(f"case {target} does not exist")
        session.add(CaseLink(from_case_id=case.id, to_case_id=target, kind=kind))
    start_data: dict[str, Any] = {"case_id": case.id, "linked_cases": dict(links or {})}
    if person is not None:
        start_data["person"] = {"id": person.id, "name": person.full_name}
    if scheme is not None:
        start_data["scheme"] = scheme.as_case_data()
    start_data.update(data or {})
    script_engine = CaseRun.script_engine(engine.script_environment, {})
    workflow = CaseRun.new_workflow(bundle, script_engine, start_data)
    run = CaseRun(
        session,
        case,
        bundle,
        workflow,
        engine.serializer,
        uow.audit,
        uow.now,
        actor_name,
        engine.settings,
    )
    script_engine.system_actions = system_actions_for(engine, uow, run)
    keep_after_commit(engine, uow, case, workflow)
    uow.audit.record(
        uow.now,
        actor_name,
        "case_started",
        f"{process_id} case started" + (f" for {person.full_name}" if person else ""),
        case_id=case.id,
        after={
            "process_id": process_id,
            "versions": versions,
            "scheme": scheme.code if scheme else None,
        },
    )
    run.advance()
    run.persist()
    return case, run


def load_run(
    engine: Engine,
    uow: UnitOfWork,
    case: Case,
    actor: str,
    *,
    for_change: bool = True,
    open_tasks: list[HumanTask] | None = None,
) -> CaseRun:
    """Restore the case's workflow for this unit of work.

    With `for_change`, the in-memory copy kept from the case's previous unit of work is used
    when it is still current, and the changed workflow is kept again after the commit.
    `open_tasks`, when the caller read them under the case lock, spares reading them again.
    """
    versions = {case.process_id: case.model_version_id, **case.subprocess_versions}
    bundle = engine.catalog.bundle(uow.session, case.process_id, versions)
    script_engine = CaseRun.script_engine(engine.script_environment, {})
    workflow = engine.live_workflows.take(case.id, case.lock_version) if for_change else None
    if workflow is None:
        workflow = engine.serializer.load_workflow(
            case.state, bundle.spec, bundle.subprocess_specs, script_engine
        )
    else:
        workflow.script_engine = script_engine
    run = CaseRun(
        uow.session,
        case,
        bundle,
        workflow,
        engine.serializer,
        uow.audit,
        uow.now,
        actor,
        engine.settings,
        open_tasks,
    )
    script_engine.system_actions = system_actions_for(engine, uow, run)
    if for_change:
        keep_after_commit(engine, uow, case, workflow)
    return run


def keep_after_commit(engine: Engine, uow: UnitOfWork, case: Case, workflow) -> None:
    uow.after_commit(lambda: engine.live_workflows.put(case.id, case.lock_version, workflow))


def open_task(uow: UnitOfWork, task_id: int) -> tuple[HumanTask, Case]:
    task, case, _open_tasks = open_task_in_case(uow, task_id)
    return task, case


def open_task_in_case(uow: UnitOfWork, task_id: int) -> tuple[HumanTask, Case, list[HumanTask]]:
    """The task, its case (the row locked for the rest of the unit of work) and the case's
    open tasks, read in two statements.

    Writers to one case queue on that lock (on SQLite the database lock does the same), and
    the tasks are read after it, so a writer always sees what the one before it did.
    """
    case = uow.session.scalars(_CASE_OF_TASK_LOCKED, {"task_id": task_id}).first()
    if case is None:
        raise NotFoundError(f"task {task_id} does not exist")
    return _task_and_open_tasks(uow, task_id, case)


def open_task_for_user(
    uow: UnitOfWork, task_id: int, username: str
) -> tuple[User, impartiality.UserFacts, HumanTask, Case, list[HumanTask]]:
    """`open_task_in_case` for `username`, whose row (with roles) and impartiality facts for
    the case come in the same statement as the locked case. An unknown user is refused
    before an unknown task."""
    found = (
        uow.session.execute(
            _CASE_OF_TASK_LOCKED_WITH_USER,
            {"task_id": task_id, "username": username, "today": uow.now.date()},
        )
        .unique()
        .first()
    )
    if found is None:
        find_user(uow, username)  # raises when it is the user that is unknown
        raise NotFoundError(f"task {task_id} does not exist")
    case, user, *facts = found
    return (user, impartiality.user_facts(*facts), *_task_and_open_tasks(uow, task_id, case))


def _task_and_open_tasks(
    uow: UnitOfWork, task_id: int, case: Case
) -> tuple[HumanTask, Case, list[HumanTask]]:
    tasks = list(
        uow.session.scalars(_TASK_AND_OPEN_TASKS, {"case_id": case.id, "task_id": task_id})
    )
    task = next((t for t in tasks if t.id == task_id), None)
    if task is None:
        raise NotFoundError(f"task {task_id} does not exist")
    return task, case, [t for t in tasks if t.status == "ready"]


# Built once: every task operation runs them, and building a statement costs about as much
# as the ORM's work to execute it.
_CASE_OF_TASK_LOCKED = (
    select(Case)
    .where(
        Case.id
        == select(HumanTask.case_id).where(HumanTask.id == bindparam("task_id")).scalar_subquery()
    )
    .with_for_update()
    .execution_options(populate_existing=True)
)
_CASE_OF_TASK_LOCKED_WITH_USER = (
    select(
        Case,
        User,
        *impartiality.user_facts_columns(User.id, Case.person_id, bindparam("today", type_=Date)),
    )
    .join(User, User.username == bindparam("username"))
    # The state (tens of KiB) is read only when the case's workflow is not kept in memory.
    .options(joinedload(User.roles), defer(Case.state))
    .where(
        Case.id
        == select(HumanTask.case_id).where(HumanTask.id == bindparam("task_id")).scalar_subquery()
    )
    .with_for_update(of=Case)
    .execution_options(populate_existing=True)
)
_TASK_AND_OPEN_TASKS = (
    select(HumanTask)
    .where(
        HumanTask.case_id == bindparam("case_id"),
        or_(HumanTask.id == bindparam("task_id"), HumanTask.status == "ready"),
    )
    .execution_options(populate_existing=True)
)


def lock_case(uow: UnitOfWork, case_id: int) -> Case:
    case = uow.session.get(Case, case_id, with_for_update=True, populate_existing=True)
    if case is None:
        raise NotFoundError(f"case {case_id} does not exist")
    return case


def _ensure_open(uow: UnitOfWork, task: HumanTask, case: Case) -> None:
    if task.status == "completed":
        by = uow.session.get(User, task.completed_by_id) if task.completed_by_id else None
        who = by.display_name if by else "someone else"
        when = task.completed_at.strftime("%d %b %Y %H:%M") if task.completed_at else ""
        raise ConflictError(f"this task was already completed by {who} {when}".rstrip())
    if task.status == "cancelled":
        raise ConflictError("this task was cancelled: the case no longer needs it")
    if case.status != "running":
        raise ConflictError(f"the case is {case.status}; its tasks cannot be worked on")


class Refused(PermissionDenied):
    """A refusal with every rule that barred the user, for the record and the explanation."""

    def __init__(self, refusals: list[assignment.Refusal], user: User, task: HumanTask, point: str):
        super().__init__("; ".join(r.reason for r in refusals))
        self.refusals = refusals
        self.username = user.username
        self.task_id = task.id
        self.case_id = task.case_id
        self.point = point

    @property
    def impartiality_rules(self) -> list[assignment.Refusal]:
        return [r for r in self.refusals if r.rule.startswith("SOD-")]


def _refuse_if_barred(
    uow: UnitOfWork,
    user: User,
    task: HumanTask,
    case: Case,
    point: str,
    facts: impartiality.UserFacts | None = None,
) -> None:
    """Check every rule at `point` (claim, assign, complete); record the impartiality check.
    `facts`: the user's impartiality facts for the case, when read with the case."""
    found = assignment.refusals(user, task, case, session=uow.session, now=uow.now, known=facts)
    if found:
        raise Refused(found, user, task, point)
    checked = impartiality.rules.rules_of(task, impartiality.current_policy())
    if checked:
        uow.audit.record(
            uow.now,
            user.username,
            "sod_check_passed",
            f"{point} of {task.name}: {', '.join(checked)} checked, none bars {user.username}",
            case_id=case.id,
            task_id=task.id,
            after={"point": point, "rules": list(checked)},
        )


def record_refusal(uow: UnitOfWork, refused: Refused) -> None:
    """Write the failed impartiality check (in its own unit of work: the refused one rolled back)."""
    rules = refused.impartiality_rules
    if not rules:
        return
    uow.audit.record(
        uow.now,
        refused.username,
        "sod_check_failed",
        f"{refused.point} refused: " + "; ".join(r.reason for r in rules),
        case_id=refused.case_id,
        task_id=refused.task_id,
        after={
            "point": refused.point,
            "rules": [{"rule": r.rule, "reason": r.reason, "facts": r.facts} for r in rules],
        },
    )


def claim_task(uow: UnitOfWork, task_id: int, user: User) -> HumanTask:
    task, case = open_task(uow, task_id)
    _ensure_open(uow, task, case)
    if task.assignee_id == user.id:
        return task
    _refuse_if_barred(uow, user, task, case, "claim")
    if task.assignee_id is not None:
        holder = uow.session.get(User, task.assignee_id)
        raise ConflictError(
            f"this task is already claimed by {holder.display_name if holder else 'someone'}"
        )
    claimed = uow.session.execute(
        update(HumanTask)
        .where(
            HumanTask.id == task.id, HumanTask.assignee_id.is_(None), HumanTask.status == "ready"
        )
        .values(assignee_id=user.id, claimed_at=uow.now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        raise ConflictError("someone else claimed this task at the same moment")
    uow.session.refresh(task)
    uow.audit.record(
        uow.now,
        user.username,
        "task_claimed",
        f"{task.name} claimed",
        case_id=case.id,
        task_id=task.id,
    )
    return task


def assign_task(
    uow: UnitOfWork, task_id: int, manager: User, assignee: User, base_url: str = ""
) -> HumanTask:
    """A manager gives an open task to a staff member, who must be eligible for it; the
    assignee is told by e-mail."""
    if not (manager.role_names & {"manager", "admin"}):
        raise PermissionDenied("only a manager can assign tasks to others")
    task, case = open_task(uow, task_id)
    _ensure_open(uow, task, case)
    _refuse_if_barred(uow, assignee, task, case, "assignment")
    previous = task.assignee_id
    task.assignee_id = assignee.id
    task.claimed_at = uow.now
    task.assignment_flag = None
    uow.audit.record(
        uow.now,
        manager.username,
        "task_assigned",
        f"{task.name} assigned to {assignee.username}",
        case_id=case.id,
        task_id=task.id,
        before={"assignee_id": previous},
        after={"assignee": assignee.username},
    )
    notify_assigned(uow.session, uow.now, task, assignee, base_url)
    return task


def unclaim_task(uow: UnitOfWork, task_id: int, user: User) -> HumanTask:
    task, case = open_task(uow, task_id)
    _ensure_open(uow, task, case)
    if task.assignee_id is None:
        return task
    if task.assignee_id != user.id and not ({"manager", "admin"} & user.role_names):
        raise PermissionDenied("only the assignee or a manager can release this task")
    task.assignee_id = None
    task.claimed_at = None
    uow.audit.record(
        uow.now,
        user.username,
        "task_unclaimed",
        f"{task.name} released",
        case_id=case.id,
        task_id=task.id,
    )
    return task


def complete_task(
    engine: Engine, uow: UnitOfWork, task_id: int, user: User, data: dict[str, Any]
) -> HumanTask:
    task, case, open_tasks = open_task_in_case(uow, task_id)
    return _complete(engine, uow, user, task, case, open_tasks, data)


def complete_task_as(
    engine: Engine, uow: UnitOfWork, task_id: int, username: str, data: dict[str, Any]
) -> HumanTask:
    """`complete_task` for a user known by name, read with the case (one statement less)."""
    user, facts, task, case, open_tasks = open_task_for_user(uow, task_id, username)
    return _complete(engine, uow, user, task, case, open_tasks, data, facts)


def _complete(
    engine: Engine,
    uow: UnitOfWork,
    user: User,
    task: HumanTask,
    case: Case,
    open_tasks: list[HumanTask],
    data: dict[str, Any],
    facts: impartiality.UserFacts | None = None,
) -> HumanTask:
    _ensure_open(uow, task, case)
    if task.assignee_id is not None and task.assignee_id != user.id:
        holder = uow.session.get(User, task.assignee_id)
        raise PermissionDenied(
            f"this task is claimed by {holder.display_name if holder else 'someone else'}"
        )
    _refuse_if_barred(uow, user, task, case, "completion", facts)
    if task.form:
        form = engine.task_form(task, uow.session)
        if form is None:
            raise ValidationError(f"form '{task.form}' does not exist")
        form.validate(data)
    elif data:
        raise ValidationError(
            "this task takes no form data", {k: ["is not a field of this task"] for k in data}
        )

    run = load_run(engine, uow, case, user.username, open_tasks=open_tasks)
    spiff_task = run.task(task.task_uuid)
    if spiff_task is None or spiff_task.state != TaskState.READY:
        raise ConflictError("the case has moved on since this task was opened; reload it")
    spiff_task.data.update(data)
    # Completing the task may reach a timer event at once: it must read the engine's clock.
    with timers_as_of(uow.now):
        spiff_task.run()

    if task.assignee_id is None:
        task.assignee_id = user.id
        task.claimed_at = uow.now
    task.status = "completed"
    task.completed_by_id = user.id
    task.completed_at = uow.now
    task.submitted_data = data
    update_changed(uow.session, task, deferred=True)
    uow.audit.record(
        uow.now,
        user.username,
        "task_completed",
        f"{task.name} completed",
        case_id=case.id,
        task_id=task.id,
        after={"task": task.task_spec_id, "data": data},
    )
    run.advance()
    run.persist()
    return task


def retry_case(engine: Engine, uow: UnitOfWork, case_id: int, user: User) -> Case:
    """Run a case's failed step again (after the model or data was fixed)."""
    case = lock_case(uow, case_id)
    if case.status != "errored":
        raise ConflictError(f"case {case_id} is {case.status}, not errored")
    run = load_run(engine, uow, case, user.username)
    for failed in run.workflow.get_tasks(state=TaskState.ERROR):
        failed._set_state(TaskState.READY)
    case.status = "running"
    case.error_message = None
    case.error_element = None
    uow.audit.record(
        uow.now, user.username, "case_retried", "failed step run again", case_id=case.id
    )
    run.advance()
    run.persist()
    return case


def find_user(uow: UnitOfWork, username: str) -> User:
    user = uow.session.scalars(_USER_WITH_ROLES, {"username": username}).unique().first()
    if user is None:
        raise NotFoundError(f"user '{username}' does not exist")
    return user


_USER_WITH_ROLES = (
    select(User).options(joinedload(User.roles)).where(User.username == bindparam("username"))
)
