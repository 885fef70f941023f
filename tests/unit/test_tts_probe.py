"""Paper 2's per-query probe on synthetic data: bootstrap labels, Platt scaling,
training, save/load, the estimator the planner reads, and collection on a
fake pool. No server and no MiniLM here (see test_tts_probe_embedding.py)."""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import AsyncIterator, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import torch

import agentrt.tts.probe as probe_api
from agentrt.core._errors import ConfigurationError
from agentrt.pool._protocol import BranchFinished, ChatRequest, StreamEvent, TokenDelta
from agentrt.tasks import single_step_addition
from agentrt.tts._accuracy import AccuracyModel
from agentrt.tts._config import TTSConfig
from agentrt.tts._executor import CallModels
from agentrt.tts._length import LengthModel
from agentrt.tts.probe import (
    PlattScaling,
    Probe,
    ProbeAccuracy,
    brier_score,
    config_features,
    default_probe_path,
    expected_calibration_error,
    fit_platt,
    query_text,
)
from agentrt.tuning.probe import (
    LabelledExample,
    ProbeTraining,
    QuerySamples,
    Sample,
    bootstrap_examples,
    collect_samples,
    decision_correct,
    default_caps,
    load_samples,
    save_samples,
    soft_label,
    train_probe,
)
from agentrt.tuning.probe._train import split_queries

# -- helpers ------------------------------------------------------------------------


class TableEmbedder:
    """A fixed vector per query text: the synthetic stand-in for MiniLM."""

    name = "table"

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table
        self.dim = len(next(iter(table.values())))
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        self.calls += 1
        return torch.tensor([self.table[t] for t in texts], dtype=torch.float32)


def right(key: str = "7", score: float | None = None, tokens: int = 5) -> Sample:
    return Sample(answer=key, correct=True, tokens=tokens, score=score)


def wrong(key: str = "8", score: float | None = None, tokens: int = 5) -> Sample:
    return Sample(answer=key, correct=False, tokens=tokens, score=score)


def query(samples: list[Sample], query_id: str = "q0", max_tokens: int = 64) -> QuerySamples:
    return QuerySamples(query_id, f"What is {query_id}?", max_tokens, tuple(samples))


def cluster_problem(
    queries: int = 30, dim: int = 8, seed: int = 1
) -> tuple[TableEmbedder, list[LabelledExample]]:
    """Queries in two separable clusters: the 'easy' ones are always right, the
    'hard' ones never, whatever the config."""
    rng = random.Random(seed)
    table: dict[str, list[float]] = {}
    examples = []
    for i in range(queries):
        easy = i % 2 == 0
        centre = 1.0 if easy else -1.0
        text = f"query {i}"
        table[text] = [centre + rng.gauss(0, 0.2) for _ in range(dim)]
        for strategy in ("majority", "best_of_n"):
            for n in (1, 2, 4, 8):
                examples.append(
                    LabelledExample(f"q{i}", text, strategy, n, "plain", 64, 1.0 if easy else 0.0)
                )
    return TableEmbedder(table), examples


QUICK = ProbeTraining(hidden=32, epochs=40, batch_size=64, learning_rate=3e-3, seed=0)

# -- public namespace ---------------------------------------------------------------


def test_public_names_are_exactly_all_sorted() -> None:
    names = probe_api.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    public = {n for n in vars(probe_api) if not n.startswith("_")}
    assert public == set(names)


# -- features -----------------------------------------------------------------------


