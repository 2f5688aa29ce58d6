"""Generating text on llama.cpp the way Ollama does: options, sampling, stop strings, metrics.

Ollama's options are checked and put in llama.cpp's terms (:class:`_Options`),
with Ollama's defaults, so the same options give the same kind of text on
both backends; ``format`` becomes a JSON grammar.  Messages go through the
model's chat template and only the template's own markers become special
tokens (:func:`_chat_tokens`).  Tokens are sampled one by one and streamed as
text, holding back what may be the start of a stop string, and the stream ends
with Ollama's final record and its metrics.
"""

from __future__ import annotations

import codecs
import json
import random
import re
import secrets
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import BackendError
from ..models import DEFAULT_CHAT_MODEL, trained_context
from .base import Message, Metrics, StreamChunk

__all__ = ["DEFAULT_NUM_CTX"]

DEFAULT_NUM_CTX = 2048
_TRAINED_CTX = trained_context(DEFAULT_CHAT_MODEL) or DEFAULT_NUM_CTX  # past it: only noise

# Ollama option -> (keyword of llama_cpp.Llama.generate, Ollama's default), so the same
# options give the same kind of text on both backends.
_SAMPLING = {
    "temperature": ("temp", 0.8), "top_k": ("top_k", 40), "top_p": ("top_p", 0.9),
    "min_p": ("min_p", 0.0), "typical_p": ("typical_p", 1.0),
    "repeat_penalty": ("repeat_penalty", 1.1), "presence_penalty": ("presence_penalty", 0.0),
    "frequency_penalty": ("frequency_penalty", 0.0),
}


@dataclass(frozen=True)
class _Options:
    """Ollama's generation options, checked and put in llama.cpp's terms."""

    sampler: dict[str, Any]
    num_ctx: int
    num_predict: int
    repeat_last_n: int
    seed: int | None
    stop: list[str]
    grammar: Any

    @classmethod
    def parse(cls, options: Mapping[str, Any], format: str | Mapping[str, Any] | None) -> _Options:
        """Read the options Ollama documents; unknown keys are ignored, as Ollama does."""
        get = {k: v for k, v in options.items() if v is not None}.get
        sampler = {kw: _number(k, get(k, default), float)
                   for k, (kw, default) in _SAMPLING.items()}
        sampler["top_k"] = int(sampler["top_k"])
        stop = get("stop") or []
        seed = _number("seed", get("seed", -1), int)
        num_ctx = _number("num_ctx", get("num_ctx", DEFAULT_NUM_CTX), int)
        return cls(
            sampler=sampler,
            num_ctx=max(64, min(num_ctx, _TRAINED_CTX)),
            num_predict=_number("num_predict", get("num_predict", -1), int),
            repeat_last_n=_number("repeat_last_n", get("repeat_last_n", 64), int),
            seed=seed if seed >= 0 else None,  # Ollama: -1 (the default) means random
            stop=[stop] if isinstance(stop, str) else [str(s) for s in stop if s],
            grammar=_grammar(format),
        )


class _Text:
    """Sampled tokens as text deltas, holding back what may be the start of a stop string."""

    def __init__(self, llm: Any, stops: list[str]) -> None:
        self.llm, self.stops, self.held = llm, stops, ""
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token: int) -> tuple[str, bool]:
        """Add one token; returns the text safe to stream and whether a stop string ended it."""
        self.held += self.decoder.decode(self.llm.detokenize([token]))
        cut = _stop_at(self.held, self.stops)
        if cut is not None:
            self.held = self.held[:cut]
            return self.flush(), True
        ready = len(self.held) - _stop_prefix(self.held, self.stops)
        text, self.held = self.held[:ready], self.held[ready:]
        return text, False

    def flush(self) -> str:
        """Whatever is still held back (the end of the reply)."""
        text, self.held = self.held + self.decoder.decode(b"", final=True), ""
        return text


def _complete(
    llm: Any, tokens: list[int], opts: _Options, started: int, load_ns: int
) -> Iterator[StreamChunk]:
    """Sample token by token, streaming text and ending with Ollama's final record."""
    limit = _reset(llm, tokens, opts)
    count, reason, first = yield from _sample(llm, tokens, opts, limit)
    end = time.perf_counter_ns()
    first = first or end
    yield StreamChunk(done=True, done_reason=reason, metrics=Metrics(
        total_duration=end - started, load_duration=load_ns,
        prompt_eval_count=len(tokens), prompt_eval_duration=first - started - load_ns,
        eval_count=count, eval_duration=end - first))


def _reset(llm: Any, tokens: list[int], opts: _Options) -> int:
    """Check that the prompt fits and set llama.cpp up for it; how many tokens to sample."""
    room = llm.n_ctx() - len(tokens)
    if room <= 0:
        wanted = 1 << max(len(tokens) + 64, 1).bit_length()  # a power of two with some room
        fix = (f"raise it (-o num_ctx={wanted}) or send less text" if wanted <= _TRAINED_CTX
               else f"the model cannot go past {_TRAINED_CTX}: send less text")
        raise BackendError(
            f"the prompt is {len(tokens)} tokens, more than the model's context "
            f"(num_ctx={llm.n_ctx()}) holds — {fix}")
    limit = min(opts.num_predict, room) if opts.num_predict > 0 else room
    # Evaluate the whole prompt every time: reusing a cached prefix changes the last
    # logits slightly (other batch shapes), and then a fixed seed no longer repeats a reply.
    llm.reset()
    llm.set_seed(opts.seed if opts.seed is not None else random.getrandbits(31))
    llm.last_n_tokens_size = opts.repeat_last_n  # read when generate() builds its sampler
    return limit


