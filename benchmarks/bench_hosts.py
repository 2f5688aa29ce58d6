"""Ingest over two equal Ollama hosts against one (issue 14's target: >= 1.7x faster).

Two simulated Ollama servers (``benchmarks/ollama_sim.py``, each a subprocess with
its own cost model: ``--request-ms`` per request plus ``--token-us`` per input token,
``--server-parallel`` slots) serve the same generated corpus as in
``bench_ingest.py``.  ragkit ingests it into a fresh index with one host, then with
both (``host="A,B"``, as ``--host A --host B`` or ``OLLAMA_HOST=A,B``), ``--rounds``
times alternately; the best wall time of each is kept (the machine is shared, so
the best is the least disturbed).  Each server's request count shows the spread.

Run: ``python benchmarks/bench_hosts.py [--files N] [--token-us U] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_ingest import chunk_texts, make_corpus, start_sim  # noqa: E402

TARGET = 1.7


def ingest_once(urls: list[str], corpus: Path, folder: Path, batch: int,
                parallel: int | None) -> dict[str, Any]:
    """A fresh ingest of ``corpus`` over ``urls``: wall time, chunks, requests per server."""
    from ragkit.index import Index

    for url in urls:
        requests.post(url + "/sim/reset", timeout=5)
    started = time.perf_counter()
    with Index.open(folder, backend="ollama", host=",".join(urls), create=True) as index:
        report = index.ingest([corpus], batch_size=batch, parallel=parallel)
    wall = time.perf_counter() - started
    stats = [requests.get(url + "/sim/stats", timeout=5).json() for url in urls]
    return {"wall": wall, "chunks": report.total_chunks, "rate": report.total_chunks / wall,
            "requests": [s["requests"] for s in stats],
            "busy": [round(s["busy_seconds"], 3) for s in stats]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=150, help="corpus files (~16 chunks each)")
    parser.add_argument("--request-ms", type=float, default=10.0, help="cost per request [10]")
    parser.add_argument("--token-us", type=float, default=25.0,
                        help="cost per input token in µs [25: ~5 ms per 200-token chunk]")
    parser.add_argument("--server-parallel", type=int, default=1,
                        help="slots of each simulated server (OLLAMA_NUM_PARALLEL) [1]")
    parser.add_argument("--parallel", type=int, default=None,
                        help="ragkit's requests in flight per host [ragkit's default]")
    parser.add_argument("--batch", type=int, default=64, help="chunks per request [64]")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds [2]")
    parser.add_argument("--json", dest="json_out", help="also write the figures to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ragkit-bench-hosts-") as tmp:
        work = Path(tmp)
        corpus = make_corpus(work / "corpus", args.files)
        texts = chunk_texts(corpus)
        print(f"corpus: {args.files} files, {len(texts)} chunks", flush=True)
        sims = [start_sim(args) for _ in range(2)]
        urls = [url for _, url in sims]
        runs: dict[str, list[dict[str, Any]]] = {"one": [], "two": []}
        try:
            for n in range(args.rounds):
                for name, hosts in (("one", urls[:1]), ("two", urls)):
                    run = ingest_once(hosts, corpus, work / f"{name}-{n}", args.batch,
                                      args.parallel)
                    runs[name].append(run)
                    print(f"  round {n + 1}, {name} host(s): {run['wall']:.2f} s, "
                          f"{run['rate']:.0f} chunks/s, requests per server {run['requests']}",
                          flush=True)
        finally:
            for proc, _ in sims:
                proc.terminate()
                proc.wait()

    one = min(runs["one"], key=lambda r: r["wall"])
    two = min(runs["two"], key=lambda r: r["wall"])
    speedup = one["wall"] / two["wall"]
    print(f"simulated Ollama, each: {args.request_ms:g} ms/request + {args.token_us:g} µs/token, "
          f"{args.server_parallel} slot(s); batches of {args.batch}")
    print(f"one host:  {one['wall']:.2f} s, {one['rate']:.0f} chunks/s")
    print(f"two hosts: {two['wall']:.2f} s, {two['rate']:.0f} chunks/s "
          f"(requests {two['requests'][0]} + {two['requests'][1]})")
    verdict = "met" if speedup >= TARGET else "NOT met"
    print(f"speed-up {speedup:.2f}x (target >= {TARGET}x): {verdict}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(
            {"args": vars(args), "chunks": len(texts), "runs": runs, "speedup": speedup},
            indent=2))


if __name__ == "__main__":
    main()
