#!/usr/bin/env python
"""Model validation latency: `validate_model_source` on each shipped model, against the bare
SpiffWorkflow parse of the same file in the same run.

Validation is what the modeler runs on every save and publish: hardened XML, the BPMN 2.0
XSD, the SpiffWorkflow parse, the flow rules and Certrail's semantics, with the library's
process ids and task ids as context. The baseline is `SpiffBpmnParser` with SpiffWorkflow's
own XSD validator, `add_bpmn_xml` + `get_spec` of the same bytes (what any SpiffWorkflow
application pays to load a model). After `--warmup` untimed runs, `--runs` timed runs per
model, interleaved; figures are the median and the p95 in ms.

Usage:  .venv/bin/python bench/validation.py [--runs 30] [--warmup 3] [--write-results]
Target: every shipped model validates in < 300 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lxml import etree  # noqa: E402
from results_file import RESULTS_FILE, write_section  # noqa: E402
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser  # noqa: E402

from engine.catalog import BPMN_DIR  # noqa: E402
from engine.forms import FormRegistry  # noqa: E402
from engine.validation import validate_model_source  # noqa: E402

SECTION_START = "<!-- bench:validation:start -->"
SECTION_END = "<!-- bench:validation:end -->"
TARGET_MS = 300.0


def bare_parse(source: bytes, filename: str) -> None:
    parser = SpiffBpmnParser(validator=VALIDATOR)
    parser.add_bpmn_xml(etree.fromstring(source).getroottree(), filename)
    for process_id in parser.get_process_ids():
        parser.get_spec(process_id)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(args) -> list[dict]:
    forms = FormRegistry()
    paths = sorted(BPMN_DIR.glob("*.bpmn"))
    processes = {p.stem for p in paths}
    task_ids: set[str] = set()
    for path in paths:
        root = etree.fromstring(path.read_bytes())
        task_ids |= {el.get("id") for el in root.iter() if el.get("id")}
    results = []
    for path in paths:
        source = path.read_bytes()

        def validate(source: bytes = source, path: Path = path) -> None:
            validation = validate_model_source(
                source, forms, known_processes=processes, task_ids=task_ids, filename=path.name
            )
            if not validation.ok:
                sys.exit(f"{path.name} does not validate: {validation.errors}")

        def parse(source: bytes = source, path: Path = path) -> None:
            bare_parse(source, path.name)

        for _ in range(args.warmup):
            validate()
            parse()
        timings: dict[str, list[float]] = {"validate": [], "parse": []}
        for _ in range(args.runs):
            for label, run in (("validate", validate), ("parse", parse)):
                started = time.perf_counter()
                run()
                timings[label].append((time.perf_counter() - started) * 1000)
        row = {"model": path.name, "bytes": len(source)}
        for label, values in timings.items():
            row[label] = {"median": statistics.median(values), "p95": percentile(values, 0.95)}
        row["ratio"] = row["validate"]["median"] / row["parse"]["median"]
        results.append(row)
        print(
            f"{path.name:24} validate {row['validate']['median']:6.1f} / "
            f"{row['validate']['p95']:6.1f} ms   parse {row['parse']['median']:6.1f} / "
            f"{row['parse']['p95']:6.1f} ms   ratio {row['ratio']:.2f}"
        )
    return results


def machine() -> str:
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        cpu = platform.processor() or "?"
    from importlib.metadata import version

    return (
        f"date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, host {platform.system()} "
        f"{platform.release()} ({platform.machine()}), cpu {cpu}, nproc {os.cpu_count()}, "
        f"python {platform.python_version()}, SpiffWorkflow {version('spiffworkflow')}, "
        f"lxml {version('lxml')}, load average when done "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )


def markdown(results: list[dict], args, command: str) -> str:
    rows = "\n".join(
        f"| {r['model']} | {r['bytes']:,} | {r['validate']['median']:.1f} / "
        f"{r['validate']['p95']:.1f} | {r['parse']['median']:.1f} / {r['parse']['p95']:.1f} | "
        f"{r['ratio']:.2f} |"
        for r in results
    )
    worst = max(r["validate"]["p95"] for r in results)
    verdict = "met" if worst < TARGET_MS else "missed"
    return f"""{SECTION_START}
## validation: validating each shipped model, against the bare SpiffWorkflow parse

`engine.validation.validate_model_source` (hardened XML, BPMN 2.0 XSD, SpiffWorkflow parse,
flow rules, Certrail semantics, with the library's process and task ids as context) on each
file of `bpmn/`, and in the same run the bare SpiffWorkflow load of the same bytes
(`SpiffBpmnParser` with its XSD validator, `add_bpmn_xml` + `get_spec`). {args.warmup} untimed
then {args.runs} timed runs per model, interleaved; median / p95 in ms.

Command: `{command}`

Machine: {machine()}

| model | bytes | validate (ms) | bare parse (ms) | validate / parse (medians) |
|---|---|---|---|---|
{rows}

Target: every shipped model validates in < {TARGET_MS:.0f} ms: slowest p95 {worst:.1f} ms, **{verdict}**.
{SECTION_END}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="timed runs per model (>= 15)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per model")
    parser.add_argument("--write-results", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    if args.runs < 15:
        parser.error("--runs must be at least 15")
    results = measure(args)
    worst = max(r["validate"]["p95"] for r in results)
    verdict = "met" if worst < TARGET_MS else "MISSED"
    print(f"slowest validation p95 {worst:.1f} ms (target < {TARGET_MS:.0f} ms): {verdict}")
    if args.write_results:
        argv = [a for a in sys.argv[1:] if a != "--write-results"]
        command = shlex.join([".venv/bin/python", "bench/validation.py", *argv, "--write-results"])
        write_section(markdown(results, args, command), SECTION_START, SECTION_END)
        print(f"results written to {RESULTS_FILE}")
    if worst >= TARGET_MS:
        sys.exit(1)


if __name__ == "__main__":
    main()
