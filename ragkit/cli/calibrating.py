"""``ragkit eval --calibrate``: fit `ask`'s relevance threshold to an index's own questions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import UsageError
from .options import open_index, say
from .terminal import clean, one_line


def run_calibration(opts: dict[str, Any], dataset: Path, split: str, off_topic: Path | None,
                    store: bool, as_json: bool, where: str | None = None) -> None:
    """Measure, print, and store the threshold when asked (or confirmed at a terminal).

    ``where``: the ``--store`` of a BEIR set's eval index (None: local).
    """
    from ..calibration import calibrate, load_off_topic, relevances
    from .progress import CounterLine

    answerable, others, opts, docs = _questions(opts, dataset, split, off_topic, where)
    if off_topic is not None:
        others = load_off_topic(off_topic)
    counter = CounterLine()
    with counter, open_index(opts, create=docs is not None, store=where) as index:
        if docs is not None:  # a BEIR set: its eval index, built or brought up to date
            say(f"index '{index.name}': {index.ingest([docs], progress=counter.ingest).summary()}")
        if not len(index):
            raise UsageError(f"index '{index.name}' is empty — ingest the documents the "
                             "questions are about first")
        search = index.search
        found = calibrate(relevances(answerable, search, lambda n, t: counter.queries(
                              "answerable", n, t)),
                          relevances(others, search, lambda n, t: counter.queries(
                              "off-topic", n, t)))
    if not as_json:
        click.echo(clean(_summary(found)))
    with open_index(opts) as index:
        stored = _offer(index, found.threshold, store, as_json)
    if as_json:
        click.echo(json.dumps({**found.as_dict(), "index": index.name, "stored": stored},
                              indent=2))


def _summary(found: Any) -> str:
    """What the threshold refuses, in one line.

    >>> from ragkit.calibration import Calibration
    >>> _summary(Calibration(0.5, 300, 0.05, 1185, 0.899))
    'threshold 0.500: refuses 5.0% of 300 answerable questions and 89.9% of 1,185 off-topic ones'
    """
    line = (f"threshold {found.threshold:.3f}: refuses {found.answerable_refused:.1%} of "
            f"{found.answerable:,} answerable questions")
    if found.off_topic_refused is None:
        return line + " (give --off-topic questions to see what it buys)"
    return line + f" and {found.off_topic_refused:.1%} of {found.off_topic:,} off-topic ones"


def _questions(opts: dict[str, Any], dataset: Path, split: str, off_topic: Path | None,
               where: str | None) -> tuple[list[str], list[str], dict[str, Any], Path | None]:
    """Answerable questions, default off-topic ones, the options naming the index, and
    for a BEIR set the folder of its documents (to index)."""
    from ..evaluate import BeirSet, load_questions
    from ..home import index_home
    from .eval_index import eval_index_options

    if not dataset.is_dir():
        rows = load_questions(dataset)
        return [str(r["question"]) for r in rows], [], opts, None
    whole = BeirSet.load(dataset)
    data = whole.half(split)
    others: list[str] = []
    if off_topic is None:
        others = _sibling_questions(dataset.resolve())
    docs = whole.write_documents(index_home() / ".eval-docs" / data.name)
    return list(data.queries.values()), others, eval_index_options(opts, data, None, where), docs


def _sibling_questions(folder: Path) -> list[str]:
    """The questions of the other BEIR sets beside ``folder``: off-topic for its index.

    Sets named alike up to a dash (``xquad-en``, ``xquad-zh``) are translations of one
    another, answerable in each other's documents, so they are left out.
    """
    from ..calibration import load_off_topic

    stem = folder.name.split("-")[0]
    return [question for sibling in sorted(folder.parent.iterdir())
            if sibling != folder and sibling.name.split("-")[0] != stem
            and (sibling / "queries.jsonl").is_file()
            for question in load_off_topic(sibling)]


def _interactive() -> bool:
    """Whether a person can answer the question (the tests set it)."""
    return sys.stdin.isatty()


def _offer(index: Any, threshold: float, store: bool, as_json: bool) -> bool:
    """Print the finding; store the threshold if told to, or if the user agrees."""
    if not store and not (_interactive() and not as_json):
        say(f"not stored — run again with --store-threshold to keep {threshold:.3f} in "
            f"index '{one_line(index.name)}', or pass --min-score {threshold:.3f} to ask")
        return False
    if not store and not click.confirm(
            f"Store {threshold:.3f} in index '{one_line(index.name)}' for ask?", default=False):
        return False
    index.store_threshold(threshold)
    say(f"stored: `ask` on index '{one_line(index.name)}' now refuses below {threshold:.3f}")
    return True
