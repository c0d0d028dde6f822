"""Eight threads publishing, liking, downloading and searching at once: 1,600 operations on one
database, no error, nothing lost, every counter exact afterwards."""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np

from vector_library import SearchQuery, VectorMetadata
from vector_library.testing import FACES, random_vector

THREADS = 8
OPS_PER_THREAD = 200  # 8 x 200 = 1,600 operations


def test_concurrent_publish_like_search(library, database, snapshot, caplog):
    users = [f"user{i}" for i in range(THREADS)]
    for u in users:
        library.ensure_user(u)
    targets = [library.publish(u, random_vector(np.random.default_rng(i)), VectorMetadata(name=f"target {i}")).id
               for i, u in enumerate(users)]

    def plan(i: int) -> list[tuple]:
        """Thread i's operations, in order: a deterministic mix of the four kinds."""
        ops = []
        for k in range(OPS_PER_THREAD):
            kind = k % 4
            target = targets[(i + k) % THREADS]
            if kind == 0:
                ops.append(("publish", f"conc t{i}x{k}"))
            elif kind == 1:
                ops.append(("like" if (k // 4) % 3 != 2 else "unlike", target))
            elif kind == 2:
                ops.append(("download", target))
            else:
                ops.append(("search", f"conc t{(i + k) % THREADS}"))
        return ops

    plans = [plan(i) for i in range(THREADS)]
    errors: list[BaseException] = []
    done = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)

    def worker(i: int) -> None:
        rng = np.random.default_rng(100 + i)
        barrier.wait()
        for op, arg in plans[i]:
            try:
                if op == "publish":
                    library.publish(users[i], random_vector(rng, FACES), VectorMetadata(name=arg, tags=("conc",)))
                elif op == "like":
                    library.like(users[i], arg)
                elif op == "unlike":
                    library.unlike(users[i], arg)
                elif op == "download":
                    library.record_download(arg, viewer=users[i])
                else:
                    page = library.search(SearchQuery(text=arg, model_id=FACES.model_id, page_size=10))
                    assert all(v.visibility == "public" and v.model_id == FACES.model_id for v in page.items)
                with lock:
                    done[op] += 1
            except BaseException as exc:  # collected and reported below
                with lock:
                    errors.append(exc)

    caplog.set_level("WARNING", logger="vector_library.service")
    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start

    assert errors == [], f"{len(errors)} errors, first: {errors[0]!r}"
    assert sum(done.values()) == THREADS * OPS_PER_THREAD == 1600

    # Expected final state, replayed per user (a user's own likes are sequential in its thread).
    liked: dict[tuple[str, int], bool] = {}
    downloads = Counter()
    for i, ops in enumerate(plans):
        for op, arg in ops:
            if op in ("like", "unlike"):
                liked[(users[i], arg)] = op == "like"
            elif op == "download":
                downloads[arg] += 1
    for t in targets:
        info = library.get(t)
        assert info.like_count == sum(1 for (u, v), on in liked.items() if v == t and on), t
        assert info.download_count == downloads[t], t
    state = snapshot()
    assert len(state["likes"]) == sum(liked.values())

    published = {f"conc t{i}x{k}" for i in range(THREADS) for k in range(0, OPS_PER_THREAD, 4)}
    assert library.count_vectors() == THREADS + len(published) == 408
    found = set()
    for page_no in range(1, 6):
        page = library.search(SearchQuery(tag="conc", page=page_no, page_size=100))
        found |= {v.name for v in page.items}
    assert found == published
    assert len(state["vector_versions"]) == 408
    retries = sum("retrying" in r.getMessage() for r in caplog.records)
    print(f"\n[concurrency:{database.dialect}] 1600 ops in 8 threads: {elapsed:.1f} s, "
          f"{1600 / elapsed:.0f} ops/s, errors: {len(errors)}, transaction retries: {retries}")


def test_replicas_registering_one_model_at_once_all_succeed(library):
    """Two app replicas starting together both register their generator: one inserts, the others find it."""
    from vector_library import ModelSpec

    spec = ModelSpec("cd" * 8, "racing model", 16, 6, 32, ("background", "skin"))
    barrier = threading.Barrier(THREADS)
    results, errors = [], []

    def register() -> None:
        barrier.wait()
        try:
            results.append(library.register_model(spec))
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=register) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:2]
    assert len(results) == THREADS and all(r == results[0] for r in results)
