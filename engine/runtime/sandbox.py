"""The restricted evaluator for script tasks and gateway conditions.

SpiffWorkflow's own environment runs `eval`/`exec` with full builtins, so a model author
could run any code. Here every script is first checked against an AST allow-list (no
imports, no attribute or name starting with an underscore, no `while`, no function or class
definitions, no `global`), then run with a small table of safe builtins. Operations that could
exhaust memory or time (`**`, `*` on sequences, `range`) are bounded.
"""

from __future__ import annotations

import ast
import contextvars
import json
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

MAX_SEQUENCE = 100_000
# Items all bounded operations of one script run may create together, so that many
# individually allowed repetitions in a loop cannot add up to exhaust memory.
MAX_ITEMS_PER_RUN = 1_000_000
MAX_EXPONENT = 1_000
MAX_RESULT_BITS = 100_000
MAX_SECONDS = 1.0
_DIGITS = re.compile(r"\d+")


class SandboxViolation(ValueError):
    """A script uses something the sandbox forbids."""


_ALLOWED_NODES: tuple[type[ast.AST], ...] = (
    ast.Module,
    ast.Expression,
    ast.Expr,
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.If,
    ast.For,
    ast.Break,
    ast.Continue,
    ast.Pass,
    ast.BoolOp,
    ast.BinOp,
    ast.UnaryOp,
    ast.Compare,
    ast.IfExp,
    ast.Call,
    ast.keyword,
    ast.Name,
    ast.Load,
    ast.Store,
    ast.Del,
    ast.Delete,
    ast.Constant,
    ast.List,
    ast.Tuple,
    ast.Dict,
    ast.Set,
    ast.Subscript,
    ast.Slice,
    ast.Attribute,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
    ast.comprehension,
    ast.JoinedStr,
    ast.FormattedValue,
    ast.And,
    ast.Or,
    ast.Not,
    ast.Invert,
    ast.UAdd,
    ast.USub,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
    ast.Pow,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Is,
    ast.IsNot,
)

# Methods of plain data (str, list, dict) a script may call; everything else is refused.
_ALLOWED_METHODS = frozenset(
    {
        "get",
        "keys",
        "values",
        "items",
        "append",
        "extend",
        "count",
        "index",
        "lower",
        "upper",
        "strip",
        "split",
        "join",
        "startswith",
        "endswith",
        "replace",
        "isoformat",
        "title",
    }
)


_items_created: contextvars.ContextVar[int] = contextvars.ContextVar("items_created", default=0)


def _spend(items: int) -> None:
    total = _items_created.get() + max(items, 0)
    if total > MAX_ITEMS_PER_RUN:
        raise SandboxViolation(f"the script builds more than {MAX_ITEMS_PER_RUN:,} items in all")
    _items_created.set(total)


def _bounded_range(*args: int) -> range:
    r = range(*args)
    if len(r) > MAX_SEQUENCE:
        raise SandboxViolation(f"range() of more than {MAX_SEQUENCE:,} items")
    return r


def _bounded_pow(base: Any, exponent: Any) -> Any:
    if isinstance(exponent, int) and abs(exponent) > MAX_EXPONENT:
        raise SandboxViolation(f"exponent larger than {MAX_EXPONENT}")
    if isinstance(base, int) and isinstance(exponent, int):
        if base.bit_length() * abs(exponent) > MAX_RESULT_BITS:
            raise SandboxViolation("power result too large")
    return base**exponent


def _bounded_mul(left: Any, right: Any) -> Any:
    for seq, n in ((left, right), (right, left)):
        if isinstance(seq, (str, bytes, list, tuple)) and isinstance(n, int):
            if len(seq) * n > MAX_SEQUENCE:
                raise SandboxViolation(f"sequence repetition beyond {MAX_SEQUENCE:,} items")
            _spend(len(seq) * n)
    return left * right


