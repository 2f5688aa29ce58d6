"""``ragkit serve`` under load, and the latency its pass-through adds (issue 11).

* **Load:** 32 concurrent clients x 10 searches each (``POST /indexes/bench/search``)
  on a 10k-chunk index, in hybrid (the default) and vector mode; every search embeds
  its query through the upstream.  Reports errors (target: 0), p50 and p95 latency and
  throughput, next to the same searches made one after another in-process through
  ``Index.search`` (what one client of the library gets).
* **Pass-through overhead:** the time to the first streamed token of the same
  ``/api/chat`` request sent directly to the upstream and through ragkit,
  alternating, in one run.  Target: through minus direct <= 5 ms at p50.

Three processes, as in real use: the upstream (the fake Ollama of
``tests/ollama_server.py``: real HTTP, NDJSON streams, hashed embeddings),
``ragkit serve`` (started with the project's own command), and this client.
The index is built through the same upstream before the server starts.

Run: ``python benchmarks/bench_serve.py [--clients 32] [--searches 10] [--ttft-runs 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from bench_search import Text  # noqa: E402

from ragkit import ChunkerSettings, Index  # noqa: E402

UPSTREAM = """
import sys, time
sys.path.insert(0, {tests!r})
from ollama_server import FakeOllama
server = FakeOllama()
server.start()
print(server.url, flush=True)
sys.stdin.read()  # runs until the benchmark closes our stdin
server.stop()
"""

#: English-like words (Zipf over 20,000): how many chunks share a query's terms drives the
#: cost of keyword search, so a toy vocabulary would make every search look slow.
TEXT = Text()


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def corpus(folder: Path, files: int, sections: int, seed: int = 11) -> None:
    """``files`` markdown files of ``sections`` one-chunk sections of English-like words."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for f in range(files):
        parts = [f"## Section {f}-{s}\n\n{TEXT.sample(60, rng).capitalize()}.\n"
                 for s in range(sections)]
        (folder / f"doc{f:04d}.md").write_text("\n".join(parts), encoding="utf-8")


def start_upstream() -> tuple[subprocess.Popen[str], str]:
    code = UPSTREAM.format(tests=str(ROOT / "tests"))
    process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def start_server(home: Path, upstream: str, log: Path) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAGKIT_HOME": str(home),
           "OLLAMA_HOST": upstream, "RAGKIT_BACKEND": "ollama", "RAGKIT_MIN_SCORE": "0"}
    with open(log, "w") as sink:  # the access log: one line per request
        process = subprocess.Popen([sys.executable, "-m", "ragkit", "serve", "--listen",
                                    "127.0.0.1:0"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=sink, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        found = re.search(r"on (http://\S+)", log.read_text(encoding="utf-8"))
        if found:
            return process, found.group(1)
        time.sleep(0.05)
    raise SystemExit(f"ragkit serve did not start: {log.read_text(encoding='utf-8')}")


def queries(count: int) -> list[str]:
    """Four English-like words each, as bench_search.py asks."""
    rng = np.random.default_rng(5)
    return [TEXT.sample(4, rng) for _ in range(count)]


def in_process(index: Index, texts: list[str], retrieval: str) -> dict[str, Any]:
    """The same searches, one after another, through the library: the cost to beat."""
    latencies = []
    started = time.perf_counter()
    for text in texts:
        begun = time.perf_counter()
        index.search(text, 5, mode=retrieval)
        latencies.append((time.perf_counter() - begun) * 1000)
    wall = time.perf_counter() - started
    return {"p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
            "searches_per_s": len(texts) / wall}


async def load(url: str, clients: int, searches: int, retrieval: str) -> dict[str, Any]:
    """``clients`` concurrent clients, each sending ``searches`` searches one after another."""
    latencies: list[float] = []
    errors: list[str] = []
    texts = queries(clients * searches)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:

        async def client(c: int) -> None:
            for s in range(searches):
                body = {"query": texts[c * searches + s], "k": 5, "retrieval": retrieval}
                started = time.perf_counter()
                try:
                    reply = await http.post("/indexes/bench/search", json=body)
                    if reply.status_code != 200 or not reply.json()["hits"]:
                        errors.append(f"{reply.status_code} {reply.text[:100]}")
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(clients)))
        wall = time.perf_counter() - started
    return {"requests": len(latencies), "errors": len(errors), "first_errors": errors[:3],
            "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
            "max_ms": max(latencies), "searches_per_s": len(latencies) / wall}


def first_token_ms(http: httpx.Client, url: str) -> float:
    """Time from sending a streamed /api/chat to its first NDJSON line."""
    body = {"model": "smollm2:135m", "messages": [{"role": "user", "content": "Say hello."}]}
    started = time.perf_counter()
    with http.stream("POST", url + "/api/chat", json=body) as reply:
        lines = reply.iter_lines()
        while not next(lines):
            pass
        first = (time.perf_counter() - started) * 1000
        for _ in lines:  # finish the reply so the connection is reused
            pass
    return first


def ttft(direct: str, through: str, runs: int) -> dict[str, Any]:
    """Time to first token directly and through ragkit, alternating, with warm connections."""
    mine, theirs = [], []
    with httpx.Client(timeout=60) as a, httpx.Client(timeout=60) as b:
        for _ in range(5):  # warm both paths
            first_token_ms(a, direct), first_token_ms(b, through)
        for _ in range(runs):
            theirs.append(first_token_ms(a, direct))
            mine.append(first_token_ms(b, through))
    paired = [m - t for m, t in zip(mine, theirs, strict=True)]
    return {"runs": runs, "direct_p50_ms": statistics.median(theirs),
            "through_p50_ms": statistics.median(mine),
            "overhead_p50_ms": statistics.median(mine) - statistics.median(theirs),
            "paired_overhead_p50_ms": statistics.median(paired),
            "through_p95_ms": percentile(mine, 95), "direct_p95_ms": percentile(theirs, 95)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--searches", type=int, default=10)
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--sections", type=int, default=25)
    parser.add_argument("--ttft-runs", type=int, default=200)
    parser.add_argument("--retrieval", default="hybrid,vector",
                        help="Retrieval modes to load the server with, comma-separated.")
    parser.add_argument("--json", type=Path, help="Also write the figures to this file.")
    args = parser.parse_args()
    upstream, upstream_url = start_upstream()
    server = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "indexes"
            corpus(Path(tmp) / "docs", args.files, args.sections)
            started = time.perf_counter()
            with Index.open("bench", home=home, backend="ollama", host=upstream_url,
                            create=True, chunker=ChunkerSettings(size=120, overlap=0)) as index:
                index.ingest([Path(tmp) / "docs"], batch_size=128)
                chunks = len(index)
                print(f"index: {chunks} chunks in {time.perf_counter() - started:.1f} s",
                      flush=True)
                modes = args.retrieval.split(",")
                texts = queries(args.clients * args.searches)
                faiss.omp_set_num_threads(1)  # as ragkit serve runs its searches
                alone = {mode: in_process(index, texts, mode) for mode in modes}
            server, url = start_server(home, upstream_url, Path(tmp) / "access.log")
            figures = {"chunks": chunks, "in_process_one_client": alone,
                       "load": {mode: asyncio.run(load(url, args.clients, args.searches, mode))
                                for mode in modes},
                       "passthrough_ttft": ttft(upstream_url, url, args.ttft_runs)}
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        assert upstream.stdin is not None
        upstream.stdin.close()
        upstream.wait(timeout=20)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
