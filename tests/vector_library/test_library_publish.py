"""Publishing, versions, remixes, metadata edits, unpublish/delete and ownership."""

from __future__ import annotations

from datetime import timezone

import numpy as np
import pytest

from vector_library import (
    Conflict,
    InvalidInput,
    MetadataUpdate,
    ModelSpec,
    NotFound,
    PermissionDenied,
    SearchQuery,
    VectorMetadata,
)
from vector_library.testing import CARS, CLASSES, FACES, N_LATENT, W_DIM


def test_publish_from_vector_file_and_from_upload_bytes(library, make_vector):
    vf = make_vector(name="header name", description="header text", metrics={"loss": 0.5})
    a = library.publish("alice", vf, VectorMetadata(tags=("smile", "mouth"), licence="mit"))
    assert (a.name, a.description, a.tags, a.licence, a.author) == \
        ("header name", "header text", ("smile", "mouth"), "mit", "alice")
    assert (a.version, a.visibility, a.like_count, a.download_count) == (1, "public", 0, 0)
    assert a.metrics == {"loss": 0.5} and a.edited_classes == ("mouth",)
    assert a.created_at.tzinfo is not None and a.created_at.utcoffset().total_seconds() == 0

    b = library.publish("bob", make_vector().to_bytes(), VectorMetadata(name="uploaded"))
    assert b.name == "uploaded" and b.id != a.id
    back = library.get_vector_file(a.id)
    assert back.delta.tobytes() == vf.delta.tobytes()
    assert (back.name, back.model_id, back.metrics) == ("header name", FACES.model_id, {"loss": 0.5})


def test_published_file_round_trips_bit_exact_with_preview(library, make_vector):
    preview = np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)
    vf = make_vector(preview=preview, name="with preview")
    v = library.publish("alice", vf)
    assert v.has_preview
    assert library.export_vector(v.id) == vf.to_bytes()
    assert np.array_equal(library.get_preview(v.id), preview)


def test_a_vectors_painted_change_is_stored_and_served_with_it(library, make_vector):
    change = np.zeros((2, 16, 16), np.uint8)
    change[1, 2:5, 2:5] = 2
    vf = make_vector(change=change, name="with its change")
    v = library.publish("alice", vf)
    assert np.array_equal(library.get_vector_file(v.id).change, change)
    assert library.export_vector(v.id) == vf.to_bytes()
    plain = library.publish("alice", make_vector(name="without"))
    assert library.get_vector_file(plain.id).change is None


def test_identical_tensors_share_one_stored_payload(library, make_vector, snapshot):
    vf = make_vector()
    a = library.publish("alice", vf, VectorMetadata(name="one"))
    b = library.publish("bob", vf, VectorMetadata(name="two"))
    assert a.content_sha256 == b.content_sha256
    assert len(snapshot()["vector_blobs"]) == 1


def test_anonymous_users_may_browse_but_not_publish(library, publish, make_vector):
    v = publish()
    with pytest.raises(PermissionDenied, match="anonymous users may browse but not publish"):
        library.publish(None, make_vector())
    with pytest.raises(PermissionDenied, match="anonymous"):
        library.like(None, v.id)
    assert library.get(v.id).id == v.id
    assert library.search(SearchQuery()).items[0].id == v.id


def test_unknown_user_and_unknown_model_are_refused(library, make_vector):
    with pytest.raises(NotFound, match="no user named 'mallory'"):
        library.publish("mallory", make_vector())
    with pytest.raises(NotFound, match="not registered"):
        library.publish("alice", make_vector(model_id="9" * 32))


def test_vector_must_fit_its_model(library, make_vector):
    with pytest.raises(InvalidInput, match=rf"shape \[{N_LATENT + 1}, {W_DIM}\].*takes \[{N_LATENT}, {W_DIM}\]"):
        library.publish("alice", make_vector(shape=(N_LATENT + 1, W_DIM)))
    with pytest.raises(InvalidInput, match="'wing' are not classes"):
        library.publish("alice", make_vector(edited_classes=("wing",)))
    with pytest.raises(InvalidInput, match=r"takes \[6, 8\]"):
        library.publish("alice", make_vector(model_id=CARS.model_id))


