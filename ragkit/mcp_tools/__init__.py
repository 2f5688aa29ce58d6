"""ragkit's indexes as a Model Context Protocol server, for agents and desktop assistants.

Built on the official ``mcp`` SDK (the ``mcp`` extra: ``pip install 'ragkit[mcp]'``)::

    from ragkit.mcp_tools import Catalog, ProtocolStdout, build_server

    with ProtocolStdout() as stdout, Catalog.open(["notes"]) as catalog:
        stdout.serve(build_server(catalog))          # what `ragkit mcp --index notes` does

An ASGI app mounts the same tools as streamable HTTP with
``build_server(catalog).streamable_http_app()`` (see the README, "MCP server").

* :mod:`~ragkit.mcp_tools.catalog`: the served indexes, one caller at a time each;
* :mod:`~ragkit.mcp_tools.tools`: search, fetch, list_indexes and ask, without MCP;
* :mod:`~ragkit.mcp_tools.results`: their typed results (the output schemas);
* :mod:`~ragkit.mcp_tools.server`: the tools registered on an ``MCPServer``;
* :mod:`~ragkit.mcp_tools.stdio`: serving over stdio with a clean stdout.
"""

from __future__ import annotations

from .catalog import Catalog, IndexInfo, chat_model_ready
from .server import build_server
from .stdio import ProtocolStdout

__all__ = ["Catalog", "IndexInfo", "ProtocolStdout", "build_server", "chat_model_ready"]
