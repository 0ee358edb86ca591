"""Exact WGS84 <-> local ENU conversions."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from services.correlator.domain.frames import SITES, LocalFrame, ecef_to_geodetic, geodetic_to_ecef

NEARBY_POINTS = {
    "lat0": st.floats(-80, 80),
    "lon0": st.floats(-179, 179),
    "d_lat": st.floats(-0.3, 0.3),
    "d_lon": st.floats(-0.3, 0.3),
    "alt": st.floats(-100, 5_000),
}
"""A frame's origin anywhere on Earth and a point within ±30 km of it."""


@given(**NEARBY_POINTS)
@settings(max_examples=300)
def test_round_trip_is_exact_to_a_millimetre(
    lat0: float, lon0: float, d_lat: float, d_lon: float, alt: float
) -> None:
    """to_enu then to_wgs84 returns the point (sub-millimetre), anywhere within ±30 km of the origin."""
    frame = LocalFrame(lat0, lon0, 0.0)
    lat, lon = lat0 + d_lat, ((lon0 + d_lon + 180) % 360) - 180
    e, n, u = frame.to_enu(lat, lon, alt)
    back_lat, back_lon, back_alt = frame.to_wgs84(e, n, u)
    assert abs(float(back_lat) - lat) * 111_000 < 1e-3
    assert abs(((float(back_lon) - lon + 180) % 360) - 180) * 111_000 * math.cos(math.radians(lat)) < 1e-3
    assert abs(float(back_alt) - alt) < 1e-3


@given(**NEARBY_POINTS)
@settings(max_examples=300)
def test_one_point_in_floats_equals_the_vectorised_conversion(
    lat0: float, lon0: float, d_lat: float, d_lon: float, alt: float
) -> None:
    """point_to_enu (plain floats, used per detection) gives to_enu's answer to a micrometre."""
    frame = LocalFrame(lat0, lon0, 120.0)
    lat, lon = lat0 + d_lat, ((lon0 + d_lon + 180) % 360) - 180
    fast = frame.point_to_enu(lat, lon, alt)
    assert all(isinstance(v, float) for v in fast)
    assert np.allclose(fast, [float(v) for v in frame.to_enu(lat, lon, alt)], rtol=0.0, atol=1e-6)


def test_origin_and_axes() -> None:
    """The origin is (0, 0, 0); north is +y, east is +x, up is +z."""
    frame = LocalFrame(7.9, -72.45, 300.0)
    assert np.allclose(frame.to_enu(7.9, -72.45, 300.0), 0.0, atol=1e-6)
    e, n, _ = frame.to_enu(7.91, -72.45, 300.0)
    assert abs(float(e)) < 1.0
    assert float(n) > 1_000
    e, n, _ = frame.to_enu(7.9, -72.44, 300.0)
    assert float(e) > 1_000
    assert abs(float(n)) < 1.0
    _, _, u = frame.to_enu(7.9, -72.45, 400.0)
    assert float(u) == np.float64(u)
    assert abs(float(u) - 100.0) < 1e-6


def test_known_distance() -> None:
    """One arc-minute of latitude at 8°N is 1,843 m on WGS84 (within a metre)."""
    frame = LocalFrame(8.0, -72.0)
    _, north, _ = frame.to_enu(8.0 + 1 / 60, -72.0)
    assert abs(float(north) - 1_843.1) < 1.0


def test_ecef_inverse_at_altitude() -> None:
    """Heikkinen's inverse recovers latitude and height even for aircraft and satellites."""
    for lat, lon, alt in [(14.7, -92.2, 250.0), (-33.0, 151.0, 10_000.0), (60.0, 10.0, 400_000.0)]:
        back = ecef_to_geodetic(*geodetic_to_ecef(lat, lon, alt))
        assert np.allclose(back, (lat, lon, alt), atol=1e-7)


def test_vectorised() -> None:
    """Arrays in, arrays out, same shape."""
    frame = LocalFrame(14.7, -92.2)
    lat = np.linspace(14.6, 14.8, 50)
    lon = np.linspace(-92.3, -92.1, 50)
    e, n, u = frame.to_enu(lat, lon)
    assert e.shape == n.shape == u.shape == (50,)
    back_lat, back_lon, _ = frame.to_wgs84(e, n, u)
    assert np.allclose(back_lat, lat, atol=1e-9)
    assert np.allclose(back_lon, lon, atol=1e-9)


def test_a_site_is_converted_once_and_remembered() -> None:
    """site_en is point_to_enu's east and north as plain floats, the same from memory; a frame
    stops remembering beyond SITES sites and still converts."""
    frame = LocalFrame(7.9, -72.5, 300.0)
    east, north, _ = frame.point_to_enu(7.95, -72.45, 310.0)
    first = frame.site_en(7.95, -72.45, 310.0)
    assert first == (east, north)
    assert all(type(v) is float for v in first)
    assert frame.site_en(7.95, -72.45, 310.0) is first
    many = [frame.site_en(7.9 + k * 1e-4, -72.5, 0.0) for k in range(SITES + 10)]
    assert len(frame._sites) == SITES
    assert many[-1] == frame.point_to_enu(7.9 + (SITES + 9) * 1e-4, -72.5, 0.0)[:2]
