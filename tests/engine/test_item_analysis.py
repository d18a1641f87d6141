"""Item analysis (ISO/IEC 17024 9.3) checked against hand-computed values and against an
independent numpy computation on generated responses."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from engine.errors import ValidationError
from engine.item_analysis import Thresholds, analyse, read_key, read_responses

# Five candidates, three items; totals 3, 2, 1, 1, 0 (worked by hand in the comments below).
SMALL = """candidate,item,score
c1,i1,1
c1,i2,1
c1,i3,1
c2,i1,1
c2,i2,1
c2,i3,0
c3,i1,1
c3,i2,0
c3,i3,0
c4,i1,0
c4,i2,1
c4,i3,0
c5,i1,0
c5,i2,0
c5,i3,0
"""


def test_small_form_matches_the_hand_computation():
    result = analyse(read_responses(SMALL))
    # mean 7/5; population variance of totals 5.2/5 = 1.04
    assert result.candidates == 5
    assert result.mean == pytest.approx(1.4, abs=1e-12)
    assert result.sd == pytest.approx(math.sqrt(1.04), abs=1e-12)
    # p = 0.6, 0.6, 0.2; sum pq = 0.64; KR-20 = 3/2 (1 - 0.64/1.04) = 0.6/1.04
    assert [result.items[i].p for i in ("i1", "i2", "i3")] == pytest.approx([0.6, 0.6, 0.2])
    assert result.kr20 == pytest.approx(0.6 / 1.04, abs=1e-12)
    assert result.alpha == pytest.approx(result.kr20, abs=1e-12)
    # SEM^2 = var (1 - KR-20) = 1.04 - 0.6
    assert result.sem == pytest.approx(math.sqrt(0.44), abs=1e-12)
    # i1 against totals: sxy 1.8, sxx 1.2, syy 5.2; against the rest: 0.6 / sqrt(1.2 * 2.8)
    assert result.items["i1"].rpb == pytest.approx(1.8 / math.sqrt(1.2 * 5.2), abs=1e-12)
    assert result.items["i1"].rpb_rest == pytest.approx(0.6 / math.sqrt(1.2 * 2.8), abs=1e-12)
    # i3 against the rest: sxy 0.8, sxx 0.8, syy 2.8
    assert result.items["i3"].rpb_rest == pytest.approx(0.8 / math.sqrt(0.8 * 2.8), abs=1e-12)
    assert result.flags == ["low_reliability"]


def test_items_outside_the_thresholds_are_flagged():
    rows = ["candidate,item,score"]
    # easy: everyone but one right; hard: only the weakest right (negative discrimination)
    for n in range(20):
        rows += [f"c{n},easy,{int(n != 0)}", f"c{n},hard,{int(n == 0)}"]
        rows += [f"c{n},a,{int(n >= 10)}", f"c{n},b,{int(n >= 8)}", f"c{n},same,1"]
    result = analyse(read_responses("\n".join(rows)), Thresholds())
    assert "too_hard" in result.items["hard"].flags
    assert "negative_discrimination" in result.items["hard"].flags
    assert "too_easy" in result.items["easy"].flags
    assert result.items["same"].rpb is None and "no_variance" in result.items["same"].flags
    assert result.items["a"].flags == []


def test_a_missing_answer_scores_zero_and_a_pass_mark_gives_the_pass_rate():
    text = "candidate,item,score\nc1,i1,1\nc1,i2,1\nc2,i1,1\nc3,i2,0\n"
    result = analyse(read_responses(text), pass_mark=2)
    assert result.items["i2"].p == pytest.approx(1 / 3)
    assert result.pass_rate == pytest.approx(1 / 3)


def test_responses_with_a_key_give_distractor_frequencies():
    key = read_key("item,key\nq1,B\nq2,A\n")
    text = "candidate,item,response\n" + "\n".join(
        [
            "c1,q1,B",
            "c1,q2,A",
            "c2,q1,B",
            "c2,q2,C",
            "c3,q1,C",
            "c3,q2,A",
            "c4,q1,D",
            "c4,q2,C",
        ]
    )
    result = analyse(read_responses(text, key))
    q1 = result.items["q1"]
    assert q1.p == pytest.approx(0.5)
    assert q1.options == {"B": (2, 1.5), "C": (1, 1.0), "D": (1, 0.0)}
    # q2: those who chose C (c2 total 1, c4 total 0) vs the key A (c1 2, c3 1)
    assert result.as_dict()["items"]["q2"]["options"]["C"] == {"count": 2, "mean_total": 0.5}


def test_a_distractor_chosen_by_stronger_candidates_than_the_key_is_flagged():
    key = read_key("item,key\nq,A\nx,A\ny,A\n")
    rows = ["candidate,item,response"]
    for n in range(6):
        strong = n >= 3
        rows += [f"c{n},x,{'A' if strong else 'B'}", f"c{n},y,{'A' if strong else 'B'}"]
        rows.append(f"c{n},q,{'B' if strong else 'A'}")  # the strong choose B: key suspect
    result = analyse(read_responses("\n".join(rows), key))
    assert "distractor_attracts_stronger_candidates:B" in result.items["q"].flags


@pytest.mark.parametrize(
    ("text", "field", "fragment"),
    [
        ("candidate,item\nc1,i1\n", "score", "columns"),
        ("candidate,item,score\nc1,i1,2\n", "score", "line 2"),
        ("candidate,item,score\nc1,i1,1\nc1,i1,0\n", "item", "twice"),
        ("candidate,item,score\n,i1,1\n", "candidate", "empty"),
        ("candidate,item,score\n", "file", "no rows"),
        ("candidate,item,response\nc1,i1,A\n", "key", "answer key"),
    ],
)
def test_bad_files_are_refused_naming_the_line_and_field(text, field, fragment):
    with pytest.raises(ValidationError) as refused:
        read_responses(text)
    assert field in refused.value.fields
    assert fragment in refused.value.message


def generated_responses(candidates: int, items: int, seed: int) -> np.ndarray:
    """0/1 responses from a two-parameter logistic model: realistic, correlated items."""
    rng = random.Random(seed)
    ability = [rng.gauss(0, 1) for _ in range(candidates)]
    difficulty = [rng.uniform(-2, 2) for _ in range(items)]
    slope = [rng.uniform(0.3, 2.0) for _ in range(items)]
    return np.array(
        [
            [
                int(rng.random() < 1 / (1 + math.exp(-slope[j] * (ability[i] - difficulty[j]))))
                for j in range(items)
            ]
            for i in range(candidates)
        ]
    )


def test_statistics_match_an_independent_numpy_computation_to_1e_9():
    matrix = generated_responses(candidates=400, items=40, seed=17024)
    text = "candidate,item,score\n" + "\n".join(
        f"cand{i},item{j},{matrix[i, j]}"
        for i in range(matrix.shape[0])
        for j in range(matrix.shape[1])
    )
    result = analyse(read_responses(text))

    totals = matrix.sum(axis=1)
    k = matrix.shape[1]
    p = matrix.mean(axis=0)
    kr20 = k / (k - 1) * (1 - (p * (1 - p)).sum() / totals.var(ddof=0))
    alpha = k / (k - 1) * (1 - matrix.var(axis=0, ddof=0).sum() / totals.var(ddof=0))
    assert result.kr20 == pytest.approx(kr20, abs=1e-9)
    assert result.alpha == pytest.approx(alpha, abs=1e-9)
    assert result.sd == pytest.approx(totals.std(ddof=0), abs=1e-9)
    assert result.mean == pytest.approx(totals.mean(), abs=1e-9)
    assert result.sem == pytest.approx(totals.std(ddof=0) * np.sqrt(1 - alpha), abs=1e-9)
    for j in range(k):
        item = result.items[f"item{j}"]
        assert item.p == pytest.approx(p[j], abs=1e-9)
        assert item.rpb == pytest.approx(np.corrcoef(matrix[:, j], totals)[0, 1], abs=1e-9)
        rest = totals - matrix[:, j]
        assert item.rpb_rest == pytest.approx(np.corrcoef(matrix[:, j], rest)[0, 1], abs=1e-9)
