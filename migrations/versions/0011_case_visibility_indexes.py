"""case visibility: a user's cases read newest first, one index per way a case becomes visible;
the inbox's claimable steps of a role by due date

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25 22:50:00
"""

import sqlalchemy as sa
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

INDEXES = (
    ('ix_human_tasks_role_case', 'human_tasks', ['role', 'case_id']),
    ('ix_human_tasks_assignee_case', 'human_tasks', ['assignee_id', 'case_id']),
    ('ix_human_tasks_completed_by_case', 'human_tasks', ['completed_by_id', 'case_id']),
    ('ix_cases_started_by', 'cases', ['started_by_id', 'id']),
)


CLAIMABLE = "status = 'ready' AND assignee_id IS NULL"


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)
    op.create_index(
        'ix_human_tasks_claimable',
        'human_tasks',
        ['role', 'due_at'],
        unique=False,
        postgresql_where=sa.text(CLAIMABLE),
        sqlite_where=sa.text(CLAIMABLE),
    )


def downgrade() -> None:
    op.drop_index('ix_human_tasks_claimable', table_name='human_tasks')
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
