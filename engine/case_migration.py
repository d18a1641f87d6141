"""Moving running cases to a newer version of their process model, explicitly and audited.

A publish never changes a running case. A quality manager may move selected cases to the
new version: each case is previewed first (what changes ahead of it) and refused when the
move could break it: a step it is at (ready, waiting, or running a called process) or a step
it has already passed would disappear, or a step it is at would change its definition (its
role, form, properties, timer, type ...; where its flows lead may change). The move itself
uses SpiffWorkflow's `diff_workflow`/`migrate_workflow`, under the case's lock, in one unit of
work per case: the state is migrated and saved, the case is pinned to the new version, its
human tasks and timers are brought in line, and a `case_migrated` event records the change.
A waiting timer keeps the moment it fires.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.util.diff import SpecDiff, WorkflowDiff, migrate_workflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import cases
from .catalog import SpecBundle
from .errors import NotFoundError
from .model_diff import ModelDiff, diff_models
from .models import Case, HumanTask, ModelVersion, Person
from .runtime.runner import CaseRun
from .runtime.timer_clock import timers_as_of
from .unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from . import Engine

OPEN_CASE_STATUSES = ("running", "errored")
# A task the case is at: its definition must survive the move.
CURRENT = TaskState.READY | TaskState.WAITING | TaskState.STARTED
# What may change in the definition of a step the case is at: where its flows come from and
# lead to, and its documentation.
COMPATIBLE_CHANGES = frozenset({"inputs", "outputs", "documentation"})
_CHANGE_WORDS = {
    "extensions": "its properties (role, form, due, SoD ...)",
    "lane": "its lane",
    "bpmn_name": "its name",
    "typename": "its type",
    "event_definition": "its event or timer",
    "spec": "the process it calls",
    "script": "its script",
    "prescript": "its pre-script",
    "postscript": "its post-script",
    "cond_task_specs": "its conditions",
    "default_task_spec": "its default flow",
}


@dataclass
class MigrationPreview:
    case_id: int
    from_version: int | None
    to_version: int | None
    can_migrate: bool
    reason: str | None = None
    changes: list[str] = field(default_factory=list)


@dataclass
class CaseOnVersion:
    case_id: int
    person_name: str | None
    version: int
    version_id: int
    status: str
    started_at: datetime
    current_tasks: list[str] = field(default_factory=list)


def running_cases(session: Session, process_id: str) -> list[CaseOnVersion]:
    """The open cases of a process, each with the version it runs on and where it is."""
    rows = session.execute(
        select(Case, ModelVersion.version, Person)
        .join(ModelVersion, ModelVersion.id == Case.model_version_id)
        .outerjoin(Person, Person.id == Case.person_id)
        .where(Case.process_id == process_id, Case.status.in_(OPEN_CASE_STATUSES))
        .order_by(Case.id)
    ).all()
    ready: dict[int, list[str]] = {}
    if rows:
        for case_id, name in session.execute(
            select(HumanTask.case_id, HumanTask.name)
            .where(
                HumanTask.case_id.in_([case.id for case, _v, _p in rows]),
                HumanTask.status == "ready",
            )
            .order_by(HumanTask.id)
        ):
            ready.setdefault(case_id, []).append(name)
    return [
        CaseOnVersion(
            case.id,
            person.full_name if person is not None else None,
            version,
            case.model_version_id,
            case.status,
            case.started_at,
            ready.get(case.id, []),
        )
        for case, version, person in rows
    ]


# -- preview and move ---------------------------------------------------------------------


@dataclass
class _Plan:
    """A case's workflow moved to the target version in memory, not yet saved."""

    run: CaseRun
    bundle: SpecBundle
    versions: dict[str, int]
    preview: MigrationPreview


