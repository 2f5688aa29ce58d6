"""``ragkit serve``'s OpenAI face, driven by the official ``openai`` client and raw HTTP."""

from __future__ import annotations

import json

import httpx
import numpy as np
import openai
import pytest
from served import Served, build_index, settings_for

QUESTION = "When do backups run?"


@pytest.fixture
def server(env, ollama, docs):
    build_index(env, ollama.url, docs)
    with Served(settings_for(env, ollama.url)) as running:
        yield running


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def ask(client, **more):
    return client.chat.completions.create(
        model="rag/docs", messages=[{"role": "user", "content": QUESTION}], **more)


def test_models_lists_rag_models_then_upstream(client):
    ids = [m.id for m in client.models.list()]
    assert ids == ["rag/docs", "all-minilm:latest", "smollm2:135m"]
    assert client.models.retrieve("rag/docs").owned_by == "ragkit"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("rag/nope")


def test_chat_completion_not_streamed(client):
    reply = ask(client)
    assert reply.object == "chat.completion"
    choice = reply.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert "02:00" in choice.message.content and "\n\nSources:\n[1] " in choice.message.content
    assert reply.usage.completion_tokens > 0
    assert reply.model_extra["sources"][0]["cited"]


def test_chat_completion_streamed(client):
    chunks = list(ask(client, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "02:00" in text and "Sources:" in text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert len({c.id for c in chunks}) == 1


def test_content_parts_developer_messages_and_options(client, ollama):
    client.chat.completions.create(
        model="rag/docs", temperature=0.2, max_tokens=50, stop="END", seed=3,
        messages=[{"role": "developer", "content": "Be brief."},
                  {"role": "user", "content": [{"type": "text", "text": QUESTION}]}])
    sent = ollama.bodies("/api/chat")[-1]
    assert sent["messages"][0]["content"].startswith("Be brief.")
    assert QUESTION in sent["messages"][-1]["content"]
    assert sent["options"]["temperature"] == 0.2 and sent["options"]["num_predict"] == 50
    assert sent["options"]["stop"] == ["END"] and sent["options"]["seed"] == 3


def test_embeddings_base64_by_default_and_float(client, ollama):
    texts = ["backups at night", "tomatoes"]
    direct = httpx.post(ollama.url + "/api/embed",
                        json={"model": "all-minilm", "input": texts}).json()["embeddings"]
    default = client.embeddings.create(model="rag/docs", input=texts)
    assert [d.index for d in default.data] == [0, 1]
    assert np.allclose([d.embedding for d in default.data], direct, atol=1e-6)
    floats = client.embeddings.create(model="rag/docs", input=texts[0], encoding_format="float")
    assert np.allclose(floats.data[0].embedding, direct[0], atol=1e-6)


def test_vector_store_search(client):
    page = client.vector_stores.search(vector_store_id="docs", query="backups at night",
                                       max_num_results=3)
    hits = list(page)
    assert hits[0].filename == "backups.md" and 0 <= hits[0].score <= 1
    assert "02:00" in hits[0].content[0].text
    assert len(hits) <= 3
    only_pdf = client.vector_stores.search(
        vector_store_id="docs", query="warranty", max_num_results=5,
        filters={"type": "eq", "key": "filename", "value": "*.pdf"})
    assert {h.filename for h in only_pdf} == {"manual.pdf"}
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.search(vector_store_id="nope", query="x")
    with pytest.raises(openai.BadRequestError) as refused:
        client.vector_stores.search(vector_store_id="docs", query="x",
                                    filters={"type": "gt", "key": "page", "value": 1})
    assert refused.value.param == "filters"


def test_errors_in_openais_shape(client, server):
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="rag/nope",
                                       messages=[{"role": "user", "content": "hi"}])
    assert missing.value.body["type"] == "not_found_error"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="rag/docs", messages=[])
    assert bad.value.param == "messages" and bad.value.status_code == 400
    reply = httpx.post(server.url + "/v1/chat/completions", content=b"{oops",
                       headers={"Content-Type": "application/json"})
    error = reply.json()["error"]
    assert reply.status_code == 400 and set(error) == {"message", "type", "param", "code"}


def test_error_mid_stream_raises_api_error(client, ollama):
    ollama.fail("/api/chat", "midstream")
    stream = ask(client, stream=True)
    with pytest.raises(openai.APIError) as broke:
        for _ in stream:
            pass
    assert "runner" in broke.value.message


def test_other_models_pass_through_to_upstreams_v1(client, ollama):
    # The fake Ollama has no /v1 of its own: its 404 comes back, after the request reached it.
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="smollm2:135m",
                                       messages=[{"role": "user", "content": "hi"}])
    method, path, body = ollama.requests[-1]
    assert (method, path) == ("POST", "/v1/chat/completions")
    assert body["model"] == "smollm2:135m"


def test_api_key(env, ollama, docs):
    build_index(env, ollama.url, docs)
    with Served(settings_for(env, ollama.url, api_key="s3cret")) as server:
        good = openai.OpenAI(base_url=server.url + "/v1", api_key="s3cret", max_retries=0)
        assert next(m.id for m in good.models.list()) == "rag/docs"
        bad = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as refused:
            bad.models.list()
        assert refused.value.code == "invalid_api_key"


def test_sse_framing(server):
    body = {"model": "rag/docs", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": QUESTION}]}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    assert raw.endswith("data: [DONE]\n\n")
    events = raw.split("\n\n")[:-1]
    assert all(e.startswith("data: ") and "\n" not in e for e in events)
    chunks = [json.loads(e[len("data: "):]) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    finish = chunks[-2]
    assert finish["choices"][0]["delta"] == {} and finish["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] > 0
    assert all(c["usage"] is None for c in chunks[:-1])
