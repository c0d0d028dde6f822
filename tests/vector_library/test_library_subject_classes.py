"""What a vector is about: its subject classes, found from its painted change at publish, drive the class filter.

The tiny FACES model's classes are background, face, eye, hair and mouth."""

from __future__ import annotations

import numpy as np

from db.migrate import downgrade
from vector_library import SearchQuery, VectorMetadata


def hair_over_the_eyes() -> np.ndarray:
    """uint8 [2, 16, 16]: hair grown over both eyes and the face between and above them: hair is on 32 changed
    pixels, the face on 24 (this fixture has no skin class, so the face is no context class) and the eyes on 8."""
    before = np.ones((16, 16), np.uint8)  # face
    before[6:8, 3:5] = 2  # eye
    before[6:8, 10:12] = 2  # eye
    after = before.copy()
    after[4:8, 3:5] = 3
    after[4:8, 10:12] = 3
    after[4:8, 6:10] = 3
    return np.stack([before, after])


def ids(page) -> list[int]:
    return [v.id for v in page.items]


def test_subject_classes_come_from_the_painted_change(library, make_vector):
    change = hair_over_the_eyes()
    v = library.publish("alice", make_vector(edited_classes=("hair", "face", "eye"), change=change),
                        VectorMetadata(name="bangs"))
    assert v.edited_classes == ("hair", "face", "eye")  # every class it touches, as the file lists them
    assert v.subject_classes == ("hair", "face")  # the eyes are on 8 changed pixels, under half of hair's 32
    assert library.get(v.id).subject_classes == ("hair", "face")
    assert [x.subject_classes for x in library.versions(v.id)] == [("hair", "face")]


def test_the_class_filter_finds_what_a_vector_is_about_not_all_it_touches(library, make_vector):
    bangs = library.publish("alice", make_vector(edited_classes=("hair", "face", "eye"), change=hair_over_the_eyes()),
                            VectorMetadata(name="bangs"))
    eyes = library.publish("bob", make_vector(edited_classes=("eye",)), VectorMetadata(name="wide eyes"))
    assert ids(library.search(SearchQuery(edited_class="hair"))) == [bangs.id]
    assert ids(library.search(SearchQuery(edited_class="eye"))) == [eyes.id]  # bangs touch the eyes, are not about them
    assert ids(library.search(SearchQuery(edited_class="eye", text="bangs"))) == []


def test_without_a_painted_change_every_edited_class_is_a_subject(library, make_vector):
    v = library.publish("alice", make_vector(edited_classes=("mouth", "eye")), VectorMetadata(name="no change"))
    assert v.subject_classes == ("mouth", "eye")
    assert ids(library.search(SearchQuery(edited_class="eye"))) == [v.id]


def test_a_change_that_disagrees_with_the_edited_classes_does_not_invent_subjects(library, make_vector):
    """A hand-made file whose change is about hair but whose edited classes say mouth: the subjects stay within the
    edited classes (all of them, as nothing of the change is among them)."""
    v = library.publish("alice", make_vector(edited_classes=("mouth",), change=hair_over_the_eyes()),
                        VectorMetadata(name="odd"))
    assert v.subject_classes == ("mouth",)
    assert ids(library.search(SearchQuery(edited_class="hair"))) == []


def test_a_new_version_brings_its_own_subjects(library, make_vector):
    v = library.publish("alice", make_vector(edited_classes=("mouth", "eye")), VectorMetadata(name="v"))
    v2 = library.publish_version("alice", v.id, make_vector(edited_classes=("hair", "face", "eye"),
                                                            change=hair_over_the_eyes()))
    assert v2.subject_classes == ("hair", "face")
    assert [x.subject_classes for x in library.versions(v.id)] == [("mouth", "eye"), ("hair", "face")]
    assert ids(library.search(SearchQuery(edited_class="mouth"))) == []
    assert ids(library.search(SearchQuery(edited_class="hair"))) == [v.id]



def test_vectors_published_before_subject_classes_keep_every_class_as_a_subject(library, database, make_vector):
    """Migration 0004 on a library with vectors: their subject classes are all their edited classes, so the class
    filter finds them by any class, as it did before."""
    v = library.publish("alice", make_vector(edited_classes=("hair", "face", "eye"), change=hair_over_the_eyes()),
                        VectorMetadata(name="bangs"))
    downgrade(database.engine, "0003")
    database.upgrade()
    assert library.get(v.id).subject_classes == ("hair", "face", "eye")
    assert [x.subject_classes for x in library.versions(v.id)] == [("hair", "face", "eye")]
    assert ids(library.search(SearchQuery(edited_class="eye"))) == [v.id]
