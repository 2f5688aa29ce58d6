"""``ragkit serve``'s native API, and bad input that must never bring the server down."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from ollama_server import free_port
from served import Served, build_index, settings_for

from ragkit import BackendChooser, StreamChunk
from ragkit.server.backend import ServerBackend

QUESTION = "When do backups run?"
CHAT = {"model": "rag/docs", "messages": [{"role": "user", "content": QUESTION}]}


@pytest.fixture
def server(env, ollama, docs):
    build_index(env, ollama.url, docs)
    with Served(settings_for(env, ollama.url, max_body=64 * 1024)) as running:
        yield running


def alive(server):
    return httpx.get(server.url + "/api/tags").status_code == 200


def test_indexes_lists_and_describes(server):
    listed = httpx.get(server.url + "/indexes").json()["indexes"]
    assert [i["name"] for i in listed] == ["docs"]
    info = httpx.get(server.url + "/indexes/docs").json()
    assert info["model"] == "rag/docs" and info["embed_model"] == "all-minilm"
    assert info["chunks"] > 0 and info["dimension"] == 384


def test_search_returns_the_fields_of_search_json(server):
    reply = httpx.post(server.url + "/indexes/docs/search",
                       json={"query": "backups at night", "k": 2, "retrieval": "hybrid",
                             "paths": ["*.md"], "diversity": 0.2})
    hits = reply.json()["hits"]
    assert len(hits) == 2 and hits[0]["source"].endswith("backups.md")
    assert set(hits[0]) == {"rank", "score", "id", "path", "source", "page", "heading", "text",
                            "start", "end", "cosine", "location"}


def test_ask_streams_deltas_then_the_ask_json_object(server, ollama):
    with httpx.stream("POST", server.url + "/indexes/docs/ask",
                      json={"question": QUESTION, "k": 3}) as response:
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = [httpx.Response(200, content=line).json() for line in response.iter_lines()]
    deltas, final = lines[:-1], lines[-1]
    assert all(set(d) == {"delta"} for d in deltas)
    assert "".join(d["delta"] for d in deltas).strip() == final["answer"]
    assert final["found"] is True and final["cited"] == [1]
    assert final["sources"][0]["source"].endswith("backups.md")
    assert "Sources:" not in final["answer"]


@pytest.mark.parametrize(("body", "field"), [
    ({"query": "x", "k": 0}, "k"),
    ({"query": "x", "k": 101}, "k"),
    ({"query": "x", "retrieval": "fuzzy"}, "retrieval"),
    ({"k": 3}, "query"),
    ({"query": "x", "diversity": 2}, "diversity"),
    ({"query": "x", "colour": "red"}, "colour"),
])
def test_bad_search_bodies_are_422_naming_the_field(server, body, field):
    reply = httpx.post(server.url + "/indexes/docs/search", json=body)
    assert reply.status_code == 422
    assert reply.json()["field"] == field and reply.json()["error"].startswith(field)
    assert alive(server)


def test_unknown_index_and_route(server):
    missing = httpx.post(server.url + "/indexes/nope/search", json={"query": "x"})
    assert missing.status_code == 404 and "nope" in missing.json()["error"]
    assert httpx.get(server.url + "/nothing/here").status_code == 404
    assert httpx.get(server.url + "/api/../indexes/../etc").status_code == 404


def test_openapi_docs(server):
    assert httpx.get(server.url + "/docs").status_code == 200
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    assert "/indexes/{name}/search" in paths and "/v1/chat/completions" in paths


def test_malformed_json_on_every_face(server):
    for path in ("/api/chat", "/api/generate", "/api/embed", "/v1/chat/completions",
                 "/indexes/docs/search"):
        reply = httpx.post(server.url + path, content=b'{"model": ',
                           headers={"Content-Type": "application/json"})
        assert reply.status_code == 400, path
        assert "invalid JSON" in str(reply.json()["error"]), path
    assert alive(server)


def test_huge_bodies_are_refused(server):
    big = b'{"model": "rag/docs", "prompt": "' + b"x" * 100_000 + b'"}'
    declared = httpx.post(server.url + "/api/generate", content=big)
    assert declared.status_code == 413 and "larger than" in declared.json()["error"]

    def chunked():
        yield big[:50_000]
        yield big[50_000:]

    streamed = httpx.post(server.url + "/v1/chat/completions", content=chunked(),
                          headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413 and streamed.json()["error"]["message"]
    assert alive(server)


def test_an_upstream_dying_mid_stream_ends_with_an_error_line(server, ollama):
    for model in ("rag/docs", "smollm2:135m"):  # ours, and passed through
        ollama.fail("/api/chat", "dies")
        body = {**CHAT, "model": model}
        with httpx.stream("POST", server.url + "/api/chat", json=body) as response:
            assert response.status_code == 200
            lines = list(response.iter_lines())
        assert "error" in httpx.Response(200, content=lines[-1]).json(), model
    assert alive(server)


def test_an_upstream_error_line_is_relayed(server, ollama):
    ollama.fail("/api/chat", "midstream")
    with httpx.stream("POST", server.url + "/api/chat", json=CHAT) as response:
        last = list(response.iter_lines())[-1]
    assert "model runner has unexpectedly stopped" in last


@pytest.mark.parametrize("model", ["rag/docs", "smollm2:135m"])
def test_a_client_hanging_up_cancels_the_generation_upstream(server, ollama, model):
    ollama.token_delay = 0.2
    with httpx.stream("POST", server.url + "/api/chat", json={**CHAT, "model": model}) as reply:
        next(reply.iter_lines())  # the first token arrived: hang up now
    deadline = time.monotonic() + 5  # the whole reply would take about 5 s
    while ollama.hangups == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ollama.hangups == 1
    assert alive(server)


def test_an_unreachable_upstream_is_a_502_and_rag_models_stay_listed(env, ollama, docs):
    build_index(env, ollama.url, docs)
    down = f"http://127.0.0.1:{free_port()}"
    with Served(settings_for(env, down)) as server:
        tags = httpx.get(server.url + "/api/tags").json()["models"]
        assert [m["name"] for m in tags] == ["rag/docs:latest"]
        assert httpx.get(server.url + "/api/version").json()["version"]
        passed = httpx.post(server.url + "/api/chat", json={**CHAT, "model": "llama3"})
        assert passed.status_code == 502 and "cannot reach" in passed.json()["error"]
        ours = httpx.post(server.url + "/api/chat", json=CHAT)
        assert ours.status_code == 502 and "cannot reach" in ours.json()["error"]


def test_many_clients_at_once_queue_and_all_succeed(server):
    def one(i: int) -> int:
        if i % 2:
            return httpx.post(server.url + "/indexes/docs/search",
                              json={"query": f"backups {i}"}, timeout=60).status_code
        return httpx.post(server.url + "/api/chat", json={**CHAT, "stream": False},
                          timeout=60).status_code

    with ThreadPoolExecutor(24) as pool:
        assert set(pool.map(one, range(48))) == {200}


def test_the_index_is_reopened_after_a_rebuild(server, env, ollama, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "bees.md").write_text("Bees make honey from nectar.\n", encoding="utf-8")
    before = httpx.post(server.url + "/indexes/docs/search", json={"query": "honey"}).json()
    from ragkit import Index

    with Index.open("docs", home=env, backend="ollama", host=ollama.url) as index:
        index.ingest([other], rebuild=True)
    after = httpx.post(server.url + "/indexes/docs/search", json={"query": "honey"}).json()
    assert not any(h["source"].endswith("bees.md") for h in before["hits"])
    assert [h["source"].rsplit("/", 1)[-1] for h in after["hits"]] == ["bees.md"]


def test_access_log_has_one_line_per_request(server):
    httpx.post(server.url + "/indexes/docs/search", json={"query": "backups"})
    httpx.get(server.url + "/indexes/nope")
    line = server.wait_for_log(" POST /indexes/docs/search ")
    assert line.startswith("ragkit: 127.0.0.1 POST /indexes/docs/search 200 ")
    assert line.endswith(" ms")
    server.wait_for_log(" GET /indexes/nope 404 ")


def test_replies_are_not_held_back_by_nagles_algorithm(server):
    # Without TCP_NODELAY a reply written in two parts waits ~40 ms for a delayed ACK.
    with httpx.Client() as client:
        client.get(server.url + "/")
        connections = server._server.server_state.connections
        sockets = [c.transport.get_extra_info("socket") for c in connections]
        assert sockets and all(
            s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in sockets)


class _Engine:
    """Stands in for the embedded engine and notices two callers inside it at once."""

    name = "embedded"

    def __init__(self) -> None:
        self.inside = {"embed": 0, "generate": 0}
        self.most = {"embed": 0, "generate": 0}
        self.lock = threading.Lock()

    def _enter(self, kind: str) -> None:
        with self.lock:
            self.inside[kind] += 1
            self.most[kind] = max(self.most[kind], self.inside[kind])

    def _leave(self, kind: str) -> None:
        with self.lock:
            self.inside[kind] -= 1

    def embed(self, model, texts):
        self._enter("embed")
        time.sleep(0.01)
        self._leave("embed")
        return [[1.0]] * len(texts)

    def chat(self, model, messages, **options):
        self._enter("generate")
        try:
            for word in ("a", "b", "c"):
                time.sleep(0.005)
                yield StreamChunk(word)
            yield StreamChunk(done=True, done_reason="stop")
        finally:
            self._leave("generate")


def test_engine_calls_are_serialized():
    engine = _Engine()
    chooser = BackendChooser("embedded")
    chooser.for_model = lambda model: engine  # type: ignore[method-assign]
    backend = ServerBackend(chooser, timeout=5)

    def work(i: int) -> str:
        if i % 3 == 0:
            backend.embed("all-minilm", ["x"])
            return "abc"
        return "".join(c.text for c in backend.chat("smollm2:135m", [{"role": "user"}]))

    with ThreadPoolExecutor(12) as pool:
        assert set(pool.map(work, range(36))) == {"abc"}
    assert engine.most == {"embed": 1, "generate": 1}
    backend.close()


def test_a_mounted_app_sits_behind_the_same_gate(env, ollama, docs):
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request):
        return PlainTextResponse("mcp here")

    mcp = Starlette(routes=[Route("/", hello)])
    build_index(env, ollama.url, docs)
    with Served(settings_for(env, ollama.url, api_key="k"), mounts={"/mcp": mcp}) as server:
        assert httpx.get(server.url + "/mcp/").status_code == 401
        reply = httpx.get(server.url + "/mcp/", headers={"Authorization": "Bearer k"})
        assert reply.text == "mcp here"
        server.wait_for_log(" GET /mcp/ 200 ")
