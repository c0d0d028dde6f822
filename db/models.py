"""SQLAlchemy 2.x models of the shared edit-vector library.

Tables (see docs/vector_library.md for the reasoning):

    users              one row per person (or local account); the app maps OAuth/local auth onto it
    models             generators, keyed by their content hash (``model_id``), and the branch version chosen for
                       each (NULL: the newest)
    vector_blobs       content-addressed tensor payloads (safetensors bytes of delta + preview)
    edit_vectors       one row per shared vector; carries its current version's fields so search
                       never joins the version history
    vector_versions    the history: one row per published version of a vector
    vector_tags        (vector, tag) for indexed tag filters
    vector_classes     (vector, edited class, whether it is a subject class) of the current version, for
                       indexed class filters
    likes              (user, vector); ``edit_vectors.like_count`` is kept in the same transaction
    compositions       a named, publishable list of (vector, scale) ...
    composition_items  ... its entries, in order
    share_states       the editor states behind ``?s=`` share links (latent, applied vectors, tuning token),
                       named by a hash of their content, so a link opens on every app replica
    kept_files         an app's kept photos and generator tunings (safetensors bytes), by kind and content
                       token, the newest few hundred of each kind, so every replica and a restart find them
    label_sets         a set of generated samples that members label together for one generator: its classes
                       (name, colour), mask resolution, owner, ``locked`` once a branch was trained from it
    label_set_members  (set, user) who may claim, paint, save and train; the owner is a member implicitly
    label_samples      (set, seed, truncation) at a position; the latest mask version, who holds the paint claim
    label_masks        every saved mask, never overwritten: (sample, version) unique, zlib of uint8 class ids
    branch_versions    trained segmentation branches (safetensors bytes), numbered per model, optionally published
    training_locks     one row per model: the token of the training job running for it, if any

Full-text search structures are dialect-specific and live only in the migration: an FTS5
external-content table on SQLite, a generated ``tsvector`` column with a GIN index on PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

VISIBILITIES = ("public", "private")

# Deterministic constraint names so Alembic migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores no offset: we add UTC back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Optional[datetime], dialect) -> Optional[datetime]:
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime given; the database stores timezone-aware UTC times")
            value = value.astimezone(timezone.utc)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Optional[datetime], dialect) -> Optional[datetime]:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON, datetime: UTCDateTime}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GeneratorModel(Base):
    """A generator that vectors belong to; ``model_id`` is its content hash (lowercase hex)."""

    __tablename__ = "models"

    model_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    resolution: Mapped[int]
    n_latent: Mapped[int]
    w_dim: Mapped[int]
    class_names: Mapped[list[str]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # the branch version every app process edits with, as chosen in the Label tab (0: the bundle's own); NULL: the
    # newest trained one. Training a new version clears it.
    branch_in_use: Mapped[Optional[int]]


class VectorBlob(Base):
    """Tensor payload, addressed by the sha256 of ``data``; shared by identical versions."""

    __tablename__ = "vector_blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class VersionFields:
    """What one version defines; stored per version in vector_versions and copied, for the
    current version, onto edit_vectors so that search and listing never join the history."""

    edited_classes: Mapped[list[str]]
    # the classes the change is about (core.vector_format.subject_classes), most changed first; the class filter
    # matches these, while edited_classes names every class the change touches
    subject_classes: Mapped[list[str]]
    default_scale: Mapped[float] = mapped_column(Float)
    scale_min: Mapped[float] = mapped_column(Float)
    scale_max: Mapped[float] = mapped_column(Float)
    metrics: Mapped[dict[str, Any]]
    has_preview: Mapped[bool] = mapped_column(Boolean, default=False)


class EditVector(VersionFields, Base):
    __tablename__ = "edit_vectors"
    __table_args__ = (
        CheckConstraint("visibility IN ('public', 'private')", name="visibility"),
        CheckConstraint("scale_min < scale_max", name="scale_range"),
        CheckConstraint("version >= 1", name="version_positive"),
        # Search: the common shapes are "public vectors of model M, newest/most liked first".
        Index("ix_edit_vectors_model_vis_created", "model_id", "visibility", "created_at"),
        Index("ix_edit_vectors_model_vis_likes", "model_id", "visibility", "like_count"),
        Index("ix_edit_vectors_model_vis_downloads", "model_id", "visibility", "download_count"),
        Index("ix_edit_vectors_vis_created", "visibility", "created_at"),
        Index("ix_edit_vectors_vis_likes", "visibility", "like_count"),
        Index("ix_edit_vectors_vis_downloads", "visibility", "download_count"),
        Index("ix_edit_vectors_author_created", "author_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    tags_text: Mapped[str] = mapped_column(String(600), default="")  # space-joined, for full text
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    model_id: Mapped[str] = mapped_column(ForeignKey("models.model_id"))
    licence: Mapped[str] = mapped_column(String(32))
    visibility: Mapped[str] = mapped_column(String(16), default="public")
    # The current version's number and tensors (its other fields come from VersionFields).
    version: Mapped[int] = mapped_column(Integer, default=1)
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("vector_blobs.sha256"))
    # Remix lineage: the vector (and its version) this one was derived from.
    parent_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("edit_vectors.id", ondelete="SET NULL"), index=True)
    parent_version: Mapped[Optional[int]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    download_count: Mapped[int] = mapped_column(Integer, default=0)
    like_count: Mapped[int] = mapped_column(Integer, default=0)

    author: Mapped[User] = relationship(lazy="joined", innerjoin=True)
    tags: Mapped[list["VectorTag"]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="VectorTag.position")
    classes: Mapped[list["VectorClass"]] = relationship(cascade="all, delete-orphan", passive_deletes=True)


class VectorVersion(VersionFields, Base):
    __tablename__ = "vector_versions"
    __table_args__ = (UniqueConstraint("vector_id", "number", name="uq_vector_versions_vector_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    vector_id: Mapped[int] = mapped_column(ForeignKey("edit_vectors.id", ondelete="CASCADE"))
    number: Mapped[int]
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("vector_blobs.sha256"), index=True)
    note: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class VectorTag(Base):
    __tablename__ = "vector_tags"
    __table_args__ = (Index("ix_vector_tags_tag_vector", "tag", "vector_id"),)

    vector_id: Mapped[int] = mapped_column(ForeignKey("edit_vectors.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class VectorClass(Base):
    __tablename__ = "vector_classes"
    __table_args__ = (Index("ix_vector_classes_class_vector", "class_name", "vector_id"),)

    vector_id: Mapped[int] = mapped_column(ForeignKey("edit_vectors.id", ondelete="CASCADE"), primary_key=True)
    class_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[bool] = mapped_column(Boolean, default=False)  # one of the vector's subject_classes


class Like(Base):
    __tablename__ = "likes"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    vector_id: Mapped[int] = mapped_column(
        ForeignKey("edit_vectors.id", ondelete="CASCADE"), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Composition(Base):
    __tablename__ = "compositions"
    __table_args__ = (
        CheckConstraint("visibility IN ('public', 'private')", name="visibility"),
        Index("ix_compositions_vis_created", "visibility", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.model_id"), index=True)
    visibility: Mapped[str] = mapped_column(String(16), default="private")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    owner: Mapped[User] = relationship(lazy="joined", innerjoin=True)
    items: Mapped[list["CompositionItem"]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="CompositionItem.position")


class CompositionItem(Base):
    __tablename__ = "composition_items"
    __table_args__ = (
        UniqueConstraint("composition_id", "position", name="uq_composition_items_composition_position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    composition_id: Mapped[int] = mapped_column(ForeignKey("compositions.id", ondelete="CASCADE"))
    position: Mapped[int]
    # SET NULL: deleting a vector must not silently rewrite other people's compositions;
    # resolving an item whose vector is gone raises an explicit error instead.
    vector_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("edit_vectors.id", ondelete="SET NULL"), index=True)
    scale: Mapped[float] = mapped_column(Float)


class ShareState(Base):
    """An editor state a share link names: a latent of its model, the applied vectors, a photo's tuning."""

    __tablename__ = "share_states"
    __table_args__ = (CheckConstraint("n_latent >= 1 AND w_dim >= 1", name="shape"),)

    token: Mapped[str] = mapped_column(String(20), primary_key=True)  # sha256 of the content, 20 hex
    model_id: Mapped[str] = mapped_column(ForeignKey("models.model_id"), index=True)
    n_latent: Mapped[int]
    w_dim: Mapped[int]
    latent: Mapped[bytes] = mapped_column(LargeBinary)  # float32 little-endian, [n_latent, w_dim]
    vectors: Mapped[list[Any]] = mapped_column(JSON)  # [[vector id, scale], ...] in the order applied
    tuning: Mapped[Optional[str]] = mapped_column(String(20))  # a kept_files token of kind "tuning"
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class KeptFile(Base):
    """A file the app keeps for later requests on any replica: an uploaded photo with its embedding
    ("photo"), or a photo's generator tuning ("tuning"); ``token`` is a hash of its content."""

    __tablename__ = "kept_files"
    __table_args__ = (
        CheckConstraint("kind IN ('photo', 'tuning')", name="kind"),
        Index("ix_kept_files_kind_created", "kind", "created_at"),
    )

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    token: Mapped[str] = mapped_column(String(20), primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.model_id"))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LabelSet(Base):
    """Samples of one generator that its members label together; ``classes`` is [[name, [r, g, b]], ...]."""

    __tablename__ = "label_sets"
    __table_args__ = (
        UniqueConstraint("model_id", "name", name="uq_label_sets_model_name"),
        CheckConstraint("resolution >= 1", name="resolution_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.model_id"))
    name: Mapped[str] = mapped_column(String(80))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    classes: Mapped[list[Any]] = mapped_column(JSON)
    resolution: Mapped[int]
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    owner: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class LabelSetMember(Base):
    __tablename__ = "label_set_members"

    set_id: Mapped[int] = mapped_column(ForeignKey("label_sets.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LabelSample(Base):
    """One generated sample of a set; ``latest_version`` 0 means not labelled yet. A paint claim is
    (``claimed_by_id``, ``claim_expires``), taken and released by conditional UPDATEs."""

    __tablename__ = "label_samples"
    __table_args__ = (
        UniqueConstraint("set_id", "seed", "truncation", name="uq_label_samples_set_seed_truncation"),
        UniqueConstraint("set_id", "position", name="uq_label_samples_set_position"),
        CheckConstraint("latest_version >= 0", name="latest_version_nonnegative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    set_id: Mapped[int] = mapped_column(ForeignKey("label_sets.id", ondelete="CASCADE"))
    seed: Mapped[int]
    truncation: Mapped[float] = mapped_column(Float)
    position: Mapped[int]
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    labelled_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    labelled_at: Mapped[Optional[datetime]]
    claimed_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    claim_expires: Mapped[Optional[datetime]]

    labelled_by: Mapped[Optional[User]] = relationship(foreign_keys=[labelled_by_id], lazy="joined")
    claimed_by: Mapped[Optional[User]] = relationship(foreign_keys=[claimed_by_id], lazy="joined")


class LabelMask(Base):
    """One saved version of a sample's mask: zlib of ``height * width`` uint8 class ids, row-major."""

    __tablename__ = "label_masks"
    __table_args__ = (
        UniqueConstraint("sample_id", "version", name="uq_label_masks_sample_version"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("label_samples.id", ondelete="CASCADE"))
    version: Mapped[int]
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    note: Mapped[str] = mapped_column(String(500), default="")
    height: Mapped[int]
    width: Mapped[int]
    max_class: Mapped[int]  # the largest class id in the mask: class lists may not shrink below it
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    author: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class BranchVersion(Base):
    """A trained segmentation branch of a generator (safetensors bytes), numbered 1, 2, ... per model."""

    __tablename__ = "branch_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version", name="uq_branch_versions_model_version"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.model_id"))
    version: Mapped[int]
    label_set_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("label_sets.id", ondelete="SET NULL"), index=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    config: Mapped[dict[str, Any]]
    record: Mapped[dict[str, Any]]
    n_masks: Mapped[int]
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    weights: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    created_by: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class TrainingLock(Base):
    """The training job running for a model, if any (``token`` set); taken by a conditional UPDATE."""

    __tablename__ = "training_locks"

    model_id: Mapped[str] = mapped_column(ForeignKey("models.model_id"), primary_key=True)
    token: Mapped[Optional[str]] = mapped_column(String(32))
    set_id: Mapped[Optional[int]] = mapped_column(ForeignKey("label_sets.id", ondelete="SET NULL"))
    user_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    started_at: Mapped[Optional[datetime]]
    finished_at: Mapped[Optional[datetime]]
    last_ok: Mapped[Optional[bool]] = mapped_column(Boolean)
