"""Housekeeping commands: ``ragkit indexes``, ``ragkit models`` and ``ragkit doctor``."""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..errors import UsageError
from ..models import DEFAULT_CHAT_MODEL, DEFAULT_EMBED_MODEL
from ..queries import ANSWER_MODES, check_retrieval
from ..settings import Settings
from .eval_index import eval_index_options
from .options import chunk_settings, open_index, printable, say, with_index_options
from .terminal import clean, one_line


@click.group()
def indexes() -> None:
    """List, inspect and delete indexes."""


@indexes.command("list")
def indexes_list() -> None:
    """List the indexes in the index home (RAGKIT_HOME; see README, Configuration)."""
    from ..home import index_home
    from ..inventory import list_indexes

    home = index_home()
    found = list_indexes(home)
    if not found:
        click.echo(f"no indexes in {one_line(str(home))} — create one with "
                   "`ragkit ingest PATH`")
    for entry in found:
        name = printable(entry.name)  # a name with a newline must not look like two indexes
        model = {
            "newer": "made by a newer ragkit — upgrade ragkit to use it",
            "damaged": f"damaged — rebuild with `ragkit ingest PATH --index {name} --rebuild`",
        }.get(entry.state) or printable(entry.embed_model or "")
        click.echo(f"{name}\t{model}\t{_megabytes(entry.size)}")


@indexes.command("info")
@click.argument("name", required=False)
@with_index_options
@click.pass_context
def indexes_info(ctx: click.Context, opts: dict[str, Any], name: str | None) -> None:
    """Show the manifest, files and chunk count of the index NAME (or --index)."""
    if name is not None:
        given = ctx.get_parameter_source("index_name") == click.core.ParameterSource.COMMANDLINE
        if given and opts["index_name"] != name:
            raise UsageError(f"two indexes given, '{name}' and --index "
                             f"'{opts['index_name']}' — give one")
        opts = {**opts, "index_name": name}
    with open_index(opts) as index:
        info = index.info()
    info["size"] = _megabytes(info["size"])
    click.echo(json.dumps(info, indent=2, ensure_ascii=False))


@indexes.command("delete")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def indexes_delete(name: str, yes: bool) -> None:
    """Delete the index NAME: the files ragkit made, never anything else in its folder."""
    from ..index import Index

    with Index.open(name, damaged_ok=True) as index:
        shown = printable(name)
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError(f"refusing to delete index '{shown}' without --yes "
                                 "(no terminal)")
            click.confirm(f"Delete index '{shown}' at {printable(str(index.path))}?",
                          abort=True)
        kept = index.delete()
    click.echo(f"deleted index '{shown}'")
    if kept:
        click.echo(f"kept {len(kept)} other item(s) in {printable(str(index.path))}: "
                   + ", ".join(printable(k) for k in kept))


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


@click.group()
@click.option("--host", envvar="OLLAMA_HOST", default=None,
              help="Ollama server [default: $OLLAMA_HOST or http://127.0.0.1:11434]; with a "
              "comma-separated list, pull acts on every host, the others on the first.")
@click.pass_context
def models(ctx: click.Context, host: str | None) -> None:
    """Manage models on the Ollama server (list also shows the embedded ones)."""
    from ..backends.host import parse_hosts
    from ..backends.ollama import OllamaClient

    hosts = parse_hosts(host)
    ctx.meta["ragkit.hosts"] = hosts  # pull goes to each: every host must have the model
    ctx.obj = OllamaClient(hosts[0])


@models.command("list")
@click.pass_obj
def models_list(client: Any) -> None:
    """List models: Ollama's (if it runs) and the embedded engine's."""
    from ..backends.embedded import EmbeddedBackend

    if client.is_alive():
        for m in client.list_models():
            click.echo(f"{one_line(m.name)}\tollama\t{m.size / 1e6:.0f} MB")
    else:
        say(f"no Ollama at {client.host}; showing the embedded engine's models only")
    engine = EmbeddedBackend()
    for name in engine.available_models():
        state = "embedded" if engine.has_model(name) else "embedded (not installed)"
        click.echo(f"{name}\t{state}")


@models.command("pull")
@click.argument("name")
@click.pass_obj
def models_pull(client: Any, name: str) -> None:
    """Download NAME into Ollama (into each of several hosts), showing progress."""
    from ..backends.ollama import OllamaClient

    hosts = click.get_current_context().meta.get("ragkit.hosts") or (client.host,)
    for host in hosts:
        _pull(client if host == client.host else OllamaClient(host), name,
              f" on {host}" if len(hosts) > 1 else "")


def _pull(client: Any, name: str, where: str) -> None:
    """Pull NAME through ``client``, with a progress line on a terminal."""
    last = ""
    for progress in client.pull(name):
        status = one_line(progress.status)  # the server's words
        line = f"{status} {progress.percent}%" if progress.percent else status
        if line != last and sys.stderr.isatty():
            click.echo(f"\r{line[:70]:<70}", nl=False, err=True)
        last = line
    click.echo(f"\npulled {name}{where}" if sys.stderr.isatty() else f"pulled {name}{where}")


