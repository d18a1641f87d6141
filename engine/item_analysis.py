"""Statistical review of an examination (ISO/IEC 17024 9.3): classical item analysis.

Input is one row per candidate and item: either a 0/1 score, or the option the candidate
chose plus an answer key (then distractor frequencies are available too). A candidate with no
row for an item scored 0 on it: an omitted answer earns no mark.

Per item: difficulty `p` (proportion correct), point-biserial discrimination `rpb` (item
against the total score) and `rpb_rest` (against the total without the item, which does not
reward the item for correlating with itself). Per form: KR-20, Cronbach's alpha, the standard
error of measurement, mean and standard deviation of totals, and the pass rate at a pass mark.
Variances are population variances (ddof=0), so for 0/1 items alpha equals KR-20.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .errors import ValidationError

MAX_ROWS = 2_000_000


@dataclass(frozen=True)
class Thresholds:
    """When an item or a form deserves a second look (configurable per analysis)."""

    min_p: float = 0.2
    max_p: float = 0.9
    min_rpb: float = 0.15
    min_reliability: float = 0.8


@dataclass
class ItemStatistics:
    item: str
    p: float
    rpb: float | None
    rpb_rest: float | None
    flags: list[str]
    # option -> (how many chose it, mean total score of those who chose it); keyed items only
    options: dict[str, tuple[int, float]] = field(default_factory=dict)
    key: str | None = None

    def as_dict(self) -> dict:
        result: dict = {"p": self.p, "rpb": self.rpb, "rpb_rest": self.rpb_rest}
        result["flags"] = list(self.flags)
        if self.options:
            result["key"] = self.key
            result["options"] = {
                option: {"count": count, "mean_total": mean}
                for option, (count, mean) in sorted(self.options.items())
            }
        return result


@dataclass
class FormAnalysis:
    items: dict[str, ItemStatistics]
    candidates: int
    mean: float
    sd: float
    kr20: float | None
    alpha: float | None
    sem: float | None
    pass_mark: float | None
    pass_rate: float | None
    flags: list[str]
    thresholds: Thresholds

    def as_dict(self) -> dict:
        return {
            "items": {name: stats.as_dict() for name, stats in self.items.items()},
            "kr20": self.kr20,
            "alpha": self.alpha,
            "sem": self.sem,
            "candidates": self.candidates,
            "mean": self.mean,
            "sd": self.sd,
            "pass_mark": self.pass_mark,
            "pass_rate": self.pass_rate,
            "flags": list(self.flags),
            "thresholds": {
                "min_p": self.thresholds.min_p,
                "max_p": self.thresholds.max_p,
                "min_rpb": self.thresholds.min_rpb,
                "min_reliability": self.thresholds.min_reliability,
            },
        }


@dataclass
class Responses:
    """A candidate × item matrix of 0/1 scores, and the chosen options when known."""

    candidates: list[str]
    items: list[str]
    scores: dict[tuple[str, str], int]
    chosen: dict[tuple[str, str], str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)


def read_responses(text: str, keys: Mapping[str, str] | None = None) -> Responses:
    """Rows `candidate,item,score` (score 0 or 1), or `candidate,item,response` with `keys`
    (item -> correct option). Errors name the line and the column."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    columns = {(name or "").strip().lower() for name in reader.fieldnames or ()}
    missing = {"candidate", "item"} - columns
    scored = "score" in columns
    if not scored and "response" not in columns:
        missing.add("score")
    if missing:
        raise ValidationError(
            "the responses file needs the columns candidate, item and score "
            "(or response with an answer key)",
            {name: ["column is missing"] for name in sorted(missing)},
        )
    if not scored and not keys:
        raise ValidationError(
            "responses without a score column need an answer key", {"key": ["is required"]}
        )
    candidates: dict[str, None] = {}
    items: dict[str, None] = {}
    scores: dict[tuple[str, str], int] = {}
    chosen: dict[tuple[str, str], str] = {}
    for line, raw in enumerate(reader, start=2):
        if line > MAX_ROWS:
            raise ValidationError(f"more than {MAX_ROWS:,} rows", {"file": ["is too large"]})
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        candidate, item = row.get("candidate", ""), row.get("item", "")
        if not candidate or not item:
            name = "candidate" if not candidate else "item"
            raise ValidationError(f"line {line}: {name} is empty", {name: [f"line {line}"]})
        if (candidate, item) in scores:
            raise ValidationError(
                f"line {line}: candidate {candidate} answered item {item} twice",
                {"item": [f"line {line}: duplicate"]},
            )
        if scored:
            value = row.get("score", "")
            if value not in ("0", "1"):
                raise ValidationError(
                    f"line {line}: score {value!r} is not 0 or 1", {"score": [f"line {line}"]}
                )
            scores[(candidate, item)] = int(value)
        else:
            if item not in keys:
                raise ValidationError(
                    f"line {line}: item {item} has no answer in the key",
                    {"key": [f"item {item} is missing"]},
                )
            response = row.get("response", "")
            chosen[(candidate, item)] = response
            scores[(candidate, item)] = int(response == keys[item])
        candidates.setdefault(candidate)
        items.setdefault(item)
    if not scores:
        raise ValidationError("the responses file has no rows", {"file": ["is empty"]})
    return Responses(list(candidates), list(items), scores, chosen, dict(keys or {}))