def _bounded_method(obj: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call an allowed method, refusing the calls that could build a huge string or list."""
    if name == "replace" and isinstance(obj, str) and len(args) >= 2:
        old, new = args[0], args[1]
        if isinstance(old, str) and isinstance(new, str):
            growth = (obj.count(old) if old else len(obj) + 1) * max(len(new) - len(old), 0)
            if len(obj) + growth > MAX_SEQUENCE:
                raise SandboxViolation(f"replace() result beyond {MAX_SEQUENCE:,} characters")
            _spend(len(obj) + growth)
    if name == "join" and isinstance(obj, str) and args:
        parts = list(args[0])
        total = sum(len(p) for p in parts if isinstance(p, str)) + len(obj) * len(parts)
        if total > MAX_SEQUENCE:
            raise SandboxViolation(f"join() result beyond {MAX_SEQUENCE:,} characters")
        _spend(total)
        args = (parts, *args[1:])
    if name in ("extend",) and isinstance(obj, list) and args:
        extra = list(args[0])
        if len(obj) + len(extra) > MAX_SEQUENCE:
            raise SandboxViolation(f"list beyond {MAX_SEQUENCE:,} items")
        _spend(len(extra))
        args = (extra, *args[1:])
    return getattr(obj, name)(*args, **kwargs)


def _bounded_format(value: Any, spec: str) -> str:
    widths = [int(n) for n in _DIGITS.findall(spec)]
    if any(w > MAX_SEQUENCE for w in widths):
        raise SandboxViolation(f"format width beyond {MAX_SEQUENCE:,}")
    _spend(max(widths, default=0))
    return format(value, spec)


SAFE_BUILTINS: dict[str, Any] = {
    "abs": abs,
    "all": all,
    "any": any,
    "bool": bool,
    "dict": dict,
    "enumerate": enumerate,
    "float": float,
    "int": int,
    "len": len,
    "list": list,
    "max": max,
    "min": min,
    "range": _bounded_range,
    "round": round,
    "set": set,
    "sorted": sorted,
    "str": str,
    "sum": sum,
    "tuple": tuple,
    "zip": zip,
    "True": True,
    "False": False,
    "None": None,
}

_HELPERS = {
    "__certrail_pow__": _bounded_pow,
    "__certrail_mul__": _bounded_mul,
    "__certrail_method__": _bounded_method,
    "__certrail_format__": _bounded_format,
}


def _run_bounded(run: Callable[[], Any]) -> Any:
    """Run `run`, aborting it once the script's own lines have run longer than MAX_SECONDS."""
    started = time.monotonic()
    steps = 0

    def trace_script_lines(frame, event, arg):
        nonlocal steps
        steps += 1
        if steps % 1000 == 0 and time.monotonic() - started > MAX_SECONDS:
            raise SandboxViolation(f"script ran longer than {MAX_SECONDS:g} s")
        return trace_script_lines

    def trace_calls(frame, event, arg):
        return trace_script_lines if frame.f_code.co_filename == "<script>" else None

    previous = sys.gettrace()
    budget = _items_created.set(0)
    sys.settrace(trace_calls)
    try:
        return run()
    finally:
        sys.settrace(previous)
        _items_created.reset(budget)


class _Checker(ast.NodeVisitor):
    """Collects every violation, so a modeller sees them all at once (with line numbers)."""

    def __init__(self) -> None:
        self.violations: list[str] = []

    def _refuse(self, node: ast.AST, message: str) -> None:
        line = getattr(node, "lineno", None)
        self.violations.append(f"{message} (line {line})" if line else message)

    def generic_visit(self, node: ast.AST) -> None:
        if not isinstance(node, _ALLOWED_NODES):
            self._refuse(node, f"{type(node).__name__} is not allowed in scripts")
            return
        super().generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id.startswith("_"):
            self._refuse(node, f"name '{node.id}' is not allowed (leading underscore)")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Attribute):
            node.func.certrail_called = True  # type: ignore[attr-defined]
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if not getattr(node, "certrail_called", False) and not node.attr.startswith("_"):
            self._refuse(node, f"'.{node.attr}' may only be called directly")
        if node.attr.startswith("_"):
            self._refuse(node, f"attribute '{node.attr}' is not allowed")
        elif node.attr not in _ALLOWED_METHODS:
            self._refuse(node, f"attribute '.{node.attr}' is not allowed in scripts")
        self.generic_visit(node)


