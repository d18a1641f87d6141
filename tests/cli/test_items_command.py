"""`certrail items analyze RESPONSES.csv [--json]`: the command-line contract."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.engine.test_item_analysis import SMALL


def certrail(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_items_analyze_json_has_the_contract_keys(tmp_path):
    responses = tmp_path / "responses.csv"
    responses.write_text(SMALL)
    done = certrail("items", "analyze", str(responses), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {"items", "kr20", "alpha", "sem", "candidates", "mean", "sd"} <= set(report)
    assert set(report["items"]) == {"i1", "i2", "i3"}
    for item in report["items"].values():
        assert {"p", "rpb", "rpb_rest", "flags"} <= set(item)
    assert report["candidates"] == 5
    assert report["kr20"] == pytest.approx(0.6 / 1.04, abs=1e-12)
    assert report["items"]["i3"]["p"] == pytest.approx(0.2)


def test_items_analyze_prints_a_table_and_names_bad_lines(tmp_path):
    responses = tmp_path / "responses.csv"
    responses.write_text(SMALL)
    done = certrail("items", "analyze", str(responses), "--pass-mark", "2")
    assert done.returncode == 0
    assert "KR-20 0.577" in done.stdout and "pass rate 40.0%" in done.stdout

    responses.write_text("candidate,item,score\nc1,i1,yes\n")
    refused = certrail("items", "analyze", str(responses), "--json")
    assert refused.returncode == 1
    assert "line 2" in refused.stderr and "Traceback" not in refused.stderr
    missing = certrail("items", "analyze", str(tmp_path / "nope.csv"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr
