"""Building the ASGI app and running it: ``create_app(settings)`` and ``serve(settings)``.

One FastAPI app carries the three faces (Ollama's ``/api``, OpenAI's ``/v1``, the
native ``/indexes``), behind :class:`~.middleware.Gate` (API key, body cap,
access log).  The MCP tools (:mod:`.mcp_face`) answer at ``/mcp`` behind the
same gate, and other ASGI apps mount beside the faces with ``mounts``.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, TextIO

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp

from ..version import __version__
from . import native_api, ollama_api, openai_api
from .config import ServerSettings
from .errors import ApiError, api_error, error_response, face_of
from .middleware import Gate
from .proxy import Upstream
from .rag import Catalog

if TYPE_CHECKING:
    from .mcp_face import McpFace

__all__ = ["create_app", "serve"]


def create_app(settings: ServerSettings, *, mounts: Mapping[str, ASGIApp] | None = None,
               log: TextIO | None = sys.stderr) -> Gate:
    """The server as an ASGI app (run it with any ASGI server, or :func:`serve`)."""
    catalog = Catalog(settings)
    upstream = Upstream(catalog.upstream, settings.timeout)
    mcp, mcp_off = _mcp_face(settings, catalog, lambda line: _note(log, line))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as running:
            if mcp is not None:  # the SDK's sessions live as long as the app
                await running.enter_async_context(mcp.running())
            yield
        await upstream.aclose()
        catalog.close()

    app = FastAPI(title="ragkit serve", version=__version__, lifespan=lifespan,
                  description="Retrieval and grounded answers over your indexes, speaking "
                  "Ollama's and OpenAI's APIs. Every index is a model named rag/<index>.")
    app.state.catalog = catalog
    app.state.upstream = upstream
    app.state.settings = settings
    app.state.mcp = mcp
    for face in (ollama_api, openai_api, native_api):
        app.include_router(face.router)
    if mcp is not None:
        app.router.routes.append(mcp.route)
    else:
        _explain_mcp_off(app, mcp_off)
    for path, mounted in (mounts or {}).items():
        app.mount(path, mounted)
    _handle_errors(app)
    return Gate(app, api_key=settings.api_key or None, max_body=settings.max_body,
                log=log if settings.access_log else None)


def _mcp_face(settings: ServerSettings, catalog: Catalog,
              say: Callable[[str], None]) -> tuple[McpFace | None, str]:
    """The MCP tools for ``/mcp``, or None and why they are off (said once on stderr)."""
    if not settings.mcp:
        return None, "ragkit serve was started with --no-mcp — restart it without"
    try:
        from . import mcp_face
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in ("mcp", "mcp_types"):
            raise
        say("/mcp is off: the mcp SDK is not installed — run `pip install 'ragkit[mcp]'` "
            "(or `make setup`) to serve the MCP tools there")
        return None, "the mcp SDK is not installed — pip install 'ragkit[mcp]'"
    face = mcp_face.mount(catalog, say)
    if face is None:
        return None, "there was no index to serve at start-up — ingest one, then restart"
    return face, ""


def _explain_mcp_off(app: FastAPI, why: str) -> None:
    """``/mcp`` answers 404 with the reason, for whoever configured an MCP host with it."""

    async def mcp_off() -> None:
        raise ApiError(404, f"the MCP tools are off on this server: {why}")

    app.add_api_route("/mcp", mcp_off, methods=["GET", "POST", "DELETE"],
                      include_in_schema=False)


def _note(log: TextIO | None, line: str) -> None:
    """A status line on ``log`` (stderr), as the access log writes them."""
    if log is not None:
        with contextlib.suppress(OSError, ValueError):
            print(f"ragkit: {line}", file=log, flush=True)


def _handle_errors(app: FastAPI) -> None:
    """Every error in the shape of the face that was called."""

    async def on_error(request: Request, exc: Exception) -> Response:
        return error_response(api_error(exc), face_of(request.url.path))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if isinstance(exc.__cause__, ApiError):  # FastAPI wraps what reading the body raised
            return error_response(exc.__cause__, face_of(request.url.path))
        text = {404: f"no such endpoint: {request.method} {request.url.path}",
                405: f"{request.method} is not allowed on {request.url.path}"}.get(
                    exc.status_code, str(exc.detail))
        return error_response(ApiError(exc.status_code, text), face_of(request.url.path))

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        face = face_of(request.url.path)
        return error_response(_invalid(exc, face), face)

    app.add_exception_handler(ApiError, on_error)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(Exception, on_error)


def _invalid(exc: RequestValidationError, face: str) -> ApiError:
    """A validation failure as one message naming the field (422 native, else 400)."""
    first: dict[str, Any] = (exc.errors() or [{}])[0]
    where = [str(p) for p in first.get("loc", ()) if p != "body"]
    field = ".".join(where) or None
    if first.get("type") == "json_invalid":
        return ApiError(400, f"invalid JSON in the request body: {first.get('msg')}")
    if not field:
        return ApiError(400, "the request body must be a JSON object, sent with "
                        "Content-Type: application/json")
    message = f"{field}: {first.get('msg', 'invalid')}" if field else str(first.get("msg"))
    return ApiError(422 if face == "native" else 400, message, "invalid_request", field)


def bind(settings: ServerSettings) -> socket.socket:
    """A listening socket on the settings' address (port 0: any free port)."""
    host, port = settings.address()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it every reply of more than one write waits 40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        from ..errors import UsageError

        raise UsageError(f"cannot listen on {settings.listen}: {exc.strerror} — choose another "
                         "address with --listen HOST:PORT") from None
    sock.listen(2048)  # clients may connect at once; uvicorn accepts once it runs
    return sock


def _one_thread_per_search() -> None:
    """Let each search run on one thread: the server's parallelism is its many requests.

    FAISS parallelizes a single search with OpenMP; beside other requests those
    threads only fight for the same cores (measured on a busy 2-core machine: a
    search of a small index took 12 ms with OpenMP's threads, 2 ms without).
    """
    try:
        import faiss

        faiss.omp_set_num_threads(1)
    except (ImportError, AttributeError):  # no FAISS build with OpenMP: nothing to tune
        pass


def serve(settings: ServerSettings, *, announce: Callable[[str], None] | None = None) -> None:
    """Run the server until Ctrl-C (or SIGTERM), then stop cleanly."""
    from .watching import watching

    sock = bind(settings)  # refuses before anything is loaded
    with contextlib.ExitStack() as held:
        held.callback(sock.close)
        held.enter_context(watching(settings, announce or (lambda line: None)))
        _serve(settings, sock, announce)


def _serve(settings: ServerSettings, sock: socket.socket,
           announce: Callable[[str], None] | None) -> None:
    """Run the app on ``sock`` until Ctrl-C (or SIGTERM)."""
    import uvicorn

    _one_thread_per_search()
    host, port = sock.getsockname()[:2]
    app = create_app(settings)
    shown = f"[{host}]" if ":" in host else host
    if announce:
        names = app.state.catalog.names()
        mcp = ", MCP at /mcp" if app.state.mcp is not None else ""
        announce(f"serving {len(names)} index(es) as rag/<index> on http://{shown}:{port} — "
                 f"Ollama API at /api, OpenAI at /v1{mcp}, docs at /docs; Ctrl-C stops")
    config = uvicorn.Config(app, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=3, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
