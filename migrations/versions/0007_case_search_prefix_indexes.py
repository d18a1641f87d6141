"""case search: people by the start of their names and e-mail, certificates by number prefix

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 21:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

PEOPLE = (
    ('ix_people_given_name_prefix', 'given_name'),
    ('ix_people_family_name_prefix', 'family_name'),
    ('ix_people_email_prefix', 'email'),
)


def upgrade() -> None:
    for name, column in PEOPLE:
        label = f'{column}_lower'
        op.create_index(
            name,
            'people',
            [sa.func.lower(sa.column(column)).label(label)],
            unique=False,
            postgresql_ops={label: 'text_pattern_ops'},
        )
    op.create_index(
        'ix_certificates_number_prefix',
        'certificates',
        [sa.func.upper(sa.column('number')).label('number_upper')],
        unique=False,
        postgresql_ops={'number_upper': 'text_pattern_ops'},
    )


def downgrade() -> None:
    op.drop_index('ix_certificates_number_prefix', table_name='certificates')
    for name, _column in reversed(PEOPLE):
        op.drop_index(name, table_name='people')
