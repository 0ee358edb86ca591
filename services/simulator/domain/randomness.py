"""Seeded randomness: one independent ``numpy.random.Generator`` per named stream, and UUIDs.

Every random draw of a simulation comes from a generator made here from the seed and a few
labels (region, component, sensor id...). Streams are independent: adding a sensor leaves the
other sensors' draws unchanged, and each behaviour of the script draws from its own stream
(placements still avoid each other, so a new behaviour can move a later one along the border).
Nothing here touches the global RNG or the clock.
"""

from __future__ import annotations

import hashlib
import uuid

import numpy as np


def _label_word(label: str | int) -> int:
    """A stable 64-bit word for a label (BLAKE2b, not Python's salted ``hash``)."""
    if isinstance(label, int):
        return label & 0xFFFF_FFFF_FFFF_FFFF
    return int.from_bytes(hashlib.blake2b(label.encode("utf-8"), digest_size=8).digest(), "little")


def stream_rng(seed: int, *labels: str | int) -> np.random.Generator:
    """The generator of the stream ``labels`` under ``seed`` (same inputs, same draws)."""
    if seed < 0:
        raise ValueError(f"the seed must be a non-negative integer, not {seed}")
    entropy = [seed & 0xFFFF_FFFF_FFFF_FFFF, seed >> 64, *(_label_word(label) for label in labels)]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def uuid4s(rng: np.random.Generator, count: int) -> list[str]:
    """``count`` valid version-4 UUIDs (RFC 9562: version and variant bits set) drawn from ``rng``."""
    raw = rng.bytes(16 * count)
    return [str(uuid.UUID(bytes=raw[16 * i : 16 * i + 16], version=4)) for i in range(count)]
