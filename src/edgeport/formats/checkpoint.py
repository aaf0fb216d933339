"""The reference artifact (format ``torch``): the weights as safetensors, or the user's ExportedProgram.

A safetensors checkpoint cannot run code; the runner rebuilds the model from
the manifest's reference.  A ``.pt2`` is kept as it came (torch.export.load
unpickles it, so loading it from a bundle needs explicit trust).
"""

from __future__ import annotations

from ..bundle.writer import write_bytes

CHECKPOINT_FILE = "checkpoint/model.safetensors"
PT2_FILE = "checkpoint/model.pt2"


def export(ctx, source) -> list:
    """Write the reference artifact for ``source`` (a :class:`~edgeport.sources.models.ModelSource`)."""
    if source.exported_program_data is not None:  # the bytes that were loaded, not the path again
        write_bytes(ctx.staging, PT2_FILE, source.exported_program_data)
        return [
            ctx.artifact("torch", "fp32", PT2_FILE, details={"format": "pt2", "model": "exported_program"})
        ]
    from safetensors.torch import save

    if source.checkpoint is not None and not source.random_init and _same_weights(source):
        write_bytes(ctx.staging, CHECKPOINT_FILE, source.checkpoint.read_bytes())
    else:
        state = {k: v.detach().contiguous().cpu() for k, v in ctx.model.state_dict().items()}
        write_bytes(
            ctx.staging,
            CHECKPOINT_FILE,
            save(state, metadata={"model": ctx.model_ref, "format": "edgeport-checkpoint/1"}),
        )
    details = {"format": "safetensors", "model": ctx.model_ref}
    if ctx.model_args:
        details["model_args"] = ctx.model_args
    return [ctx.artifact("torch", "fp32", CHECKPOINT_FILE, details=details)]


def _same_weights(source) -> bool:
    """The model still has the weights of the file it was loaded from (no BatchNorm re-estimation)."""
    return not source.provenance.get("batchnorm_reestimated")
