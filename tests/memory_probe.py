"""Peak memory of one command, measured in a fresh process (VmHWM).

Not ``ru_maxrss`` of the test process: that is the lifetime peak of a long pytest run (and Linux
carries it over from a forking parent), so it passes once any earlier test has raised it.
"""

from __future__ import annotations

import subprocess
import sys

_PEAK = r"""
import sys
from edgeport.cli import main
rc = main(sys.argv[1:])
hwm = next(ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")).split()[1]
print("PEAK", hwm, "RC", rc)
"""

_LOAD = r"""
import sys
from edgeport.bundle import load_bundle
from edgeport.errors import BundleError
try:
    load_bundle(sys.argv[1])
    rc = 0
except BundleError as exc:
    print("ERROR", str(exc).splitlines()[0])
    rc = 1
hwm = next(ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")).split()[1]
print("PEAK", hwm, "RC", rc)
"""


def _run(code: str, argv) -> tuple[int, int, str]:
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, argv)], capture_output=True, text=True, timeout=600
    )
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("PEAK"))
    _, peak, _, rc = line.split()
    err = next((ln for ln in done.stdout.splitlines() if ln.startswith("ERROR")), "") + done.stderr
    return int(peak), int(rc), err


def peak_kib(argv) -> tuple[int, int]:
    """(peak KiB, exit code) of ``edgeport ARGV`` in a fresh process."""
    peak, rc, _ = _run(_PEAK, argv)
    return peak, rc


def load_peak_kib(path) -> tuple[int, int, str]:
    """(peak KiB, 0 or 1, the error line) of ``load_bundle(path)`` in a fresh process."""
    return _run(_LOAD, [path])
