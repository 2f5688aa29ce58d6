"""``ragkit mcp``: the official MCP SDK's client drives the server as a subprocess over stdio.

The backend is the Ollama-protocol test server; the corpus is the ``docs``
fixture, whose answers are known.  Each test launches one server and makes
many calls, so that a failing call is seen not to stop the next ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from ollama_server import FakeOllama

import ragkit

ROOT = Path(__file__).resolve().parents[1]
RESULT_FIELDS = {"id", "title", "url", "text", "score", "index", "location"}


def build(home: Path, name: str, paths: list[Path], url: str, **options: Any) -> None:
    """Index ``paths`` into ``home/name`` through the test server."""
    with ragkit.Index.open(home / name, create=True, backend="ollama", host=url,
                           **options) as index:
        report = index.ingest(paths)
    assert not report.failed


def server_env(home: Path, url: str) -> dict[str, str]:
    return {"OLLAMA_HOST": url, "RAGKIT_HOME": str(home), "RAGKIT_BACKEND": "ollama",
            "RAGKIT_MIN_SCORE": "0", "PYTHONPATH": str(ROOT)}


@contextlib.asynccontextmanager
async def connected(home: Path, url: str, errlog: Any, *args: str) -> AsyncIterator[ClientSession]:
    """An initialized client session with ``ragkit mcp ARGS`` launched over stdio."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "ragkit", "mcp", *args],
                                   env=server_env(home, url), cwd=str(home.parent))
    async with stdio_client(params, errlog=errlog) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        yield session


def run_session(tmp_path: Path, url: str, scenario: Any, *args: str) -> str:
    """Run ``scenario(session)`` against a fresh server; return what it wrote to stderr."""
    log = tmp_path / "stderr.txt"
    with log.open("w") as errlog:
        async def main() -> None:
            async with connected(tmp_path / "indexes", url, errlog, *args) as session:
                await scenario(session)
        anyio.run(main)
    return log.read_text()


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    """A successful call's structured content (its one text block holds the same JSON)."""
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert len(result.content) == 1
    assert json.loads(result.content[0].text) == result.structured_content
    return result.structured_content


async def error(session: ClientSession, tool: str, **arguments: Any) -> str:
    """A failed call's one-line message."""
    result = await session.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    text = result.content[0].text
    assert "\n" not in text and text.startswith(f"Error executing tool {tool}: ")
    return text.split(": ", 1)[1]


def test_index_neighbours_are_a_files_chunks_around_one_in_order(env, docs):
    """The library call ``fetch`` is built on (and ``Index.files``, which descriptions count)."""
    with ragkit.Index.open("t", create=True, backend="ollama") as index:
        assert index.neighbours(1) == [] and index.files() == []
        index.ingest([docs])
        assert index.files() == sorted(str(p.resolve()) for p in docs.rglob("*.*"))
        pdf = index.search("warranty pump", k=1)[0]
        around = index.neighbours(pdf.id)
        assert [h.page for h in around] == [1, 2]  # the PDF's two chunks, page order
        assert {h.path for h in around} == {pdf.path} and around[1].text == pdf.text
        assert [h.id for h in index.neighbours(around[0].id, 5)] == [h.id for h in around]
        assert [h.id for h in index.neighbours(pdf.id, 0)] == [pdf.id]
        assert all(h.rank == 0 and h.score == 0.0 for h in around)
        assert index.neighbours(10_000) == [] and index.neighbours(pdf.id, -1) == []


@pytest.fixture
def indexed(tmp_path, docs, ollama):
    build(tmp_path / "indexes", "docs", [docs], ollama.url)
    return docs