def read_key(text: str) -> dict[str, str]:
    """An answer key: rows `item,key`."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    columns = {(name or "").strip().lower() for name in reader.fieldnames or ()}
    if not {"item", "key"} <= columns:
        raise ValidationError(
            "the answer key needs the columns item and key", {"key": ["columns item, key"]}
        )
    keys: dict[str, str] = {}
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        if not row.get("item") or not row.get("key"):
            raise ValidationError(
                f"answer key line {line} is incomplete", {"key": [f"line {line}"]}
            )
        keys[row["item"]] = row["key"]
    return keys


def analyse(
    responses: Responses,
    thresholds: Thresholds = Thresholds(),
    pass_mark: float | None = None,
) -> FormAnalysis:
    """Item and form statistics for one exam form. `pass_mark` is a raw total score."""
    candidates, items = responses.candidates, responses.items
    n, k = len(candidates), len(items)
    matrix = [[responses.scores.get((c, i), 0) for i in items] for c in candidates]
    totals = [sum(row) for row in matrix]
    mean = sum(totals) / n
    total_variance = _variance(totals)
    sd = math.sqrt(total_variance)

    stats: dict[str, ItemStatistics] = {}
    item_variances = []
    for column, item in enumerate(items):
        scores = [row[column] for row in matrix]
        p = sum(scores) / n
        item_variances.append(p * (1 - p))
        rest = [total - score for total, score in zip(totals, scores, strict=True)]
        stats[item] = ItemStatistics(
            item=item,
            p=p,
            rpb=_correlation(scores, totals),
            rpb_rest=_correlation(scores, rest),
            flags=[],
        )
        if responses.chosen:
            stats[item].key = responses.keys.get(item)
            stats[item].options = _option_frequencies(responses, candidates, item, totals)
        stats[item].flags = _item_flags(stats[item], thresholds)

    kr20 = alpha = sem = None
    if k > 1 and total_variance > 0:
        kr20 = (k / (k - 1)) * (1 - sum(item_variances) / total_variance)
        observed = [_variance([row[c] for row in matrix]) for c in range(k)]
        alpha = (k / (k - 1)) * (1 - sum(observed) / total_variance)
        sem = sd * math.sqrt(max(0.0, 1 - alpha))
    pass_rate = None
    if pass_mark is not None:
        pass_rate = sum(1 for total in totals if total >= pass_mark) / n
    form_flags = []
    if kr20 is None:
        form_flags.append("reliability_undefined")
    elif kr20 < thresholds.min_reliability:
        form_flags.append("low_reliability")
    return FormAnalysis(
        items=stats,
        candidates=n,
        mean=mean,
        sd=sd,
        kr20=kr20,
        alpha=alpha,
        sem=sem,
        pass_mark=pass_mark,
        pass_rate=pass_rate,
        flags=form_flags,
        thresholds=thresholds,
    )


def _item_flags(stats: ItemStatistics, thresholds: Thresholds) -> list[str]:
    flags = []
    if stats.p < thresholds.min_p:
        flags.append("too_hard")
    if stats.p > thresholds.max_p:
        flags.append("too_easy")
    if stats.rpb_rest is None:
        flags.append("no_variance")
    elif stats.rpb_rest < 0:
        flags.append("negative_discrimination")
    elif stats.rpb_rest < thresholds.min_rpb:
        flags.append("low_discrimination")
    keyed = stats.options.get(stats.key or "")
    if keyed is not None:
        for option, (_count, mean_total) in sorted(stats.options.items()):
            if option != stats.key and mean_total > keyed[1]:
                # Those who chose this wrong option scored higher overall than those who
                # chose the key: the key may be wrong or the option ambiguous.
                flags.append(f"distractor_attracts_stronger_candidates:{option}")
    return flags


def _option_frequencies(
    responses: Responses, candidates: list[str], item: str, totals: list[int]
) -> dict[str, tuple[int, float]]:
    chosen_by: dict[str, list[int]] = {}
    for candidate, total in zip(candidates, totals, strict=True):
        option = responses.chosen.get((candidate, item), "")
        chosen_by.setdefault(option or "(omitted)", []).append(total)
    return {option: (len(t), sum(t) / len(t)) for option, t in chosen_by.items()}


def _variance(values: Iterable[float]) -> float:
    values = list(values)
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / len(values)


def _correlation(xs: list[float], ys: list[float]) -> float | None:
    """Pearson's r; None when either variable is constant (the correlation is undefined)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)
