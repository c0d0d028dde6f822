"""Likes, downloads, saved compositions and composing vectors into one delta."""

from __future__ import annotations

import numpy as np
import pytest

from vector_library import InvalidInput, NotFound, PermissionDenied, VectorMetadata
from vector_library.testing import CARS, FACES


def test_like_and_unlike_keep_an_exact_count(library, publish):
    v = publish()
    assert library.like("bob", v.id).like_count == 1
    again = library.like("bob", v.id)
    assert (again.liked, again.changed, again.like_count) == (True, False, 1)
    assert library.like("carol", v.id).like_count == 2
    assert library.like("alice", v.id).like_count == 3  # authors may like their own
    assert library.has_liked("bob", v.id) and not library.has_liked(None, v.id)
    out = library.unlike("bob", v.id)
    assert (out.liked, out.changed, out.like_count) == (False, True, 2)
    assert library.unlike("bob", v.id).changed is False
    assert library.get(v.id).like_count == 2
    assert not library.has_liked("bob", v.id)


def test_downloads_are_counted(library, publish):
    v = publish()
    assert library.record_download(v.id) == 1
    assert library.record_download(v.id, viewer="bob") == 2
    data = library.download(v.id, viewer="carol")
    assert data == library.export_vector(v.id)  # export does not count
    assert library.get(v.id).download_count == 3


def test_compose_sums_scaled_deltas(library, publish):
    a, b = publish(name="a"), publish(name="b")
    fa, fb = library.get_vector_file(a.id), library.get_vector_file(b.id)
    out = library.compose(FACES.model_id, [(a.id, 1.5), (b.id, -0.5)], viewer="carol")
    expected = np.float32(1.5) * fa.delta + np.float32(-0.5) * fb.delta
    assert out.delta.dtype == np.float32 and out.delta.shape == (FACES.n_latent, FACES.w_dim)
    np.testing.assert_array_equal(out.delta, np.zeros_like(expected) + expected)
    assert [(i.vector_id, i.scale, i.version) for i in out.items] == [(a.id, 1.5, 1), (b.id, -0.5, 1)]
    assert out.items[0].delta.tobytes() == fa.delta.tobytes()


def test_compose_refuses_vectors_of_another_model(library, publish, make_vector):
    a = publish()
    car = library.publish("alice", make_vector(spec=CARS, edited_classes=("car",)), VectorMetadata(name="car"))
    with pytest.raises(InvalidInput, match=f"belongs to model {CARS.model_id}, not {FACES.model_id}"):
        library.compose(FACES.model_id, [(a.id, 1.0), (car.id, 1.0)])
    with pytest.raises(InvalidInput, match="belongs to model"):
        library.save_composition("alice", "mix", FACES.model_id, [(car.id, 1.0)])


@pytest.mark.parametrize("items, words", [
    ([], "1-32 entries"),
    ([(1, 1.0)] * 33, "1-32 entries"),
    ("1:1.0", "list of"),
    ([(1,)], "pair"),
    ([(1, float("nan"))], "finite"),
    ([(1, "1.0")], "finite"),
    ([(1, 1.0), (1, 2.0)], "appears twice"),
    ([("x", 1.0)], "vector id"),
    ([(1, 99.0)], "outside vector 1's range"),
])
def test_compose_refuses_bad_entries(library, publish, items, words):
    publish()
    with pytest.raises(InvalidInput, match=words):
        library.compose(FACES.model_id, items)


def test_compose_needs_visible_vectors_and_a_known_model(library, publish):
    secret = publish("alice", visibility="private")
    with pytest.raises(NotFound):
        library.compose(FACES.model_id, [(secret.id, 1.0)], viewer="bob")
    assert library.compose(FACES.model_id, [(secret.id, 1.0)], viewer="alice").items[0].vector_id == secret.id
    with pytest.raises(NotFound, match="not registered"):
        library.compose("1" * 32, [(secret.id, 1.0)], viewer="alice")


def test_saved_compositions_are_publishable_and_owned(library, publish, snapshot):
    a, b = publish(name="a"), publish("bob", name="b")
    comp = library.save_composition("carol", "my mix", FACES.model_id, [(a.id, 1.0), (b.id, 0.5)])
    assert (comp.owner, comp.visibility, comp.items) == ("carol", "private", ((a.id, 1.0), (b.id, 0.5)))
    with pytest.raises(NotFound):
        library.get_composition(comp.id, viewer="bob")
    assert library.list_compositions(viewer="bob") == ()
    published = library.update_composition("carol", comp.id, visibility="public", items=[(b.id, 2.0)])
    assert published.items == ((b.id, 2.0),)
    assert [c.id for c in library.list_compositions(viewer=None, model_id=FACES.model_id)] == [comp.id]
    assert [c.id for c in library.list_compositions(owner="carol")] == [comp.id]
    out = library.compose_saved(comp.id, FACES.model_id, viewer="bob")
    np.testing.assert_array_equal(out.delta, np.float32(2.0) * library.get_vector_file(b.id).delta)
    before = snapshot()
    with pytest.raises(PermissionDenied, match=r"only the owner of composition \d+ \(carol\)"):
        library.update_composition("bob", comp.id, name="stolen")
    with pytest.raises(PermissionDenied):
        library.delete_composition("bob", comp.id)
    with pytest.raises(PermissionDenied, match="anonymous"):
        library.save_composition(None, "x", FACES.model_id, [(a.id, 1.0)])
    with pytest.raises(InvalidInput, match=f"is for model {FACES.model_id}"):
        library.compose_saved(comp.id, CARS.model_id, viewer="bob")
    assert snapshot() == before
    library.delete_composition("carol", comp.id)
    with pytest.raises(NotFound):
        library.get_composition(comp.id, viewer="carol")


def test_composition_with_a_deleted_vector_says_so(library, publish):
    a, b = publish("alice", name="a"), publish("bob", name="b")
    comp = library.save_composition("carol", "mix", FACES.model_id, [(a.id, 1.0), (b.id, 1.0)],
                                    visibility="public")
    library.delete("alice", a.id)
    assert library.get_composition(comp.id).items == ((None, 1.0), (b.id, 1.0))
    with pytest.raises(NotFound, match="entry 1 of composition .* deleted"):
        library.compose_saved(comp.id, FACES.model_id)


def test_composition_with_a_vector_made_private_is_refused_for_others(library, publish):
    a = publish("alice", name="a")
    comp = library.save_composition("carol", "mix", FACES.model_id, [(a.id, 1.0)], visibility="public")
    library.unpublish("alice", a.id)
    with pytest.raises(NotFound, match=f"no vector {a.id} is visible"):
        library.compose_saved(comp.id, FACES.model_id, viewer="carol")
