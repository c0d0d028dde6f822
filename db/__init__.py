"""Database layer of the vector library: SQLAlchemy 2.x models, engine/session factory, migrations.

Knows nothing of torch. The service that owns transactions is ``vector_library``.
"""

from db.engine import (
    ENV_DATA_DIR,
    ENV_DATABASE_URL,
    Database,
    DatabaseConfig,
    default_data_dir,
    default_database_url,
    make_engine,
)
from db.models import (
    VISIBILITIES,
    Base,
    BranchVersion,
    Composition,
    CompositionItem,
    EditVector,
    GeneratorModel,
    KeptFile,
    LabelMask,
    LabelSample,
    LabelSet,
    LabelSetMember,
    Like,
    ShareState,
    TrainingLock,
    User,
    VectorBlob,
    VectorClass,
    VectorTag,
    VectorVersion,
)

__all__ = [
    "ENV_DATABASE_URL", "ENV_DATA_DIR", "Database", "DatabaseConfig", "default_data_dir",
    "default_database_url", "make_engine", "VISIBILITIES", "Base", "Composition", "CompositionItem",
    "EditVector", "GeneratorModel", "KeptFile", "Like", "ShareState", "User", "VectorBlob", "VectorClass", "VectorTag",
    "VectorVersion", "BranchVersion", "LabelMask", "LabelSample", "LabelSet", "LabelSetMember", "TrainingLock",
]
