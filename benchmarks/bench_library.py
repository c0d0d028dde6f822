"""Vector-library benchmark: search latency at 10k and 100k vectors, and publish throughput, on
SQLite (a file in a temporary folder) and, when $EDITGAN_TEST_PG_URL is set, on PostgreSQL.

    python benchmarks/bench_library.py                 # prints JSON, writes benchmarks/results/library.json
    python benchmarks/bench_library.py --sizes 10000   # quicker

WARNING: the PostgreSQL run empties every library table of the database it is pointed at (it is
meant for the throwaway CI database that .ci/start_postgres.sh creates).

Rows for the search runs are bulk-inserted with the same tables, triggers and indexes the app
uses (not through ``publish``, which would take hours at 100k); the text is synthetic but shaped
like real listings: short names from a feature/adjective vocabulary, descriptions drawn from a
Zipf-distributed 3,000-word vocabulary, 1-4 tags from 200, 5 models (the queried one holds 30%),
90% public. Every search is timed end to end through ``VectorLibrary.search`` (SQL + building the
result dataclasses), which is what the app waits for. Publish throughput goes through the real
``publish`` path with StyleGAN2-sized deltas [18, 512].
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from sqlalchemy import insert, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results_io import write_result
from core.vector_format import VectorFile  # noqa: E402
from db import Database, DatabaseConfig, EditVector, User, VectorBlob, VectorClass, VectorTag  # noqa: E402
from db.testing import ENV_TEST_PG_URL, postgres_url, sqlite_url, truncate_all  # noqa: E402
from vector_library import ModelSpec, SearchQuery, VectorLibrary, VectorMetadata  # noqa: E402
from vector_library.blobs import encode_payload  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "library.json"
FEATURES = ["smile", "grin", "frown", "eyes", "eyebrows", "lashes", "nose", "lips", "mouth", "teeth", "chin",
            "jaw", "cheeks", "ears", "hair", "fringe", "bangs", "curls", "beard", "moustache", "stubble",
            "glasses", "freckles", "wrinkles", "skin", "tan", "blush", "makeup", "hat", "earrings", "pose",
            "gaze", "head", "neck", "forehead", "dimples", "scar", "tattoo", "braids", "ponytail"]
ADJECTIVES = ["big", "small", "wide", "narrow", "long", "short", "curly", "straight", "dark", "light", "red",
              "blonde", "grey", "thick", "thin", "open", "closed", "happy", "sad", "angry", "surprised",
              "subtle", "strong", "soft", "sharp", "round", "square", "young", "old", "bright", "pale",
              "raised", "lowered", "crooked", "symmetric", "messy", "neat", "shiny", "matte", "natural"]
CLASSES = ["background", "skin", "eye", "brow", "nose", "mouth", "hair", "ear", "neck", "cloth"]
MODEL_SHAPE = (18, 512)


def _vocabulary(rng: np.random.Generator, n: int = 3000) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = set(FEATURES + ADJECTIVES)
    while len(words) < n:
        words.add("".join(rng.choice(letters, rng.integers(3, 10))))
    return sorted(words)


class Corpus:
    """Deterministic synthetic listings and the queries to run against them."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.vocab = _vocabulary(self.rng)
        ranks = np.arange(1, len(self.vocab) + 1)
        self.p = (1 / ranks) / (1 / ranks).sum()  # Zipf
        self.tags = [f"tag{i}" for i in range(180)] + FEATURES[:20]
        self.models = [f"{i:02d}" * 16 for i in range(1, 6)]
        self.model_p = [0.3, 0.25, 0.2, 0.15, 0.1]

    def rows(self, n: int, author_ids: list[int], blob_shas: list[str], start: datetime):
        rng = self.rng
        for i in range(n):
            name = f"{rng.choice(ADJECTIVES)} {rng.choice(FEATURES)}"
            if rng.random() < 0.3:
                name += f" {rng.choice(FEATURES)}"
            desc = " ".join(rng.choice(self.vocab, int(rng.integers(8, 40)), p=self.p))
            tags = list(dict.fromkeys(rng.choice(self.tags, int(rng.integers(1, 5)))))
            # 1-2 classes the change is about, and up to 2 more it touches (glasses touch the eyes)
            classes = list(dict.fromkeys(rng.choice(CLASSES, int(rng.integers(1, 5)))))
            subjects = classes[:int(rng.integers(1, 3))]
            created = start + timedelta(seconds=i)
            yield {
                "name": name, "description": desc, "tags_text": " ".join(tags),
                "author_id": author_ids[int(rng.integers(len(author_ids)))],
                "model_id": self.models[int(rng.choice(5, p=self.model_p))], "licence": "cc-by-4.0",
                "visibility": "public" if rng.random() < 0.9 else "private", "version": 1,
                "blob_sha256": blob_shas[i % len(blob_shas)], "edited_classes": classes, "subject_classes": subjects,
                "default_scale": 1.0, "scale_min": -3.0, "scale_max": 3.0, "metrics": {"iou": float(rng.random())},
                "has_preview": False, "parent_id": None, "parent_version": None, "created_at": created,
                "updated_at": created, "download_count": int(rng.zipf(1.5)) % 10_000,
                "like_count": int(rng.zipf(1.7)) % 5_000,
            }, tags, [(c, c in subjects) for c in classes]

    def queries(self, n: int, viewer: str) -> dict[str, list[tuple[SearchQuery, str | None]]]:
        rng = self.rng
        model = self.models[0]

        def words() -> str:
            r = rng.random()
            if r < 0.4:
                return str(rng.choice(FEATURES))                                  # "smile"
            if r < 0.7:
                return f"{rng.choice(ADJECTIVES)} {rng.choice(FEATURES)}"         # "wide smile"
            if r < 0.85:
                return str(rng.choice(FEATURES))[:3]                              # prefix "smi"
            return str(rng.choice(self.vocab, p=self.p))                          # a description word

        return {
            "text+model (relevance)": [(SearchQuery(text=words(), model_id=model), None) for _ in range(n)],
            "text+model (recent)": [(SearchQuery(text=words(), model_id=model, sort="recent"), None) for _ in range(n)],
            "text+model (likes), signed in": [(SearchQuery(text=words(), model_id=model, sort="likes"), viewer)
                                              for _ in range(n)],
            "text only (relevance)": [(SearchQuery(text=words()), None) for _ in range(n)],
            "browse model (recent)": [(SearchQuery(model_id=model, sort="recent"), None) for _ in range(n)],
            "browse all (likes)": [(SearchQuery(sort="likes"), None) for _ in range(n)],
            "tag+model (downloads)": [(SearchQuery(tag=str(rng.choice(self.tags[:40])), model_id=model,
                                                   sort="downloads"), None) for _ in range(n)],
            "class+model (recent)": [(SearchQuery(edited_class=str(rng.choice(CLASSES)), model_id=model,
                                                  sort="recent"), None) for _ in range(n)],
            "text+model page 10": [(SearchQuery(text=str(rng.choice(FEATURES)), model_id=model, page=10), None)
                                   for _ in range(n)],
        }


