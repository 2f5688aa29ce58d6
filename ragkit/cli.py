"""The ``ragkit`` command line: each command parses options, calls the library, prints.

Heavy imports (NumPy, FAISS, llama.cpp) happen inside the commands so that
``ragkit --help`` starts fast.  Every :class:`~ragkit.errors.RagkitError` is
turned into a one-line ``error: ...`` message and its exit status in
:class:`_Group`, the one place errors are converted.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from .errors import (
    BackendError,
    ModelNotFoundError,
    PromptTooLongError,
    RagkitError,
    UsageError,
)

if TYPE_CHECKING:
    from .index import Index

# Exit statuses beyond the error classes' own (documented in the README).
EXIT_PROBLEMS = 5  # ingest finished, but some files could not be read
EXIT_NOT_FOUND = 6  # ask: the documents do not contain the answer


class _Error(click.ClickException):
    def __init__(self, error: RagkitError) -> None:
        super().__init__(str(error))
        self.exit_code = error.exit_code  # type: ignore[misc]  # click types it as a ClassVar

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


class _Group(click.Group):
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
            if os.environ.get("RAGKIT_DEBUG"):
                raise
            click.echo(f"error: internal error: {type(exc).__name__}: {exc} — please report "
                       "it; set RAGKIT_DEBUG=1 to see the traceback", err=True)
            ctx.exit(1)


def _say(message: str) -> None:
    """A short status line on stderr (never mixed into stdout answers)."""
    click.echo(f"ragkit: {message}", err=True)


def _printable(path: str) -> str:
    r"""A path on one line: control characters (a newline in a file name) escaped.

    >>> _printable("odd\nname.txt")
    'odd\\nname.txt'
    """
    if path.isprintable():
        return path
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in path)


def index_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by every command that opens an index."""
    decorators = [
        click.option("--index", "-i", "index_name", default="default", show_default=True,
                     envvar="RAGKIT_INDEX", help="Index name (under RAGKIT_HOME, default "
                     "./indexes) or a path to an index folder."),
        click.option("--backend", type=click.Choice(["auto", "ollama", "embedded"]),
                     default="auto", show_default=True, envvar="RAGKIT_BACKEND",
                     help="Who runs the models: Ollama, the embedded engine, or auto "
                     "(Ollama when it has the model, else embedded)."),
        click.option("--host", envvar="OLLAMA_HOST", default=None,
                     help="Ollama server [default: $OLLAMA_HOST or http://127.0.0.1:11434]."),
        click.option("--embed-model", envvar="RAGKIT_EMBED_MODEL", default=None,
                     help="Embedding model [default: the index's, or all-minilm]."),
        click.option("--timeout", type=float, default=300.0, show_default=True,
                     envvar="RAGKIT_TIMEOUT", help="Seconds to wait for a model reply."),
    ]
    for decorate in reversed(decorators):
        func = decorate(func)
    return func


def _open_index(opts: dict[str, Any], *, create: bool = False, **extra: Any) -> Index:
    from .index import Index

    return Index.open(
        opts["index_name"], backend=opts["backend"], host=opts["host"],
        timeout=opts["timeout"], embed_model=opts["embed_model"], create=create,
        announce=_say, **extra,
    )


