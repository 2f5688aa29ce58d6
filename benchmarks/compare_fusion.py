"""Compare ways of fusing the embedding and keyword rankings, to choose hybrid search by data.

    python benchmarks/compare_fusion.py [--sets scifact,xquad-en,xquad-zh] [--shared ../shared]
                                        [--home DIR]

For every query of each BEIR set, takes the top 300 chunks of each side once
(the embedded all-minilm and BM25, from the index ``ragkit eval`` builds, reused
under ``--home``), then scores each fusion on those same rankings by nDCG@10 /
Recall@100 (on the dev half of the queries unless ``--split`` says otherwise):
reciprocal rank fusion (k = 60) with several weights for the embedding side,
ragkit's normalized-score sum (:func:`ragkit.retrieval.fuse`) with several
embedding shares, and a sum of z-scores (each side's scores less their mean over its
top 300, over their standard deviation; a chunk missing from one side gets that side's
lowest) with the same shares.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ragkit.evaluate import EVAL_INDEXES, BeirSet  # noqa: E402
from ragkit.metrics import ndcg_at, recall_at  # noqa: E402
from ragkit.retrieval import fuse  # noqa: E402

Ranking = list[tuple[int, float]]
Runs = list[tuple[str, Ranking, Ranking, dict[int, str]]]  # query id, dense, keyword, docs
DEPTH = 300
RRF_WEIGHTS = (1.0, 0.3, 0.1, 0.03, 0.01)
SHARES = (0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)


def rankings(data: BeirSet, home: Path) -> Runs:
    """Per query: its id, the dense and keyword top chunks, and each chunk's document."""
    from ragkit.index import Index

    doc_id = data.doc_id_of()
    out = []
    with Index.open(str(home / EVAL_INDEXES / f"eval-{data.name}-all-minilm"),
                    backend="embedded") as index:
        store = index._store
        assert store is not None
        for qid, text in data.queries.items():
            vector = index._embed_query(text)
            dense, keyword = store.search(vector, DEPTH), store.keyword_search(text, DEPTH)
            chunks = store.chunks([cid for cid, _ in dense + keyword])
            docs = {cid: doc_id(chunk.path) for cid, chunk in chunks.items()}
            out.append((qid, dense, keyword, docs))
    return out



def ndcg(data: BeirSet, runs: Runs, fused: Callable[[Ranking, Ranking], Ranking]) -> str:
    """Mean nDCG@10 / Recall@100 of a fusion over the collected rankings."""
    total, recall = 0.0, 0.0
    for qid, dense, keyword, docs in runs:
        ranking: dict[str, None] = {}
        for cid, _ in fused(dense, keyword):
            if cid in docs:
                ranking.setdefault(docs[cid], None)
        total += ndcg_at(list(ranking), data.qrels[qid], 10)
        recall += recall_at(list(ranking)[:100], data.qrels[qid], 100)
    return f"{total / len(runs):.4f}/{recall / len(runs):.3f}"


def rrf(weight: float) -> Callable[[Ranking, Ranking], Ranking]:
    """Reciprocal rank fusion with ``weight`` on the embedding side."""
    def fused(dense: Ranking, keyword: Ranking) -> Ranking:
        scores: dict[int, float] = {}
        for w, ranking in ((weight, dense), (1.0, keyword)):
            for rank, (cid, _) in enumerate(ranking, 1):
                scores[cid] = scores.get(cid, 0.0) + w / (60 + rank)
        return sorted(scores.items(), key=lambda item: -item[1])
    return fused


def zscores(share: float) -> Callable[[Ranking, Ranking], Ranking]:
    """Sum of z-scores, ``share`` on the embedding side."""
    def standard(ranking: Ranking) -> dict[int, float]:
        values = [score for _, score in ranking]
        if len(values) < 2:
            return {cid: 0.0 for cid, _ in ranking}
        mean = sum(values) / len(values)
        spread = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5 or 1.0
        return {cid: (score - mean) / spread for cid, score in ranking}

    def fused(dense: Ranking, keyword: Ranking) -> Ranking:
        zd, zk = standard(dense), standard(keyword)
        low_d, low_k = min(zd.values(), default=0.0), min(zk.values(), default=0.0)
        scores = {cid: share * zd.get(cid, low_d) + (1 - share) * zk.get(cid, low_k)
                  for cid in zd.keys() | zk.keys()}
        return sorted(scores.items(), key=lambda item: -item[1])
    return fused


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--home", type=Path, default=ROOT / "indexes")
    parser.add_argument("--sets", default="scifact,xquad-en,xquad-zh")
    parser.add_argument("--split", default="dev", choices=["dev", "test", "all"])
    args = parser.parse_args()
    os.environ.update(RAGKIT_BACKEND="embedded", RAGKIT_HOME=str(args.home))
    for name in args.sets.split(","):
        folder = args.shared / "eval" / name
        # Builds (or reuses) the index exactly as `ragkit eval` does.
        subprocess.run([sys.executable, "-m", "ragkit", "eval", str(folder), "--retrieval",
                        "keyword", "--json"], check=True, stdout=subprocess.DEVNULL)
        data = BeirSet.load(folder).half(args.split)
        runs = rankings(data, args.home)
        print(f"\n{name} ({args.split}, nDCG@10/Recall@100): vector "
              f"{ndcg(data, runs, lambda d, k: d)}, keyword {ndcg(data, runs, lambda d, k: k)}")
        for weight in RRF_WEIGHTS:
            score = ndcg(data, runs, rrf(weight))
            print(f"  rank fusion, embedding weight {weight:<4}  {score}")
        for share in SHARES:
            score = ndcg(data, runs, lambda d, k, s=share: fuse(d, k, s))
            print(f"  score sum, embedding share {share:<4}     {score}")
        for share in SHARES:
            print(f"  z-score sum, embedding share {share:<4}   {ndcg(data, runs, zscores(share))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
