"""``ragkit serve``'s Ollama face, driven by the official ``ollama`` client and raw HTTP.

The upstream is the fake Ollama (tests/ollama_server.py); an index of the
``docs`` fixture is served as ``rag/docs``.
"""

from __future__ import annotations

import json

import httpx
import numpy as np
import ollama
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
    return ollama.Client(host=server.url)


def chats(fake):
    return fake.bodies("/api/chat")


def test_lists_rag_models_first_then_upstream(client, server):
    names = [m.model for m in client.list().models]
    assert names == ["rag/docs:latest", "all-minilm:latest", "smollm2:135m"]
    details = httpx.get(server.url + "/api/tags").json()["models"][0]["details"]
    assert details["embedding_model"] == "all-minilm"
    assert details["chat_model"] == "smollm2:135m"
    assert details["chunks"] > 0


def test_liveness_version_and_ps(server, ollama):
    assert httpx.get(server.url + "/").text == "Ollama is running"
    assert httpx.head(server.url + "/").status_code == 200
    ollama.version = "0.13.1"
    assert httpx.get(server.url + "/api/version").json() == {"version": "0.13.1"}
    upstream = httpx.get(ollama.url + "/api/ps").json()
    assert httpx.get(server.url + "/api/ps").json() == upstream


@pytest.mark.parametrize("name", ["rag/docs", "rag/docs:latest"])
def test_show_a_rag_model_in_both_spellings(client, name):
    shown = client.show(name)
    assert shown.modelinfo["general.architecture"] == "rag"
    assert shown.modelinfo["rag.embedding_model"] == "all-minilm"
    assert shown.capabilities == ["completion"]


def test_chat_streams_an_answer_with_sources(client, ollama):
    parts = list(client.chat("rag/docs", [{"role": "user", "content": QUESTION}], stream=True))
    text = "".join(p.message.content for p in parts)
    assert "Backups run every night at 02:00" in text  # passage [1] reached the model
    assert text.rstrip().endswith("backups.md")
    assert "\n\nSources:\n[1] " in text
    last = parts[-1]
    assert last.done and last.done_reason == "stop" and last.eval_count > 0
    assert all(not p.done for p in parts[:-1])
    assert "<documents>" in chats(ollama)[-1]["messages"][0]["content"]


def test_chat_not_streamed_is_one_object(client):
    reply = client.chat("rag/docs:latest", [{"role": "user", "content": QUESTION}],
                        stream=False)
    assert reply.done and reply.message.role == "assistant"
    assert "02:00" in reply.message.content and "Sources:" in reply.message.content


