"""People the body certifies, and the staff (and applicant) accounts that act in cases."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base


class Person(Base):
    """An applicant, candidate or certified person. Personal data is confidential (7.3)."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    date_of_birth: Mapped[date | None]
    created_at: Mapped[datetime]

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"


def _prefix_index(name: str, column) -> Index:
    """An index on lower(column) that answers `lower(column) LIKE 'prefix%'` (on PostgreSQL
    whatever the database collation, through the pattern operator class)."""
    label = f"{column.key}_lower"
    return Index(name, func.lower(column).label(label), postgresql_ops={label: "text_pattern_ops"})


# Case search: people by the start of their given name, family name or e-mail address.
_prefix_index("ix_people_given_name_prefix", Person.given_name)
_prefix_index("ix_people_family_name_prefix", Person.family_name)
_prefix_index("ix_people_email_prefix", Person.email)


class User(Base):
    """A login: staff member, or an applicant's own account (then `person_id` is set)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_external: Mapped[bool] = mapped_column(default=False)
    active: Mapped[bool] = mapped_column(default=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    created_at: Mapped[datetime]
    failed_logins: Mapped[int] = mapped_column(default=0, server_default="0")
    locked_until: Mapped[datetime | None]

    roles: Mapped[list[UserRole]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def role_names(self) -> set[str]:
        return {r.role for r in self.roles}

    @property
    def is_staff(self) -> bool:
        return bool(self.role_names & STAFF_ROLES)


class ApiToken(Base):
    """A bearer token for machine clients; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked: Mapped[bool] = mapped_column(default=False)


class UserRole(Base):
    __tablename__ = "user_roles"
    __table_args__ = (UniqueConstraint("user_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(40), index=True)

    user: Mapped[User] = relationship(back_populates="roles")


ROLES = (
    "applicant",
    "certified_person",
    "clerk",
    "reviewer",
    "examiner",
    "invigilator",
    "decision_maker",
    "appeals_panel",
    "complaints_officer",
    "quality_manager",
    "process_owner",
    "manager",
    "admin",
)
STAFF_ROLES = frozenset(ROLES) - {"applicant", "certified_person"}
# Roles that may see every case (oversight), whatever tasks they hold.
OVERSIGHT_ROLES = frozenset({"manager", "admin", "quality_manager"})
