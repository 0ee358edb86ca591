// Distances and bearings on a sphere (the same haversine the alerts service uses for dispatches).

const EARTH_M = 6_371_008.8;
const RAD = Math.PI / 180;

export interface Point {
  lat: number;
  lon: number;
}

/** Great-circle distance, metres. */
export function distanceM(a: Point, b: Point): number {
  const p1 = a.lat * RAD;
  const p2 = b.lat * RAD;
  const dp = p2 - p1;
  const dl = (b.lon - a.lon) * RAD;
  const h = Math.sin(dp / 2) ** 2 + Math.cos(p1) * Math.cos(p2) * Math.sin(dl / 2) ** 2;
  return 2 * EARTH_M * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** Initial bearing from a to b, degrees from true north (0-360). */
export function bearingDeg(a: Point, b: Point): number {
  const p1 = a.lat * RAD;
  const p2 = b.lat * RAD;
  const dl = (b.lon - a.lon) * RAD;
  const y = Math.sin(dl) * Math.cos(p2);
  const x = Math.cos(p1) * Math.sin(p2) - Math.sin(p1) * Math.cos(p2) * Math.cos(dl);
  return (Math.atan2(y, x) / RAD + 360) % 360;
}

const COMPASS = ["N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW"];

export function compass(bearing: number): string {
  return COMPASS[Math.round(bearing / 22.5) % 16]!;
}

/** Where something moving at (east, north) m/s will be after `seconds` (flat-earth, fine for minutes). */
export function ahead(point: Point, eastMps: number, northMps: number, seconds: number): Point {
  const lat = point.lat + (northMps * seconds) / 111_320;
  const lon = point.lon + (eastMps * seconds) / (111_320 * Math.max(0.01, Math.cos(point.lat * RAD)));
  return { lat, lon };
}
