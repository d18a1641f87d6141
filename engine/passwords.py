"""Password hashing with Argon2id (argon2-cffi's recommended parameters)."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


# Demo accounts share a password printed in the README: a costly hash protects nothing
# there, and cheap ones keep `demo load` and logins in the test suite fast. Verification
# reads the parameters from the stored hash, so real accounts keep the full cost.
_demo_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@cache
def hash_demo_password(password: str) -> str:
    return _demo_hasher.hash(password)


def check_password(stored: str | None, password: str) -> bool:
    if not stored:
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
