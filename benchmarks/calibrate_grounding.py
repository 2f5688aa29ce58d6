"""Calibrate the grounding check's threshold on XQuAD's gold answers.

    python benchmarks/calibrate_grounding.py [--shared ../shared] [--home indexes]
        [--sample 300] [--generated details.jsonl]

The check (``ragkit.grounding``) calls a sentence of a generated answer
supported when ``cosine + WORD_WEIGHT x word share`` reaches ``THRESHOLD`` and
it writes no number that the question and passages lack.
For a seeded sample of XQuAD-en questions, with the top 4 passages ``ask``
retrieves (index ``eval-xquad-en-all-minilm``, built by ``ragkit eval`` under
``--home``), it scores pseudo-answers ``"<question> <answer>."``:

* **gold**: the question's own gold span, when the passages hold it
  (a supported sentence);
* **foreign**: the gold span of a question about another paragraph, one that
  the passages do not hold (an unsupported sentence: a made-up answer);
* **swapped**: the gold span of another question about the same paragraph
  (a wrong answer made of words the passages do hold).

``--generated`` adds the sentences of the demo model's answers (the details
file of ``ragkit eval DIR --answers --answer generate --details FILE``) that
contain a gold span: real supported sentences, paraphrase included.

For each word weight of a small grid it takes the threshold halfway between
the one that catches 95% of the made-up answers and the one that keeps 95% of
the gold ones (see :func:`calibrate`), and prints what it refuses of every set.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WEIGHTS = (0.5, 0.75, 1.0, 1.5)


def cached_embedder(backend, model: str):
    """An embed function that embeds each distinct text once."""
    cache: dict[str, np.ndarray] = {}

    def embed(texts):
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        for i in range(0, len(missing), 64):
            part = missing[i:i + 64]
            cache.update(zip(part, backend.embed(model, part), strict=True))
        return np.stack([cache[t] for t in texts])

    return embed


def synthetic(index, embed, shared: Path, sample: int, seed: int) -> dict[str, list]:
    """(cosine, words, has a number no passage has) of gold, foreign and swapped
    pseudo-answers, by set."""
    from ragkit.answer_accuracy import contains_gold, load_gold_answers
    from ragkit.evaluate import BeirSet
    from ragkit.grounding import support

    folder = shared / "eval" / "xquad-en"
    data, gold = BeirSet.load(folder), load_gold_answers(folder)
    paragraph = {q: next(iter(docs)) for q, docs in data.qrels.items()}
    by_paragraph: dict[str, list[str]] = {}
    for q in data.queries:
        by_paragraph.setdefault(paragraph[q], []).append(q)
    rng = random.Random(seed)
    chosen = rng.sample(sorted(data.queries), sample)
    out: dict[str, list] = {"gold": [], "foreign": [], "swapped": []}
    for qid in chosen:
        question = data.queries[qid]
        hits = index.search(question, 4)
        passages = "\n".join(h.text for h in hits)
        stem = question.rstrip(" ?")
        cases = []
        if contains_gold(passages, gold[qid]):
            cases.append(("gold", gold[qid][0]))
        others = [q for q in data.queries if paragraph[q] != paragraph[qid]]
        foreign = gold[rng.choice(others)][0]
        if not contains_gold(passages, [foreign]):
            cases.append(("foreign", foreign))
        mates = [q for q in by_paragraph[paragraph[qid]]
                 if q != qid and not contains_gold(" ".join(gold[qid]), gold[q])]
        if mates:
            cases.append(("swapped", gold[rng.choice(mates)][0]))
        sentences = [f"{stem} {answer}." for _, answer in cases]
        for (kind, _), got in zip(cases, support(question, sentences, hits, embed), strict=True):
            out[kind].append((got.cosine, got.words, bool(got.new_numbers)))
    return out


def generated(path: Path, embed) -> list:
    """(cosine, words, new number) of the demo model's answer sentences with a gold span."""
    from ragkit.answer_accuracy import contains_gold
    from ragkit.grounding import check_answer
    from ragkit.retrieval import Hit

    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        answer = row["answer"]
        if not answer.get("found") or not answer.get("sources"):
            continue
        hits = [Hit(**{k: v for k, v in s.items() if k != "n"}) for s in answer["sources"]]
        text = answer["answer"]
        for check in check_answer(row["question"], text, hits, embed):
            if not check.not_found and contains_gold(check.text, row["gold"]):
                out.append((check.cosine, check.words, bool(check.new_numbers)))
    return out


def calibrate(sets: dict[str, list]) -> list[dict]:
    """For each word weight: the threshold and what it refuses in every set.

    Two bounds: the lowest score that marks 95% of the made-up answers
    (``foreign``) unsupported, and the highest that keeps 95% of the gold
    pseudo-answers supported.  The threshold is halfway between them (rounded
    down to 0.01): as far as these sets allow from both mistakes, since a real
    model paraphrases and so scores below the pseudo-answers that quote a gold span.
    """
    rows = []
    for weight in (*WEIGHTS, None):  # None: the words alone (no embeddings at hand)
        scores = {k: np.array([-1.0 if w <= 0 or new else w if weight is None
                               else (c or 0.0) + weight * w for c, w, new in v])
                  for k, v in sets.items() if v}
        catch = float(np.percentile(scores["foreign"], 95))
        keep = float(np.percentile(scores["gold"], 5))
        threshold = np.floor((catch + keep) / 2 * 100) / 100
        rows.append({"word_weight": "words only" if weight is None else weight,
                     "catch 95% foreign": catch, "keep 95% gold": keep,
                     "threshold": float(threshold),
                     **{f"{k} refused": float(np.mean(v < threshold)) for k, v in scores.items()}})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--home", type=Path, default=ROOT / "indexes")
    parser.add_argument("--sample", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--generated", type=Path, help="details file of a generated eval run")
    args = parser.parse_args()
    from ragkit import Index
    from ragkit.backends.embedded import EmbeddedBackend
    from ragkit.grounding import THRESHOLD, WORD_WEIGHT, WORDS_ONLY_THRESHOLD

    with Index.open(args.home / "eval-xquad-en-all-minilm", backend="embedded") as index:
        embed = cached_embedder(EmbeddedBackend(), index.embed_model)
        sets = synthetic(index, embed, args.shared, args.sample, args.seed)
        if args.generated:
            sets["generated"] = generated(args.generated, embed)
    print("sentences:", {k: len(v) for k, v in sets.items()})
    for row in calibrate(sets):
        print("  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in row.items()))
    print(f"in use: word weight {WORD_WEIGHT}, threshold {THRESHOLD}; "
          f"words only {WORDS_ONLY_THRESHOLD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
