"""Session tokens (core.session_token): signed, expiring, bound to the account's epoch."""

import os

from core.session_token import issue, site_secret, verify


def test_a_token_verifies_until_it_expires():
    secret = b"k" * 32
    token = issue(secret, 7, 3, now=1000.0, lifetime_s=60)
    claims = verify(secret, token, now=1059.0)
    assert (claims.user_id, claims.epoch) == (7, 3)
    assert verify(secret, token, now=1061.0) is None


def test_a_tampered_or_foreign_token_is_refused():
    secret = b"k" * 32
    token = issue(secret, 7, 3, now=1000.0)
    payload, signature = token.split(".")
    forged = issue(b"x" * 32, 1, 3, now=1000.0)
    assert verify(secret, forged, now=1001.0) is None
    assert verify(secret, forged.split(".")[0] + "." + signature, now=1001.0) is None
    assert verify(secret, payload + "." + signature[:-2] + "AA", now=1001.0) is None
    for junk in (None, "", "a.b.c", "x" * 600, "not-a-token"):
        assert verify(secret, junk, now=1001.0) is None


def test_the_site_secret_is_made_once_and_private(tmp_path):
    first = site_secret(tmp_path)
    assert site_secret(tmp_path) == first and len(first) == 32
    assert oct(os.stat(tmp_path / "session.key").st_mode & 0o777) == "0o600"
