"""Tasks: what a model's outputs mean, how an artifact is measured against PyTorch, and its gates.

See :mod:`edgeport.tasks.base` for the contract and :mod:`edgeport.tasks.registry`
for the names.  numpy only.
"""

from .registry import TASKS, for_manifest, infer, make, names, task_class

__all__ = ["TASKS", "for_manifest", "infer", "make", "names", "task_class"]