def preview(
    engine: Engine, uow: UnitOfWork, case_ids: list[int], target_version_id: int
) -> list[MigrationPreview]:
    """What moving each case would change, or why it cannot move. Writes nothing."""
    target = _target(uow.session, target_version_id)
    diffs: dict[int, ModelDiff] = {}
    previews = []
    for case_id in case_ids:
        case = uow.session.get(Case, case_id)
        plan = _plan(engine, uow, case_id, case, target, diffs)
        previews.append(plan if isinstance(plan, MigrationPreview) else plan.preview)
    uow.session.rollback()
    return previews


def migrate_case(
    engine: Engine, uow: UnitOfWork, case_id: int, target_version_id: int, actor: str
) -> MigrationPreview:
    """Move one case (locked for the unit of work) to the target version, or say why not;
    a refused case is left exactly as it was."""
    target = _target(uow.session, target_version_id)
    case = uow.session.get(Case, case_id, with_for_update=True, populate_existing=True)
    plan = _plan(engine, uow, case_id, case, target, {}, actor)
    if isinstance(plan, MigrationPreview):
        return plan
    assert case is not None
    from_version_id = case.model_version_id
    from_versions = {case.process_id: from_version_id, **case.subprocess_versions}
    case.model_version_id = target.id
    case.subprocess_versions = {k: v for k, v in plan.versions.items() if k != case.process_id}
    plan.run.bundle = plan.bundle
    plan.run.persist()
    # A workflow kept in memory from before the move must never be used again.
    engine.live_workflows.take(case.id, case.lock_version)
    result = plan.preview
    uow.audit.record(
        uow.now,
        actor,
        "case_migrated",
        f"moved from {target.process_id} v{result.from_version} to v{result.to_version}",
        case_id=case.id,
        before={
            "version_id": from_version_id,
            "version": result.from_version,
            "versions": from_versions,
        },
        after={
            "version_id": target.id,
            "version": result.to_version,
            "versions": plan.versions,
            "changes": result.changes,
        },
    )
    return result


def _target(session: Session, version_id: int) -> ModelVersion:
    target = session.get(ModelVersion, version_id)
    if target is None:
        raise NotFoundError(f"model version {version_id} does not exist")
    return target


def _plan(
    engine: Engine,
    uow: UnitOfWork,
    case_id: int,
    case: Case | None,
    target: ModelVersion,
    diffs: dict[int, ModelDiff],
    actor: str = "system",
) -> _Plan | MigrationPreview:
    session = uow.session
    label = f"{target.process_id} v{target.version}"

    def refuse(reason: str, from_version: int | None = None) -> MigrationPreview:
        return MigrationPreview(case_id, from_version, target.version, False, reason)

    if case is None:
        return refuse(f"case {case_id} does not exist")
    source = session.get(ModelVersion, case.model_version_id)
    from_number = source.version if source is not None else None
    if case.process_id != target.process_id:
        return refuse(
            f"case {case_id} is a {case.process_id} case, not a {target.process_id} case",
            from_number,
        )
    if case.status != "running":
        return refuse(f"case {case_id} is {case.status}; only running cases move", from_number)
    if case.model_version_id == target.id:
        return refuse(f"case {case_id} already runs on {label}", from_number)
    if target.status != "published":
        return refuse(f"{label} is {target.status.replace('_', ' ')}, not published", from_number)

    run = cases.load_run(engine, uow, case, actor, for_change=False)
    workflow = run.workflow
    versions = engine.catalog.pin_versions_keeping(session, target, case.subprocess_versions)
    bundle = engine.catalog.bundle(session, case.process_id, versions)
    spec_diff = SpecDiff(engine.serializer.registry, workflow.spec, bundle.spec)
    workflow_diff = WorkflowDiff(workflow, spec_diff)

    reason = _refusal(workflow_diff, spec_diff, label)
    if reason is not None:
        return refuse(reason, from_number)

    timers = _waiting_timers(workflow, spec_diff)
    with timers_as_of(uow.now):
        migrate_workflow(workflow_diff, workflow, bundle.spec)
    workflow.subprocess_specs = bundle.subprocess_specs
    for task in workflow.get_tasks(state=TaskState.WAITING, skip_subprocesses=True):
        if task.id in timers:
            task.internal_data = timers[task.id]
    stray = [
        t
        for t in workflow.tasks.values()
        if bundle.spec.task_specs.get(t.task_spec.name) is not t.task_spec
    ]
    if stray:
        return refuse(
            f"{_step(stray[0])} ({TaskState.get_name(stray[0].state).lower()}) "
            f"has no place in {label}",
            from_number,
        )

    if source is not None and source.id not in diffs:
        diffs[source.id] = diff_models(source.bpmn_xml, target.bpmn_xml)
    changes = _changes(diffs.get(source.id) if source is not None else None, run, source, target)
    return _Plan(
        run,
        bundle,
        versions,
        MigrationPreview(case_id, from_number, target.version, True, None, changes),
    )