def test_tools_declare_their_schemas_and_say_what_the_index_holds(tmp_path, indexed, ollama):
    async def scenario(session: ClientSession) -> None:
        assert session.server_info.name == "ragkit"
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert set(tools) == {"search", "fetch", "list_indexes", "ask"}
        for tool in tools.values():
            assert tool.output_schema and tool.output_schema["type"] == "object", tool.name
            assert tool.annotations.read_only_hint
        assert "index 'docs' (4 files)" in tools["search"].description
        search = tools["search"].input_schema
        assert search["required"] == ["query"]
        assert search["properties"]["k"]["default"] == 5
        assert search["properties"]["k"]["maximum"] == 50
        assert set(search["properties"]) == {"query", "k", "index", "paths"}
        result = tools["search"].output_schema["$defs"]["SearchResult"]
        assert set(result["required"]) == RESULT_FIELDS
        assert set(tools["fetch"].output_schema["required"]) == {"id", "title", "text", "url",
                                                                   "metadata"}
        assert tools["fetch"].input_schema["required"] == ["id"]
        listed = await call(session, "list_indexes")
        assert listed["indexes"] == [{
            "name": "docs", "path": str(tmp_path / "indexes" / "docs"), "documents": 4,
            "chunks": listed["indexes"][0]["chunks"], "embed_model": "all-minilm"}]
        assert listed["indexes"][0]["chunks"] >= 5

    stderr = run_session(tmp_path, ollama.url, scenario)
    assert "ragkit: serving docs over MCP on stdio" in stderr


KNOWN = [  # query, title of the best passage, words of its text, page
    ("When do backups run?", "backups.md — Operations > Backups", "02:00", None),
    ("How often must the espresso machine be descaled?", "manual.pdf, page 1", "citric acid", 1),
    ("What does the warranty cover?", "manual.pdf, page 2", "pump for two years", 2),
    ("熊猫吃什么？", "panda.md — 简介", "竹子", None),
]


def test_search_then_fetch_finds_the_known_answers(tmp_path, indexed, ollama):
    async def scenario(session: ClientSession) -> None:
        for query, title, words, page in KNOWN:
            results = (await call(session, "search", query=query, k=3))["results"]
            # all-minilm does not read Chinese: a CJK question ranks by keywords alone, and
            # only the panda passage shares a term with it.
            assert len(results) == (1 if query == "熊猫吃什么？" else 3)
            best = results[0]
            assert set(best) == RESULT_FIELDS
            assert (best["title"], best["index"]) == (title, "docs")
            assert words in best["text"]
            name = title.split(",")[0].split(" — ")[0]
            path = next(indexed.rglob(name))
            suffix = f"#page={page}" if page else ""
            assert best["url"] == path.as_uri() + suffix
            assert best["location"] == f"{path}:{page}" if page else str(path)
            doc = await call(session, "fetch", id=best["id"])
            assert doc["id"] == best["id"] and doc["url"] == best["url"]
            assert best["text"] in doc["text"]
            meta = doc["metadata"]
            assert (meta["path"], meta["page"], meta["index"]) == (str(path), page, "docs")
            assert meta["chunk_id"] == int(best["id"].split(":")[1])
            assert best["id"].startswith("docs:") and meta["end"] > meta["start"]
        several = (await call(session, "search", query="backups", k=2, paths=["*.pdf"]))
        assert {r["title"].split(",")[0] for r in several["results"]} == {"manual.pdf"}

    run_session(tmp_path, ollama.url, scenario)


def test_fetch_gives_the_passage_with_its_neighbours_in_order(tmp_path, ollama):
    source = " ".join(f"Sentence number {n} talks about topic{n}." for n in range(1, 60))
    folder = tmp_path / "long"
    folder.mkdir()
    (folder / "long.txt").write_text(source, encoding="utf-8")
    build(tmp_path / "indexes", "long", [folder], ollama.url,
          chunker=ragkit.ChunkerSettings(size=30, overlap=8))

    async def scenario(session: ClientSession) -> None:
        best = (await call(session, "search", query="topic30", k=1))["results"][0]
        assert "topic30." in best["text"]
        doc = await call(session, "fetch", id=best["id"])
        assert len(doc["metadata"]["context_ids"]) == 3
        # Three overlapping chunks, each overlap given once: one stretch of the source.
        assert doc["text"] in source
        assert len(doc["text"]) > 2 * len(best["text"])
        first = (await call(session, "search", query="Sentence number 1 talks about topic1.",
                            k=1))["results"][0]
        assert first["text"].startswith("Sentence number 1 ")
        start = await call(session, "fetch", id=first["id"])  # no chunk before the first
        assert source.startswith(start["text"]) and len(start["metadata"]["context_ids"]) == 2

    run_session(tmp_path, ollama.url, scenario)


