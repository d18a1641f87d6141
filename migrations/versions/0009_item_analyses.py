"""stored exam item analyses (statistical review of exam forms, 17024 9.3)

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-01 10:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'item_analyses',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('exam_form', sa.String(length=200), nullable=False),
        sa.Column('scheme_id', sa.Integer(), nullable=True),
        sa.Column('uploaded_by_id', sa.Integer(), nullable=False),
        sa.Column('uploaded_at', sa.DateTime(), nullable=False),
        sa.Column('thresholds', sa.JSON(), nullable=False),
        sa.Column('pass_mark', sa.Double(), nullable=True),
        sa.Column('candidates', sa.Integer(), nullable=False),
        sa.Column('item_count', sa.Integer(), nullable=False),
        sa.Column('kr20', sa.Double(), nullable=True),
        sa.Column('flagged_items', sa.Integer(), nullable=False),
        sa.Column('result', sa.JSON(), nullable=False),
        sa.Column('source_checksum', sa.String(length=64), nullable=False),
        sa.Column('key_checksum', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ['scheme_id'], ['schemes.id'], name=op.f('fk_item_analyses_scheme_id_schemes')
        ),
        sa.ForeignKeyConstraint(
            ['uploaded_by_id'], ['users.id'], name=op.f('fk_item_analyses_uploaded_by_id_users')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_item_analyses')),
    )
    with op.batch_alter_table('item_analyses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_item_analyses_scheme_id'), ['scheme_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_item_analyses_uploaded_at'), ['uploaded_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('item_analyses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_item_analyses_uploaded_at'))
        batch_op.drop_index(batch_op.f('ix_item_analyses_scheme_id'))
    op.drop_table('item_analyses')
