"""Re-derive ragkit's tuned retrieval constants on the dev halves, and check them on test.

    python benchmarks/tune_dev.py cache [--home DIR] [--sets scifact,...]
    python benchmarks/tune_dev.py tune [--split dev|test]
    python benchmarks/tune_dev.py subsample [--home DIR]   # SciFact, when time is short
    python benchmarks/tune_dev.py budget [--home DIR] [--sets scifact] [--split dev]

``cache`` opens the eval indexes that ``ragkit eval`` built under ``--home`` (run
``ragkit eval SET`` once per set first) and stores, for every query of every set, both
sides' top-900 chunks (the depth ``eval``'s hybrid search fetches), the cosine and
the content-word coverage of the top-50 candidates, and the document of every chunk,
in ``<home>/rankings-<set>.pkl``; also each set's questions against SciFact's or
XQuAD-en's index (off-topic, for the abstention threshold).  Embedding happens only
here: ``tune`` re-fuses these rankings in pure Python, so trying a fusion weight or a
script rule costs seconds, not a re-embedding of 3,700 questions.

``tune`` prints nDCG@10 / Recall@100 of every candidate value on the chosen split,
the value each constant takes on dev, and the abstention threshold of the dev halves
(the highest that refuses at most 5% of every set's answerable questions).

``budget`` measures the keyword search's term budget (``fulltext.KEYWORD_BUDGET``), which
only applies from ``APPROX_THRESHOLD`` (50,000) chunks on, more than any eval set holds:
it forces the budget on the set's eval index and prints keyword and hybrid (the cached
embedding side fused in) nDCG@10 / Recall@100 and the keyword search's mean time, by budget.
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ragkit.evaluate import EVAL_INDEXES, BeirSet, split_of  # noqa: E402
from ragkit.metrics import ndcg_at, recall_at  # noqa: E402
from ragkit.retrieval import fuse  # noqa: E402

SHARED = ROOT.parent / "shared" / "eval"
FOLDERS = {"scifact": SHARED / "scifact", "xquad-en": SHARED / "xquad-en",
           "xquad-zh": SHARED / "xquad-zh", "med-zh": ROOT / "benchmarks" / "data" / "med-zh"}
CJK_SETS = ("xquad-zh", "med-zh")
#: Questions of the first set asked of the second set's index: none has an answer there.
OFF_TOPIC = (("xquad-en", "scifact"), ("scifact", "xquad-en"), ("xquad-zh", "scifact"),
             ("med-zh", "scifact"))
DEPTH = 900  # eval's hybrid search at 300 chunks fetches 3 x 300 from each side
ASK_DEPTH = 50  # what a search for the 4 chunks of `ask` fetches from each side
K_ASK = 4


#: ``subsample``: SciFact's documents kept besides the relevant ones, by id (as text).
SUBSAMPLE_BELOW = "14"


def subsample(home: Path) -> Path:
    """Write ``<home>/sets/scifact``: every query, its relevant abstracts, and the
    abstracts whose id sorts below :data:`SUBSAMPLE_BELOW` (a relevance-blind 13%).

    Its figures are higher than the full corpus's (fewer distractors): use it only to
    compare settings with each other, never as SciFact's score.
    """
    import json
    import shutil

    source, out = FOLDERS["scifact"], home / "sets" / "scifact"
    data = BeirSet.load(source)
    relevant = {d for q in data.qrels.values() for d, g in q.items() if g > 0}
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with open(source / "corpus.jsonl", encoding="utf-8") as src, \
            open(out / "corpus.jsonl", "w", encoding="utf-8") as dst:
        for line in src:
            doc = str(json.loads(line)["_id"])
            if doc in relevant or doc < SUBSAMPLE_BELOW:
                dst.write(line)
    shutil.copy(source / "queries.jsonl", out / "queries.jsonl")
    shutil.copy(source / "qrels" / "test.tsv", out / "qrels" / "test.tsv")
    FOLDERS["scifact"] = out
    return out


def _index_path(home: Path, name: str) -> Path:
    return home / EVAL_INDEXES / f"eval-{name}-all-minilm"


def _candidates(index, store, text: str, depth: int) -> dict:
    """One query's cached rankings: both sides, cosines and coverage of the top candidates."""
    from ragkit.answering import _STOP
    from ragkit.store.keywords import keyword_terms

    vector = index._embed_query(text)
    dense = store.search(vector, depth, None)
    keyword = store.keyword_search(text, depth, None)
    near = {cid for cid, _ in dense[:ASK_DEPTH]} | {cid for cid, _ in keyword[:ASK_DEPTH]}
    cosines = store.cosines(vector, sorted(near))
    terms = {t for t in keyword_terms(text) if t not in _STOP}
    texts = store.chunks(sorted(near))
    coverage = {cid: (len(terms & set(keyword_terms(c.text))) / len(terms) if terms else 0.0)
                for cid, c in texts.items()}
    return {"d": dense, "k": keyword, "cos": cosines, "cov": coverage}


