"""Small fixed generators and random vectors for the library's tests and benchmarks (no torch)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from core.vector_format import VectorFile
from vector_library.records import ModelSpec

N_LATENT, W_DIM = 4, 8
CLASSES = ("background", "face", "eye", "hair", "mouth")
FACES = ModelSpec("0123456789abcdef" * 2, "tiny faces", 32, N_LATENT, W_DIM, CLASSES)
CARS = ModelSpec("fedcba9876543210" * 2, "tiny cars", 32, 6, W_DIM, ("background", "car", "wheel"))


def random_vector(rng: np.random.Generator, spec: ModelSpec = FACES, *,
                  shape: Optional[tuple[int, int]] = None, model_id: Optional[str] = None,
                  **fields) -> VectorFile:
    """A valid VectorFile for ``spec`` with a random delta # [n_latent, w_dim]; ``fields`` override."""
    fields.setdefault("edited_classes", spec.class_names[-1:])
    fields.setdefault("name", "smile")
    delta = rng.standard_normal(shape or (spec.n_latent, spec.w_dim)).astype(np.float32)
    return VectorFile(delta=delta, model_id=model_id or spec.model_id, **fields)
