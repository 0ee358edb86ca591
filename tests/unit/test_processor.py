"""The transactional processor's pure parts."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from services.core.processor import KeyPartitioner


@given(keys=st.lists(st.binary(max_size=64), min_size=1, max_size=50), count=st.integers(1, 64))
def test_key_partitioner_matches_the_default_partitioner(keys: list[bytes], count: int) -> None:
    """A keyed record lands where aiokafka's default partitioner puts it, asked once or again."""
    partitions = list(range(count))
    partitioner = KeyPartitioner(limit=8)
    default = DefaultPartitioner()
    for key in keys + keys:
        assert partitioner(key, partitions, partitions) == default(key, partitions, partitions)


def test_key_partitioner_spreads_records_without_a_key() -> None:
    """A record without a key goes to one of the available partitions."""
    partitioner = KeyPartitioner()
    assert {partitioner(None, [0, 1, 2], [1]) for _ in range(20)} == {1}
