"""Compare chunker settings by retrieval quality, to choose the defaults by data.

    python benchmarks/compare_chunking.py [--sets xquad-en,xquad-zh,scifact]
                                          [--sizes 100,200,300] [--shared ../shared]

For each set and each chunk size (overlap = 15% of the size), runs ``ragkit eval``
on the embedded all-minilm in vector, keyword and hybrid mode, plus one run with
``--whole-documents``, and prints nDCG@10 / Recall@100 side by side, on the dev half
of each set's queries unless ``--split`` says otherwise (the chunk size is a tuned
constant: choose it on dev, report test).  Indexes are built once under ``--home``
and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ("vector", "keyword", "hybrid")


def run_eval(folder: Path, env: dict[str, str], extra: list[str]) -> dict[str, str]:
    cmd = [sys.executable, "-m", "ragkit", "eval", str(folder), "--json",
           "--retrieval", ",".join(MODES), *extra]
    print("$", " ".join(cmd[2:]), file=sys.stderr, flush=True)
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, check=True, text=True).stdout
    return {row["mode"]: f"{row['ndcg_at_10']:.4f}/{row['recall_at_100']:.3f}"
            for row in json.loads(out)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--home", type=Path, default=ROOT / "indexes")
    parser.add_argument("--sets", default="xquad-en,xquad-zh,scifact")
    parser.add_argument("--sizes", default="100,200,300")
    parser.add_argument("--split", default="dev", choices=["dev", "test", "all"])
    args = parser.parse_args()
    env = {**os.environ, "RAGKIT_BACKEND": "embedded", "RAGKIT_HOME": str(args.home)}

    rows = []
    for name in args.sets.split(","):
        folder = args.shared / "eval" / name
        for size in (int(s) for s in args.sizes.split(",")):
            overlap = round(size * 0.15)
            scores = run_eval(folder, env, ["--chunk-size", str(size), "--split", args.split,
                                            "--chunk-overlap", str(overlap)])
            rows.append((name, f"{size} / {overlap}", scores))
        rows.append((name, "whole document", run_eval(folder, env, ["--whole-documents",
                                                                    "--split", args.split])))

    print(f"\nnDCG@10/Recall@100, {args.split} half")
    print(f"{'set':<10}{'chunk size / overlap':>22}" + "".join(f"{m:>14}" for m in MODES))
    for name, label, scores in rows:
        print(f"{name:<10}{label:>22}" + "".join(f"{scores[m]:>14}" for m in MODES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
