"""A real HTTP server on loopback that speaks Ollama's wire format, for tests.

* Embeddings are deterministic and meaningful: hashed bags of words (plus CJK
  character bigrams), L2-normalized from ``/api/embed`` and deliberately
  unnormalized from the legacy ``/api/embeddings``.
* Generation streams NDJSON word by word and answers with the first sentence
  of passage ``[1]`` of the context, citing it, so end-to-end tests can check
  that the right passage reached the model.
* Faults are injected per path: an HTTP status, an error line mid-stream, a
  malformed line, a truncated stream, a slow reply or a dropped connection.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

DIM = 384
_WORD = re.compile(r"[\u4e00-\u9fff]+|[a-z0-9]+")


def fake_embedding(text: str, dim: int = DIM) -> list[float]:
    """Hashed bag of lowercased words and CJK bigrams, L2-normalized."""
    vec = np.zeros(dim, dtype=np.float64)
    for token in _WORD.findall(text.lower()):
        grams = [token[i : i + 2] for i in range(max(1, len(token) - 1))] \
            if "\u4e00" <= token[0] <= "\u9fff" else [token]
        for gram in grams:
            vec[zlib.crc32(gram.encode()) % dim] += 1.0
    norm = np.linalg.norm(vec)
    return (vec / norm if norm else vec).tolist()


def free_port() -> int:
    """A loopback port where nothing listens (for connection-refused tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answer(text: str) -> str:
    """Cite passage [1]'s first sentence, or say the documents lack the answer."""
    match = re.search(r"^\[1\][^\n]*\n(.+?)(?=\n\n\[2\]|\n</documents>|\Z)", text, re.S | re.M)
    if not match:
        return "I could not find that in the documents."
    body = " ".join(ln for ln in match.group(1).splitlines() if not ln.startswith("#"))
    sentence = re.split(r"(?<=[.!?。])\s*", body.strip(), maxsplit=1)[0]
    return f"According to the documents, {sentence} [1]"


class FakeOllama:
    """Context manager running the server in a background thread."""

    def __init__(self, *, legacy: bool = False, dim: int = DIM) -> None:
        self.models = {"all-minilm:latest", "smollm2:135m"}
        self.legacy = legacy
        self.dim = dim
        self.requests: list[tuple[str, str, Any]] = []
        self._faults: dict[str, list[Any]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeOllama:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail(self, path: str, kind: Any, times: int = 1) -> None:
        """Make the next ``times`` requests to ``path`` fail with ``kind``."""
        with self._lock:
            self._faults.setdefault(path, []).extend([kind] * times)

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._faults.clear()

    def take_fault(self, path: str) -> Any:
        with self._lock:
            queue = self._faults.get(path)
            return queue.pop(0) if queue else None

    def has(self, model: str | None) -> bool:
        name = model or ""
        return (name if ":" in name else f"{name}:latest") in self.models


def _handler_for(server: FakeOllama) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        fake = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOllama
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    # -- plumbing ------------------------------------------------------------------

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else None

    def _send(self, status: int, payload: Any, ctype: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, records: list[dict[str, Any]], fault: Any = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Connection", "close")
        self.end_headers()
        for i, record in enumerate(records):
            if fault in ("midstream", "malformed", "truncated") and i == len(records) // 2:
                tail = {"midstream": b'{"error":"model runner has unexpectedly stopped"}\n',
                        "malformed": b'{"response": "oops\n', "truncated": b""}[fault]
                self.wfile.write(tail)
                self.close_connection = True
                return
            self.wfile.write(json.dumps(record).encode() + b"\n")
            self.wfile.flush()
        self.close_connection = True

    def _dispatch(self, method: str) -> None:
        body = self._body() if method in ("POST", "DELETE") else None
        path = self.path.split("?")[0]
        self.fake.requests.append((method, path, body))
        fault = self.fake.take_fault(path)
        if isinstance(fault, str) and fault.startswith("slow:"):
            time.sleep(float(fault[5:]))
            fault = None
        if fault == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if isinstance(fault, int):
            self._send(fault, {"error": f"injected failure {fault}"})
            return
        route = _ROUTES.get((method, path))
        if route is None or (self.fake.legacy and path == "/api/embed"):
            self._send(404, b"404 page not found", "text/plain")
            return
        route(self, body or {}, fault)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_HEAD(self) -> None:
        self.fake.requests.append(("HEAD", self.path, None))
        self.send_response(200)
        self.send_header("Content-Length", "17")
        self.end_headers()

    # -- endpoints -----------------------------------------------------------------

    def _missing(self, model: str | None) -> bool:
        if self.fake.has(model):
            return False
        self._send(404, {"error": f'model "{model}" not found, try pulling it first'})
        return True

    def root(self, body: Any, fault: Any) -> None:
        self._send(200, b"Ollama is running", "text/plain")

    def embed(self, body: dict[str, Any], fault: Any) -> None:
        if self._missing(body.get("model")):
            return
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        vectors = [fake_embedding(t, self.fake.dim) for t in texts]
        self._send(200, {"model": body["model"], "embeddings": vectors,
                         "total_duration": 1000, "load_duration": 10,
                         "prompt_eval_count": sum(len(t.split()) for t in texts)})

    def embeddings(self, body: dict[str, Any], fault: Any) -> None:
        if self._missing(body.get("model")):
            return
        vector = [x * 3.7 for x in fake_embedding(body.get("prompt", ""), self.fake.dim)]
        self._send(200, {"embedding": vector})

    def _generation(self, body: dict[str, Any], fault: Any, text_in: str, chat: bool) -> None:
        if self._missing(body.get("model")):
            return
        words = _answer(text_in).split(" ")
        limit = int((body.get("options") or {}).get("num_predict", -1))
        reason = "stop"
        if 0 <= limit < len(words):
            words, reason = words[:limit], "length"
        deltas = [w if i == 0 else " " + w for i, w in enumerate(words)]
        wrap = (lambda t: {"message": {"role": "assistant", "content": t}}) if chat \
            else (lambda t: {"response": t})
        final = {**wrap(""), "model": body["model"], "done": True, "done_reason": reason,
                 "total_duration": 5_000_000, "load_duration": 1_000_000,
                 "prompt_eval_count": len(text_in.split()), "prompt_eval_duration": 1_000_000,
                 "eval_count": len(words), "eval_duration": 2_000_000}
        if body.get("stream") is False:
            self._send(200, {**final, **wrap("".join(deltas))})
            return
        records = [{**wrap(d), "model": body["model"], "done": False} for d in deltas]
        self._stream([*records, final], fault)

    def generate(self, body: dict[str, Any], fault: Any) -> None:
        text = f"{body.get('system', '')}\n{body.get('prompt', '')}"
        self._generation(body, fault, text, chat=False)

    def chat(self, body: dict[str, Any], fault: Any) -> None:
        messages = body.get("messages") or []
        text = "\n".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
        self._generation(body, fault, text, chat=True)

    def tags(self, body: Any, fault: Any) -> None:
        self._send(200, {"models": [
            {"name": m, "model": m, "size": 45_000_000, "digest": "0" * 12,
             "details": {"family": "bert" if "minilm" in m else "llama"}}
            for m in sorted(self.fake.models)]})

    def show(self, body: dict[str, Any], fault: Any) -> None:
        model = body.get("model")
        if self._missing(model):
            return
        arch = "bert" if "minilm" in str(model) else "llama"
        info = {"general.architecture": arch,
                f"{arch}.embedding_length": 384 if arch == "bert" else 576,
                f"{arch}.context_length": 512 if arch == "bert" else 8192}
        self._send(200, {"details": {"family": arch}, "model_info": info, "modelfile": "",
                         "parameters": "", "template": "",
                         "capabilities": ["embedding"] if arch == "bert" else ["completion"]})

    def pull(self, body: dict[str, Any], fault: Any) -> None:
        model = body.get("model") or body.get("name") or ""
        if model.startswith("nonexistent"):
            self._stream([{"status": "pulling manifest"},
                          {"error": "pull model manifest: file does not exist"}])
            return
        self.fake.models.add(model if ":" in model else f"{model}:latest")
        self._stream([{"status": "pulling manifest"},
                      {"status": "downloading", "digest": "sha256:0", "total": 100, "completed": 50},
                      {"status": "downloading", "digest": "sha256:0", "total": 100, "completed": 100},
                      {"status": "success"}], fault)

    def copy(self, body: dict[str, Any], fault: Any) -> None:
        if self._missing(body.get("source")):
            return
        dest = body["destination"]
        self.fake.models.add(dest if ":" in dest else f"{dest}:latest")
        self._send(200, b"", "text/plain")

    def delete(self, body: dict[str, Any], fault: Any) -> None:
        if self._missing(body.get("model")):
            return
        name = body["model"]
        self.fake.models.discard(name if ":" in name else f"{name}:latest")
        self._send(200, b"", "text/plain")

    def ps(self, body: Any, fault: Any) -> None:
        self._send(200, {"models": []})

    def version(self, body: Any, fault: Any) -> None:
        self._send(200, {"version": "0.12.0"})


_ROUTES = {
    ("GET", "/"): _Handler.root,
    ("POST", "/api/embed"): _Handler.embed,
    ("POST", "/api/embeddings"): _Handler.embeddings,
    ("POST", "/api/generate"): _Handler.generate,
    ("POST", "/api/chat"): _Handler.chat,
    ("GET", "/api/tags"): _Handler.tags,
    ("POST", "/api/show"): _Handler.show,
    ("POST", "/api/pull"): _Handler.pull,
    ("POST", "/api/copy"): _Handler.copy,
    ("DELETE", "/api/delete"): _Handler.delete,
    ("GET", "/api/ps"): _Handler.ps,
    ("GET", "/api/version"): _Handler.version,
}
