"""``ragkit eval``: measure retrieval on BEIR-format sets, or on a folder with known answers.

BEIR form: ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl``
(``_id``, ``text``) and ``qrels/test.tsv``.  Each document is written out as a
text file of ``title + " " + text`` (what MTEB embeds) and indexed through the
normal ingest path, so the figures measure exactly what users get.  A
document's score is its best chunk's.

Folder form: a JSONL of ``{"question": ..., "source": "file.md", "page": 2}``
lines; reports the hit rate@k and MRR of the expected source.

Dev and test halves: every query of a set is in exactly one, by a hash of its id
with :data:`SPLIT_SEED` (:func:`split_of`), so the halves never change as code
changes.  ragkit's tuned constants are chosen on ``dev``; its published figures
come from ``test``.

Answers (``--answers``) are scored in :mod:`ragkit.answer_accuracy`.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError
from .metrics import mrr_at, ndcg_at, percentile, recall_at
from .retrieval import Hit

__all__ = [
    "EVAL_INDEXES",
    "SPLITS",
    "SPLIT_SEED",
    "WHOLE_DOCUMENT",
    "BeirSet",
    "EvalResult",
    "HitRateResult",
    "eval_index_path",
    "evaluate_beir",
    "evaluate_questions",
    "split_of",
]


#: Where, under the index home, ``ragkit eval`` keeps the indexes of BEIR sets: a hidden
#: folder, so they stay out of ``ragkit indexes list`` and are reused by later runs.
EVAL_INDEXES = ".eval-indexes"

#: Chunks fetched per query at first; more are fetched while fewer than 100
#: distinct documents remain after grouping (Recall@100 needs 100).
CHUNK_DEPTH = 300
DOCUMENT_DEPTH = 100
MAX_CHUNK_DEPTH = 1000  # the most Index.search returns

#: Mixed into the hash that puts a query in the dev or the test half: fixed, so a
#: query's half never changes (changing it would leak tuned-on queries into test).
SPLIT_SEED = "ragkit-15"
SPLITS = ("dev", "test", "all")


def split_of(query_id: str, seed: str = SPLIT_SEED) -> str:
    """``dev`` or ``test``: the half of a set that the query ``query_id`` belongs to.

    The first byte of sha256(seed + ":" + id) decides, so about half of the
    queries land in each, independently of their order or of the other queries.

    >>> split_of("56f7c651aef2371900625bf5"), split_of("0")
    ('test', 'dev')
    """
    digest = hashlib.sha256(f"{seed}:{query_id}".encode()).digest()
    return "dev" if digest[0] % 2 == 0 else "test"


@dataclass(frozen=True)
class BeirSet:
    """A BEIR-format dataset loaded into memory."""

    name: str
    corpus: dict[str, str]  # doc id -> title + " " + text
    queries: dict[str, str]  # query id -> text (only queries that have qrels)
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: graded relevance}
    split: str = "all"  # which half of the queries (see split_of)

    @classmethod
    def load(cls, folder: Path, split: str = "test") -> BeirSet:
        """Read a BEIR folder; a missing file is a :class:`UsageError` naming it."""
        qrels_file = folder / "qrels" / f"{split}.tsv"
        need = [folder / "corpus.jsonl", folder / "queries.jsonl", qrels_file]
        for path in need:
            if not path.is_file():
                raise UsageError(f"{path} not found — a BEIR set needs corpus.jsonl, "
                                 f"queries.jsonl and qrels/{split}.tsv")
        corpus = {
            str(d["_id"]): f"{d.get('title') or ''} {d.get('text') or ''}".strip()
            for d in _jsonl(need[0])
        }
        qrels: dict[str, dict[str, int]] = {}
        for line in need[2].read_text(encoding="utf-8").splitlines()[1:]:
            parts = line.split("\t")
            if len(parts) >= 3:
                qrels.setdefault(parts[0], {})[parts[1]] = int(float(parts[2]))
        queries = {str(q["_id"]): q["text"] for q in _jsonl(need[1]) if str(q["_id"]) in qrels}
        return cls(folder.resolve().name, corpus, queries, qrels)

    def half(self, split: str) -> BeirSet:
        """The same set with only the queries of ``split`` (``dev``, ``test`` or ``all``)."""
        if split not in SPLITS:
            raise UsageError(f"unknown split '{split}' — use dev, test or all")
        if split == "all":
            return self
        queries = {q: t for q, t in self.queries.items() if split_of(q) == split}
        return BeirSet(self.name, self.corpus, queries, {q: self.qrels[q] for q in queries},
                       split)

    def write_documents(self, folder: Path) -> Path:
        """Materialize the corpus as one text file per document, exactly and only these.

        Files already holding the right text are left alone (so a re-run's ingest
        skips them); files of documents no longer in the corpus are deleted.
        """
        folder.mkdir(parents=True, exist_ok=True)
        wanted: set[str] = set()
        for doc_id, text in self.corpus.items():
            path = folder / document_file(doc_id)
            wanted.add(path.name)
            data = text.encode("utf-8")
            if not path.is_file() or path.stat().st_size != len(data) or (
                    path.read_bytes() != data):
                path.write_bytes(data)
        for stale in folder.iterdir():
            if stale.name not in wanted:
                stale.unlink()
        return folder

    def doc_of(self) -> Callable[[Hit], str]:
        """Map a hit back to the doc id whose file (see :meth:`write_documents`) holds it."""
        doc_id = self.doc_id_of()
        return lambda hit: doc_id(hit.path)

    def doc_id_of(self) -> Callable[[str], str]:
        """Map a written document's path back to its doc id."""
        names = {document_file(doc_id): doc_id for doc_id in self.corpus}
        return lambda path: names.get(Path(path).name, path)


