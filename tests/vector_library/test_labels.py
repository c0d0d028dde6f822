"""Label sets (vector_library.labels) on SQLite and PostgreSQL: set and class rules, members, samples, claims,
versioned masks with conflicts, the training lock, branch versions, hostile input, and two users at once."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import timedelta
from functools import partial

import numpy as np
import pytest
from safetensors.numpy import save as save_safetensors

from db.models import utcnow
from vector_library import (
    FACE_TEMPLATE,
    Conflict,
    InvalidInput,
    LabelClass,
    LabelConflict,
    LabelStore,
    LibraryError,
    NotFound,
    PermissionDenied,
    SampleClaimed,
    TrainingBusy,
)
from vector_library.label_records import MAX_BRANCH_BYTES, MAX_SAMPLES_PER_SET
from vector_library.testing import CARS, FACES

RES = 16
CLASSES = [("background", (0, 0, 0)), ("skin", (255, 200, 150)), ("eye", (0, 120, 255))]
HOSTILE = ["<img src=x onerror=alert(1)>", "a\nb", "x\x00", "", "   ", "a" * 41, "eye;DROP TABLE users", "\u202eeye"]


class Clock:
    """A settable UTC clock shared by LabelStores, to expire claims and jobs without sleeping."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(library, database, clock) -> LabelStore:
    return LabelStore(database, clock=clock)


@pytest.fixture
def labelled(store):
    """A set of alice's with bob as a member and three samples."""
    info = store.create_set(FACES.model_id, "faces v1", "alice", CLASSES, RES)
    store.add_member(info.id, "alice", "bob")
    samples = store.add_samples(info.id, "alice", [1, 2, 3], 0.7)
    return info, samples


