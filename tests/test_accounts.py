"""Console accounts and sessions in the store, on SQLite and PostgreSQL (the ``engine``
fixture): names unique, hashes and token digests only, expiry, cascades."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from monitor.errors import StoreError
from monitor.store import Accounts
from monitor.web.auth import Auth, token_hash

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_users_are_unique_and_their_sessions_end_with_them(engine: Engine) -> None:
    accounts = Accounts(engine)
    ann = accounts.add_user("ann", "$argon2id$fake", "admin", NOW)
    with pytest.raises(StoreError, match="exists already"):
        accounts.add_user("ann", "$argon2id$other", "analyst", NOW)
    with pytest.raises(StoreError, match="role must be one of admin, analyst"):
        accounts.add_user("eve", "$argon2id$x", "root", NOW)
    assert [(u.name, u.role, u.password_hash) for u in accounts.users()] == [
        ("ann", "admin", "")]  # listings carry no hash
    accounts.open_session(ann.id, token_hash("t1"), "csrf1", NOW, NOW + timedelta(hours=1))
    found = accounts.session(token_hash("t1"), NOW + timedelta(minutes=59))
    assert found is not None and found.user.name == "ann" and found.csrf == "csrf1"
    assert accounts.session(token_hash("t1"), NOW + timedelta(hours=1)) is None  # expired
    assert accounts.session(token_hash("t2"), NOW) is None
    assert accounts.remove_user("ann") and not accounts.remove_user("ann")
    assert accounts.session(token_hash("t1"), NOW) is None


def test_signing_in_opens_a_session_and_out_closes_it(engine: Engine) -> None:
    from monitor.web.passwords import hash_password

    accounts = Accounts(engine)
    accounts.add_user("bob", hash_password("bob's long password"), "analyst", NOW)
    clock = [NOW]
    auth = Auth(accounts, lambda: clock[0], lifetime=timedelta(hours=2))
    assert auth.sign_in("bob", "wrong password", "10.0.0.1").refused == "invalid"
    assert auth.sign_in("nobody", "whatever", "10.0.0.1").refused == "invalid"
    ok = auth.sign_in("bob", "bob's long password", "10.0.0.1")
    assert ok.token and ok.session and ok.session.user.role == "analyst"
    assert auth.session(ok.token) is not None
    clock[0] = NOW + timedelta(hours=2)
    assert auth.session(ok.token) is None  # the lifetime is over
    clock[0] = NOW
    auth.sign_out(ok.token)
    assert auth.session(ok.token) is None
