"""Build ``benchmarks/data/med-zh``: a small Chinese retrieval set of patient questions.

    python benchmarks/make_med_zh.py SOURCE.csv [--out benchmarks/data/med-zh]

SOURCE.csv is ``样例_内科5000-6000.csv`` of Toyhom/Chinese-medical-dialogue-data
(GB18030; columns department, title, ask, answer: a patient's question and one
doctor's reply).  1,000 distinct questions (the ``ask`` text) are drawn with a
fixed seed, and a question's relevant documents are the replies given to it.  The
corpus is those replies plus every other distinct reply whose id (a hash of its
text) starts with ``d0`` to ``d4``: a relevance-blind 5/16 sample of the rest, so
the set embeds in minutes on 2 shared cores.  Questions and replies share few
characters, unlike XQuAD, where each question was written from its paragraph.
See benchmarks/data/med-zh/README.md for provenance.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = 15
QUERIES = 1000
#: Distractor replies kept: those whose id starts with one of these (5/16 of them).
DISTRACTOR_PREFIXES = ("d0", "d1", "d2", "d3", "d4")


def _id(prefix: str, text: str) -> str:
    """A stable id from the text itself, so a rebuild gives the same ids."""
    return prefix + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def build(source: Path, out: Path) -> tuple[int, int]:
    """Write corpus.jsonl, queries.jsonl and qrels/test.tsv; return (docs, queries)."""
    rows = list(csv.DictReader(io.StringIO(source.read_bytes().decode("gb18030"))))
    answers: dict[str, str] = {}  # text -> id, in file order
    asked: dict[str, set[str]] = {}  # question -> ids of its replies
    for row in rows:
        question, answer = (row.get("ask") or "").strip(), (row.get("answer") or "").strip()
        if not answer:
            continue
        doc = answers.setdefault(answer, _id("d", answer))
        if question and len(question) >= 4:
            asked.setdefault(question, set()).add(doc)
    chosen = sorted(random.Random(SEED).sample(sorted(asked), QUERIES))
    relevant = {doc for question in chosen for doc in asked[question]}
    kept = {text: doc for text, doc in answers.items()
            if doc in relevant or doc.startswith(DISTRACTOR_PREFIXES)}
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for text, doc in kept.items():
            fh.write(json.dumps({"_id": doc, "title": "", "text": text}, ensure_ascii=False) + "\n")
    with open(out / "queries.jsonl", "w", encoding="utf-8") as fh:
        for question in chosen:
            fh.write(json.dumps({"_id": _id("q", question), "text": question},
                                ensure_ascii=False) + "\n")
    with open(out / "qrels" / "test.tsv", "w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for question in chosen:
            for doc in sorted(asked[question]):
                fh.write(f"{_id('q', question)}\t{doc}\t1\n")
    return len(kept), len(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "data" / "med-zh")
    args = parser.parse_args()
    docs, queries = build(args.source, args.out)
    print(f"{docs} documents, {queries} queries in {args.out}")


if __name__ == "__main__":
    main()
