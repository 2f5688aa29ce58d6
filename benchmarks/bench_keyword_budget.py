"""Keyword search time by term budget, on bench_search's synthetic index of 100k chunks.

Past ``APPROX_THRESHOLD`` chunks, keyword search scores only the query's rarest terms
that together occur in at most ``fulltext.KEYWORD_BUDGET`` chunks.  This prints what
each budget costs in time (the quality side is ``tune_dev.py budget``, on SciFact's dev
half), every budget timed on the same index and queries, rounds alternating.

    python benchmarks/bench_keyword_budget.py [--chunks 100000] [--queries 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_search import Text, Vectors, build_store  # noqa: E402

from ragkit.store import fulltext  # noqa: E402

BUDGETS = (400, 800, 1600, 3200, None)  # None: every term


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(3)
    words = Text()
    texts = [words.sample(int(rng.integers(4, 13)), rng) for _ in range(args.queries)]
    with tempfile.TemporaryDirectory(prefix="ragkit-budget-") as tmp:
        store, _ = build_store(Path(tmp) / "idx", args.chunks, Vectors())
        times: dict[int | None, list[float]] = {b: [] for b in BUDGETS}
        with store.reading():
            for text in texts:  # the term counts, cached by the store, are read once here
                store.keyword_search(text, 1)
            for _ in range(args.rounds):
                for budget in BUDGETS:
                    fulltext.KEYWORD_BUDGET = budget if budget is not None else 1 << 40
                    for text in texts:
                        started = time.perf_counter()
                        store.keyword_search(text, 300)
                        times[budget].append(time.perf_counter() - started)
        store.close()
    print(f"{args.chunks} chunks, {args.queries} queries x {args.rounds} rounds: "
          "keyword search (300 results) by term budget")
    for budget, seconds in times.items():
        ms = np.asarray(seconds) * 1000
        print(f"  budget {budget or 'none':>5}: p50 {np.percentile(ms, 50):7.2f} ms, "
              f"p90 {np.percentile(ms, 90):7.2f} ms")


if __name__ == "__main__":
    main()
