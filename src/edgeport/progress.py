"""Progress bars on stderr: tqdm where it is installed and wanted, a silent stand-in otherwise (a leaf)."""

from __future__ import annotations

import sys


class _NoBar:
    def update(self, n=1):
        pass

    def set_description(self, text):
        pass

    def write(self, text):
        print(text, file=sys.stderr)

    def close(self):
        pass


def progress_bar(total: int, enabled: bool, desc: str, unit: str = "run"):
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)


__all__ = ["progress_bar"]
