"""The Ollama client against a real HTTP server speaking the protocol, faults included."""

from __future__ import annotations

import numpy as np
import pytest
import requests
from ollama_server import BUSY, RUNNER_STOPPED, FakeOllama, fake_embedding, features, free_port

from ragkit.backends.base import Backend, Metrics, Reply, StreamChunk, collect
from ragkit.backends.ollama import ModelInfo, OllamaClient, PullProgress
from ragkit.errors import (
    BadRequestError,
    ConnectError,
    ModelNotFoundError,
    ProtocolError,
    RequestTimeoutError,
    ServerError,
    StreamError,
    UsageError,
    VectorError,
)

# What each kind of server failure tells the user to do (ragkit.errors).
ADVICE_400 = " — check the model name and the options given with -o"
ADVICE_500 = (" — see the `ollama serve` log; a model runner that stops often lacks memory "
              "(try a smaller model or -o num_ctx=2048)")
ADVICE_503 = (" — the server's queue is full; retry in a moment, or raise OLLAMA_MAX_QUEUE / "
              "OLLAMA_NUM_PARALLEL")
ADVICE_STREAM = " — see the `ollama serve` log, then retry"

CONTEXT = ("Rules: cite like [1].\n<documents>\n[1] sky.md — Sky\nThe sky is blue. It is big.\n"
           "</documents>")
ANSWER = "According to the documents, The sky is blue. [1]"
NOT_FOUND = "I could not find that in the documents."


@pytest.fixture
def client(ollama):
    """A client of the test server that retries without waiting."""
    return OllamaClient(ollama.url, backoff=0.0)


def _msg(text):
    return [{"role": "system", "content": text}, {"role": "user", "content": "What colour?"}]


# -- construction ----------------------------------------------------------------------


def test_client_is_a_backend_and_describes_itself(ollama):
    client = OllamaClient(ollama.url)
    assert isinstance(client, Backend)
    assert client.name == "ollama"
    assert client.describe() == f"Ollama at {ollama.url}"


def test_host_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box")
    assert OllamaClient().host == "http://gpu-box:11434"
    monkeypatch.delenv("OLLAMA_HOST")
    assert OllamaClient().host == "http://127.0.0.1:11434"
    assert OllamaClient("https://h/ollama/").host == "https://h:443/ollama"


# -- embeddings ------------------------------------------------------------------------


def test_embed_sends_one_batched_request_and_returns_normalized_rows(client, ollama):
    texts = ["alpha beta", "gamma", "熊猫吃竹子"]
    vectors = client.embed("all-minilm", texts)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert np.allclose(vectors, [fake_embedding(t) for t in texts], atol=1e-6)
    assert ollama.requests == [("POST", "/api/embed", {"model": "all-minilm", "input": texts})]


def test_embed_passes_its_options_through_verbatim(client, ollama):
    vectors = client.embed("all-minilm", ["x y"], truncate=False, dimensions=64, keep_alive="10m",
                           options={"num_ctx": 256, "num_thread": 2})
    assert ollama.bodies("/api/embed") == [{
        "model": "all-minilm", "input": ["x y"], "truncate": False, "dimensions": 64,
        "keep_alive": "10m", "options": {"num_ctx": 256, "num_thread": 2}}]
    assert vectors.shape == (1, 64)
    assert np.isclose(np.linalg.norm(vectors[0]), 1.0, atol=1e-6)


def test_embed_of_nothing_sends_nothing(client, ollama):
    empty = client.embed("all-minilm", [])
    assert empty.shape == (0, 0) and empty.dtype == np.float32
    assert ollama.requests == []


def test_embed_refuses_a_bare_string(client, ollama):
    with pytest.raises(UsageError) as info:
        client.embed("all-minilm", "hello")
    assert str(info.value) == "embed() takes a list of texts, not a single string"
    assert ollama.requests == []


def test_similar_texts_get_similar_vectors(client):
    query, near, far = client.embed("all-minilm", ["when do backups run", "Backups run nightly.",
                                                   "Tomatoes need sun."])
    assert float(query @ near) > 0.3 > float(query @ far) == 0.0