def _with_index_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Collect the shared options into one ``opts`` dict argument."""
    keys = ("index_name", "backend", "host", "embed_model", "timeout")

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        opts = {k: kwargs.pop(k) for k in keys}
        return func(opts, **kwargs)

    return index_options(wrapper)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ragkit")
def cli() -> None:
    """Index a folder of documents and answer questions about it, citing sources.

    Models run on a local Ollama server, or on the embedded engine when no
    Ollama is running. Quick start:

    \b
      ragkit ingest corpora/guide
      ragkit ask "How do I rebuild an index?"
    """
    import logging

    logging.basicConfig(format="ragkit: %(message)s", level=logging.WARNING)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--rebuild", is_flag=True, help="Start over instead of updating incrementally.")
@click.option("--follow-symlinks", is_flag=True, help="Follow links that leave the folder.")
@click.option("--chunk-size", type=click.IntRange(min=16), default=None,
              help="Target chunk size in approximate tokens [default: 250, or the index's].")
@click.option("--chunk-overlap", type=click.IntRange(min=0), default=None,
              help="Overlap between chunks in approximate tokens [default: 38].")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=64, show_default=True,
              help="Chunks per embedding request.")
@click.option("--parallel", type=click.IntRange(1, 64), default=None,
              help="Embedding requests in flight [default: $RAGKIT_PARALLEL, else "
              "$OLLAMA_NUM_PARALLEL + 1, else 2].")
@_with_index_options
def ingest(opts: dict[str, Any], paths: tuple[str, ...], rebuild: bool, follow_symlinks: bool,
           chunk_size: int | None, chunk_overlap: int | None, batch_size: int,
           parallel: int | None) -> None:
    """Index the files under PATHS (re-runs only redo what changed)."""
    from .chunking import ChunkerSettings
    from .progress import ProgressLine

    chunker = None
    if chunk_size is not None or chunk_overlap is not None:
        chunker = _chunker(chunk_size, chunk_overlap, ChunkerSettings)
    with (
        _open_index(opts, create=True, rebuild=rebuild, chunker=chunker) as index,
        ProgressLine() as bar,
    ):
        report = index.ingest(paths, rebuild=rebuild, follow_symlinks=follow_symlinks,
                              batch_size=batch_size, progress=bar, parallel=parallel)
    for problem in report.skipped:
        _say(f"skipped {_printable(problem.path)}: {problem.reason}")
    for problem in report.failed:
        _say(f"failed {_printable(problem.path)}: {problem.reason}")
    click.echo(f"index '{index.name}': {report.summary()}")
    if report.failed:
        sys.exit(EXIT_PROBLEMS)


def _chunker(size: int | None, overlap: int | None, settings: Any) -> Any:
    defaults = settings()
    try:
        return settings(size=size or defaults.size,
                        overlap=defaults.overlap if overlap is None else overlap)
    except ValueError as exc:
        raise UsageError(f"bad chunk settings: {exc}") from exc


RETRIEVAL_HELP = ("How to find chunks: hybrid (embeddings + BM25 keywords, fused), vector "
                  "or keyword.")


def filter_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--path`` and ``--diversity``, shared by search, ask and chat."""
    for decorate in reversed([
        click.option("--path", "paths", multiple=True, metavar="GLOB",
                     help="Only chunks of files matching GLOB (repeatable). '*.pdf' matches "
                     "file names; 'docs/' or 'docs/*.md' match paths from the current folder."),
        click.option("--diversity", type=click.FloatRange(0, 1), default=0.0,
                     show_default=True, help="0..1: trade relevance for variety (MMR) so the "
                     "top chunks are not near-copies of one passage."),
    ]):
        func = decorate(func)
    return func


@cli.command()
@click.argument("query")
@click.option("-k", "k", type=int, default=5, show_default=True, help="How many chunks.")
@click.option("--retrieval", "--mode", "retrieval", default="hybrid", show_default=True,
              type=click.Choice(["hybrid", "vector", "keyword"]), help=RETRIEVAL_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with scores) for scripts.")
@filter_options
@_with_index_options
def search(opts: dict[str, Any], query: str, k: int, retrieval: str, as_json: bool,
           paths: tuple[str, ...], diversity: float) -> None:
    """Show the chunks that best match QUERY.

    Each line shows the cosine similarity of the chunk to the query; --json
    adds the ranking score of the chosen retrieval mode.
    """
    with _open_index(opts) as index:
        hits = index.search(query, k, mode=retrieval, paths=paths, diversity=diversity)
        empty = len(index) == 0
    if as_json:
        payload = {"query": query, "retrieval": retrieval, "hits": [h.as_dict() for h in hits]}
        click.echo(json.dumps(payload,
                              ensure_ascii=False, indent=2))
        return
    if not hits:
        click.echo("no matches (the index is empty)" if empty else "no matches")
    for hit in hits:
        shown = hit.cosine if hit.cosine is not None else hit.score
        click.echo(f"{hit.rank}. {shown:.3f}  {hit.citation}")
        click.echo(f"   {_snippet(hit.text)}")