def document_file(doc_id: str) -> str:
    """The file name a document is written under: its id when that is safe, else a hash.

    >>> document_file("4983"), document_file("<dbpedia:Tungsten>")
    ('4983.txt', 'e7392f54bb27e9df49f52199ff1b8f55.txt')
    """
    if doc_id.replace("-", "").replace("_", "").isalnum() and len(doc_id) < 100:
        return f"{doc_id}.txt"
    return hashlib.sha256(doc_id.encode()).hexdigest()[:32] + ".txt"


def _jsonl(path: Path) -> Iterable[dict[str, Any]]:
    """The JSON objects of a JSONL file; a bad line is a :class:`UsageError` naming it."""
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if not isinstance(row, dict):
                raise UsageError(f"{path}:{n}: not a JSON object — each line of a JSONL file "
                                 "must be one")
            yield row


@dataclass(frozen=True)
class EvalResult:
    """Scores of one retrieval mode on one dataset."""

    dataset: str
    split: str
    mode: str
    queries: int
    ndcg_at_10: float
    recall_at_10: float
    recall_at_100: float
    mrr_at_10: float
    p50_ms: float
    p95_ms: float

    def as_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)


SearchFn = Callable[[str, int, str], list[Hit]]


def evaluate_beir(
    data: BeirSet,
    search: SearchFn,
    modes: Sequence[str],
    doc_of: Callable[[Hit], str],
    progress: Callable[[str, int, int], None] | None = None,
) -> list[EvalResult]:
    """Run every query in each mode and score the document rankings.

    Latency is one ``search`` call at :data:`CHUNK_DEPTH`, after a warm-up query
    (so a model's one-time load is not counted).
    """
    results = []
    for mode in modes:
        per_query: list[tuple[float, float, float, float]] = []
        latencies: list[float] = []
        if data.queries:
            search(next(iter(data.queries.values())), 1, mode)  # warm-up, not timed
        for n, (qid, text) in enumerate(data.queries.items(), 1):
            started = time.perf_counter()
            hits = search(text, CHUNK_DEPTH, mode)
            latencies.append((time.perf_counter() - started) * 1000)
            ranking = _ranking(text, mode, hits, search, doc_of)
            rel = data.qrels[qid]
            per_query.append((ndcg_at(ranking, rel, 10), recall_at(ranking, rel, 10),
                              recall_at(ranking, rel, 100), mrr_at(ranking, rel, 10)))
            if progress:
                progress(mode, n, len(data.queries))
        columns = zip(*per_query, strict=True)
        ndcg, r10, r100, mrr = ([sum(c) / len(per_query) for c in columns] if per_query
                                else [0.0] * 4)
        results.append(EvalResult(data.name, data.split, mode, len(per_query), ndcg, r10, r100,
                                  mrr, percentile(latencies, 50), percentile(latencies, 95)))
    return results


