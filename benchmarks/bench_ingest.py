"""Ingest speed, side by side in one run (issue 5's three ingest targets).

1. Against the simulated Ollama (``benchmarks/ollama_sim.py``, a subprocess):
   ragkit's ingest wall time vs the server's busy time (target <= 1.1x), and
2. vs the one-request-per-chunk loop on the same chunk texts (target >= 5x faster).
3. On the embedded engine (all-minilm on llama.cpp, in this process): ingest
   throughput vs the engine's raw embedding throughput on the same chunk texts
   (target >= 90%).

The corpus (markdown files of generated prose, >= 2,000 chunks) is written to a
temporary folder.  Run: ``python benchmarks/bench_ingest.py [--files N] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ragkit.chunking.units import ChunkerSettings  # noqa: E402
from ragkit.ingest.prepare import _prepare, _Prepared  # noqa: E402

_WORDS = ("backup restore server index query vector model chunk search answer document file "
         "folder network latency storage memory thread process schedule nightly weekly report "
         "engineer pager alert dashboard metric retention policy archive cluster replica shard "
         "token embedding cosine ranking keyword heading paragraph sentence citation source page "
         "install upgrade release version config option default timeout retry backoff error "
         "warning cache rebuild manifest database transaction commit lock writer reader")
WORDS = _WORDS.split()


def make_corpus(root: Path, files: int, seed: int = 5) -> Path:
    """``files`` markdown files of about 1,300 words each, with headings (~10 chunks each)."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for n in range(files):
        parts = [f"# Document {n}\n"]
        for s in range(6):
            parts.append(f"\n## Section {s} on {rng.choice(WORDS)}\n")
            for _ in range(3):
                sentences = []
                for _ in range(rng.randint(4, 7)):
                    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 16))]
                    sentences.append(" ".join(words).capitalize() + ".")
                parts.append("\n" + " ".join(sentences) + "\n")
        (root / f"doc{n:04d}.md").write_text("".join(parts), encoding="utf-8")
    return root


def chunk_texts(corpus: Path) -> list[str]:
    """The texts ragkit embeds for ``corpus`` (same chunker, same heading prefix)."""
    texts: list[str] = []
    for path in sorted(corpus.glob("*.md")):
        item = _prepare(path, None, ChunkerSettings(), "")
        assert isinstance(item, _Prepared)
        texts.extend(item.texts)
    return texts