def test_legacy_server_falls_back_once_and_normalizes():
    with FakeOllama(legacy=True) as old:
        client = OllamaClient(old.url)
        vectors = client.embed("all-minilm", ["one", "two words"])
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
        assert np.allclose(vectors[1], fake_embedding("two words"), atol=1e-6)
        client.embed("all-minilm", ["three"], keep_alive=0)
        assert [(m, p) for m, p, _ in old.requests] == [
            ("POST", "/api/embed"), ("POST", "/api/embeddings"), ("POST", "/api/embeddings"),
            ("POST", "/api/embeddings")]  # the missing route was asked about once per client
        assert old.bodies("/api/embeddings") == [
            {"model": "all-minilm", "prompt": "one"},
            {"model": "all-minilm", "prompt": "two words"},
            {"model": "all-minilm", "prompt": "three", "keep_alive": 0}]


def test_legacy_server_missing_model(ollama):
    with FakeOllama(legacy=True) as old, pytest.raises(ModelNotFoundError) as info:
        OllamaClient(old.url).embed("nomic-embed-text", ["x"])
    assert info.value.model == "nomic-embed-text"


def test_missing_model_is_not_mistaken_for_a_missing_route(client, ollama):
    for _ in range(2):
        with pytest.raises(ModelNotFoundError) as info:
            client.embed("nomic-embed-text", ["x"])
        assert str(info.value) == (
            "model 'nomic-embed-text' not found — run `ollama pull nomic-embed-text`")
    assert [p for _, p, _ in ollama.requests] == ["/api/embed", "/api/embed"]


@pytest.mark.parametrize("fault", [503, 500, "drop", "malformed", "truncated"])
def test_embed_retries_with_exponential_backoff(ollama, sleeps, fault):
    ollama.fail("/api/embed", fault, times=2)
    client = OllamaClient(ollama.url, backoff=0.25)
    assert client.embed("all-minilm", ["x"]).shape == (1, 384)
    assert len(ollama.bodies("/api/embed")) == 3
    assert sleeps == [0.25, 0.5]


def test_embed_retries_a_timeout(ollama):
    ollama.fail("/api/embed", "slow:0.6")
    client = OllamaClient(ollama.url, timeout=0.2, backoff=0.0)
    assert client.embed("all-minilm", ["x"]).shape == (1, 384)
    assert len(ollama.bodies("/api/embed")) == 2


def test_embed_gives_up_after_its_retries(ollama, sleeps):
    ollama.fail("/api/embed", 503, times=10)
    with pytest.raises(ServerError) as info:
        OllamaClient(ollama.url).embed("all-minilm", ["x"])
    assert str(info.value) == f"Ollama returned HTTP 503: {BUSY}{ADVICE_503}"
    assert (info.value.status_code, info.value.error) == (503, BUSY)
    assert len(ollama.bodies("/api/embed")) == 4  # the first try and 3 retries
    assert sleeps == [0.5, 1.0, 2.0]


def test_bad_request_is_not_retried_and_carries_the_server_text(client, ollama):
    ollama.fail("/api/embed", 400, error="the input length exceeds the context length")
    with pytest.raises(BadRequestError) as info:
        client.embed("all-minilm", ["x"])
    assert str(info.value) == (
        "Ollama returned HTTP 400: the input length exceeds the context length" + ADVICE_400)
    assert info.value.status_code == 400
    assert len(ollama.bodies("/api/embed")) == 1


@pytest.mark.parametrize("fault", ["malformed", "truncated"])
def test_embed_reply_that_is_not_json(client, ollama, sleeps, fault):
    ollama.fail("/api/embed", fault, times=10)
    with pytest.raises(ProtocolError) as info:
        client.embed("all-minilm", ["x"])
    assert str(info.value).startswith(
        "Ollama sent a reply that is not a JSON object on /api/embed: ")
    assert len(ollama.bodies("/api/embed")) == 4  # garbled replies are retried too


def test_embed_reply_with_an_error_field(client, ollama):
    ollama.fail("/api/embed", "midstream")
    with pytest.raises(StreamError) as info:
        client.embed("all-minilm", ["x"])
    assert str(info.value) == (
        f"Ollama stopped mid-reply with an error: {RUNNER_STOPPED}{ADVICE_STREAM}")


def test_embed_reply_without_a_vector_per_text(client, ollama, sleeps):
    ollama.fail("/api/embed", "fewer", times=10)
    with pytest.raises(VectorError) as info:
        client.embed("all-minilm", ["a", "b"])
    assert str(info.value) == (
        "Ollama's /api/embed reply holds 1 vectors for 2 texts — the embedding model or the "
        "server is broken; see the `ollama serve` log, or pull the model again")


