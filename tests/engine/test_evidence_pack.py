"""The accreditation evidence pack: a ZIP with a README and one CSV per section, each
section present (saying "none in this period" when empty), rows for the period's cases."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import MetaData, Table, insert, inspect, select

from engine.cli import main
from engine.errors import ValidationError
from engine.evidence_pack import NONE_IN_PERIOD, build_pack
from engine.models import Case, HumanTask, ModelVersion, User
from tests.engine.helpers import do
from tests.engine.test_appeals_complaints import decided_case, lodge_appeal, lodge_complaint
from tests.engine.test_retention import approve, ended_complaint, months_later, propose

SECTION_FILES = {
    "impartiality_report.csv",
    "appeals_log.csv",
    "complaints_log.csv",
    "internal_audits.csv",
    "corrective_actions.csv",
    "management_reviews.csv",
    "model_versions.csv",
    "item_analyses.csv",
    "retention_disposals.csv",
    "feedback.csv",
}


def read_pack(pack: bytes) -> tuple[str, dict[str, list[dict[str, str]]]]:
    with zipfile.ZipFile(io.BytesIO(pack)) as archive:
        names = set(archive.namelist())
        assert names == SECTION_FILES | {"README.txt"}
        readme = archive.read("README.txt").decode()
        sections = {
            name: list(csv.DictReader(io.StringIO(archive.read(name).decode())))
            for name in SECTION_FILES
        }
    return readme, sections


def is_empty(rows: list[dict[str, str]]) -> bool:
    return len(rows) == 1 and NONE_IN_PERIOD in rows[0].values()


def recorded_case(engine, process_id: str, step: str, data: dict, by: str = "quality") -> int:
    """A case of a quality process with one completed step, as its run leaves the tables."""
    now = engine.clock.now()
    with engine.unit_of_work() as uow:
        version_id = uow.session.scalars(select(ModelVersion.id)).first()
        actor = uow.session.scalars(select(User).where(User.username == by)).one()
        case = Case(
            process_id=process_id,
            model_version_id=version_id,
            status="completed",
            state="{}",
            started_at=now,
            ended_at=now,
        )
        uow.session.add(case)
        uow.session.flush()
        uow.session.add(
            HumanTask(
                case_id=case.id,
                task_uuid=f"{process_id}-{case.id}",
                task_spec_id=step,
                process_id=process_id,
                case_process_id=process_id,
                name=step.replace("_", " "),
                role="quality_manager",
                status="completed",
                created_at=now,
                completed_by_id=actor.id,
                completed_at=now,
                submitted_data=data,
            )
        )
        return case.id


def closed_complaint_with_corrective_action(engine) -> int:
    complaint = lodge_complaint(engine, None, "bob")
    do(engine, complaint, "confirm_relevance", "complaints")
    do(engine, complaint, "acknowledge_complaint", "complaints")
    do(engine, complaint, "investigate_complaint", "complaints")
    do(engine, complaint, "approve_response", "quality")
    do(
        engine,
        complaint,
        "record_corrective_action",
        "quality",
        corrective_action_needed=True,
        corrective_action_description="Answer exam-date enquiries within two days.",
    )
    do(engine, complaint, "close_complaint", "complaints")
    assert engine.case(complaint).status == "completed"
    return complaint


def test_pack_has_every_section_and_says_none_for_an_empty_period(engine):
    readme, sections = read_pack(build_pack(engine, date(2020, 1, 1), date(2020, 1, 31)))
    for name, rows in sections.items():
        assert is_empty(rows), name
        assert f"{name}" in readme
    assert readme.count(NONE_IN_PERIOD) == len(SECTION_FILES)
    assert "2020-01-01 to 2020-01-31" in readme


def test_pack_lists_the_period_s_appeals_complaints_and_quality_records(engine, clock):
    decided = decided_case(engine, "alice")
    appeal = lodge_appeal(engine, decided)
    do(engine, appeal, "acknowledge_appeal", "clerk")
    do(engine, appeal, "validate_appeal", "panel")
    do(engine, appeal, "investigate_appeal", "panel")
    do(engine, appeal, "decide_appeal", "panel", appeal_outcome="rejected")
    complaint = closed_complaint_with_corrective_action(engine)
    audit = recorded_case(
        engine, "internal_audit", "record_findings", {"findings": "Two overdue reviews."}
    )
    action = recorded_case(engine, "corrective_action", "root_cause", {"root_cause": "Backlog"})
    review = recorded_case(engine, "management_review", "minutes", {"decisions": "Hire a clerk"})
    today = clock.now().date()

    readme, sections = read_pack(build_pack(engine, today, today))

    [appeal_row] = sections["appeals_log.csv"]
    assert appeal_row["case_id"] == str(appeal)
    assert appeal_row["appealed_case_id"] == str(decided)
    assert appeal_row["outcome"] == "rejected" and appeal_row["status"] == "completed"
    [complaint_row] = sections["complaints_log.csv"]
    assert complaint_row["case_id"] == str(complaint) and complaint_row["closed_at"]
    assert complaint_row["corrective_action_needed"] == "True"
    [audit_row] = sections["internal_audits.csv"]
    assert (audit_row["case_id"], audit_row["completed_by"]) == (str(audit), "quality")
    assert "Two overdue reviews." in audit_row["record"]
    actions = {(r["source"], r["case_id"]) for r in sections["corrective_actions.csv"]}
    assert actions == {("corrective_action", str(action)), ("complaint", str(complaint))}
    [review_row] = sections["management_reviews.csv"]
    assert review_row["case_id"] == str(review) and "Hire a clerk" in review_row["record"]
    versions = {(r["process"], r["status"]) for r in sections["model_versions.csv"]}
    assert ("application", "published") in versions
    assert all(len(r["checksum"]) == 64 for r in sections["model_versions.csv"])
    kinds = {r["kind"] for r in sections["feedback.csv"]}
    assert kinds == {"certification", "complaint"}
    assert is_empty(sections["retention_disposals.csv"])
    assert "appeals_log.csv" in readme and "1 row(s)" in readme


def test_pack_lists_the_period_s_disposals(engine, clock):
    case_id = ended_complaint(engine)
    months_later(clock, 37)
    approve(engine, propose(engine, case_id))
    today = clock.now().date()
    _readme, sections = read_pack(build_pack(engine, today - timedelta(days=1), today))
    [row] = sections["retention_disposals.csv"]
    assert (row["case_id"], row["proposed_by"], row["approved_by"]) == (
        str(case_id),
        "quality",
        "manager",
    )
    assert row["documents_deleted"] == "1" and row["person_anonymised"] == "True"


def test_pack_summarises_stored_item_analyses_where_the_table_exists(engine, clock):
    if not inspect(engine.db).has_table("item_analyses"):
        pytest.skip("no item analysis table in this schema")
    table = Table("item_analyses", MetaData(), autoload_with=engine.db, resolve_fks=False)
    values = {}
    for column in table.columns:
        if column.primary_key or column.nullable:
            continue
        kind = column.type.python_type if not hasattr(column.type, "item_type") else list
        values[column.name] = {
            int: 1,
            float: 0.85,
            str: "form A",
            datetime: clock.now(),
        }.get(kind, {})
    with engine.db.begin() as connection:
        connection.execute(insert(table).values(**values))
    today = clock.now().date()
    _readme, sections = read_pack(build_pack(engine, today, today))
    [row] = sections["item_analyses.csv"]
    assert "result" not in row


def test_a_period_ending_before_it_starts_is_refused(engine):
    with pytest.raises(ValidationError) as refused:
        build_pack(engine, date(2026, 3, 2), date(2026, 3, 1))
    assert list(refused.value.fields) == ["to"]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_evidence_pack_command_writes_the_zip(engine, clock, tmp_path, capsys):
    decided_case(engine, "alice")
    out = tmp_path / "pack.zip"
    url = engine.db.url.render_as_string(hide_password=False)
    today = clock.now().date().isoformat()
    args = ["--database", url, "evidence-pack", "--from", today, "--to", today, str(out)]
    assert main(args) == 0
    assert "written to" in capsys.readouterr().out
    _readme, sections = read_pack(out.read_bytes())
    assert not is_empty(sections["feedback.csv"])
    assert main(args) == 1  # an existing file is kept unless --force
    assert "exists" in capsys.readouterr().err
    assert main([*args[:4], "2026-02-30", *args[5:]]) == 1
    assert "--from must be a date" in capsys.readouterr().err
