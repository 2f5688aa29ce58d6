"""A local Ollama-compatible embedding server with a realistic, configurable cost.

Benchmarks need a server whose speed is known and the same on every machine,
so this one does not compute embeddings: each request holds one of
``--parallel`` slots (like ``OLLAMA_NUM_PARALLEL``; requests beyond the slots
queue) for ``--request-ms`` plus ``--token-us`` per input token, and returns
deterministic L2-normalized vectors.  The defaults are modelled on Ollama
serving a small embedding model (all-minilm, nomic-embed-text) on a GPU: about
10 ms per request for HTTP, scheduling and tokenizing, and about 1 ms per
200-token chunk.

It records its **busy time**: the wall time during which at least one slot was
embedding (``GET /sim/stats``; ``POST /sim/reset`` zeroes it).  A client can
finish no sooner than that, so ``client wall time / busy time`` is the
client's overhead.

Endpoints: ``POST /api/embed`` (``input`` a string or a list), the legacy
``POST /api/embeddings`` (one ``prompt``, vector not normalized, as Ollama),
``GET /api/tags``, ``POST /api/show``, ``GET /api/version``, ``HEAD``/``GET /``.

Run it: ``python benchmarks/ollama_sim.py --port 11435`` (prints its URL), or
in-process: ``with SimOllama(parallel=1) as sim: ... sim.url ... sim.stats()``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import numpy as np

__all__ = ["SimOllama", "count_tokens"]

_PIECE = re.compile(r"\w{1,6}|[^\w\s]")  # about one word-piece per 6 letters, and punctuation
MAX_TOKENS = 512  # inputs are truncated at the model's context, as Ollama does
_POOL = 4096  # distinct vectors; a text's vector is chosen by its CRC


def count_tokens(text: str) -> int:
    """Approximate word-piece count of ``text`` (capped at the context length).

    >>> count_tokens("Backups run nightly at 02:00.")
    9
    """
    return min(MAX_TOKENS, 2 + len(_PIECE.findall(text)))  # + [CLS] and [SEP]


class SimOllama:
    """The simulated server; a context manager serving on a loopback port."""

    def __init__(self, *, port: int = 0, request_ms: float = 10.0, token_us: float = 5.0,
                 parallel: int = 1, dim: int = 384, models: tuple[str, ...] = ("all-minilm",),
                 host: str = "127.0.0.1") -> None:
        self.request_s = request_ms / 1000
        self.token_s = token_us / 1e6
        self.parallel = max(1, parallel)
        self.dim = dim
        self.models = {m if ":" in m else f"{m}:latest" for m in models}
        self._slots = threading.Semaphore(self.parallel)
        self._lock = threading.Lock()
        self._vectors = _vector_pool(dim)
        self.reset()
        self._server = _Server((host, port), type("H", (_Handler,), {"sim": self}))
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------

    def __enter__(self) -> SimOllama:
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        self._server.serve_forever()

    # -- accounting --------------------------------------------------------------

    def reset(self) -> None:
        """Zero the counters."""
        with self._lock:
            self._active = 0
            self._busy = 0.0
            self._busy_since = 0.0
            self._work = 0.0
            self._requests = 0
            self._inputs = 0
            self._tokens = 0
            self._first = 0.0  # wall-clock (epoch) start of the first request, end of the last
            self._last = 0.0

    def stats(self) -> dict[str, Any]:
        """Busy seconds (wall time with a slot embedding), summed work, requests, inputs."""
        with self._lock:
            busy = self._busy + (time.perf_counter() - self._busy_since if self._active else 0)
            return {"busy_seconds": busy, "work_seconds": self._work,
                    "requests": self._requests, "inputs": self._inputs,
                    "tokens": self._tokens, "parallel": self.parallel,
                    "first_start": self._first, "last_end": self._last,
                    "request_ms": self.request_s * 1000, "token_us": self.token_s * 1e6}

    def embed(self, texts: list[str]) -> str:
        """Spend the simulated time in a slot; the ``embeddings`` JSON array."""
        tokens = sum(count_tokens(t) for t in texts)
        cost = self.request_s + self.token_s * tokens
        with self._slots:
            start = time.perf_counter()
            with self._lock:
                if self._active == 0:
                    self._busy_since = start
                self._active += 1
                self._first = self._first or time.time()
            time.sleep(cost)  # Linux overshoots by ~0.1 ms; the busy time counts it
            end = time.perf_counter()
            with self._lock:
                self._active -= 1
                if self._active == 0:
                    self._busy += end - self._busy_since
                self._work += end - start
                self._requests += 1
                self._inputs += len(texts)
                self._tokens += tokens
                self._last = time.time()
        pool = self._vectors
        return "[" + ",".join(pool[zlib.crc32(t.encode("utf-8")) % _POOL] for t in texts) + "]"


def _vector_pool(dim: int) -> list[str]:
    """Deterministic unit vectors, pre-encoded as JSON arrays."""
    rows = np.random.default_rng(1234).normal(size=(_POOL, dim)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return ["[" + ",".join(f"{x:.6f}" for x in row) + "]" for row in rows]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    sim: SimOllama
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            self._json({"error": "invalid JSON"}, 400)
            return
        route = _ROUTES.get((self.command, path))
        if route is None:
            self._send(404, b"404 page not found", "text/plain")
        else:
            route(self, body)

    do_HEAD = do_POST = do_DELETE = do_GET

    def _send(self, status: int, data: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, payload: Any, status: int = 200) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json; charset=utf-8")

    def _model(self, body: dict[str, Any]) -> str | None:
        model = str(body.get("model") or body.get("name") or "")
        tagged = model if ":" in model else f"{model}:latest"
        if tagged in self.sim.models:
            return model
        self._json({"error": f'model "{model}" not found, try pulling it first'}, 404)
        return None

    def root(self, body: dict[str, Any]) -> None:
        self._send(200, b"Ollama is running", "text/plain; charset=utf-8")

    def embed(self, body: dict[str, Any]) -> None:
        model = self._model(body)
        if model is None:
            return
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else [str(t) for t in inputs or []]
        started = time.perf_counter_ns()
        vectors = self.sim.embed(texts) if texts else "[]"
        took = time.perf_counter_ns() - started
        tokens = sum(count_tokens(t) for t in texts)
        data = (f'{{"model":{json.dumps(model)},"embeddings":{vectors},'
                f'"total_duration":{took},"load_duration":0,"prompt_eval_count":{tokens}}}')
        self._send(200, data.encode(), "application/json; charset=utf-8")

    def embeddings(self, body: dict[str, Any]) -> None:
        model = self._model(body)
        if model is None:
            return
        vector = json.loads(self.sim.embed([str(body.get("prompt", ""))]))[0]
        self._json({"embedding": [x * 2.5 for x in vector]})  # not normalized, like Ollama

    def tags(self, body: dict[str, Any]) -> None:
        self._json({"models": [_entry(m) for m in sorted(self.sim.models)]})

    def show(self, body: dict[str, Any]) -> None:
        if self._model(body) is None:
            return
        self._json({"modelfile": "", "parameters": "", "template": "", "details": _details(),
                    "model_info": {"general.architecture": "bert", "bert.context_length": 512,
                                   "bert.embedding_length": self.sim.dim},
                    "capabilities": ["embedding"]})

    def version(self, body: dict[str, Any]) -> None:
        self._json({"version": "0.12.6-sim"})

    def stats(self, body: dict[str, Any]) -> None:
        self._json(self.sim.stats())

    def reset(self, body: dict[str, Any]) -> None:
        self.sim.reset()
        self._json(self.sim.stats())


def _details() -> dict[str, Any]:
    return {"format": "gguf", "family": "bert", "families": ["bert"], "parameter_size": "23M",
            "quantization_level": "F16"}


def _entry(name: str) -> dict[str, Any]:
    return {"name": name, "model": name, "modified_at": "2025-01-01T00:00:00Z",
            "size": 45_960_996, "digest": f"{zlib.crc32(name.encode()):08x}" * 8,
            "details": _details()}


_ROUTES = {
    ("GET", "/"): _Handler.root, ("HEAD", "/"): _Handler.root,
    ("POST", "/api/embed"): _Handler.embed, ("POST", "/api/embeddings"): _Handler.embeddings,
    ("GET", "/api/tags"): _Handler.tags, ("POST", "/api/show"): _Handler.show,
    ("GET", "/api/version"): _Handler.version,
    ("GET", "/sim/stats"): _Handler.stats, ("POST", "/sim/reset"): _Handler.reset,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=11435, help="0 picks a free port")
    parser.add_argument("--request-ms", type=float, default=10.0,
                        help="cost of each request in ms [10]")
    parser.add_argument("--token-us", type=float, default=5.0,
                        help="cost of each input token in microseconds [5]")
    parser.add_argument("--parallel", type=int, default=1,
                        help="requests served at once, like OLLAMA_NUM_PARALLEL [1]")
    parser.add_argument("--dim", type=int, default=384, help="vector size [384]")
    parser.add_argument("--model", action="append", default=None,
                        help="model name to serve (repeatable) [all-minilm]")
    args = parser.parse_args(argv)
    sim = SimOllama(port=args.port, request_ms=args.request_ms, token_us=args.token_us,
                    parallel=args.parallel, dim=args.dim,
                    models=tuple(args.model or ["all-minilm"]))
    print(f"listening on {sim.url}", flush=True)
    try:
        sim.serve_forever()
    except KeyboardInterrupt:
        print(json.dumps(sim.stats()), file=sys.stderr)


if __name__ == "__main__":
    main()