# -- generation ------------------------------------------------------------------------


def test_generate_streams_word_deltas_then_final_metrics(client, ollama):
    chunks = list(client.generate("smollm2:135m", CONTEXT))
    words = ANSWER.split(" ")
    assert [c.text for c in chunks[:-1]] == [words[0]] + [" " + w for w in words[1:]]
    assert not any(c.done or c.metrics for c in chunks[:-1])
    assert chunks[-1] == StreamChunk("", True, "stop", Metrics(
        total_duration=50_000_000, load_duration=10_000_000,
        prompt_eval_count=len(features("\n" + CONTEXT)), prompt_eval_duration=20_000_000,
        eval_count=len(words), eval_duration=20_000_000))
    assert collect(chunks).text == ANSWER
    assert ollama.bodies("/api/generate") == [
        {"model": "smollm2:135m", "prompt": CONTEXT, "stream": True}]


def test_generate_passes_every_field_through_verbatim(client, ollama):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    options = {"temperature": 0, "seed": 42, "stop": ["\n\n"], "num_ctx": 4096, "top_k": 1}
    list(client.generate("smollm2:135m", "hi", system="be brief", options=options,
                         keep_alive="5m", format=schema, images=["aGk="],
                         template="{{ .System }} {{ .Prompt }}", context=[1, 2], suffix="end"))
    assert ollama.bodies("/api/generate") == [{
        "model": "smollm2:135m", "prompt": "hi", "system": "be brief", "options": options,
        "keep_alive": "5m", "format": schema, "images": ["aGk="],
        "template": "{{ .System }} {{ .Prompt }}", "context": [1, 2], "suffix": "end",
        "stream": True}]


def test_generate_raw_mode(client, ollama):
    reply = collect(client.generate("smollm2:135m", CONTEXT, raw=True, keep_alive=0))
    assert reply.text == ANSWER
    assert ollama.bodies("/api/generate")[0] == {
        "model": "smollm2:135m", "prompt": CONTEXT, "raw": True, "keep_alive": 0, "stream": True}
    with pytest.raises(BadRequestError) as info:  # the server's own rule, reported verbatim
        list(client.generate("smollm2:135m", "x", raw=True, system="s"))
    assert str(info.value) == (
        "Ollama returned HTTP 400: raw mode does not support template, system, or context"
        + ADVICE_400)


def test_generation_is_lazy_until_iterated(client, ollama):
    stream = client.generate("smollm2:135m", CONTEXT)
    assert ollama.requests == []
    assert next(stream) == StreamChunk("According")
    stream.close()  # abandoning a stream frees its connection
    assert client.generate_full("smollm2:135m", CONTEXT).text == ANSWER


def test_chat_streams_message_content(client, ollama):
    chunks = list(client.chat("smollm2:135m", _msg(CONTEXT)))
    assert collect(chunks).text == ANSWER
    assert chunks[-1].done and chunks[-1].done_reason == "stop"
    assert chunks[-1].metrics.eval_count == len(ANSWER.split(" "))


