"""Session tokens (services.session_token): signed, expiring, bound to the account's epoch."""

import os

from services.session_token import issue, site_secret, verify


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


def test_the_server_caps_a_tokens_age_whatever_expiry_it_carries():
    secret = b"k" * 32
    ten_years = issue(secret, 7, 3, now=1000.0, lifetime_s=10 * 365 * 86400)
    assert verify(secret, ten_years, now=1000.0 + 11 * 3600) is not None
    assert verify(secret, ten_years, now=1000.0 + 13 * 3600) is None  # 12 h by default
    assert verify(secret, ten_years, now=1000.0 + 3 * 3600, max_age_s=2 * 3600) is None
    assert verify(secret, ten_years, now=0.0) is None  # issued in the future


def test_a_token_without_an_issue_time_is_refused():
    import base64
    import hashlib
    import hmac
    import json

    secret = b"k" * 32
    body = base64.urlsafe_b64encode(json.dumps({"u": 7, "e": 3, "x": 5000}).encode()).decode().rstrip("=")
    sig = base64.urlsafe_b64encode(hmac.new(secret, body.encode(), hashlib.sha256).digest()).decode().rstrip("=")
    assert verify(secret, f"{body}.{sig}", now=1000.0) is None
