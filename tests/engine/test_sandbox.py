"""The restricted evaluator for script tasks and conditions (no database needed)."""

from __future__ import annotations

import time

import pytest

from engine.runtime.sandbox import (
    MAX_SEQUENCE,
    RestrictedEnvironment,
    SandboxViolation,
    compile_restricted,
)


@pytest.fixture
def env() -> RestrictedEnvironment:
    return RestrictedEnvironment()


def run(env: RestrictedEnvironment, script: str, **data) -> dict:
    context = dict(data)
    env.execute(script, context)
    return context


# -- what scripts may do ------------------------------------------------------------------------


def test_arithmetic_and_comparisons_work(env):
    out = run(
        env,
        "total = (a + b) * 2 - c / 4\npassed = total >= 10 and not failed",
        a=3,
        b=4,
        c=8,
        failed=False,
    )
    assert out["total"] == 12.0
    assert out["passed"] is True


def test_comprehensions_see_the_script_variables(env):
    out = run(
        env,
        "limit = 3\nsmall = [n for n in scores if n < limit]\nby = {k: v * 2 for k, v in marks.items()}",
        scores=[1, 2, 3, 4],
        marks={"a": 1},
    )
    assert out["small"] == [1, 2]
    assert out["by"] == {"a": 2}


def test_safe_builtins_and_plain_data_methods_work(env):
    out = run(
        env,
        "m = max(scores)\nn = len(scores)\ns = sorted(scores)\nname = ' Ann '.strip().upper()\n"
        "r = round(sum(scores) / len(scores), 1)\np = 2 ** 10\nt = 'ab' * 3",
        scores=[3, 1, 2],
    )
    assert (out["m"], out["n"], out["s"], out["name"], out["r"], out["p"], out["t"]) == (
        3,
        3,
        [1, 2, 3],
        "ANN",
        2.0,
        1024,
        "ababab",
    )


def test_condition_is_evaluated_against_the_task_data(env):
    assert (
        env.evaluate('scheme["has_practical"] == True', {"scheme": {"has_practical": True}}) is True
    )
    assert env.evaluate("written_score >= 70", {"written_score": 69}) is False


def test_script_does_not_leak_helpers_or_builtins_into_the_task_data(env):
    out = run(env, "x = 2 ** 3\ny = 'a' * 2")
    assert set(out) == {"x", "y"}


def test_the_shipped_compute_result_script_runs_in_the_sandbox(env):
    script = (
        'exam_passed = written_score >= scheme["pass_mark"] and '
        '(not scheme["has_practical"] or practical_score >= scheme["pass_mark"])'
    )
    out = run(
        env,
        script,
        written_score=70,
        practical_score=70,
        scheme={"pass_mark": 70, "has_practical": True},
    )
    assert out["exam_passed"] is True


# -- what scripts may not do -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        pytest.param("while True:\n    pass", "While", id="while-true"),
        pytest.param("import os", "Import", id="import"),
        pytest.param("from os import path", "ImportFrom", id="import-from"),
        pytest.param("x = ().__class__.__bases__", "__bases__", id="class-bases"),
        pytest.param("x = [].__class__", "__class__", id="dunder-attribute"),
        pytest.param("x = __builtins__", "__builtins__", id="builtins-name"),
        pytest.param("x = __import__('os')", "__import__", id="dunder-import"),
        pytest.param("def f():\n    return 1", "FunctionDef", id="def"),
        pytest.param("f = lambda: 1", "Lambda", id="lambda"),
        pytest.param("class A:\n    pass", "ClassDef", id="class"),
        pytest.param("global x", "Global", id="global"),
        pytest.param("x = 'a'.format", "format", id="format-method"),
        pytest.param("x = (1).real", "real", id="non-whitelisted-attribute"),
        pytest.param("with open('x') as f:\n    pass", "With", id="with"),
        pytest.param("try:\n    x = 1\nexcept Exception:\n    pass", "Try", id="try"),
        pytest.param("x = [y := 1]", "NamedExpr", id="walrus"),
    ],
)
def test_forbidden_constructs_are_refused_before_running(env, script, expected):
    with pytest.raises(SandboxViolation, match=expected):
        compile_restricted(script, "exec")
    with pytest.raises(SandboxViolation):
        run(env, script)


@pytest.mark.parametrize(
    "name",
    [
        "open",
        "eval",
        "exec",
        "getattr",
        "setattr",
        "compile",
        "globals",
        "vars",
        "type",
        "input",
        "breakpoint",
        "help",
    ],
)
def test_dangerous_builtins_do_not_exist_in_scripts(env, name):
    with pytest.raises(NameError):
        run(env, f"x = {name}")


def test_huge_power_is_refused(env):
    with pytest.raises(SandboxViolation, match="exponent"):
        run(env, "x = 10 ** 100000000")


def test_power_with_large_result_is_refused_even_with_a_small_exponent(env):
    with pytest.raises(SandboxViolation, match="too large"):
        run(env, "base = 10 ** 900\nx = base ** 900")


def test_augmented_power_is_bounded_too(env):
    with pytest.raises(SandboxViolation):
        run(env, "x = 10\nx **= 100000000")


def test_huge_sequence_repetition_is_refused(env):
    with pytest.raises(SandboxViolation, match="repetition"):
        run(env, "x = 'a' * 10 ** 9")
    with pytest.raises(SandboxViolation, match="repetition"):
        run(env, "x = [0]\nx *= 10 ** 9")


def test_huge_range_is_refused(env):
    with pytest.raises(SandboxViolation, match="range"):
        run(env, "x = sum(range(10 ** 12))")


def test_long_running_loop_is_stopped_after_about_a_second(env):
    started = time.monotonic()
    with pytest.raises(SandboxViolation, match="longer than"):
        run(env, "x = 0\nfor i in range(100000):\n    for j in range(100000):\n        x = x + 1")
    assert time.monotonic() - started < 5


def test_condition_cannot_call_methods_outside_the_allow_list(env):
    with pytest.raises(SandboxViolation):
        env.evaluate("data.pop('x')", {"data": {"x": 1}})


def test_format_width_cannot_build_a_string_beyond_the_sequence_limit(env):
    """An f-string width is a repetition by another name: it must respect MAX_SEQUENCE."""
    with pytest.raises(SandboxViolation):
        run(env, f's = f"{{1:>{MAX_SEQUENCE * 20}}}"')


def test_str_replace_cannot_amplify_a_string_beyond_the_sequence_limit(env):
    """`s.replace("", s)` squares the length of `s` in one C call."""
    with pytest.raises(SandboxViolation):
        run(env, 's = "x" * 2000\nt = s.replace("", s)')
