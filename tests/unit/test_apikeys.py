"""Gateway API keys: generated, stored as digests, verified in constant time."""

from __future__ import annotations

import pytest

from services.core import apikeys
from services.core.config import LinderoConfig


def test_generated_key_verifies_and_only_stores_a_digest() -> None:
    """A new key checks out against its digest; the digest does not contain the secret."""
    key = apikeys.generate("gw-test-k1")
    ring = apikeys.KeyRing([(key.key_id, key.sha256, "gw-test")])
    assert ring.principal(key.token) == "gw-test"
    secret = key.token.split("_", 2)[2]
    assert secret not in key.sha256
    assert key.sha256 == apikeys.digest(secret)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "lnd_gw-test-k1_",
        "lnd_gw-test-k1_wrongsecretwrongsecretwrongsecret",
        "lnd_unknown-k9_abcdefghijklmnopqrstuvwxyz012345",
        "Bearer lnd_gw-test-k1_x",
        "lnd_gw test_abcdefghijklmnopqrstuvwxyz",
    ],
)
def test_bad_tokens_are_refused(token: str) -> None:
    """Malformed, unknown or wrong keys never map to a principal."""
    key = apikeys.generate("gw-test-k1")
    ring = apikeys.KeyRing([(key.key_id, key.sha256, "gw-test")])
    assert ring.principal(token) is None


def test_invalid_key_id_is_refused() -> None:
    """Key ids follow the identifier rules (no underscore, no spaces)."""
    with pytest.raises(ValueError, match="invalid key id"):
        apikeys.generate("bad_id")


def test_demo_keys_match_the_demo_config(demo_config: LinderoConfig, demo_keys: dict[str, str]) -> None:
    """Every demo gateway's shipped key verifies against the digest in config/demo.yaml."""
    ring = apikeys.KeyRing((k.id, k.sha256, g.id) for g in demo_config.gateways for k in g.api_keys)
    assert {gateway: ring.principal(token) for gateway, token in demo_keys.items()} == {
        gateway: gateway for gateway in demo_keys
    }
    assert set(demo_keys) == set(demo_config.gateways_by_id)
