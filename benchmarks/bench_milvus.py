"""Milvus Lite against the local store at 100k chunks: store ingest chunks/s, p50 search.

Both stores are filled through the store interface (``ragkit.store.base``) with the
same synthetic chunks: Zipf-distributed English-like text and clustered 384-d unit
vectors (``bench_search.Text`` / ``bench_search.Vectors``), 10 chunks a file, 64
files per transaction, as an ingest commits them.  Embedding 100k real chunks on
this 2-core machine would take most of an hour and measure the embedder, not the
store, so the vectors are synthetic and "ingest chunks/s" is the store's write
rate (what the store adds to an embedding-bound ingest).  Then ``retrieve`` (the
one ragkit search runs) is timed in vector and hybrid mode on fresh queries; the
query embedding is excluded.

Run: ``python benchmarks/bench_milvus.py [--chunks 100000] [--queries 200] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_search import DIM, Text, Vectors, percentiles  # noqa: E402

from ragkit.chunking import Chunk  # noqa: E402
from ragkit.retrieval import retrieve  # noqa: E402
from ragkit.store.base import IndexStore  # noqa: E402
from ragkit.store.local import Store  # noqa: E402
from ragkit.store.opening import create_remote  # noqa: E402
from ragkit.store.tables import FileRecord  # noqa: E402

PER_FILE = 10
FILES_PER_COMMIT = 64
MANIFEST = {"embed_model": "synthetic", "dimension": DIM, "chunker": {"size": 200, "overlap": 30},
            "query_prefix": "", "document_prefix": ""}


def fill(store: IndexStore, n: int, gen: Vectors) -> float:
    """Write ``n`` chunks as an ingest commits them; seconds taken (save_vectors included)."""
    rng = np.random.default_rng(1)
    text = Text()
    data = gen.sample(n, seed=1)
    rows = [Chunk(text.sample(120, rng), i, i + 1, f"Section {i % 7}") for i in range(n)]
    started = time.perf_counter()
    step = PER_FILE * FILES_PER_COMMIT
    for first in range(0, n, step):
        with store.transaction() as tx:
            for start in range(first, min(n, first + step), PER_FILE):
                end = min(n, start + PER_FILE)
                path = f"/corpus/file{start // PER_FILE:06d}.md"
                tx.remove_file(path)
                tx.add_chunks(path, rows[start:end], data[start:end])
                tx.touch_file(FileRecord(path, f"{start:064x}", start, end, end - start))
    store.save_vectors()
    return time.perf_counter() - started


def time_searches(store: IndexStore, queries: list[tuple[str, np.ndarray]], mode: str) -> dict:
    retrieve(store, queries[0][0], queries[0][1], 10, mode)  # warm: caches, loaded indexes
    seconds = []
    for text, vector in queries:
        started = time.perf_counter()
        retrieve(store, text, vector, 10, mode)
        seconds.append(time.perf_counter() - started)
    return percentiles(seconds)


def measure(name: str, store: IndexStore, n: int, queries: list[tuple[str, np.ndarray]],
            gen: Vectors) -> dict[str, Any]:
    took = fill(store, n, gen)
    assert store.count() == n, (name, store.count())
    result = {"store": name, "chunks": n, "ingest_s": took, "chunks_per_s": n / took}
    for mode in ("vector", "hybrid"):
        result[mode] = time_searches(store, queries, mode)
    print(f"{name:12} {n} chunks written in {took:.1f} s ({n / took:,.0f} chunks/s); "
          f"p50 vector {result['vector']['p50_ms']:.1f} ms, "
          f"hybrid {result['hybrid']['p50_ms']:.1f} ms", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--json", dest="json_out", help="also write the figures to this file")
    args = parser.parse_args()
    gen = Vectors()
    rng = np.random.default_rng(99)
    text = Text(seed=7)
    vectors = gen.sample(args.queries, seed=99)
    queries = [(text.sample(8, rng), vectors[i]) for i in range(args.queries)]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        local = Store.create(Path(tmp) / "local", MANIFEST)
        results.append(measure("local", local, args.chunks, queries, gen))
        local.close()
        lite = create_remote(Path(tmp) / "lite", MANIFEST, str(Path(tmp) / "bench.db"))
        results.append(measure("milvus-lite", lite, args.chunks, queries, gen))
        lite.close()
    print()
    print(f"{'measure':34} {'local':>10} {'milvus-lite':>12}")
    rows = [("store ingest, chunks/s", "chunks_per_s", None),
            ("search vector p50, ms", "vector", "p50_ms"),
            ("search hybrid p50, ms", "hybrid", "p50_ms"),
            ("search hybrid p90, ms", "hybrid", "p90_ms")]
    for label, key, sub in rows:
        cells = [r[key][sub] if sub else r[key] for r in results]
        print(f"{label:34} " + " ".join(f"{c:>10,.1f}" for c in cells))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
