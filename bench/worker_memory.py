#!/usr/bin/env python
"""Worker memory: the resident set of one `certrail worker` process while it fires 10,000
due timers, sampled from /proc as it goes.

Setup: a model that waits 30 days on a timer, then opens a user task. One real case is
started at 2026-01-01 and cloned (fresh task ids) into `--timers` waiting cases, so every
timer is due now. Then `certrail worker --interval 1` runs as a separate process; this script
samples its VmRSS every 100 ms together with the number of timers fired so far, and stops
the worker (SIGTERM) once all have fired.

The worker keeps up to 2,000 recently used workflows in memory (LiveWorkflows) to spare a
restore when a case's next step comes soon; RSS is expected to grow while that cache fills
and stay flat after it. The figure that matters is the growth between 5,000 and 10,000
firings: that is what a leak would show.

    .venv/bin/python bench/worker_memory.py [--timers 10000] [--no-pg] [--write-results]
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_throughput import PostgresSchema, machine_info, postgres_probe  # noqa: E402
from results_file import write_section  # noqa: E402
from sqlalchemy import text  # noqa: E402

from engine import Engine  # noqa: E402
from engine.clock import FixedClock  # noqa: E402
from engine.db import make_engine  # noqa: E402
from engine.models import Base  # noqa: E402
from tests.engine.test_worker import WAITING_MODEL, clone_waiting_cases  # noqa: E402

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
START = datetime(2026, 1, 1, 9, 0)
MARKERS = ("<!-- bench:worker_memory:start -->", "<!-- bench:worker_memory:end -->")


def checkpoints(timers: int) -> list[int]:
    return [timers // 10, timers // 5, timers // 2, timers]


def prepare(sql, bpmn_dir: Path, timers: int) -> None:
    engine = Engine(sql_engine=sql, clock=FixedClock(START), bpmn_dir=bpmn_dir)
    Base.metadata.create_all(sql)
    engine.sync_models()
    seed = engine.start_case("waiting").case_id
    clone_waiting_cases(engine, seed, timers - 1)


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def run_worker(url: str, sql, timers: int) -> list[tuple[int, int]]:
    """(fired, rss KiB) samples from a worker process until every timer has fired."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "--database", url, "worker", "--interval", "1"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    samples: list[tuple[int, int]] = []
    deadline = time.monotonic() + 1800
    try:
        while time.monotonic() < deadline:
            rss = rss_kib(worker.pid)
            with sql.connect() as conn:
                fired = conn.execute(
                    text("select count(*) from timers where status = 'fired'")
                ).scalar_one()
            if rss is not None:
                samples.append((fired, rss))
            if fired >= timers or worker.poll() is not None:
                break
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    return samples


def at(samples: list[tuple[int, int]], fired: int) -> int | None:
    """RSS of the first sample taken once `fired` timers had fired."""
    return next((rss for count, rss in samples if count >= fired), None)


def measure(kind: str, timers: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        bpmn_dir = Path(tmp) / "bpmn"
        bpmn_dir.mkdir()
        (bpmn_dir / "waiting.bpmn").write_text(WAITING_MODEL)
        if kind == "sqlite":
            url = f"sqlite:///{Path(tmp) / 'worker.sqlite'}"
            sql = make_engine(url)
            prepare(sql, bpmn_dir, timers)
            samples = run_worker(url, sql, timers)
            sql.dispose()
        else:
            schema = PostgresSchema(PG_URL)
            with schema as sql:
                prepare(sql, bpmn_dir, timers)
                url = f"{schema.url}?options=" + quote(f"-csearch_path={schema.schema}")
                samples = run_worker(url, sql, timers)
    return {
        "kind": kind,
        "fired": samples[-1][0] if samples else 0,
        "start": at(samples, 1),
        "checkpoints": {n: at(samples, n) for n in checkpoints(timers)},
        "samples": len(samples),
    }


def mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f}"


def report(results: list[dict], timers: int) -> str:
    lines = [
        MARKERS[0],
        f"## worker_memory: one `certrail worker` firing {timers:,} due timers",
        "",
        "Resident set (VmRSS from /proc, MiB) of the worker process, sampled every 100 ms,",
        "at the first sample after N timers had fired. Each firing is a unit of work: claim",
        "the timer, restore the case, fire, open the follow-up task, persist, audit.",
        "",
        f"Command: `{shlex.join(['.venv/bin/python', 'bench/worker_memory.py', *sys.argv[1:]])}`",
        "",
        "Machine: "
        + ", ".join(f"{k} {v}" for k, v in machine_info(postgres_probe(PG_URL)).items()),
        "",
        "| database | first firing | "
        + " | ".join(f"after {n:,}" for n in checkpoints(timers))
        + f" | growth {timers // 2:,} → {timers:,} |",
        "|---|---|" + "---|" * len(checkpoints(timers)) + "---|",
    ]
    for result in results:
        marks = result["checkpoints"]
        half, full = marks[timers // 2], marks[timers]
        growth = f"{(full - half) / 1024:+.1f} MiB" if full and half else "-"
        lines.append(
            f"| {result['kind']} | {mib(result['start'])} | "
            + " | ".join(mib(marks[n]) for n in checkpoints(timers))
            + f" | {growth} |"
        )
    lines += [
        "",
        "The worker keeps up to 2,000 workflows in memory (`LiveWorkflows`), so RSS rises",
        "while that cache fills and should be flat afterwards; growth over the second half",
        "of the firings is the leak indicator.",
        MARKERS[1],
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timers", type=int, default=10000)
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    kinds = ["sqlite"] + ([] if args.no_pg or not postgres_probe(PG_URL) else ["postgresql"])
    results = []
    for kind in kinds:
        result = measure(kind, args.timers)
        print(
            f"{kind}: fired {result['fired']:,}; RSS start {mib(result['start'])} MiB, "
            + ", ".join(f"{n:,}: {mib(v)}" for n, v in result["checkpoints"].items())
        )
        results.append(result)
    text_report = report(results, args.timers)
    print(text_report)
    if args.write_results:
        write_section(text_report, *MARKERS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
