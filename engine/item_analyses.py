"""Stored item analyses: the statistical review of an exam form (ISO/IEC 17024 9.3) kept as a
quality record.

A quality manager or a manager uploads one exam form's item-level responses (and its answer
key when the responses are options rather than scores); `engine.item_analysis` computes the
statistics, and `record_item_analysis` stores the result with the thresholds, the pass mark
and the checksums of the files, and writes an audit event. A file that cannot be read stores
nothing: the ValidationError names the line and the column.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .errors import NotFoundError, PermissionDenied, ValidationError
from .item_analysis import Thresholds, analyse, read_key, read_responses
from .models import ItemAnalysis, Scheme, User

if TYPE_CHECKING:
    from . import Engine

# Who keeps the statistical review of exams: the quality manager, and managers.
ANALYSIS_ROLES = frozenset({"quality_manager", "manager"})
# One exam form's responses: 5 MB is some 300,000 rows of `candidate,item,score`.
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_EXAM_FORM = 200
LIST_LIMIT = 200


@dataclass
class AnalysisUpload:
    """What an upload (page, CLI or demo) hands over: the files as bytes, the settings."""

    exam_form: str
    responses: bytes
    key: bytes | None = None
    scheme_code: str | None = None
    pass_mark: float | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)


def may_analyse(user: User) -> bool:
    return bool(user.role_names & ANALYSIS_ROLES)


def record_item_analysis(engine: Engine, username: str, upload: AnalysisUpload) -> ItemAnalysis:
    """Compute and store one exam form's item analysis (one unit of work, one audit event)."""
    from .cases import find_user

    with engine.unit_of_work() as uow:
        user = find_user(uow, username)
        if not may_analyse(user):
            raise PermissionDenied(
                "only a quality manager or a manager may record an item analysis"
            )
        exam_form = upload.exam_form.strip()
        if not exam_form or len(exam_form) > MAX_EXAM_FORM:
            raise ValidationError(
                "name the exam form the responses come from",
                {"exam_form": [f"is required (at most {MAX_EXAM_FORM} characters)"]},
            )
        scheme = _scheme(uow.session, upload.scheme_code)
        _check_settings(upload)
        keys = read_key(_text(upload.key, "key")) if upload.key else None
        responses = read_responses(_text(upload.responses, "responses"), keys)
        result = analyse(responses, upload.thresholds, upload.pass_mark).as_dict()
        analysis = ItemAnalysis(
            exam_form=exam_form,
            scheme_id=scheme.id if scheme is not None else None,
            uploaded_by_id=user.id,
            uploaded_at=uow.now,
            thresholds=result["thresholds"],
            pass_mark=upload.pass_mark,
            candidates=result["candidates"],
            item_count=len(result["items"]),
            kr20=result["kr20"],
            flagged_items=sum(1 for item in result["items"].values() if item["flags"]),
            result=result,
            source_checksum=hashlib.sha256(upload.responses).hexdigest(),
            key_checksum=hashlib.sha256(upload.key).hexdigest() if upload.key else None,
        )
        uow.session.add(analysis)
        uow.session.flush()
        uow.audit.record(
            uow.now,
            user.username,
            "item_analysis_recorded",
            f"item analysis {analysis.id} of exam form {exam_form}: "
            f"{analysis.candidates} candidates, {analysis.item_count} items, "
            f"{analysis.flagged_items} flagged",
            after={
                "item_analysis_id": analysis.id,
                "exam_form": exam_form,
                "scheme": scheme.code if scheme is not None else None,
                "source_checksum": analysis.source_checksum,
                "key_checksum": analysis.key_checksum,
                "kr20": analysis.kr20,
                "form_flags": result["flags"],
            },
        )
        return analysis


def item_analyses(
    session: Session, limit: int = LIST_LIMIT
) -> list[tuple[ItemAnalysis, str, str | None]]:
    """The newest stored analyses with who uploaded each and its scheme code."""
    rows = session.execute(
        select(ItemAnalysis, User.display_name, Scheme.code)
        .join(User, User.id == ItemAnalysis.uploaded_by_id)
        .outerjoin(Scheme, Scheme.id == ItemAnalysis.scheme_id)
        .order_by(ItemAnalysis.uploaded_at.desc(), ItemAnalysis.id.desc())
        .limit(limit)
    ).all()
    return [(analysis, uploader, code) for analysis, uploader, code in rows]