def _ranking(text: str, mode: str, hits: list[Hit], search: SearchFn,
             doc_of: Callable[[Hit], str]) -> list[str]:
    """The top documents; searched once more, to the most chunks, when few documents filled
    the first hits."""
    ranking = _documents(hits, doc_of)
    if len(ranking) < DOCUMENT_DEPTH and len(hits) == CHUNK_DEPTH:
        ranking = _documents(search(text, MAX_CHUNK_DEPTH, mode), doc_of)
    return ranking


def _documents(hits: list[Hit], doc_of: Callable[[Hit], str],
               limit: int = DOCUMENT_DEPTH) -> list[str]:
    """Distinct documents in order of their best chunk."""
    ranking: dict[str, None] = {}
    for hit in hits:
        ranking.setdefault(doc_of(hit), None)
        if len(ranking) == limit:
            break
    return list(ranking)


@dataclass(frozen=True)
class HitRateResult:
    """How often the expected source is retrieved, for a folder's question set."""

    mode: str
    questions: int
    k: int
    hit_rate: float
    mrr: float

    def as_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)


def load_questions(path: Path) -> list[dict[str, Any]]:
    """Read a questions JSONL; each line needs ``question`` and ``source``."""
    rows = list(_jsonl(path))
    if not rows:
        raise UsageError(f"{path} holds no questions — write one JSON object per line: "
                         '{"question": "...", "source": "file.md"}')
    for n, row in enumerate(rows, 1):
        if not row.get("question") or not row.get("source"):
            raise UsageError(f"{path}:{n}: each line needs \"question\" and \"source\"")
    return rows


def evaluate_questions(
    rows: list[dict[str, Any]], search: SearchFn, modes: Sequence[str], k: int
) -> list[HitRateResult]:
    """Hit rate@k and MRR of the expected source file (and page, when given)."""
    results = []
    for mode in modes:
        ranks = [_first_match(search(row["question"], k, mode), row) for row in rows]
        hit_rate = sum(r is not None for r in ranks) / len(rows) if rows else 0.0
        mrr = sum(1 / r for r in ranks if r) / len(rows) if rows else 0.0
        results.append(HitRateResult(mode, len(rows), k, hit_rate, mrr))
    return results


def _first_match(hits: list[Hit], row: dict[str, Any]) -> int | None:
    """1-based rank of the first hit from the expected source (and page)."""
    source, page = str(row["source"]), row.get("page")
    for hit in hits:
        if (hit.path.endswith("/" + source) or hit.source == source) and (
            page is None or hit.page == page
        ):
            return hit.rank
    return None


#: A chunk size no document reaches: each document becomes one chunk, and the
#: embedder cuts it at its window, as sentence-transformers does for MTEB.
WHOLE_DOCUMENT = 1_000_000


def eval_index_path(home: Path, dataset: str, embed_model: str,
                    chunking: tuple[int, int] | None = None, store: str | None = None) -> Path:
    """Where ``ragkit eval`` keeps a BEIR set's index: one per model, chunking and store.

    ``chunking``: ``(size, overlap)`` when not ingest's default; ``store``: the
    ``--store`` URI when not the local store.

    >>> eval_index_path(Path("h"), "scifact", "all-minilm:l6", (128, 16)).as_posix()
    'h/.eval-indexes/eval-scifact-all-minilm-l6-c128o16'
    >>> eval_index_path(Path("h"), "scifact", "all-minilm", (WHOLE_DOCUMENT, 0)).name
    'eval-scifact-all-minilm-whole'
    >>> eval_index_path(Path("h"), "scifact", "all-minilm", None, "/tmp/x.db").name
    'eval-scifact-all-minilm-x'
    """
    name = f"eval-{dataset}-{embed_model.replace(':', '-')}"
    if chunking is not None:
        size, overlap = chunking
        name += "-whole" if size == WHOLE_DOCUMENT else f"-c{size}o{overlap}"
    if store and store != "local":  # one eval index per store
        stem = Path(store).stem if store.endswith(".db") else "milvus"
        name += "-" + re.sub(r"[^A-Za-z0-9]+", "-", stem).strip("-")
    return home / EVAL_INDEXES / name
