"""Benchmarks a user runs before choosing a model or sizing an index (``ragkit bench``).

* :func:`bench_generate`: each prompt N times; time, input and output tokens
  and tokens/s per run (from the metrics Ollama, or the embedded engine,
  reports), summarized as min/median/max per prompt and in total.
* :func:`bench_ingest`: index a folder into a throw-away index; chunks/s,
  MB/s and the latency of each embedding request.
* :func:`bench_search`: query an index; latency percentiles of the whole
  search, of the query embedding alone and of the rest.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .backends.base import Backend, collect

__all__ = ["DEFAULT_PROMPTS", "GenerateRun", "TimedBackend", "bench_generate", "bench_ingest",
           "bench_search", "percentiles", "spread"]

DEFAULT_PROMPTS = (
    "Why is the sky blue? Answer in two sentences.",
    "Write a haiku about a database index.",
    "List three uses of a hash table, one line each.",
    "Summarize in one paragraph: Retrieval-augmented generation looks up passages relevant to a "
    "question in a document index and gives them to a language model, which answers from them "
    "and cites them. It keeps answers grounded in the user's own documents, lets the model use "
    "facts it was never trained on, and makes every claim checkable against its source.",
    "Translate to French: The backups run every night at two o'clock.",
)

#: Progress callback: (what is running, done, total).
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class GenerateRun:
    """One timed generation."""

    seconds: float  # wall time, request to final chunk
    input_tokens: int  # prompt_eval_count
    output_tokens: int  # eval_count
    tokens_per_second: float  # output tokens / eval_duration, as `ollama run --verbose`
    load_seconds: float = 0.0


def spread(values: Sequence[float]) -> dict[str, float]:
    """``{"min", "median", "max"}`` of ``values``.

    >>> spread([3, 1, 2])
    {'min': 1, 'median': 2, 'max': 3}
    """
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def percentiles(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max latency in milliseconds (nearest-rank).

    >>> percentiles([0.001 * n for n in range(1, 101)])["p90_ms"]
    90.0
    """
    ordered = sorted(seconds)
    if not ordered:
        return {"p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}

    def rank(p: float) -> float:
        index = max(0, min(len(ordered) - 1, -(-len(ordered) * p // 100) - 1))
        return round(ordered[int(index)] * 1000, 3)

    return {"p50_ms": rank(50), "p90_ms": rank(90), "p99_ms": rank(99),
            "max_ms": round(ordered[-1] * 1000, 3)}


def bench_generate(
    backend: Backend, model: str, prompts: Sequence[str], runs: int, *,
    options: Mapping[str, Any] | None = None, warmup: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run each prompt ``runs`` times; per-prompt runs and summaries, and a total."""
    opts = dict(options or {})
    if warmup:  # load the model once, outside the timings
        collect(backend.generate(model, prompts[0], options={**opts, "num_predict": 1}))
    results: list[dict[str, Any]] = []
    total = len(prompts) * runs
    for p, prompt in enumerate(prompts):
        done: list[GenerateRun] = []
        for r in range(runs):
            if progress:
                progress(f"prompt {p + 1}/{len(prompts)}, run {r + 1}/{runs}", p * runs + r, total)
            started = time.perf_counter()
            reply = collect(backend.generate(model, prompt, options=opts))
            seconds = time.perf_counter() - started
            m = reply.metrics
            done.append(GenerateRun(seconds, m.prompt_eval_count, m.eval_count,
                                    m.tokens_per_second, m.load_duration / 1e9))
        results.append({"prompt": prompt, "runs": [asdict(run) for run in done],
                        "summary": _summary(done)})
    if progress:
        progress("done", total, total)
    every = [GenerateRun(**run) for res in results for run in res["runs"]]
    out_tokens = sum(r.output_tokens for r in every)
    eval_seconds = sum(r.output_tokens / r.tokens_per_second for r in every
                       if r.tokens_per_second > 0)
    return {"model": model, "backend": backend.describe(), "runs": runs, "options": opts,
            "prompts": results,
            "total": {"runs": len(every), "seconds": sum(r.seconds for r in every),
                      "input_tokens": sum(r.input_tokens for r in every),
                      "output_tokens": out_tokens,
                      "tokens_per_second": out_tokens / eval_seconds if eval_seconds else 0.0}}


def _summary(runs: Sequence[GenerateRun]) -> dict[str, dict[str, float]]:
    return {name: spread([getattr(r, name) for r in runs])
            for name in ("seconds", "input_tokens", "output_tokens", "tokens_per_second")}


@dataclass
class TimedBackend:
    """Chooses the backend per model (like ``Index``) and times every embedding call."""

    chooser: Any  # a BackendChooser
    name: str = "timed"
    embed_seconds: list[float] = field(default_factory=list)

    def _for(self, model: str) -> Backend:
        backend: Backend = self.chooser.for_model(model)
        return backend

    def describe(self) -> str:
        return "timed backend"

    def share(self, per_host: int) -> int:
        """Requests to keep in flight: ``per_host`` for each of several Ollama hosts."""
        from .ingest.scheduler import in_flight

        if len(getattr(self.chooser, "hosts", ())) > 1 and self.chooser.choice != "embedded":
            return in_flight(self.chooser.ollama(), per_host)
        return per_host

    def has_model(self, model: str) -> bool:
        return bool(self._for(model).has_model(model))

    def embed(self, model: str, texts: Sequence[str]) -> Any:
        started = time.perf_counter()
        try:
            return self._for(model).embed(model, texts)
        finally:
            self.embed_seconds.append(time.perf_counter() - started)

    def generate(self, model: str, prompt: str, **kwargs: Any) -> Any:
        return self._for(model).generate(model, prompt, **kwargs)

    def chat(self, model: str, messages: Any, **kwargs: Any) -> Any:
        return self._for(model).chat(model, messages, **kwargs)

    def special_tokens(self, model: str) -> Any:
        return self._for(model).special_tokens(model)


def bench_ingest(
    paths: Sequence[str | Path], backend: TimedBackend, *, embed_model: str | None = None,
    batch_size: int = 64, parallel: int | None = None, progress: Callable[..., None] | None = None,
) -> dict[str, Any]:
    """Ingest ``paths`` into a temporary index; throughput and embedding-request latency."""
    from .index import Index

    with tempfile.TemporaryDirectory(prefix="ragkit-bench-") as tmp:
        backend.embed_seconds.clear()
        started = time.perf_counter()
        with Index.open(Path(tmp) / "bench", backend=backend, embed_model=embed_model,
                        create=True) as index:
            report = index.ingest(paths, batch_size=batch_size, parallel=parallel,
                                  progress=progress)
            model = index.embed_model
        seconds = time.perf_counter() - started
    files = report.added + report.updated
    size = sum(os.path.getsize(f) for f in files if os.path.exists(f))
    requests = backend.embed_seconds[1:]  # the first call is the dimension probe
    from .ingest.scheduler import default_parallel

    return {"embed_model": model, "files": len(files), "chunks": report.total_chunks,
            "bytes": size, "seconds": seconds,
            "chunks_per_second": report.total_chunks / seconds if seconds else 0.0,
            "mb_per_second": size / 1e6 / seconds if seconds else 0.0,
            "requests": len(requests), "batch_size": batch_size,
            "parallel": parallel or default_parallel(),
            "request_latency": percentiles(requests),
            "skipped": len(report.skipped), "failed": len(report.failed)}


def bench_search(
    index: Any, backend: TimedBackend, queries: Sequence[str], runs: int, *, k: int = 5,
    mode: str = "hybrid", progress: Progress | None = None,
) -> dict[str, Any]:
    """Run each query ``runs`` times on ``index``; latency of search, embedding and the rest."""
    if queries:
        index.search(queries[0], k, mode=mode)  # load the model and the vectors first
    totals, embeds, rest = [], [], []
    count = len(queries) * runs
    for r in range(runs):
        for q, query in enumerate(queries):
            if progress and q % 10 == 0:
                progress(f"run {r + 1}/{runs}, query {q + 1}/{len(queries)}",
                         r * len(queries) + q, count)
            backend.embed_seconds.clear()
            started = time.perf_counter()
            index.search(query, k, mode=mode)
            total = time.perf_counter() - started
            embed = sum(backend.embed_seconds)
            totals.append(total)
            embeds.append(embed)
            rest.append(total - embed)
    if progress:
        progress("done", count, count)
    elapsed = sum(totals)
    return {"index": index.name, "chunks": len(index), "mode": mode, "k": k,
            "queries": len(queries), "runs": runs, "searches": len(totals),
            "queries_per_second": len(totals) / elapsed if elapsed else 0.0,
            "total": percentiles(totals), "query_embedding": percentiles(embeds),
            "search_without_embedding": percentiles(rest)}
