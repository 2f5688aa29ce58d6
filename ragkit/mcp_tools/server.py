"""The MCP server object: ragkit's tools registered on the official SDK's ``MCPServer``.

:func:`build_server` is transport-free: ``ragkit mcp`` runs it over stdio
(:mod:`ragkit.mcp_tools.stdio`), and an ASGI app can mount its
``streamable_http_app()``.  Tool errors: a :class:`~ragkit.errors.RagkitError`
becomes an ``isError`` result holding its one-line message; arguments that
break the input schema get one line too (:func:`one_line_errors`); a bug
becomes a one-line "internal error", its traceback logged only when
``debug`` is set.  The server goes on serving after each.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from ..errors import RagkitError
from ..version import __version__
from . import tools
from .catalog import Catalog
from .results import AskResult, Document, IndexList, SearchResults

__all__ = ["build_server", "one_line_errors"]

log = logging.getLogger("ragkit")
T = TypeVar("T")

INSTRUCTIONS = (
    "ragkit searches the user's own documents, indexed on this machine. Call search with "
    "what you need to know, then fetch an id to read that passage with its context. Quote "
    "the passages and cite each one's url (or title)."
)
_READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)

Query = Annotated[str, Field(description="What to look for, in words (a question or keywords).")]
K = Annotated[int, Field(description=f"How many passages, 1 to {tools.MAX_RESULTS}.",
                         json_schema_extra={"minimum": 1, "maximum": tools.MAX_RESULTS})]
IndexName = Annotated[str | None, Field(description="Search only this index (see "
                                        "list_indexes); default: every served index.")]
Paths = Annotated[list[str] | None, Field(description="Only files matching one of these globs: "
                                          "'*.pdf' matches file names, '/abs/dir/' a folder.")]
PassageId = Annotated[str, Field(description="An id from search, like 'notes:42'.")]
Question = Annotated[str, Field(description="The question, in words.")]


def build_server(catalog: Catalog, *, chat_model: str | None = None,
                 debug: bool = False) -> MCPServer:
    """An MCP server with search, fetch and list_indexes over ``catalog``.

    ``chat_model``: also offer ``ask``, answered by that model (only pass one
    that is reachable, see :func:`~ragkit.mcp_tools.catalog.chat_model_ready`).
    """
    server: MCPServer = MCPServer(
        "ragkit", title="ragkit: local documents", version=__version__,
        instructions=INSTRUCTIONS, log_level="WARNING", middleware=[one_line_errors])
    holds = _holdings(catalog)
    guard = _tool_errors(debug)

    def search(query: Query, k: K = 5, index: IndexName = None,
               paths: Paths = None) -> SearchResults:
        return tools.search(catalog, query, k, index, paths)

    def fetch(id: PassageId) -> Document:  # `id`: the name the convention uses
        return tools.fetch(catalog, id)

    def list_indexes() -> IndexList:
        return tools.list_indexes(catalog)

    server.add_tool(guard(search), title="Search the documents", annotations=_READ_ONLY,
                    description=(
                        f"Search the user's documents: {holds}. Returns the best passages "
                        "(embeddings and keywords combined), each with an id for fetch, a "
                        "title and a file:// url to cite."))
    server.add_tool(guard(fetch), title="Read a passage in context", annotations=_READ_ONLY,
                    description=("Read a passage found by search, with the passages before "
                                 "and after it in its document (enough to quote), its url, "
                                 "and metadata: path, page, heading, offsets."))
    server.add_tool(guard(list_indexes), title="List the indexes", annotations=_READ_ONLY,
                    description=(f"The document indexes served: {holds}; with each one's file "
                                 "and passage counts and embedding model."))
    if chat_model:
        def ask(question: Question, index: IndexName = None) -> AskResult:
            return tools.ask(catalog, question, index, model=chat_model)

        server.add_tool(guard(ask), title="Ask the local model", annotations=_READ_ONLY,
                        description=(
                            f"Answer a question from the documents ({holds}) with the local "
                            f"model {chat_model}, citing passages as [n]; 'sources' lists "
                            "them. Says so when the documents do not contain the answer. "
                            "A small local model: prefer search and fetch to reason yourself."))
    return server


def _holdings(catalog: Catalog) -> str:
    """What the indexes hold, for tool descriptions: "index 'notes' (12 files), ..."."""
    parts = []
    for name in catalog.names:
        info = catalog.info(name)
        files = "1 file" if info.documents == 1 else f"{info.documents} files"
        parts.append(f"index '{name}' ({files})")
    return ", ".join(parts)


def _tool_errors(debug: bool) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Wrap a tool so every failure reaches the model as one line, never as a crash."""
    def decorate(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            try:
                return fn(*args, **kwargs)
            except RagkitError as exc:
                raise ToolError(_first_line(str(exc))) from None
            except Exception as exc:  # a bug: say so in one line, keep serving
                if debug:
                    log.exception("tool %s failed", fn.__name__)
                raise ToolError(f"internal error: {type(exc).__name__}: "
                                f"{_first_line(str(exc))} — please report it; set "
                                "RAGKIT_DEBUG=1 to see the traceback") from None
        return wrapper
    return decorate


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else "(no message)"


async def one_line_errors(ctx: Any, call_next: Callable[[Any], Any]) -> Any:
    """Middleware: a tool error whose text spans lines (the SDK's argument check) gets one."""
    result = await call_next(ctx)
    if ctx.method == "tools/call" and isinstance(result, dict) and result.get("isError"):
        for block in result.get("content") or []:
            if block.get("type") == "text" and "\n" in block.get("text", ""):
                block["text"] = condense(block["text"])
    return result


_VALIDATION = re.compile(r"^(.*?: )?\d+ validation errors? for \S+$")
_PYDANTIC_TAIL = re.compile(r" \[type=.*$")


def condense(text: str) -> str:
    """A multi-line error as one line; pydantic's argument errors as ``argument: problem``.

    >>> condense("X: 1 validation error for a\\nk\\n  Input should be a valid integer [type=int]")
    "X: bad argument k: Input should be a valid integer — see the tool's input schema"
    """
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    match = _VALIDATION.match(lines[0]) if lines else None
    if not match:
        return " ".join(ln.strip() for ln in lines)
    problems, field = [], ""
    for line in lines[1:]:
        if not line.startswith(" "):
            field = line.strip()
        elif not line.startswith("    "):
            problems.append(f"{field}: {_PYDANTIC_TAIL.sub('', line.strip())}")
    return (f"{match.group(1) or ''}bad argument {'; '.join(problems)} — see the tool's "
            "input schema")