@models.command("show")
@click.argument("name")
@click.pass_obj
def models_show(client: Any, name: str) -> None:
    """Show NAME's details: family, size, context and embedding length."""
    info = client.show(name)
    click.echo(json.dumps({
        "name": name, "details": info.details, "capabilities": info.capabilities,
        "context_length": info.context_length, "embedding_length": info.embedding_length,
    }, indent=2))


@models.command("rm")
@click.argument("name")
@click.pass_obj
def models_rm(client: Any, name: str) -> None:
    """Delete NAME from Ollama."""
    client.delete(name)
    click.echo(f"deleted {name}")


@models.command("cp")
@click.argument("source")
@click.argument("destination")
@click.pass_obj
def models_cp(client: Any, source: str, destination: str) -> None:
    """Copy SOURCE to a new name DESTINATION in Ollama."""
    client.copy(source, destination)
    click.echo(f"copied {source} to {destination}")


@click.command()
@click.option("--model", "-m", envvar="RAGKIT_CHAT_MODEL", default=DEFAULT_CHAT_MODEL,
              show_default=True, help="Chat model to check.")
@with_index_options
def doctor(opts: dict[str, Any], model: str) -> None:
    """Check the server, the models and the index, and say what to fix."""
    from ..backends.chooser import BackendChooser
    from ..builds import resolve_index
    from ..doctor import run_checks

    env = Settings.from_env()
    chooser = BackendChooser(opts["backend"], host=opts["host"], timeout=opts["timeout"],
                             threads=env.threads, cache_dir=env.cache_dir)
    embed_model = opts["embed_model"] or DEFAULT_EMBED_MODEL
    checks = run_checks(chooser, [embed_model, model], resolve_index(opts["index_name"], None),
                        index_named=opts["index_name"] != "default")
    for check in checks:
        mark = "ok " if check.ok else ("-- " if not check.blocking else "ERR")
        click.echo(clean(f"[{mark}] {check.name}: {check.detail}"))
        if not check.ok and check.fix:
            click.echo(clean(f"       fix: {check.fix}"))
    if any(not c.ok and c.blocking for c in checks):
        sys.exit(1)


@click.command("eval")
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@click.option("--retrieval", "--mode", "modes", default="vector,keyword,hybrid",
              show_default=True, help="Comma-separated retrieval modes to compare side by side.")
@click.option("-k", "k", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="Cut-off for the hit rate of a questions file.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--chunk-size", type=int, default=None,
              help="Chunk size of the BEIR index, in approximate tokens [default: ingest's].")
@click.option("--chunk-overlap", type=int, default=None, help="Overlap of those chunks.")
@click.option("--whole-documents", is_flag=True,
              help="One chunk per document, cut at the model's window: the protocol behind "
              "published MTEB scores.")
@click.option("--answers", "answers", is_flag=True,
              help="Score answers, not retrieval: the share of `ask` answers that contain a "
              "gold span of DATASET/answers.jsonl (white space normalized).")
@click.option("--answer", "answer_mode", default="extractive", show_default=True,
              type=click.Choice(ANSWER_MODES),
              help="With --answers: how `ask` answers (see `ragkit ask --help`).")
@click.option("--model", "-m", envvar="RAGKIT_CHAT_MODEL", default=DEFAULT_CHAT_MODEL,
              show_default=True, help="With --answers: the chat model.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="With --answers: ask only N questions, drawn at random with --seed.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="With --limit: the seed of the sample.")
