"""Gateway API keys: generated once, shown once, stored only as a SHA-256 digest.

A key reads ``lnd_<key-id>_<secret>``. The key id is public (it names the key in the
configuration and in logs); the secret is 32 random bytes, base64url. Because the secret is
high-entropy, one SHA-256 is the right stored form (a slow password hash would add nothing but
latency), and the digests are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

_PREFIX = "lnd_"
_KEY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:-]{0,63}$")
_KEY_RE = re.compile(r"^lnd_([A-Za-z0-9][A-Za-z0-9.:-]{0,63})_([A-Za-z0-9_-]{20,128})$")


def digest(secret: str) -> str:
    """The stored form of a key's secret part."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly generated key: ``token`` goes to the gateway, ``sha256`` into the configuration."""

    key_id: str
    token: str
    sha256: str


def generate(key_id: str) -> NewKey:
    """Create a new key with the given public id."""
    if not _KEY_ID_RE.match(key_id):
        raise ValueError(f"invalid key id {key_id!r}: 1-64 letters, digits and . : - only")
    secret = secrets.token_urlsafe(32)
    token = f"{_PREFIX}{key_id}_{secret}"
    return NewKey(key_id=key_id, token=token, sha256=digest(secret))


class KeyRing:
    """Maps presented keys to the principal (gateway id) that owns them."""

    def __init__(self, entries: Iterable[tuple[str, str, str]]) -> None:
        """``entries``: ``(key_id, sha256_hex, principal)`` triples."""
        self._keys: dict[str, tuple[bytes, str]] = {}
        for key_id, sha256_hex, principal in entries:
            self._keys[key_id] = (bytes.fromhex(sha256_hex), principal)
        self._dummy = hashlib.sha256(b"lindero-no-such-key").digest()

    def __len__(self) -> int:
        return len(self._keys)

    def principal(self, token: str) -> str | None:
        """The owner of ``token`` when it is a valid key, else ``None`` (never raises)."""
        match = _KEY_RE.match(token)
        if match is None:
            return None
        key_id, secret = match.groups()
        presented = hashlib.sha256(secret.encode("ascii")).digest()
        stored = self._keys.get(key_id)
        if stored is None:
            hmac.compare_digest(presented, self._dummy)
            return None
        return stored[1] if hmac.compare_digest(presented, stored[0]) else None
