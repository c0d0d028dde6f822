"""What the library takes and returns: frozen dataclasses, never ORM rows or tuples."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Optional

import numpy as np

from vector_library.validation import DEFAULT_LICENCE

SORTS = ("relevance", "recent", "likes", "downloads")


@dataclass(frozen=True)
class UserInfo:
    id: int
    username: str
    display_name: str
    created_at: datetime


@dataclass(frozen=True)
class ModelSpec:
    """A generator as the app registers it; ``model_id`` is its content hash (lowercase hex)."""

    model_id: str
    name: str
    resolution: int
    n_latent: int
    w_dim: int
    class_names: tuple[str, ...]


@dataclass(frozen=True)
class VectorMetadata:
    """What a publisher says about a vector beyond the file. ``name``/``description`` left as None
    are taken from the file's header."""

    name: Optional[str] = None
    description: Optional[str] = None
    tags: tuple[str, ...] = ()
    licence: str = DEFAULT_LICENCE
    visibility: str = "public"


@dataclass(frozen=True)
class MetadataUpdate:
    """A partial change by the author; None means unchanged. Scales are checked as a triple
    together with the unchanged ones."""

    name: Optional[str] = None
    description: Optional[str] = None
    tags: Optional[tuple[str, ...]] = None
    licence: Optional[str] = None
    visibility: Optional[str] = None
    default_scale: Optional[float] = None
    scale_min: Optional[float] = None
    scale_max: Optional[float] = None


@dataclass(frozen=True)
class VectorInfo:
    id: int
    name: str
    description: str
    tags: tuple[str, ...]
    author: str
    model_id: str
    edited_classes: tuple[str, ...]  # every class the change touches, the most changed first (context classes last)
    subject_classes: tuple[str, ...]  # those it is about (core.vector_format.subject_classes); the class filter's
    default_scale: float
    scale_min: float
    scale_max: float
    visibility: str
    licence: str
    metrics: dict
    has_preview: bool
    version: int
    parent_id: Optional[int]
    parent_version: Optional[int]
    created_at: datetime
    updated_at: datetime
    download_count: int
    like_count: int
    content_sha256: str  # of the stored tensor payload (delta + preview) of the current version


@dataclass(frozen=True)
class VersionInfo:
    vector_id: int
    number: int
    edited_classes: tuple[str, ...]
    subject_classes: tuple[str, ...]
    default_scale: float
    scale_min: float
    scale_max: float
    metrics: dict
    has_preview: bool
    note: str
    created_at: datetime
    content_sha256: str


@dataclass(frozen=True)
class SearchQuery:
    """Free text over name/description/tags (words match as prefixes, all must match unless OR joins them), filters,
    a sort and a page. Empty text lists everything visible that passes the filters. ``edited_class`` matches the
    vectors whose change is about that class (``VectorInfo.subject_classes``), not every class it touches."""

    text: str = ""
    model_id: Optional[str] = None
    edited_class: Optional[str] = None
    tag: Optional[str] = None
    author: Optional[str] = None
    sort: str = "relevance"  # relevance (= recent without text), recent, likes, downloads
    page: int = 1
    page_size: int = 20


@dataclass(frozen=True)
class SearchPage:
    items: tuple[VectorInfo, ...]
    page: int
    page_size: int
    has_more: bool


@dataclass(frozen=True)
class LikeResult:
    vector_id: int
    liked: bool     # the caller's like state after the call
    changed: bool   # False when it already was in that state
    like_count: int


@dataclass(frozen=True)
class CompositionInfo:
    id: int
    name: str
    description: str
    owner: str
    model_id: str
    visibility: str
    items: tuple[tuple[Optional[int], float], ...]  # (vector id, or None if deleted; scale)
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ComposedVector:
    vector_id: int
    version: int
    name: str
    scale: float
    delta: np.ndarray = field(repr=False)  # [n_latent, w_dim] float32, unscaled


@dataclass(frozen=True)
class ComposeResult:
    """A composition resolved to tensors: ``delta`` = sum of scale * item delta."""

    model_id: str
    delta: np.ndarray = field(repr=False)  # [n_latent, w_dim] float32
    items: tuple[ComposedVector, ...] = ()