def test_config_features_are_documented_one_hots_and_logs() -> None:
    assert config_features("majority", 8, "plain", 256) == [1.0, 0.0, 3.0, 1.0, 0.0, 8.0]
    assert config_features("best_of_n", 1, "spec", 64) == [0.0, 1.0, 0.0, 0.0, 1.0, 6.0]
    assert len(probe_api.CONFIG_FEATURE_NAMES) == 6


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("beam", 4, "plain", 64), "'beam'"),
        (("majority", 0, "plain", 64), "n must be an integer >= 1, got 0"),
        (("majority", 2, "gpu", 64), "'gpu'"),
        (("majority", 2, "plain", 0), "max_tokens must be an integer >= 1, got 0"),
    ],
)
def test_bad_config_features_name_the_value(args: tuple[Any, ...], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        config_features(*args)


def test_query_text_of_messages() -> None:
    assert query_text([{"role": "user", "content": "What is 3 plus 4?"}]) == "What is 3 plus 4?"
    parts = [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}]
    assert query_text(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": parts}]
    ) == ("Be brief.\na")
    with pytest.raises(ConfigurationError, match="must not be empty"):
        query_text([])
    with pytest.raises(ConfigurationError, match="no text"):
        query_text([{"role": "user", "content": ""}])


# -- decisions and bootstrap labels -------------------------------------------------


def test_majority_decision_counts_then_scores_then_draw_order() -> None:
    assert decision_correct("majority", [wrong(), right(), right()])
    assert not decision_correct("majority", [right(), wrong(), wrong()])
    # a tie goes to the answer drawn first...
    assert decision_correct("majority", [right(), wrong()])
    assert not decision_correct("majority", [wrong(), right()])
    # ...unless the summed scores differ
    assert decision_correct("majority", [wrong(score=0.2), right(score=0.9)])
    # samples without an answer abstain; none at all is wrong
    silent = Sample(answer=None, correct=False)
    assert decision_correct("majority", [silent, silent, right()])
    assert not decision_correct("majority", [silent, silent])


def test_best_of_n_decision_takes_the_highest_score_with_an_answer() -> None:
    assert decision_correct("best_of_n", [wrong(score=0.4), right(score=0.9), wrong(score=0.8)])
    assert not decision_correct("best_of_n", [wrong(score=0.9), right(score=0.5)])
    assert decision_correct("best_of_n", [wrong(), right(score=0.1)])  # unscored ranks last
    assert not decision_correct("best_of_n", [Sample(None, False, score=1.0), wrong(score=0.1)])


def test_soft_labels_exact_on_constructed_cases() -> None:
    all_right = query([right()] * 4)
    all_wrong = query([wrong(), wrong("9"), wrong("5"), Sample(None, False)])
    three_to_one = query([right(), right(), right(), wrong()])
    two_of_four = query([right(), right(), wrong("8"), wrong("9")])
    for strategy in ("majority", "best_of_n"):
        for n in (1, 2, 4):
            assert soft_label(all_right, strategy, n) == 1.0
            assert soft_label(all_wrong, strategy, n) == 0.0
    # with every sample drawn, the decision no longer depends on the draw
    assert soft_label(three_to_one, "majority", 4) == 1.0
    assert soft_label(two_of_four, "majority", 4) == 1.0  # 2 vs 1 vs 1
    scored = query([wrong(score=0.5), right(score=0.9), wrong("9", score=0.7)])
    assert soft_label(scored, "best_of_n", 3) == 1.0
    # 3 of 4 right with one sample: 1 - C(3,3)/... -> the share of draws hitting a right one
    assert soft_label(three_to_one, "majority", 1, draws=4000) == pytest.approx(0.75, abs=0.03)
    # majority of 3 from 3 right + 1 wrong is always right; of 2 it is right unless
    # the wrong one is drawn first in a 1-1 tie: 1 - (3/6) * (1/2) = 0.75
    assert soft_label(three_to_one, "majority", 3) == 1.0
    assert soft_label(three_to_one, "majority", 2, draws=4000) == pytest.approx(0.75, abs=0.03)


def test_soft_labels_are_seeded_and_independent_of_order() -> None:
    coin = query([right(), wrong()] * 4)
    first = soft_label(coin, "majority", 2, seed=5)
    assert first == soft_label(coin, "majority", 2, seed=5)
    assert {soft_label(coin, "majority", 2, seed=s) for s in range(8)} != {first}
    a, b = query([right(), wrong()] * 4, "a"), query([wrong(), right(), right(), wrong()], "b")
    forward = bootstrap_examples([a, b], seed=3)
    backward = bootstrap_examples([b, a], seed=3)
    key = lambda e: (e.query_id, e.strategy, e.n, e.group)  # noqa: E731
    assert sorted(forward, key=key) == sorted(backward, key=key)


