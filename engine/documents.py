"""Evidence and letters attached to cases: size and type limits, checksum, audit."""

from __future__ import annotations

import hashlib
import re

from .errors import PermissionDenied, ValidationError
from .models import Case, Document, User
from .unit_of_work import UnitOfWork

MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
ALLOWED_TYPES = {
    "application/pdf": (".pdf",),
    "image/png": (".png",),
    "image/jpeg": (".jpg", ".jpeg"),
    "text/plain": (".txt",),
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
_SIGNATURES = {"application/pdf": b"%PDF", "image/png": b"\x89PNG", "image/jpeg": b"\xff\xd8\xff"}


def attach_document(
    uow: UnitOfWork,
    case: Case,
    user: User,
    filename: str,
    content_type: str,
    content: bytes,
    task_id: int | None = None,
) -> Document:
    if case.person_id != user.person_id and not user.is_staff:
        raise PermissionDenied("only the applicant or staff may add documents to this case")
    fields: dict[str, list[str]] = {}
    clean_name = _UNSAFE.sub("_", (filename or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip(
        " ."
    )[:200]
    extensions = ALLOWED_TYPES.get(content_type)
    if not clean_name:
        fields["file"] = ["the file needs a name"]
    elif extensions is None:
        fields["file"] = [
            f"files of type {content_type or 'unknown'} are not accepted (PDF, PNG, JPEG or plain text)"
        ]
    elif not clean_name.lower().endswith(extensions):
        fields["file"] = [f"a {content_type} file must end with {' or '.join(extensions)}"]
    elif len(content) > MAX_DOCUMENT_BYTES:
        fields["file"] = [f"the file is larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB"]
    elif not content:
        fields["file"] = ["the file is empty"]
    elif content_type in _SIGNATURES and not content.startswith(_SIGNATURES[content_type]):
        fields["file"] = [f"the file's content is not {content_type}"]
    if fields:
        raise ValidationError("the document was not accepted", fields)
    document = Document(
        case_id=case.id,
        task_id=task_id,
        filename=clean_name,
        content_type=content_type,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        content=content,
        uploaded_by_id=user.id,
        uploaded_at=uow.now,
    )
    uow.session.add(document)
    uow.session.flush()
    uow.audit.record(
        uow.now,
        user.username,
        "document_added",
        f"{clean_name} ({len(content):,} bytes) added",
        case_id=case.id,
        task_id=task_id,
        after={"document_id": document.id, "sha256": document.sha256},
    )
    return document
