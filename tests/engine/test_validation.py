"""Validation of models edited in the browser: the flow rules (in the spirit of bpmnlint's
recommended set) and Certrail's semantics, each finding naming its element's id and name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.forms import FormRegistry
from engine.lint import lint_files
from engine.validation import Validation, validate_model_source

ROOT = Path(__file__).resolve().parents[2]
BPMN_DIR = ROOT / "bpmn"
SHIPPED = sorted(BPMN_DIR.glob("*.bpmn"))
RULE = re.compile(r"^([a-z]+(?:-[a-z]+)+): ")
FLOW_RULES = (
    "start-event-required",
    "end-event-required",
    "no-disconnected",
    "no-implicit-split",
    "conditional-flows",
    "label-required",
    "no-duplicate-sequence-flows",
    "single-blank-start-event",
    "fake-join",
    "superfluous-gateway",
    "no-gateway-join-fork",
    "no-implicit-start",
    "no-implicit-end",
    "flow-references",
)


@pytest.fixture(scope="module")
def forms() -> FormRegistry:
    return FormRegistry()


def library_ids() -> set[str]:
    ids: set[str] = set()
    for path in SHIPPED:
        ids |= set(re.findall(r'\bid="([^"]+)"', path.read_text()))
    return ids


def validate(source: str | bytes, forms: FormRegistry, **kwargs) -> Validation:
    kwargs.setdefault("known_processes", {p.stem for p in SHIPPED})
    kwargs.setdefault("task_ids", library_ids())
    return validate_model_source(source, forms, **kwargs)


def model(body: str, process_id: str = "p") -> str:
    """A process without diagram layout (its findings include the layout warning)."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    id="Definitions_test" targetNamespace="http://certrail.example/test">
  <bpmn:process id="{process_id}" name="Test process" isExecutable="true">{body}
  </bpmn:process>
