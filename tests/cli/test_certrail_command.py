"""The `certrail` command-line contracts, run as a real subprocess against real databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from engine.migrate import upgrade
from engine.models import Base

ROOT = Path(__file__).resolve().parents[2]


def certrail(*args: str, database: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database}
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'cli.sqlite'}"


def test_shipped_models_and_forms_lint_clean(sqlite_url):
    result = certrail("models", "lint", "--json", database=sqlite_url)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report == {"ok": True, "findings": []}


def test_lint_of_broken_files_exits_1_with_one_line_per_finding_and_no_traceback(
    tmp_path, sqlite_url
):
    broken = tmp_path / "broken.bpmn"
    broken.write_text("<definitions")
    bomb = tmp_path / "bomb.bpmn"
    bomb.write_text(
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><l>&b;</l>'
    )
    bad_task = tmp_path / "bad_task.bpmn"
    source = (ROOT / "bpmn" / "decision.bpmn").read_text()
    bad_task.write_text(
        source.replace(
            'name="form" value="certification_decision"', 'name="form" value="no_such_form"'
        ).replace('name="due" value="P10D"', 'name="due" value="ten days"', 1)
    )
    result = certrail("models", "lint", str(broken), str(bomb), str(bad_task), database=sqlite_url)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any("broken.bpmn" in line and "not well-formed" in line for line in lines)
    assert any("bomb.bpmn" in line and "DTD" in line for line in lines)
    assert any("[decide_certification]" in line and "no_such_form" in line for line in lines)
    assert any("ten days" in line and "ISO 8601" in line for line in lines)


def test_lint_names_the_element_of_a_script_that_breaks_the_sandbox(tmp_path, sqlite_url):
    model = tmp_path / "assessment.bpmn"
    source = (ROOT / "bpmn" / "assessment.bpmn").read_text()
    marker = "exam_passed = "
    assert marker in source
    model.write_text(source.replace(marker, "__import__('os').system('id')\n" + marker, 1))
    result = certrail("models", "lint", str(model), database=sqlite_url)
    assert result.returncode == 1
    assert "[compute_result]" in result.stdout
    assert "__import__" in result.stdout


def test_unquoted_timer_expression_is_a_lint_error(tmp_path, sqlite_url):
    model = tmp_path / "timer.bpmn"
    model.write_text(TIMER_MODEL.replace("DURATION", "P30D"))
    result = certrail("models", "lint", str(model), database=sqlite_url)
    assert result.returncode == 1
    assert "[wait_30_days]" in result.stdout and 'must be quoted: "P30D"' in result.stdout
    model.write_text(TIMER_MODEL.replace("DURATION", '"P30D"'))
    quoted = certrail("models", "lint", str(model), database=sqlite_url)
    assert "wait_30_days" not in quoted.stdout


def test_db_upgrade_demo_load_simulate_and_verify_work_end_to_end(sqlite_url):
    assert certrail("db", "upgrade", database=sqlite_url).returncode == 0
    first = certrail("demo", "load", database=sqlite_url)
    again = certrail("demo", "load", database=sqlite_url)
    assert "15 new staff" in first.stdout and "8 new certificate histories" in first.stdout
    assert "0 new staff" in again.stdout and "0 new certificate histories" in again.stdout
    checked = certrail("check", database=sqlite_url)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.rstrip().endswith("consistent")

    result = certrail("simulate", "--cases", "3", "--json", database=sqlite_url)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {
        "cases_completed",
        "tasks_completed",
        "certificates_issued",
        "seconds",
        "tasks_per_second",
        "cases",
    }
    assert report["cases_completed"] == 3
    assert report["certificates_issued"] == 3
    assert report["tasks_completed"] == 30
    for case in report["cases"]:
        assert set(case) == {"case_id", "certificate_number", "performers"}
        assert case["certificate_number"].startswith("CWI-")
        performers = case["performers"]
        assert performers["decide_certification"] not in {
            performers["score_written"],
            performers["score_practical"],
            performers["administer_exam"],
        }

    verified = certrail("audit", "verify", "--json", database=sqlite_url)
    assert verified.returncode == 0
    assert json.loads(verified.stdout)["ok"] is True


def test_simulate_stop_at_leaves_every_case_waiting_at_that_task(sqlite_url):
    certrail("db", "upgrade", database=sqlite_url)
    result = certrail(
        "simulate",
        "--cases",
        "2",
        "--stop-at",
        "decide_certification",
        "--json",
        database=sqlite_url,
    )
    report = json.loads(result.stdout)
    assert report["cases_completed"] == 0
    assert report["certificates_issued"] == 0
    assert report["tasks_completed"] == 18
    for case in report["cases"]:
        assert "decide_certification" not in case["performers"]


def test_audit_verify_exits_1_and_names_the_tampered_event(sqlite_url):
    certrail("db", "upgrade", database=sqlite_url)
    certrail("simulate", "--cases", "1", database=sqlite_url)
    from engine.db import make_engine

    db = make_engine(sqlite_url)
    with db.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 7"))
    db.dispose()
    result = certrail("audit", "verify", database=sqlite_url)
    assert result.returncode == 1
    assert "event 7" in result.stdout
    assert "edited" in result.stdout


def test_a_bad_database_url_is_one_line_not_a_traceback():
    result = certrail("audit", "verify", database="postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("certrail: ")


def test_migrations_create_exactly_the_schema_the_models_declare(database):
    _kind, sql = database
    upgrade(sql)
    with sql.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_migrations_create_the_case_search_expression_indexes(database):
    # Alembic cannot compare expression indexes on SQLite, so they are looked up by name.
    kind, sql = database
    upgrade(sql)
    catalog = (
        "SELECT name FROM sqlite_master WHERE type = 'index'"
        if kind == "sqlite"
        else "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
    )
    with sql.connect() as conn:
        names = set(conn.execute(text(catalog)).scalars())
    assert {
        "ix_people_given_name_prefix",
        "ix_people_family_name_prefix",
        "ix_people_email_prefix",
        "ix_certificates_number_prefix",
    } <= names


TIMER_MODEL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="http://certrail.example/bpmn">
  <bpmn:process id="timer_demo" name="Timer demo" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:intermediateCatchEvent id="wait_30_days" name="30 days">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>DURATION</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait_30_days"/>
    <bpmn:sequenceFlow id="f2" sourceRef="wait_30_days" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""
