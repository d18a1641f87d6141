"""The validator never crashes: BPMN saved by other modelers (the Camunda Modeler and BPMN
Studio test diagrams that ship in the `@process-engine/process_engine_core` npm package, a
devDependency of web/package.json), our own models and hostile files each yield a
Validation, with findings or without, and quickly."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.forms import FormRegistry
from engine.validation import Validation, validate_model_source
from tests.engine.helpers import cpu_seconds_of

ROOT = Path(__file__).resolve().parents[2]
NODE_CORPUS = ROOT / "web" / "node_modules" / "@process-engine" / "process_engine_core" / "test"
OTHER_MODELERS = sorted(NODE_CORPUS.glob("**/*.bpmn"))
OWN = sorted((ROOT / "bpmn").glob("*.bpmn")) + sorted((ROOT / "tests" / "data").glob("*.bpmn"))
# The slowest file takes 0.05-0.15 CPU s; a blow-up (entity expansion, quadratic parsing of
# a 3 MB file) would cost far more than this bound.
CPU_SECONDS_PER_FILE = 2.0

BPMN_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'id="d" targetNamespace="http://example.org/hostile">\n'
)


@pytest.fixture(scope="module")
def forms() -> FormRegistry:
    return FormRegistry()


def checked(source: bytes | str, forms: FormRegistry, name: str) -> Validation:
    validation, cpu_seconds = cpu_seconds_of(
        lambda: validate_model_source(
            source, forms, known_processes={"decision", "assessment"}, filename=name
        )
    )
    assert isinstance(validation, Validation)
    assert cpu_seconds < CPU_SECONDS_PER_FILE, f"{name} took {cpu_seconds:.2f} CPU s"
    for finding in validation.findings:
        assert finding.severity in ("error", "warning") and finding.message
    assert validation.ok == (not validation.errors)
    if not validation.ok:
        assert validation.errors
    return validation


def test_the_corpus_of_other_modelers_is_installed():
    if not (ROOT / "web" / "node_modules").exists():
        pytest.skip("web/node_modules is absent: run `make install` (npm ci in web/)")
    assert len(OTHER_MODELERS) >= 15, "the @process-engine/process_engine_core fixtures"


@pytest.mark.parametrize("path", OTHER_MODELERS, ids=lambda p: p.name)
def test_files_from_other_modelers_yield_findings_never_an_exception(path, forms):
    checked(path.read_bytes(), forms, path.name)


def test_files_made_for_other_engines_are_explained_not_accepted(forms):
    if not OTHER_MODELERS:
        pytest.skip("web/node_modules is absent: run `make install` (npm ci in web/)")
    results = [checked(p.read_bytes(), forms, p.name) for p in OTHER_MODELERS]
    # Made for other engines: JavaScript scripts, user tasks without forms, service tasks
    # without system operations... most cannot run here, and each says why.
    refused = [v for v in results if not v.ok]
    assert len(refused) >= len(results) // 2
    assert all(v.errors[0].message for v in refused)


@pytest.mark.parametrize("path", OWN, ids=lambda p: p.name)
def test_our_own_files_yield_a_validation(path, forms):
    checked(path.read_bytes(), forms, path.name)


def chain(length: int) -> str:
    tasks = "".join(
        f'<bpmn:manualTask id="t{i}" name="Step {i}" />'
        f'<bpmn:sequenceFlow id="f{i}" sourceRef="{"s" if i == 0 else f"t{i - 1}"}" '
        f'targetRef="t{i}" />'
        for i in range(length)
    )
    return (
        BPMN_HEAD
        + '<bpmn:process id="long" isExecutable="true"><bpmn:startEvent id="s" name="Start" />'
        + tasks
        + f'<bpmn:endEvent id="e" name="End" /><bpmn:sequenceFlow id="fe" sourceRef="t{length - 1}" targetRef="e" />'
        + "</bpmn:process></bpmn:definitions>"
    )


def nested(depth: int) -> str:
    return (
        BPMN_HEAD
        + "<bpmn:documentation>" * depth
        + "</bpmn:documentation>" * depth
        + ("</bpmn:definitions>")
    )


LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + "]><lolz>&lol9;</lolz>"
)
HOSTILE = {
    "xxe": (
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        + BPMN_HEAD.split("\n", 1)[1]
        + "<bpmn:process id='p'>&x;</bpmn:process></bpmn:definitions>",
        "DTDs and entity declarations are not allowed",
    ),
    "billion-laughs": (LAUGHS, "DTDs and entity declarations are not allowed"),
    "external-dtd": (
        '<?xml version="1.0"?><!DOCTYPE definitions SYSTEM "http://example.org/bpmn.dtd">'
        + BPMN_HEAD.split("\n", 1)[1]
        + "</bpmn:definitions>",
        "DTDs",
    ),
    "xxe-in-utf-16": (
        (
            '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE d [<!ENTITY x SYSTEM '
            '"file:///etc/passwd">]><d>&x;</d>'
        ).encode("utf-16"),
        "DTDs and entity declarations are not allowed",
    ),
    "three-megabytes": (
        BPMN_HEAD + "<!--" + "x" * (3 * 1024 * 1024) + "--></bpmn:definitions>",
        "the limit is",
    ),
    "deeply-nested": (nested(5000), "not well-formed"),
    "600-task-chain": (chain(600), "too long to parse"),
    "not-xml": ("this is not a diagram", "not well-formed"),
    "binary": (bytes(range(256)) * 4, "not well-formed"),
    "empty": (b"", "not well-formed"),
    "svg": (
        '<svg xmlns="http://www.w3.org/2000/svg"><rect width="10" height="10"/></svg>',
        "not a BPMN 2.0 file",
    ),
    "no-process": (BPMN_HEAD + "</bpmn:definitions>", "exactly one process, found 0"),
    "two-processes": (
        BPMN_HEAD
        + '<bpmn:process id="a" isExecutable="true" /><bpmn:process id="b" isExecutable="true" />'
        + "</bpmn:definitions>",
        "exactly one process, found 2 (a, b)",
    ),
    "encoding-lie": (
        '<?xml version="1.0" encoding="UTF-16"?>'
        + BPMN_HEAD.split("\n", 1)[1]
        + "</bpmn:definitions>",
        "not well-formed",
    ),
    "unknown-elements": (
        BPMN_HEAD
        + '<bpmn:process id="p" isExecutable="true"><bpmn:teleport id="x" /></bpmn:process>'
        + "</bpmn:definitions>",
        "BPMN 2.0 schema",
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_files_yield_error_findings_never_an_exception(name, forms):
    source, message = HOSTILE[name]
    validation = checked(source, forms, name)
    assert not validation.ok
    assert validation.model is None
    assert any(message in f.message for f in validation.errors), validation.findings


def test_a_model_saved_in_utf_16_is_read_like_any_other(forms):
    source = (ROOT / "bpmn" / "decision.bpmn").read_text()
    wide = source.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
    plain = checked(source, forms, "decision.bpmn")
    utf16 = checked(wide, forms, "decision.bpmn")
    assert utf16.model is not None
    assert [f.as_dict() for f in utf16.findings] == [f.as_dict() for f in plain.findings]


def test_a_value_that_is_not_a_document_is_a_finding_too(forms):
    validation = validate_model_source(None, forms, known_processes=set())  # type: ignore[arg-type]
    assert not validation.ok and "could not be checked" in validation.errors[0].message