def test_bootstrap_examples_cover_every_config_and_share_labels_across_groups() -> None:
    rows = bootstrap_examples([query([right(), wrong()] * 4, "a"), query([right()] * 8, "b")])
    assert len(rows) == 2 * 2 * 4 * 2  # queries x strategies x N in (1,2,4,8) x groups
    assert sorted({r.n for r in rows}) == [1, 2, 4, 8]
    by_group: dict[tuple[str, str, int], set[float]] = {}
    for r in rows:
        by_group.setdefault((r.query_id, r.strategy, r.n), set()).add(r.label)
    assert all(len(labels) == 1 for labels in by_group.values())
    assert all(r.label == 1.0 for r in rows if r.query_id == "b")


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda: soft_label(query([right()] * 4), "majority", 5), "n must be in \\[1, 4\\].*got 5"),
        (lambda: soft_label(query([right()] * 4), "majority", 0), "got 0"),
        (lambda: soft_label(query([right()] * 4), "majority", 2, draws=0), "draws.*got 0"),
        (lambda: soft_label(query([right()] * 4), "weighted", 2), "'weighted'"),
        (lambda: Sample(answer=None, correct=True), "Sample.correct"),
        (lambda: Sample("7", True, tokens=-1), "Sample.tokens must be >= 0, got -1"),
        (lambda: Sample("7", True, score=math.nan), "Sample.score"),
        (lambda: query([]), "samples is empty"),
        (lambda: query([right("7"), wrong("7")]), "answer '7' is marked both"),
        (lambda: query([right()], max_tokens=0), "max_tokens must be >= 1, got 0"),
        (lambda: bootstrap_examples([]), "at least one"),
        (lambda: bootstrap_examples([query([right()])], groups=["gpu"]), "'gpu'"),
    ],
)
def test_bad_label_inputs_raise_configuration_errors(call: Any, named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        call()


# -- calibration ------------------------------------------------------------------


def test_brier_and_ece_on_small_cases() -> None:
    assert brier_score([0.5, 1.0], [1.0, 1.0]) == pytest.approx(0.125)
    assert expected_calibration_error([0.9, 0.9, 0.1], [1.0, 0.0, 0.0]) == pytest.approx(
        (abs(1.8 - 1.0) + abs(0.1 - 0.0)) / 3
    )
    with pytest.raises(ConfigurationError, match="2 predictions but 1 labels"):
        brier_score([0.1, 0.2], [0.0])
    with pytest.raises(ConfigurationError, match=r"labels must be in \[0, 1\], got 1.5"):
        expected_calibration_error([0.1], [1.5])


def test_fit_platt_recovers_the_scaling_of_exact_soft_labels() -> None:
    logits = [x / 10 for x in range(-40, 41)]
    labels = [PlattScaling(2.0, -1.0).probability(z) for z in logits]
    fitted = fit_platt(logits, labels)
    assert fitted.a == pytest.approx(2.0, abs=1e-3)
    assert fitted.b == pytest.approx(-1.0, abs=1e-3)


def test_platt_scaling_reduces_calibration_error_of_an_overconfident_model() -> None:
    rng = random.Random(7)
    truth = [rng.uniform(0.02, 0.98) for _ in range(4000)]
    labels = [1.0 if rng.random() < p else 0.0 for p in truth]
    logits = [4.0 * math.log(p / (1 - p)) + 1.0 for p in truth]  # overconfident, shifted
    fit, held = slice(0, 2000), slice(2000, 4000)
    platt = fit_platt(logits[fit], labels[fit])
    raw = [PlattScaling().probability(z) for z in logits[held]]
    scaled = [platt.probability(z) for z in logits[held]]
    assert platt.a == pytest.approx(0.25, abs=0.05)
    ece_raw = expected_calibration_error(raw, labels[held])
    ece_scaled = expected_calibration_error(scaled, labels[held])
    assert ece_scaled < ece_raw / 3
    assert brier_score(scaled, labels[held]) < brier_score(raw, labels[held])


# -- training -----------------------------------------------------------------------


def test_the_mlp_learns_a_separable_problem_and_reports_held_out_figures() -> None:
    embedder, examples = cluster_problem()
    report = train_probe(examples, embedder, QUICK)
    metrics = report.metrics
    assert metrics is not None and metrics.split == "test"
    assert len(report.train_queries) == 18 and len(report.test_queries) == 6
    assert metrics.brier_calibrated < 0.02 < 0.2 < metrics.brier_constant
    assert report.train_loss < 0.05
    easy = torch.tensor([embedder.table["query 0"]])
    hard = torch.tensor([embedder.table["query 1"]])
    features = torch.tensor([config_features("majority", 4, "plain", 64)])
    assert report.probe.probabilities(easy, features)[0] > 0.9
    assert report.probe.probabilities(hard, features)[0] < 0.1
    assert report.probe.info.ns == (1, 2, 4, 8) and report.probe.info.groups == ("plain",)
    assert embedder.calls == 1  # each query is embedded once


def test_training_is_seeded_and_deterministic() -> None:
    embedder, examples = cluster_problem(queries=12)
    first = train_probe(examples, embedder, QUICK)
    second = train_probe(examples, embedder, QUICK)
    for key, value in first.probe.network.state_dict().items():
        assert torch.equal(value, second.probe.network.state_dict()[key])
    assert first.probe.platt == second.probe.platt
    assert first.test_queries == second.test_queries


def test_split_is_by_query_and_needs_enough_queries() -> None:
    train, calibration, test = split_queries(
        [f"q{i}" for i in range(10)] * 3, calibration_fraction=0.2, test_fraction=0.2, seed=1
    )
    assert (len(train), len(calibration), len(test)) == (6, 2, 2)
    assert not set(train) & set(calibration) and not set(train) & set(test)
    with pytest.raises(ConfigurationError, match="2 queries leave none for training"):
        split_queries(["a", "b"], calibration_fraction=0.2, test_fraction=0.2, seed=0)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"hidden": 0}, "ProbeTraining.hidden must be an integer >= 1, got 0"),
        ({"learning_rate": -1.0}, "learning_rate must be > 0, got -1.0"),
        ({"embedding_dropout": 1.0}, r"embedding_dropout must be in \[0, 1\), got 1.0"),
        ({"test_fraction": 1.2}, "test_fraction must be in \\[0, 1\\), got 1.2"),
        ({"calibration_fraction": 0.5, "test_fraction": 0.5}, "must be < 1"),
    ],
)
def test_bad_training_settings_name_the_field(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        ProbeTraining(**options)


def test_bad_training_examples_raise() -> None:
    embedder, examples = cluster_problem(queries=6)
    with pytest.raises(ConfigurationError, match="got none"):
        train_probe([], embedder)
    bad = LabelledExample("q0", "query 0", "majority", 2, "plain", 64, 1.5)
    with pytest.raises(ConfigurationError, match=r"label must be in \[0, 1\], got 1.5"):
        train_probe([*examples, bad], embedder)
    clash = LabelledExample("q0", "another text", "majority", 2, "plain", 64, 1.0)
    with pytest.raises(ConfigurationError, match="'q0' has two different query texts"):
        train_probe([*examples, clash], embedder)


# -- save / load --------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    embedder, examples = cluster_problem(queries=12)
    probe = train_probe(examples, embedder, QUICK).probe
    path = probe.save(tmp_path / "probes" / "p.safetensors")
    loaded = Probe.load(path)
    assert loaded.info == probe.info and loaded.platt == probe.platt
    rows = torch.tensor([embedder.table[f"query {i}"] for i in range(12)])
    features = torch.tensor([config_features("best_of_n", 2, "plain", 64)] * 12)
    assert loaded.logits(rows, features) == probe.logits(rows, features)


def test_loading_something_else_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="probe file not found"):
        Probe.load(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ConfigurationError, match=r"junk\.safetensors"):
        Probe.load(junk)


