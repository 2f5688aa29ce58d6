"""Retrieval targets of issues 4 and 15, measured on the test halves and checked in one run.

    python benchmarks/eval_targets.py [--shared ../shared] [--json out.json] [--skip-whole]

For each public set in ``<shared>/eval`` (SciFact, XQuAD-en, XQuAD-zh) and the Chinese
patient questions of ``benchmarks/data/med-zh`` this runs ``ragkit eval --split test``
on the embedded all-minilm:

* with ragkit's own chunking, in vector, keyword and hybrid mode;
* with ``--whole-documents`` in vector mode on every query (``--split all``), the
  protocol behind the published MTEB scores (one embedding per document, cut at the
  model's 256-token window), to show that loading, embedding and search reproduce
  them (nothing is tuned on this check, so it uses the whole set as MTEB does).

Then it calibrates the "not in the documents" threshold on the relevance that
``ragkit ask`` computes from its top 4 hybrid hits (``ragkit.calibration.relevances``):
the threshold comes from the **dev** halves (answerable: every set's questions against
its own corpus), and the refusal rates it gives are measured on the **test** halves,
answerable and off-topic (one set's questions against another set's corpus).
Indexes are built once under ``--home`` and reused.

The dev/test halves are ``ragkit.evaluate.split_of`` (seed ``SPLIT_SEED``).  Prints a
table of targets with PASS/FAIL, all on test; exits 1 if one fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SETS = ("scifact", "xquad-en", "xquad-zh", "med-zh")
PUBLIC = ("scifact", "xquad-en", "xquad-zh")  # the sets with published MTEB scores
CJK = ("xquad-zh", "med-zh")
#: The sets whose answerable questions set the threshold.  med-zh is left out: with an
#: English-only embedder its questions score like off-topic ones (see README).
CALIBRATION_SETS = ("scifact", "xquad-en", "xquad-zh")

# (set, mode, protocol) -> (published, rule, target); rule "near" = within 0.01.
PUBLISHED_VECTOR = {"scifact": 0.6451, "xquad-zh": 0.2423, "xquad-en": 0.9436}
TARGETS = {
    ("scifact", "keyword"): 0.66,
    ("xquad-zh", "keyword"): 0.90,
    ("scifact", "hybrid"): 0.72,
    ("xquad-zh", "hybrid"): 0.93,
    ("xquad-en", "hybrid"): 0.96,
}
# Off-topic pairs: questions of the first set asked of the second set's corpus.
OFF_TOPIC = (("xquad-en", "scifact"), ("scifact", "xquad-en"), ("xquad-zh", "scifact"))
K_ASK = 4


def ragkit_eval(dataset: Path, env: dict[str, str], *args: str) -> list[dict]:
    """Run ``ragkit eval DATASET --json ARGS`` and return its rows."""
    cmd = [sys.executable, "-m", "ragkit", "eval", str(dataset), "--json", *args]
    print("$", " ".join(cmd[2:]), flush=True)
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, check=True, text=True)
    return json.loads(done.stdout)


def folder_of(shared: Path, name: str) -> Path:
    """Where a set lives: the shared public sets, or ours under benchmarks/data."""
    return ROOT / "benchmarks" / "data" / name if name == "med-zh" else shared / "eval" / name


def best_cosines(index_name: str, queries: list[str]) -> np.ndarray:
    """The relevance of the top hybrid hits for each query, as ``ragkit ask`` computes it."""
    from ragkit import Index
    from ragkit.calibration import relevances

    with Index.open(index_name, backend="embedded") as index:
        return np.array(relevances(queries, index.search))


def calibrate(shared: Path, names: dict[str, str]) -> dict:
    """The threshold of the dev halves (at most 5% of every set's answerable refused), and
    the refusal rates it gives on the test halves."""
    from ragkit.calibration import calibrate as highest
    from ragkit.evaluate import BeirSet

    halves = {(s, h): list(BeirSet.load(folder_of(shared, s)).half(h).queries.values())
              for s in SETS for h in ("dev", "test")}
    dev = {s: best_cosines(names[s], halves[(s, "dev")]) for s in CALIBRATION_SETS}
    threshold = min(highest(v).threshold for v in dev.values())
    answerable = {s: best_cosines(names[s], halves[(s, "test")]) for s in SETS}
    off_topic = {f"{q} -> {c}": best_cosines(names[c], halves[(q, "test")])
                 for q, c in OFF_TOPIC}
    return {
        "threshold": float(threshold),
        "dev_thresholds": {s: highest(v).threshold for s, v in dev.items()},
        "answerable_refused": {s: float(np.mean(v < threshold)) for s, v in answerable.items()},
        "off_topic_refused": {p: float(np.mean(v < threshold)) for p, v in off_topic.items()},
        "off_topic_median": {p: float(np.median(v)) for p, v in off_topic.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--home", type=Path, default=ROOT / "indexes",
                        help="where the eval indexes are built (and reused)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--skip-whole", action="store_true",
                        help="leave out the --whole-documents reproduction of MTEB's scores")
    args = parser.parse_args()

    env = {**os.environ, "RAGKIT_BACKEND": "embedded", "RAGKIT_HOME": str(args.home)}
    os.environ.update(RAGKIT_BACKEND="embedded", RAGKIT_HOME=str(args.home))
    started = time.perf_counter()
    rows: dict[tuple[str, str], dict] = {}
    for name in SETS:
        folder = folder_of(args.shared, name)
        for row in ragkit_eval(folder, env, "--retrieval", "vector,keyword,hybrid",
                               "--split", "test"):
            rows[(name, row["mode"])] = row
        if name in PUBLIC and not args.skip_whole:
            (whole,) = ragkit_eval(folder, env, "--retrieval", "vector", "--whole-documents",
                                   "--split", "all")
            rows[(name, "vector-whole")] = whole
    from ragkit.evaluate import EVAL_INDEXES, BeirSet

    names = {s: str(args.home / EVAL_INDEXES / f"eval-{s}-all-minilm") for s in SETS}
    calibration = calibrate(args.shared, names)

    checks = []
    for name in PUBLIC if not args.skip_whole else ():
        got = rows[(name, "vector-whole")]["ndcg_at_10"]
        want = PUBLISHED_VECTOR[name]
        checks.append((f"{name} vector, whole documents (published {want:.3f} ±0.01)", got,
                       abs(got - want) <= 0.01))
    for (name, mode), target in TARGETS.items():
        got = rows[(name, mode)]["ndcg_at_10"]
        checks.append((f"{name} {mode} >= {target:.2f}", got, got >= target))
    for name in SETS:
        for metric, short in (("ndcg_at_10", "nDCG@10"), ("recall_at_100", "R@100")):
            hybrid, keyword = rows[(name, "hybrid")][metric], rows[(name, "keyword")][metric]
            if name in CJK:  # an English-only embedder: hybrid must not lose to keywords
                checks.append((f"{name} hybrid {short} >= keyword ({keyword:.4f})", hybrid,
                               hybrid >= keyword))
            elif metric == "ndcg_at_10":
                parts = max(rows[(name, "vector")][metric], keyword)
                checks.append((f"{name} hybrid beats vector and keyword ({parts:.4f})", hybrid,
                               hybrid > parts))
    for name, share in calibration["answerable_refused"].items():
        if name in CALIBRATION_SETS:  # 5% on dev; on test, allow two standard errors
            n = len(BeirSet.load(folder_of(args.shared, name)).half("test").queries)
            limit = 0.05 + 2 * (0.05 * 0.95 / n) ** 0.5
            checks.append((f"{name} answerable refused <= {limit:.1%} (5% + 2 s.e.)", share,
                           share <= limit))
    for pair, share in calibration["off_topic_refused"].items():
        checks.append((f"off-topic {pair} refused >= 80%", share, share >= 0.80))

    from ragkit.evaluate import SPLIT_SEED

    print(f"\nnDCG@10 / Recall@100 on the test halves (seed {SPLIT_SEED!r}), ragkit chunking "
          "unless noted, embedded all-minilm")
    print(f"{'set':<10}{'vector':>16}{'keyword':>16}{'hybrid':>16}{'vector, whole (all)':>22}")
    for name in SETS:
        cells = [rows[(name, m)] for m in ("vector", "keyword", "hybrid")]
        whole = rows.get((name, "vector-whole"))
        print(f"{name:<10}" + "".join(
            f"{c['ndcg_at_10']:>9.4f} /{c['recall_at_100']:.3f}" for c in cells)
            + (f"{whole['ndcg_at_10']:>13.4f} /{whole['recall_at_100']:.3f}" if whole else ""))
    print(f"\nrelevance threshold for all-minilm (dev halves): {calibration['threshold']:.3f} "
          f"(per set: {calibration['dev_thresholds']})")
    for name, share in calibration["answerable_refused"].items():
        print(f"  test, answerable {name}: {share:.1%} refused")
    for pair, share in calibration["off_topic_refused"].items():
        print(f"  test, off-topic {pair}: {share:.1%} refused")
    print(f"\n{'target':<62}{'measured':>10}  result")
    for label, value, ok in checks:
        print(f"{label:<62}{value:>10.4f}  {'PASS' if ok else 'FAIL'}")
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    if args.json:
        args.json.write_text(json.dumps({
            "rows": [{"set": s, "variant": m, **r} for (s, m), r in rows.items()],
            "calibration": calibration,
            "checks": [{"target": lbl, "measured": v, "pass": ok} for lbl, v, ok in checks],
        }, indent=2))
    return 0 if all(ok for _, _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
