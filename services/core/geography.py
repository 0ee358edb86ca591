"""Country outlines and border lines, from Natural Earth (public domain) via the npm package
``world-atlas``, cut down to the configured regions and kept in a GeoJSON file.

``lindero geo extract`` writes that file (``config/geo/demo.geojson`` for the demo): for each
region, the outline of each of its countries clipped to the region's area (plus a margin) and
the border line between each pair of them. In TopoJSON a border is exactly the arcs two
countries share, so the line and the outlines agree to the last vertex.

:class:`Geography` loads the file for the services: which country a point is in, and how far
the nearest watched border is. Pure geometry on shapely; coordinates are ``(lon, lat)``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import LineString, MultiLineString, Point, box, mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import linemerge

WORLD_ATLAS_VERSION = "2.0.2"
_MARGIN_DEG = 0.05


@dataclass(frozen=True)
class Border:
    """A stretch of international border inside one region."""

    border_id: str
    """e.g. ``CO-VE`` (country codes in alphabetical order)."""
    region: str
    countries: tuple[str, str]
    name: str
    line: LineString | MultiLineString
    """``(lon, lat)`` coordinates."""


@dataclass(frozen=True)
class CountryArea:
    """A country's territory inside one region (clipped outline)."""

    code: str
    region: str
    area: BaseGeometry


class Geography:
    """Outlines and borders per region, as loaded from the GeoJSON file."""

    def __init__(self, countries: Iterable[CountryArea], borders: Iterable[Border]) -> None:
        self.countries = list(countries)
        self.borders = list(borders)
        for country in self.countries:
            shapely.prepare(country.area)

    @classmethod
    def load(cls, path: Path) -> Geography:
        document = json.loads(path.read_text("utf-8"))
        countries: list[CountryArea] = []
        borders: list[Border] = []
        for feature in document["features"]:
            props = feature["properties"]
            geometry = shape(feature["geometry"])
            if props["kind"] == "country":
                countries.append(CountryArea(props["code"], props["region"], geometry))
            elif props["kind"] == "border":
                a, b = props["countries"]
                borders.append(Border(props["id"], props["region"], (a, b), props["name"], geometry))  # type: ignore[arg-type]
        return cls(countries, borders)

    def in_region(self, region: str) -> Geography:
        """Only what belongs to ``region``."""
        return Geography(
            (c for c in self.countries if c.region == region), (b for b in self.borders if b.region == region)
        )

    def country_at(self, lon: float, lat: float) -> str | None:
        """The country whose territory contains the point, or ``None``."""
        point = Point(lon, lat)
        for country in self.countries:
            if country.area.contains(point):
                return country.code
        return None


# -- extraction from world-atlas (used by `lindero geo extract`) --------------------------------


def _decode_arcs(topology: dict[str, Any]) -> list[list[tuple[float, float]]]:
    scale_x, scale_y = topology["transform"]["scale"]
    shift_x, shift_y = topology["transform"]["translate"]
    arcs = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x += dx
            y += dy
            points.append((x * scale_x + shift_x, y * scale_y + shift_y))
        arcs.append(points)
    return arcs


def _arc(arcs: list[list[tuple[float, float]]], index: int) -> list[tuple[float, float]]:
    return arcs[index] if index >= 0 else arcs[~index][::-1]


def _ring(arcs: list[list[tuple[float, float]]], indexes: Sequence[int]) -> list[tuple[float, float]]:
    points: list[tuple[float, float]] = []
    for k, index in enumerate(indexes):
        part = _arc(arcs, index)
        points.extend(part if k == 0 else part[1:])
    return points


def _polygonal(geometry: dict[str, Any], arcs: list[list[tuple[float, float]]]) -> BaseGeometry:
    polygons = geometry["arcs"] if geometry["type"] == "MultiPolygon" else [geometry["arcs"]]
    parts = [
        shapely.Polygon(_ring(arcs, rings[0]), [_ring(arcs, r) for r in rings[1:]]) for rings in polygons
    ]
    return shapely.make_valid(shapely.MultiPolygon(parts) if len(parts) > 1 else parts[0])


def _arc_ids(geometry: dict[str, Any]) -> set[int]:
    found: set[int] = set()

    def walk(node: Any) -> None:
        if isinstance(node, int):
            found.add(node if node >= 0 else ~node)
        else:
            for child in node:
                walk(child)

    walk(geometry["arcs"])
    return found


def extract(
    topology: dict[str, Any], regions: Iterable[tuple[str, Sequence[tuple[float, float]], dict[str, str]]]
) -> dict[str, Any]:
    """GeoJSON for ``regions``: ``(region id, area ring, {country code: ISO numeric})`` each."""
    arcs = _decode_arcs(topology)
    geometries = {str(g.get("id")): g for g in topology["objects"]["countries"]["geometries"]}
    names = {str(g.get("id")): g["properties"]["name"] for g in geometries.values()}
    features: list[dict[str, Any]] = []
    for region_id, ring, countries in regions:
        window = shapely.Polygon(ring).buffer(_MARGIN_DEG, join_style="mitre")
        window = box(*window.bounds)
        codes = sorted(countries)
        for code in codes:
            numeric = countries[code]
            clipped = _polygonal(geometries[numeric], arcs).intersection(window)
            if not clipped.is_empty:
                features.append(
                    {
                        "type": "Feature",
                        "properties": {
                            "kind": "country",
                            "code": code,
                            "region": region_id,
                            "name": names[numeric],
                        },
                        "geometry": mapping(shapely.set_precision(clipped, 1e-6)),
                    }
                )
        for i, a in enumerate(codes):
            for b in codes[i + 1 :]:
                shared = _arc_ids(geometries[countries[a]]) & _arc_ids(geometries[countries[b]])
                if not shared:
                    continue
                line = linemerge([LineString(arcs[index]) for index in sorted(shared)]).intersection(window)
                if line.is_empty:
                    continue
                features.append(
                    {
                        "type": "Feature",
                        "properties": {
                            "kind": "border",
                            "id": f"{a}-{b}",
                            "region": region_id,
                            "countries": [a, b],
                            "name": f"{names[countries[a]]}–{names[countries[b]]}",
                        },
                        "geometry": mapping(shapely.set_precision(line, 1e-6)),
                    }
                )
    return {
        "type": "FeatureCollection",
        "properties": {
            "source": f"Natural Earth 1:10m via world-atlas {WORLD_ATLAS_VERSION} (countries-10m.json)",
            "license": "public domain",
        },
        "features": features,
    }


def fetch_world_atlas(cache: Path) -> Path:
    """``countries-10m.json`` of the pinned world-atlas, installed with npm into ``cache``."""
    target = cache / "node_modules" / "world-atlas" / "countries-10m.json"
    if not target.is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise FileNotFoundError("npm is needed to fetch world-atlas (install Node.js)")
        cache.mkdir(parents=True, exist_ok=True)
        package = f"world-atlas@{WORLD_ATLAS_VERSION}"
        command = [npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(cache), package]
        subprocess.run(command, check=True)  # noqa: S603 - fixed arguments
    return target
