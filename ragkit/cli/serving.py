"""``ragkit serve`` and ``ragkit mcp``: the indexes served to other programs.

``serve`` speaks Ollama's and OpenAI's HTTP APIs (and MCP at ``/mcp``);
``mcp`` speaks MCP on stdin/stdout.  Both import their servers inside the
command, as their dependencies are optional extras.
"""

from __future__ import annotations

import click

from ..errors import RagkitError
from ..models import DEFAULT_CHAT_MODEL
from ..settings import Settings, debug_enabled
from .options import backend_options, say

__all__ = ["mcp", "serve"]


@click.command()
@click.option("--index", "-i", "indexes", multiple=True, metavar="NAME_OR_PATH",
              help="Serve only this index (repeatable; a path's index is named after its "
              "folder) [default: every index in RAGKIT_HOME].")
@click.option("--listen", default="127.0.0.1:11435", show_default=True, metavar="HOST:PORT",
              help="Address to listen on (port 0: any free port).")
@click.option("--model", "-m", envvar="RAGKIT_CHAT_MODEL", default=None,
              help="Chat model the rag/<index> models answer with "
              f"[default: {DEFAULT_CHAT_MODEL}].")
@click.option("--api-key", envvar="RAGKIT_API_KEY", default=None,
              help="Require 'Authorization: Bearer KEY' on every request.")
@click.option("--insecure", is_flag=True,
              help="Allow a non-loopback --listen address without an API key.")
@click.option("--backend", type=click.Choice(["auto", "ollama", "embedded"]), default="auto",
              show_default=True, envvar="RAGKIT_BACKEND", help="Who runs the models.")
@click.option("--host", envvar="OLLAMA_HOST", default=None,
              help="The upstream Ollama, also where other models are passed through "
              "[default: $OLLAMA_HOST or http://127.0.0.1:11434].")
@click.option("--embed-model", envvar="RAGKIT_EMBED_MODEL", default=None,
              help="Embedding model [default: each index's].")
@click.option("--timeout", type=float, default=300.0, show_default=True,
              envvar="RAGKIT_TIMEOUT", help="Seconds to wait for a model reply.")
@click.option("--no-mcp", is_flag=True, help="Do not offer the MCP tools at /mcp.")
@click.option("--watch", "watch_paths", multiple=True, metavar="PATH",
              help="Keep the served index (the one --index names, else 'default') in step "
              "with PATH while serving, as `ragkit watch` does (repeatable).")
def serve(indexes: tuple[str, ...], listen: str, model: str | None, api_key: str | None,
          insecure: bool, backend: str, host: str | None, embed_model: str | None,
          timeout: float, no_mcp: bool, watch_paths: tuple[str, ...]) -> None:
    """Serve the indexes over HTTP, as Ollama and OpenAI models named rag/<index>.

    Point Ollama clients at it with OLLAMA_HOST=127.0.0.1:11435 and OpenAI
    clients with base_url=http://127.0.0.1:11435/v1, and MCP hosts at
    http://127.0.0.1:11435/mcp; other models pass through to the upstream
    Ollama. Ctrl-C stops.
    """
    try:
        from ..server import ServerSettings
        from ..server import serve as run
    except ImportError as exc:
        if exc.name not in ("fastapi", "uvicorn", "httpx", "starlette", "pydantic", "anyio"):
            raise
        raise RagkitError(f"ragkit serve needs the 'serve' extra ({exc.name} is missing) — "
                          "run `pip install 'ragkit[serve]'` or `make setup`") from None
    env = Settings.from_env()
    settings = ServerSettings(listen=listen, indexes=indexes, model=model, api_key=api_key,
                              insecure=insecure, backend=backend, host=host,
                              embed_model=embed_model, timeout=timeout, mcp=not no_mcp,
                              threads=env.threads, cache_dir=env.cache_dir,
                              watch=watch_paths)
    run(settings, announce=say)


@click.command()
@click.option("--index", "-i", "names", multiple=True, envvar="RAGKIT_INDEX",
              metavar="NAME_OR_PATH", help="An index to serve (repeatable) [default: every "
              "index under RAGKIT_HOME].")
@click.option("--model", "-m", envvar="RAGKIT_CHAT_MODEL", default=DEFAULT_CHAT_MODEL,
              show_default=True, help="Chat model of the ask tool.")
@click.option("--no-ask", is_flag=True, help="Leave out the ask tool (the agent's own model "
              "answers from search and fetch).")
@backend_options
def mcp(names: tuple[str, ...], model: str, no_ask: bool, backend: str, host: str | None,
        embed_model: str | None, timeout: float) -> None:
    """Serve the indexes to AI assistants over MCP (stdio): search, fetch, list, ask.

    An MCP host (an agent or desktop assistant) launches this command and
    talks to it on stdin/stdout; status lines go to stderr.
    """
    try:
        from ..mcp_tools import Catalog, ProtocolStdout, build_server, chat_model_ready
    except ImportError as exc:
        raise RagkitError(f"the MCP server needs the mcp SDK ({exc}) — "
                          "pip install 'ragkit[mcp]'") from exc

    with ProtocolStdout() as stdout, Catalog.open(
            names, backend=backend, host=host, timeout=timeout, embed_model=embed_model,
            announce=say) as catalog:
        ready = not no_ask and chat_model_ready(model, backend=backend, host=host,
                                                timeout=timeout)
        if not no_ask and not ready:
            say(f"chat model '{model}' is not reachable: the ask tool is left out")
        server = build_server(catalog, chat_model=model if ready else None,
                              debug=debug_enabled())
        say(f"serving {', '.join(catalog.names)} over MCP on stdio")
        stdout.serve(server)