def mask(value: int = 1, res: int = RES, fill: int = 0) -> np.ndarray:
    m = np.full((res, res), fill, dtype=np.uint8)
    m[: res // 2] = value
    return m


def weights(n: int = 4) -> bytes:
    return save_safetensors({"w": np.arange(n, dtype=np.float32)})


# ---------------------------------------------------------------------- sets and classes
def test_create_set_returns_info_and_is_listed(store):
    info = store.create_set(FACES.model_id, "faces v1", "alice", CLASSES, RES)
    assert info.name == "faces v1" and info.owner == "alice" and info.members == ("alice",)
    assert info.classes == tuple(LabelClass(n, c) for n, c in CLASSES)
    assert (info.locked, info.public, info.resolution, info.n_samples, info.n_labelled) == (False, False, RES, 0, 0)
    assert store.get_set(info.id) == info
    assert store.sets_for_model(FACES.model_id) == [info] and store.sets_for_model(CARS.model_id) == []


def test_face_template_is_the_shipped_palette_and_needs_no_torch(store):
    code = ("import sys, core.data.palette, vector_library.labels; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    from core.data.palette import CLASS_NAMES, PALETTE
    assert [n for n, _ in FACE_TEMPLATE] == list(CLASS_NAMES)
    assert [list(c) for _, c in FACE_TEMPLATE] == PALETTE.tolist()
    info = store.create_set(FACES.model_id, "faces", "alice", FACE_TEMPLATE, 64)
    assert [c.name for c in info.classes] == list(CLASS_NAMES)


def test_create_set_refuses_unknown_model_user_and_taken_name(store, snapshot):
    store.create_set(FACES.model_id, "faces v1", "alice", CLASSES, RES)
    before = snapshot()
    with pytest.raises(NotFound, match="not registered"):
        store.create_set("ab" * 16, "x", "alice", CLASSES, RES)
    with pytest.raises(NotFound, match="no user"):
        store.create_set(FACES.model_id, "x", "mallory", CLASSES, RES)
    with pytest.raises(Conflict, match="already has a label set named"):
        store.create_set(FACES.model_id, "faces v1", "bob", CLASSES, RES)
    assert snapshot() == before
    assert store.create_set(CARS.model_id, "faces v1", "bob", CLASSES, RES).model_id == CARS.model_id


@pytest.mark.parametrize("classes, match", [
    ([("bg", (0, 0, 0))], "2-32 classes"),
    ([(f"c{i}", (i, 0, 0)) for i in range(33)], "2-32 classes"),
    ([("eye", (0, 0, 0)), ("Eye", (1, 1, 1))], "both named"),
    ([("bg", (0, 0, 0)), ("eye", (0, 0, 0))], "share the colour"),
    ([("bg", (0, 0, 0)), ("eye", (0, 0, 256))], "colour"),
    ([("bg", (0, 0, 0)), ("eye", (0, 0, -1))], "colour"),
    ([("bg", (0, 0, 0)), ("eye", (0, 0))], "colour"),
    ([("bg", (0, 0, 0)), ("eye", (0.5, 0, 0))], "colour"),
    ([("bg", (0, 0, 0)), ("eye", (True, 0, 0))], "colour"),
    ([("bg", (0, 0, 0)), ("eye", "#ff0000")], "colour"),
    ([("bg", (0, 0, 0)), (7, (1, 1, 1))], "must be a string"),
    ([("bg", (0, 0, 0)), ("eye",)], "pair"),
    ("bg eye", "list"),
])
def test_bad_class_lists_are_refused(store, classes, match):
    with pytest.raises(InvalidInput, match=match):
        store.create_set(FACES.model_id, "x", "alice", classes, RES)


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_class_names_are_refused(store, name):
    with pytest.raises(InvalidInput, match="not accepted"):
        store.create_set(FACES.model_id, "x", "alice", [("bg", (0, 0, 0)), (name, (1, 2, 3))], RES)


def test_class_names_are_stripped_and_may_use_any_letters(store):
    info = store.create_set(FACES.model_id, "x", "alice", [("  bg ", (0, 0, 0)), ("œil gauche-2", (1, 2, 3))], RES)
    assert [c.name for c in info.classes] == ["bg", "œil gauche-2"]


@pytest.mark.parametrize("name", ["", "   ", "a\nb", "x\x00", "a" * 81, None, 5])
def test_bad_set_names_are_refused(store, name):
    with pytest.raises(InvalidInput):
        store.create_set(FACES.model_id, name, "alice", CLASSES, RES)


def test_markup_in_a_set_name_is_stored_verbatim(store):
    name = "<img src=x onerror=alert(1)>"
    assert store.get_set(store.create_set(FACES.model_id, name, "alice", CLASSES, RES).id).name == name


@pytest.mark.parametrize("res", [0, 4, 2048, 16.0, True, "16"])
def test_bad_resolutions_are_refused(store, res):
    with pytest.raises(InvalidInput, match="resolution"):
        store.create_set(FACES.model_id, "x", "alice", CLASSES, res)


def test_update_classes_owner_only_then_refused_once_locked(store, labelled):
    info, _ = labelled
    more = CLASSES + [("hair", (120, 60, 20))]
    with pytest.raises(PermissionDenied, match="only the owner"):
        store.update_classes(info.id, "bob", more)
    assert [c.name for c in store.update_classes(info.id, "alice", more).classes][-1] == "hair"
    store.add_branch_version(FACES.model_id, "bob", weights(), {}, {}, info.id, 0)
    assert store.get_set(info.id).locked
    with pytest.raises(Conflict, match="locked"):
        store.update_classes(info.id, "alice", CLASSES)


def test_update_classes_keeps_the_class_ids_saved_masks_use(store, labelled):
    info, samples = labelled
    store.save_mask(samples[0].id, "bob", mask(2), 0)
    with pytest.raises(Conflict, match="class id 2"):
        store.update_classes(info.id, "alice", CLASSES[:2])
    renamed = [("bg", (0, 0, 0)), ("face", (1, 1, 1)), ("eyes", (2, 2, 2))]
    assert store.update_classes(info.id, "alice", renamed).classes[2] == LabelClass("eyes", (2, 2, 2))


# ---------------------------------------------------------------------- members, samples, publishing
def test_members_may_label_others_may_not(store, labelled):
    info, samples = labelled
    assert store.get_set(info.id).members == ("alice", "bob")
    for call in (lambda: store.claim(samples[0].id, "carol"),
                 lambda: store.save_mask(samples[0].id, "carol", mask(), 0),
                 lambda: store.add_samples(info.id, "carol", [9], 0.7),
                 lambda: store.begin_training(info.id, "carol")):
        with pytest.raises(PermissionDenied, match="only members"):
            call()
    with pytest.raises(PermissionDenied, match="only the owner"):
        store.add_member(info.id, "bob", "carol")
    with pytest.raises(NotFound):
        store.add_member(info.id, "alice", "mallory")
    assert store.add_member(info.id, "alice", "bob").members == ("alice", "bob")  # twice: no change
    assert store.add_member(info.id, "alice", "alice").members == ("alice", "bob")


def test_removing_a_member_ends_their_claims(store, labelled):
    info, samples = labelled
    store.claim(samples[0].id, "bob")
    with pytest.raises(PermissionDenied):
        store.remove_member(info.id, "carol", "bob")
    with pytest.raises(InvalidInput, match="owns"):
        store.remove_member(info.id, "alice", "alice")
    assert store.remove_member(info.id, "alice", "bob").members == ("alice",)
    assert store.sample(samples[0].id).claimed_by is None
    with pytest.raises(PermissionDenied):
        store.claim(samples[0].id, "bob")
    store.add_member(info.id, "alice", "bob")
    assert store.remove_member(info.id, "bob", "bob").members == ("alice",)  # a member may leave


def test_add_samples_never_duplicates_and_keeps_positions(store, labelled):
    info, samples = labelled
    assert [(s.seed, s.position, s.truncation) for s in samples] == [(1, 0, 0.7), (2, 1, 0.7), (3, 2, 0.7)]
    again = store.add_samples(info.id, "bob", [3, 4, 4, 1], 0.7)
    assert [s.id for s in again[::3]] == [samples[2].id, samples[0].id] and again[1].id == again[2].id
    assert again[1].position == 3
    other = store.add_samples(info.id, "bob", [1], 1.0)[0]
    assert other.id not in {s.id for s in samples} and other.position == 4
    listed = store.samples(info.id)
    assert [s.position for s in listed] == [0, 1, 2, 3, 4] and store.progress(info.id) == (0, 5)
    assert store.get_set(info.id).n_samples == 5


@pytest.mark.parametrize("seeds, trunc, match", [
    ([-1], 0.7, "seed"), ([2**31], 0.7, "seed"), ([1.5], 0.7, "seed"), ([True], 0.7, "seed"), (["1"], 0.7, "seed"),
    ([], 0.7, "non-empty"), ("12", 0.7, "list"),
    ([1], float("nan"), "truncation"), ([1], float("inf"), "truncation"), ([1], 0.0, "truncation"),
    ([1], -0.5, "truncation"), ([1], 1.51, "truncation"), ([1], "0.7", "truncation"),
])
def test_bad_samples_are_refused(store, labelled, seeds, trunc, match):
    with pytest.raises(InvalidInput, match=match):
        store.add_samples(labelled[0].id, "alice", seeds, trunc)


def test_a_set_holds_at_most_256_samples(store, labelled, snapshot):
    info, _ = labelled
    store.add_samples(info.id, "alice", list(range(100, 100 + MAX_SAMPLES_PER_SET - 3)), 0.7)
    before = snapshot()
    with pytest.raises(InvalidInput, match="limit of 256"):
        store.add_samples(info.id, "alice", [5000], 0.7)
    assert snapshot() == before
    assert store.add_samples(info.id, "alice", [1], 0.7)[0].position == 0  # existing ones still returned


def test_publish_set_owner_only(store, labelled):
    info, _ = labelled
    with pytest.raises(PermissionDenied):
        store.publish_set(info.id, "bob")
    assert store.publish_set(info.id, "alice").public and store.get_set(info.id).public


def test_unknown_ids_are_not_found(store):
    for call in (lambda: store.get_set(999), lambda: store.sample(999), lambda: store.samples(999),
                 lambda: store.mask(999), lambda: store.history(999), lambda: store.claim(999, "alice"),
                 lambda: store.save_mask(999, "alice", mask(), 0), lambda: store.progress(999),
                 lambda: store.branch_version(FACES.model_id, 1)):
        with pytest.raises(NotFound):
            call()
    for bad in (0, -1, "1", 1.0, None):
        with pytest.raises(InvalidInput):
            store.get_set(bad)


# ---------------------------------------------------------------------- claims
def test_claims_block_others_until_released_or_expired(store, labelled, clock):
    _, samples = labelled
    sid = samples[0].id
    claimed = store.claim(sid, "alice", ttl_s=60)
    assert claimed.claimed_by == "alice" and claimed.claim_expires == clock.now + timedelta(seconds=60)
    with pytest.raises(SampleClaimed, match="alice") as err:
        store.claim(sid, "bob")
    assert err.value.holder == "alice" and err.value.until == claimed.claim_expires
    with pytest.raises(SampleClaimed):
        store.save_mask(sid, "bob", mask(), 0)
    clock.advance(30)
    assert store.claim(sid, "alice", ttl_s=60).claim_expires == clock.now + timedelta(seconds=60)  # extended
    store.release(sid, "bob")  # not bob's: no change
    assert store.sample(sid).claimed_by == "alice"
    assert store.release(sid, "alice").claimed_by is None
    assert store.claim(sid, "bob", ttl_s=10).claimed_by == "bob"
    clock.advance(11)
    assert store.claim(sid, "alice").claimed_by == "alice"  # bob's claim expired
    for ttl in (0, -1, float("nan"), 10**9, "60"):
        with pytest.raises(InvalidInput):
            store.claim(sid, "alice", ttl_s=ttl)


def test_saving_releases_the_savers_claim(store, labelled):
    _, samples = labelled
    store.claim(samples[0].id, "bob")
    store.save_mask(samples[0].id, "bob", mask(), 0)
    assert store.sample(samples[0].id).claimed_by is None
    assert store.claim(samples[0].id, "alice").claimed_by == "alice"


# ---------------------------------------------------------------------- masks
def test_masks_are_versioned_and_never_overwritten(store, labelled):
    info, samples = labelled
    sid = samples[0].id
    first = store.save_mask(sid, "alice", mask(1), 0, note="first")
    second = store.save_mask(sid, "alice", mask(2), 1)
    third = store.save_mask(sid, "bob", mask(1, fill=2), 2, note="fixed the eye")
    assert [m.version for m in (first, second, third)] == [1, 2, 3]
    assert store.history(sid) == [third, second, first]
    info_, arr = store.mask(sid)
    assert info_ == third and arr.dtype == np.uint8 and np.array_equal(arr, mask(1, fill=2))
    assert np.array_equal(store.mask(sid, 1)[1], mask(1)) and store.mask(sid, 1)[0].note == "first"
    sample = store.sample(sid)
    assert (sample.latest_version, sample.labelled_by) == (3, "bob") and sample.labelled_at == third.created_at
    assert store.progress(info.id) == (1, 3) and store.get_set(info.id).n_labelled == 1
    with pytest.raises(NotFound, match="no mask version 4"):
        store.mask(sid, 4)
    with pytest.raises(NotFound, match="no mask yet"):
        store.mask(samples[1].id)


def test_a_stale_base_by_someone_else_is_a_conflict_unless_forced(store, labelled):
    _, samples = labelled
    sid = samples[0].id
    store.save_mask(sid, "alice", mask(1), 0)
    bobs = store.save_mask(sid, "bob", mask(2), 1)
    with pytest.raises(LabelConflict, match="bob") as err:
        store.save_mask(sid, "alice", mask(1), 1)
    assert err.value.latest == bobs and isinstance(err.value, LibraryError)
    assert store.save_mask(sid, "alice", mask(1), 0, force=True).version == 3  # forced on top: history kept
    assert store.save_mask(sid, "alice", mask(2), 2).version == 4  # only alice saved after v2
    assert [m.author for m in store.history(sid)] == ["alice", "alice", "bob", "alice"]


def test_own_newer_versions_are_no_conflict(store, labelled):
    _, samples = labelled
    sid = samples[0].id
    store.save_mask(sid, "alice", mask(1), 0)
    store.save_mask(sid, "alice", mask(2), 1)
    assert store.save_mask(sid, "alice", mask(1), 1).version == 3  # a second tab of alice's
    with pytest.raises(InvalidInput, match="newer than"):
        store.save_mask(sid, "alice", mask(1), 9)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((RES, RES + 1), np.uint8), r"\[16, 16\]"),
    (np.zeros((8, 8), np.uint8), r"\[16, 16\]"),
    (np.zeros((RES, RES, 3), np.uint8), "2-d"),
    (np.zeros((0, 0), np.uint8), "non-empty"),
    (np.zeros((RES, RES), np.float32), "dtype"),
    (np.zeros((RES, RES), bool), "dtype"),
    (np.full((RES, RES), 3, np.uint8), r"class id\(s\) \[3\]"),
    (np.full((RES, RES), 200, np.uint8), r"\[200\]"),
    (np.full((RES, RES), -1, np.int64), r"\[-1\]"),
    ([[0, 1], [1, 0]], "numpy array"),
])
def test_bad_masks_are_refused(store, labelled, snapshot, bad, match):
    before = snapshot()
    with pytest.raises(InvalidInput, match=match):
        store.save_mask(labelled[1][0].id, "alice", bad, 0)
    assert snapshot() == before


