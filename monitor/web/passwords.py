"""Password hashes: Argon2id through argon2-cffi (its one home), with its default
parameters (RFC 9106's second recommendation). A hash records its parameters, so hashes
made with older ones still verify and are replaced at the next sign-in."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["dummy_hash", "hash_password", "needs_rehash", "verify_password"]

_HASHER = PasswordHasher()

MIN_LENGTH = 8


def hash_password(password: str) -> str:
    """The PHC string (``$argon2id$v=19$m=…``) of ``password``."""
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _HASHER.check_needs_rehash(password_hash)


@functools.cache
def dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so that a sign-in takes as
    long for an unknown name as for a wrong password (no user enumeration by timing).
    Made at the first use, not at import: a hash takes Argon2's 64 MiB for a moment."""
    return _HASHER.hash("not a password of anyone")
