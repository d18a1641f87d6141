"""bench/RESULTS.md: one section per benchmark, replaced when the benchmark runs again."""

from __future__ import annotations

from pathlib import Path

RESULTS_FILE = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = (
    "# Benchmark results\n\n"
    "One section per benchmark in `bench/`; each section is replaced when its benchmark is\n"
    "run again with `--write-results`.\n"
)


def write_section(section: str, start_marker: str, end_marker: str) -> None:
    """Put `section` (which begins with `start_marker` and ends with `end_marker`) in place
    of the benchmark's previous section, or append it."""
    content = RESULTS_FILE.read_text() if RESULTS_FILE.exists() else HEADER
    if start_marker in content and end_marker in content:
        before, rest = content.split(start_marker, 1)
        after = rest.split(end_marker, 1)[1].lstrip("\n")
        content = before + section + ("\n" + after if after else "")
    else:
        content = content.rstrip("\n") + "\n\n" + section
    RESULTS_FILE.write_text(content)