def test_bad_base_versions_and_notes_are_refused(store, labelled):
    sid = labelled[1][0].id
    for base in (-1, 1.0, None, "0", True):
        with pytest.raises(InvalidInput):
            store.save_mask(sid, "alice", mask(), base)
    with pytest.raises(InvalidInput, match="control character"):
        store.save_mask(sid, "alice", mask(), 0, note="a\x00b")


def test_masks_are_stored_compressed_and_integer_masks_accepted(store, labelled, database):
    from sqlalchemy import select

    from db.models import LabelMask
    sid = labelled[1][0].id
    store.save_mask(sid, "alice", mask(2).astype(np.int64), 0)
    with database.reader() as s:
        row = s.scalar(select(LabelMask))
        assert (row.height, row.width, row.max_class) == (RES, RES, 2) and len(row.data) < RES * RES // 4
    assert store.mask(sid)[1].dtype == np.uint8


def test_training_masks_are_the_latest_of_labelled_samples_in_order(store, labelled):
    info, samples = labelled
    store.save_mask(samples[2].id, "bob", mask(1), 0)
    store.save_mask(samples[0].id, "alice", mask(1), 0)
    store.save_mask(samples[0].id, "alice", mask(2), 1)
    got = store.training_masks(info.id)
    assert [s.id for s, _ in got] == [samples[0].id, samples[2].id]
    assert np.array_equal(got[0][1], mask(2)) and np.array_equal(got[1][1], mask(1))
    assert got[0][0].latest_version == 2