def test_chat_keeps_the_clients_system_message_and_passes_fields_through(client, ollama):
    client.chat("rag/docs", [{"role": "system", "content": "Answer like a pirate."},
                             {"role": "user", "content": QUESTION}],
                options={"seed": 7, "temperature": 0.5}, keep_alive="1m", format="json", think=True,
                tools=[{"type": "function", "function": {"name": "now", "parameters": {}}}])
    sent = chats(ollama)[-1]
    system = sent["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("Answer like a pirate.")
    assert "<documents>" in system["content"]
    assert sent["options"]["seed"] == 7 and sent["options"]["temperature"] == 0.5
    assert sent["keep_alive"] == "1m" and sent["format"] == "json" and sent["think"] is True
    assert sent["tools"][0]["function"]["name"] == "now"


def test_chat_retrieves_with_the_conversation(client, ollama):
    first = client.chat("rag/docs", [{"role": "user", "content": QUESTION}], stream=False)
    client.chat("rag/docs", [{"role": "user", "content": QUESTION},
                             {"role": "assistant", "content": first.message.content},
                             {"role": "user", "content": "and how long are they kept?"}])
    # the retrieval query of the second turn (the grounding check embeds answers too)
    queries = [b["input"][0] for b in ollama.bodies("/api/embed") if len(b["input"]) == 1]
    assert any(QUESTION in q and "how long are they kept" in q for q in queries)
    history = chats(ollama)[-1]["messages"][1:-1]
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert "Sources:" not in history[1]["content"]  # the block is not fed back as history


def test_generate_builds_ragkits_prompt(client, ollama):
    reply = client.generate("rag/docs", QUESTION, system="Be terse.", stream=False)
    assert "02:00" in reply.response and "Sources:" in reply.response
    sent = ollama.bodies("/api/generate")[-1]
    assert "<documents>" in sent["prompt"] and sent["prompt"].rstrip().endswith("Answer:")
    assert sent["system"] == "Be terse."
    streamed = "".join(p.response for p in client.generate("rag/docs", QUESTION, stream=True))
    assert "02:00" in streamed


def test_irrelevant_passages_answer_not_found_without_the_model(client, ollama, monkeypatch):
    monkeypatch.setenv("RAGKIT_MIN_SCORE", "5")
    before = len(chats(ollama))
    reply = client.chat("rag/docs", [{"role": "user", "content": QUESTION}], stream=False)
    assert reply.message.content == "The documents do not contain the answer."
    assert len(chats(ollama)) == before


def test_front_end_title_request_skips_retrieval(client, ollama):
    task = ("### Task:\nGenerate a concise, 3-5 word title summarizing the chat history.\n"
            "<chat_history>\nUSER: When do backups run?\n</chat_history>")
    embeds = len(ollama.bodies("/api/embed"))
    reply = client.chat("rag/docs", [{"role": "user", "content": task}], stream=False)
    assert "Sources:" not in reply.message.content
    assert chats(ollama)[-1]["messages"] == [{"role": "user", "content": task}]
    assert chats(ollama)[-1]["model"] == "smollm2:135m"
    assert len(ollama.bodies("/api/embed")) == embeds  # no search was made


def test_header_turns_retrieval_off(server, ollama):
    body = {"model": "rag/docs", "stream": False,
            "messages": [{"role": "user", "content": QUESTION}]}
    httpx.post(server.url + "/api/chat", json=body, headers={"X-Ragkit-Retrieval": "off"})
    assert "<documents>" not in json.dumps(chats(ollama)[-1])


def test_embed_with_a_rag_model_uses_the_index_embedding_model(client, ollama):
    ours = client.embed("rag/docs", ["backups at night", "tomatoes"]).embeddings
    direct = ollama_vectors(ollama, ["backups at night", "tomatoes"])
    assert np.allclose(ours, direct, atol=1e-6)
    legacy = client.embeddings("rag/docs", "backups at night").embedding
    assert np.allclose(legacy, direct[0], atol=1e-6)


def ollama_vectors(fake, texts):
    return httpx.post(fake.url + "/api/embed", json={"model": "all-minilm", "input": texts}
                      ).json()["embeddings"]


def test_other_models_pass_through_unchanged(client, ollama):
    parts = list(client.chat("smollm2:135m", [{"role": "user", "content": "hi"}], stream=True))
    assert parts[-1].done and parts[-1].eval_count > 0
    assert chats(ollama)[-1]["messages"] == [{"role": "user", "content": "hi"}]
    assert client.embed("all-minilm", "x").embeddings
    progress = [p.status for p in client.pull("llama3", stream=True)]
    assert progress[0] == "pulling manifest" and progress[-1] == "success"
    assert client.show("smollm2:135m").modelinfo["general.architecture"] == "llama"


def test_unknown_models_are_404(client):
    with pytest.raises(ollama.ResponseError) as upstream:
        client.chat("nope", [{"role": "user", "content": "hi"}])
    assert upstream.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as ours:
        client.chat("rag/nope", [{"role": "user", "content": "hi"}])
    assert ours.value.status_code == 404 and "nope" in ours.value.error


def test_rag_models_cannot_be_pulled_or_deleted(client):
    for call in (lambda: client.pull("rag/docs"), lambda: client.delete("rag/docs")):
        with pytest.raises(ollama.ResponseError) as refused:
            call()
        assert refused.value.status_code == 400 and "ragkit index" in refused.value.error


def test_api_key_through_client_headers(env, ollama, docs):
    build_index(env, ollama.url, docs)
    with Served(settings_for(env, ollama.url, api_key="s3cret")) as server:
        import ollama as ollama_client  # the fixture named "ollama" hides the module here

        keyed = ollama_client.Client(host=server.url, headers={"Authorization": "Bearer s3cret"})
        assert keyed.list().models[0].model == "rag/docs:latest"
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            with pytest.raises(ollama_client.ResponseError) as refused:
                ollama_client.Client(host=server.url, headers=headers).list()
            assert refused.value.status_code == 401


# -- the exact wire format --------------------------------------------------------------

def test_ndjson_framing_is_ollamas(server):
    body = {"model": "rag/docs", "messages": [{"role": "user", "content": QUESTION}]}
    with httpx.stream("POST", server.url + "/api/chat", json=body) as response:
        assert response.headers["content-type"] == "application/x-ndjson"
        assert response.headers.get("transfer-encoding") == "chunked"
        raw = response.read()
    assert raw.endswith(b"\n") and b"data:" not in raw and b"[DONE]" not in raw
    records = [json.loads(line) for line in raw.split(b"\n")[:-1]]
    for record in records[:-1]:
        assert set(record) == {"model", "created_at", "message", "done"}
        assert record["done"] is False and record["message"]["role"] == "assistant"
    final = records[-1]
    assert final["done"] is True and final["done_reason"] == "stop"
    for key in ("total_duration", "load_duration", "prompt_eval_count",
                "prompt_eval_duration", "eval_count", "eval_duration"):
        assert isinstance(final[key], int)
    assert final["message"]["content"] == ""
    assert final["sources"][0]["cited"] and final["sources"][0]["source"].endswith("backups.md")


def test_empty_messages_only_load(server):
    reply = httpx.post(server.url + "/api/chat", json={"model": "rag/docs", "messages": []})
    assert reply.json()["done_reason"] == "load"