def cache(home: Path, sets: Sequence[str]) -> None:
    """Write ``rankings-<set>.pkl`` for ``sets`` (see the module docstring)."""
    from ragkit import Index

    for name in sets:
        data = BeirSet.load(FOLDERS[name])
        doc_id = data.doc_id_of()
        with Index.open(str(_index_path(home, name)), backend="embedded") as index:
            store = index._store
            with store.reading():
                queries = {qid: _candidates(index, store, text, DEPTH)
                           for qid, text in data.queries.items()}
                seen = {cid for q in queries.values() for cid, _ in q["d"] + q["k"]}
                docs = {cid: doc_id(c.path) for cid, c in store.chunks(sorted(seen)).items()}
        off = {}
        for asked, corpus in OFF_TOPIC:
            if asked != name or not _index_path(home, corpus).is_dir():
                continue  # (run cache again once that index is built)
            with Index.open(str(_index_path(home, corpus)), backend="embedded") as other, \
                    other._store.reading():
                off[corpus] = {qid: _candidates(other, other._store, text, ASK_DEPTH)
                               for qid, text in data.queries.items()}
        out = home / f"rankings-{name}.pkl"
        out.write_bytes(pickle.dumps({"queries": queries, "docs": docs, "off": off,
                                      "texts": data.queries, "qrels": data.qrels}))
        print(f"{name}: {len(queries)} queries cached in {out}", flush=True)


def documents(chunks: list[tuple[int, float]], docs: dict[int, str], limit: int = 100) -> list[str]:
    ranking: dict[str, None] = {}
    for cid, _ in chunks:
        ranking.setdefault(docs.get(cid, str(cid)), None)
        if len(ranking) == limit:
            break
    return list(ranking)


def scores(cached: dict, split: str, share: float) -> tuple[float, float]:
    """Mean nDCG@10 and Recall@100 of hybrid at ``share`` over ``split``'s queries."""
    ndcg, recall, n = 0.0, 0.0, 0
    for qid, q in cached["queries"].items():
        if split != "all" and split_of(qid) != split:
            continue
        if share >= 1:
            chunks = q["d"][:300]
        elif share <= 0:
            chunks = q["k"][:300]
        else:
            chunks = fuse(q["d"], q["k"], share)[:300]
        ranking = documents(chunks, cached["docs"])
        ndcg += ndcg_at(ranking, cached["qrels"][qid], 10)
        recall += recall_at(ranking, cached["qrels"][qid], 100)
        n += 1
    return ndcg / n, recall / n


def ask_relevance(q: dict, share: float) -> float:
    """What `ask` compares with its threshold, from the cached top-50 of each side."""
    if share <= 0:
        top = q["k"][:K_ASK]
    else:
        top = fuse(q["d"][:ASK_DEPTH], q["k"][:ASK_DEPTH], share)[:K_ASK]
    cos = [q["cos"][cid] for cid, _ in top if cid in q["cos"]]
    if not cos:
        return -1.0
    return max(cos) + 0.3 * max(q["cov"].get(cid, 0.0) for cid, _ in top)


def highest_threshold(values: Sequence[float], refuse: float = 0.05) -> float:
    """The highest threshold (to 0.001, rounded down) refusing at most ``refuse`` of values."""
    ordered = sorted(values)
    return math.floor(ordered[int(refuse * len(ordered))] * 1000) / 1000


