"""Initial schema of the vector library, with dialect-specific full-text search.

SQLite: an FTS5 external-content table over (name, description, tags_text), kept in step with
edit_vectors by triggers (the update trigger fires only when those columns change, so like and
download counters do not touch the index). Skipped when the SQLite build lacks FTS5; search then
falls back to LIKE. PostgreSQL: a generated tsvector column ('simple' configuration: no stemming,
language-neutral) with a GIN index.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('models',
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('resolution', sa.Integer(), nullable=False),
    sa.Column('n_latent', sa.Integer(), nullable=False),
    sa.Column('w_dim', sa.Integer(), nullable=False),
    sa.Column('class_names', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('model_id', name=op.f('pk_models'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('vector_blobs',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sha256', name=op.f('pk_vector_blobs'))
    )
    op.create_table('compositions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('visibility', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("visibility IN ('public', 'private')", name=op.f('ck_compositions_visibility')),
    sa.ForeignKeyConstraint(['model_id'], ['models.model_id'], name=op.f('fk_compositions_model_id_models')),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_compositions_owner_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_compositions'))
    )
    op.create_index(op.f('ix_compositions_model_id'), 'compositions', ['model_id'], unique=False)
    op.create_index(op.f('ix_compositions_owner_id'), 'compositions', ['owner_id'], unique=False)
    op.create_index('ix_compositions_vis_created', 'compositions', ['visibility', 'created_at'], unique=False)

    op.create_table('edit_vectors',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('tags_text', sa.String(length=600), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('licence', sa.String(length=32), nullable=False),
    sa.Column('visibility', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('blob_sha256', sa.String(length=64), nullable=False),
    sa.Column('edited_classes', sa.JSON(), nullable=False),
    sa.Column('default_scale', sa.Float(), nullable=False),
    sa.Column('scale_min', sa.Float(), nullable=False),
    sa.Column('scale_max', sa.Float(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('has_preview', sa.Boolean(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('parent_version', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('download_count', sa.Integer(), nullable=False),
    sa.Column('like_count', sa.Integer(), nullable=False),
    sa.CheckConstraint("visibility IN ('public', 'private')", name=op.f('ck_edit_vectors_visibility')),
    sa.CheckConstraint('scale_min < scale_max', name=op.f('ck_edit_vectors_scale_range')),
    sa.CheckConstraint('version >= 1', name=op.f('ck_edit_vectors_version_positive')),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_edit_vectors_author_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['blob_sha256'], ['vector_blobs.sha256'], name=op.f('fk_edit_vectors_blob_sha256_vector_blobs')),
    sa.ForeignKeyConstraint(['model_id'], ['models.model_id'], name=op.f('fk_edit_vectors_model_id_models')),
    sa.ForeignKeyConstraint(['parent_id'], ['edit_vectors.id'], name=op.f('fk_edit_vectors_parent_id_edit_vectors'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_edit_vectors'))
    )
    op.create_index('ix_edit_vectors_author_created', 'edit_vectors', ['author_id', 'created_at'], unique=False)
    op.create_index('ix_edit_vectors_model_vis_created', 'edit_vectors', ['model_id', 'visibility', 'created_at'], unique=False)
    op.create_index('ix_edit_vectors_model_vis_downloads', 'edit_vectors', ['model_id', 'visibility', 'download_count'], unique=False)
    op.create_index('ix_edit_vectors_model_vis_likes', 'edit_vectors', ['model_id', 'visibility', 'like_count'], unique=False)
    op.create_index(op.f('ix_edit_vectors_parent_id'), 'edit_vectors', ['parent_id'], unique=False)
    op.create_index('ix_edit_vectors_vis_created', 'edit_vectors', ['visibility', 'created_at'], unique=False)
    op.create_index('ix_edit_vectors_vis_downloads', 'edit_vectors', ['visibility', 'download_count'], unique=False)
    op.create_index('ix_edit_vectors_vis_likes', 'edit_vectors', ['visibility', 'like_count'], unique=False)

    op.create_table('composition_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('composition_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('vector_id', sa.Integer(), nullable=True),
    sa.Column('scale', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['composition_id'], ['compositions.id'], name=op.f('fk_composition_items_composition_id_compositions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['vector_id'], ['edit_vectors.id'], name=op.f('fk_composition_items_vector_id_edit_vectors'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_composition_items')),
    sa.UniqueConstraint('composition_id', 'position', name='uq_composition_items_composition_position')
    )
    op.create_index(op.f('ix_composition_items_vector_id'), 'composition_items', ['vector_id'], unique=False)

    op.create_table('likes',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('vector_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_likes_user_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['vector_id'], ['edit_vectors.id'], name=op.f('fk_likes_vector_id_edit_vectors'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'vector_id', name=op.f('pk_likes'))
    )
    op.create_index(op.f('ix_likes_vector_id'), 'likes', ['vector_id'], unique=False)

    op.create_table('vector_classes',
    sa.Column('vector_id', sa.Integer(), nullable=False),
    sa.Column('class_name', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['vector_id'], ['edit_vectors.id'], name=op.f('fk_vector_classes_vector_id_edit_vectors'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('vector_id', 'class_name', name=op.f('pk_vector_classes'))
    )
    op.create_index('ix_vector_classes_class_vector', 'vector_classes', ['class_name', 'vector_id'], unique=False)

    op.create_table('vector_tags',
    sa.Column('vector_id', sa.Integer(), nullable=False),
    sa.Column('tag', sa.String(length=32), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['vector_id'], ['edit_vectors.id'], name=op.f('fk_vector_tags_vector_id_edit_vectors'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('vector_id', 'tag', name=op.f('pk_vector_tags'))
    )
    op.create_index('ix_vector_tags_tag_vector', 'vector_tags', ['tag', 'vector_id'], unique=False)

    op.create_table('vector_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('vector_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('blob_sha256', sa.String(length=64), nullable=False),
    sa.Column('edited_classes', sa.JSON(), nullable=False),
    sa.Column('default_scale', sa.Float(), nullable=False),
    sa.Column('scale_min', sa.Float(), nullable=False),
    sa.Column('scale_max', sa.Float(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('has_preview', sa.Boolean(), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['blob_sha256'], ['vector_blobs.sha256'], name=op.f('fk_vector_versions_blob_sha256_vector_blobs')),
    sa.ForeignKeyConstraint(['vector_id'], ['edit_vectors.id'], name=op.f('fk_vector_versions_vector_id_edit_vectors'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vector_versions')),
    sa.UniqueConstraint('vector_id', 'number', name='uq_vector_versions_vector_number')
    )
    op.create_index(op.f('ix_vector_versions_blob_sha256'), 'vector_versions', ['blob_sha256'], unique=False)
    _create_search()



def downgrade() -> None:
    _drop_search()
    op.drop_index(op.f('ix_vector_versions_blob_sha256'), table_name='vector_versions')

    op.drop_table('vector_versions')
    op.drop_index('ix_vector_tags_tag_vector', table_name='vector_tags')

    op.drop_table('vector_tags')
    op.drop_index('ix_vector_classes_class_vector', table_name='vector_classes')

    op.drop_table('vector_classes')
    op.drop_index(op.f('ix_likes_vector_id'), table_name='likes')

    op.drop_table('likes')
    op.drop_index(op.f('ix_composition_items_vector_id'), table_name='composition_items')

    op.drop_table('composition_items')
    op.drop_index('ix_edit_vectors_vis_likes', table_name='edit_vectors')
    op.drop_index('ix_edit_vectors_vis_downloads', table_name='edit_vectors')
    op.drop_index('ix_edit_vectors_vis_created', table_name='edit_vectors')
    op.drop_index(op.f('ix_edit_vectors_parent_id'), table_name='edit_vectors')
    op.drop_index('ix_edit_vectors_model_vis_likes', table_name='edit_vectors')
    op.drop_index('ix_edit_vectors_model_vis_downloads', table_name='edit_vectors')
    op.drop_index('ix_edit_vectors_model_vis_created', table_name='edit_vectors')
    op.drop_index('ix_edit_vectors_author_created', table_name='edit_vectors')

    op.drop_table('edit_vectors')
    op.drop_index('ix_compositions_vis_created', table_name='compositions')
    op.drop_index(op.f('ix_compositions_owner_id'), table_name='compositions')
    op.drop_index(op.f('ix_compositions_model_id'), table_name='compositions')

    op.drop_table('compositions')
    op.drop_table('vector_blobs')
    op.drop_table('users')
    op.drop_table('models')


FTS_COLUMNS = "name, description, tags_text"


def _sqlite_has_fts5(bind) -> bool:
    try:
        bind.exec_driver_sql("CREATE VIRTUAL TABLE temp._fts5_probe USING fts5(x)")
        bind.exec_driver_sql("DROP TABLE temp._fts5_probe")
        return True
    except sa.exc.OperationalError:
        return False


def _create_search() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and _sqlite_has_fts5(bind):
        op.execute(
            f"CREATE VIRTUAL TABLE edit_vectors_fts USING fts5({FTS_COLUMNS}, content='edit_vectors', "
            "content_rowid='id', tokenize='unicode61 remove_diacritics 2')")
        new = ", ".join(f"new.{c}" for c in FTS_COLUMNS.split(", "))
        old = ", ".join(f"old.{c}" for c in FTS_COLUMNS.split(", "))
        op.execute(
            "CREATE TRIGGER edit_vectors_fts_ai AFTER INSERT ON edit_vectors BEGIN "
            f"INSERT INTO edit_vectors_fts(rowid, {FTS_COLUMNS}) VALUES (new.id, {new}); END")
        op.execute(
            "CREATE TRIGGER edit_vectors_fts_ad AFTER DELETE ON edit_vectors BEGIN "
            f"INSERT INTO edit_vectors_fts(edit_vectors_fts, rowid, {FTS_COLUMNS}) "
            f"VALUES ('delete', old.id, {old}); END")
        op.execute(
            f"CREATE TRIGGER edit_vectors_fts_au AFTER UPDATE OF {FTS_COLUMNS} ON edit_vectors BEGIN "
            f"INSERT INTO edit_vectors_fts(edit_vectors_fts, rowid, {FTS_COLUMNS}) "
            f"VALUES ('delete', old.id, {old}); "
            f"INSERT INTO edit_vectors_fts(rowid, {FTS_COLUMNS}) VALUES (new.id, {new}); END")
    elif bind.dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE edit_vectors ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS "
            "(to_tsvector('simple'::regconfig, name || ' ' || description || ' ' || tags_text)) STORED")
        op.execute("CREATE INDEX ix_edit_vectors_search_tsv ON edit_vectors USING gin (search_tsv)")


def _drop_search() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for trigger in ("edit_vectors_fts_ai", "edit_vectors_fts_ad", "edit_vectors_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS edit_vectors_fts")
    elif bind.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_edit_vectors_search_tsv")
        op.execute("ALTER TABLE edit_vectors DROP COLUMN IF EXISTS search_tsv")
