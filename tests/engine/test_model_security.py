"""Untrusted BPMN: hostile XML is refused at parse time, hostile scripts and conditions
error the case cleanly instead of running."""

from __future__ import annotations

from xml.sax.saxutils import escape

import pytest

from engine import ConflictError, Engine
from engine.demo import load_demo
from engine.errors import ModelError
from engine.models import Base
from engine.runtime.specs import parse_model
from engine.runtime.xml import MAX_BPMN_BYTES
from tests.engine.helpers import events, ready_spec_ids, verify

HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n'
DEFINITIONS_OPEN = (
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" '
    'id="Definitions_test" targetNamespace="http://bpmn.io/schema/bpmn">'
)
USER_TASK = """
    <bpmn:userTask id="{id}" name="{name}">
      <bpmn:extensionElements><spiffworkflow:properties>
        <spiffworkflow:property name="role" value="clerk" />
      </spiffworkflow:properties></bpmn:extensionElements>
      <bpmn:incoming>{incoming}</bpmn:incoming><bpmn:outgoing>{outgoing}</bpmn:outgoing>
    </bpmn:userTask>"""


def script_model(script: str, process_id: str = "scripted") -> str:
    """start -> scriptTask `run_script` -> userTask `after_script` -> end."""
    return (
        HEADER
        + DEFINITIONS_OPEN
        + f"""
  <bpmn:process id="{process_id}" name="Scripted" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="run_script" name="Run script" scriptFormat="python">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>{escape(script)}</bpmn:script>
    </bpmn:scriptTask>{USER_TASK.format(id="after_script", name="After script", incoming="f2", outgoing="f3")}
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="run_script" />
    <bpmn:sequenceFlow id="f2" sourceRef="run_script" targetRef="after_script" />
    <bpmn:sequenceFlow id="f3" sourceRef="after_script" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>"""
    )


def gateway_model(condition: str, process_id: str = "routed") -> str:
    """start -> exclusive gateway `route` (condition -> task_a, default -> task_b) -> end."""
    return (
        HEADER
        + DEFINITIONS_OPEN
        + f"""
  <bpmn:process id="{process_id}" name="Routed" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:exclusiveGateway id="route" default="f_default">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f_cond</bpmn:outgoing><bpmn:outgoing>f_default</bpmn:outgoing>
    </bpmn:exclusiveGateway>{USER_TASK.format(id="task_a", name="A", incoming="f_cond", outgoing="f3")}{USER_TASK.format(id="task_b", name="B", incoming="f_default", outgoing="f4")}
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="route" />
    <bpmn:sequenceFlow id="f_cond" sourceRef="route" targetRef="task_a">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{escape(condition)}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_default" sourceRef="route" targetRef="task_b" />
    <bpmn:sequenceFlow id="f3" sourceRef="task_a" targetRef="end" />
    <bpmn:sequenceFlow id="f4" sourceRef="task_b" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>"""
    )


@pytest.fixture
def model_engine(database, clock, tmp_path):
    """Returns make(xml) -> Engine whose process library is just that one model."""

    def make(xml: str) -> Engine:
        bpmn_dir = tmp_path / "bpmn"
        bpmn_dir.mkdir()
        (bpmn_dir / "model.bpmn").write_text(xml, encoding="utf-8")
        _kind, sql = database
        eng = Engine(sql_engine=sql, clock=clock, bpmn_dir=bpmn_dir)
        Base.metadata.create_all(sql)
        eng.sync_models()
        with eng.unit_of_work() as uow:
            load_demo(uow)
        return eng

    return make


# -- hostile XML ----------------------------------------------------------------------------


def assert_clean_model_error(source: bytes | str, *phrases: str) -> ModelError:
    with pytest.raises(ModelError) as caught:
        parse_model(source, "evil.bpmn")
    error = caught.value
    assert error.findings, "a ModelError must list its findings"
    assert all(f.severity == "error" for f in error.findings)
    assert all(f.file == "evil.bpmn" for f in error.findings)
    for phrase in phrases:
        assert phrase in error.message, error.message
    assert "Traceback" not in error.message
    return error