class _Bounder(ast.NodeTransformer):
    """Route `**`, `*`, method calls and format specifications through the bounded helpers."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if not isinstance(node.func, ast.Attribute):
            return node
        call = ast.Call(
            ast.Name("__certrail_method__", ast.Load()),
            [node.func.value, ast.Constant(node.func.attr), *node.args],
            node.keywords,
        )
        return ast.copy_location(call, node)

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        self.generic_visit(node)
        if node.format_spec is None:
            return node
        call = ast.Call(
            ast.Name("__certrail_format__", ast.Load()), [node.value, node.format_spec], []
        )
        return ast.copy_location(ast.FormattedValue(call, node.conversion, None), node)

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        helper = {ast.Pow: "__certrail_pow__", ast.Mult: "__certrail_mul__"}.get(type(node.op))
        if helper is None:
            return node
        call = ast.Call(ast.Name(helper, ast.Load()), [node.left, node.right], [])
        return ast.copy_location(call, node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        if not isinstance(node.op, (ast.Pow, ast.Mult)) or not isinstance(node.target, ast.Name):
            return node
        value = self.visit_BinOp(
            ast.BinOp(ast.Name(node.target.id, ast.Load()), node.op, node.value)
        )
        return ast.copy_location(ast.Assign([node.target], value), node)


def compile_restricted(source: str, mode: str) -> Any:
    """Check and compile a script (`mode="exec"`) or condition (`mode="eval"`).

    Raises SandboxViolation (or SyntaxError) naming what is not allowed.
    """
    tree = ast.parse(source, mode=mode)
    checker = _Checker()
    checker.visit(tree)
    if checker.violations:
        raise SandboxViolation("; ".join(checker.violations))
    tree = ast.fix_missing_locations(_Bounder().visit(tree))
    return compile(tree, "<script>", mode)


class RestrictedEnvironment(BasePythonScriptEngineEnvironment):
    """Evaluates conditions and runs scripts against task data under the allow-list."""

    def __init__(self) -> None:
        super().__init__({})
        self._cache: dict[tuple[str, str], Any] = {}

    def _compiled(self, source: str, mode: str) -> Any:
        key = (source, mode)
        code = self._cache.get(key)
        if code is None:
            code = self._cache[key] = compile_restricted(source, mode)
        return code

    def _scope(self, context, external_context) -> dict[str, Any]:
        # One dict for globals and locals, so comprehensions see the script's variables.
        scope: dict[str, Any] = dict(context)
        scope.update(external_context or {})
        scope.update(_HELPERS)
        scope["__builtins__"] = SAFE_BUILTINS
        return scope

    def evaluate(self, expression, context, external_context=None):
        code = self._compiled(expression, "eval")
        scope = self._scope(context, external_context)
        return _run_bounded(lambda: eval(code, scope))  # noqa: S307

    def execute(self, script, context, external_context=None):
        code = self._compiled(script, "exec")
        scope = self._scope(context, external_context)
        _run_bounded(lambda: exec(code, scope))  # noqa: S102
        for key, value in scope.items():
            if key.startswith("__") or key in (external_context or {}) or callable(value):
                continue
            context[key] = value
        return True

    def call_service(self, context, **kwargs):
        raise SandboxViolation("service tasks are run by the engine, not by scripts")


class CertrailScriptEngine(PythonScriptEngine):
    """Script engine whose service tasks are the engine's system actions.

    `system_actions` is set per unit of work: a mapping from an operation name (the BPMN
    `serviceTaskOperator`) to a callable(task, params) -> dict that runs inside the
    same database transaction as the step that reached the service task.
    """

    def __init__(self, environment: RestrictedEnvironment | None = None) -> None:
        super().__init__(environment=environment or RestrictedEnvironment())
        self.system_actions: dict[str, Any] = {}

    def call_service(self, task, operation_name=None, operation_params=None, **_kwargs):
        action = self.system_actions.get(operation_name)
        if action is None:
            raise SandboxViolation(f"unknown system operation '{operation_name}'")
        params = {k: v["value"] for k, v in (operation_params or {}).items()}
        return json.dumps(action(task, params), default=str)