@click.option("--details", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --answers: write one JSON line per question (its answer, and whether "
              "it contains a gold span) to this file.")
@click.option("--store", "store", default=None, metavar="URI",
              help="Keep the BEIR index in this store (local, milvus://HOST:PORT[/DB] or x.db), "
              "to compare quality per store.")
@click.option("--split", type=click.Choice(["dev", "test", "all"]), default="test",
              show_default=True, help="Which half of a BEIR set's queries to use: ragkit's "
              "constants were tuned on dev, so its published figures are test's (a fixed "
              "hash of each query id; a questions JSONL is always used whole).")
@click.option("--calibrate", is_flag=True,
              help="Find the highest relevance threshold that refuses at most 5% of "
              "DATASET's questions, and offer to store it in the index for `ask`.")
@click.option("--off-topic", "off_topic", type=click.Path(exists=True, path_type=Path),
              default=None, help="With --calibrate: questions the index cannot answer (a "
              "BEIR folder, a JSONL of \"question\" lines or a text file, one a line) "
              "[default for a BEIR set: the other BEIR sets beside it].")
@click.option("--store-threshold", "--yes", "store_threshold", is_flag=True,
              help="With --calibrate: store the threshold without asking.")
@with_index_options
def evaluate(opts: dict[str, Any], dataset: Path, modes: str, k: int, as_json: bool,
             chunk_size: int | None, chunk_overlap: int | None, whole_documents: bool,
             answers: bool, answer_mode: str, model: str, limit: int | None, seed: int,
             details: Path | None, store: str | None, split: str, calibrate: bool,
             off_topic: Path | None, store_threshold: bool) -> None:
    """Measure retrieval on DATASET: a BEIR folder, or a questions JSONL for --index.

    A BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) is indexed into
    eval-<name>-<model>[-<chunking>] under RAGKIT_HOME/.eval-indexes (kept out
    of `ragkit indexes list`, reused on later runs) and scored with
    nDCG@10, Recall@10, Recall@100, MRR@10 and query latency. A JSONL file of {"question", "source",
    "page"?} lines is scored against the selected index by hit rate@k and MRR.
    With --answers, a BEIR folder's questions are asked and the answers scored.
    With --calibrate, the relevance threshold of `ask` is fitted to DATASET's questions.
    """
    from .progress import CounterLine

    if (off_topic is not None or store_threshold) and not calibrate:
        raise UsageError("--off-topic and --store-threshold go with --calibrate — add it")
    if calibrate:
        from .calibrating import run_calibration

        if answers or whole_documents or chunk_size or chunk_overlap is not None:
            raise UsageError("--calibrate measures the index as it is — leave out --answers, "
                             "--whole-documents and the chunk options")

        return run_calibration(opts, dataset, split, off_topic, store_threshold, as_json,
                               store)

    chosen = [m.strip() for m in modes.split(",") if m.strip()]
    for mode in chosen:
        check_retrieval(mode)
    if answers and not dataset.is_dir():
        raise UsageError("--answers needs a BEIR folder with answers.jsonl, not a file")
    asking = AnswerSettings(answer_mode, model, limit, seed, details) if answers else None
    with CounterLine() as counter:
        if dataset.is_dir():
            chunker = _eval_chunker(chunk_size, chunk_overlap, whole_documents)
            rows = _eval_beir(opts, dataset, chosen, counter, chunker, asking, split, store)
        else:
            rows = _eval_questions(opts, dataset, chosen, k)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    headers = list(rows[0])
    click.echo(clean("  ".join(f"{h:>13}" for h in headers)))
    for row in rows:
        click.echo(clean("  ".join(f"{_cell(v):>13}" for v in row.values())))


def _cell(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _eval_chunker(size: int | None, overlap: int | None, whole: bool) -> Any:
    from ..chunking.units import ChunkerSettings
    from ..evaluate import WHOLE_DOCUMENT

    if whole:
        if size is not None or overlap is not None:
            raise UsageError("--whole-documents cannot be combined with "
                             "--chunk-size or --chunk-overlap")
        return ChunkerSettings(size=WHOLE_DOCUMENT, overlap=0)
    if size is None and overlap is None:
        return None
    chosen = chunk_settings(size, overlap, ChunkerSettings)
    return None if chosen == ChunkerSettings() else chosen  # the default index is reused


def _eval_beir(opts: dict[str, Any], folder: Path, modes: list[str], counter: Any,
               chunker: Any, asking: AnswerSettings | None = None,
               split: str = "all", store: str | None = None) -> list[dict]:
    from ..answer_accuracy import load_gold_answers
    from ..evaluate import BeirSet, evaluate_beir
    from ..home import index_home

    whole = BeirSet.load(folder)
    data = whole.half(split)
    gold = load_gold_answers(folder) if asking else {}  # a missing file fails before indexing
    opts = eval_index_options(opts, data, chunker, store)
    docs = whole.write_documents(index_home() / ".eval-docs" / data.name)
    with open_index(opts, create=True, chunker=chunker, store=store) as index:
        report = index.ingest([docs], progress=counter.ingest)
        say(f"index '{index.name}': {report.summary()}")
        if asking:
            return [_eval_answers(index, data, gold, asking, counter).as_dict()]
        results = evaluate_beir(data, lambda q, n, m: index.search(q, n, mode=m), modes,
                                data.doc_of(), progress=counter.queries)
    return [r.as_dict() for r in results]


@dataclass(frozen=True)
class AnswerSettings:
    """How ``eval --answers`` asks: answer mode, chat model, sample, details file."""

    answer_mode: str
    model: str
    limit: int | None
    seed: int
    details: Path | None


def _eval_answers(index: Any, data: Any, gold: dict[str, list[str]], asking: AnswerSettings,
                  counter: Any) -> Any:
    from ..answer_accuracy import evaluate_answers

    with contextlib.ExitStack() as stack:
        out = (stack.enter_context(open(asking.details, "w", encoding="utf-8"))
               if asking.details else None)

        def record(row: dict[str, Any]) -> None:
            if out:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")

        return evaluate_answers(
            data, gold, lambda q: index.ask(q, answer=asking.answer_mode, model=asking.model),
            asking.answer_mode, limit=asking.limit, seed=asking.seed,
            progress=counter.queries, details=record)


def _eval_questions(opts: dict[str, Any], path: Path, modes: list[str], k: int) -> list[dict]:
    from ..evaluate import evaluate_questions, load_questions

    rows = load_questions(path)
    with open_index(opts) as index:
        results = evaluate_questions(rows, lambda q, n, m: index.search(q, n, mode=m), modes, k)
    return [r.as_dict() for r in results]