def test_register_model_is_idempotent_and_refuses_a_changed_spec(library):
    same = ModelSpec(FACES.model_id, "tiny faces", 32, N_LATENT, W_DIM, CLASSES)
    assert library.register_model(same) == same
    with pytest.raises(Conflict, match="already registered"):
        library.register_model(ModelSpec(FACES.model_id, "tiny faces", 32, N_LATENT, W_DIM + 1, CLASSES))
    assert library.get_model(FACES.model_id).w_dim == W_DIM
    assert {m.model_id for m in library.list_models()} == {FACES.model_id, CARS.model_id}


def test_ensure_user_is_idempotent(library):
    a = library.ensure_user("alice")
    assert library.ensure_user("alice") == a == library.get_user("alice")
    with pytest.raises(InvalidInput, match="username"):
        library.ensure_user("../admin")
    with pytest.raises(InvalidInput, match="username"):
        library.ensure_user("")


def test_new_versions_keep_history(library, publish, make_vector):
    v = publish(edited_classes=("mouth",), default_scale=1.0)
    old = library.get_vector_file(v.id)
    new_file = make_vector(edited_classes=("eye", "mouth"), default_scale=0.5, scale_min=-1, scale_max=1,
                           metrics={"iou": 0.9})
    v2 = library.publish_version("alice", v.id, new_file, note="sharper")
    assert (v2.id, v2.version, v2.edited_classes, v2.default_scale) == (v.id, 2, ("eye", "mouth"), 0.5)
    versions = library.versions(v.id)
    assert [x.number for x in versions] == [1, 2]
    assert versions[1].note == "sharper" and versions[1].metrics == {"iou": 0.9}
    assert versions[0].edited_classes == ("mouth",)
    assert library.get_vector_file(v.id, version=1).delta.tobytes() == old.delta.tobytes()
    assert library.get_vector_file(v.id).delta.tobytes() == new_file.delta.tobytes()
    assert library.search(SearchQuery(edited_class="eye")).items[0].id == v.id
    with pytest.raises(NotFound, match="has no version 3"):
        library.get_vector_file(v.id, version=3)


def test_only_the_author_publishes_versions(library, publish, make_vector, snapshot):
    v = publish()
    before = snapshot()
    with pytest.raises(PermissionDenied, match=r"only the author of vector \d+ \(alice\)"):
        library.publish_version("bob", v.id, make_vector())
    with pytest.raises(InvalidInput, match="claims model"):
        library.publish_version("alice", v.id, make_vector(spec=CARS))
    assert snapshot() == before


def test_remix_records_its_parent(library, publish, make_vector):
    parent = publish("alice", "original")
    library.publish_version("alice", parent.id, make_vector())
    child = library.remix("bob", parent.id, make_vector(), VectorMetadata(name="remixed"))
    assert (child.parent_id, child.parent_version, child.author, child.version) == (parent.id, 2, "bob", 1)
    assert [r.id for r in library.remixes(parent.id)] == [child.id]
    with pytest.raises(InvalidInput, match="model of its parent"):
        library.remix("bob", parent.id, make_vector(spec=CARS))


def test_private_parent_cannot_be_remixed_by_others(library, publish, make_vector):
    secret = publish("alice", visibility="private")
    with pytest.raises(NotFound, match="not visible|is private"):
        library.remix("bob", secret.id, make_vector())


def test_edit_metadata(library, publish):
    v = publish(tags=("a", "b"))
    out = library.update_metadata("alice", v.id, MetadataUpdate(
        name="renamed", description="new\ntext", tags=("c",), licence="cc0-1.0", scale_max=5.0))
    assert (out.name, out.description, out.tags, out.licence, out.scale_max) == \
        ("renamed", "new\ntext", ("c",), "cc0-1.0", 5.0)
    assert out.updated_at >= v.updated_at
    assert library.search(SearchQuery(tag="c")).items[0].id == v.id
    assert library.search(SearchQuery(tag="a")).items == ()
    assert library.search(SearchQuery(text="renamed")).items[0].id == v.id
    assert library.search(SearchQuery(text="smile")).items == ()
    with pytest.raises(InvalidInput, match="must lie within"):
        library.update_metadata("alice", v.id, MetadataUpdate(default_scale=7.0))
    with pytest.raises(InvalidInput, match="licence 'wtfpl' is not accepted"):
        library.update_metadata("alice", v.id, MetadataUpdate(licence="wtfpl"))


