"""API keys (server/keys.py): the key's shape, only the secret's hash stored, constant-time checks, scopes."""

from __future__ import annotations

import pytest

from facelivenet.server.errors import ApiError
from facelivenet.server.keys import bearer_key, check_key, new_key, parse_key, secret_sha256
from facelivenet.server.store import open_store


@pytest.fixture
def store(tmp_path):
    s = open_store(str(tmp_path / "keys.db"))
    yield s
    s.close()


def test_a_key_is_flk_id_secret_and_only_its_hash_is_stored(store):
    key, rec = new_key("kiosk", "app")
    prefix, key_id, secret = key.split("_", 2)
    assert prefix == "flk" and len(key_id) == 8 and int(key_id, 16) >= 0 and len(secret) == 43
    assert parse_key(key) == (key_id, secret) and rec.key_id == key_id
    assert rec.secret_sha256 == secret_sha256(secret) and secret not in repr(rec)
    store.add_key(rec)
    assert store.key(key_id).secret_sha256 == rec.secret_sha256
    assert check_key(store, key, "app").key_id == key_id
    assert new_key("kiosk", "app")[0] != key


def test_wrong_unknown_malformed_and_revoked_keys_are_bad_keys(store):
    key, rec = new_key("kiosk", "app")
    store.add_key(rec)
    other, _ = new_key("never-stored", "app")
    for presented in (key[:-1] + ("A" if key[-1] != "A" else "B"), other, "flk_zz_short", "", key + "x"):
        with pytest.raises(ApiError) as e:
            check_key(store, presented, "app")
        assert e.value.code == "bad_key"
    store.revoke_key(rec.key_id)
    with pytest.raises(ApiError) as e:
        check_key(store, key, "app")
    assert e.value.code == "bad_key"


def test_scopes_admin_may_do_app_calls_not_the_reverse(store):
    app_key, app_rec = new_key("app", "app")
    admin_key, admin_rec = new_key("ops", "admin")
    store.add_key(app_rec)
    store.add_key(admin_rec)
    assert check_key(store, admin_key, "app").scope == "admin"
    assert check_key(store, admin_key, "admin").scope == "admin"
    with pytest.raises(ApiError) as e:
        check_key(store, app_key, "admin")
    assert e.value.code == "forbidden"
    with pytest.raises(ValueError):
        new_key("x", "root")


def test_bearer_header():
    assert bearer_key("Bearer flk_x") == "flk_x" and bearer_key("bearer  flk_x ") == "flk_x"
    for header in (None, "", "Basic abc", "Bearer", "Bearer   "):
        with pytest.raises(ApiError) as e:
            bearer_key(header)
        assert e.value.code == "missing_key"
