"""The task registry: every task name and the module that owns its metrics, gates and rendering.

Adding a task is one module under ``edgeport/tasks/`` plus one line here; the
rest of edgeport asks the task object and never branches on a task's name.
stdlib only at import: task modules are imported on first use.
"""

from __future__ import annotations

import importlib

from ..errors import ConfigError

TASKS: dict[str, str] = {
    "classify": "edgeport.tasks.classify:Classify",
    "detect": "edgeport.tasks.detect:Detect",
    "segment": "edgeport.tasks.segment:Segment",
    "embed": "edgeport.tasks.embed:Embed",
    "text-classify": "edgeport.tasks.classify:TextClassify",
    "token": "edgeport.tasks.token:Token",
    "regress": "edgeport.tasks.regress:Regress",
    "raw": "edgeport.tasks.regress:Raw",
}


def names() -> list[str]:
    return list(TASKS)


def task_class(name: str):
    target = TASKS.get(name)
    if target is None:
        raise ConfigError(f"unknown task {str(name)[:40]!r}; choose from {', '.join(TASKS)}")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def make(signature, name: str, params: dict | None = None):
    """The task object for ``signature`` (its outputs carry roles)."""
    return task_class(name)(signature, params)


def infer(outputs: list[dict], inputs: list[dict]) -> str | None:
    """The task of a model when it is unambiguous (today's classifier rule), else None.

    ``outputs``/``inputs``: ``[{name, shape, dtype, kind, role}]`` as observed at export.
    A model with a classifier-like output (2-D float, more than one column) is a
    classifier (``text-classify`` when its first input holds integer token ids).
    """
    for o in outputs:
        role = o.get("role")
        if role and role not in ("class_scores", "aux"):
            for name in TASKS:  # a declared role names its task
                if role in task_class(name).roles:
                    return name
    classifier = any(
        o.get("role") == "class_scores"
        or (len(o["shape"]) == 2 and o["shape"][1] > 1 and o["dtype"].startswith("float"))
        for o in outputs
    )
    if not classifier:
        return None
    tokens = inputs and inputs[0]["dtype"] in ("int64", "int32") and len(inputs[0]["shape"]) == 2
    return "text-classify" if tokens else "classify"


def for_manifest(manifest):
    """The task object of a loaded manifest (schema-2 bundles: inferred from their output kinds)."""
    block = manifest.task or {}
    return make(
        manifest.signature, block.get("name") or infer_from_kinds(manifest.signature), block.get("params")
    )


def infer_from_kinds(signature) -> str:
    return "classify" if any(s.role == "class_scores" for s in signature.outputs) else "raw"