def test_xxe_external_entity_is_refused_without_reading_the_file(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    xml = (
        HEADER
        + f'<!DOCTYPE x [<!ENTITY e SYSTEM "file://{secret}">]>\n'
        + script_model("x = 1").removeprefix(HEADER).replace('name="Scripted"', 'name="&e;"')
    )

    error = assert_clean_model_error(xml, "DTD")
    assert "TOP-SECRET" not in error.message


def test_xxe_against_etc_passwd_is_refused():
    xml = HEADER + '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n<x>&e;</x>'
    error = assert_clean_model_error(xml, "DTD")
    assert "root:" not in error.message


def test_billion_laughs_is_refused_quickly():
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    ]
    xml = HEADER + "<!DOCTYPE lolz [" + "".join(entities) + "]>\n<lolz>&lol9;</lolz>"

    assert_clean_model_error(xml, "not allowed")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le"])
def test_xxe_hidden_in_utf16_encoding_is_still_refused(encoding):
    xml = (
        f'<?xml version="1.0" encoding="{encoding.upper()}"?>\n'
        '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n<x>&e;</x>'
    )
    error = assert_clean_model_error(xml.encode(encoding), "DTD")
    assert "root:" not in error.message


def test_lowercase_or_spaced_doctype_is_still_refused():
    assert_clean_model_error(HEADER + '<!doctype x [<!entity e "boom">]><x>&e;</x>', "not allowed")


def test_file_over_two_megabytes_is_refused_with_the_limit_in_the_message():
    model = script_model("x = 1")
    padding = "<!-- " + "x" * (MAX_BPMN_BYTES + 10) + " -->"
    error = assert_clean_model_error(model + padding, "limit")
    assert f"{MAX_BPMN_BYTES:,}" in error.message


def test_file_of_exactly_the_limit_is_not_refused_for_size():
    model = script_model("x = 1").encode()
    padded = model + b"<!--" + b"x" * (MAX_BPMN_BYTES - len(model) - 7) + b"-->"
    assert len(padded) == MAX_BPMN_BYTES
    assert parse_model(padded, "big.bpmn").process_id == "scripted"


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("<bpmn:definitions", id="truncated"),
        pytest.param("<a><b></a>", id="mismatched-tags"),
        pytest.param("", id="empty"),
        pytest.param(b"\xff\xfe\x00garbage", id="binary"),
    ],
)
def test_not_well_formed_xml_is_refused_as_a_model_error(source):
    assert_clean_model_error(source, "well-formed")


def test_well_formed_xml_that_is_not_bpmn_is_a_model_error():
    assert_clean_model_error("<html><body>hello</body></html>")


def test_two_executable_processes_in_one_file_is_a_model_error():
    second = (
        '<bpmn:process id="second" isExecutable="true">'
        '<bpmn:startEvent id="second_start" /></bpmn:process>'
    )
    combined = script_model("x = 1", "first").replace(
        "</bpmn:definitions>", second + "</bpmn:definitions>"
    )

    assert_clean_model_error(combined, "exactly one executable process")


def test_valid_script_model_parses():
    model = parse_model(script_model("x = 1"), "ok.bpmn")
    assert model.process_id == "scripted"
    assert "after_script" in model.user_tasks


# -- hostile scripts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "refusal"),
    [
        pytest.param("import os", "Import is not allowed", id="import"),
        pytest.param("from os import system", "ImportFrom is not allowed", id="import-from"),
        pytest.param("x = __import__('os')", "__import__", id="dunder-import"),
        pytest.param("__import__('os').system('id')", "not allowed", id="dunder-import-system"),
        pytest.param("x = open('/etc/passwd')", "open", id="open"),
        pytest.param("x = open('/etc/passwd').read()", "not allowed", id="open-read"),
        pytest.param("x = ().__class__.__bases__", "__bases__", id="class-bases"),
        pytest.param("x = eval('1')", "eval", id="eval"),
        pytest.param("x = getattr(1, 'real')", "getattr", id="getattr"),
    ],
)
def test_script_task_doing_something_forbidden_errors_the_case_naming_the_refusal(
    model_engine, script, refusal
):
    engine = model_engine(script_model(script))

    started = engine.start_case("scripted", actor="clerk")

    case = engine.case(started.case_id)
    assert started.status == "errored"
    assert case.status == "errored"
    assert case.error_element == "run_script"
    assert refusal in case.error_message
    assert "Traceback" not in case.error_message
    assert started.ready_task_ids == []
    [errored] = events(engine, case_id=case.id, action="case_errored")
    assert errored.after["element_id"] == "run_script"
    assert verify(engine).ok