BAD_CALLS = [  # tool, arguments, words of the one-line message
    ("search", {"query": ""}, "the query is empty"),
    ("search", {"query": "   "}, "the query is empty"),
    ("search", {"query": "backups", "k": 0}, "k must be between 1 and 50, got 0"),
    ("search", {"query": "backups", "k": 51}, "k must be between 1 and 50, got 51"),
    ("search", {"query": "backups", "k": "many"}, "bad argument k: Input should be a valid"),
    ("search", {}, "bad argument query: Field required"),
    ("search", {"query": "backups", "index": "nope"}, "unknown index 'nope' — use one of: docs"),
    ("search", {"query": "backups", "paths": ["*.xls"]}, "no file in index 'docs' matches"),
    ("fetch", {"id": "docs:99999"}, "no passage 'docs:99999' in index 'docs'"),
    ("fetch", {"id": "nope:1"}, "unknown index 'nope' in id 'nope:1'"),
    ("fetch", {"id": "docs"}, "'docs' is not a passage id"),
    ("fetch", {"id": "docs:-3"}, "'docs:-3' is not a passage id"),
    ("ask", {"question": " "}, "the question is empty"),
    ("ask", {"question": "When?", "index": "nope"}, "unknown index 'nope'"),
]


def test_bad_input_is_a_one_line_tool_error_and_the_server_goes_on(tmp_path, indexed, ollama):
    async def scenario(session: ClientSession) -> None:
        for tool, arguments, words in BAD_CALLS:
            assert words in await error(session, tool, **arguments), (tool, arguments)
            results = (await call(session, "search", query="backups", k=1))["results"]
            assert results[0]["title"].startswith("backups.md")

    stderr = run_session(tmp_path, ollama.url, scenario)
    assert "Traceback" not in stderr and "Error executing" not in stderr


DOWN = re.compile(r"cannot reach Ollama at \S+ — is `ollama serve` running\?$|Ollama at \S+ "
                  r"closed the connection without a complete reply to /api/embed")


def test_a_backend_that_goes_down_is_a_tool_error_until_it_is_back(tmp_path, indexed, ollama):
    port = int(ollama.url.rsplit(":", 1)[1])

    async def scenario(session: ClientSession) -> None:
        best = (await call(session, "search", query="When do backups run?"))["results"][0]
        for path in ("/api/embed", "/api/chat"):
            ollama.fail(path, "drop", times=10_000)  # kept-alive connections die too
        ollama.stop()
        for tool, arguments in (("search", {"query": "When do backups run?"}),
                                ("ask", {"question": "When do backups run?"})):
            assert DOWN.match(await error(session, tool, **arguments)), tool
        # What needs no model still works.
        assert (await call(session, "fetch", id=best["id"]))["id"] == best["id"]
        assert (await call(session, "list_indexes"))["indexes"][0]["name"] == "docs"
        with FakeOllama(port=port):
            again = (await call(session, "search", query="When do backups run?"))["results"]
            assert again[0]["id"] == best["id"]
            answer = await call(session, "ask", question="When do backups run?")
            assert "02:00" in answer["answer"] and answer["found"]

    stderr = run_session(tmp_path, ollama.url, scenario)
    assert "Traceback" not in stderr


def test_ask_answers_with_sources_as_ask_json_does(tmp_path, indexed, ollama):
    async def scenario(session: ClientSession) -> None:
        answer = await call(session, "ask", question="When do backups run?")
        assert answer["index"] == "docs" and answer["found"] and answer["cited"] == [1]
        assert "02:00" in answer["answer"]
        source = answer["sources"][0]
        assert source["n"] == 1 and source["path"].endswith("backups.md")
        fetched = await call(session, "fetch", id=f"{answer['index']}:{source['id']}")
        assert source["text"] in fetched["text"]
        assert {"model", "metrics", "cited_by", "left_out"} <= set(answer)

    run_session(tmp_path, ollama.url, scenario)


