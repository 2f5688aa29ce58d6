"""The Ollama client against a real HTTP server speaking the protocol, faults included."""

from __future__ import annotations

import numpy as np
import pytest
from ollama_server import FakeOllama, fake_embedding, free_port

from ragkit.backend import collect
from ragkit.errors import (
    BadRequestError,
    ConnectError,
    ModelNotFoundError,
    ProtocolError,
    RequestTimeoutError,
    ServerError,
    StreamError,
)
from ragkit.ollama import OllamaClient


@pytest.fixture
def client(ollama):
    return OllamaClient(ollama.url, backoff=0.01)


def _posts(server, path):
    return [body for method, p, body in server.requests if p == path]


def test_embed_sends_one_batched_request_and_returns_normalized_rows(client, ollama):
    vectors = client.embed("all-minilm", ["alpha beta", "gamma", "熊猫"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], fake_embedding("alpha beta"), atol=1e-6)
    bodies = _posts(ollama, "/api/embed")
    assert bodies == [{"model": "all-minilm", "input": ["alpha beta", "gamma", "熊猫"],
                       "truncate": True}]


def test_embed_of_nothing_sends_nothing(client, ollama):
    assert client.embed("all-minilm", []).shape == (0, 0)
    assert ollama.requests == []


def test_legacy_server_falls_back_to_api_embeddings_and_normalizes():
    with FakeOllama(legacy=True) as old:
        client = OllamaClient(old.url)
        vectors = client.embed("all-minilm", ["one", "two words"])
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        assert np.allclose(vectors[1], fake_embedding("two words"), atol=1e-6)
        assert [b["prompt"] for b in _posts(old, "/api/embeddings")] == ["one", "two words"]
        client.embed("all-minilm", ["three"])  # remembered: no second /api/embed attempt
        assert len(_posts(old, "/api/embed")) == 1


def test_missing_model_is_not_mistaken_for_a_missing_route(client, ollama):
    with pytest.raises(ModelNotFoundError) as info:
        client.embed("nomic-embed-text", ["x"])
    assert str(info.value) == "model 'nomic-embed-text' not found — run `ollama pull nomic-embed-text`"
    assert _posts(ollama, "/api/embeddings") == []


@pytest.mark.parametrize("status", [503, 500])
def test_embed_retries_busy_or_failing_server(client, ollama, status):
    ollama.fail("/api/embed", status, times=2)
    assert client.embed("all-minilm", ["x"]).shape == (1, 384)
    assert len(_posts(ollama, "/api/embed")) == 3


def test_embed_gives_up_after_its_retries(client, ollama):
    ollama.fail("/api/embed", 503, times=10)
    with pytest.raises(ServerError) as info:
        client.embed("all-minilm", ["x"])
    assert str(info.value) == "Ollama returned HTTP 503: injected failure 503"
    assert info.value.status_code == 503
    assert len(_posts(ollama, "/api/embed")) == 4  # first try + 3 retries


def test_embed_retries_a_dropped_connection(client, ollama):
    ollama.fail("/api/embed", "drop")
    assert client.embed("all-minilm", ["x"]).shape == (1, 384)


def test_bad_request_is_not_retried_and_carries_the_server_text(client, ollama):
    ollama.fail("/api/embed", 400)
    with pytest.raises(BadRequestError, match="HTTP 400: injected failure 400"):
        client.embed("all-minilm", ["x"])
    assert len(_posts(ollama, "/api/embed")) == 1


def test_generate_streams_deltas_then_final_metrics(client, ollama):
    chunks = list(client.generate("smollm2:135m", "[1] a\nSky is blue.\n</documents>"))
    assert len(chunks) > 2 and all(not c.done for c in chunks[:-1])
    final = chunks[-1]
    assert final.done and final.done_reason == "stop"
    assert final.metrics.eval_count > 0 and final.metrics.total_duration == 5_000_000
    assert collect(chunks).text == "According to the documents, Sky is blue. [1]"


