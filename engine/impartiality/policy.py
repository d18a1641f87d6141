"""The impartiality policy file (`bpmn/policy.json`): global rules, validated when loaded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from jsonschema import Draft202012Validator

from ..errors import ModelError

POLICY_FILE = Path(__file__).resolve().parents[2] / "bpmn" / "policy.json"
RULE_IDS = (
    "SOD-DECIDE",
    "SOD-APPEAL",
    "SOD-COMPLAINT",
    "SOD-COI",
    "SOD-COMMIT",
    "SOD-SELF",
    "SOD-INTERNAL",
    "SOD-4EYES",
    "SOD-AUDIT",
)
_RULE_LIST = {"type": "array", "items": {"enum": list(RULE_IDS)}, "uniqueItems": True}
_SCHEMA = {
    "type": "object",
    "required": [
        "version",
        "rules_for_every_task",
        "rules_for_decision_tasks",
        "decision_rules",
        "examination_tasks",
        "decision_tasks",
        "commitment",
    ],
    "properties": {
        "version": {"const": 1},
        "description": {"type": "string"},
        "rules_for_every_task": _RULE_LIST,
        "rules_for_decision_tasks": _RULE_LIST,
        "decision_rules": _RULE_LIST,
        "examination_tasks": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "decision_tasks": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "commitment": {
            "type": "object",
            "required": ["text_version", "validity_months"],
            "properties": {
                "text_version": {"type": "string", "minLength": 1},
                "validity_months": {"type": "integer", "minimum": 1, "maximum": 60},
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Policy:
    rules_for_every_task: tuple[str, ...]
    rules_for_decision_tasks: tuple[str, ...]
    decision_rules: tuple[str, ...]
    examination_tasks: tuple[str, ...]
    decision_tasks: tuple[str, ...]
    commitment_text_version: str
    commitment_validity_months: int

    def is_decision(self, task_spec_id: str, declared: tuple[str, ...]) -> bool:
        return task_spec_id in self.decision_tasks or bool(set(declared) & set(self.decision_rules))

    def rules_for(self, task_spec_id: str, declared: tuple[str, ...]) -> tuple[str, ...]:
        rules = list(self.rules_for_every_task) + list(declared)
        if self.is_decision(task_spec_id, declared):
            rules += self.rules_for_decision_tasks
            if task_spec_id in self.decision_tasks and "SOD-DECIDE" not in rules:
                rules.append("SOD-DECIDE")
        return tuple(dict.fromkeys(rules))


def load_policy(path: Path = POLICY_FILE) -> Policy:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"impartiality policy {path} cannot be read: {exc}") from None
    errors = sorted(Draft202012Validator(_SCHEMA).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(top)"
        raise ModelError(f"impartiality policy {path} is invalid at {where}: {errors[0].message}")
    return Policy(
        rules_for_every_task=tuple(data["rules_for_every_task"]),
        rules_for_decision_tasks=tuple(data["rules_for_decision_tasks"]),
        decision_rules=tuple(data["decision_rules"]),
        examination_tasks=tuple(data["examination_tasks"]),
        decision_tasks=tuple(data["decision_tasks"]),
        commitment_text_version=data["commitment"]["text_version"],
        commitment_validity_months=data["commitment"]["validity_months"],
    )


@lru_cache(maxsize=1)
def current_policy() -> Policy:
    return load_policy()