def test_default_path_is_under_the_agentrt_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTRT_HOME", str(tmp_path))
    assert default_probe_path() == tmp_path / "probes" / "default.safetensors"
    with pytest.raises(ConfigurationError, match="plain file name"):
        default_probe_path("../x")


# -- the estimator ------------------------------------------------------------------


def falling_with_n() -> tuple[TableEmbedder, list[LabelledExample]]:
    """Labels that fall as N grows (the vote converges on a wrong answer)."""
    table = {f"query {i}": [math.sin(i + d) for d in range(8)] for i in range(12)}
    examples = [
        LabelledExample(
            f"q{i}", f"query {i}", strategy, n, group, cap,
            max(0.0, 0.9 - 0.2 * math.log2(n)) * (cap / 64),
        )
        for i in range(12)
        for strategy in ("majority", "best_of_n")
        for n in (1, 2, 4, 8)
        for group in ("plain", "spec")
        for cap in (16, 32, 64)
    ]  # fmt: skip
    return TableEmbedder(table), examples


MESSAGES = [{"role": "user", "content": "query 3"}]


def test_estimator_is_monotone_in_n_for_majority_and_clipped() -> None:
    embedder, examples = falling_with_n()
    report = train_probe(examples, embedder, QUICK)
    estimator = ProbeAccuracy(report.probe, embedder).for_query(MESSAGES)
    lengths = LengthModel()
    for group in ("plain", "spec"):
        for cap in (16, 32, 64):
            values = [
                estimator.predict(TTSConfig("majority", n, group, cap, 0.7), lengths)
                for n in range(1, 40)
            ]
            assert all(b >= a for a, b in pairwise(values))
            assert all(0.0 <= v <= 1.0 for v in values)
    best = [estimator.predict(TTSConfig("best_of_n", n, "plain", 64, 0.7), lengths) for n in (1, 8)]
    assert best[1] < best[0]  # only majority is forced monotone
    # N above the trained range reads as the largest trained N
    assert estimator.predict(TTSConfig("best_of_n", 32, "plain", 64, 0.7), lengths) == best[1]


