"""What the commands print about their results: a bundle, its export timings, a pipeline's end.

A leaf of the CLI: every command module prints through it, and it imports none of them.
"""

from __future__ import annotations

import sys

from ..errors import safe_text
from .args import PROG


def print_bundle(bundle) -> None:
    task = bundle.task
    print(f"bundle {safe_text(bundle.path)} ({task.name}):")
    for w in bundle.warnings:
        print(f"  WARNING: {safe_text(w)}")
    for a in bundle.artifacts:
        size = a.total_bytes
        print(f"  {a.key:<18} {a.file:<34} {size / 1024:9.1f} KiB  sha256 {a.sha256[:12]}")
    for f in bundle.failures:
        print(
            f"  {f['format'] + '/' + f['precision']:<18} FAILED at {safe_text(f['stage'])}, not in the bundle: "
            f"{safe_text(f['reason'])}"
        )


def print_timings(timings) -> None:
    """Seconds per export stage, slowest first (what `--verbose` and `inspect` show)."""
    if not isinstance(timings, dict) or not timings:
        return
    total = sum(v for v in timings.values() if isinstance(v, (int, float)))
    print(f"export stages ({total:.1f} s in all):")
    for name, sec in sorted(timings.items(), key=lambda kv: -kv[1]):
        print(f"  {safe_text(name)[:60]:<42} {sec:8.2f} s")


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
