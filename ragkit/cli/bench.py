"""``ragkit bench``: time a model on prompts, an ingest, or the searches of an index."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import UsageError
from ..models import DEFAULT_CHAT_MODEL, DEFAULT_EMBED_MODEL
from ..queries import RETRIEVAL_MODES
from ..settings import Settings
from .options import parse_options, say


class _DefaultToGenerate(click.Group):
    """``ragkit bench --model M`` means ``ragkit bench generate --model M``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["generate", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultToGenerate)
def bench() -> None:
    """Benchmark a model on prompts (the default), an ingest, or searches.

    \b
      ragkit bench --model qwen2.5:7b -n 5       # generate: tokens/s per prompt
      ragkit bench ingest ~/notes                # chunks/s into a throw-away index
      ragkit bench search --index notes          # search latency percentiles
    """


def _backend_options(func: Any) -> Any:
    for decorate in reversed([
        click.option("--backend", type=click.Choice(["auto", "ollama", "embedded"]),
                     default="auto", show_default=True, envvar="RAGKIT_BACKEND",
                     help="Who runs the models: Ollama, the embedded engine, or auto."),
        click.option("--host", envvar="OLLAMA_HOST", default=None,
                     help="Ollama server [default: $OLLAMA_HOST or http://127.0.0.1:11434]."),
        click.option("--timeout", type=float, default=300.0, show_default=True,
                     envvar="RAGKIT_TIMEOUT", help="Seconds to wait for a model reply."),
        click.option("--json", "as_json", is_flag=True, help="Print the results as JSON."),
    ]):
        func = decorate(func)
    return func


def _chooser(backend: str, host: str | None, timeout: float) -> Any:
    from ..backends.chooser import BackendChooser

    env = Settings.from_env()
    return BackendChooser(backend, host=host, timeout=timeout, announce=say,
                          threads=env.threads, cache_dir=env.cache_dir)


