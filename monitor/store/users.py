"""Local accounts of the web console and their sessions. Each method is one transaction.

The store keeps what it is given: password hashes (never passwords) and the SHA-256 of
session tokens (never the tokens). Hashing is the web layer's (``web/passwords.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from ..errors import StoreError
from .models import SessionRow, User

__all__ = ["Accounts", "SessionInfo", "UserRow"]

ROLES = ("admin", "analyst")


@dataclass(frozen=True)
class UserRow:
    id: int
    name: str
    role: str
    created_at: datetime
    password_hash: str = ""


@dataclass(frozen=True)
class SessionInfo:
    user: UserRow
    csrf: str
    expires_at: datetime


class Accounts:
    """Users and sessions on one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # ------------------------------------------------------------ users

    def add_user(self, name: str, password_hash: str, role: str, now: datetime) -> UserRow:
        """Create a user; StoreError if the name is taken or the role unknown."""
        if role not in ROLES:
            raise StoreError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        try:
            with self._session() as s, s.begin():
                row = User(name=name, password_hash=password_hash, role=role, created_at=now)
                s.add(row)
                s.flush()
                return _user(row)
        except IntegrityError as exc:
            raise StoreError(f"a user named {name!r} exists already") from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot save the user {name!r}: {type(exc).__name__}") from exc

    def set_password(self, name: str, password_hash: str) -> bool:
        """Replace a user's hash (a rehash with newer parameters); False if no such user.
        Every session of the user ends."""
        with self._session() as s, s.begin():
            row = s.scalar(select(User).where(User.name == name))
            if row is None:
                return False
            row.password_hash = password_hash
            s.execute(delete(SessionRow).where(SessionRow.user_id == row.id))
            return True

    def users(self) -> list[UserRow]:
        with self._session() as s:
            return [_user(u, with_hash=False) for u in s.scalars(select(User).order_by(User.name))]

    def user(self, name: str) -> UserRow | None:
        """The user with its password hash, for signing in."""
        with self._session() as s:
            row = s.scalar(select(User).where(User.name == name))
            return None if row is None else _user(row)

    def remove_user(self, name: str) -> bool:
        """Delete the user and its sessions; False if there was none."""
        with self._session() as s, s.begin():
            row = s.scalar(select(User).where(User.name == name))
            if row is None:
                return False
            s.delete(row)
            return True

    # ------------------------------------------------------------ sessions

    def open_session(self, user_id: int, token_hash: str, csrf: str, now: datetime,
                     expires_at: datetime) -> None:
        with self._session() as s, s.begin():
            s.execute(delete(SessionRow).where(SessionRow.expires_at <= now))
            s.add(SessionRow(id=token_hash, user_id=user_id, csrf=csrf, created_at=now,
                             expires_at=expires_at))

    def session(self, token_hash: str, now: datetime) -> SessionInfo | None:
        """The live session with this token hash, or None (unknown or expired)."""
        with self._session() as s:
            found = s.execute(select(SessionRow, User).join(User, SessionRow.user_id == User.id)
                              .where(SessionRow.id == token_hash)).first()
            if found is None or found[0].expires_at <= now:
                return None
            return SessionInfo(_user(found[1], with_hash=False), found[0].csrf,
                               found[0].expires_at)

    def close_session(self, token_hash: str) -> None:
        with self._session() as s, s.begin():
            s.execute(delete(SessionRow).where(SessionRow.id == token_hash))


def _user(u: User, *, with_hash: bool = True) -> UserRow:
    return UserRow(u.id, u.name, u.role, u.created_at, u.password_hash if with_hash else "")