def _snippet(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
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


def ask_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ``ask`` and ``chat``."""
    for decorate in reversed([
        click.option("-k", "k", type=int, default=4, show_default=True,
                     help="How many chunks to give the model."),
        click.option("--model", "-m", envvar="RAGKIT_CHAT_MODEL", default="smollm2:135m",
                     show_default=True, help="Chat model."),
        click.option("--retrieval", default="hybrid", show_default=True,
                     type=click.Choice(["hybrid", "vector", "keyword"]), help=RETRIEVAL_HELP),
        click.option("--min-score", type=float, default=None, help="Answer only when the "
                     "retrieved chunks reach this relevance: best cosine + 0.3 x share of the "
                     "question's words in one chunk [default: calibrated per embedding model; "
                     "0.530 for all-minilm]."),
        click.option("--force", is_flag=True,
                     help="Answer even when no chunk looks relevant."),
        click.option("--answer", "answer_mode", envvar="RAGKIT_ANSWER", default="auto",
                     show_default=True, type=click.Choice(["auto", "extractive", "generate"]),
                     help="Quote the passages' best sentences (extractive), have the chat "
                     "model write (generate), or auto: quote when the model is the embedded "
                     "135M demo model or none can be reached."),
        click.option("--option", "-o", "option_pairs", multiple=True, metavar="KEY=VALUE",
                     help="Model option, e.g. -o temperature=0 -o num_ctx=8192 (repeatable)."),
    ]):
        func = decorate(func)
    return filter_options(func)


@cli.command()
@click.argument("question")
@click.option("--mode", type=click.Choice(["chat", "generate"]), default="chat",
              show_default=True, help="Context in a /api/chat system message, or a "
              "hand-built /api/generate prompt.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")
@ask_options
@_with_index_options
def ask(opts: dict[str, Any], question: str, mode: str, as_json: bool, k: int, model: str,
        retrieval: str, min_score: float | None, force: bool, answer_mode: str,
        option_pairs: tuple[str, ...], paths: tuple[str, ...], diversity: float) -> None:
    """Answer QUESTION from the indexed documents, with [n] citations.

    The answer quotes the documents or is written by the chat model (--answer).
    When no chunk is relevant enough, says "The documents do not contain the
    answer." without asking the model, and exits with status 6.
    """
    options = _parse_options(option_pairs)
    with _open_index(opts) as index:
        stream = index.ask_stream(question, k=k, mode=mode, model=model, options=options,
                                  retrieval=retrieval, min_score=min_score, force=force,
                                  paths=paths, diversity=diversity, answer=answer_mode)
        for line in (stream.notice, stream.note):  # how it answers; what was left out
            if line:
                _say(line)
        if as_json:
            for _ in stream:  # the answer is printed whole, below
                pass
        else:
            _echo_stream(stream)
    answer = stream.answer
    if as_json:
        click.echo(json.dumps(answer.as_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo()
        _print_sources(answer)
    if not answer.found:
        sys.exit(EXIT_NOT_FOUND)


def _echo_stream(deltas: Iterable[str]) -> None:
    """Print text deltas as they arrive; a failure mid-answer starts its message on a new line."""
    shown = False
    try:
        for delta in deltas:
            click.echo(delta, nl=False)
            shown = shown or bool(delta)
    except RagkitError:
        if shown:
            click.echo()
        raise


def _print_sources(answer: Any) -> None:
    """The grounding check's verdict on a written answer, then the sources."""
    if not answer.sources:
        return
    listed = answer.cited_sources or list(enumerate(answer.sources, 1))
    if answer.found and answer.grounded is False:  # nothing it says is in the passages
        click.echo("\nThe model's answer could not be found in the sources. Retrieved:")
        listed = list(enumerate(answer.sources, 1))
    else:
        if answer.found and answer.unsupported:
            click.echo("\nNot found in the sources (unverified):")
            for check in answer.unsupported:
                click.echo(f"- {' '.join(check.text.split())}")
        click.echo(f"\n{_sources_header(answer)}")
    for n, hit in listed:
        click.echo(f"[{n}] {hit.location}")


def _sources_header(answer: Any) -> str:
    if answer.cited_by == "ragkit" and answer.answer_mode == "generated":
        return "Sources (matched by ragkit; the model cited none itself):"
    return "Sources:" if answer.cited else "Retrieved (none cited):"


@cli.command()
@ask_options
@_with_index_options
def chat(opts: dict[str, Any], k: int, model: str, retrieval: str, min_score: float | None,
         force: bool, answer_mode: str, option_pairs: tuple[str, ...], paths: tuple[str, ...],
         diversity: float) -> None:
    """Ask questions in a loop; history is kept. Ctrl-D exits."""
    from .conversation import Conversation

    with _open_index(opts) as index:
        session = Conversation(index, k=k, model=model, retrieval=retrieval,
                               options=_parse_options(option_pairs),
                               min_score=min_score, force=force, paths=paths,
                               diversity=diversity, answer=answer_mode)
        told: set[str] = set()  # notices are said once a session
        click.echo(f"Chatting with index '{index.name}'. Ctrl-D to quit.", err=True)
        while (question := _read_question()) is not None:
            if not question.strip():
                continue
            try:
                _echo_stream(session.ask_stream(question))
            except PromptTooLongError as exc:  # a shorter question may fit
                click.echo(f"error: {exc}", err=True)
                continue
            except (ModelNotFoundError, UsageError):
                raise  # asking again would fail the same way
            except BackendError as exc:  # the session, and its history, go on
                click.echo(f"error: {exc} — the question was not answered; ask again", err=True)
                continue
            click.echo()
            if session.last:
                if session.last.note:
                    _say(session.last.note)
                if session.last.notice and session.last.notice not in told:
                    told.add(session.last.notice)
                    _say(session.last.notice)
                _print_sources(session.last)


def _read_question() -> str | None:
    try:
        return input("\n> " if sys.stdin.isatty() else "")
    except EOFError:
        return None


from .cli_admin import doctor, evaluate, indexes, models  # noqa: E402 - needs the helpers above

cli.add_command(evaluate)
cli.add_command(indexes)
cli.add_command(models)
cli.add_command(doctor)
cli.add_command(__import__("ragkit.cli_bench", fromlist=["bench"]).bench)


def main() -> None:
    """Entry point of the ``ragkit`` script."""
    cli(prog_name="ragkit")