def seed(db: Database, corpus: Corpus, n: int, n_authors: int = 500) -> None:
    """Bulk-insert n vectors (with tags, classes, authors, models, a few shared payloads)."""
    lib = VectorLibrary(db)
    for i, model in enumerate(corpus.models):
        lib.register_model(ModelSpec(model, f"model {i}", 1024, *MODEL_SHAPE, tuple(CLASSES)))
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with db.writer.begin() as s:
        existing = s.execute(text("SELECT count(*) FROM users")).scalar()
        if existing < n_authors:
            s.execute(insert(User), [{"username": f"author{i}", "display_name": f"Author {i}", "created_at": start}
                                     for i in range(existing, n_authors)])
        author_ids = list(s.scalars(text("SELECT id FROM users ORDER BY id")))
        shas = []
        for i in range(16):
            payload, sha = encode_payload(np.full(MODEL_SHAPE, i, np.float32), None)
            if s.get(VectorBlob, sha) is None:
                s.add(VectorBlob(sha256=sha, data=payload, size=len(payload), created_at=start))
            shas.append(sha)
        base = s.execute(text("SELECT coalesce(max(id), 0) FROM edit_vectors")).scalar()
        start += timedelta(seconds=base)
    chunk = 5000
    rows = corpus.rows(n, author_ids, shas, start)
    next_id = base + 1
    while True:
        batch = [r for _, r in zip(range(chunk), rows)]
        if not batch:
            break
        vectors, tags, classes = [], [], []
        for (row, row_tags, row_classes) in batch:
            row["id"] = next_id
            vectors.append(row)
            tags += [{"vector_id": next_id, "tag": t, "position": j} for j, t in enumerate(row_tags)]
            classes += [{"vector_id": next_id, "class_name": c, "subject": about} for c, about in row_classes]
            next_id += 1
        with db.writer.begin() as s:
            s.execute(insert(EditVector), vectors)
            s.execute(insert(VectorTag), tags)
            s.execute(insert(VectorClass), classes)
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(text("SELECT setval(pg_get_serial_sequence('edit_vectors', 'id'), "
                              "(SELECT max(id) FROM edit_vectors))"))
            conn.execute(text("ANALYZE"))
        else:
            conn.execute(text("ANALYZE"))
            conn.execute(text("INSERT INTO edit_vectors_fts(edit_vectors_fts) VALUES ('optimize')"))


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def time_searches(lib: VectorLibrary, queries: dict) -> dict:
    out = {}
    for kind, items in queries.items():
        for q, viewer in items[:5]:  # warm the page cache and the statement cache
            lib.search(q, viewer)
        times, hits = [], []
        for q, viewer in items:
            t0 = time.perf_counter()
            page = lib.search(q, viewer)
            times.append((time.perf_counter() - t0) * 1000)
            hits.append(len(page.items))
        out[kind] = {"n": len(times), "p50_ms": round(percentile(times, 0.5), 2),
                     "p95_ms": round(percentile(times, 0.95), 2), "max_ms": round(max(times), 2),
                     "mean_results": round(statistics.mean(hits), 1)}
    return out


