"""Label sets for training a segmentation branch of a user's own generator, and the trained branches (#23).

label_sets (classes and colours as JSON, owner, mask resolution, locked once trained from, public),
label_set_members, label_samples (seed and truncation of a generated sample, its latest mask version and the
paint claim), label_masks (every saved version, zlib of uint8 class ids), branch_versions (safetensors bytes,
numbered per model) and training_locks (one row per model, the running job's token). New tables only, plain
types: the same on SQLite and PostgreSQL, no batch mode needed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('label_sets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('classes', sa.JSON(), nullable=False),
    sa.Column('resolution', sa.Integer(), nullable=False),
    sa.Column('locked', sa.Boolean(), nullable=False),
    sa.Column('public', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('resolution >= 1', name=op.f('ck_label_sets_resolution_positive')),
    sa.ForeignKeyConstraint(['model_id'], ['models.model_id'], name=op.f('fk_label_sets_model_id_models')),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_label_sets_owner_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_label_sets')),
    sa.UniqueConstraint('model_id', 'name', name='uq_label_sets_model_name')
    )
    op.create_index(op.f('ix_label_sets_owner_id'), 'label_sets', ['owner_id'], unique=False)

    op.create_table('branch_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('label_set_id', sa.Integer(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('record', sa.JSON(), nullable=False),
    sa.Column('n_masks', sa.Integer(), nullable=False),
    sa.Column('published', sa.Boolean(), nullable=False),
    sa.Column('weights', sa.LargeBinary(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('version >= 1', name=op.f('ck_branch_versions_version_positive')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_branch_versions_created_by_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['label_set_id'], ['label_sets.id'], name=op.f('fk_branch_versions_label_set_id_label_sets'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['model_id'], ['models.model_id'], name=op.f('fk_branch_versions_model_id_models')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_branch_versions')),
    sa.UniqueConstraint('model_id', 'version', name='uq_branch_versions_model_version')
    )
    op.create_index(op.f('ix_branch_versions_created_by_id'), 'branch_versions', ['created_by_id'], unique=False)
    op.create_index(op.f('ix_branch_versions_label_set_id'), 'branch_versions', ['label_set_id'], unique=False)

    op.create_table('label_samples',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('set_id', sa.Integer(), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('truncation', sa.Float(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('latest_version', sa.Integer(), nullable=False),
    sa.Column('labelled_by_id', sa.Integer(), nullable=True),
    sa.Column('labelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_by_id', sa.Integer(), nullable=True),
    sa.Column('claim_expires', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('latest_version >= 0', name=op.f('ck_label_samples_latest_version_nonnegative')),
    sa.ForeignKeyConstraint(['claimed_by_id'], ['users.id'], name=op.f('fk_label_samples_claimed_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['labelled_by_id'], ['users.id'], name=op.f('fk_label_samples_labelled_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['set_id'], ['label_sets.id'], name=op.f('fk_label_samples_set_id_label_sets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_label_samples')),
    sa.UniqueConstraint('set_id', 'position', name='uq_label_samples_set_position'),
    sa.UniqueConstraint('set_id', 'seed', 'truncation', name='uq_label_samples_set_seed_truncation')
    )
    op.create_table('label_set_members',
    sa.Column('set_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['set_id'], ['label_sets.id'], name=op.f('fk_label_set_members_set_id_label_sets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_label_set_members_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('set_id', 'user_id', name=op.f('pk_label_set_members'))
    )
    op.create_index(op.f('ix_label_set_members_user_id'), 'label_set_members', ['user_id'], unique=False)

    op.create_table('training_locks',
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('token', sa.String(length=32), nullable=True),
    sa.Column('set_id', sa.Integer(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_ok', sa.Boolean(), nullable=True),
    sa.ForeignKeyConstraint(['model_id'], ['models.model_id'], name=op.f('fk_training_locks_model_id_models')),
    sa.ForeignKeyConstraint(['set_id'], ['label_sets.id'], name=op.f('fk_training_locks_set_id_label_sets'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_training_locks_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('model_id', name=op.f('pk_training_locks'))
    )
    op.create_table('label_masks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sample_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('max_class', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('version >= 1', name=op.f('ck_label_masks_version_positive')),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_label_masks_author_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['sample_id'], ['label_samples.id'], name=op.f('fk_label_masks_sample_id_label_samples'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_label_masks')),
    sa.UniqueConstraint('sample_id', 'version', name='uq_label_masks_sample_version')
    )
    op.create_index(op.f('ix_label_masks_author_id'), 'label_masks', ['author_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_label_masks_author_id'), table_name='label_masks')

    op.drop_table('label_masks')
    op.drop_table('training_locks')
    op.drop_index(op.f('ix_label_set_members_user_id'), table_name='label_set_members')

    op.drop_table('label_set_members')
    op.drop_table('label_samples')
    op.drop_index(op.f('ix_branch_versions_label_set_id'), table_name='branch_versions')
    op.drop_index(op.f('ix_branch_versions_created_by_id'), table_name='branch_versions')

    op.drop_table('branch_versions')
    op.drop_index(op.f('ix_label_sets_owner_id'), table_name='label_sets')

    op.drop_table('label_sets')
