"""The ``ragkit`` command line: each command parses options, calls the library, prints.

Heavy imports (NumPy, FAISS, llama.cpp) happen inside the commands so that
``ragkit --help`` starts fast.  Every :class:`~ragkit.errors.RagkitError` is
turned into a one-line ``error: ...`` message and its exit status in
:class:`~ragkit.cli.options.ErrorGroup`, the one place errors are converted.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any

import click

from ..errors import (
    BackendError,
    ModelNotFoundError,
    NothingIndexedError,
    PromptTooLongError,
    RagkitError,
    UsageError,
)
from ..models import DEFAULT_CHAT_MODEL, DEFAULT_EMBED_MODEL, relevance_threshold
from ..queries import ANSWER_MODES, PROMPT_MODES, RETRIEVAL_MODES, AskOptions
from ..version import __version__
from .admin import doctor, evaluate, indexes, models
from .bench import bench
from .options import (
    ErrorGroup,
    chunk_settings,
    open_index,
    parse_options,
    printable,
    say,
    with_index_options,
)
from .serving import mcp, serve
from .terminal import Sanitizer, clean, one_line
from .watching import watch

# Exit statuses beyond the error classes' own (documented in the README).
EXIT_PROBLEMS = 5  # ingest finished, but some files could not be read
EXIT_NOT_FOUND = 6  # ask: the documents do not contain the answer


@click.group(cls=ErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--shard", metavar="I/N", default=None,
              help="Index only shard I of N of the files (by a hash of their path below "
              "PATHS), and delete only that shard's missing files: N runs, on N machines, "
              "fill one index together.")
@click.option("--store", "store", default=None, metavar="URI",
              help="Where a new index is kept: local (SQLite + FAISS, the default), "
              "milvus://HOST:PORT[/DB], or a Milvus Lite file x.db. Remembered by the index.")
@with_index_options
def ingest(opts: dict[str, Any], paths: tuple[str, ...], rebuild: bool, follow_symlinks: bool,
           chunk_size: int | None, chunk_overlap: int | None, batch_size: int,
           parallel: int | None, shard: str | None, store: str | None) -> None:
    """Index the files under PATHS (re-runs only redo what changed).

    Reads text, markdown, reStructuredText, HTML, PDF and common source and
    config files by their extension, and any other file whose content is text
    (README, LICENSE, Apache-2.0); images, archives and other binaries are
    skipped.
    """
    from ..chunking.units import ChunkerSettings
    from ..ingest.shards import Shard
    from .progress import ProgressLine

    part = Shard.parse(shard) if shard is not None else None  # a bad value stops here, exit 2
    chunker = None
    if chunk_size is not None or chunk_overlap is not None:
        chunker = chunk_settings(chunk_size, chunk_overlap, ChunkerSettings)
    with (
        open_index(opts, create=True, rebuild=rebuild, chunker=chunker, store=store) as index,
        ProgressLine() as bar,
    ):
        try:
            report = index.ingest(paths, rebuild=rebuild, follow_symlinks=follow_symlinks,
                                  batch_size=batch_size, progress=bar, parallel=parallel,
                                  shard=part)
        except NothingIndexedError as exc:
            _say_problems(exc.report)  # why nothing was indexed, before the error line
            raise
    _say_problems(report)
    click.echo(f"index '{one_line(index.name)}': {clean(report.summary())}")
    if report.failed:
        sys.exit(EXIT_PROBLEMS)


def _say_problems(report: Any) -> None:
    """One line per file left out (skipped) or that could not be read (failed)."""
    for problem in report.skipped:
        say(f"skipped {printable(problem.path)}: {problem.reason}")
    for problem in report.failed:
        say(f"failed {printable(problem.path)}: {problem.reason}")


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
              type=click.Choice(RETRIEVAL_MODES), help=RETRIEVAL_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with scores) for scripts.")
@filter_options
@with_index_options
def search(opts: dict[str, Any], query: str, k: int, retrieval: str, as_json: bool,
           paths: tuple[str, ...], diversity: float) -> None:
    """Show the chunks that best match QUERY.

    Each line shows the score that ranks the hits (hybrid: embeddings and
    keywords fused, 0..1; keyword: BM25) and the cosine similarity of the
    chunk to the query; in vector mode the two are the same. --diversity
    reorders the hits for variety, so its scores need not decrease.
    """
    with open_index(opts) as index:
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
        click.echo(f"{hit.rank}. {_scores(hit, retrieval)}  {one_line(hit.citation)}")
        click.echo(f"   {_snippet(clean(hit.text))}")


def _scores(hit: Any, retrieval: str) -> str:
    """The ranking score and the cosine, labelled (one of them when they are the same).

    >>> from ragkit.retrieval import Hit
    >>> _scores(Hit(1, 0.912, 1, "/a", "a", None, "", "t", cosine=0.4021), "hybrid")
    'score 0.912  cosine 0.402'
    >>> _scores(Hit(1, 0.5, 1, "/a", "a", None, "", "t", cosine=0.5), "vector")
    'cosine 0.500'
    """
    if retrieval == "vector" and hit.cosine is not None:
        return f"cosine {hit.cosine:.3f}"
    cosine = f"  cosine {hit.cosine:.3f}" if hit.cosine is not None else ""
    return f"score {hit.score:.3f}{cosine}"


def _snippet(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def ask_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ``ask`` and ``chat``."""
    for decorate in reversed([
        click.option("-k", "k", type=int, default=4, show_default=True,
                     help="How many chunks to give the model."),
        click.option("--model", "-m", envvar="RAGKIT_CHAT_MODEL", default=DEFAULT_CHAT_MODEL,
                     show_default=True, help="Chat model."),
        click.option("--retrieval", default="hybrid", show_default=True,
                     type=click.Choice(RETRIEVAL_MODES), help=RETRIEVAL_HELP),
        click.option("--min-score", type=float, default=None, help="Answer only when the "
                     "retrieved chunks reach this relevance: best cosine + 0.3 x share of the "
                     "question's words in one chunk [default: calibrated per embedding model; "
                     f"{relevance_threshold(DEFAULT_EMBED_MODEL):.3f} for {DEFAULT_EMBED_MODEL}]."),
        click.option("--force", is_flag=True,
                     help="Answer even when no chunk looks relevant."),
        click.option("--answer", "answer_mode", envvar="RAGKIT_ANSWER", default="auto",
                     show_default=True, type=click.Choice(ANSWER_MODES),
                     help="Quote the passages' best sentences (extractive), have the chat "
                     "model write (generate), or auto: quote when the model is the embedded "
                     "135M demo model or none can be reached."),
        click.option("--option", "-o", "option_pairs", multiple=True, metavar="KEY=VALUE",
                     help="Model option, e.g. -o temperature=0 -o num_ctx=8192 (repeatable)."),
    ]):
        func = decorate(func)
    return filter_options(func)