def _refusal(workflow_diff: WorkflowDiff, spec_diff: SpecDiff, label: str) -> str | None:
    for task in workflow_diff.removed:
        if task.has_state(CURRENT):
            return f"its current step {_step(task)} does not exist in {label}"
        if task.has_state(TaskState.FINISHED_MASK):
            return (
                f"the step {_step(task)}, which the case has already passed, does not exist in "
                f"{label}; its record would no longer match the model"
            )
    for task in workflow_diff.changed:
        if not task.has_state(CURRENT):
            continue
        changed = [
            a for a in spec_diff.changed.get(task.task_spec, []) if a not in COMPATIBLE_CHANGES
        ]
        if changed:
            what = ", ".join(_CHANGE_WORDS.get(a, a.replace("_", " ")) for a in changed)
            return f"its current step {_step(task)} would change in {label}: {what}"
    return None


def _waiting_timers(workflow, spec_diff: SpecDiff) -> dict:
    """The internal data (the moment it fires) of each waiting timer whose definition stays:
    the move resets waiting tasks, which would otherwise start their timers again."""
    kept = {}
    for task in workflow.get_tasks(state=TaskState.WAITING, skip_subprocesses=True):
        definition = getattr(task.task_spec, "event_definition", None)
        if isinstance(definition, TimerEventDefinition) and task.task_spec not in spec_diff.changed:
            kept[task.id] = deepcopy(task.internal_data)
    return kept


def _changes(
    diff: ModelDiff | None, run: CaseRun, source: ModelVersion | None, target: ModelVersion
) -> list[str]:
    """Sentences for the steps ahead of the case: added, removed and changed elements that
    are flow steps (flows and lanes show in the steps they connect), skipping steps the case
    has completed and is not at; and forms that change with the version."""
    if diff is None:
        return []
    passed, current = set(), set()
    for task in run.workflow.get_tasks(skip_subprocesses=True):
        spec_id = task.task_spec.bpmn_id
        if spec_id is None:
            continue
        if task.has_state(CURRENT):
            current.add(spec_id)
        elif task.has_state(TaskState.COMPLETED):
            passed.add(spec_id)
    behind = passed - current

    def step(element_type: str) -> bool:
        return element_type not in ("sequenceFlow", "lane", "association", "textAnnotation")

    lines = []
    for change in diff.added:
        if step(change.element_type):
            lines.append(f"adds {change.label}")
    for change in diff.removed:
        if step(change.element_type):
            lines.append(f"removes {change.label}")
    for change in diff.changed:
        if not step(change.element_type) or change.element_id in behind:
            continue
        where = "the current step " if change.element_id in current else ""
        lines.append(f"changes {where}{change.label}: {'; '.join(change.details)}")
    old_forms = (source.forms_json if source is not None else None) or {}
    new_forms = target.forms_json or {}
    for name in sorted(set(old_forms) | set(new_forms)):
        if old_forms.get(name) != new_forms.get(name):
            lines.append(
                f"form '{name}' is the one edited with v{target.version}"
                if name in new_forms
                else f"form '{name}' is the one in forms/ again"
            )
    return lines


def _step(task) -> str:
    spec = task.task_spec
    name = spec.bpmn_name or spec.bpmn_id or spec.name
    return f"'{name}' ({spec.bpmn_id or spec.name})"
