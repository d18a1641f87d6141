"""Stored item analyses: what is stored is exactly `analyse()`'s result, with who, when, the
thresholds and the files' checksums, under an audit event; a bad file stores nothing."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import func, select

from engine import PermissionDenied, ValidationError
from engine.item_analyses import (
    DEMO_EXAM_FORM,
    AnalysisUpload,
    demo_responses,
    load_demo_item_analysis,
    record_item_analysis,
)
from engine.item_analysis import Thresholds, analyse, read_key, read_responses
from engine.models import ItemAnalysis
from tests.engine.helpers import event_count, events, verify
from tests.engine.test_item_analysis import SMALL


def stored_count(engine) -> int:
    with engine.sessions() as session:
        return session.scalar(select(func.count()).select_from(ItemAnalysis))


def test_the_stored_analysis_is_exactly_what_analyse_computes(engine, clock):
    thresholds = Thresholds(min_p=0.25, max_p=0.85, min_rpb=0.2, min_reliability=0.7)
    upload = AnalysisUpload(
        exam_form="DPO written 2026-A",
        responses=SMALL.encode(),
        scheme_code="DPO",
        pass_mark=2,
        thresholds=thresholds,
    )
    stored = record_item_analysis(engine, "quality", upload)
    expected = analyse(read_responses(SMALL), thresholds, pass_mark=2).as_dict()
    with engine.sessions() as session:
        row = session.get(ItemAnalysis, stored.id)
    assert row.result == expected
    assert (row.exam_form, row.candidates, row.item_count, row.pass_mark) == (
        "DPO written 2026-A",
        5,
        3,
        2,
    )
    assert row.kr20 == expected["kr20"]
    assert row.thresholds == expected["thresholds"]
    assert row.uploaded_at == clock.now()
    assert row.source_checksum == hashlib.sha256(SMALL.encode()).hexdigest()
    assert row.key_checksum is None
    assert row.flagged_items == sum(1 for i in expected["items"].values() if i["flags"])
    [event] = events(engine, action="item_analysis_recorded")
    assert event.actor == "quality"
    assert event.after["item_analysis_id"] == row.id
    assert event.after["scheme"] == "DPO"
    assert event.after["source_checksum"] == row.source_checksum
    assert verify(engine).ok


def test_keyed_responses_store_the_distractors_and_the_key_checksum(engine):
    responses, key = demo_responses(candidates=60, items=15)
    stored = record_item_analysis(
        engine, "manager", AnalysisUpload("demo form", responses, key=key)
    )
    expected = analyse(read_responses(responses.decode(), read_key(key.decode()))).as_dict()
    assert stored.result == expected
    assert stored.key_checksum == hashlib.sha256(key).hexdigest()
    assert stored.scheme_id is None
    assert set(expected["items"]["Q01"]["options"]) <= set("ABCD")


@pytest.mark.parametrize(
    ("responses", "field", "words"),
    [
        ("candidate,item,score\nc1,i1,1\nc1,i2,2\n", "score", "line 3"),
        ("candidate,item,score\nc1,i1,1\n,i2,1\n", "candidate", "line 3"),
        ("candidate,item\nc1,i1\n", "score", "column"),
        ("candidate,item,score\nc1,i1,1\nc1,i1,0\n", "item", "line 3"),
        ("candidate,item,score\n", "file", "no rows"),
    ],
)
def test_a_bad_responses_file_stores_nothing_and_names_the_line_or_column(
    engine, responses, field, words
):
    before = event_count(engine)
    with pytest.raises(ValidationError) as refused:
        record_item_analysis(engine, "quality", AnalysisUpload("form", responses.encode()))
    assert field in refused.value.fields
    assert words in refused.value.message
    assert stored_count(engine) == 0
    assert event_count(engine) == before


def test_a_file_that_is_not_utf8_names_its_line(engine):
    data = b"candidate,item,score\nc1,i1,1\nc\xff2,i1,0\n"
    with pytest.raises(ValidationError, match="line 3") as refused:
        record_item_analysis(engine, "quality", AnalysisUpload("form", data))
    assert "responses" in refused.value.fields
    assert stored_count(engine) == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"exam_form": "  "}, "exam_form"),
        ({"scheme_code": "NOPE"}, "scheme"),
        ({"thresholds": Thresholds(min_p=1.5)}, "min_p"),
        ({"thresholds": Thresholds(min_p=0.8, max_p=0.3)}, "min_p"),
        ({"thresholds": Thresholds(min_rpb=-2)}, "min_rpb"),
        ({"pass_mark": -1.0}, "pass_mark"),
    ],
)
def test_settings_that_cannot_be_right_are_refused_naming_the_field(engine, change, field):
    upload = AnalysisUpload("form", SMALL.encode())
    for name, value in change.items():
        setattr(upload, name, value)
    with pytest.raises(ValidationError) as refused:
        record_item_analysis(engine, "quality", upload)
    assert field in refused.value.fields
    assert stored_count(engine) == 0


@pytest.mark.parametrize("username", ["clerk", "examiner", "admin", "alice"])
def test_only_quality_managers_and_managers_record_an_analysis(engine, username):
    with pytest.raises(PermissionDenied):
        record_item_analysis(engine, username, AnalysisUpload("form", SMALL.encode()))
    assert stored_count(engine) == 0


def test_the_demo_analysis_flags_its_miskeyed_and_too_easy_items_and_is_stored_once(engine):
    assert load_demo_item_analysis(engine) == 1
    assert load_demo_item_analysis(engine) == 0
    with engine.sessions() as session:
        [row] = session.scalars(select(ItemAnalysis)).all()
    assert row.exam_form == DEMO_EXAM_FORM
    items = row.result["items"]
    assert "negative_discrimination" in items["Q13"]["flags"]
    assert any(
        f.startswith("distractor_attracts_stronger_candidates") for f in items["Q13"]["flags"]
    )
    assert "too_easy" in items["Q07"]["flags"]
    assert row.candidates == 120 and row.item_count == 30
    assert row.result["pass_rate"] is not None
