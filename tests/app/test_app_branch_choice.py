"""The branch version a generator is edited with: chosen in the Label tab, it holds on every replica and after a
restart until a newer version is trained, and the library's classes of the model follow it (saving checks them)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from app.config import AppConfig
from app.identity import Identity
from app.runtime import Runtime
from app.training import branch_config, pack_branch
from core.branch import SegmentationBranch
from core.vector_format import VectorFile
from vector_library import VectorMetadata

NAMES = ("background", "face", "hair")


def _runtime(tiny_bundle, tmp_path) -> Runtime:
    cfg = AppConfig(model=str(tiny_bundle), database_url=f"sqlite:///{tmp_path / 'lib.sqlite3'}", data_dir=tmp_path,
                    example_seeds=(0,))  # fmt: skip
    rt = Runtime.create(cfg, Identity("single", local_user="bob"))
    rt.library.ensure_user("bob")  # the app does this when bob first acts
    return rt


def _store_branch(rt: Runtime) -> int:
    """A trained branch version with other classes than the bundle's (as the Label tab stores one)."""
    base = rt.base_model
    branch = SegmentationBranch(replace(base.branch.config, num_classes=len(NAMES)))
    palette = np.array([[0, 0, 0], [200, 150, 120], [90, 60, 20]], np.uint8)
    return rt.labels.add_branch_version(base.model_id, "bob", pack_branch(branch, None),
                                        branch_config(branch, None, NAMES, palette, {}), {}, None, 0).version


def _vector(rt: Runtime, classes) -> VectorFile:
    return VectorFile(delta=np.zeros(rt.model.latent_shape, np.float32), model_id=rt.model.model_id,
                      edited_classes=tuple(classes))  # fmt: skip


def test_the_bundles_own_branch_chosen_again_holds_after_a_restart_and_its_classes_save(tiny_bundle, tmp_path):
    rt = _runtime(tiny_bundle, tmp_path)
    own = tuple(rt.model.class_names)
    version = _store_branch(rt)
    rt.refresh_branch(force=True)
    assert rt.branch_version == version and tuple(rt.model.class_names) == NAMES
    assert rt.library.get_model(rt.model.model_id).class_names == NAMES

    rt.choose_branch_version(0, "bob")
    assert rt.branch_version == 0 and tuple(rt.model.class_names) == own
    assert rt.library.get_model(rt.model.model_id).class_names == own  # before, it kept the trained branch's
    saved = rt.library.publish("bob", _vector(rt, own[-1:]), VectorMetadata(name="after going back"))
    assert saved.edited_classes == own[-1:]

    again = _runtime(tiny_bundle, tmp_path)  # a restart, or another replica on the same database
    assert again.branch_version == 0 and tuple(again.model.class_names) == own
    rt.refresh_branch(force=True)
    assert rt.branch_version == 0

    newer = _store_branch(rt)  # a newer version replaces the choice
    rt.refresh_branch(force=True)
    again.refresh_branch(force=True)
    assert rt.branch_version == again.branch_version == newer
    assert _runtime(tiny_bundle, tmp_path).branch_version == newer


def test_choosing_an_absent_version_is_refused_and_changes_nothing(tiny_bundle, tmp_path):
    rt = _runtime(tiny_bundle, tmp_path)
    version = _store_branch(rt)
    rt.choose_branch_version(0, "bob")
    with pytest.raises(Exception, match="no branch version 7"):
        rt.choose_branch_version(7, "bob")
    assert rt.branch_version == 0 and rt.labels.branch_in_use(rt.model.model_id) == 0
    rt.choose_branch_version(version, "bob")
    assert _runtime(tiny_bundle, tmp_path).branch_version == version
