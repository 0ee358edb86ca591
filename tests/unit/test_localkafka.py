"""Local Kafka provisioning: pure parts."""

from __future__ import annotations

import base64

from services.core import localkafka


def test_cluster_ids_never_look_like_an_option() -> None:
    """Cluster ids are 22 url-safe base64 characters of 16 bytes and never start with "-"."""
    for _ in range(5_000):
        cluster_id = localkafka._kafka_uuid()
        assert not cluster_id.startswith("-")
        assert len(cluster_id) == 22
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