def start_sim(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, str(HERE / "ollama_sim.py"), "--port", "0",
           "--request-ms", str(args.request_ms), "--token-us", str(args.token_us),
           "--parallel", str(args.server_parallel)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    return proc, line.strip().rsplit(" ", 1)[-1]


def sim_ingest(url: str, corpus: Path, work: Path, parallel: int | None,
               batch: int) -> dict[str, Any]:
    """ragkit's ingest against the simulated server: wall time and the server's busy time."""
    from ragkit.index import Index

    requests.post(url + "/sim/reset", timeout=5)
    began, started = time.time(), time.perf_counter()
    with Index.open(work / "sim-index", backend="ollama", host=url, create=True) as index:
        report = _ingest(index, corpus, batch, parallel)
    wall = time.perf_counter() - started
    stats = requests.get(url + "/sim/stats", timeout=5).json()
    # Where the client's extra time went: before the first request, after the last, between.
    spent = {"before_first_request": stats["first_start"] - began,
             "after_last_request": began + wall - stats["last_end"],
             "server_idle_between": stats["last_end"] - stats["first_start"]
             - stats["busy_seconds"]}
    return {"wall": wall, "chunks": report.total_chunks, **stats, "overhead": spent}


def _ingest(index: Any, corpus: Path, batch: int, parallel: int | None) -> Any:
    """Index.ingest with ``parallel`` requests in flight (through RAGKIT_PARALLEL)."""
    saved = os.environ.get("RAGKIT_PARALLEL")
    if parallel is not None:
        os.environ["RAGKIT_PARALLEL"] = str(parallel)
    try:
        return index.ingest([corpus], batch_size=batch)
    finally:
        if saved is None:
            os.environ.pop("RAGKIT_PARALLEL", None)
        else:
            os.environ["RAGKIT_PARALLEL"] = saved


def naive_loop(url: str, texts: list[str]) -> dict[str, Any]:
    """The common approach: one /api/embed request per chunk, one after another."""
    requests.post(url + "/sim/reset", timeout=5)
    session = requests.Session()
    started = time.perf_counter()
    for text in texts:
        reply = session.post(url + "/api/embed", json={"model": "all-minilm", "input": text},
                             timeout=60)
        reply.raise_for_status()
        reply.json()["embeddings"]
    wall = time.perf_counter() - started
    stats = requests.get(url + "/sim/stats", timeout=5).json()
    return {"wall": wall, **stats}


def engine_side_by_side(corpus: Path, work: Path, batch: int, parallel: int | None,
                        rounds: int) -> dict[str, Any]:
    """Raw all-minilm throughput vs ragkit ingesting the same files, in the same process.

    The corpus is split into ``rounds`` parts; each part is embedded raw (its chunk
    texts, in requests of ``batch``), then ingested (incrementally, into one index),
    so a slow patch on a shared machine hits both sides alike.
    """
    from ragkit.backends.embedded import EmbeddedBackend
    from ragkit.index import Index

    engine = EmbeddedBackend()
    engine.embed("all-minilm", ["load the model outside the timings"])
    files = sorted(corpus.glob("*.md"))
    raw = wall = 0.0
    chunks = 0
    with Index.open(work / "engine-index", backend=engine, create=True) as index:
        for part in range(rounds):
            folder = work / f"engine-part{part}"
            folder.mkdir()
            for path in files[part::rounds]:
                (folder / path.name).write_bytes(path.read_bytes())
            texts = chunk_texts(folder)
            started = time.perf_counter()
            for i in range(0, len(texts), batch):
                engine.embed("all-minilm", texts[i : i + batch])
            raw += time.perf_counter() - started
            started = time.perf_counter()
            report = _ingest(index, folder, batch, parallel)
            wall += time.perf_counter() - started
            chunks += report.chunks_written
            print(f"  engine part {part + 1}/{rounds}: {len(texts)} chunks", flush=True)
    return {"raw_seconds": raw, "raw_rate": chunks / raw, "ingest_seconds": wall,
            "ingest_rate": chunks / wall, "chunks": chunks, "rounds": rounds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=240, help="corpus files (~10 chunks each)")
    parser.add_argument("--request-ms", type=float, default=10.0)
    parser.add_argument("--token-us", type=float, default=5.0)
    parser.add_argument("--server-parallel", type=int, default=1,
                        help="slots of the simulated server (OLLAMA_NUM_PARALLEL)")
    parser.add_argument("--parallel", type=int, default=None,
                        help="ragkit's requests in flight [default: ragkit's own default]")
    parser.add_argument("--batch", type=int, default=64, help="chunks per request [64]")
    parser.add_argument("--skip-engine", action="store_true", help="leave out part 3")
    parser.add_argument("--rounds", type=int, default=4,
                        help="part 3 alternates raw and ingest over this many parts [4]")
    parser.add_argument("--json", dest="json_out", help="also write the figures to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ragkit-bench-") as tmp:
        work = Path(tmp)
        corpus = make_corpus(work / "corpus", args.files)
        texts = chunk_texts(corpus)
        print(f"corpus: {args.files} files, {len(texts)} chunks, "
              f"{sum(len(t) for t in texts) / 1e6:.1f} MB of chunk text", flush=True)
        proc, url = start_sim(args)
        try:
            rag = sim_ingest(url, corpus, work, args.parallel, args.batch)
            naive = naive_loop(url, texts)
        finally:
            proc.terminate()
            proc.wait()
        engine = None if args.skip_engine else engine_side_by_side(
            corpus, work, args.batch, args.parallel, args.rounds)

    sim = (f"simulated Ollama: {args.request_ms:g} ms/request + {args.token_us:g} us/token, "
           f"{args.server_parallel} slot(s)")
    rows = [
        ("ragkit ingest wall / server busy", f"{rag['wall']:.2f} s / {rag['busy_seconds']:.2f} s",
         rag["wall"] / rag["busy_seconds"], "<= 1.1", rag["wall"] / rag["busy_seconds"] <= 1.1),
        ("one-request-per-chunk / ragkit", f"{naive['wall']:.2f} s / {rag['wall']:.2f} s",
         naive["wall"] / rag["wall"], ">= 5", naive["wall"] / rag["wall"] >= 5),
    ]
    if engine:
        share = engine["ingest_rate"] / engine["raw_rate"]
        rows.append(("embedded: ingest / raw embedding",
                     f"{engine['ingest_rate']:.1f} / {engine['raw_rate']:.1f} chunks/s",
                     share, ">= 0.90", share >= 0.9))
    print(sim)
    print(f"ragkit: {rag['chunks']} chunks in {rag['requests']} requests, "
          f"{rag['chunks'] / rag['wall']:.0f} chunks/s; naive loop: {naive['requests']} requests, "
          f"{len(texts) / naive['wall']:.0f} chunks/s")
    spent = rag["overhead"]
    print(f"ragkit's time beyond the server's: {spent['before_first_request']:.3f} s before the "
          f"first request, {spent['server_idle_between']:.3f} s of server idle between requests, "
          f"{spent['after_last_request']:.3f} s after the last")
    print(f"\n{'measure':34} {'figures':28} {'ratio':>7}  {'target':8} met")
    for name, figures, ratio, target, met in rows:
        print(f"{name:34} {figures:28} {ratio:7.3f}  {target:8} {'yes' if met else 'NO'}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(
            {"chunks": len(texts), "ragkit": rag, "naive": naive, "engine": engine,
             "rows": [dict(zip(("measure", "figures", "ratio", "target", "met"), r,
                               strict=True)) for r in rows]}, indent=2))


if __name__ == "__main__":
    main()
