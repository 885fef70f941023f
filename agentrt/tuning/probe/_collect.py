"""Training data from the real pool: K sampled branches per task, answers marked.

One request per task with ``n=samples_per_query`` at temperature 0.7 (the
prompt the executor sends for the task: one user message), logprobs on so
best-of-N can rank by self-certainty (``exp(mean logprob)``, as the
executor's default scorer does). Each branch's answer is read with the
task's answer spec and compared with the task's answer key.

The same branches also give the labels at smaller token caps: a branch
longer than a cap ``c`` is read as vLLM would have returned it at
``max_tokens=c`` (its first ``c`` tokens, finish reason ``length``, which the
executor still reads an answer from). So one collection yields one
:class:`~agentrt.tuning.probe._labels.QuerySamples` per task and cap.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agentrt.core._errors import ConfigurationError, EndpointUnavailable
from agentrt.core._log import log_dropped
from agentrt.pool._endpoint import PLAIN_GROUP
from agentrt.pool._pool import Backend
from agentrt.pool._protocol import BranchFinished, ChatRequest, Message, TokenDelta
from agentrt.tasks import Task, answer_key, answer_spec_for
from agentrt.tts._answers import AnswerSpec
from agentrt.tuning.probe._labels import QuerySamples, Sample

STREAM_ATTEMPTS = 3
"""Times one task's request is sent when its stream breaks or goes silent (a read
timeout on a loaded server): collection is offline, so it asks again rather than
losing the whole collection to one stream."""

__all__ = [
    "DEFAULT_TEMPERATURE",
    "collect_samples",
    "default_caps",
    "load_samples",
    "save_samples",
    "task_messages",
]

DEFAULT_TEMPERATURE = 0.7


def task_messages(task: Task) -> list[Message]:
    """The messages the executor sends for a task: its prompt as one user message."""
    return [{"role": "user", "content": task.prompt}]


def default_caps(max_tokens: int) -> tuple[int, ...]:
    """A quarter, a half and all of ``max_tokens`` (distinct, at least 1)."""
    if max_tokens < 1:
        raise ConfigurationError(f"max_tokens must be >= 1, got {max_tokens}")
    return tuple(sorted({max(1, max_tokens // 4), max(1, max_tokens // 2), max_tokens}))


@dataclass
class _Branch:
    pieces: list[tuple[str, int]] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish_reason: str | None = None

    @property
    def tokens(self) -> int:
        return sum(t for _, t in self.pieces)

    def at_cap(self, cap: int, spec: AnswerSpec, key: str) -> Sample:
        """This branch as a request with ``max_tokens=cap`` would have returned it."""
        if self.tokens <= cap:
            text = "".join(p for p, _ in self.pieces)
            finished, used = self.finish_reason is not None, self.tokens
        else:
            kept: list[str] = []
            used = 0
            for piece, count in self.pieces:
                if used + count > cap:
                    break
                kept.append(piece)
                used += count
            text, finished, used = "".join(kept), True, cap
        logprobs = self.logprobs[:used]
        score = math.exp(sum(logprobs) / len(logprobs)) if logprobs else None
        answer = spec.extract(text) if finished else None
        return Sample(
            answer=None if answer is None else answer.key,
            correct=answer is not None and answer.key == key,
            tokens=used,
            score=score,
        )


async def _read_branches(pool: Backend, request: ChatRequest, group: str) -> dict[int, _Branch]:
    branches: dict[int, _Branch] = {}
    async with pool.stream(request, group=group) as stream:
        async for event in stream:
            if isinstance(event, TokenDelta):
                branch = branches.setdefault(event.index, _Branch())
                branch.pieces.append((event.text, event.tokens))
                branch.logprobs.extend(event.logprobs)
            elif isinstance(event, BranchFinished):
                branches.setdefault(event.index, _Branch()).finish_reason = event.reason
    return branches


async def _sample_task(
    pool: Backend,
    task: Task,
    request: ChatRequest,
    group: str,
    caps: Sequence[int],
    limit: asyncio.Semaphore,
) -> list[QuerySamples]:
    branches: dict[int, _Branch] = {}
    async with limit:
        for attempt in range(1, STREAM_ATTEMPTS + 1):
            try:
                branches = await _read_branches(pool, request, group)
                break
            except EndpointUnavailable as exc:  # a broken or silent stream: ask again
                if attempt == STREAM_ATTEMPTS:
                    raise
                log_dropped(f"probe samples for task {task.id} (attempt {attempt})", exc)
    for index in range(request.n):
        branches.setdefault(index, _Branch())
    spec, key = answer_spec_for(task), answer_key(task)
    ordered = [branches[i] for i in sorted(branches)]
    return [
        QuerySamples(
            query_id=task.id,
            query=task.prompt,
            max_tokens=cap,
            samples=tuple(b.at_cap(cap, spec, key) for b in ordered),
        )
        for cap in caps
    ]


async def collect_samples(
    pool: Backend,
    tasks: Sequence[Task],
    samples_per_query: int = 16,
    max_tokens: int = 64,
    *,
    seed: int = 0,
    temperature: float = DEFAULT_TEMPERATURE,
    caps: Sequence[int] | None = None,
    group: str = PLAIN_GROUP,
    concurrency: int = 4,
) -> list[QuerySamples]:
    """Sample every task ``samples_per_query`` times on ``pool``; one
    :class:`QuerySamples` per task and cap (``caps`` default :func:`default_caps`),
    in task order. Request ``i`` is seeded ``seed * 1_000_003 + i``, so a
    collection on the same servers replays."""
    if not tasks:
        raise ConfigurationError("collect_samples needs at least one task, got none")
    if samples_per_query < 1:
        raise ConfigurationError(f"samples_per_query must be >= 1, got {samples_per_query}")
    if samples_per_query > 1 and temperature <= 0.0:
        raise ConfigurationError(
            f"temperature must be > 0 to sample {samples_per_query} branches, got {temperature}"
        )
    if concurrency < 1:
        raise ConfigurationError(f"concurrency must be >= 1, got {concurrency}")
    chosen = tuple(caps) if caps is not None else default_caps(max_tokens)
    if not chosen or any(not 1 <= c <= max_tokens for c in chosen):
        raise ConfigurationError(f"caps must be non-empty and in [1, {max_tokens}], got {chosen}")
    ids = [t.id for t in tasks]
    if len(set(ids)) != len(ids):
        raise ConfigurationError("collect_samples: task ids must be distinct")
    limit = asyncio.Semaphore(concurrency)
    requests = [
        ChatRequest(
            messages=task_messages(task),
            n=samples_per_query,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed * 1_000_003 + i,
            logprobs=True,
        )
        for i, task in enumerate(tasks)
    ]
    per_task = await asyncio.gather(
        *(
            _sample_task(pool, task, request, group, chosen, limit)
            for task, request in zip(tasks, requests, strict=True)
        )
    )
    return [samples for task_samples in per_task for samples in task_samples]


def save_samples(path: Path | str, queries: Sequence[QuerySamples]) -> Path:
    """Write collected samples as JSON Lines (one query x cap a line)."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as out:
        for q in queries:
            record = {
                "query_id": q.query_id,
                "query": q.query,
                "max_tokens": q.max_tokens,
                "samples": [
                    {"answer": s.answer, "correct": s.correct, "tokens": s.tokens, "score": s.score}
                    for s in q.samples
                ],
            }
            out.write(json.dumps(record) + "\n")
    return target


def load_samples(path: Path | str) -> list[QuerySamples]:
    """Read samples written by :func:`save_samples`; a bad line names its number."""
    source = Path(path).expanduser()
    if not source.is_file():
        raise ConfigurationError(f"samples file not found: {source}")
    queries = []
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            queries.append(
                QuerySamples(
                    query_id=str(record["query_id"]),
                    query=str(record["query"]),
                    max_tokens=int(record["max_tokens"]),
                    samples=tuple(
                        Sample(
                            answer=s["answer"],
                            correct=bool(s["correct"]),
                            tokens=int(s["tokens"]),
                            score=s["score"],
                        )
                        for s in record["samples"]
                    ),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"{source}:{number}: not a samples record ({exc!r})") from exc
    return queries