def test_generate_passes_every_field_through(client, ollama):
    list(client.generate("smollm2:135m", "hi", system="be brief", raw=True, keep_alive="5m",
                         format="json", images=["aGk="],
                         options={"temperature": 0, "stop": ["\n"], "seed": 3}))
    assert _posts(ollama, "/api/generate")[0] == {
        "model": "smollm2:135m", "prompt": "hi", "system": "be brief", "keep_alive": "5m",
        "format": "json", "images": ["aGk="], "raw": True, "stream": True,
        "options": {"temperature": 0, "stop": ["\n"], "seed": 3}}


def test_chat_streams_message_content(client, ollama):
    messages = [{"role": "system", "content": "[1] x\nWater is wet.\n</documents>"},
                {"role": "user", "content": "Is water wet?"}]
    reply = collect(client.chat("smollm2:135m", messages, options={"num_predict": 3}))
    assert reply.text == "According to the"
    assert reply.done_reason == "length" and reply.metrics.eval_count == 3
    assert _posts(ollama, "/api/chat")[0]["messages"] == messages


def test_non_streaming_variants(client, ollama):
    reply = client.generate_full("smollm2:135m", "no context here")
    assert reply.text == "I could not find that in the documents." and reply.done_reason == "stop"
    assert _posts(ollama, "/api/generate")[0]["stream"] is False
    chat = client.chat_full("smollm2:135m", [{"role": "user", "content": "hello"}])
    assert chat.text == "I could not find that in the documents."


@pytest.mark.parametrize(
    ("fault", "error", "message"),
    [
        ("midstream", StreamError,
         "Ollama stopped mid-reply with an error: model runner has unexpectedly stopped"),
        ("malformed", ProtocolError, "Ollama sent a line that is not JSON"),
        ("truncated", ProtocolError, "the stream ended before the final record"),
        (500, ServerError, "Ollama returned HTTP 500: injected failure 500"),
    ],
)
def test_stream_faults_are_reported(client, ollama, fault, error, message):
    ollama.fail("/api/chat", fault)
    with pytest.raises(error, match=message):
        list(client.chat("smollm2:135m", [{"role": "user", "content": "x"}]))


def test_generation_model_not_found(client):
    with pytest.raises(ModelNotFoundError, match="run `ollama pull llama3`"):
        list(client.generate("llama3", "hi"))


def test_unreachable_server():
    host = f"http://127.0.0.1:{free_port()}"
    client = OllamaClient(host, retries=0)
    with pytest.raises(ConnectError) as info:
        client.embed("all-minilm", ["x"])
    assert str(info.value) == f"cannot reach Ollama at {host} — is `ollama serve` running?"
    assert client.is_alive(timeout=0.2) is False


def test_slow_server_times_out_with_advice(ollama):
    client = OllamaClient(ollama.url, timeout=0.2, retries=0)
    ollama.fail("/api/generate", "slow:1.0")
    with pytest.raises(RequestTimeoutError) as info:
        list(client.generate("smollm2:135m", "x"))
    assert str(info.value).startswith(f"Ollama at {ollama.url} did not answer within 0.2 s")


def test_model_management(client, ollama):
    assert client.is_alive() and client.version() == "0.12.0"
    assert client.has_model("all-minilm") and not client.has_model("llama3")
    info = client.show("all-minilm")
    assert (info.embedding_length, info.context_length) == (384, 512)
    progress = list(client.pull("qwen2.5:0.5b"))
    assert progress[-1] == {"status": "success"} and progress[1]["completed"] == 50
    assert client.has_model("qwen2.5:0.5b")
    client.copy("qwen2.5:0.5b", "mine")
    client.delete("mine")
    assert not client.has_model("mine")
    with pytest.raises(ModelNotFoundError):
        client.delete("mine")
    with pytest.raises(StreamError, match="file does not exist"):
        list(client.pull("nonexistent-model"))
    assert client.ps() == []


def test_official_client_reads_our_test_server(ollama):
    """Conformance: the strict official client accepts the test server's replies."""
    ollama_pkg = pytest.importorskip("ollama")
    official = ollama_pkg.Client(host=ollama.url)
    assert len(official.embed(model="all-minilm", input=["a", "b"]).embeddings) == 2
    parts = list(official.chat(model="smollm2:135m", stream=True,
                               messages=[{"role": "user", "content": "hi"}]))
    assert parts[-1].done and parts[-1].done_reason == "stop"
    assert any(m.model == "all-minilm:latest" for m in official.list().models)
