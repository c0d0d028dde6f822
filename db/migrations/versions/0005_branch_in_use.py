"""The branch version a generator is edited with, chosen in the Label tab, kept across restarts and replicas.

models.branch_in_use: the chosen version (0: the bundle's own branch), NULL for the newest trained version, which
is what every generator had until now. A nullable column with no default: the same on SQLite and PostgreSQL.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('models', sa.Column('branch_in_use', sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column('models', 'branch_in_use')
