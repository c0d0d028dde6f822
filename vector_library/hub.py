"""Push and pull a collection to and from a Hugging Face Hub dataset repository.

The repository holds exactly the collection layout of vector_library.transfer (manifest.json +
vectors/*.safetensors). Pushing replaces the previous collection in one commit (stale vector files
are deleted by ``delete_patterns``); pulling downloads only those paths and imports them through
the same all-or-nothing path as a zip upload.

``api`` defaults to a real ``huggingface_hub.HfApi``; tests pass an object with the same method
signatures (create_repo, upload_folder, snapshot_download) or point a real HfApi at a local
endpoint.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from vector_library.errors import InvalidInput
from vector_library.records import VectorInfo
from vector_library.service import VectorLibrary
from vector_library.transfer import MANIFEST

REPO_TYPE = "dataset"
COLLECTION_PATTERNS = [MANIFEST, "vectors/*.safetensors"]


@dataclass(frozen=True)
class HubPushResult:
    repo_id: str
    commit: str      # the commit id (oid) the push created
    n_vectors: int


def _api(api: Any, token: Optional[str]) -> Any:
    if api is not None:
        return api
    from huggingface_hub import HfApi
    return HfApi(token=token)


def _check_repo_id(repo_id: Any) -> str:
    import re
    if not isinstance(repo_id, str) or re.fullmatch(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}", repo_id) is None \
            or ".." in repo_id:
        raise InvalidInput(f"repo_id {repr(repo_id)[:80]} is not accepted; use 'owner/name' as on the Hub")
    return repo_id


def push_collection(library: VectorLibrary, repo_id: str, vector_ids: Sequence[int], *,
                    viewer: Optional[str] = None, api: Any = None, token: Optional[str] = None,
                    private: Optional[bool] = None, revision: Optional[str] = None,
                    commit_message: Optional[str] = None) -> HubPushResult:
    """Export ``vector_ids`` (as ``viewer`` sees them) and commit them to the dataset ``repo_id``."""
    _check_repo_id(repo_id)
    hub = _api(api, token)
    with tempfile.TemporaryDirectory(prefix="editgan-push-") as tmp:
        folder = library.export_folder(vector_ids, Path(tmp) / "collection", viewer)
        hub.create_repo(repo_id, repo_type=REPO_TYPE, exist_ok=True, private=private)
        info = hub.upload_folder(
            repo_id=repo_id, folder_path=str(folder), repo_type=REPO_TYPE, revision=revision,
            commit_message=commit_message or f"Edit-vector collection: {len(vector_ids)} vectors",
            allow_patterns=COLLECTION_PATTERNS, delete_patterns=COLLECTION_PATTERNS)
    return HubPushResult(repo_id=repo_id, commit=str(getattr(info, "oid", "") or ""), n_vectors=len(vector_ids))


def pull_collection(library: VectorLibrary, repo_id: str, user: Optional[str], *, api: Any = None,
                    token: Optional[str] = None, revision: Optional[str] = None,
                    visibility: str = "private") -> tuple[VectorInfo, ...]:
    """Download the collection in ``repo_id`` and import it as ``user``'s vectors, all or nothing."""
    _check_repo_id(repo_id)
    hub = _api(api, token)
    with tempfile.TemporaryDirectory(prefix="editgan-pull-") as tmp:
        path = hub.snapshot_download(repo_id, repo_type=REPO_TYPE, revision=revision, local_dir=tmp,
                                     allow_patterns=COLLECTION_PATTERNS)
        return library.import_collection(user, Path(path), visibility=visibility)
