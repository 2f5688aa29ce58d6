"""Thread counts of the embedded engine, on free CPUs and beside one busy process (issue 16).

Three settings, side by side in one run:

* ``old``: every core for everything (ragkit's default before issue 16);
* ``new``: :mod:`ragkit.backends.threads` chooses for each call (1 thread for a query; free cores,
  measured, for batches and generation);
* ``1``: one thread for everything (add others with ``--fixed``).

Two conditions: ``idle`` (nothing started by this script; other work on the machine is
not controlled) and ``busy`` (one competing process, a Python loop this script starts and
stops).  Four tasks on the real models:

* ``query``: embedding one question with all-minilm, ms (median of 20 per round);
* ``batch``: embedding 64 chunks (~250 tokens each) of the project's own docs, ms;
* ``prompt``: smollm2:135m evaluating a ~1,500-token ask prompt (``prompt_eval_duration``), ms;
* ``decode``: smollm2:135m generating 32 tokens, ms per token.

The settings take turns within each round, in a rotating order, so that drift in the
machine's load hits each of them alike; the table shows medians over ``--rounds``.

Run: ``python benchmarks/bench_threads.py [--rounds 3] [--fixed 1]`` (about 5 minutes per round
on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
os.environ.pop("RAGKIT_THREADS", None)  # "new" must be the policy, not a fixed count

from ragkit.backends.embedded import _EMBEDDER, _GENERATOR, CHAT_MODEL, EMBED_MODEL, EmbeddedBackend  # noqa: E402
from ragkit.backends.threads import cores  # noqa: E402
from ragkit.chunking.text import chunk_text  # noqa: E402
from ragkit.prompting import build_messages  # noqa: E402
from ragkit.retrieval import Hit  # noqa: E402

QUESTION = "How do I pass model options like temperature?"
TASKS = ("query", "batch", "prompt", "decode")
UNITS = {"query": "ms", "batch": "ms", "prompt": "ms", "decode": "ms/token"}


def doc_chunks() -> list[Hit]:
    """Chunks of the guide corpus and the READMEs, as retrieval hits (for the prompt too)."""
    files = [*sorted((ROOT / "corpora" / "guide").glob("*.md")), ROOT / "README.md",
             HERE / "README.md"]
    hits = []
    for path in files:
        for span in chunk_text(path.read_text(encoding="utf-8"), markdown=True):
            hits.append(Hit(len(hits) + 1, 1.0, len(hits), str(path), path.name, None,
                            span.heading, span.text))
    return hits


def ask_messages(hits: list[Hit], backend: EmbeddedBackend, target: int) -> tuple[list, int]:
    """An ask prompt as ragkit builds it, with passages added until it is ``target`` tokens."""
    from ragkit.backends.sampling import _render_chat

    final(backend.generate(CHAT_MODEL, ""))  # loads the generator
    for n in range(1, len(hits) + 1):
        messages = build_messages(QUESTION, hits[:n])
        text = _render_chat(_GENERATOR.llm, messages)
        size = len(_GENERATOR.llm.tokenize(text.encode(), add_bos=True, special=True))
        if size >= target:
            return messages, size
    raise SystemExit("not enough text for the prompt")


def final(stream: Iterator) -> object:
    for chunk in stream:
        if chunk.done:
            return chunk.metrics
    raise RuntimeError("no final chunk")


def measure(backend: EmbeddedBackend, task: str, texts: list[str], messages: list) -> float:
    """One figure for ``task`` (see the module docstring for what and in which unit)."""
    if task == "query":
        times = []
        for _ in range(20):
            started = time.perf_counter()
            backend.embed(EMBED_MODEL, [QUESTION])
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1e3
    if task == "batch":
        started = time.perf_counter()
        backend.embed(EMBED_MODEL, texts)
        return (time.perf_counter() - started) * 1e3
    if task == "prompt":
        metrics = final(backend.chat(CHAT_MODEL, messages,
                                     options={"num_predict": 1, "temperature": 0, "seed": 1}))
        return metrics.prompt_eval_duration / 1e6
    metrics = final(backend.chat(
        CHAT_MODEL, [{"role": "user", "content": "Write a long story about a cat."}],
        options={"num_predict": 32, "temperature": 0, "seed": 1, "stop": []}))
    return metrics.eval_duration / 1e6 / max(1, metrics.eval_count)


def threads_used(task: str) -> tuple[int, int]:
    """(n_threads, n_threads_batch) the last call of ``task`` ran with."""
    import llama_cpp

    slot = _EMBEDDER if task in ("query", "batch") else _GENERATOR
    ctx = slot.llm.ctx
    return llama_cpp.llama_n_threads(ctx), llama_cpp.llama_n_threads_batch(ctx)


@contextmanager
def competitor(busy: bool) -> Iterator[None]:
    """One process spinning on a core while the block runs (when ``busy``)."""
    if not busy:
        yield
        return
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.5)  # let it get going, so that the load meter sees it
        yield
    finally:
        proc.kill()
        proc.wait()


def run(rounds: int, fixed: list[int]) -> None:
    settings: dict[str, Callable[[], EmbeddedBackend]] = {
        "old": lambda: EmbeddedBackend(n_threads=cores()),
        "new": lambda: EmbeddedBackend(),
        **{str(n): (lambda n=n: EmbeddedBackend(n_threads=n)) for n in fixed},
    }
    hits = doc_chunks()
    texts = [hits[i % len(hits)].text for i in range(64)]
    warm = EmbeddedBackend(n_threads=1)
    warm.embed(EMBED_MODEL, texts[:2])
    messages, size = ask_messages(hits, warm, 1500)
    print(f"{cores()} cores; batch of 64 chunks; prompt of {size} tokens; {rounds} rounds",
          flush=True)
    figures: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    chosen: dict[tuple[str, str], set[str]] = defaultdict(set)
    names = list(settings)
    for round_ in range(rounds):
        for condition in ("idle", "busy"):
            with competitor(condition == "busy"):
                order = names[round_ % len(names):] + names[: round_ % len(names)]
                for name in order:
                    backend = settings[name]()
                    for task in TASKS:
                        figures[condition, task, name].append(
                            measure(backend, task, texts, messages))
                        if name == "new":
                            n, batch = threads_used(task)
                            chosen[condition, task].add(
                                str(batch) if task != "decode" else str(n))
            print(f"round {round_ + 1}, {condition}: done", file=sys.stderr, flush=True)
    report(figures, chosen, names)


def report(figures: dict, chosen: dict, names: list[str]) -> None:
    head = " | ".join(f"{n} thread{'s' if n != '1' else ''}" if n.isdigit() else n
                      for n in names)
    print(f"\n| condition | task | {head} | new/old | threads chosen by new |")
    print("|---" * (len(names) + 4) + "|")
    for condition in ("idle", "busy"):
        for task in TASKS:
            medians = {n: statistics.median(figures[condition, task, n]) for n in names}
            cells = " | ".join(f"{medians[n]:,.1f}" for n in names)
            ratio = medians["new"] / medians["old"]
            used = ", ".join(sorted(chosen[condition, task]))
            print(f"| {condition} | {task} ({UNITS[task]}) | {cells} | {ratio:.2f} | {used} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fixed", default="1", help="comma-separated fixed thread counts")
    args = parser.parse_args()
    run(args.rounds, [int(n) for n in args.fixed.split(",") if n.strip()])


if __name__ == "__main__":
    main()