def tune(home: Path, split: str, shares: Sequence[float], cjk_shares: Sequence[float],
         chosen: float, cjk: float) -> None:
    cached = {n: pickle.loads((home / f"rankings-{n}.pkl").read_bytes())
              for n in FOLDERS if (home / f"rankings-{n}.pkl").is_file()}
    print(f"split {split}; nDCG@10 / Recall@100 of hybrid by embedding share "
          "(0 = keyword alone, 1 = vector alone)")
    for name, data in cached.items():
        grid = cjk_shares if name in CJK_SETS else shares
        cells = [f"{s:.2f}: {scores(data, split, s)[0]:.4f}/{scores(data, split, s)[1]:.4f}"
                 for s in grid]
        print(f"  {name:<9}" + "  ".join(cells))
    share_of = {n: (cjk if n in CJK_SETS else chosen) for n in cached}
    answerable = {n: [ask_relevance(q, share_of[n]) for qid, q in d["queries"].items()
                      if split == "all" or split_of(qid) == split] for n, d in cached.items()}
    calibrate_on = [n for n in answerable if n != "med-zh"]
    threshold = min(highest_threshold(answerable[n]) for n in calibrate_on)
    print(f"abstention threshold on {split} ({', '.join(calibrate_on)}): {threshold:.3f}")
    for name, values in answerable.items():
        refused = sum(v < threshold for v in values) / len(values)
        print(f"  answerable {name:<9} refused {refused:.1%}")
    for name, data in cached.items():
        for corpus, queries in data["off"].items():
            values = [ask_relevance(q, cjk if name in CJK_SETS else chosen)
                      for qid, q in queries.items() if split == "all" or split_of(qid) == split]
            print(f"  off-topic {name} -> {corpus} refused "
                  f"{sum(v < threshold for v in values) / len(values):.1%}")


BUDGETS = (100, 200, 400, 800, 1600, 3200, None)  # None: every term (no budget)


def budget(home: Path, sets: Sequence[str], split: str, share: float) -> None:
    """Print quality and speed of keyword search by term budget (see the module docstring)."""
    import time

    from ragkit import Index
    from ragkit.store import fulltext, local

    for name in sets:
        cached = pickle.loads((home / f"rankings-{name}.pkl").read_bytes())
        queries = {q: t for q, t in cached["texts"].items()
                   if split == "all" or split_of(q) == split}
        with Index.open(str(_index_path(home, name)), backend="embedded") as index:
            store = index._store
            local.APPROX_THRESHOLD = 0  # the budget applies whatever the size
            print(f"{name} ({store.count()} chunks, {len(queries)} {split} queries): "
                  "keyword | hybrid nDCG@10/Recall@100, keyword search mean ms")
            for limit in BUDGETS:
                fulltext.KEYWORD_BUDGET = limit if limit is not None else 1 << 40
                with store.reading():
                    store.keyword_search("warm up the term counts", 1)
                    rows = {"k": [], "h": []}
                    started = time.perf_counter()
                    found = {qid: store.keyword_search(text, DEPTH)
                             for qid, text in queries.items()}
                    ms = (time.perf_counter() - started) * 1000 / len(queries)
                for qid, keyword in found.items():
                    dense = cached["queries"][qid]["d"]
                    hybrid = fuse(dense, keyword, share)
                    for key, chunks in (("k", keyword[:300]), ("h", hybrid[:300])):
                        ranking = documents(chunks, cached["docs"])
                        rows[key].append((ndcg_at(ranking, cached["qrels"][qid], 10),
                                          recall_at(ranking, cached["qrels"][qid], 100)))
                k, h = ([sum(col) / len(col) for col in zip(*rows[m], strict=True)]
                        for m in ("k", "h"))
                print(f"  budget {limit or 'none':>5}: {k[0]:.4f}/{k[1]:.3f} | "
                      f"{h[0]:.4f}/{h[1]:.3f}  {ms:.1f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=["cache", "tune", "subsample", "budget"])
    parser.add_argument("--subsampled", action="store_true",
                        help="use the SciFact subsample written by the subsample step")
    parser.add_argument("--home", type=Path, default=ROOT / "indexes")
    parser.add_argument("--sets", default=",".join(FOLDERS))
    parser.add_argument("--split", default="dev", choices=["dev", "test", "all"])
    parser.add_argument("--share", type=float, default=0.5, help="the English sets' share")
    parser.add_argument("--cjk-share", type=float, default=0.0, help="the CJK sets' share")
    args = parser.parse_args()
    if args.subsampled:
        FOLDERS["scifact"] = args.home / "sets" / "scifact"
    if args.step == "subsample":
        print(subsample(args.home))
    elif args.step == "budget":
        budget(args.home, args.sets.split(","), args.split, args.share)
    elif args.step == "cache":
        cache(args.home, args.sets.split(","))
    else:
        tune(args.home, args.split, [0.0, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 1.0],
             [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0], args.share, args.cjk_share)


if __name__ == "__main__":
    main()