def test_estimator_falls_back_outside_what_it_was_trained_on() -> None:
    embedder, examples = falling_with_n()
    report = train_probe(examples, embedder, QUICK)
    fallback = AccuracyModel()
    estimator = ProbeAccuracy(report.probe, embedder, fallback=fallback).for_query(MESSAGES)
    lengths = LengthModel()
    for config in (TTSConfig("single", 1), TTSConfig("weighted", 4, temperature=0.7)):
        assert estimator.predict(config, lengths) == fallback.predict(config, lengths)
    # below the smallest trained cap, the length model scales the value down
    at_16 = estimator.predict(TTSConfig("majority", 2, "plain", 16, 0.7), lengths)
    at_4 = estimator.predict(TTSConfig("majority", 2, "plain", 4, 0.7), lengths)
    assert at_4 == pytest.approx(at_16 * min(1.0, lengths.cdf(4) / lengths.cdf(16)))


def test_per_query_hook_plugs_into_call_models_and_caches_embeddings() -> None:
    embedder, examples = falling_with_n()
    probe = ProbeAccuracy(train_probe(examples, embedder, QUICK).probe, embedder)
    calls = embedder.calls
    models = CallModels(per_query=probe.for_query)
    first = models.accuracy_for(MESSAGES)
    second = models.accuracy_for([{"role": "user", "content": "query 5"}])
    models.accuracy_for(MESSAGES)
    assert embedder.calls == calls + 2
    config = TTSConfig("majority", 4, max_tokens=64, temperature=0.7)
    assert first.predict(config, LengthModel()) != second.predict(config, LengthModel())


