"""The classes a vector's change is about, beside every class it touches.

edit_vectors.subject_classes and vector_versions.subject_classes (JSON lists, the most changed class first) and
vector_classes.subject (the class filter matches subject classes). Vectors published before this revision did not
record them: their subject classes are all their edited classes, which is what the class filter matched until now.
Added columns with server defaults only: the same on SQLite and PostgreSQL, no batch mode needed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('edit_vectors', 'vector_versions'):
        op.add_column(table, sa.Column('subject_classes', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
        op.execute(f'UPDATE {table} SET subject_classes = edited_classes')
    op.add_column('vector_classes', sa.Column('subject', sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    op.drop_column('vector_classes', 'subject')
    for table in ('vector_versions', 'edit_vectors'):
        op.drop_column(table, 'subject_classes')
