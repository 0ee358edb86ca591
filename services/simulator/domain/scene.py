"""A region's geometry in its local east-north frame: area, land per country, the border line.

Everything the scenario places (paths, roads, meeting points, orbits) is computed here in
metres (x east, y north) of the region's :class:`LocalFrame`, then converted to WGS84 only for
output. Country areas and border lines come from :class:`services.core.geography.Geography`
(``(lon, lat)`` coordinates), converted once with the exact ENU transform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import LineString, MultiLineString, Point, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import linemerge

from services.core.config import Region
from services.correlator.domain.frames import LocalFrame

if TYPE_CHECKING:
    from services.core.geography import Geography

Array = NDArray[np.float64]
XY = tuple[float, float]

PLACEMENT_MARGIN_M = 300.0
"""Nothing is placed closer than this to the edge of the region's area, metres."""


class SceneError(ValueError):
    """The region cannot host a scenario (no border line, no land, unknown region)."""


@dataclass(frozen=True)
class BorderStation:
    """A point on the border line with its local directions (unit vectors, east-north)."""

    point: XY
    tangent: XY
    normals: dict[str, XY]
    """Per country code, the unit normal pointing into that country."""

    def offset(self, country: str, distance_m: float, along_m: float = 0.0) -> XY:
        """The point ``distance_m`` into ``country`` and ``along_m`` along the border, metres."""
        nx, ny = self.normals[country]
        tx, ty = self.tangent
        return (
            self.point[0] + distance_m * nx + along_m * tx,
            self.point[1] + distance_m * ny + along_m * ty,
        )


