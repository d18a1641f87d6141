"""Impartiality: segregation-of-duties rules, the conflict-of-interest register, commitments,
auto-assignment, and explanations. Enforced at three points: candidate lists (SQL criteria),
claim and assignment, and completion (re-checked in the same transaction)."""

from .policy import Policy, current_policy, load_policy
from .rules import (
    CLAUSES,
    Bar,
    UserFacts,
    claimable_criteria,
    evaluate,
    performer_bars,
    store_bars,
    user_facts,
    user_facts_columns,
)

__all__ = [
    "CLAUSES",
    "Bar",
    "Policy",
    "claimable_criteria",
    "current_policy",
    "evaluate",
    "load_policy",
    "performer_bars",
    "store_bars",
    "user_facts",
    "user_facts_columns",
    "UserFacts",
]
