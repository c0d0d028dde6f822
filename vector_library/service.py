"""The vector library service: what the app and the API call, one transaction per user action.

Rules enforced here, each refusal an explicit error (vector_library.errors):
  * anonymous callers (``user=None``) may browse, search, download and compose, never write;
  * only a vector's author changes, versions, unpublishes or deletes it;
  * a private vector or composition exists for its author alone (others get NotFound);
  * a vector must fit its generator: same model_id, same [n_latent, w_dim], known classes;
  * a like toggle is one transaction that locks the vector's row first, so concurrent toggles by one user
    (two tabs, two app replicas) apply one after the other and each returns the state it produced.

Share states and the files an app keeps (photos, tunings) are ``library.states`` (vector_library.states).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Optional, Sequence, TypeVar, Union

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.vector_format import (
    DEFAULT_MAX_BYTES,
    VectorFile,
    VectorFormatError,
    check_scales,
    subject_classes,
)
from db.engine import Database
from db.models import (
    Composition,
    CompositionItem,
    EditVector,
    GeneratorModel,
    Like,
    User,
    VectorClass,
    VectorTag,
    VectorVersion,
    utcnow,
)
from vector_library import blobs, transfer
from vector_library import search as search_sql
from vector_library import transactions as tx
from vector_library import validation as check
from vector_library.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from vector_library.states import StateStore
from vector_library.records import (
    SORTS,
    ComposedVector,
    ComposeResult,
    CompositionInfo,
    LikeResult,
    MetadataUpdate,
    ModelSpec,
    SearchPage,
    SearchQuery,
    UserInfo,
    VectorInfo,
    VectorMetadata,
    VersionInfo,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
VectorInput = Union[VectorFile, bytes]


class VectorLibrary:
    """The shared edit-vector library over one Database. Create once per process and share."""

    def __init__(self, db: Database, *, max_upload_bytes: int = DEFAULT_MAX_BYTES, retries: int = 5) -> None:
        self.db = db
        self.max_upload_bytes = max_upload_bytes
        self.retries = retries
        self._backend: Optional[str] = None
        self.states = StateStore(self)

    # ------------------------------------------------------------------ transactions
    def _write(self, action: Callable[[Session], T]) -> T:
        """Run ``action`` in one write transaction, retrying it whole on a transient lock error."""
        return tx.write(self.db, self.retries, action)

    def _read(self, action: Callable[[Session], T]) -> T:
        return tx.read(self.db, action)

    # ------------------------------------------------------------------ lookups inside a session
    @staticmethod
    def _user(session: Session, username: Optional[str], doing: str) -> User:
        """The acting user; anonymous callers are refused writes."""
        return tx.acting_user(session, username, f"anonymous users may browse but not {doing}; sign in first")

    @staticmethod
    def _viewer_id(session: Session, username: Optional[str]) -> Optional[int]:
        if username is None:
            return None
        check.username(username)
        return session.scalar(select(User.id).where(User.username == username))

    @staticmethod
    def _model(session: Session, model_id: str) -> GeneratorModel:
        model = session.get(GeneratorModel, check.model_id(model_id))
        if model is None:
            raise NotFound(f"model {model_id} is not registered in this library")
        return model

    def _visible_vector(self, session: Session, vector_id: int, viewer_id: Optional[int],
                        *, lock: bool = False) -> EditVector:
        vector_id = check.record_id(vector_id, "vector id")
        stmt = select(EditVector).where(EditVector.id == vector_id)
        if lock:
            stmt = stmt.with_for_update(of=EditVector)
        row = session.scalar(stmt)
        if row is None or (row.visibility != "public" and row.author_id != viewer_id):
            raise NotFound(f"no vector {vector_id} is visible to you (it does not exist or is private)")
        return row

    def _own_vector(self, session: Session, vector_id: int, user: User, doing: str) -> EditVector:
        row = self._visible_vector(session, vector_id, user.id, lock=True)
        if row.author_id != user.id:
            raise PermissionDenied(
                f"only the author of vector {vector_id} ({row.author.username}) may {doing} it")
        return row

    # ------------------------------------------------------------------ input checks
    def _vector_file(self, vector: VectorInput) -> VectorFile:
        if isinstance(vector, VectorFile):
            return vector
        if isinstance(vector, (bytes, bytearray, memoryview)):
            try:
                return VectorFile.from_bytes(bytes(vector), max_bytes=self.max_upload_bytes)
            except VectorFormatError as exc:
                raise InvalidInput(str(exc)) from None
        raise InvalidInput(f"expected a VectorFile or the bytes of a .safetensors file, got {type(vector).__name__}")

    @staticmethod
    def _check_fits(vf: VectorFile, model: GeneratorModel) -> None:
        if vf.model_id != model.model_id:
            raise InvalidInput(f"the vector belongs to model {vf.model_id}, not {model.model_id}")
        if (vf.n_latent, vf.w_dim) != (model.n_latent, model.w_dim):
            raise InvalidInput(
                f"the vector's delta has shape [{vf.n_latent}, {vf.w_dim}] but model {model.name!r} "
                f"takes [{model.n_latent}, {model.w_dim}] (n_latent, w_dim)")
        unknown = [c for c in vf.edited_classes if c not in model.class_names]
        if unknown:
            raise InvalidInput(
                f"edited class(es) {', '.join(map(repr, unknown))} are not classes of model {model.name!r}; "
                f"its classes are {', '.join(model.class_names)}")

    @staticmethod
    def check_metadata(meta: VectorMetadata) -> None:
        """Refuse what :meth:`publish` would refuse in ``meta`` (InvalidInput), before a caller spends work on the
        vector; a name or description left as None comes from the file at publish time and is checked then."""
        if meta.name is not None:
            check.name(meta.name)
        if meta.description is not None:
            check.description(meta.description)
        check.tags(meta.tags)
        check.licence(meta.licence)
        check.visibility(meta.visibility)

    @staticmethod
    def _metadata(meta: VectorMetadata, vf: VectorFile) -> dict:
        name = meta.name if meta.name is not None else vf.name
        return {
            "name": check.name(name),
            "description": check.description(meta.description if meta.description is not None else vf.description),
            "tags": check.tags(meta.tags),
            "licence": check.licence(meta.licence),
            "visibility": check.visibility(meta.visibility),
        }

    @staticmethod
    def _set_tags(row: EditVector, tags: tuple[str, ...]) -> None:
        row.tags = [VectorTag(tag=t, position=i) for i, t in enumerate(tags)]
        row.tags_text = " ".join(tags)

    @staticmethod
    def _subject_classes(vf: VectorFile, model: GeneratorModel) -> tuple[str, ...]:
        """The edited classes the vector's change is about, from its painted change; all its edited classes when it
        carries no change (a vector made through the API, or from a slider) or the change names none of them."""
        found = () if vf.change is None else subject_classes(vf.change, tuple(model.class_names))
        return tuple(c for c in found if c in vf.edited_classes) or vf.edited_classes

    def _apply_version(self, row: EditVector, vf: VectorFile, sha: str, model: GeneratorModel) -> None:
        row.blob_sha256 = sha
        row.edited_classes = list(vf.edited_classes)
        subjects = self._subject_classes(vf, model)
        row.subject_classes = list(subjects)
        row.classes = [VectorClass(class_name=c, subject=c in subjects) for c in vf.edited_classes]
        row.default_scale, row.scale_min, row.scale_max = vf.default_scale, vf.scale_min, vf.scale_max
        row.metrics = dict(vf.metrics)
        row.has_preview = vf.preview is not None

    @staticmethod
    def _version_row(row: EditVector, number: int, note: str) -> VectorVersion:
        return VectorVersion(
            vector_id=row.id, number=number, blob_sha256=row.blob_sha256,
            edited_classes=list(row.edited_classes), subject_classes=list(row.subject_classes),
            default_scale=row.default_scale,
            scale_min=row.scale_min, scale_max=row.scale_max, metrics=dict(row.metrics),
            has_preview=row.has_preview, note=note, created_at=row.updated_at)

    # ------------------------------------------------------------------ users and models
    def ensure_user(self, username: str, display_name: str = "") -> UserInfo:
        """Return the user, creating it on first sight (the app calls this on sign-in)."""
        check.username(username)
        check.text(display_name, "display name", check.MAX_DISPLAY_NAME_CHARS)

        def action(s: Session) -> UserInfo:
            user = s.scalar(select(User).where(User.username == username))
            if user is None:
                user = User(username=username, display_name=display_name or username)
                s.add(user)
                s.flush()
            return _user_info(user)

        try:
            return self._write(action)
        except IntegrityError:  # created concurrently by another request: read it back
            return self._read(lambda s: _user_info(s.scalar(select(User).where(User.username == username))))

    def get_user(self, username: str) -> UserInfo:
        check.username(username)

        def action(s: Session) -> UserInfo:
            user = s.scalar(select(User).where(User.username == username))
            if user is None:
                raise NotFound(f"no user named {username!r}")
            return _user_info(user)

        return self._read(action)

    def register_model(self, spec: ModelSpec) -> ModelSpec:
        """Record a generator; idempotent for an identical spec, Conflict for a different one."""
        check.model_id(spec.model_id)
        check.name(spec.name)
        for what, v in (("resolution", spec.resolution), ("n_latent", spec.n_latent), ("w_dim", spec.w_dim)):
            check.positive_int(v, what, 1 << 16)
        classes = tuple(spec.class_names)
        for i, c in enumerate(classes):
            check.text(c, f"class_names[{i}]", 64, allow_empty=False)
        if len(set(classes)) != len(classes):
            raise InvalidInput("class_names lists a class twice; each class is accepted once")

        def action(s: Session) -> ModelSpec:
            # insert-or-ignore, then compare with whatever row is there: replicas starting together may race here
            if _insert_ignore(s, GeneratorModel, {"model_id": spec.model_id, "name": spec.name,
                                                  "resolution": spec.resolution, "n_latent": spec.n_latent,
                                                  "w_dim": spec.w_dim, "class_names": list(classes)}):  # fmt: skip
                return ModelSpec(spec.model_id, spec.name, spec.resolution, spec.n_latent, spec.w_dim, classes)
            stored = _model_spec(s.get(GeneratorModel, spec.model_id))
            if (stored.resolution, stored.n_latent, stored.w_dim, stored.class_names) != \
                    (spec.resolution, spec.n_latent, spec.w_dim, classes):
                raise Conflict(f"model {spec.model_id} is already registered with a different "
                               f"resolution, shape or classes ({stored}); a content hash names one generator")
            return stored

        return self._write(action)

    def set_model_classes(self, model_id: str, class_names: Sequence[str]) -> None:
        """A generator's classes changed: a segmentation branch with other classes was trained for it (the app's
        Label tab). Vectors keep the class names they were made with; filters use the new list. A model that is
        not registered yet is left alone (registering records the classes)."""
        check.model_id(model_id)
        classes = tuple(class_names)
        for i, c in enumerate(classes):
            check.text(c, f"class_names[{i}]", 64, allow_empty=False)
        if len(set(classes)) != len(classes):
            raise InvalidInput("class_names lists a class twice; each class is accepted once")

        def action(s: Session) -> None:
            s.execute(update(GeneratorModel).where(GeneratorModel.model_id == model_id)
                      .values(class_names=list(classes)))  # fmt: skip

        self._write(action)

    def get_model(self, model_id: str) -> ModelSpec:
        return self._read(lambda s: _model_spec(self._model(s, model_id)))

    def list_models(self) -> tuple[ModelSpec, ...]:
        return self._read(lambda s: tuple(
            _model_spec(m) for m in s.scalars(select(GeneratorModel).order_by(GeneratorModel.name))))

    # ------------------------------------------------------------------ publishing
    def publish(self, user: Optional[str], vector: VectorInput,
                meta: VectorMetadata = VectorMetadata()) -> VectorInfo:
        """Publish a vector (a VectorFile from an edit, or an uploaded file's bytes) as version 1."""
        return self._create(user, vector, meta, parent_id=None)

    def remix(self, user: Optional[str], parent_id: int, vector: VectorInput,
              meta: VectorMetadata = VectorMetadata()) -> VectorInfo:
        """Publish a new vector derived from ``parent_id`` (any visible vector of the same model)."""
        return self._create(user, vector, meta, parent_id=check.record_id(parent_id, "parent id"))

    def _create(self, username: Optional[str], vector: VectorInput, meta: VectorMetadata,
                parent_id: Optional[int]) -> VectorInfo:
        vf = self._vector_file(vector)
        fields = self._metadata(meta, vf)
        payload, sha = blobs.encode_payload(vf.delta, vf.preview, vf.change)

        def action(s: Session) -> VectorInfo:
            return _vector_info(self._insert_vector(s, username, vf, fields, payload, sha, parent_id))

        return self._write(action)

    def _insert_vector(self, s: Session, username: Optional[str], vf: VectorFile, fields: dict,
                       payload: bytes, sha: str, parent_id: Optional[int]) -> EditVector:
        user = self._user(s, username, "publish")
        model = self._model(s, vf.model_id)
        self._check_fits(vf, model)
        parent_version = None
        if parent_id is not None:
            parent = self._visible_vector(s, parent_id, user.id)
            if parent.model_id != vf.model_id:
                raise InvalidInput(f"a remix must use the model of its parent ({parent.model_id}); "
                                   f"this vector belongs to {vf.model_id}")
            parent_version = parent.version
        blobs.ensure_blob(s, payload, sha)
        now = utcnow()
        row = EditVector(name=fields["name"], description=fields["description"], author=user,
                         model_id=model.model_id, licence=fields["licence"], visibility=fields["visibility"],
                         version=1, parent_id=parent_id, parent_version=parent_version,
                         created_at=now, updated_at=now, download_count=0, like_count=0)
        self._set_tags(row, fields["tags"])
        self._apply_version(row, vf, sha, model)
        s.add(row)
        s.flush()
        s.add(self._version_row(row, 1, ""))
        return row

    def publish_version(self, user: Optional[str], vector_id: int, vector: VectorInput,
                        note: str = "") -> VectorInfo:
        """Add a new version (new tensors, scales, classes, metrics) to the author's vector."""
        vf = self._vector_file(vector)
        check.text(note, "version note", check.MAX_NOTE_CHARS, multiline=True)
        payload, sha = blobs.encode_payload(vf.delta, vf.preview, vf.change)

        def action(s: Session) -> VectorInfo:
            author = self._user(s, user, "publish versions")
            row = self._own_vector(s, vector_id, author, "publish a new version of")
            if vf.model_id != row.model_id:
                raise InvalidInput(f"vector {vector_id} belongs to model {row.model_id}; "
                                   f"the new version claims model {vf.model_id}")
            model = self._model(s, row.model_id)
            self._check_fits(vf, model)
            blobs.ensure_blob(s, payload, sha)
            row.version += 1
            row.updated_at = utcnow()
            self._apply_version(row, vf, sha, model)
            s.flush()
            s.add(self._version_row(row, row.version, note))
            return _vector_info(row)

        return self._write(action)

    def update_metadata(self, user: Optional[str], vector_id: int, changes: MetadataUpdate) -> VectorInfo:
        """Change name, description, tags, licence, visibility or scales (author only)."""
        values = {}
        if changes.name is not None:
            values["name"] = check.name(changes.name)
        if changes.description is not None:
            values["description"] = check.description(changes.description)
        if changes.licence is not None:
            values["licence"] = check.licence(changes.licence)
        if changes.visibility is not None:
            values["visibility"] = check.visibility(changes.visibility)
        tags = check.tags(changes.tags) if changes.tags is not None else None

        def action(s: Session) -> VectorInfo:
            author = self._user(s, user, "edit vectors")
            row = self._own_vector(s, vector_id, author, "edit")
            scales = (changes.default_scale, changes.scale_min, changes.scale_max)
            if any(v is not None for v in scales):
                current = (row.default_scale, row.scale_min, row.scale_max)
                merged = [c if v is None else v for v, c in zip(scales, current)]
                try:
                    row.default_scale, row.scale_min, row.scale_max = check_scales(*merged)
                except VectorFormatError as exc:
                    raise InvalidInput(str(exc)) from None
            for key, value in values.items():
                setattr(row, key, value)
            if tags is not None:
                s.execute(delete(VectorTag).where(VectorTag.vector_id == row.id))
                s.expire(row, ["tags"])
                self._set_tags(row, tags)
            row.updated_at = utcnow()
            s.flush()
            return _vector_info(row)

        return self._write(action)

    def set_visibility(self, user: Optional[str], vector_id: int, visibility: str) -> VectorInfo:
        return self.update_metadata(user, vector_id, MetadataUpdate(visibility=visibility))

    def unpublish(self, user: Optional[str], vector_id: int) -> VectorInfo:
        """Make the vector private: it disappears for everyone but its author."""
        return self.set_visibility(user, vector_id, "private")

    def delete(self, user: Optional[str], vector_id: int) -> None:
        """Delete the vector, its versions and likes (author only). Remixes keep existing with no
        parent; composition entries that used it resolve to an explicit error."""

        def action(s: Session) -> None:
            author = self._user(s, user, "delete vectors")
            row = self._own_vector(s, vector_id, author, "delete")
            shas = set(s.scalars(select(VectorVersion.blob_sha256).where(VectorVersion.vector_id == row.id)))
            s.execute(delete(EditVector).where(EditVector.id == row.id))
            s.expunge(row)
            blobs.delete_unreferenced(s, shas)

        self._write(action)

    # ------------------------------------------------------------------ likes and downloads
    def like(self, user: Optional[str], vector_id: int) -> LikeResult:
        return self._set_like(user, vector_id, True)

    def unlike(self, user: Optional[str], vector_id: int) -> LikeResult:
        return self._set_like(user, vector_id, False)

    def _set_like(self, username: Optional[str], vid: int, liked: bool) -> LikeResult:
        def action(s: Session) -> LikeResult:
            user = self._user(s, username, "like vectors")
            vector_id = self._visible_vector(s, vid, user.id, lock=True).id  # the same lock order as toggle_like
            if liked:
                changed = _insert_ignore(s, Like, {"user_id": user.id, "vector_id": vector_id}) == 1
            else:
                changed = s.execute(delete(Like).where(
                    Like.user_id == user.id, Like.vector_id == vector_id)).rowcount == 1
            if changed:
                step = 1 if liked else -1
                s.execute(update(EditVector).where(EditVector.id == vector_id)
                          .values(like_count=EditVector.like_count + step))
            count = s.scalar(select(EditVector.like_count).where(EditVector.id == vector_id))
            return LikeResult(vector_id=vector_id, liked=liked, changed=changed, like_count=count)

        return self._write(action)

    def toggle_like(self, username: Optional[str], vid: int) -> LikeResult:
        """Like the vector if the user has not, else unlike it, as one transaction; returns the state produced.

        The vector's row is locked first (FOR UPDATE on PostgreSQL; SQLite's write transactions take the
        database lock at BEGIN), so two toggles at once by the same user run one after the other and end where
        two clicks should: back where they started."""
        def action(s: Session) -> LikeResult:
            user = self._user(s, username, "like vectors")
            vector_id = self._visible_vector(s, vid, user.id, lock=True).id
            unliked = s.execute(delete(Like).where(Like.user_id == user.id, Like.vector_id == vector_id)
                                .returning(Like.vector_id)).all()  # fmt: skip
            if not unliked:
                _insert_ignore(s, Like, {"user_id": user.id, "vector_id": vector_id})
            step = -1 if unliked else 1
            s.execute(update(EditVector).where(EditVector.id == vector_id)
                      .values(like_count=EditVector.like_count + step))
            count = s.scalar(select(EditVector.like_count).where(EditVector.id == vector_id))
            return LikeResult(vector_id=vector_id, liked=not unliked, changed=True, like_count=count)

        return self._write(action)

    def has_liked(self, user: Optional[str], vector_id: int) -> bool:
        if user is None:
            return False

        def action(s: Session) -> bool:
            viewer = self._viewer_id(s, user)
            row = self._visible_vector(s, vector_id, viewer)
            return viewer is not None and s.get(Like, (viewer, row.id)) is not None

        return self._read(action)

    def record_download(self, vector_id: int, viewer: Optional[str] = None) -> int:
        """Count one download of a visible vector (anonymous allowed); return the new count."""
        def action(s: Session) -> int:
            row_id = self._visible_vector(s, vector_id, self._viewer_id(s, viewer)).id
            s.execute(update(EditVector).where(EditVector.id == row_id)
                      .values(download_count=EditVector.download_count + 1))
            return s.scalar(select(EditVector.download_count).where(EditVector.id == row_id))

        return self._write(action)

    # ------------------------------------------------------------------ reading
    def get(self, vector_id: int, viewer: Optional[str] = None) -> VectorInfo:
        return self._read(lambda s: _vector_info(self._visible_vector(s, vector_id, self._viewer_id(s, viewer))))

    def versions(self, vector_id: int, viewer: Optional[str] = None) -> tuple[VersionInfo, ...]:
        def action(s: Session) -> tuple[VersionInfo, ...]:
            row = self._visible_vector(s, vector_id, self._viewer_id(s, viewer))
            rows = s.scalars(select(VectorVersion).where(VectorVersion.vector_id == row.id)
                             .order_by(VectorVersion.number))
            return tuple(_version_info(v) for v in rows)

        return self._read(action)

    def remixes(self, vector_id: int, viewer: Optional[str] = None) -> tuple[VectorInfo, ...]:
        """Vectors remixed from ``vector_id`` that the viewer may see."""
        def action(s: Session) -> tuple[VectorInfo, ...]:
            viewer_id = self._viewer_id(s, viewer)
            parent = self._visible_vector(s, vector_id, viewer_id)
            rows = s.scalars(select(EditVector).where(EditVector.parent_id == parent.id).order_by(EditVector.id))
            return tuple(_vector_info(r) for r in rows if r.visibility == "public" or r.author_id == viewer_id)

        return self._read(action)

    def get_vector_file(self, vector_id: int, viewer: Optional[str] = None,
                        version: Optional[int] = None) -> VectorFile:
        """The vector as an editgan-vector/1 file (current metadata; the version's tensors)."""
        return self._read(lambda s: self._vector_file_in(s, vector_id, self._viewer_id(s, viewer), version))

    def download(self, vector_id: int, viewer: Optional[str] = None, version: Optional[int] = None) -> bytes:
        """The file's bytes, counting one download, in one transaction."""
        def action(s: Session) -> bytes:
            vf = self._vector_file_in(s, vector_id, self._viewer_id(s, viewer), version)
            s.execute(update(EditVector).where(EditVector.id == check.record_id(vector_id))
                      .values(download_count=EditVector.download_count + 1))
            return vf.to_bytes()

        return self._write(action)

    def get_preview(self, vector_id: int, viewer: Optional[str] = None,
                    version: Optional[int] = None) -> Optional[np.ndarray]:
        """The thumbnail, # [H, W, 3] uint8, or None."""
        return self._read(lambda s: self._vector_file_in(s, vector_id, self._viewer_id(s, viewer), version).preview)

    def _vector_file_in(self, s: Session, vector_id: int, viewer_id: Optional[int],
                        version: Optional[int]) -> VectorFile:
        row = self._visible_vector(s, vector_id, viewer_id)
        source = row
        if version is not None and version != row.version:
            check.positive_int(version, "version")
            source = s.scalar(select(VectorVersion).where(
                VectorVersion.vector_id == row.id, VectorVersion.number == version))
            if source is None:
                raise NotFound(f"vector {vector_id} has no version {version}; it has 1-{row.version}")
        delta, preview, change = blobs.load_blob(s, source.blob_sha256)
        return VectorFile(delta=delta, model_id=row.model_id, edited_classes=tuple(source.edited_classes),
                          default_scale=source.default_scale, scale_min=source.scale_min,
                          scale_max=source.scale_max, metrics=dict(source.metrics), name=row.name,
                          description=row.description, preview=preview, change=change)

    def search(self, query: SearchQuery = SearchQuery(), viewer: Optional[str] = None) -> SearchPage:
        """Free text + filters + sort + paging over the vectors the viewer may see."""
        check.text(query.text, "search text", check.MAX_QUERY_CHARS)
        if query.sort not in SORTS:
            raise InvalidInput(f"sort {repr(query.sort)[:40]} is not accepted; accepted: {', '.join(SORTS)}")
        check.positive_int(query.page, "page", 10_000)
        check.positive_int(query.page_size, "page_size", check.MAX_PAGE_SIZE)
        if query.model_id is not None:
            check.model_id(query.model_id)
        for what, value in (("tag", query.tag), ("edited_class", query.edited_class), ("author", query.author)):
            if value is not None:
                check.text(value, what, 64)

        def action(s: Session) -> SearchPage:
            if self._backend is None:
                self._backend = search_sql.detect_backend(s)
            stmt = search_sql.build_search(query, self._viewer_id(s, viewer), self._backend)
            rows = list(s.scalars(stmt).unique())
            items = tuple(_vector_info(r) for r in rows[:query.page_size])
            return SearchPage(items=items, page=query.page, page_size=query.page_size,
                              has_more=len(rows) > query.page_size)

        return self._read(action)

    def list_vectors(self, viewer: Optional[str] = None, *, model_id: Optional[str] = None,
                     author: Optional[str] = None, sort: str = "recent", page: int = 1,
                     page_size: int = 20) -> SearchPage:
        """Browse without text: a shortcut for ``search``."""
        return self.search(SearchQuery(model_id=model_id, author=author, sort=sort, page=page,
                                       page_size=page_size), viewer)

    def count_vectors(self) -> int:
        """All stored vectors, any visibility (for tests, stats and admin pages)."""
        return self._read(lambda s: s.scalar(select(func.count()).select_from(EditVector)))

    # ------------------------------------------------------------------ import / export
    def export_vector(self, vector_id: int, viewer: Optional[str] = None, version: Optional[int] = None) -> bytes:
        """The .safetensors bytes of one vector (no download is counted; see ``download``)."""
        return self.get_vector_file(vector_id, viewer, version).to_bytes()

    def _collection_entries(self, vector_ids: Sequence[int], viewer: Optional[str]) -> list[transfer.CollectionEntry]:
        if isinstance(vector_ids, (str, bytes)) or not isinstance(vector_ids, Sequence) \
                or not 1 <= len(vector_ids) <= transfer.MAX_COLLECTION_VECTORS:
            raise InvalidInput(f"a collection is a list of 1-{transfer.MAX_COLLECTION_VECTORS} vector ids")
        if len(set(vector_ids)) != len(vector_ids):
            raise InvalidInput("a collection lists each vector once")

        def action(s: Session) -> list[transfer.CollectionEntry]:
            viewer_id = self._viewer_id(s, viewer)
            entries = []
            for vid in vector_ids:
                row = self._visible_vector(s, vid, viewer_id)
                entries.append(transfer.CollectionEntry(
                    vector=self._vector_file_in(s, row.id, viewer_id, None), tags=tuple(row.tags_text.split()),
                    licence=row.licence, author=row.author.username, source_id=row.id, version=row.version))
            return entries

        return self._read(action)

    def export_zip(self, vector_ids: Sequence[int], viewer: Optional[str] = None) -> bytes:
        """A collection as zip bytes (manifest.json + vectors/NNNN.safetensors)."""
        return transfer.pack_zip(self._collection_entries(vector_ids, viewer))

    def export_folder(self, vector_ids: Sequence[int], folder: Union[str, Path],
                      viewer: Optional[str] = None) -> Path:
        """A collection written into a new or empty folder."""
        return transfer.write_folder(self._collection_entries(vector_ids, viewer), Path(folder))

    def import_collection(self, user: Optional[str], source: Union[bytes, str, Path], *,
                          visibility: str = "private") -> tuple[VectorInfo, ...]:
        """Publish every vector of a collection (zip bytes, .zip path or folder) as ``user``'s own,
        all or nothing: one bad file, unknown model or wrong shape and nothing is stored."""
        check.visibility(visibility)
        entries = transfer.read_collection(source, self.max_upload_bytes)
        prepared = []
        for i, entry in enumerate(entries, start=1):
            if not entry.vector.name.strip():
                raise InvalidInput(f"collection entry {i} has no name in its file header; every vector needs a name")
            meta = VectorMetadata(tags=entry.tags, licence=entry.licence, visibility=visibility)
            prepared.append((entry.vector, self._metadata(meta, entry.vector),
                             *blobs.encode_payload(entry.vector.delta, entry.vector.preview, entry.vector.change)))

        def action(s: Session) -> tuple[VectorInfo, ...]:
            rows = [self._insert_vector(s, user, vf, fields, payload, sha, None)
                    for vf, fields, payload, sha in prepared]
            return tuple(_vector_info(r) for r in rows)

        return self._write(action)

    # ------------------------------------------------------------------ compositions
    def save_composition(self, user: Optional[str], name: str, model_id: str,
                         items: Sequence[tuple[int, float]], description: str = "",
                         visibility: str = "private") -> CompositionInfo:
        """Save a named list of (vector id, scale); every vector visible to the owner, of the model,
        each scale within its vector's range. Public compositions are listed for everyone."""
        check.name(name)
        check.description(description)
        check.visibility(visibility)
        entries = self._check_items(items)

        def action(s: Session) -> CompositionInfo:
            owner = self._user(s, user, "save compositions")
            self._model(s, model_id)
            self._resolve_items(s, entries, model_id, owner.id)
            now = utcnow()
            comp = Composition(name=name, description=description, owner=owner, model_id=model_id,
                               visibility=visibility, created_at=now, updated_at=now,
                               items=[CompositionItem(position=i, vector_id=v, scale=sc)
                                      for i, (v, sc) in enumerate(entries)])
            s.add(comp)
            s.flush()
            return _composition_info(comp)

        return self._write(action)

    def update_composition(self, user: Optional[str], composition_id: int, *, name: Optional[str] = None,
                           description: Optional[str] = None, visibility: Optional[str] = None,
                           items: Optional[Sequence[tuple[int, float]]] = None) -> CompositionInfo:
        if name is not None:
            check.name(name)
        if description is not None:
            check.description(description)
        if visibility is not None:
            check.visibility(visibility)
        entries = self._check_items(items) if items is not None else None

        def action(s: Session) -> CompositionInfo:
            owner = self._user(s, user, "edit compositions")
            comp = self._own_composition(s, composition_id, owner)
            if entries is not None:
                self._resolve_items(s, entries, comp.model_id, owner.id)
                s.execute(delete(CompositionItem).where(CompositionItem.composition_id == comp.id))
                s.expire(comp, ["items"])
                comp.items = [CompositionItem(position=i, vector_id=v, scale=sc) for i, (v, sc) in enumerate(entries)]
            for key, value in (("name", name), ("description", description), ("visibility", visibility)):
                if value is not None:
                    setattr(comp, key, value)
            comp.updated_at = utcnow()
            s.flush()
            return _composition_info(comp)

        return self._write(action)

    def delete_composition(self, user: Optional[str], composition_id: int) -> None:
        def action(s: Session) -> None:
            owner = self._user(s, user, "delete compositions")
            comp = self._own_composition(s, composition_id, owner)
            s.execute(delete(Composition).where(Composition.id == comp.id))
            s.expunge(comp)

        self._write(action)

    def get_composition(self, composition_id: int, viewer: Optional[str] = None) -> CompositionInfo:
        return self._read(lambda s: _composition_info(
            self._visible_composition(s, composition_id, self._viewer_id(s, viewer))))

    def list_compositions(self, viewer: Optional[str] = None, *, model_id: Optional[str] = None,
                          owner: Optional[str] = None, page: int = 1, page_size: int = 20) -> tuple[CompositionInfo, ...]:
        check.positive_int(page, "page", 10_000)
        check.positive_int(page_size, "page_size", check.MAX_PAGE_SIZE)

        def action(s: Session) -> tuple[CompositionInfo, ...]:
            viewer_id = self._viewer_id(s, viewer)
            stmt = select(Composition)
            vis = Composition.visibility == "public"
            stmt = stmt.where(vis if viewer_id is None else (vis | (Composition.owner_id == viewer_id)))
            if model_id is not None:
                stmt = stmt.where(Composition.model_id == check.model_id(model_id))
            if owner is not None:
                stmt = stmt.join(User, Composition.owner_id == User.id).where(User.username == owner)
            stmt = stmt.order_by(Composition.created_at.desc(), Composition.id.desc())
            stmt = stmt.offset((page - 1) * page_size).limit(page_size)
            return tuple(_composition_info(c) for c in s.scalars(stmt).unique())

        return self._read(action)

    def compose(self, model_id: str, items: Sequence[tuple[int, float]],
                viewer: Optional[str] = None) -> ComposeResult:
        """Resolve (vector id, scale) pairs to tensors for ``model_id``; refuse other models' vectors."""
        entries = self._check_items(items)

        def action(s: Session) -> ComposeResult:
            model = self._model(s, model_id)
            rows = self._resolve_items(s, entries, model.model_id, self._viewer_id(s, viewer))
            return _compose(model, rows, entries, s)

        return self._read(action)

    def compose_saved(self, composition_id: int, model_id: str, viewer: Optional[str] = None) -> ComposeResult:
        """Resolve a saved composition for the generator ``model_id`` the caller has loaded."""
        def action(s: Session) -> ComposeResult:
            viewer_id = self._viewer_id(s, viewer)
            comp = self._visible_composition(s, composition_id, viewer_id)
            if comp.model_id != model_id:
                raise InvalidInput(f"composition {composition_id} is for model {comp.model_id}, not {model_id}")
            for item in comp.items:
                if item.vector_id is None:
                    raise NotFound(f"entry {item.position + 1} of composition {composition_id} used a vector "
                                   "that its author has deleted; edit the composition")
            entries = [(item.vector_id, item.scale) for item in comp.items]
            rows = self._resolve_items(s, entries, comp.model_id, viewer_id)
            return _compose(self._model(s, comp.model_id), rows, entries, s)

        return self._read(action)

    @staticmethod
    def _check_items(items: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
        if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
            raise InvalidInput("a composition is a list of (vector id, scale) pairs")
        if not 1 <= len(items) <= check.MAX_COMPOSITION_ITEMS:
            raise InvalidInput(f"a composition has 1-{check.MAX_COMPOSITION_ITEMS} entries; got {len(items)}")
        out: list[tuple[int, float]] = []
        for i, item in enumerate(items):
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise InvalidInput(f"entry {i + 1} must be a (vector id, scale) pair")
            vid = check.record_id(item[0], f"entry {i + 1}'s vector id")
            if any(vid == v for v, _ in out):
                raise InvalidInput(f"vector {vid} appears twice; give it once with the summed scale")
            out.append((vid, check.scale(item[1], f"entry {i + 1}'s scale")))
        return out

    def _resolve_items(self, s: Session, entries: list[tuple[int, float]], model_id: str,
                       viewer_id: Optional[int]) -> list[EditVector]:
        rows = []
        for i, (vid, scale) in enumerate(entries):
            row = self._visible_vector(s, vid, viewer_id)
            if row.model_id != model_id:
                raise InvalidInput(f"vector {vid} ({row.name!r}) belongs to model {row.model_id}, not {model_id}; "
                                   "vectors of another generator cannot be combined")
            if not row.scale_min <= scale <= row.scale_max:
                raise InvalidInput(f"entry {i + 1}: scale {scale!r} is outside vector {vid}'s range "
                                   f"[{row.scale_min!r}, {row.scale_max!r}]")
            rows.append(row)
        return rows

    def _visible_composition(self, s: Session, composition_id: int, viewer_id: Optional[int]) -> Composition:
        comp = s.get(Composition, check.record_id(composition_id, "composition id"))
        if comp is None or (comp.visibility != "public" and comp.owner_id != viewer_id):
            raise NotFound(f"no composition {composition_id} is visible to you (it does not exist or is private)")
        return comp

    def _own_composition(self, s: Session, composition_id: int, owner: User) -> Composition:
        comp = self._visible_composition(s, composition_id, owner.id)
        if comp.owner_id != owner.id:
            raise PermissionDenied(f"only the owner of composition {composition_id} "
                                   f"({comp.owner.username}) may change it")
        return comp


# ---------------------------------------------------------------------- helpers
_insert_ignore = tx.insert_ignore


def _compose(model: GeneratorModel, rows: list[EditVector], entries: list[tuple[int, float]],
             s: Session) -> ComposeResult:
    total = np.zeros((model.n_latent, model.w_dim), dtype=np.float32)  # [n_latent, w_dim]
    parts = []
    for row, (_, scale) in zip(rows, entries):
        delta, _, _ = blobs.load_blob(s, row.blob_sha256)
        if delta.shape != total.shape:
            raise InvalidInput(f"vector {row.id} has shape {list(delta.shape)}; model {model.name!r} "
                               f"takes {list(total.shape)}")
        total += np.float32(scale) * delta
        parts.append(ComposedVector(vector_id=row.id, version=row.version, name=row.name, scale=scale, delta=delta))
    return ComposeResult(model_id=model.model_id, delta=total, items=tuple(parts))


def _user_info(u: User) -> UserInfo:
    return UserInfo(id=u.id, username=u.username, display_name=u.display_name, created_at=u.created_at)


def _model_spec(m: GeneratorModel) -> ModelSpec:
    return ModelSpec(model_id=m.model_id, name=m.name, resolution=m.resolution, n_latent=m.n_latent,
                     w_dim=m.w_dim, class_names=tuple(m.class_names))


def _vector_info(r: EditVector) -> VectorInfo:
    return VectorInfo(
        id=r.id, name=r.name, description=r.description, tags=tuple(r.tags_text.split()),
        author=r.author.username, model_id=r.model_id, edited_classes=tuple(r.edited_classes),
        subject_classes=tuple(r.subject_classes), default_scale=r.default_scale, scale_min=r.scale_min,
        scale_max=r.scale_max,
        visibility=r.visibility, licence=r.licence, metrics=dict(r.metrics), has_preview=r.has_preview,
        version=r.version, parent_id=r.parent_id, parent_version=r.parent_version,
        created_at=r.created_at, updated_at=r.updated_at, download_count=r.download_count,
        like_count=r.like_count, content_sha256=r.blob_sha256)


def _version_info(v: VectorVersion) -> VersionInfo:
    return VersionInfo(vector_id=v.vector_id, number=v.number, edited_classes=tuple(v.edited_classes),
                       subject_classes=tuple(v.subject_classes),
                       default_scale=v.default_scale, scale_min=v.scale_min, scale_max=v.scale_max,
                       metrics=dict(v.metrics), has_preview=v.has_preview, note=v.note,
                       created_at=v.created_at, content_sha256=v.blob_sha256)


def _composition_info(c: Composition) -> CompositionInfo:
    return CompositionInfo(id=c.id, name=c.name, description=c.description, owner=c.owner.username,
                           model_id=c.model_id, visibility=c.visibility,
                           items=tuple((i.vector_id, i.scale) for i in c.items),
                           created_at=c.created_at, updated_at=c.updated_at)
