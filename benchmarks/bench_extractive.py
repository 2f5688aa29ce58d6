"""What an extractive answer costs on top of retrieval, on the embedded engine.

    python benchmarks/bench_extractive.py [--rounds 5] [--xquad ../shared/eval/xquad-en]

Indexes ``corpora/guide`` into a temporary home (or uses the XQuAD-en eval
index that ``ragkit eval`` builds, with ``--xquad`` and ``--home``), then for
each question: retrieves the top 4 passages as ``ask`` does (not timed), and
times :func:`ragkit.extractive.extract` alone: cutting the passages into
units, keyword scoring, the one batched embedding call for the shortlisted
units, and picking the excerpts.  The question's embedding comes from the
search, as in ``ask``.  Also times whole ``Index.search`` and
``Index.ask(answer="extractive")`` calls for scale.  Target: extract p50 ≤ 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def questions(args: argparse.Namespace) -> list[str]:
    """The guide's own questions, or up to 200 XQuAD questions."""
    guide = ROOT / "corpora" / "guide-questions.jsonl"
    path = args.xquad / "queries.jsonl" if args.xquad else guide
    with open(path, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return [r.get("question") or r["text"] for r in rows[:200]]


def timings(index, asked: list[str], rounds: int) -> dict[str, list[float]]:
    """Milliseconds per call of extract, search and ask, over every question and round."""
    from ragkit.backends.embedded import EmbeddedBackend
    from ragkit.extractive import extract
    from ragkit.models import embedding_prefixes
    from ragkit.retrieval import dense_weight

    model = index.embed_model
    query_prefix, doc_prefix = embedding_prefixes(model)
    backend = EmbeddedBackend()  # the same loaded model as the index's (one per process)
    units: list[int] = []

    def embed(texts):
        units.append(len(texts))
        return backend.embed(model, [doc_prefix + t for t in texts])

    out: dict[str, list[float]] = {"extract": [], "search": [], "ask": []}
    index.ask(asked[0], answer="extractive")  # warm-up: loads the model
    for _ in range(rounds):
        for q in asked:
            started = time.perf_counter()
            hits = index.search(q, 4)
            out["search"].append((time.perf_counter() - started) * 1000)
            vector = backend.embed(model, [query_prefix + q])[0]
            started = time.perf_counter()
            extract(q, hits, embed, query_vector=vector, dense=dense_weight(q, model))
            out["extract"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            index.ask(q, answer="extractive")
            out["ask"].append((time.perf_counter() - started) * 1000)
    out["units"] = [float(n) for n in units]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--xquad", type=Path, help="a BEIR folder (e.g. ../shared/eval/xquad-en)")
    parser.add_argument("--home", type=Path, default=ROOT / "indexes",
                        help="with --xquad: where `ragkit eval` built its index")
    args = parser.parse_args()
    os.environ["RAGKIT_BACKEND"] = "embedded"
    from ragkit import Index

    with tempfile.TemporaryDirectory() as tmp:
        if args.xquad:
            name = f"eval-{args.xquad.resolve().name}-all-minilm"
            index = Index.open(args.home / name, backend="embedded")
        else:
            index = Index.open(Path(tmp) / "guide", create=True, backend="embedded")
            index.ingest([ROOT / "corpora" / "guide"])
        with index:
            asked = questions(args)
            got = timings(index, asked, args.rounds)
    print(f"{len(asked)} questions x {args.rounds} rounds, RAGKIT_THREADS="
          f"{os.environ.get('RAGKIT_THREADS', 'unset')}, load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"units embedded per question: mean {statistics.mean(got['units']):.1f}")
    for key in ("extract", "search", "ask"):
        values = sorted(got[key])
        p50, p95 = values[len(values) // 2], values[int(len(values) * 0.95)]
        print(f"{key:>8}: p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   max {values[-1]:7.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