# ---------------------------------------------------------------------- training and branches
def test_one_training_job_per_model(store, labelled, clock):
    info, _ = labelled
    other = store.create_set(FACES.model_id, "faces v2", "bob", CLASSES, RES)
    token = store.begin_training(info.id, "bob")
    assert len(token) == 32
    with pytest.raises(TrainingBusy, match="faces v1.*bob"):
        store.begin_training(info.id, "alice")
    with pytest.raises(TrainingBusy):
        store.begin_training(other.id, "bob")  # another set of the same model
    cars = store.create_set(CARS.model_id, "cars", "alice", CLASSES, RES)
    store.end_training(store.begin_training(cars.id, "alice"), ok=True)  # another model: free
    assert store.end_training(token, ok=True) is True
    assert store.end_training(token, ok=True) is False
    stale = store.begin_training(other.id, "bob")
    clock.advance(3601)
    taken = store.begin_training(info.id, "alice")  # the hour-old job counts as crashed
    assert store.end_training(stale, ok=False) is False and store.end_training(taken, ok=True)
    with pytest.raises(InvalidInput):
        store.end_training("not a token", ok=True)


def test_branch_versions_are_numbered_per_model_and_published(store, labelled):
    info, _ = labelled
    first = store.add_branch_version(FACES.model_id, "bob", weights(4), {"lr": 0.001}, {"loss": [1.0, 0.5]},
                                     info.id, 3)
    second = store.add_branch_version(FACES.model_id, "carol", weights(8), {}, {}, None, 0)
    cars = store.add_branch_version(CARS.model_id, "alice", weights(2), {}, {}, None, 0)
    assert (first.version, second.version, cars.version) == (1, 2, 1)
    assert (first.label_set_id, first.n_masks, first.config, first.record) == (info.id, 3, {"lr": 0.001},
                                                                                {"loss": [1.0, 0.5]})
    assert store.branch_versions(FACES.model_id) == [second, first]
    got, data = store.branch_version(FACES.model_id, 1)
    assert got == first and data == weights(4)
    assert store.latest_branch(FACES.model_id) == (second, weights(8))
    assert store.latest_branch(FACES.model_id, published_only=True) is None
    with pytest.raises(PermissionDenied):
        store.publish_branch(FACES.model_id, 1, "carol")
    assert store.publish_branch(FACES.model_id, 1, "alice").published  # the set's owner
    assert store.publish_branch(FACES.model_id, 2, "carol").published  # its creator
    assert store.latest_branch(FACES.model_id, published_only=True)[0].version == 2
    with pytest.raises(PermissionDenied):
        store.add_branch_version(FACES.model_id, "carol", weights(), {}, {}, info.id, 0)  # not a member
    with pytest.raises(InvalidInput, match="labels model"):
        store.add_branch_version(CARS.model_id, "alice", weights(), {}, {}, info.id, 0)