def test_chat_passes_every_field_through_verbatim(client, ollama):
    tools = [{"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}]
    messages = [*_msg("no passages"), {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "look", "images": ["aGk="]}]
    reply = collect(client.chat("smollm2:135m", messages, options={"temperature": 0.2},
                                keep_alive=-1, format="json", tools=tools))
    assert reply.text == '{"answer": "I could not find that in the documents."}'
    assert ollama.bodies("/api/chat") == [{
        "model": "smollm2:135m", "messages": messages, "options": {"temperature": 0.2},
        "keep_alive": -1, "format": "json", "tools": tools, "stream": True}]


def test_num_predict_cuts_the_reply_with_done_reason_length(client):
    reply = collect(client.chat("smollm2:135m", _msg(CONTEXT), options={"num_predict": 3}))
    assert reply == Reply("According to the", "length", reply.metrics)
    assert reply.metrics.eval_count == 3


def test_non_streaming_variants_send_stream_false(client, ollama):
    assert client.generate_full("smollm2:135m", CONTEXT) == collect(
        client.generate("smollm2:135m", CONTEXT))
    chat = client.chat_full("smollm2:135m", _msg("nothing here"), options={"seed": 1})
    assert chat.text == NOT_FOUND and chat.done_reason == "stop"
    assert chat.metrics.total_duration == 50_000_000
    assert [b["stream"] for b in ollama.bodies("/api/generate")] == [False, True]
    assert ollama.bodies("/api/chat") == [{
        "model": "smollm2:135m", "messages": _msg("nothing here"), "options": {"seed": 1},
        "stream": False}]


def test_an_empty_prompt_only_loads_the_model(client):
    assert list(client.generate("smollm2:135m", "")) == [
        StreamChunk("", True, "load", Metrics())]


@pytest.mark.parametrize("path", ["/api/generate", "/api/chat"])
@pytest.mark.parametrize(
    ("fault", "error", "message"),
    [
        ("midstream", StreamError,
         f"Ollama stopped mid-reply with an error: {RUNNER_STOPPED}{ADVICE_STREAM}"),
        ("malformed", ProtocolError,
         "Ollama sent a line that is not a JSON object on {path}: "
         "'{{\"response\": \"unterminated'"),
        ("truncated", ProtocolError, "Ollama's stream ended before the final record — "
                                     "the server may have crashed; retry"),
        ("drop", ProtocolError, "Ollama at {url} closed the connection without a complete reply "
                                "to {path} — the server may have crashed; retry"),
        (500, ServerError, f"Ollama returned HTTP 500: {RUNNER_STOPPED}{ADVICE_500}"),
        (503, ServerError, f"Ollama returned HTTP 503: {BUSY}{ADVICE_503}"),
    ],
)
def test_stream_faults_map_to_errors_and_are_not_retried(client, ollama, path, fault, error,
                                                         message):
    ollama.fail(path, fault)
    stream = (client.generate("smollm2:135m", CONTEXT) if path == "/api/generate"
              else client.chat("smollm2:135m", _msg(CONTEXT)))
    received = []
    with pytest.raises(error) as info:
        received.extend(stream)
    assert str(info.value) == message.format(path=path, url=ollama.url)
    assert len(ollama.bodies(path)) == 1  # generation is never retried
    if fault in ("midstream", "malformed", "truncated"):  # the first half arrived before it
        assert "".join(c.text for c in received) == "According to the documents, The"


def test_generation_model_not_found(client):
    with pytest.raises(ModelNotFoundError) as info:
        list(client.generate("llama3", "hi"))
    assert str(info.value) == "model 'llama3' not found — run `ollama pull llama3`"
    with pytest.raises(ModelNotFoundError, match=r"^model 'llama3:8b' not found"):
        client.chat_full("llama3:8b", _msg("x"))


def test_an_embedding_model_cannot_chat(client):
    with pytest.raises(BadRequestError) as info:
        list(client.chat("all-minilm", _msg("x")))
    assert str(info.value) == (
        'Ollama returned HTTP 400: "all-minilm" does not support chat' + ADVICE_400)


# -- connection failures ---------------------------------------------------------------


def test_unreachable_server(sleeps):
    host = f"http://127.0.0.1:{free_port()}"
    client = OllamaClient(host, retries=2)
    with pytest.raises(ConnectError) as info:
        client.embed("all-minilm", ["x"])
    assert str(info.value) == f"cannot reach Ollama at {host} — is `ollama serve` running?"
    assert info.value.host == host and "Connection refused" in info.value.detail
    assert sleeps == [0.5, 1.0]  # a server that is starting up gets a moment
    with pytest.raises(ConnectError):
        list(client.generate("smollm2:135m", "x"))
    assert sleeps == [0.5, 1.0]
    assert client.is_alive(timeout=0.2) is False


def test_slow_server_times_out_with_advice(ollama):
    client = OllamaClient(ollama.url, timeout=0.2)
    ollama.fail("/api/generate", "slow:1.0")
    with pytest.raises(RequestTimeoutError) as info:
        list(client.generate("smollm2:135m", "x"))
    assert str(info.value) == (
        f"Ollama at {ollama.url} did not answer within 0.2 s — the model may still be loading; "
        "retry, or raise the limit with --timeout / RAGKIT_TIMEOUT")
    assert info.value.timeout == 0.2


class _TimingOut(requests.Session):
    def request(self, *args, **kwargs):
        raise requests.ConnectTimeout("connect timed out")

    def head(self, *args, **kwargs):
        raise RuntimeError("anything at all")


def test_connect_timeout_names_the_connect_limit(sleeps):
    client = OllamaClient("gpu-box", connect_timeout=1.5, retries=1, session=_TimingOut())
    with pytest.raises(RequestTimeoutError) as info:
        client.embed("all-minilm", ["x"])
    assert str(info.value).startswith(
        "Ollama at http://gpu-box:11434 did not answer within 1.5 s")
    assert sleeps == [0.5]
    assert client.is_alive() is False  # never raises, whatever goes wrong


def test_is_alive(ollama):
    client = OllamaClient(ollama.url)
    assert client.is_alive() is True
    assert ollama.requests == [("HEAD", "/", None)]
    ollama.fail("/", "drop")
    assert client.is_alive() is False
    ollama.fail("/", "slow:0.6")
    assert client.is_alive(timeout=0.1) is False
    ollama.fail("/", 500)
    assert client.is_alive() is False


def test_a_server_that_is_not_ollama(client, ollama):
    ollama.fail("/api/version", "malformed")
    with pytest.raises(ProtocolError) as info:
        client.version()
    assert str(info.value) == (
        "Ollama sent a reply that is not a JSON object on /api/version: "
        "'<html>502 Bad Gateway</html>'")
    with pytest.raises(BadRequestError) as route:
        client._json("GET", "/api/nothing-here")
    assert str(route.value) == (
        "Ollama returned HTTP 404: /api/nothing-here does not exist on this server "
        "(404 page not found) — is OLLAMA_HOST an Ollama server, and a recent one?")


# -- model management ------------------------------------------------------------------


def test_list_and_has_model(client):
    models = client.list_models()
    assert [m.name for m in models] == ["all-minilm:latest", "smollm2:135m"]
    assert models[0].size == 45_960_996 and models[0].details["family"] == "bert"
    assert client.has_model("all-minilm") and client.has_model("all-minilm:latest")
    assert client.has_model("smollm2:135m")
    assert not client.has_model("smollm2")  # that is smollm2:latest, which is absent
    assert not client.has_model("llama3")


def test_show(client):
    minilm = client.show("all-minilm")
    assert (minilm.embedding_length, minilm.context_length) == (384, 512)
    assert minilm.capabilities == ("embedding",) and minilm.details["family"] == "bert"
    assert minilm.model_info["general.architecture"] == "bert"
    smol = client.show("smollm2:135m")
    assert (smol.embedding_length, smol.context_length) == (576, 8192)
    assert smol.capabilities == ("completion",)
    with pytest.raises(ModelNotFoundError, match=r"^model 'llama3' not found"):
        client.show("llama3")


def test_model_info_without_architecture_facts():
    info = ModelInfo.from_record("old", {"details": {"family": "llama"}})
    assert (info.embedding_length, info.context_length, info.capabilities) == (None, None, ())
    odd = ModelInfo("x", model_info={"general.architecture": "qwen2", "qwen2.context_length": "?"})
    assert odd.context_length is None


def test_pull_streams_progress_and_adds_the_model(client, ollama):
    progress = list(client.pull("qwen2.5:0.5b"))
    assert all(isinstance(p, PullProgress) for p in progress)
    assert [p.status for p in progress] == [
        "pulling manifest", "pulling abababababab", "pulling abababababab",
        "pulling abababababab", "verifying sha256 digest", "writing manifest", "success"]
    assert [(p.completed, p.total, p.percent) for p in progress[1:4]] == [
        (0, 1000, 0), (500, 1000, 50), (1000, 1000, 100)]
    assert progress[0].percent is None and progress[1].digest == "sha256:" + "ab" * 32
    assert ollama.bodies("/api/pull") == [{"model": "qwen2.5:0.5b", "stream": True}]
    assert client.has_model("qwen2.5:0.5b")


def test_pull_failures(client, ollama):
    with pytest.raises(ModelNotFoundError) as info:
        list(client.pull("no-such-model"))
    assert str(info.value) == (
        "cannot pull 'no-such-model': pull model manifest: file does not exist — check the "
        "name and tag in Ollama's library (ollama.com/library)")
    ollama.fail("/api/pull", "truncated")
    with pytest.raises(ProtocolError) as cut:
        list(client.pull("gemma3"))
    assert str(cut.value) == ("the pull of gemma3 ended before 'success' — the server may have "
                              "crashed; run it again to resume")


def test_copy_and_delete(client, ollama):
    client.copy("all-minilm", "mine")
    assert client.has_model("mine")
    client.delete("mine")
    assert not client.has_model("mine")
    with pytest.raises(ModelNotFoundError) as gone:
        client.delete("mine")
    assert str(gone.value) == ("the server has no model 'mine' to delete — `ragkit models list` "
                               "shows what it has")
    with pytest.raises(ModelNotFoundError, match=r"^the server has no model 'ghost' to copy — "):
        client.copy("ghost", "other")
    assert ollama.requests[0] == (
        "POST", "/api/copy", {"source": "all-minilm", "destination": "mine"})
    assert ollama.requests[2] == ("DELETE", "/api/delete", {"model": "mine"})


def test_ps_and_version(client):
    assert client.ps() == [] and client.version() == "0.12.6"
    client.embed("all-minilm", ["x"])
    loaded = client.ps()
    assert [m.name for m in loaded] == ["all-minilm:latest"]
    assert loaded[0].context_length == 512 and loaded[0].expires_at
    client.embed("all-minilm", ["x"], keep_alive=0)  # keep_alive 0 unloads, as in Ollama
    assert client.ps() == []


# -- the official client as a yardstick for the test server ----------------------------


def test_official_client_reads_our_test_server(ollama):
    """Conformance: the strict official client accepts every reply of the test server."""
    official_pkg = pytest.importorskip("ollama")
    official = official_pkg.Client(host=ollama.url)
    assert np.allclose(official.embed(model="all-minilm", input=["a b", "c"]).embeddings,
                       [fake_embedding("a b"), fake_embedding("c")], atol=1e-9)
    assert len(official.embeddings(model="all-minilm", prompt="a").embedding) == 384
    parts = list(official.chat(model="smollm2:135m", messages=_msg(CONTEXT), stream=True))
    assert "".join(p.message.content for p in parts) == ANSWER
    assert parts[-1].done and parts[-1].done_reason == "stop" and parts[-1].eval_count == 9
    whole = official.generate(model="smollm2:135m", prompt=CONTEXT, options={"num_predict": 2})
    assert (whole.response, whole.done_reason) == ("According to", "length")
    assert [m.model for m in official.list().models] == ["all-minilm:latest", "smollm2:135m"]
    shown = official.show("all-minilm")
    assert shown.modelinfo["bert.embedding_length"] == 384 and "embedding" in shown.capabilities
    assert [p.status for p in official.pull("qwen3", stream=True)][-1] == "success"
    assert official.copy("qwen3", "q").status == "success"
    assert official.delete("q").status == "success"
    assert [m.model for m in official.ps().models] == ["all-minilm:latest", "smollm2:135m"]
    with pytest.raises(official_pkg.ResponseError) as info:
        official.chat(model="llama3", messages=_msg("x"))
    assert info.value.status_code == 404
    assert info.value.error == 'model "llama3" not found, try pulling it first'


CHATML = ("{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
          "<|im_start|>assistant\n")


def test_special_tokens_are_read_from_the_template_once_per_model(client, ollama):
    ollama.templates["smollm2:135m"] = CHATML + "<turn>[/INST]"
    assert client.special_tokens("smollm2:135m") == ("<turn>", "<|im_end|>", "<|im_start|>",
                                                     "[/INST]")
    assert client.special_tokens("smollm2:135m") == client.special_tokens("smollm2:135m")
    assert ollama.bodies("/api/show") == [{"model": "smollm2:135m"}]
    assert client.special_tokens("all-minilm") == ()  # its template is {{ .Prompt }}


def test_special_tokens_are_empty_when_the_server_cannot_say(client, ollama):
    ollama.fail("/api/show", 500)
    assert client.special_tokens("smollm2:135m") == ()
    assert client.special_tokens("nonexistent") == ()


def test_the_test_server_holds_the_nth_request_until_released(ollama, tmp_path):
    import threading

    client = OllamaClient(ollama.url)
    marker = tmp_path / "held"
    hold = ollama.hold("/api/embed", 2, where=lambda body: body["input"] != ["skip"],
                       marker=marker)
    client.embed("all-minilm", ["skip"])  # not counted
    client.embed("all-minilm", ["one"])  # the first counted: passes
    done: list[object] = []
    second = threading.Thread(target=lambda: done.append(client.embed("all-minilm", ["two"])))
    second.start()
    assert hold.wait(10) and marker.read_text(encoding="utf-8") == "/api/embed #2\n"
    second.join(0.2)
    assert second.is_alive() and done == []  # held at the server
    hold.release()
    second.join(10)
    assert len(done) == 1 and client.embed("all-minilm", ["three"]).shape == (1, 384)
