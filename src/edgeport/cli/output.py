"""What the commands print about their results: a bundle, its export timings, a pipeline's end.

A leaf of the CLI: every command module prints through it, and it imports none of them.
"""

from __future__ import annotations

import sys

from ..errors import safe_text
from .args import PROG


def print_bundle(bundle) -> None:
    from ..bundle.describe import artifact_lines

    print("\n".join(artifact_lines(bundle)))


def print_timings(timings) -> None:
    """Seconds per export stage, slowest first (what `--verbose` and `inspect` show)."""
    from ..bundle.describe import timing_lines

    lines = timing_lines(timings)
    if lines:
        print("\n".join(lines))


def print_result(result) -> int:
    """The pipeline's last lines (passed, or each failed gate on stderr) and its exit code."""
    total = sum(result.stages.values())
    if result.passed:
        print(f"pipeline passed in {total:.0f} s: {safe_text(result.run_dir)}/report.html")
        return 0
    for line in result.gates:
        print(f"{PROG}: gate failed: {safe_text(line)}", file=sys.stderr)
    print(
        f"pipeline FAILED ({len(result.gates)} gate(s)); outputs kept in {safe_text(result.run_dir)}",
        file=sys.stderr,
    )
    return 1
