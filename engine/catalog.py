"""The process library: model versions in the database and their specs in memory.

Shipped models (`bpmn/*.bpmn`) are synchronised into `model_versions` as published
versions; a file whose content changed becomes a new version and older cases stay on the
version they started with. A process owner may also publish versions through the modeler
(engine/model_lifecycle.py); a shipped file never silently overrides such a newer version.

Specs are cached per model version id. Only published versions are ever resolved here (cases
pin published versions, and a version is immutable once published), so the cache never needs
invalidating, only filling, in however many web and worker processes; a draft's spec is never
cached.
"""

from __future__ import annotations

import logging
import threading
from datetime import date, datetime
from pathlib import Path

from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .audit import AuditLog
from .certificates import add_months
from .errors import ModelError, NotFoundError
from .models import ModelVersion
from .runtime.serializer import StateSerializer
from .runtime.specs import ParsedModel, TaskProperties, checksum, parse_model
from .runtime.xml import UnsafeXMLError, parse_untrusted_xml

BPMN_DIR = Path(__file__).resolve().parent.parent / "bpmn"
REVIEW_INTERVAL_MONTHS = 12

log = logging.getLogger(__name__)


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
        self._element_ids: dict[int, frozenset[str]] = {}
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
        """Publish each shipped model whose content is new as a new version.

        A file is new when it differs from the latest version synchronised from a file. It
        replaces the published version only if that one came from a file too: a version a
        process owner published through the modeler after the last shipped one stays
        published (the file's change is logged and skipped; the process owner can take it
        over in the modeler)."""
        created = []
        for model in self.parse_shipped_models():
            shipped = self._latest_shipped_version(session, model.process_id)
            if shipped is not None and shipped.checksum == model.checksum:
                continue
            current = self._published(session, model.process_id)
            if current is not None and not current.shipped:
                log.warning(
                    "%s changed but was not published: %s v%d, published through the modeler, "
                    "is newer than the last shipped version",
                    model.filename,
                    model.process_id,
                    current.version,
                )
                continue
            version = self.store_version(session, model, now, status="published")
            version.review_due_on = review_due(now)
            if current is not None:
                current.status = "retired"
                current.retired_at = now
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
                    "retired_version": current.version if current is not None else None,
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
    def _latest_shipped_version(session: Session, process_id: str) -> ModelVersion | None:
        return session.scalars(
            select(ModelVersion)
            .where(ModelVersion.process_id == process_id, ModelVersion.author_id.is_(None))
            .order_by(ModelVersion.version.desc())
            .limit(1)
        ).first()

    @staticmethod
    def _published(session: Session, process_id: str) -> ModelVersion | None:
        return session.scalars(
            select(ModelVersion)
            .where(ModelVersion.process_id == process_id, ModelVersion.status == "published")
            .order_by(ModelVersion.version.desc())
            .limit(1)
        ).first()

    # -- what references may point at ------------------------------------------------------

    @staticmethod
    def published_process_ids(session: Session) -> set[str]:
        """Processes a call activity may call: those with a published version."""
        return set(
            session.scalars(
                select(ModelVersion.process_id).where(ModelVersion.status == "published")
            )
        )

    def published_element_ids(self, session: Session) -> set[str]:
        """Element ids of every published model (what `exclude_performers_of` may name)."""
        ids: set[str] = set()
        for version_id in session.scalars(
            select(ModelVersion.id).where(ModelVersion.status == "published")
        ):
            found = self._element_ids.get(version_id)
            if found is None:
                xml = session.scalar(
                    select(ModelVersion.bpmn_xml).where(ModelVersion.id == version_id)
                )
                found = _element_ids(xml or "")
                with self._lock:
                    self._element_ids[version_id] = found
            ids |= found
        return ids

    # -- resolving what a case runs --------------------------------------------------------

    def published_version(self, session: Session, process_id: str) -> ModelVersion:
        version = self._published(session, process_id)
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

    def pin_versions_keeping(
        self, session: Session, version: ModelVersion, kept: dict[str, int]
    ) -> dict[str, int]:
        """`version` and the processes it calls, transitively: a callee already pinned in
        `kept` stays on its version, a new one gets its published version."""
        pinned: dict[str, int] = {version.process_id: version.id}
        pending = list(_called_processes(self._spec(session, version.id)))
        while pending:
            current = pending.pop()
            if current in pinned:
                continue
            version_id = kept.get(current) or self.published_version(session, current).id
            pinned[current] = int(version_id)
            pending.extend(_called_processes(self._spec(session, int(version_id))))
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


def review_due(published_at: datetime) -> date:
    """When a version published at `published_at` is next due for its periodic review."""
    return add_months(published_at.date(), REVIEW_INTERVAL_MONTHS)


def _element_ids(xml: str) -> frozenset[str]:
    try:
        tree = parse_untrusted_xml(xml)
    except UnsafeXMLError:
        return frozenset()
    return frozenset(str(e.get("id")) for e in tree.iter() if e.get("id"))


def _called_processes(spec: BpmnProcessSpec) -> set[str]:
    from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask

    return {ts.spec for ts in spec.task_specs.values() if isinstance(ts, SubWorkflowTask)}
