"""``ragkit serve``'s ``/mcp``: the MCP tools over streamable HTTP, behind the server's key.

The official SDK's client (``mcp.client.streamable_http``) talks to the real
served app (``Served``: ``create_app`` under uvicorn on a loopback port).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client
from served import Served, build_index, settings_for

ROOT = Path(__file__).resolve().parents[1]
KEY = "s3cret-key"
BEARER = {"Authorization": f"Bearer {KEY}"}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                         "clientInfo": {"name": "test", "version": "0"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream",
               "Content-Type": "application/json"}


@pytest.fixture
def server(env, ollama, docs):
    build_index(env, ollama.url, docs)
    with Served(settings_for(env, ollama.url, api_key=KEY)) as running:
        yield running


@contextlib.asynccontextmanager
async def session_at(url: str, headers: dict[str, str]) -> AsyncIterator[ClientSession]:
    """An initialized SDK client session with the server's ``/mcp``."""
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http, \
            streamable_http_client(url + "/mcp", http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert json.loads(result.content[0].text) == result.structured_content
    return result.structured_content


async def error(session: ClientSession, tool: str, **arguments: Any) -> str:
    result = await session.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    text = result.content[0].text
    assert "\n" not in text and text.startswith(f"Error executing tool {tool}: ")
    return text.split(": ", 1)[1]


def test_the_tools_answer_over_streamable_http(server, docs):
    async def scenario() -> None:
        async with session_at(server.url, BEARER) as session:
            assert session.server_info.name == "ragkit"
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert set(tools) == {"search", "fetch", "list_indexes", "ask"}
            assert "index 'docs' (4 files)" in tools["search"].description
            assert all(t.output_schema for t in tools.values())
            listed = (await call(session, "list_indexes"))["indexes"]
            served = httpx.get(server.url + "/indexes", headers=BEARER).json()["indexes"]
            assert [i["name"] for i in listed] == [i["name"] for i in served] == ["docs"]
            assert listed[0]["path"] == served[0]["path"]

            results = (await call(session, "search", query="When do backups run?", k=3))
            best = results["results"][0]
            assert best["title"] == "backups.md — Operations > Backups"
            assert best["url"] == (docs / "ops" / "backups.md").as_uri()
            doc = await call(session, "fetch", id=best["id"])
            assert doc["id"] == best["id"] and best["text"] in doc["text"]
            assert "02:00" in doc["text"] and doc["metadata"]["index"] == "docs"

            assert "the query is empty" in await error(session, "search", query="  ")
            assert "k must be between 1 and 50, got 0" in await error(
                session, "search", query="backups", k=0)
            assert "no passage 'docs:99999'" in await error(session, "fetch", id="docs:99999")
            assert "unknown index 'nope'" in await error(session, "search", query="x",
                                                         index="nope")
            again = await call(session, "search", query="When do backups run?", k=1)
            assert again["results"][0]["id"] == best["id"]  # still serving after the errors

            answer = await call(session, "ask", question="When do backups run?")
            assert answer["found"] and "02:00" in answer["answer"]
            assert answer["sources"][0]["path"].endswith("backups.md")

    anyio.run(scenario)
    assert re.search(r"POST /mcp 200 \d+ ms$", server.wait_for_log("POST /mcp 200"))
    assert not any("Traceback" in line for line in server.log)


def test_mcp_needs_the_api_key(server):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        reply = httpx.post(server.url + "/mcp", json=INITIALIZE,
                           headers={**MCP_HEADERS, **headers})
        assert reply.status_code == 401, headers
        assert reply.json()["error"].startswith("missing or wrong API key")
    assert server.wait_for_log("POST /mcp 401")

    async def without_key() -> None:
        async with session_at(server.url, {}):
            pass

    with pytest.raises(Exception) as refused:  # the SDK's client gives up on the 401
        anyio.run(without_key)
    assert refused.group_contains(MCPError, depth=None)
    deadline = time.monotonic() + 10  # a log line is written once its reply has gone out
    while len([line for line in server.log if "POST /mcp 401" in line]) < 4:
        assert time.monotonic() < deadline, server.log
        time.sleep(0.01)
    with_key = httpx.post(server.url + "/mcp", json=INITIALIZE, headers={**MCP_HEADERS,
                                                                        **BEARER})
    assert with_key.status_code == 200 and with_key.headers["mcp-session-id"]


def initialize(server: Served, host: str) -> httpx.Response:
    """An initialize request that names ``host`` in its Host header."""
    return httpx.post(server.url + "/mcp", json=INITIALIZE,
                      headers={**MCP_HEADERS, **BEARER, "Host": host})


@pytest.mark.parametrize(("listen", "accepted", "refused"), [
    (None, ["127.0.0.1:11435", "localhost:11435", "localhost"], ["evil.example:11435"]),
    ("192.0.2.7:11435", ["192.0.2.7:11435", "localhost:11435"], ["evil.example:11435",
                                                                 "192.0.2.8:11435"]),
    ("[2001:db8::7]:11435", ["[2001:db8::7]:11435"], ["evil.example"]),
    ("0.0.0.0:11435", ["myhost.lan:11435", "192.0.2.7:11435"], []),
])
def test_the_host_header_check_follows_the_listen_address(env, ollama, docs, listen,
                                                          accepted, refused):
    """DNS-rebinding protection: loopback and the listen address only; off on 0.0.0.0."""
    build_index(env, ollama.url, docs)
    with Served(settings_for(env, ollama.url, api_key=KEY), listen_as=listen) as server:
        for host in accepted:
            assert initialize(server, host).status_code == 200, host
        for host in refused:
            reply = initialize(server, host)
            assert reply.status_code == 421 and reply.text == "Invalid Host header", host


def test_no_mcp_and_no_index_leave_a_404_that_says_why(env, ollama, docs):
    build_index(env, ollama.url, docs)
    with Served(settings_for(env, ollama.url, mcp=False)) as server:
        reply = httpx.post(server.url + "/mcp", json=INITIALIZE, headers=MCP_HEADERS)
        assert reply.status_code == 404
        assert reply.json()["error"] == ("the MCP tools are off on this server: ragkit serve "
                                         "was started with --no-mcp — restart it without")
        assert httpx.get(server.url + "/api/tags").status_code == 200
    env.joinpath("docs").rename(env / "elsewhere.not-an-index-home")
    with Served(settings_for(env / "empty", ollama.url)) as server:
        reply = httpx.post(server.url + "/mcp", json=INITIALIZE, headers=MCP_HEADERS)
        assert reply.status_code == 404 and "no index to serve" in reply.json()["error"]
        assert server.log[0].startswith("ragkit: /mcp is off: there is no index to serve")


def test_ask_is_left_out_when_the_chat_model_does_not_answer(env, docs):
    from ollama_server import FakeOllama

    with FakeOllama(models=("all-minilm",)) as ollama:
        build_index(env, ollama.url, docs)
        with Served(settings_for(env, ollama.url)) as server:
            async def scenario() -> None:
                async with session_at(server.url, {}) as session:
                    names = {t.name for t in (await session.list_tools()).tools}
                    assert names == {"search", "fetch", "list_indexes"}

            anyio.run(scenario)
    assert "ragkit: chat model 'smollm2:135m' is not reachable: /mcp leaves out the ask " \
        "tool" in server.log


WITHOUT_MCP = """
import sys
sys.modules["mcp"] = None  # as if the mcp extra were not installed
sys.argv = ["ragkit", "serve", "--listen", "127.0.0.1:0"]
from ragkit.cli.main import main
main()
"""


def test_serve_runs_without_the_mcp_extra_and_says_so_once(env, ollama, docs):
    build_index(env, ollama.url, docs)
    process = subprocess.Popen([sys.executable, "-c", WITHOUT_MCP],
                               env={**os.environ, "PYTHONPATH": str(ROOT)},
                               stderr=subprocess.PIPE, text=True)
    assert process.stderr
    try:
        note = process.stderr.readline()
        assert note == ("ragkit: /mcp is off: the mcp SDK is not installed — run `pip install "
                        "'ragkit[mcp]'` (or `make setup`) to serve the MCP tools there\n")
        announced = process.stderr.readline()
        url = re.search(r"on (http://\S+)", announced)
        assert url and "MCP" not in announced, announced
        assert httpx.get(url.group(1) + "/api/tags").json()["models"][0]["name"] == \
            "rag/docs:latest"
        reply = httpx.post(url.group(1) + "/mcp", json=INITIALIZE, headers=MCP_HEADERS)
        assert reply.status_code == 404 and "pip install 'ragkit[mcp]'" in reply.json()["error"]
    finally:
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=20)
    assert process.returncode == 130 and "/mcp is off" not in rest and "Traceback" not in rest
