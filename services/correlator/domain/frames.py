"""Exact WGS84 <-> local east-north-up (ENU) conversions, vectorised.

Each region has a local tangent-plane frame at its origin: x east, y north, z up, in metres.
Conversions go through Earth-centred Earth-fixed (ECEF) coordinates with the WGS84 ellipsoid
(a = 6,378,137 m, f = 1/298.257223563); the inverse uses Heikkinen's closed form (exact to
well below a millimetre at any altitude of interest). Angles are degrees at the interface and
radians inside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

WGS84_A = 6_378_137.0
WGS84_F = 1.0 / 298.257223563
WGS84_B = WGS84_A * (1.0 - WGS84_F)
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)
WGS84_EP2 = WGS84_E2 / (1.0 - WGS84_E2)

Array = NDArray[np.float64]

SITES = 4_096
"""Sensor sites a frame remembers in east-north (:meth:`LocalFrame.site_en`)."""


def geodetic_to_ecef(
    lat_deg: ArrayLike, lon_deg: ArrayLike, alt_m: ArrayLike = 0.0
) -> tuple[Array, Array, Array]:
    """ECEF (m) of geodetic points: X = (N + h) cos(phi) cos(lambda), ..., Z = (N (1 - e^2) + h) sin(phi)."""
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    lon = np.radians(np.asarray(lon_deg, dtype=np.float64))
    alt = np.asarray(alt_m, dtype=np.float64)
    sin_lat, cos_lat = np.sin(lat), np.cos(lat)
    radius = WGS84_A / np.sqrt(1.0 - WGS84_E2 * sin_lat**2)
    x = (radius + alt) * cos_lat * np.cos(lon)
    y = (radius + alt) * cos_lat * np.sin(lon)
    z = (radius * (1.0 - WGS84_E2) + alt) * sin_lat
    return x, y, z


def ecef_to_geodetic(x: ArrayLike, y: ArrayLike, z: ArrayLike) -> tuple[Array, Array, Array]:
    """Geodetic latitude, longitude (degrees) and ellipsoidal height (m), Heikkinen (1982)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    a, b, e2, ep2 = WGS84_A, WGS84_B, WGS84_E2, WGS84_EP2
    p = np.hypot(x, y)
    big_f = 54.0 * b * b * z * z
    g = p * p + (1.0 - e2) * z * z - e2 * (a * a - b * b)
    c = e2 * e2 * big_f * p * p / (g**3)
    s = np.cbrt(1.0 + c + np.sqrt(c * c + 2.0 * c))
    k = s + 1.0 + 1.0 / s
    big_p = big_f / (3.0 * k * k * g * g)
    q = np.sqrt(1.0 + 2.0 * e2 * e2 * big_p)
    r0 = -(big_p * e2 * p) / (1.0 + q) + np.sqrt(
        0.5 * a * a * (1.0 + 1.0 / q) - big_p * (1.0 - e2) * z * z / (q * (1.0 + q)) - 0.5 * big_p * p * p
    )
    u = np.sqrt((p - e2 * r0) ** 2 + z * z)
    v = np.sqrt((p - e2 * r0) ** 2 + (1.0 - e2) * z * z)
    z0 = b * b * z / (a * v)
    alt = u * (1.0 - b * b / (a * v))
    lat = np.arctan((z + ep2 * z0) / p)
    lon = np.arctan2(y, x)
    return np.degrees(lat), np.degrees(lon), alt


