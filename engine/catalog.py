"""The process library: model versions in the database and their specs in memory.

Shipped models (`bpmn/*.bpmn`) are synchronised into `model_versions` as published
versions; a file whose content changed becomes a new version and older cases stay on the
version they started with. Specs are cached per model version: a version never changes once
stored, so the cache never needs invalidating, only filling.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .audit import AuditLog
from .errors import ModelError, NotFoundError
from .models import ModelVersion
from .runtime.serializer import StateSerializer
from .runtime.specs import ParsedModel, TaskProperties, checksum, parse_model

BPMN_DIR = Path(__file__).resolve().parent.parent / "bpmn"


class SpecBundle:
    """A process spec with the specs of every call activity it reaches, pinned by version."""

    def __init__(
        self,
        version_ids: dict[str, int],
        spec: BpmnProcessSpec,
        subprocess_specs: dict[str, BpmnProcessSpec],
    ):
        self.version_ids = version_ids
        self.spec = spec
        self.subprocess_specs = subprocess_specs
        self._properties: dict[str, TaskProperties] = {}
        self.has_timers = any(
            isinstance(getattr(ts, "event_definition", None), TimerEventDefinition)
            for s in (spec, *subprocess_specs.values())
            for ts in s.task_specs.values()
        )

    def task_properties(self, task_spec) -> TaskProperties:
        key = f"{task_spec._wf_spec.name}:{task_spec.name}"
        props = self._properties.get(key)
        if props is None:
            props = self._properties[key] = TaskProperties.of(task_spec)
        return props


class ModelCatalog:
    def __init__(self, serializer: StateSerializer, bpmn_dir: Path = BPMN_DIR):
        self.serializer = serializer
        self.bpmn_dir = Path(bpmn_dir)
        self._specs: dict[int, BpmnProcessSpec] = {}
        self._bundles: dict[tuple[tuple[str, int], ...], SpecBundle] = {}
        self._lock = threading.Lock()

    # -- shipped models -------------------------------------------------------------------

    def parse_shipped_models(self) -> list[ParsedModel]:
        models = []
        for path in sorted(self.bpmn_dir.glob("*.bpmn")):
            models.append(
                parse_model(path.read_bytes(), str(path.relative_to(self.bpmn_dir.parent)))
            )
        return models

    def sync_shipped_models(
        self, session: Session, now: datetime, audit: AuditLog
    ) -> list[ModelVersion]:
        """Store each shipped model whose content is new as a new published version."""
        created = []
        for model in self.parse_shipped_models():
            latest = self._latest_version(session, model.process_id)
            if latest is not None and latest.checksum == model.checksum:
                continue
            version = self.store_version(session, model, now, status="published")
            if latest is not None and latest.status == "published":
                latest.status = "retired"
            created.append(version)
            audit.record(
                now,
                "system",
                "model_published",
                f"{model.process_id} v{version.version} published from {model.filename}",
                after={
                    "process_id": model.process_id,
                    "version": version.version,
                    "checksum": version.checksum,
                },
            )
        return created

    def store_version(
        self,
        session: Session,
        model: ParsedModel,
        now: datetime,
        status: str = "draft",
        author_id: int | None = None,
    ) -> ModelVersion:
        number = (
            session.scalar(
                select(func.max(ModelVersion.version)).where(
                    ModelVersion.process_id == model.process_id
                )
            )
            or 0
        ) + 1
        version = ModelVersion(
            process_id=model.process_id,
            version=number,
            name=model.name,
            bpmn_xml=model.source.decode("utf-8"),
            spec_json=self.serializer.dump_spec(model.spec),
            checksum=checksum(model.source),
            status=status,
            author_id=author_id,
            created_at=now,
            published_at=now if status == "published" else None,
        )
        session.add(version)
        session.flush()
        return version

    @staticmethod
    def _latest_version(session: Session, process_id: str) -> ModelVersion | None:
        return session.scalars(
            select(ModelVersion)
            .where(ModelVersion.process_id == process_id)
            .order_by(ModelVersion.version.desc())
            .limit(1)
        ).first()

    # -- resolving what a case runs --------------------------------------------------------

    def published_version(self, session: Session, process_id: str) -> ModelVersion:
        version = session.scalars(
            select(ModelVersion)
            .where(ModelVersion.process_id == process_id, ModelVersion.status == "published")
            .order_by(ModelVersion.version.desc())
            .limit(1)
        ).first()
        if version is None:
            raise NotFoundError(f"no published version of process '{process_id}'")
        return version

    def pin_versions(self, session: Session, process_id: str) -> dict[str, int]:
        """The published version of `process_id` and of every process it calls, transitively."""
        pinned: dict[str, int] = {}
        pending = [process_id]
        while pending:
            current = pending.pop()
            if current in pinned:
                continue
            version = self.published_version(session, current)
            pinned[current] = version.id
            spec = self._spec(session, version.id)
            pending.extend(_called_processes(spec))
        return pinned

    def bundle(self, session: Session, process_id: str, version_ids: dict[str, int]) -> SpecBundle:
        key = tuple(sorted(version_ids.items()))
        bundle = self._bundles.get(key)
        if bundle is not None:
            return bundle
        specs = {pid: self._spec(session, vid) for pid, vid in version_ids.items()}
        if process_id not in specs:
            raise ModelError(f"the case's process '{process_id}' has no pinned version")
        subprocess_specs = {pid: spec for pid, spec in specs.items() if pid != process_id}
        bundle = SpecBundle(dict(version_ids), specs[process_id], subprocess_specs)
        with self._lock:
            self._bundles[key] = bundle
        return bundle

    def _spec(self, session: Session, version_id: int) -> BpmnProcessSpec:
        spec = self._specs.get(version_id)
        if spec is None:
            spec_json = session.scalar(
                select(ModelVersion.spec_json).where(ModelVersion.id == version_id)
            )
            if spec_json is None:
                raise NotFoundError(f"model version {version_id} does not exist")
            spec = self.serializer.load_spec(spec_json)
            with self._lock:
                self._specs[version_id] = spec
        return spec


def _called_processes(spec: BpmnProcessSpec) -> set[str]:
    from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask

    return {ts.spec for ts in spec.task_specs.values() if isinstance(ts, SubWorkflowTask)}