def test_ask_is_left_out_without_a_chat_model(tmp_path, docs):
    with FakeOllama(models=("all-minilm",)) as server:
        build(tmp_path / "indexes", "docs", [docs], server.url)

        async def scenario(session: ClientSession) -> None:
            names = {t.name for t in (await session.list_tools()).tools}
            assert names == {"search", "fetch", "list_indexes"}

        stderr = run_session(tmp_path, server.url, scenario)
    assert "chat model 'smollm2:135m' is not reachable: the ask tool is left out" in stderr


def test_several_indexes_are_searched_together_or_one_by_one(tmp_path, docs, ollama):
    home = tmp_path / "indexes"
    build(home, "ops", [docs / "ops"], ollama.url)
    build(home, "manual", [docs / "manual.pdf"], ollama.url)

    async def scenario(session: ClientSession) -> None:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert "index 'ops' (1 file), index 'manual' (1 file)" in tools["search"].description
        both = (await call(session, "search", query="backups descaled", k=4))["results"]
        assert {r["index"] for r in both[:2]} == {"ops", "manual"}  # each index's best first
        only = (await call(session, "search", query="backups", k=4, index="manual"))["results"]
        assert {r["index"] for r in only} == {"manual"}
        pdfs = (await call(session, "search", query="backups", k=3, paths=["*.pdf"]))["results"]
        assert {r["index"] for r in pdfs} == {"manual"}  # ops has no PDF: left out
        for result in both:
            assert (await call(session, "fetch", id=result["id"]))["metadata"]["index"] == \
                result["index"]
        message = await error(session, "ask", question="When do backups run?")
        assert message == "several indexes are served — say which to ask: ops, manual"

    run_session(tmp_path, ollama.url, scenario, "--index", "ops", "--index", "manual")


def test_a_rebuilt_index_is_served_fresh(tmp_path, docs, ollama):
    home = tmp_path / "indexes"
    build(home, "docs", [docs], ollama.url)

    async def scenario(session: ClientSession) -> None:
        first = (await call(session, "search", query="backups", k=1))["results"][0]
        assert "02:00" in first["text"]
        (docs / "ops" / "backups.md").write_text("# Backups\n\nBackups now run at 04:30.\n")
        with ragkit.Index.open(home / "docs", backend="ollama", host=ollama.url) as index:
            index.ingest([docs], rebuild=True)
        again = (await call(session, "search", query="backups", k=1))["results"][0]
        assert "04:30" in again["text"]

    run_session(tmp_path, ollama.url, scenario)


def _mcp(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **server_env(tmp_path / "indexes", url)}
    return subprocess.run([sys.executable, "-m", "ragkit", "mcp", *args], env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)