def test_errored_case_is_kept_and_retrying_a_still_forbidden_script_errors_again(model_engine):
    engine = model_engine(script_model("import os"))
    case_id = engine.start_case("scripted", actor="clerk").case_id

    case = engine.retry_case(case_id, "admin")

    assert case.status == "errored"
    reloaded = engine.case(case_id)
    assert reloaded.status == "errored"
    assert reloaded.error_element == "run_script"
    assert "Import is not allowed" in reloaded.error_message
    assert ready_spec_ids(engine, case_id) == []
    actions = [e.action for e in events(engine, case_id=case_id)]
    assert actions == ["case_started", "case_errored", "case_retried", "case_errored"]
    assert verify(engine).ok


def test_retrying_a_case_that_is_not_errored_is_a_conflict(model_engine):
    engine = model_engine(script_model("x = 1"))
    case_id = engine.start_case("scripted", actor="clerk").case_id

    with pytest.raises(ConflictError, match="not errored"):
        engine.retry_case(case_id, "admin")


def test_script_that_runs_too_long_is_stopped_and_errors_the_case(model_engine):
    engine = model_engine(
        script_model(
            "x = 0\nfor i in range(100000):\n    for j in range(100000):\n        x = x + 1"
        )
    )

    started = engine.start_case("scripted", actor="clerk")

    case = engine.case(started.case_id)
    assert case.status == "errored"
    assert case.error_element == "run_script"
    assert "longer than" in case.error_message


def test_allowed_script_runs_and_its_result_reaches_the_case_data(model_engine):
    engine = model_engine(
        script_model("total = sum([n * 2 for n in range(5)])\nlabel = 'ok'.upper()")
    )

    started = engine.start_case("scripted", actor="clerk")

    assert started.status == "running"
    assert ready_spec_ids(engine, started.case_id) == ["after_script"]
    data = engine.case_data(started.case_id)
    assert data["total"] == 20
    assert data["label"] == "OK"


# -- hostile gateway conditions ----------------------------------------------------------------


DUNDER_CONDITIONS = [
    pytest.param("().__class__.__bases__[0].__subclasses__() != []", id="subclasses"),
    pytest.param("case_id.__class__ is not None", id="class"),
    pytest.param("__import__('os') is None", id="dunder-import"),
]


@pytest.mark.parametrize("condition", DUNDER_CONDITIONS)
def test_gateway_condition_with_dunder_access_errors_the_case_at_the_gateway(
    model_engine, condition
):
    engine = model_engine(gateway_model(condition))

    started = engine.start_case("routed", actor="clerk")

    case = engine.case(started.case_id)
    assert case.status == "errored"
    assert case.error_element == "route"
    assert ready_spec_ids(engine, case.id) == []
    assert "Traceback" not in case.error_message
    assert verify(engine).ok


def test_gateway_condition_error_message_says_what_the_sandbox_refused(model_engine):
    engine = model_engine(gateway_model("case_id.__class__ is not None"))

    started = engine.start_case("routed", actor="clerk")

    message = engine.case(started.case_id).error_message
    assert "not allowed" in message, message


@pytest.mark.parametrize(
    ("condition", "branch"), [("case_id > 0", "task_a"), ("case_id < 0", "task_b")]
)
def test_harmless_gateway_condition_routes_the_case(model_engine, condition, branch):
    engine = model_engine(gateway_model(condition))

    started = engine.start_case("routed", actor="clerk")

    assert engine.case(started.case_id).status == "running"
    assert ready_spec_ids(engine, started.case_id) == [branch]
