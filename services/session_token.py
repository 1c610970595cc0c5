"""Signed, expiring session tokens for the browser cookie that keeps a reader signed in
across a refresh. The token carries the user id, the account's session epoch (raised at
sign-out, so every earlier token dies) and an expiry, signed with HMAC-SHA256 under a
site secret; never the password or anything derived from it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path

from core.storage import read_or_create_secret

COOKIE = "cxr_session"
LIFETIME_S = 12 * 3600  # a working day; sign in again after


@dataclass(frozen=True)
class Claims:
    user_id: int
    epoch: int
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(secret: bytes, user_id: int, epoch: int, now: float, lifetime_s: int = LIFETIME_S) -> str:
    payload = {"u": int(user_id), "e": int(epoch), "i": int(now), "x": int(now) + lifetime_s}
    body = _b64(json.dumps(payload).encode())
    signature = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    return f"{body}.{signature}"


def verify(secret: bytes, token: str | None, now: float, max_age_s: int = LIFETIME_S) -> Claims | None:
    """The claims of a well-signed, unexpired token; None for anything else.

    The server caps a token's age at ``max_age_s`` from its issue time whatever expiry it
    carries: a token signed with a far expiry (a leaked key, an older release) is refused
    all the same, and so is one without an issue time or issued in the future."""
    if not token or token.count(".") != 1 or len(token) > 512:
        return None
    payload, signature = token.split(".")
    expected = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature):
        return None
    try:
        data = json.loads(_unb64(payload))
        claims = Claims(int(data["u"]), int(data["e"]), int(data["x"]))
        issued = int(data["i"])
    except (ValueError, KeyError, TypeError):
        return None
    if not issued - 60 <= now < min(claims.expires, issued + max_age_s):
        return None
    return claims


def site_secret(data_dir: Path) -> bytes:
    """The site's signing key, made once in the data folder (readable by its owner only)."""
    return read_or_create_secret(Path(data_dir) / "session.key")
