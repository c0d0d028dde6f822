"""Label sets: members label generated samples of their own generator together, train a segmentation branch
from them, and share it (issue #23, the storage part). One transaction per user action, as VectorLibrary.

Rules enforced here, each refusal an explicit error (vector_library.errors):
  * users are the library's: a user name must exist (``VectorLibrary.ensure_user`` on sign-in), else NotFound;
  * a set belongs to a registered model; its name is unique per model; 2-32 classes, names and colours once
    each (label_records.classes); only its owner changes the classes, adds or removes members, or publishes
    it, and the classes stop changing once a branch was trained from the set (``locked``) or when a saved
    mask uses a class id the new list would not have;
  * the owner is a member; only members add samples, claim, save masks and train;
  * a claim says who is painting a sample until when. It is taken by one conditional UPDATE (free, or
    already ours, or expired), so of two users claiming at once exactly one wins; the other gets
    SampleClaimed naming the holder and the expiry. Saving a mask releases the saver's claim;
  * a save never overwrites: it adds version latest + 1 (unique per sample). The caller says which version it
    started from (``base_version``); if someone else saved a newer one since, the save is refused with
    LabelConflict carrying that version, unless ``force=True``. Saves of one sample are serialised by a row
    lock on the sample (SELECT ... FOR UPDATE; SQLite's write transactions take the database lock at BEGIN),
    so of two saves from one base by two users one succeeds and the other gets LabelConflict;
  * one training job per model at a time: ``begin_training`` takes the model's row of training_locks by a
    conditional UPDATE (free, or held longer than ``training_stale_s``, 1 hour by default, so a crashed job
    does not block for ever) and returns its token; ``end_training(token)`` frees it;
  * trained branches are numbered 1, 2, ... per model (the model's row is locked while numbering); a branch
    trained from a set locks the set's classes; its creator or the set's owner may publish it.

Set, sample, mask and branch reads take no user: the app decides who sees what (``public`` marks a shared set).
"""

from __future__ import annotations

import logging
import re
import secrets
import zlib
from datetime import datetime, timedelta
from typing import Callable, Optional, Sequence, TypeVar

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from db.engine import Database
from db.models import (
    BranchVersion,
    GeneratorModel,
    LabelMask,
    LabelSample,
    LabelSet,
    LabelSetMember,
    TrainingLock,
    User,
    utcnow,
)
from vector_library import label_records as lcheck
from vector_library import transactions as tx
from vector_library import validation as check
from vector_library.errors import (
    Conflict,
    InvalidInput,
    LabelConflict,
    NotFound,
    PermissionDenied,
    SampleClaimed,
    TrainingBusy,
)
from vector_library.label_records import (
    FACE_TEMPLATE,
    BranchVersionInfo,
    LabelClass,
    LabelSetInfo,
    MaskInfo,
    SampleInfo,
)

__all__ = ["LabelStore", "FACE_TEMPLATE", "LabelClass", "LabelSetInfo", "SampleInfo", "MaskInfo",
           "BranchVersionInfo", "TRAINING_STALE_S"]

log = logging.getLogger(__name__)
T = TypeVar("T")
TRAINING_STALE_S = 3600.0  # a job not ended after an hour is taken as crashed (a branch trains in minutes)
_TOKEN_RE = re.compile(r"[0-9a-f]{32}")


