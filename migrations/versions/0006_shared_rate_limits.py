"""request counters shared by every web process (rate limits)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 19:45:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'rate_limit_windows',
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('window_start', sa.DateTime(), nullable=False),
        sa.Column('hits', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_rate_limit_windows')),
    )
    with op.batch_alter_table('rate_limit_windows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rate_limit_windows_window_start'), ['window_start'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rate_limit_windows', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rate_limit_windows_window_start'))
    op.drop_table('rate_limit_windows')