def test_what_cannot_be_served_is_a_one_line_error_before_serving(tmp_path, docs, ollama):
    (tmp_path / "indexes").mkdir()
    result = _mcp(tmp_path, ollama.url)
    assert result.returncode == 4 and result.stdout == ""
    assert result.stderr.startswith(f"error: no index in {tmp_path / 'indexes'} — create one")
    build(tmp_path / "a", "docs", [docs / "garden.txt"], ollama.url)
    build(tmp_path / "b", "docs", [docs / "panda.md"], ollama.url)
    result = _mcp(tmp_path, ollama.url, "-i", str(tmp_path / "a/docs"), "-i",
                  str(tmp_path / "b/docs"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: two indexes are named 'docs'")
    assert len(result.stderr.splitlines()) == 1


NOISY = """
import sys
import ragkit.mcp_tools.catalog as catalog
import ragkit.mcp_tools.tools as tools

opened, searched = catalog.Catalog.open, tools.search

def noisy_open(*args, **kwargs):
    print("stray print while opening")
    return opened(*args, **kwargs)

def noisy_search(*args, **kwargs):
    print("stray print inside a tool")  # unflushed: Python writes it out at exit
    return searched(*args, **kwargs)

catalog.Catalog.open = staticmethod(noisy_open)
tools.search = noisy_search
sys.argv = ["ragkit", "mcp"]
from ragkit.cli.main import main
main()
"""


def test_stdout_carries_only_protocol_messages(tmp_path, indexed, ollama):
    """Stray prints, at start-up, in a tool and flushed at exit, all go to stderr."""
    env = {**os.environ, **server_env(tmp_path / "indexes", ollama.url)}
    env.pop("PYTHONUNBUFFERED", None)  # as a host launches it: print() output is buffered
    proc = subprocess.Popen([sys.executable, "-c", NOISY], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdin and proc.stdout
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "test", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "search", "arguments": {"query": "backups", "k": 1}}},
    ]
    for request in requests:
        proc.stdin.write(json.dumps(request) + "\n")
    proc.stdin.flush()
    lines = []
    while not any(msg.get("id") == 2 for msg in lines):
        line = proc.stdout.readline()
        assert line, "the server closed stdout"
        lines.append(json.loads(line))
    rest, stderr = proc.communicate(timeout=60)
    assert rest == "" and proc.returncode == 0
    assert all(msg["jsonrpc"] == "2.0" for msg in lines)
    assert "backups.md" in lines[-1]["result"]["structuredContent"]["results"][0]["title"]
    assert "stray print while opening" in stderr and "stray print inside a tool" in stderr


def test_the_tools_mount_in_an_asgi_app_as_streamable_http(tmp_path, indexed, ollama):
    """How ``ragkit serve`` mounts them: the app runs the SDK's session manager itself."""
    import threading

    import uvicorn
    from mcp.client.streamable_http import streamable_http_client
    from ollama_server import free_port
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from ragkit.mcp_tools import Catalog, build_server

    catalog = Catalog.open(["docs"], home=tmp_path / "indexes", backend="ollama",
                           host=ollama.url)
    server = build_server(catalog)
    mcp_app = server.streamable_http_app(streamable_http_path="/mcp")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with server.session_manager.run():  # a mounted app's own lifespan never runs
            yield

    app = Starlette(routes=[Mount("/", app=mcp_app)], lifespan=lifespan)
    port = free_port()
    web = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()

    async def main() -> None:
        while not web.started:
            await anyio.sleep(0.02)
        async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            names = {t.name for t in (await session.list_tools()).tools}
            assert names == {"search", "fetch", "list_indexes"}  # no chat_model: no ask
            best = (await call(session, "search", query="When do backups run?"))["results"][0]
            assert best["title"] == "backups.md — Operations > Backups"
            assert "02:00" in (await call(session, "fetch", id=best["id"]))["text"]
            assert "the query is empty" in await error(session, "search", query="")

    try:
        anyio.run(main)
    finally:
        web.should_exit = True
        thread.join(10)
        catalog.close()


def test_a_bug_in_a_tool_is_one_line_and_its_traceback_only_on_request(
        tmp_path, indexed, ollama, monkeypatch, caplog):
    """In process, through the SDK's in-memory client: the server survives a crash in a tool."""
    from mcp import Client

    from ragkit.mcp_tools import Catalog, build_server
    from ragkit.mcp_tools import tools as work

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(work, "search", broken)
    for debug in (False, True):
        caplog.clear()
        with Catalog.open([], home=tmp_path / "indexes", backend="ollama",
                          host=ollama.url) as catalog:
            async def main(catalog: Catalog = catalog, debug: bool = debug) -> None:
                async with Client(build_server(catalog, debug=debug)) as client:
                    result = await client.call_tool("search", {"query": "backups"})
                    assert result.is_error
                    assert result.content[0].text == (
                        "Error executing tool search: internal error: RuntimeError: boom — "
                        "please report it; set RAGKIT_DEBUG=1 to see the traceback")
                    listed = await client.call_tool("list_indexes", {})
                    assert not listed.is_error
            anyio.run(main)
        tracebacks = [r for r in caplog.records if r.exc_info]
        assert len(tracebacks) == (1 if debug else 0)
