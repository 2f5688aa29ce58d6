"""Search latency and recall on large synthetic indexes (issue 5's search targets).

* 100k chunks, the whole path: chunks and 384-d vectors written through
  ``ragkit.store.local.Store`` (SQLite + FTS5), the vector cache built as ragkit builds
  it, then ``Index.search`` timed per query in ``vector`` and ``hybrid`` modes.
  The query embedding is excluded: the backend hands back precomputed vectors.
  Target: p50 <= 5 ms.
* 1M chunks, the approximate index alone (SQLite would add 20 minutes of
  inserts and nothing to the search time): vectors added to ragkit's IVF index
  (``ragkit.store.vectors.new_ivf_index``) exactly as ``Store`` rebuilds it, searched
  through ``Store.search``.  Targets: recall@10 >= 0.95 against exact search,
  p50 <= 10 ms.

Synthetic vectors are clustered like real embeddings (points around 4,000
topic centres, nearest-neighbour cosine about 0.5-0.7), since uniformly random
384-d vectors have no meaningful neighbours at all.  Queries are fresh points
from the same distribution.

Run: ``python benchmarks/bench_search.py [--chunks 100000] [--million] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ragkit.backends.base import normalize_rows  # noqa: E402
from ragkit.chunking import Chunk  # noqa: E402
from ragkit.index import Index  # noqa: E402
from ragkit.store import vectors as store_vectors  # noqa: E402
from ragkit.store.local import APPROX_THRESHOLD, Store  # noqa: E402
from ragkit.store.tables import FileRecord  # noqa: E402

DIM = 384
_STOPWORDS = ("the of and to a in is that for it as with on be by this are or from at an "
             "not can which have you if will all one has but when more how do what also "
             "use used each its we there their so other")
STOPWORDS = _STOPWORDS.split()


class Text:
    """English-like text: Zipf-distributed words, the commonest being real stopwords.

    Keyword search cost depends on how many chunks share the query's terms, so
    the synthetic text needs a realistic vocabulary (20,000 words, Zipf s=1.07).
    """

    def __init__(self, vocabulary: int = 20_000, seed: int = 7) -> None:
        rng = random.Random(seed)
        letters = "abcdefghijklmnopqrstuvwxyz"
        words = list(STOPWORDS)
        while len(words) < vocabulary:
            words.append("".join(rng.choice(letters) for _ in range(rng.randint(4, 10))))
        self.words = words
        weights = 1.0 / np.arange(1, vocabulary + 1) ** 1.07
        self.cumulative = np.cumsum(weights / weights.sum())

    def sample(self, n: int, rng: np.random.Generator) -> str:
        picks = np.searchsorted(self.cumulative, rng.random(n))
        return " ".join(self.words[min(i, len(self.words) - 1)] for i in picks)


class Vectors:
    """Clustered unit vectors: ``centres`` topics, Gaussian spread around each."""

    def __init__(self, centres: int = 4000, spread: float = 1.0, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.centres = rng.normal(size=(centres, DIM)).astype(np.float32)
        self.spread = spread

    def sample(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, len(self.centres), n)
        noise = rng.normal(size=(n, DIM)).astype(np.float32) * self.spread
        return normalize_rows(self.centres[picks] + noise)


class FixedQueries:
    """A backend whose embeddings are looked up, so timings exclude the query embedding."""

    name = "fixed"

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def describe(self) -> str:
        return "precomputed query vectors"

    def has_model(self, model: str) -> bool:
        return True

    def embed(self, model: str, texts: Any) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts])


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean())}


def exact_top(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Ground truth: the ``k`` best rows of ``data`` for each query (brute force)."""
    out = []
    for start in range(0, len(queries), 16):
        scores = queries[start : start + 16] @ data.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.take_along_axis(scores, top, 1).argsort(axis=1)[:, ::-1]
        out.append(np.take_along_axis(top, order, 1))
    return np.vstack(out)


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t.tolist())) / len(t)
                          for f, t in zip(found, truth, strict=True)]))


def build_store(root: Path, n: int, gen: Vectors) -> tuple[Store, np.ndarray]:
    """``n`` chunks of 150 generated words, 100 per file, written through Store."""
    store = Store.create(root, {"embed_model": "synthetic", "dimension": DIM,
                                "chunker": {"size": 200, "overlap": 30}})
    rng = np.random.default_rng(1)
    text = Text()
    data = gen.sample(n, seed=1)
    per_file = 100
    for f in range(0, n, per_file * 50):  # 50 files per transaction
        with store.transaction() as tx:
            for start in range(f, min(n, f + per_file * 50), per_file):
                end = min(n, start + per_file)
                rows = [Chunk(text.sample(150, rng), i, i + 1, f"Section {i % 7}")
                        for i in range(start, end)]
                path = f"/corpus/file{start // per_file:05d}.md"
                tx.put_file(FileRecord(path, "x", 0, 0, len(rows)), rows, data[start:end])
    return store, data


