"""Logging in, lockout after repeated failures, and API tokens for machine clients."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from .errors import NotFoundError, PermissionDenied
from .models import ApiToken, User
from .passwords import check_password, hash_password
from .unit_of_work import UnitOfWork

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
# A token's last use is kept to the minute: writing it on every request made each API call
# commit a row update (a WAL flush on PostgreSQL) before its real work began.
TOKEN_USE_RESOLUTION = timedelta(minutes=1)


class LoginRefused(PermissionDenied):
    """Wrong credentials or a locked account; the message never says which username exists."""


def authenticate(uow: UnitOfWork, username: str, password: str) -> tuple[User | None, str | None]:
    """(user, None) on success, (None, reason) on refusal.

    A refusal is returned, not raised, so the caller commits the failed-attempt count.
    """
    user = (
        uow.session.scalars(
            select(User).options(joinedload(User.roles)).where(User.username == username.strip())
        )
        .unique()
        .first()
    )
    if user is None or not user.active:
        check_password(_DUMMY_HASH, password)  # same cost as a real check: no username probing
        return None, "the username or password is wrong"
    if user.locked_until is not None and user.locked_until > uow.now:
        minutes = max(1, int((user.locked_until - uow.now).total_seconds() // 60) + 1)
        return None, f"too many failed attempts; try again in {minutes} minute(s)"
    if not check_password(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = uow.now + LOCKOUT
            user.failed_logins = 0
            uow.audit.record(
                uow.now,
                user.username,
                "account_locked",
                f"locked for {LOCKOUT} after {MAX_FAILED_LOGINS} failed logins",
            )
        else:
            uow.audit.record(uow.now, user.username, "login_failed", "wrong password")
        return None, "the username or password is wrong"
    user.failed_logins = 0
    user.locked_until = None
    uow.audit.record(uow.now, user.username, "login", "logged in")
    return user, None


def issue_api_token(uow: UnitOfWork, username: str, name: str) -> str:
    """Create a token for `username`; the plain token is returned once and never stored."""
    user = uow.session.scalars(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFoundError(f"user '{username}' does not exist")
    token = "ctr_" + secrets.token_urlsafe(32)
    uow.session.add(
        ApiToken(user_id=user.id, name=name, token_hash=token_digest(token), created_at=uow.now)
    )
    uow.audit.record(uow.now, username, "api_token_issued", f"API token '{name}' issued")
    return token


def user_for_token(uow: UnitOfWork, token: str) -> User | None:
    """The active user whose unrevoked token this is, or None; notes the token's use."""
    found = (
        uow.session.execute(
            select(User, ApiToken)
            .join(ApiToken, ApiToken.user_id == User.id)
            .options(joinedload(User.roles))
            .where(
                ApiToken.token_hash == token_digest(token),
                ApiToken.revoked.is_(False),
                User.active.is_(True),
            )
        )
        .unique()
        .first()
    )
    if found is None:
        return None
    user, row = found
    if row.last_used_at is None or uow.now - row.last_used_at >= TOKEN_USE_RESOLUTION:
        row.last_used_at = uow.now
    return user


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


_DUMMY_HASH = hash_password("no user has this password")
