"""Cold start: ``ragkit --help``, and ``ragkit search`` on a 10k-chunk index (issue 5).

Each measurement is a fresh process, timed from start to exit, the median of
``--runs`` runs.  The index holds 10,000 chunks of generated English-like text
with clustered 384-d vectors (written through ``ragkit.store.local.Store`` under the
all-minilm manifest, so the real embedded engine embeds the query).
Targets: ``--help`` <= 0.3 s; ``search`` <= 1.0 s, process start to printed hits.

Run: ``python benchmarks/bench_coldstart.py [--runs 5] [--chunks 10000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench_search import Text, Vectors  # noqa: E402

from ragkit.chunking import Chunk  # noqa: E402
from ragkit.store.local import Store  # noqa: E402
from ragkit.store.tables import FileRecord  # noqa: E402

RAGKIT = str(Path(sys.executable).with_name("ragkit"))


def build_index(root: Path, n: int) -> None:
    """``n`` chunks, 50 per file, with the manifest ragkit writes for all-minilm."""
    store = Store.create(root, {"embed_model": "all-minilm", "dimension": 384,
                                "chunker": {"size": 200, "overlap": 30},
                                "query_prefix": "", "document_prefix": ""})
    rng = np.random.default_rng(1)
    text, data = Text(), Vectors().sample(n, seed=1)
    with store.transaction() as tx:
        for start in range(0, n, 50):
            rows = [Chunk(text.sample(150, rng), i, i + 1, f"Section {i % 7}")
                    for i in range(start, min(n, start + 50))]
            tx.put_file(FileRecord(f"/corpus/f{start:06d}.md", "x", 0, 0, len(rows)), rows,
                        data[start : start + len(rows)])
    store.save_vectors()
    store.close()


def timed(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--json", dest="json_out", help="also write the figures to this file")
    args = parser.parse_args()
    env = {**os.environ, "RAGKIT_BACKEND": "embedded"}
    with tempfile.TemporaryDirectory(prefix="ragkit-cold-") as tmp:
        index = Path(tmp) / "cold"
        build_index(index, args.chunks)
        timed([RAGKIT, "search", "warm the page cache", "--index", str(index)], env)
        helps = [timed([RAGKIT, "--help"], env)[0] for _ in range(args.runs)]
        searches, out = [], ""
        for n in range(args.runs):
            seconds, out = timed([RAGKIT, "search", f"how often are backups run {n}",
                                  "--index", str(index), "-k", "5"], env)
            searches.append(seconds)
    result = {"help": statistics.median(helps), "search": statistics.median(searches),
              "help_runs": helps, "search_runs": searches, "chunks": args.chunks}
    print(out.splitlines()[0] if out else "(no hits printed)")
    print(f"\n{'measure':44} {'median s':>9} {'max s':>7}  {'target':8} met")
    for name, key, target in (("ragkit --help", "help", 0.3),
                              (f"ragkit search, {args.chunks} chunks, embedded", "search", 1.0)):
        runs = result[f"{key}_runs"]
        print(f"{name:44} {result[key]:9.3f} {max(runs):7.3f}  <= {target:<5} "
              f"{'yes' if result[key] <= target else 'NO'}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