def test_estimator_refuses_a_different_embedder() -> None:
    embedder, examples = cluster_problem(queries=6)
    probe = train_probe(examples, embedder, QUICK).probe
    other = TableEmbedder({"x": [0.0] * 4})
    with pytest.raises(ConfigurationError, match="trained on embedder 'table' \\(8 dims\\)"):
        ProbeAccuracy(probe, other)


# -- collection on a fake pool --------------------------------------------------------


class FakeBackend:
    """Replies with scripted branches: (pieces of (text, tokens), finish reason)."""

    def __init__(self, branches: list[tuple[list[tuple[str, int]], str]]) -> None:
        self.branches = branches
        self.requests: list[tuple[ChatRequest, str]] = []

    @contextlib.asynccontextmanager
    async def stream(
        self, request: ChatRequest, *, group: str = "plain", **_: Any
    ) -> AsyncIterator[AsyncIterator[StreamEvent]]:
        self.requests.append((request, group))

        async def events() -> AsyncIterator[StreamEvent]:
            for index, (pieces, reason) in enumerate(self.branches[: request.n]):
                for text, tokens in pieces:
                    yield TokenDelta(index, text, 0.0, tokens, (-0.5,) * tokens)
                yield BranchFinished(index, reason, 0.0)

        yield events()


async def test_collect_samples_marks_answers_at_every_cap() -> None:
    tasks = single_step_addition(seed=0, count=2)
    answer = tasks[0].answer
    backend = FakeBackend(
        [
            ([("The answer ", 2), (f"is {answer}.", 2)], "stop"),  # right at 4 tokens
            ([("It is 99", 3), (" or maybe ", 3), (answer, 1)], "stop"),  # right only whole
            ([("I think ", 2), ("about", 14)], "length"),  # no number
        ]
    )
    collected = await collect_samples(backend, tasks[:1], 3, 16, seed=2, caps=(4, 16))
    assert [(q.query_id, q.max_tokens) for q in collected] == [(tasks[0].id, 4), (tasks[0].id, 16)]
    at_4, at_16 = collected
    assert at_4.query == tasks[0].prompt
    assert [s.correct for s in at_16.samples] == [True, True, False]
    assert [s.answer for s in at_4.samples] == [answer, "99", None]
    assert [s.tokens for s in at_4.samples] == [4, 4, 4]  # vLLM stops each at the cap
    assert at_16.samples[0].score == pytest.approx(math.exp(-0.5))
    request, group = backend.requests[0]
    assert (request.n, request.temperature, request.seed, request.logprobs) == (
        3, 0.7, 2 * 1_000_003, True,
    )  # fmt: skip
    assert request.messages == [{"role": "user", "content": tasks[0].prompt}]
    assert group == "plain"


async def test_collect_samples_rejects_bad_settings() -> None:
    tasks = single_step_addition(seed=0, count=1)
    backend = FakeBackend([])
    with pytest.raises(ConfigurationError, match="temperature must be > 0"):
        await collect_samples(backend, tasks, 4, temperature=0.0)
    with pytest.raises(ConfigurationError, match="caps must be non-empty and in \\[1, 16\\]"):
        await collect_samples(backend, tasks, 4, 16, caps=(32,))
    with pytest.raises(ConfigurationError, match="at least one task"):
        await collect_samples(backend, [], 4)
    assert default_caps(64) == (16, 32, 64)


def test_samples_round_trip_through_jsonl(tmp_path: Path) -> None:
    queries = [query([right(score=0.5), wrong(), Sample(None, False, 3)], "a")]
    path = save_samples(tmp_path / "s.jsonl", queries)
    assert load_samples(path) == queries
    path.write_text('{"query_id": "a"}\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"s\.jsonl:1"):
        load_samples(path)