def bench_full_path(n: int, queries: int, gen: Vectors) -> dict[str, Any]:
    """Index.search on an index of ``n`` chunks built through Store."""
    with tempfile.TemporaryDirectory(prefix="ragkit-search-") as tmp:
        root = Path(tmp) / "idx"
        started = time.perf_counter()
        store, data = build_store(root, n, gen)
        written = time.perf_counter() - started
        started = time.perf_counter()
        store.save_vectors()  # builds the kind of index ragkit uses at this size
        built = time.perf_counter() - started
        approximate = store.approximate
        store.close()
        qvecs = gen.sample(queries, seed=2)
        rng = np.random.default_rng(3)
        words = Text()
        texts = [f"{words.sample(int(rng.integers(4, 9)), rng)} #{i}" for i in range(queries)]
        backend = FixedQueries(dict(zip(texts, qvecs, strict=True)))
        started = time.perf_counter()
        index = Index.open(root, backend=backend)
        index.search(texts[0], 5, mode="vector")  # loads the vector cache
        opened = time.perf_counter() - started
        result: dict[str, Any] = {"chunks": n, "approximate": approximate,
                                  "write_seconds": written, "build_seconds": built,
                                  "open_and_first_search_seconds": opened}
        for mode in ("vector", "hybrid"):
            times, found = [], []
            for text in texts:
                t0 = time.perf_counter()
                hits = index.search(text, 10, mode=mode)
                times.append(time.perf_counter() - t0)
                found.append([h.id - 1 for h in hits])  # chunk ids start at 1
            result[mode] = percentiles(times)
            if mode == "vector":
                result["recall@10"] = recall(found, exact_top(data, qvecs, 10))
        index.close()
    return result


def bench_million(n: int, queries: int, gen: Vectors) -> dict[str, Any]:
    """Store.search over ragkit's IVF index holding ``n`` synthetic vectors."""
    data = gen.sample(n, seed=11)
    started = time.perf_counter()
    sample = data[:: max(1, n // (64 * store_vectors.ivf_lists(n)))]
    index = store_vectors.new_ivf_index(DIM, n, sample)
    for start in range(0, n, 65536):
        block = data[start : start + 65536]
        index.add_with_ids(block, np.arange(start, start + len(block), dtype=np.int64))
    built = time.perf_counter() - started
    qvecs = gen.sample(queries, seed=12)
    truth = exact_top(data, qvecs, 10)
    with tempfile.TemporaryDirectory(prefix="ragkit-search-") as tmp:
        store = Store.create(Path(tmp) / "idx", {"embed_model": "synthetic", "dimension": DIM})
        store._published = (store.generation(), index)  # as if loaded
        times, found = [], []
        for q in qvecs:
            t0 = time.perf_counter()
            hits = store.search(q, 10)
            times.append(time.perf_counter() - t0)
            found.append([cid for cid, _ in hits])
        store.close()
    return {"chunks": n, "lists": int(index.nlist), "nprobe": int(index.nprobe),
            "build_seconds": built, "recall@10": recall(found, truth),
            "nn_cosine": float(np.mean([q @ data[t[0]] for q, t in zip(qvecs, truth,
                                                                        strict=True)])),
            "search": percentiles(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="full-path index size")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--million", action="store_true", help="also the 1M-vector IVF test")
    parser.add_argument("--million-size", type=int, default=1_000_000)
    parser.add_argument("--json", dest="json_out", help="also write the figures to this file")
    args = parser.parse_args()
    gen = Vectors()
    out: dict[str, Any] = {"threshold": APPROX_THRESHOLD}
    full = out["full"] = bench_full_path(args.chunks, args.queries, gen)
    kind = "IVF (approximate)" if full["approximate"] else "exact"
    print(f"{full['chunks']} chunks through Store: written in {full['write_seconds']:.0f} s, "
          f"{kind} vector cache built in {full['build_seconds']:.1f} s, opened + first search "
          f"{full['open_and_first_search_seconds'] * 1000:.0f} ms")
    rows = []
    for mode in ("vector", "hybrid"):
        p = full[mode]
        rows.append((f"Index.search {mode}, {args.chunks} chunks", p, "p50 <= 5 ms",
                     p["p50_ms"] <= 5))
    print(f"recall@10 vs exact at {args.chunks}: {full['recall@10']:.3f}")
    if args.million:
        m = out["million"] = bench_million(args.million_size, args.queries, gen)
        print(f"{m['chunks']} vectors: IVF {m['lists']} lists, nprobe {m['nprobe']}, built in "
              f"{m['build_seconds']:.0f} s; mean nearest-neighbour cosine {m['nn_cosine']:.2f}")
        rows.append((f"Store.search IVF, {m['chunks']} vectors", m["search"], "p50 <= 10 ms",
                     m["search"]["p50_ms"] <= 10))
        print(f"recall@10 vs exact at {m['chunks']}: {m['recall@10']:.3f} "
              f"(target >= 0.95: {'met' if m['recall@10'] >= 0.95 else 'NOT met'})")
    print(f"\n{'measure':38} {'p50':>7} {'p90':>7} {'p99':>7}  {'target':12} met")
    for name, p, target, met in rows:
        print(f"{name:38} {p['p50_ms']:7.2f} {p['p90_ms']:7.2f} {p['p99_ms']:7.2f}  "
              f"{target:12} {'yes' if met else 'NO'}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
