"""What a misbehaving server costs the client: memory for a huge reply, time for a long line.

Each case runs the Ollama client in a fresh child process against the test
server (``tests/ollama_server.py``) with one fault injected, and prints what
the child measured:

* **huge reply**: ``/api/embed`` answers one text with ``--huge-mb`` MB of
  numbers (one endless vector).  Printed: the child's peak RSS growth during
  the call, and how the call ended.  Then the worst a full batch can cost:
  a request of ``--batch`` texts answered with ``--batch-mb`` MB (just under
  that request's cap), which is read and parsed before it is refused.
* **long line**: ``/api/chat`` streams a first record whose text is
  ``--line-mb`` MB on one line.  Printed: the seconds to read the stream.

``--ragkit PATH`` measures another checkout (e.g. the code before a change);
the server always comes from this one.  Run:
``python benchmarks/bench_server_faults.py [--ragkit /path/to/checkout]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# The child: call the client once, report peak RSS growth (kB) and wall time as JSON.
CHILD = r"""
import json, resource, sys, time
from ragkit.backends.ollama import OllamaClient

case, url = sys.argv[1], sys.argv[2]
client = OllamaClient(url, timeout=600, retries=0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
try:
    if case.startswith("huge"):
        texts = ["x"] * int(case[4:] or 1)
        outcome = f"returned shape {client.embed('all-minilm', texts).shape}"
    else:
        chunks = list(client.chat("smollm2:135m", [{"role": "user", "content": "hi"}]))
        outcome = f"read {sum(len(c.text) for c in chunks):,} characters"
except Exception as exc:  # the outcome is part of the figure
    outcome = f"{type(exc).__name__}: {str(exc)[:110]}"
seconds = time.perf_counter() - started
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"seconds": seconds, "rss_kb": grown, "outcome": outcome}))
"""


def measure(case: str, url: str, ragkit: Path) -> dict[str, object]:
    """Run the client for ``case`` in a child process; its JSON report."""
    env = {**os.environ, "PYTHONPATH": str(ragkit), "NO_PROXY": "*"}
    done = subprocess.run([sys.executable, "-c", CHILD, case, url], env=env, text=True, cwd=ragkit,
                          capture_output=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Inject each fault, measure the client, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ragkit", type=Path, default=ROOT, help="checkout whose client to run")
    parser.add_argument("--huge-mb", type=float, default=100)
    parser.add_argument("--line-mb", type=float, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batch-mb", type=float, default=12.5)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from ollama_server import FakeOllama

    print(f"client from {args.ragkit.resolve()}")
    with FakeOllama() as server:
        server.fail("/api/embed", f"huge:{args.huge_mb:g}")
        huge = measure("huge", server.url, args.ragkit)
        print(f"huge reply ({args.huge_mb:g} MB to /api/embed, 1 text): peak RSS "
              f"+{huge['rss_kb'] / 1024:.1f} MB in {huge['seconds']:.2f} s — {huge['outcome']}")
        server.fail("/api/embed", f"huge:{args.batch_mb:g}")
        batch = measure(f"huge{args.batch}", server.url, args.ragkit)
        print(f"huge reply ({args.batch_mb:g} MB to /api/embed, {args.batch} texts): peak RSS "
              f"+{batch['rss_kb'] / 1024:.1f} MB in {batch['seconds']:.2f} s — {batch['outcome']}")
        server.fail("/api/chat", f"longline:{args.line_mb:g}")
        line = measure("line", server.url, args.ragkit)
        print(f"long line ({args.line_mb:g} MB in one NDJSON record): {line['seconds']:.2f} s — "
              f"{line['outcome']}")


if __name__ == "__main__":
    main()
