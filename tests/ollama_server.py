"""A real HTTP server on loopback that speaks Ollama's wire format, for tests.

* **Embeddings** are deterministic and meaningful: feature hashing of words
  and CJK character bigrams (:func:`fake_embedding`), L2-normalized from
  ``/api/embed`` and deliberately unnormalized from the legacy ``/api/embeddings``.
* **Generation** streams NDJSON word by word, answering with the first
  sentence of passage ``[1]`` of the prompt (or system message) and citing it,
  so end-to-end tests can see that the right passage reached the model.
* **Faults** are injected per path with :meth:`FakeOllama.fail`: an HTTP
  status, an error line mid-stream, a malformed line, a truncated stream, a
  slow reply or a dropped connection; embeddings that are NaN, infinite, out
  of float32's range, strings, null, nested, zeros, ragged, one short or of
  another size; a huge reply, one endless stream line, a never-ending stream,
  a reply trickled a byte at a time, or a redirect (see :data:`FAULTS`).
* **Holds**: :meth:`FakeOllama.hold` stops the Nth request to a path until the test
  releases it, so a crash test kills its client at a known point instead of
  sleeping and hoping the client is still running.

Other test modules start one with ``with FakeOllama() as server:`` (or the ``ollama``
fixture) and point ragkit at ``server.url``, e.g. through ``OLLAMA_HOST``.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["BUSY", "DIM", "REGISTRY", "RUNNER_STOPPED", "FakeOllama", "Hold", "fake_embedding",
           "free_port"]

DIM = 384
#: Ollama's own texts for a full queue (503) and a crashed runner (500, or mid-stream).
BUSY = "server busy, please try again.  maximum pending requests exceeded"
RUNNER_STOPPED = "model runner has unexpectedly stopped, this may be due to resource limitations"
#: Names ``/api/pull`` can fetch; anything else fails the way the real registry does.
REGISTRY = frozenset({"all-minilm", "smollm2", "nomic-embed-text", "mxbai-embed-large",
                      "qwen2.5", "qwen3", "llama3", "llama3.2", "gemma3", "phi3", "mistral"})
# "dies": half the stream, then the connection closes without ending the chunked body
FAULTS = ("midstream", "malformed", "truncated", "drop", "endless", "dies")
#: Faults of an embedding reply: what goes wrong with its vectors.
VECTOR_FAULTS = ("nan", "inf", "1e300", "string", "null", "nested", "zeros", "ragged", "fewer")
#: Faults with an argument, e.g. "slow:1.5" (seconds), "dim:512" (vectors of 512 numbers),
#: "huge:100" (a 100 MB reply), "longline:4" (a stream whose first line is 4 MB),
#: "trickle:0.05" (the whole reply, headers included, one byte every 0.05 s),
#: "stall:2" (a stream that stops for 2 s after half its records), "redirect:<url or path>"
#: (307 to it).
ARG_FAULTS = ("slow", "dim", "huge", "longline", "trickle", "stall", "redirect")

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(rf"([{_CJK}]+)|((?:(?![{_CJK}])[^\W_])+)")
_STAMP = "2025-01-01T00:00:00Z"


def features(text: str) -> list[str]:
    """The hashed features of a text: lowercased words, and bigrams of CJK runs.

    >>> features("Backups run at 02:00. 熊猫吃竹子")
    ['backups', 'run', 'at', '02', '00', '熊猫', '猫吃', '吃竹', '竹子']
    """
    out: list[str] = []
    for cjk, word in _TOKEN.findall(text.lower()):
        if word:
            out.append(word)
        else:  # CJK has no spaces: overlapping bigrams stand in for words
            out.extend(cjk[i : i + 2] for i in range(max(1, len(cjk) - 1)))
    return out


def fake_embedding(text: str, dim: int = DIM) -> list[float]:
    """Feature-hashed bag of words, L2-normalized (zlib.crc32: stable across processes)."""
    vec = [0.0] * dim
    # A text without words still gets a vector, as from a real model: a zero one matches nothing.
    for feature in features(text) or ["\0"]:
        vec[zlib.crc32(feature.encode("utf-8")) % dim] += 1.0
    return _unit(vec)


def _unit(vector: list[float]) -> list[float]:
    norm = sum(x * x for x in vector) ** 0.5
    return [x / norm for x in vector] if norm else vector


def free_port() -> int:
    """A loopback port where nothing listens (for connection-refused tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answer_for(text: str) -> str:
    """The fake model's reply: cite passage [1]'s first sentence, or admit it is not there.

    >>> answer_for("Rules [1].\\n<documents>\\n[1] a.md — Intro\\n# Intro\\nHello there. More.\\n")
    'According to the documents, Hello there. [1]'
    >>> answer_for("no passages")
    'I could not find that in the documents.'
    """
    match = re.search(r"^\[1\][^\n]*\n(.+?)(?=\n\s*\n\[2\]|\n</documents>|\Z)", text, re.S | re.M)
    lines = match.group(1).splitlines() if match else []
    body = " ".join(ln.strip() for ln in lines if ln.strip() and not ln.startswith("#"))
    if not body:
        return "I could not find that in the documents."
    sentence = re.split(r"(?<=[.!?。！？])\s*", body, maxsplit=1)[0]
    return f"According to the documents, {sentence} [1]"


def _tagged(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _profile(name: str) -> dict[str, Any]:
    """Architecture facts of a model, from its name: embedding models are bert-like."""
    if any(key in name for key in ("minilm", "embed", "bge", "e5")):
        return {"arch": "bert", "context_length": 512, "capabilities": ["embedding"],
                "parameter_size": "23M", "quantization_level": "F16"}
    return {"arch": "llama", "context_length": 8192, "embedding_length": 576,
            "capabilities": ["completion"], "parameter_size": "135M",
            "quantization_level": "Q8_0"}


class Hold:
    """The Nth matching request to a path, held until :meth:`release` (see :meth:`FakeOllama.hold`).

    ``reached`` is set (and ``marker``, a file, written) when that request
    arrives; until then, and after the release, requests pass as usual.
    """

    #: A hold nobody releases lets go after this long, so a failed test cannot hang the suite.
    LIMIT = 60.0

    def __init__(self, path: str, n: int, where: Callable[[Any], bool] | None,
                 marker: Path | None) -> None:
        self.path, self.n, self.where, self.marker = path, n, where, marker
        self.seen = 0
        self.reached = threading.Event()
        self._released = threading.Event()

    def wait(self, timeout: float = 30.0, *, unless: Callable[[], bool] = lambda: False) -> bool:
        """Whether the request arrived within ``timeout``; stops early once ``unless()``."""
        deadline = time.monotonic() + timeout
        while not self.reached.wait(0.005):
            if unless() or time.monotonic() > deadline:
                return self.reached.is_set()
        return True

    def release(self) -> None:
        """Let the held request (and any later one) through."""
        self._released.set()

    def _matches(self, path: str, body: Any) -> bool:
        """Count a request; True for the one to hold."""
        if path != self.path or self.reached.is_set() or not (self.where or bool)(body):
            return False
        self.seen += 1
        return self.seen == self.n

    def _stop_here(self) -> None:
        if self.marker is not None:  # first: a waiter on ``reached`` may read it at once
            self.marker.write_text(f"{self.path} #{self.n}\n", encoding="utf-8")
        self.reached.set()
        self._released.wait(self.LIMIT)


class FakeOllama:
    """An Ollama-compatible server on an ephemeral loopback port; use it as a context manager."""

    def __init__(self, *, legacy: bool = False, dim: int = DIM, port: int = 0,
                 models: Iterable[str] = ("all-minilm:latest", "smollm2:135m"),
                 embedder: Callable[[str, list[str]], list[list[float]]] | None = None) -> None:
        self.models: set[str] = {_tagged(m) for m in models}
        # (model, texts) -> unit vectors; e.g. the real embedded engine, so an index
        # can be built on one backend and queried through this server.
        self.embedder = embedder
        self.legacy = legacy  # True: an Ollama from before /api/embed existed
        self.dim = dim
        self.version = "0.12.6"
        self.registry = set(REGISTRY)
        self.loaded: dict[str, str] = {}  # model -> expires_at, as /api/ps reports
        self.requests: list[tuple[str, str, Any]] = []
        self.delay = 0.0  # seconds every /api/embed reply waits: a slow model, for crash tests
        self.token_delay = 0.0  # seconds between streamed records: a slow generation
        self.hangups = 0  # streams the client closed before their end (a cancelled generation)
        self.templates: dict[str, str] = {}  # model -> the template /api/show gives for it
        self._faults: dict[str, list[tuple[Any, str | None]]] = {}
        self._holds: list[Hold] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), _handler_for(self))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FakeOllama:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Serve in a background thread."""
        # A short poll keeps stop() quick: shutdown() waits for the loop to look up.
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and free the port (held requests are let go)."""
        for held in self._holds:
            held.release()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def fail(self, path: str, kind: int | str, times: int = 1, error: str | None = None) -> None:
        """Make the next ``times`` requests to ``path`` fail with ``kind`` (see module doc)."""
        known = isinstance(kind, int) or kind in FAULTS or kind in VECTOR_FAULTS
        if not (known or str(kind).split(":", 1)[0] in ARG_FAULTS):
            raise ValueError(f"unknown fault {kind!r}")
        with self._lock:
            self._faults.setdefault(path, []).extend([(kind, error)] * times)

    def hold(self, path: str, n: int = 1, *, where: Callable[[Any], bool] | None = None,
             marker: Path | None = None) -> Hold:
        """Hold the ``n``-th request to ``path`` from now on (counting those whose JSON body
        passes ``where``) until the returned :class:`Hold` is released."""
        held = Hold(path, n, where, marker)
        with self._lock:
            self._holds.append(held)
        return held

    def _held(self, path: str, body: Any) -> Hold | None:
        with self._lock:
            return next((h for h in self._holds if h._matches(path, body)), None)

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._faults.clear()

    def has(self, model: Any) -> bool:
        """Whether the server has ``model`` (a bare name means ``:latest``)."""
        return isinstance(model, str) and bool(model) and _tagged(model) in self.models

    def bodies(self, path: str) -> list[Any]:
        """The JSON bodies of the requests received on ``path``, in order."""
        return [body for _, p, body in self.requests if p == path]

    def _log(self, method: str, path: str, body: Any) -> None:
        with self._lock:
            self.requests.append((method, path, body))

    def _take_fault(self, path: str) -> tuple[Any, str | None]:
        with self._lock:
            queue = self._faults.get(path)
            return queue.pop(0) if queue else (None, None)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out and hang up are part of the tests; anything else is a bug here.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def _handler_for(fake: FakeOllama) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"fake": fake})


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOllama
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, as Ollama's Go server
    disable_nagle_algorithm = True  # headers and body go out as separate small writes

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    # -- plumbing ------------------------------------------------------------------

    def do_GET(self) -> None:
        """Every method lands here; the route table decides what exists."""
        method, path = self.command, urlsplit(self.path).path
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = None
        self.fake._log(method, path, body if raw.strip() or method in ("POST", "DELETE") else None)
        if (held := self.fake._held(path, body)) is not None:
            held._stop_here()  # the test kills the client, or releases the request
        kind, error = self.fake._take_fault(path)
        name, _, arg = str(kind).partition(":")
        if name == "slow":
            time.sleep(float(arg))
            kind = None
        elif name == "trickle":
            self.wfile = _Trickle(self.wfile, float(arg))  # type: ignore[assignment]
            kind = None
        if kind == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if isinstance(kind, int):
            text = error or {503: BUSY, 500: RUNNER_STOPPED}.get(kind, f"injected HTTP {kind}")
            self._json({"error": text}, kind)
            return
        if name in ("redirect", "huge", "longline") or kind == "endless":
            self._misbehave(name, arg, path, kind)
            return
        route = _ROUTES.get((method, path))
        if route is None or (self.fake.legacy and path == "/api/embed"):
            self._text("404 page not found", 404)  # Go's router, not a handler: plain text
        elif not isinstance(body, dict):
            self._json({"error": "invalid character in request body"}, 400)
        else:
            route(self, body, kind)

    def _misbehave(self, name: str, arg: str, path: str, kind: Any) -> None:
        """Faults that replace the whole reply, whatever the endpoint."""
        if name == "redirect":
            self.send_response(307)
            self.send_header("Location", arg)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif name == "huge":  # one vector of ``arg`` MB of numbers, chunked as Go sends it
            self._start_stream("application/json; charset=utf-8")
            piece = b"0.0123456789," * (1_000_000 // 13)
            self._chunk(b'{"model": "m", "embeddings": [[')
            for _ in range(int(float(arg) * 1_000_000) // len(piece)):
                self._chunk(piece)
            self._chunk(b"0.5]]}")
            self.wfile.write(b"0\r\n\r\n")
        elif name == "longline":
            text = "a" * int(float(arg) * 1_000_000)
            self._stream([_wrapper(_kind_of(path))(text) | {"done": False},
                          {"done": True, "done_reason": "stop"}], None, piece=1_000_000)
        else:  # endless: a record every 20 ms until the client hangs up
            self._start_stream("application/x-ndjson")
            record = json.dumps({**_wrapper(_kind_of(path))(" more"), "done": False}).encode()
            while True:
                self._chunk(record + b"\n")
                time.sleep(0.02)

    do_HEAD = do_POST = do_DELETE = do_GET

    def _json(self, payload: Any, status: int = 200, fault: Any = None) -> None:
        data = json.dumps(payload).encode()
        if fault == "malformed":
            data = b"<html>502 Bad Gateway</html>"
        elif fault == "truncated":
            data = data[: len(data) // 2]
        elif fault == "midstream":
            data = json.dumps({"error": RUNNER_STOPPED}).encode()
        self._send(status, data, "application/json; charset=utf-8")

    def _text(self, text: str, status: int = 200) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8")

    def _send(self, status: int, data: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _start_stream(self, ctype: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _stream(self, records: list[dict[str, Any]], fault: Any = None,
                piece: int | None = None) -> None:
        """NDJSON in chunked encoding; a fault replaces the second half of the records.

        ``piece``: HTTP chunks of at most this many bytes (else one per record).
        """
        self._start_stream("application/x-ndjson")
        cut = len(records) // 2 if fault in ("midstream", "malformed", "truncated", "dies") \
            else None
        try:
            for i, record in enumerate(records[:cut]):
                if str(fault).startswith("stall:") and i == len(records) // 2:
                    time.sleep(float(str(fault)[6:]))
                line = json.dumps(record).encode() + b"\n"
                for start in range(0, len(line), piece or len(line)):
                    self._chunk(line[start : start + (piece or len(line))])
                time.sleep(self.fake.token_delay)
        except (BrokenPipeError, ConnectionResetError):
            with self.fake._lock:
                self.fake.hangups += 1
            self.close_connection = True
            return
        if fault == "dies":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "midstream":
            self._chunk(json.dumps({"error": RUNNER_STOPPED}).encode() + b"\n")
        elif fault == "malformed":
            self._chunk(b'{"response": "unterminated\n')
        self.wfile.write(b"0\r\n\r\n")  # a clean end, even without the done record

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _missing(self, model: Any, wording: str = 'model "{}" not found, try pulling it first'
                 ) -> bool:
        """Answer 404 (Ollama's JSON error) if the server lacks ``model``."""
        if self.fake.has(model):
            return False
        self._json({"error": wording.format(model)}, 404)
        return True

    # -- endpoints -----------------------------------------------------------------

    def root(self, body: dict[str, Any], fault: Any) -> None:
        self._text("Ollama is running")

    def embed(self, body: dict[str, Any], fault: Any) -> None:
        model, inputs = str(body.get("model") or ""), body.get("input")
        if self._missing(model):
            return
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        if self.fake.delay:
            time.sleep(self.fake.delay)
        dim = _profile(model).get("embedding_length", self.fake.dim)
        cut = body.get("dimensions") or dim  # matryoshka truncation, then normalize again
        if str(fault).startswith("dim:"):  # the model was replaced by one of another size
            dim = cut = int(str(fault)[4:])
        if self.fake.embedder is not None:
            vectors = [_unit(list(v)[:cut]) for v in self.fake.embedder(model, texts)]
        else:
            vectors = [_unit(fake_embedding(t, dim)[:cut]) for t in texts]
        vectors = _spoil(vectors, fault)
        self._touch(model, body)
        self._json({"model": model, "embeddings": vectors, "total_duration": 14_000_000,
                    "load_duration": 1_000_000,
                    "prompt_eval_count": sum(len(features(t)) for t in texts)}, fault=fault)

    def embeddings(self, body: dict[str, Any], fault: Any) -> None:
        model = str(body.get("model") or "")
        if not self._missing(model):
            self._touch(model, body)
            dim = _profile(model).get("embedding_length", self.fake.dim)
            # The legacy endpoint does not normalize: scaled, a client that forgets to shows.
            if str(fault).startswith("dim:"):
                dim = int(str(fault)[4:])
            vector = [x * 3.7 for x in fake_embedding(str(body.get("prompt", "")), dim)]
            self._json({"embedding": _spoil([vector], fault)[0]}, fault=fault)

    def generate(self, body: dict[str, Any], fault: Any) -> None:
        if body.get("raw") and (body.get("template") or body.get("system") or body.get("context")):
            self._json({"error": "raw mode does not support template, system, or context"}, 400)
            return
        text = f"{body.get('system') or ''}\n{body.get('prompt') or ''}"
        extra = {} if body.get("raw") else {"context": [1, 2, 3]}
        self._generation(body, fault, text, "generate", bool(body.get("prompt")), extra)

    def chat(self, body: dict[str, Any], fault: Any) -> None:
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        system = [str(m.get("content", "")) for m in messages if m.get("role") == "system"]
        users = [str(m.get("content", "")) for m in messages if m.get("role") == "user"]
        text = "\n".join(system + users[-1:])
        self._generation(body, fault, text, "chat", bool(messages), {})

    def _generation(self, body: dict[str, Any], fault: Any, text: str, kind: str,
                    has_input: bool, extra: dict[str, Any]) -> None:
        model = str(body.get("model") or "")
        if self._missing(model):
            return
        if "completion" not in _profile(model)["capabilities"]:
            self._json({"error": f'"{model}" does not support {kind}'}, 400)
            return
        self._touch(model, body)
        wrap = _wrapper(kind)
        base = {"model": model, "created_at": _STAMP}
        if not has_input:  # an empty prompt only loads the model
            self._json({**base, **wrap(""), "done": True, "done_reason": "load"})
            return
        deltas, reason = _deltas(answer_for(text), body)
        final = {**base, **wrap(""), "done": True, "done_reason": reason,
                 **_metrics(text, len(deltas)), **extra}
        if body.get("stream", True) is False:
            self._json({**final, **wrap("".join(deltas))}, fault=fault)
            return
        records = [{**base, **wrap(d), "done": False} for d in deltas]
        self._stream([*records, final], fault)

    def tags(self, body: dict[str, Any], fault: Any) -> None:
        self._json({"models": [_entry(m) for m in sorted(self.fake.models)]}, fault=fault)

    def show(self, body: dict[str, Any], fault: Any) -> None:
        model = str(body.get("model") or body.get("name") or "")
        if self._missing(model):
            return
        p = _profile(model)
        info = {"general.architecture": p["arch"], "general.parameter_count": 22_565_376,
                f"{p['arch']}.context_length": p["context_length"],
                f"{p['arch']}.embedding_length": p.get("embedding_length", self.fake.dim)}
        self._json({"modelfile": f"FROM {model}\n", "parameters": "num_ctx 2048",
                    "template": self.fake.templates.get(_tagged(model), "{{ .Prompt }}"),
                    "details": _entry(_tagged(model))["details"],
                    "model_info": info, "capabilities": p["capabilities"],
                    "modified_at": _STAMP}, fault=fault)

    def pull(self, body: dict[str, Any], fault: Any) -> None:
        model = str(body.get("model") or body.get("name") or "")
        known = model.split(":", 1)[0] in self.fake.registry
        layer = {"status": "pulling abababababab", "digest": "sha256:" + "ab" * 32, "total": 1000}
        records: list[dict[str, Any]] = [{"status": "pulling manifest"},
                   *({**layer, "completed": n} for n in (0, 500, 1000)),
                   {"status": "verifying sha256 digest"}, {"status": "writing manifest"},
                   {"status": "success"}] if known else [
                   {"status": "pulling manifest"},
                   {"error": "pull model manifest: file does not exist"}]
        if known:
            self.fake.models.add(_tagged(model))
        if body.get("stream", True) is not False:
            self._stream(records, fault)
        else:
            self._json(records[-1], 200 if known else 500, fault=fault)

    def copy(self, body: dict[str, Any], fault: Any) -> None:
        if self._missing(body.get("source")):
            return
        self.fake.models.add(_tagged(str(body.get("destination"))))
        self._text("")

    def delete(self, body: dict[str, Any], fault: Any) -> None:
        model = str(body.get("model") or body.get("name") or "")
        if self._missing(model, "model '{}' not found"):
            return
        self.fake.models.discard(_tagged(model))
        self.fake.loaded.pop(_tagged(model), None)
        self._text("")

    def ps(self, body: dict[str, Any], fault: Any) -> None:
        models = [{**_entry(m), "expires_at": expires, "size_vram": 0,
                   "context_length": _profile(m)["context_length"]}
                  for m, expires in sorted(self.fake.loaded.items())]
        self._json({"models": models}, fault=fault)

    def api_version(self, body: dict[str, Any], fault: Any) -> None:
        self._json({"version": self.fake.version}, fault=fault)

    def _touch(self, model: str, body: dict[str, Any]) -> None:
        """Track loaded models for /api/ps; ``keep_alive: 0`` unloads, as in Ollama."""
        if body.get("keep_alive") in (0, "0", "0s"):
            self.fake.loaded.pop(_tagged(model), None)
        else:
            self.fake.loaded[_tagged(model)] = "2099-01-01T00:00:00Z"


class _Trickle:
    """A writer that sends one byte at a time, ``pause`` seconds apart (a stalling server)."""

    def __init__(self, out: Any, pause: float) -> None:
        self.out, self.pause = out, pause

    def write(self, data: bytes) -> int:
        for i in range(len(data)):
            self.out.write(data[i : i + 1])
            self.out.flush()
            time.sleep(self.pause)
        return len(data)

    def __getattr__(self, name: str) -> Any:  # flush, close, closed: as the real writer
        return getattr(self.out, name)


def _spoil(vectors: list[list[float]], fault: Any) -> list[Any]:
    """Embeddings damaged as a vector fault says (see :data:`VECTOR_FAULTS`)."""
    bad: dict[str, Any] = {"nan": float("nan"), "inf": float("inf"), "1e300": 1e300,
                           "string": "0.25", "null": None, "nested": [0.25]}
    spoilt: list[Any] = [list(v) for v in vectors]
    if fault in bad:  # json.dumps writes NaN and Infinity, as a broken server might
        spoilt[-1][0] = bad[fault]
    elif fault == "zeros":
        spoilt[-1] = [0.0] * len(spoilt[-1])
    elif fault == "ragged":
        spoilt[-1] = spoilt[-1][:-1]
    elif fault == "fewer":
        spoilt = spoilt[:-1]
    return spoilt


def _kind_of(path: str) -> str:
    return "chat" if path.endswith("/chat") else "generate"


def _wrapper(kind: str) -> Callable[[str], dict[str, Any]]:
    """Where the text goes: ``response`` for generate, ``message.content`` for chat."""
    if kind == "chat":
        return lambda text: {"message": {"role": "assistant", "content": text}}
    return lambda text: {"response": text}


def _deltas(answer: str, body: dict[str, Any]) -> tuple[list[str], str]:
    """The reply as word deltas, cut at ``options.num_predict`` (then done_reason "length")."""
    if body.get("format") is not None:  # a JSON-mode reply is one JSON document
        answer = json.dumps({"answer": answer})
    words = answer.split(" ")
    deltas = [w if i == 0 else " " + w for i, w in enumerate(words)]
    limit = int((body.get("options") or {}).get("num_predict", -1))
    if 0 <= limit < len(deltas):
        return deltas[:limit], "length"
    return deltas, "stop"


def _metrics(prompt: str, generated: int) -> dict[str, int]:
    return {"total_duration": 50_000_000, "load_duration": 10_000_000,
            "prompt_eval_count": len(features(prompt)), "prompt_eval_duration": 20_000_000,
            "eval_count": generated, "eval_duration": 20_000_000}


def _entry(name: str) -> dict[str, Any]:
    """A model as /api/tags lists it."""
    p = _profile(name)
    details = {"parent_model": "", "format": "gguf", "family": p["arch"], "families": [p["arch"]],
               "parameter_size": p["parameter_size"], "quantization_level": p["quantization_level"]}
    return {"name": name, "model": name, "modified_at": _STAMP, "size": 45_960_996,
            "digest": f"{zlib.crc32(name.encode()):08x}" * 8, "details": details}


_ROUTES: dict[tuple[str, str], Callable[[_Handler, dict[str, Any], Any], None]] = {
    ("GET", "/"): _Handler.root,
    ("HEAD", "/"): _Handler.root,
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
    ("GET", "/api/version"): _Handler.api_version,
}