def test_the_branch_chosen_for_a_model_holds_until_a_newer_version_is_stored(store):
    assert store.branch_in_use(FACES.model_id) is None  # nothing chosen: the newest
    store.add_branch_version(FACES.model_id, "bob", weights(), {}, {}, None, 0)
    store.choose_branch(FACES.model_id, 0, "carol")  # the bundle's own
    assert store.branch_in_use(FACES.model_id) == 0 and store.branch_in_use(CARS.model_id) is None
    store.choose_branch(FACES.model_id, 1, "carol")
    assert store.branch_in_use(FACES.model_id) == 1
    with pytest.raises(NotFound, match="no branch version 2"):
        store.choose_branch(FACES.model_id, 2, "carol")
    with pytest.raises(PermissionDenied):
        store.choose_branch(FACES.model_id, 0, None)
    with pytest.raises(InvalidInput):
        store.choose_branch(FACES.model_id, -1, "carol")
    assert store.branch_in_use(FACES.model_id) == 1  # the refusals changed nothing
    store.add_branch_version(FACES.model_id, "bob", weights(), {}, {}, None, 0)
    assert store.branch_in_use(FACES.model_id) is None  # the new version 2 is used


@pytest.mark.parametrize("data, config, match", [
    (b"not safetensors", {}, "not a safetensors"),
    (b"", {}, "not a safetensors"),
    (b"\x00" * 8, {}, "not a safetensors"),
    ("text", {}, "bytes"),
    (None, {"x": float("nan")}, "JSON"),
    (None, {"x": object()}, "JSON"),
    (None, [1], "dict"),
])
def test_bad_branches_are_refused(store, data, config, match):
    with pytest.raises(InvalidInput, match=match):
        store.add_branch_version(FACES.model_id, "alice", weights() if data is None else data, config, {}, None, 0)