def _sample(
    llm: Any, tokens: list[int], opts: _Options, limit: int
) -> Generator[StreamChunk, None, tuple[int, str, int]]:
    """Stream the sampled text; returns the tokens sampled, why it stopped, when the first came."""
    import llama_cpp

    vocab, text = llama_cpp.llama_model_get_vocab(llm.model), _Text(llm, opts.stop)
    count, reason, first = 0, "length", 0
    sampled = llm.generate(tokens, grammar=opts.grammar, **opts.sampler)
    try:
        for token in sampled:
            first, count = first or time.perf_counter_ns(), count + 1
            if llama_cpp.llama_vocab_is_eog(vocab, token):  # EOS, <|im_end|>, ...
                reason = "stop"
                break
            delta, stopped = text.push(token)
            if delta:
                yield StreamChunk(delta)
            if stopped or count >= limit:
                reason = "stop" if stopped else "length"
                break
    finally:
        sampled.close()
    if rest := text.flush():
        yield StreamChunk(rest)
    return count, reason, first


def _stop_at(text: str, stops: Sequence[str]) -> int | None:
    """Where the first stop string in ``text`` begins, if any.

    >>> _stop_at("1, 2, 3", ["3", ", 2"]), _stop_at("abc", ["x"])
    (1, None)
    """
    found = [text.find(s) for s in stops if s in text]
    return min(found) if found else None


def _stop_prefix(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that could begin a stop string.

    >>> _stop_prefix("Answer: ST", ["STOP"]), _stop_prefix("Answer", ["STOP"])
    (2, 0)
    """
    return max((n for s in stops for n in range(len(s) - 1, 0, -1) if text.endswith(s[:n])),
               default=0)


def _number(key: str, value: Any, kind: type) -> Any:
    """``value`` as an int or float, or a BackendError naming the bad option."""
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise BackendError(f"option {key}={value!r} is not a number") from None


def _grammar(format: str | Mapping[str, Any] | None) -> Any:
    """A llama.cpp grammar that forces JSON output (Ollama's ``format``), or None."""
    if not format:
        return None
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    if format == "json":
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    if isinstance(format, Mapping):
        return LlamaGrammar.from_json_schema(json.dumps(format), verbose=False)
    raise BackendError(f"unsupported format {format!r} — use \"json\" or a JSON schema")


def _render_chat(llm: Any, messages: Sequence[Message]) -> str:
    """The prompt text for ``messages``, formatted by the chat template inside the model."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        raise BackendError("the smollm2 model file has no chat template")
    special = {"bos_token": llm.token_bos(), "eos_token": llm.token_eos()}
    texts = {k: llm.detokenize([v], special=True).decode("utf-8") for k, v in special.items()}
    plain: list[Any] = [
        {"role": m.get("role", "user"), "content": m.get("content") or ""} for m in messages]
    return Jinja2ChatFormatter(template=template, **texts)(messages=plain).prompt


def _chat_tokens(llm: Any, messages: Sequence[Message]) -> list[int]:
    """Token ids of ``messages`` in the chat template; message text is never a special token.

    Tokenizing the rendered prompt with ``special=True`` would turn an
    ``<|im_end|>`` inside a document into a real end of turn.  So the template is
    rendered with a unique marker in place of each message's text, the template's
    own text is tokenized with special tokens, and each message's text without.
    """
    contents = [m.get("content") or "" for m in messages]
    marks = [f"[ragkit-{secrets.token_hex(8)}-{n}]" for n in range(len(messages))]
    stand_ins = [{**m, "content": mark} for m, mark in zip(messages, marks, strict=True)]
    shaped = _render_chat(llm, stand_ins)
    pieces = re.split("(" + "|".join(map(re.escape, marks)) + ")", shaped)
    text_of = dict(zip(marks, contents, strict=True))
    filled = "".join(text_of.get(piece, piece) for piece in pieces)
    if pieces[1::2] != marks or filled != _render_chat(llm, messages):
        # A template that edits or repeats message text: the split above would be wrong.
        raise BackendError("the model's chat template changes the message text, so ragkit "
                           "cannot keep it apart from the template's special tokens")
    tokens: list[int] = []
    for n, piece in enumerate(pieces):
        message = n % 2 == 1
        text = text_of[piece] if message else piece
        if text or n == 0:  # the first piece carries the BOS, if the model wants one
            tokens += llm.tokenize(text.encode("utf-8"), add_bos=n == 0, special=not message)
    return tokens


def _special_texts(llm: Any) -> tuple[str, ...]:
    """The text of every control and user-defined token in the model's vocabulary."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    special = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
    return tuple(
        llama_cpp.llama_vocab_get_text(vocab, token).decode("utf-8", errors="replace")
        for token in range(llama_cpp.llama_vocab_n_tokens(vocab))
        if llama_cpp.llama_vocab_get_attr(vocab, token) & special)