def with_ask_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`ask_options`, collected into one :class:`~ragkit.queries.AskOptions` argument."""
    keys = ("k", "model", "retrieval", "min_score", "force", "answer_mode", "option_pairs",
            "paths", "diversity")

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        given = {key: kwargs.pop(key) for key in keys}
        given["options"] = parse_options(given.pop("option_pairs"))
        given["answer"] = given.pop("answer_mode")
        return func(ask=AskOptions(**given), **kwargs)

    return ask_options(wrapper)


@cli.command()
@click.argument("question")
@click.option("--mode", type=click.Choice(PROMPT_MODES), default="chat",
              show_default=True, help="Context in a /api/chat system message, or a "
              "hand-built /api/generate prompt.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")
@with_ask_options
@with_index_options
def ask(opts: dict[str, Any], question: str, mode: str, as_json: bool, ask: AskOptions) -> None:
    """Answer QUESTION from the indexed documents, with [n] citations.

    The answer quotes the documents or is written by the chat model (--answer).
    When no chunk is relevant enough, says "The documents do not contain the
    answer." without asking the model, and exits with status 6.
    """
    with open_index(opts) as index:
        stream = index.ask_stream(question, ask.with_(mode=mode))
        for line in (stream.notice, stream.note):  # how it answers; what was left out
            if line:
                say(line)
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
    """Print text deltas as they arrive; a failure mid-answer starts its message on a new line.

    Control sequences are removed even when one arrives split across deltas.
    """
    shown, sanitizer = False, Sanitizer()
    try:
        for delta in map(sanitizer.feed, deltas):
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
                click.echo(f"- {clean(' '.join(check.text.split()))}")
        click.echo(f"\n{_sources_header(answer)}")
    for n, hit in listed:
        click.echo(f"[{n}] {one_line(hit.location)}")


def _sources_header(answer: Any) -> str:
    if answer.cited_by == "ragkit" and answer.answer_mode == "generated":
        return "Sources (matched by ragkit; the model cited none itself):"
    return "Sources:" if answer.cited else "Retrieved (none cited):"


@cli.command()
@with_ask_options
@with_index_options
def chat(opts: dict[str, Any], ask: AskOptions) -> None:
    """Ask questions in a loop; history is kept. Ctrl-D exits."""
    from ..conversation import Conversation

    with open_index(opts) as index:
        session = Conversation(index, ask)
        told: set[str] = set()  # notices are said once a session
        click.echo(f"Chatting with index '{one_line(index.name)}'. Ctrl-D to quit.", err=True)
        while (question := _read_question()) is not None:
            if not question.strip():
                continue
            try:
                _echo_stream(session.ask_stream(question))
            except PromptTooLongError as exc:  # a shorter question may fit
                click.echo(f"error: {clean(str(exc))}", err=True)
                continue
            except (ModelNotFoundError, UsageError):
                raise  # asking again would fail the same way
            except BackendError as exc:  # the session, and its history, go on
                click.echo(clean(f"error: {exc} — the question was not answered; ask again"),
                           err=True)
                continue
            click.echo()
            if session.last:
                if session.last.note:
                    say(session.last.note)
                if session.last.notice and session.last.notice not in told:
                    told.add(session.last.notice)
                    say(session.last.notice)
                _print_sources(session.last)


def _read_question() -> str | None:
    interactive = sys.stdin.isatty()
    try:
        question = input("\n> " if interactive else "")
    except EOFError:
        return None
    if not interactive and question.strip():  # piped: else the transcript has answers only
        click.echo(f"\n> {question}")
    return question


cli.add_command(evaluate)
cli.add_command(indexes)
cli.add_command(models)
cli.add_command(doctor)
cli.add_command(bench)
cli.add_command(watch)
cli.add_command(serve)
cli.add_command(mcp)


def main() -> None:
    """Entry point of the ``ragkit`` script."""
    cli(prog_name="ragkit")