class RegionScene:
    """The region in its local frame, with the placement helpers the scenario needs."""

    def __init__(
        self,
        region_id: str,
        frame: LocalFrame,
        area: Polygon,
        countries: dict[str, BaseGeometry],
        border: LineString,
    ) -> None:
        self.region_id = region_id
        self.frame = frame
        self.area = area
        self.countries = countries
        self.codes = tuple(sorted(countries))
        self.border = border
        self.inner = area.buffer(-PLACEMENT_MARGIN_M)
        land = shapely.union_all(list(countries.values()))
        self.land = land.intersection(self.inner)
        for geometry in (self.inner, self.land, self.border, *countries.values()):
            shapely.prepare(geometry)

    @classmethod
    def build(cls, region: Region, geography: Geography) -> RegionScene:
        """The scene of ``region`` from the geography (``Geography.in_region`` is applied here)."""
        origin = region.frame_origin
        frame = LocalFrame(origin.lat, origin.lon)
        local = geography.in_region(region.id)

        def to_local(lonlat: Array) -> Array:
            east, north, _ = frame.to_enu(lonlat[:, 1], lonlat[:, 0])
            return np.column_stack([east, north])

        area = Polygon(to_local(np.asarray(region.area, dtype=np.float64)))
        countries: dict[str, BaseGeometry] = {}
        for country in local.countries:
            if country.code in region.countries:
                clipped = shapely.transform(country.area, to_local).intersection(area)
                if not clipped.is_empty:
                    countries[country.code] = clipped
        borders = [b for b in local.borders if set(b.countries) <= set(countries)]
        if len(countries) < 2 or not borders:
            raise SceneError(f"region {region.id!r} has no border between two of its countries")
        pieces: list[LineString] = []
        for border in borders:
            line = shapely.transform(border.line, to_local).intersection(area.buffer(-PLACEMENT_MARGIN_M))
            pieces.extend(_lines(line))
        if not pieces:
            raise SceneError(f"the border of region {region.id!r} does not run through its area")
        return cls(region.id, frame, area, countries, max(pieces, key=lambda piece: piece.length))

    # -- where things are ----------------------------------------------------------------------

    def country_at(self, x_m: float, y_m: float) -> str | None:
        """The country containing the local point, or ``None`` (outside, or on no land)."""
        for code in self.codes:
            if shapely.contains_xy(self.countries[code], x_m, y_m):
                return code
        return None

    def countries_at(self, x_m: Array, y_m: Array) -> NDArray[np.int8]:
        """Vectorised :meth:`country_at`: index into :attr:`codes`, or -1 for none."""
        found = np.full(np.shape(x_m), -1, dtype=np.int8)
        for index, code in enumerate(self.codes):
            inside = shapely.contains_xy(self.countries[code], x_m, y_m)
            found[(found < 0) & inside] = index
        return found

    def border_distance_m(self, x_m: Array | float, y_m: Array | float) -> Array:
        """Distance from local points to the border line, metres."""
        points = shapely.points(np.asarray(x_m, dtype=np.float64), np.asarray(y_m, dtype=np.float64))
        return np.asarray(shapely.distance(points, self.border), dtype=np.float64)

    def other(self, code: str) -> str:
        """The country across the border from ``code``."""
        return next(c for c in self.codes if c != code)

    def placeable(self, point: XY, country: str) -> bool:
        """True when ``point`` is on ``country``'s land, inside the area's placement margin."""
        x, y = point
        return bool(shapely.contains_xy(self.land, x, y)) and self.country_at(x, y) == country

    def station(self, fraction: float) -> BorderStation:
        """The border point at ``fraction`` of the line's length, with its tangent and normals."""
        length = self.border.length
        s = min(max(fraction, 0.0), 1.0) * length
        p0 = self.border.interpolate(max(s - 25.0, 0.0))
        p1 = self.border.interpolate(min(s + 25.0, length))
        here = self.border.interpolate(s)
        dx, dy = p1.x - p0.x, p1.y - p0.y
        norm = math.hypot(dx, dy) or 1.0
        tangent = (dx / norm, dy / norm)
        left = (-tangent[1], tangent[0])
        probe = self.country_at(here.x + 40.0 * left[0], here.y + 40.0 * left[1])
        a, b = self.codes
        left_code = probe if probe in self.codes else a
        right_code = b if left_code == a else a
        normals = {left_code: left, right_code: (-left[0], -left[1])}
        return BorderStation((here.x, here.y), tangent, normals)

    def nearest_fraction(self, point: XY) -> float:
        """The border fraction closest to a local point."""
        return float(self.border.project(Point(point), normalized=True))

    def crosses(self, path: list[XY]) -> int:
        """How many times the polyline ``path`` crosses the border line."""
        hit = LineString(path).intersection(self.border)
        if hit.is_empty:
            return 0
        return len(shapely.get_parts(hit))

    def on_land(self, path: list[XY]) -> bool:
        """True when the whole polyline stays on land inside the placement margin."""
        return bool(self.land.contains(LineString(path)))

    def parallel_road(self, country: str, offset_m: float, min_length_m: float) -> list[XY] | None:
        """A road ``offset_m`` from the border inside ``country`` (a smoothed offset of the line).

        Returns the longest piece that stays on that country's land, inside the margin and at
        least half the offset from the border; ``None`` when no piece is ``min_length_m`` long.
        """
        keep = self.countries[country].intersection(self.land).difference(self.border.buffer(0.5 * offset_m))
        best: LineString | None = None
        for sign in (1.0, -1.0):
            smooth = self.border.simplify(offset_m / 4.0)
            if not isinstance(smooth, LineString):
                continue
            curve = smooth.offset_curve(sign * offset_m, join_style="round")
            for piece in _lines(curve.intersection(keep)):
                mid = piece.interpolate(0.5, normalized=True)
                if self.country_at(mid.x, mid.y) != country:
                    continue
                if best is None or piece.length > best.length:
                    best = piece
        if best is None or best.length < min_length_m:
            return None
        simple = best.simplify(20.0)
        return [(float(x), float(y)) for x, y in simple.coords]


def _lines(geometry: BaseGeometry) -> list[LineString]:
    """The line parts of a geometry (merged where they touch), longest first."""
    parts = [g for g in shapely.get_parts(geometry) if isinstance(g, LineString) and g.length > 0]
    if not parts:
        return []
    merged = linemerge(MultiLineString(parts)) if len(parts) > 1 else parts[0]
    lines = [g for g in shapely.get_parts(merged) if isinstance(g, LineString)]
    return sorted(lines, key=lambda line: -line.length)
