// Compact stream messages (the subscription's compact_tracks and compact_alerts): rebuilding the
// whole track or alert view from what the client already holds. The server side is
// services/alerts/hub.py; the formats are documented in schemas/api.py.

import type { AlertView, Track } from "./types";

/** The positions in a track_moved message's "m" array: schemas.api.TRACK_MOVED_FIELDS. */
export const TRACK_MOVED_FIELDS = [
  "time",
  "lat",
  "lon",
  "alt_m",
  "velocity_east_mps",
  "velocity_north_mps",
  "speed_mps",
  "heading_deg",
  "position_sigma_m",
  "covariance_en_m2",
  "border_distance_m",
  "update_count",
  "last_update",
  "class_probabilities",
] as const;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The track after a track_moved message: times come as epoch seconds (last_update null: equal to
 * time), class probabilities as {"person": 0.912} (null: unchanged); positions this client does
 * not know (a newer server) are ignored. */
export function applyTrackMoved(track: Track, m: unknown[]): Track {
  const next: Record<string, unknown> = { ...track };
  TRACK_MOVED_FIELDS.forEach((name, index) => {
    if (index >= m.length) return;
    const value = m[index];
    if (name === "time") {
      next.time = new Date((value as number) * 1000).toISOString();
    } else if (name === "last_update") {
      next.last_update = value === null ? next.time : new Date((value as number) * 1000).toISOString();
    } else if (name === "class_probabilities") {
      if (isObject(value)) {
        next.class_probabilities = Object.entries(value).map(([cls, probability]) => ({
          class: cls,
          probability,
        }));
      }
    } else {
      next[name] = value;
    }
  });
  return next as unknown as Track;
}

/** The alert view after an alert_changed message (schemas.api.apply_alert_changes): a field in
 * "set" replaces the field, except that an object merges into an object one level deep. */
export function applyAlertChanges(view: AlertView, set: Record<string, unknown>, version: number): AlertView {
  const next: Record<string, unknown> = { ...view };
  for (const [name, value] of Object.entries(set)) {
    const before = next[name];
    next[name] = isObject(value) && isObject(before) ? { ...before, ...value } : value;
  }
  next.version = version;
  return next as unknown as AlertView;
}
