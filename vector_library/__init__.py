"""The shared edit-vector library: publish, search, versions, remixes, likes, compositions,
import/export and Hub sync, over the database of ``db``; and label sets for training a segmentation branch
of one's own generator together (``LabelStore``, vector_library/labels.py). Knows no torch and no gradio.

    from db import Database
    from vector_library import VectorLibrary
    library = VectorLibrary(Database.open())        # upgrades the schema on start
"""

from vector_library.errors import (
    Conflict,
    InvalidInput,
    LabelConflict,
    LibraryError,
    NotFound,
    PermissionDenied,
    SampleClaimed,
    TrainingBusy,
)
from vector_library.hub import HubPushResult, pull_collection, push_collection
from vector_library.labels import (
    FACE_TEMPLATE,
    BranchVersionInfo,
    LabelClass,
    LabelSetInfo,
    LabelStore,
    MaskInfo,
    SampleInfo,
)
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
from vector_library.service import VectorLibrary
from vector_library.states import KeptFileInfo, SharedState, StateStore
from vector_library.transfer import CollectionEntry, read_collection
from vector_library.validation import LICENCES, VISIBILITIES

__all__ = [
    "Conflict", "InvalidInput", "LibraryError", "NotFound", "PermissionDenied", "HubPushResult",
    "pull_collection", "push_collection", "SORTS", "ComposedVector", "ComposeResult", "CompositionInfo",
    "LikeResult", "MetadataUpdate", "ModelSpec", "SearchPage", "SearchQuery", "UserInfo", "VectorInfo",
    "VectorMetadata", "VersionInfo", "VectorLibrary", "KeptFileInfo", "SharedState", "StateStore", "CollectionEntry", "read_collection", "LICENCES",
    "VISIBILITIES", "LabelConflict", "SampleClaimed", "TrainingBusy", "FACE_TEMPLATE", "BranchVersionInfo",
    "LabelClass", "LabelSetInfo", "LabelStore", "MaskInfo", "SampleInfo",
]