def item_analysis(session: Session, analysis_id: int) -> tuple[ItemAnalysis, str, str | None]:
    row = session.execute(
        select(ItemAnalysis, User.display_name, Scheme.code)
        .join(User, User.id == ItemAnalysis.uploaded_by_id)
        .outerjoin(Scheme, Scheme.id == ItemAnalysis.scheme_id)
        .where(ItemAnalysis.id == analysis_id)
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"item analysis {analysis_id} does not exist")
    return row[0], row[1], row[2]


def item_analysis_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ItemAnalysis)) or 0


def _scheme(session: Session, code: str | None) -> Scheme | None:
    code = (code or "").strip()
    if not code:
        return None
    scheme = session.scalars(
        select(Scheme).where(Scheme.code == code).order_by(Scheme.active.desc(), Scheme.id.desc())
    ).first()
    if scheme is None:
        raise ValidationError(f"there is no scheme {code!r}", {"scheme": [f"{code!r} is unknown"]})
    return scheme


def _check_settings(upload: AnalysisUpload) -> None:
    t = upload.thresholds
    problems: dict[str, list[str]] = {}
    for name in ("min_p", "max_p", "min_reliability"):
        value = getattr(t, name)
        if not (math.isfinite(value) and 0 <= value <= 1):
            problems[name] = ["must be between 0 and 1"]
    if not (math.isfinite(t.min_rpb) and -1 <= t.min_rpb <= 1):
        problems["min_rpb"] = ["must be between -1 and 1"]
    if not problems and t.min_p > t.max_p:
        problems["min_p"] = ["must not be above max_p"]
    if upload.pass_mark is not None and not (
        math.isfinite(upload.pass_mark) and upload.pass_mark >= 0
    ):
        problems["pass_mark"] = ["must be a raw score of 0 or more"]
    if problems:
        field_name, [problem] = next(iter(problems.items()))
        raise ValidationError(f"{field_name} {problem}", problems)


def _text(data: bytes, field_name: str) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise ValidationError(
            f"the {field_name} file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB",
            {field_name: ["is too large"]},
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValidationError(
            f"the {field_name} file is not UTF-8 text (line {line}, byte {exc.start})",
            {field_name: [f"line {line}: not UTF-8"]},
        ) from None


# -- demo ---------------------------------------------------------------------------------------

DEMO_EXAM_FORM = "CWI written examination, form 2026-A"


def demo_responses(candidates: int = 120, items: int = 30, seed: int = 17) -> tuple[bytes, bytes]:
    """A believable multiple-choice form (options A-D): candidates of varied ability, items of
    varied difficulty, one item nearly everyone gets right and one whose key is wrong (strong
    candidates choose another option). Returns the responses and the answer key as CSV."""
    import random

    rng = random.Random(seed)
    options = "ABCD"
    keys = {f"Q{n:02d}": rng.choice(options) for n in range(1, items + 1)}
    difficulty = {item: rng.uniform(-1.6, 1.4) for item in keys}
    difficulty["Q07"] = -4.0
    miskeyed = "Q13"
    truly_right = {**keys, miskeyed: next(o for o in options if o != keys[miskeyed])}
    lines = ["candidate,item,response"]
    for c in range(1, candidates + 1):
        ability = rng.gauss(0.3, 1.0)
        for item, right in truly_right.items():
            chance = 1 / (1 + math.exp(-1.7 * (ability - difficulty[item])))
            wrong = [o for o in options if o != right]
            answer = right if rng.random() < chance else rng.choice(wrong)
            lines.append(f"C{c:04d},{item},{answer}")
    key_lines = ["item,key"] + [f"{item},{key}" for item, key in keys.items()]
    return ("\n".join(lines) + "\n").encode(), ("\n".join(key_lines) + "\n").encode()


def load_demo_item_analysis(engine: Engine, username: str = "quality") -> int:
    """Store the demo exam form's analysis (only once); returns how many were stored."""
    with engine.sessions() as session:
        if item_analysis_count(session):
            return 0
    responses, key = demo_responses()
    record_item_analysis(
        engine,
        username,
        AnalysisUpload(
            exam_form=DEMO_EXAM_FORM,
            responses=responses,
            key=key,
            scheme_code="CWI",
            pass_mark=21,
        ),
    )
    return 1