def test_only_the_author_edits_unpublishes_or_deletes(library, publish, snapshot):
    v = publish()
    before = snapshot()
    with pytest.raises(PermissionDenied, match="may edit"):
        library.update_metadata("bob", v.id, MetadataUpdate(name="mine now"))
    with pytest.raises(PermissionDenied, match="may edit"):
        library.unpublish("bob", v.id)
    with pytest.raises(PermissionDenied, match="may delete"):
        library.delete("bob", v.id)
    with pytest.raises(PermissionDenied, match="anonymous"):
        library.delete(None, v.id)
    assert snapshot() == before


def test_private_vectors_are_visible_to_their_author_alone(library, publish):
    secret = publish("alice", "secret sauce", visibility="private")
    public = publish("alice", "open sauce")
    assert {x.id for x in library.search(SearchQuery(text="sauce"), viewer="alice").items} == {secret.id, public.id}
    for viewer in ("bob", None):
        assert [x.id for x in library.search(SearchQuery(text="sauce"), viewer=viewer).items] == [public.id]
        with pytest.raises(NotFound, match="not exist or is private"):
            library.get(secret.id, viewer=viewer)
        with pytest.raises(NotFound):
            library.get_vector_file(secret.id, viewer=viewer)
        with pytest.raises(NotFound):
            library.record_download(secret.id, viewer=viewer)
    with pytest.raises(NotFound):
        library.like("bob", secret.id)
    with pytest.raises(NotFound):
        library.update_metadata("bob", secret.id, MetadataUpdate(name="x"))
    assert library.get(secret.id, viewer="alice").visibility == "private"


def test_unpublish_hides_and_republish_shows(library, publish):
    v = publish()
    library.unpublish("alice", v.id)
    with pytest.raises(NotFound):
        library.get(v.id, viewer="bob")
    library.set_visibility("alice", v.id, "public")
    assert library.get(v.id, viewer="bob").visibility == "public"


def test_delete_removes_versions_likes_and_orphan_payloads(library, publish, make_vector, snapshot):
    keep = publish("bob", "keep")
    v = publish("alice", "doomed")
    library.publish_version("alice", v.id, make_vector())
    library.like("bob", v.id)
    child = library.remix("bob", v.id, make_vector(), VectorMetadata(name="child"))
    library.delete("alice", v.id)
    with pytest.raises(NotFound):
        library.get(v.id, viewer="alice")
    state = snapshot()
    assert state["likes"] == []
    assert {row[1] for row in state["vector_versions"]} == {keep.id, child.id}
    assert len(state["vector_blobs"]) == 2  # the deleted vector's two payloads are gone
    assert library.get(child.id).parent_id is None
    assert library.search(SearchQuery(text="doomed")).items == ()
    with pytest.raises(NotFound):
        library.delete("alice", v.id)


def test_delete_keeps_payloads_still_used_elsewhere(library, make_vector, snapshot):
    vf = make_vector()
    a = library.publish("alice", vf, VectorMetadata(name="a"))
    library.publish("bob", vf, VectorMetadata(name="b"))
    library.delete("alice", a.id)
    assert len(snapshot()["vector_blobs"]) == 1
    assert library.export_vector(library.search(SearchQuery()).items[0].id) != b""


def test_bad_ids_are_refused(library):
    for bad in (0, -1, "1", 1.5, None, True, 2**31, 10**12):
        with pytest.raises(InvalidInput, match="vector id"):
            library.get(bad)
    with pytest.raises(NotFound):
        library.get(2**31 - 1)


def test_datetimes_are_utc_aware(library, publish):
    v = publish()
    info = library.get(v.id)
    assert info.created_at.tzinfo is not None and info.created_at.astimezone(timezone.utc) == info.created_at
