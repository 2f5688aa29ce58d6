"""The MCP tools at ``/mcp``: what ``ragkit mcp`` offers on stdio, as streamable HTTP.

The tools are :mod:`ragkit.mcp_tools`' (the ``mcp`` extra): search, fetch,
list_indexes, and ask when the chat model answers at start-up.  They serve the
indexes the server offers at start-up.  Their route sits among the other
faces' routes, so the same :class:`~.middleware.Gate` guards it (API key,
body cap, access log).  The tools keep their own open copy of each index,
because their catalog hands an index to one caller at a time under locks of
its own; the copies share the server's backend, so the embedded engine is
still entered by one thread at a time.

What the SDK needs from its host: ``streamable_http_app()`` creates the
session manager, and the host's lifespan must run it (:meth:`McpFace.running`),
since the lifespan of the SDK's own app never runs here.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.routing import BaseRoute, Route

from ..errors import RagkitError
from ..index import Index
from ..mcp_tools import Catalog as ToolCatalog
from ..mcp_tools import build_server, chat_model_ready
from ..settings import debug_enabled
from .config import parse_listen
from .rag import Catalog

__all__ = ["PATH", "McpFace", "mount", "transport_security"]

PATH = "/mcp"
#: The names a loopback server is reached by (as the SDK itself allows them).
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
#: Longest wait for the start-up probe of the chat model: a hung Ollama must not hold
#: up serving everything else.
PROBE_TIMEOUT = 10.0


@dataclass
class McpFace:
    """The MCP server, the indexes its tools use, and the route that reaches it."""

    server: MCPServer
    tools: ToolCatalog
    route: BaseRoute

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the SDK's session manager while the app runs; then close the tools' indexes."""
        try:
            async with self.server.session_manager.run():
                yield
        finally:
            self.tools.close()


def mount(catalog: Catalog, say: Callable[[str], None], *, debug: bool | None = None) -> \
        McpFace | None:
    """The MCP tools over ``catalog``'s indexes, or None (said on stderr) when there are none."""
    tools = _open(catalog, say)
    if tools is None:
        return None
    settings = catalog.settings
    if debug is None:
        debug = debug_enabled()
    try:
        model = catalog.chat_model
        ready = chat_model_ready(model, backend=settings.backend, host=catalog.upstream,
                                 timeout=min(settings.timeout, PROBE_TIMEOUT))
        if not ready:
            say(f"chat model '{model}' is not reachable: /mcp leaves out the ask tool")
        server = build_server(tools, chat_model=model if ready else None, debug=debug)
        app = server.streamable_http_app(streamable_http_path=PATH,
                                         transport_security=transport_security(settings.listen))
        route = next(r for r in app.routes if isinstance(r, Route) and r.path == PATH)
    except BaseException:
        tools.close()
        raise
    return McpFace(server, tools, route)


def _open(catalog: Catalog, say: Callable[[str], None]) -> ToolCatalog | None:
    """The served indexes, opened for the tools over the server's backend."""
    settings = catalog.settings

    def opener(path: str | Path) -> Index:
        return Index.open(path, backend=catalog.backend, timeout=settings.timeout,
                          embed_model=settings.embed_model)

    opened: list[Index] = []
    try:
        for name in catalog.names():
            try:
                opened.append(opener(catalog.path(name)))
            except RagkitError as exc:  # damaged: the other faces report it per request
                say(f"/mcp leaves out index '{name}': {exc}")
        if not opened:
            say("/mcp is off: there is no index to serve — create one with `ragkit ingest "
                "PATH`, then restart ragkit serve")
            return None
        return ToolCatalog(opened, reopen=opener)
    except BaseException:
        for index in opened:
            index.close()
        raise


def transport_security(listen: str) -> TransportSecuritySettings:
    """Which ``Host`` and ``Origin`` headers ``/mcp`` accepts (DNS-rebinding protection).

    A web page can make its own domain resolve to this machine and then call the
    server from the user's browser; its requests still name that domain in
    ``Host``.  So ``/mcp`` accepts only the names the server is reached by: the
    loopback names and the address it listens on.  On every interface at once
    (``0.0.0.0``, ``::``) it is reached by names it cannot know, so the check is
    off there, and the API key that such an address requires does the guarding.

    >>> transport_security("0.0.0.0:8000").enable_dns_rebinding_protection
    False
    >>> transport_security("10.0.0.5:8000").allowed_hosts[-2:]
    ['10.0.0.5', '10.0.0.5:*']
    """
    host, _ = parse_listen(listen)
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_unspecified:
            return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    shown = f"[{host}]" if ":" in host else host
    names = list(LOOPBACK_NAMES) + ([shown] if shown not in LOOPBACK_NAMES else [])
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[form for name in names for form in (name, f"{name}:*")],
        allowed_origins=[f"{scheme}://{name}{port}" for name in names
                         for scheme in ("http", "https") for port in ("", ":*")])
