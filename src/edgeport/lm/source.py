"""Where a language model comes from: ``hf:DIR`` (a local transformers folder), ``hf:ORG/NAME`` (the hub,
only when named and reachable), ``tiny-lm`` (this project's demo), or a ``tiny-lm`` run folder.

:func:`resolve_lm` returns an :class:`LMSource`: the model in eval mode (float32),
its architecture facts, its tokenizer (a ``tokenizers.Tokenizer`` or None) and
stop tokens.  Architectures outside :data:`SUPPORTED` are refused with one line.
No code from a checkpoint ever runs (``trust_remote_code`` is always False).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ConfigError
from ..runtime.lm_tokenizer import check_fits, parse_tokenizer

# model_type -> family; each one is exported and checked token by token in tests/test_lm.py.
SUPPORTED = {"llama": "llama", "qwen2": "llama", "qwen3": "llama", "gpt2": "gpt2"}
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
HUB_FILES = [
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "*.safetensors.index.json",
    "tokenizer.json",
]
RANDOM_INIT_SEED = 0


@dataclass
class LMSource:
    ref: str  # what the manifest records: hf:DIR, hf:ORG/NAME or tiny-lm
    model: torch.nn.Module
    config: object  # transformers PretrainedConfig
    tokenizer: object | None  # tokenizers.Tokenizer
    tokenizer_json: str | None
    random_init: bool
    provenance: dict = field(default_factory=dict)

    @property
    def text_config(self):
        return self.config.get_text_config()

    def architecture(self) -> dict:
        c = self.text_config
        heads = int(c.num_attention_heads)
        return {
            "model_type": c.model_type,
            "family": SUPPORTED[c.model_type],
            "layers": int(c.num_hidden_layers),
            "heads": heads,
            "kv_heads": int(getattr(c, "num_key_value_heads", None) or heads),
            "head_dim": int(getattr(c, "head_dim", None) or c.hidden_size // heads),
            "hidden": int(c.hidden_size),
            "params": int(sum(p.numel() for p in self.model.parameters())),
            "tied_embeddings": bool(getattr(c, "tie_word_embeddings", False)),
        }

    @property
    def vocab_size(self) -> int:
        return int(self.text_config.vocab_size)

    @property
    def max_positions(self) -> int:
        c = self.text_config
        return int(getattr(c, "max_position_embeddings", None) or getattr(c, "n_positions", 0) or 1 << 20)

    def stop_token_ids(self) -> list[int]:
        gc = getattr(self.model, "generation_config", None)
        eos = getattr(gc, "eos_token_id", None) if gc is not None else None
        eos = self.text_config.eos_token_id if eos is None else eos
        ids = eos if isinstance(eos, (list, tuple)) else ([] if eos is None else [eos])
        return sorted({int(t) for t in ids if 0 <= int(t) < self.vocab_size})

    def bos_token_id(self) -> int | None:
        bos = self.text_config.bos_token_id
        return int(bos) if isinstance(bos, int) and 0 <= bos < self.vocab_size else None


def is_lm_ref(model_ref, run=None) -> bool:
    """Whether a model reference (or run folder) names a decoder-only LM: ``hf:...``, ``tiny-lm``, or a
    folder holding a transformers ``config.json``."""
    if isinstance(model_ref, str) and (model_ref == "tiny-lm" or model_ref.startswith("hf:")):
        return True
    return bool(run) and (Path(run) / "config.json").is_file()


def check_architecture(config, where: str) -> None:
    """:class:`ConfigError` (one line) for a config this exporter does not support."""
    mt = getattr(config, "model_type", None)
    archs = ", ".join(getattr(config, "architectures", None) or []) or "no architectures listed"
    if mt not in SUPPORTED:
        raise ConfigError(
            f"{where} describes a {mt!r} model ({archs}); text-generation export supports decoder-only "
            f"{', '.join(sorted(SUPPORTED))} checkpoints: convert the model to one of them or export it another way"
        )
    if getattr(config, "is_encoder_decoder", False):
        raise ConfigError(
            f"{where} is an encoder-decoder model; text-generation export needs a decoder-only LM"
        )


def _hub_folder(name: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, allow_patterns=HUB_FILES))
    except Exception as exc:  # noqa: BLE001 - offline, unknown repo, gated, ...
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise ConfigError(
            f"hf:{name} is not a local folder and could not be downloaded from the Hugging Face hub ({first}); "
            "pass hf:DIR with a local checkpoint folder (config.json + safetensors)"
        ) from None


def _folder(ref: str) -> Path:
    name = ref[3:] if ref.startswith("hf:") else ref
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if ref.startswith("hf:") and HUB_ID.match(name) and not path.exists():
        return _hub_folder(name)
    raise ConfigError(f"{ref}: no such folder; pass hf:DIR with a local transformers checkpoint folder")


def _load_config(folder: Path, ref: str):
    from transformers import AutoConfig

    if not (folder / "config.json").is_file():
        raise ConfigError(f"{ref}: {folder} has no config.json; it must be a transformers checkpoint folder")
    try:
        raw = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{ref}: config.json is not readable JSON ({str(exc)[:100]})") from None
    if not isinstance(raw, dict) or raw.get("model_type") not in SUPPORTED:
        mt = raw.get("model_type") if isinstance(raw, dict) else None
        archs = ", ".join(raw.get("architectures") or []) if isinstance(raw, dict) else ""
        raise ConfigError(
            f"{ref}: config.json describes a {mt!r} model ({archs or 'no architectures listed'}); "
            f"text-generation export supports decoder-only {', '.join(sorted(SUPPORTED))} checkpoints"
        )
    config = AutoConfig.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    check_architecture(config, f"{ref}: config.json")
    return config


def quiet_transformers() -> None:
    """No per-load progress bars from transformers (edgeport prints its own stage lines)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _build(folder: Path, config, ref: str, random_init: bool):
    from transformers import AutoModelForCausalLM

    quiet_transformers()

    if random_init:
        torch.manual_seed(RANDOM_INIT_SEED)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="sdpa")
    else:
        if not any(folder.glob("*.safetensors")):
            raise ConfigError(
                f"{ref}: {folder} has no .safetensors weights; weights are required (or --random-init for speed work)"
            )
        model = AutoModelForCausalLM.from_pretrained(
            folder,
            local_files_only=True,
            trust_remote_code=False,
            use_safetensors=True,
            dtype=torch.float32,
            attn_implementation="sdpa",
        )
    return model.eval()


def resolve_lm(ref: str, *, random_init: bool = False, tokenizer: str | None = None) -> LMSource:
    """The model ``ref`` names, ready to export."""
    if ref == "tiny-lm":
        from .tinylm import tiny_lm_folder

        folder, ref = tiny_lm_folder(random_init), "tiny-lm"
    else:
        folder = _folder(ref)
        ref = ref if ref.startswith("hf:") else f"hf:{ref}"
    config = _load_config(folder, ref)
    model = _build(folder, config, ref, random_init)
    tok_path = Path(tokenizer) if tokenizer else folder / "tokenizer.json"
    tok = text = None
    if tokenizer and not tok_path.is_file():
        raise ConfigError(f"--tokenizer {tokenizer}: no such file")
    if tok_path.is_file():
        text = tok_path.read_text(encoding="utf-8")
        tok = parse_tokenizer(text, str(tok_path))
        check_fits(tok, int(config.get_text_config().vocab_size), f"tokenizer {tok_path}")
    prov = {"source": ref, "folder": str(folder.resolve())}
    return LMSource(ref, model, config, tok, text, random_init, prov)
