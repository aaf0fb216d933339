"""Text found on every machine: the docstrings of the Python standard library.

Every ``.py`` file under ``sysconfig``'s stdlib folder (tests, site-packages
and IDLE left out) is parsed with :mod:`ast`; each module, class and function
docstring is one document.  Files are split by a hash of their relative path:
1 in 20 is held out (the eval text), so the split is the same on every
machine with the same Python, and training never sees the held-out files.
``text:FILE`` names any UTF-8 text file instead.
"""

from __future__ import annotations

import ast
import hashlib
import sysconfig
import warnings
from pathlib import Path

from ..errors import DataError

HOLDOUT_EVERY = 20
SKIP_DIRS = {"test", "tests", "site-packages", "idlelib", "lib2to3", "__pycache__", "turtledemo"}
SEPARATOR = "\n\n"


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _files(root: Path) -> list[Path]:
    out = []
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root)
        if not SKIP_DIRS.intersection(rel.parts[:-1]) and not rel.name.startswith("test_"):
            out.append(p)
    return out


def _docstrings(path: Path) -> list[str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
        return []
    docs = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc and len(doc) >= 40:
                docs.append(doc.strip())
    return docs


def held_out(rel: str) -> bool:
    return int(hashlib.sha256(rel.encode()).hexdigest(), 16) % HOLDOUT_EVERY == 0


def stdlib_docstrings(split: str) -> list[str]:
    """Docstrings of the ``train`` or ``heldout`` files, in a fixed order."""
    root = stdlib_root()
    files = _files(root)
    if not files:
        raise DataError(f"found no Python sources under {root}; pass --data text:FILE with your own text")
    want = split == "heldout"
    docs = []
    for p in files:
        if held_out(p.relative_to(root).as_posix()) == want:
            docs += _docstrings(p)
    return docs


def read_text(spec: str | None) -> tuple[str, dict]:
    """(held-out text, its identity) for ``None``/``stdlib`` or ``text:FILE``."""
    if spec in (None, "stdlib", "stdlib:heldout"):
        docs = stdlib_docstrings("heldout")
        text = SEPARATOR.join(docs)
        ident = {"kind": "stdlib", "split": "heldout", "documents": len(docs), "root": str(stdlib_root())}
    elif isinstance(spec, str) and spec.startswith("text:"):
        path = Path(spec[5:])
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(
                f"--data {spec}: cannot read it as UTF-8 text ({exc}); pass a UTF-8 text file"
            ) from None
        ident = {"kind": "text", "file": str(path)}
    else:
        raise DataError(
            f"--data {str(spec)[:60]!r} is not a text source; text-generation bundles take text:FILE or stdlib"
        )
    if not text.strip():
        raise DataError(f"the text of {ident} is empty; pass text to evaluate on")
    ident["sha256"] = hashlib.sha256(text.encode()).hexdigest()
    ident["evidence"] = "real text"
    return text, ident
