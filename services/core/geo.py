"""Small, exact-enough planar geometry on WGS84 coordinates, for configuration checks.

Polygons are GeoJSON-ordered rings of ``(lon, lat)`` pairs. Heavier geometry (metric
distances, projections) lives with the correlator's local frames.
"""

from __future__ import annotations

from collections.abc import Sequence

LonLat = tuple[float, float]


def point_in_ring(lon: float, lat: float, ring: Sequence[LonLat]) -> bool:
    """True when ``(lon, lat)`` lies inside the closed ring (even-odd rule, edges count as in)."""
    inside = False
    count = len(ring)
    for i in range(count):
        x1, y1 = ring[i]
        x2, y2 = ring[(i + 1) % count]
        if _on_segment(lon, lat, x1, y1, x2, y2):
            return True
        if (y1 > lat) != (y2 > lat):
            x_cross = x1 + (lat - y1) * (x2 - x1) / (y2 - y1)
            if lon < x_cross:
                inside = not inside
    return inside


def _on_segment(px: float, py: float, x1: float, y1: float, x2: float, y2: float) -> bool:
    cross = (x2 - x1) * (py - y1) - (y2 - y1) * (px - x1)
    if abs(cross) > 1e-12:
        return False
    return min(x1, x2) - 1e-12 <= px <= max(x1, x2) + 1e-12 and (
        min(y1, y2) - 1e-12 <= py <= max(y1, y2) + 1e-12
    )


def ring_centroid(ring: Sequence[LonLat]) -> LonLat:
    """Area centroid of a simple ring (planar in degrees; fine for regions of tens of km)."""
    area2 = 0.0
    cx = 0.0
    cy = 0.0
    count = len(ring)
    for i in range(count):
        x1, y1 = ring[i]
        x2, y2 = ring[(i + 1) % count]
        cross = x1 * y2 - x2 * y1
        area2 += cross
        cx += (x1 + x2) * cross
        cy += (y1 + y2) * cross
    if abs(area2) < 1e-18:
        xs = [p[0] for p in ring]
        ys = [p[1] for p in ring]
        return (sum(xs) / count, sum(ys) / count)
    return (cx / (3.0 * area2), cy / (3.0 * area2))


def ring_is_simple_enough(ring: Sequence[LonLat]) -> bool:
    """A ring needs three distinct points and a non-zero area."""
    distinct = {(round(x, 9), round(y, 9)) for x, y in ring}
    if len(distinct) < 3:
        return False
    area2 = sum(
        ring[i][0] * ring[(i + 1) % len(ring)][1] - ring[(i + 1) % len(ring)][0] * ring[i][1]
        for i in range(len(ring))
    )
    return abs(area2) > 1e-12