def time_publish(lib: VectorLibrary, n: int, threads: int = 1) -> dict:
    """Publishes per second through the service, [18, 512] deltas, from ``threads`` threads."""
    rng = np.random.default_rng(7)
    model = lib.list_models()[0].model_id
    files = [VectorFile(delta=rng.standard_normal(MODEL_SHAPE).astype(np.float32), model_id=model,
                        edited_classes=("mouth",), name=f"bench publish {i}") for i in range(n)]
    users = [f"publisher{i}" for i in range(threads)]
    for u in users:
        lib.ensure_user(u)
    errors: list[Exception] = []

    def work(k: int) -> None:
        for f in files[k::threads]:
            try:
                lib.publish(users[k], f, VectorMetadata(tags=("bench",)))
            except Exception as exc:  # counted and reported
                errors.append(exc)

    t0 = time.perf_counter()
    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t0
    return {"n": n, "threads": threads, "seconds": round(elapsed, 2), "per_second": round(n / elapsed, 1),
            "errors": len(errors)}


def run_backend(make_db, sizes: list[int], n_queries: int, n_publish: int) -> dict:
    result: dict = {}
    db = make_db()
    corpus = Corpus(seed=0)
    have = 0
    for size in sizes:
        t0 = time.perf_counter()
        seed(db, corpus, size - have, n_authors=500)
        have = size
        seed_s = time.perf_counter() - t0
        lib = VectorLibrary(db)
        entry = {"seed_seconds": round(seed_s, 1), "search": time_searches(lib, corpus.queries(n_queries, "author1"))}
        result[str(size)] = entry
        print(f"[bench] {db.dialect} {size}: seeded in {seed_s:.1f}s; "
              f"text+model p95 {entry['search']['text+model (relevance)']['p95_ms']} ms", file=sys.stderr)
    lib = VectorLibrary(db)
    result["publish"] = {"on_top_of_vectors": have, "single_thread": time_publish(lib, n_publish, 1),
                         "eight_threads": time_publish(lib, n_publish, 8)}
    if db.dialect == "sqlite":
        path = Path(db.engine.url.database)
        result["file_mib"] = round(sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**20, 1)
    db.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200, help="searches timed per query kind and size")
    parser.add_argument("--publish", type=int, default=400, help="vectors published for throughput")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    sizes = sorted(args.sizes)

    report: dict = {
        "benchmark": "vector library search and publish",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "sqlite": sqlite3.sqlite_version},
        "settings": {"sizes": sizes, "queries_per_kind": args.queries, "page_size": 20,
                     "target": "p95 < 50 ms for text+model at 100k on SQLite"},
    }
    with tempfile.TemporaryDirectory(prefix="bench-library-") as tmp:
        report["sqlite"] = run_backend(lambda: Database.open(sqlite_url(Path(tmp) / "bench.sqlite3")),
                                       sizes, args.queries, args.publish)
    url, why = postgres_url()
    if url and not args.no_postgres:
        def make_pg() -> Database:
            db = Database.open(url)
            truncate_all(db)
            return db
        with Database(DatabaseConfig(url=url)).engine.connect() as conn:
            report["machine"]["postgresql"] = conn.execute(text("SHOW server_version")).scalar()
        report["postgresql"] = run_backend(make_pg, sizes, args.queries, args.publish)
        truncate_all(Database(DatabaseConfig(url=url)))
    else:
        report["postgresql"] = {"skipped": why or f"--no-postgres given ({ENV_TEST_PG_URL} ignored)"}
    write_result(args.out, report)


if __name__ == "__main__":
    main()
