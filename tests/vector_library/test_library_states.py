"""Share states, kept files and like toggles: on a real SQLite file and on PostgreSQL, and from threads
acting at once (two app replicas look the same to the database as two threads with their own connections)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from db import Database, DatabaseConfig
from vector_library import InvalidInput, NotFound, PermissionDenied, VectorLibrary
from vector_library.testing import CARS, FACES, N_LATENT, W_DIM


def latent(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((N_LATENT, W_DIM)).astype(np.float32)


def test_share_state_round_trip_is_content_addressed(library, publish):
    vid = publish().id
    w = latent()
    token = library.states.save_share(FACES.model_id, w, [(vid, 0.5)], tuning="ab" * 10)
    assert len(token) == 20 and library.states.save_share(FACES.model_id, w, [(vid, 0.5)], tuning="ab" * 10) == token
    assert library.states.save_share(FACES.model_id, w, [(vid, 0.25)]) != token
    st = library.states.load_share(token)
    assert st.model_id == FACES.model_id and st.vectors == ((vid, 0.5),) and st.tuning == "ab" * 10
    assert st.w.dtype == np.float32 and np.array_equal(st.w, w)  # bit-identical


def test_a_second_library_on_the_same_database_opens_the_share(library, database):
    """What a second replica does: its own VectorLibrary (own engine and connections) on the same database."""
    token = library.states.save_share(FACES.model_id, latent(3), [])
    other_db = Database(DatabaseConfig(url=database.config.url))
    try:
        assert np.array_equal(VectorLibrary(other_db).states.load_share(token).w, latent(3))
    finally:
        other_db.dispose()


@pytest.mark.parametrize("args, words", [
    ((FACES.model_id, np.zeros((N_LATENT, W_DIM + 1), np.float32), []), r"is \[4, 8\]"),
    ((FACES.model_id, np.full((N_LATENT, W_DIM), np.nan, np.float32), []), "finite"),
    ((FACES.model_id, np.zeros(N_LATENT * W_DIM, np.float32), []), "2-d float"),
    ((FACES.model_id, latent(), [(1, float("inf"))]), "scale"),
    ((FACES.model_id, latent(), [(0, 1.0)]), "vector id"),
    ((FACES.model_id, latent(), [(i + 1, 1.0) for i in range(33)]), "at most 32"),
    (("0" * 64, latent(), []), "not registered"),
    ((CARS.model_id, latent(), []), r"is \[6, 8\]"),
])  # fmt: skip
def test_share_state_bounds(library, snapshot, args, words):
    before = snapshot()
    with pytest.raises((InvalidInput, NotFound), match=words):
        library.states.save_share(*args)
    with pytest.raises(InvalidInput, match="20 hex"):
        library.states.save_share(FACES.model_id, latent(), [], tuning="../../etc")
    assert snapshot() == before


def test_unknown_and_malformed_share_tokens(library):
    with pytest.raises(NotFound, match="points to nothing"):
        library.states.load_share("0" * 20)
    for bad in ("", "0" * 19, "G" * 20, "../" * 7, None):
        with pytest.raises(InvalidInput, match="malformed"):
            library.states.load_share(bad)


def test_kept_files_keep_the_newest_of_each_kind(library):
    st = library.states
    for i in range(4):
        st.keep_file("photo", f"{i:020x}", FACES.model_id, b"photo %d" % i, keep=3)
    st.keep_file("tuning", "f" * 20, FACES.model_id, b"tuning", keep=3)
    assert st.kept_file("photo", f"{0:020x}") is None  # the oldest went
    assert [st.kept_file("photo", f"{i:020x}").data for i in (1, 2, 3)] == [b"photo 1", b"photo 2", b"photo 3"]
    assert st.kept_file("tuning", "f" * 20).data == b"tuning" and st.kept_file("photo", "f" * 20) is None
    st.keep_file("photo", f"{3:020x}", FACES.model_id, b"photo 3", keep=3)  # again: nothing changes
    assert st.kept_file("photo", f"{1:020x}") is not None
    with pytest.raises(InvalidInput, match="kind"):
        st.keep_file("pickle", "a" * 20, FACES.model_id, b"x", keep=3)
    with pytest.raises(InvalidInput, match="bytes of data"):
        st.keep_file("photo", "a" * 20, FACES.model_id, b"", keep=3)
    with pytest.raises(NotFound):
        st.keep_file("photo", "a" * 20, "1" * 64, b"x", keep=3)


def test_toggle_like_returns_the_state_it_produced(library, publish):
    vid = publish().id
    r = library.toggle_like("bob", vid)
    assert (r.liked, r.like_count) == (True, 1) and library.has_liked("bob", vid)
    r = library.toggle_like("bob", vid)
    assert (r.liked, r.like_count) == (False, 0) and not library.has_liked("bob", vid)
    with pytest.raises(PermissionDenied):
        library.toggle_like(None, vid)
    private = publish(visibility="private").id
    with pytest.raises(NotFound):
        library.toggle_like("bob", private)


@pytest.mark.parametrize("clicks", [6, 7])
def test_concurrent_toggles_by_one_user_end_where_the_clicks_imply(library, publish, clicks):
    """The race of issue #24: each toggle read has_liked in one transaction and wrote in another, so two at
    once did the same action. Now ``clicks`` toggles at once leave the vector liked iff ``clicks`` is odd."""
    vid = publish().id
    library.toggle_like("carol", vid)  # carol's like stays: the count must move by bob's toggles only
    barrier = threading.Barrier(clicks)
    results, errors = [], []

    def click() -> None:
        barrier.wait()
        try:
            results.append(library.toggle_like("bob", vid))
        except Exception as e:  # collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=click) for _ in range(clicks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert library.has_liked("bob", vid) == (clicks % 2 == 1)
    assert library.get(vid).like_count == 1 + clicks % 2
    # every toggle changed the state: as many likes as unlikes (+1 when odd), counts 1..2 in some order
    assert sum(r.liked for r in results) == (clicks + 1) // 2
    assert sorted(r.like_count for r in results) == sorted([2] * ((clicks + 1) // 2) + [1] * (clicks // 2))
