"""records retention (scheme periods, legal holds, disposals) and feedback

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 12:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('feedback_invitations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=True),
    sa.Column('scheme_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_feedback_invitations_case_id_cases')),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_feedback_invitations_person_id_people')),
    sa.ForeignKeyConstraint(['scheme_id'], ['schemes.id'], name=op.f('fk_feedback_invitations_scheme_id_schemes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback_invitations')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_feedback_invitations_token_hash'))
    )
    with op.batch_alter_table('feedback_invitations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feedback_invitations_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_feedback_invitations_scheme_id'), ['scheme_id'], unique=False)

    op.create_table('feedback_responses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('invitation_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('scheme_id', sa.Integer(), nullable=True),
    sa.Column('overall_rating', sa.Integer(), nullable=False),
    sa.Column('clarity_rating', sa.Integer(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('submitted_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['invitation_id'], ['feedback_invitations.id'], name=op.f('fk_feedback_responses_invitation_id_feedback_invitations')),
    sa.ForeignKeyConstraint(['scheme_id'], ['schemes.id'], name=op.f('fk_feedback_responses_scheme_id_schemes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback_responses')),
    sa.UniqueConstraint('invitation_id', name=op.f('uq_feedback_responses_invitation_id'))
    )
    with op.batch_alter_table('feedback_responses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feedback_responses_scheme_id'), ['scheme_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_feedback_responses_submitted_at'), ['submitted_at'], unique=False)

    op.create_table('record_disposals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('proposed_by_id', sa.Integer(), nullable=False),
    sa.Column('proposed_at', sa.DateTime(), nullable=False),
    sa.Column('approved_by_id', sa.Integer(), nullable=True),
    sa.Column('disposed_at', sa.DateTime(), nullable=True),
    sa.Column('documents_deleted', sa.Integer(), nullable=False),
    sa.Column('tasks_tombstoned', sa.Integer(), nullable=False),
    sa.Column('person_anonymised', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['approved_by_id'], ['users.id'], name=op.f('fk_record_disposals_approved_by_id_users')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_record_disposals_case_id_cases')),
    sa.ForeignKeyConstraint(['proposed_by_id'], ['users.id'], name=op.f('fk_record_disposals_proposed_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_record_disposals'))
    )
    with op.batch_alter_table('record_disposals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_record_disposals_case_id'), ['case_id'], unique=False)

    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('legal_hold', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('legal_hold_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('legal_hold_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('legal_hold_reason', sa.Text(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_cases_legal_hold_by_id_users'), 'users', ['legal_hold_by_id'], ['id'])

    # Existing schemes keep their records one certification cycle plus twelve months.
    with op.batch_alter_table('schemes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retention_months', sa.Integer(), nullable=True))
    op.execute("UPDATE schemes SET retention_months = validity_months + 12")
    with op.batch_alter_table('schemes', schema=None) as batch_op:
        batch_op.alter_column('retention_months', existing_type=sa.Integer(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('schemes', schema=None) as batch_op:
        batch_op.drop_column('retention_months')

    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_cases_legal_hold_by_id_users'), type_='foreignkey')
        batch_op.drop_column('legal_hold_reason')
        batch_op.drop_column('legal_hold_at')
        batch_op.drop_column('legal_hold_by_id')
        batch_op.drop_column('legal_hold')

    with op.batch_alter_table('record_disposals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_record_disposals_case_id'))
    op.drop_table('record_disposals')

    with op.batch_alter_table('feedback_responses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feedback_responses_submitted_at'))
        batch_op.drop_index(batch_op.f('ix_feedback_responses_scheme_id'))
    op.drop_table('feedback_responses')

    with op.batch_alter_table('feedback_invitations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feedback_invitations_scheme_id'))
        batch_op.drop_index(batch_op.f('ix_feedback_invitations_case_id'))
    op.drop_table('feedback_invitations')