@dataclass(frozen=True)
class LocalFrame:
    """A local east-north-up frame with its origin at ``(lat0_deg, lon0_deg, alt0_m)``."""

    lat0_deg: float
    lon0_deg: float
    alt0_m: float = 0.0
    _origin: Array = field(init=False, repr=False, compare=False)
    _rotation: Array = field(init=False, repr=False, compare=False)
    _origin_xyz: tuple[float, float, float] = field(init=False, repr=False, compare=False)
    _rotation_rows: tuple[tuple[float, float, float], ...] = field(init=False, repr=False, compare=False)
    _sites: dict[tuple[float, float, float], tuple[float, float]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        lat, lon = np.radians(self.lat0_deg), np.radians(self.lon0_deg)
        origin = np.array(geodetic_to_ecef(self.lat0_deg, self.lon0_deg, self.alt0_m), dtype=np.float64)
        rotation = np.array(
            [
                [-np.sin(lon), np.cos(lon), 0.0],
                [-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)],
                [np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)],
            ]
        )
        object.__setattr__(self, "_origin", origin)
        object.__setattr__(self, "_rotation", rotation)
        object.__setattr__(self, "_origin_xyz", tuple(float(v) for v in origin))
        object.__setattr__(self, "_rotation_rows", tuple(tuple(float(v) for v in row) for row in rotation))
        object.__setattr__(self, "_sites", {})

    def to_enu(
        self, lat_deg: ArrayLike, lon_deg: ArrayLike, alt_m: ArrayLike = 0.0
    ) -> tuple[Array, Array, Array]:
        """East, north, up (m) of geodetic points: R (ECEF - ECEF_origin)."""
        x, y, z = geodetic_to_ecef(lat_deg, lon_deg, alt_m)
        delta = np.stack(np.broadcast_arrays(x, y, z)) - self._origin.reshape(3, *([1] * np.ndim(x)))
        enu = np.tensordot(self._rotation, delta, axes=1)
        return enu[0], enu[1], enu[2]

    def point_to_enu(self, lat_deg: float, lon_deg: float, alt_m: float = 0.0) -> tuple[float, float, float]:
        """``to_enu`` of one point in plain floats: the same formulas without numpy's per-call
        overhead (a correlator converts every detection on its own; numpy took ~15 µs a point)."""
        lat, lon = math.radians(lat_deg), math.radians(lon_deg)
        sin_lat, cos_lat = math.sin(lat), math.cos(lat)
        radius = WGS84_A / math.sqrt(1.0 - WGS84_E2 * sin_lat * sin_lat)
        x = (radius + alt_m) * cos_lat * math.cos(lon)
        y = (radius + alt_m) * cos_lat * math.sin(lon)
        z = (radius * (1.0 - WGS84_E2) + alt_m) * sin_lat
        dx, dy, dz = x - self._origin_xyz[0], y - self._origin_xyz[1], z - self._origin_xyz[2]
        (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = self._rotation_rows
        return (
            r00 * dx + r01 * dy + r02 * dz,
            r10 * dx + r11 * dy + r12 * dz,
            r20 * dx + r21 * dy + r22 * dz,
        )

    def site_en(self, lat_deg: float, lon_deg: float, alt_m: float = 0.0) -> tuple[float, float]:
        """East and north (m) of a sensor site: :meth:`point_to_enu`, remembered (a radar reports
        its site with every detection; the first ``SITES`` sites are kept)."""
        key = (lat_deg, lon_deg, alt_m)
        found = self._sites.get(key)
        if found is None:
            east, north, _ = self.point_to_enu(lat_deg, lon_deg, alt_m)
            found = (float(east), float(north))
            if len(self._sites) < SITES:
                self._sites[key] = found
        return found

    def to_wgs84(
        self, east_m: ArrayLike, north_m: ArrayLike, up_m: ArrayLike = 0.0
    ) -> tuple[Array, Array, Array]:
        """Latitude, longitude (degrees) and height (m) of local points: ECEF_origin + R^T enu."""
        e, n, u = np.broadcast_arrays(
            np.asarray(east_m, dtype=np.float64),
            np.asarray(north_m, dtype=np.float64),
            np.asarray(up_m, dtype=np.float64),
        )
        ecef = np.tensordot(self._rotation.T, np.stack([e, n, u]), axes=1) + self._origin.reshape(
            3, *([1] * e.ndim)
        )
        return ecef_to_geodetic(ecef[0], ecef[1], ecef[2])
