"""Admin password hashes (scrypt), shared by the CLI that sets them and the login that checks them."""

from __future__ import annotations

from functools import lru_cache

from werkzeug.security import check_password_hash, generate_password_hash

MIN_LENGTH = 10


def hash_password(password: str) -> str:
    return generate_password_hash(password)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # Made on first use, not at import: scrypt is deliberately slow.
    return generate_password_hash("not-a-real-password")


def check_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; an unknown account (None) costs the same time
    as a wrong password, so nobody can probe which admin accounts exist."""
    ok = check_password_hash(stored_hash or _dummy_hash(), password)
    return ok and stored_hash is not None