def test_branch_weights_are_limited_to_64_mib(store):
    with pytest.raises(InvalidInput, match="64 MiB"):
        store.add_branch_version(FACES.model_id, "alice", b"\x00" * (MAX_BRANCH_BYTES + 1), {}, {}, None, 0)
    with pytest.raises(NotFound):
        store.add_branch_version("ab" * 16, "alice", weights(), {}, {}, None, 0)


# ---------------------------------------------------------------------- two users at once
ROUNDS = 20


def run_pair(first, second) -> list:
    """Run two calls at once (a barrier releases both); returns [result or exception, ...]."""
    barrier = threading.Barrier(2)
    out: list = [None, None]

    def run(i, call):
        barrier.wait()
        try:
            out[i] = call()
        except BaseException as exc:  # collected for the assertions
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate((first, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_two_users_saving_the_same_base_at_once(store, labelled, database, clock):
    _, samples = labelled
    sid = samples[0].id
    other = LabelStore(database, clock=clock)  # a second app replica
    saved = []
    for r in range(ROUNDS):
        base = store.sample(sid).latest_version
        out = run_pair(partial(store.save_mask, sid, "alice", mask(1), base, note=f"a{r}"),
                       partial(other.save_mask, sid, "bob", mask(2), base, note=f"b{r}"))
        wins = [o for o in out if not isinstance(o, BaseException)]
        losses = [o for o in out if isinstance(o, BaseException)]
        assert len(wins) == 1 and len(losses) == 1, out
        assert isinstance(losses[0], LabelConflict), repr(losses[0])
        assert losses[0].latest == wins[0] and wins[0].version == base + 1
        saved.append(wins[0])
    assert store.history(sid) == saved[::-1]
    assert store.sample(sid).latest_version == ROUNDS


def test_two_users_claiming_at_once(store, labelled, database, clock):
    info, _ = labelled
    other = LabelStore(database, clock=clock)
    for r in range(ROUNDS):
        sid = store.add_samples(info.id, "alice", [1000 + r], 0.7)[0].id
        out = run_pair(partial(store.claim, sid, "alice"), partial(other.claim, sid, "bob"))
        wins = [o for o in out if not isinstance(o, BaseException)]
        losses = [o for o in out if isinstance(o, BaseException)]
        assert len(wins) == 1 and len(losses) == 1 and isinstance(losses[0], SampleClaimed), out
        assert store.sample(sid).claimed_by == wins[0].claimed_by == losses[0].holder


def test_two_users_beginning_training_at_once(store, labelled, database, clock):
    info, _ = labelled
    other = LabelStore(database, clock=clock)
    for _ in range(5):
        out = run_pair(lambda: store.begin_training(info.id, "alice"), lambda: other.begin_training(info.id, "bob"))
        tokens = [o for o in out if isinstance(o, str)]
        assert len(tokens) == 1 and sum(isinstance(o, TrainingBusy) for o in out) == 1, out
        assert store.end_training(tokens[0], ok=True)


def test_a_version_taken_behind_the_row_lock_is_a_conflict_not_an_integrity_error(store, labelled, database):
    """The unique (sample, version) backs the row lock up: a clash inside the savepoint becomes LabelConflict."""
    from sqlalchemy import select

    from db.models import LabelMask, User
    sid = labelled[1][0].id
    with database.writer.begin() as s:  # a version 1 the sample's latest_version does not know of
        bob = s.scalar(select(User).where(User.username == "bob"))
        s.add(LabelMask(sample_id=sid, version=1, author_id=bob.id, note="", height=RES, width=RES, max_class=1,
                        data=b"", created_at=utcnow()))
    with pytest.raises(LabelConflict, match="version 1 by bob") as err:
        store.save_mask(sid, "alice", mask(), 0)
    assert err.value.latest.version == 1 and store.sample(sid).latest_version == 0


# ---------------------------------------------------------------------- deleting
def test_delete_set_owner_only_takes_its_samples_and_masks_and_keeps_branches(store, labelled, database, clock):
    from sqlalchemy import func, select

    from db.models import LabelMask, LabelSample, LabelSetMember

    info, samples = labelled
    store.save_mask(samples[0].id, "bob", mask(), 0)
    store.save_mask(samples[0].id, "alice", mask(2), 1)
    branch = store.add_branch_version(FACES.model_id, "bob", weights(), {}, {}, info.id, 1)
    for who in ("bob", "carol", None):
        with pytest.raises(PermissionDenied):
            store.delete_set(info.id, who)
    token = store.begin_training(info.id, "bob")
    with pytest.raises(TrainingBusy, match="stop the training"):
        store.delete_set(info.id, "alice")
    store.end_training(token, ok=False)
    other = store.create_set(FACES.model_id, "faces v2", "bob", CLASSES, RES)
    kept = store.add_samples(other.id, "bob", [1], 0.7)[0]
    store.save_mask(kept.id, "bob", mask(), 0)
    store.delete_set(info.id, "alice")
    with pytest.raises(NotFound):
        store.get_set(info.id)
    with pytest.raises(NotFound):
        store.sample(samples[0].id)
    with database.reader.begin() as s:
        assert s.scalar(select(func.count()).select_from(LabelSample).where(LabelSample.set_id == info.id)) == 0
        assert s.scalar(select(func.count()).select_from(LabelMask)) == 1  # the other set's one mask
        assert s.scalar(select(func.count()).select_from(LabelSetMember)
                        .where(LabelSetMember.set_id == info.id)) == 0  # fmt: skip
    assert [s.name for s in store.sets_for_model(FACES.model_id)] == ["faces v2"]
    got, data = store.branch_version(FACES.model_id, branch.version)
    assert got.label_set_id is None and data == weights()  # the branch stays, naming no set
    assert store.mask(kept.id)[0].version == 1
    # the name is free again
    assert store.create_set(FACES.model_id, "faces v1", "alice", CLASSES, RES).name == "faces v1"


def test_remove_sample_owner_any_member_only_unlabelled_and_unclaimed(store, labelled, clock):
    info, samples = labelled
    store.save_mask(samples[0].id, "alice", mask(), 0)
    with pytest.raises(PermissionDenied, match="labelled"):
        store.remove_sample(samples[0].id, "bob")
    store.claim(samples[1].id, "alice")
    with pytest.raises(SampleClaimed):
        store.remove_sample(samples[1].id, "bob")
    with pytest.raises(PermissionDenied, match="only members"):
        store.remove_sample(samples[2].id, "carol")
    store.remove_sample(samples[2].id, "bob")  # unlabelled, unclaimed: any member
    store.remove_sample(samples[0].id, "alice")  # the owner: a labelled one too
    clock.advance(601)  # alice's claim expired
    store.remove_sample(samples[1].id, "bob")
    assert store.samples(info.id) == [] and store.progress(info.id) == (0, 0)
    with pytest.raises(NotFound):
        store.remove_sample(samples[0].id, "alice")
    again = store.add_samples(info.id, "bob", [1, 4], 0.7)  # a removed seed may come back, after the others
    assert [s.seed for s in store.samples(info.id)] == [1, 4] and again[0].latest_version == 0
    token = store.begin_training(info.id, "alice")
    with pytest.raises(TrainingBusy):
        store.remove_sample(again[0].id, "alice")
    store.end_training(token, ok=True)