</bpmn:definitions>"""


def start(id="start", name="Start"):
    return f'<bpmn:startEvent id="{id}" name="{name}" />'


def end(id="end", name="Done"):
    return f'<bpmn:endEvent id="{id}" name="{name}" />'


def task(id, name=None, **attrs):
    named = f' name="{name}"' if name is not None else f' name="{id.title()}"'
    extra = "".join(f' {k}="{v}"' for k, v in attrs.items())
    return f'<bpmn:manualTask id="{id}"{named}{extra} />'


def gateway(id, kind="exclusiveGateway", name="Which way?", **attrs):
    extra = "".join(f' {k}="{v}"' for k, v in attrs.items())
    return f'<bpmn:{kind} id="{id}" name="{name}"{extra} />'


def flow(id, source, target, condition=None):
    if condition is None:
        return f'<bpmn:sequenceFlow id="{id}" sourceRef="{source}" targetRef="{target}" />'
    return (
        f'<bpmn:sequenceFlow id="{id}" sourceRef="{source}" targetRef="{target}">'
        f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{condition}'
        "</bpmn:conditionExpression></bpmn:sequenceFlow>"
    )


CHAIN = [start(), task("work"), end(), flow("f1", "start", "work"), flow("f2", "work", "end")]


def rules_of(validation: Validation) -> dict[str, list]:
    found: dict[str, list] = {}
    for finding in validation.findings:
        match = RULE.match(finding.message)
        if match:
            found.setdefault(match.group(1), []).append(finding)
    return found


def only(validation: Validation, rule: str):
    findings = rules_of(validation).get(rule, [])
    assert len(findings) == 1, validation.findings
    return findings[0]


def test_a_plain_chain_breaks_no_flow_rule(forms):
    validation = validate(model("".join(CHAIN)), forms)
    assert rules_of(validation) == {}
    assert validation.ok
    assert [f.message for f in validation.findings] == [
        "the model has no diagram layout (BPMNDI); the editor cannot draw it"
    ]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_models_break_no_rule_and_validate_clean(path, forms):
    validation = validate(path.read_bytes(), forms, filename=path.name)
    assert validation.findings == []
    assert validation.ok and validation.model is not None


def test_the_cli_lint_and_the_validator_give_the_same_findings(tmp_path, forms):
    broken = tmp_path / "broken.bpmn"
    broken.write_text(model("".join(CHAIN[:-1]) + task("lonely")))
    from_lint = lint_files([broken], forms, {p.stem for p in SHIPPED}, context=SHIPPED)
    from_validator = validate(broken.read_bytes(), forms, filename=str(broken)).findings
    assert [f.as_dict() for f in from_lint] == [f.as_dict() for f in from_validator]
    assert any(f.element_id == "lonely" for f in from_lint)


def test_a_process_without_start_event_is_an_error(forms):
    validation = validate(model(task("work") + end() + flow("f", "work", "end")), forms)
    finding = only(validation, "start-event-required")
    assert (finding.severity, finding.element_id, finding.element_name) == (
        "error",
        "p",
        "Test process",
    )
    assert not validation.ok


def test_a_process_without_end_event_is_an_error(forms):
    validation = validate(model(start() + task("work") + flow("f", "start", "work")), forms)
    finding = only(validation, "end-event-required")
    assert finding.severity == "error" and finding.element_id == "p"


def test_a_disconnected_task_is_an_error_naming_the_task(forms):
    validation = validate(model("".join(CHAIN) + task("stray", "Check the file")), forms)
    finding = only(validation, "no-disconnected")
    assert (finding.severity, finding.element_id, finding.element_name) == (
        "error",
        "stray",
        "Check the file",
    )
    assert "no-implicit-start" not in rules_of(validation)
    assert not validation.ok


def test_two_unconditioned_flows_out_of_a_task_are_an_implicit_split(forms):
    body = (
        start()
        + task("work")
        + end("end_a")
        + end("end_b")
        + flow("f1", "start", "work")
        + flow("f2", "work", "end_a")
        + flow("f3", "work", "end_b")
    )
    finding = only(validate(model(body), forms), "no-implicit-split")
    assert finding.severity == "error" and finding.element_id == "work"


def test_a_flow_out_of_a_deciding_gateway_needs_a_condition_or_to_be_the_default(forms):
    body = (
        start()
        + gateway("gw")
        + task("yes")
        + task("no")
        + end()
        + flow("f1", "start", "gw")
        + flow("to_yes", "gw", "yes", "approved == True")
        + flow("to_no", "gw", "no")
        + flow("f4", "yes", "end")
        + flow("f5", "no", "end")
    )
    validation = validate(model(body), forms)
    finding = only(validation, "conditional-flows")
    assert (finding.severity, finding.element_id) == ("error", "to_no")
    fixed = validate(
        model(body.replace('name="Which way?"', 'name="Which way?" default="to_no"')), forms
    )
    assert "conditional-flows" not in rules_of(fixed)


def test_unnamed_tasks_and_deciding_gateways_get_a_label_warning(forms):
    body = (
        start()
        + task("work", name="")
        + gateway("gw", name="", default="f3")
        + end("end_a")
        + end("end_b")
        + flow("f1", "start", "work")
        + flow("f2", "work", "gw")
        + flow("f3", "gw", "end_a")
        + flow("f4", "gw", "end_b", "x == 1")
    )
    validation = validate(model(body), forms)
    labels = rules_of(validation)["label-required"]
    assert {(f.element_id, f.severity) for f in labels} == {
        ("work", "warning"),
        ("gw", "warning"),
    }


def test_two_flows_between_the_same_elements_are_an_error(forms):
    body = "".join(CHAIN) + flow("f2_again", "work", "end")
    finding = only(validate(model(body), forms), "no-duplicate-sequence-flows")
    assert finding.severity == "error" and finding.element_id in ("f2", "f2_again")


def test_two_blank_start_events_are_an_error(forms):
    body = "".join(CHAIN) + start("start_2", "Again") + flow("f3", "start_2", "work")
    finding = only(validate(model(body), forms), "single-blank-start-event")
    assert finding.severity == "error" and finding.element_id == "p"


def test_parallel_paths_into_one_task_are_a_fake_join_but_a_rework_loop_is_not(forms):
    parallel = (
        start()
        + gateway("split", "parallelGateway", name="")
        + task("a")
        + task("b")
        + task("both")
        + end()
        + flow("f1", "start", "split")
        + flow("f2", "split", "a")
        + flow("f3", "split", "b")
        + flow("f4", "a", "both")
        + flow("f5", "b", "both")
        + flow("f6", "both", "end")
    )
    finding = only(validate(model(parallel), forms), "fake-join")
    assert (finding.severity, finding.element_id) == ("warning", "both")

    loop = (
        start()
        + task("work")
        + gateway("gw", default="done")
        + end()
        + flow("f1", "start", "work")
        + flow("f2", "work", "gw")
        + flow("again", "gw", "work", "redo == True")
        + flow("done", "gw", "end")
    )
    assert "fake-join" not in rules_of(validate(model(loop), forms))


def test_a_gateway_with_one_way_in_and_out_is_superfluous(forms):
    body = (
        start()
        + gateway("gw", "parallelGateway")
        + end()
        + flow("f1", "start", "gw")
        + flow("f2", "gw", "end")
    )
    finding = only(validate(model(body), forms), "superfluous-gateway")
    assert (finding.severity, finding.element_id) == ("warning", "gw")


def test_a_gateway_that_joins_and_forks_gets_a_warning(forms):
    body = (
        start()
        + gateway("split", "parallelGateway")
        + task("a")
        + task("b")
        + gateway("both", "parallelGateway")
        + end("end_a")
        + end("end_b")
        + flow("f1", "start", "split")
        + flow("f2", "split", "a")
        + flow("f3", "split", "b")
        + flow("f4", "a", "both")
        + flow("f5", "b", "both")
        + flow("f6", "both", "end_a")
        + flow("f7", "both", "end_b")
    )
    finding = only(validate(model(body), forms), "no-gateway-join-fork")
    assert (finding.severity, finding.element_id) == ("warning", "both")


def test_a_task_nothing_leads_to_can_never_run(forms):
    body = "".join(CHAIN) + task("orphan", "Orphan step") + flow("f3", "orphan", "end")
    finding = only(validate(model(body), forms), "no-implicit-start")
    assert (finding.severity, finding.element_id, finding.element_name) == (
        "error",
        "orphan",
        "Orphan step",
    )


def test_a_path_that_just_stops_gets_an_implicit_end_warning(forms):
    body = "".join(CHAIN) + task("extra") + flow("f3", "start", "extra")
    validation = validate(model(body), forms)
    finding = only(validation, "no-implicit-end")
    assert (finding.severity, finding.element_id) == ("warning", "extra")


def test_a_flow_to_a_missing_element_is_an_error(forms):
    body = "".join(CHAIN) + flow("f3", "work", "nowhere")
    finding = only(validate(model(body), forms), "flow-references")
    assert finding.severity == "error" and finding.element_id == "f3"
    assert "nowhere" in finding.message


# -- Certrail semantics ---------------------------------------------------------------------


def decision_source() -> str:
    return (BPMN_DIR / "decision.bpmn").read_text()


def errors_of(validation: Validation, element_id: str) -> list[str]:
    return [f.message for f in validation.errors if f.element_id == element_id]


def test_an_unknown_role_is_an_error_naming_the_task(forms):
    source = decision_source().replace(
        'name="role" value="reviewer"', 'name="role" value="file_clerk"'
    )
    validation = validate(source, forms)
    finding = next(f for f in validation.errors if "file_clerk" in f.message)
    assert (finding.element_id, finding.element_name) == (
        "review_file",
        "Review certification file",
    )
    assert "is not a Certrail role" in finding.message


def test_a_missing_form_is_an_error_unless_it_is_edited_with_the_model(forms):
    source = decision_source().replace(
        'name="form" value="file_review"', 'name="form" value="file_review_v2"'
    )
    validation = validate(source, forms)
    assert errors_of(validation, "review_file") == [
        "form 'file_review_v2' does not exist in forms/"
    ]
    new_form = {"type": "object", "properties": {"summary": {"type": "string"}}}
    with_form = validate(source, forms, extra_forms={"file_review_v2": new_form})
    assert with_form.ok, with_form.findings


def test_a_form_edited_with_the_model_is_checked_too(forms):
    source = decision_source().replace(
        'name="form" value="file_review"', 'name="form" value="file_review_v2"'
    )
    validation = validate(source, forms, extra_forms={"file_review_v2": {"type": "array"}})
    messages = [f.message for f in validation.errors]
    assert any("file_review_v2" in m and '"type": "object"' in m for m in messages)
    assert "form 'file_review_v2' does not exist in forms/" in messages


def test_an_impartiality_reference_to_a_missing_task_is_an_error(forms):
    source = decision_source().replace("score_practical", "score_oral")
    validation = validate(source, forms)
    assert errors_of(validation, "decide_certification") == [
        "exclude_performers_of names 'score_oral', which is no task of these models"
    ]
    assert next(f for f in validation.errors).element_name == "Decide on certification"


def test_an_unknown_sod_rule_is_an_error(forms):
    source = decision_source().replace('value="SOD-DECIDE"', 'value="SOD-NOBODY"')
    [message] = errors_of(validate(source, forms), "decide_certification")
    assert "unknown impartiality rule 'SOD-NOBODY'" in message


def test_a_timer_that_does_not_parse_is_an_error_naming_the_event(forms):
    source = (BPMN_DIR / "recertification.bpmn").read_text()
    timer = re.search(r"<bpmn:timeDuration[^>]*>([^<]+)</bpmn:timeDuration>", source)
    assert timer, "the recertification model has a duration timer"
    broken = source.replace(timer.group(0), timer.group(0).replace(timer.group(1), '"P3 weeks"'))
    validation = validate(broken, forms)
    [finding] = [f for f in validation.errors if "timer" in f.message]
    assert finding.element_id in {"evidence_reminder", "certificate_expiry"}
    assert finding.element_name
    assert "'P3 weeks' is not a valid ISO 8601 value" in finding.message


def test_a_script_that_breaks_the_sandbox_is_an_error_naming_the_script_task(forms):
    source = (BPMN_DIR / "assessment.bpmn").read_text()
    broken = source.replace(
        "exam_passed = ", "().__class__.__bases__[0].__subclasses__()\nexam_passed = ", 1
    )
    validation = validate(broken, forms)
    [finding] = validation.errors
    assert finding.element_id == "compute_result" and finding.element_name
    assert "breaks the sandbox rules" in finding.message


def test_a_call_activity_to_an_unknown_process_is_an_error(forms):
    source = (BPMN_DIR / "application.bpmn").read_text()
    validation = validate(source, forms, known_processes={"assessment"})
    [finding] = validation.errors
    assert finding.element_id == "run_decision" and finding.element_name
    assert finding.message == "call activity calls 'decision', which is no known process"


def test_a_spiffworkflow_parse_error_names_the_element(forms):
    body = (
        start()
        + '<bpmn:serviceTask id="notify" name="Notify" />'
        + end()
        + flow("f1", "start", "notify")
        + flow("f2", "notify", "end")
    )
    validation = validate(model(body), forms)
    assert validation.model is None
    [finding] = validation.errors
    assert (finding.element_id, finding.element_name) == ("notify", "Notify")
    assert "operator" in finding.message


def test_schema_errors_name_the_element_and_the_line(forms):
    source = decision_source().replace(
        '<bpmn:exclusiveGateway id="gw_granted"',
        '<bpmn:exclusiveGateway id="gw_granted" gatewayDirection="Sideways"',
    )
    validation = validate(source, forms)
    [finding] = validation.errors
    assert finding.element_id == "gw_granted" and finding.element_name == "Granted?"
    assert finding.message.startswith("BPMN 2.0 schema:") and "(line " in finding.message
    assert validation.model is None


def test_findings_as_dicts_carry_the_element_name(forms):
    validation = validate(model("".join(CHAIN) + task("stray", "Stray step")), forms)
    finding = only(validation, "no-disconnected")
    assert finding.as_dict() == {
        "severity": "error",
        "file": "<upload>",
        "element_id": "stray",
        "element_name": "Stray step",
        "message": "no-disconnected: the element is not connected to the flow",
    }