class LabelStore:
    """Label sets, samples, masks, training locks and branch versions over one Database; create once per process.

    ``clock`` returns the current UTC time (tests pass a fake one to expire claims and jobs without sleeping).
    """

    def __init__(self, database: Database, *, retries: int = 5, training_stale_s: float = TRAINING_STALE_S,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.db = database
        self.retries = retries
        self.training_stale_s = training_stale_s
        self.clock = clock

    # ------------------------------------------------------------------ transactions
    def _write(self, action: Callable[[Session], T]) -> T:
        """One write transaction, retried whole on a transient lock error."""
        return tx.write(self.db, self.retries, action)

    def _read(self, action: Callable[[Session], T]) -> T:
        return tx.read(self.db, action)

    # ------------------------------------------------------------------ lookups inside a session
    @staticmethod
    def _user(s: Session, username: Optional[str], doing: str) -> User:
        return tx.acting_user(s, username, f"anonymous users may not {doing}; sign in first")

    @staticmethod
    def _set(s: Session, set_id: int, *, lock: bool = False, share: bool = False) -> LabelSet:
        stmt = select(LabelSet).where(LabelSet.id == check.record_id(set_id, "label set id"))
        if lock or share:
            stmt = stmt.with_for_update(read=share and not lock, of=LabelSet)
        row = s.scalar(stmt)
        if row is None:
            raise NotFound(f"no label set {set_id}")
        return row

    @staticmethod
    def _sample(s: Session, sample_id: int, *, lock: bool = False) -> LabelSample:
        stmt = select(LabelSample).where(LabelSample.id == check.record_id(sample_id, "sample id"))
        if lock:
            stmt = stmt.with_for_update(of=LabelSample)
        row = s.scalar(stmt.execution_options(populate_existing=True))
        if row is None:
            raise NotFound(f"no labelling sample {sample_id}")
        return row

    @staticmethod
    def _is_member(s: Session, row: LabelSet, user: User) -> bool:
        return row.owner_id == user.id or s.get(LabelSetMember, (row.id, user.id)) is not None

    def _member(self, s: Session, row: LabelSet, username: Optional[str], doing: str) -> User:
        user = self._user(s, username, doing)
        if not self._is_member(s, row, user):
            raise PermissionDenied(f"only members of label set {row.name!r} may {doing}; its owner "
                                   f"{row.owner.username} adds members")
        return user

    def _owner(self, s: Session, row: LabelSet, username: Optional[str], doing: str) -> User:
        user = self._user(s, username, doing)
        if row.owner_id != user.id:
            raise PermissionDenied(f"only the owner of label set {row.name!r} ({row.owner.username}) may {doing}")
        return user

    def _set_info(self, s: Session, row: LabelSet) -> LabelSetInfo:
        members = s.scalars(select(User.username).join(LabelSetMember, LabelSetMember.user_id == User.id)
                            .where(LabelSetMember.set_id == row.id, User.id != row.owner_id)
                            .order_by(LabelSetMember.created_at, User.username)).all()  # fmt: skip
        labelled, total = self._progress(s, row.id)
        return LabelSetInfo(
            id=row.id, model_id=row.model_id, name=row.name, owner=row.owner.username,
            classes=tuple(LabelClass(n, tuple(c)) for n, c in row.classes), locked=row.locked,
            resolution=row.resolution, members=(row.owner.username, *members), n_samples=total,
            n_labelled=labelled, created_at=row.created_at, public=row.public)

    @staticmethod
    def _progress(s: Session, set_id: int) -> tuple[int, int]:
        total, labelled = s.execute(
            select(func.count(LabelSample.id), func.count(LabelSample.id).filter(LabelSample.latest_version > 0))
            .where(LabelSample.set_id == set_id)).one()  # fmt: skip
        return int(labelled), int(total)

    # ------------------------------------------------------------------ sets
    def create_set(self, model_id: str, name: str, owner: str, classes: Sequence[tuple[str, tuple[int, int, int]]],
                   resolution: int) -> LabelSetInfo:
        """A new, empty label set of a registered model; ``classes`` e.g. FACE_TEMPLATE (class id = index)."""
        check.model_id(model_id)
        lcheck.set_name(name)
        stored = [[c.name, list(c.color)] for c in lcheck.classes(classes)]
        res = lcheck.resolution(resolution)

        def action(s: Session) -> LabelSetInfo:
            user = self._user(s, owner, "create label sets")
            if s.get(GeneratorModel, model_id) is None:
                raise NotFound(f"model {model_id} is not registered in this library; the app registers its "
                               "generator (VectorLibrary.register_model) before labelling it")
            taken = Conflict(f"model {model_id} already has a label set named {name!r}; choose another name")
            if s.scalar(select(LabelSet.id).where(LabelSet.model_id == model_id, LabelSet.name == name)):
                raise taken
            row = LabelSet(model_id=model_id, name=name, owner=user, classes=stored, resolution=res,
                           locked=False, public=False, created_at=self.clock())
            try:
                with s.begin_nested():  # a concurrent create of the same name loses here, not with a traceback
                    s.add(row)
            except IntegrityError:
                raise taken from None
            return self._set_info(s, row)

        return self._write(action)

    def update_classes(self, set_id: int, user: str,
                       classes: Sequence[tuple[str, tuple[int, int, int]]]) -> LabelSetInfo:
        """Rename, recolour, add or remove classes (owner only; not once locked; ids saved masks use stay)."""
        stored = [[c.name, list(c.color)] for c in lcheck.classes(classes)]

        def action(s: Session) -> LabelSetInfo:
            row = self._set(s, set_id, lock=True)
            self._owner(s, row, user, "change its classes")
            if row.locked:
                raise Conflict(f"the classes of label set {row.name!r} are locked: a branch was trained from it. "
                               "Create a new set to label other classes")
            used = s.scalar(select(func.max(LabelMask.max_class))
                            .join(LabelSample, LabelMask.sample_id == LabelSample.id)
                            .where(LabelSample.set_id == row.id))  # fmt: skip
            if used is not None and used >= len(stored):
                raise Conflict(f"saved masks of label set {row.name!r} use class id {used} "
                               f"({row.classes[used][0]!r}); the new list has {len(stored)} classes "
                               f"(ids 0-{len(stored) - 1}). Keep at least {used + 1} classes")
            row.classes = stored
            s.flush()
            return self._set_info(s, row)

        return self._write(action)

    def add_member(self, set_id: int, owner: str, member: str) -> LabelSetInfo:
        """Let ``member`` label and train (owner only; adding a member twice changes nothing)."""
        check.username(member)

        def action(s: Session) -> LabelSetInfo:
            row = self._set(s, set_id, lock=True)
            self._owner(s, row, owner, "add members")
            new = self._user(s, member, "join label sets")
            if new.id != row.owner_id:
                tx.insert_ignore(s, LabelSetMember, {"set_id": row.id, "user_id": new.id, "created_at": self.clock()})
            return self._set_info(s, row)

        return self._write(action)

    def remove_member(self, set_id: int, owner: str, member: str) -> LabelSetInfo:
        """Remove a member (owner only, or a member leaving); their claims on the set's samples end."""
        check.username(member)

        def action(s: Session) -> LabelSetInfo:
            row = self._set(s, set_id, lock=True)
            actor = self._user(s, owner, "remove members")
            gone = self._user(s, member, "leave label sets")
            if actor.id not in (row.owner_id, gone.id):
                raise PermissionDenied(f"only the owner of label set {row.name!r} ({row.owner.username}) "
                                       "may remove other members")
            if gone.id == row.owner_id:
                raise InvalidInput(f"{member} owns label set {row.name!r} and stays its member")
            s.execute(delete(LabelSetMember).where(
                LabelSetMember.set_id == row.id, LabelSetMember.user_id == gone.id))
            s.execute(update(LabelSample).where(LabelSample.set_id == row.id, LabelSample.claimed_by_id == gone.id)
                      .values(claimed_by_id=None, claim_expires=None)
                      .execution_options(synchronize_session=False))  # fmt: skip
            return self._set_info(s, row)

        return self._write(action)

    def publish_set(self, set_id: int, user: str) -> LabelSetInfo:
        """Mark the set public (owner only): the app lists it for everyone."""
        def action(s: Session) -> LabelSetInfo:
            row = self._set(s, set_id, lock=True)
            self._owner(s, row, user, "publish it")
            row.public = True
            s.flush()
            return self._set_info(s, row)

        return self._write(action)

    def delete_set(self, set_id: int, user: str) -> None:
        """Delete the set with its members, samples and every version of every mask (owner only). Branch versions
        trained from it stay, naming no set. Refused while a training of this set holds the model's lock."""
        def action(s: Session) -> None:
            row = self._set(s, set_id, lock=True)
            self._owner(s, row, user, "delete it")
            self._not_training(s, row, "delete the set")
            s.execute(delete(LabelSet).where(LabelSet.id == row.id))  # the database cascades to what it holds

        self._write(action)

    def _not_training(self, s: Session, row: LabelSet, doing: str) -> None:
        stale = self.clock() - timedelta(seconds=self.training_stale_s)
        busy = s.scalar(select(TrainingLock).where(TrainingLock.set_id == row.id, TrainingLock.token.is_not(None),
                                                   TrainingLock.started_at >= stale))  # fmt: skip
        if busy is not None:
            raise TrainingBusy(f"a branch is being trained from label set {row.name!r}; stop the training to {doing}")

    def get_set(self, set_id: int) -> LabelSetInfo:
        return self._read(lambda s: self._set_info(s, self._set(s, set_id)))

    def sets_for_model(self, model_id: str) -> list[LabelSetInfo]:
        """Every label set of the model, oldest first."""
        check.model_id(model_id)
        return self._read(lambda s: [self._set_info(s, r) for r in s.scalars(
            select(LabelSet).where(LabelSet.model_id == model_id).order_by(LabelSet.created_at, LabelSet.id))])

    # ------------------------------------------------------------------ samples
    def add_samples(self, set_id: int, user: str, seeds: Sequence[int], truncation: float) -> list[SampleInfo]:
        """Add generated samples (member only), in order; a (seed, truncation) the set has is returned, not
        added twice. At most MAX_SAMPLES_PER_SET per set."""
        if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or not seeds:
            raise InvalidInput("seeds are a non-empty list of integers")
        wanted = list(dict.fromkeys(lcheck.seed(v) for v in seeds))
        trunc = lcheck.truncation(truncation)

        def action(s: Session) -> list[SampleInfo]:
            row = self._set(s, set_id, lock=True)  # serialises adds to the set: positions and the cap stay exact
            self._member(s, row, user, "add samples")
            have = {r.seed: r for r in s.scalars(select(LabelSample).where(
                LabelSample.set_id == row.id, LabelSample.truncation == trunc, LabelSample.seed.in_(wanted)))}
            new = [v for v in wanted if v not in have]
            _, total = self._progress(s, row.id)
            if total + len(new) > lcheck.MAX_SAMPLES_PER_SET:
                raise InvalidInput(f"label set {row.name!r} has {total} samples; adding {len(new)} would pass "
                                   f"the limit of {lcheck.MAX_SAMPLES_PER_SET}")
            position = s.scalar(select(func.coalesce(func.max(LabelSample.position) + 1, 0))
                                .where(LabelSample.set_id == row.id))  # fmt: skip
            for i, v in enumerate(new):
                have[v] = LabelSample(set_id=row.id, seed=v, truncation=trunc, position=position + i,
                                      latest_version=0)
                s.add(have[v])
            s.flush()
            return [_sample_info(have[v]) for v in (lcheck.seed(v) for v in seeds)]

        return self._write(action)

    def remove_sample(self, sample_id: int, user: str) -> None:
        """Take a sample out of its set with every version of its mask. The set's owner may remove any sample; a
        member, one nobody has labelled and nobody else is painting. Refused while a training of the set runs."""
        def action(s: Session) -> None:
            sample = self._sample(s, sample_id, lock=True)
            row = self._set(s, sample.set_id, lock=True)
            actor = self._member(s, row, user, "remove samples")
            self._not_training(s, row, "remove samples")
            if actor.id != row.owner_id:
                if sample.latest_version > 0:
                    raise PermissionDenied(f"sample {sample.id} is labelled; only the owner of label set "
                                           f"{row.name!r} ({row.owner.username}) may remove it")
                if sample.claimed_by_id not in (None, actor.id) and sample.claim_expires > self.clock():
                    raise _claimed(sample)
            s.execute(delete(LabelSample).where(LabelSample.id == sample.id))  # its masks go with it

        self._write(action)

    def samples(self, set_id: int) -> list[SampleInfo]:
        def action(s: Session) -> list[SampleInfo]:
            row = self._set(s, set_id)
            return [_sample_info(r) for r in s.scalars(
                select(LabelSample).where(LabelSample.set_id == row.id).order_by(LabelSample.position))]

        return self._read(action)

    def sample(self, sample_id: int) -> SampleInfo:
        return self._read(lambda s: _sample_info(self._sample(s, sample_id)))

    def progress(self, set_id: int) -> tuple[int, int]:
        """(labelled samples, samples) of the set."""
        return self._read(lambda s: self._progress(s, self._set(s, set_id).id))

    # ------------------------------------------------------------------ claims
    def claim(self, sample_id: int, user: str, ttl_s: float = 600) -> SampleInfo:
        """Claim the sample for painting for ``ttl_s`` seconds (member only); re-claiming extends one's own claim.
        SampleClaimed when another user's claim has not expired."""
        ttl = lcheck.ttl(ttl_s)

        def action(s: Session) -> SampleInfo:
            sample = self._sample(s, sample_id)
            member = self._member(s, self._set(s, sample.set_id), user, "claim samples")
            now = self.clock()
            taken = s.execute(
                update(LabelSample)
                .where(LabelSample.id == sample.id,
                       LabelSample.claimed_by_id.is_(None) | (LabelSample.claimed_by_id == member.id)
                       | (LabelSample.claim_expires < now))
                .values(claimed_by_id=member.id, claim_expires=now + timedelta(seconds=ttl))
                .execution_options(synchronize_session=False)).rowcount  # fmt: skip
            sample = self._sample(s, sample.id)
            if taken != 1:
                raise _claimed(sample)
            return _sample_info(sample)

        return self._write(action)

    def release(self, sample_id: int, user: str) -> SampleInfo:
        """End the user's claim on the sample (no change when the user holds none)."""
        def action(s: Session) -> SampleInfo:
            sample = self._sample(s, sample_id)
            releaser = self._user(s, user, "release samples")
            s.execute(update(LabelSample).where(LabelSample.id == sample.id, LabelSample.claimed_by_id == releaser.id)
                      .values(claimed_by_id=None, claim_expires=None).execution_options(synchronize_session=False))
            return _sample_info(self._sample(s, sample.id))

        return self._write(action)

    # ------------------------------------------------------------------ masks
    def save_mask(self, sample_id: int, user: str, mask: np.ndarray, base_version: int, note: str = "",
                  force: bool = False) -> MaskInfo:
        """Save ``mask`` # [resolution, resolution] class ids, as a new version of the sample (member only).

        ``base_version`` is the version the user started from (0: none). LabelConflict when someone else saved a
        version after it, unless ``force``; SampleClaimed when someone else holds the sample's claim. Releases
        the user's claim."""
        arr = lcheck.mask_array(mask)
        base = lcheck.version(base_version, "base_version", minimum=0)
        check.text(note, "mask note", check.MAX_NOTE_CHARS, multiline=True)
        payload = zlib.compress(arr.tobytes(), 6)
        max_class = int(arr.max())

        def action(s: Session) -> MaskInfo:
            set_id = s.scalar(select(LabelSample.set_id).where(
                LabelSample.id == check.record_id(sample_id, "sample id")))
            if set_id is None:
                raise NotFound(f"no labelling sample {sample_id}")
            row = self._set(s, set_id, share=True)  # the set first, then the sample: update_classes' lock order
            author = self._member(s, row, user, "save masks")
            sample = self._sample(s, sample_id, lock=True)
            if arr.shape != (row.resolution, row.resolution):
                raise InvalidInput(f"masks of label set {row.name!r} are [{row.resolution}, {row.resolution}]; "
                                   f"got {list(arr.shape)}")
            if max_class >= len(row.classes):
                bad = np.unique(arr[arr >= len(row.classes)])[:10].tolist()
                raise InvalidInput(f"the mask uses class id(s) {bad}, but label set {row.name!r} has "
                                   f"{len(row.classes)} classes (ids 0-{len(row.classes) - 1})")
            now = self.clock()
            if sample.claimed_by_id not in (None, author.id) and sample.claim_expires > now:
                raise _claimed(sample)
            if base > sample.latest_version:
                raise InvalidInput(f"base_version {base} is newer than sample {sample.id}'s latest version "
                                   f"{sample.latest_version}")
            if base < sample.latest_version and not force:
                others = s.scalar(select(func.count()).select_from(LabelMask).where(
                    LabelMask.sample_id == sample.id, LabelMask.version > base, LabelMask.author_id != author.id))
                if others:
                    raise _conflict(s, sample, base)
            row_mask = LabelMask(sample_id=sample.id, version=sample.latest_version + 1, author=author, note=note,
                                 height=arr.shape[0], width=arr.shape[1], max_class=max_class, data=payload,
                                 created_at=now)
            try:
                with s.begin_nested():  # the unique (sample, version) backs the row lock up on every backend
                    s.add(row_mask)
            except IntegrityError:
                raise _conflict(s, self._sample(s, sample.id), base) from None
            sample.latest_version = row_mask.version
            sample.labelled_by_id, sample.labelled_at = author.id, now
            if sample.claimed_by_id == author.id:
                sample.claimed_by_id, sample.claim_expires = None, None
            s.flush()
            return _mask_info(row_mask)

        return self._write(action)

    def mask(self, sample_id: int, version: Optional[int] = None) -> tuple[MaskInfo, np.ndarray]:
        """A saved version (default: the latest) and its class ids # [H, W] uint8."""
        if version is not None:
            lcheck.version(version, "mask version")

        def action(s: Session) -> tuple[MaskInfo, np.ndarray]:
            sample = self._sample(s, sample_id)
            number = sample.latest_version if version is None else version
            row = s.scalar(select(LabelMask).where(LabelMask.sample_id == sample.id, LabelMask.version == number))
            if row is None:
                raise NotFound(f"sample {sample.id} has no mask yet" if number == 0
                               else f"sample {sample.id} has no mask version {number}")
            return _mask_info(row), _decode(row)

        return self._read(action)

    def history(self, sample_id: int) -> list[MaskInfo]:
        """Every saved version of the sample's mask, newest first."""
        def action(s: Session) -> list[MaskInfo]:
            sample = self._sample(s, sample_id)
            rows = s.scalars(select(LabelMask).options(defer(LabelMask.data))
                             .where(LabelMask.sample_id == sample.id).order_by(LabelMask.version.desc()))  # fmt: skip
            return [_mask_info(r) for r in rows]

        return self._read(action)

    def training_masks(self, set_id: int) -> list[tuple[SampleInfo, np.ndarray]]:
        """The latest mask of every labelled sample of the set, in position order: the branch's training data."""
        def action(s: Session) -> list[tuple[SampleInfo, np.ndarray]]:
            row = self._set(s, set_id)
            pairs = s.execute(
                select(LabelSample, LabelMask)
                .join(LabelMask, (LabelMask.sample_id == LabelSample.id)
                      & (LabelMask.version == LabelSample.latest_version))
                .where(LabelSample.set_id == row.id).order_by(LabelSample.position)).all()  # fmt: skip
            return [(_sample_info(sample), _decode(m)) for sample, m in pairs]

        return self._read(action)

    # ------------------------------------------------------------------ training
    def begin_training(self, set_id: int, user: str) -> str:
        """Take the model's training lock for a job on this set (member only); returns the job's token.
        TrainingBusy while another job for the model runs and has not been held past ``training_stale_s``."""
        def action(s: Session) -> str:
            row = self._set(s, set_id)
            member = self._member(s, row, user, "train")
            tx.insert_ignore(s, TrainingLock, {"model_id": row.model_id})
            now, job = self.clock(), secrets.token_hex(16)
            stale = now - timedelta(seconds=self.training_stale_s)
            taken = s.execute(
                update(TrainingLock)
                .where(TrainingLock.model_id == row.model_id,
                       TrainingLock.token.is_(None) | (TrainingLock.started_at < stale))
                .values(token=job, set_id=row.id, user_id=member.id, started_at=now, finished_at=None, last_ok=None)
                .execution_options(synchronize_session=False)).rowcount  # fmt: skip
            if taken != 1:
                lock = s.scalar(select(TrainingLock).where(TrainingLock.model_id == row.model_id)
                                .execution_options(populate_existing=True))  # fmt: skip
                who = s.get(User, lock.user_id) if lock.user_id is not None else None
                on = s.get(LabelSet, lock.set_id) if lock.set_id is not None else None
                raise TrainingBusy(
                    f"a branch of this model is already being trained (label set {on.name if on else '?'!r}, "
                    f"started by {who.username if who else '?'} at {lock.started_at:%Y-%m-%d %H:%M:%S} UTC); "
                    f"try again when it ends, or after {self.training_stale_s / 60:.0f} minutes if it crashed")
            return job

        return self._write(action)

    def end_training(self, token: str, ok: bool) -> bool:
        """Free the lock the job ``token`` holds; False when it no longer holds it (taken over as stale)."""
        if not isinstance(token, str) or _TOKEN_RE.fullmatch(token) is None:
            raise InvalidInput("a training job token is the 32 hex characters begin_training returned")

        def action(s: Session) -> bool:
            return s.execute(update(TrainingLock).where(TrainingLock.token == token)
                             .values(token=None, finished_at=self.clock(), last_ok=bool(ok))
                             .execution_options(synchronize_session=False)).rowcount == 1  # fmt: skip

        return self._write(action)

    # ------------------------------------------------------------------ branch versions
    def add_branch_version(self, model_id: str, user: str, weights: bytes, config: dict, record: dict,
                           label_set_id: Optional[int], n_masks: int) -> BranchVersionInfo:
        """Store a trained branch (safetensors bytes, at most 64 MiB) as the model's next version; a branch
        trained from a set (its member only) locks the set's classes."""
        check.model_id(model_id)
        data = lcheck.safetensors_bytes(weights)
        config, record = lcheck.json_object(config, "config"), lcheck.json_object(record, "record")
        if isinstance(n_masks, bool) or not isinstance(n_masks, int) or not 0 <= n_masks <= check.MAX_ID:
            raise InvalidInput(f"n_masks is {n_masks!r}; accepted: an integer from 0")
        if label_set_id is not None:
            check.record_id(label_set_id, "label set id")

        def action(s: Session) -> BranchVersionInfo:
            creator = self._user(s, user, "add branch versions")
            model = s.scalar(select(GeneratorModel).where(GeneratorModel.model_id == model_id)
                             .with_for_update(of=GeneratorModel))  # numbering: one at a time per model
            if model is None:
                raise NotFound(f"model {model_id} is not registered in this library")
            if label_set_id is not None:
                row = self._set(s, label_set_id, lock=True)
                if row.model_id != model_id:
                    raise InvalidInput(f"label set {row.name!r} labels model {row.model_id}, not {model_id}")
                self._member(s, row, user, "train")
                row.locked = True
            number = s.scalar(select(func.coalesce(func.max(BranchVersion.version), 0))
                              .where(BranchVersion.model_id == model_id)) + 1  # fmt: skip
            model.branch_in_use = None  # a new version replaces an older one chosen before
            branch = BranchVersion(model_id=model_id, version=number, label_set_id=label_set_id, created_by=creator,
                                   config=config, record=record, n_masks=n_masks, published=False, weights=data,
                                   size=len(data), created_at=self.clock())
            try:
                with s.begin_nested():
                    s.add(branch)
            except IntegrityError:
                raise Conflict(f"another branch version {number} of model {model_id} was stored at the same "
                               "moment; save again") from None
            return _branch_info(branch)

        return self._write(action)

    def choose_branch(self, model_id: str, version: Optional[int], user: str) -> None:
        """Make branch ``version`` the one the model is edited with (0: the bundle's own; None: the newest), for every
        app process on this database and after restarts, until a newer version is trained."""
        check.model_id(model_id)
        if version is not None:
            version = lcheck.version(version, "branch version", minimum=0)

        def action(s: Session) -> None:
            self._user(s, user, "choose the branch version")
            model = s.scalar(select(GeneratorModel).where(GeneratorModel.model_id == model_id)
                             .with_for_update(of=GeneratorModel))  # fmt: skip
            if model is None:
                raise NotFound(f"model {model_id} is not registered in this library")
            if version and s.scalar(select(BranchVersion.id).where(BranchVersion.model_id == model_id,
                                                                   BranchVersion.version == version)) is None:
                raise NotFound(f"model {model_id} has no branch version {version}")
            model.branch_in_use = version

        self._write(action)

    def branch_in_use(self, model_id: str) -> Optional[int]:
        """The branch version chosen for the model (0: the bundle's own), or None: the newest."""
        check.model_id(model_id)
        return self._read(lambda s: s.scalar(select(GeneratorModel.branch_in_use)
                                             .where(GeneratorModel.model_id == model_id)))  # fmt: skip

    def branch_versions(self, model_id: str) -> list[BranchVersionInfo]:
        """The model's branch versions, newest first (without their weights)."""
        check.model_id(model_id)
        return self._read(lambda s: [_branch_info(b) for b in s.scalars(
            select(BranchVersion).options(defer(BranchVersion.weights))
            .where(BranchVersion.model_id == model_id).order_by(BranchVersion.version.desc()))])

    def branch_version(self, model_id: str, version: int) -> tuple[BranchVersionInfo, bytes]:
        check.model_id(model_id)
        lcheck.version(version, "branch version")

        def action(s: Session) -> tuple[BranchVersionInfo, bytes]:
            b = s.scalar(select(BranchVersion).where(BranchVersion.model_id == model_id,
                                                     BranchVersion.version == version))
            if b is None:
                raise NotFound(f"model {model_id} has no branch version {version}")
            return _branch_info(b), bytes(b.weights)

        return self._read(action)

    def latest_branch(self, model_id: str, published_only: bool = False
                      ) -> Optional[tuple[BranchVersionInfo, bytes]]:
        """The newest branch version (only published ones if asked) with its weights, or None."""
        check.model_id(model_id)

        def action(s: Session) -> Optional[tuple[BranchVersionInfo, bytes]]:
            stmt = select(BranchVersion).where(BranchVersion.model_id == model_id)
            if published_only:
                stmt = stmt.where(BranchVersion.published.is_(True))
            b = s.scalar(stmt.order_by(BranchVersion.version.desc()).limit(1))
            return None if b is None else (_branch_info(b), bytes(b.weights))

        return self._read(action)

    def publish_branch(self, model_id: str, version: int, user: str) -> BranchVersionInfo:
        """Publish a branch version (its creator, or the owner of the set it was trained from)."""
        check.model_id(model_id)
        lcheck.version(version, "branch version")

        def action(s: Session) -> BranchVersionInfo:
            actor = self._user(s, user, "publish branches")
            b = s.scalar(select(BranchVersion).options(defer(BranchVersion.weights))
                         .where(BranchVersion.model_id == model_id, BranchVersion.version == version))  # fmt: skip
            if b is None:
                raise NotFound(f"model {model_id} has no branch version {version}")
            owner_id = s.scalar(select(LabelSet.owner_id).where(LabelSet.id == b.label_set_id)) \
                if b.label_set_id is not None else None
            if actor.id not in (b.created_by_id, owner_id):
                raise PermissionDenied(f"only the creator of branch version {version} ({b.created_by.username}) "
                                       "or the owner of its label set may publish it")
            b.published = True
            s.flush()
            return _branch_info(b)

        return self._write(action)


# ---------------------------------------------------------------------- helpers
def _sample_info(r: LabelSample) -> SampleInfo:
    return SampleInfo(
        id=r.id, set_id=r.set_id, seed=r.seed, truncation=r.truncation, position=r.position,
        latest_version=r.latest_version, labelled_by=r.labelled_by.username if r.labelled_by else None,
        labelled_at=r.labelled_at, claimed_by=r.claimed_by.username if r.claimed_by else None,
        claim_expires=r.claim_expires)


def _mask_info(m: LabelMask) -> MaskInfo:
    return MaskInfo(sample_id=m.sample_id, version=m.version, author=m.author.username, created_at=m.created_at,
                    note=m.note)


def _branch_info(b: BranchVersion) -> BranchVersionInfo:
    return BranchVersionInfo(
        id=b.id, model_id=b.model_id, version=b.version, label_set_id=b.label_set_id,
        created_by=b.created_by.username, created_at=b.created_at, config=dict(b.config), record=dict(b.record),
        n_masks=b.n_masks, published=b.published)


def _decode(m: LabelMask) -> np.ndarray:
    """The stored class ids # [height, width] uint8; a damaged row is reported, never half-read."""
    n = m.height * m.width
    try:
        raw = zlib.decompressobj().decompress(m.data, n + 1)
    except zlib.error:
        raw = b""
    if len(raw) != n:
        raise InvalidInput(f"mask version {m.version} of sample {m.sample_id} is damaged in the database")
    return np.frombuffer(raw, dtype=np.uint8).reshape(m.height, m.width).copy()


def _claimed(sample: LabelSample) -> SampleClaimed:
    holder = sample.claimed_by.username if sample.claimed_by else "someone"
    return SampleClaimed(f"sample {sample.id} is being painted by {holder} until "
                         f"{sample.claim_expires:%H:%M:%S} UTC; pick another sample or wait",
                         holder, sample.claim_expires)


def _conflict(s: Session, sample: LabelSample, base: int) -> LabelConflict:
    latest = s.scalar(select(LabelMask).options(defer(LabelMask.data))
                      .where(LabelMask.sample_id == sample.id).order_by(LabelMask.version.desc()).limit(1))  # fmt: skip
    info = _mask_info(latest)
    return LabelConflict(f"sample {sample.id} has a newer mask than the one you started from (version {base}): "
                         f"version {info.version} by {info.author} at {info.created_at:%H:%M:%S} UTC. Load it and "
                         "repaint, or save anyway to add yours on top", info)
