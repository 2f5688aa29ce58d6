"""What the commands share: the error-converting group, status lines, index options.

Every :class:`~ragkit.errors.RagkitError` is turned into a one-line
``error: ...`` message and its exit status in :class:`ErrorGroup`, the one
place errors are converted.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ..errors import RagkitError, UsageError
from ..loading.paths import shown
from ..models import DEFAULT_EMBED_MODEL
from ..settings import Settings, debug_enabled
from .terminal import clean, one_line

if TYPE_CHECKING:
    from ..index import Index

__all__ = ["ErrorGroup", "backend_options", "chunk_settings", "index_options", "open_index",
           "parse_options", "printable", "say", "with_index_options"]


class _Error(click.ClickException):
    def __init__(self, error: RagkitError) -> None:
        super().__init__(str(error))
        self.exit_code = error.exit_code  # type: ignore[misc]  # click types it as a ClassVar

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {clean(self.message)}", err=True)


class ErrorGroup(click.Group):
    """A group that converts ragkit's errors and Ctrl-C into one-line messages."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RagkitError as exc:
            raise _Error(exc) from exc
        except KeyboardInterrupt:
            kept = " — whatever was committed is kept" if ctx.invoked_subcommand == "ingest" else ""
            click.echo(f"\nragkit: interrupted{kept}", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # a bug: say so in one line, keep the trace on request
            if debug_enabled():
                raise
            click.echo(clean(f"error: internal error: {type(exc).__name__}: {exc} — please "
                             "report it; set RAGKIT_DEBUG=1 to see the traceback"), err=True)
            ctx.exit(1)


def say(message: str) -> None:
    """A short status line on stderr (never mixed into stdout answers)."""
    click.echo(f"ragkit: {clean(message)}", err=True)


def printable(path: str) -> str:
    r"""A path on one line: control characters (a newline in a file name) escaped.

    >>> printable("odd\nname.txt")
    'odd\\nname.txt'
    """
    return one_line(shown(path))  # undecodable bytes of a file name as \xNN


def index_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by every command that opens an index."""
    return click.option(
        "--index", "-i", "index_name", default="default", show_default=True,
        envvar="RAGKIT_INDEX", help="Index name, looked up in the index home "
        "($RAGKIT_HOME; else ./indexes inside a ragkit checkout or where it holds "
        "indexes; else ~/.local/share/ragkit/indexes), or a path to an index folder.")(
            backend_options(func))


def backend_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--backend, --host, --embed-model and --timeout: who runs the models, and how."""
    decorators = [
        click.option("--backend", type=click.Choice(["auto", "ollama", "embedded"]),
                     default="auto", show_default=True, envvar="RAGKIT_BACKEND",
                     help="Who runs the models: Ollama, the embedded engine, or auto "
                     "(Ollama when it has the model, else embedded)."),
        click.option("--host", envvar="OLLAMA_HOST", multiple=True, callback=_host_list,
                     help="Ollama server; repeat it (or give a comma-separated list) to "
                     "spread an ingest over several; queries use the first that answers "
                     "[default: $OLLAMA_HOST or http://127.0.0.1:11434]."),
        click.option("--embed-model", envvar="RAGKIT_EMBED_MODEL", default=None,
                     help=f"Embedding model [default: the index's, or {DEFAULT_EMBED_MODEL}]."),
        click.option("--timeout", type=float, default=300.0, show_default=True,
                     envvar="RAGKIT_TIMEOUT", help="Seconds to wait for a model reply."),
    ]
    for decorate in reversed(decorators):
        func = decorate(func)
    return func


def _host_list(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> str | None:
    """Repeated --host values as one comma-separated list, the form OLLAMA_HOST takes."""
    return ",".join(value) or None


def open_index(opts: dict[str, Any], *, create: bool = False, **extra: Any) -> Index:
    """The index the shared options name, opened with their backend and the settings."""
    from ..index import Index

    return Index.open(
        opts["index_name"], backend=opts["backend"], host=opts["host"],
        timeout=opts["timeout"], embed_model=opts["embed_model"], create=create,
        announce=say, settings=Settings.from_env(), **extra,
    )


def with_index_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Collect the shared options into one ``opts`` dict argument."""
    keys = ("index_name", "backend", "host", "embed_model", "timeout")

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        opts = {k: kwargs.pop(k) for k in keys}
        return func(opts, **kwargs)

    return index_options(wrapper)


def chunk_settings(size: int | None, overlap: int | None, settings: Any) -> Any:
    """``settings`` (the ChunkerSettings class) built from --chunk-size/--chunk-overlap."""
    defaults = settings()
    try:
        return settings(size=size or defaults.size,
                        overlap=defaults.overlap if overlap is None else overlap)
    except ValueError as exc:
        raise UsageError(f"bad chunk settings: {exc}") from exc


def parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs into Ollama options; values are JSON where they parse as JSON."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"option '{pair}' must look like key=value (e.g. -o temperature=0)")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        if key.strip() == "stop" and not isinstance(value, list):
            value = [str(value)]
        options[key.strip()] = value
    return options
