"""Share states and kept files in the database, so that several app replicas on one database share them.

share_states: the editor states behind ``?s=`` share links (they were JSON files in each process's data
directory, so a link opened only on the replica that made it). kept_files: uploaded photos kept for a later
tuning and photos' generator tunings (safetensors bytes, formerly ``<data dir>/photos/`` and ``tunings/``).
Plain tables and types only, the same on SQLite and PostgreSQL.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('share_states',
    sa.Column('token', sa.String(length=20), nullable=False),
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('n_latent', sa.Integer(), nullable=False),
    sa.Column('w_dim', sa.Integer(), nullable=False),
    sa.Column('latent', sa.LargeBinary(), nullable=False),
    sa.Column('vectors', sa.JSON(), nullable=False),
    sa.Column('tuning', sa.String(length=20), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('n_latent >= 1 AND w_dim >= 1', name=op.f('ck_share_states_shape')),
    sa.ForeignKeyConstraint(['model_id'], ['models.model_id'], name=op.f('fk_share_states_model_id_models')),
    sa.PrimaryKeyConstraint('token', name=op.f('pk_share_states'))
    )
    op.create_index(op.f('ix_share_states_model_id'), 'share_states', ['model_id'], unique=False)
    op.create_table('kept_files',
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('token', sa.String(length=20), nullable=False),
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('photo', 'tuning')", name=op.f('ck_kept_files_kind')),
    sa.ForeignKeyConstraint(['model_id'], ['models.model_id'], name=op.f('fk_kept_files_model_id_models')),
    sa.PrimaryKeyConstraint('kind', 'token', name=op.f('pk_kept_files'))
    )
    op.create_index('ix_kept_files_kind_created', 'kept_files', ['kind', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_kept_files_kind_created', table_name='kept_files')
    op.drop_table('kept_files')
    op.drop_index(op.f('ix_share_states_model_id'), table_name='share_states')
    op.drop_table('share_states')