class _Progress:
    """``label  done/total`` redrawn in place on stderr (only when stderr is a terminal)."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.drawn = False

    def __call__(self, label: str, done: int, total: int) -> None:
        if self.enabled:
            click.echo(f"\r{label}  {done}/{total}".ljust(60), nl=False, err=True)
            self.drawn = True

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.drawn:
            click.echo("\r" + " " * 60 + "\r", nl=False, err=True)


def _read_prompts(path: Path | None) -> list[str]:
    """Prompts from a file (one per line, or JSON lines with a "prompt"), or the defaults."""
    from ..bench import DEFAULT_PROMPTS

    if path is None:
        return list(DEFAULT_PROMPTS)
    prompts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if text.startswith("{"):
            with contextlib.suppress(ValueError, AttributeError):
                text = str(json.loads(text).get("prompt") or "").strip()
        if text and not text.startswith("#"):
            prompts.append(text)
    if not prompts:
        raise UsageError(f"{path} holds no prompts — one prompt per line")
    return prompts


@bench.command("generate")
@click.option("--model", "-m", envvar="RAGKIT_CHAT_MODEL", default=DEFAULT_CHAT_MODEL,
              show_default=True, help="The model to benchmark.")
@click.option("--prompts", "prompts_file", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), default=None,
              help="File of prompts, one per line (or JSON lines with \"prompt\") "
              "[default: five built-in prompts].")
@click.option("-n", "--runs", type=click.IntRange(1, 1000), default=3, show_default=True,
              help="Runs of each prompt.")
@click.option("--option", "-o", "option_pairs", multiple=True, metavar="KEY=VALUE",
              help="Model option, e.g. -o num_predict=128 -o temperature=0 (repeatable).")
@click.option("--no-warmup", is_flag=True, help="Time the first run too (with the model load).")
@_backend_options
def bench_generate_cmd(model: str, prompts_file: Path | None, runs: int,
                       option_pairs: tuple[str, ...], no_warmup: bool, backend: str,
                       host: str | None, timeout: float, as_json: bool) -> None:
    """Time a model on a list of prompts: tokens in, tokens out, tokens/s.

    Each prompt runs N times after one warm-up generation; for each prompt a
    table shows the min, median and max of time, input tokens, output tokens
    and output tokens/s (as Ollama's --verbose reports it), then a total row.
    """
    from ..bench import bench_generate

    prompts = _read_prompts(prompts_file)
    engine = _chooser(backend, host, timeout).for_model(model)
    with _Progress() as progress:
        result = bench_generate(engine, model, prompts, runs,
                                options=parse_options(option_pairs), warmup=not no_warmup,
                                progress=progress)
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    click.echo(f"{model} on {result['backend']}: {len(prompts)} prompts x {runs} runs")
    header = f"{'':8} {'time s':>9} {'in tok':>8} {'out tok':>8} {'tok/s':>9}"
    for n, item in enumerate(result["prompts"], 1):
        click.echo(f"\n[{n}] {_short(item['prompt'])}")
        click.echo(header)
        s = item["summary"]
        for stat in ("min", "median", "max"):
            click.echo(f"{stat:8} {s['seconds'][stat]:9.3f} {s['input_tokens'][stat]:8.0f} "
                       f"{s['output_tokens'][stat]:8.0f} {s['tokens_per_second'][stat]:9.1f}")
    t = result["total"]
    click.echo(f"\n{header}")
    click.echo(f"{'total':8} {t['seconds']:9.3f} {t['input_tokens']:8d} {t['output_tokens']:8d} "
               f"{t['tokens_per_second']:9.1f}   ({t['runs']} runs)")


def _short(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@bench.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=str))
@click.option("--embed-model", envvar="RAGKIT_EMBED_MODEL", default=None,
              help=f"Embedding model [default: {DEFAULT_EMBED_MODEL}].")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=64, show_default=True,
              help="Chunks per embedding request.")
@click.option("--parallel", type=click.IntRange(1, 64), default=None,
              help="Embedding requests in flight [default: $RAGKIT_PARALLEL, else "
              "$OLLAMA_NUM_PARALLEL + 1, else 2].")
@_backend_options
def bench_ingest_cmd(paths: tuple[str, ...], embed_model: str | None, batch_size: int,
                     parallel: int | None, backend: str, host: str | None, timeout: float,
                     as_json: bool) -> None:
    """Ingest PATHS into a throw-away index and report its speed.

    Prints chunks/s and MB/s of the whole ingest (reading, chunking, embedding,
    writing) and the latency percentiles of the embedding requests. Your
    indexes are not touched.
    """
    from ..bench import TimedBackend, bench_ingest
    from .progress import ProgressLine

    timed = TimedBackend(_chooser(backend, host, timeout))
    with ProgressLine() as bar:
        result = bench_ingest(paths, timed, embed_model=embed_model, batch_size=batch_size,
                              parallel=parallel, progress=bar)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    r, lat = result, result["request_latency"]
    click.echo(f"ingest with {r['embed_model']}: {r['files']} files, {r['chunks']} chunks, "
               f"{r['bytes'] / 1e6:.2f} MB in {r['seconds']:.2f} s")
    click.echo(f"throughput: {r['chunks_per_second']:.1f} chunks/s, "
               f"{r['mb_per_second']:.2f} MB/s ({r['requests']} embedding requests of up to "
               f"{r['batch_size']} chunks, {r['parallel']} in flight)")
    click.echo(f"embedding request latency: p50 {lat['p50_ms']:.1f} ms, p90 {lat['p90_ms']:.1f} "
               f"ms, p99 {lat['p99_ms']:.1f} ms, max {lat['max_ms']:.1f} ms")


@bench.command("search")
@click.option("--index", "-i", "index_name", default="default", show_default=True,
              envvar="RAGKIT_INDEX", help="Index name (under RAGKIT_HOME) or path.")
@click.option("--queries", "queries_file", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), default=None, help="File of queries, one per line [default: "
              "the opening words of chunks sampled from the index].")
@click.option("--count", type=click.IntRange(1, 10000), default=50, show_default=True,
              help="How many queries to sample from the index (without --queries).")
@click.option("-n", "--runs", type=click.IntRange(1, 1000), default=3, show_default=True,
              help="Runs of each query.")
@click.option("-k", "k", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="Hits per search.")
@click.option("--retrieval", "--mode", "mode", default="hybrid", show_default=True,
              type=click.Choice(RETRIEVAL_MODES), help="Retrieval mode.")
@_backend_options
def bench_search_cmd(index_name: str, queries_file: Path | None, count: int, runs: int, k: int,
                     mode: str, backend: str, host: str | None, timeout: float,
                     as_json: bool) -> None:
    """Time searches on an index: queries/s and latency percentiles.

    Reports the whole search, the query embedding alone, and the rest (vector
    and keyword search, fusion, reading the chunks).
    """
    from ..bench import TimedBackend, bench_search
    from ..index import Index

    timed = TimedBackend(_chooser(backend, host, timeout))
    with Index.open(index_name, backend=timed) as index:
        queries = _read_prompts(queries_file) if queries_file else _sample_queries(index, count)
        if not queries:
            raise UsageError(f"index '{index.name}' is empty — ingest something first")
        with _Progress() as progress:
            result = bench_search(index, timed, queries, runs, k=k, mode=mode,
                                  progress=progress)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"index '{result['index']}': {result['chunks']} chunks, {result['mode']} search, "
               f"k={k}: {result['searches']} searches, {result['queries_per_second']:.1f}/s")
    click.echo(f"{'latency ms':26} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}")
    for key, label in (("total", "whole search"), ("query_embedding", "query embedding"),
                       ("search_without_embedding", "search without embedding")):
        p = result[key]
        click.echo(f"{label:26} {p['p50_ms']:8.2f} {p['p90_ms']:8.2f} {p['p99_ms']:8.2f} "
                   f"{p['max_ms']:8.2f}")


def _sample_queries(index: Any, count: int) -> list[str]:
    """The first eight words of ``count`` chunks spread over the index."""
    from ..store.opening import open_store

    if len(index) == 0:
        return []
    store = open_store(index.path)
    try:
        texts = store.sample_texts(count)
    finally:
        store.close()
    return [" ".join(t.split()[:8]) for t in texts if t.split()]
